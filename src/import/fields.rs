//! The fields of one peer object and which of them the importer accounted for: every leaf of the
//! input is either mapped into the output or reported, never dropped silently.

use std::cell::RefCell;
use std::fmt;

use serde_json::Value;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    /// A map key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A field path such as `spec.strategy.canary.steps[2].setWeight`; keys that are not plain
/// words print as `["notifications.argoproj.io/subscribe"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    /// The root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// Parses `a.b[2].c` (keys may hold letters, digits, `-` and `_`).
    pub fn parse(text: &str) -> Self {
        let mut segs = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(open) = rest.find('[') {
                if open > 0 {
                    segs.push(Seg::Key(rest[..open].to_string()));
                }
                rest = &rest[open..];
                while let Some(stripped) = rest.strip_prefix('[') {
                    let close = stripped.find(']').unwrap_or(stripped.len());
                    if let Ok(i) = stripped[..close].parse() {
                        segs.push(Seg::Index(i));
                    }
                    rest = stripped.get(close + 1..).unwrap_or("");
                }
            } else {
                segs.push(Seg::Key(rest.to_string()));
            }
        }
        Self(segs)
    }

    /// This path with a key appended.
    pub fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        Self(segs)
    }

    /// This path with a list index appended.
    pub fn index(&self, i: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(i));
        Self(segs)
    }

    /// This path with a relative path (`a.b[1]`) appended.
    pub fn join(&self, rel: &str) -> Self {
        let mut segs = self.0.clone();
        segs.extend(Self::parse(rel).0);
        Self(segs)
    }

    /// Whether `prefix` is this path or one of its ancestors.
    pub fn starts_with(&self, prefix: &FieldPath) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k)
                    if !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
                {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Key(k) => write!(f, "[{k:?}]")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl From<&str> for FieldPath {
    fn from(text: &str) -> Self {
        Self::parse(text)
    }
}

impl From<&FieldPath> for FieldPath {
    fn from(path: &FieldPath) -> Self {
        path.clone()
    }
}

/// How a field was accounted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Carried into the output.
    Mapped,
    /// Named in the report.
    Reported,
}

/// One document of the input: a peer's object with the fields the importer has accounted for.
#[derive(Debug)]
pub struct Doc {
    /// Where it came from: `FILE#N` (N counts documents from 1).
    pub origin: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// The object as written.
    pub value: Value,
    marks: RefCell<Vec<(FieldPath, Mark)>>,
}

impl Doc {
    /// Wraps a parsed document.
    pub fn new(origin: String, value: Value) -> Self {
        let text = |p: &str| value.pointer(p).and_then(Value::as_str).map(str::to_string);
        Self {
            origin,
            kind: text("/kind").unwrap_or_default(),
            name: text("/metadata/name").unwrap_or_default(),
            namespace: text("/metadata/namespace"),
            value,
            marks: RefCell::new(Vec::new()),
        }
    }

    /// `Kind namespace/name (FILE#N)`, how the report names it.
    pub fn label(&self) -> String {
        let name = match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        };
        format!("{} {name} ({})", self.kind, self.origin)
    }

    /// The value at `path`.
    pub fn at(&self, path: &FieldPath) -> Option<&Value> {
        let mut v = &self.value;
        for seg in &path.0 {
            v = match seg {
                Seg::Key(k) => v.as_object()?.get(k)?,
                Seg::Index(i) => v.as_array()?.get(*i)?,
            };
        }
        Some(v)
    }

    /// The value at `path` (`a.b[1].c`).
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.at(&FieldPath::parse(path))
    }

    /// The string at `path`.
    pub fn str(&self, path: &str) -> Option<&str> {
        self.get(path).and_then(Value::as_str)
    }

    /// The keys of the map at `path`, in order.
    pub fn keys(&self, path: &FieldPath) -> Vec<String> {
        self.at(path)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The length of the list at `path` (0 when it is not a list).
    pub fn len(&self, path: &FieldPath) -> usize {
        self.at(path).and_then(Value::as_array).map_or(0, Vec::len)
    }

    /// Marks `path` and everything under it as carried into the output.
    pub fn mapped(&self, path: impl Into<FieldPath>) {
        self.marks.borrow_mut().push((path.into(), Mark::Mapped));
    }

    /// Marks `path` and everything under it as named in the report.
    pub fn reported(&self, path: impl Into<FieldPath>) {
        self.marks.borrow_mut().push((path.into(), Mark::Reported));
    }

    /// How the leaf `path` was accounted for, if it was.
    pub fn mark_of(&self, path: &FieldPath) -> Option<Mark> {
        let marks = self.marks.borrow();
        // A report wins over a mapping of an ancestor: the report says what was not carried.
        let covering = marks.iter().filter(|(p, _)| path.starts_with(p));
        let mut found = None;
        for (_, mark) in covering {
            if *mark == Mark::Reported {
                return Some(Mark::Reported);
            }
            found = Some(*mark);
        }
        found
    }

    /// Every leaf of the object: scalars, nulls, empty maps and empty lists.
    pub fn leaves(&self) -> Vec<FieldPath> {
        fn walk(v: &Value, at: FieldPath, out: &mut Vec<FieldPath>) {
            match v {
                Value::Object(m) if !m.is_empty() => {
                    for (k, child) in m {
                        walk(child, at.key(k), out);
                    }
                }
                Value::Array(a) if !a.is_empty() => {
                    for (i, child) in a.iter().enumerate() {
                        walk(child, at.index(i), out);
                    }
                }
                _ => out.push(at),
            }
        }
        let mut out = Vec::new();
        walk(&self.value, FieldPath::root(), &mut out);
        out
    }

    /// The leaves nothing accounted for yet.
    pub fn unaccounted(&self) -> Vec<FieldPath> {
        self.leaves()
            .into_iter()
            .filter(|p| self.mark_of(p).is_none())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_print_with_indices_and_odd_keys() {
        let p = FieldPath::parse("spec.strategy.canary.steps[2].setWeight");
        assert_eq!(p.to_string(), "spec.strategy.canary.steps[2].setWeight");
        let a = FieldPath::parse("metadata.annotations").key("notifications.argoproj.io/x");
        assert_eq!(
            a.to_string(),
            "metadata.annotations[\"notifications.argoproj.io/x\"]"
        );
        assert!(p.starts_with(&FieldPath::parse("spec.strategy")));
        assert!(!p.starts_with(&FieldPath::parse("spec.strategy.blueGreen")));
    }

    #[test]
    fn every_leaf_is_unaccounted_until_marked_and_a_report_wins_over_a_mapped_ancestor() {
        let doc = Doc::new(
            "f.yaml#1".into(),
            serde_json::json!({"kind": "Rollout", "metadata": {"name": "web"},
                "spec": {"steps": [{"setWeight": 5}, {"pause": {}}], "paused": true}}),
        );
        assert_eq!(doc.leaves().len(), 5);
        doc.mapped("kind");
        doc.mapped("metadata");
        doc.mapped("spec.steps");
        doc.reported("spec.steps[1].pause");
        let left: Vec<String> = doc.unaccounted().iter().map(|p| p.to_string()).collect();
        assert_eq!(left, ["spec.paused"]);
        assert_eq!(
            doc.mark_of(&FieldPath::parse("spec.steps[1].pause")),
            Some(Mark::Reported)
        );
        assert_eq!(
            doc.mark_of(&FieldPath::parse("spec.steps[0].setWeight")),
            Some(Mark::Mapped)
        );
        assert_eq!(doc.label(), "Rollout web (f.yaml#1)");
    }
}
