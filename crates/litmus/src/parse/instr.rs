//! A thread column's instruction: the mnemonic and operands read into a
//! typed [`Instr`].

use super::*;

/// Parses one instruction cell.
pub(super) fn parse_instr(
    p: &mut P<'_>,
    label: &dyn Fn(&str) -> Option<u16>,
) -> Result<Instr, LitmusError> {
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

/// The width of a register named `Wn` (`w`) or `Xn`.
fn rw(w: bool) -> RegWidth {
    if w { RegWidth::W } else { RegWidth::X }
}
