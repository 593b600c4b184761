//! The transforms as template filters (`{{ x | zenkaku_to_hankaku }}`), registered in
//! the flow template environment by [`register`]. Each filter only converts its
//! arguments and calls the function the `transform` action calls.
//!
//! Date filters read their value in `tz` (Asia/Tokyo unless told) and give a date back
//! as `YYYY-MM-DD` when only a date was written, else as ISO 8601 with the offset.

use minijinja::value::{Kwargs, Value as MjValue};
use minijinja::{Environment, Error as MjError, ErrorKind};
use serde_json::Value;

use super::date::{self, Order, Parsed, Unit};
use super::holidays::Calendar;
use super::kana::{self, Mode};
use super::list::{self, LookupOptions};
use super::number::{self, Format, Negative, Rounding};
use super::text::{self, Side, SplitOptions};
use super::{json, scalar_text};

pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_extract", regex_extract);
    env.add_filter("split_items", split_items);
    env.add_filter("trim_all", trim_all);
    env.add_filter("zenkaku_to_hankaku", |v: &MjValue| {
        convert(v, "zenkaku_to_hankaku", Mode::ZenkakuToHankaku)
    });
    env.add_filter("hankaku_to_zenkaku", |v: &MjValue| {
        convert(v, "hankaku_to_zenkaku", Mode::HankakuToZenkaku)
    });
    env.add_filter("to_katakana", |v: &MjValue| {
        convert(v, "to_katakana", Mode::HiraganaToKatakana)
    });
    env.add_filter("to_hiragana", |v: &MjValue| {
        convert(v, "to_hiragana", Mode::KatakanaToHiragana)
    });
    env.add_filter("kana_fullwidth", |v: &MjValue| {
        convert(v, "kana_fullwidth", Mode::HalfwidthKanaToFullwidth)
    });
    env.add_filter("nfkc", |v: &MjValue| convert(v, "nfkc", Mode::Nfkc));
    env.add_filter("pad_left", |v: &MjValue, n: usize, c: Option<String>| {
        pad(v, n, c, Side::Start)
    });
    env.add_filter("pad_right", |v: &MjValue, n: usize, c: Option<String>| {
        pad(v, n, c, Side::End)
    });
    env.add_filter("date_add", date_add);
    env.add_filter("date_diff", date_diff);
    env.add_filter("date_to_tz", date_to_tz);
    env.add_filter("month_start", |v: &MjValue, n: Option<i64>, k: Kwargs| {
        month(v, n, k, true)
    });
    env.add_filter("month_end", |v: &MjValue, n: Option<i64>, k: Kwargs| {
        month(v, n, k, false)
    });
    env.add_filter("business_days_add", business_days_add);
    env.add_filter("is_business_day", is_business_day);
    env.add_filter("is_holiday", is_holiday);
    env.add_filter("holiday_name", holiday_name);
    env.add_filter("wareki", wareki);
    env.add_filter("number_format", number_format);
    env.add_filter("number_parse", number_parse);
    env.add_filter("json_parse", json_parse);
    env.add_filter("lookup", lookup);
}

fn fail(filter: &str, message: String) -> MjError {
    MjError::new(ErrorKind::InvalidOperation, format!("{filter}: {message}"))
}

fn json_of(v: &MjValue, filter: &str) -> Result<Value, MjError> {
    if v.is_undefined() {
        return Err(MjError::from(ErrorKind::UndefinedError));
    }
    serde_json::to_value(v).map_err(|e| fail(filter, format!("the value cannot be read: {e}")))
}

/// The text a filter transforms; none is empty text.
fn text_of(v: &MjValue, filter: &str) -> Result<String, MjError> {
    let json = json_of(v, filter)?;
    let text = scalar_text(&json).ok_or_else(|| {
        fail(
            filter,
            format!("needs text, not {}", crate::template::kind_of(&json)),
        )
    })?;
    super::check_text(&text, "the text").map_err(|e| fail(filter, e))?;
    Ok(text)
}

fn out(json: Value) -> MjValue {
    MjValue::from_serialize(json)
}

fn convert(v: &MjValue, filter: &str, mode: Mode) -> Result<String, MjError> {
    let out = kana::normalize(&text_of(v, filter)?, mode);
    super::check_text(&out, "the converted text").map_err(|e| fail(filter, e))?;
    Ok(out)
}

/// `regex_replace(pattern, replacement, all=true, ignore_case=false)`
fn regex_replace(
    v: &MjValue,
    pattern: String,
    replacement: String,
    kwargs: Kwargs,
) -> Result<String, MjError> {
    let all = kwargs.get::<Option<bool>>("all")?.unwrap_or(true);
    let ignore_case = kwargs.get::<Option<bool>>("ignore_case")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    text::regex_replace(
        &text_of(v, "regex_replace")?,
        &pattern,
        &replacement,
        all,
        ignore_case,
    )
    .map(|(text, _)| text)
    .map_err(|e| fail("regex_replace", e))
}

/// `regex_extract(pattern, all=false, ignore_case=false)`: the first match's value (its
/// first group, else the match) or none; with `all`, the list of every match's value.
fn regex_extract(v: &MjValue, pattern: String, kwargs: Kwargs) -> Result<MjValue, MjError> {
    let all = kwargs.get::<Option<bool>>("all")?.unwrap_or(false);
    let ignore_case = kwargs.get::<Option<bool>>("ignore_case")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let matches = text::find_matches(&text_of(v, "regex_extract")?, &pattern, all, ignore_case)
        .map_err(|e| fail("regex_extract", e))?;
    let mut values = matches.iter().map(|m| Value::String(m.value().to_string()));
    Ok(out(if all {
        Value::Array(values.collect())
    } else {
        values.next().unwrap_or(Value::Null)
    }))
}

/// `split_items(separator=",", regex=false, trim=true, drop_empty=true)`
fn split_items(v: &MjValue, separator: Option<String>, kwargs: Kwargs) -> Result<MjValue, MjError> {
    let opts = SplitOptions {
        regex: kwargs.get::<Option<bool>>("regex")?.unwrap_or(false),
        trim: kwargs.get::<Option<bool>>("trim")?.unwrap_or(true),
        drop_empty: kwargs.get::<Option<bool>>("drop_empty")?.unwrap_or(true),
    };
    kwargs.assert_all_used()?;
    let sep = separator.unwrap_or_else(|| ",".to_string());
    let items =
        text::split(&text_of(v, "split_items")?, &sep, opts).map_err(|e| fail("split_items", e))?;
    Ok(out(Value::from(items)))
}

/// `trim_all(side="both", collapse=false)`
fn trim_all(v: &MjValue, side: Option<String>, kwargs: Kwargs) -> Result<String, MjError> {
    let collapse = kwargs.get::<Option<bool>>("collapse")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let side = Side::parse(side.as_deref().unwrap_or("both")).map_err(|e| fail("trim_all", e))?;
    Ok(text::trim(&text_of(v, "trim_all")?, side, collapse))
}

fn pad(v: &MjValue, length: usize, c: Option<String>, side: Side) -> Result<String, MjError> {
    let filter = if side == Side::End {
        "pad_right"
    } else {
        "pad_left"
    };
    text::pad(
        &text_of(v, filter)?,
        length,
        c.as_deref().unwrap_or(" "),
        side,
    )
    .map_err(|e| fail(filter, e))
}

fn zone(kwargs: &Kwargs, name: &str, filter: &str) -> Result<jiff::tz::TimeZone, MjError> {
    let name: Option<String> = kwargs.get(name)?;
    date::time_zone(name.as_deref().unwrap_or("")).map_err(|e| fail(filter, e))
}

fn parsed(v: &MjValue, tz: &jiff::tz::TimeZone, filter: &str) -> Result<Parsed, MjError> {
    date::parse(&json_of(v, filter)?, Order::Ymd, tz).map_err(|e| fail(filter, e))
}

/// The same kind of value back: a date for a date, a date-time for a date-time.
fn like(input: &Parsed, zoned: jiff::Zoned) -> String {
    date::shown(&Parsed {
        zoned,
        has_time: input.has_time,
    })
}

/// `date_add(amount, unit="days", tz="Asia/Tokyo")`
fn date_add(
    v: &MjValue,
    amount: i64,
    unit: Option<String>,
    kwargs: Kwargs,
) -> Result<String, MjError> {
    let tz = zone(&kwargs, "tz", "date_add")?;
    kwargs.assert_all_used()?;
    let unit = Unit::parse(unit.as_deref().unwrap_or("days")).map_err(|e| fail("date_add", e))?;
    let p = parsed(v, &tz, "date_add")?;
    let z = date::add(&p.zoned, amount, unit).map_err(|e| fail("date_add", e))?;
    Ok(like(&p, z))
}

/// `start | date_diff(end, unit="days", tz="Asia/Tokyo")`: whole units from the value
/// to `end`.
fn date_diff(
    v: &MjValue,
    end: MjValue,
    unit: Option<String>,
    kwargs: Kwargs,
) -> Result<i64, MjError> {
    let tz = zone(&kwargs, "tz", "date_diff")?;
    kwargs.assert_all_used()?;
    let unit = Unit::parse(unit.as_deref().unwrap_or("days")).map_err(|e| fail("date_diff", e))?;
    let (start, end) = (
        parsed(v, &tz, "date_diff")?,
        parsed(&end, &tz, "date_diff")?,
    );
    date::diff(&start.zoned, &end.zoned, unit).map_err(|e| fail("date_diff", e))
}

/// `date_to_tz(to, from="Asia/Tokyo")`: the same moment in another zone, as ISO 8601.
fn date_to_tz(v: &MjValue, to: String, kwargs: Kwargs) -> Result<String, MjError> {
    let from = zone(&kwargs, "from", "date_to_tz")?;
    kwargs.assert_all_used()?;
    let to = date::time_zone(&to).map_err(|e| fail("date_to_tz", e))?;
    let p = parsed(v, &from, "date_to_tz")?;
    Ok(date::iso(&p.zoned.with_time_zone(to)))
}

/// `month_start(months=0, tz=…)` and `month_end(months=0, tz=…)`.
fn month(v: &MjValue, months: Option<i64>, kwargs: Kwargs, start: bool) -> Result<String, MjError> {
    let filter = if start { "month_start" } else { "month_end" };
    let tz = zone(&kwargs, "tz", filter)?;
    kwargs.assert_all_used()?;
    let p = parsed(v, &tz, filter)?;
    let months = months.unwrap_or(0);
    let z = if start {
        date::month_start(&p.zoned, months)
    } else {
        date::month_end(&p.zoned, months)
    };
    Ok(like(&p, z.map_err(|e| fail(filter, e))?))
}

fn days_off(
    kwargs: &Kwargs,
    tz: &jiff::tz::TimeZone,
    filter: &str,
) -> Result<Vec<jiff::civil::Date>, MjError> {
    let Some(list) = kwargs.get::<Option<MjValue>>("days_off")? else {
        return Ok(Vec::new());
    };
    match json_of(&list, filter)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => {
            super::check_items(items.len(), "days_off").map_err(|e| fail(filter, e))?;
            items
                .iter()
                .map(|d| date::parse(d, Order::Ymd, tz).map(|p| p.zoned.date()))
                .collect::<Result<_, _>>()
                .map_err(|e| fail(filter, format!("days_off: {e}")))
        }
        other => Err(fail(
            filter,
            format!(
                "days_off must be a list of dates, not {}",
                crate::template::kind_of(&other)
            ),
        )),
    }
}

/// `business_days_add(days, tz=…, days_off=[…])`
fn business_days_add(v: &MjValue, days: i64, kwargs: Kwargs) -> Result<String, MjError> {
    let tz = zone(&kwargs, "tz", "business_days_add")?;
    let off = days_off(&kwargs, &tz, "business_days_add")?;
    kwargs.assert_all_used()?;
    let p = parsed(v, &tz, "business_days_add")?;
    let z =
        date::business_days_add(&p.zoned, days, &off).map_err(|e| fail("business_days_add", e))?;
    Ok(like(&p, z))
}

/// `is_business_day(tz=…, days_off=[…])`
fn is_business_day(v: &MjValue, kwargs: Kwargs) -> Result<bool, MjError> {
    let tz = zone(&kwargs, "tz", "is_business_day")?;
    let off = days_off(&kwargs, &tz, "is_business_day")?;
    kwargs.assert_all_used()?;
    let p = parsed(v, &tz, "is_business_day")?;
    Calendar::new(off)
        .is_business_day(p.zoned.date())
        .map_err(|e| fail("is_business_day", e))
}

fn holiday(v: &MjValue, kwargs: Kwargs, filter: &str) -> Result<Option<&'static str>, MjError> {
    let tz = zone(&kwargs, "tz", filter)?;
    kwargs.assert_all_used()?;
    let p = parsed(v, &tz, filter)?;
    super::holidays::holiday_name(p.zoned.date()).map_err(|e| fail(filter, e))
}

/// `is_holiday(tz=…)`: a Japanese public holiday (振替休日 and 国民の休日 included).
fn is_holiday(v: &MjValue, kwargs: Kwargs) -> Result<bool, MjError> {
    Ok(holiday(v, kwargs, "is_holiday")?.is_some())
}

/// `holiday_name(tz=…)`: the holiday's Japanese name, or none.
fn holiday_name(v: &MjValue, kwargs: Kwargs) -> Result<MjValue, MjError> {
    Ok(holiday(v, kwargs, "holiday_name")?.map_or(MjValue::from(()), MjValue::from))
}

/// `wareki(tz=…)`: `令和8年11月30日`.
fn wareki(v: &MjValue, kwargs: Kwargs) -> Result<String, MjError> {
    let tz = zone(&kwargs, "tz", "wareki")?;
    kwargs.assert_all_used()?;
    let p = parsed(v, &tz, "wareki")?;
    date::format(&p.zoned, "%EY%-m月%-d日").map_err(|e| fail("wareki", e))
}

/// `number_format(decimals=None, rounding="half_up", separator=",", point=".",
/// prefix="", suffix="", negative="minus")`
fn number_format(v: &MjValue, decimals: Option<i32>, kwargs: Kwargs) -> Result<String, MjError> {
    let text = |name: &str, default: &str| -> Result<String, MjError> {
        Ok(kwargs
            .get::<Option<String>>(name)?
            .unwrap_or_else(|| default.to_string()))
    };
    let f = Format {
        decimals,
        rounding: Rounding::parse(&text("rounding", "half_up")?)
            .map_err(|e| fail("number_format", e))?,
        thousands: text("separator", ",")?,
        point: text("point", ".")?,
        prefix: text("prefix", "")?,
        suffix: text("suffix", "")?,
        negative: Negative::parse(&text("negative", "minus")?)
            .map_err(|e| fail("number_format", e))?,
    };
    kwargs.assert_all_used()?;
    let n = number::from_value(&json_of(v, "number_format")?, "the value")
        .map_err(|e| fail("number_format", e))?;
    number::format(&n, &f)
        .map(|(t, _)| t)
        .map_err(|e| fail("number_format", e))
}

/// `number_parse(decimal_comma=false)`: `"¥1,200"` → 1200.
fn number_parse(v: &MjValue, kwargs: Kwargs) -> Result<MjValue, MjError> {
    let comma = kwargs
        .get::<Option<bool>>("decimal_comma")?
        .unwrap_or(false);
    kwargs.assert_all_used()?;
    let p =
        number::parse(&text_of(v, "number_parse")?, comma).map_err(|e| fail("number_parse", e))?;
    Ok(out(p
        .value
        .to_json()
        .map_err(|e| fail("number_parse", e))?))
}

/// `json_parse`: JSON text as a value (a value that is not text is given back).
fn json_parse(v: &MjValue) -> Result<MjValue, MjError> {
    match json_of(v, "json_parse")? {
        Value::String(s) => Ok(out(json::parse(&s).map_err(|e| fail("json_parse", e))?)),
        other => Ok(out(other)),
    }
}

/// `key | lookup(table, default=none, normalize=false, key_field="key",
/// value_field="value")`
fn lookup(v: &MjValue, table: MjValue, kwargs: Kwargs) -> Result<MjValue, MjError> {
    let default: Option<MjValue> = kwargs.get("default")?;
    let normalize = kwargs.get::<Option<bool>>("normalize")?.unwrap_or(false);
    let key_field: Option<String> = kwargs.get("key_field")?;
    let value_field: Option<String> = kwargs.get("value_field")?;
    kwargs.assert_all_used()?;
    let opts = LookupOptions {
        normalize,
        key_field: key_field.as_deref(),
        value_field: value_field.as_deref(),
    };
    let found = list::lookup(&json_of(&table, "lookup")?, &json_of(v, "lookup")?, &opts)
        .map_err(|e| fail("lookup", e))?;
    Ok(match found {
        Some(v) => out(v),
        None => default.unwrap_or_else(|| MjValue::from(())),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use crate::template::render_str;

    fn scope() -> Map<String, Value> {
        match json!({
            "order": {
                "name": "ﾔﾏﾀﾞ ﾀﾛｳ", "kana": "やまだ たろう", "tel": "０３－１２３４－５６７８",
                "memo": "注文番号：A-12345 / 配送希望：11月30日", "tags": "ギフト, 熨斗 ,,急ぎ",
                "total": "¥12,800", "rate": 0.1, "ordered_at": "2026-11-27T10:00:00+09:00",
                "due": "2026-12-31", "pref": "１３", "payload": "{\"items\": [{\"sku\": \"A\"}]}",
            },
            "prefs": {"13": "東京都", "27": "大阪府"},
        }) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn r(src: &str) -> Result<Value, String> {
        render_str(src, &scope()).map_err(|e| e.message)
    }

    #[test]
    fn filters_render() {
        // (template, result)
        let cases = [
            (r#"{{ "a  b \t c" | regex_replace("\\s+", " ") }}"#, json!("a b c")),
            (r#"{{ "a1b2" | regex_replace("\\d", "*", all=false) }}"#, json!("a*b2")),
            (r#"{{ order.memo | regex_extract("注文番号：([A-Z]-\\d+)") }}"#, json!("A-12345")),
            (r#"{{ "a1 b22" | regex_extract("\\d+", all=true) }}"#, json!(["1", "22"])),
            (r#"{{ "abc" | regex_extract("\\d") }}"#, json!(null)),
            ("{{ order.tags | split_items }}", json!(["ギフト", "熨斗", "急ぎ"])),
            ("{{ 'a b\u{3000}c' | split_items('\\\\s+', regex=true) }}", json!(["a", "b", "c"])),
            ("{{ '\u{3000}山田  太郎 ' | trim_all(collapse=true) }}", json!("山田 太郎")),
            ("{{ order.tel | zenkaku_to_hankaku }}", json!("03-1234-5678")),
            ("{{ 'ABC 123' | hankaku_to_zenkaku }}", json!("ＡＢＣ　１２３")),
            ("{{ order.kana | to_katakana }}", json!("ヤマダ タロウ")),
            ("{{ 'ヤマダ' | to_hiragana }}", json!("やまだ")),
            ("{{ order.name | kana_fullwidth }}", json!("ヤマダ タロウ")),
            ("{{ 'ｶﾞ①' | nfkc }}", json!("ガ1")),
            ("{{ 42 | pad_left(6, '0') }}", json!("000042")),
            ("{{ '山田' | pad_right(4, '＊') }}", json!("山田＊＊")),
            ("{{ order.due | date_add(1, 'months') }}", json!("2027-01-31")),
            ("{{ '2026-01-31' | date_add(1, 'months') }}", json!("2026-02-28")),
            ("{{ order.ordered_at | date_add(-2, 'hours') }}", json!("2026-11-27T08:00:00+09:00")),
            ("{{ order.ordered_at | date_diff(order.due) }}", json!(33)),
            ("{{ order.ordered_at | date_to_tz('UTC') }}", json!("2026-11-27T01:00:00+00:00")),
            ("{{ '2026-11-27 10:00' | date_to_tz('America/New_York') }}", json!("2026-11-26T20:00:00-05:00")),
            ("{{ '2026-02-10' | month_end }}", json!("2026-02-28")),
            ("{{ '2026-02-10' | month_start(1) }}", json!("2026-03-01")),
            ("{{ order.ordered_at | month_end }}", json!("2026-11-30T23:59:59+09:00")),
            ("{{ order.due | business_days_add(1) }}", json!("2027-01-04")),
            ("{{ '2026-12-28' | business_days_add(1, days_off=['2026-12-29', '2026-12-30', '2026-12-31']) }}", json!("2027-01-04")),
            ("{{ '2026-11-23' | is_holiday }}", json!(true)),
            ("{{ '2026-11-23' | is_business_day }}", json!(false)),
            ("{{ '2026-11-24' | is_business_day }}", json!(true)),
            ("{{ '2026-11-23' | holiday_name }}", json!("勤労感謝の日")),
            ("{{ '2026-11-24' | holiday_name }}", json!(null)),
            ("{{ '令和8年11月30日' | date_add(0) }}", json!("2026-11-30")),
            ("{{ '2026-11-30' | wareki }}", json!("令和8年11月30日")),
            ("{{ 1234567.891 | number_format(2) }}", json!("1,234,567.89")),
            ("{{ 2.675 | number_format(2) }}", json!("2.68")),
            ("{{ order.total | number_parse | number_format(prefix='¥') }}", json!("¥12,800")),
            ("{{ -1200 | number_format(suffix='円', negative='triangle') }}", json!("▲1,200円")),
            ("{{ 12345 | number_format(-2, rounding='down') }}", json!("12,300")),
            ("{{ order.total | number_parse }}", json!(12800)),
            ("{{ (order.total | number_parse) + 200 }}", json!(13000)),
            ("{{ '1.234,5' | number_parse(decimal_comma=true) }}", json!(1234.5)),
            ("{{ (order.payload | json_parse).items[0].sku }}", json!("A")),
            ("{{ order.pref | lookup(prefs, normalize=true) }}", json!("東京都")),
            ("{{ '99' | lookup(prefs, default='不明') }}", json!("不明")),
            ("{{ '99' | lookup(prefs) }}", json!(null)),
            ("{{ 'b' | lookup([{'key': 'a', 'value': 1}, {'key': 'b', 'value': 2}]) }}", json!(2)),
            ("送料: {{ 800 | number_format(prefix='¥') }}（{{ order.due | wareki }}まで）", json!("送料: ¥800（令和8年12月31日まで）")),
        ];
        for (src, want) in cases {
            assert_eq!(
                r(src).unwrap_or_else(|e| panic!("{src}: {e}")),
                want,
                "{src}"
            );
        }
    }

    #[test]
    fn filter_errors_say_which_filter() {
        // (template, a part of the error)
        let cases = [
            (
                "{{ 'x' | regex_replace('(', '') }}",
                "regex_replace: `(` is not a valid regular expression",
            ),
            (
                "{{ 'someday' | date_add(1) }}",
                "date_add: `someday` is not a date",
            ),
            (
                "{{ '2026-01-01' | date_add(1, 'eons') }}",
                "date_add: unknown unit `eons`",
            ),
            (
                "{{ '2026-01-01' | date_to_tz('Mars/Base') }}",
                "date_to_tz: unknown time zone `Mars/Base`",
            ),
            (
                "{{ 'abc' | number_parse }}",
                "number_parse: `abc` is not a number",
            ),
            (
                "{{ '{' | json_parse }}",
                "json_parse: not valid JSON at line 1",
            ),
            (
                "{{ 'a' | pad_left(3, 'ab') }}",
                "pad_left: the pad character must be exactly one character",
            ),
            (
                "{{ '1999-01-01' | is_holiday }}",
                "is_holiday: Japanese public holidays are known for 2000 to 2099",
            ),
            (
                "{{ [1] | zenkaku_to_hankaku }}",
                "zenkaku_to_hankaku: needs text, not a list",
            ),
            (
                "{{ 'a' | lookup('table') }}",
                "lookup: the table must be a mapping",
            ),
            (
                "{{ order.nothing | nfkc }}",
                "`order.nothing` is not defined",
            ),
        ];
        for (src, want) in cases {
            let e = r(src).unwrap_err();
            assert!(e.contains(want), "{src}: {e}");
        }
    }
}
