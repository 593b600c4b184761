//! Two-factor sign-in for password members (RFC 6238 TOTP: SHA-1, six digits, 30-second
//! steps, one step of clock drift either way), set up from the account page with any
//! authenticator app, with ten single-use recovery codes. A code works once: the step it
//! was taken at is recorded, and an earlier or equal step is refused after it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::Engine;
use flowbot_store::User;
use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, TOTP};

use super::ApiResult;
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiJson};
use crate::routes::{op, Perm, Routes};
use crate::AppState;

const STEP: u64 = 30;
const DIGITS: usize = 6;
const RECOVERY_CODES: usize = 10;

pub(super) fn routes() -> Routes {
    Routes::default()
        .add(
            op(
                "post",
                "/api/v1/me/two-factor",
                "Start setting up two-factor sign-in: the secret for an authenticator app",
            )
            .needs(Perm::Own)
            .returns::<Setup>(),
            begin,
        )
        .add(
            op(
                "post",
                "/api/v1/me/two-factor/confirm",
                "Confirm two-factor sign-in with a code: it is on, and the recovery codes are shown once",
            )
            .needs(Perm::Own)
            .json_body::<CodeBody>()
            .returns::<Confirmed>(),
            confirm,
        )
        .add(
            op(
                "delete",
                "/api/v1/me/two-factor",
                "Turn two-factor sign-in off (with a current code or a recovery code)",
            )
            .needs(Perm::Own)
            .json_body::<CodeBody>()
            .no_content(),
            disable,
        )
}

fn totp(secret: &[u8]) -> Result<TOTP, ApiError> {
    TOTP::new(Algorithm::SHA1, DIGITS, 1, STEP, secret.to_vec())
        .map_err(|e| ApiError::Internal(format!("a TOTP secret: {e}")))
}

fn now_s() -> u64 {
    jiff::Timestamp::now().as_second().max(0) as u64
}

/// The time step whose code this is (the current one, or one either side), if any.
fn matching_step(secret: &[u8], code: &str, now: u64) -> Result<Option<i64>, ApiError> {
    let t = totp(secret)?;
    let code = code.trim();
    let current = now / STEP;
    Ok([current.saturating_sub(1), current, current + 1]
        .into_iter()
        .find(|step| crate::same(&t.generate(step * STEP), code))
        .map(|step| step as i64))
}

/// A recovery code as typed (any case, with or without its dash), hashed as stored.
fn recovery_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    auth::token_hash(&normal)
}

/// Check a member's second factor, when they have one on: a code of their authenticator
/// (once), or one of their recovery codes (once). `Ok(())` when they have none.
pub(crate) async fn check(
    s: &AppState,
    user: &User,
    code: Option<&str>,
    address: &str,
) -> Result<(), ApiError> {
    let Some(tf) = s.store.two_factor(&user.id).await?.filter(|t| t.enabled) else {
        return Ok(());
    };
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        return Err(ApiError::SecondFactor);
    };
    if code.len() > 64 {
        return Err(ApiError::WrongCode);
    }
    if code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
        return match matching_step(&tf.secret, code, now_s())? {
            Some(step) if s.store.two_factor_take_step(&user.id, step).await? => Ok(()),
            _ => Err(ApiError::WrongCode),
        };
    }
    let actor = flowbot_store::Actor::new(user.username.clone(), address);
    if s.store
        .two_factor_use_recovery(&user.id, &recovery_hash(code), actor)
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::WrongCode)
    }
}

#[derive(Serialize, schemars::JsonSchema)]
struct Setup {
    /// The secret in base32, to type into an authenticator app.
    secret: String,
    /// The same as an `otpauth://` link.
    uri: String,
    /// The link as a QR code to scan (an SVG image, as a `data:` URL).
    qr: String,
}

/// An `otpauth://` link: the format authenticator apps read.
fn otpauth_uri(secret_b32: &str, username: &str) -> String {
    format!(
        "otpauth://totp/flowbot:{}?secret={secret_b32}&issuer=flowbot&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        form_urlencoded::byte_serialize(username.as_bytes()).collect::<String>()
    )
}

/// A QR code of `text` as an SVG `data:` URL (the page's policy allows `data:` images
/// only).
fn qr_svg(text: &str) -> Result<String, ApiError> {
    let qr = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium)
        .map_err(|e| ApiError::Internal(format!("a QR code: {e:?}")))?;
    let size = qr.size();
    let border = 4;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    let dim = size + 2 * border;
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {dim} {dim}\" shape-rendering=\"crispEdges\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    );
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

async fn begin(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<Setup>> {
    use ring::rand::SecureRandom;
    let mut secret = [0u8; 20];
    ring::rand::SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| ApiError::Internal("no randomness for a secret".into()))?;
    s.store.two_factor_begin(&c.user.id, &secret).await?;
    let b32 = totp_rs::Secret::Raw(secret.to_vec())
        .to_encoded()
        .to_string();
    let uri = otpauth_uri(&b32, &c.user.username);
    Ok(Json(Setup {
        qr: qr_svg(&uri)?,
        secret: b32,
        uri,
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct CodeBody {
    /// Six digits from the authenticator app (or, to turn it off, a recovery code).
    code: String,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Confirmed {
    /// Ten single-use codes for when the authenticator is lost: shown this once.
    recovery_codes: Vec<String>,
}

async fn confirm(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<CodeBody>,
) -> ApiResult<Json<Confirmed>> {
    let tf = s
        .store
        .two_factor(&c.user.id)
        .await?
        .filter(|t| !t.enabled)
        .ok_or_else(|| ApiError::Conflict("start setting up two-factor sign-in first".into()))?;
    // Counted like a sign-in, so codes cannot be guessed at speed.
    let attempt = s
        .limiter
        .attempt(&c.address, &c.user.username)
        .map_err(ApiError::TooManyAttempts)?;
    let step = matching_step(&tf.secret, &b.code, now_s())?.ok_or(ApiError::WrongCode)?;
    s.limiter.succeeded(attempt);
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let t = auth::random_token();
            format!("{}-{}", &t[..4], &t[4..8])
        })
        .collect();
    let hashes = codes.iter().map(|c| recovery_hash(c)).collect();
    s.store
        .two_factor_enable(&c.user.id, hashes, step, c.actor())
        .await?;
    Ok(Json(Confirmed {
        recovery_codes: codes,
    }))
}

async fn disable(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(b): ApiJson<CodeBody>,
) -> ApiResult<StatusCode> {
    // Counted like a sign-in, so codes cannot be guessed at speed.
    let attempt = s
        .limiter
        .attempt(&c.address, &c.user.username)
        .map_err(ApiError::TooManyAttempts)?;
    check(&s, &c.user, Some(&b.code), &c.address).await?;
    s.limiter.succeeded(attempt);
    s.store.two_factor_disable(&c.user.id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, eight digits at T = 59 s is 94287082: six digits are
    /// its last six.
    #[test]
    fn codes_follow_rfc_6238() {
        let secret = b"12345678901234567890";
        let t = totp(secret).unwrap();
        assert_eq!(t.generate(59), "287082");
        assert_eq!(t.generate(1111111109), "081804");
        assert_eq!(matching_step(secret, "287082", 59).unwrap(), Some(1));
        assert_eq!(
            matching_step(secret, "287082", 59 + 30).unwrap(),
            Some(1),
            "one step late"
        );
        assert_eq!(
            matching_step(secret, "287082", 59 + 90).unwrap(),
            None,
            "too late"
        );
    }

    #[test]
    fn recovery_codes_are_read_in_any_case_with_or_without_the_dash() {
        assert_eq!(recovery_hash("ab12-cd34"), recovery_hash("AB12CD34"));
        assert_ne!(recovery_hash("ab12-cd34"), recovery_hash("ab12-cd35"));
    }

    #[test]
    fn the_qr_code_is_an_svg_image() {
        let q = qr_svg(&otpauth_uri("JBSWY3DPEHPK3PXP", "hanako")).unwrap();
        let svg = base64::engine::general_purpose::STANDARD
            .decode(q.strip_prefix("data:image/svg+xml;base64,").unwrap())
            .unwrap();
        assert!(String::from_utf8(svg).unwrap().starts_with("<svg"));
    }
}
