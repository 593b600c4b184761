//! Run history, re-runs and cancels, and the event inbox.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use flowbot_core::StepRecord;
use flowbot_store::{EventInfo, RunFilter, RunInfo, RunStatus};
use serde::{Deserialize, Serialize};

use super::ApiResult;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::routes::{op, Perm, Routes};
use crate::AppState;

pub(super) fn routes() -> Routes {
    Routes::default()
        .add(
            op(
                "get",
                "/api/v1/runs",
                "List runs (filters: flow, status, since, until; paginated by before)",
            )
            .needs(Perm::Read)
            .in_projects()
            .query::<RunsQuery>()
            .returns::<RunsPage>(),
            list_runs,
        )
        .add(
            op(
                "get",
                "/api/v1/runs/{id}",
                "A run with every step's input, obtained values, timing and errors",
            )
            .needs(Perm::Read)
            .of_run("id")
            .returns::<RunDetail>(),
            get_run,
        )
        .add(
            op(
                "post",
                "/api/v1/runs/{id}/rerun",
                "Re-run from the failed step or from the start",
            )
            .needs(Perm::Run)
            .of_run("id")
            .json_body::<RerunBody>()
            .returns::<RerunAnswer>(),
            rerun,
        )
        .add(
            op(
                "post",
                "/api/v1/runs/{id}/cancel",
                "Cancel a queued or running run",
            )
            .needs(Perm::Run)
            .of_run("id")
            .no_content(),
            cancel,
        )
        .add(
            op("get", "/api/v1/events", "The event inbox")
                .needs(Perm::Read)
                .in_projects()
                .query::<EventsQuery>()
                .returns::<Vec<EventInfo>>(),
            list_events,
        )
}

// ---- runs and events ----

#[derive(Deserialize, schemars::JsonSchema)]
struct RunsQuery {
    /// A flow id.
    flow: Option<String>,
    /// `queued`, `running`, `succeeded`, `failed` or `canceled`.
    status: Option<String>,
    /// Created at or after (ms since the epoch).
    since: Option<i64>,
    /// Created before (ms since the epoch).
    until: Option<i64>,
    /// Runs older than this `seq`: the next page.
    before: Option<i64>,
    /// At most this many (1 to 200; 50).
    limit: Option<i64>,
    /// Only runs whose trigger values contain this text, in any case (at most 200
    /// characters): an email, an order number.
    q: Option<String>,
    /// A project id: only its flows' runs.
    project: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct RunsPage {
    runs: Vec<RunInfo>,
    /// Pass as `before` for the next page; absent on the last.
    next_before: Option<i64>,
}

async fn list_runs(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> ApiResult<Json<RunsPage>> {
    let all: Vec<String> = s
        .store
        .project_names()
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut readable = c.projects_with(Perm::Read, &all);
    if let Some(p) = &q.project {
        readable.retain(|r| r == p);
    }
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
            projects: Some(readable),
            contains: match q.q.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(t) if t.chars().count() > 200 => {
                    return Err(ApiError::BadRequest("`q` is at most 200 characters".into()))
                }
                Some(t) => Some(t.to_string()),
            },
            limit,
        })
        .await?;
    let next = (runs.len() as i64 == limit)
        .then(|| runs.last().map(|r| r.seq))
        .flatten();
    Ok(Json(RunsPage {
        runs,
        next_before: next,
    }))
}

#[derive(Serialize, schemars::JsonSchema)]
struct RunDetail {
    run: RunInfo,
    /// Every execution of every step, in order.
    steps: Vec<StepRecord>,
}

async fn get_run(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<RunDetail>> {
    let run = s.store.run(&id).await?;
    let steps = s.store.step_records(&id).await?;
    Ok(Json(RunDetail { run, steps }))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct RerunBody {
    /// `failed` (the failed step, same flow version) or `start` (a new run).
    from: String,
    #[serde(default)]
    current_version: bool,
}

#[derive(Serialize, schemars::JsonSchema)]
struct RerunAnswer {
    /// The run that goes again: the same one from its failed step, or a new one.
    run_id: String,
}

async fn rerun(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RerunBody>,
) -> ApiResult<Json<RerunAnswer>> {
    match b.from.as_str() {
        "failed" => {
            s.store.rerun_from_failed(&id, c.actor()).await?;
            Ok(Json(RerunAnswer { run_id: id }))
        }
        "start" => Ok(Json(RerunAnswer {
            run_id: s
                .store
                .rerun_from_start(&id, b.current_version, c.actor())
                .await?,
        })),
        other => Err(ApiError::BadRequest(format!(
            "`from` is `failed` or `start`, not `{other}`"
        ))),
    }
}

async fn cancel(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.store.cancel(&id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, schemars::JsonSchema)]
struct EventsQuery {
    /// A flow id.
    flow: Option<String>,
    /// At most this many (1 to 1000; 50).
    limit: Option<i64>,
}

/// The events of the flows in projects the caller may read.
async fn list_events(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Json<Vec<EventInfo>>> {
    let get = axum::http::Method::GET;
    let readable: std::collections::HashSet<String> = s
        .store
        .flows()
        .await?
        .into_iter()
        .filter(|f| c.may_in(&f.project_id, Perm::Read, &get))
        .map(|f| f.id)
        .collect();
    Ok(Json(
        s.store
            .events(q.flow.as_deref(), q.limit.unwrap_or(50))
            .await?
            .into_iter()
            .filter(|e| readable.contains(&e.flow_id))
            .collect(),
    ))
}
