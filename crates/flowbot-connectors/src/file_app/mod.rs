//! Apps as files: an app described in the app format (`format`) runs through one generic
//! connector. Its requests are templates over the step's `input` and the `connection`,
//! rendered by the same engine as flows; its answers are read by the file's own rules
//! (output, error mapping). The built-in app files are embedded; more are read from the
//! apps directory at start, and a broken one is reported, never fatal.

mod auth;
pub mod format;
pub mod openapi;
mod pages;
mod request;
mod triggers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use flowbot_core::manifest::AppManifest;
use flowbot_core::template::{render_value, Scope};
use flowbot_core::{ActionCall, ActionError, Connection, Connector, Diagnostic};
use serde_json::{json, Map, Value};

use crate::http::{read_bounded, retry_after, transport_error};
use format::{ActionDef, AppFile, Auth};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of an answer's body read (a larger one is refused, not buffered).
const MAX_ANSWER: usize = 16 << 20;
/// The largest icon an app folder may hold.
const MAX_ICON: usize = 256 << 10;
/// How much of an error body a message shows.
const ERROR_EXCERPT: usize = 300;

/// The app files built into flowbot (`crates/flowbot-connectors/apps/`).
const BUILTIN: &[(&str, &str)] = &[
    ("slack.yaml", include_str!("../../apps/slack.yaml")),
    ("chatwork.yaml", include_str!("../../apps/chatwork.yaml")),
    ("http.yaml", include_str!("../../apps/http.yaml")),
    ("kintone.yaml", include_str!("../../apps/kintone.yaml")),
    ("hubspot.yaml", include_str!("../../apps/hubspot.yaml")),
    (
        "google_sheets.yaml",
        include_str!("../../apps/google_sheets.yaml"),
    ),
    ("notion.yaml", include_str!("../../apps/notion.yaml")),
    (
        "microsoft_teams.yaml",
        include_str!("../../apps/microsoft_teams.yaml"),
    ),
    (
        "google_chat.yaml",
        include_str!("../../apps/google_chat.yaml"),
    ),
    ("line.yaml", include_str!("../../apps/line.yaml")),
    ("backlog.yaml", include_str!("../../apps/backlog.yaml")),
    ("shopify.yaml", include_str!("../../apps/shopify.yaml")),
    ("stripe.yaml", include_str!("../../apps/stripe.yaml")),
];

/// The built-in app files as shipped: file name and YAML.
pub fn builtin_sources() -> &'static [(&'static str, &'static str)] {
    BUILTIN
}

/// The built-in app files, read once.
pub fn builtin() -> &'static [AppFile] {
    static APPS: std::sync::OnceLock<Vec<AppFile>> = std::sync::OnceLock::new();
    APPS.get_or_init(|| {
        BUILTIN
            .iter()
            .map(|(name, source)| {
                format::parse(source).unwrap_or_else(|problems| {
                    // A test reads every built-in file; this cannot pass it.
                    panic!("built-in app file {name} is broken: {problems:?}")
                })
            })
            .collect()
    })
}

/// An app read from a file.
pub struct FileApp {
    app: AppFile,
    manifest: AppManifest,
    client: reqwest::Client,
    tokens: auth::Tokens,
    /// The icon beside the app file in its folder: (media type, bytes).
    icon: Option<(&'static str, Vec<u8>)>,
    /// A connection's settings digest → when its recent requests were sent (`rate_limit`).
    sent: std::sync::Mutex<
        std::collections::HashMap<u64, std::collections::VecDeque<std::time::Instant>>,
    >,
}

/// An app file that could not be read: where, and every problem.
#[derive(Debug, Clone)]
pub struct BrokenApp {
    pub file: PathBuf,
    pub problems: Vec<Diagnostic>,
}

impl BrokenApp {
    /// `FILE:LINE:COL: message`, one line each, as flow problems are shown.
    pub fn report(&self) -> String {
        self.problems
            .iter()
            .map(|d| {
                format!(
                    "{}:{}:{}: {}",
                    self.file.display(),
                    d.line,
                    d.column,
                    d.message
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl FileApp {
    pub fn new(app: AppFile, client: reqwest::Client) -> Self {
        FileApp {
            manifest: app.manifest(),
            app,
            client,
            tokens: auth::Tokens::default(),
            icon: None,
            sent: Default::default(),
        }
    }

    /// Read one app file.
    pub fn load(path: &Path, client: reqwest::Client) -> Result<FileApp, BrokenApp> {
        let broken = |problems| BrokenApp {
            file: path.to_path_buf(),
            problems,
        };
        let source = std::fs::read_to_string(path).map_err(|e| {
            broken(vec![Diagnostic {
                line: 1,
                column: 1,
                path: String::new(),
                message: format!("cannot be read: {e}"),
            }])
        })?;
        let mut app = format::parse(&source)
            .map(|app| FileApp::new(app, client))
            .map_err(broken)?;
        // A folder's app file may have its icon beside it.
        if path.file_name().is_some_and(|n| n == "app.yaml") {
            let dir = path.parent().unwrap_or(Path::new("."));
            for (name, media) in [("icon.svg", "image/svg+xml"), ("icon.png", "image/png")] {
                let icon = dir.join(name);
                let Ok(meta) = std::fs::metadata(&icon) else {
                    continue;
                };
                if meta.len() > MAX_ICON as u64 {
                    return Err(BrokenApp {
                        file: icon,
                        problems: vec![Diagnostic {
                            line: 1,
                            column: 1,
                            path: String::new(),
                            message: format!("the icon is larger than {} KiB", MAX_ICON >> 10),
                        }],
                    });
                }
                if let Ok(bytes) = std::fs::read(&icon) {
                    app.icon = Some((media, bytes));
                    break;
                }
            }
        }
        Ok(app)
    }

    /// Every `*.yaml`/`*.yml` file of `dir` (and `*/app.yaml` of its folders), in name order.
    pub fn load_dir(dir: &Path, client: &reqwest::Client) -> (Vec<FileApp>, Vec<BrokenApp>) {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter_map(|p| {
                    if p.is_dir() {
                        let inner = p.join("app.yaml");
                        inner.is_file().then_some(inner)
                    } else {
                        matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
                            .then_some(p)
                    }
                })
                .collect(),
            Err(e) => {
                return (
                    Vec::new(),
                    vec![BrokenApp {
                        file: dir.to_path_buf(),
                        problems: vec![Diagnostic {
                            line: 1,
                            column: 1,
                            path: String::new(),
                            message: format!("the apps directory cannot be read: {e}"),
                        }],
                    }],
                )
            }
        };
        files.sort();
        let mut apps = Vec::new();
        let mut broken = Vec::new();
        for f in files {
            match FileApp::load(&f, client.clone()) {
                Ok(a) => apps.push(a),
                Err(b) => broken.push(b),
            }
        }
        (apps, broken)
    }

    fn scope(
        &self,
        action: Option<&ActionDef>,
        input: &Map<String, Value>,
        conn: Option<&Connection>,
    ) -> Scope {
        // Every declared field is in scope (null or its default when not given), so a
        // template may name an optional one.
        let mut settings = Map::new();
        for f in &self.app.connection.fields {
            settings.insert(f.name.clone(), f.default.clone().unwrap_or(Value::Null));
        }
        if let Some(c) = conn {
            settings.extend(c.settings.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut inputs = Map::new();
        for f in action.map(|a| a.inputs.as_slice()).unwrap_or_default() {
            inputs.insert(f.name.clone(), f.default.clone().unwrap_or(Value::Null));
        }
        inputs.extend(input.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut scope = Scope::new();
        scope.insert("connection".into(), Value::Object(settings));
        scope.insert("input".into(), Value::Object(inputs));
        scope
    }

    fn render(&self, what: &str, v: &Value, scope: &Scope) -> Result<Value, ActionError> {
        render_value(v, scope).map_err(|(at, e)| {
            let at = if at.is_empty() {
                String::new()
            } else {
                format!(" `{at}`")
            };
            ActionError::fatal(format!(
                "app `{}`: {what}{at} cannot be rendered: {}",
                self.app.id, e.message
            ))
        })
    }

    fn render_text(&self, what: &str, t: &str, scope: &Scope) -> Result<String, ActionError> {
        Ok(match self.render(what, &Value::String(t.into()), scope)? {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        })
    }

    /// Wait until the connection may send another request under the file's rate limit.
    async fn wait_turn(&self, scope: &Scope) {
        let Some(limit) = &self.app.connection.rate_limit else {
            return;
        };
        let Some(window) = limit.window() else {
            return;
        };
        // The connection is known by a digest of its settings (they hold secrets).
        let key = digest(&scope["connection"]);
        loop {
            let wait = {
                let mut sent = self.sent.lock().expect("rate limit");
                let now = std::time::Instant::now();
                let log = sent.entry(key).or_default();
                while log
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    log.pop_front();
                }
                if log.len() < limit.requests as usize {
                    log.push_back(now);
                    return;
                }
                window.saturating_sub(now.duration_since(*log.front().expect("a full log")))
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// A rendered URL: whole, or a path after the connection's base URL.
    fn on_base(
        &self,
        what: &str,
        rendered: String,
        scope: &Scope,
    ) -> Result<reqwest::Url, ActionError> {
        let full = if rendered.starts_with("http://") || rendered.starts_with("https://") {
            rendered
        } else {
            let base = self.app.connection.base_url.as_deref().unwrap_or_default();
            let base = self.render_text("the base URL", base, scope)?;
            format!(
                "{}/{}",
                base.trim_end_matches('/'),
                rendered.trim_start_matches('/')
            )
        };
        reqwest::Url::parse(&full).map_err(|e| {
            ActionError::fatal(format!(
                "app `{}`: {what} `{full}` is not a URL: {e}",
                self.app.id
            ))
        })
    }

    /// One action's request; with a token the app handed out, a 401 asks for a new token
    /// and tries once more (the kept one may have been revoked or expired early).
    async fn call(
        &self,
        a: &ActionDef,
        scope: &Scope,
        conn: Option<&Connection>,
    ) -> Result<Value, ActionError> {
        let token = self.token_header(conn, scope, false).await?;
        match self.call_once(a, scope, token).await {
            Err(e) if self.uses_tokens(scope) && e.code.as_deref() == Some("HTTP_401") => {
                let token = self.token_header(conn, scope, true).await?;
                self.call_once(a, scope, token).await
            }
            other => other,
        }
    }

    async fn call_once(
        &self,
        a: &ActionDef,
        scope: &Scope,
        token: Option<(String, String)>,
    ) -> Result<Value, ActionError> {
        if let Some(p) = &a.paginate {
            return self.paged(a, p, scope, token).await;
        }
        let (response, _) = self
            .exchange(a, scope, token, &pages::PageRequest::default())
            .await?;
        let mut scope = scope.clone();
        scope.insert("response".into(), response);
        match &a.output {
            Some(t) => self.render("the output", t, &scope),
            None => Ok(scope["response"]["body"].clone()),
        }
    }

    /// One request and its answer as `{status, headers, body}` with the body's size in
    /// bytes; a refusal mapped to an error by the file's rules.
    async fn exchange(
        &self,
        a: &ActionDef,
        scope: &Scope,
        token: Option<(String, String)>,
        page: &pages::PageRequest,
    ) -> Result<(Value, usize), ActionError> {
        let files = self.files_of(a, scope).await?;
        let (url, req) = self.build(a, scope, token, page, &files)?;
        self.wait_turn(scope).await;
        let method = self.method(a, scope)?;
        // A URL the user gave whole (a Slack webhook) is a credential: errors show its host.
        let url = if whole_template(&a.request.path) {
            let mut shown = url.clone();
            shown.set_path("/…");
            shown.set_query(None);
            shown
        } else {
            url
        };
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error(&method, &url, e))?;
        let status = resp.status();
        // Credentials the app answers with (a session cookie, a token header) never reach
        // the obtained values, which run history keeps.
        let mut headers = Value::Object(
            resp.headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), json!(v.to_str().ok()?))))
                .collect(),
        );
        flowbot_core::manifest::redact_headers(&mut headers);
        let wait = retry_after(resp.headers());
        let bytes = read_bounded(resp, MAX_ANSWER, &method, &url).await?;
        let text = String::from_utf8_lossy(&bytes);
        // JSON when the answer says so (or says nothing and is JSON); text otherwise; no
        // body is null.
        let said = headers["content-type"]
            .as_str()
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = if bytes.is_empty() {
            Value::Null
        } else if said.contains("json") || said.is_empty() {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(text.to_string()))
        } else {
            Value::String(text.to_string())
        };
        let mut scope = scope.clone();
        scope.insert(
            "response".into(),
            json!({ "status": status.as_u16(), "headers": headers, "body": body }),
        );
        // The file may let the step read a refusal as an answer (`errors.fail`).
        let fails = match &a.errors.fail {
            None => true,
            Some(t) => !match self.render("errors.fail", &Value::String(t.clone()), &scope)? {
                Value::Bool(b) => !b,
                Value::String(s) => s.trim() == "false",
                _ => false,
            },
        };
        if !status.is_success() && fails {
            let spec = &a.errors;
            let message = match &spec.message {
                Some(t) => self
                    .render_text("the error message", t, &scope)
                    .unwrap_or_default(),
                None => String::new(),
            };
            let message = if message.is_empty() {
                text.chars().take(ERROR_EXCERPT).collect()
            } else {
                message
            };
            let code = match &spec.code {
                Some(t) => self
                    .render_text("the error code", t, &scope)
                    .ok()
                    .filter(|c| !c.is_empty()),
                None => None,
            };
            let text = format!("{} answered {status}: {message}", self.manifest.name.en);
            let e = if spec.retry_statuses.contains(&status.as_u16()) {
                ActionError::retryable(text)
            } else {
                ActionError::fatal(text)
            };
            return Err(e
                .with_code(code.unwrap_or_else(|| format!("HTTP_{}", status.as_u16())))
                .with_retry_after(wait)
                .with_details(json!({ "status": status.as_u16() })));
        }
        let response = scope
            .remove("response")
            .expect("the response was just put in scope");
        Ok((response, bytes.len()))
    }
}

/// What a value put into a path keeps as it is (RFC 3986's unreserved characters).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn template_holes() -> &'static regex::Regex {
    static HOLES: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    HOLES.get_or_init(|| regex::Regex::new(r"\{\{.*?\}\}").expect("a fixed pattern"))
}

/// A rendered map's entries as text, leaving out those that rendered to null.
fn scalars(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), text(v)))
        .collect()
}

/// A value as request text: a string as it is, null as nothing, anything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Whether a template is one `{{ … }}` and nothing else.
fn whole_template(t: &str) -> bool {
    let t = t.trim();
    template_holes()
        .find(t)
        .is_some_and(|m| m.start() == 0 && m.end() == t.len())
}

/// A connection's settings as a key (they hold secrets, which are not kept twice).
fn digest(settings: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    settings.to_string().hash(&mut h);
    h.finish()
}

/// Object keys whose value rendered to null are left out (an optional input not given).
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

#[async_trait]
impl Connector for FileApp {
    fn manifest(&self) -> &AppManifest {
        &self.manifest
    }

    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError> {
        let a = self.app.action(call.action).ok_or_else(|| {
            ActionError::fatal(format!(
                "the {} app has no action `{}`",
                self.app.id, call.action
            ))
        })?;
        if self.manifest.needs_connection() && call.connection.is_none() {
            return Err(ActionError::fatal(format!(
                "this {} step has no connection",
                self.manifest.name.en
            )));
        }
        for f in &a.inputs {
            let value = call
                .input
                .get(&f.name)
                .filter(|v| !v.is_null() && v.as_str() != Some(""));
            match (value, &f.pattern) {
                (None, _) if f.required => {
                    return Err(ActionError::fatal(format!(
                        "input `{}` is required",
                        f.name
                    )));
                }
                (Some(v), Some(p)) => {
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    // Checked when the file was read.
                    let re = regex::Regex::new(p).map_err(|e| ActionError::fatal(e.to_string()))?;
                    if !re.is_match(&text) {
                        return Err(ActionError::fatal(format!(
                            "input `{}` must match `{p}` ({}): `{text}` does not",
                            f.name, f.label.en
                        )));
                    }
                }
                _ => {}
            }
        }
        let scope = self.scope(Some(a), call.input, call.connection);
        self.call(a, &scope, call.connection).await
    }

    fn check_settings(&self, settings: &Map<String, Value>) -> Result<(), String> {
        for f in &self.app.connection.fields {
            let value = settings
                .get(&f.name)
                .filter(|v| !v.is_null() && v.as_str() != Some(""));
            match (value, &f.pattern) {
                (None, _) if f.required && f.default.is_none() => {
                    return Err(format!("`{}` ({}) is required", f.name, f.label.en));
                }
                (Some(v), Some(p)) => {
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    // Checked when the file was read.
                    let re = regex::Regex::new(p).map_err(|e| e.to_string())?;
                    if !re.is_match(&text) {
                        // A secret's value is never repeated back.
                        let shown = if f.secret {
                            "the value".to_string()
                        } else {
                            format!("`{text}`")
                        };
                        return Err(format!(
                            "`{}` ({}) must match `{p}`: {shown} does not",
                            f.name, f.label.en
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn test_connection(&self, connection: &Connection) -> Result<(), ActionError> {
        let Some(test) = &self.app.connection.test else {
            return Ok(());
        };
        let a = self
            .app
            .action(test)
            .ok_or_else(|| ActionError::fatal(format!("no action `{test}`")))?;
        let scope = self.scope(Some(a), &Map::new(), Some(connection));
        self.call(a, &scope, Some(connection)).await.map(|_| ())
    }

    fn webhook_needs_connection(&self, events: &[String]) -> bool {
        self.needs_connection_for_webhooks(events)
    }

    fn verify_webhook(&self, call: &flowbot_core::WebhookCall<'_>, now: i64) -> Result<(), String> {
        self.check_signature(call, now)
    }

    fn webhook_event(&self, call: flowbot_core::WebhookCall<'_>) -> Result<Option<Value>, String> {
        if self.app.triggers.is_empty() {
            // An app without triggers of its own: the generic reading.
            return Ok(Some(
                json!({ "body": call.body, "headers": call.headers, "query": call.query }),
            ));
        }
        self.read_webhook(call)
    }

    async fn poll(
        &self,
        call: flowbot_core::PollCall<'_>,
    ) -> Result<flowbot_core::Polled, ActionError> {
        self.poll_items(call).await
    }

    async fn samples(&self, call: flowbot_core::SampleCall<'_>) -> Result<Vec<Value>, ActionError> {
        // A polling trigger's newest items, as a first poll would see them.
        let Some(t) = self.app.triggers.iter().find(|t| {
            t.polling.is_some() && (call.events.is_empty() || call.events.contains(&t.id))
        }) else {
            return Ok(Vec::new());
        };
        let polled = self
            .poll_items(flowbot_core::PollCall {
                trigger: &t.id,
                options: call.options,
                connection: call.connection,
                cursor: None,
            })
            .await?;
        Ok(polled.items.into_iter().take(5).collect())
    }

    /// An input's choices from the action its `choices_from` names, run with the step's
    /// other literal inputs.
    async fn choices(
        &self,
        connection: Option<&Connection>,
        action: &str,
        input: &str,
        values: &Map<String, Value>,
    ) -> Result<Vec<flowbot_core::manifest::Choice>, ActionError> {
        const MAX_CHOICES: usize = 1000;
        let from = self
            .app
            .action(action)
            .and_then(|a| a.inputs.iter().find(|f| f.name == input))
            .and_then(|f| f.choices_from.clone())
            .ok_or_else(|| {
                ActionError::fatal(format!(
                    "input `{input}` of {}.{action} has no choices to load",
                    self.app.id
                ))
            })?;
        let source = self
            .app
            .action(&from.action)
            .ok_or_else(|| ActionError::fatal(format!("no action `{}`", from.action)))?;
        // Templates are not values yet: only what the user typed goes to the source action.
        let given: Map<String, Value> = values
            .iter()
            .filter(|(k, v)| {
                source.inputs.iter().any(|f| &f.name == *k)
                    && !v.as_str().is_some_and(|s| s.contains("{{"))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let scope = self.scope(Some(source), &given, connection);
        let output = self.call(source, &scope, connection).await?;
        let mut s = Scope::new();
        s.insert("output".into(), output);
        let items = match self.render("the choices", &json!(from.items), &s)? {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        for item in items.into_iter().take(MAX_CHOICES) {
            let mut s = Scope::new();
            s.insert("item".into(), item);
            let value = self.render_text("a choice's value", &from.value, &s)?;
            let label = match &from.label {
                Some(l) => self.render_text("a choice's label", l, &s)?,
                None => value.clone(),
            };
            out.push(flowbot_core::manifest::Choice { value, label });
        }
        Ok(out)
    }

    fn icon(&self) -> Option<(&'static str, &[u8])> {
        self.icon
            .as_ref()
            .map(|(media, bytes)| (*media, bytes.as_slice()))
    }

    fn connects_with_oauth(&self) -> bool {
        matches!(
            self.app.connection.auth,
            Auth::OAuth2 {
                grant: format::Grant::AuthorizationCode,
                ..
            }
        )
    }

    fn oauth_authorize_url(
        &self,
        connection: &Connection,
        request: &flowbot_core::OAuthRequest<'_>,
    ) -> Result<String, String> {
        self.authorize_url(connection, request)
    }

    async fn oauth_exchange(
        &self,
        connection: &Connection,
        request: &flowbot_core::OAuthRequest<'_>,
        code: &str,
    ) -> Result<Map<String, Value>, ActionError> {
        self.exchange_code(connection, request, code).await
    }

    fn take_settings_updates(&self) -> Vec<(String, String, Value)> {
        self.tokens.take_rotated()
    }
}
