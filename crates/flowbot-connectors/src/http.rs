//! What the apps share about HTTP: reading `Retry-After`, showing a URL without its query,
//! classifying transport failures, and handing rotated refresh tokens to the worker. (The
//! generic HTTP app itself is an app file: `apps/http.yaml`.)

use std::time::Duration;

use flowbot_core::ActionError;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::Method;
use serde_json::Value;

/// Refresh tokens an app rotated (connection name → token), drained as the settings
/// updates the worker saves (`Connector::take_settings_updates`).
pub fn rotated_refresh_tokens(
    rotated: &mut std::collections::HashMap<String, String>,
) -> Vec<(String, String, Value)> {
    rotated
        .drain()
        .map(|(name, token)| (name, "refresh_token".to_string(), Value::String(token)))
        .collect()
}

/// The longest wait a service's `Retry-After` is taken for: a larger (or absurd) value
/// would park a run for years; the service is asked again after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Seconds in `Retry-After`, at most [`MAX_RETRY_AFTER`] (the HTTP-date form is rare from
/// APIs and is ignored).
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    h.get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

/// A URL as errors may show it: the query is left out, since it can carry customer data
/// (a search's SOQL, an email) that must not land in run history or logs.
pub fn shown_url(url: &reqwest::Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    if url.query().is_some() {
        shown.push_str(" (query omitted)");
    }
    shown
}

/// An answer's body, read up to `max` bytes whatever length it claims; a larger one is a
/// fatal error (asking again would bring the same answer).
pub async fn read_bounded(
    mut resp: reqwest::Response,
    max: usize,
    method: &Method,
    url: &reqwest::Url,
) -> Result<Vec<u8>, ActionError> {
    let too_large = || {
        ActionError::fatal(format!(
            "{method} {}: the answer is larger than {} MiB",
            shown_url(url),
            max >> 20
        ))
    };
    if resp.content_length().is_some_and(|n| n as usize > max) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport_error(method, url, e))?
    {
        if bytes.len() + chunk.len() > max {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Network-level failures are worth retrying; a request we could not even build is not.
/// reqwest's own text names the full URL, so it is shown without it.
pub fn transport_error(method: &Method, url: &reqwest::Url, e: reqwest::Error) -> ActionError {
    let shown = shown_url(url);
    let e = e.without_url();
    if e.is_builder() {
        return ActionError::fatal(format!(
            "{method} {shown}: the request could not be built: {e}"
        ));
    }
    let (what, code) = if e.is_timeout() {
        ("no answer in time", "TIMEOUT")
    } else if e.is_connect() {
        ("could not connect", "NETWORK")
    } else {
        ("the connection failed", "NETWORK")
    };
    ActionError::retryable(format!("{method} {shown}: {what} ({})", error_chain(&e)))
        .with_code(code)
}

/// reqwest's error and its sources ("error sending request: connection refused"), which
/// say what actually went wrong; the top-level text alone rarely does.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_and_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "30".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
        // An absurd wait is not taken: the service is asked again within the hour.
        h.insert(RETRY_AFTER, "9223372036854775".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
    }
}
