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
    /// A file sent with the answer, kept in the store; its value is a [`FileRef`].
    File,
}

impl FormKind {
    pub const ALL: [(&'static str, FormKind); 11] = [
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
        ("file", FormKind::File),
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
    /// Files: the largest taken, in bytes.
    pub max_size: u64,
    /// Files: the kinds taken — extensions (`pdf`) or media types (`image/png`,
    /// `image/*`); empty: any.
    pub accept: Vec<String>,
}

/// The largest file a form field may take, and the default.
pub const MAX_FILE_SIZE: u64 = 25 * 1024 * 1024;
pub const DEFAULT_FILE_SIZE: u64 = 10 * 1024 * 1024;

/// A file as an obtained value: what later steps read and send (an email attachment, a
/// multipart part). The bytes are in the store under `file_id`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FileRef {
    pub file_id: String,
    pub name: String,
    pub size: u64,
    pub content_type: String,
    /// Hex SHA-256 of the bytes, checked when they are read back.
    pub sha256: String,
}

impl FileRef {
    /// A value that is a file reference (an object with `file_id`, `name`, `size`…).
    pub fn from_value(v: &Value) -> Option<FileRef> {
        v.get("file_id")?;
        serde_json::from_value(v.clone()).ok()
    }
}

impl FormField {
    /// Whether a file of this name and media type is of a kind the field takes.
    pub fn accepts(&self, name: &str, content_type: &str) -> bool {
        if self.accept.is_empty() {
            return true;
        }
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        let ct = content_type.to_ascii_lowercase();
        self.accept.iter().any(|a| {
            let a = a.trim().trim_start_matches('.').to_ascii_lowercase();
            match a.split_once('/') {
                Some((major, "*")) => ct.split_once('/').is_some_and(|(m, _)| m == major),
                Some(_) => ct == a,
                None => ext == a,
            }
        })
    }

    /// Why a file is refused for being larger than the field takes.
    pub fn too_large(&self) -> FieldError {
        let mb = self.max_size as f64 / (1024.0 * 1024.0);
        err(
            format!("The file is larger than {mb:.1} MB."),
            format!("ファイルが大きすぎます（{mb:.1} MB まで）。"),
        )
    }
}

impl FormSpec {
    pub fn has_files(&self) -> bool {
        self.fields.iter().any(|f| f.kind == FormKind::File)
    }
}

/// `10MB`, `500KB`, `1048576`: a size in bytes.
fn size_of(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let t = v.as_str()?.trim().to_ascii_uppercase().replace(' ', "");
    let (num, mult) = if let Some(n) = t.strip_suffix("MB") {
        (n, 1024 * 1024)
    } else if let Some(n) = t.strip_suffix("KB") {
        (n, 1024)
    } else if let Some(n) = t.strip_suffix('B') {
        (n, 1)
    } else {
        (t.as_str(), 1)
    };
    num.parse::<f64>()
        .ok()
        .filter(|n| *n >= 0.0)
        .map(|n| (n * mult as f64) as u64)
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
    "max_size",
    "accept",
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
        let max_size = match m.get("max_size") {
            None => DEFAULT_FILE_SIZE,
            Some(v) => match size_of(v) {
                Some(n) if n > 0 && n <= MAX_FILE_SIZE => n,
                _ => {
                    problems.push((
                        at("max_size"),
                        format!(
                            "`max_size` is a size up to {} MB, such as `5MB`",
                            MAX_FILE_SIZE / (1024 * 1024)
                        ),
                    ));
                    DEFAULT_FILE_SIZE
                }
            },
        };
        let accept: Vec<String> = match m.get("accept") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(one)) => one.split(',').map(|x| x.trim().to_string()).collect(),
            Some(_) => {
                problems.push((
                    at("accept"),
                    "`accept` is a list such as `[pdf, image/*]`".into(),
                ));
                Vec::new()
            }
        };
        fields.push(FormField {
            max_size,
            accept,
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
                        FormKind::File => Value::Null,
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
    // A file's answer is the reference the server made when it took the file in.
    if f.kind == FormKind::File {
        let r = match given {
            [one] => serde_json::from_str::<FileRef>(one).ok(),
            _ => None,
        };
        let Some(r) = r else {
            return Err(err("Attach one file.", "ファイルを1つ添付してください。"));
        };
        if r.size > f.max_size {
            return Err(f.too_large());
        }
        if !f.accepts(&r.name, &r.content_type) {
            return Err(err(
                format!("This kind of file is not taken ({}).", f.accept.join(", ")),
                format!(
                    "この種類のファイルは添付できません（{}）。",
                    f.accept.join(", ")
                ),
            ));
        }
        return Ok(serde_json::to_value(r).unwrap_or(Value::Null));
    }
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
        FormKind::MultiSelect | FormKind::File => unreachable!("handled above"),
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
