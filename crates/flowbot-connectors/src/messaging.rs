//! Sending messages: Slack (incoming webhook), Chatwork (API token) and email (SMTP). Each
//! is an action and, for the server, a failure-notification channel. Sending is not
//! idempotent: a message in doubt is re-decided by the runner, never silently repeated.

use std::time::Duration;

use async_trait::async_trait;
use flowbot_core::manifest::{ActionSpec, AppManifest, FieldKind, FieldSpec, OutputSpec, Text};
use flowbot_core::{ActionCall, ActionError, Connection, Connector};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::http::{retry_after, transport_error};

fn t(en: &str, ja: &str) -> Text {
    Text::new(en, ja)
}

fn send_action(
    id: &str,
    name: Text,
    inputs: Vec<FieldSpec>,
    outputs: Vec<OutputSpec>,
) -> ActionSpec {
    ActionSpec {
        id: id.into(),
        name,
        description: t("Sends a message.", "メッセージを送信します。"),
        inputs,
        outputs,
        idempotent: false,
        writes: true,
    }
}

fn need<'a>(c: &'a Connection, key: &str, app: &str) -> Result<&'a str, ActionError> {
    c.setting_str(key).filter(|s| !s.is_empty()).ok_or_else(|| {
        ActionError::fatal(format!(
            "the {app} connection `{}` has no `{key}`: add it to the connection",
            c.name
        ))
    })
}

fn text_in<'a>(input: &'a Map<String, Value>, key: &str) -> Result<&'a str, ActionError> {
    input
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ActionError::fatal(format!("input `{key}` is required")))
}

/// A non-2xx answer of a chat service: 429 and 5xx are worth retrying.
fn http_failure(app: &str, status: StatusCode, body: &str, retry: Option<Duration>) -> ActionError {
    let msg = format!(
        "{app} answered {status}: {}",
        body.chars().take(300).collect::<String>()
    );
    let e = if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        ActionError::retryable(msg)
    } else {
        ActionError::fatal(msg)
    };
    e.with_code(format!("HTTP_{}", status.as_u16()))
        .with_retry_after(retry)
}

/// Send a chat request; the answer's text, or the failure classified.
async fn send(
    app: &str,
    url: &reqwest::Url,
    req: reqwest::RequestBuilder,
) -> Result<String, ActionError> {
    let resp = req
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| transport_error(&Method::POST, url, e))?;
    let status = resp.status();
    let retry = retry_after(resp.headers());
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(http_failure(app, status, &text, retry));
    }
    Ok(text)
}

// ---- Slack ----

pub struct SlackConnector {
    manifest: AppManifest,
    client: reqwest::Client,
}

impl SlackConnector {
    pub fn new(client: reqwest::Client) -> Self {
        SlackConnector {
            manifest: AppManifest {
                id: "slack".into(),
                name: t("Slack", "Slack"),
                description: t(
                    "Post messages to a Slack channel through an incoming webhook.",
                    "Incoming Webhook で Slack のチャンネルに投稿します。",
                ),
                connection: vec![FieldSpec::new(
                    "webhook_url",
                    FieldKind::Text,
                    t("Incoming webhook URL", "Incoming Webhook URL"),
                )
                .required()
                .secret()
                .help(
                    "https://hooks.slack.com/services/… (the URL is the credential)",
                    "https://hooks.slack.com/services/…（URL 自体が認証情報です）",
                )],
                triggers: Vec::new(),
                actions: vec![send_action(
                    "send_message",
                    t("Post a message", "メッセージを送る"),
                    vec![
                        FieldSpec::new("text", FieldKind::Text, t("Text", "本文")).required(),
                        FieldSpec::new(
                            "blocks",
                            FieldKind::Json,
                            t("Blocks (optional)", "ブロック（任意）"),
                        ),
                    ],
                    vec![OutputSpec::new(
                        "ok",
                        FieldKind::Boolean,
                        t("Sent", "送信済み"),
                    )],
                )],
            },
            client,
        }
    }
}

#[async_trait]
impl Connector for SlackConnector {
    fn manifest(&self) -> &AppManifest {
        &self.manifest
    }

    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError> {
        if call.action != "send_message" {
            return Err(ActionError::fatal(format!(
                "the slack app has no action `{}`",
                call.action
            )));
        }
        let c = call
            .connection
            .ok_or_else(|| ActionError::fatal("this Slack step has no connection"))?;
        let url = need(c, "webhook_url", "Slack")?;
        let mut body = json!({ "text": text_in(call.input, "text")? });
        if let Some(b) = call.input.get("blocks").filter(|b| !b.is_null()) {
            body["blocks"] = b.clone();
        }
        let parsed = reqwest::Url::parse(url)
            .map_err(|_| ActionError::fatal("the Slack connection's webhook_url is not a URL"))?;
        send(
            "Slack",
            &parsed,
            self.client.post(parsed.clone()).json(&body),
        )
        .await?;
        Ok(json!({ "ok": true }))
    }
}

// ---- Chatwork ----

pub struct ChatworkConnector {
    manifest: AppManifest,
    client: reqwest::Client,
}

pub const CHATWORK_API: &str = "https://api.chatwork.com";

impl ChatworkConnector {
    pub fn new(client: reqwest::Client) -> Self {
        ChatworkConnector {
            manifest: AppManifest {
                id: "chatwork".into(),
                name: t("Chatwork", "Chatwork"),
                description: t(
                    "Post messages to a Chatwork room.",
                    "Chatwork のルームにメッセージを送ります。",
                ),
                connection: vec![
                    FieldSpec::new("api_token", FieldKind::Text, t("API token", "API トークン"))
                        .required()
                        .secret(),
                    FieldSpec::new("base_url", FieldKind::Text, t("API URL", "API URL"))
                        .default_value(json!(CHATWORK_API)),
                ],
                triggers: Vec::new(),
                actions: vec![send_action(
                    "send_message",
                    t("Send a message to a room", "ルームにメッセージを送る"),
                    vec![
                        FieldSpec::new("room_id", FieldKind::Text, t("Room ID", "ルーム ID"))
                            .required(),
                        FieldSpec::new("body", FieldKind::Text, t("Message", "本文")).required(),
                    ],
                    vec![OutputSpec::new(
                        "message_id",
                        FieldKind::Text,
                        t("Message ID", "メッセージ ID"),
                    )],
                )],
            },
            client,
        }
    }
}

#[async_trait]
impl Connector for ChatworkConnector {
    fn manifest(&self) -> &AppManifest {
        &self.manifest
    }

    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError> {
        if call.action != "send_message" {
            return Err(ActionError::fatal(format!(
                "the chatwork app has no action `{}`",
                call.action
            )));
        }
        let c = call
            .connection
            .ok_or_else(|| ActionError::fatal("this Chatwork step has no connection"))?;
        let token = need(c, "api_token", "Chatwork")?;
        let base = c
            .setting_str("base_url")
            .filter(|s| !s.is_empty())
            .unwrap_or(CHATWORK_API);
        let room = match call.input.get("room_id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() => {
                s.clone()
            }
            _ => {
                return Err(ActionError::fatal(
                    "input `room_id` must be the room's number",
                ))
            }
        };
        let url = format!("{}/v2/rooms/{room}/messages", base.trim_end_matches('/'));
        let parsed = reqwest::Url::parse(&url)
            .map_err(|_| ActionError::fatal("the Chatwork base_url is not a URL"))?;
        let req = self
            .client
            .post(parsed.clone())
            .header("X-ChatWorkToken", token)
            .form(&[("body", text_in(call.input, "body")?)]);
        let text = send("Chatwork", &parsed, req).await?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(json!({ "message_id": v.get("message_id").cloned().unwrap_or(Value::Null) }))
    }
}

// ---- email ----

pub struct EmailConnector {
    manifest: AppManifest,
}

impl Default for EmailConnector {
    fn default() -> Self {
        Self::new()
    }
}

impl EmailConnector {
    pub fn new() -> Self {
        EmailConnector {
            manifest: AppManifest {
                id: "email".into(),
                name: t("Email (SMTP)", "メール（SMTP）"),
                description: t(
                    "Send email through your SMTP server.",
                    "SMTP サーバーからメールを送ります。",
                ),
                connection: vec![
                    FieldSpec::new("host", FieldKind::Text, t("SMTP server", "SMTP サーバー"))
                        .required(),
                    FieldSpec::new("port", FieldKind::Integer, t("Port", "ポート"))
                        .default_value(json!(587)),
                    FieldSpec::new("security", FieldKind::Select, t("Security", "暗号化"))
                        .choices(&["starttls", "tls", "plain"])
                        .default_value(json!("starttls"))
                        .help(
                            "plain sends in clear: only for a server on the same machine",
                            "plain は暗号化しません（同じマシン上のサーバー専用）",
                        ),
                    FieldSpec::new("username", FieldKind::Text, t("Username", "ユーザー名")),
                    FieldSpec::new("password", FieldKind::Text, t("Password", "パスワード"))
                        .secret(),
                    FieldSpec::new("from", FieldKind::Text, t("From", "差出人")).required(),
                ],
                triggers: Vec::new(),
                actions: vec![send_action(
                    "send_email",
                    t("Send an email", "メールを送る"),
                    vec![
                        FieldSpec::new("to", FieldKind::Text, t("To", "宛先"))
                            .required()
                            .help(
                                "One address, or several separated by commas",
                                "1件、またはカンマ区切りで複数",
                            ),
                        FieldSpec::new("subject", FieldKind::Text, t("Subject", "件名")).required(),
                        FieldSpec::new("body", FieldKind::Text, t("Body", "本文")).required(),
                    ],
                    vec![OutputSpec::new(
                        "sent_to",
                        FieldKind::List,
                        t("Sent to", "送信先"),
                    )],
                )],
            },
        }
    }
}

fn mailbox(field: &str, s: &str) -> Result<Mailbox, ActionError> {
    s.trim().parse::<Mailbox>().map_err(|e| {
        ActionError::fatal(format!(
            "input `{field}`: `{}` is not an email address ({e})",
            s.trim()
        ))
    })
}

#[async_trait]
impl Connector for EmailConnector {
    fn manifest(&self) -> &AppManifest {
        &self.manifest
    }

    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError> {
        if call.action != "send_email" {
            return Err(ActionError::fatal(format!(
                "the email app has no action `{}`",
                call.action
            )));
        }
        let c = call
            .connection
            .ok_or_else(|| ActionError::fatal("this email step has no connection"))?;
        let host = need(c, "host", "email")?;
        let port = c
            .settings
            .get("port")
            .and_then(|p| p.as_u64().or_else(|| p.as_str()?.parse().ok()))
            .unwrap_or(587) as u16;
        let from = mailbox("from", need(c, "from", "email")?)?;
        let mut msg = Message::builder()
            .from(from)
            .subject(text_in(call.input, "subject")?);
        let mut sent_to = Vec::new();
        for addr in text_in(call.input, "to")?
            .split(',')
            .filter(|a| !a.trim().is_empty())
        {
            sent_to.push(addr.trim().to_string());
            msg = msg.to(mailbox("to", addr)?);
        }
        let email = msg
            .header(ContentType::TEXT_PLAIN)
            .body(text_in(call.input, "body")?.to_string())
            .map_err(|e| ActionError::fatal(format!("the email cannot be built: {e}")))?;
        let builder = match c.setting_str("security").unwrap_or("starttls") {
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            "plain" => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                host,
            )),
            _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
        }
        .map_err(|e| ActionError::fatal(format!("the SMTP server `{host}` cannot be used: {e}")))?;
        let mut builder = builder.port(port).timeout(Some(Duration::from_secs(30)));
        if let (Some(user), Some(pass)) = (c.setting_str("username"), c.setting_str("password")) {
            builder = builder.credentials(Credentials::new(user.to_string(), pass.to_string()));
        }
        builder.build().send(email).await.map_err(|e| {
            let msg = format!("the SMTP server `{host}:{port}` did not take the email: {e}");
            // Permanent SMTP replies (5xx) will not change on a retry; the rest may.
            if e.is_permanent() {
                ActionError::fatal(msg)
            } else {
                ActionError::retryable(msg)
            }
        })?;
        Ok(json!({ "sent_to": sent_to }))
    }
}
