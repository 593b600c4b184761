//! Salesforce's answers turned into errors a user can act on, and settings checked when
//! a connection is saved.

use std::time::Duration;

use flowbot_core::ActionError;
use reqwest::StatusCode;
use serde_json::{Map, Value};

/// Salesforce's error array (or an OAuth error object) as an action error.
pub(super) fn map_error(status: StatusCode, body: &Value, retry: Option<Duration>) -> ActionError {
    let first = body.as_array().and_then(|a| a.first()).unwrap_or(body);
    let code = first
        .get("errorCode")
        .or_else(|| first.get("statusCode"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let message = first
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {status}"));
    let fields: Vec<String> = first
        .get("fields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let retryable = status.is_server_error()
        || matches!(
            code.as_str(),
            "REQUEST_LIMIT_EXCEEDED" | "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE"
        );
    // The code once: some answers already quote it in their message.
    let tag = if code.is_empty() || message.contains(&code) {
        String::new()
    } else {
        format!(" [{code}]")
    };
    let text = if fields.is_empty() {
        format!("Salesforce: {message}{tag}")
    } else {
        format!("Salesforce: {message}{tag} (fields: {})", fields.join(", "))
    };
    let e = if retryable {
        ActionError::retryable(text)
    } else {
        ActionError::fatal(text)
    };
    let e = if code.is_empty() {
        e
    } else {
        e.with_code(code)
    };
    e.with_fields(fields).with_retry_after(retry)
}

/// Why the token endpoint refused, always with the HTTP status, the token URL and what the
/// answer said: an OAuth error object, a Salesforce error list, or an excerpt of anything
/// else (an HTML error page from a proxy). Server errors, rate limits and Salesforce's
/// transient codes are worth trying again; a refused credential is not.
pub(super) fn sign_in_error(
    connection: &str,
    url: &str,
    status: StatusCode,
    body: &[u8],
) -> ActionError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let first = parsed.as_array().and_then(|a| a.first()).unwrap_or(&parsed);
    let code = first
        .get("error")
        .or_else(|| first.get("errorCode"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let desc = first
        .get("error_description")
        .or_else(|| first.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let said = match (code.as_str(), desc) {
        ("", "") => {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.trim().chars().take(200).collect();
            if excerpt.is_empty() {
                "an empty answer".to_string()
            } else {
                format!("`{excerpt}`")
            }
        }
        ("", d) => d.to_string(),
        (c, "") => c.to_string(),
        (c, d) => format!("{c}: {d}"),
    };
    let message = format!(
        "Salesforce refused to sign in connection `{connection}` (HTTP {} from {url}): {said}",
        status.as_u16()
    );
    let transient = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || matches!(
            code.as_str(),
            "REQUEST_LIMIT_EXCEEDED" | "SERVER_UNAVAILABLE" | "UNABLE_TO_LOCK_ROW"
        );
    let e = if transient {
        ActionError::retryable(message)
    } else {
        ActionError::fatal(message)
    };
    if code.is_empty() {
        e
    } else {
        e.with_code(code)
    }
}

/// A 404 from an upsert says only "The requested resource does not exist": say which
/// object, field and value were used and what to check.
pub(super) fn upsert_not_found(
    object: &str,
    field: &str,
    value: &str,
    e: ActionError,
) -> ActionError {
    ActionError {
        message: format!(
            "Salesforce found no `{object}` object with an external ID field `{field}` \
             (upserting `{field}` = `{value}`): check that the object and the field exist, that \
             the field is marked External ID, and that the connection's user can see both. \
             Salesforce said: {}",
            e.message.trim_start_matches("Salesforce: ")
        ),
        ..e
    }
}

/// Settings a Salesforce connection cannot work with, refused when it is saved.
pub fn check_settings(settings: &Map<String, Value>) -> Result<(), String> {
    let Some(domain) = settings
        .get("my_domain_url")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty())
    else {
        return Ok(());
    };
    let url = reqwest::Url::parse(domain.trim()).map_err(|_| {
        format!("my_domain_url `{domain}` is not a URL: give it as https://yourcompany.my.salesforce.com")
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(format!(
            "my_domain_url must start with https:// (e.g. https://yourcompany.my.salesforce.com), not `{}:`",
            url.scheme()
        ));
    }
    let mut extra = String::new();
    if url.path() != "/" {
        extra.push_str(url.path());
    }
    if let Some(q) = url.query() {
        extra.push('?');
        extra.push_str(q);
    }
    if let Some(f) = url.fragment() {
        extra.push('#');
        extra.push_str(f);
    }
    if !extra.is_empty() {
        let origin = url.origin().ascii_serialization();
        return Err(format!(
            "my_domain_url must be the domain only: remove `{extra}` (use {origin})"
        ));
    }
    Ok(())
}
