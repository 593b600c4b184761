//! Members and invitations: the owner and admins list members, change their roles,
//! disable and remove them, and invite people by email (a one-time, expiring link, sent
//! through the notification email connection when there is one, else shown to copy).
//! Accepting an invitation is open to anyone holding the link.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use flowbot_core::ActionCall;
use flowbot_store::{Invitation, Member, NewUser, Role};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::session::{check_new_password, signed_in, SignedIn};
use super::ApiResult;
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiJson};
use crate::routes::{op, Perm, Routes};
use crate::AppState;

/// How long an invitation link works.
pub const INVITATION_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// Longest email address accepted.
const MAX_EMAIL: usize = 254;

pub(super) fn routes() -> Routes {
    Routes::default()
        .add(
            op("get", "/api/v1/members", "Every member with their role")
                .needs(Perm::Admin)
                .returns::<Vec<Member>>(),
            list,
        )
        .add(
            op(
                "patch",
                "/api/v1/members/{id}",
                "Change a member's role, or disable or enable them (a disabled member's sessions end at once)",
            )
            .needs(Perm::Admin)
            .json_body::<MemberChange>()
            .returns::<Member>(),
            change,
        )
        .add(
            op(
                "delete",
                "/api/v1/members/{id}",
                "Remove a member: their sessions and tokens end at once",
            )
            .needs(Perm::Admin)
            .no_content(),
            remove,
        )
        .add(
            op(
                "post",
                "/api/v1/members/{id}/transfer-ownership",
                "Make a member the owner; you become an admin",
            )
            .needs(Perm::Owner)
            .no_content(),
            transfer,
        )
        .add(
            op("get", "/api/v1/invitations", "Invitations not yet accepted nor expired")
                .needs(Perm::Admin)
                .returns::<Vec<Invitation>>(),
            invitations,
        )
        .add(
            op(
                "post",
                "/api/v1/invitations",
                "Invite someone by email to a role: the link is emailed, or returned to copy",
            )
            .needs(Perm::Admin)
            .json_body::<InviteBody>()
            .returns::<Invited>()
            .status(201),
            invite,
        )
        .add(
            op("delete", "/api/v1/invitations/{id}", "Revoke an invitation")
                .needs(Perm::Admin)
                .no_content(),
            revoke,
        )
}

/// Open to anyone holding an invitation link.
pub(super) fn public_routes() -> Routes {
    Routes::default().add(
        op(
            "post",
            "/api/v1/invitations/accept",
            "Accept an invitation: choose a user name and password; signs in",
        )
        .public()
        .json_body::<AcceptBody>()
        .returns::<SignedIn>()
        .status(201),
        accept,
    )
}

async fn list(State(s): State<AppState>) -> ApiResult<Json<Vec<Member>>> {
    Ok(Json(s.store.members().await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct MemberChange {
    /// `admin`, `editor`, `viewer` or `operator` (ownership is transferred, not set).
    role: Option<Role>,
    /// true: the member cannot sign in and their sessions end; false: they can again.
    disabled: Option<bool>,
}

/// Only an owner changes an owner; nobody changes themselves here (so the last person
/// able to manage members cannot lock everyone out by mistake).
async fn target(s: &AppState, c: &Caller, id: &str) -> Result<Member, ApiError> {
    let m = s.store.member(id).await?;
    if m.user.id == c.user.id {
        return Err(ApiError::Conflict(
            "you cannot change your own membership; ask another owner or admin".into(),
        ));
    }
    if m.user.role == Role::Owner && c.user.role != Role::Owner {
        return Err(ApiError::Forbidden);
    }
    Ok(m)
}

async fn change(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<MemberChange>,
) -> ApiResult<Json<Member>> {
    let m = target(&s, &c, &id).await?;
    if let Some(role) = b.role {
        if role == Role::Owner {
            return Err(ApiError::BadRequest(
                "ownership is transferred with /transfer-ownership, not set".into(),
            ));
        }
        s.store.set_role(&m.user.id, role, c.actor()).await?;
    }
    if let Some(disabled) = b.disabled {
        s.store
            .set_disabled(&m.user.id, disabled, c.actor())
            .await?;
    }
    Ok(Json(s.store.member(&m.user.id).await?))
}

async fn remove(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let m = target(&s, &c, &id).await?;
    s.store.remove_user(&m.user.id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn transfer(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let m = target(&s, &c, &id).await?;
    s.store
        .transfer_ownership(&c.user.id, &m.user.id, c.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn invitations(State(s): State<AppState>) -> ApiResult<Json<Vec<Invitation>>> {
    Ok(Json(s.store.invitations().await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct InviteBody {
    email: String,
    /// `admin`, `editor`, `viewer` or `operator`.
    role: Role,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Invited {
    invitation: Invitation,
    /// The one-time link: shown this once, only its hash is kept.
    link: String,
    /// The link went out by email (through the notification email connection).
    emailed: bool,
}

fn check_email(email: &str) -> Result<(), ApiError> {
    let ok = email.len() <= MAX_EMAIL
        && email
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "`{}` is not an email address",
            email.chars().take(80).collect::<String>()
        )))
    }
}

async fn invite(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<InviteBody>,
) -> ApiResult<(StatusCode, Json<Invited>)> {
    let email = b.email.trim().to_string();
    check_email(&email)?;
    if b.role == Role::Owner {
        return Err(ApiError::BadRequest(
            "invite as admin, then transfer ownership".into(),
        ));
    }
    let token = auth::random_token();
    let invitation = s
        .store
        .create_invitation(
            &email,
            b.role,
            &auth::token_hash(&token),
            INVITATION_TTL.as_millis() as i64,
            c.actor(),
        )
        .await?;
    let base = crate::ui::public_url(&s).await;
    let base = if base.is_empty() {
        "http://127.0.0.1:8080".to_string()
    } else {
        base
    };
    let link = format!("{}/invite/{token}", base.trim_end_matches('/'));
    let emailed = send_invitation(&s, &c, &invitation, &link).await;
    Ok((
        StatusCode::CREATED,
        Json(Invited {
            invitation,
            link,
            emailed,
        }),
    ))
}

/// Send the link through the email connection failure notifications use, if one is set.
async fn send_invitation(s: &AppState, c: &Caller, inv: &Invitation, link: &str) -> bool {
    let Ok(settings) = s.store.notifications().await else {
        return false;
    };
    let Some(channel) = settings.channels.iter().find(|ch| ch.app == "email") else {
        return false;
    };
    let (Some(app), Ok(conn)) = (
        s.apps.get("email"),
        s.store.connection(&channel.connection_id).await,
    ) else {
        return false;
    };
    let who = if c.user.display_name.is_empty() {
        &c.user.username
    } else {
        &c.user.display_name
    };
    let subject = "[flowbot] 招待が届きました / You are invited".to_string();
    let body = format!(
        "{who} さんから flowbot に招待されました（役割: {role}）。\n次のリンクから参加してください（7日間有効、1回限り）:\n{link}\n\n\
         {who} invited you to flowbot as {role}. Join through this link (valid for 7 days, once):\n{link}\n",
        role = inv.role
    );
    let input: Map<String, Value> = match json!({ "to": inv.email, "subject": subject, "body": body })
    {
        Value::Object(m) => m,
        _ => return false,
    };
    match app
        .execute(ActionCall {
            action: "send_email",
            input: &input,
            connection: Some(&conn),
        })
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e.message, "the invitation email was not sent; the link is shown instead");
            false
        }
    }
}

async fn revoke(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.store.delete_invitation(&id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, schemars::JsonSchema)]
struct AcceptBody {
    /// The token at the end of the invitation link.
    token: String,
    /// Letters, digits, `.`, `_` and `-`; 1 to 64.
    username: String,
    password: String,
    #[serde(default)]
    display_name: String,
    /// `ja` or `en`; the browser's language when left out.
    #[serde(default)]
    language: Option<String>,
}

/// A user name people can type and the audit log can show: no spaces, no look-alikes.
pub(crate) fn check_username(name: &str) -> Result<(), ApiError> {
    if auth::valid_username(name) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "a user name is 1 to 64 letters, digits, `.`, `_` or `-`".into(),
        ))
    }
}

async fn accept(
    State(s): State<AppState>,
    info: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    ApiJson(b): ApiJson<AcceptBody>,
) -> ApiResult<Response> {
    check_username(&b.username)?;
    check_new_password(&b.password)?;
    // Invitations never make owners: with passwords for owners only, people join via SSO.
    if super::session::passwords_off_for(&s, Role::Viewer) {
        return Err(ApiError::SsoOnly);
    }
    if b.token.len() > 128 {
        return Err(ApiError::NotFound(
            "this invitation link is used, expired or revoked".into(),
        ));
    }
    let address = auth::peer(info.map(|Extension(i)| i));
    let hash = auth::token_hash(&b.token);
    // A link that works is checked before the (costly) password hash is made.
    if s.store.invitation(&hash).await?.is_none() {
        return Err(ApiError::NotFound(
            "this invitation link is used, expired or revoked".into(),
        ));
    }
    let display = b.display_name.trim();
    if display.chars().count() > 100 {
        return Err(ApiError::BadRequest(
            "the display name is at most 100 characters".into(),
        ));
    }
    let new = NewUser {
        display_name: if display.is_empty() {
            b.username.clone()
        } else {
            display.to_string()
        },
        language: match b.language.as_deref() {
            Some(l @ ("ja" | "en")) => l.into(),
            _ => String::new(),
        },
        ..NewUser::basic(
            &b.username,
            &s.limiter
                .hash(&b.password)
                .await
                .ok_or(ApiError::TooManyAttempts(std::time::Duration::from_secs(1)))?,
            Role::Viewer,
        )
    };
    let user = s.store.accept_invitation(&hash, new, &address).await?;
    let (cookie, answer) = signed_in(&s, user, &address).await?;
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(answer),
    )
        .into_response())
}
