//! What an app offers: its connection fields, triggers and actions with typed inputs and
//! outputs. Manifests drive validation, the CLI catalogue and (later) the editor's forms, so
//! they are serialisable: the UI reads them as JSON.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Text shown to users, in both languages the product speaks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Text {
    pub en: String,
    pub ja: String,
}

impl Text {
    pub fn new(en: &str, ja: &str) -> Text {
        Text {
            en: en.to_string(),
            ja: ja.to_string(),
        }
    }

    /// The text in a page's language (`ja`, else English).
    pub fn get(&self, lang: &str) -> &str {
        if lang == "ja" {
            &self.ja
        } else {
            &self.en
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AppManifest {
    pub id: String,
    pub name: Text,
    pub description: Text,
    /// Fields of a connection to this app; empty when the app needs none.
    pub connection: Vec<FieldSpec>,
    pub triggers: Vec<TriggerSpec>,
    pub actions: Vec<ActionSpec>,
}

impl AppManifest {
    pub fn action(&self, id: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.id == id)
    }

    pub fn trigger(&self, id: &str) -> Option<&TriggerSpec> {
        self.triggers.iter().find(|t| t.id == id)
    }

    pub fn needs_connection(&self) -> bool {
        !self.connection.is_empty()
    }
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TriggerSpec {
    pub id: String,
    pub name: Text,
    pub options: Vec<FieldSpec>,
    /// What the trigger makes available as `trigger.*`.
    pub outputs: Vec<OutputSpec>,
    /// The workers poll the app for this trigger (every `interval` option) instead of
    /// waiting for it to call.
    #[serde(default)]
    pub polling: bool,
    /// How to make the app call the flow's webhook (where to register its URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<Text>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ActionSpec {
    pub id: String,
    pub name: Text,
    pub description: Text,
    pub inputs: Vec<FieldSpec>,
    pub outputs: Vec<OutputSpec>,
    /// Safe to repeat (reads, updates, upserts, deletes). A non-idempotent action (a
    /// create, a sent message) left in doubt by a crash makes its run start over, so the
    /// reads before it can see whether the lost call happened.
    pub idempotent: bool,
    /// Changes something in the app; the editor asks before testing it.
    pub writes: bool,
    /// The output's `usage` reports a language model's tokens (`prompt_tokens`,
    /// `completion_tokens`), which the engine counts in its metrics for any app that says so.
    pub usage: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    pub label: Text,
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
    /// Never shown after saving, never logged, redacted in run history.
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub help: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The allowed values of a `select`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// The most items a `list` may hold in one call (e.g. a collection call's records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<usize>,
    /// A regular expression a text value must match (e.g. `^[0-9]+$` for an id that goes
    /// into a URL path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Choices loaded from another action of the app (e.g. a kintone app's fields), offered
    /// as suggestions in the editor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices_from: Option<ChoicesFrom>,
}

/// Where an input's choices come from: an action of the same app, run with the step's
/// other inputs, its items, and each item's value and label (templates over `output` and
/// `item`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ChoicesFrom {
    pub action: String,
    pub items: String,
    pub value: String,
    #[serde(default)]
    pub label: Option<String>,
}

/// One choice offered for an input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Choice {
    pub value: String,
    pub label: String,
}

impl FieldSpec {
    pub fn new(name: &str, kind: FieldKind, label: Text) -> FieldSpec {
        FieldSpec {
            name: name.to_string(),
            label,
            kind,
            required: false,
            secret: false,
            help: Text::new("", ""),
            default: None,
            choices: Vec::new(),
            max_items: None,
            pattern: None,
            choices_from: None,
        }
    }

    pub fn max_items(mut self, n: usize) -> Self {
        self.max_items = Some(n);
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    pub fn help(mut self, en: &str, ja: &str) -> Self {
        self.help = Text::new(en, ja);
        self
    }

    pub fn default_value(mut self, v: Value) -> Self {
        self.default = Some(v);
        self
    }

    pub fn choices(mut self, choices: &[&str]) -> Self {
        self.choices = choices.iter().map(|c| c.to_string()).collect();
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    Number,
    Integer,
    Boolean,
    Select,
    /// key → value pairs.
    Map,
    List,
    /// Any JSON value.
    Json,
    /// HTTP headers: a map whose sensitive entries are redacted in run history.
    Headers,
    /// Program text: never rendered as a template (code often holds `{{`, and code built
    /// from data would run what the data says); the editor shows a code box.
    Code,
}

impl FieldKind {
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Number => "number",
            FieldKind::Integer => "integer",
            FieldKind::Boolean => "boolean",
            FieldKind::Select => "select",
            FieldKind::Map => "map",
            FieldKind::List => "list",
            FieldKind::Json => "json",
            FieldKind::Headers => "headers",
            FieldKind::Code => "code",
        }
    }

    /// Whether a literal (non-template) value fits this kind. Numbers given as text are
    /// accepted where numbers are expected, as elsewhere in flowbot.
    pub fn accepts(self, v: &Value) -> bool {
        match self {
            FieldKind::Text | FieldKind::Select => {
                matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
            }
            FieldKind::Number => crate::condition::as_number(v).is_some(),
            FieldKind::Integer => crate::condition::as_number(v).is_some_and(|f| f.fract() == 0.0),
            FieldKind::Boolean => matches!(v, Value::Bool(_)),
            FieldKind::Map | FieldKind::Headers => v.is_object(),
            FieldKind::List => v.is_array(),
            FieldKind::Json => true,
            FieldKind::Code => v.is_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub name: String,
    pub label: Text,
    pub kind: FieldKind,
}

impl OutputSpec {
    pub fn new(name: &str, kind: FieldKind, label: Text) -> OutputSpec {
        OutputSpec {
            name: name.to_string(),
            label,
            kind,
        }
    }
}

/// Header names whose values are credentials; any header whose name contains one of
/// [`SENSITIVE_HEADER_WORDS`] is treated the same.
pub const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-chatworktoken",
];

/// Words that make a header name a credential's, whatever else it says
/// (`X-Hub-Signature-256`, `X-Shopify-Hmac-Sha256`, `X-Webhook-Token` …).
pub const SENSITIVE_HEADER_WORDS: &[&str] = &[
    "token",
    "secret",
    "signature",
    "password",
    "auth",
    "key",
    "hmac",
];

pub const REDACTED: &str = "[redacted]";

/// Whether a header's value is a credential that must never be stored or shown.
pub fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SENSITIVE_HEADERS.contains(&name.as_str())
        || SENSITIVE_HEADER_WORDS.iter().any(|w| name.contains(w))
}

/// The input as it may be recorded: secret inputs and credential headers replaced.
pub fn redact_input(spec: &ActionSpec, input: &Value) -> Value {
    let mut out = input.clone();
    let Value::Object(map) = &mut out else {
        return out;
    };
    for field in &spec.inputs {
        let Some(v) = map.get_mut(&field.name) else {
            continue;
        };
        if field.secret {
            *v = Value::String(REDACTED.to_string());
        } else if field.kind == FieldKind::Headers {
            redact_headers(v);
        }
    }
    out
}

/// Replace the values of credential headers in a header map, whatever their case.
pub fn redact_headers(headers: &mut Value) {
    if let Value::Object(h) = headers {
        for (name, value) in h.iter_mut() {
            if is_credential_header(name) {
                *value = Value::String(REDACTED.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_and_credential_headers_are_redacted() {
        let spec = ActionSpec {
            id: "x".into(),
            name: Text::new("x", "x"),
            description: Text::new("", ""),
            inputs: vec![
                FieldSpec::new("token", FieldKind::Text, Text::new("t", "t")).secret(),
                FieldSpec::new("headers", FieldKind::Headers, Text::new("h", "h")),
            ],
            outputs: vec![],
            idempotent: true,
            writes: false,
            usage: false,
        };
        let input = json!({"token": "s3cret", "headers": {"Authorization": "Bearer s3cret", "Accept": "x"}, "other": 1});
        let r = redact_input(&spec, &input);
        assert_eq!(
            r,
            json!({"token": REDACTED, "headers": {"Authorization": REDACTED, "Accept": "x"}, "other": 1})
        );
    }

    #[test]
    fn field_kinds_accept_literals() {
        assert!(FieldKind::Number.accepts(&json!("12.5")));
        assert!(!FieldKind::Integer.accepts(&json!(1.5)));
        assert!(!FieldKind::Boolean.accepts(&json!("yes")));
        assert!(FieldKind::Map.accepts(&json!({})));
        assert!(!FieldKind::List.accepts(&json!({})));
        assert!(FieldKind::Code.accepts(&json!("return {{ a }}")));
        assert!(!FieldKind::Code.accepts(&json!(1)));
    }
}
