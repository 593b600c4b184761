//! Data transforms (「データを操作・変換する」): text, kana and width, dates with Japanese
//! eras and public holidays, numbers, JSON, lists and lookups.
//!
//! One implementation serves two callers: the `transform` app's actions (through
//! [`execute`], which reads an action's input) and the template filters of
//! [`crate::template`]. Everything here is a pure function of its arguments — no clock, no
//! I/O — so a step's output depends only on its input and can be replayed.
//!
//! Every input is bounded ([`MAX_TEXT_BYTES`], [`MAX_PATTERN_CHARS`], [`MAX_ITEMS`]): the
//! values come from webhooks and users' patterns, and a step must not be able to take a
//! worker's memory. Errors are plain English sentences that name the bad value and say what
//! to write instead.

mod actions;
pub mod date;
mod filters;
pub mod holidays;
pub mod json;
pub mod kana;
pub mod list;
pub mod number;
pub mod text;

pub use actions::{execute, inputs_of, ACTIONS};
pub(crate) use filters::register as register_filters;

/// The longest text a transform reads or writes (1 MiB).
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// The longest regular expression a user may give, in characters.
pub const MAX_PATTERN_CHARS: usize = 1000;

/// The most items a list (or a lookup table) may hold, in and out.
pub const MAX_ITEMS: usize = 10_000;

/// Refuses text past [`MAX_TEXT_BYTES`]; `what` names it in the error.
pub fn check_text(text: &str, what: &str) -> Result<(), String> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "{what} is {} bytes long; at most {MAX_TEXT_BYTES} bytes (1 MiB) can be transformed",
            text.len()
        ));
    }
    Ok(())
}

/// Refuses lists past [`MAX_ITEMS`].
pub fn check_items(len: usize, what: &str) -> Result<(), String> {
    if len > MAX_ITEMS {
        return Err(format!(
            "{what} has {len} items; at most {MAX_ITEMS} can be transformed in one step (split the list first)"
        ));
    }
    Ok(())
}

/// A scalar as text, the way a user reads it: strings as they are, numbers and booleans
/// as written in JSON, null as empty. Lists and objects have no text form here.
pub fn scalar_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// A short, single-line rendering of a value for error messages.
pub(crate) fn shown(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    shorten(&text)
}

/// Text cut to 60 characters for an error message.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        return text.to_string();
    }
    let mut out: String = text.chars().take(MAX).collect();
    out.push('…');
    out
}
