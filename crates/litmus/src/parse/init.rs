//! The initial state: register and memory initializers, array
//! declarations.

use super::*;

pub(super) fn parse_init(p: &mut P<'_>, syms: &mut Syms, t: &mut Test) -> Result<(), LitmusError> {
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
