//! Japan's public holidays (国民の祝日) for 2000–2099, from the rules of 国民の祝日に関する
//! 法律 rather than a copied list, and business days that skip them.
//!
//! The Cabinet Office publishes the list only a year or so ahead; the rules give every year
//! of the range, with the equinoxes by the usual approximation formula (valid 1980–2099),
//! which agrees with every equinox the National Astronomical Observatory has announced in
//! this range so far. A future special day (like 2019's enthronement) needs a line here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::civil::{Date, Weekday};
use jiff::ToSpan;

pub const FIRST_YEAR: i16 = 2000;
pub const LAST_YEAR: i16 = 2099;

pub const SUBSTITUTE: &str = "振替休日";
pub const CITIZENS: &str = "国民の休日";

/// One holiday: its date and its Japanese name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holiday {
    pub date: Date,
    pub name: &'static str,
}

fn check_year(year: i16) -> Result<(), String> {
    if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
        return Err(format!(
            "Japanese public holidays are known for {FIRST_YEAR} to {LAST_YEAR}, not {year}"
        ));
    }
    Ok(())
}

fn ymd(year: i16, month: i8, day: i8) -> Date {
    Date::new(year, month, day).expect("holiday rules name real dates")
}

fn nth_monday(year: i16, month: i8, nth: i8) -> Date {
    ymd(year, month, 1)
        .nth_weekday_of_month(nth, Weekday::Monday)
        .expect("every month has a fourth Monday")
}

/// The equinox day in March (`base` 20.8431) or September (23.2488): the standard formula
/// for 1980–2099, in integer arithmetic (millionths) so no rounding can move a day.
fn equinox(year: i16, base_millionths: i64) -> i8 {
    let y = i64::from(year) - 1980;
    let day = (base_millionths + 242_194 * y) / 1_000_000 - y / 4;
    i8::try_from(day).expect("an equinox falls on the 19th to the 24th")
}

/// The holidays the law names (祝日), before substitutes and in-between days.
fn named(year: i16) -> Vec<Holiday> {
    let mut days = Vec::with_capacity(20);
    let mut add = |date: Date, name: &'static str| days.push(Holiday { date, name });
    add(ymd(year, 1, 1), "元日");
    add(nth_monday(year, 1, 2), "成人の日");
    add(ymd(year, 2, 11), "建国記念の日");
    if year >= 2020 {
        add(ymd(year, 2, 23), "天皇誕生日");
    }
    add(ymd(year, 3, equinox(year, 20_843_100)), "春分の日");
    add(
        ymd(year, 4, 29),
        if year >= 2007 {
            "昭和の日"
        } else {
            "みどりの日"
        },
    );
    if year == 2019 {
        add(ymd(2019, 5, 1), "天皇の即位の日");
    }
    add(ymd(year, 5, 3), "憲法記念日");
    if year >= 2007 {
        add(ymd(year, 5, 4), "みどりの日");
    }
    add(ymd(year, 5, 5), "こどもの日");
    // The Olympic years moved 海の日, スポーツの日 and 山の日 by special laws.
    let marine = match year {
        2000..=2002 => ymd(year, 7, 20),
        2020 => ymd(2020, 7, 23),
        2021 => ymd(2021, 7, 22),
        _ => nth_monday(year, 7, 3),
    };
    add(marine, "海の日");
    match year {
        2020 => add(ymd(2020, 8, 10), "山の日"),
        2021 => add(ymd(2021, 8, 8), "山の日"),
        2016.. => add(ymd(year, 8, 11), "山の日"),
        _ => {}
    }
    let aged = if year <= 2002 {
        ymd(year, 9, 15)
    } else {
        nth_monday(year, 9, 3)
    };
    add(aged, "敬老の日");
    add(ymd(year, 9, equinox(year, 23_248_800)), "秋分の日");
    match year {
        ..=2019 => add(nth_monday(year, 10, 2), "体育の日"),
        2020 => add(ymd(2020, 7, 24), "スポーツの日"),
        2021 => add(ymd(2021, 7, 23), "スポーツの日"),
        _ => add(nth_monday(year, 10, 2), "スポーツの日"),
    }
    if year == 2019 {
        add(ymd(2019, 10, 22), "即位礼正殿の儀の行われる日");
    }
    add(ymd(year, 11, 3), "文化の日");
    add(ymd(year, 11, 23), "勤労感謝の日");
    if year <= 2018 {
        add(ymd(year, 12, 23), "天皇誕生日");
    }
    days
}

/// Every public holiday of a year, in date order: the named ones, 振替休日 (a holiday on a
/// Sunday moves to the next day that is not one) and 国民の休日 (a day between two).
pub fn holidays(year: i16) -> Result<Vec<Holiday>, String> {
    check_year(year)?;
    let named = named(year);
    let is_named = |d: Date| named.iter().any(|h| h.date == d);
    let mut all: BTreeMap<Date, &'static str> = named.iter().map(|h| (h.date, h.name)).collect();
    for h in &named {
        if h.date.weekday() == Weekday::Sunday {
            let mut d = h.date.tomorrow().expect("within the calendar");
            while is_named(d) {
                d = d.tomorrow().expect("within the calendar");
            }
            all.entry(d).or_insert(SUBSTITUTE);
        }
    }
    for h in &named {
        let d = h.date.tomorrow().expect("within the calendar");
        let between = !is_named(d)
            && d.year() == year
            && is_named(d.tomorrow().expect("within the calendar"));
        // Until the 2007 revision a Sunday between two holidays stayed a plain Sunday.
        let sunday_excluded = year < 2007 && d.weekday() == Weekday::Sunday;
        if between && !sunday_excluded {
            all.entry(d).or_insert(CITIZENS);
        }
    }
    Ok(all
        .into_iter()
        .map(|(date, name)| Holiday { date, name })
        .collect())
}

/// The holiday's name on a date, if it is one.
pub fn holiday_name(date: Date) -> Result<Option<&'static str>, String> {
    Ok(holidays(date.year())?
        .into_iter()
        .find(|h| h.date == date)
        .map(|h| h.name))
}

/// The most business days one call may step over (about 40 years).
pub const MAX_BUSINESS_DAYS: i64 = 10_000;

/// Business days: Monday to Friday, neither a public holiday nor one of the company's own
/// days off (年末年始, 創立記念日…). Years are computed once per calendar.
#[derive(Debug, Default)]
pub struct Calendar {
    years: HashMap<i16, BTreeMap<Date, &'static str>>,
    closed: BTreeSet<Date>,
}

impl Calendar {
    /// A calendar with extra days off besides the public holidays.
    pub fn new(closed: impl IntoIterator<Item = Date>) -> Calendar {
        Calendar {
            years: HashMap::new(),
            closed: closed.into_iter().collect(),
        }
    }

    pub fn holiday(&mut self, date: Date) -> Result<Option<&'static str>, String> {
        let year = date.year();
        if let std::collections::hash_map::Entry::Vacant(slot) = self.years.entry(year) {
            slot.insert(
                holidays(year)?
                    .into_iter()
                    .map(|h| (h.date, h.name))
                    .collect(),
            );
        }
        Ok(self.years[&year].get(&date).copied())
    }

    pub fn is_business_day(&mut self, date: Date) -> Result<bool, String> {
        let weekend = matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday);
        Ok(!weekend && !self.closed.contains(&date) && self.holiday(date)?.is_none())
    }

    /// `days` business days after `date` (before it when negative). Zero gives `date` when
    /// it is a business day, else the next one: "due on a business day" rolls forward.
    pub fn add_business_days(&mut self, date: Date, days: i64) -> Result<Date, String> {
        if days.unsigned_abs() > MAX_BUSINESS_DAYS.unsigned_abs() {
            return Err(format!(
                "{days} business days is too far: at most {MAX_BUSINESS_DAYS} either way"
            ));
        }
        let step = if days < 0 { -1 } else { 1 };
        let mut left = days.abs();
        let mut d = date;
        if days == 0 {
            while !self.is_business_day(d)? {
                d = next(d, 1)?;
            }
            return Ok(d);
        }
        while left > 0 {
            d = next(d, step)?;
            if self.is_business_day(d)? {
                left -= 1;
            }
        }
        Ok(d)
    }

    /// Business days after `start` up to and including `end` (and `start` itself with
    /// `include_start`); negative, the same count with the dates swapped, when `end` is
    /// before `start`.
    pub fn business_days_between(
        &mut self,
        start: Date,
        end: Date,
        include_start: bool,
    ) -> Result<i64, String> {
        if end < start {
            return self
                .business_days_between(end, start, include_start)
                .map(|n| -n);
        }
        let mut count = i64::from(include_start && self.is_business_day(start)?);
        let mut d = start;
        while d < end {
            d = next(d, 1)?;
            count += i64::from(self.is_business_day(d)?);
        }
        Ok(count)
    }
}

fn next(d: Date, step: i64) -> Result<Date, String> {
    d.checked_add(step.days())
        .map_err(|_| format!("{d} is at the end of the calendar"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(year: i16) -> Vec<String> {
        holidays(year)
            .unwrap()
            .iter()
            .map(|h| format!("{} {}", h.date.strftime("%m-%d"), h.name))
            .collect()
    }

    /// The Cabinet Office's lists (内閣府「国民の祝日について」), as published.
    #[test]
    fn years_match_the_cabinet_office_lists() {
        let years: &[(i16, &[&str])] = &[
            (
                2024,
                &[
                    "01-01 元日",
                    "01-08 成人の日",
                    "02-11 建国記念の日",
                    "02-12 振替休日",
                    "02-23 天皇誕生日",
                    "03-20 春分の日",
                    "04-29 昭和の日",
                    "05-03 憲法記念日",
                    "05-04 みどりの日",
                    "05-05 こどもの日",
                    "05-06 振替休日",
                    "07-15 海の日",
                    "08-11 山の日",
                    "08-12 振替休日",
                    "09-16 敬老の日",
                    "09-22 秋分の日",
                    "09-23 振替休日",
                    "10-14 スポーツの日",
                    "11-03 文化の日",
                    "11-04 振替休日",
                    "11-23 勤労感謝の日",
                ],
            ),
            (
                2025,
                &[
                    "01-01 元日",
                    "01-13 成人の日",
                    "02-11 建国記念の日",
                    "02-23 天皇誕生日",
                    "02-24 振替休日",
                    "03-20 春分の日",
                    "04-29 昭和の日",
                    "05-03 憲法記念日",
                    "05-04 みどりの日",
                    "05-05 こどもの日",
                    "05-06 振替休日",
                    "07-21 海の日",
                    "08-11 山の日",
                    "09-15 敬老の日",
                    "09-23 秋分の日",
                    "10-13 スポーツの日",
                    "11-03 文化の日",
                    "11-23 勤労感謝の日",
                    "11-24 振替休日",
                ],
            ),
            (
                2026,
                &[
                    "01-01 元日",
                    "01-12 成人の日",
                    "02-11 建国記念の日",
                    "02-23 天皇誕生日",
                    "03-20 春分の日",
                    "04-29 昭和の日",
                    "05-03 憲法記念日",
                    "05-04 みどりの日",
                    "05-05 こどもの日",
                    "05-06 振替休日",
                    "07-20 海の日",
                    "08-11 山の日",
                    "09-21 敬老の日",
                    "09-22 国民の休日",
                    "09-23 秋分の日",
                    "10-12 スポーツの日",
                    "11-03 文化の日",
                    "11-23 勤労感謝の日",
                ],
            ),
            (
                2019,
                &[
                    "01-01 元日",
                    "01-14 成人の日",
                    "02-11 建国記念の日",
                    "03-21 春分の日",
                    "04-29 昭和の日",
                    "04-30 国民の休日",
                    "05-01 天皇の即位の日",
                    "05-02 国民の休日",
                    "05-03 憲法記念日",
                    "05-04 みどりの日",
                    "05-05 こどもの日",
                    "05-06 振替休日",
                    "07-15 海の日",
                    "08-11 山の日",
                    "08-12 振替休日",
                    "09-16 敬老の日",
                    "09-23 秋分の日",
                    "10-14 体育の日",
                    "10-22 即位礼正殿の儀の行われる日",
                    "11-03 文化の日",
                    "11-04 振替休日",
                    "11-23 勤労感謝の日",
                ],
            ),
            (
                2020,
                &[
                    "01-01 元日",
                    "01-13 成人の日",
                    "02-11 建国記念の日",
                    "02-23 天皇誕生日",
                    "02-24 振替休日",
                    "03-20 春分の日",
                    "04-29 昭和の日",
                    "05-03 憲法記念日",
                    "05-04 みどりの日",
                    "05-05 こどもの日",
                    "05-06 振替休日",
                    "07-23 海の日",
                    "07-24 スポーツの日",
                    "08-10 山の日",
                    "09-21 敬老の日",
                    "09-22 秋分の日",
                    "11-03 文化の日",
                    "11-23 勤労感謝の日",
                ],
            ),
            (
                2021,
                &[
                    "01-01 元日",
                    "01-11 成人の日",
                    "02-11 建国記念の日",
                    "02-23 天皇誕生日",
                    "03-20 春分の日",
                    "04-29 昭和の日",
                    "05-03 憲法記念日",
                    "05-04 みどりの日",
                    "05-05 こどもの日",
                    "07-22 海の日",
                    "07-23 スポーツの日",
                    "08-08 山の日",
                    "08-09 振替休日",
                    "09-20 敬老の日",
                    "09-23 秋分の日",
                    "11-03 文化の日",
                    "11-23 勤労感謝の日",
                ],
            ),
        ];
        for (year, want) in years {
            assert_eq!(list(*year), *want, "{year}");
        }
    }

    #[test]
    fn single_days_follow_the_rules_of_their_time() {
        // (date, the holiday's name or none)
        type Case = ((i16, i8, i8), Option<&'static str>);
        let cases: &[Case] = &[
            ((2026, 11, 23), Some("勤労感謝の日")),
            ((2026, 11, 24), None),
            ((2000, 1, 10), Some("成人の日")),
            ((2002, 7, 20), Some("海の日")),
            ((2002, 9, 15), Some("敬老の日")),
            ((2002, 9, 16), Some("振替休日")),
            ((2003, 5, 4), None), // a Sunday between two holidays, before 2007
            ((2006, 4, 29), Some("みどりの日")),
            ((2006, 5, 4), Some("国民の休日")),
            ((2007, 4, 29), Some("昭和の日")),
            ((2008, 5, 6), Some("振替休日")), // 5/4 (Sunday) moves past 5/5
            ((2009, 9, 22), Some("国民の休日")),
            ((2015, 9, 22), Some("国民の休日")),
            ((2015, 8, 11), None), // 山の日 began in 2016
            ((2018, 12, 23), Some("天皇誕生日")),
            ((2018, 12, 24), Some("振替休日")),
            ((2019, 12, 23), None),
            ((2019, 10, 14), Some("体育の日")),
            ((2020, 10, 12), None), // moved to 7/24 for the Olympics
            ((2021, 8, 9), Some("振替休日")),
            ((2032, 9, 21), Some("国民の休日")),
            ((2099, 3, 20), Some("春分の日")),
        ];
        for &((y, m, d), want) in cases {
            assert_eq!(holiday_name(ymd(y, m, d)).unwrap(), want, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn equinoxes_match_the_observatory() {
        // (year, 春分, 秋分) as announced by the National Astronomical Observatory.
        for (year, spring, autumn) in [
            (2000, 20, 23),
            (2012, 20, 22),
            (2016, 20, 22),
            (2023, 21, 23),
            (2024, 20, 22),
            (2027, 21, 23),
        ] {
            assert_eq!(equinox(year, 20_843_100), spring, "{year}");
            assert_eq!(equinox(year, 23_248_800), autumn, "{year}");
        }
    }

    #[test]
    fn years_outside_the_rules_are_refused() {
        assert!(holidays(1999)
            .unwrap_err()
            .contains("2000 to 2099, not 1999"));
        assert!(holiday_name(ymd(2100, 1, 1)).is_err());
    }

    #[test]
    fn business_days_skip_weekends_and_holidays() {
        let mut cal = Calendar::default();
        // (from, days, to)
        let cases = [
            ((2026, 12, 31), 1, (2027, 1, 4)), // 元日 (Fri), then the weekend
            ((2026, 12, 30), 2, (2027, 1, 4)),
            ((2027, 1, 4), -1, (2026, 12, 31)),
            ((2026, 5, 1), 1, (2026, 5, 7)),     // Golden Week
            ((2026, 9, 18), 1, (2026, 9, 24)),   // Silver Week
            ((2026, 11, 20), 1, (2026, 11, 24)), // 勤労感謝の日 on Monday
            ((2026, 11, 21), 0, (2026, 11, 24)), // a Saturday rolls forward
            ((2026, 11, 25), 0, (2026, 11, 25)),
            ((2026, 11, 25), 5, (2026, 12, 2)),
        ];
        for ((y, m, d), n, (y2, m2, d2)) in cases {
            assert_eq!(
                cal.add_business_days(ymd(y, m, d), n).unwrap(),
                ymd(y2, m2, d2),
                "{y}-{m}-{d} + {n}"
            );
        }
        assert!(cal.is_business_day(ymd(2026, 11, 30)).unwrap());
        assert!(!cal.is_business_day(ymd(2026, 11, 23)).unwrap());
        assert!(cal
            .add_business_days(ymd(2026, 1, 1), 20_000)
            .unwrap_err()
            .contains("at most 10000"));
        assert!(cal
            .add_business_days(ymd(2099, 12, 31), 1)
            .unwrap_err()
            .contains("2100"));
    }

    #[test]
    fn company_days_off_count_too() {
        let closed = [
            (2026, 12, 29),
            (2026, 12, 30),
            (2026, 12, 31),
            (2027, 1, 2),
            (2027, 1, 3),
        ];
        let mut cal = Calendar::new(closed.map(|(y, m, d)| ymd(y, m, d)));
        assert_eq!(
            cal.add_business_days(ymd(2026, 12, 28), 1).unwrap(),
            ymd(2027, 1, 4)
        );
        assert!(!cal.is_business_day(ymd(2026, 12, 29)).unwrap());
    }

    #[test]
    fn business_days_between_counts_after_start() {
        let mut cal = Calendar::default();
        // (start, end, include_start, count)
        let cases = [
            ((2026, 10, 31), (2026, 11, 30), false, 19), // November 2026's business days
            ((2026, 11, 1), (2026, 11, 30), true, 19),
            ((2026, 11, 2), (2026, 11, 30), true, 19),
            ((2026, 11, 2), (2026, 11, 30), false, 18),
            ((2026, 11, 30), (2026, 11, 2), false, -18),
            ((2026, 12, 31), (2027, 1, 4), false, 1),
            ((2026, 11, 25), (2026, 11, 25), false, 0),
        ];
        for ((y, m, d), (y2, m2, d2), inc, want) in cases {
            assert_eq!(
                cal.business_days_between(ymd(y, m, d), ymd(y2, m2, d2), inc)
                    .unwrap(),
                want,
                "{y}-{m}-{d} .. {y2}-{m2}-{d2}"
            );
        }
    }
}
