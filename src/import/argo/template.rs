//! Argo's `AnalysisTemplate` / `ClusterAnalysisTemplate` as a canary-gate template: Prometheus
//! metrics become threshold gates on the same queries, with Argo's placeholders translated.

use super::*;

/// Translates Argo's `{{args.NAME}}` (spaces allowed) into canary-gate's; `Err` names a
/// placeholder canary-gate has no equivalent for.
pub(super) fn placeholders(query: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| "an unclosed {{".to_string())?;
        let inner = rest[start + 2..start + end].trim();
        match inner.strip_prefix("args.") {
            Some(name)
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                out.push_str(&rest[..start]);
                out.push_str(&format!("{{{{args.{name}}}}}"));
            }
            _ => return Err(format!("the placeholder {{{{{inner}}}}}")),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One Argo analysis template; the output when anything of it carried over.
pub(super) fn template(doc: &Doc, report: &mut Report) -> Option<Output> {
    let meta = metadata(doc, report, annotation_filter(doc));
    let mut spec = AnalysisTemplateSpec {
        version_label: Some(VERSION_LABEL.into()),
        ..AnalysisTemplateSpec::default()
    };
    let args = FieldPath::parse("spec.args");
    for i in 0..doc.len(&args) {
        let at = args.index(i);
        let name = doc
            .at(&at.key("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        doc.mapped(at.key("name"));
        let default = doc
            .at(&at.key("value"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if default.is_some() {
            doc.mapped(at.key("value"));
        }
        if doc.at(&at.key("valueFrom")).is_some() {
            report.left_out(
                doc,
                at.key("valueFrom"),
                "canary-gate's arguments are plain values given by the Rollout (Prometheus credentials are the controller's flags: --bearer-token-file, --basic-password-file); the argument is required instead",
            );
        }
        spec.args.push(ArgSpec {
            name: name.to_string(),
            default,
            description: None,
            pattern: None,
            regex: None,
        });
    }
    let dry: Vec<String> = (0..doc.len(&FieldPath::parse("spec.dryRun")))
        .filter_map(|i| {
            doc.str(&format!("spec.dryRun[{i}].metricName"))
                .map(str::to_string)
        })
        .collect();
    let metrics = FieldPath::parse("spec.metrics");
    let mut interval: Option<(String, String)> = None;
    for i in 0..doc.len(&metrics) {
        if let Some(m) = metric(doc, &metrics.index(i), &mut interval, report) {
            spec.metrics.push(m);
        }
    }
    if let Some((text, _)) = &interval {
        spec.interval = Some(text.clone());
    }
    for (i, name) in dry.iter().enumerate() {
        let at = FieldPath::parse("spec.dryRun").index(i);
        let hits: Vec<usize> = spec
            .metrics
            .iter()
            .enumerate()
            .filter(|(_, m)| name == ".*" || &m.name == name)
            .map(|(j, _)| j)
            .collect();
        if hits.len() == spec.metrics.len() && !hits.is_empty() {
            report.left_out(
                doc,
                at,
                "would make every metric dryRun, which canary-gate refuses (nothing would gate the rollout)",
            );
            continue;
        }
        for j in &hits {
            spec.metrics[*j].dry_run = Some(true);
        }
        if hits.is_empty() {
            report.left_out(doc, at, format!("no carried-over metric is named {name:?}"));
        } else {
            doc.mapped(at);
        }
    }
    if doc
        .at(&FieldPath::parse("spec.measurementRetention"))
        .is_some()
    {
        report.ignored(
            doc,
            "spec.measurementRetention",
            "canary-gate keeps the last 20 decisions with their evidence in the Rollout's status",
        );
    }
    if doc.at(&FieldPath::parse("spec.templates")).is_some() {
        report.left_out(
            doc,
            "spec.templates",
            "canary-gate templates do not include other templates; list each template in the Rollout's analysis instead",
        );
    }
    if spec.metrics.is_empty() {
        report.left_out(
            doc,
            "",
            "no metric carried over, so no template is written; a Rollout that refers to it loses that reference",
        );
        return None;
    }
    if let Some(problem) = lint_template(&doc.kind, &doc.name, &spec) {
        report.left_out(
            doc,
            "",
            format!("the imported template does not pass canary-gate's validation, so it is not written: {problem}"),
        );
        return None;
    }
    Some(Output {
        comment: vec![format!(
            "{}: {} carried over as threshold gates on the same queries",
            doc.origin,
            spec.metrics
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )],
        object: template_object(&doc.kind, meta, &spec),
    })
}

/// One metric; `interval` holds the template's interval (the first metric's) and its origin.
pub(super) fn metric(
    doc: &Doc,
    at: &FieldPath,
    interval: &mut Option<(String, String)>,
    report: &mut Report,
) -> Option<crate::template::spec::MetricSpec> {
    let name = doc.at(&at.key("name")).and_then(Value::as_str)?.to_string();
    doc.mapped(at.key("name"));
    let provider = at.key("provider");
    let kinds = doc.keys(&provider);
    if kinds.iter().any(|k| k != "prometheus") || kinds.is_empty() {
        let which = kinds.join(", ");
        let hint = if doc
            .at(&provider.join("web.url"))
            .and_then(Value::as_str)
            .is_some_and(|u| u.contains("/v1/judge"))
        {
            " (this one asks canary-gate's judge: reference that canary-gate template in the Rollout's analysis instead)"
        } else {
            ""
        };
        report.left_out(
            doc,
            at,
            format!("the {which} provider: canary-gate reads Prometheus only{hint}"),
        );
        return None;
    }
    let prom = provider.key("prometheus");
    let query_text = doc
        .at(&prom.key("query"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let query = match placeholders(query_text) {
        Ok(q) => q,
        Err(what) => {
            report.left_out(doc, at, format!("its query uses {what}, which canary-gate's templates have no equivalent for (arguments are {{{{args.NAME}}}})"));
            return None;
        }
    };
    let success = doc.at(&at.key("successCondition")).and_then(Value::as_str);
    let failure = doc.at(&at.key("failureCondition")).and_then(Value::as_str);
    let limits = match condition::passing(success, failure) {
        Ok(l) => l,
        Err(why) => {
            report.left_out(
                doc,
                at,
                format!("{why}; canary-gate's gates need limits on the query's value"),
            );
            return None;
        }
    };
    let failure_limit = int(doc.at(&at.key("failureLimit"))).unwrap_or(0);
    let fail_after = u32::try_from(failure_limit.max(0) + 1).unwrap_or(1);
    let g = match gates::gate(&name, &query, limits, fail_after) {
        Ok(g) => g,
        Err(why) => {
            report.left_out(doc, at, why);
            return None;
        }
    };
    doc.mapped(prom.key("query"));
    for f in ["successCondition", "failureCondition"] {
        doc.mapped(at.key(f));
    }
    if success.is_some() && failure.is_some() {
        report.changed(
            doc,
            at.key("successCondition"),
            "with a failureCondition too, Argo called the values between the two inconclusive; canary-gate passes them (only the failure condition fails)",
        );
    }
    for c in &g.changes {
        report.changed(doc, prom.key("query"), c.clone());
    }
    if let Some(s) = &g.suggestion {
        report.suggested(doc, prom.key("query"), s.clone());
    }
    let gate_kind = g.metric.kind;
    if doc.at(&at.key("failureLimit")).is_some() {
        report.changed(
            doc,
            at.key("failureLimit"),
            if gate_kind == crate::template::spec::KindSpec::Value {
                format!("failAfter: {fail_after}: that many consecutive intervals outside the limits fail (Argo counted failed measurements in all)")
            } else {
                "the sequential test decides when the evidence of a breach suffices, instead of counting failed measurements".into()
            },
        );
    }
    match doc.at(&at.key("interval")).and_then(duration) {
        Some(text) => match interval {
            None => {
                doc.mapped(at.key("interval"));
                *interval = Some((text, name.clone()));
            }
            Some((t, first)) if *t == text => {
                let _ = first;
                doc.mapped(at.key("interval"));
            }
            Some((t, first)) => report.changed(
                doc,
                at.key("interval"),
                format!("a template has one interval: {t} (from metric {first:?})"),
            ),
        },
        None if doc.at(&at.key("interval")).is_some() => {
            report.left_out(doc, at.key("interval"), "not a duration canary-gate reads")
        }
        None => {}
    }
    if doc.at(&at.key("count")).is_some() {
        report.changed(
            doc,
            at.key("count"),
            "canary-gate judges every interval while a step lasts, not a fixed number of measurements",
        );
    }
    if doc.at(&at.key("initialDelay")).is_some() {
        report.changed(
            doc,
            at.key("initialDelay"),
            "canary-gate starts judging once the step's weight is in force (the canary has its pods)",
        );
    }
    for f in ["inconclusiveLimit", "consecutiveErrorLimit"] {
        if doc.at(&at.key(f)).is_some() {
            report.changed(
                doc,
                at.key(f),
                "missing data and Prometheus errors hold the step; once the template's holdBudget (10m) is spent it pauses for a human (policy.onInconclusive)",
            );
        }
    }
    if doc.at(&at.key("consecutiveSuccessLimit")).is_some() {
        report.left_out(
            doc,
            at.key("consecutiveSuccessLimit"),
            "canary-gate passes a step on its evidence, not on a count of successes",
        );
    }
    if doc.at(&prom.key("address")).is_some() {
        report.changed(
            doc,
            prom.key("address"),
            "canary-gate reads the Prometheus given to the controller (--prometheus URL)",
        );
    }
    for (f, why, carried) in [
        ("timeout", "the controller's --query-timeout", true),
        ("headers", "the controller's --header NAME=VALUE", true),
        (
            "authentication.basicAuth",
            "the controller's --basic-user and --basic-password-file",
            true,
        ),
        (
            "authentication.sigv4",
            "canary-gate has no SigV4 signing",
            false,
        ),
        (
            "authentication.oauth2",
            "canary-gate has no OAuth2 client; give a token with --bearer-token-file",
            false,
        ),
        (
            "insecure",
            "canary-gate always verifies TLS; give the CA with --ca-file",
            false,
        ),
        (
            "rangeQuery",
            "canary-gate reads its own range of intervals",
            false,
        ),
    ] {
        let p = prom.join(f);
        if doc.at(&p).is_some() {
            if carried {
                report.changed(doc, p, why);
            } else {
                report.left_out(doc, p, why);
            }
        }
    }
    let mut m = g.metric;
    if name.is_empty() {
        m.name = "metric".into();
    }
    Some(m)
}
