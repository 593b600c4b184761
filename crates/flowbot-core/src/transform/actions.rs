//! The `transform` app's actions: each reads its input by name and calls the same
//! function the template filters call. The app's manifest (in flowbot-connectors) lists
//! the same inputs; a test there holds the two lists together.

use serde_json::{json, Map, Value};

use super::date::{self, Order, Unit};
use super::holidays;
use super::kana::{self, Mode};
use super::list::{self, LookupOptions};
use super::number::{self, Format, Negative, Rounding};
use super::text::{self, Case, Side, SplitOptions};
use super::{check_items, json as json_text, shown};

/// Every action and the inputs it reads.
pub const ACTIONS: &[(&str, &[&str])] = &[
    ("regex_extract", &["text", "pattern", "all", "ignore_case"]),
    (
        "regex_replace",
        &["text", "pattern", "replacement", "all", "ignore_case"],
    ),
    (
        "split",
        &["text", "separator", "regex", "trim", "drop_empty"],
    ),
    ("join", &["list", "separator"]),
    ("trim", &["text", "side", "collapse"]),
    ("normalize", &["text", "mode"]),
    ("change_case", &["text", "case"]),
    ("pad", &["text", "length", "character", "side"]),
    ("truncate", &["text", "length", "ellipsis"]),
    ("date_parse", &["date", "order", "time_zone"]),
    ("date_add", &["date", "amount", "unit", "time_zone"]),
    ("date_diff", &["start", "end", "unit", "time_zone"]),
    ("date_format", &["date", "format", "time_zone"]),
    (
        "date_convert_tz",
        &["date", "from_time_zone", "to_time_zone"],
    ),
    ("month_start", &["date", "months", "time_zone"]),
    ("month_end", &["date", "months", "time_zone"]),
    (
        "business_days_add",
        &["date", "days", "days_off", "time_zone"],
    ),
    ("is_business_day", &["date", "days_off", "time_zone"]),
    (
        "business_days_between",
        &["start", "end", "include_start", "days_off", "time_zone"],
    ),
    ("list_holidays", &["year"]),
    ("number_parse", &["text", "decimal_comma"]),
    (
        "number_format",
        &[
            "number",
            "decimals",
            "rounding",
            "thousands_separator",
            "decimal_point",
            "prefix",
            "suffix",
            "negative",
        ],
    ),
    ("json_parse", &["text"]),
    ("json_stringify", &["value", "pretty"]),
    ("list_filter", &["list", "field", "operator", "value"]),
    ("list_map", &["list", "field"]),
    ("list_unique", &["list", "field"]),
    ("list_sort", &["list", "field", "order"]),
    ("list_first", &["list"]),
    ("list_last", &["list"]),
    ("list_count", &["list"]),
    ("list_sum", &["list", "field"]),
    ("list_join", &["list", "field", "separator"]),
    (
        "lookup",
        &[
            "table",
            "key",
            "default",
            "normalize",
            "key_field",
            "value_field",
        ],
    ),
];

/// The inputs an action reads, if it exists.
pub fn inputs_of(action: &str) -> Option<&'static [&'static str]> {
    ACTIONS
        .iter()
        .find(|(id, _)| *id == action)
        .map(|(_, inputs)| *inputs)
}

/// Run one action on its (rendered) input. The error is a sentence for the user that
/// names the input at fault.
pub fn execute(action: &str, input: &Map<String, Value>) -> Result<Value, String> {
    let known =
        inputs_of(action).ok_or_else(|| format!("the transform app has no action `{action}`"))?;
    if let Some(k) = input.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!(
            "action `{action}` has no input `{k}`: it takes {}",
            known.join(", ")
        ));
    }
    let i = Input(input);
    match action {
        "regex_extract" => text::regex_extract(
            &i.subject("text")?,
            &i.required("pattern")?,
            i.flag("all", false)?,
            i.flag("ignore_case", false)?,
        )
        .map_err(|e| at("pattern", e)),
        "regex_replace" => {
            let (out, count) = text::regex_replace(
                &i.subject("text")?,
                &i.required("pattern")?,
                &i.text_or("replacement", "")?,
                i.flag("all", true)?,
                i.flag("ignore_case", false)?,
            )
            .map_err(|e| at("pattern", e))?;
            Ok(json!({"text": out, "count": count}))
        }
        "split" => {
            let opts = SplitOptions {
                regex: i.flag("regex", false)?,
                trim: i.flag("trim", true)?,
                drop_empty: i.flag("drop_empty", true)?,
            };
            let items = text::split(&i.subject("text")?, &i.text_or("separator", ",")?, opts)
                .map_err(|e| at("separator", e))?;
            Ok(json!({"count": items.len(), "items": items}))
        }
        "join" | "list_join" => {
            let field = i.optional("field")?;
            let out = text::join(
                &i.list("list")?,
                &i.text_or("separator", ",")?,
                field.as_deref(),
            )
            .map_err(|e| at("list", e))?;
            Ok(json!({ "text": out }))
        }
        "trim" => {
            let side = Side::parse(&i.text_or("side", "both")?).map_err(|e| at("side", e))?;
            Ok(json!({"text": text::trim(&i.subject("text")?, side, i.flag("collapse", false)?)}))
        }
        "normalize" => {
            let mode = Mode::parse(&i.required("mode")?).map_err(|e| at("mode", e))?;
            // NFKC may make a text several times longer (ﷺ is 18 characters).
            let out = kana::normalize(&i.subject("text")?, mode);
            super::check_text(&out, "the converted text").map_err(|e| at("text", e))?;
            Ok(json!({ "text": out }))
        }
        "change_case" => {
            let case = Case::parse(&i.required("case")?).map_err(|e| at("case", e))?;
            Ok(json!({"text": text::change_case(&i.subject("text")?, case)}))
        }
        "pad" => {
            let side = Side::parse(&i.text_or("side", "start")?).map_err(|e| at("side", e))?;
            let length = i.count("length")?;
            let out = text::pad(
                &i.subject("text")?,
                length,
                &i.text_or("character", " ")?,
                side,
            )
            .map_err(|e| at("character", e))?;
            Ok(json!({ "text": out }))
        }
        "truncate" => {
            let (out, cut) = text::truncate(
                &i.subject("text")?,
                i.count("length")?,
                &i.text_or("ellipsis", "")?,
            );
            Ok(json!({"text": out, "truncated": cut}))
        }
        "date_parse" => {
            let order = Order::parse(&i.text_or("order", "ymd")?).map_err(|e| at("order", e))?;
            let p = i.date("date", order)?;
            Ok(date::to_json(&p))
        }
        "date_add" => {
            let unit = i.unit()?;
            let z = date::add(&i.date("date", Order::Ymd)?, i.integer("amount")?, unit)
                .map_err(|e| at("amount", e))?;
            Ok(date::to_json(&z))
        }
        "date_diff" => {
            let unit = i.unit()?;
            let (start, end) = (i.date("start", Order::Ymd)?, i.date("end", Order::Ymd)?);
            let difference = date::diff(&start, &end, unit).map_err(|e| at("end", e))?;
            Ok(json!({"difference": difference, "unit": Unit::NAMES[unit as usize]}))
        }
        "date_format" => {
            let z = i.date("date", Order::Ymd)?;
            let pattern = i.text_or("format", "%Y-%m-%d %H:%M")?;
            Ok(json!({"text": date::format(&z, &pattern).map_err(|e| at("format", e))?}))
        }
        "date_convert_tz" => {
            let from = i.zone("from_time_zone")?;
            let to =
                date::time_zone(&i.required("to_time_zone")?).map_err(|e| at("to_time_zone", e))?;
            let p = date::parse(i.value("date"), Order::Ymd, &from).map_err(|e| at("date", e))?;
            Ok(date::to_json(&p.zoned.with_time_zone(to)))
        }
        "month_start" | "month_end" => {
            let z = i.date("date", Order::Ymd)?;
            let months = i.integer_or("months", 0)?;
            let out = if action == "month_start" {
                date::month_start(&z, months)
            } else {
                date::month_end(&z, months)
            };
            Ok(date::to_json(&out.map_err(|e| at("months", e))?))
        }
        "business_days_add" => {
            let z = i.date("date", Order::Ymd)?;
            let out = date::business_days_add(&z, i.integer("days")?, &i.days_off()?)
                .map_err(|e| at("days", e))?;
            Ok(date::to_json(&out))
        }
        "is_business_day" => {
            let z = i.date("date", Order::Ymd)?;
            date::business_day(&z, &i.days_off()?).map_err(|e| at("date", e))
        }
        "business_days_between" => {
            let (start, end) = (i.date("start", Order::Ymd)?, i.date("end", Order::Ymd)?);
            let count = holidays::Calendar::new(i.days_off()?)
                .business_days_between(start.date(), end.date(), i.flag("include_start", false)?)
                .map_err(|e| at("end", e))?;
            Ok(json!({ "count": count }))
        }
        "list_holidays" => {
            let year = i.integer("year")?;
            let year =
                i16::try_from(year).map_err(|_| at("year", format!("{year} is not a year")))?;
            let days = holidays::holidays(year).map_err(|e| at("year", e))?;
            let rows: Vec<Value> = days
                .iter()
                .map(|h| {
                    json!({
                        "date": h.date.to_string(),
                        "name": h.name,
                        "weekday_ja": date::weekday_ja(h.date.weekday()),
                    })
                })
                .collect();
            Ok(json!({"count": rows.len(), "holidays": rows}))
        }
        "number_parse" => {
            let text = match i.value("text") {
                Value::Number(n) => n.to_string(),
                _ => i.required("text")?,
            };
            let p =
                number::parse(&text, i.flag("decimal_comma", false)?).map_err(|e| at("text", e))?;
            Ok(json!({
                "number": p.value.to_json().map_err(|e| at("text", e))?,
                "text": p.value.to_text(),
                "percent": p.percent,
            }))
        }
        "number_format" => {
            let n =
                number::from_value(i.value("number"), "the number").map_err(|e| at("number", e))?;
            let decimals = match i.optional_integer("decimals")? {
                Some(d) => Some(
                    i32::try_from(d)
                        .map_err(|_| at("decimals", format!("{d} places is too many")))?,
                ),
                None => None,
            };
            let f = Format {
                decimals,
                rounding: Rounding::parse(&i.text_or("rounding", "half_up")?)
                    .map_err(|e| at("rounding", e))?,
                thousands: i.text_or("thousands_separator", ",")?,
                point: i.text_or("decimal_point", ".")?,
                prefix: i.text_or("prefix", "")?,
                suffix: i.text_or("suffix", "")?,
                negative: Negative::parse(&i.text_or("negative", "minus")?)
                    .map_err(|e| at("negative", e))?,
            };
            let (text, rounded) = number::format(&n, &f).map_err(|e| at("decimals", e))?;
            Ok(json!({"text": text, "number": rounded.to_json().map_err(|e| at("number", e))?}))
        }
        "json_parse" => {
            let value = match i.value("text") {
                Value::String(s) => json_text::parse(s).map_err(|e| at("text", e))?,
                // A template that kept its type already holds the value.
                other => other.clone(),
            };
            Ok(json!({ "value": value }))
        }
        "json_stringify" => {
            let text = json_text::stringify(i.value("value"), i.flag("pretty", false)?)
                .map_err(|e| at("value", e))?;
            Ok(json!({ "text": text }))
        }
        "list_filter" => {
            let op =
                list::operator(&i.text_or("operator", "equals")?).map_err(|e| at("operator", e))?;
            let field = i.optional("field")?;
            let items = list::filter(&i.list("list")?, field.as_deref(), op, i.value("value"))
                .map_err(|e| at("value", e))?;
            Ok(json!({"count": items.len(), "items": items}))
        }
        "list_map" => {
            let items =
                list::map(&i.list("list")?, &i.required("field")?).map_err(|e| at("list", e))?;
            Ok(json!({"count": items.len(), "items": items}))
        }
        "list_unique" => {
            let field = i.optional("field")?;
            let items =
                list::unique(&i.list("list")?, field.as_deref()).map_err(|e| at("list", e))?;
            Ok(json!({"count": items.len(), "items": items}))
        }
        "list_sort" => {
            let descending = match i.text_or("order", "asc")?.trim() {
                "asc" => false,
                "desc" => true,
                other => {
                    return Err(at(
                        "order",
                        format!("unknown order `{other}`: use asc or desc"),
                    ))
                }
            };
            let field = i.optional("field")?;
            let items = list::sort(&i.list("list")?, field.as_deref(), descending)
                .map_err(|e| at("list", e))?;
            Ok(json!({"count": items.len(), "items": items}))
        }
        "list_first" | "list_last" => {
            let items = i.list("list")?;
            let item = if action == "list_first" {
                items.first()
            } else {
                items.last()
            };
            Ok(json!({"item": item.cloned().unwrap_or(Value::Null), "found": item.is_some()}))
        }
        "list_count" => Ok(json!({ "count": i.list("list")?.len() })),
        "list_sum" => {
            let field = i.optional("field")?;
            let (sum, count) =
                list::sum(&i.list("list")?, field.as_deref()).map_err(|e| at("list", e))?;
            Ok(json!({"sum": sum.to_json().map_err(|e| at("list", e))?, "count": count}))
        }
        "lookup" => {
            let (key_field, value_field) = (i.optional("key_field")?, i.optional("value_field")?);
            let opts = LookupOptions {
                normalize: i.flag("normalize", false)?,
                key_field: key_field.as_deref(),
                value_field: value_field.as_deref(),
            };
            let found = list::lookup(i.value("table"), i.value("key"), &opts)
                .map_err(|e| at("table", e))?;
            Ok(json!({
                "found": found.is_some(),
                "value": found.unwrap_or_else(|| i.value("default").clone()),
            }))
        }
        _ => unreachable!("every action of ACTIONS is handled"),
    }
}

fn at(input: &str, message: String) -> String {
    format!("input `{input}`: {message}")
}

/// An action's input, read by name. Null is the same as absent: a template over an
/// optional value gives null when there is none.
struct Input<'a>(&'a Map<String, Value>);

impl<'a> Input<'a> {
    fn value(&self, name: &str) -> &'a Value {
        static NULL: Value = Value::Null;
        self.0.get(name).unwrap_or(&NULL)
    }

    fn optional(&self, name: &str) -> Result<Option<String>, String> {
        match self.value(name) {
            Value::Null => Ok(None),
            v => super::scalar_text(v).map(Some).ok_or_else(|| {
                at(
                    name,
                    format!("must be text, not {}", crate::template::kind_of(v)),
                )
            }),
        }
    }

    /// The text being transformed: none reads as empty text.
    /// The text an action works on (empty for null), bounded like every text input.
    fn subject(&self, name: &str) -> Result<String, String> {
        let text = self.optional(name)?.unwrap_or_default();
        super::check_text(&text, "the text").map_err(|e| at(name, e))?;
        Ok(text)
    }

    fn required(&self, name: &str) -> Result<String, String> {
        match self.optional(name)? {
            Some(t) if !t.is_empty() => Ok(t),
            _ => Err(at(name, "is required".to_string())),
        }
    }

    fn text_or(&self, name: &str, default: &str) -> Result<String, String> {
        Ok(self.optional(name)?.unwrap_or_else(|| default.to_string()))
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.value(name) {
            Value::Null => Ok(default),
            Value::Bool(b) => Ok(*b),
            Value::String(s) if s.trim() == "true" => Ok(true),
            Value::String(s) if s.trim() == "false" => Ok(false),
            v => Err(at(
                name,
                format!("must be true or false, not `{}`", shown(v)),
            )),
        }
    }

    fn optional_integer(&self, name: &str) -> Result<Option<i64>, String> {
        let v = self.value(name);
        if v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty()) {
            return Ok(None);
        }
        let d = number::from_value(v, "the value").map_err(|e| at(name, e))?;
        if d.frac.bytes().any(|b| b != b'0') {
            return Err(at(
                name,
                format!("must be a whole number, not {}", d.to_text()),
            ));
        }
        let text = d.to_text();
        text.parse::<i64>()
            .map(Some)
            .map_err(|_| at(name, format!("{text} is too large")))
    }

    fn integer(&self, name: &str) -> Result<i64, String> {
        self.optional_integer(name)?
            .ok_or_else(|| at(name, "is required".to_string()))
    }

    fn integer_or(&self, name: &str, default: i64) -> Result<i64, String> {
        Ok(self.optional_integer(name)?.unwrap_or(default))
    }

    fn count(&self, name: &str) -> Result<usize, String> {
        let n = self.integer(name)?;
        usize::try_from(n).map_err(|_| at(name, format!("must be 0 or more, not {n}")))
    }

    fn list(&self, name: &str) -> Result<Vec<Value>, String> {
        match self.value(name) {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => {
                check_items(items.len(), "the list").map_err(|e| at(name, e))?;
                Ok(items.clone())
            }
            Value::String(_) => Err(at(
                name,
                "must be a list, not text (turn text into a list with split or json_parse first)"
                    .to_string(),
            )),
            v => Err(at(
                name,
                format!("must be a list, not {}", crate::template::kind_of(v)),
            )),
        }
    }

    fn zone(&self, name: &str) -> Result<jiff::tz::TimeZone, String> {
        date::time_zone(&self.text_or(name, date::DEFAULT_TIME_ZONE)?).map_err(|e| at(name, e))
    }

    fn date(&self, name: &str, order: Order) -> Result<jiff::Zoned, String> {
        let tz = self.zone("time_zone")?;
        date::parse(self.value(name), order, &tz)
            .map(|p| p.zoned)
            .map_err(|e| at(name, e))
    }

    fn unit(&self) -> Result<Unit, String> {
        Unit::parse(&self.text_or("unit", "days")?).map_err(|e| at("unit", e))
    }

    fn days_off(&self) -> Result<Vec<jiff::civil::Date>, String> {
        let tz = self.zone("time_zone")?;
        self.list("days_off")?
            .iter()
            .map(|d| {
                date::parse(d, Order::Ymd, &tz)
                    .map(|p| p.zoned.date())
                    .map_err(|e| at("days_off", e))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(action: &str, input: Value) -> Result<Value, String> {
        execute(action, input.as_object().expect("an object"))
    }

    #[test]
    fn actions_read_their_inputs() {
        // (action, input, a field of the output, its value)
        let cases = [
            (
                "regex_extract",
                json!({"text": "注文番号：12345", "pattern": r"(\d+)"}),
                "value",
                json!("12345"),
            ),
            (
                "regex_replace",
                json!({"text": "a  b", "pattern": r"\s+", "replacement": " "}),
                "text",
                json!("a b"),
            ),
            ("split", json!({"text": "a, b"}), "items", json!(["a", "b"])),
            (
                "join",
                json!({"list": ["a", 1], "separator": "・"}),
                "text",
                json!("a・1"),
            ),
            (
                "list_join",
                json!({"list": [{"n": "x"}, {"n": "y"}], "field": "n"}),
                "text",
                json!("x,y"),
            ),
            ("trim", json!({"text": "\u{3000}x "}), "text", json!("x")),
            (
                "normalize",
                json!({"text": "ｶﾞｷﾞｸﾞ", "mode": "halfwidth_kana_to_fullwidth"}),
                "text",
                json!("ガギグ"),
            ),
            (
                "change_case",
                json!({"text": "abc", "case": "upper"}),
                "text",
                json!("ABC"),
            ),
            (
                "pad",
                json!({"text": 42, "length": "5", "character": "0"}),
                "text",
                json!("00042"),
            ),
            (
                "truncate",
                json!({"text": "株式会社山田商店", "length": 4, "ellipsis": "…"}),
                "truncated",
                json!(true),
            ),
            (
                "date_parse",
                json!({"date": "令和8年11月30日"}),
                "date",
                json!("2026-11-30"),
            ),
            (
                "date_parse",
                json!({"date": "11/30/2026", "order": "mdy"}),
                "date",
                json!("2026-11-30"),
            ),
            (
                "date_add",
                json!({"date": "2026-01-31", "amount": 1, "unit": "months"}),
                "date",
                json!("2026-02-28"),
            ),
            (
                "date_diff",
                json!({"start": "2026-11-01", "end": "2026-11-30"}),
                "difference",
                json!(29),
            ),
            (
                "date_format",
                json!({"date": "2026-11-30", "format": "%EY%-m月%-d日(%Ja)"}),
                "text",
                json!("令和8年11月30日(月)"),
            ),
            (
                "date_convert_tz",
                json!({"date": "2026-11-30 09:00", "to_time_zone": "UTC"}),
                "iso",
                json!("2026-11-30T00:00:00+00:00"),
            ),
            (
                "month_end",
                json!({"date": "2026-02-10", "months": 0}),
                "date",
                json!("2026-02-28"),
            ),
            (
                "month_start",
                json!({"date": "2026-02-10", "months": 1}),
                "date",
                json!("2026-03-01"),
            ),
            (
                "business_days_add",
                json!({"date": "2026-12-31", "days": 1}),
                "date",
                json!("2027-01-04"),
            ),
            (
                "business_days_add",
                json!({"date": "2026-12-28", "days": 1, "days_off": ["2026-12-29", "2026-12-30", "2026-12-31"]}),
                "date",
                json!("2027-01-04"),
            ),
            (
                "is_business_day",
                json!({"date": "2026-11-23"}),
                "holiday_name",
                json!("勤労感謝の日"),
            ),
            (
                "business_days_between",
                json!({"start": "2026-10-31", "end": "2026-11-30"}),
                "count",
                json!(19),
            ),
            ("list_holidays", json!({"year": 2026}), "count", json!(18)),
            (
                "number_parse",
                json!({"text": "１，２３４円"}),
                "number",
                json!(1234),
            ),
            ("number_parse", json!({"text": 12.5}), "number", json!(12.5)),
            (
                "number_format",
                json!({"number": 2.675, "decimals": 2}),
                "text",
                json!("2.68"),
            ),
            (
                "number_format",
                json!({"number": "1200", "prefix": "¥"}),
                "text",
                json!("¥1,200"),
            ),
            (
                "json_parse",
                json!({"text": "{\"a\": [1]}"}),
                "value",
                json!({"a": [1]}),
            ),
            (
                "json_parse",
                json!({"text": {"a": 1}}),
                "value",
                json!({"a": 1}),
            ),
            (
                "json_stringify",
                json!({"value": {"名前": "山田"}}),
                "text",
                json!("{\"名前\":\"山田\"}"),
            ),
            (
                "list_filter",
                json!({"list": [{"s": "a"}, {"s": "b"}], "field": "s", "value": "b"}),
                "items",
                json!([{"s": "b"}]),
            ),
            (
                "list_map",
                json!({"list": [{"s": "a"}, {"s": "b"}], "field": "s"}),
                "items",
                json!(["a", "b"]),
            ),
            (
                "list_unique",
                json!({"list": [1, "1", 1]}),
                "count",
                json!(2),
            ),
            (
                "list_sort",
                json!({"list": [3, 1, 2], "order": "desc"}),
                "items",
                json!([3, 2, 1]),
            ),
            ("list_first", json!({"list": []}), "found", json!(false)),
            ("list_last", json!({"list": [1, 2]}), "item", json!(2)),
            ("list_count", json!({"list": null}), "count", json!(0)),
            ("list_sum", json!({"list": [0.1, 0.2]}), "sum", json!(0.3)),
            (
                "lookup",
                json!({"table": {"13": "東京都"}, "key": 13}),
                "value",
                json!("東京都"),
            ),
            (
                "lookup",
                json!({"table": {"13": "東京都"}, "key": 99, "default": "不明"}),
                "value",
                json!("不明"),
            ),
        ];
        for (action, input, field, want) in cases {
            let out =
                run(action, input.clone()).unwrap_or_else(|e| panic!("{action} {input}: {e}"));
            assert_eq!(out[field], want, "{action} {input}");
        }
    }

    #[test]
    fn input_errors_name_the_input() {
        // (action, input, the error)
        let cases = [
            ("split", json!({"txt": "a"}), "action `split` has no input `txt`: it takes text, separator, regex, trim, drop_empty"),
            ("regex_extract", json!({"text": "a"}), "input `pattern`: is required"),
            ("regex_extract", json!({"text": "a", "pattern": "("}), "input `pattern`: `(` is not a valid regular expression"),
            ("trim", json!({"text": "a", "collapse": "yes"}), "input `collapse`: must be true or false, not `yes`"),
            ("pad", json!({"text": "a", "length": 2.5}), "input `length`: must be a whole number, not 2.5"),
            ("pad", json!({"text": "a", "length": -1}), "input `length`: must be 0 or more, not -1"),
            ("date_add", json!({"date": "someday", "amount": 1}), "input `date`: `someday` is not a date"),
            ("date_add", json!({"date": "2026-01-01", "amount": 1, "unit": "eons"}), "input `unit`: unknown unit `eons`"),
            ("date_parse", json!({"date": "2026-01-01", "time_zone": "Tokyo"}), "input `time_zone`: unknown time zone `Tokyo`"),
            ("list_sum", json!({"list": "1,2"}), "input `list`: must be a list, not text"),
            ("list_sort", json!({"list": [], "order": "up"}), "input `order`: unknown order `up`"),
            ("list_holidays", json!({"year": 1999}), "input `year`: Japanese public holidays are known for 2000 to 2099"),
            ("normalize", json!({"text": "a", "mode": "kana"}), "input `mode`: unknown mode `kana`"),
            ("json_parse", json!({"text": "{"}), "input `text`: not valid JSON at line 1"),
            ("nothing", json!({}), "the transform app has no action `nothing`"),
        ];
        for (action, input, want) in cases {
            let e = run(action, input.clone()).unwrap_err();
            assert!(e.starts_with(want), "{action} {input}: {e}");
        }
    }

    #[test]
    fn null_subjects_read_as_empty() {
        assert_eq!(
            run("trim", json!({"text": null})).unwrap(),
            json!({"text": ""})
        );
        assert_eq!(
            run("split", json!({"text": null})).unwrap(),
            json!({"items": [], "count": 0})
        );
    }
}
