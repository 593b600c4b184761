//! Run history, re-runs and cancels, and the event inbox.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use flowbot_store::{RunFilter, RunStatus};
use serde::Deserialize;
use serde_json::json;

use super::ApiResult;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::routes::{op, Routes};
use crate::AppState;

pub(super) fn routes() -> Routes {
    Routes::default()
        .add(
            op(
                "get",
                "/api/v1/runs",
                "List runs (filters: flow, status, since, until; paginated by before)",
            )
            .query(&[
                ("flow", "a flow id"),
                ("status", "queued, running, succeeded, failed or canceled"),
                ("since", "created at or after (ms)"),
                ("until", "created before (ms)"),
                ("before", "runs older than this seq: the next page"),
                ("limit", "at most this many (1 to 200)"),
            ]),
            list_runs,
        )
        .add(
            op(
                "get",
                "/api/v1/runs/{id}",
                "A run with every step's input, obtained values, timing and errors",
            ),
            get_run,
        )
        .add(
            op(
                "post",
                "/api/v1/runs/{id}/rerun",
                "Re-run from the failed step or from the start",
            )
            .json_body::<RerunBody>(),
            rerun,
        )
        .add(
            op(
                "post",
                "/api/v1/runs/{id}/cancel",
                "Cancel a queued or running run",
            ),
            cancel,
        )
        .add(
            op("get", "/api/v1/events", "The event inbox").query(&[
                ("flow", "a flow id"),
                ("limit", "at most this many (1 to 1000)"),
            ]),
            list_events,
        )
}

// ---- runs and events ----

#[derive(Deserialize)]
struct RunsQuery {
    flow: Option<String>,
    status: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    before: Option<i64>,
    limit: Option<i64>,
}

async fn list_runs(State(s): State<AppState>, ApiQuery(q): ApiQuery<RunsQuery>) -> ApiResult {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(x) => Some(
            RunStatus::parse(x)
                .ok_or_else(|| ApiError::BadRequest(format!("unknown status `{x}`")))?,
        ),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let runs = s
        .store
        .runs(&RunFilter {
            flow_id: q.flow,
            status,
            since: q.since,
            until: q.until,
            before_seq: q.before,
            limit,
        })
        .await?;
    let next = (runs.len() as i64 == limit)
        .then(|| runs.last().map(|r| r.seq))
        .flatten();
    Ok(Json(json!({ "runs": runs, "next_before": next })))
}

async fn get_run(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let run = s.store.run(&id).await?;
    let steps = s.store.step_records(&id).await?;
    Ok(Json(json!({ "run": run, "steps": steps })))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct RerunBody {
    /// `failed` (the failed step, same flow version) or `start` (a new run).
    from: String,
    #[serde(default)]
    current_version: bool,
}

async fn rerun(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RerunBody>,
) -> ApiResult {
    match b.from.as_str() {
        "failed" => {
            s.store.rerun_from_failed(&id).await?;
            Ok(Json(json!({ "run_id": id })))
        }
        "start" => Ok(Json(
            json!({ "run_id": s.store.rerun_from_start(&id, b.current_version).await? }),
        )),
        other => Err(ApiError::BadRequest(format!(
            "`from` is `failed` or `start`, not `{other}`"
        ))),
    }
}

async fn cancel(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.store.cancel(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct EventsQuery {
    flow: Option<String>,
    limit: Option<i64>,
}

async fn list_events(State(s): State<AppState>, ApiQuery(q): ApiQuery<EventsQuery>) -> ApiResult {
    Ok(Json(json!(
        s.store
            .events(q.flow.as_deref(), q.limit.unwrap_or(50))
            .await?
    )))
}
