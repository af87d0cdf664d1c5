//! Handlers of the commands that talk to Prometheus (`analyze`, `gate serve`, `template test`,
//! `template lint --prometheus`) or to the cluster (`controller`, `get`, `promote`, …), and the
//! connection flags they share.

pub mod advise;
pub mod analyze;
pub mod controller;
pub mod gate;
pub mod import;
pub mod operator;
pub mod prometheus_args;
pub mod template;

/// Parses a time: unix seconds or RFC 3339 (`2026-11-23T10:00:00Z`).
pub fn parse_time(text: &str) -> anyhow::Result<f64> {
    if let Ok(secs) = text.parse::<f64>() {
        return Ok(secs);
    }
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| {
        anyhow::anyhow!(
            "{text:?} is not a time ({e}); use unix seconds or RFC 3339 like 2026-11-23T10:00:00Z"
        )
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)?.as_secs_f64())
}

/// A single-threaded runtime for a command's I/O.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A source error for the command line: missing arguments get the flag that gives them.
pub fn source_error(e: canary_gate::metrics::prometheus_source::SourceError) -> anyhow::Error {
    use canary_gate::metrics::prometheus_source::SourceError;
    use canary_gate::metrics::query::QueryError;
    match &e {
        SourceError::Query(QueryError::MissingArgs(_)) => {
            anyhow::anyhow!("{e}; give them as --arg NAME=VALUE")
        }
        _ => e.into(),
    }
}
