//! Width (全角/半角) and kana (ひらがな/カタカナ) conversions, written by hand from the
//! Unicode blocks they concern, and NFKC.
//!
//! These are exact character mappings, unlike NFKC, which also rewrites ①, ㈱, ㌔ and the
//! like: a shop that only wants `ＡＢＣ１２３` as `ABC123` keeps its `①`.

use unicode_normalization::UnicodeNormalization;

/// What [`normalize`] does to a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Full-width ASCII letters, digits and symbols and the ideographic space to their
    /// half-width forms.
    ZenkakuToHankaku,
    /// The reverse, and half-width katakana to full-width (everything to 全角).
    HankakuToZenkaku,
    HiraganaToKatakana,
    KatakanaToHiragana,
    /// Half-width katakana (ｶﾞ) to full-width (ガ), joining the voiced marks.
    HalfwidthKanaToFullwidth,
    /// Unicode compatibility composition: the catch-all cleaner.
    Nfkc,
}

impl Mode {
    pub const NAMES: &'static [&'static str] = &[
        "zenkaku_to_hankaku",
        "hankaku_to_zenkaku",
        "hiragana_to_katakana",
        "katakana_to_hiragana",
        "halfwidth_kana_to_fullwidth",
        "nfkc",
    ];

    pub fn parse(name: &str) -> Result<Mode, String> {
        Ok(match name.trim() {
            "zenkaku_to_hankaku" => Mode::ZenkakuToHankaku,
            "hankaku_to_zenkaku" => Mode::HankakuToZenkaku,
            "hiragana_to_katakana" => Mode::HiraganaToKatakana,
            "katakana_to_hiragana" => Mode::KatakanaToHiragana,
            "halfwidth_kana_to_fullwidth" => Mode::HalfwidthKanaToFullwidth,
            "nfkc" => Mode::Nfkc,
            other => {
                return Err(format!(
                    "unknown mode `{other}`: use one of {}",
                    Mode::NAMES.join(", ")
                ))
            }
        })
    }
}

pub fn normalize(text: &str, mode: Mode) -> String {
    match mode {
        Mode::ZenkakuToHankaku => zenkaku_to_hankaku(text),
        Mode::HankakuToZenkaku => hankaku_to_zenkaku(text),
        Mode::HiraganaToKatakana => hiragana_to_katakana(text),
        Mode::KatakanaToHiragana => katakana_to_hiragana(text),
        Mode::HalfwidthKanaToFullwidth => halfwidth_kana_to_fullwidth(text),
        Mode::Nfkc => nfkc(text),
    }
}

const IDEOGRAPHIC_SPACE: char = '\u{3000}';

/// `ＡＢＣ１２３　！` → `ABC123 !`: the Fullwidth Forms block (U+FF01–FF5E) maps onto ASCII
/// at a fixed distance.
pub fn zenkaku_to_hankaku(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            IDEOGRAPHIC_SPACE => ' ',
            c => c,
        })
        .collect()
}

/// `ABC123 !` → `ＡＢＣ１２３　！`, and half-width katakana to full-width, so the result is
/// all 全角 as shipping labels and some registries require.
pub fn hankaku_to_zenkaku(text: &str) -> String {
    halfwidth_kana_to_fullwidth(text)
        .chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 + 0xFEE0).unwrap_or(c),
            ' ' => IDEOGRAPHIC_SPACE,
            c => c,
        })
        .collect()
}

/// ぁ–ゖ and ゝゞ sit 0x60 below their katakana.
pub fn hiragana_to_katakana(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{3041}'..='\u{3096}' | '\u{309D}'..='\u{309E}' => {
                char::from_u32(c as u32 + 0x60).unwrap_or(c)
            }
            c => c,
        })
        .collect()
}

/// The reverse of [`hiragana_to_katakana`]; ヷヸヹヺ, ー and half-width kana have no
/// hiragana of their own and stay.
pub fn katakana_to_hiragana(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{30A1}'..='\u{30F6}' | '\u{30FD}'..='\u{30FE}' => {
                char::from_u32(c as u32 - 0x60).unwrap_or(c)
            }
            c => c,
        })
        .collect()
}

/// Half-width katakana U+FF61–FF9F in code order, as full-width characters. The two
/// voiced marks at the end become the spacing marks ゛゜ only when they follow nothing
/// they can join.
const HALFWIDTH_KANA: [char; 63] = [
    '。', '「', '」', '、', '・', 'ヲ', 'ァ', 'ィ', 'ゥ', 'ェ', 'ォ', 'ャ', 'ュ', 'ョ', 'ッ', 'ー',
    'ア', 'イ', 'ウ', 'エ', 'オ', 'カ', 'キ', 'ク', 'ケ', 'コ', 'サ', 'シ', 'ス', 'セ', 'ソ', 'タ',
    'チ', 'ツ', 'テ', 'ト', 'ナ', 'ニ', 'ヌ', 'ネ', 'ノ', 'ハ', 'ヒ', 'フ', 'ヘ', 'ホ', 'マ', 'ミ',
    'ム', 'メ', 'モ', 'ヤ', 'ユ', 'ヨ', 'ラ', 'リ', 'ル', 'レ', 'ロ', 'ワ', 'ン', '゛', '゜',
];

/// The voiced mark `c` is, as the half-width, the spacing (゛) or the combining form:
/// Some(true) for the dakuten, Some(false) for the handakuten.
fn voiced_mark(c: char) -> Option<bool> {
    match c {
        '\u{FF9E}' | '\u{309B}' | '\u{3099}' => Some(true),
        '\u{FF9F}' | '\u{309C}' | '\u{309A}' => Some(false),
        _ => None,
    }
}

/// The full-width kana a voiced mark turns `base` into (ｶ+ﾞ → ガ, ﾊ+ﾟ → パ, ｳ+ﾞ → ヴ).
fn join_mark(base: char, voiced: bool) -> Option<char> {
    let code = base as u32;
    match base {
        // カ–ト: each voiced kana follows its plain one, but the small ッ breaks the
        // alternation before ツ, so the plain kana of this run are listed.
        'カ' | 'キ' | 'ク' | 'ケ' | 'コ' | 'サ' | 'シ' | 'ス' | 'セ' | 'ソ' | 'タ' | 'チ'
        | 'ツ' | 'テ' | 'ト'
            if voiced =>
        {
            char::from_u32(code + 1)
        }
        'ハ' | 'ヒ' | 'フ' | 'ヘ' | 'ホ' => char::from_u32(code + if voiced { 1 } else { 2 }),
        'ウ' if voiced => Some('ヴ'),
        'ワ' if voiced => Some('ヷ'),
        'ヲ' if voiced => Some('ヺ'),
        _ => None,
    }
}

/// `ｶﾞｷﾞｸﾞ ﾊﾟﾝ` → `ガギグ パン`. A katakana followed by a separate voiced mark is joined
/// too (`タ゛` → `ダ`): ISO-2022-JP has no half-width kana, so mail programs send ﾀﾞ as
/// タ゛. Other characters are untouched.
pub fn halfwidth_kana_to_fullwidth(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let full = if ('\u{FF61}'..='\u{FF9F}').contains(&c) {
            HALFWIDTH_KANA[(c as u32 - 0xFF61) as usize]
        } else {
            c
        };
        let joined = chars
            .peek()
            .and_then(|&m| voiced_mark(m))
            .and_then(|voiced| join_mark(full, voiced));
        match joined {
            Some(j) => {
                chars.next();
                out.push(j);
            }
            None => out.push(full),
        }
    }
    out
}

pub fn nfkc(text: &str) -> String {
    text.nfkc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_convert_japanese_text() {
        use Mode::*;
        let cases = [
            (ZenkakuToHankaku, "ＡＢＣ１２３　テスト", "ABC123 テスト"),
            (
                ZenkakuToHankaku,
                "ｔｅｌ：０３－１２３４－５６７８",
                "tel:03-1234-5678",
            ),
            (ZenkakuToHankaku, "①ｶﾞ〜ー", "①ｶﾞ〜ー"),
            (HankakuToZenkaku, "ABC123 テスト", "ＡＢＣ１２３　テスト"),
            (HankakuToZenkaku, "ｶﾞｽ代 100円", "ガス代　１００円"),
            (HankakuToZenkaku, "a~b", "ａ～ｂ"),
            (HiraganaToKatakana, "ひらがな", "ヒラガナ"),
            (
                HiraganaToKatakana,
                "ゔぁいおりん、ゝゞ漢字ー",
                "ヴァイオリン、ヽヾ漢字ー",
            ),
            (KatakanaToHiragana, "ヒラガナ", "ひらがな"),
            (KatakanaToHiragana, "ヴァ・ヷｶ", "ゔぁ・ヷｶ"),
            (HalfwidthKanaToFullwidth, "ｶﾞｷﾞｸﾞ", "ガギグ"),
            (
                HalfwidthKanaToFullwidth,
                "ﾊﾟﾋﾟﾌﾟﾍﾟﾎﾟ ﾊﾞﾋﾞﾌﾞﾍﾞﾎﾞ",
                "パピプペポ バビブベボ",
            ),
            (HalfwidthKanaToFullwidth, "ｳﾞｧｲｵﾘﾝ", "ヴァイオリン"),
            // As ISO-2022-JP mail carries ﾔﾏﾀﾞ, and with combining marks.
            (HalfwidthKanaToFullwidth, "ヤマタ゛ ハ゜ン", "ヤマダ パン"),
            (HalfwidthKanaToFullwidth, "カ\u{3099}ヘ\u{309A}", "ガペ"),
            (HalfwidthKanaToFullwidth, "ﾂﾞﾄﾞﾃﾞ", "ヅドデ"),
            (HalfwidthKanaToFullwidth, "ｱﾞｲﾟ", "ア゛イ゜"),
            (HalfwidthKanaToFullwidth, "｢ﾃｽﾄ｣｡､･ｰ", "「テスト」。、・ー"),
            (HalfwidthKanaToFullwidth, "ﾜﾞｦﾞﾝ", "ヷヺン"),
            (HalfwidthKanaToFullwidth, "ABC", "ABC"),
            (Nfkc, "ＡＢＣ１２３　ｶﾞ①㈱", "ABC123 ガ1(株)"),
        ];
        for (mode, input, want) in cases {
            assert_eq!(normalize(input, mode), want, "{mode:?} {input}");
        }
    }

    #[test]
    fn width_conversions_round_trip_on_ascii() {
        let ascii: String = (0x20u8..0x7F).map(char::from).collect();
        assert_eq!(zenkaku_to_hankaku(&hankaku_to_zenkaku(&ascii)), ascii);
    }

    #[test]
    fn unknown_modes_list_the_known_ones() {
        let e = Mode::parse("to_zenkaku").unwrap_err();
        assert!(
            e.contains("`to_zenkaku`") && e.contains("hankaku_to_zenkaku"),
            "{e}"
        );
        assert_eq!(Mode::parse(" nfkc ").unwrap(), Mode::Nfkc);
    }
}
