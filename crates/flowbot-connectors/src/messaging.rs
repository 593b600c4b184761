//! Sending mail (SMTP): an action and, for the server, a failure-notification channel.
//! Slack and Chatwork, the other channels, are app files (`apps/`). Sending is not
//! idempotent: a message in doubt is re-decided by the runner, never silently repeated.

use std::time::Duration;

use async_trait::async_trait;
use flowbot_core::manifest::{ActionSpec, AppManifest, FieldKind, FieldSpec, OutputSpec, Text};
use flowbot_core::{ActionCall, ActionError, Connection, Connector};
use lettre::message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Map, Value};

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
        usage: false,
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
                        FieldSpec::new("attachments", FieldKind::List, t("Attachments", "添付ファイル"))
                            .help(
                                "Files sent with a form, e.g. {{ trigger.receipt }} (25 MB in all)",
                                "フォームで送られたファイル（例: {{ trigger.receipt }}、合計 25 MB まで）",
                            ),
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

/// The most an email's attachments may weigh together.
const MAX_ATTACHMENTS: u64 = 25 * 1024 * 1024;

/// The files an `attachments` input names: one file, or a list of them (empty entries
/// skipped: an optional file field left empty).
fn attachments(v: Option<&Value>) -> Result<Vec<flowbot_core::files::FileRef>, ActionError> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a.clone(),
        Some(one) => vec![one.clone()],
    };
    items
        .iter()
        .filter(|x| !x.is_null() && x.as_str() != Some(""))
        .map(|x| {
            flowbot_core::files::FileRef::from_value(x).ok_or_else(|| {
                ActionError::fatal(
                    "input `attachments`: give files sent with a form, e.g. {{ trigger.receipt }}",
                )
            })
        })
        .collect()
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
        let body = text_in(call.input, "body")?.to_string();
        let files = attachments(call.input.get("attachments"))?;
        let email = if files.is_empty() {
            msg.header(ContentType::TEXT_PLAIN).body(body)
        } else {
            let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(body));
            let mut total = 0u64;
            for f in &files {
                total += f.size;
                if total > MAX_ATTACHMENTS {
                    return Err(ActionError::fatal(format!(
                        "the attachments are larger than {} MB in all",
                        MAX_ATTACHMENTS / (1024 * 1024)
                    )));
                }
                let bytes = flowbot_core::files::read(f)
                    .await
                    .map_err(ActionError::fatal)?;
                let ct = ContentType::parse(&f.content_type).unwrap_or_else(|_| {
                    ContentType::parse("application/octet-stream").expect("a media type")
                });
                parts = parts.singlepart(Attachment::new(f.name.clone()).body(bytes, ct));
            }
            msg.multipart(parts)
        }
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
