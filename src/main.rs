//! The `canary-gate` command line.

/// mimalloc: the controller's work is JSON (de)serialisation, which glibc's malloc made a third
/// of its CPU time (benches/controller_scale.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use canary_gate::analysis::Decision;
use canary_gate::rollout::Action;
use canary_gate::simulation::{self, Ending};

mod commands;
use canary_gate::{replay, template};

/// Progressive delivery with a statistical canary judge.
#[derive(Debug, Parser)]
#[command(name = "canary-gate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Judge a recorded observation stream (JSON Lines on stdin): one decision per line on stdout.
    Replay {
        /// Analysis template (YAML).
        #[arg(long, short)]
        template: PathBuf,
        /// Read the stream from this file instead of stdin.
        #[arg(long)]
        input: Option<PathBuf>,
    },
    /// Simulate a canary rollout judged live and print its recorded stream (for `replay`).
    Simulate {
        /// Scenario id (see --list).
        #[arg(long, required_unless_present = "list")]
        scenario: Option<String>,
        /// Analysis template deciding holds and the end of the rollout.
        #[arg(long, short, required_unless_present = "list")]
        template: Option<PathBuf>,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the stream to this file instead of stdout.
        #[arg(long)]
        record: Option<PathBuf>,
        /// List the scenarios.
        #[arg(long)]
        list: bool,
    },
    /// Judge a past window of Prometheus data with a template ("would it have caught it?").
    /// Exit status: 0 the window passes, 10 it would have rolled back, 11 the evidence is
    /// inconclusive (e.g. no data), 1 an error.
    Analyze(Box<commands::analyze::AnalyzeArgs>),
    /// How long each canary step must last for the judge to catch a regression (`--effect +1pt`
    /// or `x1.5`) with a chosen power, from the traffic Prometheus saw, and what it costs in
    /// bad requests: a power analysis by simulation of the template's judge.
    Advise(Box<commands::advise::AdviseArgs>),
    /// Run a whole canary for real on loopback: stable and canary services, a weighted router,
    /// load, live metrics and the judge, ending in promote or rollback, with a report.
    /// Exit status: 0 the scenario's expected outcome, 1 another outcome or an error, 130 Ctrl-C.
    Demo(Box<canary_gate::demo::cli::DemoArgs>),
    /// Run the Kubernetes controller: watch Rollouts, judge each step, write status and Events.
    Controller(Box<commands::controller::ControllerArgs>),
    /// Serve the judge over HTTP for Argo Rollouts (web metric provider) and Flagger (webhooks).
    Gate {
        #[command(subcommand)]
        command: commands::gate::GateCommand,
    },
    /// Print the custom resource definitions (Rollout, AnalysisTemplate, ClusterAnalysisTemplate)
    /// as YAML; `deploy/crds/` holds this output.
    Crd,
    /// Convert Argo Rollouts (`import argo`) or Flagger (`import flagger`) manifests into
    /// canary-gate's: YAML ready to apply on stdout, and a report of every field that did not
    /// carry over, what changed and what is suggested on stderr. Exit status: 0 everything
    /// carried over, 3 something was left out (see the report), 1 an error.
    Import(commands::import::ImportArgs),
    /// Work with analysis templates.
    Template {
        #[command(subcommand)]
        command: TemplateCommand,
    },
    /// Show a Rollout: phase, step, weight, traffic, and the latest decision with each metric's
    /// evidence (`-w`: redraw on every change).
    Get {
        #[command(flatten)]
        target: commands::operator::Target,
        /// Watch: redraw on every change until Ctrl-C.
        #[arg(long, short)]
        watch: bool,
    },
    /// A table of the Rollouts: phase, step, weight, the latest verdict and what each says.
    List {
        /// Namespace (default: the kubeconfig context's).
        #[arg(long, short)]
        namespace: Option<String>,
        /// Every namespace.
        #[arg(long, short = 'A')]
        all_namespaces: bool,
    },
    /// Block until the rollout of the target Deployment's current template ends, then print the
    /// Rollout and its decision record (for CI jobs and GitOps post-sync hooks). Exit status: 0
    /// promoted, 2 rolled back, 3 aborted, 4 degraded (the Rollout cannot run), 5 timeout, 1 an
    /// error.
    Wait {
        #[command(flatten)]
        target: commands::operator::Target,
        /// Give up after this long.
        #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// End the current pause or hold and go to the next step (`--full`: skip every remaining
    /// step).
    Promote {
        #[command(flatten)]
        target: commands::operator::Target,
        /// Skip every remaining step.
        #[arg(long)]
        full: bool,
    },
    /// Send all traffic back to stable and stop until `retry`.
    Abort(commands::operator::Target),
    /// Start an aborted or rolled-back revision again from the first step.
    Retry(commands::operator::Target),
    /// Put the Deployment back on the stable revision (after a promotion: the previous one).
    Undo(commands::operator::Target),
}

#[derive(Debug, Subcommand)]
enum TemplateCommand {
    /// Validate template files: schema, unknown fields, ranges, arguments, placeholders, and
    /// (with --prometheus) PromQL syntax.
    Lint(commands::template::LintArgs),
    /// Run every query of a template once against Prometheus and show what each returns per
    /// version.
    Test(Box<commands::template::TestArgs>),
}

fn main() -> ExitCode {
    // One TLS provider for every client (kube and reqwest would otherwise disagree).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    // CANARY_GATE_LOG, else the usual RUST_LOG; by default the servers (controller, gate) log
    // their start-up and decisions, the one-shot commands only warnings.
    let default = match &cli.command {
        Command::Controller(_) | Command::Gate { .. } => "warn,canary_gate=info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CANARY_GATE_LOG")
                .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("canary-gate: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each cause once: many errors already quote their source in their
/// own message, which `{:#}` would print a second time.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Replay { template, input } => {
            let template = template::load(&template)?;
            let stdout = io::stdout().lock();
            let summary = match input {
                Some(path) => {
                    let file = File::open(&path)
                        .with_context(|| format!("cannot open stream {}", path.display()))?;
                    replay::replay(&template, BufReader::new(file), stdout)?
                }
                None => replay::replay(&template, io::stdin().lock(), stdout)?,
            };
            if summary.lines == 0 {
                bail!("the stream was empty: nothing to judge");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            scenario,
            template,
            seed,
            record,
            list,
        } => {
            if list {
                let mut out = io::stdout().lock();
                for s in simulation::standard_scenarios() {
                    writeln!(out, "{:<20} {}", s.id, s.name)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let (Some(id), Some(template)) = (scenario, template) else {
                bail!("--scenario and --template are required (see --list for scenarios)");
            };
            let scenario = simulation::scenario(&id).with_context(|| {
                format!("unknown scenario {id:?}; `canary-gate simulate --list` shows them")
            })?;
            let template = template::load(&template)?;
            let mut stream = Vec::new();
            let result =
                simulation::run_rollout(&scenario, &template.judge, seed, Some(&mut stream));
            let mut out: Box<dyn Write> = match &record {
                Some(path) => Box::new(BufWriter::new(
                    File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(io::stdout().lock()),
            };
            for line in &stream {
                writeln!(out, "{}", serde_json::to_string(line)?)?;
            }
            out.flush()?;
            let ending = match result.ending {
                Ending::Promoted => "promoted",
                Ending::RolledBack => "rolled back",
                Ending::Paused => "paused for a human",
            };
            eprintln!(
                "{}: {ending} after {:.0}s, {:.0} canary requests, {:.1} excess bad requests",
                scenario.name, result.seconds, result.canary_requests, result.excess_bad_requests
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Analyze(args) => Ok(match commands::analyze::run(*args)? {
            Decision::Promote | Decision::Continue => ExitCode::SUCCESS,
            Decision::Rollback => ExitCode::from(10),
            Decision::Hold => ExitCode::from(11),
        }),
        Command::Advise(args) => {
            commands::advise::run(*args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => Ok(canary_gate::demo::cli::main(&args)?),
        Command::Controller(args) => {
            commands::controller::run(*args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Gate { command } => {
            commands::gate::run(command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::List {
            namespace,
            all_namespaces,
        } => {
            commands::operator::list(namespace.as_deref(), all_namespaces)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Wait { target, timeout } => {
            Ok(ExitCode::from(commands::operator::wait(&target, timeout)?))
        }
        Command::Get { target, watch } => {
            commands::operator::get(&target, watch)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Promote { target, full } => {
            let request = if full {
                Action::PromoteFull
            } else {
                Action::Promote
            };
            commands::operator::act(&target, request)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Abort(target) => {
            commands::operator::act(&target, Action::Abort)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Retry(target) => {
            commands::operator::act(&target, Action::Retry)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Undo(target) => {
            commands::operator::act(&target, Action::Undo)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(args) => Ok(if commands::import::run(&args)? {
            ExitCode::from(commands::import::LEFT_OUT)
        } else {
            ExitCode::SUCCESS
        }),
        Command::Crd => {
            print!("{}", canary_gate::crd::yaml()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Template {
            command: TemplateCommand::Lint(args),
        } => Ok(if commands::template::lint(args)? > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }),
        Command::Template {
            command: TemplateCommand::Test(args),
        } => Ok(if commands::template::test(*args)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
    }
}
