//! Settings: the failure-notification channels.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use flowbot_store::notify::{Channel, Notifications};
use serde_json::json;

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
                "/api/v1/settings/notifications",
                "Failure-notification channels",
            )
            .needs(Perm::Admin)
            .returns::<Notifications>(),
            get_notifications,
        )
        .add(
            op(
                "put",
                "/api/v1/settings/notifications",
                "Set the failure-notification channels",
            )
            .needs(Perm::Admin)
            .json_body::<Notifications>()
            .returns::<Notifications>(),
            put_notifications,
        )
        .add(
            op(
                "post",
                "/api/v1/settings/notifications/channels",
                "Add a failure-notification channel",
            )
            .needs(Perm::Admin)
            .json_body::<Channel>()
            .returns::<Notifications>(),
            add_channel,
        )
        .add(
            op(
                "delete",
                "/api/v1/settings/notifications/channels/{index}",
                "Remove a failure-notification channel",
            )
            .needs(Perm::Admin)
            .integer_params(&["index"])
            .returns::<Notifications>(),
            remove_channel,
        )
}

// ---- failure notifications ----

type Answer = ApiResult<Json<Notifications>>;

async fn get_notifications(State(s): State<AppState>) -> Answer {
    Ok(Json(s.store.notifications().await?))
}

async fn add_channel(
    State(s): State<AppState>,
    c: Extension<Caller>,
    ApiJson(ch): ApiJson<Channel>,
) -> Answer {
    let mut n = s.store.notifications().await?;
    n.channels.push(ch);
    put_notifications(State(s), c, ApiJson(n)).await
}

async fn remove_channel(
    State(s): State<AppState>,
    c: Extension<Caller>,
    Path(index): Path<usize>,
) -> Answer {
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
    ApiJson(n): ApiJson<Notifications>,
) -> Answer {
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
        .set_setting(flowbot_store::notify::NOTIFICATIONS, &json!(n), c.actor())
        .await?;
    Ok(Json(n))
}
