//! The boundary between the runner and the apps: the `Connector` trait and its errors.
//! Core only declares it; implementations live in `flowbot-connectors`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::manifest::AppManifest;

/// A configured connection: the settings a user saved for one app (credentials included).
#[derive(Clone)]
pub struct Connection {
    /// The slot or saved-connection name.
    pub name: String,
    pub app: String,
    pub settings: Map<String, Value>,
}

// Settings hold credentials: Debug shows only which settings exist.
impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.name)
            .field("app", &self.app)
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Connection {
    pub fn setting_str(&self, key: &str) -> Option<&str> {
        self.settings.get(key).and_then(Value::as_str)
    }
}

/// One call of an action.
#[derive(Debug, Clone, Copy)]
pub struct ActionCall<'a> {
    pub action: &'a str,
    /// The rendered input, a JSON object.
    pub input: &'a Map<String, Value>,
    pub connection: Option<&'a Connection>,
}

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Network trouble, timeouts, 429, 5xx, lock contention: try again later.
    Retryable,
    /// Bad data or configuration: retrying would fail the same way.
    Fatal,
}

/// What went wrong in an action, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ActionError {
    pub class: ErrorClass,
    pub message: String,
    /// The remote side's error code (e.g. Salesforce's `REQUIRED_FIELD_MISSING`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The fields the remote side blamed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// How long the remote side asked us to wait.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub retry_after: Option<Duration>,
    /// Anything else worth showing (e.g. the HTTP status and body). Boxed: errors travel
    /// in `Result`s and most carry none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<Value>>,
}

impl ActionError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Retryable, message)
    }

    pub fn fatal(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Fatal, message)
    }

    fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        ActionError {
            class,
            message: message.into(),
            code: None,
            fields: Vec::new(),
            retry_after: None,
            details: None,
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = fields;
        self
    }

    pub fn with_retry_after(mut self, d: Option<Duration>) -> Self {
        self.retry_after = d;
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Retryable
    }
}

mod opt_secs {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

/// An OAuth connect under way: where the approval page sends the browser back, the state
/// that ties the answer to this attempt, and the PKCE pair.
#[derive(Debug, Clone, Copy)]
pub struct OAuthRequest<'a> {
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub code_challenge: &'a str,
    pub code_verifier: &'a str,
}

/// What a trigger sample is asked for: the trigger's events and options, and its
/// connection.
#[derive(Debug, Clone, Copy)]
pub struct SampleCall<'a> {
    pub events: &'a [String],
    pub options: &'a Map<String, Value>,
    pub connection: Option<&'a Connection>,
}

/// One poll of a polling trigger.
#[derive(Debug, Clone, Copy)]
pub struct PollCall<'a> {
    /// The trigger (event) id.
    pub trigger: &'a str,
    pub options: &'a Map<String, Value>,
    pub connection: Option<&'a Connection>,
    /// Where the previous poll stopped; `None` (or empty) the first time.
    pub cursor: Option<&'a str>,
}

/// What a poll found: new items (each becomes an event) and where to continue next time.
#[derive(Debug, Clone, Default)]
pub struct Polled {
    pub items: Vec<Value>,
    pub cursor: Option<String>,
}

/// A request that reached a flow's webhook URL, for the trigger's app to interpret.
#[derive(Debug, Clone, Copy)]
pub struct WebhookCall<'a> {
    /// The flow's trigger events.
    pub events: &'a [String],
    pub options: &'a Map<String, Value>,
    /// Header names in lower case.
    pub headers: &'a Map<String, Value>,
    pub query: &'a Map<String, Value>,
    pub body: &'a Value,
    /// The body exactly as it arrived: signatures are computed over it.
    pub raw: &'a [u8],
    /// The trigger's connection, when the app asks for it
    /// ([`Connector::webhook_needs_connection`]): e.g. the secret a signature is checked with.
    pub connection: Option<&'a Connection>,
}

/// An app's implementation.
#[async_trait]
pub trait Connector: Send + Sync {
    fn manifest(&self) -> &AppManifest;

    /// Run one action. The runner bounds the call with the step's timeout; connectors
    /// classify their own errors as retryable or fatal.
    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError>;

    /// Fetch what is new since `cursor`, for triggers whose manifest says `polling`.
    async fn poll(&self, call: PollCall<'_>) -> Result<Polled, ActionError> {
        Err(ActionError::fatal(format!(
            "app `{}` cannot poll for `{}`",
            self.manifest().id,
            call.trigger
        )))
    }

    /// Turn a webhook request into the trigger's obtained values: `Ok(None)` when the
    /// request is not for this flow's events (recorded, no run), `Err` with a message the
    /// user can act on when it cannot be read. By default, as the generic webhook: the
    /// request's body, headers and query.
    fn webhook_event(&self, call: WebhookCall<'_>) -> Result<Option<Value>, String> {
        Ok(Some(serde_json::json!({
            "body": call.body,
            "headers": call.headers,
            "query": call.query,
        })))
    }

    /// Whether reading a webhook for these trigger events needs the trigger's connection
    /// (ingress then loads it; other webhooks pay nothing).
    fn webhook_needs_connection(&self, _events: &[String]) -> bool {
        false
    }

    /// Whether the request really comes from the app (a signature over the raw body, a
    /// timestamp within the tolerance window), checked before anything is stored as an
    /// event. `now` is the server's clock in seconds since the epoch. `Err` says why not;
    /// the request is refused (401) and recorded as rejected.
    fn verify_webhook(&self, _call: &WebhookCall<'_>, _now: i64) -> Result<(), String> {
        Ok(())
    }

    /// Settings the app changed on its own since last asked — e.g. a refresh token that
    /// Salesforce rotated, which must be kept or the connection stops working — as
    /// (connection name, setting, new value). The worker saves them into the connection.
    fn take_settings_updates(&self) -> Vec<(String, String, Value)> {
        Vec::new()
    }

    /// Whether connections of this app are connected through OAuth (authorization code with
    /// PKCE): the server then offers "connect", and calls the two hooks below.
    fn connects_with_oauth(&self) -> bool {
        false
    }

    /// The approval page to send the browser to for `connection`.
    fn oauth_authorize_url(
        &self,
        _connection: &Connection,
        _request: &OAuthRequest<'_>,
    ) -> Result<String, String> {
        Err(format!(
            "app `{}` does not connect through OAuth",
            self.manifest().id
        ))
    }

    /// Trade the code the approval page sent back for the settings that let the connection
    /// sign in from now on (e.g. a refresh token); they are merged into the connection.
    async fn oauth_exchange(
        &self,
        _connection: &Connection,
        _request: &OAuthRequest<'_>,
        _code: &str,
    ) -> Result<Map<String, Value>, ActionError> {
        Err(ActionError::fatal(format!(
            "app `{}` does not connect through OAuth",
            self.manifest().id
        )))
    }

    /// Recent objects of the trigger's app, newest first, each as the trigger would give it
    /// to a flow, to use as the trigger's sample in the editor. Apps that cannot say offer
    /// none (a captured webhook or a typed sample serves instead).
    async fn samples(&self, _call: SampleCall<'_>) -> Result<Vec<Value>, ActionError> {
        Ok(Vec::new())
    }

    /// Settings that can never work, refused when a connection is saved (not at the first
    /// run): the message names the setting and what to change.
    fn check_settings(&self, _settings: &Map<String, Value>) -> Result<(), String> {
        Ok(())
    }

    /// A cheap authenticated call proving the connection works.
    async fn test_connection(&self, _connection: &Connection) -> Result<(), ActionError> {
        Ok(())
    }

    /// Names the editor offers in lists. Without `object`: the app's objects; with one: its
    /// fields. Each entry is `{name, label}`, fields also `type` and `length` where the app
    /// says. Apps without a schema offer none.
    async fn describe(
        &self,
        _connection: Option<&Connection>,
        _object: Option<&str>,
    ) -> Result<Value, ActionError> {
        Ok(Value::Array(Vec::new()))
    }

    /// The choices of an input whose manifest says `choices_from`, given the step's other
    /// inputs (literal values). Apps without such inputs offer none.
    async fn choices(
        &self,
        _connection: Option<&Connection>,
        _action: &str,
        _input: &str,
        _values: &Map<String, Value>,
    ) -> Result<Vec<crate::manifest::Choice>, ActionError> {
        Ok(Vec::new())
    }

    /// The app's icon (media type, bytes), when it has one.
    fn icon(&self) -> Option<(&'static str, &[u8])> {
        None
    }

    /// The API allowance the app last reported, per connection (for metrics and budgets).
    fn api_usage(&self) -> Vec<ApiUsage> {
        Vec::new()
    }
}

/// An app file that could not be loaded: where, and every problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BrokenFile {
    pub file: String,
    pub problems: Vec<crate::Diagnostic>,
}

/// An app's own report of how much of its API allowance a connection has used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUsage {
    pub connection: String,
    pub used: u64,
    pub limit: u64,
}

/// The installed apps, by id: those the process started with, and those added while it
/// runs (app files saved from the web UI), which every clone of this `Apps` sees at once.
#[derive(Clone, Default)]
pub struct Apps {
    by_id: BTreeMap<String, Arc<dyn Connector>>,
    /// App files that could not be loaded, to show (they never stop the process).
    broken: Vec<BrokenFile>,
    added: Arc<std::sync::RwLock<BTreeMap<String, &'static Arc<dyn Connector>>>>,
}

impl Apps {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the trigger is one its app polls for (rather than one that receives webhooks).
    pub fn polls(&self, trigger: &crate::model::Trigger) -> bool {
        self.manifest(&trigger.app).is_some_and(|m| {
            m.triggers
                .iter()
                .any(|t| t.polling && (trigger.events.is_empty() || trigger.events.contains(&t.id)))
        })
    }

    pub fn add(&mut self, c: Arc<dyn Connector>) {
        self.by_id.insert(c.manifest().id.clone(), c);
    }

    /// Add (or replace) an app while the process runs; every clone sees it. Refused for the
    /// id of an app the process started with. An added app lives as long as the process:
    /// it is leaked, so that lookups keep returning plain references (apps are added by
    /// hand, a few times in a process's life).
    pub fn add_running(&self, c: Arc<dyn Connector>) -> Result<(), String> {
        let id = c.manifest().id.clone();
        if self.by_id.contains_key(&id) {
            return Err(format!(
                "an app `{id}` is built in or loaded from the apps directory"
            ));
        }
        let leaked: &'static Arc<dyn Connector> = Box::leak(Box::new(c));
        self.added.write().expect("apps lock").insert(id, leaked);
        Ok(())
    }

    /// Note an app file that could not be loaded.
    pub fn add_broken(&mut self, file: BrokenFile) {
        self.broken.push(file);
    }

    /// The app files that could not be loaded.
    pub fn broken(&self) -> &[BrokenFile] {
        &self.broken
    }

    /// Whether `app` was added while the process runs.
    pub fn is_added(&self, app: &str) -> bool {
        self.added.read().expect("apps lock").contains_key(app)
    }

    pub fn get(&self, app: &str) -> Option<&Arc<dyn Connector>> {
        self.by_id
            .get(app)
            .or_else(|| self.added.read().expect("apps lock").get(app).copied())
    }

    pub fn manifest(&self, app: &str) -> Option<&AppManifest> {
        self.get(app).map(|c| c.manifest())
    }

    pub fn manifests(&self) -> impl Iterator<Item = &AppManifest> {
        let added: Vec<&'static Arc<dyn Connector>> = self
            .added
            .read()
            .expect("apps lock")
            .values()
            .copied()
            .collect();
        self.by_id
            .values()
            .map(|c| c.manifest())
            .chain(added.into_iter().map(|c| c.manifest()))
    }

    pub fn ids(&self) -> Vec<&str> {
        let added: Vec<&'static str> = self
            .added
            .read()
            .expect("apps lock")
            .values()
            .map(|c| c.manifest().id.as_str())
            .collect();
        self.by_id.keys().map(String::as_str).chain(added).collect()
    }

    /// Every app's API usage reports, with the app's id.
    pub fn api_usage(&self) -> Vec<(String, ApiUsage)> {
        self.all()
            .into_iter()
            .flat_map(|(id, c)| c.api_usage().into_iter().map(move |u| (id.clone(), u)))
            .collect()
    }

    /// Every app, with its id (those added while running included).
    pub fn all(&self) -> Vec<(String, &Arc<dyn Connector>)> {
        let added: Vec<(String, &'static Arc<dyn Connector>)> = self
            .added
            .read()
            .expect("apps lock")
            .iter()
            .map(|(id, c)| (id.clone(), *c))
            .collect();
        self.by_id
            .iter()
            .map(|(id, c)| (id.clone(), c))
            .chain(added)
            .collect()
    }
}
