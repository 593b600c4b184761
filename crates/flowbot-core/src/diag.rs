//! Diagnostics with positions.
//!
//! serde_yaml stops at the first error and keeps no positions for values, so the positions
//! come from a second, span-keeping parse (marked-yaml) indexed by field path. Decoding and
//! validation report problems by field path; this module turns a path into a line and column.

use std::collections::HashMap;
use std::fmt;

use marked_yaml::Node;

/// One problem in a flow file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    /// The field path, e.g. `steps[2].input.url` (empty for the whole file).
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Line and column (both 1-based) of each key and value, by field path.
#[derive(Debug, Default)]
pub struct Positions {
    keys: HashMap<String, (usize, usize)>,
    values: HashMap<String, (usize, usize)>,
    /// Whether the scalar at a path was written in quotes (its text starts one column later).
    quoted: HashMap<String, bool>,
}

impl Positions {
    /// Index a YAML source. A file the span parser cannot read (it refuses anchors and
    /// tags, which serde_yaml accepts) yields an empty index: every problem is then
    /// reported at 1:1 rather than not at all.
    pub fn index(source: &str) -> Positions {
        let mut p = Positions::default();
        let opts = marked_yaml::LoaderOptions::default().prevent_coercion(true);
        if let Ok(node) = marked_yaml::parse_yaml_with_options(0, source, opts) {
            p.walk(&node, String::new());
        }
        p
    }

    fn walk(&mut self, node: &Node, path: String) {
        if let Some(m) = node.span().start() {
            self.values.insert(path.clone(), (m.line(), m.column()));
        }
        match node {
            Node::Scalar(s) => {
                self.quoted.insert(path, !s.may_coerce());
            }
            Node::Mapping(map) => {
                for (k, v) in map.iter() {
                    let child = join_key(&path, k.as_str());
                    if let Some(m) = k.span().start() {
                        self.keys.insert(child.clone(), (m.line(), m.column()));
                    }
                    self.walk(v, child);
                }
            }
            Node::Sequence(seq) => {
                for (i, v) in seq.iter().enumerate() {
                    self.walk(v, format!("{path}[{i}]"));
                }
            }
        }
    }

    /// Where the key of `path` stands (for "unknown key" and "missing" problems).
    pub fn key(&self, path: &str) -> (usize, usize) {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.value(path))
    }

    /// Where the value at `path` stands, or the nearest enclosing value that has a position.
    pub fn value(&self, path: &str) -> (usize, usize) {
        // What is missing from the whole file is reported at its start.
        if path.is_empty() {
            return (1, 1);
        }
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match parent(p) {
                Some("") | None => return (1, 1),
                Some(up) => p = up,
            }
        }
    }

    pub fn is_quoted(&self, path: &str) -> bool {
        self.quoted.get(path).copied().unwrap_or(false)
    }
}

pub fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Collects diagnostics, resolving paths to positions as they are reported.
pub struct Sink<'p> {
    pos: &'p Positions,
    pub diags: Vec<Diagnostic>,
}

impl<'p> Sink<'p> {
    pub fn new(pos: &'p Positions) -> Self {
        Sink {
            pos,
            diags: Vec::new(),
        }
    }

    pub fn at_value(&mut self, path: &str, message: impl Into<String>) {
        let (line, column) = self.pos.value(path);
        self.push(line, column, path, message.into());
    }

    pub fn at_key(&mut self, path: &str, message: impl Into<String>) {
        let (line, column) = self.pos.key(path);
        self.push(line, column, path, message.into());
    }

    /// A problem inside a template string: `line`/`offset` are within the template text.
    pub fn in_template(&mut self, path: &str, tline: usize, tcol: usize, message: String) {
        let (line, column) = self.pos.value(path);
        let quote = usize::from(self.pos.is_quoted(path));
        let (line, column) = if tline <= 1 {
            (line, column + quote + tcol.saturating_sub(1))
        } else {
            (line + tline - 1, tcol.max(1))
        };
        self.push(line, column, path, message);
    }

    fn push(&mut self, line: usize, column: usize, path: &str, message: String) {
        // One problem, one line: messages from libraries may span several.
        let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
        self.diags.push(Diagnostic {
            line,
            column,
            path: path.to_string(),
            message,
        });
    }

    pub fn positions(&self) -> &Positions {
        self.pos
    }
}

/// "did you mean `x`?" for a misspelt name among the allowed ones.
pub fn suggest<'a>(got: &str, allowed: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    allowed
        .into_iter()
        .map(|a| (strsim::jaro_winkler(got, a), a))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| a)
}

/// The message tail for an unknown name: a suggestion if one is close, else the choices.
pub fn did_you_mean(got: &str, allowed: &[&str]) -> String {
    match suggest(got, allowed.iter().copied()) {
        Some(s) => format!("; did you mean `{s}`?"),
        None if allowed.is_empty() => String::new(),
        None => format!(
            " (expected one of: {})",
            allowed
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_indexed_by_path() {
        let src = "a: 1\nsteps:\n  - id: x\n    input:\n      url: \"http://h\"\n";
        let p = Positions::index(src);
        assert_eq!(p.key("steps"), (2, 1));
        assert_eq!(p.key("steps[0].id"), (3, 5));
        assert_eq!(p.value("steps[0].input.url"), (5, 12));
        assert!(p.is_quoted("steps[0].input.url"));
        // A path with no entry of its own falls back to its nearest parent.
        assert_eq!(p.value("steps[0].input.url.deeper"), (5, 12));
    }

    #[test]
    fn suggestions_only_when_close() {
        assert_eq!(suggest("stpes", ["steps", "trigger"]), Some("steps"));
        assert_eq!(suggest("zzz", ["steps", "trigger"]), None);
    }
}
