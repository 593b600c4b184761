//! The triggers of an app file: webhooks (how they are read and signed) and polling.

use flowbot_core::manifest::{FieldSpec, OutputSpec, Text};
use serde::Deserialize;
use serde_json::Value;

/// A trigger: the app calls flowbot's webhook (`webhook`), or flowbot asks the app for
/// what is new (`polling`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerDef {
    pub id: String,
    pub name: Text,
    /// Options the flow's trigger sets (given to the polling action as inputs).
    #[serde(default)]
    pub options: Vec<FieldSpec>,
    /// The obtained values a run starts with, with labels for the picker.
    #[serde(default)]
    pub outputs: Vec<OutputSpec>,
    #[serde(default)]
    pub webhook: Option<WebhookTrigger>,
    #[serde(default)]
    pub polling: Option<PollSpec>,
    /// Worked examples of a webhook trigger: a request as the app sends it and the
    /// obtained values it gives (`flowbot apps test` signs and checks each).
    #[serde(default)]
    pub examples: Vec<WebhookExample>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookExample {
    #[serde(default)]
    pub name: Option<String>,
    /// Headers besides the signature (which is computed as the app would).
    #[serde(default)]
    pub headers: serde_json::Map<String, Value>,
    /// The JSON body (a text body as a string).
    pub body: Value,
    /// The trigger's obtained values (checked when present).
    #[serde(default)]
    pub output: Option<Value>,
    /// Whether the request starts a run of this trigger (an event it does not listen to,
    /// or a check request with no event, does not).
    #[serde(default = "yes")]
    pub starts_run: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTrigger {
    /// The event name (from `webhooks.event`) this trigger listens to; without it, any.
    #[serde(default)]
    pub when: Option<String>,
    /// A template over `body`, `headers`, `query`, `event` and `object_id`: what the run
    /// gets as `trigger`; by default all five.
    #[serde(default)]
    pub output: Option<Value>,
}

/// The app's webhooks: where the event name and the object id are (templates over `body`,
/// `headers`, `query`), the signature that proves a request comes from the app, and the
/// registration steps shown to the user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhooks {
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub object_id: Option<String>,
    #[serde(default)]
    pub signature: Option<SignatureSpec>,
    #[serde(default)]
    pub setup: Option<Text>,
}

/// An HMAC over the raw body (or a payload built from it and a timestamp), compared in
/// constant time; with a timestamp, a request outside the tolerance window is a replay.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureSpec {
    /// The header holding the signature.
    pub header: String,
    pub algorithm: HmacAlgorithm,
    pub encoding: SignatureEncoding,
    /// The shared secret: a template over `connection`.
    pub secret: String,
    /// What is signed: `{body}` (the default), or with `{timestamp}` (e.g.
    /// `v0:{timestamp}:{body}`, `{timestamp}.{body}`).
    #[serde(default = "body_payload")]
    pub payload: String,
    /// Text before the signature in the header (`sha256=`, `v0=`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// The header holds `k=v` pairs separated by commas; the signature is under this key
    /// (`v1`), the timestamp under `timestamp_key` (`t`).
    #[serde(default)]
    pub signature_key: Option<String>,
    #[serde(default)]
    pub timestamp_key: Option<String>,
    /// A header holding the timestamp (seconds since the epoch).
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// Seconds a signed timestamp may differ from now (300).
    #[serde(default = "tolerance")]
    pub tolerance: u64,
}

fn body_payload() -> String {
    "{body}".into()
}
fn tolerance() -> u64 {
    300
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacAlgorithm {
    HmacSha256,
    HmacSha1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

/// Polling: an action of the app lists items; each new one starts a run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollSpec {
    /// The listing action (its inputs come from the trigger's options).
    pub action: String,
    /// Where the items are in the action's output (a template over `output`).
    pub items: String,
    /// An item's id (a template over `item`): an item seen at the cursor is not repeated.
    pub id: String,
    /// An item's position (a template over `item`, e.g. its update time): the largest seen
    /// is where the next poll starts.
    #[serde(default)]
    pub cursor: Option<String>,
    /// The action input that receives the cursor.
    #[serde(default)]
    pub cursor_input: Option<String>,
    /// A query parameter that receives the cursor (a template, e.g. over `options`).
    #[serde(default)]
    pub cursor_query: Option<String>,
}
