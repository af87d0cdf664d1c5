//! The orchestration: start the services, the router, the observation source and the load;
//! take the baseline; then every interval observe → judge → let the step machine
//! ([`StepPlan::apply`]) decide → set the router's weight; after the decision keep serving at the
//! final weight for a moment; then stop everything and write the report ([`super::finish`]). An
//! interrupt (the `interrupt` future) stops the run at any point with the same clean shutdown.

use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;

use crate::analysis::{
    Decision, Histogram, Judge, JudgeConfig, Judgement, MetricKind, MetricSample,
};
use crate::metrics::recorded::RecordedInterval;
use crate::rollout::{Phase, PlanState, Step, StepPlan};
use crate::template::{self, Template};

use super::finish::{Stopped, finish, stop};
use super::load::LoadGenerator;
use super::local_prometheus::LocalPrometheus;
use super::options::{
    BUILTIN_TEMPLATE, BUILTIN_TEMPLATE_NAME, DemoOptions, DemoResult, SourceChoice,
};
use super::progress::{IntervalView, Progress, StepStats};
use super::report::{Endpoints, IntervalRecord, VersionStats};
use super::rng::{clock_seed, derive};
use super::router::WeightedRouter;
use super::service::{FaultControl, RUN_LABEL, Service};
use super::source::{Snapshot, Source};
use super::{DemoError, Outcome, Scenario, Version};

/// Monotonic time expressed as unix seconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    pub(super) origin: Instant,
    pub(super) unix: f64,
}

impl Clock {
    fn start() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self {
            origin: Instant::now(),
            unix,
        }
    }

    pub(super) fn now(&self) -> f64 {
        self.unix + self.origin.elapsed().as_secs_f64()
    }

    fn instant_at(&self, t: f64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(
            self.origin + Duration::from_secs_f64((t - self.unix).max(0.0)),
        )
    }
}

/// The running servers and tasks.
pub(super) struct Env {
    pub(super) stable: Service,
    pub(super) canary: Service,
    pub(super) router: WeightedRouter,
    pub(super) prometheus: Option<LocalPrometheus>,
    pub(super) source: Source,
    pub(super) load: Option<LoadGenerator>,
    pub(super) faults: Option<AbortOnDrop>,
}

/// A background task that ends with its handle.
pub(super) struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Per-step numbers for the progress view.
#[derive(Debug, Default)]
struct StepTotals {
    step: usize,
    stable: (StepStats, Option<Histogram>),
    canary: (StepStats, Option<Histogram>),
}

impl StepTotals {
    fn add(&mut self, step: usize, cur: &RecordedInterval, prev: &RecordedInterval) {
        if step != self.step {
            *self = StepTotals {
                step,
                ..Default::default()
            };
        }
        for (acc, c, p) in [
            (&mut self.stable, &cur.stable, &prev.stable),
            (&mut self.canary, &cur.canary, &prev.canary),
        ] {
            let counts = c.counts_since(Some(p));
            acc.0.requests += counts.total;
            acc.0.errors += counts.events;
            if let Some(delta) = c
                .latency
                .as_ref()
                .and_then(|h| h.delta(p.latency.as_ref()).ok())
            {
                let merged = acc.1.as_mut().is_some_and(|h| h.add(&delta).is_ok());
                if !merged {
                    acc.1 = Some(delta);
                }
            }
            acc.0.p99 = acc.1.as_ref().and_then(|h| h.quantile(0.99));
        }
    }
}

/// The state of one run, kept outside the driving future so that an interrupt can still report.
pub(super) struct Run {
    pub(super) options: DemoOptions,
    pub(super) template: Template,
    pub(super) config: JudgeConfig,
    pub(super) plan: StepPlan,
    pub(super) planned: f64,
    pub(super) seed: u64,
    pub(super) run_id: String,
    pub(super) progress: Progress,
    pub(super) env: Option<Env>,
    pub(super) endpoints: Endpoints,
    pub(super) clock: Clock,
    pub(super) traffic_start: Option<f64>,
    pub(super) intervals: Vec<IntervalRecord>,
    pub(super) stream: Vec<RecordedInterval>,
    pub(super) outcome: Option<(Outcome, String, f64)>,
}

/// Runs the demo until a decision, an error or `interrupt` completes.
///
/// # Errors
/// Setup failures (ports, template, plan, Prometheus), a baseline that cannot be read, or a
/// report that cannot be written. Every server and process started is stopped first.
pub async fn run(
    options: DemoOptions,
    interrupt: impl Future<Output = ()>,
) -> Result<DemoResult, DemoError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if !(options.rps.is_finite() && options.rps > 0.0) || options.concurrency == 0 {
        return Err(DemoError::Usage(format!(
            "--rps {} and --concurrency {} must both be positive",
            options.rps, options.concurrency
        )));
    }
    for (name, d) in [
        ("--step-duration", options.step_duration),
        ("--interval", options.interval),
    ] {
        if d.is_zero() {
            return Err(DemoError::Usage(format!("{name} must be longer than 0s")));
        }
    }
    let template = match &options.template {
        Some(path) => template::load(path)?,
        None => template::parse(BUILTIN_TEMPLATE, BUILTIN_TEMPLATE_NAME)?,
    };
    let unfed: Vec<&str> = template
        .judge
        .metrics
        .iter()
        .filter(|m| matches!(m.kind, MetricKind::Value) && !m.dry_run)
        .map(|m| m.name.as_str())
        .collect();
    if !unfed.is_empty() {
        return Err(DemoError::Usage(format!(
            "{}: gating metric(s) {} are of kind value; the demo's services expose request, error and latency counters only, so the judge would hold on missing data until the hold budget ends; use a template whose gating metrics are errorRate and latency (the built-in generic-http one, say)",
            template.source_name,
            unfed.join(", ")
        )));
    }
    let mut config = template.judge.clone();
    config.hold_budget = options.hold_budget.unwrap_or(options.step_duration * 2);
    let pause = options.step_duration.as_secs_f64();
    let plan = StepPlan::new(
        options
            .steps
            .iter()
            .map(|&weight| Step { weight, pause })
            .collect(),
    )?;
    let planned = pause * options.steps.len() as f64;
    let seed = options.seed.unwrap_or_else(clock_seed);
    let mut run = Run {
        progress: Progress::new(options.progress),
        run_id: format!("{:08x}", clock_seed() as u32),
        options,
        template,
        config,
        plan,
        planned,
        seed,
        env: None,
        endpoints: Endpoints::default(),
        clock: Clock::start(),
        traffic_start: None,
        intervals: Vec::new(),
        stream: Vec::new(),
        outcome: None,
    };
    let driven = {
        let drive = pin!(drive(&mut run));
        let interrupt = pin!(interrupt);
        tokio::select! {
            result = drive => result.map(|()| false),
            () = interrupt => Ok(true),
        }
    };
    let stopped = match run.env.take() {
        Some(env) => stop(env, &run.clock).await,
        None => Stopped::default(),
    };
    run.progress.finish();
    let interrupted = driven?;
    if interrupted || run.outcome.is_none() {
        run.progress
            .println("interrupted: stopped the load, the router, both services");
        run.outcome = Some((
            Outcome::Interrupted,
            "interrupted by a signal".into(),
            run.clock.now(),
        ));
    }
    finish(run, stopped)
}

async fn start_env(run: &mut Run) -> Result<(), DemoError> {
    let o = &run.options;
    let fault = |v| FaultControl::new(o.scenario.fault(v, 0.0, run.planned));
    let stable = Service::start(
        Version::Stable,
        o.ports[0],
        fault(Version::Stable),
        &run.run_id,
        derive(run.seed, 1),
    )
    .await?;
    let canary = Service::start(
        Version::Canary,
        o.ports[1],
        fault(Version::Canary),
        &run.run_id,
        derive(run.seed, 2),
    )
    .await?;
    let router = WeightedRouter::start(
        &stable.url(),
        &canary.url(),
        run.plan.steps()[0].weight,
        o.ports[2],
        derive(run.seed, 3),
    )
    .await?;
    let mut prometheus = None;
    let source = match &o.source {
        SourceChoice::Scrape => Source::scrape(&stable.metrics_url(), &canary.metrics_url())?,
        SourceChoice::Prometheus(url) => Source::prometheus(url, &run.run_id)?,
        SourceChoice::WithPrometheus(binary) => {
            let targets = [
                format!("127.0.0.1:{}", stable.port()),
                format!("127.0.0.1:{}", canary.port()),
            ];
            let p = LocalPrometheus::start(binary, &targets, &run.run_id).await?;
            let s = Source::prometheus(p.url(), &run.run_id)?;
            prometheus = Some(p);
            s
        }
    };
    run.endpoints = Endpoints {
        stable: stable.url(),
        canary: canary.url(),
        router: router.url(),
        prometheus: prometheus.as_ref().map(|p| p.url().to_string()),
    };
    run.env = Some(Env {
        stable,
        canary,
        router,
        prometheus,
        source,
        load: None,
        faults: None,
    });
    Ok(())
}

fn header(run: &Run, env: &Env) -> Vec<String> {
    let o = &run.options;
    let steps: Vec<String> = o.steps.iter().map(|w| format!("{w}%")).collect();
    let source = match &o.source {
        SourceChoice::Scrape => format!(
            "direct scrape of both /metrics every {}",
            humantime::format_duration(o.interval)
        ),
        _ => format!(
            "{} (series {RUN_LABEL}=\"{}\"), read every {}",
            env.source.describe(),
            run.run_id,
            humantime::format_duration(o.interval)
        ),
    };
    let mut lines = vec![
        format!(
            "canary-gate demo · scenario {}: {} · expect {}",
            o.scenario.id(),
            o.scenario.description(),
            o.scenario.expected().as_str()
        ),
        format!("  stable   {}/metrics", env.stable.url()),
        format!("  canary   {}/metrics", env.canary.url()),
        format!(
            "  router   {}/   <- load {} req/s open loop, at most {} in flight",
            env.router.url(),
            o.rps,
            o.concurrency
        ),
        format!("  source   {source}"),
        format!(
            "  judge    {}: {} · alpha {} · hold budget {}",
            run.template.source_name,
            run.config
                .metrics
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            run.config.alpha,
            humantime::format_duration(run.config.hold_budget)
        ),
        format!(
            "  steps    {}, {} each",
            steps.join(" -> "),
            humantime::format_duration(o.step_duration)
        ),
    ];
    if let Some(p) = &env.prometheus {
        lines.insert(
            5,
            format!("  prometheus {} (started for this run)", p.url()),
        );
    }
    if matches!(o.source, SourceChoice::Prometheus(_)) {
        lines.push(format!(
            "  note     your Prometheus must scrape 127.0.0.1:{} and 127.0.0.1:{} (fix them with --stable-port/--canary-port); waiting for their series",
            env.stable.port(),
            env.canary.port()
        ));
    }
    lines
}

async fn baseline(
    source: &Source,
    clock: &Clock,
    limit: Duration,
) -> Result<(f64, Snapshot), DemoError> {
    let started = Instant::now();
    loop {
        let now = clock.now();
        match source.snapshot(now).await {
            Ok(s) => return Ok((now, s)),
            Err(detail) if started.elapsed() >= limit => {
                return Err(DemoError::Baseline {
                    origin: source.describe(),
                    waited: limit,
                    detail,
                });
            }
            Err(detail) => tracing::debug!(%detail, "baseline not available yet"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn recorded(ctx: &crate::analysis::StepContext, snapshot: Snapshot) -> RecordedInterval {
    RecordedInterval {
        t: ctx.t,
        weight: ctx.weight,
        step: ctx.step,
        step_complete: ctx.step_complete,
        last_step: ctx.last_step,
        stable: snapshot.stable,
        canary: snapshot.canary,
    }
}

async fn drive(run: &mut Run) -> Result<(), DemoError> {
    start_env(run).await?;
    if let Some(env) = run.env.as_ref() {
        for line in header(run, env) {
            run.progress.println(&line);
        }
    }
    let Some(env) = run.env.as_mut() else {
        return Ok(());
    };
    let limit = match run.options.source {
        SourceChoice::Scrape => Duration::from_secs(10),
        SourceChoice::WithPrometheus(_) => Duration::from_secs(30),
        SourceChoice::Prometheus(_) => Duration::from_secs(120),
    };
    let (t0, snapshot) = baseline(&env.source, &run.clock, limit).await?;
    let plan = &run.plan;
    let mut state = plan.start(t0);
    let mut prev = recorded(&plan.context(&state, t0), snapshot);
    run.traffic_start = Some(t0);
    run.stream.push(prev.clone());
    run.intervals.push(IntervalRecord {
        t: t0,
        elapsed: 0.0,
        step: 0,
        weight: prev.weight,
        step_complete: false,
        last_step: prev.last_step,
        stable: VersionStats::between(&prev.stable, &prev.stable, 0.0),
        canary: VersionStats::between(&prev.canary, &prev.canary, 0.0),
        missing: None,
        judgement: None,
        phase: state.phase,
        weight_after: plan.weight(&state),
    });
    // Traffic and faults start now.
    env.load = Some(LoadGenerator::start(
        &format!("{}/", env.router.url()),
        run.options.rps,
        run.options.concurrency,
    )?);
    env.faults = Some(drive_faults(
        run.options.scenario,
        run.planned,
        [env.stable.faults().clone(), env.canary.faults().clone()],
    ));
    run.progress.start(run.planned, run.config.metrics.len());
    run.progress.println(&format!(
        "-> step 1/{}: canary weight {}%",
        plan.steps().len(),
        plan.steps()[0].weight
    ));

    let interval = run.options.interval.as_secs_f64();
    let mut judge = Judge::new(run.config.clone());
    let mut totals = StepTotals::default();
    let mut now = t0;
    let mut last_decision = None;
    while let Some(wake) = plan.next_wake(&state, now, interval) {
        tokio::time::sleep_until(run.clock.instant_at(wake)).await;
        now = run.clock.now().max(wake);
        let ctx = plan.context(&state, now);
        let observed = env.source.snapshot(now).await;
        let (samples, current, missing) = match observed {
            Ok(snapshot) => {
                let rec = recorded(&ctx, snapshot);
                (
                    rec.samples_since(&prev, &run.config.metrics),
                    Some(rec),
                    None,
                )
            }
            Err(why) => {
                tracing::warn!(%why, "observation failed; the judge holds");
                let samples = vec![MetricSample::Missing(why.clone()); run.config.metrics.len()];
                (samples, None, Some(why))
            }
        };
        let judgement = judge.observe(ctx, &samples)?;
        let next = plan.apply(&state, &ctx, judgement.decision, judgement.paused, now);
        env.router.control().set_weight(plan.weight(&next));
        let (stable, canary) = match &current {
            Some(rec) => {
                totals.add(ctx.step, rec, &prev);
                (
                    VersionStats::between(&rec.stable, &prev.stable, now - prev.t),
                    VersionStats::between(&rec.canary, &prev.canary, now - prev.t),
                )
            }
            None => (VersionStats::default(), VersionStats::default()),
        };
        run.progress.interval(&IntervalView {
            elapsed: now - t0,
            planned: run.planned,
            step: ctx.step,
            steps: plan.steps().len(),
            weight: ctx.weight,
            phase: next.phase,
            stable: totals.stable.0,
            canary: totals.canary.0,
            judgement: Some(&judgement),
            missing: missing.as_deref(),
            load: env
                .load
                .as_ref()
                .map(LoadGenerator::counts)
                .unwrap_or_default(),
        });
        announce(
            &run.progress,
            plan,
            &judgement,
            last_decision,
            (&state, &next),
            now - t0,
        );
        last_decision = Some(judgement.decision);
        run.intervals.push(IntervalRecord {
            t: now,
            elapsed: now - t0,
            step: ctx.step,
            weight: ctx.weight,
            step_complete: ctx.step_complete,
            last_step: ctx.last_step,
            stable,
            canary,
            missing,
            judgement: Some(judgement.clone()),
            phase: next.phase,
            weight_after: plan.weight(&next),
        });
        if let Some(rec) = current {
            run.stream.push(rec.clone());
            prev = rec;
        }
        state = next;
        let ending = match state.phase {
            Phase::Promoted => Some(Outcome::Promote),
            Phase::RolledBack => Some(Outcome::Rollback),
            Phase::Paused => Some(Outcome::Paused),
            Phase::Progressing | Phase::Holding => None,
        };
        if let Some(outcome) = ending {
            run.outcome = Some((outcome, judgement.reason.clone(), now));
            break;
        }
    }
    if matches!(state.phase, Phase::Promoted | Phase::RolledBack) && !run.options.settle.is_zero() {
        tokio::time::sleep(run.options.settle).await;
    }
    Ok(())
}

fn announce(
    p: &Progress,
    plan: &StepPlan,
    judgement: &Judgement,
    last: Option<Decision>,
    (state, next): (&PlanState, &PlanState),
    elapsed: f64,
) {
    match next.phase {
        Phase::Promoted => p.println(&format!(
            "PROMOTE at {elapsed:.1}s: {} -> router weight 100% canary",
            judgement.reason
        )),
        Phase::RolledBack => p.println(&format!(
            "ROLLBACK at {elapsed:.1}s: {} -> router weight 0% canary",
            judgement.reason
        )),
        Phase::Paused => p.println(&format!("PAUSED at {elapsed:.1}s: {}", judgement.reason)),
        _ if next.step != state.step => p.println(&format!(
            "-> step {}/{} at {elapsed:.1}s: canary weight {}%",
            next.step + 1,
            plan.steps().len(),
            plan.weight(next)
        )),
        _ if judgement.decision == Decision::Hold && last != Some(Decision::Hold) => {
            p.println(&format!("hold at {elapsed:.1}s: {}", judgement.reason));
        }
        _ => {}
    }
}

/// Applies the scenario's faults to both instances every 100 ms.
fn drive_faults(scenario: Scenario, planned: f64, controls: [FaultControl; 2]) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let elapsed = start.elapsed().as_secs_f64();
            for (control, version) in controls.iter().zip([Version::Stable, Version::Canary]) {
                control.set(scenario.fault(version, elapsed, planned));
            }
        }
    }))
}
