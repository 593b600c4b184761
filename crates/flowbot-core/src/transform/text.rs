//! Text: regular expressions, split and join, trim, case, padding and truncation. Lengths
//! are counted in characters, never bytes: `山田` is 2 long, as a user counts it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use regex::{Regex, RegexBuilder};
use serde_json::{json, Map, Value};

use super::{check_items, check_text, shorten, MAX_PATTERN_CHARS};

/// The compiled size a pattern may reach. A short pattern can still compile to a huge
/// automaton (`\w{1000}{1000}`); the regex crate refuses past this instead of allocating.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The most characters padding may produce.
pub const MAX_PAD: usize = 10_000;

/// A user's regular expression, compiled within the limits. Compiled patterns are kept
/// (bounded) because a template filter in a loop compiles the same one per item.
pub fn compile(pattern: &str, ignore_case: bool) -> Result<Arc<Regex>, String> {
    const CACHED: usize = 256;
    type Cache = Mutex<HashMap<(String, bool), Arc<Regex>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let count = pattern.chars().count();
    if count > MAX_PATTERN_CHARS {
        return Err(format!(
            "the pattern is {count} characters long; at most {MAX_PATTERN_CHARS} are allowed"
        ));
    }
    let cache = CACHE.get_or_init(Mutex::default);
    let key = (pattern.to_string(), ignore_case);
    if let Some(re) = cache.lock().expect("regex cache").get(&key) {
        return Ok(re.clone());
    }
    let re = RegexBuilder::new(pattern)
        .case_insensitive(ignore_case)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(2 * REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => format!(
                "the pattern `{}` is too complex (it would need more than 1 MiB): simplify its repetitions",
                shorten(pattern)
            ),
            e => format!(
                "`{}` is not a valid regular expression: {}",
                shorten(pattern),
                crate::condition::regex_reason(&e)
            ),
        })?;
    let re = Arc::new(re);
    let mut cache = cache.lock().expect("regex cache");
    if cache.len() >= CACHED {
        cache.clear();
    }
    cache.insert(key, re.clone());
    Ok(re)
}

/// One match of [`regex_extract`].
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub text: String,
    /// Where it starts, in characters from the start of the text.
    pub index: usize,
    /// Named groups; null for one that took no part in the match.
    pub groups: Map<String, Value>,
    /// Numbered groups 1, 2, …; null for one that took no part.
    pub captures: Vec<Value>,
}

impl Match {
    /// What a user usually wants from a match: its first group that matched (so
    /// `注文番号：(\d+)` gives the number), else the whole match.
    pub fn value(&self) -> &str {
        self.captures
            .iter()
            .find_map(Value::as_str)
            .unwrap_or(&self.text)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "match": self.text,
            "value": self.value(),
            "index": self.index,
            "groups": self.groups,
            "captures": self.captures,
        })
    }
}

/// The most text the matches of one call may copy out, groups included.
const MAX_CAPTURED_BYTES: usize = 8 << 20;

/// The first match, or every match (at most [`super::MAX_ITEMS`]).
pub fn find_matches(
    text: &str,
    pattern: &str,
    all: bool,
    ignore_case: bool,
) -> Result<Vec<Match>, String> {
    check_text(text, "the text")?;
    let re = compile(pattern, ignore_case)?;
    let names: Vec<Option<&str>> = re.capture_names().skip(1).collect();
    let mut out = Vec::new();
    let (mut byte_at, mut char_at) = (0, 0);
    // Each group is a copy of its text (twice when named): nested groups over a long
    // text would multiply it, so the copies together are bounded too.
    let mut captured = 0usize;
    for caps in re.captures_iter(text) {
        let whole = caps.get(0).expect("group 0 always takes part");
        captured += caps
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let named = i > 0 && names[i - 1].is_some();
                m.map_or(0, |m| m.len()) * if named { 2 } else { 1 }
            })
            .sum::<usize>();
        if captured > MAX_CAPTURED_BYTES {
            return Err(format!(
                "the matches and their groups hold more than {} MiB of text: make the pattern narrower",
                MAX_CAPTURED_BYTES >> 20
            ));
        }
        char_at += text[byte_at..whole.start()].chars().count();
        byte_at = whole.start();
        let mut groups = Map::new();
        let mut captures = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let v = caps
                .get(i + 1)
                .map_or(Value::Null, |m| Value::String(m.as_str().to_string()));
            if let Some(name) = name {
                groups.insert((*name).to_string(), v.clone());
            }
            captures.push(v);
        }
        out.push(Match {
            text: whole.as_str().to_string(),
            index: char_at,
            groups,
            captures,
        });
        if !all {
            break;
        }
        check_items(out.len(), "the list of matches").map_err(|_| {
            format!(
                "the pattern matches more than {} times: make it narrower",
                super::MAX_ITEMS
            )
        })?;
    }
    Ok(out)
}

/// The `regex_extract` action's output: `matches`, `first`, `value`, `count`, `found`.
pub fn regex_extract(
    text: &str,
    pattern: &str,
    all: bool,
    ignore_case: bool,
) -> Result<Value, String> {
    let matches = find_matches(text, pattern, all, ignore_case)?;
    let first = matches.first();
    Ok(json!({
        "matches": matches.iter().map(Match::to_json).collect::<Vec<_>>(),
        "first": first.map_or(Value::Null, Match::to_json),
        "value": first.map_or(Value::Null, |m| Value::String(m.value().to_string())),
        "count": matches.len(),
        "found": first.is_some(),
    }))
}

/// Replace the first match or every match; `$1`, `$name` and `${name}` in the
/// replacement insert groups (`$$` is a dollar sign). Gives the text and how many
/// matches were replaced.
pub fn regex_replace(
    text: &str,
    pattern: &str,
    replacement: &str,
    all: bool,
    ignore_case: bool,
) -> Result<(String, usize), String> {
    check_text(text, "the text")?;
    check_text(replacement, "the replacement")?;
    let re = compile(pattern, ignore_case)?;
    // Built piece by piece and checked as it grows: an empty match puts the replacement
    // between every two characters, which must be refused before it is allocated.
    let mut out = String::new();
    let mut last = 0;
    let mut count = 0;
    for caps in re.captures_iter(text) {
        let m = caps.get(0).expect("group 0 is the match");
        out.push_str(&text[last..m.start()]);
        caps.expand(replacement, &mut out);
        last = m.end();
        count += 1;
        check_text(&out, "the replaced text")?;
        if !all {
            break;
        }
    }
    out.push_str(&text[last..]);
    check_text(&out, "the replaced text")?;
    Ok((out, count))
}

/// How [`split`] cuts a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitOptions {
    /// The separator is a regular expression.
    pub regex: bool,
    /// Trim each item (full-width spaces too).
    pub trim: bool,
    /// Leave out items that are empty (after trimming).
    pub drop_empty: bool,
}

/// Cut a text at a separator. An empty separator cuts it into characters.
pub fn split(text: &str, separator: &str, opts: SplitOptions) -> Result<Vec<String>, String> {
    check_text(text, "the text")?;
    let raw: Vec<&str> = if separator.is_empty() {
        text.char_indices()
            .map(|(i, c)| &text[i..i + c.len_utf8()])
            .collect()
    } else if opts.regex {
        compile(separator, false)?.split(text).collect()
    } else {
        text.split(separator).collect()
    };
    let items: Vec<String> = raw
        .into_iter()
        .map(|s| {
            if opts.trim {
                trim(s, Side::Both, false)
            } else {
                s.to_string()
            }
        })
        .filter(|s| !(opts.drop_empty && s.is_empty()))
        .collect();
    check_items(items.len(), "the split text")?;
    Ok(items)
}

/// Join values with a separator; with a `field`, that field of each item. Text is used as
/// it is, numbers and booleans as written, null as nothing, lists and objects as JSON.
pub fn join(items: &[Value], separator: &str, field: Option<&str>) -> Result<String, String> {
    check_items(items.len(), "the list")?;
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        let v = match field {
            Some(f) => super::list::field_at(item, f).unwrap_or(&Value::Null),
            None => item,
        };
        match super::scalar_text(v) {
            Some(t) => out.push_str(&t),
            None => out.push_str(&v.to_string()),
        }
        check_text(&out, "the joined text")?;
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Both,
    Start,
    End,
}

impl Side {
    pub fn parse(name: &str) -> Result<Side, String> {
        match name.trim() {
            "both" | "" => Ok(Side::Both),
            "start" | "left" => Ok(Side::Start),
            "end" | "right" => Ok(Side::End),
            other => Err(format!("unknown side `{other}`: use both, start or end")),
        }
    }
}

/// Spaces as users paste them: Unicode white space (which includes the full-width
/// U+3000 and the no-break space) plus the invisible zero-width space and byte-order mark
/// that copying from web pages and Excel leaves behind.
fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{200B}' || c == '\u{FEFF}'
}

/// Trim spaces of every kind; with `collapse`, also shorten each run of spaces inside a
/// line to its first character (`山田  太郎` → `山田 太郎`, `山田　太郎` stays).
pub fn trim(text: &str, side: Side, collapse: bool) -> String {
    let trimmed = match side {
        Side::Both => text.trim_matches(is_space),
        Side::Start => text.trim_start_matches(is_space),
        Side::End => text.trim_end_matches(is_space),
    };
    if !collapse {
        return trimmed.to_string();
    }
    let mut out = String::with_capacity(trimmed.len());
    let mut in_run = false;
    for c in trimmed.chars() {
        let horizontal = is_space(c) && c != '\n' && c != '\r';
        if !(horizontal && in_run) {
            out.push(c);
        }
        in_run = horizontal;
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Upper,
    Lower,
    /// Every word's first letter in capitals, the rest in small letters.
    Title,
    /// The first letter in capitals, the rest in small letters.
    Capitalize,
}

impl Case {
    pub fn parse(name: &str) -> Result<Case, String> {
        match name.trim() {
            "upper" => Ok(Case::Upper),
            "lower" => Ok(Case::Lower),
            "title" => Ok(Case::Title),
            "capitalize" => Ok(Case::Capitalize),
            other => Err(format!(
                "unknown case `{other}`: use upper, lower, title or capitalize"
            )),
        }
    }
}

/// Letter case, full-width Latin letters (ａ/Ａ) included; kana and kanji have none.
pub fn change_case(text: &str, case: Case) -> String {
    match case {
        Case::Upper => text.to_uppercase(),
        Case::Lower => text.to_lowercase(),
        Case::Title | Case::Capitalize => {
            let mut out = String::with_capacity(text.len());
            let mut word_start = true;
            let mut first = true;
            for c in text.chars() {
                let start = if case == Case::Title {
                    word_start
                } else {
                    first
                };
                if c.is_alphanumeric() {
                    if start {
                        out.extend(c.to_uppercase());
                    } else {
                        out.extend(c.to_lowercase());
                    }
                    first = false;
                    word_start = false;
                } else {
                    out.push(c);
                    // An apostrophe keeps a word going: don't → Don't, not Don'T.
                    word_start = !matches!(c, '\'' | '’');
                }
            }
            out
        }
    }
}

/// Pad to `length` characters with one pad character (`0` on the left makes `00042`).
/// A text already as long is returned as it is.
pub fn pad(text: &str, length: usize, pad_char: &str, side: Side) -> Result<String, String> {
    let mut chars = pad_char.chars();
    let (Some(p), None) = (chars.next(), chars.next()) else {
        return Err(format!(
            "the pad character must be exactly one character, not `{}`",
            shorten(pad_char)
        ));
    };
    if length > MAX_PAD {
        return Err(format!(
            "cannot pad to {length} characters; at most {MAX_PAD}"
        ));
    }
    check_text(text, "the text")?;
    let have = text.chars().count();
    if have >= length {
        return Ok(text.to_string());
    }
    let fill: String = std::iter::repeat_n(p, length - have).collect();
    Ok(match side {
        Side::End => format!("{text}{fill}"),
        Side::Start | Side::Both => format!("{fill}{text}"),
    })
}

/// At most `length` characters, `ellipsis` included (so `truncate(255)` fits Salesforce's
/// Name). Gives the text and whether anything was cut.
pub fn truncate(text: &str, length: usize, ellipsis: &str) -> (String, bool) {
    if text.chars().count() <= length {
        return (text.to_string(), false);
    }
    let keep = length.saturating_sub(ellipsis.chars().count());
    // An ellipsis longer than the length is cut too: the result never passes `length`.
    (
        text.chars()
            .take(keep)
            .chain(ellipsis.chars())
            .take(length)
            .collect(),
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_stay_bounded() {
        // An empty match puts the replacement between every two characters.
        let text = "あ".repeat(100_000);
        let err = regex_replace(&text, "", &text, true, false).unwrap_err();
        assert!(err.contains("the replaced text"), "{err}");
        assert_eq!(
            regex_replace("abc", "", "-", true, false).unwrap(),
            ("-a-b-c-".to_string(), 4)
        );
        // Nested groups over a long text would copy it once per group.
        let long = "x".repeat(500_000);
        let nested = format!("{}.*{}", "(".repeat(40), ")".repeat(40));
        let err = find_matches(&long, &nested, false, false).unwrap_err();
        assert!(err.contains("narrower"), "{err}");
        assert_eq!(truncate("abcdef", 2, "..."), ("..".to_string(), true));
        assert_eq!(truncate("abcdef", 4, "…"), ("abc…".to_string(), true));
    }

    #[test]
    fn regex_extract_table() {
        // (text, pattern, all, ignore_case, count, value, first match's index)
        type Case = (
            &'static str,
            &'static str,
            bool,
            bool,
            usize,
            Option<&'static str>,
            Option<usize>,
        );
        let cases: &[Case] = &[
            (
                "注文番号：12345 を確認",
                r"注文番号：(\d+)",
                false,
                false,
                1,
                Some("12345"),
                Some(0),
            ),
            (
                "お客様の注文番号は A-77 です",
                r"[A-Z]-\d+",
                false,
                false,
                1,
                Some("A-77"),
                Some(10),
            ),
            ("a1 b22 c333", r"\d+", true, false, 3, Some("1"), Some(1)),
            ("a1 b22 c333", r"\d+", false, false, 1, Some("1"), Some(1)),
            ("ABC abc", r"abc", true, true, 2, Some("ABC"), Some(0)),
            ("nothing here", r"\d+", true, false, 0, None, None),
            (
                "〒150-0001 東京都",
                r"〒?(?P<zip>\d{3}-\d{4})",
                false,
                false,
                1,
                Some("150-0001"),
                Some(0),
            ),
        ];
        for &(text, pattern, all, ic, count, value, index) in cases {
            let out = regex_extract(text, pattern, all, ic).unwrap();
            assert_eq!(out["count"], json!(count), "{text} / {pattern}");
            assert_eq!(out["found"], json!(count > 0));
            assert_eq!(out["value"], json!(value), "{text} / {pattern}");
            assert_eq!(out["first"]["index"], json!(index), "{text} / {pattern}");
        }
    }

    #[test]
    fn regex_extract_names_groups() {
        let out = regex_extract(
            "山田 太郎 <taro@example.jp>, 佐藤 花子 <hanako@example.jp>",
            r"(?P<name>[^ ,]+ [^ ]+) <(?P<email>[^>]+)>",
            true,
            false,
        )
        .unwrap();
        assert_eq!(
            out["matches"][1]["groups"],
            json!({"name": "佐藤 花子", "email": "hanako@example.jp"})
        );
        assert_eq!(out["matches"][1]["index"], json!(25));
        assert_eq!(
            out["matches"][0]["captures"],
            json!(["山田 太郎", "taro@example.jp"])
        );
        let out = regex_extract("b", r"(a)|(b)", false, false).unwrap();
        assert_eq!(out["first"]["captures"], json!([null, "b"]));
        assert_eq!(out["value"], json!("b"));
    }

    #[test]
    fn regex_limits_and_errors() {
        let long = "a".repeat(MAX_PATTERN_CHARS + 1);
        assert!(regex_extract("a", &long, false, false)
            .unwrap_err()
            .contains("at most 1000"));
        let e = regex_extract("a", r"(\w{1000}){1000}", false, false).unwrap_err();
        assert!(e.contains("too complex"), "{e}");
        let e = regex_extract("a", r"(abc", false, false).unwrap_err();
        assert!(
            e.starts_with("`(abc` is not a valid regular expression"),
            "{e}"
        );
        let big = "x".repeat(super::super::MAX_TEXT_BYTES + 1);
        assert!(regex_extract(&big, "x", false, false)
            .unwrap_err()
            .contains("1 MiB"));
        let many = "x".repeat(super::super::MAX_ITEMS + 1);
        let e = regex_extract(&many, "x", true, false).unwrap_err();
        assert!(e.contains("narrower"), "{e}");
    }

    #[test]
    fn regex_replace_table() {
        // (text, pattern, replacement, all, want, count)
        let cases = [
            ("a  b   c", r"\s+", " ", true, "a b c", 2),
            ("a  b   c", r"\s+", " ", false, "a b   c", 1),
            (
                "2026/11/30",
                r"(\d+)/(\d+)/(\d+)",
                "$1年$2月$3日",
                true,
                "2026年11月30日",
                1,
            ),
            (
                "090-1234-5678",
                r"(?P<a>\d+)-(?P<b>\d+)-(?P<c>\d+)",
                "${a}${b}${c}",
                true,
                "09012345678",
                1,
            ),
            ("価格 100円", r"(\d+)円", "$$$1", true, "価格 $100", 1),
            (
                "株式会社　山田商店",
                "\u{3000}",
                " ",
                true,
                "株式会社 山田商店",
                1,
            ),
            ("none", r"\d", "#", true, "none", 0),
        ];
        for (text, pattern, rep, all, want, count) in cases {
            assert_eq!(
                regex_replace(text, pattern, rep, all, false).unwrap(),
                (want.to_string(), count),
                "{text} / {pattern}"
            );
        }
        assert_eq!(regex_replace("AbC", "abc", "x", true, true).unwrap().0, "x");
    }

    #[test]
    fn split_table() {
        let plain = SplitOptions {
            regex: false,
            trim: true,
            drop_empty: true,
        };
        let raw = SplitOptions {
            regex: false,
            trim: false,
            drop_empty: false,
        };
        let re = SplitOptions {
            regex: true,
            ..plain
        };
        let cases: &[(&str, &str, SplitOptions, &[&str])] = &[
            ("a, b ,c", ",", plain, &["a", "b", "c"]),
            ("a, b ,,c,", ",", raw, &["a", " b ", "", "c", ""]),
            (
                "りんご、　みかん、、ぶどう",
                "、",
                plain,
                &["りんご", "みかん", "ぶどう"],
            ),
            (
                "tag1 tag2\u{3000}tag3",
                r"\s+",
                re,
                &["tag1", "tag2", "tag3"],
            ),
            ("1;2|3", r"[;|]", re, &["1", "2", "3"]),
            ("山田", "", plain, &["山", "田"]),
            ("", ",", plain, &[]),
        ];
        for (text, sep, opts, want) in cases {
            assert_eq!(
                split(text, sep, *opts).unwrap(),
                *want,
                "{text:?} by {sep:?}"
            );
        }
        let many = ",".repeat(super::super::MAX_ITEMS + 1);
        assert!(split(&many, ",", raw)
            .unwrap_err()
            .contains("at most 10000"));
    }

    #[test]
    fn join_table() {
        let rows = json!([{"n": "山田"}, {"n": 2}, {"x": 1}, {"n": {"a": 1}}]);
        let cases: &[(Value, &str, Option<&str>, &str)] = &[
            (json!(["a", "b", "c"]), ", ", None, "a, b, c"),
            (json!([1, 2.5, true, null, "x"]), "/", None, "1/2.5/true//x"),
            (json!([]), ",", None, ""),
            (rows.clone(), "・", Some("n"), "山田・2・・{\"a\":1}"),
        ];
        for (list, sep, field, want) in cases {
            assert_eq!(
                join(list.as_array().unwrap(), sep, *field).unwrap(),
                *want,
                "{list}"
            );
        }
    }

    #[test]
    fn trim_table() {
        let cases = [
            (
                "\u{3000} 山田 太郎\u{3000}\n",
                Side::Both,
                false,
                "山田 太郎",
            ),
            ("\u{200B}\u{FEFF}abc\u{00A0}", Side::Both, false, "abc"),
            ("  abc  ", Side::Start, false, "abc  "),
            ("  abc  ", Side::End, false, "  abc"),
            (
                "  山田  　太郎\n\n次の行  ",
                Side::Both,
                true,
                "山田 太郎\n\n次の行",
            ),
            ("山田　太郎", Side::Both, true, "山田　太郎"),
        ];
        for (text, side, collapse, want) in cases {
            assert_eq!(trim(text, side, collapse), want, "{text:?}");
        }
        assert_eq!(Side::parse("left").unwrap(), Side::Start);
        assert!(Side::parse("middle")
            .unwrap_err()
            .contains("both, start or end"));
    }

    #[test]
    fn change_case_table() {
        let cases = [
            ("Hello World", Case::Upper, "HELLO WORLD"),
            ("ＡＢＣ abc", Case::Lower, "ａｂｃ abc"),
            ("ｔｏｋｙｏ", Case::Upper, "ＴＯＫＹＯ"),
            (
                "o'brien don't mcdonald-smith",
                Case::Title,
                "O'brien Don't Mcdonald-Smith",
            ),
            ("hELLO wORLD", Case::Capitalize, "Hello world"),
            ("東京 tower", Case::Title, "東京 Tower"),
        ];
        for (text, case, want) in cases {
            assert_eq!(change_case(text, case), want, "{text} {case:?}");
        }
        assert!(Case::parse("snake")
            .unwrap_err()
            .contains("upper, lower, title or capitalize"));
    }

    #[test]
    fn pad_table() {
        let cases = [
            ("42", 5, "0", Side::Start, "00042"),
            ("42", 5, " ", Side::End, "42   "),
            ("山田", 4, "＊", Side::End, "山田＊＊"),
            ("123456", 3, "0", Side::Start, "123456"),
            ("", 2, "　", Side::Start, "\u{3000}\u{3000}"),
        ];
        for (text, len, p, side, want) in cases {
            assert_eq!(pad(text, len, p, side).unwrap(), want, "{text}");
        }
        assert!(pad("a", 3, "ab", Side::Start)
            .unwrap_err()
            .contains("exactly one character"));
        assert!(pad("a", 3, "", Side::Start)
            .unwrap_err()
            .contains("exactly one character"));
        assert!(pad("a", MAX_PAD + 1, "0", Side::Start)
            .unwrap_err()
            .contains("at most"));
    }

    #[test]
    fn truncate_table() {
        let cases = [
            ("abcdef", 4, "", "abcd", true),
            ("abcdef", 4, "…", "abc…", true),
            ("株式会社山田商店", 6, "...", "株式会...", true),
            ("山田", 2, "…", "山田", false),
            ("abc", 0, "", "", true),
        ];
        for (text, len, end, want, cut) in cases {
            assert_eq!(truncate(text, len, end), (want.to_string(), cut), "{text}");
        }
    }
}
