//! The validator's problems in the operator's language. The validator speaks English with
//! YAML names (the CLI and the YAML view show it with FILE:LINE:COL); the forms show each
//! problem next to its field, so it is said again there in Japanese. A message no pattern
//! knows is shown as it is: English is better than nothing.

use std::borrow::Cow;

/// `*` matches any text (the shortest that lets the rest match); `{1}`, `{2}`… in the
/// Japanese take the matched texts in order. The first pattern that matches wins, so the
/// longer of two similar patterns comes first.
const PATTERNS: &[(&str, &str)] = &[
    ("missing required * `*`", "必須の{1}「{2}」が入力されていません"),
    ("`*` must not be empty", "「{1}」を空にはできません"),
    ("duplicate step id `*` (first used on line *); step ids must be unique in a flow", "オペレーション ID「{1}」はすでに使われています（{2} 行目）。フローの中で重ならない ID にしてください"),
    ("step id `*` is reserved; choose another", "オペレーション ID「{1}」は予約語です。別の ID にしてください"),
    ("flow id `*` may contain only letters, digits, `-` and `_`", "フロー ID「{1}」に使えるのは英数字と - _ だけです"),
    ("step `*` refers to unknown value `*`*", "オペレーション「{1}」が、存在しない値「{2}」を参照しています{3}"),
    ("step `*` refers to its own output, which does not exist yet", "オペレーション「{1}」が自分自身の結果を参照しています（まだ存在しません）"),
    ("step `*` refers to step `*`, which runs later", "オペレーション「{1}」が、後で実行される「{2}」の値を参照しています。順番を入れ替えてください"),
    ("step `*` refers to step `*`, which runs inside loop `*`; after the loop use `*`", "オペレーション「{1}」が、繰り返し「{3}」の中の「{2}」を参照しています。繰り返しの後では「{4}」を使ってください"),
    ("step `*` refers to step `*`, which runs only in the `*` lane of `*`, so it may not have run", "オペレーション「{1}」が、「{4}」の「{3}」側だけで実行される「{2}」を参照しています。実行されていない場合があります"),
    ("step `*` cannot use `*` here", "オペレーション「{1}」ではここで「{2}」を使えません"),
    ("app `*` needs a connection*", "アプリ「{1}」には連携アカウントが必要です"),
    ("app `*` takes no connection", "アプリ「{1}」に連携アカウントは不要です"),
    ("unknown app `*`*", "「{1}」というアプリはありません{2}"),
    ("unknown action `*` for app `*`*", "アプリ「{2}」に「{1}」というアクションはありません{3}"),
    ("unknown event `*` for app `*`*", "アプリ「{2}」に「{1}」というイベントはありません{3}"),
    ("say which `event` of `*` starts this flow (one of: *)", "「{1}」のどのイベントでフローを起動するか選んでください（{2}）"),
    ("unknown connection `*`: declare it under `connections:`*", "連携「{1}」が定義されていません{2}"),
    ("connection `*` is for app `*`, but this uses app `*`", "連携「{1}」はアプリ「{2}」用ですが、ここではアプリ「{3}」を使っています"),
    ("missing `trigger`", "トリガーが設定されていません"),
    ("missing `steps`", "オペレーションがありません"),
    ("a branch needs an `if` condition", "分岐には条件が必要です"),
    ("a switch case needs an `if` condition", "分岐の各条件には条件式が必要です"),
    ("a condition needs `value`: what to test", "条件には比較する値が必要です"),
    ("operator `*` needs `to`: what to compare with", "演算子「{1}」には比較する値が必要です"),
    ("operator `*` takes no `to`", "演算子「{1}」に比較する値は不要です"),
    ("unknown operator `*`*", "「{1}」という演算子はありません{2}"),
    ("a loop needs `items`: a template giving a list", "繰り返しには、リストになる値が必要です"),
    ("two cases are named `*`", "条件名「{1}」が重複しています"),
    ("`*` is not a valid regular expression: *", "「{1}」は正しい正規表現ではありません: {2}"),
    ("`max_iterations` must be a whole number of at least 1", "最大件数は 1 以上の整数にしてください"),
    ("value name `*` must be a simple name (letters, digits, `_`)", "値の名前「{1}」には英数字と _ だけが使えます"),
    ("nobody is asked: name `members`, `roles`, `emails`, or `starter: true`", "依頼先がありません。メンバー、ロール、メールアドレス、または実行を開始したメンバーを指定してください"),
    ("unknown role `*`*", "「{1}」というロールはありません{2}"),
    ("`send_back_to` must name an earlier step that always runs before `*`; `*` is not one", "差し戻し先には「{1}」より前に必ず実行されるステップを指定してください（「{2}」は指定できません）"),
    ("`*` and `*` are in different loops: a send-back stays within one loop's item", "「{1}」と「{2}」は別の繰り返しの中にあります。差し戻しは同じ繰り返しの項目の中だけです"),
    ("a task needs `fields`: *", "対応依頼には入力フォームの項目が必要です"),
    ("a deadline needs `after`: e.g. `after: 2d`", "期限には期間が必要です（例: 2d）"),
    ("`then: escalate` needs `escalate_to`: who is asked when nobody answered", "期限後の追加依頼先を指定してください"),
    ("what happens at the deadline is *", "期限を過ぎたときの動作は {1} のいずれかです"),
    ("`rule` is `any` (the first approval decides), `all`, or a number of approvals from 1 to 100", "承認の条件は any（誰か1人）、all（全員）、または 1〜100 の人数です"),
    ("* needs `to`: who is asked (`members`, `roles`, `emails` or `starter: true`)", "依頼先（to）を指定してください"),
    ("a form needs `fields`: *", "フォームには項目が必要です"),
    // The general forms last: they would also take the specific ones above.
    ("unknown * `*`, did you mean `*`?", "「{2}」という{1}はありません。「{3}」のことですか？"),
    ("unknown * `*`", "「{2}」という{1}はありません"),
];

/// Words the English messages put into the patterns' holes.
const WORDS: &[(&str, &str)] = &[
    ("input", "入力項目"),
    ("trigger option", "トリガーの設定"),
    ("option", "設定"),
    ("key", "項目"),
    ("app", "アプリ"),
    ("action", "アクション"),
    ("event", "イベント"),
    ("role", "ロール"),
];

/// Match `text` against `pattern`; the texts the `*`s took, in order.
fn captures<'a>(pattern: &str, text: &'a str) -> Option<Vec<&'a str>> {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let mut rest = text.strip_prefix(first)?;
    let parts: Vec<&str> = parts.collect();
    let mut out = Vec::with_capacity(parts.len());
    for (i, lit) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        if last {
            // The final literal ends the text.
            let cut = rest.len().checked_sub(lit.len())?;
            if !rest.ends_with(lit) {
                return None;
            }
            out.push(&rest[..cut]);
            rest = "";
        } else if lit.is_empty() {
            out.push("");
        } else {
            let at = rest.find(lit)?;
            out.push(&rest[..at]);
            rest = &rest[at + lit.len()..];
        }
    }
    rest.is_empty().then_some(out)
}

/// A hint the English adds (`, did you mean `x`?`, `: add `connection: y``) in Japanese.
fn tail(t: &str) -> String {
    if let Some(c) = captures(", did you mean `*`?", t) {
        return format!("。「{}」のことですか？", c[0]);
    }
    if let Some(c) = captures(" (`*` is not an obtained value)", t) {
        return format!("（「{}」は取得した値ではありません）", c[0]);
    }
    String::new()
}

/// The message in `lang`: Japanese where a pattern knows it, else as it came.
pub fn localize<'a>(message: &'a str, lang: &str) -> Cow<'a, str> {
    if lang != "ja" {
        return Cow::Borrowed(message);
    }
    for (pattern, ja) in PATTERNS {
        let Some(caps) = captures(pattern, message) else {
            continue;
        };
        let mut out = (*ja).to_string();
        for (i, c) in caps.iter().enumerate() {
            let word = WORDS.iter().find(|(en, _)| en == c).map_or(*c, |(_, j)| *j);
            let shown = if word.starts_with(", ") || word.starts_with(" (") {
                tail(word)
            } else {
                word.to_string()
            };
            out = out.replace(&format!("{{{}}}", i + 1), &shown);
        }
        return Cow::Owned(out);
    }
    Cow::Borrowed(message)
}

#[cfg(test)]
mod tests {
    use super::localize;

    #[test]
    fn the_editor_s_common_problems_read_in_japanese() {
        assert_eq!(
            localize("missing required input `customer_id`", "ja"),
            "必須の入力項目「customer_id」が入力されていません"
        );
        assert_eq!(
            localize("`id` must not be empty", "ja"),
            "「id」を空にはできません"
        );
        assert_eq!(
            localize("step `create` refers to unknown value `custmer`, did you mean `customer`?", "ja"),
            "オペレーション「create」が、存在しない値「custmer」を参照しています。「customer」のことですか？"
        );
        assert_eq!(
            localize("step `a` refers to step `b`, which runs later", "ja"),
            "オペレーション「a」が、後で実行される「b」の値を参照しています。順番を入れ替えてください"
        );
        // Unknown messages and English stay as they are.
        assert_eq!(localize("something new", "ja"), "something new");
        assert_eq!(
            localize("missing required input `x`", "en"),
            "missing required input `x`"
        );
    }
}
