//! The SOQL subset the simulator understands:
//!
//! ```text
//! SELECT field [, field …] FROM Object
//!   [WHERE field (= | !=) literal [AND field (= | !=) literal …]]
//!   [ORDER BY field [ASC | DESC]] [LIMIT n]
//! ```
//!
//! Literals are single-quoted strings with Salesforce's backslash escapes, numbers, `true`,
//! `false` and `null`. Anything else is `MALFORMED_QUERY`, as the real API would answer for
//! what it cannot parse.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub fields: Vec<String>,
    pub object: String,
    pub conditions: Vec<Condition>,
    pub order_by: Option<(String, bool)>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: String,
    pub negated: bool,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Comma,
    Eq,
    Ne,
}

pub fn parse(q: &str) -> Result<Query, String> {
    let toks = lex(q)?;
    let mut p = Parser { toks, pos: 0 };
    p.keyword("SELECT")?;
    let mut fields = vec![p.ident()?];
    while p.eat(&Tok::Comma) {
        fields.push(p.ident()?);
    }
    p.keyword("FROM")?;
    let object = p.ident()?;
    let mut conditions = Vec::new();
    if p.eat_keyword("WHERE") {
        loop {
            let field = p.ident()?;
            let negated = match p.next() {
                Some(Tok::Eq) => false,
                Some(Tok::Ne) => true,
                other => {
                    return Err(format!(
                        "unexpected token {other:?} after {field}: expected = or !="
                    ))
                }
            };
            let value = match p.next() {
                Some(Tok::Str(s)) => Value::String(s),
                Some(Tok::Num(n)) => {
                    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
                }
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Value::Null,
                other => return Err(format!("unexpected token {other:?}: expected a literal")),
            };
            conditions.push(Condition {
                field,
                negated,
                value,
            });
            if !p.eat_keyword("AND") {
                break;
            }
        }
    }
    let mut order_by = None;
    if p.eat_keyword("ORDER") {
        p.keyword("BY")?;
        let f = p.ident()?;
        let desc = if p.eat_keyword("DESC") {
            true
        } else {
            p.eat_keyword("ASC");
            false
        };
        order_by = Some((f, desc));
    }
    let mut limit = None;
    if p.eat_keyword("LIMIT") {
        match p.next() {
            Some(Tok::Num(n)) if n >= 0.0 && n.fract() == 0.0 => limit = Some(n as usize),
            other => {
                return Err(format!(
                    "unexpected token {other:?}: expected a whole number after LIMIT"
                ))
            }
        }
    }
    if let Some(t) = p.next() {
        return Err(format!("unexpected token {t:?}"));
    }
    Ok(Query {
        fields,
        object,
        conditions,
        order_by,
        limit,
    })
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.toks.get(self.pos) == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_keyword(&mut self, k: &str) -> bool {
        match self.toks.get(self.pos) {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn keyword(&mut self, k: &str) -> Result<(), String> {
        if self.eat_keyword(k) {
            Ok(())
        } else {
            Err(format!("expected {k} at token {}", self.pos + 1))
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Word(w))
                if !["SELECT", "FROM", "WHERE", "AND", "ORDER", "BY", "LIMIT"]
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(&w)) =>
            {
                Ok(w)
            }
            other => Err(format!("unexpected token {other:?}: expected a name")),
        }
    }
}

fn lex(q: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' => {
                chars.next();
                out.push(Tok::Comma);
            }
            '=' => {
                chars.next();
                out.push(Tok::Eq);
            }
            '!' => {
                chars.next();
                if chars.next() != Some('=') {
                    return Err("unexpected `!`".into());
                }
                out.push(Tok::Ne);
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string literal".into()),
                        Some('\'') => break,
                        Some('\\') => match chars.next() {
                            Some('\'') => s.push('\''),
                            Some('"') => s.push('"'),
                            Some('\\') => s.push('\\'),
                            Some('n') => s.push('\n'),
                            Some('r') => s.push('\r'),
                            Some('t') => s.push('\t'),
                            Some('b') => s.push('\u{8}'),
                            Some('f') => s.push('\u{c}'),
                            other => {
                                return Err(format!(
                                    "invalid escape sequence \\{}",
                                    other.unwrap_or(' ')
                                ))
                            }
                        },
                        Some(c) => s.push(c),
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_digit() || c == '-' || c == '.' {
                        s.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Num(s.parse().map_err(|_| format!("bad number {s}"))?));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                        s.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Word(s));
            }
            other => return Err(format!("unexpected character `{other}`")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_subset() {
        let q = parse("SELECT Id, Name FROM Account WHERE Mail__c = 'a@b' AND Name != null ORDER BY Name DESC LIMIT 5").unwrap();
        assert_eq!(q.fields, ["Id", "Name"]);
        assert_eq!(q.object, "Account");
        assert_eq!(q.conditions.len(), 2);
        assert_eq!(q.conditions[0].value, json!("a@b"));
        assert!(q.conditions[1].negated);
        assert_eq!(q.order_by, Some(("Name".into(), true)));
        assert_eq!(q.limit, Some(5));
    }

    #[test]
    fn escapes_keep_values_literal() {
        let q = parse(r"SELECT Id FROM Account WHERE Name = 'x\' OR Name != \''").unwrap();
        assert_eq!(q.conditions.len(), 1);
        assert_eq!(q.conditions[0].value, json!("x' OR Name != '"));
        let q = parse(r"SELECT Id FROM Account WHERE Name = 'a\\b\nc\t山田'").unwrap();
        assert_eq!(q.conditions[0].value, json!("a\\b\nc\t山田"));
    }

    #[test]
    fn anything_else_is_malformed() {
        for bad in [
            "SELECT FROM Account",
            "SELECT Id FROM Account WHERE Name = 'x' OR Name = 'y'",
            "SELECT Id FROM Account WHERE Name = 'unterminated",
            "SELECT Id FROM Account WHERE Name LIKE 'x%'",
            "SELECT Id FROM Account WHERE Name = 'x' OR Name != ''",
            r"SELECT Id FROM Account WHERE Name = '\q'",
            "DELETE FROM Account",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
