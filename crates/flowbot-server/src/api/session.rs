//! Signing in and out, who is asking, and API tokens.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use flowbot_store::{ApiTokenInfo, User};
use serde::{Deserialize, Serialize};

use super::ApiResult;
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiJson};
use crate::routes::{op, Routes};
use crate::AppState;

/// Open to anyone: signing in.
pub(super) fn public_routes() -> Routes {
    Routes::default().add(
        op(
            "post",
            "/api/v1/login",
            "Sign in; sets the session cookie and returns the CSRF token",
        )
        .json_body::<LoginBody>()
        .returns::<SignedIn>()
        .public(),
        login,
    )
}

pub(super) fn routes() -> Routes {
    Routes::default()
        .add(
            op("get", "/api/v1/me", "The signed-in user").returns::<Me>(),
            me,
        )
        .add(
            op("post", "/api/v1/logout", "End the login session").no_content(),
            logout,
        )
        .add(
            op("get", "/api/v1/tokens", "List your API tokens").returns::<Vec<ApiTokenInfo>>(),
            list_tokens,
        )
        .add(
            op("post", "/api/v1/tokens", "Create an API token (shown once)")
                .json_body::<TokenBody>()
                .returns::<NewToken>()
                .status(201),
            create_token,
        )
        .add(
            op("delete", "/api/v1/tokens/{id}", "Delete an API token").no_content(),
            delete_token,
        )
}

// ---- login ----

#[derive(Deserialize, schemars::JsonSchema)]
struct LoginBody {
    username: String,
    password: String,
}

#[derive(Serialize, schemars::JsonSchema)]
struct SignedIn {
    user: User,
    /// Send it as the `X-CSRF-Token` header with every unsafe method.
    csrf_token: String,
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
        Json(SignedIn {
            user,
            csrf_token: csrf,
        }),
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

#[derive(Serialize, schemars::JsonSchema)]
struct Me {
    user: User,
}

async fn me(Extension(c): Extension<Caller>) -> Json<Me> {
    Json(Me { user: c.user })
}

// ---- API tokens ----

#[derive(Deserialize, schemars::JsonSchema)]
struct TokenBody {
    name: String,
}

#[derive(Serialize, schemars::JsonSchema)]
struct NewToken {
    /// The bearer token: shown this once, only its hash is kept.
    token: String,
    info: ApiTokenInfo,
}

async fn create_token(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<TokenBody>,
) -> ApiResult<(StatusCode, Json<NewToken>)> {
    if b.name.trim().is_empty() {
        return Err(ApiError::BadRequest("give the token a name".into()));
    }
    let token = format!("fbt_{}", auth::random_token());
    let info = s
        .store
        .create_api_token(&c.user, b.name.trim(), &auth::token_hash(&token))
        .await?;
    // The token is shown this once; only its hash is kept.
    Ok((StatusCode::CREATED, Json(NewToken { token, info })))
}

async fn list_tokens(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<Vec<ApiTokenInfo>>> {
    Ok(Json(s.store.api_tokens(&c.user.id).await?))
}

async fn delete_token(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.store.delete_api_token(&c.user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
