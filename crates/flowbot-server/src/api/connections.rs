//! Connections (マイアプリ連携): their settings are write-only, secrets never shown; the
//! connection test; and connecting an app through OAuth.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use flowbot_store::ConnectionInfo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::ApiResult;
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::routes::{op, Perm, Routes};
use crate::AppState;

/// Open to anyone: where an app's approval page sends the browser back.
pub(super) fn public_routes() -> Routes {
    Routes::default().add(
        op(
            "get",
            "/oauth/callback",
            "Where an app's OAuth approval page sends the browser back",
        )
        .public()
        .query::<CallbackQuery>()
        .without_body(303),
        oauth_callback,
    )
}

pub(super) fn routes() -> Routes {
    Routes::default()
        .add(op("get", "/api/v1/connections", "List connections (never their secrets)")
.needs(Perm::Build).in_projects().returns::<Vec<ConnectionInfo>>(), list_connections)
        .add(op("post", "/api/v1/connections", "Create a connection")
.needs(Perm::Build).in_projects().json_body::<ConnectionBody>().returns::<ConnectionView>().status(201), create_connection)
        .add(op("put", "/api/v1/connections/{id}", "Update a connection (unsent settings keep their value)")
.needs(Perm::Build).of_connection("id").json_body::<ConnectionBody>().returns::<ConnectionView>(), update_connection)
        .add(op("put", "/api/v1/connections/{id}/shares", "Share a connection with other projects (the whole list)")
.needs(Perm::Build).of_connection("id").json_body::<SharesBody>().returns::<ConnectionView>(), share_connection)
        .add(op("delete", "/api/v1/connections/{id}", "Delete a connection")
.needs(Perm::Build).of_connection("id").no_content(), delete_connection)
        .add(op("post", "/api/v1/connections/{id}/test", "Test a connection")
.needs(Perm::Build).of_connection("id").returns::<ConnectionTest>(), test_connection)
        .add(op("post", "/api/v1/connections/{id}/oauth/start", "Start connecting an app through OAuth (authorization code with PKCE): the approval page's URL")
.needs(Perm::Build).of_connection("id").optional_json_body::<OauthStartBody>().returns::<OauthStart>(), oauth_start)
}

// ---- connections (secrets are write-only) ----

#[derive(Deserialize, schemars::JsonSchema)]
struct ConnectionBody {
    name: String,
    app: String,
    settings: Map<String, Value>,
    /// The project a new connection goes into (the default project when left out); an
    /// existing one stays in its own.
    #[serde(default)]
    project: Option<String>,
}

/// A connection as it may be shown: its settings' values only where they are not secret.
#[derive(Serialize, schemars::JsonSchema)]
struct ConnectionView {
    connection: ConnectionInfo,
    /// Each setting's value, or `{"set": true}` for a secret one.
    settings: BTreeMap<String, Value>,
}

async fn connection_view(s: &AppState, id: &str) -> Result<ConnectionView, ApiError> {
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
    Ok(ConnectionView {
        connection: info,
        settings,
    })
}

fn check_app(s: &AppState, app: &str, settings: &Map<String, Value>) -> Result<(), ApiError> {
    let Some(connector) = s.apps.get(app) else {
        return Err(ApiError::BadRequest(format!("unknown app `{app}`")));
    };
    connector
        .check_settings(settings)
        .map_err(ApiError::BadRequest)
}

/// A saved secret is sent wherever the connection's addresses point: changing an address
/// (a field holding an http(s) URL) without giving the secrets again would hand them to the
/// new host unasked.
fn secrets_follow_their_address(
    s: &AppState,
    app: &str,
    saved: &Map<String, Value>,
    sent: &Map<String, Value>,
) -> Result<(), ApiError> {
    let Some(connector) = s.apps.get(app) else {
        return Ok(());
    };
    let fields = &connector.manifest().connection;
    let moved = fields.iter().filter(|f| !f.secret).find(|f| {
        let old = saved.get(&f.name).and_then(Value::as_str).unwrap_or("");
        let new = sent.get(&f.name).and_then(Value::as_str);
        old.starts_with("http") && new.is_some_and(|n| n != old)
    });
    let Some(moved) = moved else {
        return Ok(());
    };
    let missing: Vec<&str> = fields
        .iter()
        .filter(|f| f.secret && saved.get(&f.name).is_some_and(|v| v.as_str() != Some("")))
        .filter(|f| sent.get(&f.name).is_none_or(|v| v.as_str() == Some("")))
        .map(|f| f.name.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::BadRequest(format!(
        "`{}` changed: enter {} again, so the saved secrets are not sent to the new address",
        moved.name,
        missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The connections of the projects the caller builds in, and those shared with them.
async fn list_connections(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<Vec<ConnectionInfo>>> {
    Ok(Json(visible_connections(&s, &c).await?))
}

/// The connections a caller may use: those of or shared with a project they build in.
pub(crate) async fn visible_connections(
    s: &AppState,
    c: &Caller,
) -> Result<Vec<ConnectionInfo>, ApiError> {
    let get = axum::http::Method::GET;
    Ok(s.store
        .connections()
        .await?
        .into_iter()
        .filter(|x| {
            std::iter::once(&x.project_id)
                .chain(x.shared_with.iter())
                .any(|p| c.may_in(p, Perm::Build, &get))
        })
        .collect())
}

/// Refuse a connection the caller may not use (not of, nor shared with, a project they
/// build in).
pub(crate) async fn check_usable(s: &AppState, c: &Caller, id: &str) -> Result<(), ApiError> {
    if visible_connections(s, c).await?.iter().any(|x| x.id == id) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("connection `{id}` not found")))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
struct SharesBody {
    /// The other projects whose flows may use the connection (all of them: a project left
    /// out no longer may).
    projects: Vec<String>,
}

/// Share a connection with named projects (or withdraw shares).
async fn share_connection(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<SharesBody>,
) -> ApiResult<Json<ConnectionView>> {
    if b.projects.len() > 100 {
        return Err(ApiError::BadRequest("at most 100 projects".into()));
    }
    // Sharing into a project, or out of it, is building there too.
    let before = s
        .store
        .connections()
        .await?
        .into_iter()
        .find(|x| x.id == id)
        .map(|x| x.shared_with)
        .unwrap_or_default();
    for p in b
        .projects
        .iter()
        .filter(|p| !before.contains(p))
        .chain(before.iter().filter(|p| !b.projects.contains(p)))
    {
        c.check_in(p, Perm::Build)?;
    }
    s.store
        .share_connection(&id, &b.projects, c.actor())
        .await?;
    Ok(Json(connection_view(&s, &id).await?))
}

async fn create_connection(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<ConnectionBody>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
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
    let project = b
        .project
        .clone()
        .unwrap_or_else(|| flowbot_store::DEFAULT_PROJECT.to_string());
    c.check_in(&project, Perm::Build)?;
    let info = s
        .store
        .save_connection_in(&project, &b.name, &b.app, &b.settings, c.actor())
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
) -> ApiResult<Json<ConnectionView>> {
    let mut settings = s.store.connection(&id).await?.settings;
    secrets_follow_their_address(&s, &b.app, &settings, &b.settings)?;
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
        .save_connection(&b.name, &b.app, &settings, c.actor())
        .await?;
    Ok(Json(connection_view(&s, &id).await?))
}

async fn delete_connection(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.store.delete_connection(&id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, schemars::JsonSchema)]
struct ConnectionTest {
    ok: bool,
    /// Why the app refused, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

async fn test_connection(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<ConnectionTest>> {
    let conn = s.store.connection(&id).await?;
    let app = s
        .apps
        .get(&conn.app)
        .ok_or_else(|| ApiError::BadRequest(format!("unknown app `{}`", conn.app)))?;
    let result = app.test_connection(&conn).await;
    s.store
        .record_audit(
            c.actor(),
            "connection.test",
            &conn.name,
            serde_json::json!({ "app": conn.app, "ok": result.is_ok() }),
        )
        .await?;
    Ok(Json(match result {
        Ok(()) => ConnectionTest {
            ok: true,
            message: None,
        },
        Err(e) => ConnectionTest {
            ok: false,
            message: Some(e.message),
        },
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
    // App::start configures it; the stored setting serves an AppState built without it.
    if let Some(u) = s.config.public_url() {
        return u.to_string();
    }
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
/// Where to come back to after approving (optional body of an OAuth start).
#[derive(Deserialize, Default, schemars::JsonSchema)]
struct OauthStartBody {
    /// A path on this server (`/flows/ID`); anything else is refused.
    #[serde(default)]
    return_to: Option<String>,
}

/// A path on this server, never another origin (`//host`, `/\host`) or a long string.
pub(crate) fn is_local_path(p: &str) -> bool {
    p.len() <= 512
        && p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && !p.chars().any(char::is_control)
}

async fn oauth_start(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<OauthStart>> {
    // The body is optional: the connections page sends none.
    let return_to = if body.is_empty() {
        None
    } else {
        serde_json::from_slice::<OauthStartBody>(&body)
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "send {{\"return_to\": \"/path\"}} or nothing ({e})"
                ))
            })?
            .return_to
    };
    if let Some(p) = &return_to {
        if !is_local_path(p) {
            return Err(ApiError::BadRequest(
                "`return_to` must be a path on this server".into(),
            ));
        }
    }
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
                return_to,
            },
        )
        .await?;
    Ok(Json(OauthStart { authorize_url: url }))
}

#[derive(Serialize, schemars::JsonSchema)]
struct OauthStart {
    /// The app's approval page: send the browser there.
    authorize_url: String,
}

/// What the app's approval page sends back (RFC 6749 §4.1.2).
#[derive(Deserialize, schemars::JsonSchema)]
struct CallbackQuery {
    /// The authorization code, on approval.
    code: Option<String>,
    /// The attempt this answers.
    state: Option<String>,
    /// Why the app did not approve.
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
            return_to,
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
    let back = return_to
        .filter(|p| is_local_path(p))
        .map(|p| format!("{p}{}connected=1", if p.contains('?') { '&' } else { '?' }))
        .unwrap_or_else(|| "/connections?connected=1".into());
    Ok(Redirect::to(&back).into_response())
}
