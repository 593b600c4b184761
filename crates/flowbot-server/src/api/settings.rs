//! Settings: the failure-notification channels.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::json;

use super::ApiResult;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson};
use crate::routes::{op, Routes};
use crate::AppState;

pub(super) fn routes() -> Routes {
    Routes::default()
        .add(
            op(
                "get",
                "/api/v1/settings/notifications",
                "Failure-notification channels",
            ),
            get_notifications,
        )
        .add(
            op(
                "put",
                "/api/v1/settings/notifications",
                "Set the failure-notification channels",
            ),
            put_notifications,
        )
        .add(
            op(
                "post",
                "/api/v1/settings/notifications/channels",
                "Add a failure-notification channel",
            ),
            add_channel,
        )
        .add(
            op(
                "delete",
                "/api/v1/settings/notifications/channels/{index}",
                "Remove a failure-notification channel",
            ),
            remove_channel,
        )
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
