//! The generic HTTP connector: call any JSON or form API.

use std::time::Duration;

use async_trait::async_trait;
use flowbot_core::manifest::{
    redact_headers, ActionSpec, AppManifest, FieldKind, FieldSpec, OutputSpec, Text, TriggerSpec,
};
use flowbot_core::{ActionCall, ActionError, Connector, PollCall, Polled};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::Method;
use serde_json::{json, Map, Value};

/// How much of an error body is kept in the message shown to users.
const ERROR_BODY_EXCERPT: usize = 500;

pub struct HttpConnector {
    manifest: AppManifest,
    client: reqwest::Client,
}

impl HttpConnector {
    pub fn new(client: reqwest::Client) -> Self {
        HttpConnector {
            manifest: manifest(),
            client,
        }
    }
}

fn common_inputs() -> Vec<FieldSpec> {
    vec![
        FieldSpec::new("url", FieldKind::Text, Text::new("URL", "URL"))
            .required()
            .help(
                "The full address, starting with http:// or https://",
                "http:// または https:// で始まる完全なアドレス",
            ),
        FieldSpec::new(
            "headers",
            FieldKind::Headers,
            Text::new("Headers", "ヘッダー"),
        )
        .help(
            "Request headers. Authorization and similar headers are hidden in run history.",
            "リクエストヘッダー。Authorization などは実行履歴で伏せられます。",
        ),
        FieldSpec::new(
            "query",
            FieldKind::Map,
            Text::new("Query parameters", "クエリパラメータ"),
        ),
        FieldSpec::new(
            "timeout",
            FieldKind::Text,
            Text::new("Timeout", "タイムアウト"),
        )
        .default_value(json!("30s"))
        .help(
            "How long to wait for an answer, e.g. 10s",
            "応答を待つ時間（例: 10s）",
        ),
        FieldSpec::new(
            "fail_on_status",
            FieldKind::Boolean,
            Text::new("Fail on error status", "エラーステータスで失敗にする"),
        )
        .default_value(json!(true))
        .help(
            "When on, a 4xx or 5xx answer fails the step (5xx and 429 are retried).",
            "オンの場合、4xx・5xx の応答でステップを失敗にします（5xx と 429 は再試行）。",
        ),
    ]
}

fn outputs() -> Vec<OutputSpec> {
    vec![
        OutputSpec::new(
            "status",
            FieldKind::Integer,
            Text::new("Status code", "ステータスコード"),
        ),
        OutputSpec::new(
            "headers",
            FieldKind::Map,
            Text::new("Response headers", "レスポンスヘッダー"),
        ),
        OutputSpec::new(
            "body",
            FieldKind::Json,
            Text::new("Response body", "レスポンスボディ"),
        ),
    ]
}

fn manifest() -> AppManifest {
    let mut request_inputs =
        vec![
            FieldSpec::new("method", FieldKind::Select, Text::new("Method", "メソッド"))
                .choices(&["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
                .default_value(json!("POST")),
        ];
    request_inputs.extend(common_inputs());
    request_inputs.push(
        FieldSpec::new("body", FieldKind::Json, Text::new("Body", "ボディ")).help(
            "Sent as JSON, or as a form when body_format is form.",
            "JSON として送信（body_format が form ならフォーム形式）。",
        ),
    );
    request_inputs.push(
        FieldSpec::new(
            "body_format",
            FieldKind::Select,
            Text::new("Body format", "ボディ形式"),
        )
        .choices(&["json", "form"])
        .default_value(json!("json")),
    );
    AppManifest {
        id: "http".into(),
        name: Text::new("HTTP", "HTTP"),
        description: Text::new(
            "Call any web API over HTTP.",
            "HTTP で任意の Web API を呼び出します。",
        ),
        connection: Vec::new(),
        triggers: vec![TriggerSpec {
            id: "poll".into(),
            name: Text::new("New items at a URL", "URL に新しい項目があったら"),
            options: vec![
                FieldSpec::new("url", FieldKind::Text, Text::new("URL", "URL"))
                    .required()
                    .help("Answers a JSON list of items (or an object holding one)", "項目の JSON リスト（またはそれを含むオブジェクト）を返す URL"),
                FieldSpec::new("items_path", FieldKind::Text, Text::new("Path to the list", "リストの場所"))
                    .help("Where the list is in the answer, e.g. `data.items`; empty when the answer is the list", "応答内のリストの場所（例: `data.items`）。応答がリストそのものなら空"),
                FieldSpec::new("cursor_field", FieldKind::Text, Text::new("Cursor field", "カーソル項目"))
                    .required()
                    .help("A field that grows with each new item, e.g. `id` or `updated_at`", "新しい項目ほど大きくなる項目（例: `id`、`updated_at`）"),
                FieldSpec::new("cursor_param", FieldKind::Text, Text::new("Cursor parameter", "カーソルのパラメータ"))
                    .help("Query parameter that sends the last cursor, e.g. `since`", "前回のカーソルを送るクエリパラメータ（例: `since`）"),
                FieldSpec::new("headers", FieldKind::Headers, Text::new("Headers", "ヘッダー")),
                FieldSpec::new("interval", FieldKind::Text, Text::new("Every", "間隔"))
                    .default_value(json!("5m")),
            ],
            outputs: Vec::new(),
            polling: true,
            setup: None,
        }],
        actions: vec![
            ActionSpec {
                id: "get".into(),
                name: Text::new("Fetch (GET)", "取得する（GET）"),
                description: Text::new(
                    "Read from a URL. Safe to repeat.",
                    "URL から読み取ります。繰り返しても安全です。",
                ),
                inputs: common_inputs(),
                outputs: outputs(),
                idempotent: true,
                writes: false,
            },
            ActionSpec {
                id: "request".into(),
                name: Text::new("Send a request", "リクエストを送信する"),
                description: Text::new(
                    "Send a request with any method and body.",
                    "任意のメソッドとボディでリクエストを送信します。",
                ),
                inputs: request_inputs,
                outputs: outputs(),
                // Whatever the method, the remote side may not treat a repeat kindly.
                idempotent: false,
                writes: true,
            },
        ],
    }
}

#[async_trait]
impl Connector for HttpConnector {
    fn manifest(&self) -> &AppManifest {
        &self.manifest
    }

    async fn poll(&self, call: PollCall<'_>) -> Result<Polled, ActionError> {
        match call.trigger {
            "poll" | "" => self.poll_url(call).await,
            other => Err(ActionError::fatal(format!(
                "the http app has no trigger `{other}`"
            ))),
        }
    }

    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError> {
        let input = call.input;
        let method = match call.action {
            "get" => Method::GET,
            "request" => {
                let m = str_input(input, "method")
                    .unwrap_or("POST")
                    .to_ascii_uppercase();
                Method::from_bytes(m.as_bytes()).map_err(|_| {
                    ActionError::fatal(format!("input `method`: `{m}` is not an HTTP method"))
                })?
            }
            other => {
                return Err(ActionError::fatal(format!(
                    "the http app has no action `{other}`"
                )))
            }
        };
        let url =
            str_input(input, "url").ok_or_else(|| ActionError::fatal("input `url` is required"))?;
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            ActionError::fatal(format!("input `url`: `{url}` is not a valid URL ({e})"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ActionError::fatal(format!(
                "input `url`: only http:// and https:// addresses can be called, not `{url}`"
            )));
        }
        let timeout = match input.get("timeout") {
            Some(Value::String(s)) => humantime_duration(s)?,
            Some(Value::Number(n)) => Duration::from_secs_f64(n.as_f64().unwrap_or(30.0).max(0.0)),
            _ => Duration::from_secs(30),
        };
        let mut req = self
            .client
            .request(method.clone(), parsed.clone())
            .timeout(timeout)
            .headers(headers(input.get("headers"))?);
        if let Some(Value::Object(q)) = input.get("query") {
            let pairs: Vec<(String, String)> =
                q.iter().map(|(k, v)| (k.clone(), text(v))).collect();
            req = req.query(&pairs);
        }
        if call.action == "request" {
            match (
                input.get("body"),
                str_input(input, "body_format").unwrap_or("json"),
            ) {
                (None | Some(Value::Null), _) => {}
                (Some(body), "form") => {
                    let Value::Object(fields) = body else {
                        return Err(ActionError::fatal(
                            "input `body`: a form body must be a mapping of names to values",
                        ));
                    };
                    let pairs: Vec<(String, String)> =
                        fields.iter().map(|(k, v)| (k.clone(), text(v))).collect();
                    req = req.form(&pairs);
                }
                (Some(body), "json") => req = req.json(body),
                (Some(_), other) => {
                    return Err(ActionError::fatal(format!(
                        "input `body_format`: `{other}` is not one of json, form"
                    )))
                }
            }
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error(&method, &parsed, e))?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let mut resp_headers = Map::new();
        for (name, value) in resp.headers() {
            if let Ok(v) = value.to_str() {
                resp_headers.insert(name.as_str().to_string(), Value::String(v.to_string()));
            }
        }
        let mut resp_headers = Value::Object(resp_headers);
        redact_headers(&mut resp_headers);
        let is_json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("json"));
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&method, &parsed, e))?;
        let body = if is_json {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        } else if bytes.is_empty() {
            Value::Null
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        let output = json!({ "status": status.as_u16(), "headers": resp_headers, "body": body });
        let fail_on_status = input
            .get("fail_on_status")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if fail_on_status && (status.is_client_error() || status.is_server_error()) {
            let excerpt: String = String::from_utf8_lossy(&bytes)
                .chars()
                .take(ERROR_BODY_EXCERPT)
                .collect();
            let message = format!("{method} {parsed} answered {status}: {excerpt}");
            let retryable =
                status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408;
            let err = if retryable {
                ActionError::retryable(message)
            } else {
                ActionError::fatal(message)
            };
            return Err(err
                .with_code(format!("HTTP_{}", status.as_u16()))
                .with_retry_after(retry_after)
                .with_details(output));
        }
        Ok(output)
    }
}

impl HttpConnector {
    async fn poll_url(&self, call: PollCall<'_>) -> Result<Polled, ActionError> {
        let opts = call.options;
        let url =
            str_input(opts, "url").ok_or_else(|| ActionError::fatal("option `url` is required"))?;
        let field = str_input(opts, "cursor_field")
            .ok_or_else(|| ActionError::fatal("option `cursor_field` is required"))?;
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            ActionError::fatal(format!("option `url`: `{url}` is not a valid URL ({e})"))
        })?;
        let cursor = call.cursor.filter(|c| !c.is_empty());
        let mut req = self
            .client
            .get(parsed.clone())
            .timeout(Duration::from_secs(30))
            .headers(headers(opts.get("headers"))?);
        if let (Some(param), Some(c)) = (str_input(opts, "cursor_param"), cursor) {
            req = req.query(&[(param, c)]);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error(&Method::GET, &parsed, e))?;
        let status = resp.status();
        if !status.is_success() {
            let message = format!("GET {parsed} answered {status}");
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                ActionError::retryable(message)
            } else {
                ActionError::fatal(message)
            });
        }
        let body: Value = resp.json().await.map_err(|e| {
            ActionError::retryable(format!("GET {parsed}: the answer is not JSON ({e})"))
        })?;
        let mut list = &body;
        for part in str_input(opts, "items_path")
            .unwrap_or("")
            .split('.')
            .filter(|p| !p.is_empty())
        {
            list = list.get(part).unwrap_or(&Value::Null);
        }
        let Value::Array(items) = list else {
            return Err(ActionError::fatal(format!(
                "GET {parsed}: no list of items at `{}`",
                str_input(opts, "items_path").unwrap_or("")
            )));
        };
        let mut fresh: Vec<(Value, Value)> = items
            .iter()
            .filter_map(|it| it.get(field).map(|c| (c.clone(), it.clone())))
            .filter(|(c, _)| cursor.is_none_or(|old| newer(c, old)))
            .collect();
        fresh.sort_by(|a, b| order(&a.0, &b.0));
        let next = fresh
            .last()
            .map(|(c, _)| text(c))
            .or(cursor.map(str::to_string));
        Ok(Polled {
            items: fresh.into_iter().map(|(_, it)| it).collect(),
            cursor: next,
        })
    }
}

/// Cursors compare as numbers when both read as numbers, else as text (ISO dates sort).
fn newer(value: &Value, cursor: &str) -> bool {
    order(value, &Value::String(cursor.to_string())).is_gt()
}

fn order(a: &Value, b: &Value) -> std::cmp::Ordering {
    let num = |v: &Value| flowbot_core::condition::as_number(v);
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => text(a).cmp(&text(b)),
    }
}

fn str_input<'a>(input: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn humantime_duration(s: &str) -> Result<Duration, ActionError> {
    flowbot_core::model::parse_duration(s).ok_or_else(|| {
        ActionError::fatal(format!(
            "input `timeout`: `{s}` is not a duration such as 10s"
        ))
    })
}

fn headers(v: Option<&Value>) -> Result<HeaderMap, ActionError> {
    let mut map = HeaderMap::new();
    let Some(Value::Object(h)) = v else {
        return Ok(map);
    };
    for (k, v) in h {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            ActionError::fatal(format!("input `headers`: `{k}` is not a valid header name"))
        })?;
        let value = HeaderValue::from_str(&text(v)).map_err(|_| {
            ActionError::fatal(format!(
                "input `headers.{k}`: the value contains characters a header cannot carry"
            ))
        })?;
        map.insert(name, value);
    }
    Ok(map)
}

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

/// Seconds in `Retry-After` (the HTTP-date form is rare from APIs and is ignored).
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    h.get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
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
    let what = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "the connection failed"
    };
    ActionError::retryable(format!("{method} {shown}: {what} ({})", error_chain(&e)))
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
