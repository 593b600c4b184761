//! Dates and times as Japanese back offices write them: ISO 8601, `2026/11/30 14:05`,
//! `2026年11月30日(月) 14時05分`, era years (`令和8年11月30日`, `R8.11.30`), mail dates,
//! Unix seconds; arithmetic with month-end clamping, time zones, month boundaries, and
//! business days over Japan's public holidays.
//!
//! A text without an offset is read in the step's time zone (Asia/Tokyo unless told);
//! a text with one is converted into it, so the parts (day, weekday…) are the local ones.

use std::sync::OnceLock;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned, ZonedDifference};
use regex::{Captures, Regex};
use serde_json::{json, Value};

use super::holidays::Calendar;
use super::{kana, shorten};

pub const DEFAULT_TIME_ZONE: &str = "Asia/Tokyo";

/// A time zone by IANA name (`Asia/Tokyo`, `UTC`, `America/New_York`).
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    match name.trim() {
        "" => time_zone(DEFAULT_TIME_ZONE),
        "UTC" | "utc" | "Z" => Ok(TimeZone::UTC),
        n => TimeZone::get(n).map_err(|_| {
            format!(
                "unknown time zone `{}`: use an IANA name such as Asia/Tokyo, UTC or America/New_York",
                shorten(n)
            )
        }),
    }
}

/// Which number comes first in a date whose year is last (`11/30/2026`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Year first only: a year-last date is refused as ambiguous.
    Ymd,
    /// Month, day, year (American).
    Mdy,
    /// Day, month, year (European).
    Dmy,
}

impl Order {
    pub fn parse(name: &str) -> Result<Order, String> {
        match name.trim() {
            "ymd" | "" => Ok(Order::Ymd),
            "mdy" => Ok(Order::Mdy),
            "dmy" => Ok(Order::Dmy),
            other => Err(format!("unknown order `{other}`: use ymd, mdy or dmy")),
        }
    }
}

/// A date read by [`parse`]; `has_time` is false when only a date was written, so a
/// filter can give a date back as a date.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub zoned: Zoned,
    pub has_time: bool,
}

/// An era: name, initial, first day, and the Gregorian year of its year 0.
type Era = (&'static str, char, (i16, i8, i8), i16);

/// Japan's modern eras, newest first.
const ERAS: [Era; 3] = [
    ("令和", 'R', (2019, 5, 1), 2018),
    ("平成", 'H', (1989, 1, 8), 1988),
    ("昭和", 'S', (1926, 12, 25), 1925),
];

fn era_start(i: usize) -> Date {
    let (y, m, d) = ERAS[i].2;
    Date::new(y, m, d).expect("eras start on real days")
}

/// The era of a date and its year in it (元年 is 1); none before 昭和.
pub fn wareki(date: Date) -> Option<(&'static str, i16)> {
    (0..ERAS.len())
        .find(|&i| date >= era_start(i))
        .map(|i| (ERAS[i].0, date.year() - ERAS[i].3))
}

/// `令和8年`, `令和元年`.
pub fn wareki_year(date: Date) -> Option<String> {
    wareki(date).map(|(era, y)| match y {
        1 => format!("{era}元年"),
        y => format!("{era}{y}年"),
    })
}

/// The Gregorian date of an era date, checked against the era's span.
fn era_date(era: &str, year: &str, month: i64, day: i64, raw: &str) -> Result<Date, String> {
    let i = ERAS
        .iter()
        .position(|(name, initial, ..)| {
            era == *name || era.eq_ignore_ascii_case(&initial.to_string())
        })
        .ok_or_else(|| format!("unknown era `{era}` in `{raw}`: use 令和, 平成 or 昭和"))?;
    let n: i64 = if year == "元" {
        1
    } else {
        year.parse().unwrap_or(0)
    };
    if n < 1 {
        return Err(format!("`{raw}`: an era year starts at 1 (元年)"));
    }
    let date = make_date(i64::from(ERAS[i].3) + n, month, day, raw)?;
    let (name, start) = (ERAS[i].0, era_start(i));
    if date < start {
        return Err(format!("`{raw}` is before {name} began on {start}"));
    }
    if i > 0 {
        let end = era_start(i - 1).yesterday().expect("within the calendar");
        if date > end {
            return Err(format!(
                "`{raw}` is after {name} ended on {end}: the era then is {}",
                ERAS[i - 1].0
            ));
        }
    }
    Ok(date)
}

fn make_date(year: i64, month: i64, day: i64, raw: &str) -> Result<Date, String> {
    if !(1..=12).contains(&month) {
        return Err(format!("`{raw}` has no month {month}: months are 1 to 12"));
    }
    let year = i16::try_from(year)
        .ok()
        .filter(|y| (1..=9999).contains(y))
        .ok_or_else(|| format!("`{raw}`: the year {year} is out of range"))?;
    let first = Date::new(year, month as i8, 1).map_err(|e| e.to_string())?;
    let days = i64::from(first.days_in_month());
    if !(1..=days).contains(&day) {
        return Err(format!(
            "`{raw}` is not a real date: {year}-{month:02} has days 1 to {days}"
        ));
    }
    Date::new(year, month as i8, day as i8).map_err(|e| e.to_string())
}

fn regexes() -> &'static [Regex; 8] {
    static RES: OnceLock<[Regex; 8]> = OnceLock::new();
    RES.get_or_init(|| {
        [
            // 0: a weekday in brackets, as invoices and forms add it: (月), (月曜日), (Mon)
            r"\s*[(（]\s*(?:[月火水木金土日](?:曜日?)?|(?i:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?)\s*[)）]\s*",
            // 1: year first, numeric: 2026-11-30, 2026/11/30, 2026.11.30
            r"^(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})",
            // 2: era with numbers: R8.11.30, 令和8/11/30, H31-04-30
            r"^(?P<era>令和|平成|昭和|[RrHhSs])\s*(?P<ey>元|\d{1,2})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})",
            // 3: 年月日, with a Gregorian or an era year
            r"^(?:(?P<era>令和|平成|昭和|[RrHhSs])\s*(?P<ey>元|\d{1,2})|(?P<y>\d{4}))\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日",
            // 4: year last: 11/30/2026 or 30/11/2026
            r"^(?P<a>\d{1,2})[-/.](?P<b>\d{1,2})[-/.](?P<y>\d{4})",
            // 5: a clock time: 14:05, 14:05:09.123, 午後2:05, 2:05 PM
            r"^(?P<ap>午前|午後|(?i:am|pm))?\s*(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,9}))?)?\s*(?P<ap2>(?i:am|pm))?$",
            // 6: a Japanese time: 14時05分, 午後2時, 9時半, 14時05分09秒
            r"^(?P<ap>午前|午後)?\s*(?P<h>\d{1,2})\s*時\s*(?:(?P<half>半)|(?P<mi>\d{1,2})\s*分(?:\s*(?P<s>\d{1,2})\s*秒)?)?$",
            // 7: digits only: compact dates, Unix seconds or milliseconds
            r"^-?\d+(?:\.\d+)?$",
        ]
        .map(|p| Regex::new(p).expect("static patterns compile"))
    })
}

fn num(caps: &Captures, name: &str) -> i64 {
    caps.name(name)
        .and_then(|m| m.as_str().parse().ok())
        .unwrap_or(0)
}

const EXAMPLES: &str = "2026-11-30, 2026/11/30 14:05, 2026年11月30日, 令和8年11月30日 or R8.11.30";

/// Read a date or date-time (see the module's documentation for the forms).
pub fn parse(value: &Value, order: Order, tz: &TimeZone) -> Result<Parsed, String> {
    match value {
        Value::Number(n) => {
            let f = n
                .as_f64()
                .ok_or_else(|| format!("`{n}` is not a Unix time"))?;
            unix(f, &n.to_string(), tz)
        }
        Value::String(s) => parse_text(s, order, tz),
        Value::Null => Err("the date is empty (null)".to_string()),
        other => Err(format!(
            "a date must be text or a number, not {}",
            crate::template::kind_of(other)
        )),
    }
}

fn unix(f: f64, raw: &str, tz: &TimeZone) -> Result<Parsed, String> {
    // 13 digits and more are milliseconds (JavaScript's Date.now()); seconds that large
    // would be past the year 33000.
    let ts = if f.abs() >= 1e12 {
        Timestamp::from_millisecond(f as i64)
    } else if f.fract() == 0.0 {
        Timestamp::from_second(f as i64)
    } else {
        Timestamp::from_millisecond((f * 1000.0).round() as i64)
    };
    let ts = ts.map_err(|_| format!("`{raw}` is out of range for a Unix time"))?;
    Ok(Parsed {
        zoned: ts.to_zoned(tz.clone()),
        has_time: true,
    })
}

fn parse_text(raw: &str, order: Order, tz: &TimeZone) -> Result<Parsed, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("the date is empty".to_string());
    }
    if raw.chars().count() > 100 {
        return Err(format!("`{}` is too long to be a date", shorten(raw)));
    }
    let text = kana::zenkaku_to_hankaku(raw);
    let text = text.trim();
    let instant = |zoned: Zoned| Parsed {
        zoned: zoned.with_time_zone(tz.clone()),
        has_time: true,
    };
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(instant(ts.to_zoned(TimeZone::UTC)));
    }
    if let Ok(z) = text.parse::<Zoned>() {
        return Ok(instant(z));
    }
    if text.bytes().any(|b| b.is_ascii_alphabetic()) {
        if let Ok(z) = jiff::fmt::rfc2822::parse(text) {
            return Ok(instant(z));
        }
    }
    let re = regexes();
    let text = re[0].replace_all(text, " ");
    let text = text.trim();
    if re[7].is_match(text) {
        let digits = text.len();
        if !text.contains(['.', '-']) && matches!(digits, 8 | 12 | 14) {
            return compact(text, raw, tz);
        }
        // Shorter numbers are more likely a year or an id than a time in 1970.
        if text
            .trim_start_matches('-')
            .split('.')
            .next()
            .map_or(0, str::len)
            < 9
        {
            return Err(format!(
                "`{}` is not a date flowbot can read: write it like {EXAMPLES}",
                shorten(raw)
            ));
        }
        let f: f64 = text
            .parse()
            .map_err(|_| format!("`{raw}` is not a number"))?;
        return unix(f, raw, tz);
    }
    let (date, rest) = if let Some(c) = re[3].captures(text).or_else(|| re[2].captures(text)) {
        let (m, d) = (num(&c, "m"), num(&c, "d"));
        let date = match (c.name("era"), c.name("ey")) {
            (Some(era), Some(ey)) => era_date(era.as_str(), ey.as_str(), m, d, raw)?,
            _ => make_date(num(&c, "y"), m, d, raw)?,
        };
        (date, &text[c.get(0).expect("whole match").end()..])
    } else if let Some(c) = re[1].captures(text) {
        let date = make_date(num(&c, "y"), num(&c, "m"), num(&c, "d"), raw)?;
        (date, &text[c.get(0).expect("whole match").end()..])
    } else if let Some(c) = re[4].captures(text) {
        let (a, b, y) = (num(&c, "a"), num(&c, "b"), num(&c, "y"));
        let date = match order {
            Order::Mdy => make_date(y, a, b, raw)?,
            Order::Dmy => make_date(y, b, a, raw)?,
            Order::Ymd => {
                return Err(format!(
                    "`{raw}` has the year last, which is ambiguous: set the order to mdy (month/day/year) or dmy (day/month/year)"
                ))
            }
        };
        (date, &text[c.get(0).expect("whole match").end()..])
    } else if let Ok(dt) = text.parse::<DateTime>() {
        return local(dt, true, tz, raw);
    } else {
        return Err(format!(
            "`{}` is not a date flowbot can read: write it like {EXAMPLES}",
            shorten(raw)
        ));
    };
    let rest = rest.trim_start();
    let rest = rest.strip_prefix(['T', 't']).unwrap_or(rest).trim();
    if rest.is_empty() {
        return local(date.to_datetime(Time::midnight()), false, tz, raw);
    }
    let time = parse_time(rest, raw)?;
    local(date.to_datetime(time), true, tz, raw)
}

fn compact(text: &str, raw: &str, tz: &TimeZone) -> Result<Parsed, String> {
    let n =
        |r: std::ops::Range<usize>| text.get(r).and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    let date = make_date(n(0..4), n(4..6), n(6..8), raw)?;
    if text.len() == 8 {
        return local(date.to_datetime(Time::midnight()), false, tz, raw);
    }
    let time = clock(n(8..10), n(10..12), n(12..14), 0, raw)?;
    local(date.to_datetime(time), true, tz, raw)
}

fn local(dt: DateTime, has_time: bool, tz: &TimeZone, raw: &str) -> Result<Parsed, String> {
    let zoned = dt
        .to_zoned(tz.clone())
        .map_err(|e| format!("`{}` cannot be placed in the time zone: {e}", shorten(raw)))?;
    Ok(Parsed { zoned, has_time })
}

fn parse_time(rest: &str, raw: &str) -> Result<Time, String> {
    let re = regexes();
    let Some(c) = re[5].captures(rest).or_else(|| re[6].captures(rest)) else {
        return Err(format!(
            "could not read the time `{}` in `{}`: write it like 14:05, 14:05:30 or 14時05分",
            shorten(rest),
            shorten(raw)
        ));
    };
    let mut hour = num(&c, "h");
    let minute = if c.name("half").is_some() {
        30
    } else {
        num(&c, "mi")
    };
    let ap = c
        .name("ap")
        .or_else(|| c.name("ap2"))
        .map(|m| m.as_str().to_ascii_lowercase());
    if let Some(ap) = ap {
        if !(0..=12).contains(&hour) {
            return Err(format!(
                "`{raw}`: with 午前/午後 or AM/PM the hour is 0 to 12"
            ));
        }
        let afternoon = ap == "午後" || ap == "pm";
        hour = match (afternoon, hour) {
            (false, 12) => 0,
            (true, h) if h < 12 => h + 12,
            (_, h) => h,
        };
    }
    let nanos = c.name("f").map_or(0, |f| {
        let digits = f.as_str();
        digits.parse::<i64>().unwrap_or(0) * 10_i64.pow(9 - digits.len() as u32)
    });
    clock(hour, minute, num(&c, "s"), nanos, raw)
}

fn clock(hour: i64, minute: i64, second: i64, nanos: i64, raw: &str) -> Result<Time, String> {
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "`{raw}` has no time {hour:02}:{minute:02}:{second:02}: hours are 0 to 23, minutes and seconds 0 to 59"
        ));
    }
    Time::new(hour as i8, minute as i8, second as i8, nanos as i32).map_err(|e| e.to_string())
}

const WEEKDAYS_JA: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];

pub fn weekday_ja(w: Weekday) -> &'static str {
    WEEKDAYS_JA[w.to_monday_zero_offset() as usize]
}

fn weekday_en(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

/// ISO 8601 with the offset, fractions of a second only when there are some.
pub fn iso(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%.f%:z").to_string()
}

/// The date alone when no time was written, else [`iso`]: what a filter gives back.
pub fn shown(p: &Parsed) -> String {
    if p.has_time {
        iso(&p.zoned)
    } else {
        p.zoned.strftime("%Y-%m-%d").to_string()
    }
}

/// A date-time as a step's obtained values: the ISO text and every part a flow may need.
pub fn to_json(z: &Zoned) -> Value {
    let date = z.date();
    let w = z.weekday();
    let tz = z
        .time_zone()
        .iana_name()
        .map_or_else(|| z.offset().to_string(), str::to_string);
    json!({
        "iso": iso(z),
        "date": z.strftime("%Y-%m-%d").to_string(),
        "time": z.strftime("%H:%M:%S").to_string(),
        "year": date.year(),
        "month": date.month(),
        "day": date.day(),
        "hour": z.hour(),
        "minute": z.minute(),
        "second": z.second(),
        "weekday": w.to_monday_one_offset(),
        "weekday_ja": weekday_ja(w),
        "weekday_en": weekday_en(w),
        "wareki": wareki_year(date).map(|y| format!("{y}{}月{}日", date.month(), date.day())),
        "unix": z.timestamp().as_second(),
        "time_zone": tz,
    })
}

/// A unit of [`add`] and [`diff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Years,
    Months,
    Weeks,
    Days,
    Hours,
    Minutes,
    Seconds,
}

impl Unit {
    pub const NAMES: &'static [&'static str] = &[
        "years", "months", "weeks", "days", "hours", "minutes", "seconds",
    ];

    /// English, singular or plural, or Japanese (年, ヶ月, 週, 日, 時間, 分, 秒).
    pub fn parse(name: &str) -> Result<Unit, String> {
        Ok(match name.trim() {
            "years" | "year" | "年" => Unit::Years,
            "months" | "month" | "ヶ月" | "か月" | "カ月" | "月" => Unit::Months,
            "weeks" | "week" | "週" | "週間" => Unit::Weeks,
            "days" | "day" | "日" => Unit::Days,
            "hours" | "hour" | "時間" => Unit::Hours,
            "minutes" | "minute" | "分" => Unit::Minutes,
            "seconds" | "second" | "秒" => Unit::Seconds,
            other => {
                return Err(format!(
                    "unknown unit `{other}`: use one of {}",
                    Unit::NAMES.join(", ")
                ))
            }
        })
    }

    fn jiff(self) -> jiff::Unit {
        match self {
            Unit::Years => jiff::Unit::Year,
            Unit::Months => jiff::Unit::Month,
            Unit::Weeks => jiff::Unit::Week,
            Unit::Days => jiff::Unit::Day,
            Unit::Hours => jiff::Unit::Hour,
            Unit::Minutes => jiff::Unit::Minute,
            Unit::Seconds => jiff::Unit::Second,
        }
    }
}

/// `amount` units later (earlier when negative). Months and years keep the day when it
/// exists and otherwise take the month's last day: 1月31日 + 1 month is 2月28日 (29日).
pub fn add(z: &Zoned, amount: i64, unit: Unit) -> Result<Zoned, String> {
    let span = match unit {
        Unit::Years => Span::new().try_years(amount),
        Unit::Months => Span::new().try_months(amount),
        Unit::Weeks => Span::new().try_weeks(amount),
        Unit::Days => Span::new().try_days(amount),
        Unit::Hours => Span::new().try_hours(amount),
        Unit::Minutes => Span::new().try_minutes(amount),
        Unit::Seconds => Span::new().try_seconds(amount),
    };
    let too_far =
        || format!("adding {amount} {unit:?} goes past the calendar's range (years 1 to 9999)");
    z.checked_add(span.map_err(|_| too_far())?)
        .map_err(|_| too_far())
}

/// Whole units from `start` to `end` (negative when `end` is earlier); a part-unit left
/// over is dropped, so 1月31日 → 2月28日 is 0 months and 28 days.
pub fn diff(start: &Zoned, end: &Zoned, unit: Unit) -> Result<i64, String> {
    let end = end.with_time_zone(start.time_zone().clone());
    let span = start
        .until(ZonedDifference::new(&end).largest(unit.jiff()))
        .map_err(|e| format!("cannot measure from {} to {}: {e}", iso(start), iso(&end)))?;
    Ok(match unit {
        Unit::Years => i64::from(span.get_years()),
        Unit::Months => i64::from(span.get_months()),
        Unit::Weeks => i64::from(span.get_weeks()),
        Unit::Days => i64::from(span.get_days()),
        Unit::Hours => i64::from(span.get_hours()),
        Unit::Minutes => span.get_minutes(),
        Unit::Seconds => span.get_seconds(),
    })
}

/// The most characters a format may have.
const MAX_FORMAT_CHARS: usize = 1000;

/// strftime (`%Y年%m月%d日 %H:%M`) plus Japanese tokens: `%EY` the era year (令和8年,
/// 令和元年), `%EC` the era (令和), `%Ey` its year number (8), `%Ja` the weekday (月) and
/// `%JA` the long weekday (月曜日).
pub fn format(z: &Zoned, pattern: &str) -> Result<String, String> {
    if pattern.chars().count() > MAX_FORMAT_CHARS {
        return Err(format!(
            "the format is longer than {MAX_FORMAT_CHARS} characters"
        ));
    }
    let expanded = japanese_tokens(z, pattern)?;
    jiff::fmt::strtime::format(&expanded, z)
        .map_err(|e| format!("bad date format `{}`: {e}", shorten(pattern)))
}

/// Replace the Japanese tokens by their text before strftime sees the format (which
/// would refuse `%E`), leaving `%%` and everything else as it is.
fn japanese_tokens(z: &Zoned, pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        let token = (chars.get(i + 1).copied(), chars.get(i + 2).copied());
        let era = || {
            wareki(z.date())
                .ok_or_else(|| format!("{} is before 昭和: it has no Japanese era", z.date()))
        };
        let text = match token {
            (Some('%'), _) => {
                out.push_str("%%");
                i += 2;
                continue;
            }
            (Some('E'), Some('Y')) => {
                era()?;
                wareki_year(z.date()).unwrap_or_default()
            }
            (Some('E'), Some('C')) => era()?.0.to_string(),
            (Some('E'), Some('y')) => era()?.1.to_string(),
            (Some('J'), Some('a')) => weekday_ja(z.weekday()).to_string(),
            (Some('J'), Some('A')) => format!("{}曜日", weekday_ja(z.weekday())),
            _ => {
                out.push('%');
                i += 1;
                continue;
            }
        };
        out.push_str(&text.replace('%', "%%"));
        i += 3;
    }
    Ok(out)
}

/// The first moment of the month `months` after the date's (0: its own month).
pub fn month_start(z: &Zoned, months: i64) -> Result<Zoned, String> {
    let first = shift_months(z.date().first_of_month(), months)?;
    first
        .to_datetime(Time::midnight())
        .to_zoned(z.time_zone().clone())
        .map_err(|e| e.to_string())
}

/// The last day of the month `months` after the date's, at 23:59:59 so that it is still
/// "on or before the end" for comparisons.
pub fn month_end(z: &Zoned, months: i64) -> Result<Zoned, String> {
    let last = shift_months(z.date().first_of_month(), months)?.last_of_month();
    last.to_datetime(Time::new(23, 59, 59, 0).expect("a valid time"))
        .to_zoned(z.time_zone().clone())
        .map_err(|e| e.to_string())
}

fn shift_months(first: Date, months: i64) -> Result<Date, String> {
    let span = Span::new()
        .try_months(months)
        .map_err(|_| format!("{months} months is too far"))?;
    first
        .checked_add(span)
        .map_err(|_| format!("{months} months from {first} is past the calendar's range"))
}

/// The date `days` business days later, at the same time of day.
pub fn business_days_add(z: &Zoned, days: i64, closed: &[Date]) -> Result<Zoned, String> {
    let date = Calendar::new(closed.iter().copied()).add_business_days(z.date(), days)?;
    date.to_datetime(z.time())
        .to_zoned(z.time_zone().clone())
        .map_err(|e| e.to_string())
}

/// Whether a date is a business day, and the public holiday it is, if any.
pub fn business_day(z: &Zoned, closed: &[Date]) -> Result<Value, String> {
    let mut cal = Calendar::new(closed.iter().copied());
    let date = z.date();
    let holiday = cal.holiday(date)?;
    Ok(json!({
        "is_business_day": cal.is_business_day(date)?,
        "is_holiday": holiday.is_some(),
        "holiday_name": holiday,
        "is_weekend": matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday),
        "date": date.to_string(),
        "weekday_ja": weekday_ja(date.weekday()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokyo() -> TimeZone {
        time_zone("Asia/Tokyo").unwrap()
    }

    fn iso_of(v: Value, order: Order) -> Result<String, String> {
        parse(&v, order, &tokyo()).map(|p| iso(&p.zoned))
    }

    #[test]
    fn parse_reads_the_forms_back_offices_write() {
        // (input, ISO 8601 in Asia/Tokyo, whether a time was written)
        let cases: &[(Value, &str, bool)] = &[
            (json!("2026-11-30"), "2026-11-30T00:00:00+09:00", false),
            (
                json!("2026-11-30T14:05:00+09:00"),
                "2026-11-30T14:05:00+09:00",
                true,
            ),
            (
                json!("2026-11-29T15:00:00Z"),
                "2026-11-30T00:00:00+09:00",
                true,
            ),
            (
                json!("2026-11-30T14:05:00"),
                "2026-11-30T14:05:00+09:00",
                true,
            ),
            (
                json!("2026-11-30T14:05:00.250"),
                "2026-11-30T14:05:00.25+09:00",
                true,
            ),
            (
                json!("2026-11-30T14:05:00[America/New_York]"),
                "2026-12-01T04:05:00+09:00",
                true,
            ),
            (json!("2026/11/30"), "2026-11-30T00:00:00+09:00", false),
            (json!("2026/1/5 9:05"), "2026-01-05T09:05:00+09:00", true),
            (json!("2026-11-30 14:05"), "2026-11-30T14:05:00+09:00", true),
            (json!("2026.11.30"), "2026-11-30T00:00:00+09:00", false),
            (
                json!("２０２６／１１／３０　１４：０５"),
                "2026-11-30T14:05:00+09:00",
                true,
            ),
            (json!("2026年11月30日"), "2026-11-30T00:00:00+09:00", false),
            (
                json!("2026年11月30日 14時05分"),
                "2026-11-30T14:05:00+09:00",
                true,
            ),
            (
                json!("2026年11月30日(月) 14:05"),
                "2026-11-30T14:05:00+09:00",
                true,
            ),
            (
                json!("2026年11月30日（月曜日）午後2時5分"),
                "2026-11-30T14:05:00+09:00",
                true,
            ),
            (
                json!("2026年 1月 5日 9時半"),
                "2026-01-05T09:30:00+09:00",
                true,
            ),
            (
                json!("2026/11/30(Mon) 2:05 PM"),
                "2026-11-30T14:05:00+09:00",
                true,
            ),
            (
                json!("2026/11/30 午前12:30"),
                "2026-11-30T00:30:00+09:00",
                true,
            ),
            (json!("令和8年11月30日"), "2026-11-30T00:00:00+09:00", false),
            (json!("令和元年5月1日"), "2019-05-01T00:00:00+09:00", false),
            (json!("R8.11.30"), "2026-11-30T00:00:00+09:00", false),
            (json!("r08/11/30"), "2026-11-30T00:00:00+09:00", false),
            (json!("平成31年4月30日"), "2019-04-30T00:00:00+09:00", false),
            (json!("H1.1.8"), "1989-01-08T00:00:00+09:00", false),
            (json!("昭和64年1月7日"), "1989-01-07T00:00:00+09:00", false),
            (
                json!("昭和元年12月25日"),
                "1926-12-25T00:00:00+09:00",
                false,
            ),
            (json!("20261130"), "2026-11-30T00:00:00+09:00", false),
            (json!("20261130140509"), "2026-11-30T14:05:09+09:00", true),
            (
                json!("Mon, 30 Nov 2026 14:05:00 +0900"),
                "2026-11-30T14:05:00+09:00",
                true,
            ),
            (
                json!("Sun, 29 Nov 2026 20:00:00 -0500"),
                "2026-11-30T10:00:00+09:00",
                true,
            ),
            (json!(1795964400), "2026-11-30T00:00:00+09:00", true),
            (json!("1795964400"), "2026-11-30T00:00:00+09:00", true),
            (json!(1795964400000_i64), "2026-11-30T00:00:00+09:00", true),
        ];
        for (input, want, has_time) in cases {
            let p = parse(input, Order::Ymd, &tokyo()).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (iso(&p.zoned).as_str(), p.has_time),
                (*want, *has_time),
                "{input}"
            );
        }
    }

    #[test]
    fn year_last_dates_need_an_order() {
        assert_eq!(
            iso_of(json!("11/30/2026"), Order::Mdy).unwrap(),
            "2026-11-30T00:00:00+09:00"
        );
        assert_eq!(
            iso_of(json!("30/11/2026 14:05"), Order::Dmy).unwrap(),
            "2026-11-30T14:05:00+09:00"
        );
        assert_eq!(
            iso_of(json!("2026/11/30"), Order::Mdy).unwrap(),
            "2026-11-30T00:00:00+09:00"
        );
        let e = iso_of(json!("11/30/2026"), Order::Ymd).unwrap_err();
        assert!(e.contains("set the order to mdy"), "{e}");
        let e = iso_of(json!("30/11/2026"), Order::Mdy).unwrap_err();
        assert!(e.contains("no month 30"), "{e}");
    }

    #[test]
    fn bad_dates_are_explained() {
        // (input, a part of the error)
        let cases = [
            (json!("2026/02/30"), "2026-02 has days 1 to 28"),
            (json!("2026/13/01"), "no month 13"),
            (json!("令和元年4月30日"), "before 令和 began on 2019-05-01"),
            (
                json!("平成31年5月1日"),
                "after 平成 ended on 2019-04-30: the era then is 令和",
            ),
            (json!("平成0年1月1日"), "starts at 1 (元年)"),
            (json!("2026/11/30 25:00"), "hours are 0 to 23"),
            (json!("2026/11/30 ごご"), "could not read the time `ごご`"),
            (json!("来週の月曜"), "write it like 2026-11-30"),
            (json!("2026"), "write it like 2026-11-30"),
            (json!(""), "empty"),
            (json!(null), "empty"),
            (json!([1]), "not a list"),
        ];
        for (input, want) in cases {
            let e = iso_of(input.clone(), Order::Ymd).unwrap_err();
            assert!(e.contains(want), "{input}: {e}");
        }
        assert!(time_zone("Asia/Tokio")
            .unwrap_err()
            .contains("unknown time zone `Asia/Tokio`"));
    }

    #[test]
    fn parts_name_the_weekday_and_era() {
        let p = parse(&json!("2026-11-30 14:05"), Order::Ymd, &tokyo()).unwrap();
        let v = to_json(&p.zoned);
        assert_eq!(v["date"], json!("2026-11-30"));
        assert_eq!(v["weekday"], json!(1));
        assert_eq!(v["weekday_ja"], json!("月"));
        assert_eq!(v["weekday_en"], json!("Monday"));
        assert_eq!(v["wareki"], json!("令和8年11月30日"));
        assert_eq!(v["unix"], json!(1_796_015_100));
        assert_eq!(v["time_zone"], json!("Asia/Tokyo"));
        assert_eq!(
            (v["hour"].clone(), v["minute"].clone()),
            (json!(14), json!(5))
        );
    }

    fn at(text: &str) -> Zoned {
        parse(&json!(text), Order::Ymd, &tokyo()).unwrap().zoned
    }

    #[test]
    fn add_clamps_to_the_month_end() {
        // (start, amount, unit, result)
        let cases = [
            ("2026-01-31", 1, Unit::Months, "2026-02-28T00:00:00+09:00"),
            ("2028-01-31", 1, Unit::Months, "2028-02-29T00:00:00+09:00"),
            ("2026-03-31", -1, Unit::Months, "2026-02-28T00:00:00+09:00"),
            ("2024-02-29", 1, Unit::Years, "2025-02-28T00:00:00+09:00"),
            ("2026-11-30", 2, Unit::Weeks, "2026-12-14T00:00:00+09:00"),
            ("2026-12-31", 1, Unit::Days, "2027-01-01T00:00:00+09:00"),
            (
                "2026-11-30 23:30",
                90,
                Unit::Minutes,
                "2026-12-01T01:00:00+09:00",
            ),
            (
                "2026-11-30 00:00",
                -1,
                Unit::Hours,
                "2026-11-29T23:00:00+09:00",
            ),
            (
                "2026-11-30 00:00",
                45,
                Unit::Seconds,
                "2026-11-30T00:00:45+09:00",
            ),
        ];
        for (start, n, unit, want) in cases {
            assert_eq!(
                iso(&add(&at(start), n, unit).unwrap()),
                want,
                "{start} + {n} {unit:?}"
            );
        }
        assert!(add(&at("2026-01-01"), 20_000, Unit::Years)
            .unwrap_err()
            .contains("range"));
        assert_eq!(Unit::parse("ヶ月").unwrap(), Unit::Months);
        assert!(Unit::parse("fortnights")
            .unwrap_err()
            .contains("years, months"));
    }

    #[test]
    fn diff_counts_whole_units() {
        // (start, end, unit, difference)
        let cases = [
            ("2026-11-01", "2026-11-30", Unit::Days, 29),
            ("2026-11-30", "2026-11-01", Unit::Days, -29),
            ("2026-01-31", "2026-02-28", Unit::Months, 0),
            ("2026-01-31", "2026-03-31", Unit::Months, 2),
            ("2000-04-01", "2026-03-31", Unit::Years, 25),
            ("2000-04-01", "2026-04-01", Unit::Years, 26),
            ("2026-11-01", "2026-11-30", Unit::Weeks, 4),
            ("2026-11-30 09:00", "2026-11-30 17:30", Unit::Hours, 8),
            ("2026-11-30 09:00", "2026-11-30 17:30", Unit::Minutes, 510),
            (
                "2026-11-30T09:00:00+09:00",
                "2026-11-30T00:00:00Z",
                Unit::Hours,
                0,
            ),
        ];
        for (a, b, unit, want) in cases {
            assert_eq!(
                diff(&at(a), &at(b), unit).unwrap(),
                want,
                "{a} → {b} in {unit:?}"
            );
        }
    }

    #[test]
    fn format_has_japanese_tokens() {
        let z = at("2026-11-30 14:05:09");
        // (format, result)
        let cases = [
            ("%Y年%m月%d日(%Ja) %H:%M", "2026年11月30日(月) 14:05"),
            ("%EY%-m月%-d日", "令和8年11月30日"),
            ("%EC%Ey年 %JA", "令和8年 月曜日"),
            ("%Y/%m/%d %T", "2026/11/30 14:05:09"),
            ("100%% %Ja", "100% 月"),
        ];
        for (f, want) in cases {
            assert_eq!(format(&z, f).unwrap(), want, "{f}");
        }
        assert_eq!(format(&at("2019-05-01"), "%EY").unwrap(), "令和元年");
        assert_eq!(format(&at("2019-04-30"), "%EY").unwrap(), "平成31年");
        assert!(format(&at("1900-01-01"), "%EY")
            .unwrap_err()
            .contains("before 昭和"));
        assert!(format(&z, "%Ez")
            .unwrap_err()
            .starts_with("bad date format"));
    }

    #[test]
    fn month_boundaries() {
        // (date, months later, start, end)
        let cases = [
            (
                "2026-11-18 10:00",
                0,
                "2026-11-01T00:00:00+09:00",
                "2026-11-30T23:59:59+09:00",
            ),
            (
                "2026-11-18",
                1,
                "2026-12-01T00:00:00+09:00",
                "2026-12-31T23:59:59+09:00",
            ),
            (
                "2026-01-31",
                1,
                "2026-02-01T00:00:00+09:00",
                "2026-02-28T23:59:59+09:00",
            ),
            (
                "2026-01-15",
                -1,
                "2025-12-01T00:00:00+09:00",
                "2025-12-31T23:59:59+09:00",
            ),
        ];
        for (d, n, start, end) in cases {
            assert_eq!(iso(&month_start(&at(d), n).unwrap()), start, "{d}");
            assert_eq!(iso(&month_end(&at(d), n).unwrap()), end, "{d}");
        }
    }

    #[test]
    fn convert_between_zones() {
        let z = at("2026-11-30 09:00");
        let ny = z.with_time_zone(time_zone("America/New_York").unwrap());
        assert_eq!(iso(&ny), "2026-11-29T19:00:00-05:00");
        let utc = z.with_time_zone(time_zone("UTC").unwrap());
        assert_eq!(iso(&utc), "2026-11-30T00:00:00+00:00");
    }

    #[test]
    fn business_days_keep_the_time() {
        let z = business_days_add(&at("2026-12-31 10:00"), 1, &[]).unwrap();
        assert_eq!(iso(&z), "2027-01-04T10:00:00+09:00");
        let v = business_day(&at("2026-11-23"), &[]).unwrap();
        assert_eq!(v["holiday_name"], json!("勤労感謝の日"));
        assert_eq!(v["is_business_day"], json!(false));
        let closed = [Date::new(2026, 11, 24).unwrap()];
        let v = business_day(&at("2026-11-24"), &closed).unwrap();
        assert_eq!(
            (v["is_business_day"].clone(), v["is_holiday"].clone()),
            (json!(false), json!(false))
        );
    }
}
