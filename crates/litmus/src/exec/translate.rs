//! Translation: an access's TLB hits and walks (Translation, Access flag
//! and Permission faults, hardware AF/dirty updates by the walk, EL0
//! checks), TLB invalidation by a TLBI, and context synchronization.

use super::*;

impl Ctx<'_> {
    pub(super) fn ha(&self, c: usize) -> bool {
        self.t.tthm.ha >> c & 1 == 1
    }

    /// Tells whether `c` runs at EL0 and descriptor fields `f` deny it
    /// access: AP\[1\] (the `vmsa` crate's `Attributes::USER`) clear
    /// makes an EL0 access a Permission fault (Arm ARM D8, "Memory access
    /// control"; herd7 catalogue test `TST-EL0`, Required).
    /// A re-executed instruction (`Cpu::retried`) runs at EL1, as a
    /// handler does (herdtools7 `herd/AArch64Sem.ml`, `check_ptw`: no EL0
    /// check when `in_handler`).
    pub(super) fn el0_denied(&self, st: &State, c: usize, f: &PteFields) -> bool {
        self.t.el0 >> c & 1 == 1 && !f.el0 && !st.cpus[c].retried
    }

    pub(super) fn hd(&self, c: usize) -> bool {
        self.t.tthm.hd >> c & 1 == 1
    }

    /// Returns every way an access by `c` to virtual address `s` may
    /// translate: the state after the translation's side effects and the
    /// physical page or the fault (with the page the walk found).
    pub(super) fn translate(
        &self,
        st: &State,
        c: usize,
        s: Sym,
        acc: &Access,
    ) -> Vec<(State, Result<Sym, FaultKind>)> {
        let mut out: Vec<(State, Result<Sym, FaultKind>)> = Vec::new();
        let write = matches!(acc, Access::Write);
        for &(es, d) in &st.tlbs[c] {
            if es != s {
                continue;
            }
            let Some(f) = PteFields::decode(d) else {
                continue;
            };
            if self.el0_denied(st, c, &f) {
                out.push((st.clone(), Err(FaultKind::Permission)));
            } else if write && !f.db {
                if f.dbm && self.hd(c) {
                    continue; // the update goes through a walk
                }
                let mut n = st.clone();
                self.seen_hu(&mut n, c, s, d);
                out.push((n, Err(FaultKind::Permission)));
            } else {
                let mut n = st.clone();
                self.seen_hu(&mut n, c, s, d);
                out.push((n, Ok(f.oa)));
            }
        }
        // Early walks: stale values seen since the last context
        // synchronization.
        let cur = Self::view(st, c, s);
        for &(es, d) in &st.whist[c] {
            if es != s || d == cur {
                continue;
            }
            let res = match PteFields::decode(d) {
                _ if d & 1 == 0 => Err(FaultKind::Translation),
                None => Err(FaultKind::Translation),
                Some(f) if !f.af && !self.ha(c) => Err(FaultKind::AccessFlag),
                Some(f) if !f.af => continue,
                Some(f) if self.el0_denied(st, c, &f) => Err(FaultKind::Permission),
                Some(f) if write && !f.db => {
                    if f.dbm && self.hd(c) {
                        continue;
                    }
                    Err(FaultKind::Permission)
                }
                Some(f) => Ok(f.oa),
            };
            let mut n = st.clone();
            self.seen_hu(&mut n, c, s, d);
            out.push((n, res));
        }
        // Faulting early walks from before another CPU's TLBI.
        for &(es, d) in &st.revoked[c] {
            if es != s || d == cur {
                continue;
            }
            let res = match PteFields::decode(d) {
                _ if d & 1 == 0 => FaultKind::Translation,
                None => FaultKind::Translation,
                Some(f) if !f.af && !self.ha(c) => FaultKind::AccessFlag,
                Some(f) if !f.af => continue,
                Some(f) if self.el0_denied(st, c, &f) => FaultKind::Permission,
                Some(f) if write && !f.db && !(f.dbm && self.hd(c)) => FaultKind::Permission,
                _ => continue,
            };
            out.push((st.clone(), Err(res)));
        }
        // A walk.
        let mut n = st.clone();
        let d = Self::view(&n, c, s);
        self.seen_hu(&mut n, c, s, d);
        let quiet = !n.pend.iter().any(|e| e.0 == s);
        let res = match PteFields::decode(d) {
            _ if d & 1 == 0 => Err(FaultKind::Translation),
            None => Err(FaultKind::Translation),
            Some(mut f) => {
                if !f.af && !self.ha(c) {
                    Err(FaultKind::AccessFlag)
                } else if f.af && self.el0_denied(st, c, &f) {
                    Err(FaultKind::Permission)
                } else if write && !f.db && !(f.dbm && self.hd(c)) {
                    if !f.af {
                        if !quiet {
                            return out;
                        }
                        f.af = true;
                        self.hw_write(&mut n, c, s, f.encode());
                    }
                    Err(FaultKind::Permission)
                } else {
                    let mut g = f;
                    g.af = true;
                    if write {
                        g.db = true;
                    }
                    if g != f {
                        // The hardware update is an atomic read-modify-write
                        // of the descriptor; with a store to it still on its
                        // way to walkers, the walk waits.
                        if !quiet {
                            return out;
                        }
                        self.hw_write(&mut n, c, s, g.encode());
                    }
                    Ok(g.oa)
                }
            }
        };
        out.push((n, res));
        out
    }

    /// Removes the TLB entries of `c` for `s` (all if None); the current
    /// descriptor may be cached again at once, so it stays.
    pub(super) fn invalidate(&self, st: &mut State, issuer: usize, c: usize, s: Option<Sym>) {
        if issuer != c {
            Self::pre_tlbi(st, c, s);
        }
        st.tlbs[c].retain(|e| s.is_some_and(|s| e.0 != s));
        // A walk that read an overwritten value cannot serve an access of
        // another CPU performed after a TLBI of it has taken effect (herd7
        // orders such translation reads before the TLBI: catalogue tests
        // `FC`, `MP+shoot+DSB`), whether the value could be cached or not.
        // The issuer's own later accesses may still use such a walk until
        // its next context synchronization (the ISB of R_DDMVT's sequence;
        // catalogue tests `VIS7+TLBI`, `coRRExpNExp+DSB-TLBI-DSB2`:
        // Allowed without the ISB).
        if issuer != c {
            let cur: Vec<u64> = (0..self.nsym as Sym)
                .map(|x| Self::view(st, c, x))
                .collect();
            let (keep, gone): (Vec<_>, Vec<_>) = st.whist[c]
                .iter()
                .partition(|e| s.is_some_and(|s| e.0 != s) || cur[usize::from(e.0)] == e.1);
            st.whist[c] = keep;
            for e in gone {
                insert(&mut st.revoked[c], e);
            }
        }
        let keep: Vec<(Sym, u64)> = (0..self.nsym as Sym)
            .filter(|&x| s.is_none_or(|s| s == x) && self.vas[c] >> x & 1 == 1)
            .map(|x| (x, Self::view(st, c, x)))
            .filter(|e| cacheable(e.1))
            .collect();
        for e in keep {
            insert(&mut st.tlbs[c], e);
        }
    }

    /// A context synchronization event of `c`: later walks are ordered
    /// after it.
    pub(super) fn sync(&self, st: &mut State, c: usize) {
        st.whist[c].clear();
        st.revoked[c].clear();
        for x in 0..self.nsym as Sym {
            if self.vas[c] >> x & 1 == 1 {
                let d = Self::view(st, c, x);
                insert(&mut st.whist[c], (x, d));
            }
        }
    }
}
