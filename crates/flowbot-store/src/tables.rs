//! Tables: their columns, their rows, the grid's pages, and the table trigger. A row's
//! change and the runs it starts are written in one transaction (`apply`), whoever makes
//! it — the grid, the API, a CSV import or a flow's table step — so no change is missed
//! or doubled.

use flowbot_core::table::{
    number_key, row_value, sort_key, Change, ColumnType, Schema, ValueProblem, Watch, ROW_CREATED,
    ROW_DELETED, ROW_SELECTED, ROW_UPDATED,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sqlx::{AnyConnection, Row};

use flowbot_core::ActionError;

use crate::audit::{audit, Actor};
use crate::inbox::{insert_event, NewEvent, Source};
use crate::{new_id, Result, Store, StoreError};

/// The most rows one write changes (an import is cut into writes of this size).
pub const MAX_ROWS_PER_WRITE: usize = 1_000;
/// The most rows a page holds.
pub const MAX_PAGE: i64 = 500;
/// The most problems an answer lists.
const MAX_PROBLEMS: usize = 100;
/// A filtered count stops here ("10,000+").
pub const COUNT_CAP: i64 = 10_000;

/// A table as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TableInfo {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub schema: Schema,
    pub rows: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A problem with one row of a write: its place in the write (0-based; an import adds
/// its own offset), the column, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RowProblem {
    pub index: usize,
    pub column: String,
    pub message: String,
}

/// One change of a write.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RowOp {
    Add {
        values: Map<String, Value>,
    },
    Update {
        id: String,
        values: Map<String, Value>,
    },
    /// The row whose `key` column holds the value given for it: updated, or added.
    Upsert {
        key: String,
        values: Map<String, Value>,
    },
    Delete {
        id: String,
    },
}

/// Who changes the rows: a member (audited) or a flow's run (its record is the trace).
#[derive(Debug, Clone)]
pub enum Writer {
    Member(Actor),
    Run(String),
}

/// What a write did to each of its rows, in order: the row after (before, for a deletion).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Written {
    pub rows: Vec<Value>,
    /// For each row, whether the write added it.
    pub created: Vec<bool>,
    /// Runs queued by table triggers.
    pub runs: usize,
}

/// How a grid page is asked for.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RowQuery {
    /// A column key; none: the order rows were added in.
    pub sort: Option<String>,
    pub desc: bool,
    pub filters: Vec<RowFilter>,
    /// Text anywhere in the row.
    pub search: Option<String>,
    /// The page after this cursor (a page's `next`).
    pub after: Option<String>,
    /// The page before this cursor (a page's `prev`).
    pub before: Option<String>,
    pub limit: i64,
    /// Count every match (a step's count), not up to [`COUNT_CAP`] (a grid's).
    #[serde(default)]
    pub exact_count: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RowFilter {
    pub column: String,
    pub op: FilterOp,
    #[serde(default)]
    pub value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    Equals,
    NotEquals,
    Contains,
    GreaterThan,
    LessThan,
    IsEmpty,
    IsNotEmpty,
}

impl FilterOp {
    pub fn parse(s: &str) -> Option<FilterOp> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

/// A page of rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Page {
    pub rows: Vec<Value>,
    /// The cursor of the next page, when there is one.
    pub next: Option<String>,
    /// The cursor of the previous page, when there is one.
    pub prev: Option<String>,
    /// The rows that match (at most [`COUNT_CAP`] counted when filtered); counted on a
    /// first page only (none on the pages after it).
    pub total: Option<i64>,
    pub total_capped: bool,
}

/// The pseudo-column of the insertion order.
const SEQ: &str = "_seq";

fn table_row(row: &sqlx::any::AnyRow) -> Result<TableInfo> {
    let schema: String = row.try_get("schema")?;
    Ok(TableInfo {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        schema: serde_json::from_str(&schema)
            .map_err(|e| StoreError::Corrupt(format!("a table's columns: {e}")))?,
        rows: row.try_get("row_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const TABLE_COLUMNS: &str = "id, project_id, name, schema, row_count, created_at, updated_at";

fn invalid(problems: Vec<ValueProblem>, index: usize) -> Vec<RowProblem> {
    problems
        .into_iter()
        .map(|p| RowProblem {
            index,
            column: p.column,
            message: p.message,
        })
        .collect()
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(StoreError::InvalidRows(vec![RowProblem {
            index: 0,
            column: "name".into(),
            message: "a table's name has 1 to 100 characters".into(),
        }]));
    }
    Ok(name.to_string())
}

fn check_schema(schema: &Schema) -> Result<()> {
    schema
        .check()
        .map_err(|p| StoreError::InvalidRows(invalid(p, 0)))
}

async fn load_table(conn: &mut AnyConnection, id: &str) -> Result<TableInfo> {
    let row = sqlx::query(&format!(
        "SELECT {TABLE_COLUMNS} FROM data_tables WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("table `{id}` not found")))?;
    table_row(&row)
}

/// The text a unique column's value is kept under.
fn unique_value(kind: ColumnType, v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if kind == ColumnType::Number => {
            Some(number_key(n.as_f64().unwrap_or(0.0)))
        }
        other => Some(other.to_string()),
    }
}

/// A row's id when the table has a primary key: its value as text.
fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

struct Stored {
    values: Map<String, Value>,
    created: i64,
    updated: i64,
}

async fn stored_row(conn: &mut AnyConnection, table: &str, id: &str) -> Result<Option<Stored>> {
    let row = sqlx::query(
        "SELECT data, created_at, updated_at FROM table_rows WHERE table_id = $1 AND row_id = $2",
    )
    .bind(table.to_string())
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        let data: String = r.try_get("data")?;
        Ok(Stored {
            values: serde_json::from_str(&data)
                .map_err(|e| StoreError::Corrupt(format!("a table row: {e}")))?,
            created: r.try_get("created_at")?,
            updated: r.try_get("updated_at")?,
        })
    })
    .transpose()
}

/// Write a row's sort keys: every column's (and the insertion order's, on a new row).
async fn write_cells(
    conn: &mut AnyConnection,
    t: &TableInfo,
    id: &str,
    values: &Map<String, Value>,
    only: Option<&[String]>,
    seq: Option<i64>,
) -> Result<()> {
    let mut cells: Vec<(String, String)> = t
        .schema
        .columns
        .iter()
        .filter(|c| only.is_none_or(|o| o.contains(&c.key)))
        .map(|c| {
            let v = values.get(&c.key).unwrap_or(&Value::Null);
            (c.key.clone(), sort_key(c.kind, v))
        })
        .collect();
    if let Some(seq) = seq {
        cells.push((SEQ.to_string(), number_key(seq as f64)));
    }
    if cells.is_empty() {
        return Ok(());
    }
    if only.is_some() {
        let mut q = String::from(
            "DELETE FROM table_cells WHERE table_id = $1 AND row_id = $2 AND col IN (",
        );
        for i in 0..cells.len() {
            q.push_str(&format!("{}${}", if i > 0 { ", " } else { "" }, i + 3));
        }
        q.push(')');
        let mut query = sqlx::query(&q).bind(t.id.clone()).bind(id.to_string());
        for (c, _) in &cells {
            query = query.bind(c.clone());
        }
        query.execute(&mut *conn).await?;
    }
    // One statement for the row's cells.
    let mut q = String::from("INSERT INTO table_cells (table_id, col, row_id, sort_key) VALUES ");
    for i in 0..cells.len() {
        q.push_str(&format!(
            "{}($1, ${}, $2, ${})",
            if i > 0 { ", " } else { "" },
            2 * i + 3,
            2 * i + 4
        ));
    }
    let mut query = sqlx::query(&q).bind(t.id.clone()).bind(id.to_string());
    for (c, k) in cells {
        query = query.bind(c).bind(k);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Claim the unique values of a row; a value another row holds is a problem.
async fn claim_uniques(
    conn: &mut AnyConnection,
    t: &TableInfo,
    id: &str,
    values: &Map<String, Value>,
    only: Option<&[String]>,
    index: usize,
) -> Result<Vec<RowProblem>> {
    let mut problems = Vec::new();
    for c in &t.schema.columns {
        if !t.schema.is_unique(&c.key) || only.is_some_and(|o| !o.contains(&c.key)) {
            continue;
        }
        if only.is_some() {
            sqlx::query(
                "DELETE FROM table_uniques WHERE table_id = $1 AND col = $2 AND row_id = $3",
            )
            .bind(t.id.clone())
            .bind(c.key.clone())
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
        }
        let Some(v) = values.get(&c.key).and_then(|v| unique_value(c.kind, v)) else {
            continue;
        };
        let holder: Option<String> = sqlx::query_scalar(
            "SELECT row_id FROM table_uniques WHERE table_id = $1 AND col = $2 AND value = $3",
        )
        .bind(t.id.clone())
        .bind(c.key.clone())
        .bind(v.clone())
        .fetch_optional(&mut *conn)
        .await?;
        match holder {
            Some(other) if other != id => problems.push(RowProblem {
                index,
                column: c.key.clone(),
                message: format!("row {other} has this value already: `{}` is unique", c.key),
            }),
            Some(_) => {}
            None => {
                sqlx::query(
                    "INSERT INTO table_uniques (table_id, col, value, row_id) VALUES ($1, $2, $3, $4)",
                )
                .bind(t.id.clone())
                .bind(c.key.clone())
                .bind(v)
                .bind(id.to_string())
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(problems)
}

/// A flow watching the table, as the watch was saved with its version.
struct Watcher {
    flow_id: String,
    watch: Watch,
    concurrency_key: Option<String>,
}

/// The flows a change of the table starts (those ON), or — for a run on selected rows —
/// the one flow asked for, ON or not.
async fn watchers(
    conn: &mut AnyConnection,
    t: &TableInfo,
    flow: Option<&str>,
) -> Result<Vec<Watcher>> {
    let sql = format!(
        "SELECT w.flow_id, w.spec FROM table_watches w JOIN flows f ON f.id = w.flow_id \
         WHERE w.table_name = $1 AND f.project_id = $2 {}",
        match flow {
            None => "AND f.enabled <> 0 ORDER BY w.flow_id",
            Some(_) => "AND w.flow_id = $3",
        }
    );
    let mut query = sqlx::query(&sql)
        .bind(t.name.clone())
        .bind(t.project_id.clone());
    if let Some(f) = flow {
        query = query.bind(f.to_string());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            let spec: String = r.try_get("spec")?;
            let spec: WatchSpec = serde_json::from_str(&spec)
                .map_err(|e| StoreError::Corrupt(format!("a table trigger: {e}")))?;
            Ok(Watcher {
                flow_id: r.try_get("flow_id")?,
                watch: spec.watch,
                concurrency_key: spec.concurrency_key,
            })
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
struct WatchSpec {
    watch: Watch,
    concurrency_key: Option<String>,
}

/// Keep what a flow's trigger watches with its new version (inside the import's write).
pub(crate) async fn set_watch(conn: &mut AnyConnection, flow_id: &str, yaml: &str) -> Result<()> {
    let decoded = flowbot_core::decode::decode(yaml, &Default::default());
    let spec = decoded.flow.as_ref().and_then(|f| {
        flowbot_core::table::watch_of(f).map(|watch| WatchSpec {
            watch,
            concurrency_key: f.concurrency_key.clone(),
        })
    });
    sqlx::query("DELETE FROM table_watches WHERE flow_id = $1")
        .bind(flow_id.to_string())
        .execute(&mut *conn)
        .await?;
    if let Some(spec) = spec {
        sqlx::query("INSERT INTO table_watches (flow_id, table_name, spec) VALUES ($1, $2, $3)")
            .bind(flow_id.to_string())
            .bind(spec.watch.table.clone())
            .bind(serde_json::to_string(&spec).unwrap_or_default())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Queue the runs a change starts, in the caller's transaction.
async fn fire(
    conn: &mut AnyConnection,
    now: i64,
    watchers: &[Watcher],
    change: &Change<'_>,
    source: Source,
) -> Result<usize> {
    let mut queued = 0;
    for w in watchers {
        if !w.watch.fires(change) {
            continue;
        }
        let trigger = change.trigger_value();
        let key = match &w.concurrency_key {
            None => Ok(None),
            Some(t) => flowbot_core::runner::render_key(t, &trigger),
        };
        let ev = NewEvent {
            flow_id: w.flow_id.clone(),
            flow_version: None,
            source,
            headers: json!({}),
            body: trigger.clone(),
            trigger,
            concurrency_key: key,
            dedupe: None,
            files: Vec::new(),
        };
        if matches!(
            insert_event(conn, now, &ev).await?,
            crate::EnqueueOutcome::Queued { .. }
        ) {
            queued += 1;
        }
    }
    Ok(queued)
}

/// Carry out a write's changes in order, with the runs they start; any problem undoes
/// the whole write (the caller's savepoint), and every problem is reported.
async fn apply(
    conn: &mut AnyConnection,
    now: i64,
    table_id: &str,
    ops: &[RowOp],
) -> Result<Written> {
    let t = load_table(conn, table_id).await?;
    let watchers = watchers(conn, &t, None).await?;
    let mut problems: Vec<RowProblem> = Vec::new();
    let mut rows = Vec::new();
    let mut created = Vec::new();
    let mut runs = 0;
    let mut added = 0i64;
    let mut deleted = 0i64;
    for (index, op) in ops.iter().enumerate() {
        if problems.len() >= MAX_PROBLEMS {
            break;
        }
        // An upsert is an update of the row holding the key's value, or an add.
        let op = match op {
            RowOp::Upsert { key, values } => {
                let Some(col) = t.schema.column(key).filter(|_| t.schema.is_unique(key)) else {
                    problems.push(RowProblem {
                        index,
                        column: key.clone(),
                        message: format!("`{key}` is not a unique column of the table: an upsert finds its row by one"),
                    });
                    continue;
                };
                let v = values
                    .get(key)
                    .map(|v| flowbot_core::table::normalize(col, v))
                    .transpose();
                let v = match v {
                    Ok(Some(v)) if !v.is_null() => v,
                    Ok(_) => {
                        problems.push(RowProblem {
                            index,
                            column: key.clone(),
                            message: "an upsert needs a value for its key column".into(),
                        });
                        continue;
                    }
                    Err(m) => {
                        problems.push(RowProblem {
                            index,
                            column: key.clone(),
                            message: m,
                        });
                        continue;
                    }
                };
                let holder: Option<String> = sqlx::query_scalar(
                    "SELECT row_id FROM table_uniques WHERE table_id = $1 AND col = $2 AND value = $3",
                )
                .bind(t.id.clone())
                .bind(key.clone())
                .bind(unique_value(col.kind, &v).unwrap_or_default())
                .fetch_optional(&mut *conn)
                .await?;
                match holder {
                    Some(id) => RowOp::Update {
                        id,
                        values: values.clone(),
                    },
                    None => RowOp::Add {
                        values: values.clone(),
                    },
                }
            }
            other => other.clone(),
        };
        match op {
            RowOp::Add { values } => {
                let values = match t.schema.check_values(&values, true) {
                    Ok(v) => v,
                    Err(p) => {
                        problems.extend(invalid(p, index));
                        continue;
                    }
                };
                let seq: i64 = sqlx::query_scalar(
                    "UPDATE data_tables SET next_row = next_row + 1 WHERE id = $1 RETURNING next_row - 1",
                )
                .bind(t.id.clone())
                .fetch_one(&mut *conn)
                .await?;
                let id = match &t.schema.primary_key {
                    Some(pk) => {
                        key_text(values.get(pk).unwrap_or(&Value::Null)).unwrap_or_default()
                    }
                    None => seq.to_string(),
                };
                let p = claim_uniques(conn, &t, &id, &values, None, index).await?;
                if !p.is_empty() {
                    problems.extend(p);
                    continue;
                }
                if !problems.is_empty() {
                    // Checked on, not written: the write is undone anyway.
                    continue;
                }
                sqlx::query(
                    "INSERT INTO table_rows (table_id, row_id, data, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
                )
                .bind(t.id.clone())
                .bind(id.clone())
                .bind(Value::Object(values.clone()).to_string())
                .bind(now)
                .execute(&mut *conn)
                .await?;
                write_cells(conn, &t, &id, &values, None, Some(seq)).await?;
                added += 1;
                let row = row_value(&id, &values, now, now);
                let change = Change {
                    event: ROW_CREATED,
                    table: &t.name,
                    row_id: &id,
                    row: Some(&row),
                    previous: None,
                };
                runs += fire(conn, now, &watchers, &change, Source::Table).await?;
                rows.push(row);
                created.push(true);
            }
            RowOp::Update { id, values } => {
                let Some(before) = stored_row(conn, &t.id, &id).await? else {
                    problems.push(RowProblem {
                        index,
                        column: "_id".into(),
                        message: format!("the table has no row {id}"),
                    });
                    continue;
                };
                let changes = match t.schema.check_values(&values, false) {
                    Ok(v) => v,
                    Err(p) => {
                        problems.extend(invalid(p, index));
                        continue;
                    }
                };
                if let Some(pk) = &t.schema.primary_key {
                    if changes
                        .get(pk)
                        .is_some_and(|v| before.values.get(pk) != Some(v))
                    {
                        problems.push(RowProblem {
                            index,
                            column: pk.clone(),
                            message:
                                "the primary key of a row does not change: add a new row instead"
                                    .into(),
                        });
                        continue;
                    }
                }
                let mut after = before.values.clone();
                let mut changed: Vec<String> = Vec::new();
                for (k, v) in changes {
                    if after.get(&k).unwrap_or(&Value::Null) != &v {
                        changed.push(k.clone());
                    }
                    if v.is_null() {
                        after.remove(&k);
                    } else {
                        after.insert(k, v);
                    }
                }
                let previous = row_value(&id, &before.values, before.created, before.updated);
                if changed.is_empty() {
                    // Nothing changes: no stamp moves and no trigger fires (a flow writing
                    // back what a row holds does not start itself again).
                    rows.push(previous);
                    created.push(false);
                    continue;
                }
                let p = claim_uniques(conn, &t, &id, &after, Some(&changed), index).await?;
                if !p.is_empty() {
                    problems.extend(p);
                    continue;
                }
                if !problems.is_empty() {
                    continue;
                }
                sqlx::query(
                    "UPDATE table_rows SET data = $3, updated_at = $4 WHERE table_id = $1 AND row_id = $2",
                )
                .bind(t.id.clone())
                .bind(id.clone())
                .bind(Value::Object(after.clone()).to_string())
                .bind(now)
                .execute(&mut *conn)
                .await?;
                write_cells(conn, &t, &id, &after, Some(&changed), None).await?;
                let row = row_value(&id, &after, before.created, now);
                let change = Change {
                    event: ROW_UPDATED,
                    table: &t.name,
                    row_id: &id,
                    row: Some(&row),
                    previous: Some(&previous),
                };
                runs += fire(conn, now, &watchers, &change, Source::Table).await?;
                rows.push(row);
                created.push(false);
            }
            RowOp::Delete { id } => {
                let Some(before) = stored_row(conn, &t.id, &id).await? else {
                    problems.push(RowProblem {
                        index,
                        column: "_id".into(),
                        message: format!("the table has no row {id}"),
                    });
                    continue;
                };
                if !problems.is_empty() {
                    continue;
                }
                for sql in [
                    "DELETE FROM table_rows WHERE table_id = $1 AND row_id = $2",
                    "DELETE FROM table_cells WHERE table_id = $1 AND row_id = $2",
                    "DELETE FROM table_uniques WHERE table_id = $1 AND row_id = $2",
                ] {
                    sqlx::query(sql)
                        .bind(t.id.clone())
                        .bind(id.clone())
                        .execute(&mut *conn)
                        .await?;
                }
                deleted += 1;
                let previous = row_value(&id, &before.values, before.created, before.updated);
                let change = Change {
                    event: ROW_DELETED,
                    table: &t.name,
                    row_id: &id,
                    row: None,
                    previous: Some(&previous),
                };
                runs += fire(conn, now, &watchers, &change, Source::Table).await?;
                rows.push(previous);
                created.push(false);
            }
            RowOp::Upsert { .. } => unreachable!("an upsert became an add or an update"),
        }
    }
    if !problems.is_empty() {
        return Err(StoreError::InvalidRows(problems));
    }
    if added != 0 || deleted != 0 {
        sqlx::query(
            "UPDATE data_tables SET row_count = row_count + $2, updated_at = $3 WHERE id = $1",
        )
        .bind(t.id.clone())
        .bind(added - deleted)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Written {
        rows,
        created,
        runs,
    })
}

/// Encode a cursor (a row's sort key and id) for a URL.
fn cursor(key: &str, id: &str) -> String {
    crate::crypto::hex(format!("{key}\u{1f}{id}").as_bytes())
}

fn read_cursor(c: &str) -> Result<(String, String)> {
    let bad = || StoreError::InvalidConfig("the page cursor is not one this grid gave".into());
    if !c.len().is_multiple_of(2) || c.len() > 2048 {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..c.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&c[i..i + 2], 16))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad())?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    let (k, id) = s.split_once('\u{1f}').ok_or_else(bad)?;
    Ok((k.to_string(), id.to_string()))
}

fn like_pattern(s: &str) -> String {
    let escaped: String = s
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("%{escaped}%")
}

/// Rows added in this process since PostgreSQL last re-read the tables' statistics.
static ADDED_SINCE_ANALYZE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// How many added rows make PostgreSQL read the statistics again.
const ANALYZE_EVERY: usize = 5_000;

impl Store {
    /// PostgreSQL plans a page by its statistics: a table filled faster than autovacuum
    /// looks (an import) would be planned as nearly empty — a sort of every cell instead
    /// of one index range, over 100 ms at 100,000 rows. After every 5,000 rows added, the
    /// statistics are read again, in the background, outside any write.
    fn note_added(&self, n: usize) {
        use std::sync::atomic::Ordering;
        if n == 0 || self.backend() != crate::Backend::Postgres {
            return;
        }
        let before = ADDED_SINCE_ANALYZE.fetch_add(n, Ordering::Relaxed);
        if before + n < ANALYZE_EVERY {
            return;
        }
        ADDED_SINCE_ANALYZE.store(0, Ordering::Relaxed);
        let pool = self.pool().clone();
        tokio::spawn(async move {
            if let Err(e) = sqlx::query("ANALYZE table_cells, table_rows, table_uniques")
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %e, "the tables' statistics could not be read again");
            }
        });
    }

    /// Make a table in a project.
    pub async fn create_table(
        &self,
        project: &str,
        name: &str,
        schema: Schema,
        actor: impl Into<Actor>,
    ) -> Result<TableInfo> {
        let name = check_name(name)?;
        check_schema(&schema)?;
        let (project, actor, now, id) =
            (project.to_string(), actor.into(), self.now_ms(), new_id());
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    crate::projects::check_project(conn, &project).await?;
                    let taken: Option<i64> = sqlx::query_scalar(
                        "SELECT 1 FROM data_tables WHERE project_id = $1 AND name = $2",
                    )
                    .bind(project.clone())
                    .bind(name.clone())
                    .fetch_optional(&mut *conn)
                    .await?;
                    if taken.is_some() {
                        return Err(StoreError::Conflict(format!(
                            "a table named `{name}` exists already in this project"
                        )));
                    }
                    sqlx::query(
                        "INSERT INTO data_tables (id, project_id, name, schema, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(id.clone())
                    .bind(project.clone())
                    .bind(name.clone())
                    .bind(serde_json::to_string(&schema).unwrap_or_default())
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    audit(conn, now, &actor, "table.create", &id, json!({ "name": name })).await?;
                    load_table(conn, &id).await
                })
            })
            .await
    }

    pub async fn table(&self, id: &str) -> Result<TableInfo> {
        let mut conn = self.pool().acquire().await?;
        load_table(&mut conn, id).await
    }

    /// A project's table by its name (how flows name tables).
    pub async fn table_named(&self, project: &str, name: &str) -> Result<TableInfo> {
        let row = sqlx::query(&format!(
            "SELECT {TABLE_COLUMNS} FROM data_tables WHERE project_id = $1 AND name = $2"
        ))
        .bind(project.to_string())
        .bind(name.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("the project has no table named `{name}`")))?;
        table_row(&row)
    }

    /// The tables of some projects (all of them: `None`), by name.
    pub async fn tables(&self, projects: Option<&[String]>) -> Result<Vec<TableInfo>> {
        let rows = sqlx::query(&format!(
            "SELECT {TABLE_COLUMNS} FROM data_tables ORDER BY name, id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(table_row)
            .filter(|t| match (t, projects) {
                (Ok(t), Some(ps)) => ps.contains(&t.project_id),
                _ => true,
            })
            .collect()
    }

    /// Change a table's name or columns. Existing values are read again as their column's
    /// new type (every row that cannot be is named, and nothing changes); a removed
    /// column's values are dropped. The primary key stays what it was made with.
    pub async fn update_table(
        &self,
        id: &str,
        name: &str,
        schema: Schema,
        actor: impl Into<Actor>,
    ) -> Result<TableInfo> {
        let name = check_name(name)?;
        check_schema(&schema)?;
        let (id, actor, now) = (id.to_string(), actor.into(), self.now_ms());
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let old = load_table(conn, &id).await?;
                    if old.schema.primary_key != schema.primary_key {
                        return Err(StoreError::Conflict(
                            "a table's primary key is chosen when it is made and does not change".into(),
                        ));
                    }
                    if old.name != name {
                        let watched: Option<String> = sqlx::query_scalar(
                            "SELECT w.flow_id FROM table_watches w JOIN flows f ON f.id = w.flow_id \
                             WHERE w.table_name = $1 AND f.project_id = $2 LIMIT 1",
                        )
                        .bind(old.name.clone())
                        .bind(old.project_id.clone())
                        .fetch_optional(&mut *conn)
                        .await?;
                        if let Some(flow) = watched {
                            return Err(StoreError::Conflict(format!(
                                "flow `{flow}` starts on this table by its name: change the flow's trigger first"
                            )));
                        }
                    }
                    let removed: Vec<String> = old
                        .schema
                        .columns
                        .iter()
                        .filter(|c| schema.column(&c.key).is_none())
                        .map(|c| c.key.clone())
                        .collect();
                    let redone: Vec<&flowbot_core::table::Column> = schema
                        .columns
                        .iter()
                        .filter(|c| old.schema.column(&c.key) != Some(*c))
                        .collect();
                    let new = TableInfo {
                        schema: schema.clone(),
                        ..old.clone()
                    };
                    if !removed.is_empty() || !redone.is_empty() {
                        let rows = sqlx::query(
                            "SELECT row_id, data FROM table_rows WHERE table_id = $1",
                        )
                        .bind(id.clone())
                        .fetch_all(&mut *conn)
                        .await?;
                        for col in removed.iter().chain(redone.iter().map(|c| &c.key)) {
                            for sql in [
                                "DELETE FROM table_cells WHERE table_id = $1 AND col = $2",
                                "DELETE FROM table_uniques WHERE table_id = $1 AND col = $2",
                            ] {
                                sqlx::query(sql)
                                    .bind(id.clone())
                                    .bind(col.clone())
                                    .execute(&mut *conn)
                                    .await?;
                            }
                        }
                        let only: Vec<String> = redone.iter().map(|c| c.key.clone()).collect();
                        let mut problems = Vec::new();
                        for (index, r) in rows.iter().enumerate() {
                            let row_id: String = r.try_get("row_id")?;
                            let data: String = r.try_get("data")?;
                            let mut values: Map<String, Value> = serde_json::from_str(&data)
                                .map_err(|e| StoreError::Corrupt(format!("a table row: {e}")))?;
                            for k in &removed {
                                values.remove(k);
                            }
                            for c in &redone {
                                let v = values.remove(&c.key).unwrap_or(Value::Null);
                                match flowbot_core::table::normalize(c, &v) {
                                    Ok(Value::Null) if c.required => problems.push(RowProblem {
                                        index,
                                        column: c.key.clone(),
                                        message: format!("row {row_id} has no value, and the column becomes required"),
                                    }),
                                    Ok(Value::Null) => {}
                                    Ok(v) => {
                                        values.insert(c.key.clone(), v);
                                    }
                                    Err(m) => problems.push(RowProblem {
                                        index,
                                        column: c.key.clone(),
                                        message: format!("row {row_id}: {m}"),
                                    }),
                                }
                            }
                            if problems.len() >= MAX_PROBLEMS {
                                break;
                            }
                            // The changed columns' unique values (the others stand).
                            problems.extend(
                                claim_uniques(conn, &new, &row_id, &values, Some(&only), index)
                                    .await?,
                            );
                            if problems.is_empty() {
                                sqlx::query("UPDATE table_rows SET data = $3 WHERE table_id = $1 AND row_id = $2")
                                    .bind(id.clone())
                                    .bind(row_id.clone())
                                    .bind(Value::Object(values.clone()).to_string())
                                    .execute(&mut *conn)
                                    .await?;
                                if !only.is_empty() {
                                    write_cells(conn, &new, &row_id, &values, Some(&only), None).await?;
                                }
                            }
                        }
                        if !problems.is_empty() {
                            return Err(StoreError::InvalidRows(problems));
                        }
                    }
                    sqlx::query("UPDATE data_tables SET name = $2, schema = $3, updated_at = $4 WHERE id = $1")
                        .bind(id.clone())
                        .bind(name.clone())
                        .bind(serde_json::to_string(&schema).unwrap_or_default())
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    audit(conn, now, &actor, "table.update", &id, json!({ "name": name, "columns": schema.columns.len() })).await?;
                    load_table(conn, &id).await
                })
            })
            .await
    }

    /// Delete a table with its rows. A flow that starts on it is refused first.
    pub async fn delete_table(&self, id: &str, actor: impl Into<Actor>) -> Result<()> {
        let (id, actor, now) = (id.to_string(), actor.into(), self.now_ms());
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let t = load_table(conn, &id).await?;
                    let watched: Option<String> = sqlx::query_scalar(
                        "SELECT w.flow_id FROM table_watches w JOIN flows f ON f.id = w.flow_id \
                         WHERE w.table_name = $1 AND f.project_id = $2 LIMIT 1",
                    )
                    .bind(t.name.clone())
                    .bind(t.project_id.clone())
                    .fetch_optional(&mut *conn)
                    .await?;
                    if let Some(flow) = watched {
                        return Err(StoreError::Conflict(format!(
                            "flow `{flow}` starts on this table: delete the flow or change its trigger first"
                        )));
                    }
                    for sql in [
                        "DELETE FROM table_cells WHERE table_id = $1",
                        "DELETE FROM table_uniques WHERE table_id = $1",
                        "DELETE FROM table_rows WHERE table_id = $1",
                        "DELETE FROM data_tables WHERE id = $1",
                    ] {
                        sqlx::query(sql).bind(id.clone()).execute(&mut *conn).await?;
                    }
                    audit(conn, now, &actor, "table.delete", &id, json!({ "name": t.name })).await
                })
            })
            .await
    }

    /// Change rows — all of the changes, or none — and queue the runs the table's
    /// triggers start, in the same transaction.
    pub async fn write_rows(&self, table: &str, ops: Vec<RowOp>, by: Writer) -> Result<Written> {
        if ops.len() > MAX_ROWS_PER_WRITE {
            return Err(StoreError::InvalidRows(vec![RowProblem {
                index: MAX_ROWS_PER_WRITE,
                column: String::new(),
                message: format!("one write changes at most {MAX_ROWS_PER_WRITE} rows"),
            }]));
        }
        let (table, now) = (table.to_string(), self.now_ms());
        let written = self
            .inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let w = apply(conn, now, &table, &ops).await?;
                    if let Writer::Member(actor) = &by {
                        audit(
                            conn,
                            now,
                            actor,
                            "table.rows",
                            &table,
                            json!({ "rows": w.rows.len(), "runs": w.runs }),
                        )
                        .await?;
                    }
                    Ok(w)
                })
            })
            .await?;
        if written.runs > 0 {
            self.wake_workers();
        }
        self.note_added(written.created.iter().filter(|c| **c).count());
        Ok(written)
    }

    /// Import rows — every batch, or none: the batches are written in one transaction
    /// (a CSV import is all-or-nothing). Problems carry the row's place in `rows`.
    pub async fn import_rows(
        &self,
        table: &str,
        rows: Vec<Map<String, Value>>,
        actor: impl Into<Actor>,
    ) -> Result<Written> {
        let (table, actor, now) = (table.to_string(), actor.into(), self.now_ms());
        let written = self
            .inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let mut all = Written {
                        rows: Vec::new(),
                        created: Vec::new(),
                        runs: 0,
                    };
                    let mut problems = Vec::new();
                    for (n, chunk) in rows.chunks(MAX_ROWS_PER_WRITE).enumerate() {
                        let ops: Vec<RowOp> = chunk
                            .iter()
                            .map(|values| RowOp::Add {
                                values: values.clone(),
                            })
                            .collect();
                        match apply(conn, now, &table, &ops).await {
                            Ok(w) => {
                                all.runs += w.runs;
                                all.rows.extend(w.rows);
                                all.created.extend(w.created);
                            }
                            Err(StoreError::InvalidRows(p)) => {
                                problems.extend(p.into_iter().map(|mut p| {
                                    p.index += n * MAX_ROWS_PER_WRITE;
                                    p
                                }));
                                if problems.len() >= MAX_PROBLEMS {
                                    break;
                                }
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    if !problems.is_empty() {
                        return Err(StoreError::InvalidRows(problems));
                    }
                    audit(
                        conn,
                        now,
                        &actor,
                        "table.import",
                        &table,
                        json!({ "rows": all.rows.len(), "runs": all.runs }),
                    )
                    .await?;
                    Ok(all)
                })
            })
            .await?;
        if written.runs > 0 {
            self.wake_workers();
        }
        self.note_added(written.created.iter().filter(|c| **c).count());
        Ok(written)
    }

    /// Start a flow that watches the table once for each of the given rows (the grid's
    /// "run on selected rows"), whether its trigger is ON or not.
    pub async fn run_on_rows(
        &self,
        table: &str,
        flow_id: &str,
        row_ids: Vec<String>,
        actor: impl Into<Actor>,
    ) -> Result<usize> {
        if row_ids.len() > MAX_ROWS_PER_WRITE {
            return Err(StoreError::Conflict(format!(
                "at most {MAX_ROWS_PER_WRITE} rows are run at once"
            )));
        }
        let (table, flow_id, actor, now) = (
            table.to_string(),
            flow_id.to_string(),
            actor.into(),
            self.now_ms(),
        );
        let queued = self
            .inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let t = load_table(conn, &table).await?;
                    let w = watchers(conn, &t, Some(&flow_id)).await?;
                    if w.is_empty() {
                        return Err(StoreError::Conflict(format!(
                            "flow `{flow_id}` does not start on table `{}`",
                            t.name
                        )));
                    }
                    let mut queued = 0;
                    for id in &row_ids {
                        let Some(r) = stored_row(conn, &t.id, id).await? else {
                            return Err(StoreError::NotFound(format!("the table has no row {id}")));
                        };
                        let row = row_value(id, &r.values, r.created, r.updated);
                        let change = Change {
                            event: ROW_SELECTED,
                            table: &t.name,
                            row_id: id,
                            row: Some(&row),
                            previous: None,
                        };
                        queued += fire(conn, now, &w, &change, Source::Manual).await?;
                    }
                    audit(
                        conn,
                        now,
                        &actor,
                        "table.run",
                        &table,
                        json!({ "flow": flow_id, "rows": row_ids.len() }),
                    )
                    .await?;
                    Ok(queued)
                })
            })
            .await?;
        self.wake_workers();
        Ok(queued)
    }

    /// The flows that start on a table: (id, name, ON).
    pub async fn flows_watching(&self, table: &str) -> Result<Vec<(String, String, bool)>> {
        let t = self.table(table).await?;
        let rows = sqlx::query(
            "SELECT f.id, f.name, f.enabled FROM table_watches w JOIN flows f ON f.id = w.flow_id \
             WHERE w.table_name = $1 AND f.project_id = $2 ORDER BY f.name, f.id",
        )
        .bind(t.name)
        .bind(t.project_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("name")?,
                    r.try_get::<i64, _>("enabled")? != 0,
                ))
            })
            .collect()
    }

    /// One row.
    pub async fn table_row(&self, table: &str, id: &str) -> Result<Value> {
        let mut conn = self.pool().acquire().await?;
        let r = stored_row(&mut conn, table, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("the table has no row {id}")))?;
        Ok(row_value(id, &r.values, r.created, r.updated))
    }

    /// A page of rows: sorted by a column (or the order rows were added in), filtered,
    /// searched, after or before a cursor. Each page is one range of an index.
    pub async fn table_rows(&self, table: &str, q: &RowQuery) -> Result<Page> {
        let t = self.table(table).await?;
        let limit = q.limit.clamp(1, MAX_PAGE);
        let sort =
            match &q.sort {
                None => SEQ.to_string(),
                Some(c) if c == SEQ || c == "_id" => SEQ.to_string(),
                Some(c) => t.schema.column(c).map(|c| c.key.clone()).ok_or_else(|| {
                    StoreError::NotFound(format!("the table has no column `{c}`"))
                })?,
            };
        let backwards = q.before.is_some();
        // The direction the index is read in: a previous page reads it the other way.
        let ascending = q.desc == backwards;
        let mut binds: Vec<String> = vec![t.id.clone(), sort];
        let mut sql = String::from(
            "SELECT r.row_id, r.data, r.created_at, r.updated_at, s.sort_key \
             FROM table_cells s JOIN table_rows r ON r.table_id = s.table_id AND r.row_id = s.row_id \
             WHERE s.table_id = $1 AND s.col = $2",
        );
        let searched = q.search.as_deref().is_some_and(|s| !s.trim().is_empty());
        let mut filter_sql = String::new();
        // The first filter's column and test, to count by its index range.
        let mut first_filter: Option<(usize, String)> = None;
        // The others (and the search), as the count adds them to the first.
        let mut other_filters = String::new();
        for f in &q.filters {
            let Some(c) = t.schema.column(&f.column) else {
                return Err(StoreError::NotFound(format!(
                    "the table has no column `{}`",
                    f.column
                )));
            };
            let key = match f.op {
                FilterOp::IsEmpty | FilterOp::IsNotEmpty => String::new(),
                FilterOp::Contains => like_pattern(&match &f.value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                _ => {
                    let v = flowbot_core::table::normalize(c, &f.value).map_err(|m| {
                        StoreError::InvalidRows(vec![RowProblem {
                            index: 0,
                            column: c.key.clone(),
                            message: m,
                        }])
                    })?;
                    sort_key(c.kind, &v)
                }
            };
            binds.push(c.key.clone());
            let col_n = binds.len();
            binds.push(key);
            let key_n = binds.len();
            let test = match f.op {
                FilterOp::Equals => format!("f.sort_key = ${key_n}"),
                FilterOp::NotEquals => format!("f.sort_key <> ${key_n}"),
                FilterOp::GreaterThan => format!("f.sort_key > ${key_n} AND f.sort_key <> ''"),
                FilterOp::LessThan => format!("f.sort_key < ${key_n} AND f.sort_key <> ''"),
                FilterOp::Contains => format!("LOWER(f.sort_key) LIKE ${key_n} ESCAPE '\\'"),
                FilterOp::IsEmpty => format!("f.sort_key = ${key_n}"),
                FilterOp::IsNotEmpty => format!("f.sort_key <> ${key_n}"),
            };
            let exists = format!(
                " AND EXISTS (SELECT 1 FROM table_cells f WHERE f.table_id = $1 AND f.row_id = s.row_id AND f.col = ${col_n} AND {test})"
            );
            filter_sql.push_str(&exists);
            match first_filter {
                None => first_filter = Some((col_n, test.replace("f.sort_key", "s.sort_key"))),
                Some(_) => other_filters.push_str(&exists),
            }
        }
        if let Some(s) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            binds.push(like_pattern(s));
            let search = format!(" AND LOWER(r.data) LIKE ${} ESCAPE '\\'", binds.len());
            filter_sql.push_str(&search);
            other_filters.push_str(&search);
        }
        sql.push_str(&filter_sql);
        if let Some(c) = q.after.as_deref().or(q.before.as_deref()) {
            let (k, id) = read_cursor(c)?;
            binds.push(k);
            binds.push(id);
            let cmp = if ascending { ">" } else { "<" };
            sql.push_str(&format!(
                " AND (s.sort_key, s.row_id) {cmp} (${}, ${})",
                binds.len() - 1,
                binds.len()
            ));
        }
        let dir = if ascending { "ASC" } else { "DESC" };
        sql.push_str(&format!(
            " ORDER BY s.sort_key {dir}, s.row_id {dir} LIMIT {}",
            limit + 1
        ));
        if !searched {
            // Without a search the rows' text is not needed to choose them: the page's
            // cells are found first and only its rows read (a filter that skips many rows
            // then skips them in the index alone).
            sql = sql.replacen(
                "SELECT r.row_id, r.data, r.created_at, r.updated_at, s.sort_key \
                 FROM table_cells s JOIN table_rows r ON r.table_id = s.table_id AND r.row_id = s.row_id",
                "SELECT s.row_id, s.sort_key FROM table_cells s",
                1,
            );
            sql = format!(
                "SELECT r.row_id, r.data, r.created_at, r.updated_at, p.sort_key FROM ({sql}) p \
                 JOIN table_rows r ON r.table_id = $1 AND r.row_id = p.row_id \
                 ORDER BY p.sort_key {dir}, p.row_id {dir}"
            );
        }
        // Not kept prepared: a kept statement is planned once for any parameters after a
        // few runs (PostgreSQL's generic plan), which for a filter is a join of every
        // matching cell; planned with the page's own values it is one index range. (The
        // SQL varies with the filters anyway.)
        let mut query = sqlx::query(&sql).persistent(false);
        for b in &binds {
            query = query.bind(b.clone());
        }
        let found = query.fetch_all(self.pool()).await?;
        let more = found.len() as i64 > limit;
        let mut rows = Vec::new();
        let mut keys = Vec::new();
        for r in found.iter().take(limit as usize) {
            let id: String = r.try_get("row_id")?;
            let data: String = r.try_get("data")?;
            let values: Map<String, Value> = serde_json::from_str(&data)
                .map_err(|e| StoreError::Corrupt(format!("a table row: {e}")))?;
            keys.push(cursor(&r.try_get::<String, _>("sort_key")?, &id));
            rows.push(row_value(
                &id,
                &values,
                r.try_get("created_at")?,
                r.try_get("updated_at")?,
            ));
        }
        if backwards {
            rows.reverse();
            keys.reverse();
        }
        let (next, prev) = if backwards {
            (
                keys.last().cloned(),
                if more { keys.first().cloned() } else { None },
            )
        } else {
            (
                if more { keys.last().cloned() } else { None },
                q.after.as_ref().and(keys.first().cloned()),
            )
        };
        // Counted on a first page only: the pages after it keep its count.
        let first_page = q.after.is_none() && q.before.is_none();
        let (total, total_capped) = if !first_page {
            (None, false)
        } else if filter_sql.is_empty() {
            (Some(t.rows), false)
        } else {
            let cap = if q.exact_count {
                i64::MAX - 1
            } else {
                COUNT_CAP
            };
            // Driven by the first filter's own cells (an index range for `equals`), not by
            // the sort column's (every row). `$2` is then unused, but still bound.
            let driver = match &first_filter {
                Some((col_n, test)) => format!(
                    "s.col = ${col_n} AND {test} AND CAST($2 AS TEXT) IS NOT NULL{other_filters}"
                ),
                None => format!("s.col = $2{other_filters}"),
            };
            // The rows themselves are read only to search their text.
            let rows_join = if searched {
                " JOIN table_rows r ON r.table_id = s.table_id AND r.row_id = s.row_id"
            } else {
                ""
            };
            let count_sql = format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM table_cells s{rows_join} \
                 WHERE s.table_id = $1 AND {driver} LIMIT {}) c",
                cap + 1
            );
            let mut query = sqlx::query_scalar::<_, i64>(&count_sql).persistent(false);
            for b in &binds {
                query = query.bind(b.clone());
            }
            let n = query.fetch_one(self.pool()).await?;
            (Some(n.min(cap)), n > cap)
        };
        Ok(Page {
            rows,
            next,
            prev,
            total,
            total_capped,
        })
    }
}

/// The tables a run's table steps read and write: those of its flow's project, changed
/// in the run's name (its triggers start in the same write).
pub struct RunTables {
    store: Store,
    flow_id: String,
    run_id: String,
    project: tokio::sync::OnceCell<String>,
}

impl RunTables {
    pub fn new(store: Store, flow_id: &str, run_id: &str) -> RunTables {
        RunTables {
            store,
            flow_id: flow_id.to_string(),
            run_id: run_id.to_string(),
            project: tokio::sync::OnceCell::new(),
        }
    }

    async fn table(
        &self,
        input: &Map<String, Value>,
    ) -> std::result::Result<TableInfo, ActionError> {
        let project = self
            .project
            .get_or_try_init(|| async {
                self.store.flow(&self.flow_id).await.map(|f| f.project_id)
            })
            .await
            .map_err(action_error)?;
        let name = input
            .get("table")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.store
            .table_named(project, name)
            .await
            .map_err(action_error)
    }

    async fn write(&self, t: &TableInfo, op: RowOp) -> std::result::Result<Written, ActionError> {
        self.store
            .write_rows(&t.id, vec![op], Writer::Run(self.run_id.clone()))
            .await
            .map_err(action_error)
    }
}

fn action_error(e: StoreError) -> ActionError {
    if e.is_transient() {
        ActionError::retryable(e.to_string())
    } else {
        ActionError::fatal(e.to_string())
    }
}

/// A step's conditions: `where` (column → equal value) and `conditions` (a list).
fn step_filters(input: &Map<String, Value>) -> std::result::Result<Vec<RowFilter>, ActionError> {
    let mut out: Vec<RowFilter> = input
        .get("where")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| RowFilter {
                    column: k.clone(),
                    op: FilterOp::Equals,
                    value: v.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(list) = input.get("conditions").and_then(Value::as_array) {
        for (i, c) in list.iter().enumerate() {
            let f: RowFilter = serde_json::from_value(c.clone()).map_err(|e| {
                ActionError::fatal(format!(
                    "conditions[{i}]: {e} (each is {{ column, op, value }})"
                ))
            })?;
            out.push(f);
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl flowbot_core::table::TableSource for RunTables {
    async fn call(
        &self,
        action: &str,
        input: &Map<String, Value>,
    ) -> std::result::Result<Value, ActionError> {
        let t = self.table(input).await?;
        let text = |k: &str| -> std::result::Result<String, ActionError> {
            match input.get(k) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                _ => Err(ActionError::fatal(format!("`{k}` is required"))),
            }
        };
        let values = || -> std::result::Result<Map<String, Value>, ActionError> {
            input
                .get("values")
                .and_then(Value::as_object)
                .cloned()
                .ok_or_else(|| ActionError::fatal("`values` is a mapping of column keys to values"))
        };
        match action {
            "get_row" => match self.store.table_row(&t.id, &text("id")?).await {
                Ok(row) => Ok(json!({ "row": row, "found": true })),
                Err(StoreError::NotFound(_)) => Ok(json!({ "row": null, "found": false })),
                Err(e) => Err(action_error(e)),
            },
            "search_rows" | "count_rows" => {
                let q = RowQuery {
                    sort: input
                        .get("sort")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                    desc: input.get("order").and_then(Value::as_str) == Some("desc"),
                    filters: step_filters(input)?,
                    limit: input
                        .get("limit")
                        .and_then(Value::as_i64)
                        .unwrap_or(100)
                        .clamp(1, MAX_PAGE),
                    exact_count: true,
                    ..RowQuery::default()
                };
                let page = self
                    .store
                    .table_rows(&t.id, &q)
                    .await
                    .map_err(action_error)?;
                if action == "count_rows" {
                    Ok(json!({ "count": page.total.unwrap_or_default() }))
                } else {
                    let count = page.rows.len();
                    Ok(json!({ "rows": page.rows, "count": count }))
                }
            }
            "add_row" => {
                let w = self.write(&t, RowOp::Add { values: values()? }).await?;
                Ok(json!({ "row": w.rows.first() }))
            }
            "update_row" => {
                let w = self
                    .write(
                        &t,
                        RowOp::Update {
                            id: text("id")?,
                            values: values()?,
                        },
                    )
                    .await?;
                Ok(json!({ "row": w.rows.first() }))
            }
            "upsert_row" => {
                let w = self
                    .write(
                        &t,
                        RowOp::Upsert {
                            key: text("key")?,
                            values: values()?,
                        },
                    )
                    .await?;
                Ok(json!({ "row": w.rows.first(), "created": w.created.first() }))
            }
            "delete_row" => {
                let id = text("id")?;
                match self.store.table_row(&t.id, &id).await {
                    Err(StoreError::NotFound(_)) => return Ok(json!({ "deleted": false })),
                    Err(e) => return Err(action_error(e)),
                    Ok(_) => {}
                }
                match self.write(&t, RowOp::Delete { id }).await {
                    Ok(_) => Ok(json!({ "deleted": true })),
                    // Deleted meanwhile: what the step asked for holds.
                    Err(e) if e.message.contains("has no row") => Ok(json!({ "deleted": false })),
                    Err(e) => Err(e),
                }
            }
            other => Err(ActionError::fatal(format!(
                "app `table` has no action `{other}`"
            ))),
        }
    }
}
