//! Lists of values or of records (a search's rows, a webhook's line items): filter, map,
//! unique, sort, sum; and lookups in a table of values.
//!
//! Comparisons are the branches' (`condition::compare`), so `"10"` equals `10` here as
//! it does in an `if`.

use std::cmp::Ordering;
use std::collections::HashSet;

use serde_json::Value;

use super::number::{self, Decimal};
use super::{check_items, kana, scalar_text, shown, text};
use crate::condition::{as_number, compare};
use crate::model::Operator;

/// The value at a dotted path in an item (`customer.name`, `lines.0.sku`); the item
/// itself for an empty path. A key that itself holds dots is found whole first.
pub fn field_at<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim();
    if path.is_empty() {
        return Some(item);
    }
    if let Some(v) = item.as_object().and_then(|m| m.get(path)) {
        return Some(v);
    }
    let mut at = item;
    for part in path.split('.') {
        at = match at {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

fn key_of<'a>(item: &'a Value, field: Option<&str>) -> &'a Value {
    match field {
        Some(f) => field_at(item, f).unwrap_or(&Value::Null),
        None => item,
    }
}

/// The operators a list filter takes (those of a branch's `if`).
pub fn operator(name: &str) -> Result<Operator, String> {
    Operator::parse(name.trim()).ok_or_else(|| {
        let names: Vec<&str> = Operator::ALL.iter().map(|o| o.name()).collect();
        format!(
            "unknown operator `{}`: use one of {}",
            name.trim(),
            names.join(", ")
        )
    })
}

/// The items whose value (or field) meets `op` against `to`.
pub fn filter(
    items: &[Value],
    field: Option<&str>,
    op: Operator,
    to: &Value,
) -> Result<Vec<Value>, String> {
    check_items(items.len(), "the list")?;
    // Compiled once here (and bounded), not per item as `compare` would.
    let re = match op {
        Operator::Matches => Some(text::compile(&scalar_text(to).unwrap_or_default(), false)?),
        _ => None,
    };
    let mut out = Vec::new();
    for item in items {
        let v = key_of(item, field);
        let keep = match &re {
            Some(re) => scalar_text(v).is_some_and(|t| re.is_match(&t)),
            None => compare(v, op, to)?,
        };
        if keep {
            out.push(item.clone());
        }
    }
    Ok(out)
}

/// Each item's field (null where it has none).
pub fn map(items: &[Value], field: &str) -> Result<Vec<Value>, String> {
    check_items(items.len(), "the list")?;
    Ok(items
        .iter()
        .map(|i| key_of(i, Some(field)).clone())
        .collect())
}

/// The items without repeats, the first of each kept in place; with a field, items
/// repeat when that field does.
pub fn unique(items: &[Value], field: Option<&str>) -> Result<Vec<Value>, String> {
    check_items(items.len(), "the list")?;
    let mut seen = HashSet::new();
    Ok(items
        .iter()
        .filter(|i| seen.insert(key_of(i, field).to_string()))
        .cloned()
        .collect())
}

/// Numbers (and text that reads as one) first and by value, then text by Unicode code
/// point, then true/false, then lists and objects; null and missing always last.
fn order(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            _ if as_number(v).is_some() => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) | Value::Object(_) => 3,
            Value::Null => 4,
            Value::Number(_) => 0,
        }
    }
    match (rank(a), rank(b)) {
        (0, 0) => as_number(a)
            .partial_cmp(&as_number(b))
            .unwrap_or(Ordering::Equal),
        (1, 1) => a.as_str().cmp(&b.as_str()),
        (2, 2) => a.as_bool().cmp(&b.as_bool()),
        (3, 3) => a.to_string().cmp(&b.to_string()),
        (x, y) => x.cmp(&y),
    }
}

/// Sorted by value or field; stable, so equal items keep their order.
pub fn sort(items: &[Value], field: Option<&str>, descending: bool) -> Result<Vec<Value>, String> {
    check_items(items.len(), "the list")?;
    let mut out = items.to_vec();
    out.sort_by(|a, b| {
        let (ka, kb) = (key_of(a, field), key_of(b, field));
        match (ka.is_null(), kb.is_null()) {
            (false, false) if descending => order(kb, ka),
            _ => order(ka, kb),
        }
    });
    Ok(out)
}

/// The exact sum of the numbers (or of a field), and how many were added. Numbers
/// written as text (`¥1,200`) count; null and empty text are skipped.
pub fn sum(items: &[Value], field: Option<&str>) -> Result<(Decimal, usize), String> {
    check_items(items.len(), "the list")?;
    let mut values = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match key_of(item, field) {
            Value::Null => {}
            Value::String(s) if s.trim().is_empty() => {}
            v => values.push(
                number::from_value(v, "the value")
                    .map_err(|_| format!("item {} (`{}`) is not a number", i + 1, shown(v)))?,
            ),
        }
    }
    Ok((number::sum(&values)?, values.len()))
}

/// How [`lookup`] reads its table and compares keys.
#[derive(Debug, Clone, Default)]
pub struct LookupOptions<'a> {
    /// Ignore case, width (ＡＢＣ/ABC, ｶﾅ/カナ) and surrounding spaces.
    pub normalize: bool,
    /// In a list of rows, the field holding the key (default `key`).
    pub key_field: Option<&'a str>,
    /// In a list of rows, the field holding the value (default `value`); empty for the
    /// whole row.
    pub value_field: Option<&'a str>,
}

fn lookup_key(v: &Value, normalize: bool) -> Option<String> {
    let text = scalar_text(v)?;
    Some(if normalize {
        let n = kana::nfkc(&text);
        text::trim(&n, text::Side::Both, false).to_lowercase()
    } else {
        text
    })
}

/// The value stored under `key` in a table — a mapping (`{"13": "東京都"}`) or a list of
/// rows (`[{key, value}]`, or `[key, value]` pairs) — and none when it is missing. The
/// first row with the key wins.
pub fn lookup(table: &Value, key: &Value, opts: &LookupOptions) -> Result<Option<Value>, String> {
    let wanted = lookup_key(key, opts.normalize).ok_or_else(|| {
        format!(
            "the key must be text or a number, not {}",
            crate::template::kind_of(key)
        )
    })?;
    let matches = |k: &Value| lookup_key(k, opts.normalize).is_some_and(|k| k == wanted);
    match table {
        Value::Object(m) => {
            check_items(m.len(), "the table")?;
            if let Some(v) = m.get(&wanted) {
                return Ok(Some(v.clone()));
            }
            Ok(m.iter()
                .find(|(k, _)| matches(&Value::String((*k).clone())))
                .map(|(_, v)| v.clone()))
        }
        Value::Array(rows) => {
            check_items(rows.len(), "the table")?;
            let key_field = opts.key_field.filter(|f| !f.is_empty()).unwrap_or("key");
            let value_field = opts.value_field.unwrap_or("value");
            for (i, row) in rows.iter().enumerate() {
                let (k, v) = match row {
                    Value::Array(pair) if pair.len() == 2 => (&pair[0], Some(&pair[1])),
                    Value::Object(_) => (
                        field_at(row, key_field).unwrap_or(&Value::Null),
                        if value_field.is_empty() { Some(row) } else { field_at(row, value_field) },
                    ),
                    _ => {
                        return Err(format!(
                            "row {} of the table is neither {{\"{key_field}\": …, \"{value_field}\": …}} nor a [key, value] pair",
                            i + 1
                        ))
                    }
                };
                if matches(k) {
                    return Ok(Some(v.cloned().unwrap_or(Value::Null)));
                }
            }
            Ok(None)
        }
        Value::Null => Err("the table is empty (null)".to_string()),
        other => Err(format!(
            "the table must be a mapping or a list of rows, not {} (use json_parse first if it holds JSON text)",
            crate::template::kind_of(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn orders() -> Vec<Value> {
        json!([
            {"id": "A-1", "customer": {"name": "山田"}, "total": "1200", "status": "発送済み"},
            {"id": "A-2", "customer": {"name": "佐藤"}, "total": 980, "status": "未発送"},
            {"id": "A-3", "customer": {"name": "山田"}, "total": 15000, "status": ""},
            {"id": "A-4", "customer": {}, "total": null, "status": "発送済み"},
        ])
        .as_array()
        .unwrap()
        .clone()
    }

    fn ids(items: &[Value]) -> Vec<&str> {
        items.iter().map(|i| i["id"].as_str().unwrap()).collect()
    }

    #[test]
    fn field_paths() {
        let v = json!({"a": {"b": [10, {"c": "x"}]}, "d.e": 1});
        let cases = [
            ("a.b.0", Some(json!(10))),
            ("a.b.1.c", Some(json!("x"))),
            ("d.e", Some(json!(1))),
            ("a.z", None),
            ("", Some(v.clone())),
        ];
        for (path, want) in cases {
            assert_eq!(field_at(&v, path).cloned(), want, "{path}");
        }
    }

    #[test]
    fn filter_table() {
        // (field, op, to, ids kept)
        let cases: &[(&str, &str, Value, &[&str])] = &[
            ("status", "equals", json!("発送済み"), &["A-1", "A-4"]),
            ("customer.name", "equals", json!("山田"), &["A-1", "A-3"]),
            ("total", "greater_than", json!(1000), &["A-1", "A-3"]),
            ("total", "equals", json!(1200), &["A-1"]),
            ("status", "contains", json!("発送"), &["A-1", "A-2", "A-4"]),
            (
                "status",
                "is_not_empty",
                json!(null),
                &["A-1", "A-2", "A-4"],
            ),
            ("customer.name", "is_empty", json!(null), &["A-4"]),
            ("id", "matches", json!(r"^A-[12]$"), &["A-1", "A-2"]),
            ("id", "not_equals", json!("A-1"), &["A-2", "A-3", "A-4"]),
        ];
        for (field, op, to, want) in cases {
            let out = filter(&orders(), Some(field), operator(op).unwrap(), to).unwrap();
            assert_eq!(ids(&out), *want, "{field} {op} {to}");
        }
        assert!(operator("eq").unwrap_err().contains("equals, not_equals"));
        let plain = filter(
            &[json!("りんご"), json!("みかん")],
            None,
            Operator::Equals,
            &json!("みかん"),
        )
        .unwrap();
        assert_eq!(plain, [json!("みかん")]);
    }

    #[test]
    fn map_unique_sort() {
        assert_eq!(
            map(&orders(), "customer.name").unwrap(),
            [json!("山田"), json!("佐藤"), json!("山田"), json!(null)]
        );
        let names = map(&orders(), "customer.name").unwrap();
        assert_eq!(
            unique(&names, None).unwrap(),
            [json!("山田"), json!("佐藤"), json!(null)]
        );
        assert_eq!(
            ids(&unique(&orders(), Some("status")).unwrap()),
            ["A-1", "A-2", "A-3"]
        );
        // (list, descending, sorted)
        let cases = [
            (
                json!([10, "9", 100, 2.5]),
                false,
                json!([2.5, "9", 10, 100]),
            ),
            (json!([10, "9", 100, 2.5]), true, json!([100, 10, "9", 2.5])),
            (
                json!(["い", "あ", "ア", "b", "B"]),
                false,
                json!(["B", "b", "あ", "い", "ア"]),
            ),
            (json!([null, "x", 1]), false, json!([1, "x", null])),
            (json!([null, "x", 1]), true, json!(["x", 1, null])),
        ];
        for (list, desc, want) in cases {
            assert_eq!(
                Value::Array(sort(list.as_array().unwrap(), None, desc).unwrap()),
                want,
                "{list} desc={desc}"
            );
        }
        assert_eq!(
            ids(&sort(&orders(), Some("total"), true).unwrap()),
            ["A-3", "A-1", "A-2", "A-4"]
        );
    }

    #[test]
    fn sum_table() {
        let (total, n) = sum(&orders(), Some("total")).unwrap();
        assert_eq!((total.to_text(), n), ("17180".to_string(), 3));
        let cases = [
            (json!([0.1, 0.2]), "0.3"),
            (json!(["¥1,200", "１，０００円", "", null, 0.5]), "2200.5"),
            (json!([]), "0"),
        ];
        for (list, want) in cases {
            assert_eq!(
                sum(list.as_array().unwrap(), None).unwrap().0.to_text(),
                want,
                "{list}"
            );
        }
        let e = sum(&[json!(1), json!("abc")], None).unwrap_err();
        assert_eq!(e, "item 2 (`abc`) is not a number");
    }

    #[test]
    fn lists_are_bounded() {
        let big = vec![json!(1); super::super::MAX_ITEMS + 1];
        assert!(sort(&big, None, false)
            .unwrap_err()
            .contains("at most 10000"));
        assert!(sum(&big, None).is_err());
    }

    #[test]
    fn lookup_table() {
        let prefs = json!({"13": "東京都", "27": "大阪府", "ABC": "英字"});
        let rows = json!([
            {"code": "tokyo", "name": "東京都"},
            {"code": "ｵｵｻｶ", "name": "大阪府"},
        ]);
        let pairs = json!([["送料無料", 0], ["通常", 800]]);
        let kv = json!([{"key": "a", "value": 1}, {"key": "b", "value": 2}]);
        let opts = LookupOptions::default();
        let norm = LookupOptions {
            normalize: true,
            ..LookupOptions::default()
        };
        let rows_opts = |normalize| LookupOptions {
            normalize,
            key_field: Some("code"),
            value_field: Some("name"),
        };
        // (table, key, options, value)
        let cases = [
            (&prefs, json!(13), opts.clone(), Some(json!("東京都"))),
            (&prefs, json!("27"), opts.clone(), Some(json!("大阪府"))),
            (&prefs, json!("１３"), opts.clone(), None),
            (&prefs, json!("１３"), norm.clone(), Some(json!("東京都"))),
            (&prefs, json!(" ａｂｃ "), norm.clone(), Some(json!("英字"))),
            (&prefs, json!("99"), norm.clone(), None),
            (
                &rows,
                json!("TOKYO"),
                rows_opts(true),
                Some(json!("東京都")),
            ),
            (&rows, json!("TOKYO"), rows_opts(false), None),
            (
                &rows,
                json!("オオサカ"),
                rows_opts(true),
                Some(json!("大阪府")),
            ),
            (&pairs, json!("通常"), opts.clone(), Some(json!(800))),
            (&kv, json!("b"), opts.clone(), Some(json!(2))),
        ];
        for (table, key, o, want) in cases {
            assert_eq!(lookup(table, &key, &o).unwrap(), want, "{key} in {table}");
        }
        let whole = LookupOptions {
            key_field: Some("code"),
            value_field: Some(""),
            ..LookupOptions::default()
        };
        assert_eq!(
            lookup(&rows, &json!("tokyo"), &whole).unwrap(),
            Some(rows[0].clone())
        );
        assert!(lookup(&json!([1]), &json!("a"), &opts)
            .unwrap_err()
            .contains("row 1 of the table"));
        assert!(lookup(&json!("{}"), &json!("a"), &opts)
            .unwrap_err()
            .contains("json_parse"));
        assert!(lookup(&prefs, &json!([1]), &opts)
            .unwrap_err()
            .contains("not a list"));
    }
}
