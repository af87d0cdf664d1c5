//! The self-contained `report.html`: a summary, inline SVG charts (error rate, latency p50/p99,
//! requests per second, canary weight, the judge's evidence) with step boundaries, holds and
//! the decision marked, and a table of every interval. No script, no external asset.

use std::fmt::Write as _;

use crate::analysis::{Decision, Outcome as Verdict};

use super::report::{IntervalRecord, Report, VersionStats};
use super::svg::{self, Band, Chart, Line, Marker, Rule, escape, format_number};
use super::{Outcome, Scenario};

const STABLE: &str = "#1f77b4";
const CANARY: &str = "#e8710a";
const METRIC_COLORS: [&str; 4] = ["#6a3d9a", "#1b9e77", "#d95f02", "#7570b3"];

/// Chart titles, in page order (tests look for them).
pub const CHART_TITLES: [&str; 5] = [
    "Error rate per version (%)",
    "Latency p50 and p99 per version (ms)",
    "Requests per second per version",
    "Canary weight (%)",
    "Judge evidence: e-value per metric (log scale)",
];

fn judged(report: &Report) -> Vec<(f64, &IntervalRecord)> {
    let mut out = Vec::new();
    let mut prev = 0.0;
    for r in &report.intervals {
        if r.judgement.is_some() || r.missing.is_some() {
            out.push((prev, r));
        }
        prev = r.elapsed;
    }
    out
}

fn series(
    report: &Report,
    pick: impl Fn(&VersionStats) -> Option<f64>,
    stable: bool,
) -> Vec<(f64, Option<f64>)> {
    let mut points: Vec<(f64, Option<f64>)> = judged(report)
        .into_iter()
        .map(|(_, r)| {
            let v = if stable { &r.stable } else { &r.canary };
            (r.elapsed, if v.requests > 0.0 { pick(v) } else { None })
        })
        .collect();
    if let (Some(after), Some(at)) = (&report.after_decision, report.decided_at) {
        let v = if stable { &after.stable } else { &after.canary };
        points.push((
            at + after.seconds,
            if v.requests > 0.0 { pick(v) } else { None },
        ));
    }
    points
}

fn line(label: &str, color: &str, dashed: bool, points: Vec<(f64, Option<f64>)>) -> Line {
    Line {
        label: label.into(),
        color: color.into(),
        dashed,
        staircase: false,
        points,
    }
}

fn outcome_color(o: Outcome) -> &'static str {
    match o {
        Outcome::Promote => "#2ca02c",
        Outcome::Rollback => "#d62728",
        Outcome::Paused | Outcome::Interrupted => "#777777",
    }
}

fn annotations(report: &Report) -> (Vec<Marker>, Vec<Band>) {
    let mut markers = Vec::new();
    let mut bands = Vec::new();
    let mut step = None;
    for (start, r) in judged(report) {
        if step != Some(r.step) {
            step = Some(r.step);
            markers.push(Marker {
                x: start,
                label: format!("step {} · {}%", r.step + 1, format_number(r.weight)),
                color: "#555555".into(),
                strong: false,
            });
        }
        let hold = r.missing.is_some()
            || r.judgement
                .as_ref()
                .is_some_and(|j| j.decision == Decision::Hold);
        if hold {
            bands.push(Band {
                from: start,
                to: r.elapsed,
                color: "#f2c500".into(),
            });
        }
    }
    if report.scenario == Scenario::Incident {
        let planned: f64 = report.settings.steps.iter().map(|s| s.pause).sum();
        let (from, to) = Scenario::incident_window(planned);
        bands.push(Band {
            from,
            to,
            color: "#d62728".into(),
        });
        markers.push(Marker {
            x: from,
            label: "incident: both versions".into(),
            color: "#d62728".into(),
            strong: false,
        });
    }
    if let Some(at) = report.decided_at {
        markers.push(Marker {
            x: at,
            label: report.outcome.as_str().to_string(),
            color: outcome_color(report.outcome).into(),
            strong: true,
        });
    }
    (markers, bands)
}

fn percent(v: f64) -> String {
    format!("{}%", format_number(v))
}

fn plain(v: f64) -> String {
    format_number(v)
}

fn evalue(v: f64) -> String {
    if (1e-2..=1e4).contains(&v) {
        format_number(v)
    } else {
        format!("1e{}", v.log10().round())
    }
}

/// Builds the page's charts.
pub fn charts(report: &Report) -> Vec<Chart> {
    let end = report
        .intervals
        .last()
        .map_or(1.0, |r| r.elapsed)
        .max(
            report.decided_at.unwrap_or(0.0)
                + report.after_decision.as_ref().map_or(0.0, |a| a.seconds),
        )
        .max(1.0);
    let (markers, bands) = annotations(report);
    let chart = |id: &str, title: &str, lines: Vec<Line>| Chart {
        id: id.into(),
        title: title.into(),
        x_domain: (0.0, end),
        y_domain: None,
        log_y: false,
        y_format: plain,
        lines,
        markers: markers.clone(),
        bands: bands.clone(),
        rules: Vec::new(),
    };
    let rate = |v: &VersionStats| v.error_rate.map(|r| r * 100.0);
    let ms = |q: fn(&VersionStats) -> Option<f64>| move |v: &VersionStats| q(v).map(|s| s * 1e3);
    let mut errors = chart(
        "errors",
        CHART_TITLES[0],
        vec![
            line("stable", STABLE, false, series(report, rate, true)),
            line("canary", CANARY, false, series(report, rate, false)),
        ],
    );
    errors.y_format = percent;
    let latency = chart(
        "latency",
        CHART_TITLES[1],
        vec![
            line(
                "stable p50",
                STABLE,
                false,
                series(report, ms(|v| v.p50), true),
            ),
            line(
                "stable p99",
                STABLE,
                true,
                series(report, ms(|v| v.p99), true),
            ),
            line(
                "canary p50",
                CANARY,
                false,
                series(report, ms(|v| v.p50), false),
            ),
            line(
                "canary p99",
                CANARY,
                true,
                series(report, ms(|v| v.p99), false),
            ),
        ],
    );
    let rps = chart(
        "rps",
        CHART_TITLES[2],
        vec![
            line(
                "stable",
                STABLE,
                false,
                series(report, |v| Some(v.rps), true),
            ),
            line(
                "canary",
                CANARY,
                false,
                series(report, |v| Some(v.rps), false),
            ),
        ],
    );
    let mut weight_points: Vec<(f64, Option<f64>)> = judged(report)
        .into_iter()
        .map(|(start, r)| (start, Some(r.weight)))
        .collect();
    if let Some(last) = report.intervals.last() {
        weight_points.push((last.elapsed, Some(last.weight)));
        weight_points.push((last.elapsed, Some(last.weight_after)));
        if let Some(after) = &report.after_decision {
            weight_points.push((last.elapsed + after.seconds, Some(last.weight_after)));
        }
    }
    let mut weight = chart(
        "weight",
        CHART_TITLES[3],
        vec![Line {
            label: "canary weight".into(),
            color: CANARY.into(),
            dashed: false,
            staircase: true,
            points: weight_points,
        }],
    );
    weight.y_domain = Some((0.0, 118.0));
    weight.y_format = percent;
    let mut evidence = chart("evidence", CHART_TITLES[4], Vec::new());
    evidence.log_y = true;
    evidence.y_format = evalue;
    let names = &report.settings.metrics;
    let mut thresholds: Vec<(f64, Vec<&str>)> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let color = METRIC_COLORS[i % METRIC_COLORS.len()];
        let points = judged(report)
            .into_iter()
            .map(|(_, r)| {
                let v = r
                    .judgement
                    .as_ref()
                    .and_then(|j| j.metrics.get(i))
                    .map(|m| m.e_value);
                (r.elapsed, v)
            })
            .collect();
        evidence.lines.push(line(name, color, false, points));
        let fail_at = report
            .intervals
            .iter()
            .find_map(|r| r.judgement.as_ref().and_then(|j| j.metrics.get(i)))
            .map(|m| m.fail_at);
        if let Some(fail_at) = fail_at {
            match thresholds.iter_mut().find(|t| t.0 == fail_at) {
                Some(t) => t.1.push(name),
                None => thresholds.push((fail_at, vec![name])),
            }
        }
    }
    for (fail_at, metrics) in thresholds {
        evidence.rules.push(Rule {
            y: fail_at,
            label: format!("{} fails at e = {}", metrics.join(", "), evalue(fail_at)),
            color: "#d62728".into(),
        });
    }
    vec![errors, latency, rps, weight, evidence]
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |s| format!("{:.0}", s * 1e3))
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Inconclusive => "inconclusive",
    }
}

/// Renders the whole page.
pub fn render(report: &Report) -> String {
    let mut h = String::new();
    let title = format!(
        "canary-gate demo — {} — {}",
        report.scenario.id(),
        report.outcome.as_str()
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{}</style></head><body>",
        escape(&title),
        STYLE
    );
    let verdict = if report.as_expected {
        "as expected"
    } else {
        "NOT the expected outcome"
    };
    let _ = write!(
        h,
        "<h1>canary-gate demo: <span style=\"color:{}\">{}</span> <small>({verdict}: {})</small></h1>",
        outcome_color(report.outcome),
        escape(report.outcome.as_str()),
        escape(report.expected.as_str())
    );
    let t = &report.totals;
    let s = &report.settings;
    let steps: Vec<String> = s
        .steps
        .iter()
        .map(|st| {
            format!(
                "{}% for {}s",
                format_number(st.weight),
                format_number(st.pause)
            )
        })
        .collect();
    let rows = [
        (
            "scenario",
            format!("{} — {}", report.scenario.id(), report.scenario_description),
        ),
        ("reason", report.reason.clone()),
        (
            "decided",
            report.decided_at.map_or("no decision".into(), |d| {
                format!("{d:.1} s after traffic started")
            }),
        ),
        ("steps", steps.join(" → ")),
        (
            "judge",
            format!(
                "{} · α {} · metrics {} · hold budget {}s · interval {}s",
                s.template,
                s.alpha,
                s.metrics.join(", "),
                format_number(s.hold_budget_seconds),
                format_number(s.interval_seconds)
            ),
        ),
        ("observations", s.source.clone()),
        (
            "load",
            format!(
                "{} req/s open loop (≤ {} in flight): {} sent, {} ok, {} 5xx, {} failed, {} dropped",
                format_number(s.rps),
                s.concurrency,
                t.load.sent,
                t.load.ok,
                t.load.server_errors,
                t.load.failed,
                t.load.dropped
            ),
        ),
        (
            "served",
            format!(
                "stable {:.0} requests ({:.0} errors) · canary {:.0} requests ({:.0} errors)",
                t.served.stable, t.served.stable_errors, t.served.canary, t.served.canary_errors
            ),
        ),
        (
            "wall time",
            format!("{:.1} s (seed {})", report.wall_seconds, s.seed),
        ),
    ];
    h.push_str("<table class=\"summary\">");
    for (k, v) in rows {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(&v));
    }
    h.push_str("</table>");
    h.push_str("<p class=\"legend-note\">Dashed grey lines: step boundaries · yellow: the judge held · red band: an injected incident · thick line: the final decision. Each point is one observation interval.</p>");
    for c in charts(report) {
        let _ = write!(h, "<figure>{}</figure>", svg::render(&c));
    }
    if let Some(a) = &report.after_decision {
        let _ = write!(
            h,
            "<p>After the decision: {:.1} s at {}% canary weight — stable served {:.0} requests, canary {:.0}.</p>",
            a.seconds,
            format_number(a.weight),
            a.stable.requests,
            a.canary.requests
        );
    }
    h.push_str("<details open><summary>Every interval</summary><table class=\"intervals\"><tr><th>t (s)</th><th>step</th><th>weight</th><th>stable req / err / p99 ms</th><th>canary req / err / p99 ms</th>");
    for m in &s.metrics {
        let _ = write!(h, "<th>{}</th>", escape(m));
    }
    h.push_str("<th>decision</th><th>reason</th></tr>");
    for r in &report.intervals {
        let _ = write!(
            h,
            "<tr><td>{:.1}</td><td>{}</td><td>{}%</td><td>{:.0} / {:.0} / {}</td><td>{:.0} / {:.0} / {}</td>",
            r.elapsed,
            r.step + 1,
            format_number(r.weight),
            r.stable.requests,
            r.stable.errors,
            opt_ms(r.stable.p99),
            r.canary.requests,
            r.canary.errors,
            opt_ms(r.canary.p99)
        );
        match &r.judgement {
            Some(j) => {
                for m in &j.metrics {
                    let _ = write!(
                        h,
                        "<td class=\"{}\" title=\"{}\">{} (e={})</td>",
                        verdict_class(m.verdict),
                        escape(&m.reason),
                        verdict_class(m.verdict),
                        evalue(m.e_value)
                    );
                }
                let _ = write!(
                    h,
                    "<td>{}</td><td>{}</td>",
                    j.decision.as_str(),
                    escape(&j.reason)
                );
            }
            None => {
                for _ in &s.metrics {
                    h.push_str("<td></td>");
                }
                let why = r
                    .missing
                    .clone()
                    .unwrap_or_else(|| "baseline of the cumulative counters".into());
                let _ = write!(h, "<td>–</td><td>{}</td>", escape(&why));
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table></details></body></html>\n");
    h
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:960px}\
h1{font-size:22px}h1 small{font-size:14px;color:#555;font-weight:normal}\
table{border-collapse:collapse;font-size:13px}th,td{text-align:left;padding:3px 8px;vertical-align:top}\
.summary th{color:#555;font-weight:600}.intervals td,.intervals th{border-bottom:1px solid #eee;white-space:nowrap}\
.intervals td:last-child{white-space:normal}figure{margin:14px 0}\
.pass{color:#2ca02c}.fail{color:#d62728;font-weight:bold}.inconclusive{color:#b08800}\
.chart-title{font-size:14px;font-weight:600;fill:#222}.tick{font-size:11px;fill:#555}\
.legend{font-size:12px;fill:#333}.marker{font-size:11px}.legend-note{font-size:12px;color:#555}";
