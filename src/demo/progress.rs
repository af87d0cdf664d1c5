//! Terminal progress: on a terminal, live `indicatif` bars (step, weight, per-version requests,
//! errors and p99 in the current step, each metric's verdict and the decision); otherwise one
//! plain line per interval, so logs and pipes stay readable.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::analysis::{Judgement, Outcome as Verdict};
use crate::rollout::Phase;

use super::load::LoadCounts;
use super::svg::format_number;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Live bars on a terminal, plain lines otherwise.
    Auto,
    /// Live bars.
    Bars,
    /// One line per interval.
    Plain,
    /// Nothing but errors (library use, tests).
    Quiet,
}

/// One version's numbers in the current step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepStats {
    /// Requests.
    pub requests: f64,
    /// Errors.
    pub errors: f64,
    /// p99 latency in seconds.
    pub p99: Option<f64>,
}

impl StepStats {
    fn describe(&self) -> String {
        let rate = if self.requests > 0.0 {
            format!("{:.2}%", 100.0 * self.errors / self.requests)
        } else {
            "–".into()
        };
        format!(
            "{:>6.0} req {:>4.0} err ({rate:>6}) p99 {}",
            self.requests,
            self.errors,
            ms(self.p99)
        )
    }

    fn compact(&self) -> String {
        format!(
            "{:>5.0} req {:>3.0} err p99 {}",
            self.requests,
            self.errors,
            ms(self.p99)
        )
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("    –".into(), |s| format!("{:>4.0}ms", s * 1e3))
}

/// What one interval shows.
#[derive(Debug, Clone)]
pub struct IntervalView<'a> {
    /// Seconds since traffic started.
    pub elapsed: f64,
    /// Planned seconds of the whole plan.
    pub planned: f64,
    /// Step index.
    pub step: usize,
    /// Number of steps.
    pub steps: usize,
    /// Canary weight during the interval.
    pub weight: f64,
    /// Phase after the decision.
    pub phase: Phase,
    /// Stable, this step.
    pub stable: StepStats,
    /// Canary, this step.
    pub canary: StepStats,
    /// The judge's answer.
    pub judgement: Option<&'a Judgement>,
    /// Why the observation is missing.
    pub missing: Option<&'a str>,
    /// Load generator counts so far.
    pub load: LoadCounts,
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::Inconclusive => "inconclusive",
    }
}

fn decision_text(view: &IntervalView<'_>) -> String {
    match (view.judgement, view.missing) {
        (Some(j), _) => format!("{} — {}", j.decision.as_str(), j.reason),
        (None, Some(why)) => format!("hold — no data: {why}"),
        (None, None) => "baseline".into(),
    }
}

fn plain_line(view: &IntervalView<'_>) -> String {
    let metrics = view.judgement.map_or(String::new(), |j| {
        j.metrics
            .iter()
            .map(|m| {
                format!(
                    "{} {} e={}",
                    m.name,
                    verdict_word(m.verdict),
                    format_e(m.e_value)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    let decision = match (view.judgement, view.missing) {
        (Some(j), _) => j.decision.as_str(),
        (None, Some(_)) => "hold (no data)",
        (None, None) => "baseline",
    };
    format!(
        "[{:>5.1}s] step {}/{} w={:>3}% | stable {} | canary {} | {} -> {}",
        view.elapsed,
        view.step + 1,
        view.steps,
        format_number(view.weight),
        view.stable.compact(),
        view.canary.compact(),
        metrics,
        decision
    )
}

fn phase_word(phase: Phase) -> &'static str {
    match phase {
        Phase::Progressing => "progressing",
        Phase::Holding => "holding",
        Phase::Paused => "paused",
        Phase::Promoted => "promoted",
        Phase::RolledBack => "rolled back",
    }
}

fn format_e(e: f64) -> String {
    if e >= 1e4 {
        format!("{e:.1e}")
    } else {
        format!("{e:.2}")
    }
}

/// Shows progress in the chosen mode.
#[derive(Debug)]
pub struct Progress {
    mode: ProgressMode,
    bars: Option<Bars>,
}

#[derive(Debug)]
struct Bars {
    multi: MultiProgress,
    main: ProgressBar,
    lines: Vec<ProgressBar>,
}

impl Progress {
    /// Progress in `mode` (`Auto` picks bars when stdout is a terminal).
    pub fn new(mode: ProgressMode) -> Self {
        let mode = match mode {
            ProgressMode::Auto if std::io::stdout().is_terminal() => ProgressMode::Bars,
            ProgressMode::Auto => ProgressMode::Plain,
            other => other,
        };
        Self { mode, bars: None }
    }

    /// The mode in use.
    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    /// Prints a line above the live view (or plainly).
    pub fn println(&self, line: &str) {
        match (&self.bars, self.mode) {
            (_, ProgressMode::Quiet) => {}
            (Some(b), _) => {
                if b.multi.println(line).is_err() {
                    println!("{line}");
                }
            }
            (None, _) => println!("{line}"),
        }
    }

    /// Starts the live view for a plan of `planned` seconds and `metrics` metric lines.
    pub fn start(&mut self, planned: f64, metrics: usize) {
        if self.mode != ProgressMode::Bars {
            return;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let main = multi.add(ProgressBar::new(planned.ceil().max(1.0) as u64));
        let style = ProgressStyle::with_template(
            "{spinner} {prefix:.bold} [{wide_bar:.cyan/blue}] {pos}/{len}s {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        main.set_style(style);
        main.enable_steady_tick(Duration::from_millis(120));
        let text = ProgressStyle::with_template("  {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let lines = (0..metrics + 3)
            .map(|_| {
                let pb = multi.add(ProgressBar::new(1));
                pb.set_style(text.clone());
                pb
            })
            .collect();
        self.bars = Some(Bars { multi, main, lines });
    }

    /// Shows one interval.
    pub fn interval(&self, view: &IntervalView<'_>) {
        match self.mode {
            ProgressMode::Quiet => {}
            ProgressMode::Plain | ProgressMode::Auto => println!("{}", plain_line(view)),
            ProgressMode::Bars => {
                let Some(b) = &self.bars else {
                    println!("{}", plain_line(view));
                    return;
                };
                b.main.set_prefix(format!(
                    "step {}/{} · canary {}%",
                    view.step + 1,
                    view.steps,
                    format_number(view.weight)
                ));
                b.main.set_position(view.elapsed.max(0.0) as u64);
                b.main.set_message(format!(
                    "{} · load {} sent, {} dropped",
                    phase_word(view.phase),
                    view.load.sent,
                    view.load.dropped
                ));
                let mut texts = vec![
                    format!("stable {}", view.stable.describe()),
                    format!("canary {}", view.canary.describe()),
                ];
                if let Some(j) = view.judgement {
                    for m in &j.metrics {
                        texts.push(format!(
                            "{:<14} {:<12} e={:<9} (fails at {}) {}",
                            m.name,
                            verdict_word(m.verdict),
                            format_e(m.e_value),
                            format_e(m.fail_at),
                            m.reason
                        ));
                    }
                }
                texts.push(format!("decision: {}", decision_text(view)));
                for (pb, text) in b.lines.iter().zip(texts) {
                    pb.set_message(text);
                }
            }
        }
    }

    /// Ends the live view, leaving its last state on screen.
    pub fn finish(&mut self) {
        if let Some(b) = self.bars.take() {
            // `abandon` keeps the position (`finish` would fill the bar).
            b.main.abandon();
            for pb in &b.lines {
                pb.abandon();
            }
            drop(b);
            // The cursor is left at the end of the last line.
            println!();
        }
    }
}
