//! The REST API under `/api/v1`, one module per resource, each with its `routes()`:
//! sessions and tokens, flows (with templates, apps and the test trigger), connections
//! (with OAuth), runs and events, settings. Every route but login and the OAuth callback
//! needs a session or an API token.

mod apps;
mod audit;
mod connections;
mod files;
mod flows;
mod members;
mod projects;
mod runs;
pub(crate) mod session;
mod settings;
mod tables;
pub(crate) mod tasks;
mod two_factor;

use axum::Json;
use serde_json::Value;

use crate::error::ApiError;
use crate::routes::{op, Perm, Routes};

pub(crate) use audit::AuditQuery;
pub(crate) use connections::{check_usable, is_local_path};
pub(crate) use flows::{diagnostics, import_yaml, template_copy, FlowView};

type ApiResult<T = Json<Value>> = Result<T, ApiError>;

/// Routes that need a caller; merged behind [`crate::auth::require_auth`].
pub fn protected() -> Routes {
    Routes::default()
        .add(
            op("get", "/api/v1/openapi.json", "This document")
                .needs(Perm::Own)
                .returns::<Value>(),
            crate::openapi::document,
        )
        .merge(session::routes())
        .merge(flows::routes())
        .merge(connections::routes())
        .merge(runs::routes())
        .merge(settings::routes())
        .merge(apps::routes())
        .merge(members::routes())
        .merge(audit::routes())
        .merge(two_factor::routes())
        .merge(projects::routes())
        .merge(tasks::routes())
        .merge(files::routes())
        .merge(tables::routes())
}

/// Routes open to anyone: signing in, and the OAuth callback.
pub fn public() -> Routes {
    Routes::default()
        .merge(session::public_routes())
        .merge(connections::public_routes())
        .merge(members::public_routes())
}
