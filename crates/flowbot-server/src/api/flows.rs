//! Flows (import, export, versions, the trigger ON/OFF, connection slots), the templates
//! gallery, the apps catalogue, checking a flow file, and the "test trigger" capture.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use flowbot_core::check;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiResult;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::routes::{op, Routes};
use crate::AppState;

pub(super) fn routes() -> Routes {
    Routes::default()
        .add(op("get", "/api/v1/flows", "List flows"), list_flows)
        .add(
            op(
                "post",
                "/api/v1/flows",
                "Import a flow (YAML); problems come back with line and column",
            )
            .body(Some("application/yaml"))
            .answers("application/json", 201),
            import_flow,
        )
        .add(
            op(
                "get",
                "/api/v1/flows/{id}",
                "A flow with its YAML and webhook path",
            ),
            get_flow,
        )
        .add(
            op(
                "delete",
                "/api/v1/flows/{id}",
                "Delete a flow and its history",
            ),
            delete_flow,
        )
        .add(
            op("get", "/api/v1/flows/{id}/export", "The flow's YAML")
                .answers("application/yaml", 200),
            export_flow,
        )
        .add(
            op("get", "/api/v1/flows/{id}/versions", "The flow's versions"),
            flow_versions,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/enable",
                "Turn the trigger ON (after checking the flow and its connections)",
            ),
            enable_flow,
        )
        .add(
            op("post", "/api/v1/flows/{id}/disable", "Turn the trigger OFF"),
            disable_flow,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/token",
                "Regenerate the webhook token",
            ),
            regenerate_token,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/connections",
                "Choose the connection for a slot",
            )
            .json_body::<BindBody>(),
            bind_connection,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/rerun-failed",
                "Re-run every failed run from its failed step",
            ),
            rerun_failed,
        )
        .add(
            op(
                "post",
                "/api/v1/flows/{id}/test-trigger",
                "Wait for the next webhook request and show what the flow receives",
            )
            .query(&[("wait", "seconds to wait, 1 to 300 (60)")])
            .body(None),
            test_trigger,
        )
        .add(
            op("get", "/api/v1/templates", "List the built-in templates"),
            list_templates,
        )
        .add(
            op("post", "/api/v1/templates/{id}/import", "Import a template"),
            import_template,
        )
        .add(
            op("get", "/api/v1/apps", "The apps and their manifests"),
            list_apps,
        )
        .add(
            op(
                "post",
                "/api/v1/validate",
                "Check a flow file without saving it",
            )
            .body(Some("application/yaml")),
            validate_flow,
        )
}

// ---- flows ----

async fn flow_view(s: &AppState, id: &str) -> Result<Value, ApiError> {
    let info = s.store.flow(id).await?;
    let yaml = s.store.current_yaml(id).await?;
    let bindings = s.store.flow_bindings(id).await?;
    let mut slots: Vec<&String> = bindings.keys().collect();
    slots.sort();
    Ok(json!({
        "flow": info,
        "webhook_path": format!("/hooks/{}/{}", info.id, info.webhook_token),
        "yaml": yaml,
        "connected_slots": slots,
        "bindings": bindings,
    }))
}

async fn list_flows(State(s): State<AppState>) -> ApiResult {
    Ok(Json(json!(s.store.flows().await?)))
}

async fn get_flow(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(flow_view(&s, &id).await?))
}

/// The YAML from a `text/yaml` body, or from `{"yaml": …}`.
fn yaml_of(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if !json {
        return Ok(text.to_string());
    }
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    v.get("yaml")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::BadRequest("send the flow as {\"yaml\": \"…\"} or as text/yaml".into())
        })
}

pub(crate) fn diagnostics(checked: &flowbot_core::Checked) -> Vec<Value> {
    checked
        .diagnostics
        .iter()
        .map(
            |d| json!({ "line": d.line, "column": d.column, "path": d.path, "message": d.message }),
        )
        .collect()
}

/// Check a flow file without saving it: every problem with its line and column.
async fn validate_flow(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let yaml = yaml_of(&headers, &body)?;
    let checked = check(&yaml, &s.apps);
    Ok(Json(
        json!({ "valid": checked.flow.is_some(), "diagnostics": diagnostics(&checked) }),
    ))
}

pub(crate) async fn import_yaml(s: &AppState, yaml: &str, actor: &str) -> Result<Value, ApiError> {
    let checked = check(yaml, &s.apps);
    let Some(flow) = checked.flow.clone() else {
        return Err(ApiError::InvalidFlow(diagnostics(&checked)));
    };
    s.store
        .import_flow(&flow.id, &flow.name, yaml, actor)
        .await?;
    flow_view(s, &flow.id).await
}

async fn import_flow(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let yaml = yaml_of(&headers, &body)?;
    Ok((
        StatusCode::CREATED,
        Json(import_yaml(&s, &yaml, &c.user.username).await?),
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

async fn flow_versions(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    s.store.flow(&id).await?;
    Ok(Json(json!(s.store.flow_versions(&id).await?)))
}

async fn delete_flow(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.store.delete_flow(&id, &c.user.username).await?;
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
) -> ApiResult {
    let flow = current_flow(&s, &id).await?;
    let bound = s.store.flow_connections(&id).await?;
    let mut problems = Vec::new();
    for slot in &flow.connections {
        match bound.get(&slot.name) {
            None => problems.push(format!(
                "connection `{}` ({}) is not chosen",
                slot.name, slot.app
            )),
            Some(conn) => {
                if let Some(app) = s.apps.get(&conn.app) {
                    if let Err(e) = app.test_connection(conn).await {
                        problems.push(format!(
                            "connection `{}` does not work: {}",
                            slot.name, e.message
                        ));
                    }
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::Conflict(format!(
            "the trigger stays OFF: {}",
            problems.join("; ")
        )));
    }
    s.store.set_enabled(&id, true, &c.user.username).await?;
    Ok(Json(flow_view(&s, &id).await?))
}

async fn disable_flow(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.set_enabled(&id, false, &c.user.username).await?;
    Ok(Json(flow_view(&s, &id).await?))
}

async fn regenerate_token(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store
        .regenerate_webhook_token(&id, &c.user.username)
        .await?;
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
) -> ApiResult {
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
        .bind_connection(&id, &b.slot, &b.connection_id, &c.user.username)
        .await?;
    Ok(Json(flow_view(&s, &id).await?))
}

async fn rerun_failed(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    s.store.flow(&id).await?;
    Ok(Json(
        json!({ "requeued": s.store.rerun_failed(&id).await? }),
    ))
}

// ---- templates and apps ----

async fn list_templates(State(s): State<AppState>) -> ApiResult {
    let list: Vec<Value> = s
        .templates
        .iter()
        .map(|(id, yaml)| {
            let flow = check(yaml, &s.apps).flow;
            json!({
                "id": id,
                "name": flow.as_ref().map(|f| f.name.clone()),
                "description": flow.and_then(|f| f.description),
            })
        })
        .collect();
    Ok(Json(json!(list)))
}

async fn import_template(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let yaml = s
        .template(&id)
        .ok_or_else(|| ApiError::NotFound(format!("template `{id}` not found")))?;
    Ok((
        StatusCode::CREATED,
        Json(import_yaml(&s, yaml, &c.user.username).await?),
    ))
}

async fn list_apps(State(s): State<AppState>) -> ApiResult {
    Ok(Json(json!(s.apps.manifests().collect::<Vec<_>>())))
}

// ---- test trigger ----

#[derive(Deserialize)]
struct WaitQuery {
    wait: Option<u64>,
}

/// Wait for the next request to the flow's webhook and show what the flow would receive —
/// as Yoom's テスト button, so fields can be mapped from a real sample.
async fn test_trigger(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> ApiResult {
    // In the store, not in this process: the webhook may reach another server.
    let wait = std::time::Duration::from_secs(q.wait.unwrap_or(60).clamp(1, 300));
    let capture = s.store.capture_open(&id, wait).await?;
    Ok(Json(match s.store.capture_wait(&capture, wait).await? {
        Some(sample) => {
            // The editor's pickers show it as the trigger's sample values.
            if sample.get("ignored").is_none() && sample.get("error").is_none() {
                s.store.set_sample(&id, "trigger", &sample).await?;
            }
            json!({ "received": true, "trigger": sample })
        }
        None => json!({ "received": false }),
    }))
}
