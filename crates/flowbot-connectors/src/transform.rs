//! The `transform` app (データを操作・変換する): built-in steps that reshape values —
//! text and regular expressions, 全角/半角 and kana, dates with Japanese eras and public
//! holidays, numbers, JSON, lists and lookups. It calls no service and needs no
//! connection: every action is core's `flowbot_core::transform`, a pure function of its
//! input, so each is idempotent and changes nothing outside the run.

use async_trait::async_trait;
use flowbot_core::manifest::{ActionSpec, AppManifest, FieldKind, FieldSpec, OutputSpec, Text};
use flowbot_core::transform::{MAX_ITEMS, MAX_PATTERN_CHARS};
use flowbot_core::{ActionCall, ActionError, Connector};
use serde_json::{json, Value};

pub const APP: &str = "transform";

pub struct TransformApp {
    manifest: AppManifest,
}

impl Default for TransformApp {
    fn default() -> Self {
        TransformApp {
            manifest: manifest(),
        }
    }
}

#[async_trait]
impl Connector for TransformApp {
    fn manifest(&self) -> &AppManifest {
        &self.manifest
    }

    /// A bad input fails the same way every time, so every error is fatal.
    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError> {
        flowbot_core::transform::execute(call.action, call.input).map_err(ActionError::fatal)
    }
}

fn input(name: &str, kind: FieldKind, en: &str, ja: &str) -> FieldSpec {
    FieldSpec::new(name, kind, Text::new(en, ja))
}

fn output(name: &str, kind: FieldKind, en: &str, ja: &str) -> OutputSpec {
    OutputSpec::new(name, kind, Text::new(en, ja))
}

fn action(
    id: &str,
    name: (&str, &str),
    description: (&str, &str),
    inputs: Vec<FieldSpec>,
    outputs: Vec<OutputSpec>,
) -> ActionSpec {
    ActionSpec {
        id: id.into(),
        name: Text::new(name.0, name.1),
        description: Text::new(description.0, description.1),
        inputs,
        outputs,
        idempotent: true,
        writes: false,
        usage: false,
    }
}

fn text_in() -> FieldSpec {
    input("text", FieldKind::Text, "Text", "テキスト")
        .required()
        .help(
            "Up to 1 MiB; empty when the value is null",
            "1 MiB まで。値が null のときは空のテキスト",
        )
}

fn flag(name: &str, default: bool, en: &str, ja: &str) -> FieldSpec {
    input(name, FieldKind::Boolean, en, ja).default_value(json!(default))
}

fn select(name: &str, choices: &[&str], default: &str, en: &str, ja: &str) -> FieldSpec {
    input(name, FieldKind::Select, en, ja)
        .choices(choices)
        .default_value(json!(default))
}

fn pattern_in() -> FieldSpec {
    input("pattern", FieldKind::Text, "Regular expression", "正規表現")
        .required()
        .help(
            &format!("Rust regex syntax, at most {MAX_PATTERN_CHARS} characters; (?P<name>…) names a group"),
            &format!("Rust の正規表現（{MAX_PATTERN_CHARS} 文字まで）。(?P<名前>…) でグループに名前を付けます"),
        )
}

fn ignore_case_in() -> FieldSpec {
    flag(
        "ignore_case",
        false,
        "Ignore case",
        "大文字と小文字を区別しない",
    )
}

fn text_out() -> OutputSpec {
    output("text", FieldKind::Text, "Result", "結果")
}

fn items_outs() -> Vec<OutputSpec> {
    vec![
        output("items", FieldKind::List, "Items", "項目の一覧"),
        output("count", FieldKind::Integer, "Number of items", "件数"),
    ]
}

fn list_in() -> FieldSpec {
    input("list", FieldKind::List, "List", "リスト")
        .required()
        .max_items(MAX_ITEMS)
        .help(
            "A list, e.g. {{ search.rows }}; null is an empty list",
            "リスト（例: {{ search.rows }}）。null は空のリスト",
        )
}

fn field_in(required: bool) -> FieldSpec {
    let f = input("field", FieldKind::Text, "Field", "項目").help(
        "For a list of records: the field to use, a dotted path such as customer.name (empty: the item itself)",
        "レコードのリストのとき、使う項目。customer.name のようにドットでたどれます（空: 項目そのもの）",
    );
    if required {
        f.required()
    } else {
        f
    }
}

fn time_zone_in() -> FieldSpec {
    input("time_zone", FieldKind::Text, "Time zone", "タイムゾーン")
        .default_value(json!("Asia/Tokyo"))
        .help(
            "IANA name (Asia/Tokyo, UTC, America/New_York): dates written without an offset are read in it, and results are given in it",
            "IANA 名（Asia/Tokyo、UTC、America/New_York など）。オフセットのない日時はこのタイムゾーンで読み、結果もこのタイムゾーンで返します",
        )
}

fn date_in(name: &str, en: &str, ja: &str) -> FieldSpec {
    input(name, FieldKind::Text, en, ja).required().help(
        "2026-11-30, 2026/11/30 14:05, 2026年11月30日, 令和8年11月30日, R8.11.30, ISO 8601, a mail date or Unix seconds",
        "2026-11-30、2026/11/30 14:05、2026年11月30日、令和8年11月30日、R8.11.30、ISO 8601、メールの日付、Unix 秒のいずれか",
    )
}

fn days_off_in() -> FieldSpec {
    input("days_off", FieldKind::List, "Company days off", "会社の休日")
        .max_items(MAX_ITEMS)
        .help(
            "Dates that are not business days besides weekends and public holidays (年末年始, 創立記念日…)",
            "土日祝日のほかに営業日としない日付（年末年始、創立記念日など）",
        )
}

/// What every date action gives: the ISO text and its parts.
fn date_outs() -> Vec<OutputSpec> {
    use FieldKind::{Integer, Text as T};
    vec![
        output("iso", T, "Date-time (ISO 8601)", "日時（ISO 8601）"),
        output("date", T, "Date (YYYY-MM-DD)", "日付（YYYY-MM-DD）"),
        output("time", T, "Time (HH:MM:SS)", "時刻（HH:MM:SS）"),
        output("year", Integer, "Year", "年"),
        output("month", Integer, "Month", "月"),
        output("day", Integer, "Day", "日"),
        output("hour", Integer, "Hour", "時"),
        output("minute", Integer, "Minute", "分"),
        output("second", Integer, "Second", "秒"),
        output(
            "weekday",
            Integer,
            "Weekday (Monday = 1)",
            "曜日（月曜日 = 1）",
        ),
        output("weekday_ja", T, "Weekday (月…日)", "曜日（月〜日）"),
        output("weekday_en", T, "Weekday (Monday…)", "曜日（英語）"),
        output(
            "wareki",
            T,
            "Japanese-era date (令和8年11月30日)",
            "和暦（令和8年11月30日）",
        ),
        output("unix", Integer, "Unix seconds", "Unix 秒"),
        output("time_zone", T, "Time zone", "タイムゾーン"),
    ]
}

const UNITS: &[&str] = &[
    "years", "months", "weeks", "days", "hours", "minutes", "seconds",
];

fn text_actions() -> Vec<ActionSpec> {
    use FieldKind::*;
    vec![
        action(
            "regex_extract",
            ("Extract with a regular expression", "正規表現で抽出する"),
            (
                "The first match (or all of them) with its groups. `value` is the first group that matched, else the whole match.",
                "最初の一致（またはすべての一致）とそのグループを取り出します。`value` は一致した最初のグループ、なければ一致した全体です。",
            ),
            vec![
                text_in(),
                pattern_in(),
                flag("all", false, "Every match", "すべての一致"),
                ignore_case_in(),
            ],
            vec![
                output("value", Text, "Extracted value", "抽出した値"),
                output("first", Json, "First match", "最初の一致"),
                output("matches", List, "Matches ({match, value, index, groups, captures})", "一致の一覧（{match, value, index, groups, captures}）"),
                output("count", Integer, "Number of matches", "一致の数"),
                output("found", Boolean, "Found", "一致あり"),
            ],
        ),
        action(
            "regex_replace",
            ("Replace with a regular expression", "正規表現で置換する"),
            (
                "Replace matches; $1, $name and ${name} insert groups, $$ is a dollar sign.",
                "一致した部分を置き換えます。$1、$名前、${名前} でグループを挿入し、$$ は $ 記号です。",
            ),
            vec![
                text_in(),
                pattern_in(),
                input("replacement", Text, "Replace with", "置換後の文字列")
                    .help("Write ${1}x rather than $1x: a name runs on while letters follow", "$1x ではなく ${1}x と書きます（文字が続くとグループ名の一部になるため）"),
                flag("all", true, "Every match (else the first only)", "すべての一致（オフ: 最初の一致のみ）"),
                ignore_case_in(),
            ],
            vec![text_out(), output("count", Integer, "Replacements", "置換した数")],
        ),
        action(
            "split",
            ("Split text", "テキストを分割する"),
            ("Cut a text into a list at a separator.", "区切り文字でテキストをリストに分割します。"),
            vec![
                text_in(),
                input("separator", Text, "Separator", "区切り文字")
                    .default_value(json!(","))
                    .help("Empty: each character", "空: 1 文字ずつ"),
                flag("regex", false, "The separator is a regular expression", "区切り文字を正規表現として扱う"),
                flag("trim", true, "Trim each item (full-width spaces too)", "各項目の前後の空白（全角も）を除く"),
                flag("drop_empty", true, "Leave out empty items", "空の項目を除く"),
            ],
            items_outs(),
        ),
        action(
            "join",
            ("Join a list into text", "リストを結合する"),
            ("The items as one text, with a separator between them.", "リストの項目を区切り文字でつないだテキストにします。"),
            vec![
                list_in(),
                input("separator", Text, "Separator", "区切り文字").default_value(json!(",")),
            ],
            vec![text_out()],
        ),
        action(
            "trim",
            ("Trim spaces", "前後の空白を除く"),
            (
                "Remove spaces of every kind (full-width, no-break, zero-width) from the ends.",
                "前後の空白（全角・ノーブレーク・ゼロ幅も）を除きます。",
            ),
            vec![
                text_in(),
                select("side", &["both", "start", "end"], "both", "Where", "どちら側"),
                flag("collapse", false, "Also shorten runs of spaces inside to one", "途中の連続した空白も 1 つにする"),
            ],
            vec![text_out()],
        ),
        action(
            "normalize",
            ("Convert width or kana", "全角・半角・かなを変換する"),
            (
                "全角→半角 (letters, digits, symbols, spaces), 半角→全角 (half-width kana too), ひらがな↔カタカナ, ｶﾞ→ガ, or NFKC.",
                "全角→半角（英数字・記号・空白）、半角→全角（半角カナも）、ひらがな↔カタカナ、半角カナ→全角カナ（ｶﾞ→ガ）、NFKC 正規化。",
            ),
            vec![
                text_in(),
                select(
                    "mode",
                    flowbot_core::transform::kana::Mode::NAMES,
                    "zenkaku_to_hankaku",
                    "Conversion",
                    "変換",
                ),
            ],
            vec![text_out()],
        ),
        action(
            "change_case",
            ("Change letter case", "大文字・小文字を変換する"),
            ("Upper, lower, title (each word) or capitalize (the first letter).", "大文字、小文字、単語ごとの先頭を大文字、先頭だけ大文字。"),
            vec![text_in(), select("case", &["upper", "lower", "title", "capitalize"], "upper", "Case", "変換")],
            vec![text_out()],
        ),
        action(
            "pad",
            ("Pad to a length", "桁数をそろえる"),
            ("Fill up to a length in characters, e.g. 42 → 00042.", "指定した文字数まで埋めます（例: 42 → 00042）。"),
            vec![
                text_in(),
                input("length", Integer, "Length (characters)", "文字数").required().help("At most 10000", "10000 まで"),
                input("character", Text, "Pad character", "埋める文字").default_value(json!(" ")),
                select("side", &["start", "end"], "start", "Where", "どちら側"),
            ],
            vec![text_out()],
        ),
        action(
            "truncate",
            ("Truncate text", "文字数で切り詰める"),
            ("At most a number of characters, the ellipsis included.", "指定した文字数以内にします（省略記号を含む）。"),
            vec![
                text_in(),
                input("length", Integer, "Length (characters)", "文字数").required(),
                input("ellipsis", Text, "Ellipsis", "省略記号").help("e.g. … (empty: none)", "例: …（空: なし）"),
            ],
            vec![text_out(), output("truncated", Boolean, "Truncated", "切り詰めた")],
        ),
    ]
}

fn date_actions() -> Vec<ActionSpec> {
    use FieldKind::*;
    vec![
        action(
            "date_parse",
            ("Read a date", "日付を読み取る"),
            (
                "Read a date or date-time as people write it and give its ISO 8601 text and parts.",
                "さまざまな書き方の日付・日時を読み取り、ISO 8601 の日時と各部分を返します。",
            ),
            vec![
                date_in("date", "Date", "日付"),
                select("order", &["ymd", "mdy", "dmy"], "ymd", "Order of a year-last date", "年が最後の日付の並び")
                    .help("For 11/30/2026 choose mdy, for 30/11/2026 dmy", "11/30/2026 なら mdy、30/11/2026 なら dmy"),
                time_zone_in(),
            ],
            date_outs(),
        ),
        action(
            "date_add",
            ("Add to a date", "日時を加算・減算する"),
            (
                "Add years, months… (negative to subtract). A month-end day stays in its month: 1/31 + 1 month is 2/28.",
                "年・月などを足します（負の数で引きます）。月末を超える日は月末になります（1/31 の 1 か月後は 2/28）。",
            ),
            vec![
                date_in("date", "Date", "日付"),
                input("amount", Integer, "Amount", "量").required().help("Negative to subtract", "負の数で減算"),
                select("unit", UNITS, "days", "Unit", "単位"),
                time_zone_in(),
            ],
            date_outs(),
        ),
        action(
            "date_diff",
            ("Difference between dates", "日時の差を求める"),
            ("Whole units from start to end (negative when end is earlier).", "開始から終了までの差を単位の整数で返します（終了が前なら負）。"),
            vec![
                date_in("start", "Start", "開始"),
                date_in("end", "End", "終了"),
                select("unit", UNITS, "days", "Unit", "単位"),
                time_zone_in(),
            ],
            vec![
                output("difference", Integer, "Difference", "差"),
                output("unit", Text, "Unit", "単位"),
            ],
        ),
        action(
            "date_format",
            ("Format a date", "日付の形式を変換する"),
            (
                "strftime codes (%Y %m %d %H %M %S, %-m without a zero) plus %EY (令和8年), %EC (令和), %Ey (8), %Ja (月), %JA (月曜日).",
                "strftime の記号（%Y %m %d %H %M %S、ゼロなしは %-m）に加えて %EY（令和8年）、%EC（令和）、%Ey（8）、%Ja（月）、%JA（月曜日）。",
            ),
            vec![
                date_in("date", "Date", "日付"),
                input("format", Text, "Format", "形式").default_value(json!("%Y-%m-%d %H:%M")),
                time_zone_in(),
            ],
            vec![text_out()],
        ),
        action(
            "date_convert_tz",
            ("Convert a time zone", "タイムゾーンを変換する"),
            ("The same moment in another time zone.", "同じ時刻を別のタイムゾーンで表します。"),
            vec![
                date_in("date", "Date", "日付"),
                input("from_time_zone", Text, "From time zone", "変換元のタイムゾーン")
                    .default_value(json!("Asia/Tokyo"))
                    .help("For a date-time written without an offset", "オフセットのない日時に使います"),
                input("to_time_zone", Text, "To time zone", "変換先のタイムゾーン").required(),
            ],
            date_outs(),
        ),
        action(
            "month_start",
            ("Start of the month", "月初を求める"),
            ("The first day of the month at 00:00; months moves to another month (1: next).", "月の初日の 0:00。月数で別の月に移ります（1: 翌月）。"),
            vec![date_in("date", "Date", "日付"), months_in(), time_zone_in()],
            date_outs(),
        ),
        action(
            "month_end",
            ("End of the month", "月末を求める"),
            ("The last day of the month at 23:59:59; months moves to another month (1: 翌月末).", "月の末日の 23:59:59。月数で別の月に移ります（1: 翌月末）。"),
            vec![date_in("date", "Date", "日付"), months_in(), time_zone_in()],
            date_outs(),
        ),
        action(
            "business_days_add",
            ("Add business days", "営業日を加算する"),
            (
                "Skip Saturdays, Sundays, Japan's public holidays (2000–2099) and your days off. 0 gives the date itself, or the next business day.",
                "土日・祝日（2000〜2099 年）・会社の休日を飛ばして数えます。0 はその日（営業日でなければ次の営業日）。",
            ),
            vec![
                date_in("date", "Date", "日付"),
                input("days", Integer, "Business days", "営業日数").required().help("Negative to go back", "負の数でさかのぼります"),
                days_off_in(),
                time_zone_in(),
            ],
            date_outs(),
        ),
        action(
            "is_business_day",
            ("Is it a business day?", "営業日か判定する"),
            ("Whether a date is a business day, and its public holiday's name.", "営業日かどうかと、祝日の名前を返します。"),
            vec![date_in("date", "Date", "日付"), days_off_in(), time_zone_in()],
            vec![
                output("is_business_day", Boolean, "Business day", "営業日"),
                output("is_holiday", Boolean, "Public holiday", "祝日"),
                output("holiday_name", Text, "Holiday name", "祝日名"),
                output("is_weekend", Boolean, "Saturday or Sunday", "土日"),
                output("date", Text, "Date", "日付"),
                output("weekday_ja", Text, "Weekday (月…日)", "曜日"),
            ],
        ),
        action(
            "business_days_between",
            ("Count business days", "営業日数を数える"),
            (
                "Business days after start up to and including end (start too when asked).",
                "開始の翌日から終了日までの営業日数（指定すれば開始日も数えます）。",
            ),
            vec![
                date_in("start", "Start", "開始"),
                date_in("end", "End", "終了"),
                flag("include_start", false, "Count the start date too", "開始日も数える"),
                days_off_in(),
                time_zone_in(),
            ],
            vec![output("count", Integer, "Business days", "営業日数")],
        ),
        action(
            "list_holidays",
            ("List public holidays", "祝日の一覧を取得する"),
            ("Japan's public holidays of a year (2000–2099), with 振替休日 and 国民の休日.", "その年の祝日（2000〜2099 年）。振替休日と国民の休日を含みます。"),
            vec![input("year", Integer, "Year", "年").required()],
            vec![
                output("holidays", List, "Holidays ({date, name, weekday_ja})", "祝日の一覧（{date, name, weekday_ja}）"),
                output("count", Integer, "Number of holidays", "祝日の数"),
            ],
        ),
    ]
}

fn months_in() -> FieldSpec {
    input("months", FieldKind::Integer, "Months later", "何か月後")
        .default_value(json!(0))
        .help(
            "0: the date's month, 1: the next, -1: the previous",
            "0: その月、1: 翌月、-1: 前月",
        )
}

fn number_actions() -> Vec<ActionSpec> {
    use FieldKind::*;
    vec![
        action(
            "number_parse",
            ("Read a number", "数値を読み取る"),
            (
                "Read 1,234.5, １，２３４円, ¥1,200, ▲3,000, (1,200) or -3.5% as a number.",
                "1,234.5、１，２３４円、¥1,200、▲3,000、(1,200)、-3.5% などを数値として読み取ります。",
            ),
            vec![
                text_in(),
                flag("decimal_comma", false, "The comma marks decimals (1.234,5)", "カンマを小数点として扱う（1.234,5）"),
            ],
            vec![
                output("number", Number, "Number", "数値"),
                output("text", Text, "Number as plain text", "数値（テキスト）"),
                output("percent", Boolean, "Written with %", "% 付き"),
            ],
        ),
        action(
            "number_format",
            ("Format a number", "数値の表示形式を変換する"),
            (
                "Round on the typed digits (2.675 → 2.68), add thousands separators and a currency sign.",
                "入力された桁のとおりに丸め（2.675 → 2.68）、桁区切りと通貨記号を付けます。",
            ),
            vec![
                input("number", Text, "Number", "数値")
                    .required()
                    .help("A number, or text such as ¥1,200", "数値、または ¥1,200 のようなテキスト"),
                input("decimals", Integer, "Decimal places", "小数点以下の桁数").help(
                    "Empty: as the number has them; negative rounds to tens, hundreds (-2: 百円未満)",
                    "空: 数値のまま。負の数で十の位・百の位に丸めます（-2: 百円未満）",
                ),
                select("rounding", flowbot_core::transform::number::Rounding::NAMES, "half_up", "Rounding", "端数処理")
                    .help("half_up 四捨五入, down 切り捨て, up 切り上げ, half_even, floor, ceil", "half_up 四捨五入、down 切り捨て、up 切り上げ、half_even 偶数丸め、floor、ceil"),
                input("thousands_separator", Text, "Thousands separator", "桁区切り").default_value(json!(",")),
                input("decimal_point", Text, "Decimal point", "小数点").default_value(json!(".")),
                input("prefix", Text, "Prefix", "前に付ける文字").help("e.g. ¥ or $", "例: ¥、$"),
                input("suffix", Text, "Suffix", "後ろに付ける文字").help("e.g. 円", "例: 円"),
                select("negative", &["minus", "triangle", "parentheses"], "minus", "Negative numbers", "負の数")
                    .help("-1,200, ▲1,200 or (1,200)", "-1,200、▲1,200、(1,200)"),
            ],
            vec![text_out(), output("number", Number, "Rounded number", "丸めた数値")],
        ),
    ]
}

fn json_and_list_actions() -> Vec<ActionSpec> {
    use FieldKind::*;
    let list_only = |id: &str,
                     name: (&str, &str),
                     description: (&str, &str),
                     field: Option<bool>,
                     outputs: Vec<OutputSpec>| {
        let mut inputs = vec![list_in()];
        if let Some(required) = field {
            inputs.push(field_in(required));
        }
        action(id, name, description, inputs, outputs)
    };
    vec![
        action(
            "json_parse",
            ("Read JSON", "JSON を読み取る"),
            ("JSON text (up to 1 MiB) as a value to use in later steps.", "JSON のテキスト（1 MiB まで）を後のステップで使える値にします。"),
            vec![text_in()],
            vec![output("value", Json, "Value", "値")],
        ),
        action(
            "json_stringify",
            ("Write JSON", "JSON に変換する"),
            ("A value as JSON text, compact or indented.", "値を JSON のテキストにします（1 行または字下げ）。"),
            vec![
                input("value", Json, "Value", "値").required(),
                flag("pretty", false, "Indent", "字下げする"),
            ],
            vec![text_out()],
        ),
        action(
            "list_filter",
            ("Filter a list", "リストを絞り込む"),
            (
                "The items whose value (or field) meets the condition; comparisons work as in a branch.",
                "値（または項目）が条件を満たす項目だけにします。比較は分岐と同じです。",
            ),
            vec![
                list_in(),
                field_in(false),
                select(
                    "operator",
                    &flowbot_core::model::Operator::ALL.map(|o| o.name()),
                    "equals",
                    "Condition",
                    "条件",
                ),
                input("value", Json, "Compared with", "比較する値"),
            ],
            items_outs(),
        ),
        list_only("list_map", ("Take a field of each item", "各項目の値を取り出す"), ("The field of every record, as a list.", "各レコードの項目をリストにします。"), Some(true), items_outs()),
        list_only("list_unique", ("Remove duplicates", "重複を除く"), ("The first of each value (or field) kept, in order.", "値（または項目）ごとに最初の 1 件を残します。"), Some(false), items_outs()),
        action(
            "list_sort",
            ("Sort a list", "リストを並べ替える"),
            ("Numbers by value, text by character code; empty values last.", "数値は大きさ順、テキストは文字コード順。空の値は最後です。"),
            vec![list_in(), field_in(false), select("order", &["asc", "desc"], "asc", "Order", "順序")],
            items_outs(),
        ),
        list_only(
            "list_first",
            ("First item", "最初の項目"),
            ("The first item; `found` is false for an empty list.", "最初の項目。空のリストでは `found` が false です。"),
            None,
            vec![output("item", Json, "Item", "項目"), output("found", Boolean, "Found", "あり")],
        ),
        list_only(
            "list_last",
            ("Last item", "最後の項目"),
            ("The last item; `found` is false for an empty list.", "最後の項目。空のリストでは `found` が false です。"),
            None,
            vec![output("item", Json, "Item", "項目"), output("found", Boolean, "Found", "あり")],
        ),
        list_only("list_count", ("Count items", "件数を数える"), ("How many items the list has.", "リストの件数。"), None, vec![output("count", Integer, "Count", "件数")]),
        list_only(
            "list_sum",
            ("Sum", "合計する"),
            ("The exact sum of the numbers (or a field); text such as ¥1,200 counts, empty values are skipped.", "数値（または項目）の正確な合計。¥1,200 のようなテキストも数え、空の値は飛ばします。"),
            Some(false),
            vec![output("sum", Number, "Sum", "合計"), output("count", Integer, "Numbers added", "合計した件数")],
        ),
        action(
            "list_join",
            ("Join a field into text", "項目を結合する"),
            ("The items (or a field of each) as one text.", "項目（または各レコードの項目）を 1 つのテキストにつなぎます。"),
            vec![
                list_in(),
                field_in(false),
                input("separator", Text, "Separator", "区切り文字").default_value(json!(",")),
            ],
            vec![text_out()],
        ),
        action(
            "lookup",
            ("Look up a value", "対応表から値を引く"),
            (
                "The value for a key in a table: a mapping {\"13\": \"東京都\"} or a list of rows [{key, value}]; the default when missing.",
                "対応表（{\"13\": \"東京都\"} のような対応、または [{key, value}] の行のリスト）からキーの値を引きます。ないときは既定値。",
            ),
            vec![
                input("table", Json, "Table", "対応表").required(),
                input("key", Text, "Key", "キー").required(),
                input("default", Json, "Default", "見つからないときの値"),
                flag("normalize", false, "Ignore case, width and surrounding spaces", "大文字小文字・全角半角・前後の空白を区別しない"),
                input("key_field", Text, "Key field of a row", "行のキーの項目").default_value(json!("key")),
                input("value_field", Text, "Value field of a row", "行の値の項目")
                    .default_value(json!("value"))
                    .help("Empty: the whole row", "空: 行全体"),
            ],
            vec![
                output("value", Json, "Value", "値"),
                output("found", Boolean, "Found", "見つかった"),
            ],
        ),
    ]
}

fn manifest() -> AppManifest {
    AppManifest {
        id: APP.into(),
        name: Text::new("Data transforms", "データ変換"),
        description: Text::new(
            "Reshape values between steps: text, regular expressions, 全角/半角 and kana, dates with Japanese eras and holidays, numbers, JSON, lists and lookups.",
            "ステップ間で値を加工します。テキスト、正規表現、全角・半角・かな、和暦と祝日に対応した日付、数値、JSON、リスト、対応表。",
        ),
        connection: Vec::new(),
        triggers: Vec::new(),
        actions: [text_actions(), date_actions(), number_actions(), json_and_list_actions()].concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest and core's input reader name the same actions and inputs, so the
    /// validator never lets through an input the action would refuse.
    #[test]
    fn manifest_matches_the_actions() {
        let m = manifest();
        let ids: Vec<&str> = m.actions.iter().map(|a| a.id.as_str()).collect();
        let core: Vec<&str> = flowbot_core::transform::ACTIONS
            .iter()
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(ids, core);
        for a in &m.actions {
            let names: Vec<&str> = a.inputs.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(
                Some(names.as_slice()),
                flowbot_core::transform::inputs_of(&a.id),
                "{}",
                a.id
            );
            assert!(a.idempotent && !a.writes, "{}", a.id);
            assert!(
                !a.name.ja.is_empty() && !a.description.ja.is_empty(),
                "{}",
                a.id
            );
            for f in &a.inputs {
                assert!(
                    !f.label.ja.is_empty() && !f.label.en.is_empty(),
                    "{}.{}",
                    a.id,
                    f.name
                );
                if let Some(d) = &f.default {
                    assert!(f.kind.accepts(d), "{}.{} default", a.id, f.name);
                    if !f.choices.is_empty() {
                        assert!(
                            f.choices.iter().any(|c| Some(c.as_str()) == d.as_str()),
                            "{}.{}",
                            a.id,
                            f.name
                        );
                    }
                }
            }
        }
    }
}
