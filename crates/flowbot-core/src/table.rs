//! Tables: lists flowbot keeps in its own store (Yoom's データベース). Core holds what is
//! pure about them — a table's columns and how a value is checked against its column's
//! type, the order values sort in, and when a table trigger fires — and the boundary the
//! `table` app reaches the store through ([`TableSource`], set around a run like the file
//! source).

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connector::ActionError;
use crate::model::{Condition, Flow, Operator};
use crate::template::Scope;

/// The most columns a table has.
pub const MAX_COLUMNS: usize = 100;
/// The longest `text` (and email, URL, select) value, in characters.
pub const MAX_TEXT: usize = 1_000;
/// The longest `long_text` value, in characters.
pub const MAX_LONG_TEXT: usize = 100_000;
/// The largest row, as JSON.
pub const MAX_ROW_BYTES: usize = 256 * 1024;
/// How many characters of a value its sort key keeps (the index stays small; values that
/// differ only after that sort together).
const SORT_KEY_CHARS: usize = 200;

/// The app id of the table trigger and the table steps.
pub const APP: &str = "table";
/// The table trigger's events.
pub const ROW_CREATED: &str = "row_created";
pub const ROW_UPDATED: &str = "row_updated";
pub const ROW_DELETED: &str = "row_deleted";
/// The event of a run started from the grid's selected rows.
pub const ROW_SELECTED: &str = "row_selected";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Text,
    LongText,
    Number,
    Date,
    Datetime,
    Checkbox,
    Select,
    Email,
    Url,
    File,
    Json,
}

impl ColumnType {
    pub const ALL: [ColumnType; 11] = [
        ColumnType::Text,
        ColumnType::LongText,
        ColumnType::Number,
        ColumnType::Date,
        ColumnType::Datetime,
        ColumnType::Checkbox,
        ColumnType::Select,
        ColumnType::Email,
        ColumnType::Url,
        ColumnType::File,
        ColumnType::Json,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::LongText => "long_text",
            ColumnType::Number => "number",
            ColumnType::Date => "date",
            ColumnType::Datetime => "datetime",
            ColumnType::Checkbox => "checkbox",
            ColumnType::Select => "select",
            ColumnType::Email => "email",
            ColumnType::Url => "url",
            ColumnType::File => "file",
            ColumnType::Json => "json",
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// The name templates and the API use (`{{ trigger.row.email }}`).
    pub key: String,
    /// The heading shown in the grid (the key when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// No two rows hold the same value (empty values excepted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unique: bool,
    /// The values a `select` column takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

/// A table's columns and how its rows are named.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Schema {
    pub columns: Vec<Column>,
    /// The column whose value names a row; none: rows get an automatic id (1, 2, 3 …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
}

/// A problem with one column's value (or with the columns themselves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ValueProblem {
    pub column: String,
    pub message: String,
}

fn problem(column: &str, message: impl Into<String>) -> ValueProblem {
    ValueProblem {
        column: column.to_string(),
        message: message.into(),
    }
}

/// A column key: a letter or `_`-free start, then letters, digits and `_` (templates read
/// it as `row.key`); keys starting with `_` are the row's own (`_id`, `_created_at`).
pub fn is_column_key(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && k.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Schema {
    pub fn column(&self, key: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.key == key)
    }

    /// Every problem of the columns themselves.
    pub fn check(&self) -> Result<(), Vec<ValueProblem>> {
        let mut out = Vec::new();
        if self.columns.is_empty() {
            out.push(problem("", "a table needs at least one column"));
        }
        if self.columns.len() > MAX_COLUMNS {
            out.push(problem(
                "",
                format!("a table has at most {MAX_COLUMNS} columns"),
            ));
        }
        for (i, c) in self.columns.iter().enumerate() {
            if !is_column_key(&c.key) {
                out.push(problem(
                    &c.key,
                    "a column key starts with a letter and holds only letters, digits and `_` (at most 64)",
                ));
            }
            if self.columns[..i].iter().any(|o| o.key == c.key) {
                out.push(problem(&c.key, "two columns have this key"));
            }
            if c.kind == ColumnType::Select && c.choices.is_empty() {
                out.push(problem(&c.key, "a select column needs its choices"));
            }
            if c.unique && matches!(c.kind, ColumnType::File | ColumnType::Json) {
                out.push(problem(&c.key, "a file or JSON column cannot be unique"));
            }
            if c.label.chars().count() > 200 {
                out.push(problem(&c.key, "a label has at most 200 characters"));
            }
        }
        if let Some(pk) = &self.primary_key {
            match self.column(pk) {
                None => out.push(problem(pk, "the primary key is not one of the columns")),
                Some(c)
                    if matches!(
                        c.kind,
                        ColumnType::File | ColumnType::Json | ColumnType::LongText
                    ) =>
                {
                    out.push(problem(
                        pk,
                        "a file, JSON or long text column cannot be the primary key",
                    ))
                }
                Some(_) => {}
            }
        }
        if out.is_empty() {
            Ok(())
        } else {
            Err(out)
        }
    }

    /// Whether `key` must be unique (declared so, or the primary key).
    pub fn is_unique(&self, key: &str) -> bool {
        self.primary_key.as_deref() == Some(key) || self.column(key).is_some_and(|c| c.unique)
    }

    /// Check and normalise values for a row. `whole`: the row is new (required columns
    /// must be there); otherwise only the given columns change. Unknown columns are
    /// refused, so a typo never silently drops a value.
    pub fn check_values(
        &self,
        values: &Map<String, Value>,
        whole: bool,
    ) -> Result<Map<String, Value>, Vec<ValueProblem>> {
        let mut out = Map::new();
        let mut problems = Vec::new();
        for (k, v) in values {
            match self.column(k) {
                None => problems.push(problem(k, format!("the table has no column `{k}`"))),
                Some(c) => match normalize(c, v) {
                    Ok(v) => {
                        out.insert(k.clone(), v);
                    }
                    Err(m) => problems.push(problem(k, m)),
                },
            }
        }
        for c in &self.columns {
            let required = c.required || self.primary_key.as_deref() == Some(&c.key);
            let given = out.get(&c.key);
            let empty = given.is_none_or(Value::is_null);
            if required && empty && (whole || given.is_some()) {
                problems.push(problem(&c.key, "a value is required"));
            }
        }
        if serde_json::to_string(&out).map_or(0, |s| s.len()) > MAX_ROW_BYTES {
            problems.push(problem("", "the row is larger than 256 KiB"));
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }
}

/// A value as its column keeps it: text read as the column's type (a CSV cell, a form's
/// text), checked. Empty text and null are "no value".
pub fn normalize(c: &Column, v: &Value) -> Result<Value, String> {
    if v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty()) {
        return Ok(Value::Null);
    }
    let text = || match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    };
    let bounded = |s: String, max: usize| {
        if s.chars().count() > max {
            Err(format!("at most {max} characters"))
        } else {
            Ok(Value::String(s))
        }
    };
    match c.kind {
        ColumnType::Text => bounded(text(), MAX_TEXT),
        ColumnType::LongText => match v {
            Value::String(s) => bounded(s.clone(), MAX_LONG_TEXT),
            _ => bounded(text(), MAX_LONG_TEXT),
        },
        ColumnType::Number => {
            let n = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().replace([',', '，'], "").parse::<f64>().ok(),
                _ => None,
            };
            match n {
                Some(n) if n.is_finite() => Ok(number(n)),
                _ => Err(format!("`{}` is not a number", text())),
            }
        }
        ColumnType::Date => {
            let s = text().replace('/', "-");
            s.parse::<jiff::civil::Date>()
                .map(|d| Value::String(d.to_string()))
                .map_err(|_| format!("`{}` is not a date (YYYY-MM-DD)", text()))
        }
        ColumnType::Datetime => datetime(&text()).map(Value::String).ok_or_else(|| {
            format!(
                "`{}` is not a date and time (e.g. 2026-04-01 09:30, or 2026-04-01T09:30:00+09:00)",
                text()
            )
        }),
        ColumnType::Checkbox => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            _ => match text().to_lowercase().as_str() {
                "true" | "1" | "yes" | "y" | "on" | "はい" | "✓" | "○" => {
                    Ok(Value::Bool(true))
                }
                "false" | "0" | "no" | "n" | "off" | "いいえ" | "×" => Ok(Value::Bool(false)),
                other => Err(format!("`{other}` is not true or false")),
            },
        },
        ColumnType::Select => {
            let s = text();
            if c.choices.contains(&s) {
                Ok(Value::String(s))
            } else {
                Err(format!("`{s}` is not one of {}", c.choices.join(", ")))
            }
        }
        ColumnType::Email => {
            let s = text();
            let ok = s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            }) && !s.contains(char::is_whitespace);
            if ok {
                bounded(s, MAX_TEXT)
            } else {
                Err(format!("`{s}` is not an email address"))
            }
        }
        ColumnType::Url => {
            let s = text();
            let rest = s
                .strip_prefix("https://")
                .or_else(|| s.strip_prefix("http://"));
            if rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
                && !s.contains(char::is_whitespace)
            {
                bounded(s, MAX_TEXT)
            } else {
                Err(format!("`{s}` is not an http(s) URL"))
            }
        }
        ColumnType::File => match v {
            Value::Object(m) if m.get("id").is_some_and(Value::is_string) => Ok(v.clone()),
            _ => Err("a file is a file reference (a form's or a task's file)".into()),
        },
        ColumnType::Json => match v {
            Value::String(s) => serde_json::from_str(s).map_err(|e| format!("not JSON: {e}")),
            other => Ok(other.clone()),
        },
    }
}

/// Whole numbers stay integers (3000, not 3000.0).
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

/// A date and time as RFC 3339 with its offset; a time without one is Japan's.
fn datetime(s: &str) -> Option<String> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Some(ts.to_string());
    }
    let civil = s.replace('/', "-").parse::<jiff::civil::DateTime>().ok()?;
    let tz = jiff::tz::TimeZone::get("Asia/Tokyo")
        .unwrap_or_else(|_| jiff::tz::TimeZone::fixed(jiff::tz::offset(9)));
    let zoned = civil.to_zoned(tz).ok()?;
    Some(zoned.timestamp().to_string())
}

/// The text a value sorts and is filtered by: byte order is the column's order (numbers
/// and instants encoded so; text as it is, cut to 200 characters). No value: empty.
pub fn sort_key(kind: ColumnType, v: &Value) -> String {
    match (kind, v) {
        (_, Value::Null) => String::new(),
        (ColumnType::Number, Value::Number(n)) => number_key(n.as_f64().unwrap_or(0.0)),
        (ColumnType::Datetime, Value::String(s)) => s
            .parse::<jiff::Timestamp>()
            .map(|t| number_key(t.as_millisecond() as f64))
            .unwrap_or_default(),
        (ColumnType::Checkbox, Value::Bool(b)) => if *b { "1" } else { "0" }.to_string(),
        (_, Value::String(s)) => s.chars().take(SORT_KEY_CHARS).collect(),
        (_, other) => other.to_string().chars().take(SORT_KEY_CHARS).collect(),
    }
}

/// An f64 as 16 hex digits whose byte order is the numbers' order.
pub fn number_key(n: f64) -> String {
    let bits = n.to_bits();
    let ordered = if n.is_sign_negative() {
        !bits
    } else {
        bits | (1 << 63)
    };
    format!("{ordered:016x}")
}

/// A row as steps, templates and the API see it: its values, with `_id` and its stamps.
pub fn row_value(id: &str, values: &Map<String, Value>, created: i64, updated: i64) -> Value {
    let mut out = Map::new();
    out.insert("_id".into(), Value::String(id.to_string()));
    for (k, v) in values {
        out.insert(k.clone(), v.clone());
    }
    out.insert("_created_at".into(), stamp(created));
    out.insert("_updated_at".into(), stamp(updated));
    Value::Object(out)
}

fn stamp(ms: i64) -> Value {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| Value::String(t.to_string()))
        .unwrap_or(Value::Null)
}

// ---- the table trigger ----

/// What a flow with a table trigger watches, kept by the store with the flow so that a
/// row's change queues the runs in its own transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    /// The table's name, in the flow's project.
    pub table: String,
    pub events: Vec<String>,
    /// `row_updated` fires only when one of these changed (none: any column).
    #[serde(default)]
    pub columns: Vec<String>,
    /// `row_updated` (and `row_created`) fire only when this holds for the new row and,
    /// for an update, did not hold before: the condition *starts* to hold.
    #[serde(default)]
    pub condition: Option<Value>,
}

/// A row's change, as a table trigger sees it.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub event: &'a str,
    pub table: &'a str,
    pub row_id: &'a str,
    /// The row after the change (none for a deletion), as [`row_value`] gives it.
    pub row: Option<&'a Value>,
    /// The row before (none for a creation).
    pub previous: Option<&'a Value>,
}

impl Change<'_> {
    /// The obtained value `trigger` of the run.
    pub fn trigger_value(&self) -> Value {
        serde_json::json!({
            "event": self.event,
            "table": self.table,
            "row_id": self.row_id,
            "row": self.row.or(self.previous).cloned().unwrap_or(Value::Null),
            "previous": self.previous.cloned().unwrap_or(Value::Null),
        })
    }
}

/// The table trigger of a flow, if it has one.
pub fn watch_of(flow: &Flow) -> Option<Watch> {
    if flow.trigger.app != APP {
        return None;
    }
    let o = &flow.trigger.options;
    let strings = |k: &str| -> Vec<String> {
        o.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(Watch {
        table: o.get("table").and_then(Value::as_str)?.to_string(),
        events: if flow.trigger.events.is_empty() {
            vec![ROW_CREATED.to_string()]
        } else {
            flow.trigger.events.clone()
        },
        columns: strings("columns"),
        condition: o.get("condition").filter(|c| !c.is_null()).cloned(),
    })
}

impl Watch {
    /// Whether the change starts a run. A condition that cannot be evaluated (a template
    /// error) does not fire: the validator has already checked its shape.
    pub fn fires(&self, change: &Change<'_>) -> bool {
        if change.event == ROW_SELECTED {
            return true;
        }
        if !self.events.iter().any(|e| e == change.event) {
            return false;
        }
        if change.event == ROW_UPDATED && !self.columns.is_empty() {
            let get = |row: Option<&Value>, k: &str| row.and_then(|r| r.get(k)).cloned();
            if !self
                .columns
                .iter()
                .any(|k| get(change.row, k) != get(change.previous, k))
            {
                return false;
            }
        }
        let Some(cond) = &self.condition else {
            return true;
        };
        let Ok(cond) = condition_from_json(cond) else {
            return false;
        };
        let holds = |row: Option<&Value>| {
            let mut scope = Scope::new();
            scope.insert("row".into(), row.cloned().unwrap_or(Value::Null));
            crate::condition::evaluate(&cond, &scope).unwrap_or(false)
        };
        match change.event {
            ROW_UPDATED => holds(change.row) && !holds(change.previous),
            ROW_DELETED => holds(change.previous),
            _ => holds(change.row),
        }
    }
}

/// A condition written as JSON (a trigger option): `{ value, op, to }`, or `{ all: […] }` /
/// `{ any: […] }` of them — the shape of a branch's `if`.
pub fn condition_from_json(v: &Value) -> Result<Condition, String> {
    let Value::Object(m) = v else {
        return Err("a condition is a mapping: `{ value, op, to }`, or `{ all: [...] }`".into());
    };
    for group in ["all", "any"] {
        if let Some(list) = m.get(group) {
            let items = list
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| format!("`{group}` must be a list of at least one condition"))?;
            let conds = items
                .iter()
                .map(condition_from_json)
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if group == "all" {
                Condition::All(conds)
            } else {
                Condition::Any(conds)
            });
        }
    }
    let op_name = m
        .get("op")
        .and_then(Value::as_str)
        .ok_or("a condition needs `op`")?;
    let op = Operator::parse(op_name).ok_or_else(|| format!("unknown operator `{op_name}`"))?;
    let value = m
        .get("value")
        .cloned()
        .ok_or("a condition needs `value`: what to test")?;
    let to = m.get("to").cloned();
    if !op.is_unary() && to.is_none() {
        return Err(format!(
            "operator `{op_name}` needs `to`: what to compare with"
        ));
    }
    Ok(Condition::Compare { value, op, to })
}

// ---- the store, as the `table` app reaches it ----

/// Where the `table` app's actions are carried out: the store, set by whoever runs the
/// flow (the worker) for the run's project.
#[async_trait]
pub trait TableSource: Send + Sync {
    async fn call(&self, action: &str, input: &Map<String, Value>) -> Result<Value, ActionError>;
}

tokio::task_local! {
    static TABLES: Arc<dyn TableSource>;
}

/// Run `f` with `source` as the tables its table steps read and write.
pub async fn with_tables<F: Future>(source: Arc<dyn TableSource>, f: F) -> F::Output {
    TABLES.scope(source, f).await
}

/// Carry out a table action in the run's store.
pub async fn call(action: &str, input: &Map<String, Value>) -> Result<Value, ActionError> {
    let source = TABLES.try_with(Arc::clone).map_err(|_| {
        ActionError::fatal(
            "tables live in flowbot's store: a table step runs only on a server (`flowbot serve` or `flowbot demo`)",
        )
    })?;
    source.call(action, input).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn col(key: &str, kind: ColumnType) -> Column {
        Column {
            key: key.into(),
            label: String::new(),
            kind,
            required: false,
            unique: false,
            choices: vec!["A".into(), "B".into()],
        }
    }

    #[test]
    fn values_are_read_as_their_column_s_type() {
        let n = col("n", ColumnType::Number);
        assert_eq!(normalize(&n, &json!("1,200")).unwrap(), json!(1200));
        assert_eq!(normalize(&n, &json!(1.5)).unwrap(), json!(1.5));
        assert!(normalize(&n, &json!("abc"))
            .unwrap_err()
            .contains("not a number"));
        let d = col("d", ColumnType::Date);
        assert!(normalize(&d, &json!("April"))
            .unwrap_err()
            .contains("YYYY-MM-DD"));
        assert_eq!(
            normalize(&d, &json!("2026/04/01")).unwrap(),
            json!("2026-04-01")
        );
        let t = col("t", ColumnType::Datetime);
        assert_eq!(
            normalize(&t, &json!("2026-04-01 09:30")).unwrap(),
            json!("2026-04-01T00:30:00Z")
        );
        let c = col("c", ColumnType::Checkbox);
        assert_eq!(normalize(&c, &json!("はい")).unwrap(), json!(true));
        assert!(normalize(&col("s", ColumnType::Select), &json!("C")).is_err());
        assert!(normalize(&col("e", ColumnType::Email), &json!("a@b")).is_err());
        assert!(normalize(&col("e", ColumnType::Email), &json!("a@b.jp")).is_ok());
        assert!(normalize(&col("u", ColumnType::Url), &json!("ftp://x")).is_err());
        assert_eq!(
            normalize(&col("j", ColumnType::Json), &json!("[1]")).unwrap(),
            json!([1])
        );
        assert_eq!(normalize(&n, &json!("  ")).unwrap(), Value::Null);
    }

    #[test]
    fn number_keys_sort_as_the_numbers_do() {
        let mut ns = [-1e9, -2.5, -1.0, 0.0, 0.5, 1.0, 10.0, 1e12];
        let keys: Vec<String> = ns.iter().map(|n| number_key(*n)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        ns.reverse();
        assert_ne!(number_key(ns[0]), number_key(ns[1]));
    }

    #[test]
    fn required_and_unknown_columns_are_named() {
        let mut s = Schema {
            columns: vec![col("name", ColumnType::Text), col("n", ColumnType::Number)],
            primary_key: None,
        };
        s.columns[0].required = true;
        let e = s
            .check_values(json!({"n": "x", "nope": 1}).as_object().unwrap(), true)
            .unwrap_err();
        let cols: Vec<&str> = e.iter().map(|p| p.column.as_str()).collect();
        assert_eq!(cols, ["n", "nope", "name"]);
        // An update that leaves the required column alone is fine.
        assert!(s
            .check_values(json!({"n": 2}).as_object().unwrap(), false)
            .is_ok());
    }

    #[test]
    fn an_update_fires_when_its_condition_starts_to_hold() {
        let w = Watch {
            table: "t".into(),
            events: vec![ROW_UPDATED.into()],
            columns: vec![],
            condition: Some(json!({"value": "{{ row.status }}", "op": "equals", "to": "done"})),
        };
        let before = json!({"status": "open"});
        let after = json!({"status": "done"});
        let change = |row: &Value, previous: &Value| {
            let c = Change {
                event: ROW_UPDATED,
                table: "t",
                row_id: "1",
                row: Some(row),
                previous: Some(previous),
            };
            w.fires(&c)
        };
        assert!(change(&after, &before));
        assert!(!change(&after, &after), "it held already");
        assert!(!change(&before, &after));
    }

    #[test]
    fn an_update_watching_columns_ignores_the_others() {
        let w = Watch {
            table: "t".into(),
            events: vec![ROW_UPDATED.into()],
            columns: vec!["email".into()],
            condition: None,
        };
        let (a, b) = (
            json!({"email": "a@x.jp", "n": 1}),
            json!({"email": "a@x.jp", "n": 2}),
        );
        let c = Change {
            event: ROW_UPDATED,
            table: "t",
            row_id: "1",
            row: Some(&b),
            previous: Some(&a),
        };
        assert!(!w.fires(&c));
        let d = json!({"email": "b@x.jp", "n": 2});
        assert!(w.fires(&Change { row: Some(&d), ..c }));
    }
}
