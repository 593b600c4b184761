//! Worked examples: for an action, an input, the exact request it must send, the vendor's
//! documented answer and the obtained values read from it. `flowbot apps test` runs each
//! against a loopback server and reports every difference; the sandbox's app simulator
//! serves the answers, so every app can be tried offline.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleDef {
    /// What the example shows (in reports).
    #[serde(default)]
    pub name: Option<String>,
    /// The step's input.
    #[serde(default)]
    pub input: Map<String, Value>,
    /// The request the app must receive.
    pub request: ExampleRequest,
    /// The app's answer, from its public API reference.
    #[serde(default)]
    pub response: ExampleResponse,
    /// The obtained values the answer gives (checked when present).
    #[serde(default)]
    pub output: Option<Value>,
    /// For an answer the step fails on: what its error message must say, or its code.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleRequest {
    pub method: String,
    /// The path as the app sees it, without the query.
    pub path: String,
    /// Every query parameter, exactly.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// These headers at least (names in any case), with these values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body: JSON compared as JSON, a form body as its fields; absent means none.
    #[serde(default)]
    pub body: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleResponse {
    #[serde(default = "ok")]
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Value,
}

impl Default for ExampleResponse {
    fn default() -> Self {
        ExampleResponse {
            status: ok(),
            headers: BTreeMap::new(),
            body: Value::Null,
        }
    }
}

fn ok() -> u16 {
    200
}
