//! A memory access of an instruction: its address resolved to a location
//! of the test, translated (or taken from an early walk), and performed or
//! faulted.

use super::*;

impl Ctx<'_> {
    /// Resolves a value used as an address.
    pub(super) fn resolve(&self, v: u64) -> Option<Val> {
        let elem = self.t.arrays.iter().find_map(|&(s, size, n)| {
            let o = v.checked_sub(va_of(s))?;
            (o > 0 && o < u64::from(size) * u64::from(n) && o % u64::from(size) == 0)
                .then_some(Val::VaOff(s, o as u16))
        });
        if elem.is_some() {
            return elem;
        }
        (0..self.nsym).find_map(|s| {
            let s = s as Sym;
            if v == va_of(s) {
                Some(Val::Va(s))
            } else if v == pa_of(s) {
                Some(Val::Pa(s))
            } else if v == pte_addr_of(s) {
                Some(Val::PteAddr(s))
            } else {
                None
            }
        })
    }

    pub(super) fn addr(&self, st: &State, c: usize, a: &Addr) -> Result<Val, LitmusError> {
        let base = Self::reg(st, c, a.base);
        let off = match a.off {
            Operand::Imm(n) => n,
            Operand::Reg { reg: r, width: w } => {
                let v = Self::reg(st, c, r).num();
                if w == RegWidth::W {
                    (v as u32 as i32) as i64 as u64
                } else {
                    v
                }
            }
        };
        if off == 0 && !matches!(base, Val::Int(_) | Val::Desc(_)) {
            return Ok(base);
        }
        let n = base.num().wrapping_add(off);
        self.resolve(n).ok_or_else(|| {
            self.err(format!(
                "access to {n:#x}, which is no location of the test"
            ))
        })
    }

    /// Performs a memory access of the instruction at `c`'s pc: `f` gets
    /// the state and the physical location, does the access and returns
    /// false when this way of doing it is impossible (the successor is
    /// dropped).
    /// Tells whether the address of `a` depends on a register written
    /// since `c`'s revoked walks appeared.
    fn addr_dirty(&self, st: &State, c: usize, a: &Addr) -> bool {
        let bit = |r: Reg| st.rdirty[c] >> (r & 63) & 1 == 1;
        bit(a.base) || matches!(a.off, Operand::Reg { reg: r, .. } if bit(r))
    }

    pub(super) fn access(
        &self,
        st: &State,
        c: usize,
        a: &Addr,
        acc: Access,
        out: &mut Vec<State>,
        f: &dyn Fn(&mut State, Loc) -> bool,
    ) -> Result<(), LitmusError> {
        let clean;
        let st = if !st.revoked[c].is_empty() && self.addr_dirty(st, c, a) {
            let mut n = st.clone();
            n.revoked[c].clear();
            clean = n;
            &clean
        } else {
            st
        };
        let pc = st.cpus[c].pc;
        if st.cpus[c].pre.iter().any(|e| e.0 == pc) {
            // The walk was done early.
            let mut n = st.clone();
            match Self::take_pre(&mut n, c, pc) {
                Some((_, Ok(pa))) if f(&mut n, Loc::Data(pa)) => {
                    n.cpus[c].pc += 1;
                    out.push(n);
                }
                Some((s, Err(k))) => {
                    self.fault(&mut n, c, s, k);
                    out.push(n);
                }
                _ => {}
            }
            return Ok(());
        }
        match self.addr(st, c, a)? {
            Val::Va(s) => {
                for (mut n, r) in self.translate(st, c, s, &acc) {
                    match r {
                        Ok(pa) => {
                            if !f(&mut n, Loc::Data(pa)) {
                                continue;
                            }
                            n.cpus[c].pc += 1;
                        }
                        Err(k) => self.fault(&mut n, c, s, k),
                    }
                    out.push(n);
                }
            }
            Val::VaOff(s, o) => {
                for (mut n, r) in self.translate(st, c, s, &acc) {
                    match r {
                        Ok(pa) => {
                            if self.elems.binary_search(&(pa, o)).is_err() {
                                let p = &self.t.syms[usize::from(pa)];
                                return Err(self.err(format!(
                                    "access to PA({p})+{o}, which is no element of an array"
                                )));
                            }
                            if !f(&mut n, Loc::Elem(pa, o)) {
                                continue;
                            }
                            n.cpus[c].pc += 1;
                        }
                        Err(k) => self.fault(&mut n, c, s, k),
                    }
                    out.push(n);
                }
            }
            Val::Pa(s) => {
                let mut n = st.clone();
                if f(&mut n, Loc::Data(s)) {
                    n.cpus[c].pc += 1;
                    out.push(n);
                }
            }
            Val::PteAddr(s) => {
                let mut n = st.clone();
                if matches!(acc, Access::Write) {
                    self.flush_hus(&mut n, Some(s), None);
                }
                if f(&mut n, Loc::Pte(s)) {
                    n.cpus[c].pc += 1;
                    out.push(n);
                }
            }
            _ => return Err(self.err("access through a value that is no address")),
        }
        Ok(())
    }
}
