//! The lexer: words, punctuation and line ends, each with its byte span.
//!
//! A word is a run of ASCII letters, digits, `_` and `.`, and of `-`
//! followed by one of those (so `2-noabort`, `pfn-walker`,
//! `R_WHZWS.oa-writable` and `0x1000` are words, and `0x1000->` is a
//! word and an arrow). `#` starts a comment to the end of the line.

use std::ops::Range;

use crate::error::SeqError;

/// A token's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tok<'a> {
    /// A word (names, keywords, numbers).
    Word(&'a str),
    /// Punctuation: `->`, `=>`, `[`, `]`, `(`, `)`, `+`, `*`, `=`, `,`.
    Punct(&'static str),
    /// The end of a line.
    Newline,
    /// The end of the file.
    Eof,
}

impl Tok<'_> {
    /// Describes the token for "found ..." in errors.
    pub fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Newline => "the end of the line".into(),
            Tok::Eof => "the end of the file".into(),
        }
    }
}

/// A token and its byte span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    /// The kind.
    pub tok: Tok<'a>,
    /// The byte range.
    pub span: Range<usize>,
}

const PUNCT: [&str; 10] = ["->", "=>", "[", "]", "(", ")", "+", "*", "=", ","];

fn word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
}

/// Splits `src` into tokens; the last is [`Tok::Eof`].
///
/// # Errors
///
/// Returns a [`SeqError`] at the first character that starts no token.
pub fn lex<'a>(file: &str, src: &'a str) -> Result<Vec<Token<'a>>, SeqError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            out.push(Token {
                tok: Tok::Newline,
                span: i..i + 1,
            });
            i += 1;
        } else if c == b' ' || c == b'\t' || c == b'\r' {
            i += 1;
        } else if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if word_char(c) {
            let s = i;
            while i < b.len()
                && (word_char(b[i]) || (b[i] == b'-' && i + 1 < b.len() && word_char(b[i + 1])))
            {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Word(&src[s..i]),
                span: s..i,
            });
        } else if let Some(p) = PUNCT.iter().find(|p| b[i..].starts_with(p.as_bytes())) {
            out.push(Token {
                tok: Tok::Punct(p),
                span: i..i + p.len(),
            });
            i += p.len();
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(SeqError::at(
                file,
                src,
                i..i + ch.len_utf8(),
                format!(
                    "unexpected character {ch:?}: expected a word, a number, `->`, `=>`, `[`, `]`, `(`, `)`, `+`, `*`, `=`, `,` or `#` (a comment)"
                ),
            ));
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        span: b.len()..b.len(),
    });
    Ok(out)
}
