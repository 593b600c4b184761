//! Numbers as people write them (`１，２３４円`, `¥1,200`, `▲3,000`, `-3.5%`, `1.234,5`)
//! and as they want them shown (`¥1,234`, `1,234.57`, `▲1,200`).
//!
//! Rounding is done on the decimal digits, never on a binary float: 2.675 is stored in
//! binary as 2.67499999…, so a float `round()` gives 2.67 where the person who typed
//! 2.675 expects 2.68.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Number, Value};

use super::{kana, shorten};

/// A decimal number kept as its digits: exact, whatever its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    pub negative: bool,
    /// The integer digits, without leading zeros ("0" for none).
    pub int: String,
    /// The fraction digits as written (trailing zeros kept, so `1.50` shows as such).
    pub frac: String,
}

/// The most digits a number may have (before or after the point).
const MAX_DIGITS: usize = 400;

impl Decimal {
    /// Plain decimal text: `-1234.5`, `.5`, `1e21`, `2.5E-3`.
    pub fn parse(text: &str) -> Option<Decimal> {
        static RE: OnceLock<Regex> = OnceLock::new();
        let re = RE.get_or_init(|| {
            Regex::new(r"^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,4}))?$").expect("static")
        });
        let c = re.captures(text)?;
        let int = c.get(2).map_or("", |m| m.as_str());
        let frac = c.get(3).map_or("", |m| m.as_str());
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let exp: i64 = c.get(4).map_or(Ok(0), |m| m.as_str().parse()).ok()?;
        let digits = format!("{int}{frac}");
        let point = int.len() as i64 + exp;
        if point.unsigned_abs() as usize > MAX_DIGITS || digits.len() > MAX_DIGITS {
            return None;
        }
        let (int, frac) = if point <= 0 {
            (
                "0".to_string(),
                format!("{}{digits}", "0".repeat(point.unsigned_abs() as usize)),
            )
        } else if point as usize >= digits.len() {
            (
                format!("{digits}{}", "0".repeat(point as usize - digits.len())),
                String::new(),
            )
        } else {
            let (i, f) = digits.split_at(point as usize);
            (i.to_string(), f.to_string())
        };
        Some(Decimal::new(
            c.get(1).is_some_and(|m| m.as_str() == "-"),
            &int,
            &frac,
        ))
    }

    fn new(negative: bool, int: &str, frac: &str) -> Decimal {
        let int = int.trim_start_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        let zero = int == "0" && frac.bytes().all(|b| b == b'0');
        Decimal {
            negative: negative && !zero,
            int: int.to_string(),
            frac: frac.to_string(),
        }
    }

    /// A JSON number's digits (serde_json writes the shortest text that reads back).
    pub fn from_number(n: &Number) -> Decimal {
        Decimal::parse(&n.to_string()).unwrap_or_else(|| Decimal::new(false, "0", ""))
    }

    /// `-1234.5`: no exponent, no trailing zeros.
    pub fn to_text(&self) -> String {
        let frac = self.frac.trim_end_matches('0');
        let sign = if self.negative { "-" } else { "" };
        if frac.is_empty() {
            format!("{sign}{}", self.int)
        } else {
            format!("{sign}{}.{frac}", self.int)
        }
    }

    /// As a JSON number: an integer when it is whole and fits, else the nearest float.
    pub fn to_json(&self) -> Result<Value, String> {
        let text = self.to_text();
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::from(i));
        }
        text.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("{} is too large for a number", shorten(&text)))
    }

    fn scaled(&self, scale: usize) -> Option<i128> {
        let pad = scale.checked_sub(self.frac.len())?;
        let digits = format!("{}{}{}", self.int, self.frac, "0".repeat(pad));
        let v: i128 = digits.parse().ok()?;
        Some(if self.negative { -v } else { v })
    }

    fn from_scaled(v: i128, scale: usize) -> Decimal {
        let digits = format!("{:0>width$}", v.unsigned_abs(), width = scale + 1);
        let (int, frac) = digits.split_at(digits.len() - scale);
        Decimal::new(v < 0, int, frac)
    }
}

/// The exact sum of decimals (prices: 0.1 + 0.2 is 0.3).
pub fn sum(values: &[Decimal]) -> Result<Decimal, String> {
    let scale = values.iter().map(|d| d.frac.len()).max().unwrap_or(0);
    let too_big = || "the sum has more than 38 digits".to_string();
    let mut total: i128 = 0;
    for v in values {
        total = total
            .checked_add(v.scaled(scale).ok_or_else(too_big)?)
            .ok_or_else(too_big)?;
    }
    Ok(Decimal::from_scaled(total, scale))
}

/// A number read from text, and whether it was a percentage (`-3.5%` reads as -3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedNumber {
    pub value: Decimal,
    pub percent: bool,
}

const NUMBER_EXAMPLES: &str = "1,234.5, ¥1,200, １，２３４円, ▲3,000 or -3.5%";

/// Read a number the way people write it: full-width digits, thousands separators,
/// currency signs and words (¥ ￥ $ € £ 円 ドル JPY USD…), 税込/税抜 notes, `▲`/`△` and
/// accounting brackets for negatives, a trailing `%`. With `decimal_comma`, `1.234,5`.
pub fn parse(text: &str, decimal_comma: bool) -> Result<ParsedNumber, String> {
    let raw = text.trim();
    if raw.is_empty() {
        return Err("the number is empty".to_string());
    }
    if raw.chars().count() > MAX_DIGITS {
        return Err(format!("`{}` is too long to be a number", shorten(raw)));
    }
    let bad = || {
        format!(
            "`{}` is not a number flowbot can read: write it like {NUMBER_EXAMPLES}",
            shorten(raw)
        )
    };
    static TAX: OnceLock<Regex> = OnceLock::new();
    let tax = TAX.get_or_init(|| Regex::new(r"\(?税(?:込|抜|別)み?\)?").expect("static"));
    let wide = kana::zenkaku_to_hankaku(raw)
        .replace('￥', "¥")
        .replace(['−', '‐', '–', '—'], "-");
    let mut s: String = tax
        .replace_all(&wide, "")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut negative = false;
    if s.len() > 2 && s.starts_with('(') && s.ends_with(')') {
        negative = true;
        s = s[1..s.len() - 1].to_string();
    }
    let mut rest = s.as_str();
    for mark in ['▲', '△'] {
        if let Some(r) = rest.strip_prefix(mark) {
            negative = true;
            rest = r;
        }
    }
    if strip_sign(&mut rest) {
        negative = true;
    }
    const PREFIXES: [&str; 8] = ["US$", "¥", "$", "€", "£", "JPY", "USD", "EUR"];
    const SUFFIXES: [&str; 8] = ["円", "ドル", "ユーロ", "JPY", "USD", "EUR", "€", "$"];
    if let Some(p) = PREFIXES.iter().find(|p| starts_with_ignore_case(rest, p)) {
        rest = &rest[p.len()..];
        if strip_sign(&mut rest) {
            negative = true;
        }
    }
    let mut percent = false;
    if let Some(r) = rest.strip_suffix('%') {
        percent = true;
        rest = r;
    } else if let Some(sfx) = SUFFIXES.iter().find(|x| ends_with_ignore_case(rest, x)) {
        rest = &rest[..rest.len() - sfx.len()];
    }
    static DOT: OnceLock<Regex> = OnceLock::new();
    static COMMA: OnceLock<Regex> = OnceLock::new();
    let plain = if decimal_comma {
        let re = COMMA.get_or_init(|| {
            Regex::new(r"^(?:\d{1,3}(?:[.']\d{3})+|\d+)?(?:,\d+)?$").expect("static")
        });
        if !re.is_match(rest) {
            return Err(bad());
        }
        rest.replace(['.', '\''], "").replace(',', ".")
    } else {
        let re = DOT.get_or_init(|| {
            Regex::new(r"^(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][+-]?\d+)?$").expect("static")
        });
        if !re.is_match(rest) {
            if rest.contains(',')
                && rest
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ',' || c == '.')
            {
                return Err(format!(
                    "`{}`: a comma must separate thousands (1,234,567); if it marks decimals (1.234,5), set decimal_comma",
                    shorten(raw)
                ));
            }
            return Err(bad());
        }
        rest.replace(',', "")
    };
    let unsigned = Decimal::parse(&plain).ok_or_else(bad)?;
    Ok(ParsedNumber {
        value: Decimal::new(negative, &unsigned.int, &unsigned.frac),
        percent,
    })
}

/// Takes a leading `-` (true) or `+`.
fn strip_sign(rest: &mut &str) -> bool {
    if let Some(r) = rest.strip_prefix('-') {
        *rest = r;
        return true;
    }
    if let Some(r) = rest.strip_prefix('+') {
        *rest = r;
    }
    false
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.get(s.len() - suffix.len()..)
            .is_some_and(|p| p.eq_ignore_ascii_case(suffix))
}

/// A number given to an action or filter: a JSON number, or text read by [`parse`].
pub fn from_value(v: &Value, what: &str) -> Result<Decimal, String> {
    match v {
        Value::Number(n) => Ok(Decimal::from_number(n)),
        Value::String(s) => parse(s, false).map(|p| p.value),
        Value::Null => Err(format!("{what} is empty (null)")),
        other => Err(format!(
            "{what} must be a number, not {}",
            crate::template::kind_of(other)
        )),
    }
}

/// How a number is rounded to its places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// 四捨五入: halves away from zero (2.675 → 2.68, -1.5 → -2).
    HalfUp,
    /// Banker's rounding: halves to the even digit (2.665 → 2.66, 2.675 → 2.68).
    HalfEven,
    /// 切り捨て: toward zero.
    Down,
    /// 切り上げ: away from zero.
    Up,
    /// Toward minus infinity.
    Floor,
    /// Toward plus infinity.
    Ceil,
}

impl Rounding {
    pub const NAMES: &'static [&'static str] =
        &["half_up", "half_even", "down", "up", "floor", "ceil"];

    pub fn parse(name: &str) -> Result<Rounding, String> {
        Ok(match name.trim() {
            "half_up" | "四捨五入" | "" => Rounding::HalfUp,
            "half_even" => Rounding::HalfEven,
            "down" | "切り捨て" => Rounding::Down,
            "up" | "切り上げ" => Rounding::Up,
            "floor" => Rounding::Floor,
            "ceil" => Rounding::Ceil,
            other => {
                return Err(format!(
                    "unknown rounding `{other}`: use one of {}",
                    Rounding::NAMES.join(", ")
                ))
            }
        })
    }
}

/// The most and fewest decimal places: -15 rounds to the quadrillion, 20 to 10⁻²⁰.
pub const PLACES: std::ops::RangeInclusive<i32> = -15..=20;

/// Round to `places` decimals (negative: to tens, hundreds… so -2 is 百円未満).
pub fn round(d: &Decimal, places: i32, mode: Rounding) -> Result<Decimal, String> {
    if !PLACES.contains(&places) {
        return Err(format!(
            "cannot round to {places} places: use {} to {}",
            PLACES.start(),
            PLACES.end()
        ));
    }
    let mut digits: Vec<u8> = format!("{}{}", d.int, d.frac).into_bytes();
    let mut int_len = d.int.len() as i64;
    let mut keep = int_len + i64::from(places);
    if keep < 1 {
        let pad = (1 - keep) as usize;
        digits.splice(0..0, std::iter::repeat_n(b'0', pad));
        int_len += pad as i64;
        keep = 1;
    }
    let keep = keep as usize;
    if digits.len() < keep {
        digits.resize(keep, b'0');
    }
    let rest = digits.split_off(keep);
    let rest_nonzero = rest.iter().any(|&b| b != b'0');
    let last_odd = digits.last().is_some_and(|b| (b - b'0') % 2 == 1);
    let up = match mode {
        Rounding::Down => false,
        Rounding::Up => rest_nonzero,
        Rounding::Floor => d.negative && rest_nonzero,
        Rounding::Ceil => !d.negative && rest_nonzero,
        Rounding::HalfUp => rest.first().is_some_and(|&b| b >= b'5'),
        Rounding::HalfEven => match rest.first() {
            Some(&b) if b > b'5' => true,
            Some(&b'5') => rest[1..].iter().any(|&b| b != b'0') || last_odd,
            _ => false,
        },
    };
    if up {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, b'1');
                int_len += 1;
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let text = String::from_utf8(digits).expect("digits are ASCII");
    Ok(if places >= 0 {
        let (int, frac) = text.split_at(int_len as usize);
        Decimal::new(d.negative, int, frac)
    } else {
        Decimal::new(
            d.negative,
            &format!("{text}{}", "0".repeat(places.unsigned_abs() as usize)),
            "",
        )
    })
}

/// How a negative number is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negative {
    /// `-1,200`
    Minus,
    /// `▲1,200`, as Japanese accounts write it.
    Triangle,
    /// `(1,200)`
    Parentheses,
}

impl Negative {
    pub fn parse(name: &str) -> Result<Negative, String> {
        match name.trim() {
            "minus" | "" | "-" => Ok(Negative::Minus),
            "triangle" | "▲" => Ok(Negative::Triangle),
            "parentheses" | "()" => Ok(Negative::Parentheses),
            other => Err(format!(
                "unknown negative style `{other}`: use minus, triangle or parentheses"
            )),
        }
    }
}

/// How [`format`] shows a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// Places after the point (negative rounds to tens, hundreds…); none keeps the
    /// number's own.
    pub decimals: Option<i32>,
    pub rounding: Rounding,
    pub thousands: String,
    pub point: String,
    pub prefix: String,
    pub suffix: String,
    pub negative: Negative,
}

impl Default for Format {
    fn default() -> Self {
        Format {
            decimals: None,
            rounding: Rounding::HalfUp,
            thousands: ",".to_string(),
            point: ".".to_string(),
            prefix: String::new(),
            suffix: String::new(),
            negative: Negative::Minus,
        }
    }
}

/// The number as text, and the rounded number.
pub fn format(d: &Decimal, f: &Format) -> Result<(String, Decimal), String> {
    for (what, s) in [
        ("thousands separator", &f.thousands),
        ("decimal point", &f.point),
        ("prefix", &f.prefix),
        ("suffix", &f.suffix),
    ] {
        if s.chars().count() > 20 {
            return Err(format!("the {what} is longer than 20 characters"));
        }
    }
    let rounded = match f.decimals {
        Some(p) => round(d, p, f.rounding)?,
        None => d.clone(),
    };
    let mut grouped = String::with_capacity(rounded.int.len() * 2);
    for (i, c) in rounded.int.chars().enumerate() {
        if i > 0 && (rounded.int.len() - i) % 3 == 0 {
            grouped.push_str(&f.thousands);
        }
        grouped.push(c);
    }
    if !rounded.frac.is_empty() {
        grouped.push_str(&f.point);
        grouped.push_str(&rounded.frac);
    }
    let body = format!("{}{grouped}{}", f.prefix, f.suffix);
    let text = match (rounded.negative, f.negative) {
        (false, _) => body,
        (true, Negative::Minus) => format!("-{body}"),
        (true, Negative::Triangle) => format!("▲{body}"),
        (true, Negative::Parentheses) => format!("({body})"),
    };
    Ok((text, rounded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dec(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn parse_reads_what_people_write() {
        // (text, decimal_comma, number, percent)
        let cases = [
            ("1,234.5", false, json!(1234.5), false),
            ("１，２３４円", false, json!(1234), false),
            ("¥1,200", false, json!(1200), false),
            ("￥１，２００", false, json!(1200), false),
            ("1,200円（税込）", false, json!(1200), false),
            ("税込 3,300 円", false, json!(3300), false),
            ("-3.5%", false, json!(-3.5), true),
            ("▲3,000", false, json!(-3000), false),
            ("△500円", false, json!(-500), false),
            ("(1,200)", false, json!(-1200), false),
            ("-¥1,200", false, json!(-1200), false),
            ("¥-1,200", false, json!(-1200), false),
            ("−42", false, json!(-42), false),
            ("$12.99", false, json!(12.99), false),
            ("US$ 1,000", false, json!(1000), false),
            ("100 JPY", false, json!(100), false),
            ("1.234,5", true, json!(1234.5), false),
            ("1.234.567,89 €", true, json!(1234567.89), false),
            ("12,5%", true, json!(12.5), true),
            ("0.5", false, json!(0.5), false),
            (".5", false, json!(0.5), false),
            ("1e3", false, json!(1000), false),
            ("-0", false, json!(0), false),
            ("  42  ", false, json!(42), false),
        ];
        for (text, comma, want, pct) in cases {
            let p = parse(text, comma).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (p.value.to_json().unwrap(), p.percent),
                (want, pct),
                "{text}"
            );
        }
    }

    #[test]
    fn parse_explains_what_it_cannot_read() {
        // (text, decimal_comma, a part of the error)
        let cases = [
            ("1,5", false, "set decimal_comma"),
            ("1,23,456", false, "a comma must separate thousands"),
            ("abc", false, "write it like 1,234.5"),
            ("12円34", false, "not a number"),
            ("", false, "empty"),
            ("1.234,5", false, "set decimal_comma"),
            ("1,234.5", true, "not a number"),
        ];
        for (text, comma, want) in cases {
            let e = parse(text, comma).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn round_works_on_the_typed_digits() {
        use Rounding::*;
        // (number, places, mode, result)
        let cases = [
            ("2.675", 2, HalfUp, "2.68"),
            ("2.665", 2, HalfEven, "2.66"),
            ("2.675", 2, HalfEven, "2.68"),
            ("2.6651", 2, HalfEven, "2.67"),
            ("1.005", 2, HalfUp, "1.01"),
            ("0.5", 0, HalfEven, "0"),
            ("1.5", 0, HalfEven, "2"),
            ("-1.5", 0, HalfUp, "-2"),
            ("-1.5", 0, Floor, "-2"),
            ("-1.5", 0, Ceil, "-1"),
            ("-1.5", 0, Down, "-1"),
            ("-1.1", 0, Up, "-2"),
            ("1.1", 0, Ceil, "2"),
            ("1.9", 0, Floor, "1"),
            ("-0.4", 0, HalfUp, "0"),
            ("9.999", 2, HalfUp, "10.00"),
            ("99.5", 0, HalfUp, "100"),
            ("12345", -2, Down, "12300"),
            ("12350", -2, HalfUp, "12400"),
            ("49", -2, HalfUp, "0"),
            ("50", -2, HalfUp, "100"),
            ("1.5", 3, HalfUp, "1.500"),
            ("0.0049", 2, HalfUp, "0.00"),
        ];
        for (n, places, mode, want) in cases {
            let r = round(&dec(n), places, mode).unwrap();
            let (text, _) = format(
                &r,
                &Format {
                    thousands: String::new(),
                    ..Format::default()
                },
            )
            .unwrap();
            assert_eq!(text, want, "{n} to {places} by {mode:?}");
        }
        assert!(round(&dec("1"), 21, HalfUp)
            .unwrap_err()
            .contains("-15 to 20"));
    }

    #[test]
    fn format_table() {
        let f = |decimals, prefix: &str, suffix: &str, negative| Format {
            decimals,
            prefix: prefix.into(),
            suffix: suffix.into(),
            negative,
            ..Format::default()
        };
        // (number, format, text)
        let cases = [
            (
                json!(1234567.891),
                f(Some(2), "", "", Negative::Minus),
                "1,234,567.89",
            ),
            (json!(1200), f(None, "¥", "", Negative::Minus), "¥1,200"),
            (
                json!(1200),
                f(Some(0), "", "円", Negative::Minus),
                "1,200円",
            ),
            (json!(-1200), f(None, "¥", "", Negative::Minus), "-¥1,200"),
            (
                json!(-1200),
                f(None, "", "円", Negative::Triangle),
                "▲1,200円",
            ),
            (
                json!(-1200.5),
                f(Some(0), "$", "", Negative::Parentheses),
                "($1,201)",
            ),
            (json!(2.675), f(Some(2), "", "", Negative::Minus), "2.68"),
            (
                json!(1e21),
                f(None, "", "", Negative::Minus),
                "1,000,000,000,000,000,000,000",
            ),
            (
                json!(0.000001),
                f(None, "", "", Negative::Minus),
                "0.000001",
            ),
            (json!(123), f(None, "", "", Negative::Minus), "123"),
            (json!(-999.5), f(Some(0), "", "", Negative::Minus), "-1,000"),
            (
                json!("１，２３４．５円"),
                f(Some(0), "¥", "", Negative::Minus),
                "¥1,235",
            ),
        ];
        for (n, fmt, want) in cases {
            let d = from_value(&n, "the number").unwrap();
            assert_eq!(format(&d, &fmt).unwrap().0, want, "{n}");
        }
        let euro = Format {
            thousands: ".".into(),
            point: ",".into(),
            decimals: Some(2),
            suffix: " €".into(),
            ..Format::default()
        };
        assert_eq!(
            format(&dec("1234567.891"), &euro).unwrap().0,
            "1.234.567,89 €"
        );
        let (_, rounded) = format(&dec("2.675"), &f(Some(2), "", "", Negative::Minus)).unwrap();
        assert_eq!(rounded.to_json().unwrap(), json!(2.68));
    }

    #[test]
    fn sums_are_exact() {
        let cases: &[(&[&str], &str)] = &[
            (&["0.1", "0.2"], "0.3"),
            (&["1200", "-200.50", "0.5"], "1000"),
            (&[], "0"),
            (&["-1", "1"], "0"),
        ];
        for (values, want) in cases {
            let ds: Vec<Decimal> = values.iter().map(|v| dec(v)).collect();
            assert_eq!(sum(&ds).unwrap().to_text(), *want, "{values:?}");
        }
        let huge = vec![dec(&"9".repeat(38)); 2];
        assert!(sum(&huge).unwrap_err().contains("38 digits"));
    }
}
