//! `canary-gate import argo|flagger`: a peer's manifests (Argo Rollouts' `Rollout`,
//! `AnalysisTemplate`, `ClusterAnalysisTemplate`; Flagger's `Canary`, `MetricTemplate`) as
//! canary-gate objects ready to apply, and a report of every field that did not carry over and
//! why. Pure: YAML text in, objects and report out; nothing is read from or written to a cluster.
//!
//! Never a silent drop: every leaf of every input object is either mapped into the output or
//! named in the report ([`fields::Doc`] keeps the account); a field the importer does not know is
//! reported as not carried over. Every Rollout and template written passes canary-gate's own
//! validation (the controller's and `template lint`'s), or is left out with the reason. Objects of
//! other kinds in the input (Services, Ingresses, routes, Deployments …) pass through, adjusted
//! where canary-gate needs it (a Service a router splits traffic to selects
//! `canarygate.dev/version`), so the output replaces the input as a whole.

pub mod argo;
pub mod condition;
pub mod fields;
pub mod flagger;
pub mod gates;
pub mod promql;
pub mod report;
pub mod webhooks;

use serde_json::{Map, Value, json};

use crate::template::spec::AnalysisTemplateSpec;
pub use fields::{Doc, FieldPath};
pub use report::{Category, Entry, Report};

/// Whose manifests are imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Argo Rollouts (`argoproj.io`).
    Argo,
    /// Flagger (`flagger.app`).
    Flagger,
}

impl Peer {
    /// `argo` or `flagger`, as the command line names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Argo => "argo",
            Self::Flagger => "flagger",
        }
    }

    /// The API group of the peer's own kinds.
    pub fn group(self) -> &'static str {
        match self {
            Self::Argo => "argoproj.io",
            Self::Flagger => "flagger.app",
        }
    }
}

/// One input file.
#[derive(Debug, Clone)]
pub struct Input {
    /// How errors and the report name it (the path given).
    pub name: String,
    /// Its text: one or more YAML documents.
    pub text: String,
}

/// One output object with the comment lines written above it.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Comment lines (without `# `).
    pub comment: Vec<String>,
    /// The object.
    pub object: Value,
}

impl Output {
    /// The object's `kind`.
    pub fn kind(&self) -> &str {
        self.object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The object's `metadata.name`.
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// The result of an import.
#[derive(Debug)]
pub struct Import {
    /// The objects to apply, in order.
    pub objects: Vec<Output>,
    /// What did not carry over, what changed, what is suggested.
    pub report: Report,
    /// The input documents with their account of fields (for checking that none was dropped).
    pub docs: Vec<Doc>,
}

/// Errors reading the input.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file is not YAML.
    #[error("{file}: not valid YAML: {message}")]
    Yaml {
        /// The file.
        file: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A document is not a Kubernetes object.
    #[error(
        "{file}: document {document} is not a Kubernetes object (a map with apiVersion and kind)"
    )]
    NotAnObject {
        /// The file.
        file: String,
        /// Its number, from 1.
        document: usize,
    },
    /// None of the input is the peer's.
    #[error(
        "nothing to import: no {group} object in {files} (is this `canary-gate import {other}`?)"
    )]
    Nothing {
        /// The peer's API group.
        group: &'static str,
        /// The files read.
        files: String,
        /// The other peer's command word.
        other: &'static str,
    },
    /// Writing YAML failed.
    #[error("cannot write {kind} {name} as YAML: {message}")]
    Render {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// The serialiser's message.
        message: String,
    },
}

/// Reads every document of every input.
///
/// # Errors
/// When a file is not YAML or a document is not an object.
pub fn parse(inputs: &[Input]) -> Result<Vec<Doc>, ImportError> {
    let mut docs = Vec::new();
    for input in inputs {
        let values: Vec<Value> =
            serde_saphyr::from_multiple(&input.text).map_err(|e| ImportError::Yaml {
                file: input.name.clone(),
                message: e.to_string(),
            })?;
        for (i, value) in values.into_iter().enumerate() {
            if value.is_null() {
                continue;
            }
            if !value.is_object() || value.get("kind").and_then(Value::as_str).is_none() {
                return Err(ImportError::NotAnObject {
                    file: input.name.clone(),
                    document: i + 1,
                });
            }
            docs.push(Doc::new(format!("{}#{}", input.name, i + 1), value));
        }
    }
    Ok(docs)
}

/// Imports `inputs` as `peer`'s manifests.
///
/// # Errors
/// When the input is not YAML, holds something other than objects, or nothing of the peer's.
pub fn import(peer: Peer, inputs: &[Input]) -> Result<Import, ImportError> {
    let docs = parse(inputs)?;
    if !docs.iter().any(|d| is_peers(d, peer)) {
        return Err(ImportError::Nothing {
            group: peer.group(),
            files: inputs
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            other: match peer {
                Peer::Argo => "flagger",
                Peer::Flagger => "argo",
            },
        });
    }
    let mut report = Report::default();
    let objects = match peer {
        Peer::Argo => argo::import(&docs, &mut report),
        Peer::Flagger => flagger::import(&docs, &mut report),
    };
    for doc in &docs {
        report_unknown(doc, &mut report);
    }
    Ok(Import {
        objects,
        report,
        docs,
    })
}

/// Whether `doc` is one of `peer`'s objects.
pub fn is_peers(doc: &Doc, peer: Peer) -> bool {
    doc.value
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.split('/').next())
        .is_some_and(|g| g == peer.group())
}

/// Reports every field nothing accounted for, collapsed to the highest ancestor whose fields
/// are all unaccounted.
fn report_unknown(doc: &Doc, report: &mut Report) {
    let left = doc.unaccounted();
    if left.is_empty() {
        return;
    }
    let mut done: Vec<FieldPath> = Vec::new();
    for leaf in &left {
        if done.iter().any(|d| leaf.starts_with(d)) {
            continue;
        }
        let mut top = leaf.clone();
        while top.0.len() > 2 {
            let parent = FieldPath(top.0[..top.0.len() - 1].to_vec());
            let all_left = doc
                .leaves()
                .iter()
                .filter(|l| l.starts_with(&parent))
                .all(|l| left.contains(l));
            if !all_left {
                break;
            }
            top = parent;
        }
        report.left_out(
            doc,
            &top,
            "canary-gate has no equivalent the importer knows of for this field",
        );
        done.push(top);
    }
}

/// The object's metadata for the output: name, namespace, labels and annotations (those
/// `annotation` keeps: it may report one and return `false`). Fields the API server sets, and
/// `status`, are ignored.
pub(crate) fn metadata(
    doc: &Doc,
    report: &mut Report,
    mut annotation: impl FnMut(&str, &mut Report) -> bool,
) -> Map<String, Value> {
    let mut out = Map::new();
    let meta = FieldPath::parse("metadata");
    for key in doc.keys(&meta) {
        let path = meta.key(&key);
        let value = doc.at(&path).cloned().unwrap_or(Value::Null);
        match key.as_str() {
            "name" | "namespace" | "labels" => {
                doc.mapped(&path);
                out.insert(key, value);
            }
            "annotations" => {
                let mut kept = Map::new();
                for a in doc.keys(&path) {
                    let at = path.key(&a);
                    if a == "kubectl.kubernetes.io/last-applied-configuration" {
                        report.ignored(doc, &at, "written by kubectl apply; it writes it anew");
                    } else if annotation(&a, report) {
                        doc.mapped(&at);
                        kept.insert(a.clone(), doc.at(&at).cloned().unwrap_or(Value::Null));
                    }
                }
                doc.mapped(&path);
                if !kept.is_empty() {
                    out.insert(key, Value::Object(kept));
                }
            }
            "uid" | "resourceVersion" | "generation" | "creationTimestamp" | "managedFields"
            | "selfLink" => {
                report.ignored(doc, &path, "set by the API server");
            }
            _ => {}
        }
    }
    if doc.at(&FieldPath::parse("status")).is_some() {
        report.ignored(
            doc,
            "status",
            "written by the peer's controller; canary-gate writes its own",
        );
    }
    for f in ["apiVersion", "kind"] {
        doc.mapped(f);
    }
    out
}

/// A canary-gate AnalysisTemplate (or ClusterAnalysisTemplate) object.
pub(crate) fn template_object(
    kind: &str,
    metadata: Map<String, Value>,
    spec: &AnalysisTemplateSpec,
) -> Value {
    json!({
        "apiVersion": crate::template::API_VERSION,
        "kind": kind,
        "metadata": metadata,
        "spec": serde_json::to_value(spec).unwrap_or(Value::Null),
    })
}

/// Checks a template the way the controller and `template lint` do (validation, then every
/// query rendered with the declared arguments); the problem when it fails.
pub(crate) fn lint_template(kind: &str, name: &str, spec: &AnalysisTemplateSpec) -> Option<String> {
    let template = match crate::template::from_spec(kind, name, None, spec.clone(), name) {
        Ok(t) => t,
        Err(e) => return Some(e.to_string()),
    };
    crate::metrics::query::lint_bindings(&template)
        .and_then(|b| crate::metrics::query::render_template(&template, &b))
        .err()
        .map(|e| e.to_string())
}

/// The whole output as one multi-document YAML stream with its comments.
///
/// # Errors
/// When an object cannot be serialised.
pub fn render(peer: Peer, files: &[String], objects: &[Output]) -> Result<String, ImportError> {
    let mut out = format!(
        "# Generated by `canary-gate import {}` from {}.\n# The report (stderr or --report) lists every field that did not carry over, what changed and what is suggested.\n",
        peer.name(),
        files.join(", ")
    );
    for o in objects {
        let text = serde_saphyr::to_string(&o.object).map_err(|e| ImportError::Render {
            kind: o.kind().to_string(),
            name: o.name().to_string(),
            message: e.to_string(),
        })?;
        out.push_str("---\n");
        for line in &o.comment {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// A Kubernetes duration from Argo's or Flagger's: an integer is seconds, a string must parse.
pub(crate) fn duration(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n.as_u64().map(|s| format!("{s}s")),
        Value::String(s) => {
            if let Ok(n) = s.parse::<u64>() {
                return Some(format!("{n}s"));
            }
            humantime::parse_duration(s).ok().map(|_| s.clone())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_that_is_not_the_peers_or_not_objects_is_an_error_naming_the_file() {
        let input = |text: &str| {
            vec![Input {
                name: "x.yaml".into(),
                text: text.into(),
            }]
        };
        let err = import(
            Peer::Argo,
            &input("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "nothing to import: no argoproj.io object in x.yaml (is this `canary-gate import flagger`?)"
        );
        let err = import(Peer::Argo, &input("- a\n- b\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("x.yaml: document 1 is not a Kubernetes object"),
            "{err}"
        );
        let err = import(Peer::Argo, &input("kind: [\n"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.yaml: not valid YAML"), "{err}");
    }

    #[test]
    fn durations_are_seconds_or_humantime() {
        assert_eq!(duration(&json!(30)), Some("30s".into()));
        assert_eq!(duration(&json!("1h")), Some("1h".into()));
        assert_eq!(duration(&json!("15")), Some("15s".into()));
        assert_eq!(duration(&json!("soon")), None);
    }
}
