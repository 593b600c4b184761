//! My Tasks (マイタスク) through the API: the approvals and tasks asking the caller, one
//! request with what was decided, a decision, and the requests of a run.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::{Extension, Json};
use flowbot_core::Diagnostic;
use flowbot_store::{Choice, Decided, Decider, ProjectOf, RequestInfo};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::ApiResult;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::routes::{op, Perm, Routes};
use crate::AppState;

/// The longest comment taken.
pub(crate) const MAX_COMMENT: usize = 2000;

pub(super) fn routes() -> Routes {
    Routes::default()
        .add(
            op(
                "get",
                "/api/v1/tasks",
                "The approvals and tasks asking the caller (`state=open`, the default), or those they answered (`state=answered`)",
            )
            .needs(Perm::Own)
            .query::<TasksQuery>()
            .returns::<Vec<RequestInfo>>(),
            list,
        )
        .add(
            op(
                "get",
                "/api/v1/tasks/{id}",
                "One approval or task: who is asked, what they decided (for the people asked and those who may read its run)",
            )
            .needs(Perm::Own)
            .returns::<RequestInfo>(),
            one,
        )
        .add(
            op(
                "post",
                "/api/v1/tasks/{id}/decision",
                "Approve, reject, send back or complete a request that asks the caller; a task's answers are checked against its form",
            )
            .needs(Perm::Own)
            .json_body::<DecisionBody>()
            .returns::<Decided>(),
            decide,
        )
        .add(
            op(
                "get",
                "/api/v1/runs/{id}/requests",
                "The approvals and tasks of a run: who was asked, who decided what and when",
            )
            .needs(Perm::Read)
            .of_run("id")
            .returns::<Vec<RequestInfo>>(),
            of_run,
        )
}

#[derive(Deserialize, schemars::JsonSchema, Default)]
struct TasksQuery {
    /// `open` (waiting for the caller) or `answered`.
    state: Option<String>,
    /// At most this many (1 to 200; 100).
    limit: Option<i64>,
}

async fn list(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<TasksQuery>,
) -> ApiResult<Json<Vec<RequestInfo>>> {
    let open = match q.state.as_deref() {
        None | Some("open") => true,
        Some("answered") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`state` is `open` or `answered`, not `{other}`"
            )))
        }
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 200);
    Ok(Json(
        s.store
            .requests_for(&caller.user.username, open, limit)
            .await?,
    ))
}

/// Whether the caller may see a request: asked by it, or able to read its run.
pub(crate) async fn may_see(s: &AppState, caller: &Caller, req: &RequestInfo) -> bool {
    let me = caller.user.username.as_str();
    if req.people.iter().any(|p| p.member.as_deref() == Some(me)) {
        return true;
    }
    match s.store.project_of(ProjectOf::Run, &req.run_id).await {
        Ok(Some(project)) => caller.may_in(&project, Perm::Read, &Method::GET),
        _ => false,
    }
}

async fn one(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<RequestInfo>> {
    let req = s.store.request(&id).await?;
    if !may_see(&s, &caller, &req).await {
        return Err(ApiError::NotFound(format!("request {id} not found")));
    }
    Ok(Json(req))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct DecisionBody {
    /// `approve`, `reject`, `send_back` (approvals); `complete`, `send_back` (tasks).
    pub decision: String,
    #[serde(default)]
    pub comment: String,
    /// A task's answers by field key: text, a number, true/false, or a list for
    /// multi-select.
    #[serde(default)]
    pub answers: Map<String, Value>,
}

/// Answers as the form checker reads them: one (key, text) pair per value.
pub(crate) fn answer_pairs(answers: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in answers {
        let items = match v {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for item in items {
            let text = match item {
                Value::String(s) => s,
                Value::Bool(true) => "on".into(),
                Value::Bool(false) | Value::Null => continue,
                other => other.to_string(),
            };
            out.push((k.clone(), text));
        }
    }
    out
}

/// Check a decision before it is stored: a known choice, a comment of bounded length, and
/// for a completed task answers its form accepts (each problem by field key, in `lang`).
pub(crate) fn checked(
    req: &RequestInfo,
    decision: &str,
    comment: &str,
    answers: &[(String, String)],
    lang: &str,
) -> Result<(Choice, Option<Value>), ApiError> {
    let choice = Choice::parse(decision).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "`decision` is approve, reject, send_back or complete, not `{decision}`"
        ))
    })?;
    if comment.chars().count() > MAX_COMMENT {
        return Err(ApiError::BadRequest(format!(
            "a comment is at most {MAX_COMMENT} characters"
        )));
    }
    if req.kind != "task" || choice != Choice::Complete {
        return Ok((choice, None));
    }
    let mut options = Map::new();
    options.insert("fields".into(), req.fields.clone().unwrap_or_default());
    let spec = flowbot_core::form::parse(&options)
        .map_err(|_| ApiError::Internal("a task's stored form cannot be read".into()))?;
    match flowbot_core::form::check(&spec, answers) {
        Ok(values) => Ok((choice, Some(Value::Object(values)))),
        Err(errors) => Err(ApiError::InvalidAnswers(
            errors
                .into_iter()
                .map(|(key, e)| Diagnostic {
                    line: 0,
                    column: 0,
                    path: key,
                    message: if lang == "en" { e.en } else { e.ja },
                })
                .collect(),
        )),
    }
}

async fn decide(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> ApiResult<Json<Decided>> {
    let req = s.store.request(&id).await?;
    if !may_see(&s, &caller, &req).await {
        return Err(ApiError::NotFound(format!("request {id} not found")));
    }
    let lang = match caller.user.language.as_str() {
        "en" => "en",
        "ja" => "ja",
        _ => crate::ui::request_lang(&headers),
    };
    let (choice, answers) = checked(
        &req,
        &body.decision,
        &body.comment,
        &answer_pairs(&body.answers),
        lang,
    )?;
    Ok(Json(
        s.store
            .decide(
                &id,
                Decider::Member(caller.user.username.clone()),
                choice,
                body.comment.trim(),
                answers,
                &caller.address,
            )
            .await?,
    ))
}

async fn of_run(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<RequestInfo>>> {
    s.store.run(&id).await?;
    Ok(Json(s.store.requests_of_run(&id).await?))
}
