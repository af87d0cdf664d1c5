//! `canary-gate template lint|test`: check templates offline and against a real Prometheus.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use canary_gate::metrics::prometheus::{Prometheus, PrometheusConfig};
use canary_gate::metrics::prometheus_source::PrometheusSource;
use canary_gate::metrics::query::{lint_bindings, parse_args, render_template};
use canary_gate::template;

use super::prometheus_args::PrometheusArgs;
use super::{parse_time, runtime};

/// Flags of `template lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Template files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also ask this Prometheus to parse every rendered query.
    #[arg(long)]
    pub prometheus: Option<String>,
}

/// Lints templates; returns the number that failed.
pub fn lint(a: LintArgs) -> Result<usize> {
    // Lint only asks Prometheus to parse queries: the default client settings suffice.
    let client = a
        .prometheus
        .as_ref()
        .map(|url| Prometheus::new(PrometheusConfig::new(url.clone())))
        .transpose()?;
    let rt = runtime()?;
    let mut failed = 0;
    let mut out = std::io::stdout().lock();
    for file in &a.files {
        let t = match template::load(file) {
            Ok(t) => t,
            Err(e) => {
                failed += 1;
                eprintln!("FAIL {e}");
                continue;
            }
        };
        let mut problems = Vec::new();
        if t.file.spec.metrics.iter().any(|m| m.query.is_some()) {
            // Queries must render with the declared arguments (placeholders are checked
            // offline; required arguments get stand-in values).
            let rendered = lint_bindings(&t).and_then(|b| render_template(&t, &b));
            match rendered {
                Err(e) => problems.push(e.to_string()),
                Ok(queries) => {
                    if let Some(client) = &client {
                        for (metric, queries) in t.file.spec.metrics.iter().zip(&queries) {
                            for (field, query) in queries.queries() {
                                if let Err(e) = rt.block_on(client.check_syntax(query)) {
                                    problems.push(format!(
                                        "metric {:?}, query.{field}: {e}",
                                        metric.name
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            writeln!(
                out,
                "ok   {}: {} ({} metrics{})",
                file.display(),
                t.name(),
                t.judge.metrics.len(),
                if client.is_some() {
                    ", PromQL parsed by Prometheus"
                } else {
                    ""
                }
            )?;
        } else {
            failed += 1;
            for p in problems {
                eprintln!("FAIL {}: {p}", file.display());
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} templates failed", a.files.len());
    }
    Ok(failed)
}

/// Flags of `template test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Template file.
    pub file: PathBuf,
    /// Template argument NAME=VALUE (repeatable).
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    pub args: Vec<String>,
    /// Evaluate at this time (unix seconds or RFC 3339) instead of now.
    #[arg(long)]
    pub time: Option<String>,
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
}

/// Runs every query once and shows what each returns per version; returns whether every query
/// returned both versions.
pub fn test(a: TestArgs) -> Result<bool> {
    let t = template::load(&a.file)?;
    let args = parse_args(&a.args)?;
    let client = a.prometheus.client()?;
    let source = PrometheusSource::new(&client, &t, &args).map_err(super::source_error)?;
    let at = match &a.time {
        Some(text) => parse_time(text)?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs_f64(),
    };
    let results = runtime()?.block_on(source.probe(at));
    let b = source.bindings();
    let mut all_ok = true;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "template {} at {at} ({}=\"{}\" vs \"{}\")",
        t.name(),
        b.version_label,
        b.stable,
        b.canary
    )?;
    for r in results {
        writeln!(out, "\n{} query.{}:\n  {}", r.metric, r.field, r.query)?;
        match r.result {
            Err(e) => {
                all_ok = false;
                writeln!(out, "  ERROR {e}")?;
            }
            Ok(values) => {
                for version in [&b.stable, &b.canary] {
                    let n = values
                        .iter()
                        .filter(|(l, _)| l.get(&b.version_label) == Some(version))
                        .count();
                    if n == 0 && r.field != "errors" {
                        all_ok = false;
                        writeln!(
                            out,
                            "  MISSING no series with {}=\"{version}\"",
                            b.version_label
                        )?;
                    }
                }
                for (labels, value) in values {
                    let labels: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                    writeln!(out, "  {{{}}} {value}", labels.join(", "))?;
                }
            }
        }
    }
    Ok(all_ok)
}
