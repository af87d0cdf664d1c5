//! The end of a run: stop the load (letting requests in flight finish), read the final counters,
//! stop the router, the services and Prometheus, then assemble the report, print the summary and
//! write the files.

use crate::metrics::counters::VersionCounters;

use super::load::LoadCounts;
use super::options::{DemoResult, SourceChoice};
use super::report::{self, AfterDecision, Report, Served, Settings, Totals, VersionStats};
use super::router::RouterCounts;
use super::run::{Clock, Env, Run};
use super::source::{Snapshot, Source};
use super::{DemoError, Outcome};

/// Stops the load (letting requests in flight finish), reads the final counters, then stops the
/// router, both services and Prometheus.
pub(super) async fn stop(mut env: Env, clock: &Clock) -> Stopped {
    drop(env.faults.take());
    let load = match env.load.take() {
        Some(l) => l.stop().await,
        None => LoadCounts::default(),
    };
    let now = clock.now();
    let last = match env.source.snapshot(now).await {
        Ok(s) => Some((now, s)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the final counters");
            None
        }
    };
    // Totals straight from the services: a Prometheus may not have scraped the last second.
    let served = match Source::scrape(&env.stable.metrics_url(), &env.canary.metrics_url()) {
        Ok(direct) => direct.snapshot(now).await.ok(),
        Err(_) => None,
    }
    .map(|s| served((&s.stable, &s.canary)));
    let router = env.router.control().counts();
    env.router.shutdown().await;
    tokio::join!(env.stable.shutdown(), env.canary.shutdown());
    if let Some(p) = env.prometheus.take() {
        p.stop().await;
    }
    Stopped {
        load,
        router,
        last,
        served,
    }
}

/// What [`stop`] read before stopping everything.
#[derive(Debug, Default)]
pub(super) struct Stopped {
    load: LoadCounts,
    router: RouterCounts,
    /// The source's last snapshot, and when.
    last: Option<(f64, Snapshot)>,
    /// The services' own final counters.
    served: Option<Served>,
}

fn served(c: (&VersionCounters, &VersionCounters)) -> Served {
    Served {
        stable: c.0.requests,
        stable_errors: c.0.errors,
        canary: c.1.requests,
        canary_errors: c.1.errors,
    }
}

/// Builds the report from the run and what [`stop`] read, prints the summary and writes the files.
pub(super) fn finish(run: Run, stopped: Stopped) -> Result<DemoResult, DemoError> {
    let Stopped {
        load,
        router,
        last,
        served: direct,
    } = stopped;
    let (outcome, reason, decided) =
        run.outcome
            .clone()
            .unwrap_or((Outcome::Interrupted, String::new(), run.clock.now()));
    let t0 = run.traffic_start.unwrap_or(run.clock.unix);
    let decided_at = matches!(
        outcome,
        Outcome::Promote | Outcome::Rollback | Outcome::Paused
    )
    .then_some(decided - t0);
    let prev = run.stream.last();
    let after_decision = match (&last, prev, decided_at, run.intervals.last()) {
        (Some((t, s)), Some(p), Some(_), Some(r)) if outcome != Outcome::Paused => {
            Some(AfterDecision {
                seconds: t - p.t,
                weight: r.weight_after,
                stable: VersionStats::between(&s.stable, &p.stable, t - p.t),
                canary: VersionStats::between(&s.canary, &p.canary, t - p.t),
            })
        }
        _ => None,
    };
    let served = match (direct, &last, prev) {
        (Some(d), _, _) => d,
        (None, Some((_, s)), _) => served((&s.stable, &s.canary)),
        (None, None, Some(p)) => served((&p.stable, &p.canary)),
        _ => Served::default(),
    };
    let o = &run.options;
    let report = Report {
        scenario: o.scenario,
        scenario_description: o.scenario.description(),
        expected: o.scenario.expected(),
        outcome,
        as_expected: outcome == o.scenario.expected(),
        reason,
        decided_at,
        settings: Settings {
            rps: o.rps,
            concurrency: o.concurrency,
            steps: run.plan.steps().to_vec(),
            interval_seconds: o.interval.as_secs_f64(),
            hold_budget_seconds: run.config.hold_budget.as_secs_f64(),
            seed: run.seed,
            template: run.template.source_name.clone(),
            alpha: run.config.alpha,
            metrics: run.config.metrics.iter().map(|m| m.name.clone()).collect(),
            source: match &o.source {
                SourceChoice::Scrape => "direct scrape of /metrics".into(),
                SourceChoice::Prometheus(url) => format!("prometheus at {url}"),
                SourceChoice::WithPrometheus(_) => "local prometheus started for the run".into(),
            },
        },
        endpoints: run.endpoints.clone(),
        started_at: t0,
        wall_seconds: run.clock.origin.elapsed().as_secs_f64(),
        intervals: run.intervals,
        after_decision,
        totals: Totals {
            load,
            router,
            served,
        },
    };
    let p = &run.progress;
    if let Some(a) = &report.after_decision {
        p.println(&format!(
            "after {}: {:.1}s at {}% canary weight: stable served {:.0} requests, canary {:.0}",
            outcome.as_str(),
            a.seconds,
            a.weight,
            a.stable.requests,
            a.canary.requests
        ));
    }
    let mark = if report.as_expected {
        "as expected"
    } else {
        "NOT as expected"
    };
    p.println(&format!(
        "{} ({mark}: {}) after {:.1}s; served stable {:.0} requests ({:.0} errors), canary {:.0} ({:.0} errors); load {} sent, {} ok, {} 5xx, {} failed, {} dropped",
        outcome.as_str().to_uppercase(),
        report.expected.as_str(),
        report.wall_seconds,
        served.stable,
        served.stable_errors,
        served.canary,
        served.canary_errors,
        load.sent,
        load.ok,
        load.server_errors,
        load.failed,
        load.dropped
    ));
    let files = match &o.report_dir {
        Some(dir) => {
            let files = report::write(dir, &report, &run.stream)?;
            let template = o
                .template
                .as_ref()
                .map_or("analysis-templates/generic-http.yaml".into(), |t| {
                    t.display().to_string()
                });
            p.println(&format!(
                "report: {} (and report.json); replay: canary-gate replay --template {template} --input {}",
                files.html.display(),
                files.stream.display()
            ));
            Some(files)
        }
        None => None,
    };
    Ok(DemoResult { report, files })
}
