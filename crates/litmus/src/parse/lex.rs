//! The lexer (tokens with their line and column, comments blanked) and the
//! token cursor the parser reads through (`P`: expect, eat, errors at the
//! current position).

use super::*;

/// A token kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Tok {
    Ident(String),
    Int(u64),
    Str(String),
    Punct(&'static str),
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub(super) tok: Tok,
    line: usize,
    col: usize,
}

const PUNCTS: &[&str] = &[
    "/\\", "\\/", "=>", "<>", "{", "}", "[", "]", "(", ")", ",", ";", ":", "=", "|", "#", "~", "+",
    "-", "*", "!", "&",
];

/// Splits `text` (starting at `line`, `col`) into tokens.
pub(super) fn lex(
    file: &str,
    text: &str,
    line0: usize,
    col0: usize,
) -> Result<Vec<Token>, LitmusError> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut line, mut col) = (line0, col0);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let (l, co) = (line, col);
        if c == '\n' {
            line += 1;
            col = 1;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            col += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == '%' {
            let start = i;
            i += 1;
            while i < chars.len() {
                let d = chars[i];
                let dash_word = d == '-'
                    && i + 1 < chars.len()
                    && chars[i + 1].is_ascii_alphabetic()
                    && i > start;
                if d.is_ascii_alphanumeric() || d == '_' || d == '.' || dash_word {
                    i += 1;
                } else {
                    break;
                }
            }
            let s: String = chars[start..i].iter().collect();
            col += i - start;
            out.push(Token {
                tok: Tok::Ident(s),
                line: l,
                col: co,
            });
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric()) {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            col += i - start;
            let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                u64::from_str_radix(h, 16)
            } else {
                s.parse::<u64>()
            };
            let v = v.map_err(|_| LitmusError::Syntax {
                file: file.into(),
                line: l,
                col: co,
                msg: format!("bad number `{s}`"),
            })?;
            out.push(Token {
                tok: Tok::Int(v),
                line: l,
                col: co,
            });
            continue;
        }
        if c == '"' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i] != '"' && chars[i] != '\n' {
                i += 1;
            }
            if i >= chars.len() || chars[i] != '"' {
                return Err(LitmusError::Syntax {
                    file: file.into(),
                    line: l,
                    col: co,
                    msg: "unterminated string".into(),
                });
            }
            let s: String = chars[start..i].iter().collect();
            i += 1;
            col += s.chars().count() + 2;
            out.push(Token {
                tok: Tok::Str(s),
                line: l,
                col: co,
            });
            continue;
        }
        let rest: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
            i += p.len();
            col += p.len();
            out.push(Token {
                tok: Tok::Punct(p),
                line: l,
                col: co,
            });
            continue;
        }
        return Err(LitmusError::Syntax {
            file: file.into(),
            line: l,
            col: co,
            msg: format!("unexpected character `{c}`"),
        });
    }
    Ok(out)
}

/// Replaces OCaml-style comments `(* ... *)` by spaces, keeping newlines so
/// that positions stay true.
pub(super) fn blank_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b: Vec<char> = text.chars().collect();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        if b[i] == '(' && b.get(i + 1) == Some(&'*') {
            depth += 1;
            out.push_str("  ");
            i += 2;
        } else if depth > 0 && b[i] == '*' && b.get(i + 1) == Some(&')') {
            depth -= 1;
            out.push_str("  ");
            i += 2;
        } else if depth > 0 {
            out.push(if b[i] == '\n' { '\n' } else { ' ' });
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// A cursor over tokens with the file name for errors.
pub(super) struct P<'a> {
    pub(super) file: &'a str,
    pub(super) toks: Vec<Token>,
    pub(super) pos: usize,
    pub(super) end: (usize, usize),
}

impl P<'_> {
    pub(super) fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn at(&self) -> (usize, usize) {
        self.toks
            .get(self.pos)
            .map_or(self.end, |t| (t.line, t.col))
    }

    pub(super) fn err(&self, msg: impl Into<String>) -> LitmusError {
        let (line, col) = self.at();
        LitmusError::Syntax {
            file: self.file.into(),
            line,
            col,
            msg: msg.into(),
        }
    }

    pub(super) fn unsupported(&self, what: impl Into<String>) -> LitmusError {
        let (line, col) = self.at();
        LitmusError::Unsupported {
            file: self.file.into(),
            line,
            col,
            what: what.into(),
        }
    }

    pub(super) fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.tok.clone());
        self.pos += 1;
        t
    }

    pub(super) fn is(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }

    pub(super) fn eat(&mut self, p: &str) -> bool {
        if self.is(p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn expect(&mut self, p: &str) -> Result<(), LitmusError> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(self.err(format!("expected `{p}`, found {}", self.describe())))
        }
    }

    pub(super) fn describe(&self) -> String {
        match self.peek() {
            None => "end of input".into(),
            Some(Tok::Ident(s)) => format!("`{s}`"),
            Some(Tok::Int(n)) => format!("`{n}`"),
            Some(Tok::Str(s)) => format!("\"{s}\""),
            Some(Tok::Punct(p)) => format!("`{p}`"),
        }
    }

    pub(super) fn ident(&mut self) -> Result<String, LitmusError> {
        match self.peek() {
            Some(Tok::Ident(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.err(format!("expected a name, found {}", self.describe()))),
        }
    }

    pub(super) fn int(&mut self) -> Result<u64, LitmusError> {
        let neg = self.eat("-");
        match self.peek() {
            Some(Tok::Int(n)) => {
                let n = *n;
                self.pos += 1;
                Ok(if neg { n.wrapping_neg() } else { n })
            }
            _ => Err(self.err(format!("expected a number, found {}", self.describe()))),
        }
    }

    pub(super) fn done(&self) -> bool {
        self.pos >= self.toks.len()
    }
}
