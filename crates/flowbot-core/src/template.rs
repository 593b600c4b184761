//! Templates over obtained values (取得した値), rendered with minijinja.
//!
//! Two rules matter to users: a reference to a value that does not exist is an error naming
//! it (strict undefined — never an empty string silently sent to an API), and a template that
//! is exactly one `{{ expression }}` keeps the value's type, so `{{ search.totalSize }}` is the
//! number 0, a list stays a list and null stays null. Output is never HTML-escaped: an
//! `O'Brien` sent to Salesforce must stay `O'Brien`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use jiff::{civil, tz::TimeZone, Timestamp, Zoned};
use minijinja::value::{Kwargs, Value as MjValue};
use minijinja::{AutoEscape, Environment, Error as MjError, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value};

/// The obtained values visible to a template: `trigger` and one entry per step id.
pub type Scope = Map<String, Value>;

/// Names the template environment provides; they are never obtained values.
pub const GLOBAL_FUNCTIONS: &[&str] = &["now", "range", "dict", "namespace"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    /// Line and column inside the template text, for syntax errors.
    pub position: Option<(usize, usize)>,
}

/// The flow template environment, shared by every render.
pub fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_keep_trailing_newline(true);
        env.add_filter("truncate", truncate);
        env.add_filter("json", json);
        env.add_filter("date_format", date_format);
        env.add_filter("date_parse", date_parse);
        env.add_filter("soql_quote", soql_quote);
        env.add_filter("required", required);
        env.add_filter("at_path", at_path);
        env.add_filter("b64encode", b64encode);
        env.add_filter("wrap_values", wrap_values);
        env.add_filter("merge", merge);
        env.add_filter("uuid5", uuid5);
        env.add_filter("unwrap_values", unwrap_values);
        env.add_function("now", now);
        crate::transform::register_filters(&mut env);
        env
    })
}

/// Whether a string contains template syntax at all (plain strings skip the engine).
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// If `s` is exactly one `{{ expression }}`, the expression inside.
fn whole_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#")
    {
        return None;
    }
    Some(inner)
}

/// Render one string. Plain strings come back as they are.
pub fn render_str(src: &str, scope: &Scope) -> Result<Value, TemplateError> {
    if !is_template(src) {
        return Ok(Value::String(src.to_string()));
    }
    render_with(src, &MjValue::from_serialize(scope), scope)
}

/// A compiled whole-expression template, shared by every run that renders the same text.
type Compiled = Arc<minijinja::Expression<'static, 'static>>;

/// Compiling was a tenth of a run's template work; a flow's few dozen templates are
/// compiled once per process instead. Bounded: a process that sees more distinct
/// templates than this (many flows, edited often) starts the cache afresh.
fn compiled(expr_src: &str) -> Result<Compiled, TemplateError> {
    const MAX: usize = 4096;
    static CACHE: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(e) = cache.lock().expect("template cache").get(expr_src) {
        return Ok(e.clone());
    }
    let expr = Arc::new(
        environment()
            .compile_expression_owned(expr_src.to_string())
            .map_err(syntax_error)?,
    );
    let mut cache = cache.lock().expect("template cache");
    if cache.len() >= MAX {
        cache.clear();
    }
    cache.insert(expr_src.to_string(), expr.clone());
    Ok(expr)
}

fn render_with(src: &str, ctx: &MjValue, scope: &Scope) -> Result<Value, TemplateError> {
    let env = environment();
    if let Some(expr_src) = whole_expression(src) {
        let expr = compiled(expr_src)?;
        let out = expr
            .eval(ctx)
            .map_err(|e| runtime_error(e, &expr.undeclared_variables(true), scope))?;
        if out.is_undefined() {
            let refs = expr.undeclared_variables(true);
            return Err(missing(&refs, scope).unwrap_or_else(|| TemplateError {
                message: format!("`{}` is not defined", expr_src.trim()),
                position: None,
            }));
        }
        return serde_json::to_value(&out).map_err(|e| TemplateError {
            message: format!("the value cannot be used: {e}"),
            position: None,
        });
    }
    let tmpl = env.template_from_str(src).map_err(syntax_error)?;
    tmpl.render(ctx)
        .map(Value::String)
        .map_err(|e| runtime_error(e, &tmpl.undeclared_variables(true), scope))
}

/// Render every string inside a JSON value (an action's input, a set step's values).
/// Errors name the field path inside the value, e.g. `fields.Name`.
pub fn render_value(v: &Value, scope: &Scope) -> Result<Value, (String, TemplateError)> {
    let ctx = MjValue::from_serialize(scope);
    render_rec(v, scope, &ctx, String::new())
}

fn render_rec(
    v: &Value,
    scope: &Scope,
    ctx: &MjValue,
    path: String,
) -> Result<Value, (String, TemplateError)> {
    match v {
        Value::String(s) if is_template(s) => render_with(s, ctx, scope).map_err(|e| (path, e)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, it)| render_rec(it, scope, ctx, format!("{path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, it) in map {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.insert(k.clone(), render_rec(it, scope, ctx, child)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// What a template refers to, checked without rendering: the top-level names it reads.
pub fn references(src: &str) -> Result<BTreeSet<String>, TemplateError> {
    if !is_template(src) {
        return Ok(BTreeSet::new());
    }
    let env = environment();
    let names = match whole_expression(src) {
        Some(e) => env
            .compile_expression(e)
            .map_err(syntax_error)?
            .undeclared_variables(false),
        None => env
            .template_from_str(src)
            .map_err(syntax_error)?
            .undeclared_variables(false),
    };
    Ok(names
        .into_iter()
        .filter(|n| !GLOBAL_FUNCTIONS.contains(&n.as_str()))
        .collect())
}

/// Every string in a JSON value with its field path, for checking templates.
pub fn strings(v: &Value) -> Vec<(String, &str)> {
    fn go<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
        match v {
            Value::String(s) => out.push((path, s)),
            Value::Array(a) => {
                for (i, it) in a.iter().enumerate() {
                    go(it, format!("{path}[{i}]"), out)
                }
            }
            Value::Object(m) => {
                for (k, it) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    go(it, p, out)
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    go(v, String::new(), &mut out);
    out
}

fn syntax_error(e: MjError) -> TemplateError {
    let line = e.line().unwrap_or(1);
    let column = e
        .range()
        .and_then(|r| e.template_source().map(|src| column_of(src, r.start)))
        .unwrap_or(1);
    TemplateError {
        message: format!(
            "template syntax error: {}",
            e.detail().unwrap_or("invalid template")
        ),
        position: Some((line, column)),
    }
}

fn column_of(src: &str, byte: usize) -> usize {
    let byte = byte.min(src.len());
    let line_start = src[..byte].rfind('\n').map_or(0, |i| i + 1);
    src[line_start..byte].chars().count() + 1
}

fn runtime_error(
    e: MjError,
    refs: &std::collections::HashSet<String>,
    scope: &Scope,
) -> TemplateError {
    if e.kind() == ErrorKind::UndefinedError {
        if let Some(m) = missing(refs, scope) {
            return m;
        }
    }
    let detail = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    TemplateError {
        message: detail,
        position: None,
    }
}

/// Find the first referenced path that is absent from the scope and say what exists there.
fn missing(refs: &std::collections::HashSet<String>, scope: &Scope) -> Option<TemplateError> {
    let mut refs: Vec<&String> = refs
        .iter()
        .filter(|r| !GLOBAL_FUNCTIONS.contains(&r.as_str()))
        .collect();
    refs.sort();
    for r in refs {
        let mut parts = r.split('.');
        let root = parts.next()?;
        let Some(mut cur) = scope.get(root) else {
            let mut known: Vec<&str> = scope.keys().map(String::as_str).collect();
            known.sort_unstable();
            return Some(TemplateError {
                message: format!(
                    "`{r}` is not defined: there is no obtained value `{root}` (available: {})",
                    known.join(", ")
                ),
                position: None,
            });
        };
        let mut walked = root.to_string();
        for part in parts {
            let next = match cur {
                Value::Object(m) => m.get(part),
                _ => None,
            };
            match next {
                Some(n) => {
                    cur = n;
                    walked = format!("{walked}.{part}");
                }
                None => {
                    let has = match cur {
                        Value::Object(m) if m.is_empty() => "it is empty".to_string(),
                        Value::Object(m) => format!(
                            "it has: {}",
                            m.keys().take(20).cloned().collect::<Vec<_>>().join(", ")
                        ),
                        Value::Null => "it is null".to_string(),
                        other => format!("it is {}", kind_of(other)),
                    };
                    return Some(TemplateError {
                        message: format!(
                            "`{r}` is not defined: `{walked}` has no `{part}` ({has})"
                        ),
                        position: None,
                    });
                }
            }
        }
    }
    None
}

pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

// ---- filters and functions ----

/// `truncate(length, end="")`: at most `length` characters (counting `end`), so a value fits
/// a field with a length limit such as Salesforce's 255-character Name.
fn truncate(s: String, length: usize, kwargs: Kwargs) -> Result<String, MjError> {
    let end: Option<String> = kwargs.get("end")?;
    kwargs.assert_all_used()?;
    Ok(crate::transform::text::truncate(&s, length, &end.unwrap_or_default()).0)
}

/// Standard base64 of a text's UTF-8 bytes (headers such as kintone's password sign-in).
/// Nothing to encode is an error, not the base64 of "none".
fn b64encode(v: &MjValue) -> Result<String, minijinja::Error> {
    use base64::Engine;
    let text = some_text(v, "b64encode")?;
    Ok(base64::engine::general_purpose::STANDARD.encode(text))
}

fn some_text(v: &MjValue, filter: &str) -> Result<String, minijinja::Error> {
    if v.is_undefined() || v.is_none() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("{filter} needs a value, not nothing"),
        ));
    }
    Ok(v.as_str().map_or_else(|| v.to_string(), str::to_string))
}

/// `{a: 1}` → `{a: {value: 1}}` (with `key` = `value`): the shape APIs such as kintone
/// want each field in. A mapping is needed (nothing is an empty one); anything else is an
/// error.
fn wrap_values(v: &MjValue, key: String) -> Result<MjValue, minijinja::Error> {
    let map = mapping(v, "wrap_values")?;
    Ok(MjValue::from_serialize(
        map.into_iter()
            .map(|(k, x)| (k, serde_json::json!({ key.as_str(): x })))
            .collect::<serde_json::Map<_, _>>(),
    ))
}

/// The reverse of `wrap_values`: `{a: {value: 1, type: …}}` → `{a: 1}`.
fn unwrap_values(v: &MjValue, key: String) -> Result<MjValue, minijinja::Error> {
    let map = mapping(v, "unwrap_values")?;
    Ok(MjValue::from_serialize(
        map.into_iter()
            .map(|(k, x)| (k, x.get(&key).cloned().unwrap_or(serde_json::Value::Null)))
            .collect::<serde_json::Map<_, _>>(),
    ))
}

/// A UUID named by the text (version 5, URL namespace): the same text always gives the
/// same UUID — an idempotency or retry key made from an event's id.
/// Nothing, or an empty text, is an error: every run would share one key.
fn uuid5(v: &MjValue) -> Result<String, minijinja::Error> {
    let text = some_text(v, "uuid5")?;
    if text.is_empty() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "uuid5 needs a value, not an empty text",
        ));
    }
    Ok(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, text.as_bytes()).to_string())
}

/// Two mappings as one; the second's keys win (null or nothing adds nothing).
fn merge(v: &MjValue, other: Option<MjValue>) -> Result<MjValue, minijinja::Error> {
    let mut map = mapping(v, "merge")?;
    if let Some(o) = other {
        map.extend(mapping(&o, "merge")?);
    }
    Ok(MjValue::from_serialize(map))
}

fn mapping(
    v: &MjValue,
    filter: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, minijinja::Error> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(serde_json::Value::Null) => Ok(serde_json::Map::new()),
        _ => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("{filter} needs a mapping"),
        )),
    }
}

/// `at_path(path)`: the value at a dotted path (`data.items`, `results.0.id`); the value
/// itself for an empty path, null where the path leads nowhere.
fn at_path(v: &MjValue, path: Option<String>) -> MjValue {
    let mut at = v.clone();
    for part in path
        .unwrap_or_default()
        .split('.')
        .filter(|p| !p.is_empty())
    {
        let next = match part.parse::<usize>() {
            Ok(i)
                if at.len().is_some()
                    && at.as_str().is_none()
                    && at.get_item_by_index(i).is_ok() =>
            {
                at.get_item_by_index(i).ok()
            }
            _ => at.get_attr(part).ok(),
        };
        at = match next {
            Some(n) if !n.is_undefined() => n,
            _ => return MjValue::from(()),
        };
    }
    at
}

/// `required(name)`: the value, or an error naming it when it is missing, null or empty —
/// so an empty value stops the step instead of being sent on.
fn required(v: &MjValue, name: Option<String>) -> Result<MjValue, MjError> {
    let empty = v.is_undefined()
        || v.is_none()
        || v.as_str().is_some_and(|s| s.trim().is_empty())
        || (v.len() == Some(0) && v.as_str().is_none());
    if empty {
        let what = name.unwrap_or_else(|| "this value".to_string());
        return Err(MjError::new(
            ErrorKind::InvalidOperation,
            format!("{what} is empty, but it is required here"),
        ));
    }
    Ok(v.clone())
}

/// `json`: the value as compact JSON text, without HTML escaping (unlike `tojson`).
fn json(v: &MjValue) -> Result<String, MjError> {
    if v.is_undefined() {
        return Err(MjError::from(ErrorKind::UndefinedError));
    }
    serde_json::to_string(v)
        .map_err(|e| MjError::new(ErrorKind::InvalidOperation, format!("not JSON: {e}")))
}

fn time_zone(name: Option<String>) -> Result<TimeZone, MjError> {
    match name.as_deref() {
        None | Some("UTC") | Some("utc") => Ok(TimeZone::UTC),
        Some(n) => TimeZone::get(n).map_err(|_| {
            MjError::new(
                ErrorKind::InvalidOperation,
                format!("unknown time zone `{n}` (use a name such as Asia/Tokyo or UTC)"),
            )
        }),
    }
}

/// Read a date-time the ways integrators meet them: RFC 3339 / ISO 8601 with an offset,
/// a local date-time or date (taken in `tz`), `2026/11/29 09:00` as Japanese systems write
/// it, or Unix seconds (or milliseconds) as a number.
pub fn parse_datetime(v: &Value, tz: &TimeZone) -> Option<Zoned> {
    match v {
        Value::Number(n) => {
            let f = n.as_f64()?;
            let ts = if f.abs() >= 1e12 {
                Timestamp::from_millisecond(f as i64).ok()?
            } else {
                Timestamp::from_second(f as i64).ok()?
            };
            Some(ts.to_zoned(tz.clone()))
        }
        Value::String(s) => {
            let s = s.trim();
            if let Ok(ts) = s.parse::<Timestamp>() {
                return Some(ts.to_zoned(tz.clone()));
            }
            if let Ok(z) = s.parse::<Zoned>() {
                return Some(z.with_time_zone(tz.clone()));
            }
            let normalized = s.replace('/', "-");
            if let Ok(dt) = normalized.parse::<civil::DateTime>() {
                return dt.to_zoned(tz.clone()).ok();
            }
            if let Ok(d) = normalized.parse::<civil::Date>() {
                return d.to_zoned(tz.clone()).ok();
            }
            if let Ok(n) = s.parse::<f64>() {
                return parse_datetime(&serde_json::json!(n), tz);
            }
            None
        }
        _ => None,
    }
}

/// `date_format(format="%Y-%m-%dT%H:%M:%S%:z", tz="UTC")`: shown in a time zone, with
/// strftime codes and the Japanese ones of the transforms (`%EY` 令和8年, `%Ja` 月).
fn date_format(v: &MjValue, format: Option<String>, kwargs: Kwargs) -> Result<String, MjError> {
    let tz = time_zone(kwargs.get("tz")?)?;
    kwargs.assert_all_used()?;
    let zoned = to_zoned(v, &tz)?;
    let format = format.unwrap_or_else(|| "%Y-%m-%dT%H:%M:%S%:z".to_string());
    crate::transform::date::format(&zoned, &format)
        .map_err(|e| MjError::new(ErrorKind::InvalidOperation, e))
}

/// `date_parse(format=None, tz="UTC")`: read a date-time (with an explicit strftime format
/// when given, taken in `tz` when it carries no offset) and give it as RFC 3339 text.
fn date_parse(v: &MjValue, format: Option<String>, kwargs: Kwargs) -> Result<String, MjError> {
    let tz = time_zone(kwargs.get("tz")?)?;
    kwargs.assert_all_used()?;
    let zoned = match format {
        None => to_zoned(v, &tz)?,
        Some(fmt) => {
            let text = v.as_str().ok_or_else(|| {
                MjError::new(ErrorKind::InvalidOperation, "date_parse needs text")
            })?;
            let tm = jiff::fmt::strtime::parse(&fmt, text).map_err(|e| {
                MjError::new(
                    ErrorKind::InvalidOperation,
                    format!("`{text}` does not match `{fmt}`: {e}"),
                )
            })?;
            match tm.to_zoned() {
                Ok(z) => z,
                Err(_) => tm
                    .to_datetime()
                    .or_else(|_| tm.to_date().map(|d| d.to_datetime(civil::Time::midnight())))
                    .and_then(|dt| dt.to_zoned(tz.clone()))
                    .map_err(|e| {
                        MjError::new(ErrorKind::InvalidOperation, format!("incomplete date: {e}"))
                    })?,
            }
        }
    };
    Ok(jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S%:z", &zoned).unwrap_or_default())
}

fn to_zoned(v: &MjValue, tz: &TimeZone) -> Result<Zoned, MjError> {
    if v.is_undefined() {
        return Err(MjError::from(ErrorKind::UndefinedError));
    }
    let json = serde_json::to_value(v).unwrap_or(Value::Null);
    if let Some(z) = parse_datetime(&json, tz) {
        return Ok(z);
    }
    // The transforms read more forms (2026年11月30日, 令和8年…, R8.11.30, mail dates);
    // what `parse_datetime` reads keeps its meaning because it is tried first.
    crate::transform::date::parse(&json, crate::transform::date::Order::Ymd, tz)
        .map(|p| p.zoned)
        .map_err(|e| MjError::new(ErrorKind::InvalidOperation, e))
}

/// `now(tz="UTC")`: the current time as RFC 3339 text.
fn now(kwargs: Kwargs) -> Result<String, MjError> {
    let tz = time_zone(kwargs.get("tz")?)?;
    kwargs.assert_all_used()?;
    let z = Timestamp::now().to_zoned(tz);
    Ok(jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S%:z", &z).unwrap_or_default())
}

/// `soql_quote`: a SOQL string literal, quotes included, with every special character
/// escaped, so a value can never break out of the literal.
fn soql_quote(v: &MjValue) -> Result<String, MjError> {
    if v.is_undefined() {
        return Err(MjError::from(ErrorKind::UndefinedError));
    }
    let text = match v.as_str() {
        Some(s) => s.to_string(),
        None => v.to_string(),
    };
    Ok(soql_literal(&text))
}

/// Escape a value as a single-quoted SOQL string literal.
pub fn soql_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Scope {
        match json!({
            "trigger": {"customer_id": "42", "tags": ["a", "b"], "empty": null},
            "customer": {"email": "taro@example.com", "name01": "山田", "name02": "太郎",
                         "created_at": "2026-11-29T00:30:00Z"},
            "search": {"totalSize": 0, "records": []},
        }) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn r(src: &str) -> Result<Value, TemplateError> {
        render_str(src, &scope())
    }

    #[test]
    fn whole_string_templates_keep_their_type() {
        let cases = [
            ("{{ search.totalSize }}", json!(0)),
            ("{{ trigger.tags }}", json!(["a", "b"])),
            ("{{ trigger.empty }}", json!(null)),
            ("  {{- trigger.customer_id -}}  ", json!("42")),
            ("{{ search.totalSize == 0 }}", json!(true)),
        ];
        for (src, want) in cases {
            assert_eq!(r(src).unwrap(), want, "{src}");
        }
    }

    #[test]
    fn mixed_templates_render_to_text() {
        assert_eq!(
            r("{{ customer.name01 }} {{ customer.name02 }}").unwrap(),
            json!("山田 太郎")
        );
        assert_eq!(r("plain text").unwrap(), json!("plain text"));
    }

    #[test]
    fn output_is_never_html_escaped() {
        let s = Map::from_iter([("v".to_string(), json!("O'Brien <b>&"))]);
        assert_eq!(
            render_str("x {{ v }}", &s).unwrap(),
            json!("x O'Brien <b>&")
        );
    }

    #[test]
    fn a_missing_value_is_an_error_that_names_it() {
        let e = r("{{ customer.emial }}").unwrap_err();
        assert!(
            e.message
                .starts_with("`customer.emial` is not defined: `customer` has no `emial`"),
            "{}",
            e.message
        );
        let e = r("Hello {{ custmer.email }}").unwrap_err();
        assert!(
            e.message.contains("there is no obtained value `custmer`"),
            "{}",
            e.message
        );
        let e = r("{{ search.records[0].Id }}").unwrap_err();
        assert!(
            e.message.contains("undefined") || e.message.contains("not defined"),
            "{}",
            e.message
        );
    }

    #[test]
    fn default_covers_a_missing_value() {
        assert_eq!(
            r("{{ customer.tel | default('none') }}").unwrap(),
            json!("none")
        );
    }

    #[test]
    fn integrator_filters() {
        let cases = [
            ("{{ '  x ' | trim }}", json!("x")),
            ("{{ 'AbC' | lower }}{{ 'd' | upper }}", json!("abcD")),
            ("{{ 'a-b' | replace('-', '+') }}", json!("a+b")),
            ("{{ 'a,b,c' | split(',') }}", json!(["a", "b", "c"])),
            ("{{ trigger.tags | join('/') }}", json!("a/b")),
            ("{{ 'abcdef' | truncate(4) }}", json!("abcd")),
            ("{{ 'abcdef' | truncate(4, end='…') }}", json!("abc…")),
            (
                "{{ trigger | json }}",
                json!(r#"{"customer_id":"42","tags":["a","b"],"empty":null}"#),
            ),
            (
                "{{ customer.created_at | date_format('%Y年%m月%d日 %H:%M', tz='Asia/Tokyo') }}",
                json!("2026年11月29日 09:30"),
            ),
            (
                "{{ '2026/11/29 09:30:00' | date_parse(tz='Asia/Tokyo') }}",
                json!("2026-11-29T09:30:00+09:00"),
            ),
            (
                "{{ '29.11.2026' | date_parse('%d.%m.%Y', tz='Asia/Tokyo') }}",
                json!("2026-11-29T00:00:00+09:00"),
            ),
            (
                "{{ '令和8年11月29日 9時30分' | date_parse(tz='Asia/Tokyo') }}",
                json!("2026-11-29T09:30:00+09:00"),
            ),
            (
                "{{ customer.created_at | date_format('%EY%-m月%-d日(%Ja)', tz='Asia/Tokyo') }}",
                json!("令和8年11月29日(日)"),
            ),
            (
                "{{ 1795912200 | date_format('%Y-%m-%d %H:%M') }}",
                json!("2026-11-29 00:30"),
            ),
            (
                "{{ \"x' OR Name != '\" | soql_quote }}",
                json!(r"'x\' OR Name != \''"),
            ),
        ];
        for (src, want) in cases {
            assert_eq!(r(src).unwrap(), want, "{src}");
        }
    }

    #[test]
    fn required_stops_an_empty_value() {
        let mut s = scope();
        s.insert("blank".into(), json!({"email": " ", "none": null}));
        assert_eq!(
            render_str("{{ customer.email | required('customer.email') }}", &s).unwrap(),
            json!("taro@example.com")
        );
        for src in [
            "{{ blank.email | required('email') }}",
            "{{ blank.none | required('email') }}",
            "x {{ blank.email | required('email') }}",
        ] {
            let e = render_str(src, &s).unwrap_err();
            assert!(
                e.message
                    .contains("email is empty, but it is required here"),
                "{src}: {}",
                e.message
            );
        }
    }

    #[test]
    fn bad_time_zones_and_dates_are_explained() {
        let e = r("{{ customer.created_at | date_format(tz='Mars/Base') }}").unwrap_err();
        assert!(
            e.message.contains("unknown time zone `Mars/Base`"),
            "{}",
            e.message
        );
        let e = r("{{ 'yesterday-ish' | date_format }}").unwrap_err();
        assert!(e.message.contains("is not a date"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = r("Hi {{ customer.email ").unwrap_err();
        assert!(
            e.message.starts_with("template syntax error"),
            "{}",
            e.message
        );
        assert!(e.position.is_some());
        assert!(references("{% if %}").is_err());
    }

    #[test]
    fn references_lists_top_level_names() {
        let refs =
            references("{{ customer.email }} {{ now() }} {{ search.records[0].Id }}").unwrap();
        assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["customer", "search"]);
    }

    #[test]
    fn render_value_names_the_field() {
        let input = json!({"fields": {"Name": "{{ customer.full }}", "n": 1}});
        let (path, _) = render_value(&input, &scope()).unwrap_err();
        assert_eq!(path, "fields.Name");
    }
}
