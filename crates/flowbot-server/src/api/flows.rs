//! Flows (import, export, versions, the trigger ON/OFF, connection slots), the templates
//! gallery, the apps catalogue, checking a flow file, and the "test trigger" capture.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::collections::BTreeMap;

use flowbot_core::manifest::AppManifest;
use flowbot_core::{check, Diagnostic};
use flowbot_store::{FlowInfo, FlowVersion, NewFlow, ProjectOf};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
                "/api/v1/flows",
                "List the flows of the projects you may read (filter: project)",
            )
            .needs(Perm::Read)
            .in_projects()
            .query::<ProjectQuery>()
            .returns::<Vec<FlowInfo>>(),
            list_flows,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/move",
                "Move a flow to another project; its versions and runs go with it",
            )
            .needs(Perm::Build)
            .of_flow("id")
            .json_body::<MoveBody>()
            .returns::<FlowView>(),
            move_flow,
        )
        .add(
            op(
                "post",
                "/api/v1/flows",
                "Import a flow (YAML); problems come back with line and column",
            )
            .needs(Perm::Build)
            .in_projects()
            .body::<String>("application/yaml")
            .json_body::<YamlBody>()
            .returns::<FlowView>()
            .status(201),
            import_flow,
        )
        .add(
            op(
                "get",
                "/api/v1/flows/{id}",
                "A flow with its YAML and webhook path",
            )
            .needs(Perm::Read)
            .of_flow("id")
            .returns::<FlowView>(),
            get_flow,
        )
        .add(
            op(
                "delete",
                "/api/v1/flows/{id}",
                "Delete a flow and its history",
            )
            .needs(Perm::Build)
            .of_flow("id")
            .no_content(),
            delete_flow,
        )
        .add(
            op("get", "/api/v1/flows/{id}/export", "The flow's YAML")
                .needs(Perm::Read)
                .of_flow("id")
                .answers("application/yaml", 200),
            export_flow,
        )
        .add(
            op("get", "/api/v1/flows/{id}/versions", "The flow's versions")
                .needs(Perm::Read)
                .of_flow("id")
                .returns::<Vec<FlowVersion>>(),
            flow_versions,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/enable",
                "Turn the trigger ON (after checking the flow and its connections)",
            )
            .needs(Perm::Run)
            .of_flow("id")
            .returns::<FlowView>(),
            enable_flow,
        )
        .add(
            op("post", "/api/v1/flows/{id}/disable", "Turn the trigger OFF")
                .needs(Perm::Run)
                .of_flow("id")
                .returns::<FlowView>(),
            disable_flow,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/token",
                "Regenerate the webhook token",
            )
            .needs(Perm::Build)
            .of_flow("id")
            .returns::<FlowView>(),
            regenerate_token,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/connections",
                "Choose the connection for a slot",
            )
            .needs(Perm::Build)
            .of_flow("id")
            .json_body::<BindBody>()
            .returns::<FlowView>(),
            bind_connection,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/rerun-failed",
                "Re-run every failed run from its failed step",
            )
            .needs(Perm::Run)
            .of_flow("id")
            .returns::<Requeued>(),
            rerun_failed,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/test-trigger",
                "Wait for the next webhook request and show what the flow receives",
            )
            .needs(Perm::Build)
            .of_flow("id")
            .query::<WaitQuery>()
            .returns::<TriggerCapture>(),
            test_trigger,
        )
        .add(
            op("get", "/api/v1/templates", "List the built-in templates")
                .needs(Perm::Read)
                .in_projects()
                .returns::<Vec<TemplateInfo>>(),
            list_templates,
        )
        .add(
            op("post", "/api/v1/templates/{id}/import", "Import a template")
                .needs(Perm::Build)
                .in_projects()
                .query::<ProjectQuery>()
                .returns::<FlowView>()
                .status(201),
            import_template,
        )
        .add(
            op("get", "/api/v1/apps", "The apps and their manifests")
                .needs(Perm::Read)
                .in_projects()
                .returns::<Vec<AppManifest>>(),
            list_apps,
        )
        .add(
            op(
                "post",
                "/api/v1/validate",
                "Check a flow file without saving it",
            )
            .needs(Perm::Read)
            .in_projects()
            .body::<String>("application/yaml")
            .json_body::<YamlBody>()
            .returns::<Validation>(),
            validate_flow,
        )
}

// ---- flows ----

/// A flow as the API shows it.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct FlowView {
    flow: FlowInfo,
    /// Where the flow's webhook trigger listens (the token is its secret part).
    webhook_path: String,
    /// The current version's flow file.
    yaml: String,
    /// The connection slots that have a connection chosen.
    connected_slots: Vec<String>,
    /// Slot → the chosen connection's id.
    bindings: BTreeMap<String, String>,
    /// The flow's page in the web UI.
    page: String,
}

async fn flow_view(s: &AppState, id: &str) -> Result<FlowView, ApiError> {
    let info = s.store.flow(id).await?;
    let yaml = s.store.current_yaml(id).await?;
    let bindings: BTreeMap<String, String> = s.store.flow_bindings(id).await?.into_iter().collect();
    Ok(FlowView {
        webhook_path: format!("/hooks/{}/{}", info.id, info.webhook_token),
        flow: info,
        yaml,
        connected_slots: bindings.keys().cloned().collect(),
        bindings,
        page: format!("/flows/{id}"),
    })
}

/// The flows of the projects the caller may read (of one, when asked).
async fn list_flows(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiQuery(q): ApiQuery<ProjectQuery>,
) -> ApiResult<Json<Vec<FlowInfo>>> {
    Ok(Json(
        s.store
            .flows()
            .await?
            .into_iter()
            .filter(|f| q.project.as_ref().is_none_or(|p| *p == f.project_id))
            .filter(|f| c.may_in(&f.project_id, Perm::Read, &axum::http::Method::GET))
            .map(|mut f| {
                if !builds(&c, &f) {
                    hide_token(&mut f);
                }
                f
            })
            .collect(),
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct MoveBody {
    /// The project id to move the flow to.
    project: String,
}

/// Move a flow to another project (the caller builds in both); its history goes along.
async fn move_flow(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<MoveBody>,
) -> ApiResult<Json<FlowView>> {
    c.check_in(&b.project, Perm::Build)?;
    s.store.move_flow(&id, &b.project, c.actor()).await?;
    Ok(Json(flow_view(&s, &id).await?))
}

async fn get_flow(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<FlowView>> {
    let mut view = flow_view(&s, &id).await?;
    if !builds(&c, &view.flow) {
        hide_token(&mut view.flow);
        view.webhook_path.clear();
    }
    Ok(Json(view))
}

/// Whether the caller builds in the flow's project (and so may know its webhook URL).
fn builds(c: &Caller, f: &FlowInfo) -> bool {
    c.may_in(&f.project_id, Perm::Build, &axum::http::Method::POST)
}

/// The webhook token is a credential: whoever knows it can start the flow. Readers do not
/// get it.
fn hide_token(f: &mut FlowInfo) {
    f.webhook_token.clear();
}

/// A flow file sent as JSON.
#[derive(Deserialize, schemars::JsonSchema)]
struct YamlBody {
    /// The flow file.
    yaml: String,
    /// For a new flow: the webhook token its page already showed (48 hex characters).
    #[serde(default)]
    webhook_token: Option<String>,
    /// Refuse (409) instead of saving a new version of a flow that has this id already.
    #[serde(default)]
    create_only: bool,
    /// The project a new flow goes into (the default project when left out); an existing
    /// flow stays in its own.
    #[serde(default)]
    project: Option<String>,
}

/// The YAML from a `text/yaml` body, or from `{"yaml": …}`.
fn yaml_of(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    flow_body(headers, body).map(|b| b.yaml)
}

fn flow_body(headers: &HeaderMap, body: &Bytes) -> Result<YamlBody, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if !json {
        return Ok(YamlBody {
            yaml: text.to_string(),
            webhook_token: None,
            create_only: false,
            project: None,
        });
    }
    serde_json::from_str::<YamlBody>(text).map_err(|e| {
        ApiError::BadRequest(format!(
            "send the flow as {{\"yaml\": \"…\"}} or as text/yaml ({e})"
        ))
    })
}

pub(crate) fn diagnostics(checked: &flowbot_core::Checked) -> Vec<flowbot_core::Diagnostic> {
    checked.diagnostics.clone()
}

#[derive(Serialize, schemars::JsonSchema)]
struct Validation {
    valid: bool,
    diagnostics: Vec<Diagnostic>,
}

/// Check a flow file without saving it: every problem with its line and column.
async fn validate_flow(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Validation>> {
    let yaml = yaml_of(&headers, &body)?;
    let checked = check(&yaml, &s.apps);
    Ok(Json(Validation {
        valid: checked.flow.is_some(),
        diagnostics: diagnostics(&checked),
    }))
}

pub(crate) async fn import_yaml(
    s: &AppState,
    yaml: &str,
    c: &Caller,
    project: Option<String>,
) -> Result<FlowView, ApiError> {
    let new = NewFlow {
        project,
        ..NewFlow::default()
    };
    import_yaml_as(s, yaml, c, new).await
}

/// Save a flow file as a new flow (in the project asked for) or as a new version of the
/// flow with its id (in that flow's project): either way the caller builds there.
async fn import_yaml_as(
    s: &AppState,
    yaml: &str,
    c: &Caller,
    new: NewFlow,
) -> Result<FlowView, ApiError> {
    let checked = check(yaml, &s.apps);
    let Some(flow) = checked.flow.clone() else {
        return Err(ApiError::InvalidFlow(diagnostics(&checked)));
    };
    let project = match s.store.project_of(ProjectOf::Flow, &flow.id).await? {
        Some(p) => p,
        None => new
            .project
            .clone()
            .unwrap_or_else(|| flowbot_store::DEFAULT_PROJECT.to_string()),
    };
    c.check_in(&project, Perm::Build)?;
    s.store
        .import_flow_as(&flow.id, &flow.name, yaml, c.actor(), new)
        .await?;
    flow_view(s, &flow.id).await
}

async fn import_flow(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<FlowView>)> {
    let b = flow_body(&headers, &body)?;
    let new = NewFlow {
        webhook_token: b.webhook_token,
        create_only: b.create_only,
        project: b.project,
    };
    Ok((
        StatusCode::CREATED,
        Json(import_yaml_as(&s, &b.yaml, &c, new).await?),
    ))
}

async fn export_flow(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let yaml = s.store.current_yaml(&id).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        yaml,
    )
        .into_response())
}

async fn flow_versions(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<FlowVersion>>> {
    s.store.flow(&id).await?;
    Ok(Json(s.store.flow_versions(&id).await?))
}

async fn delete_flow(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.store.delete_flow(&id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The flow's current version, parsed (and cached).
async fn current_flow(
    s: &AppState,
    id: &str,
) -> Result<std::sync::Arc<flowbot_core::Flow>, ApiError> {
    let info = s.store.flow(id).await?;
    s.flows
        .get(&s.store, &s.apps, id, info.current_version)
        .await
        .map_err(ApiError::Conflict)
}

/// Turning a trigger ON first checks the flow: it validates, every connection slot is
/// filled, and each connection's test call passes. Otherwise it stays OFF and the answer
/// says what is missing.
async fn enable_flow(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<FlowView>> {
    // Said in the caller's language: the UI shows it as it comes.
    let ja = crate::ui::request_lang(&headers) == "ja";
    let flow = current_flow(&s, &id).await?;
    let bound = s.store.flow_connections(&id).await?;
    let mut problems = Vec::new();
    for slot in &flow.connections {
        let app_name = s
            .apps
            .get(&slot.app)
            .map(|a| {
                a.manifest()
                    .name
                    .get(if ja { "ja" } else { "en" })
                    .to_string()
            })
            .unwrap_or_else(|| slot.app.clone());
        match bound.get(&slot.name) {
            None => problems.push(if ja {
                format!("連携「{}」（{app_name}）が選択されていません。フローボットの画面で選んでください", slot.name)
            } else {
                format!("connection `{}` ({app_name}) is not chosen: choose one on the flow's page", slot.name)
            }),
            Some(conn) => {
                if let Some(app) = s.apps.get(&conn.app) {
                    if let Err(e) = app.test_connection(conn).await {
                        let why = crate::explain::explain(e.code.as_deref(), if ja { "ja" } else { "en" });
                        problems.push(match (ja, why) {
                            (true, Some(w)) => format!("連携「{}」が動作しません。{w}（{}）", slot.name, e.message),
                            (true, None) => format!("連携「{}」が動作しません（{}）", slot.name, e.message),
                            (false, Some(w)) => format!("connection `{}` does not work. {w} ({})", slot.name, e.message),
                            (false, None) => format!("connection `{}` does not work: {}", slot.name, e.message),
                        });
                    }
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::Conflict(if ja {
            format!("トリガーは OFF のままです: {}", problems.join("；"))
        } else {
            format!("the trigger stays OFF: {}", problems.join("; "))
        }));
    }
    s.store.set_enabled(&id, true, c.actor()).await?;
    Ok(Json(flow_view(&s, &id).await?))
}

async fn disable_flow(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<FlowView>> {
    s.store.set_enabled(&id, false, c.actor()).await?;
    Ok(Json(flow_view(&s, &id).await?))
}

async fn regenerate_token(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<FlowView>> {
    s.store.regenerate_webhook_token(&id, c.actor()).await?;
    Ok(Json(flow_view(&s, &id).await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct BindBody {
    slot: String,
    connection_id: String,
}

async fn bind_connection(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<BindBody>,
) -> ApiResult<Json<FlowView>> {
    let flow = current_flow(&s, &id).await?;
    let Some(slot) = flow.connections.iter().find(|x| x.name == b.slot) else {
        return Err(ApiError::BadRequest(format!(
            "flow `{id}` has no connection slot `{}`",
            b.slot
        )));
    };
    let conn = s.store.connection(&b.connection_id).await?;
    if conn.app != slot.app {
        return Err(ApiError::BadRequest(format!(
            "slot `{}` needs a {} connection, not {}",
            slot.name, slot.app, conn.app
        )));
    }
    s.store
        .bind_connection(&id, &b.slot, &b.connection_id, c.actor())
        .await?;
    Ok(Json(flow_view(&s, &id).await?))
}

#[derive(Serialize, schemars::JsonSchema)]
struct Requeued {
    /// How many failed runs were queued again.
    requeued: u64,
}

async fn rerun_failed(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Requeued>> {
    s.store.flow(&id).await?;
    Ok(Json(Requeued {
        requeued: s.store.rerun_failed(&id, c.actor()).await?,
    }))
}

// ---- templates and apps ----

#[derive(Serialize, schemars::JsonSchema)]
struct TemplateInfo {
    id: String,
    name: Option<String>,
    description: Option<String>,
}

async fn list_templates(State(s): State<AppState>) -> ApiResult<Json<Vec<TemplateInfo>>> {
    let list = s
        .templates
        .iter()
        .map(|(id, yaml)| {
            let flow = check(yaml, &s.apps).flow;
            TemplateInfo {
                id: id.to_string(),
                name: flow.as_ref().map(|f| f.name.clone()),
                description: flow.and_then(|f| f.description),
            }
        })
        .collect();
    Ok(Json(list))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ProjectQuery {
    /// A project id (the default project when left out).
    project: Option<String>,
}

async fn import_template(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ProjectQuery>,
) -> ApiResult<(StatusCode, Json<FlowView>)> {
    let yaml = s
        .template(&id)
        .ok_or_else(|| ApiError::NotFound(format!("template `{id}` not found")))?;
    let yaml = template_copy(&s, yaml).await?;
    Ok((
        StatusCode::CREATED,
        Json(import_yaml(&s, &yaml, &c, q.project).await?),
    ))
}

/// A template as a new flow: under its own id the first time; once that id is taken, as
/// a copy with a fresh id and a "（コピー）" name — never over the flow made before.
pub(crate) async fn template_copy(s: &AppState, yaml: &str) -> Result<String, ApiError> {
    let checked = check(yaml, &s.apps);
    let Some(flow) = checked.flow else {
        return Err(ApiError::InvalidFlow(diagnostics(&checked)));
    };
    if s.store.flow(&flow.id).await.is_err() {
        return Ok(yaml.to_string());
    }
    let mut n = 1;
    let mut id = format!("{}-copy", flow.id);
    while s.store.flow(&id).await.is_ok() {
        n += 1;
        if n > 1000 {
            return Err(ApiError::Conflict(format!(
                "too many copies of `{}`: rename or delete some",
                flow.id
            )));
        }
        id = format!("{}-copy-{n}", flow.id);
    }
    let mut doc: serde_json::Value = serde_yaml::from_str(yaml)
        .map_err(|e| ApiError::BadRequest(format!("the template does not read: {e}")))?;
    doc["id"] = serde_json::Value::String(id);
    doc["name"] = serde_json::Value::String(format!("{}（コピー）", flow.name));
    // Only the two lines change; the template's comments stay.
    Ok(flowbot_core::yaml_patch::patch(yaml, &doc)
        .unwrap_or_else(|| serde_yaml::to_string(&doc).unwrap_or_else(|_| yaml.to_string())))
}

async fn list_apps(State(s): State<AppState>) -> ApiResult<Json<Vec<AppManifest>>> {
    Ok(Json(s.apps.manifests().cloned().collect()))
}

// ---- test trigger ----

#[derive(Deserialize, schemars::JsonSchema)]
struct WaitQuery {
    /// Seconds to wait, 1 to 300 (60).
    wait: Option<u64>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct TriggerCapture {
    /// Whether a request came within the wait.
    received: bool,
    /// What the flow received: `body`, `headers`, `query` (or why it would be ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger: Option<Value>,
}

/// Wait for the next request to the flow's webhook and show what the flow would receive —
/// as Yoom's テスト button, so fields can be mapped from a real sample.
async fn test_trigger(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> ApiResult<Json<TriggerCapture>> {
    // In the store, not in this process: the webhook may reach another server.
    let wait = std::time::Duration::from_secs(q.wait.unwrap_or(60).clamp(1, 300));
    let capture = s.store.capture_open(&id, wait).await?;
    Ok(Json(match s.store.capture_wait(&capture, wait).await? {
        Some(sample) => {
            // The editor's pickers show it as the trigger's sample values.
            if sample.get("ignored").is_none() && sample.get("error").is_none() {
                s.store.set_sample(&id, "trigger", &sample).await?;
            }
            TriggerCapture {
                received: true,
                trigger: Some(sample),
            }
        }
        None => TriggerCapture {
            received: false,
            trigger: None,
        },
    }))
}
