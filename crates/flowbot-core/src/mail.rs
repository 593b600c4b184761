//! The mail trigger's rules: which received mails start the flow (conditions on the
//! sender, recipients, subject and body) and how large a mail it takes. The SMTP receiver
//! reads a mail into the trigger's value and asks [`MailFilter::accepts`]; the validator
//! reads the same options with [`filter_of`], so a rule that would not compile is refused
//! when the flow is saved, not when a mail arrives.

use regex::Regex;
use serde_json::{Map, Value};

/// The trigger-only app that receives mail.
pub const APP: &str = "mail";
/// Its one trigger.
pub const RECEIVED: &str = "received";
/// The most conditions a flow may set.
pub const MAX_CONDITIONS: usize = 20;
/// The longest condition value or pattern.
const MAX_VALUE: usize = 1000;
/// A user's pattern may not compile to more than this (the `regex` crate's size limit):
/// a pattern cannot take the receiver's memory.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// What a condition looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailField {
    /// The sender's address and display name.
    From,
    /// Every `To` and `Cc` address.
    To,
    Subject,
    /// The plain-text body (or the HTML body's text when the mail has no plain part).
    Body,
}

#[derive(Debug, Clone)]
pub enum MailOp {
    /// Holds the text, ignoring ASCII case.
    Contains(String),
    NotContains(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
pub struct MailCondition {
    pub field: MailField,
    pub op: MailOp,
}

/// Which mails start the flow: every condition must hold.
#[derive(Debug, Clone, Default)]
pub struct MailFilter {
    pub conditions: Vec<MailCondition>,
}

/// The trigger's options read as a filter; `Err((path, message))` for each condition that
/// cannot be read, the path relative to the options.
pub fn filter_of(options: &Map<String, Value>) -> Result<MailFilter, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let mut conditions = Vec::new();
    let list = match options.get("conditions") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => {
            return Err(vec![(
                "conditions".into(),
                "`conditions` must be a list of { field, op, value }".into(),
            )])
        }
    };
    if list.len() > MAX_CONDITIONS {
        problems.push((
            "conditions".into(),
            format!(
                "at most {MAX_CONDITIONS} conditions; this trigger has {}",
                list.len()
            ),
        ));
    }
    for (i, c) in list.iter().enumerate() {
        match condition(c) {
            Ok(c) => conditions.push(c),
            Err(m) => problems.push((format!("conditions[{i}]"), m)),
        }
    }
    if problems.is_empty() {
        Ok(MailFilter { conditions })
    } else {
        Err(problems)
    }
}

fn condition(c: &Value) -> Result<MailCondition, String> {
    let Some(obj) = c.as_object() else {
        return Err("a condition is { field, op, value }".into());
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "field" | "op" | "value"))
    {
        return Err(format!(
            "unknown key `{k}`: a condition is {{ field, op, value }}"
        ));
    }
    let field = match obj.get("field").and_then(Value::as_str) {
        Some("from") => MailField::From,
        Some("to") => MailField::To,
        Some("subject") => MailField::Subject,
        Some("body") => MailField::Body,
        Some(other) => {
            return Err(format!(
                "unknown field `{other}`: use from, to, subject or body"
            ))
        }
        None => return Err("`field` is required: from, to, subject or body".into()),
    };
    let value = match obj.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("`value` is required: the text or pattern to look for".into()),
    };
    if value.chars().count() > MAX_VALUE {
        return Err(format!("`value` is longer than {MAX_VALUE} characters"));
    }
    let op = match obj.get("op").and_then(Value::as_str).unwrap_or("contains") {
        "contains" => MailOp::Contains(value.to_lowercase()),
        "not_contains" => MailOp::NotContains(value.to_lowercase()),
        "regex" => MailOp::Regex(
            regex::RegexBuilder::new(&value)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("the pattern does not compile: {e}"))?,
        ),
        other => {
            return Err(format!(
                "unknown op `{other}`: use contains, not_contains or regex"
            ))
        }
    };
    Ok(MailCondition { field, op })
}

impl MailFilter {
    /// Whether a received mail (the trigger's value, as the receiver builds it) starts the
    /// flow.
    pub fn accepts(&self, mail: &Value) -> bool {
        self.conditions.iter().all(|c| {
            let text = field_text(mail, c.field);
            match &c.op {
                MailOp::Contains(v) => text.to_lowercase().contains(v.as_str()),
                MailOp::NotContains(v) => !text.to_lowercase().contains(v.as_str()),
                MailOp::Regex(r) => r.is_match(&text),
            }
        })
    }
}

/// The text a condition on `field` reads from the trigger's value.
fn field_text(mail: &Value, field: MailField) -> String {
    let s = |k: &str| {
        mail.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let addresses = |k: &str| -> Vec<String> {
        mail.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(address_text).collect())
            .unwrap_or_default()
    };
    match field {
        MailField::From => mail.get("from").map(address_text).unwrap_or_default(),
        MailField::To => [addresses("to"), addresses("cc")].concat().join(", "),
        MailField::Subject => s("subject"),
        MailField::Body => {
            let text = s("text");
            if text.is_empty() {
                s("html")
            } else {
                text
            }
        }
    }
}

/// `Name <address>` of an address object `{ name, address }`.
fn address_text(a: &Value) -> String {
    let name = a.get("name").and_then(Value::as_str).unwrap_or("");
    let address = a.get("address").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        address.to_string()
    } else {
        format!("{name} <{address}>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mail() -> Value {
        json!({
            "from": { "name": "山田 太郎", "address": "taro@example.jp" },
            "to": [{ "name": "", "address": "abc@in.example.com" }],
            "cc": [{ "name": "Sales", "address": "sales@example.com" }],
            "subject": "【お問い合わせ】注文について",
            "text": "注文番号 A-1024 が届きません",
            "html": "",
        })
    }

    fn filter(conditions: Value) -> Result<MailFilter, Vec<(String, String)>> {
        filter_of(json!({ "conditions": conditions }).as_object().unwrap())
    }

    #[test]
    fn every_condition_must_hold() {
        let cases = [
            (json!([]), true),
            (
                json!([{ "field": "subject", "value": "お問い合わせ" }]),
                true,
            ),
            (
                json!([{ "field": "subject", "op": "contains", "value": "返品" }]),
                false,
            ),
            (json!([{ "field": "from", "value": "@EXAMPLE.JP" }]), true),
            (json!([{ "field": "from", "value": "山田" }]), true),
            (json!([{ "field": "to", "value": "sales@" }]), true),
            (
                json!([{ "field": "body", "op": "regex", "value": "A-\\d{4}" }]),
                true,
            ),
            (
                json!([{ "field": "body", "op": "regex", "value": "^A-" }]),
                false,
            ),
            (
                json!([{ "field": "body", "op": "not_contains", "value": "至急" }]),
                true,
            ),
            (
                json!([
                    { "field": "subject", "value": "注文" },
                    { "field": "from", "value": "other.example" }
                ]),
                false,
            ),
        ];
        for (conditions, expected) in cases {
            let f = filter(conditions.clone()).unwrap();
            assert_eq!(f.accepts(&mail()), expected, "{conditions}");
        }
    }

    #[test]
    fn the_body_falls_back_to_the_html() {
        let mut m = mail();
        m["text"] = json!("");
        m["html"] = json!("<p>至急ご確認ください</p>");
        let f = filter(json!([{ "field": "body", "value": "至急" }])).unwrap();
        assert!(f.accepts(&m));
    }

    #[test]
    fn problems_name_the_condition() {
        let problems = filter(json!([
            { "field": "subject", "value": "ok" },
            { "field": "sender", "value": "x" },
            { "field": "body", "op": "regex", "value": "(" },
            { "field": "body", "op": "like", "value": "x" },
            { "field": "body" },
            "text"
        ]))
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "conditions[1]",
                "conditions[2]",
                "conditions[3]",
                "conditions[4]",
                "conditions[5]"
            ]
        );
        assert!(
            problems[0].1.contains("unknown field `sender`"),
            "{problems:?}"
        );
        assert!(problems[1].1.contains("does not compile"), "{problems:?}");
        let many: Vec<Value> = (0..21)
            .map(|_| json!({ "field": "subject", "value": "x" }))
            .collect();
        assert!(filter(Value::Array(many)).is_err());
    }
}
