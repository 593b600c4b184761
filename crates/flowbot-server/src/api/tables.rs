//! Tables and their rows: made and changed by builders, rows written by editors (and by
//! flows' table steps), read by viewers — each in the table's project. CSV comes in as
//! UTF-8 or Shift_JIS, is checked whole before anything is written, and goes out as
//! UTF-8 with a byte-order mark so Excel opens it as such.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use flowbot_core::table::{Column, Schema};
use flowbot_store::{
    Page, RowFilter, RowOp, RowProblem, RowQuery, RowWriter, TableInfo, Written, DEFAULT_PROJECT,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::ApiResult;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::routes::{op, Perm, Routes};
use crate::AppState;

/// The largest CSV file taken.
pub const MAX_CSV_BYTES: usize = 10 * 1024 * 1024;
/// The most rows one import adds.
pub const MAX_IMPORT_ROWS: usize = 50_000;
/// How many rows a preview shows.
const PREVIEW_ROWS: usize = 20;

pub(super) fn routes() -> Routes {
    Routes::default()
        .add(
            op("get", "/api/v1/tables", "List the tables of the projects you may read (filter: project)")
                .needs(Perm::Read)
                .in_projects()
                .query::<ProjectQuery>()
                .returns::<Vec<TableInfo>>(),
            list,
        )
        .add(
            op("post", "/api/v1/tables", "Make a table: its columns and, optionally, a primary key column")
                .needs(Perm::Build)
                .in_projects()
                .json_body::<NewTable>()
                .returns::<TableInfo>()
                .status(201),
            create,
        )
        .add(
            op("get", "/api/v1/tables/{id}", "A table with its columns and number of rows")
                .needs(Perm::Read)
                .of_table("id")
                .returns::<TableInfo>(),
            get,
        )
        .add(
            op(
                "patch",
                "/api/v1/tables/{id}",
                "Rename a table or change its columns (existing values are read as the new types, or every row that cannot be is named)",
            )
            .needs(Perm::Build)
            .of_table("id")
            .json_body::<TableChange>()
            .returns::<TableInfo>(),
            update,
        )
        .add(
            op("delete", "/api/v1/tables/{id}", "Delete a table and its rows (refused while a flow starts on it)")
                .needs(Perm::Build)
                .of_table("id")
                .no_content(),
            delete,
        )
        .add(
            op(
                "get",
                "/api/v1/tables/{id}/rows",
                "A page of rows: sorted, filtered, searched; `next`/`prev` are the cursors of the pages around it",
            )
            .needs(Perm::Read)
            .of_table("id")
            .query::<RowsQuery>()
            .returns::<Page>(),
            rows,
        )
        .add(
            op("post", "/api/v1/tables/{id}/rows", "Add a row (the table's triggers start in the same write)")
                .needs(Perm::Run)
                .of_table("id")
                .json_body::<RowValues>()
                .returns::<Value>()
                .status(201),
            add_row,
        )
        .add(
            op(
                "post",
                "/api/v1/tables/{id}/rows/batch",
                "Add, update, upsert and delete rows: every change, or none (each problem names its change and column)",
            )
            .needs(Perm::Run)
            .of_table("id")
            .json_body::<Batch>()
            .returns::<Written>(),
            batch,
        )
        .add(
            op("get", "/api/v1/tables/{id}/rows/{row}", "One row")
                .needs(Perm::Read)
                .of_table("id")
                .returns::<Value>(),
            get_row,
        )
        .add(
            op("patch", "/api/v1/tables/{id}/rows/{row}", "Change some columns of a row")
                .needs(Perm::Run)
                .of_table("id")
                .json_body::<RowValues>()
                .returns::<Value>(),
            update_row,
        )
        .add(
            op("delete", "/api/v1/tables/{id}/rows/{row}", "Delete a row")
                .needs(Perm::Run)
                .of_table("id")
                .no_content(),
            delete_row,
        )
        .add_routed(
            op(
                "post",
                "/api/v1/tables/{id}/import",
                "Import a CSV file (UTF-8 or Shift_JIS, at most 10 MiB): with `dry_run` a preview; otherwise every row, or none",
            )
            .needs(Perm::Run)
            .of_table("id")
            .query::<ImportQuery>()
            .body::<String>("text/csv")
            .returns::<ImportAnswer>(),
            axum::routing::post(import).layer(DefaultBodyLimit::max(MAX_CSV_BYTES)),
        )
        .add(
            op("get", "/api/v1/tables/{id}/export", "Every row as CSV (UTF-8 with a byte-order mark)")
                .needs(Perm::Read)
                .of_table("id")
                .answers("text/csv", 200),
            export,
        )
        .add(
            op(
                "post",
                "/api/v1/tables/{id}/run",
                "Start a flow that watches the table once for each selected row",
            )
            .needs(Perm::Run)
            .of_table("id")
            .json_body::<RunRows>()
            .returns::<Value>(),
            run_rows,
        )
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ProjectQuery {
    /// Only this project's tables.
    project: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct NewTable {
    name: String,
    /// The project to make it in (default: the default project).
    project: Option<String>,
    columns: Vec<Column>,
    /// A column whose value names each row; none: rows are numbered.
    primary_key: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct TableChange {
    name: Option<String>,
    /// The whole new list of columns (a key left out is removed with its values).
    columns: Option<Vec<Column>>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct RowValues {
    /// Column key → value.
    values: Map<String, Value>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct Batch {
    /// At most 1,000 changes.
    ops: Vec<RowOp>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct RunRows {
    flow_id: String,
    rows: Vec<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct RowsQuery {
    /// A column key (default: the order rows were added in).
    sort: Option<String>,
    /// `desc` for the largest first.
    order: Option<String>,
    /// Text anywhere in the row.
    q: Option<String>,
    /// Filters as JSON: `[{"column":"status","op":"equals","value":"new"}]`
    /// (op: equals, not_equals, contains, greater_than, less_than, is_empty, is_not_empty).
    filter: Option<String>,
    after: Option<String>,
    before: Option<String>,
    /// 1 to 500 (default 100).
    limit: Option<i64>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ImportQuery {
    /// `utf-8` or `shift_jis`; default: UTF-8 when the file is valid UTF-8, else Shift_JIS.
    encoding: Option<String>,
    /// JSON object: CSV header → column key (a header left out, or mapped to "", is
    /// skipped). Default: each header that is a column's key or label.
    mapping: Option<String>,
    /// `true`: check and preview, write nothing.
    dry_run: Option<bool>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct ImportAnswer {
    /// The file's encoding as read.
    encoding: String,
    headers: Vec<String>,
    /// CSV header → column key, as applied.
    mapping: Map<String, Value>,
    /// The rows in the file.
    count: usize,
    /// The first rows, as they will be written (a preview).
    preview: Vec<Map<String, Value>>,
    /// Every problem: `index` is the row's line in the file (the header is line 1).
    problems: Vec<RowProblem>,
    /// Rows written (0 on a dry run or when there are problems).
    written: usize,
    /// Runs the table's triggers started.
    runs: usize,
}

async fn list(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiQuery(q): ApiQuery<ProjectQuery>,
) -> ApiResult<Json<Vec<TableInfo>>> {
    Ok(Json(
        s.store
            .tables(None)
            .await?
            .into_iter()
            .filter(|t| q.project.as_ref().is_none_or(|p| *p == t.project_id))
            .filter(|t| c.may_in(&t.project_id, Perm::Read, &Method::GET))
            .collect(),
    ))
}

async fn create(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<NewTable>,
) -> Result<Response, ApiError> {
    let project = b.project.unwrap_or_else(|| DEFAULT_PROJECT.to_string());
    c.check_in(&project, Perm::Build)?;
    let schema = Schema {
        columns: b.columns,
        primary_key: b.primary_key.filter(|k| !k.is_empty()),
    };
    let t = s
        .store
        .create_table(&project, &b.name, schema, c.actor())
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(t)).into_response())
}

async fn get(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<TableInfo>> {
    Ok(Json(s.store.table(&id).await?))
}

async fn update(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<TableChange>,
) -> ApiResult<Json<TableInfo>> {
    let t = s.store.table(&id).await?;
    let schema = Schema {
        columns: b.columns.unwrap_or(t.schema.columns),
        primary_key: t.schema.primary_key,
    };
    let name = b.name.unwrap_or(t.name);
    Ok(Json(
        s.store.update_table(&id, &name, schema, c.actor()).await?,
    ))
}

async fn delete(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    s.store.delete_table(&id, c.actor()).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// The grid's query as the store takes it.
fn row_query(q: RowsQuery) -> Result<RowQuery, ApiError> {
    let filters: Vec<RowFilter> = match q.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        None => Vec::new(),
        Some(f) => serde_json::from_str(f).map_err(|e| {
            ApiError::BadRequest(format!(
                "`filter` is a JSON list of {{column, op, value}}: {e}"
            ))
        })?,
    };
    if filters.len() > 20 {
        return Err(ApiError::BadRequest("at most 20 filters".into()));
    }
    Ok(RowQuery {
        sort: q.sort.filter(|s| !s.is_empty()),
        desc: q.order.as_deref() == Some("desc"),
        filters,
        search: q.q.filter(|s| s.chars().count() <= 200),
        after: q.after.filter(|s| !s.is_empty()),
        before: q.before.filter(|s| !s.is_empty()),
        limit: q.limit.unwrap_or(100),
        exact_count: false,
    })
}

async fn rows(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RowsQuery>,
) -> ApiResult<Json<Page>> {
    let q = row_query(q)?;
    Ok(Json(s.store.table_rows(&id, &q).await.map_err(bad_cursor)?))
}

/// A cursor or filter value the grid did not give is the caller's mistake.
fn bad_cursor(e: flowbot_store::StoreError) -> ApiError {
    match e {
        flowbot_store::StoreError::InvalidConfig(m) => ApiError::BadRequest(m),
        e => e.into(),
    }
}

async fn write_one(s: &AppState, c: &Caller, id: &str, op: RowOp) -> Result<Value, ApiError> {
    let w = s
        .store
        .write_rows(id, vec![op], RowWriter::Member(c.actor()))
        .await?;
    Ok(w.rows.into_iter().next().unwrap_or(Value::Null))
}

async fn add_row(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RowValues>,
) -> Result<Response, ApiError> {
    let row = write_one(&s, &c, &id, RowOp::Add { values: b.values }).await?;
    Ok((axum::http::StatusCode::CREATED, Json(row)).into_response())
}

async fn batch(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Batch>,
) -> ApiResult<Json<Written>> {
    Ok(Json(
        s.store
            .write_rows(&id, b.ops, RowWriter::Member(c.actor()))
            .await?,
    ))
}

async fn get_row(
    State(s): State<AppState>,
    Path((id, row)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(s.store.table_row(&id, &row).await?))
}

async fn update_row(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((id, row)): Path<(String, String)>,
    ApiJson(b): ApiJson<RowValues>,
) -> ApiResult<Json<Value>> {
    let op = RowOp::Update {
        id: row,
        values: b.values,
    };
    Ok(Json(write_one(&s, &c, &id, op).await?))
}

async fn delete_row(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path((id, row)): Path<(String, String)>,
) -> Result<axum::http::StatusCode, ApiError> {
    write_one(&s, &c, &id, RowOp::Delete { id: row }).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn run_rows(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RunRows>,
) -> ApiResult {
    c.check_flow(&s.store, &b.flow_id, Perm::Run).await?;
    let queued = s
        .store
        .run_on_rows(&id, &b.flow_id, b.rows, c.actor())
        .await?;
    Ok(Json(json!({ "queued": queued })))
}

/// The file's text: UTF-8 (a byte-order mark dropped) unless told otherwise or it is not
/// UTF-8; then Shift_JIS, refused if it is not that either.
fn decode_csv(bytes: &[u8], asked: Option<&str>) -> Result<(String, &'static str), ApiError> {
    let utf8 = || {
        let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        std::str::from_utf8(b).map(|s| (s.to_string(), "utf-8"))
    };
    let sjis = || {
        let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(bytes);
        if bad {
            Err(ApiError::BadRequest(
                "the file is neither UTF-8 nor Shift_JIS: save it as CSV (UTF-8) and try again"
                    .into(),
            ))
        } else {
            Ok((text.into_owned(), "shift_jis"))
        }
    };
    match asked.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("auto") => utf8().or_else(|_| sjis()),
        Some("utf-8") | Some("utf8") => utf8().map_err(|e| {
            ApiError::BadRequest(format!(
                "the file is not UTF-8 (byte {}): choose Shift_JIS",
                e.valid_up_to()
            ))
        }),
        Some("shift_jis") | Some("sjis") | Some("cp932") => sjis(),
        Some(other) => Err(ApiError::BadRequest(format!(
            "unknown encoding `{other}`: utf-8 or shift_jis"
        ))),
    }
}

/// Each CSV header's column: as mapped, else the column whose key or label it is.
fn mapping_of(
    t: &TableInfo,
    headers: &[String],
    given: Option<&str>,
) -> Result<Map<String, Value>, ApiError> {
    let given: Option<Map<String, Value>> = match given.filter(|m| !m.trim().is_empty()) {
        None => None,
        Some(m) => Some(serde_json::from_str(m).map_err(|e| {
            ApiError::BadRequest(format!(
                "`mapping` is a JSON object of header → column key: {e}"
            ))
        })?),
    };
    let mut out = Map::new();
    for h in headers {
        let key = match &given {
            Some(m) => m
                .get(h)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            None => t
                .schema
                .columns
                .iter()
                .find(|c| c.key == *h || (!c.label.is_empty() && c.label == *h))
                .map(|c| c.key.clone())
                .unwrap_or_default(),
        };
        if !key.is_empty() && t.schema.column(&key).is_none() {
            return Err(ApiError::BadRequest(format!(
                "the mapping sends `{h}` to `{key}`, which is not a column of the table"
            )));
        }
        out.insert(h.clone(), Value::String(key));
    }
    Ok(out)
}

async fn import(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ImportQuery>,
    body: Bytes,
) -> ApiResult<Json<ImportAnswer>> {
    let t = s.store.table(&id).await?;
    let (text, encoding) = decode_csv(&body, q.encoding.as_deref())?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::BadRequest(format!("the CSV file's first line: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if headers.iter().all(String::is_empty) {
        return Err(ApiError::BadRequest(
            "the CSV file has no header line: its first line names the columns".into(),
        ));
    }
    let mapping = mapping_of(&t, &headers, q.mapping.as_deref())?;
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // The header is line 1: the first row is line 2.
        let line = i + 2;
        let record = record.map_err(|e| {
            ApiError::BadRequest(format!("line {line} of the CSV file cannot be read: {e}"))
        })?;
        if rows.len() >= MAX_IMPORT_ROWS {
            return Err(ApiError::TooLarge(format!(
                "a CSV import adds at most {MAX_IMPORT_ROWS} rows: split the file"
            )));
        }
        let mut values = Map::new();
        for (h, cell) in headers.iter().zip(record.iter()) {
            if let Some(key) = mapping
                .get(h)
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
            {
                values.insert(key.to_string(), Value::String(cell.to_string()));
            }
        }
        // Checked here too, so a dry run names every row's problems.
        if let Err(p) = t.schema.check_values(&values, true) {
            problems.extend(p.into_iter().map(|p| RowProblem {
                index: line,
                column: p.column,
                message: p.message,
            }));
        }
        rows.push(values);
    }
    let preview: Vec<Map<String, Value>> = rows
        .iter()
        .take(PREVIEW_ROWS)
        .map(|v| t.schema.check_values(v, true).unwrap_or_else(|_| v.clone()))
        .collect();
    let mut answer = ImportAnswer {
        encoding: encoding.to_string(),
        headers,
        mapping,
        count: rows.len(),
        preview,
        problems,
        written: 0,
        runs: 0,
    };
    if q.dry_run.unwrap_or(false) || !answer.problems.is_empty() {
        if !answer.problems.is_empty() && !q.dry_run.unwrap_or(false) {
            return Err(import_refused(answer.problems));
        }
        return Ok(Json(answer));
    }
    match s.store.import_rows(&id, rows, c.actor()).await {
        Ok(w) => {
            answer.written = w.rows.len();
            answer.runs = w.runs;
            Ok(Json(answer))
        }
        // Unique values are checked only by the store: its places are 0-based rows.
        Err(flowbot_store::StoreError::InvalidRows(p)) => Err(import_refused(
            p.into_iter()
                .map(|mut p| {
                    p.index += 2;
                    p
                })
                .collect(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// An import refused whole: every problem by its line in the file.
fn import_refused(problems: Vec<RowProblem>) -> ApiError {
    let shown: Vec<String> = problems
        .iter()
        .take(5)
        .map(|p| format!("line {}, `{}`: {}", p.index, p.column, p.message))
        .collect();
    ApiError::InvalidRows(
        format!(
            "nothing was imported: {}{}",
            shown.join("; "),
            if problems.len() > 5 {
                format!(" (and {} more)", problems.len() - 5)
            } else {
                String::new()
            }
        ),
        problems,
    )
}

/// A cell's text in CSV: text as it is, other values as JSON. Text that a spreadsheet
/// would run as a formula (`=`, `+`, `-`, `@`, a tab or a carriage return first) gets a `'`
/// before it, so opening an export never runs what someone typed into a row.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => {
            format!("'{s}")
        }
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => other.to_string(),
    }
}

async fn export(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let t = s.store.table(&id).await?;
    let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    let keys: Vec<&str> = t.schema.columns.iter().map(|c| c.key.as_str()).collect();
    let mut head = vec!["_id"];
    head.extend(&keys);
    head.extend(["_created_at", "_updated_at"]);
    w.write_record(&head)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut q = RowQuery {
        limit: flowbot_store::MAX_PAGE,
        ..RowQuery::default()
    };
    loop {
        let page = s.store.table_rows(&id, &q).await?;
        for r in &page.rows {
            let record: Vec<String> = head.iter().map(|k| cell(r.get(*k))).collect();
            w.write_record(&record)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        match page.next {
            Some(next) => q.after = Some(next),
            None => break,
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        super::files::disposition(&format!("{}.csv", t.name)),
    );
    Ok(r)
}
