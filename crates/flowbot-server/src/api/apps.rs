//! Adding apps from the web UI: an OpenAPI document turned into an app file (previewed,
//! then saved), or an app file pasted whole. Saved apps are kept in the database and run
//! at once in every process (`stored_apps`).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use flowbot_connectors::file_app::{format, openapi};
use flowbot_core::manifest::AppManifest;
use flowbot_core::manifest::Choice;
use flowbot_core::BrokenFile;
use serde::{Deserialize, Serialize};

use super::ApiResult;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson};
use crate::routes::{op, Perm, Routes};
use crate::AppState;

pub(super) fn routes() -> Routes {
    Routes::default()
        .add(
            op(
                "get",
                "/api/v1/apps/{app}/icon",
                "The app's icon (SVG or PNG)",
            )
            .needs(Perm::Read)
            .in_projects()
            .answers("image/*", 200),
            icon,
        )
        .add(
            op(
                "post",
                "/api/v1/apps/{app}/choices",
                "The choices of an input that loads them from another action",
            )
            .needs(Perm::Build)
            .in_projects()
            .json_body::<ChoicesBody>()
            .returns::<Choices>(),
            choices,
        )
        .add(
            op(
                "get",
                "/api/v1/apps/broken",
                "App files that could not be loaded, with every problem located",
            )
            .needs(Perm::Read)
            .in_projects()
            .returns::<Vec<BrokenFile>>(),
            broken_apps,
        )
        .add(
            op(
                "post",
                "/api/v1/apps/openapi",
                "Turn an OpenAPI 3.x or Swagger 2.0 document into an app file (not saved)",
            )
            .needs(Perm::Admin)
            .json_body::<OpenapiBody>()
            .returns::<OpenapiPreview>(),
            preview_openapi,
        )
        .add(
            op(
                "post",
                "/api/v1/apps",
                "Save an app file: it runs at once, in every flowbot process",
            )
            .needs(Perm::Admin)
            .json_body::<AppBody>()
            .returns::<SavedApp>()
            .status(201),
            save_app,
        )
}

#[derive(Deserialize, schemars::JsonSchema)]
struct OpenapiBody {
    /// The document, JSON or YAML.
    spec: String,
    /// Only operations with these tags or operation ids (empty: all).
    #[serde(default)]
    only: Vec<String>,
    /// The app's id (default: from the document's title).
    #[serde(default)]
    id: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct OpenapiPreview {
    /// Every operation of the document, to pick from.
    operations: Vec<ImportedOperation>,
    /// The app file for the operations picked.
    yaml: String,
}

#[derive(Serialize, schemars::JsonSchema)]
struct ImportedOperation {
    id: String,
    method: String,
    path: String,
    summary: String,
    tags: Vec<String>,
}

async fn preview_openapi(ApiJson(b): ApiJson<OpenapiBody>) -> ApiResult<Json<OpenapiPreview>> {
    let refuse =
        |e: openapi::ImportError| ApiError::BadRequest(format!("the document cannot be used: {e}"));
    let doc = openapi::read(&b.spec).map_err(refuse)?;
    let operations = openapi::operations(&doc)
        .map_err(refuse)?
        .into_iter()
        .map(|o| ImportedOperation {
            id: o.id,
            method: o.method,
            path: o.path,
            summary: o.summary,
            tags: o.tags,
        })
        .collect();
    let yaml = openapi::import(
        &doc,
        &openapi::ImportOptions {
            id: b.id.filter(|i| !i.trim().is_empty()),
            only: b.only,
        },
    )
    .map_err(refuse)?;
    Ok(Json(OpenapiPreview { operations, yaml }))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct AppBody {
    /// The app file (docs/app-format.md).
    yaml: String,
}

#[derive(Serialize, schemars::JsonSchema)]
struct SavedApp {
    app: AppManifest,
}

async fn save_app(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<AppBody>,
) -> ApiResult<(StatusCode, Json<SavedApp>)> {
    let app = format::parse(&b.yaml).map_err(ApiError::InvalidApp)?;
    if s.apps.get(&app.id).is_some() && !s.apps.is_added(&app.id) {
        return Err(ApiError::Conflict(format!(
            "an app `{}` is built in or loaded from the apps directory: give this one another id",
            app.id
        )));
    }
    s.store.save_app_file(&app.id, &b.yaml, c.actor()).await?;
    let id = crate::stored_apps::add(&s.apps, &b.yaml).map_err(ApiError::InvalidApp)?;
    let manifest =
        s.apps.manifest(&id).cloned().ok_or_else(|| {
            ApiError::Internal(format!("app `{id}` was saved but is not running"))
        })?;
    Ok((StatusCode::CREATED, Json(SavedApp { app: manifest })))
}

async fn broken_apps(State(s): State<AppState>) -> Json<Vec<BrokenFile>> {
    Json(s.apps.broken().to_vec())
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ChoicesBody {
    action: String,
    input: String,
    /// The step's connection, when the app needs one.
    #[serde(default)]
    connection_id: Option<String>,
    /// The step's other inputs as typed (templates are left out).
    #[serde(default)]
    values: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Choices {
    choices: Vec<Choice>,
}

async fn choices(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(app): Path<String>,
    ApiJson(b): ApiJson<ChoicesBody>,
) -> ApiResult<Json<Choices>> {
    let connector = s
        .apps
        .get(&app)
        .ok_or_else(|| ApiError::NotFound(format!("app `{app}` is not installed")))?;
    let connection = match b.connection_id.as_deref().filter(|c| !c.is_empty()) {
        Some(id) => {
            super::check_usable(&s, &c, id).await?;
            let c = s.store.connection(id).await?;
            if c.app != app {
                return Err(ApiError::BadRequest(format!(
                    "connection `{}` is for {}, not {app}",
                    c.name, c.app
                )));
            }
            Some(c)
        }
        None => None,
    };
    let choices = connector
        .choices(connection.as_ref(), &b.action, &b.input, &b.values)
        .await
        .map_err(|e| ApiError::BadRequest(format!("{app}: {}", e.message)))?;
    Ok(Json(Choices { choices }))
}

async fn icon(State(s): State<AppState>, Path(app): Path<String>) -> ApiResult<Response> {
    let (media, bytes) = s
        .apps
        .get(&app)
        .and_then(|c| c.icon())
        .ok_or_else(|| ApiError::NotFound(format!("app `{app}` has no icon")))?;
    Ok((
        [
            (header::CONTENT_TYPE, media),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        bytes.to_vec(),
    )
        .into_response())
}
