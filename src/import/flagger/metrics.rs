//! Flagger's metrics as one canary-gate template of threshold gates: the builtin
//! request-success-rate / request-duration of a provider and `MetricTemplate`s by `templateRef`.

use super::*;

/// Flagger's builtin query for a provider, in canary-gate's placeholders, as a success-rate
/// percentage or a p99 in milliseconds (what Flagger's thresholds are in).
pub(super) fn builtin(metric: &str, router: Router) -> Option<String> {
    let (requests, buckets, scale) = match router {
        Router::Istio => (
            "istio_requests_total{reporter=\"destination\", destination_workload_namespace=\"{{args.namespace}}\", destination_workload=\"{{args.target}}\"}",
            "istio_request_duration_milliseconds_bucket{reporter=\"destination\", destination_workload_namespace=\"{{args.namespace}}\", destination_workload=\"{{args.target}}\"}",
            "",
        ),
        Router::Nginx => (
            "nginx_ingress_controller_requests{namespace=\"{{args.namespace}}\", service=\"{{args.canary_service}}\"}",
            "nginx_ingress_controller_request_duration_seconds_bucket{namespace=\"{{args.namespace}}\", service=\"{{args.canary_service}}\"}",
            " * 1000",
        ),
        _ => return None,
    };
    let code = if router == Router::Istio {
        "response_code"
    } else {
        "status"
    };
    match metric {
        "request-success-rate" => {
            let (name, labels) = requests.split_once('{')?;
            Some(format!(
                "sum(rate({name}{{{}, {code}!~\"5.*\"}}[{{{{interval}}}}])) / sum(rate({requests}[{{{{interval}}}}])) * 100",
                labels.trim_end_matches('}')
            ))
        }
        "request-duration" => Some(format!(
            "histogram_quantile(0.99, sum(rate({buckets}[{{{{interval}}}}])) by (le)){scale}"
        )),
        _ => None,
    }
}

/// Translates Flagger's Go-template placeholders; `Err` names one canary-gate has no
/// equivalent for. Collects the arguments used.
pub(super) fn placeholders(query: &str, args: &mut BTreeSet<String>) -> Result<String, String> {
    let mut text = query.to_string();
    for (idiom, arg) in [
        ("-canary", "canary_service"),
        ("-primary", "primary_service"),
    ] {
        for spaced in ["{{ target }}", "{{target}}"] {
            let from = format!("{spaced}{idiom}");
            if text.contains(&from) {
                text = text.replace(&from, &format!("{{{{args.{arg}}}}}"));
                args.insert(arg.into());
            }
        }
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}").ok_or("an unclosed {{")?;
        let inner = rest[start + 2..start + end].trim();
        out.push_str(&rest[..start]);
        let replacement = match inner {
            "interval" => "{{interval}}".to_string(),
            "namespace" | "target" | "name" | "service" | "ingress" | "route" => {
                args.insert(inner.into());
                format!("{{{{args.{inner}}}}}")
            }
            i if i.starts_with("args.") => {
                args.insert(i.trim_start_matches("args.").into());
                format!("{{{{{i}}}}}")
            }
            i => match i.strip_prefix("variables.") {
                Some(v)
                    if v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    args.insert(v.into());
                    format!("{{{{args.{v}}}}}")
                }
                _ => return Err(format!("the Go template {{{{ {i} }}}}")),
            },
        };
        out.push_str(&replacement);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn metrics_template(
    doc: &Doc,
    a: &FieldPath,
    docs: &[Doc],
    name: &str,
    ns: Option<&str>,
    svc: &str,
    router: Router,
    fail_after: u32,
    used_templates: &mut BTreeSet<String>,
    report: &mut Report,
) -> Option<(Output, Vec<AnalysisArg>)> {
    let list = a.key("metrics");
    let mut metrics: Vec<MetricSpec> = Vec::new();
    let mut used_args = BTreeSet::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..doc.len(&list) {
        let m = list.index(i);
        let mname = doc
            .at(&m.key("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let limits = Limits {
            min: float(doc.at(&m.join("thresholdRange.min"))),
            max: float(doc.at(&m.join("thresholdRange.max"))),
        };
        let legacy = float(doc.at(&m.key("threshold")));
        let (query, source) = if let Some(t) =
            doc.at(&m.join("templateRef.name")).and_then(Value::as_str)
        {
            let tns = doc
                .at(&m.join("templateRef.namespace"))
                .and_then(Value::as_str)
                .or(ns);
            let Some(tdoc) = docs.iter().find(|d| {
                is_flagger(d)
                    && d.kind == "MetricTemplate"
                    && d.name == t
                    && (d.namespace.as_deref() == tns || tns.is_none())
            }) else {
                report.left_out(
                    doc,
                    &m,
                    format!(
                        "the MetricTemplate {t} is not among the inputs: import it with the Canary"
                    ),
                );
                continue;
            };
            used_templates.insert(tdoc.origin.clone());
            metadata(tdoc, report, |_, _| true);
            let ptype = tdoc.str("spec.provider.type").unwrap_or("prometheus");
            if ptype != "prometheus" {
                report.left_out(
                    tdoc,
                    "spec",
                    format!("the {ptype} provider: canary-gate reads Prometheus only"),
                );
                report.left_out(doc, &m, format!("its MetricTemplate {t} reads {ptype}"));
                continue;
            }
            doc.mapped(m.key("templateRef"));
            tdoc.mapped("spec.provider.type");
            if tdoc.get("spec.provider.address").is_some() {
                report.changed(
                    tdoc,
                    "spec.provider.address",
                    "canary-gate reads the Prometheus given to the controller (--prometheus URL)",
                );
            }
            for (f, why, carried) in [
                ("headers", "the controller's --header NAME=VALUE", true),
                (
                    "secretRef",
                    "the controller's --bearer-token-file or --basic-user / --basic-password-file",
                    true,
                ),
                (
                    "insecureSkipVerify",
                    "canary-gate always verifies TLS; give the CA with --ca-file",
                    false,
                ),
                ("region", "canary-gate reads Prometheus only", false),
            ] {
                let p = FieldPath::parse("spec.provider").key(f);
                if tdoc.at(&p).is_some() {
                    if carried {
                        report.changed(tdoc, p, why);
                    } else {
                        report.left_out(tdoc, p, why);
                    }
                }
            }
            (
                tdoc.str("spec.query").unwrap_or_default().to_string(),
                Some(tdoc),
            )
        } else if let Some(q) = doc.at(&m.key("query")).and_then(Value::as_str) {
            (q.to_string(), None)
        } else {
            match builtin(&mname, router) {
                Some(q) => {
                    report.changed(doc, m.key("name"), format!("Flagger's builtin {mname} check, written as a canary-gate query on the canary workload's metrics"));
                    (q, None)
                }
                None => {
                    report.left_out(doc, &m, format!("Flagger's builtin {mname:?}: canary-gate has no builtin query for this provider; give the query in a MetricTemplate"));
                    continue;
                }
            }
        };
        let limits = if limits.min.is_none() && limits.max.is_none() {
            match (legacy, mname.as_str()) {
                (Some(t), "request-duration") => Limits {
                    min: None,
                    max: Some(t),
                },
                (Some(t), _) => Limits {
                    min: Some(t),
                    max: None,
                },
                (None, _) => limits,
            }
        } else {
            limits
        };
        let query = match placeholders(&query, &mut used_args) {
            Ok(q) => q,
            Err(what) => {
                report.left_out(doc, &m, format!("its query uses {what}, which canary-gate's templates have no equivalent for"));
                if let Some(t) = source {
                    report.left_out(
                        t,
                        "spec.query",
                        format!("uses {what}; see the Canary's entry"),
                    );
                }
                continue;
            }
        };
        let g = match gates::gate(&mname, &query, limits, fail_after) {
            Ok(g) => g,
            Err(why) => {
                report.left_out(doc, &m, why);
                continue;
            }
        };
        for f in ["name", "thresholdRange", "threshold", "query"] {
            doc.mapped(m.key(f));
        }
        if let Some(t) = source {
            t.mapped("spec.query");
        }
        for c in &g.changes {
            report.changed(doc, &m, c.clone());
        }
        if let Some(s) = &g.suggestion {
            report.suggested(doc, &m, s.clone());
        }
        if let Some(iv) = doc.at(&m.key("interval")).and_then(Value::as_str) {
            report.changed(doc, m.key("interval"), format!("the query window {iv} is the template's interval (the analysis interval) in canary-gate"));
        }
        if let Some(vars) = doc
            .at(&m.key("templateVariables"))
            .and_then(Value::as_object)
        {
            for (k, v) in vars {
                values.insert(
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                );
            }
            doc.mapped(m.key("templateVariables"));
        }
        if metrics.iter().any(|x| x.name == g.metric.name) {
            report.left_out(
                doc,
                &m,
                "two metrics with one name; canary-gate's names are unique",
            );
            continue;
        }
        metrics.push(g.metric);
    }
    if metrics.is_empty() {
        return None;
    }
    if router == Router::Istio || router == Router::Nginx {
        used_args.insert("namespace".into());
    }
    let canary_workload = format!("{name}-canary");
    for (arg, value) in [
        ("namespace", ns.unwrap_or("default").to_string()),
        ("target", canary_workload.clone()),
        ("name", name.to_string()),
        ("service", svc.to_string()),
        ("canary_service", format!("{svc}-canary")),
        ("primary_service", format!("{svc}-primary")),
        (
            "ingress",
            doc.str("spec.ingressRef.name")
                .unwrap_or_default()
                .to_string(),
        ),
        (
            "route",
            doc.str("spec.routeRef.name")
                .unwrap_or_default()
                .to_string(),
        ),
    ] {
        values.entry(arg.to_string()).or_insert(value);
    }
    // Arguments the builtin queries use.
    for m in &metrics {
        for q in [
            &m.query.as_ref().and_then(|q| q.errors.clone()),
            &m.query.as_ref().and_then(|q| q.buckets.clone()),
            &m.query.as_ref().and_then(|q| q.value.clone()),
        ]
        .into_iter()
        .flatten()
        {
            for arg in ["target", "canary_service", "namespace"] {
                if q.contains(&format!("{{{{args.{arg}}}}}")) {
                    used_args.insert(arg.into());
                }
            }
        }
    }
    let spec = AnalysisTemplateSpec {
        args: used_args
            .iter()
            .map(|n| ArgSpec {
                name: n.clone(),
                default: None,
                description: None,
                pattern: None,
                regex: None,
            })
            .collect(),
        version_label: Some(VERSION_LABEL.into()),
        versions: None,
        interval: doc
            .at(&a.key("interval"))
            .and_then(Value::as_str)
            .map(str::to_string),
        alpha: None,
        policy: None,
        metrics,
    };
    if let Some(problem) = lint_template("AnalysisTemplate", name, &spec) {
        report.left_out(doc, a.key("metrics"), format!("the imported template does not pass canary-gate's validation, so it is not written: {problem}"));
        return None;
    }
    let args: Vec<AnalysisArg> = used_args
        .iter()
        .map(|n| AnalysisArg {
            name: n.clone(),
            value: values.get(n).cloned().unwrap_or_default(),
        })
        .collect();
    if used_args.contains("target") {
        report.changed(doc, a.key("metrics"), format!("{{{{ target }}}} is the argument target = {canary_workload}: canary-gate's canary Deployment (the stable one is {name}-stable)"));
    }
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    if let Some(n) = ns {
        m.insert("namespace".into(), json!(n));
    }
    Some((
        Output {
            comment: vec![format!(
                "{}: the Canary's metrics as threshold gates on the same queries",
                doc.origin
            )],
            object: template_object("AnalysisTemplate", m, &spec),
        },
        args,
    ))
}
