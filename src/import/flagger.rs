//! Flagger's manifests as canary-gate's: a `Canary` becomes a Rollout of the same Deployment
//! (stepWeight / stepWeights up to maxWeight as canary steps of one analysis interval each;
//! iterations with `match` as an A/B step; iterations alone as blue-green), with the Services and
//! routing objects Flagger used to generate for it (`<service>`, `<service>-primary`,
//! `<service>-canary`; an Istio VirtualService and DestinationRule, or a Gateway API HTTPRoute),
//! and its metrics — the builtin request-success-rate / request-duration for Istio and NGINX,
//! and Prometheus `MetricTemplate`s by `templateRef` — as one canary-gate template of threshold
//! gates ([`super::gates`]) named after the Canary; its webhooks as canary-gate's where the
//! meaning carries over ([`super::webhooks`]). Alerts and everything else without an
//! equivalent are reported.
//!
//! Names after migration: the Rollout is named as the Canary; canary-gate runs the canary as the
//! Deployment `<name>-canary` and the stable version as `<name>-stable`. In MetricTemplate
//! queries `{{ target }}` (Flagger's canary workload) becomes the argument `target` with the
//! value `<name>-canary`, and `{{ target }}-canary` / `{{ target }}-primary` (Flagger's Services)
//! the arguments `canary_service` / `primary_service`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::crd::rollout::{
    AnalysisArg, BlueGreenStrategy, CanaryStep, CanaryStrategy, DeadlinePolicy, GatewayApiRouting,
    IstioRouting, NginxRouting, NotificationEvent, NotificationRef, PauseStep, RolloutAnalysis,
    RolloutHooks, RolloutSpec, RouteMatch, Strategy, TargetRef, TemplateRef, TrafficRouting,
};
use crate::template::spec::{AnalysisTemplateSpec, ArgSpec, MetricSpec};
use crate::traffic::VERSION_LABEL as POD_VERSION;

use super::condition::Limits;
use super::fields::{Doc, FieldPath};
use super::gates::{self, VERSION_LABEL};
use super::report::Report;
use super::{Output, lint_template, metadata, template_object};

mod metrics;
use metrics::metrics_template;

/// Imports Flagger objects; other objects pass through.
pub fn import(docs: &[Doc], report: &mut Report) -> Vec<Output> {
    let mut out = Vec::new();
    let mut used_templates = BTreeSet::new();
    for doc in docs.iter().filter(|d| is_flagger(d)) {
        match doc.kind.as_str() {
            "Canary" => out.extend(canary(doc, docs, &mut used_templates, report)),
            "MetricTemplate" => {}
            "AlertProvider" => {
                let kind = match doc.str("spec.type").unwrap_or_default() {
                    "slack" => "slack",
                    "msteams" => "teams",
                    _ => "webhook",
                };
                report.left_out(
                    doc,
                    "",
                    format!(
                        "alert providers are the controller's notification sinks in canary-gate: add a sink named {:?} of kind {kind} (its URL is this provider's address or Secret) to the file --notifications-config reads",
                        doc.name
                    ),
                );
            }
            _ => report.left_out(doc, "", "not a kind canary-gate imports"),
        }
    }
    for doc in docs
        .iter()
        .filter(|d| is_flagger(d) && d.kind == "MetricTemplate")
    {
        if !used_templates.contains(&doc.origin) {
            report.left_out(
                doc,
                "",
                "no Canary among the inputs refers to it: its limits live in a Canary's metrics, so alone it has no canary-gate equivalent (import it with the Canary)",
            );
        }
    }
    let mut passed = Vec::new();
    for doc in docs.iter().filter(|d| !is_flagger(d)) {
        doc.mapped("");
        passed.push(Output {
            comment: vec![format!("{} (passed through)", doc.origin)],
            object: doc.value.clone(),
        });
    }
    passed.extend(out);
    passed
}

fn is_flagger(doc: &Doc) -> bool {
    super::is_peers(doc, super::Peer::Flagger)
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn float(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// What a Canary's routing provider becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Router {
    Istio,
    GatewayApi,
    Nginx,
    None,
}

fn seconds_of(text: &str) -> Option<u64> {
    humantime::parse_duration(text).ok().map(|d| d.as_secs())
}

fn canary(
    doc: &Doc,
    docs: &[Doc],
    used_templates: &mut BTreeSet<String>,
    report: &mut Report,
) -> Vec<Output> {
    let mut out = Vec::new();
    let meta = metadata(doc, report, |_, _| true);
    let ns = doc.namespace.clone();
    let name = doc.name.clone();
    // The target.
    let kind = doc.str("spec.targetRef.kind").unwrap_or("Deployment");
    let api = doc.str("spec.targetRef.apiVersion").unwrap_or("apps/v1");
    let Some(target) = doc.str("spec.targetRef.name").map(str::to_string) else {
        report.left_out(doc, "spec", "no targetRef.name: nothing to roll out");
        return out;
    };
    if kind != "Deployment" || api != "apps/v1" {
        report.left_out(
            doc,
            "",
            format!("the target is a {api} {kind}: canary-gate rolls out apps/v1 Deployments only, so nothing of this Canary is written"),
        );
        return out;
    }
    doc.mapped("spec.targetRef");
    // The pods' labels: the target Deployment's selector when it is among the inputs.
    let selector: Map<String, Value> = match docs
        .iter()
        .find(|d| d.kind == "Deployment" && d.name == target && d.namespace == ns)
    {
        Some(d) => d
            .get("spec.selector.matchLabels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        None => {
            report.changed(
                doc,
                "spec.targetRef.name",
                format!("the Deployment {target} is not among the inputs: the generated Services select app: {target} (Flagger's default selector label); change them if its pods are labelled otherwise"),
            );
            let mut m = Map::new();
            m.insert("app".into(), Value::String(target.clone()));
            m
        }
    };
    // The provider and its router.
    let provider = doc.str("spec.provider").unwrap_or_default().to_string();
    let router = match provider.split(':').next().unwrap_or_default() {
        "istio" => Router::Istio,
        "gatewayapi" => Router::GatewayApi,
        "nginx" => Router::Nginx,
        _ => Router::None,
    };
    match (router, provider.as_str()) {
        (Router::None, "") => report.left_out(
            doc,
            "spec.provider",
            "not set: Flagger used its installation's -mesh-provider; the split is canary-gate's replica ratio — set trafficRouting if your mesh is Istio, Gateway API or NGINX",
        ),
        (Router::None, "kubernetes") => doc.mapped("spec.provider"),
        (Router::None, p) => report.left_out(
            doc,
            "spec.provider",
            format!(
                "canary-gate has no {p} router (it has Gateway API — which Linkerd and many ingresses read —, Istio, NGINX Ingress and the replica ratio); the split falls back to the replica ratio"
            ),
        ),
        _ => doc.mapped("spec.provider"),
    }
    // The analysis (or the deprecated canaryAnalysis).
    let a = if doc.get("spec.analysis").is_some() {
        FieldPath::parse("spec.analysis")
    } else {
        FieldPath::parse("spec.canaryAnalysis")
    };
    let interval_text = doc
        .at(&a.key("interval"))
        .and_then(Value::as_str)
        .unwrap_or("1m")
        .to_string();
    let interval = seconds_of(&interval_text).unwrap_or(60).max(1);
    doc.mapped(a.key("interval"));
    let iterations = int(doc.at(&a.key("iterations")));
    let has_match = doc.len(&a.key("match")) > 0;
    // Services.
    let svc = doc.str("spec.service.name").unwrap_or(&target).to_string();
    doc.mapped("spec.service.name");
    let port = int(doc.get("spec.service.port")).unwrap_or(80);
    doc.mapped("spec.service.port");
    let mut port_spec = json!({"name": doc.str("spec.service.portName").unwrap_or("http"), "port": port,
        "targetPort": doc.get("spec.service.targetPort").cloned().unwrap_or(json!(port))});
    for f in ["portName", "targetPort"] {
        doc.mapped(format!("spec.service.{f}").as_str());
    }
    if let Some(p) = doc.str("spec.service.appProtocol") {
        port_spec["appProtocol"] = json!(p);
        doc.mapped("spec.service.appProtocol");
    }
    if doc.get("spec.service.portDiscovery").is_some() {
        report.changed(
            doc,
            "spec.service.portDiscovery",
            "the generated Services expose the one port given; add the others to them by hand",
        );
    }
    let blue_green = iterations.is_some() && !has_match;
    let service = |suffix: &str, version: Option<&str>, role: &str| {
        let mut sel = selector.clone();
        if let Some(v) = version {
            sel.insert(POD_VERSION.into(), json!(v));
        }
        let mut m = Map::new();
        m.insert("name".into(), json!(format!("{svc}{suffix}")));
        if let Some(n) = &ns {
            m.insert("namespace".into(), json!(n));
        }
        let custom = FieldPath::parse("spec.service").key(role);
        for f in ["labels", "annotations"] {
            if let Some(v) = doc.at(&custom.key(f)) {
                m.insert(f.into(), v.clone());
                doc.mapped(custom.key(f));
            }
        }
        Output {
            comment: vec![format!(
                "{}: the Service {svc}{suffix} Flagger generated for {name}{}",
                doc.origin,
                version
                    .map(|v| format!(", selecting the {v} version"))
                    .unwrap_or_default()
            )],
            object: json!({"apiVersion": "v1", "kind": "Service", "metadata": m,
                "spec": {"selector": sel, "ports": [port_spec.clone()]}}),
        }
    };
    if blue_green {
        // canary-gate switches the active and preview Services' revision key.
        out.push(service("", None, "apex"));
        out.push(service("-canary", None, "canary"));
    } else {
        let apex_version = (router == Router::Nginx).then_some("stable");
        out.push(service("", apex_version, "apex"));
        out.push(service("-primary", Some("stable"), "primary"));
        out.push(service("-canary", Some("canary"), "canary"));
    }
    // Routing objects and the Rollout's trafficRouting.
    let mut routing = TrafficRouting::default();
    if !blue_green {
        match router {
            Router::Istio => {
                out.extend(istio_objects(doc, &svc, ns.as_deref(), port, has_match));
                routing.istio = Some(IstioRouting {
                    virtual_service: svc.clone(),
                    destination_rule: svc.clone(),
                });
            }
            Router::GatewayApi => {
                out.push(http_route(doc, &svc, ns.as_deref(), port, report));
                routing.gateway_api = Some(GatewayApiRouting {
                    http_route: svc.clone(),
                    stable_service: format!("{svc}-primary"),
                    canary_service: format!("{svc}-canary"),
                });
            }
            Router::Nginx => match doc.str("spec.ingressRef.name") {
                Some(ing) => {
                    doc.mapped("spec.ingressRef");
                    routing.nginx = Some(NginxRouting {
                        stable_ingress: ing.to_string(),
                        stable_service: svc.clone(),
                        canary_service: format!("{svc}-canary"),
                    });
                    report.changed(doc, "spec.ingressRef", format!("canary-gate creates the canary Ingress as {ing}-canary; the Service {svc} now selects the stable version only"));
                }
                None => report.left_out(doc, "spec.provider", "nginx without ingressRef: canary-gate's NGINX router needs the stable Ingress; the split falls back to the replica ratio"),
            },
            Router::None => {}
        }
    } else if router != Router::None {
        report.changed(
            doc,
            "spec.provider",
            "iterations without match is blue-green: canary-gate switches the Service's selector, so the mesh's routing is not written",
        );
    }
    for f in [
        "gateways",
        "hosts",
        "match",
        "rewrite",
        "timeout",
        "retries",
        "headers",
        "corsPolicy",
        "trafficPolicy",
        "gatewayRefs",
    ] {
        let p = FieldPath::parse("spec.service").key(f);
        if doc.at(&p).is_some() && doc.mark_of(&p).is_none() {
            report.left_out(doc, p, "used only by the routing objects of Flagger's provider, which canary-gate does not write here");
        }
    }
    // Matches (A/B).
    let matches = ab_matches(doc, &a.key("match"), provider.starts_with("nginx"), report);
    let routed =
        routing.istio.is_some() || routing.gateway_api.is_some() || routing.nginx.is_some();
    if !matches.is_empty() {
        if routed {
            routing.matches = matches;
        } else {
            report.left_out(
                doc,
                a.key("match"),
                "matching requests needs a router canary-gate has",
            );
        }
    }
    // Steps.
    let pause = format!("{interval}s");
    let mut strategy = CanaryStrategy::default();
    let mut bg: Option<BlueGreenStrategy> = None;
    let threshold = int(doc.at(&a.key("threshold")));
    if let Some(n) = iterations {
        doc.mapped(a.key("iterations"));
        let total = format!("{}s", interval * u64::try_from(n.max(1)).unwrap_or(1));
        if blue_green {
            bg = Some(BlueGreenStrategy {
                active_service: svc.clone(),
                preview_service: Some(format!("{svc}-canary")),
                ..BlueGreenStrategy::default()
            });
            report.changed(doc, a.key("iterations"), format!("blue-green: canary-gate switches {svc} to the new version once the analysis of the preview ({svc}-canary) passes, rather than after {n} iterations of {interval_text}"));
        } else {
            strategy.steps = vec![
                CanaryStep {
                    set_weight: Some(0),
                    ..CanaryStep::default()
                },
                CanaryStep {
                    pause: Some(PauseStep {
                        duration: Some(total.clone()),
                    }),
                    ..CanaryStep::default()
                },
            ];
            report.changed(
                doc,
                a.key("iterations"),
                format!(
                    "A/B: one step at weight 0 with the matches for {total} ({n} × {interval_text})"
                ),
            );
        }
    } else {
        let weights: Vec<i64> = if doc.len(&a.key("stepWeights")) > 0 {
            doc.mapped(a.key("stepWeights"));
            (0..doc.len(&a.key("stepWeights")))
                .filter_map(|i| int(doc.at(&a.key("stepWeights").index(i))))
                .collect()
        } else {
            let step = int(doc.at(&a.key("stepWeight"))).unwrap_or(10).max(1);
            let max = int(doc.at(&a.key("maxWeight"))).unwrap_or(50).clamp(1, 100);
            doc.mapped(a.key("stepWeight"));
            doc.mapped(a.key("maxWeight"));
            (1..).map(|k| k * step).take_while(|w| *w <= max).collect()
        };
        if doc.len(&a.key("stepWeights")) > 0 && doc.at(&a.key("maxWeight")).is_some() {
            doc.mapped(a.key("maxWeight"));
        }
        for w in &weights {
            strategy.steps.push(CanaryStep {
                set_weight: i32::try_from(*w).ok(),
                ..CanaryStep::default()
            });
            strategy.steps.push(CanaryStep {
                pause: Some(PauseStep {
                    duration: Some(pause.clone()),
                }),
                ..CanaryStep::default()
            });
        }
        report.changed(
            doc,
            a.key("interval"),
            format!("each weight ({}) is a step of {interval_text}; it advances once the judge's evidence passes, holds while it is inconclusive, and the last one promotes", weights.iter().map(|w| format!("{w}%")).collect::<Vec<_>>().join(", ")),
        );
    }
    if threshold.is_some() {
        report.changed(doc, a.key("threshold"), "the sequential judge decides when the evidence of a breach suffices, instead of counting failed checks; value gates fail after this many consecutive intervals outside their limits");
    }
    for (f, why) in [
        (
            "stepWeightPromotion",
            "canary-gate promotes in one move once the canary has every pod",
        ),
        ("mirror", "canary-gate does not mirror traffic"),
        ("mirrorWeight", "canary-gate does not mirror traffic"),
        (
            "sessionAffinity",
            "canary-gate has no session affinity for the canary",
        ),
        (
            "primaryReadyThreshold",
            "canary-gate waits for every pod a step needs",
        ),
        (
            "canaryReadyThreshold",
            "canary-gate waits for every pod a step needs",
        ),
    ] {
        if doc.at(&a.key(f)).is_some() {
            report.left_out(doc, a.key(f), why);
        }
    }
    // Webhooks.
    let hooks = super::webhooks::import(doc, &a.key("webhooks"), threshold, blue_green, report);
    hooks.place(&mut strategy.steps);
    // Metrics.
    let template = metrics_template(
        doc,
        &a,
        docs,
        &name,
        ns.as_deref(),
        &svc,
        router,
        u32::try_from(threshold.unwrap_or(1).max(1)).unwrap_or(1),
        used_templates,
        report,
    );
    let analysis = template.as_ref().map(|(t, args)| RolloutAnalysis {
        templates: vec![TemplateRef {
            template_name: t.name().to_string(),
            cluster_scope: false,
        }],
        args: args.clone(),
    });
    // Other fields of the spec.
    let mut spec = RolloutSpec {
        target_ref: TargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: target.clone(),
        },
        strategy: Strategy::default(),
        traffic_routing: routed.then_some(routing),
        replicas: None,
        progress_deadline: None,
        on_progress_deadline: None,
        notifications: Vec::new(),
        hooks: None,
    };
    spec.notifications = alerts(doc, report);
    if !hooks.pre_promotion.is_empty() || !hooks.post_promotion.is_empty() {
        spec.hooks = Some(RolloutHooks {
            pre_promotion: hooks.pre_promotion.clone(),
            post_promotion: hooks.post_promotion.clone(),
        });
    }
    if let Some(s) = int(doc.get("spec.progressDeadlineSeconds")) {
        spec.progress_deadline = Some(format!("{s}s"));
        spec.on_progress_deadline = Some(DeadlinePolicy::Rollback);
        doc.mapped("spec.progressDeadlineSeconds");
    }
    if doc.get("spec.autoscalerRef").is_some() {
        let hpa = doc.str("spec.autoscalerRef.name").unwrap_or_default();
        report.left_out(
            doc,
            "spec.autoscalerRef",
            format!("canary-gate's Rollout has a scale subresource: point {hpa}'s scaleTargetRef at it (apiVersion: canarygate.dev/v1alpha1, kind: Rollout, name: {name}); the total it sets is split between the versions by the weight"),
        );
    }
    for (f, why, left_if_true) in [
        (
            "skipAnalysis",
            "canary-gate has no skip; remove the analysis to promote without judging",
            true,
        ),
        (
            "suspend",
            "canary-gate has no suspended Rollout; `canary-gate abort` stops a rollout",
            true,
        ),
        ("revertOnDeletion", "", false),
    ] {
        let p = FieldPath::parse("spec").key(f);
        match doc.at(&p) {
            Some(Value::Bool(true)) if left_if_true => report.left_out(doc, p, why),
            Some(_) if f == "revertOnDeletion" => report.changed(doc, p, "canary-gate always gives your Deployment its pods back when the Rollout is deleted"),
            Some(_) => doc.mapped(p),
            None => {}
        }
    }
    if doc.get("spec.metricsServer").is_some() {
        report.changed(
            doc,
            "spec.metricsServer",
            "canary-gate reads the Prometheus given to the controller (--prometheus URL)",
        );
    }
    for (f, why) in [
        ("spec.routeRef", "canary-gate has no APISIX router"),
        ("spec.upstreamRef", "canary-gate has no Gloo router"),
        (
            "spec.ingressRef",
            "used only by Flagger's NGINX and Skipper providers",
        ),
    ] {
        if doc.get(f).is_some() && doc.mark_of(&FieldPath::parse(f)).is_none() {
            report.left_out(doc, f, why);
        }
    }
    match bg {
        Some(mut b) => {
            b.pre_promotion_analysis = analysis;
            spec.strategy.blue_green = Some(b);
        }
        None => {
            strategy.analysis = analysis;
            spec.strategy.canary = Some(strategy);
        }
    }
    report.suggested(
        doc,
        "",
        format!(
            "delete this Canary before applying the output: Flagger owns the Services {svc}, {svc}-primary, {svc}-canary and its routing objects, which go with the Canary; then apply, and canary-gate adopts the Deployment {target}"
        ),
    );
    if let Some((t, _)) = template {
        out.push(t);
    }
    if let Err(e) = crate::controller::validate::validate(&spec) {
        report.left_out(doc, "", format!("the imported Rollout does not pass canary-gate's validation, so it is not written: {e}"));
        return out;
    }
    let mut rollout_meta = Map::new();
    for f in ["name", "namespace", "labels", "annotations"] {
        if let Some(v) = meta.get(f) {
            rollout_meta.insert(f.into(), v.clone());
        }
    }
    out.push(Output {
        comment: vec![format!("{}: the Rollout of {target}", doc.origin)],
        object: json!({"apiVersion": crate::template::API_VERSION, "kind": "Rollout", "metadata": rollout_meta,
            "spec": serde_json::to_value(&spec).unwrap_or(Value::Null)}),
    });
    out
}

/// Flagger's A/B matches that canary-gate can express: an exact header, a cookie (Flagger's
/// `cookie` header regex `^(.*?;)?(NAME=VALUE)(;.*)?$`, or NGINX's cookie name).
fn ab_matches(doc: &Doc, at: &FieldPath, nginx: bool, report: &mut Report) -> Vec<RouteMatch> {
    let mut out = Vec::new();
    let cookie_re =
        regex::Regex::new(r"^\^\(\.\*\?;\)\?\(([A-Za-z0-9_.-]+)=([^;()]+)\)\(;\.\*\)\?\$$").ok();
    for i in 0..doc.len(at) {
        let m = at.index(i);
        let keys = doc.keys(&m);
        let headers = doc.keys(&m.key("headers"));
        if keys != ["headers"] || headers.len() != 1 {
            report.left_out(doc, &m, "canary-gate matches one header or cookie per match (no URIs, several headers or source labels)");
            continue;
        }
        let h = &headers[0];
        let v = m.key("headers").key(h);
        let exact = doc.at(&v.key("exact")).and_then(Value::as_str);
        let regex = doc.at(&v.key("regex")).and_then(Value::as_str);
        let found = if h.eq_ignore_ascii_case("cookie") {
            match (exact, regex) {
                (Some(name), None) if nginx => Some(RouteMatch {
                    header: None,
                    cookie: Some(name.into()),
                    value: "always".into(),
                }),
                (None, Some(re)) => {
                    cookie_re
                        .as_ref()
                        .and_then(|c| c.captures(re))
                        .map(|c| RouteMatch {
                            header: None,
                            cookie: Some(c[1].to_string()),
                            value: c[2].to_string(),
                        })
                }
                _ => None,
            }
        } else {
            exact.map(|e| RouteMatch {
                header: Some(h.clone()),
                cookie: None,
                value: e.into(),
            })
        };
        match found {
            Some(r) => {
                doc.mapped(&m);
                out.push(r);
            }
            None => report.left_out(doc, &m, "canary-gate matches a header's exact value or a cookie's exact value, not a regular expression or prefix"),
        }
    }
    out
}

fn istio_objects(doc: &Doc, svc: &str, ns: Option<&str>, port: i64, _ab: bool) -> Vec<Output> {
    let s = FieldPath::parse("spec.service");
    let mut hosts = vec![json!(svc)];
    if let Some(h) = doc.at(&s.key("hosts")).and_then(Value::as_array) {
        hosts.extend(h.iter().cloned());
        doc.mapped(s.key("hosts"));
    }
    let mut route = Map::new();
    route.insert("name".into(), json!("primary"));
    for f in [
        "match",
        "rewrite",
        "timeout",
        "retries",
        "headers",
        "corsPolicy",
    ] {
        if let Some(v) = doc.at(&s.key(f)) {
            route.insert(f.into(), v.clone());
            doc.mapped(s.key(f));
        }
    }
    route.insert("route".into(), json!([
        {"destination": {"host": svc, "subset": "stable", "port": {"number": port}}, "weight": 100},
        {"destination": {"host": svc, "subset": "canary", "port": {"number": port}}, "weight": 0}
    ]));
    let mut vs_spec = Map::new();
    vs_spec.insert("hosts".into(), Value::Array(hosts));
    if let Some(g) = doc.at(&s.key("gateways")) {
        vs_spec.insert("gateways".into(), g.clone());
        doc.mapped(s.key("gateways"));
    }
    vs_spec.insert("http".into(), json!([route]));
    let mut dr_spec = Map::new();
    dr_spec.insert("host".into(), json!(svc));
    if let Some(t) = doc.at(&s.key("trafficPolicy")) {
        dr_spec.insert("trafficPolicy".into(), t.clone());
        doc.mapped(s.key("trafficPolicy"));
    }
    dr_spec.insert(
        "subsets".into(),
        json!([
            {"name": "stable", "labels": {POD_VERSION: "stable"}},
            {"name": "canary", "labels": {POD_VERSION: "canary"}}
        ]),
    );
    let meta = |name: &str| {
        let mut m = Map::new();
        m.insert("name".into(), json!(name));
        if let Some(n) = ns {
            m.insert("namespace".into(), json!(n));
        }
        Value::Object(m)
    };
    vec![
        Output {
            comment: vec![format!(
                "{}: the Istio VirtualService Flagger generated, routing to the stable and canary subsets",
                doc.origin
            )],
            object: json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": meta(svc), "spec": vs_spec}),
        },
        Output {
            comment: vec![format!(
                "{}: the Istio DestinationRule with the subsets canary-gate weights",
                doc.origin
            )],
            object: json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule", "metadata": meta(svc), "spec": dr_spec}),
        },
    ]
}

fn http_route(doc: &Doc, svc: &str, ns: Option<&str>, port: i64, report: &mut Report) -> Output {
    let s = FieldPath::parse("spec.service");
    let mut spec = Map::new();
    if let Some(p) = doc.at(&s.key("gatewayRefs")) {
        spec.insert("parentRefs".into(), p.clone());
        doc.mapped(s.key("gatewayRefs"));
    }
    if let Some(h) = doc.at(&s.key("hosts")) {
        spec.insert("hostnames".into(), h.clone());
        doc.mapped(s.key("hosts"));
    }
    if doc.at(&s.key("timeout")).is_some() {
        report.left_out(
            doc,
            s.key("timeout"),
            "add the timeout to the HTTPRoute's rule by hand (timeouts.request)",
        );
    }
    spec.insert(
        "rules".into(),
        json!([{ "backendRefs": [
            {"name": format!("{svc}-primary"), "port": port, "weight": 100},
            {"name": format!("{svc}-canary"), "port": port, "weight": 0}
        ]}]),
    );
    let mut m = Map::new();
    m.insert("name".into(), json!(svc));
    if let Some(n) = ns {
        m.insert("namespace".into(), json!(n));
    }
    Output {
        comment: vec![format!(
            "{}: the Gateway API HTTPRoute Flagger generated, weighting {svc}-primary and {svc}-canary",
            doc.origin
        )],
        object: json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": m, "spec": spec}),
    }
}

/// Flagger's `analysis.alerts` as `spec.notifications`: each provider becomes the sink of the
/// same name (which the cluster's operator defines for the controller), its severity the events
/// it receives.
fn alerts(doc: &Doc, report: &mut Report) -> Vec<NotificationRef> {
    let alerts = FieldPath::parse("spec.analysis.alerts");
    let mut refs = Vec::new();
    for i in 0..doc.len(&alerts) {
        let a = alerts.index(i);
        let Some(sink) = doc
            .at(&a.key("providerRef").key("name"))
            .and_then(Value::as_str)
        else {
            report.left_out(doc, a.clone(), "no providerRef.name: no sink to notify");
            continue;
        };
        use NotificationEvent::*;
        let severity = doc
            .at(&a.key("severity"))
            .and_then(Value::as_str)
            .unwrap_or("info");
        let events = match severity {
            "error" => vec![RolledBack, Aborted],
            "warn" => vec![Held, Paused, RolledBack, Aborted],
            _ => Vec::new(),
        };
        report.changed(
            doc,
            a.clone(),
            format!(
                "a notification to the sink {sink:?} ({}): the cluster's operator defines that sink (slack, teams or webhook) in the controller's --notifications-config file, where its URL lives",
                if events.is_empty() { "every event".to_string() } else { format!("severity {severity}: {}", events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")) }
            ),
        );
        refs.push(NotificationRef {
            sink: sink.to_string(),
            events,
        });
    }
    refs
}
