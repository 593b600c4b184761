//! A language model on loopback, speaking OpenAI's chat-completions API
//! (`POST /v1/chat/completions`, `GET /v1/models`, `Authorization: Bearer`, errors as
//! `{"error":{"message","type","param","code"}}`), answering by fixed rules instead of a
//! model so tests and the demo are repeatable:
//!
//! - a plain chat answers `要約: ` and the first 60 characters of the last user message;
//! - with `response_format: {"type":"json_object"}`, the fields listed in the system
//!   messages (lines `- \`name\` (type[, required]): description`) are read from the first
//!   user message by simple rules — `label: value` lines, an email address, a phone number
//!   — and answered as one JSON object;
//! - tokens are characters / 4, rounded up.
//!
//! Faults: the next N answers can be made invalid JSON or missing a field, any call can be
//! failed through `/__control/faults` (429 with `Retry-After`, 5xx), and a wrong key is
//! refused 401 as OpenAI refuses it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::faults::{self, Faults};

#[derive(Debug, Clone)]
pub struct AiConfig {
    /// The one key the simulator accepts.
    pub api_key: String,
    /// The model `GET /v1/models` lists (any model name is answered).
    pub model: String,
}

impl Default for AiConfig {
    fn default() -> Self {
        AiConfig {
            api_key: "sk-sandbox".into(),
            model: "sandbox-chat".into(),
        }
    }
}

/// How a spoiled answer is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadAnswer {
    /// Prose around a JSON-looking object that does not parse.
    InvalidJson,
    /// The JSON object without the first field asked for.
    MissingField,
}

#[derive(Default)]
struct Stats {
    calls: u64,
    unauthorized: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
}

pub struct AiSim {
    cfg: AiConfig,
    pub faults: Faults,
    bad: Mutex<VecDeque<BadAnswer>>,
    stats: Mutex<Stats>,
    /// The last request bodies (at most [`KEPT_REQUESTS`]), for tests to read the prompts.
    requests: Mutex<VecDeque<Value>>,
}

const KEPT_REQUESTS: usize = 200;
/// OpenAI refuses far smaller bodies than this; the bound only protects the simulator.
const MAX_BODY: usize = 4 * 1024 * 1024;

impl AiSim {
    pub fn new(cfg: AiConfig) -> Arc<AiSim> {
        Arc::new(AiSim {
            cfg,
            faults: Faults::default(),
            bad: Mutex::new(VecDeque::new()),
            stats: Mutex::new(Stats::default()),
            requests: Mutex::new(VecDeque::new()),
        })
    }

    pub fn config(&self) -> &AiConfig {
        &self.cfg
    }

    /// Spoil the next `count` answers of JSON mode.
    pub fn bad_answers(&self, kind: BadAnswer, count: usize) {
        let mut bad = self.bad.lock().expect("bad answers");
        bad.extend(std::iter::repeat_n(kind, count));
    }

    /// The request bodies received, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.requests
            .lock()
            .expect("requests")
            .iter()
            .cloned()
            .collect()
    }

    pub fn stats(&self) -> Value {
        let s = self.stats.lock().expect("stats");
        json!({
            "calls": s.calls,
            "unauthorized": s.unauthorized,
            "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens,
            "faults_injected": self.faults.injected(),
            "bad_answers_left": self.bad.lock().expect("bad answers").len(),
        })
    }
}

pub async fn start(cfg: AiConfig, port: u16) -> std::io::Result<crate::Running<AiSim>> {
    let sim = AiSim::new(cfg);
    crate::serve(sim.clone(), router(sim), port, |_, _| {}).await
}

pub fn router(sim: Arc<AiSim>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/__control/faults", post(set_faults).delete(clear_faults))
        .route("/__control/bad-answers", post(set_bad_answers))
        .route("/__control/stats", get(control_stats))
        .route("/__control/requests", get(control_requests))
        .with_state(sim)
}

/// OpenAI's error envelope.
fn openai_error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind, "param": null, "code": code}})),
    )
        .into_response()
}

/// OpenAI shows a refused key masked, keeping a few characters at either end.
fn masked(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// The key check, the faults, and the count every call pays.
async fn admit(sim: &AiSim, headers: &HeaderMap) -> Result<(), Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(k) if k == sim.cfg.api_key => {}
        other => {
            sim.stats.lock().expect("stats").unauthorized += 1;
            let message = match other {
                None | Some("") => "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".to_string(),
                Some(k) => format!(
                    "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                    masked(k)
                ),
            };
            let code = other.filter(|k| !k.is_empty()).map(|_| "invalid_api_key");
            return Err(openai_error(
                StatusCode::UNAUTHORIZED,
                &message,
                "invalid_request_error",
                code,
            ));
        }
    }
    sim.stats.lock().expect("stats").calls += 1;
    let (latency, injected) = sim.faults.decide("chat");
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(e) = injected {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let (message, kind, code) = match status {
            StatusCode::TOO_MANY_REQUESTS => (
                "Rate limit reached for requests. Please try again later.",
                "requests",
                "rate_limit_exceeded",
            ),
            s if s.is_server_error() => (
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                "server_error",
            ),
            _ => ("injected fault", "invalid_request_error", "injected"),
        };
        let mut resp = openai_error(
            status,
            e.message.as_deref().unwrap_or(message),
            kind,
            Some(e.code.as_deref().unwrap_or(code)),
        );
        if let Some(s) = e.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, s.into());
        }
        return Err(resp);
    }
    Ok(())
}

fn bad_request(message: &str, param: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": null}})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Value,
}

impl Message {
    /// The text of a message: a string, or the text parts of a list of parts.
    fn text(&self) -> String {
        match &self.content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }
}

#[derive(Deserialize)]
struct ChatRequest {
    model: Option<String>,
    messages: Option<Vec<Message>>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    response_format: Option<Value>,
}

async fn chat_completions(
    State(sim): State<Arc<AiSim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = admit(&sim, &headers).await {
        return r;
    }
    if body.len() > MAX_BODY {
        return bad_request("The request is too large.", "messages");
    }
    let raw: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return bad_request(
                &format!("We could not parse the JSON body of your request. ({e})"),
                "body",
            )
        }
    };
    {
        let mut kept = sim.requests.lock().expect("requests");
        if kept.len() == KEPT_REQUESTS {
            kept.pop_front();
        }
        kept.push_back(raw.clone());
    }
    let req: ChatRequest = match serde_json::from_value(raw) {
        Ok(r) => r,
        Err(e) => return bad_request(&format!("Invalid request: {e}"), "messages"),
    };
    let Some(model) = req.model.filter(|m| !m.is_empty()) else {
        return bad_request("you must provide a model parameter", "model");
    };
    let messages = match req.messages {
        Some(m) if !m.is_empty() => m,
        _ => return bad_request("[] is too short - 'messages'", "messages"),
    };
    if req.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return bad_request(
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got a larger value instead.",
            "temperature",
        );
    }
    if req.max_tokens.is_some_and(|n| n < 1) {
        return bad_request(
            "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1.",
            "max_tokens",
        );
    }
    let json_mode = match req.response_format.as_ref().and_then(|f| f.get("type")) {
        None => false,
        Some(t) if t == "text" => false,
        Some(t) if t == "json_object" => true,
        Some(t) => {
            return bad_request(
                &format!("Invalid value for 'response_format.type': {t} is not supported here."),
                "response_format.type",
            )
        }
    };
    let texts: Vec<(String, String)> = messages
        .iter()
        .map(|m| (m.role.clone(), m.text()))
        .collect();
    if json_mode && !texts.iter().any(|(_, t)| t.to_lowercase().contains("json")) {
        return bad_request(
            "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            "messages",
        );
    }

    let mut content = if json_mode {
        let fields = asked_fields(&texts);
        let source = texts
            .iter()
            .find(|(r, _)| r == "user")
            .map(|(_, t)| t.as_str())
            .unwrap_or("");
        let mut answer = extract(source, &fields);
        match sim.bad.lock().expect("bad answers").pop_front() {
            Some(BadAnswer::InvalidJson) => {
                let json = Value::Object(answer).to_string();
                let half: String = json.chars().take(json.chars().count() / 2).collect();
                format!("Here is the JSON you asked for: {half}")
            }
            Some(BadAnswer::MissingField) => {
                if let Some(f) = fields.first() {
                    answer.remove(&f.name);
                }
                Value::Object(answer).to_string()
            }
            None => Value::Object(answer).to_string(),
        }
    } else {
        let last = texts
            .iter()
            .rev()
            .find(|(r, _)| r == "user")
            .map(|(_, t)| t.trim())
            .unwrap_or("");
        format!("要約: {}", last.chars().take(60).collect::<String>())
    };
    let mut finish = "stop";
    if let Some(max) = req.max_tokens {
        let max_chars = (max as usize).saturating_mul(4);
        if content.chars().count() > max_chars {
            content = content.chars().take(max_chars).collect();
            finish = "length";
        }
    }
    let prompt_tokens = tokens(&texts.iter().map(|(_, t)| t.as_str()).collect::<String>());
    let completion_tokens = tokens(&content);
    let n = {
        let mut s = sim.stats.lock().expect("stats");
        s.prompt_tokens += prompt_tokens;
        s.completion_tokens += completion_tokens;
        s.calls
    };
    Json(json!({
        "id": format!("chatcmpl-sandbox-{n}"),
        "object": "chat.completion",
        "created": 1_767_225_600 + n,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": null,
    }))
    .into_response()
}

async fn models(State(sim): State<Arc<AiSim>>, headers: HeaderMap) -> Response {
    if let Err(r) = admit(&sim, &headers).await {
        return r;
    }
    Json(json!({
        "object": "list",
        "data": [{"id": sim.cfg.model, "object": "model", "created": 1_767_225_600, "owned_by": "flowbot-sandbox"}],
    }))
    .into_response()
}

/// Characters / 4, rounded up: the usual rule of thumb for English, kept for every text
/// so counts are repeatable.
fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// A field the system messages ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    pub name: String,
    pub kind: String,
    pub description: String,
}

fn field_line() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^\s*[-*]\s*`([^`]+)`\s*(?:\(([^)]*)\))?\s*(?::\s*(.*))?$").expect("a regex")
    })
}

/// The fields listed in the system messages, in order.
pub fn asked_fields(messages: &[(String, String)]) -> Vec<Asked> {
    messages
        .iter()
        .filter(|(role, _)| role == "system" || role == "developer")
        .flat_map(|(_, text)| text.lines())
        .filter_map(|line| {
            let c = field_line().captures(line)?;
            let kind = c
                .get(2)
                .map_or("text", |k| k.as_str().split(',').next().unwrap_or("text"))
                .trim()
                .to_string();
            Some(Asked {
                name: c[1].trim().to_string(),
                kind,
                description: c.get(3).map_or("", |d| d.as_str()).trim().to_string(),
            })
        })
        .collect()
}

fn email_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}").expect("a regex")
    })
}

fn phone_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // Full-width forms too (０３－１２３４－５６７８): a model copies what was typed.
        Regex::new(
            r"(?:[+＋]\d{1,3}[- ]?)?[0０]?\d{1,4}[-－(（]\d{1,4}[-－)）]\d{3,4}|[0０]\d{9,10}",
        )
        .expect("a regex")
    })
}

/// `label: value` and `ラベル：値` lines, labels normalised.
fn labelled(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let at = line.find([':', '：'])?;
            let label = normalise(&line[..at]);
            let sep = line[at..].chars().next().map_or(1, char::len_utf8);
            let value = line[at + sep..].trim();
            (!label.is_empty() && label.chars().count() <= 30 && !value.is_empty())
                .then(|| (label, value.to_string()))
        })
        .collect()
}

/// Lower case, no spaces, no honorific お/ご in front (お名前 and 名前 are one label).
fn normalise(s: &str) -> String {
    let s: String = s
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .collect();
    s.strip_prefix('お')
        .or_else(|| s.strip_prefix('ご'))
        .map(str::to_string)
        .unwrap_or(s)
}

/// The words a field is known by: its name and the longer words of its description.
fn words(f: &Asked) -> Vec<String> {
    const STOP: &[&str] = &[
        "the", "and", "from", "with", "text", "value", "that", "this",
    ];
    let mut out = vec![normalise(&f.name)];
    for w in f.description.split(|c: char| {
        c.is_whitespace() || c.is_ascii_punctuation() || "、。（）「」・".contains(c)
    }) {
        let n = normalise(w);
        let long_enough = if n.is_ascii() {
            n.len() >= 4
        } else {
            n.chars().count() >= 2
        };
        if long_enough && !STOP.contains(&n.as_str()) {
            out.push(n);
        }
    }
    out
}

fn mentions(f: &Asked, any: &[&str]) -> bool {
    let hay = format!("{} {}", f.name, f.description).to_lowercase();
    any.iter().any(|w| hay.contains(w))
}

/// What the rules find for each field: a matching `label: value` line, else an email
/// address or phone number for fields about those; `null` when nothing fits.
pub fn extract(text: &str, fields: &[Asked]) -> Map<String, Value> {
    let lines = labelled(text);
    let mut out = Map::new();
    for f in fields {
        let by_label = || {
            let known = words(f);
            lines.iter().find_map(|(label, value)| {
                known
                    .iter()
                    .any(|w| {
                        w == label
                            || (w.chars().count() >= 2 && label.contains(w.as_str()))
                            || (label.chars().count() >= 2 && w.contains(label.as_str()))
                    })
                    .then(|| value.clone())
            })
        };
        let found = if mentions(f, &["email", "e-mail", "mail", "メール"]) {
            email_re().find(text).map(|m| m.as_str().to_string())
        } else if mentions(f, &["phone", "tel", "電話"]) {
            phone_re().find(text).map(|m| m.as_str().to_string())
        } else {
            by_label()
        };
        out.insert(f.name.clone(), typed(&f.kind, found));
    }
    out
}

/// The value as a model would write it for the field's type.
fn typed(kind: &str, found: Option<String>) -> Value {
    let Some(s) = found else {
        return Value::Null;
    };
    match kind {
        "number" | "integer" => {
            let digits: String = s
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
                .collect();
            serde_json::from_str::<serde_json::Number>(&digits)
                .map(Value::Number)
                .unwrap_or(Value::String(s))
        }
        "boolean" => match s.to_lowercase().as_str() {
            "yes" | "true" | "はい" | "あり" => Value::Bool(true),
            "no" | "false" | "いいえ" | "なし" => Value::Bool(false),
            _ => Value::String(s),
        },
        "list" => Value::Array(
            s.split([',', '、'])
                .map(|x| Value::String(x.trim().to_string()))
                .filter(|x| x.as_str() != Some(""))
                .collect(),
        ),
        "date" => Value::String(s.replace('/', "-")),
        _ => Value::String(s),
    }
}

async fn set_faults(State(sim): State<Arc<AiSim>>, Json(v): Json<Value>) -> Response {
    match faults::parse(v) {
        Ok(cfg) => {
            sim.faults.set(cfg);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

async fn clear_faults(State(sim): State<Arc<AiSim>>) -> StatusCode {
    sim.faults.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct BadAnswers {
    kind: BadAnswer,
    count: usize,
}

async fn set_bad_answers(State(sim): State<Arc<AiSim>>, Json(b): Json<BadAnswers>) -> StatusCode {
    sim.bad_answers(b.kind, b.count.min(1000));
    StatusCode::NO_CONTENT
}

async fn control_stats(State(sim): State<Arc<AiSim>>) -> Json<Value> {
    Json(sim.stats())
}

async fn control_requests(State(sim): State<Arc<AiSim>>) -> Json<Value> {
    Json(Value::Array(sim.requests()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(name: &str, kind: &str, description: &str) -> Asked {
        Asked {
            name: name.into(),
            kind: kind.into(),
            description: description.into(),
        }
    }

    #[test]
    fn fields_are_read_from_the_system_message() {
        let sys = "Answer in JSON.\nFields:\n- `name` (text, required): お名前\n- `amount` (number): the total\n- `tags`\nnot a field";
        assert_eq!(
            asked_fields(&[
                ("system".into(), sys.into()),
                ("user".into(), "- `x` (text)".into())
            ]),
            [
                asked("name", "text", "お名前"),
                asked("amount", "number", "the total"),
                asked("tags", "text", ""),
            ]
        );
    }

    #[test]
    fn an_inquiry_mail_gives_its_fields() {
        let mail = "お名前：山田 太郎\nメール：taro@example.jp\n電話：03-1234-5678\nお問い合わせ内容：注文した商品が届きません";
        let got = extract(
            mail,
            &[
                asked("name", "text", "お名前"),
                asked("email", "text", "メールアドレス"),
                asked("phone", "text", "電話番号"),
                asked("inquiry", "text", "お問い合わせ内容"),
                asked("order_number", "text", "注文番号"),
            ],
        );
        assert_eq!(
            Value::Object(got),
            json!({
                "name": "山田 太郎",
                "email": "taro@example.jp",
                "phone": "03-1234-5678",
                "inquiry": "注文した商品が届きません",
                "order_number": null,
            })
        );
    }

    #[test]
    fn values_take_their_fields_types() {
        let text = "Total: ¥1,200\nPaid: yes\nItems: pen, ink\nDate: 2026/12/01";
        let got = extract(
            text,
            &[
                asked("total", "number", ""),
                asked("paid", "boolean", ""),
                asked("items", "list", ""),
                asked("date", "date", ""),
            ],
        );
        assert_eq!(
            Value::Object(got),
            json!({"total": 1200, "paid": true, "items": ["pen", "ink"], "date": "2026-12-01"})
        );
    }

    #[test]
    fn keys_are_masked_as_openai_masks_them() {
        assert_eq!(masked("sk-wrong-key-1234"), "sk-**********1234");
        assert_eq!(masked("short"), "*****");
        assert_eq!(tokens("abcde"), 2);
    }
}
