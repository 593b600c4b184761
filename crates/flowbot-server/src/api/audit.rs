//! The audit log, for owners and admins: filtered, newest first, as JSON or CSV.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use flowbot_store::{AuditEntry, AuditFilter};
use serde::{Deserialize, Serialize};

use super::ApiResult;
use crate::error::{ApiError, ApiQuery};
use crate::routes::{op, Perm, Routes};
use crate::AppState;

/// The most entries one CSV export holds.
const CSV_MAX: i64 = 10_000;

pub(super) fn routes() -> Routes {
    Routes::default()
        .add(
            op(
                "get",
                "/api/v1/audit",
                "Who changed what, when and from where (filters: actor, action, target, since, until; paginated by before)",
            )
            .needs(Perm::Admin)
            .query::<AuditQuery>()
            .returns::<AuditPage>(),
            list,
        )
        .add(
            op(
                "get",
                "/api/v1/audit.csv",
                "The audit log as CSV (the same filters; at most 10,000 entries)",
            )
            .needs(Perm::Admin)
            .query::<AuditQuery>()
            .answers("text/csv", 200),
            csv,
        )
}

#[derive(Deserialize, schemars::JsonSchema, Default)]
pub(crate) struct AuditQuery {
    /// A user name.
    pub actor: Option<String>,
    /// An action (`flow.import`) or its family (`flow`).
    pub action: Option<String>,
    /// A flow id, a user name, a connection name…
    pub target: Option<String>,
    /// At or after (ms since the epoch).
    pub since: Option<i64>,
    /// Before (ms since the epoch).
    pub until: Option<i64>,
    /// Entries older than this id: the next page.
    pub before: Option<i64>,
    /// At most this many (1 to 500; 100).
    pub limit: Option<i64>,
}

impl AuditQuery {
    pub(crate) fn filter(&self, limit: i64) -> Result<AuditFilter, ApiError> {
        let text = |v: &Option<String>, name: &str| -> Result<Option<String>, ApiError> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(t) if t.chars().count() > 200 => Err(ApiError::BadRequest(format!(
                    "`{name}` is at most 200 characters"
                ))),
                Some(t) => Ok(Some(t.to_string())),
            }
        };
        Ok(AuditFilter {
            actor: text(&self.actor, "actor")?,
            action: text(&self.action, "action")?,
            target: text(&self.target, "target")?,
            since: self.since,
            until: self.until,
            before_id: self.before,
            limit,
        })
    }
}

#[derive(Serialize, schemars::JsonSchema)]
struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Pass as `before` for the next page; absent on the last.
    next_before: Option<i64>,
}

async fn list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let entries = s.store.audit_entries(&q.filter(limit)?).await?;
    let next_before = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditPage {
        entries,
        next_before,
    }))
}

async fn csv(State(s): State<AppState>, ApiQuery(q): ApiQuery<AuditQuery>) -> ApiResult<Response> {
    let entries = s.store.audit_entries(&q.filter(CSV_MAX)?).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"flowbot-audit.csv\"",
            ),
        ],
        to_csv(&entries),
    )
        .into_response())
}

/// RFC 4180 CSV with a byte-order mark, so spreadsheet programs read the Japanese right.
/// A cell that a spreadsheet would take for a formula is prefixed with `'`.
pub(crate) fn to_csv(entries: &[AuditEntry]) -> String {
    let mut out = String::from("\u{feff}at,actor,address,action,target,detail\r\n");
    for e in entries {
        let at = jiff::Timestamp::from_millisecond(e.at)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let cells = [
            at,
            e.actor.clone(),
            e.address.clone(),
            e.action.clone(),
            e.target.clone(),
            e.detail.to_string(),
        ];
        let line: Vec<String> = cells.iter().map(|c| cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn cell(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_quotes_what_needs_it_and_defuses_formulas() {
        let e = AuditEntry {
            id: 1,
            at: 0,
            actor: "=HYPERLINK(\"x\")".into(),
            address: "127.0.0.1".into(),
            action: "flow.import".into(),
            target: "a,b".into(),
            detail: json!({ "version": 2 }),
        };
        let text = to_csv(&[e]);
        let line = text.lines().nth(1).unwrap();
        assert_eq!(
            line,
            "1970-01-01T00:00:00Z,\"'=HYPERLINK(\"\"x\"\")\",127.0.0.1,flow.import,\"a,b\",\"{\"\"version\"\":2}\""
        );
        assert!(text.starts_with('\u{feff}'));
    }
}
