//! The final condition: propositions, conjunctions, atoms (register and
//! memory equalities, herd7's `Fault(...)`).

use super::*;

/// Parses a final-condition proposition.
pub(super) fn prop(
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
pub(super) fn fault_atom(p: &mut P<'_>, syms: &mut Syms, t: &Test) -> Result<Obs, LitmusError> {
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
