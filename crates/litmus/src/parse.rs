//! The reader of herd7 AArch64 litmus files: a lexer with positions and a
//! recursive-descent parser for the header, the initial state, the thread
//! columns and the final condition.

use crate::LitmusError;
use crate::ast::*;

/// A token kind.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Int(u64),
    Str(String),
    Punct(&'static str),
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
    col: usize,
}

const PUNCTS: &[&str] = &[
    "/\\", "\\/", "=>", "<>", "{", "}", "[", "]", "(", ")", ",", ";", ":", "=", "|", "#", "~", "+",
    "-", "*", "!", "&",
];

/// Splits `text` (starting at `line`, `col`) into tokens.
fn lex(file: &str, text: &str, line0: usize, col0: usize) -> Result<Vec<Token>, LitmusError> {
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
fn blank_comments(text: &str) -> String {
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
struct P<'a> {
    file: &'a str,
    toks: Vec<Token>,
    pos: usize,
    end: (usize, usize),
}

impl P<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }
    fn at(&self) -> (usize, usize) {
        self.toks
            .get(self.pos)
            .map_or(self.end, |t| (t.line, t.col))
    }
    fn err(&self, msg: impl Into<String>) -> LitmusError {
        let (line, col) = self.at();
        LitmusError::Syntax {
            file: self.file.into(),
            line,
            col,
            msg: msg.into(),
        }
    }
    fn unsupported(&self, what: impl Into<String>) -> LitmusError {
        let (line, col) = self.at();
        LitmusError::Unsupported {
            file: self.file.into(),
            line,
            col,
            what: what.into(),
        }
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.tok.clone());
        self.pos += 1;
        t
    }
    fn is(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }
    fn eat(&mut self, p: &str) -> bool {
        if self.is(p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, p: &str) -> Result<(), LitmusError> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(self.err(format!("expected `{p}`, found {}", self.describe())))
        }
    }
    fn describe(&self) -> String {
        match self.peek() {
            None => "end of input".into(),
            Some(Tok::Ident(s)) => format!("`{s}`"),
            Some(Tok::Int(n)) => format!("`{n}`"),
            Some(Tok::Str(s)) => format!("\"{s}\""),
            Some(Tok::Punct(p)) => format!("`{p}`"),
        }
    }
    fn ident(&mut self) -> Result<String, LitmusError> {
        match self.peek() {
            Some(Tok::Ident(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.err(format!("expected a name, found {}", self.describe()))),
        }
    }
    fn int(&mut self) -> Result<u64, LitmusError> {
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
    fn done(&self) -> bool {
        self.pos >= self.toks.len()
    }
}

/// The symbols of a test under construction.
#[derive(Default)]
struct Syms(Vec<String>);

impl Syms {
    fn get(&mut self, name: &str) -> Option<Sym> {
        if let Some(i) = self.0.iter().position(|s| s == name) {
            return Sym::try_from(i).ok();
        }
        if self.0.len() >= 60 {
            return None;
        }
        self.0.push(name.to_string());
        Sym::try_from(self.0.len() - 1).ok()
    }
}

fn parse_reg(s: &str) -> Option<(Reg, bool)> {
    let u = s.to_ascii_uppercase();
    match u.as_str() {
        "XZR" => return Some((ZR, false)),
        "WZR" => return Some((ZR, true)),
        _ => {}
    }
    let (w, n) = if let Some(n) = u.strip_prefix('X') {
        (false, n)
    } else if let Some(n) = u.strip_prefix('W') {
        (true, n)
    } else {
        return None;
    };
    let n: u8 = n.parse().ok()?;
    (n <= 30).then_some((n, w))
}

/// Parses a thread-register reference `N:Xr` (or `PN:Xr`).
fn thread_reg(p: &mut P<'_>) -> Result<Option<(u8, Reg)>, LitmusError> {
    if let (Some(Tok::Ident(t)), Some(Tok::Punct(":")), Some(Tok::Ident(r))) = (
        p.toks.get(p.pos).map(|t| &t.tok),
        p.toks.get(p.pos + 1).map(|t| &t.tok),
        p.toks.get(p.pos + 2).map(|t| &t.tok),
    ) && let Some(t) = t.strip_prefix('P').and_then(|n| n.parse::<u8>().ok())
        && let Some((r, _)) = parse_reg(r)
    {
        p.pos += 3;
        return Ok(Some((t, r)));
    }
    if let (Some(Tok::Int(t)), Some(Tok::Punct(":")), Some(Tok::Ident(r))) = (
        p.toks.get(p.pos).map(|t| &t.tok),
        p.toks.get(p.pos + 1).map(|t| &t.tok),
        p.toks.get(p.pos + 2).map(|t| &t.tok),
    ) && let Some((r, _)) = parse_reg(r)
    {
        let t = u8::try_from(*t).map_err(|_| p.err("thread number too large"))?;
        p.pos += 3;
        return Ok(Some((t, r)));
    }
    Ok(None)
}

/// Parses `PTE(x)`, `PA(x)`, `TTD(x)`, `pte_x`, `phy_x` or `x` as a value
/// naming an address.
fn address_value(p: &mut P<'_>, syms: &mut Syms) -> Result<Val, LitmusError> {
    let name = p.ident()?;
    let mut sym = |p: &P<'_>, n: &str| {
        syms.get(n)
            .ok_or_else(|| p.unsupported("more than 60 symbols"))
    };
    match name.as_str() {
        "PTE" | "TTD" | "PA" if p.is("(") => {
            p.expect("(")?;
            let inner = p.ident()?;
            let s = if inner == "PTE" || inner == "PA" {
                return Err(p.unsupported(format!("nested {name}({inner}(...))")));
            } else {
                sym(p, &inner)?
            };
            p.expect(")")?;
            Ok(if name == "PA" {
                Val::Pa(s)
            } else {
                Val::PteAddr(s)
            })
        }
        _ => {
            if let Some(x) = name.strip_prefix("pte_") {
                Ok(Val::PteAddr(sym(p, x)?))
            } else if let Some(x) = name.strip_prefix("phy_") {
                Ok(Val::Pa(sym(p, x)?))
            } else {
                Ok(Val::Va(sym(p, &name)?))
            }
        }
    }
}

/// Parses a descriptor value `(oa:PA(x), af:0, ...)`; `default` gives the
/// output address when the value has none.
fn desc_value(p: &mut P<'_>, syms: &mut Syms, default: Option<Sym>) -> Result<Val, LitmusError> {
    p.expect("(")?;
    let mut f: Option<PteFields> = default.map(PteFields::new);
    let mut pending: Vec<(String, u64)> = Vec::new();
    let mut attrs: Option<(u8, u8)> = None;
    loop {
        if p.eat(")") {
            break;
        }
        let key = p.ident()?;
        p.expect(":")?;
        match key.as_str() {
            "oa" => {
                let v = address_value(p, syms)?;
                let Val::Pa(s) = v else {
                    return Err(p.unsupported("an output address that is not PA(x)"));
                };
                let mut nf = PteFields::new(s);
                if let Some(old) = f {
                    nf = PteFields { oa: s, ..old };
                }
                f = Some(nf);
            }
            "valid" | "af" | "db" | "dbm" | "el0" => {
                let n = p.int()?;
                pending.push((key, n));
            }
            "attrs" => {
                p.expect("(")?;
                let mut attr = 0u8;
                let mut sh = 0u8;
                loop {
                    let a = p.ident()?;
                    if let Some((_, i)) = ATTRS.iter().find(|(n, _)| *n == a) {
                        attr = attr.max(*i);
                    } else {
                        match a.as_str() {
                            "Inner-shareable" | "ISH" => sh = 0,
                            "Outer-shareable" | "OSH" => sh = 1,
                            "Non-shareable" | "NSH" => sh = 2,
                            "iWB" | "oWB" => {}
                            _ => return Err(p.unsupported(format!("memory attribute `{a}`"))),
                        }
                    }
                    if p.eat(")") {
                        break;
                    }
                    p.expect(",")?;
                }
                attrs = Some((attr, sh));
            }
            _ => return Err(p.unsupported(format!("descriptor field `{key}`"))),
        }
        if p.eat(")") {
            break;
        }
        p.expect(",")?;
    }
    let Some(mut f) = f else {
        return Err(p.unsupported("a descriptor value without oa"));
    };
    for (k, n) in pending {
        let b = n != 0;
        match k.as_str() {
            "valid" => f.valid = b,
            "af" => f.af = b,
            "db" => f.db = b,
            "dbm" => f.dbm = b,
            _ => f.el0 = b,
        }
    }
    if let Some((a, s)) = attrs {
        f.attr = a;
        f.sh = s;
    }
    Ok(Val::Desc(f.encode()))
}

/// Parses a value on the right of `=`: a number, an address, a descriptor,
/// a label.
fn value(
    p: &mut P<'_>,
    syms: &mut Syms,
    default_oa: Option<Sym>,
    labels: &dyn Fn(&str) -> Option<Val>,
) -> Result<Val, LitmusError> {
    match p.peek() {
        Some(Tok::Int(_)) | Some(Tok::Punct("-")) => Ok(Val::Int(p.int()?)),
        Some(Tok::Punct("(")) => desc_value(p, syms, default_oa),
        Some(Tok::Ident(s)) if s == "label" => {
            p.pos += 1;
            p.expect(":")?;
            match p.next() {
                Some(Tok::Str(l)) => {
                    labels(&l).ok_or_else(|| p.err(format!("unknown label `{l}`")))
                }
                _ => Err(p.err("expected a label string")),
            }
        }
        Some(Tok::Ident(_)) => address_value(p, syms),
        _ => Err(p.err(format!("expected a value, found {}", p.describe()))),
    }
}

/// Parses a memory location `[x]`, `x`, `[PTE(x)]`, `pte_x`, `PTE(x)`.
fn location(p: &mut P<'_>, syms: &mut Syms) -> Result<Loc, LitmusError> {
    let bracket = p.eat("[");
    let v = address_value(p, syms)?;
    if bracket {
        p.expect("]")?;
    }
    Ok(match v {
        Val::Va(s) | Val::Pa(s) => Loc::Data(s),
        Val::PteAddr(s) => Loc::Pte(s),
        _ => return Err(p.err("expected a location")),
    })
}

fn parse_init(p: &mut P<'_>, syms: &mut Syms, t: &mut Test) -> Result<(), LitmusError> {
    let nolabel = |_: &str| None;
    while !p.done() {
        if p.eat(";") {
            continue;
        }
        // Optional C-like type: it gives an array's element size.
        let mut elem_size = 4u8;
        if let Some(Tok::Ident(ty)) = p.peek()
            && matches!(
                ty.as_str(),
                "int" | "uint64_t" | "int64_t" | "uint32_t" | "int32_t" | "pteval_t" | "intptr_t"
            )
        {
            if matches!(
                ty.as_str(),
                "uint64_t" | "int64_t" | "pteval_t" | "intptr_t"
            ) {
                elem_size = 8;
            }
            p.pos += 1;
        }
        if let Some((th, r)) = thread_reg(p)? {
            if p.is(";") || p.done() {
                // A typed register without a value: it holds 0.
                continue;
            }
            p.expect("=")?;
            let v = value(p, syms, None, &nolabel)?;
            t.init_regs.push((th, r, v));
            continue;
        }
        let loc = location(p, syms)?;
        if p.is("[") {
            array_decl(p, t, loc, elem_size)?;
            continue;
        }
        if p.is(";") || p.done() {
            // A declaration without a value: the location holds 0.
            continue;
        }
        p.expect("=")?;
        let oa = match loc {
            Loc::Pte(s) => Some(s),
            Loc::Data(_) | Loc::Elem(..) => None,
        };
        let v = value(p, syms, oa, &nolabel)?;
        t.init_mem.push((loc, v));
    }
    Ok(())
}

/// Parses the rest of an array declaration `x[N]` or `x[N]={v0,v1,...}`
/// (herd7's `int x[3]={0,0,0}`): element i is at byte offset i times the
/// element size on the symbol's page; missing values are 0.
fn array_decl(p: &mut P<'_>, t: &mut Test, loc: Loc, size: u8) -> Result<(), LitmusError> {
    let Loc::Data(s) = loc else {
        return Err(p.err("expected an array name before `[`"));
    };
    p.expect("[")?;
    let n = p.int()?;
    p.expect("]")?;
    // The elements stay on the symbol's 4K page.
    let n = u16::try_from(n)
        .ok()
        .filter(|&n| n >= 1 && u64::from(n) * u64::from(size) <= 4096)
        .ok_or_else(|| p.err("expected an array length of 1 to a page"))?;
    if t.arrays.iter().any(|a| a.0 == s) {
        return Err(p.err("array declared twice"));
    }
    t.arrays.push((s, size, n));
    if !p.eat("=") {
        return Ok(());
    }
    p.expect("{")?;
    let mut i = 0u16;
    while !p.eat("}") {
        if i > 0 {
            p.expect(",")?;
        }
        if i >= n {
            return Err(p.err(format!("more than {n} values for an array of {n}")));
        }
        let v = Val::Int(p.int()?);
        let l = if i == 0 {
            Loc::Data(s)
        } else {
            Loc::Elem(s, i * u16::from(size))
        };
        t.init_mem.push((l, v));
        i += 1;
    }
    Ok(())
}

/// Parses one instruction cell.
fn parse_instr(p: &mut P<'_>, label: &dyn Fn(&str) -> Option<u16>) -> Result<Instr, LitmusError> {
    let op = p.ident()?.to_ascii_uppercase();
    let reg = |p: &mut P<'_>| -> Result<(Reg, bool), LitmusError> {
        let s = p.ident()?;
        parse_reg(&s).ok_or_else(|| p.err(format!("expected a register, found `{s}`")))
    };
    let comma = |p: &mut P<'_>| p.expect(",");
    let operand = |p: &mut P<'_>| -> Result<Operand, LitmusError> {
        if p.eat("#") || matches!(p.peek(), Some(Tok::Int(_))) {
            Ok(Operand::Imm(p.int()?))
        } else {
            let s = p.ident()?;
            let (r, w) = parse_reg(&s)
                .ok_or_else(|| p.err(format!("expected a register or #imm, found `{s}`")))?;
            Ok(Operand::Reg {
                reg: r,
                width: rw(w),
            })
        }
    };
    let target = |p: &mut P<'_>| -> Result<u16, LitmusError> {
        let l = p.ident()?;
        label(&l).ok_or_else(|| p.err(format!("unknown label `{l}`")))
    };
    let addr = |p: &mut P<'_>| -> Result<Addr, LitmusError> {
        p.expect("[")?;
        let (base, _) = reg(p)?;
        let mut off = Operand::Imm(0);
        if p.eat(",") {
            off = operand(p)?;
            if p.eat(",") {
                let ext = p.ident()?.to_ascii_uppercase();
                match ext.as_str() {
                    "SXTW" | "UXTW" | "SXTX" | "UXTX" => {}
                    "LSL" if matches!(off, Operand::Reg { .. }) => {
                        return Err(p.unsupported("a shifted register offset"));
                    }
                    _ => return Err(p.unsupported(format!("address extension `{ext}`"))),
                }
            }
        }
        p.expect("]")?;
        if p.is("!") || p.is(",") {
            return Err(p.unsupported("pre/post-indexed addressing"));
        }
        Ok(Addr { base, off })
    };
    let width = |w: bool, op: &str| -> Width {
        if op.ends_with('B') && !op.ends_with("SWPB") {
            Width::Byte
        } else if op.ends_with('H') {
            Width::Half
        } else if w {
            Width::Word
        } else {
            Width::Double
        }
    };
    let cond = |p: &P<'_>, s: &str| -> Result<CondCode, LitmusError> {
        match s {
            "EQ" => Ok(CondCode::Eq),
            "NE" => Ok(CondCode::Ne),
            _ => Err(p.unsupported(format!("condition code {s}"))),
        }
    };
    let i = match op.as_str() {
        "NOP" => Instr::Nop,
        "MOV" => {
            let (d, w) = reg(p)?;
            comma(p)?;
            Instr::Mov {
                dst: d,
                width: rw(w),
                src: operand(p)?,
            }
        }
        "ADD" | "SUB" | "EOR" | "AND" | "ORR" | "BIC" | "LSR" | "LSL" => {
            let a = match op.as_str() {
                "ADD" => Alu::Add,
                "SUB" => Alu::Sub,
                "EOR" => Alu::Eor,
                "AND" => Alu::And,
                "ORR" => Alu::Orr,
                "BIC" => Alu::Bic,
                "LSR" => Alu::Lsr,
                _ => Alu::Lsl,
            };
            let (d, w) = reg(p)?;
            comma(p)?;
            let (n, _) = reg(p)?;
            comma(p)?;
            let m = operand(p)?;
            if p.eat(",") {
                let ext = p.ident()?.to_ascii_uppercase();
                if !matches!(ext.as_str(), "SXTW" | "UXTW" | "SXTX" | "UXTX") {
                    return Err(p.unsupported(format!("{op} with a shifted operand ({ext})")));
                }
            }
            Instr::Alu {
                op: a,
                dst: d,
                width: rw(w),
                lhs: n,
                rhs: m,
            }
        }
        "CMP" => {
            let (n, _) = reg(p)?;
            comma(p)?;
            Instr::Cmp {
                lhs: n,
                rhs: operand(p)?,
            }
        }
        "CSEL" => {
            let (d, _) = reg(p)?;
            comma(p)?;
            let (n, _) = reg(p)?;
            comma(p)?;
            let (m, _) = reg(p)?;
            comma(p)?;
            let c = p.ident()?.to_ascii_uppercase();
            Instr::Csel {
                dst: d,
                if_true: n,
                if_false: m,
                cond: cond(p, &c)?,
            }
        }
        "CSET" => {
            let (d, _) = reg(p)?;
            comma(p)?;
            let c = p.ident()?.to_ascii_uppercase();
            Instr::Cset {
                dst: d,
                cond: cond(p, &c)?,
            }
        }
        "B" => Instr::B {
            cond: None,
            target: target(p)?,
        },
        "B.EQ" | "B.NE" => {
            let c = cond(p, &op[2..])?;
            Instr::B {
                cond: Some(c),
                target: target(p)?,
            }
        }
        "CBZ" | "CBNZ" => {
            let (r, _) = reg(p)?;
            comma(p)?;
            Instr::Cbz {
                on: if op == "CBNZ" {
                    BranchOn::NonZero
                } else {
                    BranchOn::Zero
                },
                reg: r,
                target: target(p)?,
            }
        }
        "LDR" | "LDRB" | "LDRH" | "LDAR" | "LDARB" | "LDARH" | "LDAPR" | "LDXR" | "LDAXR" => {
            let (t, w) = reg(p)?;
            comma(p)?;
            let a = addr(p)?;
            Instr::Load {
                dst: t,
                addr: a,
                width: width(w, &op),
                order: if op.starts_with("LDAP") {
                    LoadOrder::AcquirePc
                } else if op.starts_with("LDA") {
                    LoadOrder::Acquire
                } else {
                    LoadOrder::Plain
                },
                exclusive: if op.contains("XR") {
                    Exclusivity::Exclusive
                } else {
                    Exclusivity::Plain
                },
            }
        }
        "STR" | "STRB" | "STRH" | "STLR" | "STLRB" | "STLRH" => {
            let (t, w) = reg(p)?;
            comma(p)?;
            let a = addr(p)?;
            Instr::Store {
                src: t,
                addr: a,
                width: width(w, &op),
                order: if op.starts_with("STL") {
                    StoreOrder::Release
                } else {
                    StoreOrder::Plain
                },
            }
        }
        "STXR" | "STLXR" => {
            let (s, _) = reg(p)?;
            comma(p)?;
            let (t, w) = reg(p)?;
            comma(p)?;
            Instr::StoreExclusive {
                status: s,
                src: t,
                addr: addr(p)?,
                width: width(w, ""),
                order: if op.starts_with("STL") {
                    StoreOrder::Release
                } else {
                    StoreOrder::Plain
                },
            }
        }
        "SWP" | "SWPA" | "SWPL" | "SWPAL" | "CAS" | "CASA" | "CASL" | "CASAL" => {
            let (s, w) = reg(p)?;
            comma(p)?;
            let (t, _) = reg(p)?;
            comma(p)?;
            let a = addr(p)?;
            let width = width(w, "");
            let order = RmwOrder::from_suffix(&op[3..]).unwrap_or(RmwOrder::Plain);
            if op.starts_with("SWP") {
                Instr::Swp {
                    src: s,
                    dst: t,
                    addr: a,
                    width,
                    order,
                }
            } else {
                Instr::Cas {
                    expected: s,
                    new: t,
                    addr: a,
                    width,
                    order,
                }
            }
        }
        _ if [
            "LDADD", "LDCLR", "LDSET", "LDEOR", "STADD", "STCLR", "STSET", "STEOR",
        ]
        .iter()
        .any(|b| op.starts_with(b) && RmwOrder::from_suffix(&op[5..]).is_some()) =>
        {
            let a = match &op[2..5] {
                "ADD" => AmoOp::Add,
                "CLR" => AmoOp::Clr,
                "SET" => AmoOp::Set,
                _ => AmoOp::Eor,
            };
            let (s, w) = reg(p)?;
            comma(p)?;
            let t = if op.starts_with("LD") {
                let (t, _) = reg(p)?;
                comma(p)?;
                t
            } else {
                ZR
            };
            Instr::Amo {
                op: a,
                src: s,
                dst: t,
                addr: addr(p)?,
                width: width(w, ""),
                order: RmwOrder::from_suffix(&op[5..]).unwrap_or(RmwOrder::Plain),
            }
        }
        "DMB" | "DSB" => {
            let k = p.ident()?.to_ascii_uppercase();
            let kind = if k.ends_with("LD") {
                BarrierKind::Ld
            } else if k.ends_with("ST") {
                BarrierKind::St
            } else {
                BarrierKind::Full
            };
            if op == "DMB" {
                Instr::Dmb { kind }
            } else {
                Instr::Dsb { kind }
            }
        }
        "ISB" => Instr::Isb,
        "TLBI" => {
            let k = p.ident()?.to_ascii_uppercase();
            let shareability = if k.ends_with("IS") || k.ends_with("OS") {
                TlbiShareability::Broadcast
            } else {
                TlbiShareability::Local
            };
            let base = k.trim_end_matches("IS").trim_end_matches("OS");
            match base {
                "VMALLE1" | "ALLE1" | "VMALLS12E1" | "ALLE2" | "ASIDE1" => {
                    if p.eat(",") {
                        reg(p)?;
                    }
                    Instr::Tlbi {
                        scope: TlbiScope::All,
                        shareability,
                    }
                }
                "VAE1" | "VAAE1" | "VALE1" | "VAALE1" | "IPAS2E1" | "VAE2" => {
                    comma(p)?;
                    let (r, _) = reg(p)?;
                    Instr::Tlbi {
                        scope: TlbiScope::Page(r),
                        shareability,
                    }
                }
                _ => return Err(p.unsupported(format!("TLBI {k}"))),
            }
        }
        "ADR" => {
            let (d, _) = reg(p)?;
            comma(p)?;
            Instr::Adr {
                dst: d,
                target: target(p)?,
            }
        }
        "MSR" => {
            let sr = p.ident()?.to_ascii_uppercase();
            if sr != "ELR_EL1" {
                return Err(p.unsupported(format!("MSR {sr}")));
            }
            comma(p)?;
            Instr::MsrElr { src: reg(p)?.0 }
        }
        "ERET" => Instr::Eret,
        _ => return Err(p.unsupported(format!("instruction {op}"))),
    };
    if !p.done() {
        return Err(p.err(format!("unexpected {} after the instruction", p.describe())));
    }
    Ok(i)
}

/// Parses a final-condition proposition.
fn prop(
    p: &mut P<'_>,
    syms: &mut Syms,
    t: &Test,
    labels: &dyn Fn(&str) -> Option<Val>,
) -> Result<Prop, LitmusError> {
    let mut ors = vec![conj(p, syms, t, labels)?];
    while p.eat("\\/") {
        ors.push(conj(p, syms, t, labels)?);
    }
    Ok(if ors.len() == 1 {
        ors.remove(0)
    } else {
        Prop::Or(ors)
    })
}

fn conj(
    p: &mut P<'_>,
    syms: &mut Syms,
    t: &Test,
    labels: &dyn Fn(&str) -> Option<Val>,
) -> Result<Prop, LitmusError> {
    let mut ands = vec![atom(p, syms, t, labels)?];
    while p.eat("/\\") {
        ands.push(atom(p, syms, t, labels)?);
    }
    if p.is("=>") {
        return Err(p.unsupported("implication in the final condition"));
    }
    Ok(if ands.len() == 1 {
        ands.remove(0)
    } else {
        Prop::And(ands)
    })
}

/// Parses `fault(P0:L0,x,MMU:Permission)` after the keyword.
fn fault_atom(p: &mut P<'_>, syms: &mut Syms, t: &Test) -> Result<Obs, LitmusError> {
    p.expect("(")?;
    let th = p.ident()?;
    let tid: u8 = th
        .strip_prefix('P')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| p.err(format!("expected a thread Pn, found `{th}`")))?;
    let mut pc = None;
    if p.eat(":") {
        let l = p.ident()?;
        let thr = t
            .threads
            .get(usize::from(tid))
            .ok_or_else(|| p.err(format!("no thread P{tid}")))?;
        pc = Some(
            thr.labels
                .iter()
                .find(|(n, _)| *n == l)
                .map(|x| x.1)
                .ok_or_else(|| p.err(format!("unknown label `{l}` of P{tid}")))?,
        );
    }
    let mut va = None;
    let mut kind = None;
    while p.eat(",") {
        let name = p.ident()?;
        if name == "MMU" && p.eat(":") {
            let k = p.ident()?;
            kind = Some(match k.as_str() {
                "Translation" => FaultKind::Translation,
                "AccessFlag" => FaultKind::AccessFlag,
                "Permission" => FaultKind::Permission,
                _ => return Err(p.unsupported(format!("fault type MMU:{k}"))),
            });
        } else if va.is_none() {
            va = Some(
                syms.get(&name)
                    .ok_or_else(|| p.unsupported("more than 60 symbols"))?,
            );
        } else {
            return Err(p.unsupported(format!("fault type `{name}`")));
        }
    }
    p.expect(")")?;
    Ok(Obs::Fault(tid, pc, va, kind))
}

fn atom(
    p: &mut P<'_>,
    syms: &mut Syms,
    t: &Test,
    labels: &dyn Fn(&str) -> Option<Val>,
) -> Result<Prop, LitmusError> {
    if p.eat("~")
        || matches!(p.peek(), Some(Tok::Ident(s)) if s == "not") && {
            p.pos += 1;
            true
        }
    {
        return Ok(Prop::Not(Box::new(atom(p, syms, t, labels)?)));
    }
    if p.eat("(") {
        let q = prop(p, syms, t, labels)?;
        p.expect(")")?;
        return Ok(q);
    }
    if let Some(Tok::Ident(s)) = p.peek() {
        match s.as_str() {
            "true" => {
                p.pos += 1;
                return Ok(Prop::True);
            }
            "false" => {
                p.pos += 1;
                return Ok(Prop::Not(Box::new(Prop::True)));
            }
            "fault" | "Fault" => {
                p.pos += 1;
                return Ok(Prop::Fault(fault_atom(p, syms, t)?));
            }
            _ => {}
        }
    }
    let obs = if let Some((th, r)) = thread_reg(p)? {
        Obs::Reg(th, r)
    } else {
        Obs::Mem(location(p, syms)?)
    };
    let ne = p.eat("<>");
    if !ne {
        p.expect("=")?;
    }
    let oa = match obs {
        Obs::Mem(Loc::Pte(s)) => Some(s),
        _ => None,
    };
    let v = value(p, syms, oa, labels)?;
    let eq = Prop::Eq(obs, v);
    Ok(if ne { Prop::Not(Box::new(eq)) } else { eq })
}

/// Parses the text of a litmus file.
///
/// # Errors
///
/// Returns [`LitmusError::Syntax`] (file, line, column, what was expected)
/// for malformed input and [`LitmusError::Unsupported`] naming the
/// construct for valid herd7 input the model does not handle.
pub fn parse(file: &str, src: &str) -> Result<Test, LitmusError> {
    let text = blank_comments(src);
    let lines: Vec<&str> = text.split('\n').collect();
    let syntax = |line: usize, col: usize, msg: &str| LitmusError::Syntax {
        file: file.into(),
        line,
        col,
        msg: msg.into(),
    };
    let unsupported = |line: usize, col: usize, what: String| LitmusError::Unsupported {
        file: file.into(),
        line,
        col,
        what,
    };
    // Header line: `AArch64 NAME`.
    let first = lines
        .iter()
        .position(|l| !l.trim().is_empty())
        .ok_or_else(|| syntax(1, 1, "empty file: expected `AArch64 NAME`"))?;
    let mut words = lines[first].split_whitespace();
    let arch = words.next().unwrap_or("");
    if arch != "AArch64" {
        return Err(unsupported(first + 1, 1, format!("architecture `{arch}`")));
    }
    let name = words
        .next()
        .ok_or_else(|| {
            syntax(
                first + 1,
                arch.len() + 1,
                "expected the test's name after `AArch64`",
            )
        })?
        .to_string();
    let mut t = Test {
        name,
        variants: Vec::new(),
        fault_mode: FaultMode::default(),
        tthm: Tthm::default(),
        el0: 0,
        syms: Vec::new(),
        init_mem: Vec::new(),
        arrays: Vec::new(),
        init_regs: Vec::new(),
        threads: Vec::new(),
        locations: Vec::new(),
        quant: Quant::Exists,
        prop: Prop::True,
    };
    // Header lines up to `{`.
    let mut li = first + 1;
    let brace_line = loop {
        let Some(l) = lines.get(li) else {
            return Err(syntax(li + 1, 1, "expected `{` opening the initial state"));
        };
        if l.trim_start().starts_with('{') {
            break li;
        }
        if let Some((k, v)) = l.split_once('=') {
            let k = k.trim();
            let v = v.trim();
            // herd7 matches header keys case-insensitively (herdtools7
            // `lib/miscParser.ml`, `key_match`) and splits the variant
            // tags at commas and blanks (`lib/lexSplit.mll`,
            // `strings_spaces`).
            match k.to_ascii_lowercase().as_str() {
                "variant" => {
                    for w in v.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
                        if let Some(m) = FaultMode::parse_tag(w) {
                            t.fault_mode = m;
                        }
                        t.variants.push(w.to_string());
                    }
                }
                "tthm" => {
                    for w in v.split_whitespace() {
                        let (who, what) = match w.split_once(':') {
                            Some((p, f)) => {
                                let n: u32 = p
                                    .strip_prefix('P')
                                    .and_then(|n| n.parse().ok())
                                    .filter(|n| *n < 64)
                                    .ok_or_else(|| {
                                        syntax(li + 1, 1, "expected Pn:HA or Pn:HD in TTHM")
                                    })?;
                                (1u64 << n, f)
                            }
                            None => (u64::MAX, w),
                        };
                        match what {
                            "HA" => t.tthm.ha |= who,
                            "HD" => {
                                t.tthm.hd |= who;
                                // FEAT_HAFDBS: dirty-state management implies
                                // hardware AF (D8.4.1; herd7's HD implies HA).
                                t.tthm.ha |= who;
                            }
                            _ => return Err(unsupported(li + 1, 1, format!("TTHM `{what}`"))),
                        }
                    }
                }
                "el0" => {
                    for w in v.split([',', ' ', ';']).filter(|w| !w.is_empty()) {
                        let n: u32 = w
                            .strip_prefix('P')
                            .and_then(|n| n.parse().ok())
                            .filter(|n| *n < 64)
                            .ok_or_else(|| syntax(li + 1, 1, "expected Pn in EL0"))?;
                        t.el0 |= 1 << n;
                    }
                }
                _ => {}
            }
        }
        li += 1;
    };
    // Initial state: from `{` to the matching `}`.
    let open_col = lines[brace_line].find('{').unwrap_or(0);
    let mut init_text = String::new();
    let mut close: Option<(usize, usize)> = None;
    // Braces nest: an array's values are in braces (`int x[3]={0,0,0};`).
    let mut depth = 0usize;
    'outer: for (j, l) in lines.iter().enumerate().skip(brace_line) {
        let start = if j == brace_line { open_col + 1 } else { 0 };
        let s = l.get(start..).unwrap_or("");
        for (c, ch) in s.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                '}' => {
                    init_text.push_str(&s[..c]);
                    close = Some((j, start + c));
                    break 'outer;
                }
                _ => {}
            }
        }
        init_text.push_str(s);
        init_text.push('\n');
    }
    let Some((close_line, close_col)) = close else {
        return Err(syntax(
            brace_line + 1,
            open_col + 1,
            "no `}` closing the initial state",
        ));
    };
    let mut syms = Syms::default();
    let toks = lex(file, &init_text, brace_line + 1, open_col + 2)?;
    let mut p = P {
        file,
        toks,
        pos: 0,
        end: (close_line + 1, close_col + 1),
    };
    parse_init(&mut p, &mut syms, &mut t)?;

    // Thread columns: lines after `}` up to the condition.
    let rest_first = close_line;
    let after_brace = lines[close_line].get(close_col + 1..).unwrap_or("");
    let mut code_lines: Vec<(usize, usize, String)> = Vec::new();
    if !after_brace.trim().is_empty() {
        code_lines.push((close_line, close_col + 1, after_brace.to_string()));
    }
    let mut cond_start = None;
    for (j, l) in lines.iter().enumerate().skip(rest_first + 1) {
        let tr = l.trim_start();
        let kw = tr
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '~')
            .next()
            .unwrap_or("");
        if ["exists", "~exists", "forall", "locations", "filter", "~"].contains(&kw)
            || tr.starts_with('~')
        {
            cond_start = Some(j);
            break;
        }
        code_lines.push((j, 0, l.to_string()));
    }
    let Some(cond_start) = cond_start else {
        return Err(syntax(
            lines.len(),
            1,
            "expected the final condition (exists, ~exists or forall)",
        ));
    };
    let code_lines: Vec<_> = code_lines
        .into_iter()
        .filter(|(_, _, l)| !l.trim().is_empty())
        .collect();
    let Some(((hl, hc, header), rows)) = code_lines.split_first() else {
        return Err(syntax(
            rest_first + 2,
            1,
            "expected the thread header `P0 | P1 ;`",
        ));
    };
    // Column header: P0 | P1 | P1.F ;
    let mut cols: Vec<(usize, bool)> = Vec::new();
    let mut col = *hc;
    for cell in header.trim_end().trim_end_matches(';').split('|') {
        let c = cell.trim();
        let (n, handler) = match c.strip_suffix(".F") {
            Some(n) => (n, true),
            None => (c, false),
        };
        let id: usize = n
            .strip_prefix('P')
            .and_then(|n| n.parse().ok())
            .filter(|n| *n < 64)
            .ok_or_else(|| {
                syntax(
                    hl + 1,
                    col + 1,
                    &format!("expected a thread name Pn, found `{c}`"),
                )
            })?;
        cols.push((id, handler));
        col += cell.len() + 1;
    }
    let nthreads = cols.iter().map(|c| c.0 + 1).max().unwrap_or(0);
    // Gather cells per column: (line, col, text).
    let mut cells: Vec<Vec<(usize, usize, String)>> = vec![Vec::new(); cols.len()];
    for (ln, c0, l) in rows {
        let body = l.trim_end();
        let body = body.strip_suffix(';').unwrap_or(body);
        let mut c = *c0;
        for (k, cell) in body.split('|').enumerate() {
            if k >= cols.len() {
                if cell.trim().is_empty() {
                    continue;
                }
                return Err(syntax(ln + 1, c + 1, "more columns than threads"));
            }
            let lead = cell.len() - cell.trim_start().len();
            let txt = cell.trim().trim_end_matches(';').trim().to_string();
            cells[k].push((*ln, c + lead, txt));
            c += cell.len() + 1;
        }
    }
    // First pass: labels (instruction index per column, handler after main).
    let mut threads: Vec<Thread> = vec![Thread::default(); nthreads];
    let split_label = |s: &str| -> Option<(String, String)> {
        let (l, r) = s.split_once(':')?;
        let l = l.trim();
        (!l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !l.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| (l.to_string(), r.trim().to_string()))
    };
    let mut main_len = vec![0usize; nthreads];
    for (k, (tid, handler)) in cols.iter().enumerate() {
        if !handler {
            let mut n = 0;
            for (_, _, txt) in &cells[k] {
                let mut s = txt.clone();
                while let Some((_, r)) = split_label(&s) {
                    s = r;
                }
                if !s.is_empty() {
                    n += 1;
                }
            }
            main_len[*tid] = n;
        }
    }
    for (k, (tid, handler)) in cols.iter().enumerate() {
        let base = if *handler { main_len[*tid] + 1 } else { 0 };
        let mut n = base;
        for (_, _, txt) in &cells[k] {
            let mut s = txt.clone();
            while let Some((l, r)) = split_label(&s) {
                let idx = u16::try_from(n).map_err(|_| syntax(1, 1, "thread too long"))?;
                threads[*tid].labels.push((l, idx));
                s = r;
            }
            if !s.is_empty() {
                n += 1;
            }
        }
    }
    // Second pass: instructions.
    for (k, (tid, handler)) in cols.iter().enumerate() {
        let th = threads[*tid].clone();
        let lab = |l: &str| th.labels.iter().find(|(n, _)| n == l).map(|x| x.1);
        let mut code = Vec::new();
        let mut texts = Vec::new();
        for (ln, c, txt) in &cells[k] {
            let mut s = txt.clone();
            while let Some((_, r)) = split_label(&s) {
                s = r;
            }
            if s.is_empty() {
                continue;
            }
            let off = txt.len() - s.len();
            let toks = lex(file, &s, ln + 1, c + off + 1)?;
            let mut p = P {
                file,
                toks,
                pos: 0,
                end: (ln + 1, c + txt.len() + 1),
            };
            code.push(parse_instr(&mut p, &lab)?);
            texts.push(s);
        }
        let thr = &mut threads[*tid];
        if *handler {
            if thr.code.is_empty() {
                thr.code.push(Instr::Halt);
                thr.text.push(String::new());
            }
            thr.handler = Some(u16::try_from(thr.code.len()).unwrap_or(u16::MAX));
        }
        thr.code.extend(code);
        thr.text.extend(texts);
        thr.code.push(Instr::Halt);
        thr.text.push(String::new());
    }
    t.threads = threads;

    // The condition: `locations [...]`, then the quantifier and proposition.
    let mut cond_text = String::new();
    for l in &lines[cond_start..] {
        cond_text.push_str(l);
        cond_text.push('\n');
    }
    let toks = lex(file, &cond_text, cond_start + 1, 1)?;
    let mut p = P {
        file,
        toks,
        pos: 0,
        end: (lines.len(), 1),
    };
    let threads_ref = t.threads.clone();
    let labels = move |s: &str| -> Option<Val> {
        let (th, l) = s.split_once(':')?;
        let tid: u8 = th.strip_prefix('P')?.parse().ok()?;
        let pc = threads_ref
            .get(usize::from(tid))?
            .labels
            .iter()
            .find(|(n, _)| n == l)?
            .1;
        Some(Val::Label(tid, pc))
    };
    loop {
        match p.peek() {
            Some(Tok::Ident(s)) if s == "locations" => {
                p.pos += 1;
                p.expect("[")?;
                while !p.eat("]") {
                    if p.done() {
                        return Err(p.err("expected `]` closing locations"));
                    }
                    if p.eat(";") {
                        continue;
                    }
                    let o = if let Some((th, r)) = thread_reg(&mut p)? {
                        Obs::Reg(th, r)
                    } else if matches!(p.peek(), Some(Tok::Ident(s)) if s == "fault" || s == "Fault")
                    {
                        p.pos += 1;
                        fault_atom(&mut p, &mut syms, &t)?
                    } else {
                        Obs::Mem(location(&mut p, &mut syms)?)
                    };
                    t.locations.push(o);
                }
            }
            Some(Tok::Ident(s)) if s == "filter" => {
                return Err(p.unsupported("filter"));
            }
            _ => break,
        }
    }
    // `locations [...]` alone is a complete condition: herd7 then takes
    // `forall (true)` (herdtools7 `lib/stateParser.mly`, rule `constr`,
    // its empty case: `ConstrGen.constr_true`) and prints the states.
    if p.done() && !t.locations.is_empty() {
        t.quant = Quant::Forall;
        t.prop = Prop::True;
        t.syms = syms.0;
        return check_threads(file, t, brace_line);
    }
    t.quant = if p.eat("~") {
        match p.ident()?.as_str() {
            "exists" => Quant::NotExists,
            other => return Err(p.err(format!("expected `exists` after `~`, found `{other}`"))),
        }
    } else {
        match p.peek() {
            Some(Tok::Ident(s)) if s == "exists" => {
                p.pos += 1;
                Quant::Exists
            }
            Some(Tok::Ident(s)) if s == "forall" => {
                p.pos += 1;
                Quant::Forall
            }
            _ => {
                return Err(p.err(format!(
                    "expected exists, ~exists or forall, found {}",
                    p.describe()
                )));
            }
        }
    };
    t.prop = prop(&mut p, &mut syms, &t, &labels)?;
    if !p.done() {
        return Err(p.err(format!(
            "unexpected {} after the final condition",
            p.describe()
        )));
    }
    t.syms = syms.0;
    check_threads(file, t, brace_line)
}

/// Checks that every initial register belongs to a thread of the test.
fn check_threads(file: &str, t: Test, brace_line: usize) -> Result<Test, LitmusError> {
    for (th, _, _) in &t.init_regs {
        if usize::from(*th) >= t.threads.len() {
            return Err(LitmusError::Syntax {
                file: file.into(),
                line: brace_line + 1,
                col: 1,
                msg: format!("register of thread {th}, which has no column"),
            });
        }
    }
    Ok(t)
}

/// The width of a register named `Wn` (`w`) or `Xn`.
fn rw(w: bool) -> RegWidth {
    if w { RegWidth::W } else { RegWidth::X }
}
