//! JSON text ↔ values, bounded, with errors that point at the line and column.

use serde_json::Value;

use super::{check_text, shorten};

/// Read JSON text. A byte-order mark (left by Windows tools) is skipped.
pub fn parse(text: &str) -> Result<Value, String> {
    check_text(text, "the JSON text")?;
    let body = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    if body.trim().is_empty() {
        return Err("the text is empty: there is no JSON to read".to_string());
    }
    serde_json::from_str(body).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        let reason = e.to_string();
        let reason = reason
            .rsplit_once(" at line ")
            .map_or(reason.as_str(), |(r, _)| r);
        let near = body
            .lines()
            .nth(line.saturating_sub(1))
            .map(|l| {
                let from = column.saturating_sub(20);
                l.chars().skip(from).take(40).collect::<String>()
            })
            .unwrap_or_default();
        format!(
            "not valid JSON at line {line}, column {column}: {reason} (near `{}`)",
            shorten(near.trim())
        )
    })
}

/// A value as JSON text: compact, or indented by two spaces. Non-ASCII text (日本語)
/// stays as it is, not `\u` escapes.
pub fn stringify(value: &Value, pretty: bool) -> Result<String, String> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    .map_err(|e| format!("the value cannot be written as JSON: {e}"))?;
    check_text(&text, "the JSON text")?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_table() {
        let cases = [
            (
                r#"{"name": "山田", "tags": ["a"]}"#,
                json!({"name": "山田", "tags": ["a"]}),
            ),
            ("\u{FEFF}[1, 2.5, null]", json!([1, 2.5, null])),
            ("\"text\"", json!("text")),
            ("  42 ", json!(42)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn errors_point_at_the_place() {
        // (text, a part of the error)
        let cases = [
            ("{\n  \"a\": 1,\n  \"b\": }", "line 3, column 8"),
            ("{\"a\": 1,}", "trailing comma"),
            ("{'a': 1}", "line 1, column 2"),
            ("", "empty"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let big = format!("\"{}\"", "x".repeat(super::super::MAX_TEXT_BYTES));
        assert!(parse(&big).unwrap_err().contains("1 MiB"));
    }

    #[test]
    fn stringify_table() {
        let v = json!({"name": "山田", "n": [1, 2]});
        assert_eq!(
            stringify(&v, false).unwrap(),
            r#"{"name":"山田","n":[1,2]}"#
        );
        assert_eq!(
            stringify(&v, true).unwrap(),
            "{\n  \"name\": \"山田\",\n  \"n\": [\n    1,\n    2\n  ]\n}"
        );
        assert_eq!(stringify(&json!(null), false).unwrap(), "null");
    }
}
