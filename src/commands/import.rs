//! `canary-gate import argo|flagger FILE…`: a peer's manifests as canary-gate's on stdout (or
//! `--output`), the report on stderr (or `--report`); the exit status says whether anything was
//! left out.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use canary_gate::import::{self, Input, Peer};

/// Exit status when something did not carry over.
pub const LEFT_OUT: u8 = 3;

/// Whose manifests.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum From {
    /// Argo Rollouts: Rollout, AnalysisTemplate, ClusterAnalysisTemplate.
    Argo,
    /// Flagger: Canary, MetricTemplate.
    Flagger,
}

/// Flags of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Whose manifests these are.
    pub from: From,
    /// Manifest files (multi-document YAML); `-` reads stdin.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Write the YAML here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Write the report here instead of stderr.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Runs the import; returns whether anything was left out.
pub fn run(a: &ImportArgs) -> Result<bool> {
    let mut inputs = Vec::new();
    for file in &a.files {
        let text = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin().lock()).context("cannot read stdin")?
        } else {
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?
        };
        inputs.push(Input {
            name: file.display().to_string(),
            text,
        });
    }
    let peer = match a.from {
        From::Argo => Peer::Argo,
        From::Flagger => Peer::Flagger,
    };
    let result = import::import(peer, &inputs)?;
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let yaml = import::render(peer, &names, &result.objects)?;
    match &a.output {
        Some(path) => std::fs::write(path, &yaml)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(yaml.as_bytes())?,
    }
    let text = result.report.render();
    match &a.report {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stderr().lock().write_all(text.as_bytes())?,
    }
    Ok(result.report.any_left_out())
}
