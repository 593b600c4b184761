//! The app format: one YAML file describes an app — its connection (fields, base URL,
//! auth), its actions (typed inputs, the HTTP request as templates, the output, error
//! mapping) — and is read here with every problem located as `FILE:LINE:COL`, as flow
//! files are. `docs/app-format.md` is the user's description of every key.

use std::collections::BTreeMap;

use flowbot_core::diag::Positions;
use flowbot_core::manifest::{
    ActionSpec, AppManifest, FieldKind, FieldSpec, OutputSpec, Text, TriggerSpec,
};
use flowbot_core::Diagnostic;
use serde::Deserialize;
use serde_json::Value;

mod auth;
mod examples;
mod triggers;

pub use auth::*;
pub use examples::*;
pub use triggers::*;

/// The version of the format this build reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppFile {
    /// Always 1 for now: a later format says so here.
    pub flowbot_app: u32,
    pub id: String,
    pub name: Text,
    #[serde(default)]
    pub description: Text,
    /// Where the catalogue lists it (`crm`, `chat`, `ec`, `spreadsheet`, …).
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub connection: ConnectionSpec,
    #[serde(default)]
    pub actions: Vec<ActionDef>,
    #[serde(default)]
    pub triggers: Vec<TriggerDef>,
    /// How the app's webhooks are read and checked (for webhook triggers).
    #[serde(default)]
    pub webhooks: Option<Webhooks>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    /// What a user fills in; a secret field is sealed, never shown again, never logged.
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
    /// Prefix of every action's path, a template over `connection` (e.g.
    /// `https://{{ connection.subdomain }}.example.com/api`). An action's path may instead be
    /// a whole URL.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub auth: Auth,
    /// Other ways to sign in, each used instead of `auth` when its connection field is
    /// filled (e.g. a private token beside OAuth): field name → auth.
    #[serde(default)]
    pub auth_by_field: BTreeMap<String, Auth>,
    /// The action the connection's test button runs (a cheap read).
    #[serde(default)]
    pub test: Option<String>,
    /// At most `requests` calls every `per` for one connection, in this process: a call
    /// beyond waits its turn (the step's timeout still bounds it).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Headers every request carries: name → template over `connection` (one that renders
    /// empty or null is not sent), for apps that sign in with headers of their own.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Connection values for the actions' examples and the sandbox (no real credentials).
    #[serde(default)]
    pub example: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionDef {
    pub id: String,
    pub name: Text,
    #[serde(default)]
    pub description: Text,
    #[serde(default)]
    pub inputs: Vec<FieldSpec>,
    pub request: RequestSpec,
    /// A template over `input` and `response` (`status`, `headers`, `body`) giving the
    /// obtained values; without it, the response body.
    #[serde(default)]
    pub output: Option<Value>,
    /// The obtained values the editor's picker offers, with their labels.
    #[serde(default)]
    pub outputs: Vec<OutputSpec>,
    /// Safe to repeat: a read, an update, an upsert. A create or a sent message is not, and
    /// the runner re-decides such a step left in doubt by a crash instead of repeating it.
    #[serde(default)]
    pub idempotent: bool,
    /// Changes something in the app: the editor asks before testing it.
    #[serde(default)]
    pub writes: bool,
    #[serde(default)]
    pub errors: ErrorSpec,
    /// A list action whose results come in pages: all pages are read (up to `max_pages`).
    #[serde(default)]
    pub paginate: Option<Paginate>,
    /// Worked examples: the exact request for an input, the vendor's answer, the output.
    #[serde(default)]
    pub examples: Vec<ExampleDef>,
}

/// How a list action's pages are asked for. Its output template then sees `items` (every
/// page's items), `response` (the last page) and `truncated` (pages were left unread).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paginate {
    pub kind: PageKind,
    /// Where a page's items are (a template over `response`).
    pub items: String,
    /// The query parameter of the page number, the offset or the cursor.
    #[serde(default)]
    pub param: Option<String>,
    /// The query parameter of the page size, and the size asked for; a page with fewer
    /// items is the last.
    #[serde(default)]
    pub size_param: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    /// The first page's number (`page`).
    #[serde(default = "first_page")]
    pub start: u64,
    /// The next cursor, or the next page's whole URL (`cursor`): a template over
    /// `response`; empty or null on the last page.
    #[serde(default)]
    pub next: Option<String>,
    /// At most this many requests (10; up to 100).
    #[serde(default = "max_pages")]
    pub max_pages: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageKind {
    /// `?page=1,2,3…`
    Page,
    /// `?offset=0,100,200…`
    Offset,
    /// `?cursor=<what the last page said>`, or the URL it gave.
    Cursor,
    /// The `Link: <…>; rel="next"` header.
    Link,
}

fn first_page() -> u64 {
    1
}
fn max_pages() -> u32 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD`, or a template giving one (an input
    /// that chooses the method).
    pub method: String,
    /// Appended to the connection's base URL, or a whole URL; a template.
    pub path: String,
    /// Name → template (one that renders to null is left out), or one template giving the
    /// whole map (an input of kind `map`).
    #[serde(default)]
    pub query: Value,
    /// As `query`.
    #[serde(default)]
    pub headers: Value,
    /// How long to wait for the answer (a template; `30s` by default).
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub body: Option<BodySpec>,
}

/// The methods a request may use.
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_reqwest(self) -> reqwest::Method {
        match self {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        }
    }
}

/// The request body: JSON, or form fields. Templates; an object key that renders to null
/// is left out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodySpec {
    #[serde(default)]
    pub json: Option<Value>,
    #[serde(default)]
    pub form: Option<BTreeMap<String, Value>>,
    /// `multipart/form-data`: each field a text part.
    #[serde(default)]
    pub multipart: Option<BTreeMap<String, Value>>,
    /// A body chosen at run time: `value` sent as `format` renders (`json` or `form`).
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub format: Option<String>,
}

impl BodySpec {
    /// How many of `json`, `form` and `multipart` are given (exactly one must be).
    pub fn kinds(&self) -> usize {
        usize::from(self.json.is_some())
            + usize::from(self.form.is_some())
            + usize::from(self.multipart.is_some())
            + usize::from(self.value.is_some())
    }
}

/// Reading a refusal: where its message and code are, and which statuses are worth
/// trying again (`Retry-After` is honoured).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorSpec {
    /// A template over `response`; without it, the start of the body.
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default = "retry_statuses")]
    pub retry_statuses: Vec<u16>,
    /// Whether an answer outside 2xx fails the step (a template; true by default). When it
    /// renders false, such an answer is read by the output like any other.
    #[serde(default)]
    pub fail: Option<String>,
}

impl Default for ErrorSpec {
    fn default() -> Self {
        ErrorSpec {
            message: None,
            code: None,
            retry_statuses: retry_statuses(),
            fail: None,
        }
    }
}

fn retry_statuses() -> Vec<u16> {
    vec![408, 425, 429, 500, 502, 503, 504]
}

impl AppFile {
    /// The manifest the validator, the editor and the catalogue read.
    pub fn manifest(&self) -> AppManifest {
        AppManifest {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            connection: self.connection.fields.clone(),
            triggers: self
                .triggers
                .iter()
                .map(|t| {
                    let mut options = t.options.clone();
                    // Every polling trigger has its interval (the worker reads it).
                    if t.polling.is_some() && !options.iter().any(|o| o.name == "interval") {
                        options.push(
                            FieldSpec::new(
                                "interval",
                                FieldKind::Text,
                                Text::new("Check every", "確認の間隔"),
                            )
                            .default_value(Value::String("5m".into()))
                            .help("e.g. 1m, 5m, 1h", "例: 1m, 5m, 1h"),
                        );
                    }
                    TriggerSpec {
                        id: t.id.clone(),
                        name: t.name.clone(),
                        options,
                        outputs: t.outputs.clone(),
                        polling: t.polling.is_some(),
                        setup: t
                            .webhook
                            .as_ref()
                            .and(self.webhooks.as_ref())
                            .and_then(|w| w.setup.clone()),
                    }
                })
                .collect(),
            actions: self
                .actions
                .iter()
                .map(|a| ActionSpec {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    description: a.description.clone(),
                    inputs: a.inputs.clone(),
                    outputs: a.outputs.clone(),
                    idempotent: a.idempotent,
                    writes: a.writes,
                    usage: false,
                })
                .collect(),
        }
    }

    pub fn trigger(&self, id: &str) -> Option<&TriggerDef> {
        self.triggers.iter().find(|t| t.id == id)
    }

    pub fn action(&self, id: &str) -> Option<&ActionDef> {
        self.actions.iter().find(|a| a.id == id)
    }
}

/// Read an app file: the app, or every problem found, each with its line and column.
pub fn parse(source: &str) -> Result<AppFile, Vec<Diagnostic>> {
    let positions = Positions::index(source);
    let at = |path: &str, message: String| {
        let (line, column) = positions.value(path);
        Diagnostic {
            line,
            column,
            path: path.to_string(),
            message,
        }
    };
    let de = serde_yaml::Deserializer::from_str(source);
    let app: AppFile = match serde_path_to_error::deserialize(de) {
        Ok(app) => app,
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let inner = e.into_inner();
            let message = inner.to_string();
            // An unknown key is shown where the key is; a wrong value where the value is;
            // serde_yaml knows where a syntax error is.
            let unknown = message
                .split("unknown field `")
                .nth(1)
                .and_then(|rest| rest.split('`').next())
                .map(|key| {
                    // The path may already end at the unknown key.
                    if path == key || path.ends_with(&format!(".{key}")) {
                        path.clone()
                    } else {
                        flowbot_core::diag::join_key(&path, key)
                    }
                });
            let (line, column) = match (unknown, inner.location()) {
                (Some(key), _) => positions.key(&key),
                (None, Some(l)) if path.is_empty() => (l.line(), l.column()),
                _ => positions.value(&path),
            };
            // serde_yaml appends " at line L column C"; the diagnostic says where already.
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_string();
            return Err(vec![Diagnostic {
                line,
                column,
                path,
                message,
            }]);
        }
    };
    let mut problems = Vec::new();
    if app.flowbot_app != FORMAT_VERSION {
        problems.push(at(
            "flowbot_app",
            format!(
                "this flowbot reads app format {FORMAT_VERSION}, not {}",
                app.flowbot_app
            ),
        ));
    }
    if !is_id(&app.id) {
        problems.push(at(
            "id",
            format!(
                "`{}` is not an app id: lower-case letters, digits and _, starting with a letter",
                app.id
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, a) in app.actions.iter().enumerate() {
        let path = format!("actions[{i}]");
        if !is_id(&a.id) {
            problems.push(at(
                &format!("{path}.id"),
                format!(
                    "`{}` is not an action id: lower-case letters, digits and _",
                    a.id
                ),
            ));
        }
        if !seen.insert(a.id.as_str()) {
            problems.push(at(
                &format!("{path}.id"),
                format!("action `{}` is defined twice", a.id),
            ));
        }
        let whole_url = a.request.path.starts_with("http") || a.request.path.starts_with("{{");
        if app.connection.base_url.is_none() && !whole_url {
            problems.push(at(
                &format!("{path}.request.path"),
                "the path needs `connection.base_url`, or give a whole URL (https://… or a template that is one)".into(),
            ));
        }
        check_fields(&a.inputs, &format!("{path}.inputs"), &at, &mut problems);
        if let Some(p) = &a.paginate {
            let needs_param =
                matches!(p.kind, PageKind::Page | PageKind::Offset | PageKind::Cursor);
            if needs_param && p.param.is_none() {
                problems.push(at(
                    &format!("{path}.paginate"),
                    "this kind of paging needs `param`: the query parameter that moves to the next page".into(),
                ));
            }
            if p.kind == PageKind::Cursor && p.next.is_none() {
                problems.push(at(
                    &format!("{path}.paginate"),
                    "cursor paging needs `next`: where the next cursor is in a page".into(),
                ));
            }
            if p.size_param.is_some() != p.size.is_some() {
                problems.push(at(
                    &format!("{path}.paginate"),
                    "`size_param` and `size` go together".into(),
                ));
            }
            if !(1..=100).contains(&p.max_pages) {
                problems.push(at(
                    &format!("{path}.paginate.max_pages"),
                    "`max_pages` is from 1 to 100".into(),
                ));
            }
        }
        if let Some(b) = &a.request.body {
            if b.kinds() != 1 {
                problems.push(at(
                    &format!("{path}.request.body"),
                    "give the body as `json`, `form`, `multipart` or `value` (one of them)".into(),
                ));
            }
        }
        let method = a.request.method.trim();
        if !method.contains("{{") && !METHODS.contains(&method) {
            problems.push(at(
                &format!("{path}.request.method"),
                format!("`{method}` is not an HTTP method ({})", METHODS.join(", ")),
            ));
        }
        if a.request.body.is_some() && matches!(method, "GET" | "HEAD") {
            problems.push(at(
                &format!("{path}.request.body"),
                "a GET request has no body: use `query`".into(),
            ));
        }
    }
    for (i, a) in app.actions.iter().enumerate() {
        for (j, e) in a.examples.iter().enumerate() {
            for name in e.input.keys() {
                if !a.inputs.iter().any(|f| &f.name == name) {
                    problems.push(at(
                        &format!("actions[{i}].examples[{j}].input.{name}"),
                        format!("`{name}` is not an input of `{}`", a.id),
                    ));
                }
            }
        }
        for (j, f) in a.inputs.iter().enumerate() {
            if let Some(from) = &f.choices_from {
                if app.action(&from.action).is_none() {
                    problems.push(at(
                        &format!("actions[{i}].inputs[{j}].choices_from.action"),
                        format!("no action `{}` to load the choices with", from.action),
                    ));
                }
            }
        }
    }
    check_fields(
        &app.connection.fields,
        "connection.fields",
        &at,
        &mut problems,
    );
    if let Auth::OAuth2 {
        grant: Grant::AuthorizationCode,
        authorize_url: None,
        ..
    } = &app.connection.auth
    {
        problems.push(at(
            "connection.auth",
            "the authorization-code grant needs `authorize_url` (the app's approval page)".into(),
        ));
    }
    for (field, auth) in &app.connection.auth_by_field {
        let path = format!("connection.auth_by_field.{field}");
        if !app.connection.fields.iter().any(|f| &f.name == field) {
            problems.push(at(
                &path,
                format!("`{field}` is not a connection field: name the field whose value chooses this sign-in"),
            ));
        }
        if matches!(
            auth,
            Auth::OAuth2 {
                grant: Grant::AuthorizationCode,
                ..
            }
        ) {
            problems.push(at(
                &path,
                "Connect goes through `auth`: the authorization-code grant belongs there, not here"
                    .into(),
            ));
        }
    }
    if let Auth::TokenExchange { request, .. } = &app.connection.auth {
        if let Some(b) = &request.body {
            if b.kinds() != 1 {
                problems.push(at(
                    "connection.auth.request.body",
                    "give the body as `json`, `form`, `multipart` or `value` (one of them)".into(),
                ));
            }
        }
    }
    let mut trigger_ids = std::collections::HashSet::new();
    for (i, t) in app.triggers.iter().enumerate() {
        let path = format!("triggers[{i}]");
        if !is_id(&t.id) || !trigger_ids.insert(t.id.as_str()) {
            problems.push(at(
                &format!("{path}.id"),
                format!(
                    "`{}` is not a new trigger id: lower-case letters, digits and _, once",
                    t.id
                ),
            ));
        }
        if t.polling.is_some() && !t.examples.is_empty() {
            problems.push(at(
                &format!("{path}.examples"),
                "examples are for webhook triggers: a polling trigger is checked through its action's examples".into(),
            ));
        }
        match (&t.webhook, &t.polling) {
            (Some(_), Some(_)) | (None, None) => problems.push(at(
                &path,
                "a trigger is either `webhook` or `polling` (one of them)".into(),
            )),
            (None, Some(p)) => {
                if app.action(&p.action).is_none() {
                    let ids: Vec<&str> = app.actions.iter().map(|a| a.id.as_str()).collect();
                    problems.push(at(
                        &format!("{path}.polling.action"),
                        format!(
                            "no action `{}` to poll with{}",
                            p.action,
                            flowbot_core::diag::did_you_mean(&p.action, &ids)
                        ),
                    ));
                }
                if p.cursor.is_some() != (p.cursor_input.is_some() || p.cursor_query.is_some()) {
                    problems.push(at(
                        &format!("{path}.polling"),
                        "`cursor` goes with `cursor_input` or `cursor_query`: where the position is, and where it is sent".into(),
                    ));
                }
            }
            (Some(w), None) => {
                if w.when.is_some() && app.webhooks.as_ref().is_none_or(|h| h.event.is_none()) {
                    problems.push(at(
                        &format!("{path}.webhook.when"),
                        "`when` needs `webhooks.event`: where the event name is".into(),
                    ));
                }
            }
        }
        check_fields(&t.options, &format!("{path}.options"), &at, &mut problems);
    }
    if let Some(sig) = app.webhooks.as_ref().and_then(|w| w.signature.as_ref()) {
        let timed = sig.timestamp_header.is_some() || sig.timestamp_key.is_some();
        if sig.payload.contains("{timestamp}") != timed {
            problems.push(at(
                "webhooks.signature.payload",
                "a payload with `{timestamp}` needs `timestamp_header` or `timestamp_key`, and they need it".into(),
            ));
        }
        if !sig.payload.contains("{body}") {
            problems.push(at(
                "webhooks.signature.payload",
                "the signed payload must contain `{body}`".into(),
            ));
        }
    }
    if let Some(r) = &app.connection.rate_limit {
        if r.requests == 0 || r.window().is_none_or(|w| w.is_zero()) {
            problems.push(at(
                "connection.rate_limit",
                "a rate limit is at least 1 request per a duration such as `1s` or `1m`".into(),
            ));
        }
    }
    if let Some(test) = &app.connection.test {
        if app.action(test).is_none() {
            let ids: Vec<&str> = app.actions.iter().map(|a| a.id.as_str()).collect();
            problems.push(at(
                "connection.test",
                format!(
                    "no action `{test}` to test the connection with{}",
                    flowbot_core::diag::did_you_mean(test, &ids)
                ),
            ));
        }
    }
    problems.sort_by_key(|d| (d.line, d.column));
    if problems.is_empty() {
        Ok(app)
    } else {
        Err(problems)
    }
}

fn check_fields(
    fields: &[FieldSpec],
    path: &str,
    at: &impl Fn(&str, String) -> Diagnostic,
    problems: &mut Vec<Diagnostic>,
) {
    let mut names = std::collections::HashSet::new();
    for (i, f) in fields.iter().enumerate() {
        if !names.insert(f.name.as_str()) {
            problems.push(at(
                &format!("{path}[{i}].name"),
                format!("field `{}` is defined twice", f.name),
            ));
        }
        if let Some(p) = &f.pattern {
            if let Err(e) = regex::Regex::new(p) {
                problems.push(at(
                    &format!("{path}[{i}].pattern"),
                    format!("`{p}` is not a regular expression: {e}"),
                ));
            }
        }
        if f.kind == FieldKind::Select && f.choices.is_empty() && f.choices_from.is_none() {
            problems.push(at(
                &format!("{path}[{i}].choices"),
                "a `select` needs its `choices`".into(),
            ));
        }
    }
}

fn is_id(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
