//! Values and locations as the initial state and the conditions write them:
//! the symbol table, registers (`P0:X1`), addresses (`x`, `PA(x)`,
//! `PTE(x)`), descriptors (`(oa:PA(x), valid:0, ...)`), and locations.

use super::*;

/// The symbols of a test under construction.
#[derive(Default)]
pub(super) struct Syms(pub(super) Vec<String>);

pub(super) fn parse_reg(s: &str) -> Option<(Reg, bool)> {
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
pub(super) fn thread_reg(p: &mut P<'_>) -> Result<Option<(u8, Reg)>, LitmusError> {
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
pub(super) fn value(
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
pub(super) fn location(p: &mut P<'_>, syms: &mut Syms) -> Result<Loc, LitmusError> {
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

impl Syms {
    pub(super) fn get(&mut self, name: &str) -> Option<Sym> {
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
