//! Building an action's request from the app file: the method, URL, query, headers,
//! timeout and body — each a template, some chosen by the step's inputs at run time — and
//! the sign-in. Problems name what the user gave (`input `url``) when a template is just an
//! input.

use std::time::Duration;

use base64::Engine;
use flowbot_core::template::Scope;
use flowbot_core::ActionError;
use serde_json::{json, Value};

use super::format::{ActionDef, Auth, BodySpec, KeyPlace, METHODS};
use super::{
    pages, scalars, template_holes, text, whole_template, without_nulls, FileApp, PATH_SEGMENT,
    REQUEST_TIMEOUT,
};

/// How a problem with a template's value names it: `input `x`` when the template is just
/// that input, else `what`.
fn named(template: &str, what: &str) -> String {
    let t = template.trim();
    t.strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .map(str::trim)
        .and_then(|e| e.strip_prefix("input."))
        .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map_or_else(|| what.to_string(), |n| format!("input `{n}`"))
}

/// The most the files of one multipart body may weigh together.
const MAX_BODY_FILES: u64 = 25 * 1024 * 1024;

impl FileApp {
    /// The request's method.
    pub(super) fn method(
        &self,
        a: &ActionDef,
        scope: &Scope,
    ) -> Result<reqwest::Method, ActionError> {
        let m = self
            .render_text("the method", &a.request.method, scope)?
            .trim()
            .to_ascii_uppercase();
        let m = if m.is_empty() { "GET".to_string() } else { m };
        if !METHODS.contains(&m.as_str()) {
            return Err(ActionError::fatal(format!(
                "{}: `{m}` is not an HTTP method",
                named(&a.request.method, "the method")
            )));
        }
        reqwest::Method::from_bytes(m.as_bytes()).map_err(|e| ActionError::fatal(e.to_string()))
    }

    /// The path with each value put into it percent-encoded, so an input cannot reach
    /// another path (`../admin`) or add a query. A path that is one template as a whole is a
    /// URL the user gave (e.g. a Slack incoming webhook) and is taken as it is.
    fn render_path(&self, path: &str, scope: &Scope) -> Result<(String, bool), ActionError> {
        if whole_template(path) {
            return Ok((
                self.render_text("the request path", path.trim(), scope)?,
                true,
            ));
        }
        let mut out = String::new();
        let mut last = 0;
        for m in template_holes().find_iter(path) {
            out.push_str(&path[last..m.start()]);
            let v = self.render_text("the request path", m.as_str(), scope)?;
            out.extend(percent_encoding::utf8_percent_encode(&v, PATH_SEGMENT));
            last = m.end();
        }
        out.push_str(&path[last..]);
        Ok((out, false))
    }

    /// The URL: the path after the base URL, or a whole URL a template gave (which must be
    /// an http(s) address).
    fn url(&self, a: &ActionDef, scope: &Scope) -> Result<reqwest::Url, ActionError> {
        let (path, whole) = self.render_path(&a.request.path, scope)?;
        let absolute = path.starts_with("http://") || path.starts_with("https://");
        if whole && !absolute && self.app.connection.base_url.is_none() {
            let what = named(&a.request.path, "the URL");
            return Err(ActionError::fatal(if path.contains("://") {
                format!("{what}: only http:// and https:// addresses can be called, not `{path}`")
            } else {
                format!("{what}: `{path}` is not a valid URL")
            }));
        }
        if whole && absolute {
            return reqwest::Url::parse(&path).map_err(|e| {
                ActionError::fatal(format!(
                    "{}: `{path}` is not a valid URL ({e})",
                    named(&a.request.path, "the URL")
                ))
            });
        }
        self.on_base("the request URL", path, scope)
    }

    /// A map of templates, or one template giving the whole map: its entries, those that
    /// rendered to null left out.
    fn map(
        &self,
        what: &str,
        spec: &Value,
        scope: &Scope,
    ) -> Result<Vec<(String, String)>, ActionError> {
        let rendered = match spec {
            Value::Null => return Ok(Vec::new()),
            Value::String(t) => {
                let v = self.render(what, spec, scope)?;
                if !(v.is_object() || v.is_null()) {
                    return Err(ActionError::fatal(format!(
                        "{}: must be a mapping of names to values",
                        named(t, what)
                    )));
                }
                v
            }
            other => self.render(what, other, scope)?,
        };
        Ok(scalars(&rendered))
    }

    fn timeout(&self, a: &ActionDef, scope: &Scope) -> Result<Duration, ActionError> {
        let Some(t) = &a.request.timeout else {
            return Ok(REQUEST_TIMEOUT);
        };
        match self.render("the timeout", &Value::String(t.clone()), scope)? {
            Value::Null => Ok(REQUEST_TIMEOUT),
            Value::Number(n) => Ok(Duration::from_secs_f64(n.as_f64().unwrap_or(30.0).max(0.0))),
            Value::String(s) if s.trim().is_empty() => Ok(REQUEST_TIMEOUT),
            Value::String(s) => flowbot_core::model::parse_duration(s.trim()).ok_or_else(|| {
                ActionError::fatal(format!(
                    "{}: `{s}` is not a duration such as 10s",
                    named(t, "the timeout")
                ))
            }),
            other => Err(ActionError::fatal(format!(
                "{}: `{other}` is not a duration such as 10s",
                named(t, "the timeout")
            ))),
        }
    }

    /// The bytes of the files a multipart body sends (values that are a form's files),
    /// by file id: read before the request is built.
    pub(super) async fn files_of(
        &self,
        a: &ActionDef,
        scope: &Scope,
    ) -> Result<std::collections::HashMap<String, Vec<u8>>, ActionError> {
        let mut out = std::collections::HashMap::new();
        let Some(fields) = a.request.body.as_ref().and_then(|b| b.multipart.as_ref()) else {
            return Ok(out);
        };
        let v = self.render("the multipart body", &json!(fields), scope)?;
        let mut total = 0u64;
        for value in v.as_object().into_iter().flat_map(|m| m.values()) {
            if let Some(f) = flowbot_core::files::FileRef::from_value(value) {
                total += f.size;
                if total > MAX_BODY_FILES {
                    return Err(ActionError::fatal(format!(
                        "the files of the multipart body are larger than {} MB in all",
                        MAX_BODY_FILES / (1024 * 1024)
                    )));
                }
                let bytes = flowbot_core::files::read(&f)
                    .await
                    .map_err(ActionError::fatal)?;
                out.insert(f.file_id, bytes);
            }
        }
        Ok(out)
    }

    /// The request an action makes, signed in as the connection says.
    pub(super) fn build(
        &self,
        a: &ActionDef,
        scope: &Scope,
        token: Option<(String, String)>,
        page: &pages::PageRequest,
        files: &std::collections::HashMap<String, Vec<u8>>,
    ) -> Result<(reqwest::Url, reqwest::RequestBuilder), ActionError> {
        let mut url = match &page.url {
            // The next page's URL as the app gave it (a Link header, a `next` URL) — but
            // only where the first page was: it carries the connection's credentials.
            Some(next) => {
                let first = self.url(a, scope)?;
                if next.origin() != first.origin() {
                    return Err(ActionError::fatal(format!(
                        "the next page is at {}, not at {} where the list began: not followed, so the connection's credentials stay with the app",
                        next.origin().ascii_serialization(),
                        first.origin().ascii_serialization()
                    )));
                }
                next.clone()
            }
            None => self.url(a, scope)?,
        };
        let mut pairs: Vec<(String, String)> = Vec::new();
        if page.url.is_none() {
            pairs = self.map("the query", &a.request.query, scope)?;
        }
        pairs.extend(page.query.iter().cloned());
        let headers_named = match &a.request.headers {
            Value::String(t) => named(t, "the headers"),
            _ => "the headers".to_string(),
        };
        let mut headers = reqwest::header::HeaderMap::new();
        let app_headers = json!(self.app.connection.headers);
        for (name, v) in self.map("the connection's headers", &app_headers, scope)? {
            if !v.is_empty() {
                insert_header(&mut headers, "the app's connection headers", &name, v)?;
            }
        }
        let mut header =
            |name: &str, value: String| insert_header(&mut headers, &headers_named, name, value);
        for (name, v) in self.map("the headers", &a.request.headers, scope)? {
            if !v.is_empty() {
                header(&name, v)?;
            }
        }
        if let Some((name, value)) = token {
            header(&name, value)?;
        }
        match self.auth_for(scope) {
            Auth::None | Auth::OAuth2 { .. } | Auth::TokenExchange { .. } => {}
            Auth::ApiKey { place, name, value } => {
                let v = self.render_text("the API key", value, scope)?;
                match place {
                    KeyPlace::Header => header(name, v)?,
                    KeyPlace::Query => pairs.push((name.clone(), v)),
                }
            }
            Auth::Bearer { token } => {
                let t = self.render_text("the token", token, scope)?;
                header("authorization", format!("Bearer {t}"))?;
            }
            Auth::Basic { username, password } => {
                let u = self.render_text("the user name", username, scope)?;
                let p = self.render_text("the password", password, scope)?;
                let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                header("authorization", format!("Basic {b}"))?;
            }
        }
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        let req = self
            .client
            .request(self.method(a, scope)?, url.clone())
            .headers(headers)
            .timeout(self.timeout(a, scope)?);
        let req = match &a.request.body {
            None => req,
            Some(b) => self.body(b, req, scope, files)?,
        };
        Ok((url, req))
    }

    fn body(
        &self,
        b: &BodySpec,
        req: reqwest::RequestBuilder,
        scope: &Scope,
        files: &std::collections::HashMap<String, Vec<u8>>,
    ) -> Result<reqwest::RequestBuilder, ActionError> {
        if let Some(v) = &b.json {
            return Ok(req.json(&without_nulls(self.render("the body", v, scope)?)));
        }
        if let Some(fields) = &b.form {
            let v = self.render("the form", &json!(fields), scope)?;
            return Ok(req.form(&scalars(&v)));
        }
        if let Some(fields) = &b.multipart {
            let v = self.render("the multipart body", &json!(fields), scope)?;
            let mut form = reqwest::multipart::Form::new();
            for (name, value) in v.as_object().into_iter().flatten() {
                // A form's file goes as a file part, with its name and media type.
                if let Some(f) = flowbot_core::files::FileRef::from_value(value) {
                    let bytes = files.get(&f.file_id).cloned().unwrap_or_default();
                    let named =
                        |b: Vec<u8>| reqwest::multipart::Part::bytes(b).file_name(f.name.clone());
                    // A media type reqwest cannot read goes without one.
                    let part = named(bytes.clone())
                        .mime_str(&f.content_type)
                        .unwrap_or_else(|_| named(bytes));
                    form = form.part(name.clone(), part);
                    continue;
                }
                if !value.is_null() {
                    form = form.text(name.clone(), text(value));
                }
            }
            return Ok(req.multipart(form));
        }
        let Some(value) = &b.value else {
            return Ok(req);
        };
        let body = self.render("the body", value, scope)?;
        if body.is_null() {
            return Ok(req);
        }
        let format_t = b.format.clone().unwrap_or_else(|| "json".into());
        let format = self.render_text("the body format", &format_t, scope)?;
        match format.trim() {
            "" | "json" => Ok(req.json(&body)),
            "form" => {
                let Value::Object(fields) = &body else {
                    return Err(ActionError::fatal(format!(
                        "{}: a form body must be a mapping of names to values",
                        value
                            .as_str()
                            .map_or_else(|| "the body".into(), |t| named(t, "the body"))
                    )));
                };
                let pairs: Vec<(String, String)> =
                    fields.iter().map(|(k, v)| (k.clone(), text(v))).collect();
                Ok(req.form(&pairs))
            }
            other => Err(ActionError::fatal(format!(
                "{}: `{other}` is not one of json, form",
                named(&format_t, "the body format")
            ))),
        }
    }
}

/// One header, its problems named after where it came from (`what`).
fn insert_header(
    headers: &mut reqwest::header::HeaderMap,
    what: &str,
    name: &str,
    value: String,
) -> Result<(), ActionError> {
    let n = reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ActionError::fatal(format!("{what}: `{name}` is not a valid header name")))?;
    let v = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
        ActionError::fatal(format!(
            "{what}: the value of `{name}` contains characters a header cannot carry"
        ))
    })?;
    headers.insert(n, v);
    Ok(())
}
