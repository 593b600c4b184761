//! Control endpoints under `/__control/`: faults, token expiry, records, stats, reset.

use std::sync::Arc;
use std::time::Duration;

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

#[derive(serde::Deserialize)]
pub(super) struct WaitQuery {
    count: usize,
    #[serde(default = "default_wait_ms")]
    timeout_ms: u64,
}

fn default_wait_ms() -> u64 {
    10_000
}

/// Answer once `object` holds at least `count` records, or after `timeout_ms` (at most a
/// minute), with the count then: a benchmark learns the moment a record is written, not
/// the next time it looks.
pub(super) async fn control_wait(
    State(sim): State<Arc<SalesforceSim>>,
    Path(object): Path<String>,
    axum::extract::Query(q): axum::extract::Query<WaitQuery>,
) -> Json<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(q.timeout_ms.min(60_000));
    loop {
        // Registered before counting: a record created in between still wakes this.
        let inserted = sim.inserted.notified();
        tokio::pin!(inserted);
        inserted.as_mut().enable();
        let count = sim.count(&object);
        if count >= q.count {
            return Json(json!({ "count": count }));
        }
        tokio::select! {
            _ = inserted => {}
            _ = tokio::time::sleep_until(deadline) => return Json(json!({ "count": count })),
        }
    }
}

pub(super) async fn control_reset(State(sim): State<Arc<SalesforceSim>>) -> StatusCode {
    sim.reset();
    StatusCode::NO_CONTENT
}
