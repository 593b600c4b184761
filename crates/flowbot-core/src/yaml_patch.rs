//! Write an edited flow document back into its YAML file the way a person editing by hand
//! would: only the lines of what changed are touched; comments, blank lines, key order and
//! the style of everything else stay. The editor's forms change the document; this keeps
//! the file the source of truth.
//!
//! Changed scalars are replaced in place, removed keys and steps lose their lines, added
//! keys and steps are inserted after their neighbours. What cannot be patched that way (a
//! reordered list, a flow-style value turned into a block) is rewritten as one block at
//! its place. The result is checked: it must read back as the new document, or `None`.

use marked_yaml::Node;
use serde_json::Value;

/// One replacement of whole lines `[start, end)` by `lines` (an insertion when equal).
struct Edit {
    start: usize,
    end: usize,
    lines: Vec<String>,
}

struct Patcher<'a> {
    lines: Vec<&'a str>,
    edits: Vec<Edit>,
}

/// The YAML `source` changed so that it reads as `new`; `None` when that cannot be done
/// line by line (the caller then writes the document out whole).
pub fn patch(source: &str, new: &Value) -> Option<String> {
    let old: Value =
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(source).ok()?).ok()?;
    let opts = marked_yaml::LoaderOptions::default().prevent_coercion(true);
    let node = marked_yaml::parse_yaml_with_options(0, source, opts).ok()?;
    let mut p = Patcher {
        lines: source.lines().collect(),
        edits: Vec::new(),
    };
    match (&old, new, &node) {
        (Value::Object(_), Value::Object(_), Node::Mapping(_)) => {
            p.mapping(&old, new, &node)?;
        }
        _ => return None,
    }
    let out = p.apply(source.ends_with('\n'));
    let back: Value =
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&out).ok()?).ok()?;
    same(&back, new).then_some(out)
}

/// Equal as documents: numbers compare by value (1 and 1.0 alike).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

/// Where a node begins (0-based line and column). A block mapping's own marker sits after
/// its first key, so its first key says where it begins.
fn start(node: &Node) -> Option<(usize, usize)> {
    let marker = match node {
        Node::Mapping(m) => match m.iter().next() {
            Some((k, _)) => k.span().start(),
            None => node.span().start(),
        },
        _ => node.span().start(),
    };
    marker.map(|m| (m.line() - 1, m.column() - 1))
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// `value` written as YAML lines (no trailing newline), each indented by `by`.
fn emit(value: &Value, by: usize) -> Option<Vec<String>> {
    let text = serde_yaml::to_string(value).ok()?;
    let pad = " ".repeat(by);
    Some(
        text.lines()
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("{pad}{l}")
                }
            })
            .collect(),
    )
}

fn entry(key: &str, value: &Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(key.to_string(), value.clone());
    Value::Object(m)
}

impl Patcher<'_> {
    /// The last content line of what starts at `from` and is owned by indentation `owner`:
    /// everything after it indented deeper belongs to it. A mapping key (`key`) also owns
    /// `- ` items at its own indentation (`key:` then `- a`, as serde_yaml writes lists).
    fn end(&self, from: usize, owner: usize, key: bool) -> usize {
        let mut last = from;
        for (i, l) in self.lines.iter().enumerate().skip(from + 1) {
            if !content(l) {
                continue;
            }
            let n = indent(l);
            let own_item = key && n == owner && l.trim_start().starts_with("- ");
            if n <= owner && !own_item {
                break;
            }
            last = i;
        }
        last
    }

    fn edit(&mut self, start: usize, end: usize, lines: Vec<String>) {
        self.edits.push(Edit { start, end, lines });
    }

    /// A block mapping: recurse into changed keys, drop removed ones, append new ones.
    fn mapping(&mut self, old: &Value, new: &Value, node: &Node) -> Option<()> {
        let (Value::Object(o), Value::Object(n), Node::Mapping(m)) = (old, new, node) else {
            return None;
        };
        let mut last_end: Option<usize> = None;
        let mut key_col = None;
        for (k, v) in m.iter() {
            let key = k.as_str();
            let (kl, kc) = k.span().start().map(|m| (m.line() - 1, m.column() - 1))?;
            key_col.get_or_insert(kc);
            let e = self.end(kl, kc, true);
            last_end = Some(e);
            match n.get(key) {
                None => self.edit(kl, e + 1, Vec::new()),
                Some(nv) => self.entry(key, o.get(key)?, nv, v, kl, kc)?,
            }
        }
        let added: Vec<(&String, &Value)> = n.iter().filter(|(k, _)| !o.contains_key(*k)).collect();
        if !added.is_empty() {
            let (at, col) = (last_end? + 1, key_col?);
            let mut lines = Vec::new();
            for (k, v) in added {
                lines.extend(emit(&entry(k, v), col)?);
            }
            self.edit(at, at, lines);
        }
        Some(())
    }

    /// `key: value` at line `kl`, column `kc`.
    fn entry(
        &mut self,
        key: &str,
        old: &Value,
        new: &Value,
        node: &Node,
        kl: usize,
        kc: usize,
    ) -> Option<()> {
        if same(old, new) {
            return Some(());
        }
        let (vl, vc) = start(node)?;
        let block = vl > kl;
        match (old, new, node) {
            (Value::Object(_), Value::Object(_), Node::Mapping(_)) if block => {
                return self.mapping(old, new, node)
            }
            (Value::Array(_), Value::Array(_), Node::Sequence(_)) if block => {
                let mark = self.edits.len();
                if self.sequence(old, new, node).is_some() {
                    return Some(());
                }
                // Rewritten whole below: drop what the attempt queued inside it.
                self.edits.truncate(mark);
            }
            _ => {}
        }
        let e = self.end(kl, kc, true);
        // A scalar on its key's line: only the value changes (a trailing comment stays).
        if !block
            && e == kl
            && !old.is_object()
            && !old.is_array()
            && !new.is_object()
            && !new.is_array()
        {
            let lines = emit(new, 0)?;
            if lines.len() == 1 && matches!(node, Node::Scalar(_)) {
                let line = self.lines[kl];
                let rest = line.get(vc..)?;
                let comment = rest
                    .find(" #")
                    .map(|at| {
                        let spaces = rest[..at].len() - rest[..at].trim_end().len();
                        &rest[at - spaces..]
                    })
                    .unwrap_or("");
                let mut text = line.get(..vc)?.to_string();
                text.push_str(&lines[0]);
                text.push_str(comment);
                self.edit(kl, kl + 1, vec![text]);
                return Some(());
            }
        }
        self.edit(kl, e + 1, emit(&entry(key, new), kc)?);
        Some(())
    }

    /// A block sequence: items changed in place; steps (items with an `id`) removed or
    /// added keep the others' lines. Anything else is rewritten whole by the caller.
    fn sequence(&mut self, old: &Value, new: &Value, node: &Node) -> Option<()> {
        let (Value::Array(o), Value::Array(n), Node::Sequence(s)) = (old, new, node) else {
            return None;
        };
        // Each item: its dash line and column, and its last line.
        let mut items = Vec::new();
        for item in s.iter() {
            let (l, c) = start(item)?;
            let dash = c.checked_sub(2)?;
            if self.lines[l].get(dash..dash + 2) != Some("- ") {
                return None;
            }
            items.push((l, dash, self.end(l, dash, false), item));
        }
        let id = |v: &Value| v.get("id").and_then(Value::as_str).map(str::to_string);
        // Steps are matched by id (a moved step makes the list be rewritten, so comments
        // move with their steps); other items by position.
        let ids: Option<(Vec<String>, Vec<String>)> = o
            .iter()
            .map(id)
            .collect::<Option<Vec<_>>>()
            .zip(n.iter().map(id).collect::<Option<Vec<_>>>());
        let Some((old_ids, new_ids)) = ids else {
            if o.len() != n.len() {
                return None;
            }
            for (i, (l, dash, e, item)) in items.iter().enumerate() {
                self.item(&o[i], &n[i], item, *l, *dash, *e)?;
            }
            return Some(());
        };
        let kept_old: Vec<&String> = old_ids.iter().filter(|i| new_ids.contains(i)).collect();
        let kept_new: Vec<&String> = new_ids.iter().filter(|i| old_ids.contains(i)).collect();
        if kept_old != kept_new || items.is_empty() {
            return None;
        }
        let dash = items[0].1;
        for (i, oid) in old_ids.iter().enumerate() {
            let (l, d, e, item) = items[i];
            match new_ids.iter().position(|x| x == oid) {
                None => self.edit(l, e + 1, Vec::new()),
                Some(j) => self.item(&o[i], &n[j], item, l, d, e)?,
            }
        }
        // New steps go after the kept step before them, or before the first item.
        let mut pending: Vec<String> = Vec::new();
        let mut anchor = items[0].0;
        let flush = |p: &mut Vec<String>, at: usize, me: &mut Self| {
            if !p.is_empty() {
                me.edit(at, at, std::mem::take(p));
            }
        };
        for (j, nid) in new_ids.iter().enumerate() {
            match old_ids.iter().position(|x| x == nid) {
                Some(i) => {
                    flush(&mut pending, anchor, self);
                    anchor = items[i].2 + 1;
                }
                None => pending.extend(emit(&Value::Array(vec![n[j].clone()]), dash)?),
            }
        }
        flush(&mut pending, anchor, self);
        Some(())
    }

    /// One `- item` of a sequence, from its dash line `l` to line `e`.
    fn item(
        &mut self,
        old: &Value,
        new: &Value,
        node: &Node,
        l: usize,
        dash: usize,
        e: usize,
    ) -> Option<()> {
        if same(old, new) {
            return Some(());
        }
        if let (Value::Object(_), Value::Object(_), Node::Mapping(_)) = (old, new, node) {
            if start(node)?.0 == l {
                return self.mapping(old, new, node);
            }
        }
        self.edit(l, e + 1, emit(&Value::Array(vec![new.clone()]), dash)?);
        Some(())
    }

    fn apply(mut self, newline: bool) -> String {
        let mut out: Vec<String> = self.lines.iter().map(|l| l.to_string()).collect();
        // Bottom up, so earlier line numbers stay right; at one place, a removal before
        // the insertion that takes its place.
        self.edits
            .sort_by(|a, b| b.start.cmp(&a.start).then(b.end.cmp(&a.end)));
        for e in self.edits {
            out.splice(e.start..e.end, e.lines);
        }
        let mut text = out.join("\n");
        if newline {
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FLOW: &str = "# header comment\nversion: 1\nid: f\nname: Flow   # the name\nconnections:\n  sf: { app: salesforce }\ntrigger: { app: manual }\n\nsteps:\n  # first\n  - id: a\n    set: { x: 1 }\n\n  - id: b\n    app: salesforce\n    action: create_record\n    input:\n      object: Account\n      fields:\n        Name: \"{{ trigger.name }}\"\n";

    fn doc(src: &str) -> Value {
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(src).unwrap()).unwrap()
    }

    #[test]
    fn a_changed_value_touches_only_its_line() {
        let mut d = doc(FLOW);
        d["steps"][1]["input"]["object"] = json!("Contact");
        let out = patch(FLOW, &d).unwrap();
        assert_eq!(out, FLOW.replace("object: Account", "object: Contact"));
    }

    #[test]
    fn an_added_mapping_key_is_one_more_line_after_its_siblings() {
        let mut d = doc(FLOW);
        d["steps"][1]["input"]["fields"]["Phone"] = json!("{{ trigger.tel }}");
        let out = patch(FLOW, &d).unwrap();
        assert_eq!(
            out,
            FLOW.replace(
                "        Name: \"{{ trigger.name }}\"\n",
                "        Name: \"{{ trigger.name }}\"\n        Phone: '{{ trigger.tel }}'\n"
            )
        );
    }

    #[test]
    fn steps_are_added_and_removed_without_touching_the_others() {
        let mut d = doc(FLOW);
        let steps = d["steps"].as_array_mut().unwrap();
        steps.remove(0);
        steps.push(json!({"id": "c", "set": {"y": 2}}));
        let out = patch(FLOW, &d).unwrap();
        assert!(!out.contains("id: a"), "{out}");
        assert!(out.contains("  - id: c\n    set:\n      y: 2\n"), "{out}");
        assert!(out.starts_with("# header comment\n"), "{out}");
        assert!(out.contains("name: Flow   # the name"), "{out}");
        assert!(out.contains("  - id: b\n    app: salesforce\n"), "{out}");
        assert_eq!(doc(&out), d);
    }

    #[test]
    fn a_flow_style_value_that_changes_shape_is_rewritten_at_its_place() {
        let mut d = doc(FLOW);
        d["trigger"] = json!({"app": "ecforce", "events": ["customer_created"]});
        let out = patch(FLOW, &d).unwrap();
        assert!(
            out.contains("trigger:\n  app: ecforce\n  events:\n  - customer_created\n"),
            "{out}"
        );
        assert!(out.contains("  sf: { app: salesforce }"), "{out}");
        assert_eq!(doc(&out), d);
    }

    #[test]
    fn a_trailing_comment_stays_with_its_changed_value() {
        let mut d = doc(FLOW);
        d["name"] = json!("Renamed");
        let out = patch(FLOW, &d).unwrap();
        assert!(out.contains("name: Renamed   # the name\n"), "{out}");
    }

    #[test]
    fn lists_at_their_key_s_indentation_belong_to_the_key() {
        let src = "# keep me\nsteps:\n- id: a\n  set:\n    x: 1\nafter: 1\n";
        let mut d = doc(src);
        d["steps"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "b", "set": {"y": 2}}));
        d["added"] = json!(true);
        let out = patch(src, &d).unwrap();
        assert_eq!(
            out,
            "# keep me\nsteps:\n- id: a\n  set:\n    x: 1\n- id: b\n  set:\n    y: 2\nafter: 1\nadded: true\n"
        );
    }

    #[test]
    fn a_reordered_list_still_reads_back_right() {
        let mut d = doc(FLOW);
        d["steps"].as_array_mut().unwrap().swap(0, 1);
        let out = patch(FLOW, &d);
        // A move rewrites the list; either way the document must be the new one.
        if let Some(out) = out {
            assert_eq!(doc(&out), d);
        }
    }
}
