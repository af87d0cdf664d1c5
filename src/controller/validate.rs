//! Stage *validate*: a Rollout's spec becomes a [`ValidatedRollout`] — the lifecycle's spec (step
//! plan, strategy, deadlines) and the analysis for each step — or an error naming the field and
//! the fix. Later stages take only the validated value, so an invalid spec cannot reach *apply*.

use crate::advise::steps::Goal;
use crate::crd::rollout::{CanaryStrategy, RolloutAnalysis, RolloutSpec, TrafficRouting};
pub use crate::rollout::lifecycle::{DEFAULT_PROGRESS_DEADLINE, StrategyKind};
use crate::rollout::lifecycle::{DEFAULT_SCALE_DOWN_DELAY, Spec};
use crate::rollout::{Step, StepPlan};

/// A spec problem, with the field path and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SpecError {
    /// Path of the field, e.g. `spec.strategy.canary.steps[2].setWeight`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A Rollout spec that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedRollout {
    /// Name of the target Deployment.
    pub target: String,
    /// What the lifecycle needs: strategy, step plan, router or pod ratio, deadlines.
    pub lifecycle: Spec,
    /// The analysis gating each plan step (index into `analyses`), `None` when ungated.
    pub step_analysis: Vec<Option<usize>>,
    /// Distinct analysis configurations, including the background one.
    pub analyses: Vec<RolloutAnalysis>,
    /// Analysis over the whole rollout (index into `analyses`).
    pub background: Option<usize>,
    /// Pods in all when the spec sets them (an HPA through the scale subresource), else the
    /// target Deployment's.
    pub replicas: Option<i32>,
    /// What each gated step should catch (`spec.strategy.canary.powerCheck`); `None`: no check.
    pub power_check: Option<Goal>,
}

impl ValidatedRollout {
    /// The analysis that gates `step`: the step's own, else the background analysis; `None`
    /// when the step is not gated (it then only waits for its pause).
    pub fn analysis(&self, step: usize) -> Option<&RolloutAnalysis> {
        self.step_analysis
            .get(step)
            .copied()
            .flatten()
            .or(self.background)
            .map(|i| &self.analyses[i])
    }
}

/// Validates a spec.
///
/// # Errors
/// The first problem found, with its field path.
pub fn validate(spec: &RolloutSpec) -> Result<ValidatedRollout, SpecError> {
    let t = &spec.target_ref;
    if t.api_version != "apps/v1" || t.kind != "Deployment" {
        return Err(invalid(
            "spec.targetRef",
            format!(
                "{}/{} is not supported; point at an apps/v1 Deployment",
                t.api_version, t.kind
            ),
        ));
    }
    if t.name.trim().is_empty() {
        return Err(invalid(
            "spec.targetRef.name",
            "is empty; name the Deployment to roll out",
        ));
    }
    let mut validated = match (&spec.strategy.canary, &spec.strategy.blue_green) {
        (Some(_), Some(_)) => Err(invalid(
            "spec.strategy",
            "has both canary and blueGreen; choose one",
        )),
        (None, None) => Err(invalid(
            "spec.strategy",
            "is empty; set canary or blueGreen",
        )),
        (Some(canary), None) => canary_plan(&t.name, canary),
        (None, Some(bg)) => {
            if bg.active_service.trim().is_empty() {
                return Err(invalid(
                    "spec.strategy.blueGreen.activeService",
                    "is empty; name the Service that receives production traffic",
                ));
            }
            let mut analyses = Vec::new();
            if let Some(a) = &bg.pre_promotion_analysis {
                check_analysis("spec.strategy.blueGreen.prePromotionAnalysis", a)?;
                analyses.push(a.clone());
            }
            // One step at weight 0 (production stays on the active version) that ends as soon as
            // the preview's analysis passes, or waits for a human without auto-promotion.
            let pause = if bg.auto_promotion.unwrap_or(true) {
                0.0
            } else {
                f64::INFINITY
            };
            let plan = StepPlan::new(vec![Step { weight: 0.0, pause }])
                .map_err(|e| invalid("spec.strategy.blueGreen", e.to_string()))?;
            let scale_down_delay = match &bg.scale_down_delay {
                Some(d) => duration("spec.strategy.blueGreen.scaleDownDelay", d)?,
                None => DEFAULT_SCALE_DOWN_DELAY,
            };
            Ok(ValidatedRollout {
                target: t.name.clone(),
                lifecycle: Spec {
                    kind: StrategyKind::BlueGreen,
                    routed: true,
                    scale_down_delay,
                    ..Spec::canary(&t.name, plan)
                },
                step_analysis: vec![(!analyses.is_empty()).then_some(0)],
                analyses,
                background: None,
                replicas: None,
                power_check: None,
            })
        }
    }?;
    if let Some(routing) = &spec.traffic_routing {
        validated.lifecycle.routed = check_routing(validated.lifecycle.kind, routing)?;
    }
    if let Some(replicas) = spec.replicas {
        if replicas < 0 {
            return Err(invalid(
                "spec.replicas",
                format!("is {replicas}; give the number of pods in all (0 or more)"),
            ));
        }
        validated.replicas = Some(replicas);
    }
    if let Some(text) = &spec.progress_deadline {
        let seconds = duration("spec.progressDeadline", text)?;
        if seconds < 1.0 {
            return Err(invalid(
                "spec.progressDeadline",
                format!("{text:?} is shorter than a second; pods need time to start, e.g. 10m"),
            ));
        }
        validated.lifecycle.progress_deadline = seconds;
    }
    validated.lifecycle.deadline_rollback = spec.on_progress_deadline.unwrap_or_default()
        == crate::crd::rollout::DeadlinePolicy::Rollback;
    Ok(validated)
}

/// Checks `spec.trafficRouting`; returns whether a router splits the traffic.
fn check_routing(kind: StrategyKind, routing: &TrafficRouting) -> Result<bool, SpecError> {
    let field = "spec.trafficRouting";
    let routers = [
        routing.gateway_api.is_some(),
        routing.istio.is_some(),
        routing.nginx.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if kind == StrategyKind::BlueGreen && (routers > 0 || !routing.matches.is_empty()) {
        return Err(invalid(
            field,
            "is for canary steps; blue-green switches spec.strategy.blueGreen.activeService instead — remove trafficRouting",
        ));
    }
    if routers > 1 {
        return Err(invalid(
            field,
            "names more than one router; choose one of gatewayApi, istio or nginx",
        ));
    }
    let names = [
        routing.gateway_api.as_ref().map(|g| {
            vec![
                ("gatewayApi.httpRoute", &g.http_route),
                ("gatewayApi.stableService", &g.stable_service),
                ("gatewayApi.canaryService", &g.canary_service),
            ]
        }),
        routing.istio.as_ref().map(|i| {
            vec![
                ("istio.virtualService", &i.virtual_service),
                ("istio.destinationRule", &i.destination_rule),
            ]
        }),
        routing.nginx.as_ref().map(|n| {
            vec![
                ("nginx.stableIngress", &n.stable_ingress),
                ("nginx.stableService", &n.stable_service),
                ("nginx.canaryService", &n.canary_service),
            ]
        }),
    ];
    for (name, value) in names.into_iter().flatten().flatten() {
        if value.trim().is_empty() {
            return Err(invalid(
                format!("{field}.{name}"),
                "is empty; name the object",
            ));
        }
    }
    if let Some(g) = &routing.gateway_api
        && g.stable_service == g.canary_service
    {
        return Err(invalid(
            format!("{field}.gatewayApi.canaryService"),
            "is the stable Service; the canary needs a Service of its own (selecting canarygate.dev/version: canary)",
        ));
    }
    if let Some(n) = &routing.nginx
        && n.stable_service == n.canary_service
    {
        return Err(invalid(
            format!("{field}.nginx.canaryService"),
            "is the stable Service; the canary needs a Service of its own (selecting canarygate.dev/version: canary)",
        ));
    }
    if routers == 0 && !routing.matches.is_empty() {
        return Err(invalid(
            format!("{field}.matches"),
            "need a router to match requests; set gatewayApi, istio or nginx (replica ratio cannot route by header)",
        ));
    }
    for (i, m) in routing.matches.iter().enumerate() {
        let at = format!("{field}.matches[{i}]");
        if m.header.is_some() == m.cookie.is_some() {
            return Err(invalid(at, "set exactly one of header or cookie"));
        }
        if m.header
            .as_deref()
            .or(m.cookie.as_deref())
            .is_some_and(|n| n.trim().is_empty())
        {
            return Err(invalid(at, "names an empty header or cookie"));
        }
        if m.value.is_empty() {
            return Err(invalid(
                format!("{at}.value"),
                "is empty; give the value that selects the canary",
            ));
        }
    }
    if routing.nginx.is_some() {
        let headers = routing
            .matches
            .iter()
            .filter(|m| m.header.is_some())
            .count();
        let cookies: Vec<_> = routing
            .matches
            .iter()
            .filter(|m| m.cookie.is_some())
            .collect();
        if headers > 1 || cookies.len() > 1 {
            return Err(invalid(
                format!("{field}.matches"),
                "NGINX Ingress routes on at most one header and one cookie",
            ));
        }
        if cookies.iter().any(|m| m.value != "always") {
            return Err(invalid(
                format!("{field}.matches"),
                "NGINX Ingress sends a cookie to the canary only when its value is \"always\"; set value: always or match a header",
            ));
        }
    }
    Ok(routers > 0)
}

fn canary_plan(target: &str, canary: &CanaryStrategy) -> Result<ValidatedRollout, SpecError> {
    let max_weight = match canary.max_weight {
        Some(m) if !(1..=100).contains(&m) => {
            return Err(invalid(
                "spec.strategy.canary.maxWeight",
                format!("is {m}; use a percentage between 1 and 100"),
            ));
        }
        Some(m) => m,
        None => 100,
    };
    let mut analyses: Vec<RolloutAnalysis> = Vec::new();
    let background = match &canary.analysis {
        Some(a) => {
            check_analysis("spec.strategy.canary.analysis", a)?;
            analyses.push(a.clone());
            Some(0)
        }
        None => None,
    };
    let mut current_analysis = background;
    let mut weight = 0;
    let mut steps = Vec::new();
    let mut step_analysis = Vec::new();
    // A setWeight not followed by a pause becomes a step of its own with no pause.
    let mut pending: Option<i32> = None;
    for (i, step) in canary.steps.iter().enumerate() {
        let at = |f: &str| format!("spec.strategy.canary.steps[{i}]{f}");
        let set = [
            step.set_weight.is_some(),
            step.pause.is_some(),
            step.analysis.is_some(),
        ];
        match set.iter().filter(|x| **x).count() {
            1 => {}
            0 => {
                return Err(invalid(
                    at(""),
                    "is empty: set exactly one of setWeight, pause or analysis (the API server drops a field it does not know, so a misspelt one such as `setWieght` arrives as an empty step; `kubectl apply` names it)",
                ));
            }
            _ => {
                return Err(invalid(
                    at(""),
                    "set exactly one of setWeight, pause or analysis",
                ));
            }
        }
        if let Some(w) = step.set_weight {
            if !(0..=max_weight).contains(&w) {
                return Err(invalid(
                    at(".setWeight"),
                    format!("is {w}; use a percentage between 0 and maxWeight ({max_weight})"),
                ));
            }
            if let Some(p) = pending.take() {
                steps.push(Step {
                    weight: f64::from(p),
                    pause: 0.0,
                });
                step_analysis.push(current_analysis);
            }
            weight = w;
            pending = Some(w);
        }
        if let Some(pause) = &step.pause {
            let seconds = match &pause.duration {
                Some(d) => duration(&at(".pause.duration"), d)?,
                None => f64::INFINITY,
            };
            pending = None;
            steps.push(Step {
                weight: f64::from(weight),
                pause: seconds,
            });
            step_analysis.push(current_analysis);
        }
        if let Some(a) = &step.analysis {
            check_analysis(&at(".analysis"), a)?;
            let index = match analyses.iter().position(|x| x == a) {
                Some(index) => index,
                None => {
                    analyses.push(a.clone());
                    analyses.len() - 1
                }
            };
            current_analysis = Some(index);
        }
    }
    if let Some(p) = pending {
        steps.push(Step {
            weight: f64::from(p),
            pause: 0.0,
        });
        step_analysis.push(current_analysis);
    }
    if steps.is_empty() {
        return Err(invalid(
            "spec.strategy.canary.steps",
            "has no setWeight or pause step; e.g. setWeight: 5, pause: {duration: 5m}, setWeight: 50, pause: {duration: 10m}",
        ));
    }
    let plan =
        StepPlan::new(steps).map_err(|e| invalid("spec.strategy.canary.steps", e.to_string()))?;
    let scale_down_delay = match &canary.scale_down_delay {
        Some(d) => duration("spec.strategy.canary.scaleDownDelay", d)?,
        None => DEFAULT_SCALE_DOWN_DELAY,
    };
    Ok(ValidatedRollout {
        target: target.to_string(),
        lifecycle: Spec {
            scale_down_delay,
            ..Spec::canary(target, plan)
        },
        step_analysis,
        analyses,
        background,
        replicas: None,
        power_check: super::power::goal(canary)?,
    })
}

fn check_analysis(field: &str, a: &RolloutAnalysis) -> Result<(), SpecError> {
    if a.templates.is_empty() {
        return Err(invalid(
            format!("{field}.templates"),
            "is empty; name at least one analysis template",
        ));
    }
    for (i, t) in a.templates.iter().enumerate() {
        if t.template_name.trim().is_empty() {
            return Err(invalid(
                format!("{field}.templates[{i}].templateName"),
                "is empty",
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, arg) in a.args.iter().enumerate() {
        if !seen.insert(arg.name.as_str()) {
            return Err(invalid(
                format!("{field}.args[{i}].name"),
                format!("{:?} is given twice", arg.name),
            ));
        }
    }
    Ok(())
}

fn duration(field: &str, text: &str) -> Result<f64, SpecError> {
    humantime::parse_duration(text)
        .map(|d| d.as_secs_f64())
        .map_err(|e| {
            invalid(
                field,
                format!("{text:?} is not a duration ({e}); write e.g. 30s, 10m or 1h30m"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::rollout::RolloutSpec;

    fn spec(yaml: &str) -> RolloutSpec {
        serde_saphyr::from_str(yaml).expect("test spec parses")
    }

    const CANARY: &str = r#"
targetRef: {name: web}
strategy:
  canary:
    analysis:
      templates: [{templateName: generic-http}]
      args: [{name: service, value: web}]
    steps:
      - setWeight: 5
      - pause: {duration: 5m}
      - setWeight: 25
      - pause: {}
      - analysis: {templates: [{templateName: slo-absolute, clusterScope: true}]}
      - setWeight: 50
      - pause: {duration: 1h30m}
      - setWeight: 80
"#;

    #[test]
    fn canary_steps_become_a_plan_with_manual_pauses_and_per_step_analysis() {
        let v = validate(&spec(CANARY)).unwrap();
        let steps: Vec<(f64, f64)> = v
            .lifecycle
            .plan
            .steps()
            .iter()
            .map(|s| (s.weight, s.pause))
            .collect();
        assert_eq!(
            steps,
            [
                (5.0, 300.0),
                (25.0, f64::INFINITY),
                (50.0, 5400.0),
                (80.0, 0.0)
            ]
        );
        assert_eq!(v.step_analysis, [Some(0), Some(0), Some(1), Some(1)]);
        assert_eq!(v.analyses[1].templates[0].template_name, "slo-absolute");
        assert_eq!(v.background, Some(0));
        assert_eq!(v.lifecycle.kind, StrategyKind::Canary);
    }

    #[test]
    fn errors_name_the_field_and_the_fix() {
        let cases = [
            (
                CANARY.replace("setWeight: 25", "setWeight: 125"),
                "spec.strategy.canary.steps[2].setWeight: is 125",
            ),
            (
                CANARY.replace("duration: 5m", "duration: soon"),
                "spec.strategy.canary.steps[1].pause.duration: \"soon\" is not a duration",
            ),
            (
                CANARY.replace("      - pause: {}\n", "      - {}\n"),
                "spec.strategy.canary.steps[3]: is empty: set exactly one of setWeight, pause or analysis (the API server drops a field it does not know, so a misspelt one such as `setWieght`",
            ),
            (
                CANARY.replace(
                    "targetRef: {name: web}",
                    "targetRef: {name: web, kind: StatefulSet}",
                ),
                "spec.targetRef: apps/v1/StatefulSet is not supported",
            ),
            (
                CANARY.replace("templates: [{templateName: generic-http}]", "templates: []"),
                "spec.strategy.canary.analysis.templates: is empty",
            ),
        ];
        for (yaml, expected) in cases {
            let err = validate(&spec(&yaml)).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}\n  expected: {expected}");
        }
    }

    #[test]
    fn traffic_routing_errors_name_the_field_and_the_fix() {
        let with = |routing: &str| format!("{CANARY}trafficRouting:\n{routing}");
        let cases = [
            (
                with(
                    "  gatewayApi: {httpRoute: web, stableService: web, canaryService: web}\n  istio: {virtualService: web, destinationRule: web}",
                ),
                "spec.trafficRouting: names more than one router",
            ),
            (
                with("  gatewayApi: {httpRoute: web, stableService: web, canaryService: web}"),
                "spec.trafficRouting.gatewayApi.canaryService: is the stable Service",
            ),
            (
                with("  istio: {virtualService: '', destinationRule: web}"),
                "spec.trafficRouting.istio.virtualService: is empty",
            ),
            (
                with("  matches: [{header: x-canary, value: 'yes'}]"),
                "spec.trafficRouting.matches: need a router",
            ),
            (
                with(
                    "  istio: {virtualService: web, destinationRule: web}\n  matches: [{header: x-canary, cookie: c, value: 'yes'}]",
                ),
                "spec.trafficRouting.matches[0]: set exactly one of header or cookie",
            ),
            (
                with(
                    "  nginx: {stableIngress: web, stableService: web-stable, canaryService: web-canary}\n  matches: [{cookie: beta, value: 'yes'}]",
                ),
                "spec.trafficRouting.matches: NGINX Ingress sends a cookie to the canary only when its value is \"always\"",
            ),
            (
                CANARY.replace("steps:", "scaleDownDelay: later\n    steps:"),
                "spec.strategy.canary.scaleDownDelay: \"later\" is not a duration",
            ),
        ];
        for (yaml, expected) in cases {
            let err = validate(&spec(&yaml)).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}\n  expected: {expected}");
        }
        let ok = validate(&spec(&with(
            "  nginx: {stableIngress: web, stableService: web-stable, canaryService: web-canary}\n  matches: [{cookie: beta, value: always}, {header: x-canary, value: 'yes'}]",
        )))
        .unwrap();
        assert!(ok.lifecycle.routed);
        assert_eq!(ok.lifecycle.scale_down_delay, 30.0);
        assert!(!validate(&spec(CANARY)).unwrap().lifecycle.routed);
    }

    #[test]
    fn blue_green_is_one_preview_step_that_waits_for_a_human_without_auto_promotion() {
        let bg = spec(
            r#"
targetRef: {name: web}
strategy:
  blueGreen:
    activeService: web
    previewService: web-preview
    autoPromotion: false
    prePromotionAnalysis: {templates: [{templateName: generic-http}]}
"#,
        );
        let v = validate(&bg).unwrap();
        assert_eq!(v.lifecycle.kind, StrategyKind::BlueGreen);
        assert_eq!(v.lifecycle.plan.steps()[0].weight, 0.0);
        assert!(v.lifecycle.plan.steps()[0].pause.is_infinite());
        assert_eq!(v.step_analysis, [Some(0)]);
    }

    #[test]
    fn both_or_no_strategy_is_rejected() {
        let none = spec("targetRef: {name: web}\nstrategy: {}\n");
        assert_eq!(validate(&none).unwrap_err().field, "spec.strategy");
        let both = spec(
            "targetRef: {name: web}\nstrategy: {canary: {steps: [{setWeight: 5}]}, blueGreen: {activeService: web}}\n",
        );
        assert!(validate(&both).unwrap_err().problem.contains("choose one"));
    }
}
