//! The one error type of the HTTP edge: each variant has its status; 5xx are logged with
//! their cause and answered without it; 4xx answer `{"error":{"code","message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use flowbot_core::Diagnostic;
use flowbot_store::StoreError;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("sign in first")]
    Unauthorized,
    #[error("the request lacks a valid CSRF token")]
    Csrf,
    /// The caller's role (or their token's scope) does not allow this.
    #[error("your role does not allow this; ask an owner or admin")]
    Forbidden,
    /// Password sign-in is kept for owners: everyone else signs in through the provider.
    #[error("sign in with your company account (SSO): passwords are for owners only here")]
    SsoOnly,
    /// The password was right; the second factor is still to come.
    #[error("enter the code from your authenticator app (or a recovery code)")]
    SecondFactor,
    #[error("the code is not right, or it was used already")]
    WrongCode,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// A flow file with problems: every diagnostic with its line and column.
    #[error("the flow has problems")]
    InvalidFlow(Vec<Diagnostic>),
    /// An app file with problems: every diagnostic with its line and column.
    #[error("the app file has problems")]
    InvalidApp(Vec<Diagnostic>),
    /// A task's answers with problems: each with the field's key as its path.
    #[error("some answers need fixing")]
    InvalidAnswers(Vec<Diagnostic>),
    /// Rows (or a table's columns) with problems, each named; nothing was written.
    #[error("{0}")]
    InvalidRows(String, Vec<flowbot_store::RowProblem>),
    /// Answered with `Retry-After` (whole seconds, at least one).
    #[error("too many attempts; try again in {} seconds", .0.as_secs().max(1))]
    TooManyAttempts(std::time::Duration),
    #[error("the database cannot be reached; try again")]
    Unavailable(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("the request has no body: send the event as JSON (or as form fields)")]
    EmptyBody,
    #[error("{0}")]
    MalformedBody(String),
    #[error("{0}")]
    IncompleteBody(String),
    /// A webhook whose signature or timestamp does not check out.
    #[error("{0}")]
    BadSignature(String),
    #[error("internal error")]
    Internal(String),
}

/// Every kind of store error named, so a new kind must be given a status here.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            return ApiError::Unavailable(e.to_string());
        }
        if e.is_unique_violation() {
            return ApiError::Conflict("it exists already".into());
        }
        match e {
            StoreError::FlowNotFound(_)
            | StoreError::RunNotFound(_)
            | StoreError::ConnectionNotFound(_)
            | StoreError::NotFound(_) => ApiError::NotFound(e.to_string()),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::InvalidRows(ref rows) => ApiError::InvalidRows(e.to_string(), rows.clone()),
            // Another process holds the SQLite store; a run's lease moved elsewhere.
            StoreError::Locked(_) | StoreError::LeaseLost(_) => {
                ApiError::Unavailable(e.to_string())
            }
            StoreError::Database(_)
            | StoreError::Commit(_)
            | StoreError::Closed
            | StoreError::Migrate(_)
            | StoreError::InvalidConfig(_)
            | StoreError::Key(_)
            | StoreError::Corrupt(_)
            | StoreError::Io { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

impl ApiError {
    /// The machine-readable code of the envelope.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Csrf => (StatusCode::FORBIDDEN, "csrf"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::SsoOnly => (StatusCode::FORBIDDEN, "sso_only"),
            ApiError::SecondFactor => (StatusCode::UNAUTHORIZED, "two_factor_required"),
            ApiError::WrongCode => (StatusCode::UNAUTHORIZED, "wrong_code"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::InvalidFlow(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_flow"),
            ApiError::InvalidApp(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_app"),
            ApiError::InvalidAnswers(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_answers"),
            ApiError::InvalidRows(..) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_rows"),
            ApiError::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::EmptyBody => (StatusCode::BAD_REQUEST, "empty_body"),
            ApiError::MalformedBody(_) => (StatusCode::BAD_REQUEST, "malformed_body"),
            ApiError::IncompleteBody(_) => (StatusCode::BAD_REQUEST, "incomplete_body"),
            ApiError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "bad_signature"),
        }
    }
}

/// The envelope every refusal answers in.
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "Error")]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// Machine-readable: `unauthorized`, `not_found`, `bad_request`, `conflict`,
    /// `invalid_flow`, `too_many_attempts`, `unavailable`, `too_large`, …
    pub code: &'static str,
    /// What was wrong, in words a user can act on.
    pub message: String,
    /// With `invalid_flow` and `invalid_app`: every problem of the file; with
    /// `invalid_answers`: every answer to fix (the path is the field's key).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
    /// With `invalid_rows`: every row to fix — its place (0-based) in the write or the
    /// import, the column, and what is wrong.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<flowbot_store::RowProblem>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let retry_after = match &self {
            ApiError::TooManyAttempts(wait) => Some(wait.as_secs().max(1)),
            ApiError::Unavailable(_) => Some(5),
            _ => None,
        };
        if let ApiError::Unavailable(cause) | ApiError::Internal(cause) = &self {
            tracing::error!(error = %cause, "request failed");
        }
        let message = self.to_string();
        let (diagnostics, rows) = match self {
            ApiError::InvalidFlow(d) | ApiError::InvalidApp(d) | ApiError::InvalidAnswers(d) => {
                (d, Vec::new())
            }
            ApiError::InvalidRows(_, rows) => (Vec::new(), rows),
            _ => (Vec::new(), Vec::new()),
        };
        let body = ErrorEnvelope {
            error: ErrorBody {
                code,
                message,
                diagnostics,
                rows,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        resp
    }
}

/// `Json<T>` whose refusal (not JSON, wrong shape, wrong content type) answers in the same
/// envelope as every other error, naming what was wrong, instead of axum's plain text.
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(ApiError::BadRequest(format!(
                "the body is not the JSON this call takes: {}",
                e.body_text()
            ))),
        }
    }
}

/// `Query<T>` with its refusal in the error envelope.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError::BadRequest(format!(
                "the query string is not what this call takes: {}",
                e.body_text()
            ))),
        }
    }
}
