//! Branch and switch conditions.
//!
//! Values arrive from webhooks and APIs with loose types (ecforce sends ids as strings), so
//! comparisons are forgiving in one deliberate way: when both sides read as numbers they are
//! compared as numbers, so "0" equals 0 and "10" is greater than "9".

use regex::Regex;
use serde_json::Value;

use crate::model::{Condition, Operator};
use crate::template::{render_value, Scope};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConditionError {
    /// Where in the condition, e.g. `all[1].to`.
    pub path: String,
    pub message: String,
}

/// Evaluate a condition against the obtained values.
pub fn evaluate(cond: &Condition, scope: &Scope) -> Result<bool, ConditionError> {
    eval_at(cond, scope, "")
}

fn eval_at(cond: &Condition, scope: &Scope, path: &str) -> Result<bool, ConditionError> {
    match cond {
        Condition::All(cs) => {
            for (i, c) in cs.iter().enumerate() {
                if !eval_at(c, scope, &format!("{path}all[{i}]."))? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Condition::Any(cs) => {
            for (i, c) in cs.iter().enumerate() {
                if eval_at(c, scope, &format!("{path}any[{i}]."))? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Condition::Compare { value, op, to } => {
            let render = |v: &Value, field: &str| {
                render_value(v, scope).map_err(|(_, e)| ConditionError {
                    path: format!("{path}{field}"),
                    message: e.message,
                })
            };
            let a = render(value, "value")?;
            let b = match to {
                Some(t) => render(t, "to")?,
                None => Value::Null,
            };
            compare(&a, *op, &b).map_err(|message| ConditionError {
                path: format!("{path}to"),
                message,
            })
        }
    }
}

/// Apply one operator. Errors only for an invalid regular expression.
pub fn compare(a: &Value, op: Operator, b: &Value) -> Result<bool, String> {
    Ok(match op {
        Operator::Equals => equals(a, b),
        Operator::NotEquals => !equals(a, b),
        Operator::GreaterThan => order(a, b).is_some_and(|o| o.is_gt()),
        Operator::GreaterOrEqual => order(a, b).is_some_and(|o| o.is_ge()),
        Operator::LessThan => order(a, b).is_some_and(|o| o.is_lt()),
        Operator::LessOrEqual => order(a, b).is_some_and(|o| o.is_le()),
        Operator::Contains => contains(a, b),
        Operator::NotContains => !contains(a, b),
        Operator::StartsWith => text(a).zip(text(b)).is_some_and(|(a, b)| a.starts_with(&b)),
        Operator::EndsWith => text(a).zip(text(b)).is_some_and(|(a, b)| a.ends_with(&b)),
        Operator::IsEmpty => is_empty(a),
        Operator::IsNotEmpty => !is_empty(a),
        Operator::Matches => {
            let pattern = text(b).unwrap_or_default();
            let re = Regex::new(&pattern).map_err(|e| {
                format!(
                    "`{pattern}` is not a valid regular expression: {}",
                    regex_reason(&e)
                )
            })?;
            text(a).is_some_and(|a| re.is_match(&a))
        }
    })
}

/// The one-line reason of a regex error (its Display spans several lines).
pub fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or(&text).trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// A number, or text that reads as one.
pub fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return None;
            }
            t.parse::<f64>().ok().filter(|f| f.is_finite())
        }
        _ => None,
    }
}

/// Scalars as text; lists and objects have none.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn equals(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (as_number(a), as_number(b)) {
        return x == y;
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equals(p, q))
        }
        (Value::Object(_), Value::Object(_)) => a == b,
        _ => match (text(a), text(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    if let (Some(x), Some(y)) = (as_number(a), as_number(b)) {
        return x.partial_cmp(&y);
    }
    // Text compares as text: ISO 8601 dates in one format sort correctly this way.
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn contains(a: &Value, b: &Value) -> bool {
    match a {
        Value::Array(items) => items.iter().any(|it| equals(it, b)),
        Value::Object(m) => text(b).is_some_and(|k| m.contains_key(&k)),
        _ => text(a).zip(text(b)).is_some_and(|(a, b)| a.contains(&b)),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use Operator::*;

    #[test]
    fn operator_table() {
        // (a, op, b, expected)
        let cases = [
            (json!("0"), Equals, json!(0), true),
            (json!(0), Equals, json!("0.0"), true),
            (json!("abc"), Equals, json!("abc"), true),
            (json!("abc"), Equals, json!("ABC"), false),
            (json!(null), Equals, json!(null), true),
            (json!(null), Equals, json!(""), false),
            (json!(true), Equals, json!("true"), true),
            (json!([1, "2"]), Equals, json!(["1", 2]), true),
            (json!("1"), NotEquals, json!(2), true),
            (json!("10"), GreaterThan, json!("9"), true),
            (json!("b"), GreaterThan, json!("a"), true),
            (json!(null), GreaterThan, json!(1), false),
            (json!(5), GreaterOrEqual, json!("5"), true),
            (json!(4), LessThan, json!(5), true),
            (json!("2026-01-01"), LessThan, json!("2026-11-29"), true),
            (json!(5), LessOrEqual, json!(5), true),
            (json!("taro@example.com"), Contains, json!("@"), true),
            (json!(["a", "b"]), Contains, json!("b"), true),
            (json!([1, 2]), Contains, json!("2"), true),
            (json!({"k": 1}), Contains, json!("k"), true),
            (json!(null), Contains, json!("x"), false),
            (json!("abc"), NotContains, json!("z"), true),
            (json!("abc"), StartsWith, json!("ab"), true),
            (json!("abc"), EndsWith, json!("bc"), true),
            (json!(123), StartsWith, json!(12), true),
            (json!(""), IsEmpty, json!(null), true),
            (json!([]), IsEmpty, json!(null), true),
            (json!({}), IsEmpty, json!(null), true),
            (json!(0), IsEmpty, json!(null), false),
            (json!("x"), IsNotEmpty, json!(null), true),
            (
                json!("090-1234-5678"),
                Matches,
                json!(r"^\d{3}-\d{4}-\d{4}$"),
                true,
            ),
            (json!("abc"), Matches, json!(r"^\d+$"), false),
        ];
        for (a, op, b, want) in cases {
            assert_eq!(compare(&a, op, &b), Ok(want), "{a} {} {b}", op.name());
        }
    }

    #[test]
    fn an_invalid_regex_is_an_error() {
        assert!(compare(&json!("x"), Matches, &json!("("))
            .unwrap_err()
            .contains("not a valid regular expression"));
    }

    #[test]
    fn all_and_any_combine() {
        let scope: Scope = match json!({"s": {"n": "0", "mail": "a@b"}}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let c = |v: &str, op, to: Value| Condition::Compare {
            value: json!(v),
            op,
            to: Some(to),
        };
        let all = Condition::All(vec![
            c("{{ s.n }}", Equals, json!(0)),
            Condition::Any(vec![
                c("{{ s.mail }}", Contains, json!("@")),
                c("x", Equals, json!("y")),
            ]),
        ]);
        assert_eq!(evaluate(&all, &scope), Ok(true));
        let bad = Condition::All(vec![c("{{ s.missing }}", Equals, json!(0))]);
        let e = evaluate(&bad, &scope).unwrap_err();
        assert_eq!(e.path, "all[0].value");
        assert!(
            e.message.contains("`s.missing` is not defined"),
            "{}",
            e.message
        );
    }
}
