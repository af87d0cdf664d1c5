//! Stage *validate*: a Rollout's spec becomes a [`ValidatedRollout`] — the lifecycle's spec (step
//! plan, strategy, deadlines) and the analysis for each step — or an error naming the field and
//! the fix. Later stages take only the validated value, so an invalid spec cannot reach *apply*.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::advise::steps::Goal;
use crate::crd::rollout::{
    CanaryStrategy, HookFailurePolicy, RolloutAnalysis, RolloutSpec, TrafficRouting, Webhook,
};
pub use crate::rollout::lifecycle::{DEFAULT_PROGRESS_DEADLINE, HookKind, StrategyKind};
use crate::rollout::lifecycle::{DEFAULT_SCALE_DOWN_DELAY, HookSpec, OnFailure, Spec};
use crate::rollout::{Step, StepPlan};

/// Default of a webhook's `timeout`.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `timeout` of a webhook attempt.
pub const MAX_HOOK_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Default of a webhook's `retries`.
pub const DEFAULT_HOOK_RETRIES: u32 = 2;
/// The most `retries` of a webhook.
pub const MAX_HOOK_RETRIES: u32 = 10;
/// The most webhooks before, and after, the promotion.
pub const MAX_PROMOTION_HOOKS: usize = 10;
/// The most request headers of a webhook.
const MAX_HOOK_HEADERS: usize = 20;
/// The longest webhook URL.
const MAX_HOOK_URL: usize = 2048;

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
    /// The webhooks (steps', pre- and post-promotion), as the hooks stage calls them.
    pub hooks: Vec<HookDef>,
}

/// A webhook that passed validation: what the hooks stage sends, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct HookDef {
    /// Which gate it is.
    pub kind: HookKind,
    /// Its name (unique in the Rollout).
    pub name: String,
    /// Where to POST.
    pub url: reqwest::Url,
    /// The URL's host and port, for messages (never the path or query).
    pub host: String,
    /// Bound of one attempt.
    pub timeout: Duration,
    /// Further attempts after a first one that may succeed on another try.
    pub retries: u32,
    /// Request headers (names and values checked).
    pub headers: Vec<(String, String)>,
    /// The payload's `metadata`.
    pub metadata: BTreeMap<String, String>,
}

impl HookDef {
    /// What the lifecycle knows of it.
    fn spec(&self, on_failure: OnFailure) -> HookSpec {
        HookSpec {
            name: self.name.clone(),
            host: self.host.clone(),
            on_failure,
        }
    }
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

    /// The webhook of `kind` named `name`.
    pub fn hook(&self, kind: HookKind, name: &str) -> Option<&HookDef> {
        self.hooks.iter().find(|h| h.kind == kind && h.name == name)
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
                hooks: Vec::new(),
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
    if let Some(hooks) = &spec.hooks {
        for (kind, list, field) in [
            (
                HookKind::PrePromotion,
                &hooks.pre_promotion,
                "spec.hooks.prePromotion",
            ),
            (
                HookKind::PostPromotion,
                &hooks.post_promotion,
                "spec.hooks.postPromotion",
            ),
        ] {
            if list.len() > MAX_PROMOTION_HOOKS {
                return Err(invalid(
                    field,
                    format!(
                        "has {} webhooks; at most {MAX_PROMOTION_HOOKS} (one endpoint can run several checks)",
                        list.len()
                    ),
                ));
            }
            for (i, w) in list.iter().enumerate() {
                let at = format!("{field}[{i}]");
                let default = match kind {
                    HookKind::PrePromotion => format!("pre-promotion-{i}"),
                    _ => format!("post-promotion-{i}"),
                };
                let (def, on_failure) = webhook(&at, w, kind, default)?;
                let spec = def.spec(on_failure);
                match kind {
                    HookKind::PrePromotion => validated.lifecycle.hooks.pre_promotion.push(spec),
                    _ => validated.lifecycle.hooks.post_promotion.push(spec),
                }
                validated.hooks.push(def);
            }
        }
    }
    let mut names = BTreeSet::new();
    for def in &validated.hooks {
        if !names.insert(def.name.as_str()) {
            return Err(invalid(
                hook_field(spec, def.kind, &def.name),
                format!(
                    "the webhook name {:?} is used twice; give each webhook its own name (it keys its progress in status.hooks)",
                    def.name
                ),
            ));
        }
    }
    Ok(validated)
}

/// Where a webhook named `name` of `kind` is in the spec (the second of two with one name).
fn hook_field(spec: &RolloutSpec, kind: HookKind, name: &str) -> String {
    let named = |w: &Webhook, default: String| w.name.clone().unwrap_or(default) == name;
    let hooks = spec.hooks.clone().unwrap_or_default();
    let position = match kind {
        HookKind::Step => spec.strategy.canary.as_ref().and_then(|c| {
            c.steps.iter().enumerate().rev().find_map(|(i, s)| {
                s.webhook
                    .as_ref()
                    .filter(|w| named(w, format!("step-{i}")))
                    .map(|_| format!("spec.strategy.canary.steps[{i}].webhook"))
            })
        }),
        HookKind::PrePromotion => hooks
            .pre_promotion
            .iter()
            .enumerate()
            .rev()
            .find(|(i, w)| named(w, format!("pre-promotion-{i}")))
            .map(|(i, _)| format!("spec.hooks.prePromotion[{i}]")),
        HookKind::PostPromotion => hooks
            .post_promotion
            .iter()
            .enumerate()
            .rev()
            .find(|(i, w)| named(w, format!("post-promotion-{i}")))
            .map(|(i, _)| format!("spec.hooks.postPromotion[{i}]")),
    };
    format!("{}.name", position.unwrap_or_else(|| "spec.hooks".into()))
}

/// Checks a webhook of `kind` at `field` (`default`: its name when none is given); returns it
/// and what its failure does.
///
/// # Errors
/// The first problem, with the field and the fix.
pub fn webhook(
    field: &str,
    w: &Webhook,
    kind: HookKind,
    default: String,
) -> Result<(HookDef, OnFailure), SpecError> {
    let name = w.name.clone().unwrap_or(default);
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(invalid(
            format!("{field}.name"),
            format!("{name:?} is not a webhook name; use 1 to 63 letters, digits, '-', '_' or '.'"),
        ));
    }
    let url_field = format!("{field}.url");
    if w.url.len() > MAX_HOOK_URL {
        return Err(invalid(
            url_field,
            format!("is {} characters long; at most {MAX_HOOK_URL}", w.url.len()),
        ));
    }
    let url = reqwest::Url::parse(w.url.trim()).map_err(|e| {
        invalid(
            &url_field,
            format!("is not a URL ({e}); write e.g. http://smoke-test.shop.svc:8080/run"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            url_field,
            format!(
                "has the scheme {:?}; a webhook is called over http:// or https://",
                url.scheme()
            ),
        ));
    }
    let Some(host_name) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(invalid(
            url_field,
            "has no host; write e.g. http://smoke-test.shop.svc:8080/run",
        ));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            url_field,
            "carries a user or password; send credentials in a header (headers: [{name: Authorization, value: …}]) instead",
        ));
    }
    let host = match url.port() {
        Some(port) => format!("{host_name}:{port}"),
        None => host_name.to_string(),
    };
    let timeout = match &w.timeout {
        Some(text) => {
            let at = format!("{field}.timeout");
            let seconds = duration(&at, text)?;
            let t = Duration::from_secs_f64(seconds);
            if !(Duration::from_secs(1)..=MAX_HOOK_TIMEOUT).contains(&t) {
                return Err(invalid(
                    at,
                    format!(
                        "{text:?} is outside 1s to 15m; one attempt must end in that time (a longer test can answer at once and report through the judge's metrics)"
                    ),
                ));
            }
            t
        }
        None => DEFAULT_HOOK_TIMEOUT,
    };
    let retries = w.retries.unwrap_or(DEFAULT_HOOK_RETRIES);
    if retries > MAX_HOOK_RETRIES {
        return Err(invalid(
            format!("{field}.retries"),
            format!("is {retries}; at most {MAX_HOOK_RETRIES} further attempts"),
        ));
    }
    if w.headers.len() > MAX_HOOK_HEADERS {
        return Err(invalid(
            format!("{field}.headers"),
            format!(
                "has {} headers; at most {MAX_HOOK_HEADERS}",
                w.headers.len()
            ),
        ));
    }
    let mut headers = Vec::new();
    for (i, h) in w.headers.iter().enumerate() {
        let at = format!("{field}.headers[{i}]");
        if http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
            return Err(invalid(
                format!("{at}.name"),
                format!("{:?} is not an HTTP header name", h.name),
            ));
        }
        if [
            "content-type",
            "content-length",
            "host",
            "transfer-encoding",
        ]
        .contains(&h.name.to_ascii_lowercase().as_str())
        {
            return Err(invalid(
                format!("{at}.name"),
                format!(
                    "{} is set by canary-gate (the body is JSON); remove it",
                    h.name
                ),
            ));
        }
        if http::HeaderValue::from_str(&h.value).is_err() {
            return Err(invalid(
                format!("{at}.value"),
                "is not a valid header value (no line breaks or control characters)",
            ));
        }
        headers.push((h.name.clone(), h.value.clone()));
    }
    let on_failure = match (kind, w.on_failure) {
        (HookKind::PostPromotion, Some(_)) => {
            return Err(invalid(
                format!("{field}.onFailure"),
                "a post-promotion webhook only reports (the promotion is complete); remove onFailure, or make it a prePromotion webhook to gate the promotion",
            ));
        }
        (_, Some(HookFailurePolicy::Pause)) => OnFailure::Pause,
        _ => OnFailure::Rollback,
    };
    Ok((
        HookDef {
            kind,
            name,
            url,
            host,
            timeout,
            retries,
            headers,
            metadata: w.metadata.clone(),
        },
        on_failure,
    ))
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
    let mut step_hooks = Vec::new();
    let mut hooks = Vec::new();
    // A setWeight not followed by a pause becomes a step of its own with no pause.
    let mut pending: Option<i32> = None;
    for (i, step) in canary.steps.iter().enumerate() {
        let at = |f: &str| format!("spec.strategy.canary.steps[{i}]{f}");
        let set = [
            step.set_weight.is_some(),
            step.pause.is_some(),
            step.analysis.is_some(),
            step.webhook.is_some(),
        ];
        match set.iter().filter(|x| **x).count() {
            1 => {}
            0 => {
                return Err(invalid(
                    at(""),
                    "is empty: set exactly one of setWeight, pause, analysis or webhook (the API server drops a field it does not know, so a misspelt one such as `setWieght` arrives as an empty step; `kubectl apply` names it)",
                ));
            }
            _ => {
                return Err(invalid(
                    at(""),
                    "set exactly one of setWeight, pause, analysis or webhook",
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
                step_hooks.push(None);
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
            step_hooks.push(None);
        }
        if let Some(w) = &step.webhook {
            // A step at the current weight (a setWeight just before is this step's weight),
            // complete once the webhook passed.
            let (def, on_failure) =
                webhook(&at(".webhook"), w, HookKind::Step, format!("step-{i}"))?;
            pending = None;
            steps.push(Step {
                weight: f64::from(weight),
                pause: 0.0,
            });
            step_analysis.push(current_analysis);
            step_hooks.push(Some(def.spec(on_failure)));
            hooks.push(def);
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
        step_hooks.push(None);
    }
    if steps.is_empty() {
        return Err(invalid(
            "spec.strategy.canary.steps",
            "has no setWeight, pause or webhook step; e.g. setWeight: 5, pause: {duration: 5m}, setWeight: 50, pause: {duration: 10m}",
        ));
    }
    let plan =
        StepPlan::new(steps).map_err(|e| invalid("spec.strategy.canary.steps", e.to_string()))?;
    let scale_down_delay = match &canary.scale_down_delay {
        Some(d) => duration("spec.strategy.canary.scaleDownDelay", d)?,
        None => DEFAULT_SCALE_DOWN_DELAY,
    };
    let mut lifecycle = Spec {
        scale_down_delay,
        ..Spec::canary(target, plan)
    };
    lifecycle.hooks.steps = step_hooks;
    Ok(ValidatedRollout {
        target: target.to_string(),
        lifecycle,
        step_analysis,
        analyses,
        background,
        replicas: None,
        power_check: super::power::goal(canary)?,
        hooks,
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
                "spec.strategy.canary.steps[3]: is empty: set exactly one of setWeight, pause, analysis or webhook (the API server drops a field it does not know, so a misspelt one such as `setWieght`",
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

    const HOOKED: &str = r#"
targetRef: {name: web}
strategy:
  canary:
    steps:
      - setWeight: 20
      - webhook: {name: load, url: "http://loadtest.shop.svc:8080/run?token=abc", timeout: 2m, retries: 0,
                  headers: [{name: Authorization, value: Bearer x}], metadata: {cmd: hey}, onFailure: Pause}
      - pause: {duration: 5m}
      - webhook: {url: "https://smoke.example.com/check"}
hooks:
  prePromotion: [{name: smoke, url: "http://smoke.shop.svc/"}]
  postPromotion: [{url: "http://tracker.shop.svc:9000/deployed"}]
"#;

    #[test]
    fn webhook_steps_and_promotion_webhooks_become_the_lifecycles_gates() {
        let v = validate(&spec(HOOKED)).unwrap();
        let steps: Vec<(f64, f64)> = v
            .lifecycle
            .plan
            .steps()
            .iter()
            .map(|s| (s.weight, s.pause))
            .collect();
        // The setWeight just before a webhook is that webhook step's weight.
        assert_eq!(steps, [(20.0, 0.0), (20.0, 300.0), (20.0, 0.0)]);
        let hooks = &v.lifecycle.hooks;
        let names: Vec<Option<(&str, &str, OnFailure)>> = hooks
            .steps
            .iter()
            .map(|h| {
                h.as_ref()
                    .map(|h| (h.name.as_str(), h.host.as_str(), h.on_failure))
            })
            .collect();
        assert_eq!(
            names,
            [
                Some(("load", "loadtest.shop.svc:8080", OnFailure::Pause)),
                None,
                Some(("step-3", "smoke.example.com", OnFailure::Rollback))
            ]
        );
        assert_eq!(hooks.pre_promotion[0].name, "smoke");
        assert_eq!(hooks.post_promotion[0].name, "post-promotion-0");
        let load = v.hook(HookKind::Step, "load").unwrap();
        assert_eq!((load.timeout, load.retries), (Duration::from_secs(120), 0));
        assert_eq!(load.headers, [("Authorization".into(), "Bearer x".into())]);
        assert_eq!(load.metadata["cmd"], "hey");
        let default = v.hook(HookKind::Step, "step-3").unwrap();
        assert_eq!(
            (default.timeout, default.retries),
            (DEFAULT_HOOK_TIMEOUT, DEFAULT_HOOK_RETRIES)
        );
        assert_eq!(v.hooks.len(), 4);
    }

    #[test]
    fn webhook_errors_name_the_field_and_the_fix() {
        let cases = [
            (
                HOOKED.replace(
                    "https://smoke.example.com/check",
                    "ftp://smoke.example.com/",
                ),
                "spec.strategy.canary.steps[3].webhook.url: has the scheme \"ftp\"; a webhook is called over http:// or https://",
            ),
            (
                HOOKED.replace("https://smoke.example.com/check", "smoke"),
                "spec.strategy.canary.steps[3].webhook.url: is not a URL (relative URL without a base); write e.g. http://",
            ),
            (
                HOOKED.replace(
                    "https://smoke.example.com",
                    "https://me:pw@smoke.example.com",
                ),
                "spec.strategy.canary.steps[3].webhook.url: carries a user or password; send credentials in a header",
            ),
            (
                HOOKED.replace("timeout: 2m", "timeout: 1h"),
                "spec.strategy.canary.steps[1].webhook.timeout: \"1h\" is outside 1s to 15m",
            ),
            (
                HOOKED.replace("timeout: 2m", "timeout: 500ms"),
                "spec.strategy.canary.steps[1].webhook.timeout: \"500ms\" is outside 1s to 15m",
            ),
            (
                HOOKED.replace("timeout: 2m", "timeout: soon"),
                "spec.strategy.canary.steps[1].webhook.timeout: \"soon\" is not a duration",
            ),
            (
                HOOKED.replace("retries: 0", "retries: 11"),
                "spec.strategy.canary.steps[1].webhook.retries: is 11; at most 10",
            ),
            (
                HOOKED.replace("name: Authorization", "name: Content-Type"),
                "spec.strategy.canary.steps[1].webhook.headers[0].name: Content-Type is set by canary-gate",
            ),
            (
                HOOKED.replace("name: Authorization", "name: \"bad header\""),
                "spec.strategy.canary.steps[1].webhook.headers[0].name: \"bad header\" is not an HTTP header name",
            ),
            (
                HOOKED.replace("name: load", "name: smoke"),
                "spec.hooks.prePromotion[0].name: the webhook name \"smoke\" is used twice",
            ),
            (
                HOOKED.replace("name: load", "name: \"load test\""),
                "spec.strategy.canary.steps[1].webhook.name: \"load test\" is not a webhook name",
            ),
            (
                HOOKED.replace(
                    "postPromotion: [{url:",
                    "postPromotion: [{onFailure: Rollback, url:",
                ),
                "spec.hooks.postPromotion[0].onFailure: a post-promotion webhook only reports",
            ),
            (
                HOOKED.replace(
                    "      - pause: {duration: 5m}\n",
                    "      - {pause: {duration: 5m}, webhook: {url: \"http://x/\"}}\n",
                ),
                "spec.strategy.canary.steps[2]: set exactly one of setWeight, pause, analysis or webhook",
            ),
        ];
        for (yaml, expected) in cases {
            let err = validate(&spec(&yaml)).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}\n  expected: {expected}");
        }
        let many: String = (0..11)
            .map(|i| format!("{{name: p{i}, url: \"http://x/\"}}, "))
            .collect();
        let err = validate(&spec(
            &HOOKED.replace("prePromotion: [", &format!("prePromotion: [{many}")),
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("spec.hooks.prePromotion: has 12 webhooks; at most 10"),
            "{err}"
        );
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
