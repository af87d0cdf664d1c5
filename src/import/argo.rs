//! Argo Rollouts' manifests as canary-gate's: a `Rollout` with an inline pod template becomes a
//! Deployment plus a Rollout whose `targetRef` names it (`workloadRef` becomes `targetRef`);
//! canary steps, blue-green, traffic routers and analysis references map where canary-gate has
//! an equivalent; `AnalysisTemplate` / `ClusterAnalysisTemplate` metrics with the Prometheus
//! provider become threshold gates on the same queries ([`super::gates`]). Everything else is
//! reported with the reason.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::crd::rollout::{
    AnalysisArg, BlueGreenStrategy, CanaryStep, CanaryStrategy, DeadlinePolicy, GatewayApiRouting,
    IstioRouting, NginxRouting, PauseStep, RolloutAnalysis, RolloutSpec, RouteMatch, Strategy,
    TargetRef, TemplateRef, TrafficRouting,
};
use crate::template::spec::{AnalysisTemplateSpec, ArgSpec};

use super::fields::{Doc, FieldPath};
use super::gates::{self, VERSION_LABEL};
use super::report::Report;
use super::{Output, condition, duration, lint_template, metadata, template_object};

mod template;
use template::template;

/// What became of each analysis template in the input: `true` when it was written.
type Templates = BTreeMap<(bool, String), bool>;

/// Imports Argo Rollouts objects; other objects pass through (Services a router needs are
/// adjusted).
pub fn import(docs: &[Doc], report: &mut Report) -> Vec<Output> {
    let mut out = Vec::new();
    let mut templates = Templates::new();
    // Templates first: a Rollout refers to them.
    for doc in docs.iter().filter(|d| is_argo(d)) {
        if matches!(
            doc.kind.as_str(),
            "AnalysisTemplate" | "ClusterAnalysisTemplate"
        ) {
            let cluster = doc.kind == "ClusterAnalysisTemplate";
            let written = template(doc, report);
            templates.insert((cluster, doc.name.clone()), written.is_some());
            out.extend(written);
        }
    }
    let mut services: BTreeMap<(Option<String>, String), (&'static str, usize)> = BTreeMap::new();
    let mut rollouts = Vec::new();
    for (index, doc) in docs.iter().enumerate().filter(|(_, d)| is_argo(d)) {
        match doc.kind.as_str() {
            "Rollout" => {
                let r = rollout(doc, &templates, report);
                for (svc, version) in r.services {
                    services.insert((doc.namespace.clone(), svc), (version, index));
                }
                rollouts.extend(r.objects);
            }
            "AnalysisTemplate" | "ClusterAnalysisTemplate" => {}
            kind => report.left_out(
                doc,
                "",
                match kind {
                    "Experiment" => "canary-gate has no experiments (extra ReplicaSets run beside the rollout); the judge compares the canary with the stable version in the same interval instead",
                    "AnalysisRun" => "an AnalysisRun is a record of one analysis; canary-gate writes its decisions to the Rollout's status",
                    _ => "not a kind canary-gate imports",
                },
            ),
        }
    }
    let mut passed = Vec::new();
    for doc in docs.iter().filter(|d| !is_argo(d)) {
        doc.mapped("");
        let mut object = doc.value.clone();
        let version = (doc.kind == "Service" && doc.str("apiVersion") == Some("v1"))
            .then(|| services.remove(&(doc.namespace.clone(), doc.name.clone())))
            .flatten()
            .map(|(version, _)| version);
        if let Some(version) = version
            && let Some(selector) = object
                .pointer_mut("/spec/selector")
                .and_then(Value::as_object_mut)
        {
            selector.insert(
                crate::traffic::VERSION_LABEL.to_string(),
                Value::String(version.into()),
            );
            report.changed(
                doc,
                "spec.selector",
                format!(
                    "selects {}: {version} as well: canary-gate's router sends traffic to this Service's pods of that version (Argo added rollouts-pod-template-hash itself)",
                    crate::traffic::VERSION_LABEL
                ),
            );
        }
        passed.push(Output {
            comment: vec![format!("{} (passed through)", doc.origin)],
            object,
        });
    }
    for ((ns, svc), (version, index)) in services {
        let at = ns.map(|n| format!(" in namespace {n}")).unwrap_or_default();
        if let Some(doc) = docs.get(index) {
            report.left_out(
                doc,
                "",
                format!(
                    "the Service {svc}{at} is not among the inputs: add `{}: {version}` to its selector (canary-gate's router sends traffic to it)",
                    crate::traffic::VERSION_LABEL
                ),
            );
        }
    }
    out.extend(passed);
    out.extend(rollouts);
    out
}

fn is_argo(doc: &Doc) -> bool {
    super::is_peers(doc, super::Peer::Argo)
}

fn annotation_filter(doc: &Doc) -> impl FnMut(&str, &mut Report) -> bool + '_ {
    move |key: &str, report: &mut Report| {
        let at = FieldPath::parse("metadata.annotations").key(key);
        if key.starts_with("notifications.argoproj.io/") {
            report.left_out(
                doc,
                &at,
                "Argo notifications: canary-gate has no notification subscriptions yet; its Events and Grafana annotations record every move",
            );
            false
        } else if key.starts_with("rollout.argoproj.io/") {
            report.ignored(doc, &at, "set by Argo's controller");
            false
        } else {
            true
        }
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Rollout

struct RolloutOut {
    objects: Vec<Output>,
    /// Services a router needs selecting a version.
    services: Vec<(String, &'static str)>,
}

fn rollout(doc: &Doc, templates: &Templates, report: &mut Report) -> RolloutOut {
    let mut out = RolloutOut {
        objects: Vec::new(),
        services: Vec::new(),
    };
    let meta = metadata(doc, report, annotation_filter(doc));
    let replicas = int(doc.get("spec.replicas"));
    let mut target: Option<String> = None;
    let mut rollout_replicas = None;
    let mut deployment: Option<Map<String, Value>> = None;
    if doc.get("spec.workloadRef").is_some() {
        let kind = doc.str("spec.workloadRef.kind").unwrap_or_default();
        let api = doc.str("spec.workloadRef.apiVersion").unwrap_or("apps/v1");
        if kind == "Deployment" && api == "apps/v1" {
            target = doc.str("spec.workloadRef.name").map(str::to_string);
            for f in ["kind", "apiVersion", "name"] {
                doc.mapped(format!("spec.workloadRef.{f}").as_str());
            }
            if doc.get("spec.workloadRef.scaleDown").is_some() {
                report.changed(doc, "spec.workloadRef.scaleDown", "canary-gate scales your Deployment to 0 itself once <name>-stable has its pods, and gives them back when the Rollout is deleted");
            }
            if replicas.is_some() {
                doc.mapped("spec.replicas");
                rollout_replicas = replicas.and_then(|r| i32::try_from(r).ok());
            }
            for f in ["selector", "minReadySeconds", "revisionHistoryLimit"] {
                if doc.get(&format!("spec.{f}")).is_some() {
                    if f == "selector" {
                        report.ignored(
                            doc,
                            "spec.selector",
                            "the target Deployment's selector is used",
                        );
                    } else {
                        report.left_out(doc, format!("spec.{f}").as_str(), format!("set {f} on the Deployment {}: canary-gate's workloads copy its spec", target.as_deref().unwrap_or_default()));
                    }
                }
            }
        } else {
            report.left_out(
                doc,
                "spec.workloadRef",
                format!("a {api} {kind}: canary-gate rolls out apps/v1 Deployments only"),
            );
        }
    } else if doc.get("spec.template").is_some() {
        target = Some(doc.name.clone());
        let mut spec = Map::new();
        spec.insert("replicas".into(), json!(replicas.unwrap_or(1)));
        if replicas.is_some() {
            doc.mapped("spec.replicas");
        }
        for f in [
            "selector",
            "template",
            "minReadySeconds",
            "revisionHistoryLimit",
        ] {
            if let Some(v) = doc.get(&format!("spec.{f}")) {
                spec.insert(f.into(), v.clone());
                doc.mapped(format!("spec.{f}").as_str());
            }
        }
        let mut d = Map::new();
        for f in ["name", "namespace", "labels"] {
            if let Some(v) = meta.get(f) {
                d.insert(f.into(), v.clone());
            }
        }
        deployment = Some(spec);
        out.objects.push(Output {
            comment: vec![format!(
                "{}: the Rollout's pod template as a Deployment (canary-gate rolls out Deployments)",
                doc.origin
            )],
            object: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": d, "spec": {}}),
        });
    } else {
        report.left_out(
            doc,
            "spec",
            "neither a pod template nor a workloadRef: nothing to roll out",
        );
    }
    let mut spec = RolloutSpec {
        target_ref: TargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: target.clone().unwrap_or_default(),
        },
        strategy: Strategy::default(),
        traffic_routing: None,
        replicas: rollout_replicas,
        progress_deadline: None,
        on_progress_deadline: None,
        notifications: Vec::new(),
        hooks: None,
    };
    let mut rolling: Map<String, Value> = Map::new();
    if doc.get("spec.strategy.canary").is_some() {
        canary(
            doc,
            &mut spec,
            &mut rolling,
            deployment.is_some(),
            templates,
            report,
        );
    } else if doc.get("spec.strategy.blueGreen").is_some() {
        blue_green(doc, &mut spec, templates, report);
    } else {
        report.left_out(doc, "spec.strategy", "no canary or blueGreen strategy");
    }
    if let Some(mut d) = deployment {
        if !rolling.is_empty() {
            d.insert(
                "strategy".into(),
                json!({"type": "RollingUpdate", "rollingUpdate": rolling}),
            );
        }
        if let Some(o) = out.objects.first_mut() {
            o.object["spec"] = Value::Object(d);
        }
    }
    if let Some(s) = int(doc.get("spec.progressDeadlineSeconds")) {
        spec.progress_deadline = Some(format!("{s}s"));
        doc.mapped("spec.progressDeadlineSeconds");
    }
    let abort = doc
        .get("spec.progressDeadlineAbort")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    doc.mapped("spec.progressDeadlineAbort");
    spec.on_progress_deadline = Some(if abort {
        DeadlinePolicy::Rollback
    } else {
        // As Argo without progressDeadlineAbort: the weight stays, a human decides.
        DeadlinePolicy::Pause
    });
    match doc.get("spec.paused") {
        Some(Value::Bool(true)) => report.left_out(doc, "spec.paused", "canary-gate has no paused Rollout; `canary-gate abort` stops a rollout, `promote` goes on"),
        Some(_) => doc.mapped("spec.paused"),
        None => {}
    }
    for (f, why) in [
        (
            "spec.restartAt",
            "canary-gate does not restart pods; `kubectl rollout restart deployment` on the target does it as a new revision",
        ),
        (
            "spec.rollbackWindow",
            "canary-gate has no rollback window; `canary-gate undo` goes back to the stable revision",
        ),
    ] {
        if doc.get(f).is_some() {
            report.left_out(doc, f, why);
        }
    }
    if doc.get("spec.analysis").is_some() {
        report.ignored(doc, "spec.analysis", "AnalysisRun history limits: canary-gate keeps no AnalysisRuns; the last 20 decisions are in the Rollout's status");
    }
    let has_strategy = spec.strategy.canary.is_some() || spec.strategy.blue_green.is_some();
    if target.is_none() || !has_strategy {
        return out;
    }
    if let Err(e) = crate::controller::validate::validate(&spec) {
        report.left_out(doc, "", format!("the imported Rollout does not pass canary-gate's validation, so it is not written: {e}"));
        return out;
    }
    let routing = spec.traffic_routing.as_ref();
    if let Some(g) = routing.and_then(|r| r.gateway_api.as_ref()) {
        out.services.push((g.stable_service.clone(), "stable"));
        out.services.push((g.canary_service.clone(), "canary"));
    }
    if let Some(n) = routing.and_then(|r| r.nginx.as_ref()) {
        out.services.push((n.stable_service.clone(), "stable"));
        out.services.push((n.canary_service.clone(), "canary"));
    }
    let mut rollout_meta = Map::new();
    for f in ["name", "namespace", "labels", "annotations"] {
        if let Some(v) = meta.get(f) {
            rollout_meta.insert(f.into(), v.clone());
        }
    }
    out.objects.push(Output {
        comment: vec![format!("{}: the Rollout", doc.origin)],
        object: json!({
            "apiVersion": crate::template::API_VERSION,
            "kind": "Rollout",
            "metadata": rollout_meta,
            "spec": serde_json::to_value(&spec).unwrap_or(Value::Null),
        }),
    });
    out
}

/// An analysis reference (`templates`, `args`, …) at `at`; `None` when no template of it
/// carried over.
fn analysis(
    doc: &Doc,
    at: &FieldPath,
    templates: &Templates,
    report: &mut Report,
) -> Option<RolloutAnalysis> {
    let mut refs = Vec::new();
    let list = at.key("templates");
    for i in 0..doc.len(&list) {
        let t = list.index(i);
        let name = doc
            .at(&t.key("templateName"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let cluster = doc
            .at(&t.key("clusterScope"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let kind = if cluster {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        };
        match templates.get(&(cluster, name.clone())) {
            Some(true) => doc.mapped(&t),
            Some(false) => {
                report.left_out(doc, &t, format!("{kind} {name} did not carry over (see its entries), so the reference is dropped"));
                continue;
            }
            None => report.left_out(doc, &t, format!("{kind} {name} is not among the inputs: import it too (the reference is kept; until the template exists the step holds with MetricsAvailable=False)")),
        }
        refs.push(TemplateRef {
            template_name: name,
            cluster_scope: cluster,
        });
    }
    let mut args = Vec::new();
    let list = at.key("args");
    for i in 0..doc.len(&list) {
        let a = list.index(i);
        let name = doc
            .at(&a.key("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(v) = doc.at(&a.key("value")).and_then(Value::as_str) {
            doc.mapped(&a);
            args.push(AnalysisArg {
                name,
                value: v.to_string(),
            });
            continue;
        }
        let field = doc
            .at(&a.join("valueFrom.fieldRef.fieldPath"))
            .and_then(Value::as_str);
        let resolved = field.and_then(|f| resolve_field(doc, f));
        match (field, resolved) {
            (Some(f), Some(v)) => {
                report.changed(doc, &a, format!("valueFrom.fieldRef {f} resolved at import to {v:?}"));
                args.push(AnalysisArg { name, value: v });
            }
            (Some(f), None) => report.left_out(doc, &a, format!("valueFrom.fieldRef {f}: only metadata.name, metadata.namespace and metadata labels / annotations of the Rollout can be given as a value")),
            (None, _) if doc.at(&a.join("valueFrom.podTemplateHashValue")).is_some() => report.left_out(doc, &a, "a pod-template-hash argument: canary-gate tells the versions apart by the template's versionLabel, not by hash arguments"),
            (None, _) => report.left_out(doc, &a, "an argument without a value canary-gate can give"),
        }
    }
    for (f, why, left) in [
        (
            "dryRun",
            "set dryRun: true on the metric in the template (canary-gate's dry runs belong to the template)",
            true,
        ),
        (
            "analysisRunMetadata",
            "canary-gate creates no AnalysisRuns to label",
            true,
        ),
        (
            "measurementRetention",
            "canary-gate keeps the last 20 decisions with their evidence in the Rollout's status",
            false,
        ),
    ] {
        if doc.at(&at.key(f)).is_some() {
            if left {
                report.left_out(doc, at.key(f), why);
            } else {
                report.ignored(doc, at.key(f), why);
            }
        }
    }
    (!refs.is_empty()).then_some(RolloutAnalysis {
        templates: refs,
        args,
    })
}

fn resolve_field(doc: &Doc, path: &str) -> Option<String> {
    match path {
        "metadata.name" => Some(doc.name.clone()),
        "metadata.namespace" => doc.namespace.clone(),
        _ => {
            for map in ["labels", "annotations"] {
                if let Some(key) = path
                    .strip_prefix(&format!("metadata.{map}['"))
                    .and_then(|k| k.strip_suffix("']"))
                {
                    return doc
                        .at(&FieldPath::parse("metadata").key(map).key(key))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
            }
            None
        }
    }
}

fn seconds(doc: &Doc, path: &str) -> Option<String> {
    int(doc.get(path)).map(|s| format!("{s}s"))
}

fn canary(
    doc: &Doc,
    spec: &mut RolloutSpec,
    rolling: &mut Map<String, Value>,
    inline: bool,
    templates: &Templates,
    report: &mut Report,
) {
    let c = FieldPath::parse("spec.strategy.canary");
    if doc.len(&c.key("steps")) == 0 {
        report.left_out(doc, &c, "a canary without steps is a plain rolling update: the Deployment does that on its own, so no Rollout is written");
        return;
    }
    let mut strategy = CanaryStrategy::default();
    let mut header_matches: Vec<RouteMatch> = Vec::new();
    let mut header_paths: Vec<FieldPath> = Vec::new();
    // Where each Argo step starts in canary-gate's list (for startingStep).
    let mut starts = Vec::new();
    let steps = c.key("steps");
    for i in 0..doc.len(&steps) {
        let at = steps.index(i);
        starts.push(strategy.steps.len());
        for key in doc.keys(&at) {
            let f = at.key(&key);
            match key.as_str() {
                "setWeight" => match int(doc.at(&f)).and_then(|w| i32::try_from(w).ok()) {
                    Some(w) => {
                        doc.mapped(&f);
                        strategy.steps.push(CanaryStep { set_weight: Some(w), ..CanaryStep::default() });
                    }
                    None => report.left_out(doc, &f, "not a whole percentage"),
                },
                "pause" => {
                    let d = doc.at(&f.key("duration"));
                    let duration = match d {
                        None => Some(None),
                        Some(v) => super::duration(v).map(Some),
                    };
                    match duration {
                        Some(duration) => {
                            doc.mapped(&f);
                            strategy.steps.push(CanaryStep { pause: Some(PauseStep { duration }), ..CanaryStep::default() });
                        }
                        None => report.left_out(doc, &f, "the duration is not one canary-gate reads"),
                    }
                }
                "analysis" => {
                    if let Some(a) = analysis(doc, &f, templates, report) {
                        report.changed(doc, &f, "Argo held this step until the AnalysisRun ended; canary-gate's analysis step gates the steps after it: each advances once the judge's evidence passes (or holds), until a later analysis step names other templates");
                        strategy.steps.push(CanaryStep { analysis: Some(a), ..CanaryStep::default() });
                    }
                }
                "setHeaderRoute" => {
                    let list = f.key("match");
                    for j in 0..doc.len(&list) {
                        let m = list.index(j);
                        let name = doc.at(&m.key("headerName")).and_then(Value::as_str);
                        let exact = doc.at(&m.join("headerValue.exact")).and_then(Value::as_str);
                        match (name, exact) {
                            (Some(h), Some(v)) => {
                                header_matches.push(RouteMatch { header: Some(h.into()), cookie: None, value: v.into() });
                                header_paths.push(m);
                            }
                            _ => report.left_out(doc, &m, "canary-gate matches a header's exact value only"),
                        }
                    }
                    if doc.len(&list) == 0 {
                        report.changed(doc, &f, "removing a header route: canary-gate's matches stay for the whole rollout");
                    }
                    doc.mapped(f.key("name"));
                }
                "experiment" => report.left_out(doc, &f, "canary-gate has no experiments (extra ReplicaSets beside the rollout); the judge compares the canary with the stable version in the same interval instead"),
                "setCanaryScale" => report.left_out(doc, &f, "canary-gate sizes the canary from the step's weight (replicas in proportion), not separately"),
                "setMirrorRoute" => report.left_out(doc, &f, "canary-gate does not mirror traffic"),
                "plugin" => report.left_out(doc, &f, "canary-gate has no step plugins"),
                _ => {}
            }
        }
    }
    // Background analysis (from a starting step: an analysis step there).
    let bg = c.key("analysis");
    if doc.at(&bg).is_some()
        && let Some(a) = analysis(doc, &bg, templates, report)
    {
        match int(doc.at(&bg.key("startingStep"))) {
            Some(n) if n > 0 => {
                let pos = usize::try_from(n)
                    .ok()
                    .and_then(|n| starts.get(n).copied())
                    .unwrap_or(strategy.steps.len());
                strategy.steps.insert(
                    pos,
                    CanaryStep {
                        analysis: Some(a),
                        ..CanaryStep::default()
                    },
                );
                report.changed(doc, bg.key("startingStep"), format!("an analysis step before Argo's step {n}: its templates gate every step from there on"));
            }
            _ => {
                doc.mapped(bg.key("startingStep"));
                strategy.analysis = Some(a);
            }
        }
    }
    // Traffic.
    let stable_svc = doc
        .at(&c.key("stableService"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let canary_svc = doc
        .at(&c.key("canaryService"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut routing = TrafficRouting::default();
    let tr = c.key("trafficRouting");
    let mut services_used = false;
    for key in doc.keys(&tr) {
        let f = tr.key(&key);
        match key.as_str() {
            "istio" => {
                let dr = f.key("destinationRule");
                let vs_single = doc.at(&f.join("virtualService.name")).and_then(Value::as_str);
                let many = doc.len(&f.key("virtualServices"));
                let subsets = (
                    doc.at(&dr.key("stableSubsetName")).and_then(Value::as_str),
                    doc.at(&dr.key("canarySubsetName")).and_then(Value::as_str),
                );
                let dr_name = doc.at(&dr.key("name")).and_then(Value::as_str);
                match (vs_single, dr_name, subsets) {
                    (Some(vs), Some(dr_name), (Some("stable"), Some("canary"))) if many == 0 => {
                        routing.istio = Some(IstioRouting { virtual_service: vs.into(), destination_rule: dr_name.into() });
                        for p in ["virtualService.name", "destinationRule.name", "destinationRule.stableSubsetName", "destinationRule.canarySubsetName"] {
                            doc.mapped(f.join(p));
                        }
                        if doc.at(&f.join("virtualService.routes")).is_some() {
                            report.changed(doc, f.join("virtualService.routes"), "canary-gate weights every HTTP route of the VirtualService whose destinations name the stable or canary subset");
                        }
                        for p in ["virtualService.tlsRoutes", "virtualService.tcpRoutes"] {
                            if doc.at(&f.join(p)).is_some() {
                                report.left_out(doc, f.join(p), "canary-gate weights HTTP routes only");
                            }
                        }
                        if doc.at(&dr.key("additionalSubsetNames")).is_some() {
                            report.left_out(doc, dr.key("additionalSubsetNames"), "canary-gate keeps only the stable and canary subsets' labels");
                        }
                    }
                    (_, Some(_), _) if many == 0 => report.left_out(doc, &f, "canary-gate's Istio router weights subsets named stable and canary: rename the DestinationRule's subsets (and the VirtualService's destinations); the split falls back to the replica ratio"),
                    (_, _, _) if many > 0 => report.left_out(doc, &f, "canary-gate's Istio router weights one VirtualService; the split falls back to the replica ratio"),
                    _ => report.left_out(doc, &f, "host-level splitting (two Services as destinations): canary-gate's Istio router weights the stable and canary subsets of one host — add a DestinationRule with subsets stable and canary, route to them, and set trafficRouting.istio; the split falls back to the replica ratio"),
                }
            }
            "nginx" => {
                let stable_ingress = doc.at(&f.key("stableIngress")).and_then(Value::as_str).map(str::to_string).or_else(|| {
                    (doc.len(&f.key("stableIngresses")) == 1).then(|| doc.at(&f.join("stableIngresses[0]")).and_then(Value::as_str).map(str::to_string)).flatten()
                });
                match (stable_ingress, &stable_svc, &canary_svc) {
                    (Some(ing), Some(s), Some(cs)) => {
                        routing.nginx = Some(NginxRouting { stable_ingress: ing.clone(), stable_service: s.clone(), canary_service: cs.clone() });
                        services_used = true;
                        doc.mapped(f.key("stableIngress"));
                        doc.mapped(f.key("stableIngresses"));
                        report.changed(doc, &f, format!("canary-gate creates the canary Ingress as {ing}-canary"));
                        for p in ["annotationPrefix", "additionalIngressAnnotations", "canaryIngressAnnotations"] {
                            if doc.at(&f.key(p)).is_some() {
                                report.left_out(doc, f.key(p), "canary-gate writes only the canary annotations it needs on the canary Ingress");
                            }
                        }
                    }
                    _ => report.left_out(doc, &f, "canary-gate's NGINX router needs one stable Ingress, stableService and canaryService; the split falls back to the replica ratio"),
                }
            }
            "plugins" => {
                for plugin in doc.keys(&f) {
                    let p = f.key(&plugin);
                    let route = doc.at(&p.key("httpRoute")).and_then(Value::as_str).map(str::to_string).or_else(|| {
                        (doc.len(&p.key("httpRoutes")) == 1).then(|| doc.at(&p.join("httpRoutes[0].name")).and_then(Value::as_str).map(str::to_string)).flatten()
                    });
                    let same_ns = doc.at(&p.key("namespace")).and_then(Value::as_str).is_none_or(|n| Some(n) == doc.namespace.as_deref());
                    match (plugin.ends_with("gatewayAPI"), route, &stable_svc, &canary_svc) {
                        (true, Some(r), Some(s), Some(cs)) if same_ns => {
                            routing.gateway_api = Some(GatewayApiRouting { http_route: r, stable_service: s.clone(), canary_service: cs.clone() });
                            services_used = true;
                            for k in ["httpRoute", "httpRoutes[0].name", "namespace"] {
                                doc.mapped(p.join(k));
                            }
                            if doc.at(&p.join("httpRoutes[0].useHeaderRoutes")).is_some() {
                                doc.mapped(p.join("httpRoutes[0].useHeaderRoutes"));
                            }
                        }
                        (true, ..) => report.left_out(doc, &p, "canary-gate's Gateway API router weights one HTTPRoute in the Rollout's namespace between stableService and canaryService; the split falls back to the replica ratio"),
                        _ => report.left_out(doc, &p, format!("the traffic router plugin {plugin}: canary-gate has no equivalent; the split falls back to the replica ratio")),
                    }
                }
            }
            "managedRoutes" => doc.mapped(&f),
            "maxTrafficWeight" => report.left_out(doc, &f, "canary-gate's weights are percentages of 100"),
            other => report.left_out(doc, &f, format!("canary-gate has no {other} router (it has Gateway API, Istio, NGINX Ingress and the replica ratio); the split falls back to the replica ratio")),
        }
    }
    let routed =
        routing.gateway_api.is_some() || routing.istio.is_some() || routing.nginx.is_some();
    if !header_matches.is_empty() {
        if routed {
            report.changed(doc, "spec.strategy.canary.trafficRouting.managedRoutes", "header routes are canary-gate's trafficRouting.matches, in force from the first step to the end");
            for p in header_paths {
                doc.mapped(p);
            }
            routing.matches = header_matches;
        } else {
            for p in header_paths {
                report.left_out(doc, p, "a header route needs a router canary-gate has");
            }
        }
    }
    if routed {
        spec.traffic_routing = Some(routing);
    }
    for (f, v) in [
        ("stableService", &stable_svc),
        ("canaryService", &canary_svc),
    ] {
        if v.is_some() {
            if services_used {
                doc.mapped(c.key(f));
            } else {
                report.left_out(doc, c.key(f), "canary-gate's router here needs no Service per version (the replica ratio and Istio subsets select pods by canarygate.dev/version)");
            }
        }
    }
    // Scaling.
    for f in ["maxSurge", "maxUnavailable"] {
        if let Some(v) = doc.at(&c.key(f)) {
            if inline {
                rolling.insert(f.into(), v.clone());
                report.changed(
                    doc,
                    c.key(f),
                    "on the Deployment's rolling update, which canary-gate's workloads copy",
                );
            } else {
                report.left_out(
                    doc,
                    c.key(f),
                    "set it on the target Deployment's rolling update",
                );
            }
        }
    }
    let delay = seconds(doc, "spec.strategy.canary.scaleDownDelaySeconds");
    if let Some(d) = &delay {
        strategy.scale_down_delay = Some(d.clone());
        doc.mapped(c.key("scaleDownDelaySeconds"));
    }
    if let Some(a) = seconds(doc, "spec.strategy.canary.abortScaleDownDelaySeconds") {
        if Some(&a) == delay.as_ref() || (delay.is_none() && a == "30s") {
            doc.mapped(c.key("abortScaleDownDelaySeconds"));
        } else {
            report.left_out(
                doc,
                c.key("abortScaleDownDelaySeconds"),
                "canary-gate uses one scaleDownDelay after a promotion, a rollback or an abort",
            );
        }
    }
    for (f, why) in [
        (
            "antiAffinity",
            "canary-gate does not add anti-affinity between the versions' pods",
        ),
        (
            "canaryMetadata",
            "canary-gate labels the canary's pods canarygate.dev/version: canary and adds no other metadata",
        ),
        (
            "stableMetadata",
            "canary-gate labels the stable pods canarygate.dev/version: stable and adds no other metadata",
        ),
        (
            "scaleDownDelayRevisionLimit",
            "canary-gate keeps one old version at most",
        ),
        (
            "dynamicStableScale",
            "with the replica ratio canary-gate scales both versions; with a router the stable keeps its pods until promotion",
        ),
        (
            "pingPong",
            "canary-gate runs <name>-stable and <name>-canary, not ping-pong Services",
        ),
        (
            "minPodsPerReplicaSet",
            "canary-gate sizes the canary from the weight (at least one pod)",
        ),
        (
            "replicaProgressThreshold",
            "canary-gate waits for every pod a step needs",
        ),
    ] {
        if doc.at(&c.key(f)).is_some() {
            report.left_out(doc, c.key(f), why);
        }
    }
    spec.strategy.canary = Some(strategy);
}

fn blue_green(doc: &Doc, spec: &mut RolloutSpec, templates: &Templates, report: &mut Report) {
    let b = FieldPath::parse("spec.strategy.blueGreen");
    let mut bg = BlueGreenStrategy {
        active_service: doc
            .at(&b.key("activeService"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        preview_service: doc
            .at(&b.key("previewService"))
            .and_then(Value::as_str)
            .map(str::to_string),
        ..BlueGreenStrategy::default()
    };
    doc.mapped(b.key("activeService"));
    doc.mapped(b.key("previewService"));
    if let Some(v) = doc
        .at(&b.key("autoPromotionEnabled"))
        .and_then(Value::as_bool)
    {
        bg.auto_promotion = Some(v);
        doc.mapped(b.key("autoPromotionEnabled"));
    }
    if let Some(d) = seconds(doc, "spec.strategy.blueGreen.scaleDownDelaySeconds") {
        bg.scale_down_delay = Some(d);
        doc.mapped(b.key("scaleDownDelaySeconds"));
    }
    if doc.at(&b.key("prePromotionAnalysis")).is_some() {
        bg.pre_promotion_analysis =
            analysis(doc, &b.key("prePromotionAnalysis"), templates, report);
    }
    for (f, why) in [
        (
            "postPromotionAnalysis",
            "canary-gate judges the new version before the switch (prePromotionAnalysis), not after it",
        ),
        (
            "autoPromotionSeconds",
            "canary-gate switches when the analysis passes, or waits for `canary-gate promote` (autoPromotion: false)",
        ),
        (
            "previewReplicaCount",
            "the preview runs with every pod, ready to take all traffic",
        ),
        (
            "antiAffinity",
            "canary-gate does not add anti-affinity between the versions' pods",
        ),
        (
            "previewMetadata",
            "canary-gate adds no metadata to the preview's pods",
        ),
        (
            "activeMetadata",
            "canary-gate adds no metadata to the active pods",
        ),
        (
            "maxUnavailable",
            "set it on the Deployment's rolling update",
        ),
        (
            "scaleDownDelayRevisionLimit",
            "canary-gate keeps one old version at most",
        ),
        (
            "abortScaleDownDelaySeconds",
            "canary-gate uses one scaleDownDelay",
        ),
    ] {
        if doc.at(&b.key(f)).is_some() {
            report.left_out(doc, b.key(f), why);
        }
    }
    spec.strategy.blue_green = Some(bg);
}
