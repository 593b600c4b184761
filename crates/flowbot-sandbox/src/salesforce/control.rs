//! Control endpoints under `/__control/`: faults, token expiry, records, stats, reset.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::faults::{self};

use super::*;

pub(super) async fn set_faults(
    State(sim): State<Arc<SalesforceSim>>,
    Json(v): Json<Value>,
) -> Response {
    match faults::parse(v) {
        Ok(cfg) => {
            sim.faults.set(cfg);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

pub(super) async fn clear_faults(State(sim): State<Arc<SalesforceSim>>) -> StatusCode {
    sim.faults.clear();
    StatusCode::NO_CONTENT
}

pub(super) async fn expire_tokens(State(sim): State<Arc<SalesforceSim>>) -> StatusCode {
    sim.expire_tokens();
    StatusCode::NO_CONTENT
}

pub(super) async fn control_records(
    State(sim): State<Arc<SalesforceSim>>,
    Path(object): Path<String>,
) -> Json<Value> {
    Json(json!(sim.records(&object)))
}

pub(super) async fn control_stats(State(sim): State<Arc<SalesforceSim>>) -> Json<Value> {
    Json(sim.stats())
}

pub(super) async fn control_reset(State(sim): State<Arc<SalesforceSim>>) -> StatusCode {
    sim.reset();
    StatusCode::NO_CONTENT
}
