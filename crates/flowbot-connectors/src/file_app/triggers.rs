//! An app file's triggers: webhooks read by its templates and checked by its signature
//! rule, and polling through one of its listing actions, with a cursor that never repeats
//! an item and never skips one.

use flowbot_core::template::Scope;
use flowbot_core::{ActionError, Connection, PollCall, Polled, WebhookCall};
use ring::hmac;
use serde_json::{json, Map, Value};

use super::format::{HmacAlgorithm, SignatureEncoding, SignatureSpec, TriggerDef};
use super::FileApp;

/// Where a poll stopped: the largest cursor value seen, and the ids of the items at it
/// (an API that lists "at or after" the cursor shows them again; they are not new).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Position {
    at: Option<String>,
    ids: Vec<String>,
    /// Everything at `at` was seen (a cursor kept as a plain value by an earlier flowbot,
    /// whose polls took only items strictly after it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    through: bool,
}

impl FileApp {
    /// The webhook triggers a flow listens to (all of the app's, when it names none).
    fn webhook_triggers<'a>(
        &'a self,
        events: &'a [String],
    ) -> impl Iterator<Item = &'a TriggerDef> {
        self.app
            .triggers
            .iter()
            .filter(move |t| t.webhook.is_some() && (events.is_empty() || events.contains(&t.id)))
    }

    pub(super) fn needs_connection_for_webhooks(&self, events: &[String]) -> bool {
        self.webhook_triggers(events).next().is_some()
            && self
                .app
                .webhooks
                .as_ref()
                .is_some_and(|w| w.signature.is_some())
    }

    /// How the app signs its webhooks, when it does.
    fn signature(&self) -> Option<&SignatureSpec> {
        self.app
            .webhooks
            .as_ref()
            .and_then(|w| w.signature.as_ref())
    }

    pub(super) fn check_signature(&self, call: &WebhookCall<'_>, now: i64) -> Result<(), String> {
        let Some(sig) = self.signature() else {
            return Ok(());
        };
        if self.webhook_triggers(call.events).next().is_none() {
            return Ok(());
        }
        let conn = call.connection.ok_or_else(|| {
            "the trigger has no connection to check the signature with: choose one".to_string()
        })?;
        verify(sig, &self.secret(sig, conn)?, call, now)
    }

    /// The headers that sign `raw` at `now` as the app's `signature` rule says, with the
    /// connection's secret — what the app itself would send (for `flowbot apps test`).
    /// None when the app's webhooks are not signed.
    pub fn sign_webhook(
        &self,
        conn: &Connection,
        raw: &[u8],
        now: i64,
    ) -> Result<Vec<(String, String)>, String> {
        let Some(sig) = self.signature() else {
            return Ok(Vec::new());
        };
        let secret = self.secret(sig, conn)?;
        let body = std::str::from_utf8(raw).map_err(|_| "the body is not UTF-8")?;
        let payload = signed_payload(sig, &now.to_string(), body);
        let tag = hmac::sign(&hmac_key(sig, &secret), payload.as_bytes());
        let encoded = match sig.encoding {
            SignatureEncoding::Hex => tag.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
            SignatureEncoding::Base64 => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
            }
        };
        let signed = format!("{}{encoded}", sig.prefix.as_deref().unwrap_or(""));
        let mut headers = Vec::new();
        match (&sig.signature_key, &sig.timestamp_key) {
            (Some(k), Some(t)) => {
                headers.push((sig.header.clone(), format!("{t}={now},{k}={signed}")))
            }
            (Some(k), None) => headers.push((sig.header.clone(), format!("{k}={signed}"))),
            _ => headers.push((sig.header.clone(), signed)),
        }
        if let Some(h) = &sig.timestamp_header {
            headers.push((h.clone(), now.to_string()));
        }
        Ok(headers)
    }

    fn secret(&self, sig: &SignatureSpec, conn: &Connection) -> Result<String, String> {
        let scope = self.scope(None, &Map::new(), Some(conn));
        let secret = self
            .render_text("the webhook secret", &sig.secret, &scope)
            .map_err(|e| e.message)?;
        if secret.is_empty() {
            return Err("the connection has no webhook secret to check the signature with".into());
        }
        Ok(secret)
    }

    pub(super) fn read_webhook(&self, call: WebhookCall<'_>) -> Result<Option<Value>, String> {
        let mut scope = Scope::new();
        scope.insert("body".into(), call.body.clone());
        scope.insert("headers".into(), Value::Object(call.headers.clone()));
        scope.insert("query".into(), Value::Object(call.query.clone()));
        let hooks = self.app.webhooks.clone().unwrap_or_default();
        // A request without the header or field is not an error here: it has no event
        // name (no trigger with `when` matches it) or no object id.
        let text = |t: &Option<String>, scope: &Scope| -> Option<String> {
            let t = t.as_ref()?;
            self.render_text("the webhook", t, scope)
                .ok()
                .filter(|s| !s.is_empty())
        };
        let event = text(&hooks.event, &scope);
        let object_id = text(&hooks.object_id, &scope);
        scope.insert("event".into(), json!(event));
        scope.insert("object_id".into(), json!(object_id));
        for t in self.webhook_triggers(call.events) {
            let w = t.webhook.as_ref().expect("a webhook trigger");
            if w.when.is_some() && w.when != event {
                continue;
            }
            let out = match &w.output {
                Some(o) => self
                    .render("the trigger's output", o, &scope)
                    .map_err(|e| e.message)?,
                None => json!({
                    "event": event,
                    "object_id": object_id,
                    "body": call.body,
                    "headers": call.headers,
                    "query": call.query,
                }),
            };
            return Ok(Some(out));
        }
        // An event none of the flow's triggers listens to: recorded, no run.
        Ok(None)
    }

    pub(super) async fn poll_items(&self, call: PollCall<'_>) -> Result<Polled, ActionError> {
        let t = self
            .app
            .trigger(call.trigger)
            .or_else(|| self.app.triggers.iter().find(|t| t.polling.is_some()))
            .filter(|t| t.polling.is_some())
            .ok_or_else(|| {
                ActionError::fatal(format!(
                    "the {} app has no polling trigger `{}`",
                    self.app.id, call.trigger
                ))
            })?;
        let p = t.polling.as_ref().expect("a polling trigger");
        let a = self
            .app
            .action(&p.action)
            .ok_or_else(|| ActionError::fatal(format!("no action `{}`", p.action)))?;
        let position: Position = match call.cursor.filter(|c| !c.is_empty()) {
            None => Position::default(),
            Some(c) => serde_json::from_str(c).unwrap_or_else(|_| Position {
                at: Some(c.to_string()),
                ids: Vec::new(),
                through: true,
            }),
        };
        let mut input: Map<String, Value> = call
            .options
            .iter()
            .filter(|(k, _)| k.as_str() != "interval")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let (Some(name), Some(at)) = (&p.cursor_input, &position.at) {
            input.insert(name.clone(), json!(at));
        }
        // The trigger's options, for the templates that read the listing.
        // Every declared option is there (null or its default when the flow does not set
        // it), so a template may name an optional one.
        let mut options: Map<String, Value> = t
            .options
            .iter()
            .map(|o| (o.name.clone(), o.default.clone().unwrap_or(Value::Null)))
            .collect();
        options.extend(call.options.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut with_options = Scope::new();
        with_options.insert("options".into(), Value::Object(options));
        if let (Some(t), Some(at)) = (&p.cursor_query, &position.at) {
            let name = self.render_text("the cursor parameter", t, &with_options)?;
            if !name.is_empty() {
                let mut query = match input.get("query") {
                    Some(Value::Object(q)) => q.clone(),
                    _ => Map::new(),
                };
                query.insert(name, json!(at));
                input.insert("query".into(), Value::Object(query));
            }
        }
        let scope = self.scope(Some(a), &input, call.connection);
        let output = self.call(a, &scope, call.connection).await?;
        let mut s = with_options.clone();
        s.insert("output".into(), output);
        let items = match self.render("the polled items", &json!(p.items), &s)? {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => {
                return Err(ActionError::fatal(format!(
                    "app `{}`: `items` of trigger `{}` gave {other}, not a list",
                    self.app.id, t.id
                )))
            }
        };
        let mut next = Position {
            at: position.at.clone(),
            ids: position.ids.clone(),
            through: position.through,
        };
        let mut fresh = Vec::new();
        for item in items {
            let mut s = with_options.clone();
            s.insert("item".into(), item.clone());
            let id = self.render_text("the item id", &p.id, &s)?;
            let at = match &p.cursor {
                Some(c) => Some(self.render_text("the item cursor", c, &s)?),
                None => None,
            };
            // Seen before: at the old cursor with a known id (or, without a cursor, any
            // id the last poll returned).
            let seen = match (&at, &position.at) {
                (Some(a), Some(old)) => {
                    cmp(a, old).is_lt()
                        || (a == old && (position.through || position.ids.contains(&id)))
                }
                (None, _) => position.ids.contains(&id),
                _ => false,
            };
            if seen {
                continue;
            }
            match (&at, &next.at) {
                (Some(a), Some(best)) if cmp(a, best).is_gt() => {
                    next.at = Some(a.clone());
                    next.ids = vec![id.clone()];
                    next.through = false;
                }
                (Some(a), Some(best)) if a == best => next.ids.push(id.clone()),
                (Some(a), None) => {
                    next.at = Some(a.clone());
                    next.ids = vec![id.clone()];
                }
                _ => {}
            }
            if p.cursor.is_none() {
                next.ids.push(id);
            }
            fresh.push(item);
        }
        if p.cursor.is_none() {
            // Without a cursor the ids of the last listing are what "seen" means; keep them
            // bounded.
            let keep = next.ids.len().saturating_sub(1000);
            next.ids.drain(..keep);
        }
        // When an item's position is its id, everything at the position was seen: the
        // position alone is kept (as the generic HTTP app always has).
        let cursor = match (&next.at, p.cursor.as_deref() == Some(p.id.as_str())) {
            (Some(at), true) => at.clone(),
            _ => serde_json::to_string(&next).expect("a position serialises"),
        };
        Ok(Polled {
            items: fresh,
            cursor: Some(cursor),
        })
    }
}

/// Cursor values compared as numbers when both are, else as text (ISO times sort as text).
fn cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    }
}

/// The `k=v` pairs of a header such as Stripe's `t=…,v1=…,v1=…`.
fn pairs(header: &str) -> Vec<(&str, &str)> {
    header
        .split(',')
        .filter_map(|p| p.trim().split_once('='))
        .collect()
}

fn verify(
    sig: &SignatureSpec,
    secret: &str,
    call: &WebhookCall<'_>,
    now: i64,
) -> Result<(), String> {
    let header = call
        .headers
        .get(&sig.header.to_ascii_lowercase())
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the request has no `{}` signature header", sig.header))?;
    let candidates: Vec<&str> = match &sig.signature_key {
        Some(k) => pairs(header)
            .into_iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v)
            .collect(),
        None => vec![header.trim()],
    };
    let timestamp = match (&sig.timestamp_key, &sig.timestamp_header) {
        (Some(k), _) => pairs(header)
            .into_iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.to_string()),
        (None, Some(h)) => call
            .headers
            .get(&h.to_ascii_lowercase())
            .and_then(Value::as_str)
            .map(str::to_string),
        (None, None) => None,
    };
    if sig.timestamp_key.is_some() || sig.timestamp_header.is_some() {
        let t: i64 = timestamp
            .as_deref()
            .and_then(|t| t.trim().parse().ok())
            .ok_or("the request's signed timestamp is missing or not a number")?;
        if (now - t).unsigned_abs() > sig.tolerance {
            return Err(format!(
                "the request's signed timestamp is {}s from now (at most {}s): a replay?",
                (now - t).abs(),
                sig.tolerance
            ));
        }
    }
    let body = std::str::from_utf8(call.raw).map_err(|_| "the signed body is not UTF-8")?;
    let payload = signed_payload(sig, timestamp.as_deref().unwrap_or(""), body);
    let key = hmac_key(sig, secret);
    let good = candidates.iter().any(|c| {
        let c = match &sig.prefix {
            Some(p) => c.strip_prefix(p.as_str()).unwrap_or(""),
            None => c,
        };
        let tag = match sig.encoding {
            SignatureEncoding::Hex => decode_hex(c),
            SignatureEncoding::Base64 => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(c).ok()
            }
        };
        // Constant-time: the comparison says nothing about how much of the tag was right.
        tag.is_some_and(|tag| hmac::verify(&key, payload.as_bytes(), &tag).is_ok())
    });
    if good {
        Ok(())
    } else {
        Err(format!("the `{}` signature does not match", sig.header))
    }
}

/// What the app signs: its `payload` rule with the timestamp and the body put in.
fn signed_payload(sig: &SignatureSpec, timestamp: &str, body: &str) -> String {
    sig.payload
        .replace("{timestamp}", timestamp)
        .replace("{body}", body)
}

fn hmac_key(sig: &SignatureSpec, secret: &str) -> hmac::Key {
    let algorithm = match sig.algorithm {
        HmacAlgorithm::HmacSha256 => hmac::HMAC_SHA256,
        HmacAlgorithm::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
    };
    hmac::Key::new(algorithm, secret.as_bytes())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
