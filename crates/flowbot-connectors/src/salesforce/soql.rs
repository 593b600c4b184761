//! Reading step inputs and building SOQL from checked names and escaped literals.

use flowbot_core::template::soql_literal;
use flowbot_core::ActionError;
use serde_json::{Map, Value};

/// API names are pasted into URLs and SOQL: only plain names pass.
pub(super) fn api_name(what: &str, s: &str) -> Result<String, ActionError> {
    let ok = !s.is_empty()
        && s.len() <= 80
        && s.split('.').all(|part| {
            let mut c = part.chars();
            matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic())
                && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(ActionError::fatal(format!(
            "input `{what}`: `{s}` is not a Salesforce API name (letters, digits and _, e.g. Mail__c)"
        )))
    }
}

pub(super) fn str_in<'a>(input: &'a Map<String, Value>, key: &str) -> Result<&'a str, ActionError> {
    match input.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(ActionError::fatal(format!("input `{key}` is required"))),
    }
}

pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn map_in<'a>(
    input: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a Map<String, Value>, ActionError> {
    match input.get(key) {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(ActionError::fatal(format!(
            "input `{key}` must be a mapping of field API names to values"
        ))),
    }
}

/// A SOQL literal for a value: text quoted and escaped, numbers and booleans as they are.
pub(super) fn literal(v: &Value) -> Result<String, ActionError> {
    Ok(match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => soql_literal(s),
        _ => {
            return Err(ActionError::fatal(
                "a search value must be text, a number, true/false or null",
            ))
        }
    })
}

/// `SELECT … FROM … WHERE a = 'x' AND b = 'y' [LIMIT n]`, values escaped, names checked.
pub fn build_search(input: &Map<String, Value>) -> Result<String, ActionError> {
    let object = api_name("object", str_in(input, "object")?)?;
    let fields: Vec<String> = match input.get("fields") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|f| api_name("fields", f.as_str().unwrap_or_default()))
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) if !s.is_empty() => s
            .split(',')
            .map(|f| api_name("fields", f.trim()))
            .collect::<Result<_, _>>()?,
        _ => vec!["Id".into()],
    };
    let conds = map_in(input, "where")?;
    if conds.is_empty() {
        return Err(ActionError::fatal(
            "input `where` needs at least one field and value",
        ));
    }
    let mut clauses = Vec::new();
    for (k, v) in conds {
        clauses.push(format!("{} = {}", api_name("where", k)?, literal(v)?));
    }
    let mut soql = format!(
        "SELECT {} FROM {object} WHERE {}",
        fields.join(", "),
        clauses.join(" AND ")
    );
    if let Some(n) = input
        .get("limit")
        .and_then(|l| l.as_u64().or_else(|| l.as_str()?.parse().ok()))
    {
        soql.push_str(&format!(" LIMIT {n}"));
    }
    Ok(soql)
}
