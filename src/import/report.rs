//! The import report: every field that did not carry over (and why), what carried over with a
//! different meaning, what the importer suggests beyond the input, and what it ignored.

use std::fmt::Write as _;

use super::fields::{Doc, FieldPath};

/// What happened to a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    /// Not carried over: canary-gate has no equivalent, or the user must act outside the output.
    LeftOut,
    /// Carried over, but canary-gate does it differently; the message says how.
    Changed,
    /// Not in the input: something the importer recommends (e.g. a canary-vs-stable comparison).
    Suggested,
    /// Deliberately not imported and nothing to do (status, fields the API server sets).
    Ignored,
}

impl Category {
    /// The word the report prints.
    pub fn word(self) -> &'static str {
        match self {
            Self::LeftOut => "LEFT OUT",
            Self::Changed => "CHANGED",
            Self::Suggested => "SUGGESTED",
            Self::Ignored => "IGNORED",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What happened.
    pub category: Category,
    /// The input object (`Kind ns/name (FILE#N)`).
    pub object: String,
    /// The field, e.g. `spec.strategy.canary.steps[1].experiment` (empty: the whole object).
    pub path: String,
    /// Why, and what to do.
    pub message: String,
}

/// Everything the import has to tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// In the order found.
    pub entries: Vec<Entry>,
}

impl Report {
    fn push(&mut self, category: Category, doc: &Doc, path: &FieldPath, message: String) {
        self.entries.push(Entry {
            category,
            object: doc.label(),
            path: path.to_string(),
            message,
        });
    }

    /// `path` of `doc` did not carry over, because `why`.
    pub fn left_out(&mut self, doc: &Doc, path: impl Into<FieldPath>, why: impl Into<String>) {
        let path = path.into();
        doc.reported(&path);
        self.push(Category::LeftOut, doc, &path, why.into());
    }

    /// `path` of `doc` carried over, differently: `how`.
    pub fn changed(&mut self, doc: &Doc, path: impl Into<FieldPath>, how: impl Into<String>) {
        let path = path.into();
        doc.mapped(&path);
        self.push(Category::Changed, doc, &path, how.into());
    }

    /// A recommendation about `path` of `doc` that goes beyond the input.
    pub fn suggested(&mut self, doc: &Doc, path: impl Into<FieldPath>, what: impl Into<String>) {
        self.push(Category::Suggested, doc, &path.into(), what.into());
    }

    /// `path` of `doc` is deliberately not imported: `why`.
    pub fn ignored(&mut self, doc: &Doc, path: impl Into<FieldPath>, why: impl Into<String>) {
        let path = path.into();
        doc.reported(&path);
        self.push(Category::Ignored, doc, &path, why.into());
    }

    /// Whether anything was left out (the CLI's exit status 3).
    pub fn any_left_out(&self) -> bool {
        self.entries.iter().any(|e| e.category == Category::LeftOut)
    }

    /// How many entries of `category` there are.
    pub fn count(&self, category: Category) -> usize {
        self.entries
            .iter()
            .filter(|e| e.category == category)
            .count()
    }

    /// The report as text: one block per entry, left-out entries first.
    pub fn render(&self) -> String {
        let mut entries: Vec<&Entry> = self.entries.iter().collect();
        entries.sort_by_key(|e| e.category);
        let mut out = String::new();
        for e in entries {
            let field = if e.path.is_empty() {
                String::new()
            } else {
                format!(" {}", e.path)
            };
            let _ = writeln!(out, "{:<9} {}{field}", e.category.word(), e.object);
            let _ = writeln!(out, "          {}", e.message);
        }
        let _ = writeln!(
            out,
            "{} left out, {} changed, {} suggested, {} ignored",
            self.count(Category::LeftOut),
            self.count(Category::Changed),
            self.count(Category::Suggested),
            self.count(Category::Ignored)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_out_entries_come_first_and_mark_their_field() {
        let doc = Doc::new(
            "r.yaml#1".into(),
            serde_json::json!({"kind": "Rollout", "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"paused": true, "replicas": 3}}),
        );
        let mut report = Report::default();
        report.changed(&doc, "spec.replicas", "on the Deployment");
        report.left_out(&doc, "spec.paused", "canary-gate has no paused Rollouts");
        assert!(report.any_left_out());
        assert!(
            doc.unaccounted()
                .iter()
                .all(|p| !p.to_string().starts_with("spec"))
        );
        let text = report.render();
        assert!(
            text.starts_with(
                "LEFT OUT  Rollout shop/web (r.yaml#1) spec.paused\n          canary-gate has no paused Rollouts\nCHANGED"
            ),
            "{text}"
        );
        assert!(text.ends_with("1 left out, 1 changed, 0 suggested, 0 ignored\n"));
    }
}
