//! The recursive-descent parser over the lexer's tokens.
//!
//! This file holds the parser's state and token-level helpers, the header
//! loop that reads lines up to the first case, and what kernel and machine
//! files share (`case` lines, `cpuN` prefixes). The parts: `header.rs`
//! (the header lines and `expect`), `expr.rs` (expressions and operands),
//! `kernel.rs` (a kernel file's cases and steps), `machine.rs` (a machine
//! file's `map`/`fill` lines, cases and operations).

mod expr;
mod header;
mod kernel;
mod machine;

use header::{config, initial_line, kernel_line, limits_line, workloads_line};
use kernel::kernel_file;
use machine::{fill_line, machine_file, map_line};

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use explore::{Direction, Limits, WorkloadKind};
use mm::Protocol;
use vmsa::{BbmLevel, Granule};

use crate::SeqFile;
use crate::ast::{Concurrent, Expr, Initial};
use crate::error::SeqError;
use crate::lex::{Tok, Token, lex};
use crate::machine::Init;

const HEADER: &str = "config, kernel, workloads, limits, initial, let, map, fill or case";
const KERNEL_OPS: &str = "a step: store, cas, dsb, isb, tlbi, alloc, free, copy, fill-table, reset, pause, resume, stop-machine, start-machine, synchronize-rcu or str";
const MACHINE_OPS: &str = "an operation: store, cas, dsb, isb, tlbi, table, copy, write, free";

type R<T> = Result<T, SeqError>;
/// An `expect` line: its levels, rule codes and explorer verdict.
type ExpectParts = (Option<Vec<BbmLevel>>, BTreeSet<String>, Option<Concurrent>);
/// A `case` line: name, line, span and its own levels.
type CaseHead = (
    String,
    usize,
    Range<usize>,
    Option<(Vec<BbmLevel>, Range<usize>)>,
);

struct Parser<'s> {
    file: &'s str,
    src: &'s str,
    toks: Vec<Token<'s>>,
    pos: usize,
    /// `let NAME = EXPR` definitions.
    lets: BTreeMap<String, Expr>,
    /// `alloc rN as NAME` names of the current case.
    names: BTreeMap<String, u16>,
}

/// Words a `let` or `as` name may not be.
fn reserved(w: &str) -> bool {
    number(w).is_some()
        || matches!(
            w,
            "head"
                | "next"
                | "vmemmap"
                | "pfn"
                | "page-of"
                | "same"
                | "shared-tail"
                | "as"
                | "from"
                | "invalid"
                | "page"
                | "block"
                | "table"
                | "rw"
                | "ro"
                | "noaf"
                | "nt"
        )
        || (w.starts_with('r') && w.len() > 1 && w[1..].bytes().all(|b| b.is_ascii_digit()))
        || (w.starts_with('L') && w.len() == 2)
}

/// Parses a number: decimal, `0x` hex, `_` separators, and a binary
/// size suffix `K`, `M`, `G` or `T`.
pub fn number(w: &str) -> Option<u64> {
    let t = w.replace('_', "");
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok();
    }
    let (digits, shift) = match t.as_bytes().last()? {
        b'k' | b'K' => (&t[..t.len() - 1], 10),
        b'm' | b'M' => (&t[..t.len() - 1], 20),
        b'g' | b'G' => (&t[..t.len() - 1], 30),
        b't' | b'T' => (&t[..t.len() - 1], 40),
        _ => (&t[..], 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

impl<'s> Parser<'s> {
    fn tok(&self) -> Tok<'s> {
        self.toks.get(self.pos).map_or(Tok::Eof, |t| t.tok)
    }

    fn span(&self) -> Range<usize> {
        self.toks
            .get(self.pos)
            .map_or(self.src.len()..self.src.len(), |t| t.span.clone())
    }

    fn prev_end(&self) -> usize {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .map_or(0, |t| t.span.end)
    }

    fn bump(&mut self) {
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
    }

    fn err_at(&self, span: Range<usize>, msg: impl Into<String>) -> SeqError {
        SeqError::at(self.file, self.src, span, msg)
    }

    fn err(&self, expected: &str) -> SeqError {
        let t = self.tok();
        let span = match t {
            Tok::Newline | Tok::Eof => {
                let e = self.prev_end();
                e..e + 1
            }
            _ => self.span(),
        };
        self.err_at(span, format!("expected {expected}, found {}", t.describe()))
    }

    fn peek_word(&self) -> Option<&'s str> {
        match self.tok() {
            Tok::Word(w) => Some(w),
            _ => None,
        }
    }

    fn word(&mut self, expected: &str) -> R<(&'s str, Range<usize>)> {
        match self.tok() {
            Tok::Word(w) => {
                let s = self.span();
                self.bump();
                Ok((w, s))
            }
            _ => Err(self.err(expected)),
        }
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.peek_word() == Some(w) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.tok() == Tok::Punct(p_static(p)) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn punct(&mut self, p: &str) -> R<()> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.err(&format!("`{p}`")))
        }
    }

    fn at_eol(&self) -> bool {
        matches!(self.tok(), Tok::Newline | Tok::Eof)
    }

    fn end_line(&mut self) -> R<()> {
        match self.tok() {
            Tok::Newline => {
                self.bump();
                Ok(())
            }
            Tok::Eof => Ok(()),
            _ => Err(self.err("the end of the line")),
        }
    }

    fn skip_blank(&mut self) {
        while self.tok() == Tok::Newline {
            self.bump();
        }
    }

    /// Tells whether the next tokens are `WORD =`.
    fn at_key(&self) -> Option<&'s str> {
        let w = self.peek_word()?;
        match self.toks.get(self.pos + 1) {
            Some(Token {
                tok: Tok::Punct("="),
                ..
            }) => Some(w),
            _ => None,
        }
    }

    /// Parses `KEY =` (the key already peeked) and returns the value word.
    fn value(&mut self, expected: &str) -> R<(&'s str, Range<usize>)> {
        self.bump();
        self.punct("=")?;
        self.word(expected)
    }

    fn line_of(&self, offset: usize) -> usize {
        self.src[..offset.min(self.src.len())].matches('\n').count() + 1
    }

    fn num_word(&mut self, expected: &str) -> R<u64> {
        match self.tok() {
            Tok::Word(w) => match number(w) {
                Some(n) => {
                    self.bump();
                    Ok(n)
                }
                None => Err(self.err(expected)),
            },
            _ => Err(self.err(expected)),
        }
    }

    fn level(&mut self) -> R<u8> {
        let w = self.peek_word().unwrap_or("");
        match w
            .strip_prefix('L')
            .or_else(|| w.strip_prefix('l'))
            .and_then(|n| n.parse::<u8>().ok())
        {
            Some(n) if n <= 3 && w.len() == 2 => {
                self.bump();
                Ok(n)
            }
            _ => Err(self.err("a level L0..L3")),
        }
    }

    fn bbm_list(&mut self) -> R<(Vec<BbmLevel>, Range<usize>)> {
        let start = self.span().start;
        let mut v = Vec::new();
        loop {
            let (w, s) = self.word("a FEAT_BBM level: 0, 1, 2 or 2-noabort")?;
            let l: BbmLevel = w.parse().map_err(|_| {
                self.err_at(
                    s,
                    format!("expected a FEAT_BBM level: 0, 1, 2 or 2-noabort, found `{w}`"),
                )
            })?;
            if !v.contains(&l) {
                v.push(l);
            }
            if !self.eat_punct(",") {
                break;
            }
        }
        Ok((v, start..self.prev_end()))
    }
}

fn p_static(p: &str) -> &'static str {
    ["->", "=>", "[", "]", "(", ")", "+", "*", "=", ","]
        .into_iter()
        .find(|q| *q == p)
        .unwrap_or("")
}

fn onoff(w: &str) -> Option<bool> {
    match w {
        "on" | "1" | "true" | "yes" => Some(true),
        "off" | "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

#[derive(Default)]
struct Header {
    granule: Option<Granule>,
    levels: Option<(Vec<BbmLevel>, Range<usize>)>,
    cpus: Option<(usize, Range<usize>)>,
    memory: Option<(u64, Range<usize>)>,
    huge: Option<(u64, Range<usize>)>,
    hw_af: Option<bool>,
    hw_dbm: bool,
    config_span: Option<Range<usize>>,
    kernel: Option<(Direction, Protocol, Range<usize>)>,
    workloads: Option<(Vec<WorkloadKind>, usize, bool, Range<usize>)>,
    limits: Option<(Limits, Range<usize>)>,
    initial: Vec<Initial>,
    init: Vec<Init>,
    init_span: Option<Range<usize>>,
}

/// Parses a `.seq` file's text; `file` names it in errors.
///
/// # Errors
///
/// Returns the first [`SeqError`]: file, line, column, the source line
/// with the span underlined, and what was expected.
pub fn parse(file: &str, src: &str) -> R<SeqFile> {
    let toks = lex(file, src)?;
    let mut p = Parser {
        file,
        src,
        toks,
        pos: 0,
        lets: BTreeMap::new(),
        names: BTreeMap::new(),
    };
    let mut h = Header::default();
    p.skip_blank();
    loop {
        let Some(w) = p.peek_word() else {
            if p.tok() == Tok::Eof {
                break;
            }
            return Err(p.err(HEADER));
        };
        let start = p.span().start;
        match w {
            "case" => break,
            "let" => {
                p.bump();
                let (name, ns) = p.word("a name")?;
                if reserved(name) || p.lets.contains_key(name) {
                    return Err(p.err_at(ns, format!("expected a new name, found `{name}` (a keyword, a number, a register or a name already defined)")));
                }
                p.punct("=")?;
                let e = p.expr("a value")?;
                p.lets.insert(name.to_string(), e);
            }
            "config" => {
                if h.config_span.is_some() {
                    return Err(p.err_at(
                        p.span(),
                        "a second `config` line: expected one `config` line before the first case",
                    ));
                }
                p.bump();
                config(&mut p, &mut h)?;
                h.config_span = Some(start..p.prev_end());
            }
            "kernel" => {
                if h.kernel.is_some() {
                    return Err(p.err_at(p.span(), "a second `kernel` line: expected one"));
                }
                p.bump();
                let k = kernel_line(&mut p)?;
                h.kernel = Some((k.0, k.1, start..p.prev_end()));
            }
            "workloads" => {
                p.bump();
                let (w, c, t) = workloads_line(&mut p)?;
                h.workloads = Some((w, c, t, start..p.prev_end()));
            }
            "limits" => {
                p.bump();
                let l = limits_line(&mut p)?;
                h.limits = Some((l, start..p.prev_end()));
            }
            "initial" => {
                p.bump();
                let i = initial_line(&mut p, start)?;
                h.initial.push(i);
            }
            "map" => {
                p.bump();
                h.init.push(map_line(&mut p)?);
                h.init_span.get_or_insert(start..p.prev_end());
            }
            "fill" => {
                p.bump();
                h.init.push(fill_line(&mut p)?);
                h.init_span.get_or_insert(start..p.prev_end());
            }
            _ => return Err(p.err(HEADER)),
        }
        p.end_line()?;
        p.skip_blank();
    }
    if h.config_span.is_none() {
        return Err(p.err_at(0..1, "expected a `config` line before the first case"));
    }
    if h.kernel.is_some() {
        if let Some(s) = &h.init_span {
            return Err(p.err_at(s.clone(), "`map` and `fill` build a bare machine: a kernel file states its mapping with `initial` lines"));
        }
        for (what, s) in [
            ("cpus", h.cpus.as_ref().map(|c| c.1.clone())),
            ("memory", h.memory.as_ref().map(|c| c.1.clone())),
        ] {
            if let Some(s) = s {
                return Err(p.err_at(s, format!("`{what}=` is for machine files: a kernel file's CPUs are the updater and the `workloads`, its memory is what the kernel needs")));
            }
        }
        kernel_file(&mut p, h)
    } else {
        if let Some(s) = [
            h.workloads.as_ref().map(|w| w.3.clone()),
            h.limits.as_ref().map(|w| w.1.clone()),
            h.initial.first().map(|i| i.span.clone()),
            h.huge.as_ref().map(|w| w.1.clone()),
        ]
        .into_iter()
        .flatten()
        .next()
        {
            return Err(p.err_at(s, "this is for kernel files: expected a `kernel hvo` or `kernel de-hvo after=PROTOCOL` line first"));
        }
        machine_file(&mut p, h)
    }
}

/// Parses `case NAME [bbm=L]` (the `case` word current).
fn case_head(p: &mut Parser<'_>) -> R<CaseHead> {
    let start = p.span().start;
    p.bump();
    let (name, _) = p.word("a case name")?;
    let bbm = if p.at_key() == Some("bbm") {
        p.bump();
        p.bump();
        Some(p.bbm_list()?)
    } else {
        None
    };
    p.end_line()?;
    Ok((name.to_string(), p.line_of(start), start..p.prev_end(), bbm))
}

/// Parses an optional `cpuN` prefix.
fn cpu_prefix(p: &mut Parser<'_>) -> R<usize> {
    if let Some(w) = p.peek_word()
        && let Some(n) = w.strip_prefix("cpu")
        && !n.is_empty()
    {
        let s = p.span();
        let cpu = n
            .parse()
            .map_err(|_| p.err_at(s, format!("expected cpuN, found `{w}`")))?;
        p.bump();
        return Ok(cpu);
    }
    Ok(0)
}
