//! The recursive-descent parser over the lexer's tokens.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use explore::{Direction, Limits, WorkloadKind};
use mm::{PROTOCOLS, Perm, Protocol};
use vmsa::{
    Attributes, BbmLevel, Config, DsbKind, Granule, LeafAttrs, Shareability, Tlbi, TlbiKind,
    VirtAddr,
};

use crate::SeqFile;
use crate::ast::{
    Concurrent, Expect, Expr, ExprKind, Initial, KCase, KDesc, KOp, KStep, KernelFile, PageArg,
    PageRef,
};
use crate::error::SeqError;
use crate::lex::{Tok, Token, lex};
use crate::machine::{Case, Desc, Init, MachineFile, Op, Setup, Step};

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

    // Expressions: sum := product ('+' product)*; product := atom ('*' atom)*;
    // atom := NUMBER | head | next | vmemmap '[' sum ']' | '(' sum ')'.
    fn expr(&mut self, what: &str) -> R<Expr> {
        let mut e = self.product(what)?;
        while self.eat_punct("+") {
            let r = self.product(what)?;
            let span = e.span.start..r.span.end;
            e = Expr {
                kind: ExprKind::Add(Box::new(e), Box::new(r)),
                span,
            };
        }
        Ok(e)
    }

    fn product(&mut self, what: &str) -> R<Expr> {
        let mut e = self.atom(what)?;
        while self.eat_punct("*") {
            let r = self.atom(what)?;
            let span = e.span.start..r.span.end;
            e = Expr {
                kind: ExprKind::Mul(Box::new(e), Box::new(r)),
                span,
            };
        }
        Ok(e)
    }

    fn atom(&mut self, what: &str) -> R<Expr> {
        let start = self.span().start;
        if self.eat_punct("(") {
            let inner = self.expr(what)?;
            self.punct(")")?;
            return Ok(Expr {
                kind: inner.kind,
                span: start..self.prev_end(),
            });
        }
        let expected = format!("{what} (a number, `head`, `next`, `vmemmap[PFN]` or a `let` name)");
        let Some(w) = self.peek_word() else {
            return Err(self.err(&expected));
        };
        let kind = match w {
            "head" => ExprKind::Head,
            "next" => ExprKind::Next,
            "vmemmap" => {
                self.bump();
                self.punct("[")?;
                let inner = self.expr("a pfn")?;
                self.punct("]")?;
                return Ok(Expr {
                    kind: ExprKind::Vmemmap(Box::new(inner)),
                    span: start..self.prev_end(),
                });
            }
            w if self.lets.contains_key(w) => {
                let kind = self.lets[w].kind.clone();
                self.bump();
                return Ok(Expr {
                    kind,
                    span: start..self.prev_end(),
                });
            }
            w => match number(w) {
                Some(n) => ExprKind::Num(n),
                None => return Err(self.err(&expected)),
            },
        };
        self.bump();
        Ok(Expr {
            kind,
            span: start..self.prev_end(),
        })
    }

    /// Parses an expression and evaluates it with no kernel (machine files).
    fn const_expr(&mut self, what: &str) -> R<u64> {
        let e = self.expr(what)?;
        crate::kernel::eval(&e, None).map_err(|(span, m)| self.err_at(span, m))
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

fn config(p: &mut Parser<'_>, h: &mut Header) -> R<()> {
    const KEYS: &str = "granule=, bbm=, hugepagesz=, hw-af=, hw-dbm=, cpus= or memory=";
    while !p.at_eol() {
        let Some(k) = p.at_key() else {
            return Err(p.err(&format!("key=value ({KEYS})")));
        };
        let ks = p.span();
        match k {
            "granule" => {
                let (v, s) = p.value("4k, 16k or 64k")?;
                h.granule = Some(v.parse().map_err(|_| {
                    p.err_at(s, format!("expected granule=4k, 16k or 64k, found `{v}`"))
                })?);
            }
            "bbm" => {
                p.bump();
                p.punct("=")?;
                h.levels = Some(p.bbm_list()?);
            }
            "hugepagesz" => {
                let (v, s) = p.value("a huge page size such as 2M")?;
                let n = number(v).ok_or_else(|| {
                    p.err_at(
                        s.clone(),
                        format!("expected a huge page size such as 2M, found `{v}`"),
                    )
                })?;
                h.huge = Some((n, ks.start..s.end));
            }
            "cpus" => {
                let (v, s) = p.value("1..64")?;
                let n = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| {
                        p.err_at(s.clone(), format!("expected cpus=1..64, found `{v}`"))
                    })?;
                h.cpus = Some((n, ks.start..s.end));
            }
            "memory" => {
                let (v, s) = p.value("a size such as 64M")?;
                let n = number(v).ok_or_else(|| {
                    p.err_at(
                        s.clone(),
                        format!("expected memory=SIZE (e.g. 64M), found `{v}`"),
                    )
                })?;
                h.memory = Some((n, ks.start..s.end));
            }
            "hw-af" => {
                let (v, s) = p.value("on or off")?;
                h.hw_af = Some(onoff(v).ok_or_else(|| {
                    p.err_at(s, format!("expected hw-af=on or off, found `{v}`"))
                })?);
            }
            "hw-dbm" => {
                let (v, s) = p.value("on or off")?;
                h.hw_dbm = onoff(v).ok_or_else(|| {
                    p.err_at(s, format!("expected hw-dbm=on or off, found `{v}`"))
                })?;
            }
            _ => return Err(p.err(&format!("one of {KEYS}"))),
        }
    }
    Ok(())
}

fn kernel_line(p: &mut Parser<'_>) -> R<(Direction, Protocol)> {
    let (d, s) = p.word("hvo or de-hvo")?;
    let names = PROTOCOLS.map(|p| p.name).join(", ");
    match d {
        "hvo" => {
            let mut proto = Protocol::by_name("linux-generic");
            if let Some(k) = p.at_key() {
                if k != "tails" {
                    return Err(p.err("`tails=head` or `tails=order`, or the end of the line"));
                }
                let (v, vs) = p.value("head or order")?;
                proto = match v {
                    "head" => Protocol::by_name("linux-generic"),
                    "order" => PROTOCOLS
                        .iter()
                        .copied()
                        .find(|p| p.needs_identical_tails()),
                    _ => {
                        return Err(p.err_at(
                            vs,
                            format!("expected tails=head or tails=order, found `{v}`"),
                        ));
                    }
                };
            }
            let proto = proto
                .ok_or_else(|| p.err_at(s, "no built-in protocol has this struct page format"))?;
            Ok((Direction::Hvo, proto))
        }
        "de-hvo" => {
            if p.at_key() != Some("after") {
                return Err(p.err(&format!(
                    "after=PROTOCOL (the protocol that optimized the huge page: {names})"
                )));
            }
            let (v, vs) = p.value("a protocol")?;
            let proto = Protocol::by_name(v).ok_or_else(|| {
                p.err_at(vs, format!("expected a protocol ({names}), found `{v}`"))
            })?;
            Ok((Direction::Restore, proto))
        }
        _ => Err(p.err_at(s, format!("expected hvo or de-hvo, found `{d}`"))),
    }
}

fn workload(p: &mut Parser<'_>) -> R<WorkloadKind> {
    let names = WorkloadKind::ALL.map(|w| w.name()).join(", ");
    let (w, s) = p.word(&format!("a workload ({names})"))?;
    w.parse()
        .map_err(|_| p.err_at(s, format!("expected a workload ({names}), found `{w}`")))
}

fn workloads_line(p: &mut Parser<'_>) -> R<(Vec<WorkloadKind>, usize, bool)> {
    let mut v = vec![workload(p)?];
    let mut copies = 1;
    let mut together = false;
    while !p.at_eol() {
        if p.at_key() == Some("cpus") {
            let (w, s) = p.value("1..63")?;
            copies = w
                .parse()
                .ok()
                .filter(|n| (1..=63).contains(n))
                .ok_or_else(|| {
                    p.err_at(
                        s,
                        format!("expected cpus=1..63 (CPUs per workload), found `{w}`"),
                    )
                })?;
        } else if p.eat_word("together") {
            together = true;
        } else {
            let w = workload(p)?;
            if !v.contains(&w) {
                v.push(w);
            }
        }
    }
    if copies * v.len() > 63 {
        let e = p.prev_end();
        return Err(p.err_at(e.saturating_sub(1)..e, format!("{copies} CPUs per workload with {} workloads: the model has at most 64 CPUs, the updater and the workloads' CPUs", v.len())));
    }
    Ok((v, copies, together))
}

fn limits_line(p: &mut Parser<'_>) -> R<Limits> {
    let mut l = Limits::default();
    while !p.at_eol() {
        match p.at_key() {
            Some("states") => {
                l.states = {
                    let (w, s) = p.value("a number")?;
                    number(w)
                        .ok_or_else(|| p.err_at(s, format!("expected states=N, found `{w}`")))?
                }
            }
            Some("memory") => {
                l.memory = {
                    let (w, s) = p.value("a size")?;
                    number(w).ok_or_else(|| {
                        p.err_at(s, format!("expected memory=SIZE (e.g. 8G), found `{w}`"))
                    })?
                }
            }
            Some("time") => {
                l.time = {
                    let (w, s) = p.value("seconds")?;
                    Duration::from_secs(
                        w.strip_suffix('s')
                            .and_then(number)
                            .or_else(|| number(w))
                            .ok_or_else(|| {
                                p.err_at(
                                    s,
                                    format!("expected time=SECONDS (e.g. 600s), found `{w}`"),
                                )
                            })?,
                    )
                }
            }
            _ => return Err(p.err("states=N, memory=SIZE or time=SECONDS")),
        }
    }
    Ok(l)
}

fn page_arg(p: &mut Parser<'_>) -> R<PageArg> {
    const WHAT: &str = "a page: rN, rN+K, pfn N, page-of VA, same, shared-tail or a name given by `alloc rN as NAME`";
    let start = p.span().start;
    let Some(w) = p.peek_word() else {
        return Err(p.err(WHAT));
    };
    let page = match w {
        "pfn" => {
            p.bump();
            PageRef::Pfn(p.expr("a frame number")?)
        }
        "page-of" => {
            p.bump();
            PageRef::PageOf(p.expr("a virtual address")?)
        }
        "same" => {
            p.bump();
            PageRef::Same
        }
        "shared-tail" => {
            p.bump();
            PageRef::SharedTail
        }
        w if p.names.contains_key(w) => {
            let r = p.names[w];
            p.bump();
            let off = if p.eat_punct("+") {
                p.num_word("a page offset")?
            } else {
                0
            };
            PageRef::Reg(r, off)
        }
        w if w.starts_with('r') && w.len() > 1 && w[1..].bytes().all(|b| b.is_ascii_digit()) => {
            let s = p.span();
            let r: u16 = w[1..]
                .parse()
                .map_err(|_| p.err_at(s, format!("expected a register r0..r65535, found `{w}`")))?;
            p.bump();
            let off = if p.eat_punct("+") {
                p.num_word("a page offset")?
            } else {
                0
            };
            PageRef::Reg(r, off)
        }
        _ => return Err(p.err(WHAT)),
    };
    Ok(PageArg {
        page,
        span: start..p.prev_end(),
    })
}

fn kdesc(p: &mut Parser<'_>) -> R<KDesc> {
    const WHAT: &str = "a descriptor: invalid, page PAGE rw|ro, block PAGE rw|ro or table PAGE";
    let (w, _) = p.word(WHAT)?;
    match w {
        "invalid" => Ok(KDesc::Invalid),
        "table" => Ok(KDesc::Table(page_arg(p)?)),
        "page" | "block" => {
            let page = page_arg(p)?;
            let perm = match p.peek_word() {
                Some("rw") => Perm::Rw,
                Some("ro") => Perm::Ro,
                _ => return Err(p.err("rw or ro (PAGE_KERNEL or PAGE_KERNEL_RO)")),
            };
            p.bump();
            let (mut af, mut nt) = (true, false);
            loop {
                if p.eat_word("noaf") {
                    af = false;
                } else if p.eat_word("nt") {
                    nt = true;
                } else {
                    break;
                }
            }
            Ok(KDesc::Leaf {
                page,
                perm,
                af,
                nt,
                block: w == "block",
            })
        }
        _ => {
            p.pos -= 1;
            Err(p.err(WHAT))
        }
    }
}

fn order(p: &mut Parser<'_>) -> R<u8> {
    if p.at_key() == Some("order") {
        let (w, s) = p.value("0..31")?;
        w.parse()
            .ok()
            .filter(|&o: &u8| o < 32)
            .ok_or_else(|| p.err_at(s, format!("expected order=0..31, found `{w}`")))
    } else {
        Ok(0)
    }
}

fn tlbi_kind(p: &mut Parser<'_>) -> R<TlbiKind> {
    const WHAT: &str = "vae1is, vale1is, vaae1is, vaale1is or vmalle1is";
    let (w, s) = p.word(WHAT)?;
    w.parse()
        .map_err(|_| p.err_at(s, format!("expected {WHAT}, found `{w}`")))
}

fn dsb_kind(p: &mut Parser<'_>) -> R<DsbKind> {
    let (w, s) = p.word("ish or ishst")?;
    w.parse()
        .map_err(|_| p.err_at(s, format!("expected ish or ishst, found `{w}`")))
}

fn kop(p: &mut Parser<'_>) -> R<KOp> {
    let (w, s) = p.word(KERNEL_OPS)?;
    Ok(match w {
        "store" => {
            let va = p.expr("a virtual address")?;
            let level = p.level()?;
            KOp::Store {
                va,
                level,
                desc: kdesc(p)?,
            }
        }
        "cas" => {
            let va = p.expr("a virtual address")?;
            let level = p.level()?;
            let expect = kdesc(p)?;
            p.punct("=>")?;
            let desc = kdesc(p)?;
            let retries = if p.at_key() == Some("retries") {
                let (w, s) = p.value("a count of retries")?;
                w.parse()
                    .map_err(|_| p.err_at(s, format!("expected retries=0..255, found `{w}`")))?
            } else {
                0
            };
            KOp::Cas {
                va,
                level,
                expect,
                desc,
                retries,
            }
        }
        "dsb" => KOp::Dsb(dsb_kind(p)?),
        "isb" => KOp::Isb,
        "tlbi" => {
            let kind = tlbi_kind(p)?;
            let va = if kind.by_va() {
                Some(p.expr("the TLBI's virtual address")?)
            } else {
                None
            };
            KOp::Tlbi { kind, va }
        }
        "alloc" => {
            let a = page_arg(p)?;
            let PageRef::Reg(reg, 0) = a.page else {
                return Err(p.err_at(a.span, "expected a register rN to allocate into"));
            };
            let order = order(p)?;
            if p.eat_word("as") {
                let (name, ns) = p.word("a name for the page")?;
                if reserved(name) || p.names.contains_key(name) || p.lets.contains_key(name) {
                    return Err(p.err_at(ns, format!("expected a new name, found `{name}` (a keyword, a number, a register or a name already defined)")));
                }
                p.names.insert(name.to_string(), reg);
            }
            KOp::Alloc { reg, order }
        }
        "free" => KOp::Free {
            page: page_arg(p)?,
            order: order(p)?,
        },
        "copy" => KOp::Copy {
            dst: page_arg(p)?,
            src: page_arg(p)?,
        },
        "fill-table" => {
            let table = page_arg(p)?;
            if !p.eat_word("from") {
                return Err(p.err("`from` (fill-table PAGE from VA Ln)"));
            }
            let va = p.expr("the VA of the block")?;
            KOp::FillTable {
                table,
                va,
                level: p.level()?,
            }
        }
        "reset" => {
            let page = page_arg(p)?;
            if p.at_key() != Some("structs") {
                return Err(p.err("structs=N"));
            }
            p.bump();
            p.bump();
            let count = p.expr("a count of struct pages")?;
            if p.at_key() != Some("head") {
                return Err(p.err("head=PFN"));
            }
            p.bump();
            p.bump();
            KOp::Reset {
                page,
                count,
                head: p.expr("the head's pfn")?,
            }
        }
        "pause" => KOp::Pause,
        "resume" => KOp::Resume,
        "stop-machine" => KOp::StopMachine,
        "start-machine" => KOp::StartMachine,
        "synchronize-rcu" => KOp::SynchronizeRcu,
        "str" => {
            let value = p.expr("the value")?;
            p.punct(",")?;
            p.punct("[")?;
            let va = p.expr("a virtual address")?;
            p.punct("]")?;
            KOp::Str { value, va }
        }
        _ => return Err(p.err_at(s, format!("expected {KERNEL_OPS}, found `{w}`"))),
    })
}

fn initial_line(p: &mut Parser<'_>, start: usize) -> R<Initial> {
    let va = p.expr("a virtual address")?;
    p.punct("->")?;
    let page = page_arg(p)?;
    let mut pages = 1;
    let mut shared = false;
    let mut ro = None;
    while !p.at_eol() {
        if p.at_key() == Some("pages") {
            let (w, s) = p.value("a count")?;
            pages = number(w)
                .filter(|&n| (1..=1 << 20).contains(&n))
                .ok_or_else(|| p.err_at(s, format!("expected pages=1..1048576, found `{w}`")))?;
        } else if p.eat_word("shared") {
            shared = true;
        } else if p.eat_word("rw") {
            ro = Some(false);
        } else if p.eat_word("ro") {
            ro = Some(true);
        } else {
            return Err(p.err("pages=N, shared, rw or ro"));
        }
    }
    let ro = ro.ok_or_else(|| p.err("rw or ro"))?;
    Ok(Initial {
        va,
        page,
        pages,
        shared,
        ro,
        span: start..p.prev_end(),
    })
}

fn expect_line(p: &mut Parser<'_>, kernel: bool) -> R<ExpectParts> {
    let mut levels = None;
    if p.at_key() == Some("bbm") {
        p.bump();
        p.bump();
        levels = Some(p.bbm_list()?.0);
    }
    let keyed = p.eat_word("rules");
    let mut rules = BTreeSet::new();
    let mut any = false;
    while let Some(w) = p.peek_word() {
        if w == "concurrent" {
            break;
        }
        any = true;
        if w != "none" && w != "compliant" {
            if !vmsa::Rule::ALL.iter().any(|r| r.code() == w) {
                return Err(p.err("a rule code such as R_WHZWS.oa-writable (see `hvo rules`), `none` or `compliant`"));
            }
            rules.insert(w.to_string());
        }
        p.bump();
    }
    if !any {
        return Err(p.err(if keyed {
            "rule codes or `compliant`"
        } else {
            "rule codes, `none`, or `rules ...`"
        }));
    }
    let mut concurrent = None;
    if p.peek_word() == Some("concurrent") {
        if !kernel {
            return Err(p.err_at(p.span(), "a machine file runs no concurrent CPUs: `concurrent` needs a kernel file (`kernel hvo`)"));
        }
        p.bump();
        let slugs = explore_slugs();
        let what = format!("safe, incomplete or a hazard ({})", slugs.join(", "));
        let (w, s) = p.word(&what)?;
        concurrent = Some(match w {
            "safe" => Concurrent::Safe,
            "incomplete" => Concurrent::Incomplete,
            w if slugs.contains(&w) => {
                let by = if p.eat_word("by") {
                    let mut v = vec![workload(p)?];
                    while p.eat_punct("+") {
                        v.push(workload(p)?);
                    }
                    Some(v)
                } else {
                    None
                };
                Concurrent::Hazard {
                    slug: w.to_string(),
                    by,
                }
            }
            _ => return Err(p.err_at(s, format!("expected {what}, found `{w}`"))),
        });
    } else if kernel {
        return Err(p.err("`concurrent VERDICT` (safe, incomplete or a hazard)"));
    }
    Ok((levels, rules, concurrent))
}

fn explore_slugs() -> Vec<&'static str> {
    use explore::HazardKind as H;
    use vmsa::walk::FaultKind as F;
    [
        H::Fault(F::Translation),
        H::Fault(F::Permission),
        H::Fault(F::AccessFlag),
        H::Fault(F::TlbConflict),
        H::LostUpdate,
        H::UseAfterFree,
        H::FreedTableWalk,
        H::TornRead,
        H::Uninitialized,
        H::DoubleFree,
        H::FinalState,
        H::Deadlock,
    ]
    .map(|h| h.slug())
    .to_vec()
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

fn kernel_file(p: &mut Parser<'_>, h: Header) -> R<SeqFile> {
    let (direction, boot, kernel_span) =
        h.kernel
            .clone()
            .unwrap_or((Direction::Hvo, mm::PROTOCOLS[0], 0..0));
    let levels = h.levels.clone().map_or(vec![BbmLevel::Level0], |l| l.0);
    let mut cases = Vec::new();
    while p.peek_word() == Some("case") {
        let (name, line, span, bbm) = case_head(p)?;
        if let Some((_, s)) = bbm {
            return Err(p.err_at(s, "a kernel case runs at the `config` line's FEAT_BBM levels: give `bbm=` on its `expect` lines"));
        }
        p.names.clear();
        let mut case = KCase {
            name,
            line,
            span,
            expects: Vec::new(),
            steps: Vec::new(),
        };
        p.skip_blank();
        while !matches!(p.tok(), Tok::Eof) && p.peek_word() != Some("case") {
            let start = p.span().start;
            if p.eat_word("expect") {
                let (lv, rules, conc) = expect_line(p, true)?;
                let span = start..p.prev_end();
                if let Some(lv) = &lv
                    && let Some(l) = lv.iter().find(|l| !levels.contains(l))
                {
                    return Err(p.err_at(
                        span,
                        format!(
                            "FEAT_BBM {l} is not among the `config` line's levels ({})",
                            levels
                                .iter()
                                .map(|l| l.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                for e in &case.expects {
                    let overlap =
                        |a: &Option<Vec<BbmLevel>>, b: &Option<Vec<BbmLevel>>| match (a, b) {
                            (Some(a), Some(b)) => a.iter().any(|l| b.contains(l)),
                            _ => true,
                        };
                    if overlap(&e.levels, &lv) {
                        return Err(p.err_at(span, "a second `expect` line for the same FEAT_BBM level: expected one per level"));
                    }
                }
                case.expects.push(Expect {
                    levels: lv,
                    rules,
                    concurrent: conc.unwrap_or(Concurrent::Safe),
                    span,
                });
            } else {
                let cs = p.span();
                let cpu = cpu_prefix(p)?;
                if cpu != 0 {
                    return Err(p.err_at(
                        cs,
                        "in a kernel file the updater is cpu0; the other CPUs run the `workloads`",
                    ));
                }
                let op = kop(p)?;
                case.steps.push(KStep {
                    op,
                    span: start..p.prev_end(),
                });
            }
            p.end_line()?;
            p.skip_blank();
        }
        for l in &levels {
            if !case
                .expects
                .iter()
                .any(|e| e.levels.as_ref().is_none_or(|v| v.contains(l)))
            {
                return Err(p.err_at(case.span.clone(), format!("case `{}` has no `expect` line for FEAT_BBM {l}: expected one for each level of the `config` line", case.name)));
            }
        }
        cases.push(case);
    }
    if cases.is_empty() {
        return Err(p.err("`case NAME`: expected at least one case"));
    }
    Ok(SeqFile::Kernel(KernelFile {
        file: p.file.to_string(),
        source: p.src.to_string(),
        granule: h.granule.unwrap_or(Granule::K4),
        huge_size: h.huge.map_or(2 << 20, |h| h.0),
        levels,
        hw_af: h.hw_af.unwrap_or(true),
        hw_dbm: h.hw_dbm,
        direction,
        boot,
        kernel_span,
        workloads: h
            .workloads
            .as_ref()
            .map_or(WorkloadKind::STANDARD.to_vec(), |w| w.0.clone()),
        copies: h.workloads.as_ref().map_or(1, |w| w.1),
        together: h.workloads.as_ref().is_some_and(|w| w.2),
        limits: h.limits.map_or_else(Limits::default, |l| l.0),
        initial: h.initial,
        cases,
    }))
}

fn machine_file(p: &mut Parser<'_>, h: Header) -> R<SeqFile> {
    let mut config = Config::new(
        h.granule.unwrap_or(Granule::K4),
        h.cpus.as_ref().map_or(2, |c| c.0),
    );
    if let Some((l, s)) = &h.levels {
        if l.len() > 1 {
            return Err(p.err_at(
                s.clone(),
                "one FEAT_BBM level in a machine file (give `bbm=` on a case for another)",
            ));
        }
        config.features.bbm = l[0];
    }
    config.features.hw_af = h.hw_af.unwrap_or(false);
    config.features.hw_dbm = h.hw_dbm;
    let mut cases: Vec<Case> = Vec::new();
    while p.peek_word() == Some("case") {
        let (name, line, _, bbm) = case_head(p)?;
        let bbm = match bbm {
            Some((l, s)) if l.len() > 1 => return Err(p.err_at(s, "one FEAT_BBM level per case")),
            Some((l, _)) => Some(l[0]),
            None => None,
        };
        let mut case = Case {
            name,
            line,
            expect: BTreeSet::new(),
            bbm,
            steps: Vec::new(),
        };
        p.skip_blank();
        while !matches!(p.tok(), Tok::Eof) && p.peek_word() != Some("case") {
            let start = p.span().start;
            if p.eat_word("expect") {
                let (lv, rules, _) = expect_line(p, false)?;
                if lv.is_some() {
                    return Err(p.err_at(
                        start..p.prev_end(),
                        "a machine case gives its FEAT_BBM level on its `case` line",
                    ));
                }
                case.expect.extend(rules);
            } else if matches!(p.peek_word(), Some("map" | "fill" | "config")) {
                return Err(p.err("a step (`cpuN ...`), `expect` or `case`: set-up lines go before the first case"));
            } else {
                let cpu = cpu_prefix(p)?;
                let op = mop(p)?;
                case.steps.push(Step {
                    line: p.line_of(start),
                    cpu,
                    op,
                });
            }
            p.end_line()?;
            p.skip_blank();
        }
        cases.push(case);
    }
    if cases.is_empty() {
        return Err(p.err("`case NAME`: expected at least one case"));
    }
    Ok(SeqFile::Machine(MachineFile {
        file: p.file.to_string(),
        setup: Setup {
            config,
            memory: h.memory.map_or(64 << 20, |m| m.0),
        },
        init: h.init,
        cases,
    }))
}

fn map_line(p: &mut Parser<'_>) -> R<Init> {
    let va = p.const_expr("a virtual address")?;
    p.punct("->")?;
    let pa = p.const_expr("a physical address")?;
    let mut size = None;
    let mut level = None;
    loop {
        match p.at_key() {
            Some("size") => {
                let (w, s) = p.value("a size")?;
                size = Some(number(w).ok_or_else(|| {
                    p.err_at(s, format!("expected size=SIZE (e.g. 2M), found `{w}`"))
                })?);
            }
            Some("level") => {
                let (w, s) = p.value("0..3")?;
                level = Some(
                    w.parse::<u8>()
                        .ok()
                        .filter(|&l| l <= 3)
                        .ok_or_else(|| p.err_at(s, format!("expected level=0..3, found `{w}`")))?,
                );
            }
            _ => break,
        }
    }
    let size = size.ok_or_else(|| p.err("size=SIZE"))?;
    let level = level.ok_or_else(|| p.err("level=N"))?;
    let attrs = attrs(p)?;
    Ok(Init::Map {
        va,
        pa,
        size,
        level,
        attrs,
    })
}

fn fill_line(p: &mut Parser<'_>) -> R<Init> {
    let pa = p.const_expr("a physical address")?;
    let mut pages = 1;
    if p.at_key() == Some("pages") {
        let (w, s) = p.value("a count")?;
        pages = number(w).ok_or_else(|| p.err_at(s, format!("expected pages=N, found `{w}`")))?;
    }
    if p.at_key() != Some("value") {
        return Err(p.err("value=N"));
    }
    let (w, s) = p.value("a value")?;
    let value = number(w).ok_or_else(|| p.err_at(s, format!("expected value=N, found `{w}`")))?;
    Ok(Init::Fill { pa, pages, value })
}

fn attrs(p: &mut Parser<'_>) -> R<LeafAttrs> {
    let mut a = LeafAttrs {
        flags: Attributes::AF,
        sh: Shareability::Inner,
        ..LeafAttrs::default()
    };
    loop {
        if let Some(k) = p.at_key() {
            match k {
                "attr" => {
                    let (w, s) = p.value("0..7")?;
                    a.attr_indx =
                        w.parse().ok().filter(|&n: &u8| n < 8).ok_or_else(|| {
                            p.err_at(s, format!("expected attr=0..7, found `{w}`"))
                        })?;
                }
                "sh" => {
                    let (w, s) = p.value("is, os or ns")?;
                    a.sh = match w {
                        "is" => Shareability::Inner,
                        "os" => Shareability::Outer,
                        "ns" => Shareability::NonShareable,
                        _ => {
                            return Err(p.err_at(
                                s,
                                format!("expected sh=is, sh=os or sh=ns, found `{w}`"),
                            ));
                        }
                    };
                }
                _ => break,
            }
            continue;
        }
        let f = match p.peek_word() {
            Some("rw") => {
                a.flags.remove(Attributes::READ_ONLY);
                p.bump();
                continue;
            }
            Some("ro") => Attributes::READ_ONLY,
            Some("noaf") => {
                a.flags.remove(Attributes::AF);
                p.bump();
                continue;
            }
            Some("ng") => Attributes::NG,
            Some("nt") => Attributes::NT,
            Some("dbm") => Attributes::DBM,
            Some("cont") => Attributes::CONTIGUOUS,
            Some("pxn") => Attributes::PXN,
            Some("uxn") => Attributes::UXN,
            _ => break,
        };
        a.flags.insert(f);
        p.bump();
    }
    Ok(a)
}

fn mdesc(p: &mut Parser<'_>) -> R<Desc> {
    const WHAT: &str = "a descriptor: invalid, page, block, table or raw";
    let (w, _) = p.word(WHAT)?;
    match w {
        "invalid" => Ok(Desc::Invalid),
        "page" | "block" => {
            let pa = p.const_expr("an output address")?;
            Ok(Desc::Leaf {
                pa,
                attrs: attrs(p)?,
            })
        }
        "table" => Ok(Desc::Table(p.word("a table name")?.0.to_string())),
        "raw" => Ok(Desc::Raw(p.const_expr("a 64-bit descriptor value")?)),
        _ => {
            p.pos -= 1;
            Err(p.err(WHAT))
        }
    }
}

fn mop(p: &mut Parser<'_>) -> R<Op> {
    let (w, s) = p.word(MACHINE_OPS)?;
    Ok(match w {
        "store" => {
            let va = p.const_expr("a virtual address")?;
            let level = p.level()?;
            Op::Store {
                va,
                level,
                desc: mdesc(p)?,
            }
        }
        "cas" => {
            let va = p.const_expr("a virtual address")?;
            let level = p.level()?;
            let expected = mdesc(p)?;
            p.punct("=>")?;
            Op::Cas {
                va,
                level,
                expected,
                desc: mdesc(p)?,
            }
        }
        "dsb" => Op::Dsb(dsb_kind(p)?),
        "isb" => Op::Isb,
        "tlbi" => {
            let kind = tlbi_kind(p)?;
            let va = if kind.by_va() {
                p.const_expr("the TLBI's virtual address")?
            } else {
                0
            };
            let mut asid = 0;
            if p.at_key() == Some("asid") {
                let (w, s) = p.value("0..65535")?;
                asid = w
                    .parse()
                    .map_err(|_| p.err_at(s, format!("expected asid=0..65535, found `{w}`")))?;
            }
            Op::Tlbi(Tlbi {
                kind,
                va: VirtAddr(va),
                asid,
            })
        }
        "table" => {
            let (name, _) = p.word("a table name")?;
            let name = name.to_string();
            let (k, ks) = p.word("split or empty")?;
            match k {
                "split" => {
                    let va = p.const_expr("the VA of the block to split")?;
                    let level = p.level()?;
                    let attrs = if p.at_eol() { None } else { Some(attrs(p)?) };
                    Op::SplitTable {
                        name,
                        va,
                        level,
                        attrs,
                    }
                }
                "empty" => Op::EmptyTable(name),
                _ => return Err(p.err_at(ks, format!("expected split or empty, found `{k}`"))),
            }
        }
        "copy" => Op::Copy {
            dst: p.const_expr("a destination physical address")?,
            src: p.const_expr("a source physical address")?,
        },
        "write" => Op::Write {
            pa: p.const_expr("a physical address")?,
            value: p.const_expr("a value")?,
        },
        "free" => {
            if p.eat_word("table") {
                Op::FreeTable(p.word("a table name")?.0.to_string())
            } else if p.eat_word("table-at") {
                let va = p.const_expr("a virtual address")?;
                Op::FreeTableAt {
                    va,
                    level: p.level()?,
                }
            } else {
                let pa = p.const_expr("a physical address or `table NAME`")?;
                Op::Free {
                    pa,
                    order: order(p)?,
                }
            }
        }
        _ => return Err(p.err_at(s, format!("expected {MACHINE_OPS}, found `{w}`"))),
    })
}
