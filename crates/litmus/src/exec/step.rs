//! The SC step: one instruction of one CPU executed in program order, per
//! instruction kind (loads, stores, exclusives, atomics, barriers, TLBIs,
//! branches, ALU), with the register data flow early walks depend on.

use super::*;

fn holds(cc: CondCode, z: bool) -> bool {
    match cc {
        CondCode::Eq => z,
        CondCode::Ne => !z,
    }
}

/// Truncates a value to `w` bytes (addresses and descriptors are kept).
pub(super) fn narrow(v: Val, w: u8) -> Val {
    match v {
        Val::Int(n) if w < 8 => Val::Int(n & ((1u64 << (8 * u32::from(w))) - 1)),
        _ => v,
    }
}

/// Keeps an address's tag when arithmetic leaves the number unchanged
/// (`ADD X0,X1,X2` with X2 = 0 after `EOR X2,X3,X3`), or finds the
/// location a computed number names.
fn retag(r: u64, inputs: &[Val], cx: &Ctx<'_>) -> Val {
    for v in inputs {
        if !matches!(v, Val::Int(_)) && v.num() == r {
            return *v;
        }
    }
    if inputs.iter().any(|v| matches!(v, Val::Desc(_))) {
        return Val::Desc(r);
    }
    match cx.resolve(r) {
        Some(v) if r != 0 => v,
        _ => Val::Int(r),
    }
}

fn alu(op: Alu, x: Val, y: Val, cx: &Ctx<'_>) -> Val {
    let (a, b) = (x.num(), y.num());
    let r = match op {
        Alu::Add => a.wrapping_add(b),
        Alu::Sub => a.wrapping_sub(b),
        Alu::Eor => a ^ b,
        Alu::And => a & b,
        Alu::Orr => a | b,
        Alu::Bic => a & !b,
        Alu::Lsr => a.checked_shr(b as u32).unwrap_or(0),
        Alu::Lsl => a.checked_shl(b as u32).unwrap_or(0),
    };
    if matches!(op, Alu::Lsr | Alu::Lsl) && !matches!(x, Val::Desc(_)) {
        return Val::Int(r);
    }
    retag(r, &[x, y], cx)
}

impl Ctx<'_> {
    pub(super) fn reg(st: &State, c: usize, r: Reg) -> Val {
        st.cpus[c]
            .regs
            .get(usize::from(r))
            .copied()
            .unwrap_or(Val::Int(0))
    }

    pub(super) fn set(st: &mut State, c: usize, r: Reg, v: Val) {
        if r != ZR {
            let regs = &mut st.cpus[c].regs;
            let r = usize::from(r);
            if r >= regs.len() {
                regs.resize(r + 1, Val::Int(0));
            }
            regs[r] = v;
        }
    }

    fn operand(st: &State, c: usize, o: Operand) -> Val {
        match o {
            Operand::Imm(n) => Val::Int(n),
            Operand::Reg { reg: r, width: w } => {
                let v = Self::reg(st, c, r);
                if w == RegWidth::W { narrow(v, 4) } else { v }
            }
        }
    }

    /// Every successor of `st` by one step of CPU `c`.
    pub(super) fn step(
        &self,
        st: &State,
        c: usize,
        out: &mut Vec<State>,
    ) -> Result<(), LitmusError> {
        let start = out.len();
        self.step_inner(st, c, out)?;
        if st.revoked[c].is_empty() {
            return Ok(());
        }
        let th = &self.t.threads[c];
        let pc = usize::from(st.cpus[c].pc);
        let Some(&ins) = th.code.get(pc) else {
            return Ok(());
        };
        // An acquire orders the later walks after it (herd7: `[A|Q]; po`
        // in `bob`; catalogue test `FI` Forbidden): LDAR, LDAXR, LDAPR.
        // Atomics are treated as acquires too, whatever their order,
        // conservatively (SWPAL: catalogue test `S+shoot+swpal-mmufault`
        // Forbidden).
        let acquire = match ins {
            Instr::Load { order, .. } => order.acquires(),
            Instr::Swp { .. } | Instr::Cas { .. } | Instr::Amo { .. } => true,
            _ => false,
        };
        // Register data flow: a loaded value taints its register, and an
        // instruction's result is tainted when a source register is. The
        // condition flags carry no address dependency (herd7 allows
        // `S+shoot+pickaddr_mmufault_db`, whose address comes from a
        // CSEL on a comparison with the read value).
        let bit = |r: Reg| st.rdirty[c] >> (r & 63) & 1 == 1;
        let op = |o: Operand| matches!(o, Operand::Reg { reg: r, .. } if bit(r));
        let dest = match ins {
            Instr::Mov { dst: d, src: o, .. } => Some((d, op(o))),
            Instr::Alu {
                dst: d,
                lhs: n,
                rhs: o,
                ..
            } => Some((d, bit(n) || op(o))),
            Instr::Csel {
                dst: d,
                if_true: n,
                if_false: m,
                ..
            } => Some((d, bit(n) || bit(m))),
            Instr::Cset { dst: d, .. } | Instr::Adr { dst: d, .. } => Some((d, false)),
            Instr::Load { dst: d, .. }
            | Instr::StoreExclusive { status: d, .. }
            | Instr::Swp { dst: d, .. }
            | Instr::Cas { expected: d, .. }
            | Instr::Amo { dst: d, .. } => Some((d, true)),
            _ => None,
        };
        for n in &mut out[start..] {
            if acquire {
                n.revoked[c].clear();
            } else if let Some((d, taint)) = dest {
                if taint {
                    n.rdirty[c] |= 1u64 << (d & 63);
                } else {
                    n.rdirty[c] &= !(1u64 << (d & 63));
                }
            }
        }
        Ok(())
    }

    fn step_inner(&self, st: &State, c: usize, out: &mut Vec<State>) -> Result<(), LitmusError> {
        let cpu = &st.cpus[c];
        let th = &self.t.threads[c];
        let Some(&ins) = th.code.get(usize::from(cpu.pc)) else {
            let mut n = st.clone();
            n.cpus[c].done = true;
            out.push(n);
            return Ok(());
        };
        let mut n = st.clone();
        let next = |n: &mut State| n.cpus[c].pc += 1;
        match ins {
            Instr::Halt => n.cpus[c].done = true,
            Instr::Nop => next(&mut n),
            Instr::Dmb {
                kind: BarrierKind::Ld,
            } => {
                n.revoked[c].clear();
                next(&mut n);
            }
            Instr::Isb => {
                self.sync(&mut n, c);
                next(&mut n);
            }
            Instr::Dmb {
                kind: BarrierKind::Full | BarrierKind::St,
            } => {
                n.revoked[c].clear();
                // The descriptor stores before the barrier are ordered
                // before the stores after it, which other CPUs see at once
                // on this model: they reach the other CPUs' walkers now.
                self.publish_all(&mut n, c);
                next(&mut n);
            }
            Instr::Dsb { kind } => {
                n.revoked[c].clear();
                if kind != BarrierKind::Ld {
                    self.drain(&mut n, c);
                }
                if kind == BarrierKind::Full {
                    self.flush_hus(&mut n, None, Some(c));
                    let mine: Vec<_> = n
                        .inv
                        .iter()
                        .copied()
                        .filter(|e| usize::from(e.0) == c)
                        .collect();
                    n.inv.retain(|e| usize::from(e.0) != c);
                    for (i, t, s) in mine {
                        self.invalidate(&mut n, usize::from(i), usize::from(t), s);
                    }
                }
                for b in &mut n.bbm {
                    b.dsb(c, kind != BarrierKind::Ld, kind == BarrierKind::Full, 0);
                }
                next(&mut n);
            }
            Instr::Mov {
                dst: d,
                width: w,
                src: o,
            } => {
                let v = Self::operand(&n, c, o);
                Self::set(
                    &mut n,
                    c,
                    d,
                    if w == RegWidth::W { narrow(v, 4) } else { v },
                );
                next(&mut n);
            }
            Instr::Alu {
                op,
                dst: d,
                width: w,
                lhs: a,
                rhs: o,
            } => {
                let x = Self::reg(&n, c, a);
                let y = Self::operand(&n, c, o);
                let v = alu(op, x, y, self);
                Self::set(
                    &mut n,
                    c,
                    d,
                    if w == RegWidth::W { narrow(v, 4) } else { v },
                );
                next(&mut n);
            }
            Instr::Cmp { lhs: a, rhs: o } => {
                let x = Self::reg(&n, c, a).num();
                let y = Self::operand(&n, c, o).num();
                n.cpus[c].z = x == y;
                next(&mut n);
            }
            Instr::Csel {
                dst: d,
                if_true: a,
                if_false: b,
                cond: cc,
            } => {
                let v = if holds(cc, n.cpus[c].z) {
                    Self::reg(&n, c, a)
                } else {
                    Self::reg(&n, c, b)
                };
                Self::set(&mut n, c, d, v);
                next(&mut n);
            }
            Instr::Cset { dst: d, cond: cc } => {
                let v = Val::Int(u64::from(holds(cc, n.cpus[c].z)));
                Self::set(&mut n, c, d, v);
                next(&mut n);
            }
            Instr::B {
                cond: cc,
                target: t,
            } => {
                if cc.is_none_or(|cc| holds(cc, n.cpus[c].z)) {
                    n.cpus[c].pc = t;
                    self.back_jump(&mut n, c, cpu.pc, t);
                } else {
                    next(&mut n);
                }
            }
            Instr::Cbz {
                on,
                reg: r,
                target: t,
            } => {
                let zero = Self::reg(&n, c, r).num() == 0;
                if zero == (on == BranchOn::Zero) {
                    n.cpus[c].pc = t;
                    self.back_jump(&mut n, c, cpu.pc, t);
                } else {
                    next(&mut n);
                }
            }
            Instr::Adr { dst: d, target: t } => {
                Self::set(&mut n, c, d, Val::Label(c as u8, t));
                next(&mut n);
            }
            Instr::MsrElr { src: r } => {
                n.cpus[c].elr = match Self::reg(&n, c, r) {
                    Val::Label(t, i) if usize::from(t) == c => i,
                    _ => {
                        return Err(
                            self.err("ELR_EL1 set to a value that is no label of the thread")
                        );
                    }
                };
                next(&mut n);
            }
            Instr::Eret => {
                self.sync(&mut n, c);
                n.cpus[c].pc = n.cpus[c].elr;
            }
            Instr::Tlbi {
                scope,
                shareability,
            } => {
                let sym = match scope {
                    TlbiScope::All => None,
                    TlbiScope::Page(r) => {
                        let v = Self::reg(&n, c, r).num();
                        // A page that is no symbol's (e.g. the page of a
                        // descriptor address) has no entry to invalidate.
                        match (0..self.nsym)
                            .find(|&s| va_of(s as Sym) >> 12 == v || va_of(s as Sym) == v)
                        {
                            Some(s) => Some(s as Sym),
                            None => {
                                next(&mut n);
                                out.push(n);
                                return Ok(());
                            }
                        }
                    }
                };
                let targets: Vec<usize> = if shareability == TlbiShareability::Broadcast {
                    (0..n.cpus.len()).collect()
                } else {
                    vec![c]
                };
                for t in targets {
                    let e = (c as u8, t as u8, sym);
                    if let Err(i) = n.inv.binary_search(&e) {
                        n.inv.insert(i, e);
                    }
                }
                for (s, b) in n.bbm.iter_mut().enumerate() {
                    if sym.is_none_or(|x| usize::from(x) == s) {
                        b.tlbi(c);
                    }
                }
                next(&mut n);
            }
            Instr::Load {
                dst: t,
                addr: a,
                width,
                exclusive,
                ..
            } => {
                self.access(&n, c, &a, Access::Read, out, &|m, l| {
                    let v = narrow(m.mem[self.mi(l)], width.bytes());
                    Self::set(m, c, t, v);
                    self.observed(m, c, l);
                    if exclusive == Exclusivity::Exclusive {
                        m.cpus[c].excl = Some(l);
                    }
                    true
                })?;
                return Ok(());
            }
            Instr::Store {
                src: t,
                addr: a,
                width,
                order,
            } => {
                let v = narrow(Self::reg(&n, c, t), width.bytes());
                if order == StoreOrder::Release {
                    // A release orders every earlier store before it.
                    self.publish_all(&mut n, c);
                }
                self.access(&n, c, &a, Access::Write, out, &|m, l| {
                    self.write(m, c, l, v);
                    true
                })?;
                return Ok(());
            }
            Instr::StoreExclusive {
                status: s,
                src: t,
                addr: a,
                width,
                ..
            } => {
                let v = narrow(Self::reg(&n, c, t), width.bytes());
                // A failed store-exclusive writes nothing and needs no
                // translation.
                let mut fail = n.clone();
                Self::set(&mut fail, c, s, Val::Int(1));
                fail.cpus[c].excl = None;
                fail.cpus[c].pc += 1;
                out.push(fail);
                self.access(&n, c, &a, Access::Write, out, &|m, l| {
                    if m.cpus[c].excl != Some(l) {
                        return false;
                    }
                    self.write(m, c, l, v);
                    Self::set(m, c, s, Val::Int(0));
                    m.cpus[c].excl = None;
                    true
                })?;
                return Ok(());
            }
            Instr::Swp {
                src: s,
                dst: t,
                addr: a,
                width,
                ..
            } => {
                let w = width.bytes();
                let v = narrow(Self::reg(&n, c, s), w);
                self.access(&n, c, &a, Access::Write, out, &|m, l| {
                    let old = narrow(m.mem[self.mi(l)], w);
                    self.write(m, c, l, v);
                    Self::set(m, c, t, old);
                    true
                })?;
                return Ok(());
            }
            Instr::Amo {
                op,
                src: s,
                dst: t,
                addr: a,
                width,
                ..
            } => {
                let w = width.bytes();
                let x = narrow(Self::reg(&n, c, s), w);
                self.access(&n, c, &a, Access::Write, out, &|m, l| {
                    let old = narrow(m.mem[self.mi(l)], w);
                    let o = old.num();
                    let y = x.num();
                    let r = match op {
                        AmoOp::Add => o.wrapping_add(y),
                        AmoOp::Clr => o & !y,
                        AmoOp::Set => o | y,
                        AmoOp::Eor => o ^ y,
                    };
                    let r = if matches!(old, Val::Desc(_)) {
                        Val::Desc(r)
                    } else {
                        retag(r, &[old, x], self)
                    };
                    self.write(m, c, l, narrow(r, w));
                    Self::set(m, c, t, old);
                    true
                })?;
                return Ok(());
            }
            Instr::Cas {
                expected: s,
                new: t,
                addr: a,
                width,
                ..
            } => {
                let w = width.bytes();
                let cmp = narrow(Self::reg(&n, c, s), w);
                let new = narrow(Self::reg(&n, c, t), w);
                // A CAS whose comparison fails is a read (no write
                // permission needed); one that succeeds is a write.
                self.access(&n, c, &a, Access::Read, out, &|m, l| {
                    let old = narrow(m.mem[self.mi(l)], w);
                    if old.num() == cmp.num() {
                        return false;
                    }
                    Self::set(m, c, s, old);
                    true
                })?;
                self.access(&n, c, &a, Access::Write, out, &|m, l| {
                    let old = narrow(m.mem[self.mi(l)], w);
                    if old.num() != cmp.num() {
                        return false;
                    }
                    self.write(m, c, l, new);
                    Self::set(m, c, s, old);
                    true
                })?;
                return Ok(());
            }
        }
        out.push(n);
        Ok(())
    }
}
