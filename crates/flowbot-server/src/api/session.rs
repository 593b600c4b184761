//! Signing in and out, who is asking, and API tokens.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use flowbot_store::{Actor, ApiTokenInfo, Profile, User};
use serde::{Deserialize, Serialize};

use super::ApiResult;
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiJson};
use crate::routes::{op, Perm, Routes};
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
            op(
                "get",
                "/api/v1/me",
                "The signed-in member, their role and what it allows",
            )
            .needs(Perm::Own)
            .returns::<Me>(),
            me,
        )
        .add(
            op(
                "patch",
                "/api/v1/me",
                "Change your display name, email, language or time zone",
            )
            .needs(Perm::Own)
            .json_body::<ProfileBody>()
            .returns::<User>(),
            update_me,
        )
        .add(
            op(
                "post",
                "/api/v1/me/password",
                "Change your password (every session of yours ends: sign in again)",
            )
            .needs(Perm::Own)
            .json_body::<PasswordBody>()
            .no_content(),
            change_password,
        )
        .add(
            op("post", "/api/v1/logout", "End the login session")
                .needs(Perm::Own)
                .no_content(),
            logout,
        )
        .add(
            op("get", "/api/v1/tokens", "List your API tokens")
                .needs(Perm::Own)
                .returns::<Vec<ApiTokenInfo>>(),
            list_tokens,
        )
        .add(
            op("post", "/api/v1/tokens", "Create an API token (shown once)")
                .needs(Perm::Own)
                .json_body::<TokenBody>()
                .returns::<NewToken>()
                .status(201),
            create_token,
        )
        .add(
            op("delete", "/api/v1/tokens/{id}", "Delete an API token")
                .needs(Perm::Own)
                .no_content(),
            delete_token,
        )
}

// ---- login ----

#[derive(Deserialize, schemars::JsonSchema)]
struct LoginBody {
    username: String,
    password: String,
    /// With two-factor sign-in on: the authenticator's six digits, or a recovery code.
    #[serde(default)]
    code: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct SignedIn {
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
    let Some((user, attempt)) = check_password(&s, &address, &b.username, &b.password).await?
    else {
        tracing::info!(user = %b.username, address = %address, "failed sign-in");
        // The name as typed only when it is a member's: a password typed into the name
        // field must not land in the audit log.
        let known = s.store.member(&b.username).await.is_ok();
        let name = if known { b.username.as_str() } else { "" };
        s.store
            .record_audit(
                Actor::new(name, address.clone()),
                "session.sign_in_failed",
                name,
                serde_json::json!({ "member": known }),
            )
            .await?;
        return Err(ApiError::Unauthorized);
    };
    // The attempt counts until the second factor, too, is right.
    super::two_factor::check(&s, &user, b.code.as_deref(), &address).await?;
    s.limiter.succeeded(attempt);
    if passwords_off_for(&s, user.role) {
        return Err(ApiError::SsoOnly);
    }
    let (cookie, answer) = signed_in(&s, user, &address).await?;
    Ok(([(header::SET_COOKIE, cookie)], Json(answer)).into_response())
}

/// The active member if the password is theirs, with the counted attempt to give back
/// ([`auth::LoginLimiter::succeeded`]) once everything else is right too. Checked like every
/// sign-in: counted per address and user name before the check, at most two checks at once.
async fn check_password(
    s: &AppState,
    address: &str,
    username: &str,
    password: &str,
) -> Result<Option<(User, auth::Attempt)>, ApiError> {
    let attempt = s
        .limiter
        .attempt(address, username)
        .map_err(ApiError::TooManyAttempts)?;
    let found = s.store.user_for_login(username).await?;
    let checked = s
        .limiter
        .verify(password, found.as_ref().map(|(_, h)| h.as_str()))
        .await
        .ok_or(ApiError::TooManyAttempts(std::time::Duration::from_secs(1)))?;
    match found {
        Some((user, _)) if checked => Ok(Some((user, attempt))),
        _ => Ok(None),
    }
}

/// Start a session for `user` (recorded as a sign-in): the cookie to set and the answer.
pub(crate) async fn signed_in(
    s: &AppState,
    user: User,
    address: &str,
) -> Result<(String, SignedIn), ApiError> {
    let token = auth::random_token();
    let csrf = auth::random_token();
    s.store
        .create_session(
            &user.id,
            &auth::token_hash(&token),
            &csrf,
            auth::SESSION_TTL.as_millis() as i64,
            Actor::new(user.username.clone(), address),
        )
        .await?;
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        auth::SESSION_COOKIE,
        auth::SESSION_TTL.as_secs()
    );
    Ok((
        cookie,
        SignedIn {
            user,
            csrf_token: csrf,
        },
    ))
}

/// Whether password sign-in is closed to this role (single sign-on with passwords for
/// owners only).
pub(crate) fn passwords_off_for(s: &AppState, role: flowbot_store::Role) -> bool {
    s.sso
        .as_ref()
        .is_some_and(|x| x.config.owners_only_passwords)
        && role != flowbot_store::Role::Owner
}

/// A new password is long enough to resist guessing and short enough to hash quickly.
pub(crate) fn check_new_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < 10 {
        return Err(ApiError::BadRequest(
            "a password is at least 10 characters".into(),
        ));
    }
    if password.len() > auth::MAX_PASSWORD {
        return Err(ApiError::BadRequest(format!(
            "a password is at most {} bytes",
            auth::MAX_PASSWORD
        )));
    }
    Ok(())
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
    /// What the role (and the token's scope) allows: `own`, `read`, `run`, `build`,
    /// `admin`, `owner`.
    permissions: Vec<String>,
    /// Signed in with a read-only API token.
    read_only: bool,
    /// Sign-ins ask for a code from an authenticator app.
    two_factor: bool,
}

async fn me(State(s): State<AppState>, Extension(c): Extension<Caller>) -> ApiResult<Json<Me>> {
    let two_factor = s
        .store
        .two_factor(&c.user.id)
        .await?
        .is_some_and(|t| t.enabled);
    let permissions = Perm::ALL
        .iter()
        .filter(|p| p.granted(c.user.role))
        .map(|p| format!("{p:?}").to_lowercase())
        .collect();
    Ok(Json(Me {
        user: c.user,
        permissions,
        read_only: c.read_only,
        two_factor,
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ProfileBody {
    display_name: Option<String>,
    email: Option<String>,
    /// `ja`, `en`, or empty to follow the browser.
    language: Option<String>,
    /// An IANA time zone name, e.g. `Asia/Tokyo`.
    time_zone: Option<String>,
}

async fn update_me(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<ProfileBody>,
) -> ApiResult<Json<User>> {
    let trimmed = |v: Option<String>| v.map(|t| t.trim().to_string());
    let p = Profile {
        display_name: trimmed(b.display_name),
        email: trimmed(b.email),
        language: b.language,
        time_zone: trimmed(b.time_zone),
    };
    if p.display_name
        .as_ref()
        .is_some_and(|d| d.chars().count() > 100)
    {
        return Err(ApiError::BadRequest(
            "the display name is at most 100 characters".into(),
        ));
    }
    if let Some(e) = p.email.as_deref().filter(|e| !e.is_empty()) {
        if e.len() > 254 || !e.contains('@') || e.chars().any(char::is_whitespace) {
            return Err(ApiError::BadRequest(format!(
                "`{e}` is not an email address"
            )));
        }
    }
    if let Some(l) = p.language.as_deref() {
        if !matches!(l, "" | "ja" | "en") {
            return Err(ApiError::BadRequest(
                "the language is `ja`, `en`, or empty for the browser's".into(),
            ));
        }
    }
    if let Some(tz) = p.time_zone.as_deref() {
        if tz.len() > 64 || jiff::tz::TimeZone::get(tz).is_err() {
            return Err(ApiError::BadRequest(format!(
                "`{}` is not a time zone (e.g. Asia/Tokyo)",
                tz.chars().take(64).collect::<String>()
            )));
        }
    }
    Ok(Json(
        s.store.update_profile(&c.user.id, p, c.actor()).await?,
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct PasswordBody {
    current: String,
    new: String,
}

async fn change_password(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<PasswordBody>,
) -> ApiResult<StatusCode> {
    check_new_password(&b.new)?;
    if b.current.len() > auth::MAX_PASSWORD {
        return Err(ApiError::Unauthorized);
    }
    let Some((_, attempt)) = check_password(&s, &c.address, &c.user.username, &b.current).await?
    else {
        return Err(ApiError::BadRequest(
            "the current password is not right".into(),
        ));
    };
    s.limiter.succeeded(attempt);
    let hash = s
        .limiter
        .hash(&b.new)
        .await
        .ok_or(ApiError::TooManyAttempts(std::time::Duration::from_secs(1)))?;
    s.store.set_password(&c.user.id, &hash, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- API tokens ----

#[derive(Deserialize, schemars::JsonSchema)]
struct TokenBody {
    name: String,
    /// The token calls only GET routes (reads), whatever your role.
    #[serde(default)]
    read_only: bool,
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
    if b.name.trim().is_empty() || b.name.trim().chars().count() > 100 {
        return Err(ApiError::BadRequest(
            "give the token a name of at most 100 characters".into(),
        ));
    }
    let token = format!("fbt_{}", auth::random_token());
    let info = s
        .store
        .create_api_token(
            &c.user,
            b.name.trim(),
            b.read_only || c.read_only,
            &auth::token_hash(&token),
            c.actor(),
        )
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
    s.store.delete_api_token(&c.user, &id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
