//! Early hardware dirty-state updates: the walk and dirty-bit update of a
//! store performed before the store itself, ahead of earlier instructions
//! of its thread.
//!
//! herd7's VMSA model orders a hardware update (`HU = Imp & TTD & W`,
//! herdtools7 `herd/libdir/aarch64hwreqs.cat`) after far fewer events than
//! the store's write. In `local-hw-reqs` it is ordered only after its own
//! translation read (`[Imp & TTD & R]; rmw; [HU]`), after the reads that
//! feed its address (`[Exp & R]; addr; [HU]`), the address of an earlier
//! explicit access (`[Exp & R]; addr; [Exp]; po; [HU]`) or an earlier
//! branch (`[Exp & R]; ctrl; [HU]`), and after what a context
//! synchronization orders (`CSE-ob`). It is *not* ordered after the reads
//! that feed the store's data (`data` reaches only explicit events, and
//! `lob` enters `local-hw-reqs` only as `[Exp & M]; lob; [Exp & M | ...]`),
//! nor after a barrier: `DSB-ob` ends in `[~(Imp & M)]` (its ETS2 clause,
//! which would include `Imp & TTD & M`, is off), and `bob` reaches it only
//! through `lob`. Catalogue tests `S+dmb.st+data-HUdb` and
//! `newlob/LB+dmb.sy+dsb.sy-HU` (Allowed) show both; `S+dmb.st+addr-HUdb`,
//! `newlob/S+dmb.st+pickctrl-HUdb` and `LB+dmb.sy+addr-po-HUdb`
//! (Forbidden) the orders kept. In the top-level `aarch64.cat` the update
//! is ordered with the writes to its descriptor (`HU-pred`, `[HU]; co |
//! co; [HU]`) and before the reads of it (`[PTE & Imp]; rf`), which the
//! model's memory gives.
//!
//! Operationally: a thread may perform, as a step of its own, the walk of
//! a plain store it has not executed yet and the dirty-bit update that walk
//! makes, when none of the instructions between it and the store (not yet
//! executed) forbids it (see [`Ctx::early_hu`]); the translation is kept in
//! `Cpu::pre` and the store uses it when it executes. If the thread does
//! not reach the store on the straight-line path (an earlier instruction
//! faults), or another CPU's TLBI removes the walked value before the store
//! executes (herd7's `tlbi-ob` orders the store before the TLBI's
//! completion then), the execution is dropped (`State::bad`). The thread's
//! own TLBI removes nothing from `Cpu::pre`: herd7 puts such a walk before
//! the TLBI (`TLBI-after`) and then orders only the walk, not its
//! instruction, before what follows the TLBI's DSB (`TLBI-ob`'s
//! `tr-ib^-1; TTD-read-ordered-before & ext` is for other threads' walks;
//! catalogue test `coWWExp-TLBI-NExp+VMALL`, Allowed).

use super::*;

/// How far past the next instruction an early update may look.
const LOOKAHEAD: usize = 16;

fn bit(r: Reg) -> u64 {
    if r == ZR { 0 } else { 1u64 << (r & 63) }
}

fn op_bit(o: Operand) -> u64 {
    match o {
        Operand::Reg { reg: r, .. } => bit(r),
        Operand::Imm(_) => 0,
    }
}

fn addr_bits(a: &Addr) -> u64 {
    bit(a.base) | op_bit(a.off)
}

impl Ctx<'_> {
    /// Every successor of `st` by an early walk and dirty-bit update of
    /// `c` for a plain store not executed yet (see the module's
    /// description).
    ///
    /// The instructions not yet executed before the store are scanned in
    /// program order (in relaxed mode the uncommitted window entries, then
    /// the instructions not fetched yet). The scan stops at a context
    /// synchronization (ISB, ERET), the end of the thread, a branch
    /// other than one to the next instruction on a condition that no
    /// pending read feeds, an access whose address depends on a pending
    /// read (`[Exp & R]; addr; [Exp]; po; [HU]`) or is not known yet, and
    /// an atomic or exclusive access (conservatively). A store is a
    /// candidate when its address is known, is a virtual address whose
    /// descriptor no pending access reads or walks (the update is ordered
    /// after the thread's earlier walks of the descriptor: `[Imp & TTD &
    /// R]; (po & same-loc); [W]`; conservatively after its explicit reads
    /// too) -- a pending plain store to the descriptor does not stop it --
    /// and the walk now would set the dirty bit. It passes the thread's own
    /// TLBIs (see the comment at `Instr::Tlbi` below).
    pub(super) fn early_hu(&self, st: &State, c: usize, out: &mut Vec<State>) {
        if !self.early || !self.hd(c) {
            return;
        }
        let cpu = &st.cpus[c];
        if cpu.done || cpu.pc == u16::MAX || cpu.rob.iter().any(|e| e.1 == relaxed::PREDICTED) {
            return;
        }
        let code = &self.t.threads[c].code;
        let seq = cpu
            .rob
            .iter()
            .filter(|e| e.1 != relaxed::DONE)
            .map(|e| e.0)
            .chain(cpu.pc..u16::try_from(code.len()).unwrap_or(u16::MAX))
            .take(LOOKAHEAD);
        // Registers written by pending instructions (their values are not
        // known yet), and those among them fed by a pending read.
        let mut unknown = 0u64;
        let mut tainted = 0u64;
        let mut flags_tainted = false;
        // Descriptors the pending accesses touch explicitly, or read by
        // their walks.
        let mut ptes = 0u64;
        for pc in seq {
            let Some(&ins) = code.get(usize::from(pc)) else {
                return;
            };
            let access = ins.addr().copied();
            if let Some(a) = access {
                let ab = addr_bits(&a);
                if ab & (unknown | tainted) != 0 {
                    return;
                }
                match self.addr(st, c, &a) {
                    Ok(Val::Va(s)) => {
                        if let Instr::Store {
                            order: StoreOrder::Plain,
                            ..
                        } = ins
                            && ptes >> s & 1 == 0
                            && !cpu.pre.iter().any(|e| e.0 == pc)
                        {
                            self.hoist(st, c, pc, s, out);
                        }
                        ptes |= 1u64 << s;
                    }
                    Ok(Val::Pa(_)) => {}
                    // A plain store to the descriptor does not order the
                    // update after it: herd7 relates an explicit write and
                    // an update of the same descriptor only by coherence
                    // (`TTD-obs`: `[HU]; ca; [W] | [W]; ca; [HU]`,
                    // `fsestini/herdtools7` `aarch64.cat` 354868fd), and
                    // `lws` reaches `local-hw-reqs` only between explicit
                    // accesses (`[Exp & M]; lob; [Exp & M | ...]`,
                    // `aarch64hwreqs.cat` 010b3770). The update is then
                    // before the store in coherence (catalogue test
                    // `coWWExp-TLBI-NExp+VMALL`, Allowed). Reads of it stay
                    // conservative.
                    Ok(Val::PteAddr(_))
                        if matches!(
                            ins,
                            Instr::Store {
                                order: StoreOrder::Plain,
                                ..
                            }
                        ) => {}
                    Ok(Val::PteAddr(s)) => ptes |= 1u64 << s,
                    _ => return,
                }
            }
            let src_t = |r: Reg| bit(r) & tainted != 0;
            let op_t = |o: Operand| op_bit(o) & tainted != 0;
            match ins {
                // The thread's own TLBI does not stop the scan: herd7 lets
                // the store's walk be before it (`TLBI-after` enumerates both
                // orders, `enumerations.cat` 108ce5d3, fixing only what
                // `local-hw-reqs` gives, whose edges from a TLBI to a later
                // walk of its thread all go through a context
                // synchronization, `CSE-ob`: `DSB-ob; [CSE]; po`, where
                // the scan stops), and then orders only the walk
                // before what follows the TLBI's DSB
                // (`TTD-read-ordered-before`), which a walk performed now
                // is; `TLBI-ob` orders the walk's instruction after it only
                // for another thread's TLBI (`tr-ib^-1;
                // TTD-read-ordered-before & ext`), and `TLBI-ca` constrains
                // only a walk after the TLBI. The update itself is ordered
                // after no TLBI. So the early translation survives the
                // thread's own invalidation (`invalidate` spares the
                // issuer's `Cpu::pre`).
                Instr::Tlbi { .. } => {}
                Instr::Isb | Instr::Eret | Instr::Halt => return,
                Instr::StoreExclusive { .. }
                | Instr::Swp { .. }
                | Instr::Cas { .. }
                | Instr::Amo { .. } => return,
                Instr::B {
                    cond: cc,
                    target: t,
                } => {
                    if cc.is_none() || usize::from(t) != usize::from(pc) + 1 || flags_tainted {
                        return;
                    }
                }
                Instr::Cbz {
                    reg: r, target: t, ..
                } => {
                    if usize::from(t) != usize::from(pc) + 1 || src_t(r) || bit(r) & unknown != 0 {
                        return;
                    }
                }
                Instr::Cmp { lhs: a, rhs: o } => flags_tainted = src_t(a) || op_t(o),
                Instr::Mov { dst: d, src: o, .. } => {
                    unknown |= bit(d);
                    tainted = (tainted & !bit(d)) | if op_t(o) { bit(d) } else { 0 };
                }
                Instr::Alu {
                    dst: d,
                    lhs: a,
                    rhs: o,
                    ..
                } => {
                    unknown |= bit(d);
                    let t = src_t(a) || op_t(o);
                    tainted = (tainted & !bit(d)) | if t { bit(d) } else { 0 };
                }
                Instr::Csel {
                    dst: d,
                    if_true: a,
                    if_false: b,
                    ..
                } => {
                    unknown |= bit(d);
                    let t = src_t(a) || src_t(b) || flags_tainted;
                    tainted = (tainted & !bit(d)) | if t { bit(d) } else { 0 };
                }
                Instr::Cset { dst: d, .. } => {
                    unknown |= bit(d);
                    tainted = (tainted & !bit(d)) | if flags_tainted { bit(d) } else { 0 };
                }
                Instr::Adr { dst: d, .. } => {
                    unknown |= bit(d);
                    tainted &= !bit(d);
                }
                Instr::Load { dst: d, .. } => {
                    unknown |= bit(d);
                    tainted |= bit(d);
                }
                Instr::Store { .. }
                | Instr::Dmb { .. }
                | Instr::Dsb { .. }
                | Instr::Nop
                | Instr::MsrElr { .. } => {}
            }
        }
    }

    /// Performs the early walk of `c`'s store at `pc` to virtual address
    /// `s` with its dirty-bit update, if the walk now would make one.
    fn hoist(&self, st: &State, c: usize, pc: u16, s: Sym, out: &mut Vec<State>) {
        // As in `translate`: the update is an atomic read-modify-write of
        // the descriptor; with a store to it still on its way to the
        // walkers, the walk waits.
        if st.pend.iter().any(|e| e.0 == s) {
            return;
        }
        let d = Self::view(st, c, s);
        if d & 1 == 0 {
            return;
        }
        let Some(f) = PteFields::decode(d) else {
            return;
        };
        if (!f.af && !self.ha(c)) || f.db || !f.dbm || self.el0_denied(st, c, &f) {
            return;
        }
        let mut g = f;
        g.af = true;
        g.db = true;
        let g = g.encode();
        let mut n = st.clone();
        self.seen_hu(&mut n, c, s, d);
        self.hw_write(&mut n, c, s, g);
        let pre = &mut n.cpus[c].pre;
        let i = pre.partition_point(|e| e.0 < pc);
        pre.insert(i, (pc, s, Ok(g)));
        out.push(n);
    }

    /// Takes the early translation of `c`'s instruction at `pc`, if it has
    /// one: its virtual address, and the physical page its store writes or
    /// the fault its walk met.
    pub(super) fn take_pre(
        st: &mut State,
        c: usize,
        pc: u16,
    ) -> Option<(Sym, Result<Sym, FaultKind>)> {
        let pre = &mut st.cpus[c].pre;
        let i = pre.iter().position(|e| e.0 == pc)?;
        let (_, s, r) = pre.remove(i);
        match r {
            Ok(g) => PteFields::decode(g).map(|f| (s, Ok(f.oa))),
            Err(k) => Some((s, Err(k))),
        }
    }

    /// Returns the states in which the walk of `c`'s access at `pc`,
    /// predicted to fault (relaxed mode), has been performed and faulted,
    /// with the fault recorded for the access's commit: one per faulting
    /// translation the access may have now.
    ///
    /// herd7 orders the translation read of an instruction before a later
    /// context synchronization and everything after it (`CSE-ob`:
    /// `[Imp & TTD & R]; tr-ib; po; [CSE]; po`, `aarch64hwreqs.cat`), but
    /// orders the fault event itself only after barriers, acquires, its
    /// address and control dependencies (`bob`, `dob`; see
    /// `relaxed::may_commit`). So the handler may go on, and return, before
    /// the fault commits, once the walk is done (catalogue test
    /// `order-via-faults/R-via_fault_STR-2`, Allowed: the load after the
    /// ERET goes before the store that the DMB ST orders before the
    /// fault).
    pub(super) fn walk_predicted(&self, st: &State, c: usize, pc: u16) -> Vec<State> {
        let code = &self.t.threads[c].code;
        let (a, accs) = match code.get(usize::from(pc)) {
            Some(Instr::Load { addr, .. }) => (*addr, &[Access::Read][..]),
            Some(Instr::Cas { addr, .. }) => (*addr, &[Access::Read, Access::Write][..]),
            Some(
                Instr::Store { addr, .. }
                | Instr::StoreExclusive { addr, .. }
                | Instr::Swp { addr, .. }
                | Instr::Amo { addr, .. },
            ) => (*addr, &[Access::Write][..]),
            _ => return Vec::new(),
        };
        let Ok(Val::Va(s)) = self.addr(st, c, &a) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for acc in accs {
            for (mut n, r) in self.translate(st, c, s, acc) {
                if let Err(k) = r {
                    let pre = &mut n.cpus[c].pre;
                    let i = pre.partition_point(|e| e.0 < pc);
                    pre.insert(i, (pc, s, Err(k)));
                    out.push(n);
                }
            }
        }
        out
    }

    /// Drops the execution when `c` takes a fault at `pc` while holding an
    /// early translation for a later instruction, which it then does not
    /// reach on the path the update assumed.
    pub(super) fn pre_fault(st: &mut State, c: usize, pc: u16) {
        if st.cpus[c].pre.iter().any(|e| e.0 > pc) {
            st.bad = true;
        }
    }

    /// Drops the execution when another CPU's TLBI of `s` (all if None)
    /// takes effect on `c` while `c` holds an early translation of it from
    /// a value walkers no longer see (the store would be performed after
    /// the TLBI with a translation it removed).
    pub(super) fn pre_tlbi(st: &mut State, c: usize, s: Option<Sym>) {
        let stale = st.cpus[c]
            .pre
            .iter()
            .any(|e| s.is_none_or(|s| s == e.1) && e.2.is_ok_and(|g| Self::view(st, c, e.1) != g));
        if stale {
            st.bad = true;
        }
    }
}
