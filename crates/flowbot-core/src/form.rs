//! The form trigger (フォームトリガー): a flow started by someone filling in a form. Its
//! fields are the trigger's `fields` option; this module reads them (every problem with
//! the path of the field it is about) and checks an answer against them, field by field, so
//! a page can show each error next to its field and nothing invalid is ever stored.
//!
//! ```yaml
//! trigger:
//!   app: form
//!   options:
//!     title: お問い合わせ
//!     fields:
//!       - { key: name, label: お名前, type: text, required: true, max_length: 50 }
//!       - { key: email, label: { ja: メールアドレス, en: Email }, type: email, required: true }
//!       - { key: topic, label: 種別, type: select, choices: [見積, 不具合, その他] }
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::manifest::Text;

/// The most fields a form may have, and the longest answer a text field takes by default.
pub const MAX_FIELDS: usize = 100;
pub const DEFAULT_MAX_LENGTH: usize = 5000;

/// A field's kind: what it is drawn as and what an answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    Text,
    LongText,
    Number,
    Date,
    DateTime,
    Email,
    Phone,
    Select,
    MultiSelect,
    Checkbox,
}

impl FormKind {
    pub const ALL: [(&'static str, FormKind); 10] = [
        ("text", FormKind::Text),
        ("long_text", FormKind::LongText),
        ("number", FormKind::Number),
        ("date", FormKind::Date),
        ("datetime", FormKind::DateTime),
        ("email", FormKind::Email),
        ("phone", FormKind::Phone),
        ("select", FormKind::Select),
        ("multi_select", FormKind::MultiSelect),
        ("checkbox", FormKind::Checkbox),
    ];

    pub fn name(self) -> &'static str {
        FormKind::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("text")
    }
}

#[derive(Debug, Clone)]
pub struct FormField {
    pub key: String,
    pub label: Text,
    pub help: Text,
    pub kind: FormKind,
    pub required: bool,
    pub default: Option<String>,
    pub choices: Vec<String>,
    pub min_length: Option<usize>,
    pub max_length: usize,
    pub pattern: Option<regex::Regex>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct FormSpec {
    pub title: Text,
    pub description: Text,
    /// What the page says once an answer is stored.
    pub thanks: Text,
    /// Only signed-in members may answer.
    pub members_only: bool,
    pub fields: Vec<FormField>,
}

fn words(v: Option<&Value>, path: &str, problems: &mut Vec<(String, String)>) -> Text {
    match v {
        None | Some(Value::Null) => Text::default(),
        Some(Value::String(s)) => Text {
            ja: s.clone(),
            en: s.clone(),
        },
        Some(Value::Object(m)) => {
            let get = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            for k in m.keys().filter(|k| *k != "ja" && *k != "en") {
                problems.push((
                    format!("{path}.{k}"),
                    format!("words are given as `ja` and `en`, not `{k}`"),
                ));
            }
            // One language given serves both.
            let (ja, en) = (get("ja"), get("en"));
            Text {
                ja: if ja.is_empty() { en.clone() } else { ja },
                en: if en.is_empty() { get("ja") } else { en },
            }
        }
        Some(_) => {
            problems.push((path.to_string(), "give text, or `{ ja: …, en: … }`".into()));
            Text::default()
        }
    }
}

const FIELD_KEYS: &[&str] = &[
    "key",
    "label",
    "help",
    "type",
    "required",
    "default",
    "choices",
    "min_length",
    "max_length",
    "pattern",
    "min",
    "max",
];

/// Read a form trigger's options; every problem comes with the path of what it is about
/// (relative to the options, e.g. `fields[2].type`).
pub fn parse(options: &Map<String, Value>) -> Result<FormSpec, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let title = words(options.get("title"), "title", &mut problems);
    let description = words(options.get("description"), "description", &mut problems);
    let thanks = words(options.get("thanks"), "thanks", &mut problems);
    let members_only = options
        .get("members_only")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let list = match options.get("fields") {
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => {
            problems.push(("fields".into(), "`fields` is a list of fields".into()));
            &[]
        }
        None => {
            problems.push((
                "fields".into(),
                "a form needs `fields`: e.g. `- { key: name, label: お名前, type: text }`".into(),
            ));
            &[]
        }
    };
    if list.len() > MAX_FIELDS {
        problems.push((
            "fields".into(),
            format!("a form has at most {MAX_FIELDS} fields"),
        ));
    }
    let mut fields: Vec<FormField> = Vec::new();
    for (i, f) in list.iter().enumerate().take(MAX_FIELDS) {
        let at = |k: &str| format!("fields[{i}].{k}");
        let Value::Object(m) = f else {
            problems.push((
                format!("fields[{i}]"),
                "a field is a map: key, label, type…".into(),
            ));
            continue;
        };
        for k in m.keys().filter(|k| !FIELD_KEYS.contains(&k.as_str())) {
            problems.push((at(k), format!("unknown field setting `{k}`")));
        }
        let key = m
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let key_ok = !key.is_empty()
            && key.len() <= 64
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !key.starts_with(|c: char| c.is_ascii_digit());
        if !key_ok {
            problems.push((
                at("key"),
                "a field's key is 1 to 64 letters, digits or `_`, not starting with a digit: later steps use it as `trigger.KEY`".into(),
            ));
        } else if fields.iter().any(|x| x.key == key) {
            problems.push((at("key"), format!("the key `{key}` is used twice")));
        }
        let kind_name = m.get("type").and_then(Value::as_str).unwrap_or("text");
        let kind = match FormKind::ALL.iter().find(|(n, _)| *n == kind_name) {
            Some((_, k)) => *k,
            None => {
                let names: Vec<&str> = FormKind::ALL.iter().map(|(n, _)| *n).collect();
                problems.push((
                    at("type"),
                    format!("`{kind_name}` is not a field type: {}", names.join(", ")),
                ));
                FormKind::Text
            }
        };
        let label = words(m.get("label"), &at("label"), &mut problems);
        if label.ja.is_empty() && label.en.is_empty() {
            problems.push((at("label"), "a field needs a label people read".into()));
        }
        let choices: Vec<String> = match m.get("choices") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|c| match c {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            Some(_) => {
                problems.push((at("choices"), "`choices` is a list".into()));
                Vec::new()
            }
        };
        if matches!(kind, FormKind::Select | FormKind::MultiSelect) && choices.is_empty() {
            problems.push((at("choices"), "a select field needs `choices`".into()));
        }
        let count = |k: &str, problems: &mut Vec<(String, String)>| match m.get(k) {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n as usize),
                None => {
                    problems.push((at(k), format!("`{k}` is a whole number")));
                    None
                }
            },
        };
        let number = |k: &str, problems: &mut Vec<(String, String)>| match m.get(k) {
            None => None,
            Some(v) => match v.as_f64() {
                Some(n) => Some(n),
                None => {
                    problems.push((at(k), format!("`{k}` is a number")));
                    None
                }
            },
        };
        let min_length = count("min_length", &mut problems);
        let max_length = count("max_length", &mut problems)
            .unwrap_or(DEFAULT_MAX_LENGTH)
            .min(100_000);
        let pattern = match m.get("pattern").and_then(Value::as_str) {
            None => None,
            Some(p) => match regex::RegexBuilder::new(&format!("^(?:{p})$"))
                .size_limit(1 << 20)
                .build()
            {
                Ok(r) => Some(r),
                Err(e) => {
                    problems.push((at("pattern"), format!("the pattern does not read: {e}")));
                    None
                }
            },
        };
        fields.push(FormField {
            key,
            label,
            help: words(m.get("help"), &at("help"), &mut problems),
            kind,
            required: m.get("required").and_then(Value::as_bool).unwrap_or(false),
            default: m.get("default").map(|d| match d {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            choices,
            min_length,
            max_length,
            pattern,
            min: number("min", &mut problems),
            max: number("max", &mut problems),
        });
    }
    if problems.is_empty() {
        Ok(FormSpec {
            title,
            description,
            thanks,
            members_only,
            fields,
        })
    } else {
        Err(problems)
    }
}

/// Why an answer to a field is refused, in both languages.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub en: String,
    pub ja: String,
}

fn err(en: impl Into<String>, ja: impl Into<String>) -> FieldError {
    FieldError {
        en: en.into(),
        ja: ja.into(),
    }
}

/// Check the answers (`name=value` pairs as posted; a multi-select repeats its name): the
/// obtained values by key, or an error for each field that is wrong.
pub fn check(
    spec: &FormSpec,
    answers: &[(String, String)],
) -> Result<Map<String, Value>, BTreeMap<String, FieldError>> {
    let mut out = Map::new();
    let mut errors = BTreeMap::new();
    for f in &spec.fields {
        let given: Vec<&str> = answers
            .iter()
            .filter(|(k, _)| *k == f.key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        if given.is_empty() {
            if f.required {
                errors.insert(
                    f.key.clone(),
                    err("This is required.", "入力してください。"),
                );
            } else {
                out.insert(
                    f.key.clone(),
                    match f.kind {
                        FormKind::Checkbox => Value::Bool(false),
                        FormKind::MultiSelect => Value::Array(Vec::new()),
                        _ => Value::Null,
                    },
                );
            }
            continue;
        }
        match one(f, &given) {
            Ok(v) => {
                out.insert(f.key.clone(), v);
            }
            Err(e) => {
                errors.insert(f.key.clone(), e);
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn one(f: &FormField, given: &[&str]) -> Result<Value, FieldError> {
    if f.kind == FormKind::MultiSelect {
        for g in given {
            if !f.choices.iter().any(|c| c == g) {
                return Err(err("Choose from the list.", "一覧から選んでください。"));
            }
        }
        return Ok(Value::Array(
            given.iter().map(|g| Value::String(g.to_string())).collect(),
        ));
    }
    if given.len() > 1 {
        return Err(err("Give one answer.", "回答は1つにしてください。"));
    }
    let v = given[0];
    let chars = v.chars().count();
    if chars > f.max_length {
        return Err(err(
            format!("At most {} characters.", f.max_length),
            format!("{}文字以内で入力してください。", f.max_length),
        ));
    }
    if let Some(min) = f.min_length.filter(|m| chars < *m) {
        return Err(err(
            format!("At least {min} characters."),
            format!("{min}文字以上で入力してください。"),
        ));
    }
    if v.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(err(
            "Remove the control characters.",
            "制御文字は使えません。",
        ));
    }
    if f.kind != FormKind::LongText && v.contains(['\n', '\r']) {
        return Err(err("One line only.", "1行で入力してください。"));
    }
    if let Some(p) = &f.pattern {
        if !p.is_match(v) {
            return Err(err("The format is not right.", "形式が正しくありません。"));
        }
    }
    let value = match f.kind {
        FormKind::Text | FormKind::LongText => Value::String(v.to_string()),
        FormKind::Number => {
            let n: f64 = v
                .replace([',', '，'], "")
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| err("Enter a number.", "数値を入力してください。"))?;
            if f.min.is_some_and(|m| n < m) || f.max.is_some_and(|m| n > m) {
                let range = |x: Option<f64>| x.map(|n| n.to_string()).unwrap_or_default();
                return Err(err(
                    format!("Between {} and {}.", range(f.min), range(f.max)),
                    format!(
                        "{}〜{}の範囲で入力してください。",
                        range(f.min),
                        range(f.max)
                    ),
                ));
            }
            // A whole number stays whole (3000, not 3000.0, in a message or a record).
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                Value::from(n as i64)
            } else {
                serde_json::Number::from_f64(n)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        FormKind::Date => {
            let d: jiff::civil::Date = v.parse().map_err(|_| {
                err(
                    "Enter a date (YYYY-MM-DD).",
                    "日付を入力してください（YYYY-MM-DD）。",
                )
            })?;
            Value::String(d.to_string())
        }
        FormKind::DateTime => {
            let d: jiff::civil::DateTime = v
                .parse()
                .map_err(|_| err("Enter a date and time.", "日時を入力してください。"))?;
            Value::String(d.to_string())
        }
        FormKind::Email => {
            let ok = v.split_once('@').is_some_and(|(u, h)| {
                !u.is_empty() && h.contains('.') && !h.starts_with('.') && !h.ends_with('.')
            }) && !v.contains(char::is_whitespace)
                && v.len() <= 254;
            if !ok {
                return Err(err(
                    "Enter an email address.",
                    "メールアドレスを入力してください。",
                ));
            }
            Value::String(v.to_string())
        }
        FormKind::Phone => {
            let digits = v.chars().filter(char::is_ascii_digit).count();
            let ok = (7..=15).contains(&digits)
                && v.chars().all(|c| c.is_ascii_digit() || " -+()".contains(c));
            if !ok {
                return Err(err("Enter a phone number.", "電話番号を入力してください。"));
            }
            Value::String(v.to_string())
        }
        FormKind::Select => {
            if !f.choices.iter().any(|c| c == v) {
                return Err(err("Choose from the list.", "一覧から選んでください。"));
            }
            Value::String(v.to_string())
        }
        FormKind::Checkbox => Value::Bool(matches!(v, "on" | "true" | "1" | "yes")),
        FormKind::MultiSelect => unreachable!("handled above"),
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> FormSpec {
        let opts = json!({
            "title": "お問い合わせ",
            "fields": [
                { "key": "name", "label": "お名前", "required": true, "max_length": 10 },
                { "key": "email", "label": { "ja": "メール", "en": "Email" }, "type": "email", "required": true },
                { "key": "count", "label": "数量", "type": "number", "min": 1, "max": 10 },
                { "key": "topic", "label": "種別", "type": "select", "choices": ["見積", "その他"] },
                { "key": "tags", "label": "タグ", "type": "multi_select", "choices": ["a", "b"] },
                { "key": "zip", "label": "郵便番号", "pattern": "[0-9]{3}-[0-9]{4}" },
                { "key": "agree", "label": "同意", "type": "checkbox" }
            ]
        });
        parse(opts.as_object().unwrap()).unwrap()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_good_answer_becomes_typed_values() {
        let v = check(
            &spec(),
            &pairs(&[
                ("name", " 山田 "),
                ("email", "yamada@example.co.jp"),
                ("count", "3"),
                ("topic", "見積"),
                ("tags", "a"),
                ("tags", "b"),
                ("zip", "100-0001"),
                ("agree", "on"),
            ]),
        )
        .unwrap();
        assert_eq!(
            Value::Object(v),
            json!({ "name": "山田", "email": "yamada@example.co.jp", "count": 3, "topic": "見積",
                    "tags": ["a", "b"], "zip": "100-0001", "agree": true })
        );
    }

    #[test]
    fn every_wrong_field_is_named_with_its_reason() {
        let e = check(
            &spec(),
            &pairs(&[
                ("name", "とても長い名前の人です。"),
                ("email", "not-an-email"),
                ("count", "11"),
                ("topic", "ほか"),
                ("tags", "c"),
                ("zip", "1000001"),
            ]),
        )
        .unwrap_err();
        let keys: Vec<&str> = e.keys().map(String::as_str).collect();
        assert_eq!(keys, ["count", "email", "name", "tags", "topic", "zip"]);
        assert_eq!(e["name"].ja, "10文字以内で入力してください。");
        let missing = check(&spec(), &[]).unwrap_err();
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert_eq!(missing["email"].en, "This is required.");
    }

    #[test]
    fn a_form_with_problems_names_each_one() {
        let opts = json!({ "fields": [
            { "key": "1st", "label": "x" },
            { "key": "a", "type": "colour", "label": "x" },
            { "key": "a", "label": "y", "type": "select" },
            { "key": "b", "label": "z", "pattern": "(" , "colour": 1 }
        ]});
        let p = parse(opts.as_object().unwrap()).unwrap_err();
        let paths: Vec<&str> = p.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "fields[0].key",
                "fields[1].type",
                "fields[2].key",
                "fields[2].choices",
                "fields[3].colour",
                "fields[3].pattern"
            ]
        );
    }
}
