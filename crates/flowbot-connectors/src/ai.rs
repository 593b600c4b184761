//! The `ai` app: steps that ask a language model, through any OpenAI-compatible
//! chat-completions endpoint (OpenAI, Azure's OpenAI-compatible routes, a local server).
//! `generate` answers a prompt; `extract` reads named, typed fields out of a text, asking
//! again (up to three tries) when the answer does not fit.
//!
//! Both report the tokens they used in their output's `usage`, and their manifest says so
//! (`ActionSpec::usage`), which is how the engine counts them in its metrics without
//! knowing this app. The API key is sent only as the bearer token: it is never put in an
//! error, and services' messages that echo it (masked) are scrubbed.

use std::time::Duration;

use async_trait::async_trait;
use flowbot_core::manifest::{ActionSpec, AppManifest, FieldKind, FieldSpec, OutputSpec, Text};
use flowbot_core::{ActionCall, ActionError, Connection, Connector};
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Map, Value};

use crate::http::{read_bounded, retry_after, shown_url, transport_error};

/// One chat call; a long generation needs the step's own `timeout` raised as well.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The most of an answer that is read.
const MAX_ANSWER: usize = 4 * 1024 * 1024;
/// Tries of `extract` in all: the first answer and two corrections.
pub const EXTRACT_TRIES: u32 = 3;
const MAX_FIELDS: usize = 50;
/// Outputs of `extract` a field may not be named after.
const RESERVED: &[&str] = &["fields", "usage", "tries", "model"];

fn t(en: &str, ja: &str) -> Text {
    Text::new(en, ja)
}

pub struct AiApp {
    manifest: AppManifest,
    client: reqwest::Client,
}

impl AiApp {
    pub fn new(client: reqwest::Client) -> Self {
        AiApp {
            manifest: manifest(),
            client,
        }
    }
}

fn manifest() -> AppManifest {
    let usage_out = || OutputSpec::new("usage", FieldKind::Map, t("Tokens used", "使用トークン数"));
    let model_out = || OutputSpec::new("model", FieldKind::Text, t("Model", "モデル"));
    let temperature = || {
        FieldSpec::new("temperature", FieldKind::Number, t("Temperature", "温度")).help(
            "0 gives the most predictable answers, up to 2 the most varied",
            "0 で最も安定した回答、最大 2 で最もばらつく回答になります",
        )
    };
    AppManifest {
        id: "ai".into(),
        name: t("AI", "AI"),
        description: t(
            "Ask a language model through an OpenAI-compatible API: write a text, or read fields out of one.",
            "OpenAI 互換 API の言語モデルに、文章を書かせたり、文章から項目を取り出させたりします。",
        ),
        connection: vec![
            FieldSpec::new("base_url", FieldKind::Text, t("API base URL", "API のベース URL"))
                .required()
                .default_value(json!("https://api.openai.com/v1"))
                .help(
                    "Where `/chat/completions` is, e.g. https://api.openai.com/v1",
                    "`/chat/completions` の手前まで（例: https://api.openai.com/v1）",
                ),
            FieldSpec::new("api_key", FieldKind::Text, t("API key", "API キー"))
                .secret()
                .help(
                    "Sent as a bearer token; leave empty for a local server that needs none",
                    "Bearer トークンとして送ります。キー不要のローカルサーバーなら空欄",
                ),
            FieldSpec::new("model", FieldKind::Text, t("Model", "モデル"))
                .required()
                .help("e.g. gpt-4o-mini", "例: gpt-4o-mini"),
        ],
        triggers: Vec::new(),
        actions: vec![
            ActionSpec {
                id: "generate".into(),
                name: t("Generate text", "文章を生成する"),
                description: t(
                    "Sends the prompt to the model and gives its answer.",
                    "プロンプトをモデルに送り、その回答を返します。",
                ),
                inputs: vec![
                    FieldSpec::new("prompt", FieldKind::Text, t("Prompt", "プロンプト"))
                        .required()
                        .help(
                            "What to ask; may hold values of earlier steps, e.g. Summarise: {{ trigger.body }}",
                            "依頼内容。前のステップの値を入れられます（例: 次を要約して: {{ trigger.body }}）",
                        ),
                    FieldSpec::new("system", FieldKind::Text, t("Instructions (system)", "指示（システム）"))
                        .help(
                            "How the model should answer: role, tone, format",
                            "回答のしかた（役割・口調・形式など）",
                        ),
                    temperature(),
                    FieldSpec::new("max_tokens", FieldKind::Integer, t("Longest answer (tokens)", "回答の最大トークン数"))
                        .help(
                            "The answer is cut off at this many tokens",
                            "回答はこのトークン数で打ち切られます",
                        ),
                ],
                outputs: vec![
                    OutputSpec::new("text", FieldKind::Text, t("Answer", "回答")),
                    OutputSpec::new(
                        "finish_reason",
                        FieldKind::Text,
                        t("Why it ended (stop, length)", "終了理由（stop・length）"),
                    ),
                    usage_out(),
                    model_out(),
                ],
                idempotent: true,
                writes: false,
                usage: true,
            },
            ActionSpec {
                id: "extract".into(),
                name: t("Extract fields from text", "文章から項目を取り出す"),
                description: t(
                    "Reads the named fields out of a text (a mail, a form's free text) as typed values.",
                    "文章（メールやフォームの自由記述など）から、指定した項目を型どおりの値として取り出します。",
                ),
                inputs: vec![
                    FieldSpec::new("text", FieldKind::Text, t("Text", "文章"))
                        .required()
                        .help("e.g. {{ trigger.body }}", "例: {{ trigger.body }}"),
                    FieldSpec::new("fields", FieldKind::Json, t("Fields", "項目"))
                        .required()
                        .help(
                            "A list of {name, type, description, required}; type is text, number, integer, boolean, date (YYYY-MM-DD) or list",
                            "{name, type, description, required} のリスト。type は text・number・integer・boolean・date（YYYY-MM-DD）・list",
                        ),
                    FieldSpec::new("instructions", FieldKind::Text, t("Instructions", "追加の指示")).help(
                        "Anything the model should know, e.g. amounts are in yen",
                        "モデルへの補足（例: 金額は円）",
                    ),
                    temperature().default_value(json!(0)),
                ],
                outputs: vec![
                    OutputSpec::new("fields", FieldKind::Map, t("Fields", "項目")),
                    usage_out(),
                    OutputSpec::new("tries", FieldKind::Integer, t("Tries", "試行回数")),
                    model_out(),
                ],
                idempotent: true,
                writes: false,
                usage: true,
            },
        ],
    }
}

/// Where a connection's chat calls go, and how they are signed.
struct Endpoint<'a> {
    base: String,
    key: Option<&'a str>,
    model: &'a str,
    name: &'a str,
}

impl<'a> Endpoint<'a> {
    fn of(c: Option<&'a Connection>) -> Result<Endpoint<'a>, ActionError> {
        let c = c.ok_or_else(|| ActionError::fatal("this AI step has no connection"))?;
        let setting = |key: &str| c.setting_str(key).map(str::trim).filter(|s| !s.is_empty());
        let base = setting("base_url").ok_or_else(|| {
            ActionError::fatal(format!(
                "the AI connection `{}` has no `base_url`: add it to the connection",
                c.name
            ))
        })?;
        let model = setting("model").ok_or_else(|| {
            ActionError::fatal(format!(
                "the AI connection `{}` has no `model`: add it to the connection",
                c.name
            ))
        })?;
        Ok(Endpoint {
            base: base.trim_end_matches('/').to_string(),
            key: setting("api_key"),
            model,
            name: &c.name,
        })
    }

    fn url(&self, path: &str) -> Result<Url, ActionError> {
        Url::parse(&format!("{}{path}", self.base)).map_err(|e| {
            ActionError::fatal(format!(
                "the AI connection `{}`'s base_url is not a URL ({e})",
                self.name
            ))
        })
    }
}

/// Tokens as the service counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
}

impl Usage {
    fn of(answer: &Value) -> Usage {
        let n = |k: &str| {
            answer
                .pointer(&format!("/usage/{k}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        Usage {
            prompt: n("prompt_tokens"),
            completion: n("completion_tokens"),
        }
    }

    fn add(&mut self, other: Usage) {
        self.prompt += other.prompt;
        self.completion += other.completion;
    }

    fn to_value(self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
        })
    }
}

/// One answer of the model.
struct Answer {
    text: String,
    finish_reason: String,
    model: String,
    usage: Usage,
}

impl AiApp {
    async fn send(
        &self,
        ep: &Endpoint<'_>,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, ActionError> {
        let mut req = self
            .client
            .request(method.clone(), url.clone())
            .timeout(REQUEST_TIMEOUT);
        if let Some(key) = ep.key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error(&method, &url, e))?;
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let bytes = read_bounded(resp, MAX_ANSWER, &method, &url).await?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            if body.is_null() {
                return Err(ActionError::retryable(format!(
                    "{method} {}: the answer ({status}) is not JSON",
                    shown_url(&url)
                )));
            }
            return Ok(body);
        }
        Err(service_error(ep, status, &body, wait))
    }

    async fn chat(&self, ep: &Endpoint<'_>, body: &Value) -> Result<Answer, ActionError> {
        let url = ep.url("/chat/completions")?;
        let answer = self.send(ep, Method::POST, url.clone(), Some(body)).await?;
        let message = answer.pointer("/choices/0/message");
        let text = message
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str);
        let Some(text) = text else {
            if let Some(refusal) = message
                .and_then(|m| m.get("refusal"))
                .and_then(Value::as_str)
            {
                return Err(ActionError::fatal(format!("the model declined: {refusal}")));
            }
            return Err(ActionError::retryable(format!(
                "POST {}: the answer holds no message",
                shown_url(&url)
            )));
        };
        Ok(Answer {
            text: text.to_string(),
            finish_reason: answer
                .pointer("/choices/0/finish_reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            model: answer
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(ep.model)
                .to_string(),
            usage: Usage::of(&answer),
        })
    }

    async fn generate(
        &self,
        ep: &Endpoint<'_>,
        input: &Map<String, Value>,
    ) -> Result<Value, ActionError> {
        let prompt = text_input(input, "prompt")?
            .ok_or_else(|| ActionError::fatal("input `prompt` is required"))?;
        let mut messages = Vec::new();
        if let Some(system) = text_input(input, "system")? {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": prompt}));
        let mut body = json!({"model": ep.model, "messages": messages});
        if let Some(t) = number_input(input, "temperature")? {
            body["temperature"] = json!(t);
        }
        if let Some(n) = number_input(input, "max_tokens")? {
            if n.fract() != 0.0 || n < 1.0 {
                return Err(ActionError::fatal(
                    "input `max_tokens` must be a whole number of 1 or more",
                ));
            }
            body["max_tokens"] = json!(n as u64);
        }
        let a = self.chat(ep, &body).await?;
        Ok(json!({
            "text": a.text,
            "finish_reason": a.finish_reason,
            "usage": a.usage.to_value(),
            "model": a.model,
        }))
    }

    async fn extract(
        &self,
        ep: &Endpoint<'_>,
        input: &Map<String, Value>,
    ) -> Result<Value, ActionError> {
        let text = text_input(input, "text")?
            .ok_or_else(|| ActionError::fatal("input `text` is required"))?;
        let wanted = Wanted::read_all(input.get("fields"))?;
        let instructions = text_input(input, "instructions")?;
        let mut messages = vec![
            json!({"role": "system", "content": extract_prompt(&wanted, instructions.as_deref())}),
            json!({"role": "user", "content": text}),
        ];
        let temperature = number_input(input, "temperature")?.unwrap_or(0.0);
        let mut usage = Usage::default();
        let mut problems = Vec::new();
        let mut model = ep.model.to_string();
        for tries in 1..=EXTRACT_TRIES {
            let body = json!({
                "model": ep.model,
                "messages": messages,
                "temperature": temperature,
                "response_format": {"type": "json_object"},
            });
            // A call that fails after earlier tries still accounts for their tokens.
            let a = self.chat(ep, &body).await.map_err(|e| {
                if tries == 1 {
                    return e;
                }
                let mut details = e.details.as_deref().cloned().unwrap_or_else(|| json!({}));
                if let Value::Object(d) = &mut details {
                    d.insert("usage".into(), usage.to_value());
                    d.insert("tries".into(), json!(tries - 1));
                }
                e.with_details(details)
            })?;
            usage.add(a.usage);
            model = a.model;
            match fit_answer(&wanted, &a.text) {
                Ok(fields) => {
                    let mut out = fields.clone();
                    out.insert("fields".into(), Value::Object(fields));
                    out.insert("usage".into(), usage.to_value());
                    out.insert("tries".into(), json!(tries));
                    out.insert("model".into(), json!(model));
                    return Ok(Value::Object(out));
                }
                Err(p) => {
                    messages.push(json!({"role": "assistant", "content": a.text}));
                    messages.push(json!({"role": "user", "content": correction(&p)}));
                    problems = p;
                }
            }
        }
        // Not retryable: the same text and fields would very likely fail the same way, and
        // each try costs tokens. The usage is kept so the run still accounts for them.
        Err(ActionError::fatal(format!(
            "the model's answer did not fit the fields after {EXTRACT_TRIES} tries: {}",
            problems.join("; ")
        ))
        .with_code("ANSWER_DID_NOT_FIT")
        .with_details(json!({
            "problems": problems,
            "tries": EXTRACT_TRIES,
            "usage": usage.to_value(),
            "model": model,
        })))
    }
}

#[async_trait]
impl Connector for AiApp {
    fn manifest(&self) -> &AppManifest {
        &self.manifest
    }

    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError> {
        let ep = Endpoint::of(call.connection)?;
        match call.action {
            "generate" => self.generate(&ep, call.input).await,
            "extract" => self.extract(&ep, call.input).await,
            other => Err(ActionError::fatal(format!(
                "the AI app has no action `{other}`"
            ))),
        }
    }

    fn check_settings(&self, settings: &Map<String, Value>) -> Result<(), String> {
        if let Some(base) = settings
            .get("base_url")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
        {
            let url =
                Url::parse(base.trim()).map_err(|e| format!("`base_url` is not a URL ({e})"))?;
            // Plain http would carry the key in clear: only to a server on this machine or
            // the company's own network.
            let host = url.host_str().unwrap_or("");
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let local = match host.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private(),
                Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback(),
                Err(_) => {
                    host == "localhost" || host.ends_with(".localhost") || !host.contains('.')
                }
            };
            match url.scheme() {
                "https" => {}
                "http" if local => {}
                _ => {
                    return Err("`base_url` must start with https:// (http:// only for a server \
                                on this machine or the local network, e.g. http://127.0.0.1:8000/v1)"
                        .into())
                }
            }
        }
        Ok(())
    }

    /// `GET /models`: authenticated, free, and offered by OpenAI and most compatible servers.
    async fn test_connection(&self, c: &Connection) -> Result<(), ActionError> {
        let ep = Endpoint::of(Some(c))?;
        let url = ep.url("/models")?;
        self.send(&ep, Method::GET, url, None).await.map(|_| ())
    }
}

/// A text input: strings as given, numbers and booleans as written; absent or blank is none.
fn text_input(input: &Map<String, Value>, key: &str) -> Result<Option<String>, ActionError> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
        // A template that gave a list or an object: the model reads JSON well enough.
        Some(v) => Ok(Some(v.to_string())),
    }
}

fn number_input(input: &Map<String, Value>, key: &str) -> Result<Option<f64>, ActionError> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| {
                ActionError::fatal(format!("input `{key}` must be a number, not `{s}`"))
            })
        }
        Some(_) => Err(ActionError::fatal(format!(
            "input `{key}` must be a number"
        ))),
    }
}

/// The service's refusal, classified: rate limits and its own troubles pass, a request it
/// will never take does not. Its message is kept (without the key, should it echo one).
fn service_error(
    ep: &Endpoint<'_>,
    status: StatusCode,
    body: &Value,
    wait: Option<Duration>,
) -> ActionError {
    let err = body.get("error");
    let field = |k: &str| err.and_then(|e| e.get(k)).and_then(Value::as_str);
    // Some compatible servers answer `{"error": "text"}`.
    let message = field("message")
        .or_else(|| err.and_then(Value::as_str))
        .map(|m| scrub(m, ep.key))
        .unwrap_or_default();
    let code = field("code").or_else(|| field("type")).map(str::to_string);
    let said = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    let e = match status {
        StatusCode::TOO_MANY_REQUESTS if code.as_deref() == Some("insufficient_quota") => {
            ActionError::fatal(format!(
                "the AI service says the account of connection `{}` has no quota left (429){said}",
                ep.name
            ))
        }
        StatusCode::TOO_MANY_REQUESTS => {
            ActionError::retryable(format!("the AI service is rate limiting (429){said}"))
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ActionError::fatal(format!(
            "the AI service refused the API key of connection `{}` ({status}){said}",
            ep.name
        )),
        StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT => {
            ActionError::retryable(format!("the AI service answered {status}{said}"))
        }
        s if s.is_server_error() => {
            ActionError::retryable(format!("the AI service answered {status}{said}"))
        }
        _ => ActionError::fatal(format!("the AI service answered {status}{said}")),
    };
    e.with_code(code.unwrap_or_else(|| format!("HTTP_{}", status.as_u16())))
        .with_retry_after(wait)
        .with_details(json!({
            "status": status.as_u16(),
            "type": field("type"),
            "param": field("param"),
        }))
}

/// A service's message without the key: whole, or as services echo a refused key —
/// masked with `*` but keeping its ends.
fn scrub(message: &str, key: Option<&str>) -> String {
    let Some(key) = key else {
        return message.to_string();
    };
    let whole = message.replace(key, "[redacted]");
    let head = key.get(..6).filter(|_| key.len() >= 12);
    let tail = key
        .get(key.len().saturating_sub(4)..)
        .filter(|_| key.len() >= 12);
    whole
        .split(' ')
        .map(|word| {
            let echoes = word.contains("**")
                || head.is_some_and(|h| word.contains(h))
                || tail.is_some_and(|t| word.contains(t));
            if echoes {
                let end = word.trim_end_matches(['.', ',', ';', ')']);
                format!("[redacted]{}", &word[end.len()..])
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The type a field's value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Integer,
    Boolean,
    Date,
    List,
}

impl Kind {
    const NAMES: &'static [&'static str] =
        &["text", "number", "integer", "boolean", "date", "list"];

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "text" => Kind::Text,
            "number" => Kind::Number,
            "integer" => Kind::Integer,
            "boolean" => Kind::Boolean,
            "date" => Kind::Date,
            "list" => Kind::List,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Number => "number",
            Kind::Integer => "integer",
            Kind::Boolean => "boolean",
            Kind::Date => "date",
            Kind::List => "list",
        }
    }
}

/// A field `extract` is asked for.
#[derive(Debug, Clone, PartialEq)]
struct Wanted {
    name: String,
    kind: Kind,
    description: String,
    required: bool,
}

impl Wanted {
    /// The `fields` input: a list of `{name, type, description, required}` (a bare name is
    /// an optional text field). Every problem is named at once.
    fn read_all(v: Option<&Value>) -> Result<Vec<Wanted>, ActionError> {
        let items = match v {
            Some(Value::Array(items)) if !items.is_empty() => items,
            Some(Value::String(s)) => {
                // A template that gave the list as JSON text.
                return match serde_json::from_str::<Value>(s) {
                    Ok(v @ Value::Array(_)) => Wanted::read_all(Some(&v)),
                    _ => Err(ActionError::fatal(
                        "input `fields` must be a list of {name, type, description, required}",
                    )),
                };
            }
            _ => {
                return Err(ActionError::fatal(
                    "input `fields` must be a list of {name, type, description, required}",
                ))
            }
        };
        if items.len() > MAX_FIELDS {
            return Err(ActionError::fatal(format!(
                "input `fields`: at most {MAX_FIELDS} fields"
            )));
        }
        let mut out: Vec<Wanted> = Vec::new();
        let mut problems = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let (name, kind, description, required) = match item {
                Value::String(name) => (name.as_str(), "text", "", false),
                Value::Object(m) => (
                    m.get("name").and_then(Value::as_str).unwrap_or(""),
                    m.get("type").and_then(Value::as_str).unwrap_or("text"),
                    m.get("description").and_then(Value::as_str).unwrap_or(""),
                    m.get("required")
                        .is_some_and(|r| r == &json!(true) || r == "true"),
                ),
                _ => {
                    problems.push(format!("fields[{i}] must be a name or {{name, type, …}}"));
                    continue;
                }
            };
            let name = name.trim();
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                problems.push(format!(
                    "fields[{i}]: `{name}` is not a usable name (letters, digits and _, not starting with a digit)"
                ));
                continue;
            }
            if RESERVED.contains(&name) {
                problems.push(format!(
                    "fields[{i}]: `{name}` is one of the step's own outputs; choose another name"
                ));
                continue;
            }
            if out.iter().any(|w| w.name == name) {
                problems.push(format!("fields[{i}]: `{name}` is named twice"));
                continue;
            }
            let Some(kind) = Kind::parse(kind.trim()) else {
                problems.push(format!(
                    "fields[{i}]: type `{kind}` is not one of {}",
                    Kind::NAMES.join(", ")
                ));
                continue;
            };
            out.push(Wanted {
                name: name.to_string(),
                kind,
                description: description.trim().to_string(),
                required,
            });
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(ActionError::fatal(format!(
                "input `fields`: {}",
                problems.join("; ")
            )))
        }
    }
}

/// The system message: the fields one per line (`- \`name\` (type, required): what`), the
/// types spelt out, and the user's instructions last.
fn extract_prompt(wanted: &[Wanted], instructions: Option<&str>) -> String {
    let mut p = String::from(
        "You read data out of the user's text. Answer with one JSON object and nothing else. \
         Its keys are exactly the fields below; use null for a field the text does not give, \
         and never invent a value.\nFields:\n",
    );
    for w in wanted {
        p.push_str(&format!(
            "- `{}` ({}{}){}\n",
            w.name,
            w.kind.name(),
            if w.required { ", required" } else { "" },
            if w.description.is_empty() {
                String::new()
            } else {
                format!(": {}", w.description.replace('\n', " "))
            }
        ));
    }
    p.push_str(
        "Types: text is a JSON string; number and integer are JSON numbers (no separators or \
         units); boolean is true or false; date is a string YYYY-MM-DD; list is a JSON array.\n",
    );
    if let Some(i) = instructions {
        p.push_str(&format!("Also: {i}\n"));
    }
    p
}

fn correction(problems: &[String]) -> String {
    let mut c = String::from("Your answer did not fit:\n");
    for p in problems {
        c.push_str(&format!("- {p}\n"));
    }
    c.push_str("Answer again with the whole JSON object only.");
    c
}

/// The answer's fields, each fitted to its type; or every reason it does not fit.
fn fit_answer(wanted: &[Wanted], text: &str) -> Result<Map<String, Value>, Vec<String>> {
    let object = match json_object(text) {
        Some(o) => o,
        None => return Err(vec!["the answer is not a JSON object".to_string()]),
    };
    let mut out = Map::new();
    let mut problems = Vec::new();
    for w in wanted {
        match fit(w, object.get(&w.name)) {
            Ok(v) => {
                out.insert(w.name.clone(), v);
            }
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The answer as a JSON object: as it stands, or from inside a ```json fence or prose
/// (servers that ignore `response_format` wrap it).
fn json_object(text: &str) -> Option<Map<String, Value>> {
    if let Ok(Value::Object(o)) = serde_json::from_str(text.trim()) {
        return Some(o);
    }
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    match serde_json::from_str(text.get(start..=end)?) {
        Ok(Value::Object(o)) => Some(o),
        _ => None,
    }
}

/// One field's value fitted to its type: numbers written as text are read (`"1,200"` →
/// 1200, `"¥3,000"` → 3000), dates take the form YYYY-MM-DD.
fn fit(w: &Wanted, v: Option<&Value>) -> Result<Value, String> {
    let missing = match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(_) => false,
    };
    if missing {
        return if w.required {
            Err(format!("`{}` is required but has no value", w.name))
        } else {
            Ok(Value::Null)
        };
    }
    let v = v.expect("present");
    let wrong = || {
        let shown: String = v.to_string().chars().take(60).collect();
        Err(format!(
            "`{}` must be {}, not {shown}",
            w.name,
            match w.kind {
                Kind::Text => "text",
                Kind::Number => "a number",
                Kind::Integer => "a whole number",
                Kind::Boolean => "true or false",
                Kind::Date => "a date as YYYY-MM-DD",
                Kind::List => "a list",
            }
        ))
    };
    match w.kind {
        Kind::Text => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(n) => Ok(json!(n.to_string())),
            Value::Bool(b) => Ok(json!(b.to_string())),
            _ => wrong(),
        },
        Kind::Number | Kind::Integer => {
            let n = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => number_text(s),
                _ => None,
            };
            match n {
                Some(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Ok(json!(n as i64)),
                Some(n) if w.kind == Kind::Number && n.is_finite() => Ok(json!(n)),
                _ => wrong(),
            }
        }
        Kind::Boolean => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" => Ok(json!(true)),
                "false" | "no" => Ok(json!(false)),
                _ => wrong(),
            },
            _ => wrong(),
        },
        Kind::Date => match v {
            Value::String(s) => date_text(s).map(Value::String).map_or_else(wrong, Ok),
            _ => wrong(),
        },
        Kind::List => match v {
            Value::Array(_) => Ok(v.clone()),
            _ => wrong(),
        },
    }
}

/// A number written for people: thousands separators, a currency sign or unit around it.
fn number_text(s: &str) -> Option<f64> {
    let kept: String = s
        .trim()
        .trim_start_matches(['¥', '￥', '$', '€', '£'])
        .trim_end_matches(['円', '%'])
        .chars()
        .filter(|c| !matches!(c, ',' | '，' | ' ' | '_'))
        .collect();
    kept.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A date as YYYY-MM-DD, from that form, YYYY/MM/DD, or a date-time that starts with one.
fn date_text(s: &str) -> Option<String> {
    let s = s.trim().replace('/', "-");
    let head = s.get(..10).unwrap_or(&s);
    let d: jiff::civil::Date = head.parse().ok()?;
    (head.len() == s.len() || s[10..].starts_with(['T', ' '])).then(|| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(name: &str, kind: Kind, required: bool) -> Wanted {
        Wanted {
            name: name.into(),
            kind,
            description: String::new(),
            required,
        }
    }

    #[test]
    fn values_are_fitted_to_their_types() {
        let cases: &[(Kind, Value, Result<Value, ()>)] = &[
            (Kind::Number, json!("1,200"), Ok(json!(1200))),
            (Kind::Number, json!("¥3,000"), Ok(json!(3000))),
            (Kind::Number, json!(12.5), Ok(json!(12.5))),
            (Kind::Number, json!("about ten"), Err(())),
            (Kind::Integer, json!("1,200円"), Ok(json!(1200))),
            (Kind::Integer, json!(1.5), Err(())),
            (Kind::Boolean, json!("yes"), Ok(json!(true))),
            (Kind::Boolean, json!("maybe"), Err(())),
            (Kind::Date, json!("2026/12/01"), Ok(json!("2026-12-01"))),
            (
                Kind::Date,
                json!("2026-12-01T10:00:00"),
                Ok(json!("2026-12-01")),
            ),
            (Kind::Date, json!("2026-13-01"), Err(())),
            (Kind::Date, json!("next Friday"), Err(())),
            (Kind::Text, json!(42), Ok(json!("42"))),
            (Kind::Text, json!(["a"]), Err(())),
            (Kind::List, json!(["a", "b"]), Ok(json!(["a", "b"]))),
            (Kind::List, json!("a, b"), Err(())),
        ];
        for (kind, given, expected) in cases {
            let got = fit(&wanted("x", *kind, true), Some(given)).map_err(|_| ());
            assert_eq!(&got, expected, "{kind:?} {given}");
        }
        assert_eq!(fit(&wanted("x", Kind::Text, false), None), Ok(Value::Null));
        assert_eq!(
            fit(&wanted("x", Kind::Text, true), Some(&json!(" "))),
            Err("`x` is required but has no value".into())
        );
    }

    #[test]
    fn answers_are_read_even_when_wrapped() {
        let w = [wanted("a", Kind::Integer, true)];
        assert_eq!(fit_answer(&w, "{\"a\": 1}").unwrap()["a"], 1);
        assert_eq!(
            fit_answer(&w, "```json\n{\"a\": \"2\"}\n```").unwrap()["a"],
            2
        );
        assert_eq!(
            fit_answer(&w, "Sure! {\"a\": "),
            Err(vec!["the answer is not a JSON object".to_string()])
        );
    }

    #[test]
    fn the_fields_input_is_checked_whole() {
        let ok = Wanted::read_all(Some(&json!([
            {"name": "email", "type": "text", "description": "メール", "required": true},
            "note",
        ])))
        .unwrap();
        assert_eq!(
            ok[0],
            Wanted {
                name: "email".into(),
                kind: Kind::Text,
                description: "メール".into(),
                required: true
            }
        );
        assert_eq!(ok[1], wanted("note", Kind::Text, false));
        let e = Wanted::read_all(Some(&json!([
            {"name": "1st"}, {"name": "usage"}, {"name": "a", "type": "money"}, {"name": "b"}, {"name": "b"},
        ])))
        .unwrap_err();
        for part in ["`1st`", "`usage`", "`money`", "`b` is named twice"] {
            assert!(e.message.contains(part), "{part}: {}", e.message);
        }
    }

    #[test]
    fn echoed_keys_are_scrubbed() {
        let key = "sk-proj-abcdef1234567890wxyz";
        let msg = format!("Incorrect API key provided: sk-pro********************wxyz. Or {key}.");
        let s = scrub(&msg, Some(key));
        assert!(!s.contains("wxyz") && !s.contains("abcdef"), "{s}");
        assert_eq!(s, "Incorrect API key provided: [redacted]. Or [redacted].");
        assert_eq!(scrub("plain", None), "plain");
    }

    #[test]
    fn the_prompt_lists_the_fields_one_per_line() {
        let mut w = wanted("total", Kind::Number, true);
        w.description = "the amount\nin yen".into();
        let p = extract_prompt(
            &[w, wanted("note", Kind::Text, false)],
            Some("amounts are in yen"),
        );
        assert!(
            p.contains("- `total` (number, required): the amount in yen\n"),
            "{p}"
        );
        assert!(p.contains("- `note` (text)\n"), "{p}");
        assert!(
            p.contains("JSON") && p.ends_with("Also: amounts are in yen\n"),
            "{p}"
        );
    }
}
