//! The REST API under `/api/v1`: flows, templates, connections, runs, events, API tokens,
//! and login for the UI. Every route here needs a session or an API token.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use flowbot_core::check;
use flowbot_store::{RunFilter, RunStatus};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::AppState;

type ApiResult<T = Json<Value>> = Result<T, ApiError>;

/// Routes that need a caller; merged behind [`auth::require_auth`].
pub fn protected() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/openapi.json", get(crate::openapi::document))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", axum::routing::delete(delete_token))
        .route("/api/v1/flows", get(list_flows).post(import_flow))
        .route("/api/v1/flows/{id}", get(get_flow).delete(delete_flow))
        .route("/api/v1/flows/{id}/export", get(export_flow))
        .route("/api/v1/flows/{id}/versions", get(flow_versions))
        .route("/api/v1/flows/{id}/enable", post(enable_flow))
        .route("/api/v1/flows/{id}/disable", post(disable_flow))
        .route("/api/v1/flows/{id}/token", post(regenerate_token))
        .route("/api/v1/flows/{id}/connections", post(bind_connection))
        .route("/api/v1/flows/{id}/rerun-failed", post(rerun_failed))
        .route("/api/v1/templates", get(list_templates))
        .route("/api/v1/templates/{id}/import", post(import_template))
        .route(
            "/api/v1/connections",
            get(list_connections).post(create_connection),
        )
        .route(
            "/api/v1/connections/{id}",
            axum::routing::put(update_connection).delete(delete_connection),
        )
        .route("/api/v1/connections/{id}/test", post(test_connection))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(get_run))
        .route("/api/v1/runs/{id}/rerun", post(rerun))
        .route("/api/v1/runs/{id}/cancel", post(cancel))
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/apps", get(list_apps))
        .route(
            "/api/v1/settings/notifications",
            get(get_notifications).put(put_notifications),
        )
        .route("/api/v1/settings/notifications/channels", post(add_channel))
        .route(
            "/api/v1/settings/notifications/channels/{index}",
            axum::routing::delete(remove_channel),
        )
        .route("/api/v1/validate", post(validate_flow))
        .route("/api/v1/flows/{id}/test-trigger", post(test_trigger))
        .route("/api/v1/connections/{id}/oauth/start", post(oauth_start))
}

/// Routes open to anyone: login, and the API description.
pub fn public() -> Router<AppState> {
    Router::new()
        .route("/api/v1/login", post(login))
        .route("/oauth/callback", get(oauth_callback))
}

// ---- login ----

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(
    State(s): State<AppState>,
    info: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    ApiJson(b): ApiJson<LoginBody>,
) -> ApiResult<Response> {
    if b.username.len() > auth::MAX_USERNAME {
        return Err(ApiError::BadRequest(format!(
            "the user name is longer than {} bytes",
            auth::MAX_USERNAME
        )));
    }
    if b.password.len() > auth::MAX_PASSWORD {
        return Err(ApiError::BadRequest(format!(
            "the password is longer than {} bytes",
            auth::MAX_PASSWORD
        )));
    }
    let address = auth::peer(info.map(|Extension(i)| i));
    let attempt = s
        .limiter
        .attempt(&address, &b.username)
        .map_err(ApiError::TooManyAttempts)?;
    let found = s.store.user_for_login(&b.username).await?;
    let checked = s
        .limiter
        .verify(&b.password, found.as_ref().map(|(_, h)| h.as_str()))
        .await
        .ok_or(ApiError::TooManyAttempts(std::time::Duration::from_secs(1)))?;
    let user = match found {
        Some((user, _)) if checked => user,
        _ => {
            tracing::info!(user = %b.username, address = %address, "failed sign-in");
            return Err(ApiError::Unauthorized);
        }
    };
    s.limiter.succeeded(attempt);
    let token = auth::random_token();
    let csrf = auth::random_token();
    s.store
        .create_session(
            &user.id,
            &auth::token_hash(&token),
            &csrf,
            auth::SESSION_TTL.as_millis() as i64,
        )
        .await?;
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        auth::SESSION_COOKIE,
        auth::SESSION_TTL.as_secs()
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "user": user, "csrf_token": csrf })),
    )
        .into_response())
}

async fn logout(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(token) = auth::cookie(&headers, auth::SESSION_COOKIE) {
        s.store.delete_session(&auth::token_hash(token)).await?;
    }
    let clear = format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
        auth::SESSION_COOKIE
    );
    Ok(([(header::SET_COOKIE, clear)], StatusCode::NO_CONTENT).into_response())
}

async fn me(Extension(c): Extension<Caller>) -> Json<Value> {
    Json(json!({ "user": c.user }))
}

// ---- API tokens ----

#[derive(Deserialize)]
struct TokenBody {
    name: String,
}

async fn create_token(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<TokenBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if b.name.trim().is_empty() {
        return Err(ApiError::BadRequest("give the token a name".into()));
    }
    let token = format!("fbt_{}", auth::random_token());
    let info = s
        .store
        .create_api_token(&c.user, b.name.trim(), &auth::token_hash(&token))
        .await?;
    // The token is shown this once; only its hash is kept.
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "info": info })),
    ))
}

async fn list_tokens(State(s): State<AppState>, Extension(c): Extension<Caller>) -> ApiResult {
    Ok(Json(json!(s.store.api_tokens(&c.user.id).await?)))
}

async fn delete_token(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.store.delete_api_token(&c.user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
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

#[derive(Deserialize)]
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

// ---- connections (secrets are write-only) ----

#[derive(Deserialize)]
struct ConnectionBody {
    name: String,
    app: String,
    settings: Map<String, Value>,
}

/// A connection as it may be shown: its settings' values only where they are not secret.
async fn connection_view(s: &AppState, id: &str) -> Result<Value, ApiError> {
    let conn = s.store.connection(id).await?;
    let info = s
        .store
        .connections()
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("connection `{id}` not found")))?;
    let secret: Vec<String> = s
        .apps
        .manifest(&conn.app)
        .map(|m| {
            m.connection
                .iter()
                .filter(|f| f.secret)
                .map(|f| f.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let settings: BTreeMap<String, Value> = conn
        .settings
        .iter()
        .map(|(k, v)| {
            let shown = if secret.contains(k) {
                json!({ "set": true })
            } else {
                v.clone()
            };
            (k.clone(), shown)
        })
        .collect();
    Ok(json!({ "connection": info, "settings": settings }))
}

fn check_app(s: &AppState, app: &str, settings: &Map<String, Value>) -> Result<(), ApiError> {
    let Some(connector) = s.apps.get(app) else {
        return Err(ApiError::BadRequest(format!("unknown app `{app}`")));
    };
    connector
        .check_settings(settings)
        .map_err(ApiError::BadRequest)
}

async fn list_connections(State(s): State<AppState>) -> ApiResult {
    Ok(Json(json!(s.store.connections().await?)))
}

async fn create_connection(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<ConnectionBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_app(&s, &b.app, &b.settings)?;
    if s.store
        .connections()
        .await?
        .iter()
        .any(|x| x.name == b.name)
    {
        return Err(ApiError::Conflict(format!(
            "a connection named `{}` exists; update it instead",
            b.name
        )));
    }
    let info = s
        .store
        .save_connection(&b.name, &b.app, &b.settings, &c.user.username)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(connection_view(&s, &info.id).await?),
    ))
}

/// Settings not sent keep their value, so a secret need not be typed again.
async fn update_connection(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ConnectionBody>,
) -> ApiResult {
    let mut settings = s.store.connection(&id).await?.settings;
    settings.extend(b.settings);
    check_app(&s, &b.app, &settings)?;
    let old = s
        .store
        .connections()
        .await?
        .into_iter()
        .find(|x| x.id == id);
    if let Some(old) = old.filter(|o| o.name != b.name) {
        return Err(ApiError::BadRequest(format!(
            "renaming `{}` is not supported; create a new connection",
            old.name
        )));
    }
    s.store
        .save_connection(&b.name, &b.app, &settings, &c.user.username)
        .await?;
    Ok(Json(connection_view(&s, &id).await?))
}

async fn delete_connection(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.store.delete_connection(&id, &c.user.username).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn test_connection(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let conn = s.store.connection(&id).await?;
    let app = s
        .apps
        .get(&conn.app)
        .ok_or_else(|| ApiError::BadRequest(format!("unknown app `{}`", conn.app)))?;
    Ok(Json(match app.test_connection(&conn).await {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "message": e.message }),
    }))
}

// ---- failure notifications ----

async fn get_notifications(State(s): State<AppState>) -> ApiResult {
    Ok(Json(json!(s.store.notifications().await?)))
}

async fn add_channel(
    State(s): State<AppState>,
    c: Extension<Caller>,
    ApiJson(ch): ApiJson<flowbot_store::notify::Channel>,
) -> ApiResult {
    let mut n = s.store.notifications().await?;
    n.channels.push(ch);
    put_notifications(State(s), c, ApiJson(n)).await
}

async fn remove_channel(
    State(s): State<AppState>,
    c: Extension<Caller>,
    Path(index): Path<usize>,
) -> ApiResult {
    let mut n = s.store.notifications().await?;
    if index >= n.channels.len() {
        return Err(ApiError::NotFound(format!("no channel {index}")));
    }
    n.channels.remove(index);
    put_notifications(State(s), c, ApiJson(n)).await
}

async fn put_notifications(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(n): ApiJson<flowbot_store::notify::Notifications>,
) -> ApiResult {
    for (i, ch) in n.channels.iter().enumerate() {
        let conn = s.store.connection(&ch.connection_id).await.map_err(|_| {
            ApiError::BadRequest(format!(
                "channel {}: no connection `{}`",
                i + 1,
                ch.connection_id
            ))
        })?;
        flowbot_engine::notify::check_channel(ch)
            .map_err(|why| ApiError::BadRequest(format!("channel {}: {why}", i + 1)))?;
        if conn.app != ch.app {
            return Err(ApiError::BadRequest(format!(
                "channel {}: connection `{}` is for {}, not {}",
                i + 1,
                conn.name,
                conn.app,
                ch.app
            )));
        }
    }
    s.store
        .set_setting(
            flowbot_store::notify::NOTIFICATIONS,
            &json!(n),
            &c.user.username,
        )
        .await?;
    Ok(Json(json!(n)))
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

#[derive(Deserialize)]
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

// ---- connecting an app through OAuth (authorization code with PKCE) ----

fn pkce_pair() -> (String, String) {
    use base64::Engine;
    let verifier = format!("{}{}", auth::random_token(), auth::random_token());
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    (
        verifier,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
    )
}

async fn public_url(s: &AppState, headers: &HeaderMap) -> String {
    if let Ok(Some(Value::String(u))) = s.store.setting(flowbot_store::notify::PUBLIC_URL).await {
        return u;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    format!("http://{host}")
}

/// Where to send the browser: the app's approval page ("connect", as Yoom's
/// マイアプリ連携). A POST, since it starts a pending connection attempt.
async fn oauth_start(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let conn = s.store.connection(&id).await?;
    let app = s
        .apps
        .get(&conn.app)
        .filter(|a| a.connects_with_oauth())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{} connections do not connect through OAuth",
                conn.app
            ))
        })?;
    let redirect = format!(
        "{}/oauth/callback",
        public_url(&s, &headers).await.trim_end_matches('/')
    );
    let (verifier, challenge) = pkce_pair();
    let state = auth::random_token();
    let url = app
        .oauth_authorize_url(
            &conn,
            &flowbot_core::OAuthRequest {
                redirect_uri: &redirect,
                state: &state,
                code_challenge: &challenge,
                code_verifier: &verifier,
            },
        )
        .map_err(ApiError::BadRequest)?;
    // In the store, not in this process: the callback may reach another server.
    s.store
        .oauth_begin(
            &state,
            &flowbot_store::PendingOauth {
                connection_id: id,
                verifier,
                redirect_uri: redirect,
            },
        )
        .await?;
    Ok(Json(json!({ "authorize_url": url })))
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The app's approval page sends the browser back here: the app trades the code for the
/// settings it signs in with from now on, kept (sealed) in the connection.
async fn oauth_callback(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<CallbackQuery>,
) -> ApiResult<Response> {
    if let Some(e) = q.error {
        return Err(ApiError::BadRequest(format!(
            "the app did not connect: {e}: {}",
            q.error_description.unwrap_or_default()
        )));
    }
    let pending = match &q.state {
        Some(st) => s.store.oauth_take(st).await?,
        None => None,
    };
    let (
        Some(flowbot_store::PendingOauth {
            connection_id: id,
            verifier,
            redirect_uri: redirect,
        }),
        Some(code),
        Some(state),
    ) = (pending, q.code, q.state)
    else {
        return Err(ApiError::BadRequest(
            "this connection attempt is unknown or expired; start again".into(),
        ));
    };
    let conn = s.store.connection(&id).await?;
    let app = s
        .apps
        .get(&conn.app)
        .ok_or_else(|| ApiError::BadRequest(format!("unknown app `{}`", conn.app)))?;
    let got = app
        .oauth_exchange(
            &conn,
            &flowbot_core::OAuthRequest {
                redirect_uri: &redirect,
                state: &state,
                code_challenge: "",
                code_verifier: &verifier,
            },
            &code,
        )
        .await
        .map_err(|e| ApiError::BadRequest(e.message))?;
    let mut settings = conn.settings.clone();
    settings.extend(got);
    s.store
        .save_connection(&conn.name, &conn.app, &settings, "oauth")
        .await?;
    Ok(Redirect::to("/connections?connected=1").into_response())
}
