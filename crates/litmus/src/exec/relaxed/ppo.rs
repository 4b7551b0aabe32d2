//! Preserved program order: whether a fetched instruction may commit past
//! the earlier uncommitted ones of its window (`may_commit`; herd7's `dob`,
//! `aob`, `bob`), with the locations an access may touch.

use super::*;

/// Tells whether the handler of the fault predicted at window entry `i`
/// sets ELR_EL1 itself (MSR ELR_EL1) at or before entry `k`: then the
/// instructions from `k` on read the handler's value, not the one taking
/// the exception writes, and the handler's write is the later one (the
/// commit of the fault keeps it: `step_relaxed`), so neither waits for the
/// fault (catalogue test `order-via-faults/R-via_fault_STR-2`, Allowed).
fn elr_rewritten(code: &[Instr], rob: &[(u16, u8)], i: usize, k: usize) -> bool {
    rob[i + 1..=k]
        .iter()
        .any(|e| matches!(code.get(usize::from(e.0)), Some(Instr::MsrElr { .. })))
}

/// Returns the registers written by the uncommitted instructions before
/// window entry `k`.
pub(super) fn pending_before(rob: &[(u16, u8)], k: usize, get: &dyn Fn(u16) -> Meta) -> u64 {
    rob[..k]
        .iter()
        .filter(|e| e.1 != DONE)
        .fold(0, |a, e| a | get(e.0).writes)
}

impl Ctx<'_> {
    /// Returns the locations the access of `c` at instruction `pc` may
    /// touch explicitly, and the descriptors its translation reads: data
    /// pages in the low 64 bits, descriptors in the high ones; every
    /// location when the address is not one.
    pub(super) fn locs(&self, st: &State, c: usize, pc: u16) -> (u128, u128) {
        let Some(&addr) = self.t.threads[c]
            .code
            .get(usize::from(pc))
            .and_then(Instr::addr)
        else {
            return (u128::MAX, 0);
        };
        match self.addr(st, c, &addr) {
            Ok(Val::Va(s)) => (
                u128::from(self.may_pa[usize::from(s)]),
                1u128 << (64 + u32::from(s)),
            ),
            Ok(Val::VaOff(s, o)) => {
                // The element at that offset of each page the address may
                // map to.
                let pages = self.may_pa[usize::from(s)];
                let bits = (0..self.nsym as Sym)
                    .filter(|p| pages >> p & 1 == 1)
                    .filter_map(|p| self.loc_bit(Loc::Elem(p, o)))
                    .fold(0u64, |a, b| a | b);
                (u128::from(bits), 1u128 << (64 + u32::from(s)))
            }
            Ok(Val::Pa(s)) => (1u128 << s, 0),
            Ok(Val::PteAddr(s)) => (1u128 << (64 + u32::from(s)), 0),
            _ => (u128::MAX, 0),
        }
    }

    /// Tells whether accesses `i` (earlier) and `j` may touch the same
    /// location in a way coherence orders: explicitly both, or `i`'s walk
    /// and `j`'s explicit store to the descriptor (the walk's read is an
    /// implicit read that a po-later store must not affect: catalogue
    /// tests `coRWImpExp`, `VIS01-store`, `load-xy`, Forbidden). An
    /// explicit *read* of the descriptor is not ordered with a walk or its
    /// hardware update (`coRWExpNExp`, Allowed), nor is an earlier explicit
    /// store with a later walk, which may read an older value until a
    /// context synchronization (`coWWExpNExp`, Allowed; the early walks of
    /// the SC model).
    fn conflict(i: (u128, u128), j: (u128, u128), mj: &Meta) -> bool {
        i.0 & j.0 != 0 || (i.1 & j.0 != 0 && mj.store)
    }

    /// Tells whether window entry `k` of `c` may commit now, as an access
    /// or (`as_fault`) as a fault: `None` if not, `Some(Some(pc))` if a
    /// load takes its value from the store at `pc`, `Some(None)` else.
    ///
    /// A fault is no memory event: herd7 orders it after barriers and
    /// acquires (`bob`: `[dmb.full]`, `[dmb.ld]`, `[dmb.st]`, `[A | Q]; po`
    /// into `MMU & FAULT`), after a control dependency and after its
    /// address (catalogue tests `MP+rel+pickctrlW-mmufault-po`,
    /// `MP+rel+pickaddr-mmufault_db-po`: Forbidden), but not after its
    /// data, not by a release (`po; [L]` needs an `L` write:
    /// `R+rel+rel-mmufault_db-po`, Allowed) and not by coherence (no write
    /// to order: `R+rel+lws-mmufault_db-po`, Allowed).
    pub(super) fn may_commit(
        &self,
        st: &State,
        c: usize,
        rob: &[(u16, u8)],
        k: usize,
        as_fault: bool,
        get: &dyn Fn(u16) -> Meta,
    ) -> Option<Option<u16>> {
        let (pc, _) = rob[k];
        let j = get(pc);
        let mem_j = j.load || j.store;
        let locs_j = if mem_j && j.addr & pending_before(rob, k, get) == 0 {
            self.locs(st, c, pc)
        } else {
            (u128::MAX, 0)
        };
        let mut pending = 0u64;
        let mut fwd: Option<usize> = None;
        for (i, &(ipc, istate)) in rob[..k].iter().enumerate() {
            if istate == DONE {
                continue;
            }
            let mut m = get(ipc);
            if istate == PREDICTED && !elr_rewritten(&self.t.threads[c].code, rob, i, k) {
                m.writes |= ELR;
            }
            let before_i = pending;
            pending |= m.writes;
            let mem_i = m.load || m.store;
            if as_fault {
                let fenced = m.fence.is_some() || m.isb;
                if j.addr & m.writes != 0 || fenced || m.acq || m.acq_pc || m.ctrl_next {
                    return None;
                }
                continue;
            }
            // Registers.
            if j.writes & (m.reads | m.writes) != 0 || j.reads & m.writes != 0 {
                return None;
            }
            // An ISB after anything but an access; anything after an ISB
            // (it stops fetching, so only the handler of a predicted fault
            // can be here).
            if (j.isb && !mem_i) || m.isb {
                return None;
            }
            // An ISB waits for the translations of the earlier accesses
            // (herd7 `CSE-ob`: `[Imp & TTD & R]; tr-ib; po; [CSE]; po`;
            // catalogue test `MP+dmb.st+trib-po-isb-po`, Forbidden).
            if j.isb && mem_i && istate < TRANSLATED && self.locs(st, c, ipc).1 != 0 {
                return None;
            }
            // A TLBI is ordered after the earlier stores only through a
            // DSB (herd7 `DSB-ob`, herdtools7 `herd/libdir/aarch64hwreqs.cat`
            // 010b3770: `[M]; po; [dsb.full]; po`, `[Exp & W];
            // po; [dsb.st]; po`, `[Exp & R]; po; [dsb.ld]; po`, into any
            // event but an implicit access; catalogue test
            // `S+dmb.st+dsb.ld-tlbi-dsb-isb`, Allowed: a DSB LD does not
            // order the earlier store), after a control dependency (`dob`:
            // `ctrl; [TLBI]`) and its address register; kept after earlier
            // barriers and TLBIs.
            if j.tlbi && (m.fence.is_some() || m.tlbi || m.ctrl_next) {
                return None;
            }
            // Barriers (bob).
            let ordered = match (m.fence, j.fence) {
                (Some(_), Some(_)) => true,
                (Some(Fence::Full | Fence::Ld), None) => mem_j,
                (Some(Fence::St), None) => j.store,
                (None, Some(Fence::Full)) => mem_i,
                (None, Some(Fence::Ld)) => m.load,
                (None, Some(Fence::St)) => m.store,
                (None, None) => false,
            };
            if ordered
                || ((m.acq || m.acq_pc) && mem_j)
                || (j.rel && mem_i)
                || (m.rel && j.acq)
                || (m.ctrl_next && j.store)
            {
                return None;
            }
            // A store waits for the translation of every earlier load
            // (herd7 `dob`: `[Imp & TTD & R]; tr-ib; [Exp & M]; po; [W]`,
            // as herdtools7 `tools/tests/miaou.t`, 59a256cd, expands it;
            // catalogue tests `S+dmb.st+trib-po`,
            // `MP+dmb.st+trib-po-isb-po`, Forbidden), not for its read
            // (`F2.mod-MP-sync`, Allowed). An earlier store is translated
            // at its commit, so coherence alone orders the later one.
            if j.store && m.load && !m.store && istate < TRANSLATED && self.locs(st, c, ipc).1 != 0
            {
                return None;
            }
            // Coherence and unknown addresses.
            if mem_i && mem_j {
                if m.addr & before_i != 0 {
                    // A plain load may pass a plain load whose address is
                    // not known yet; the check comes when that load
                    // commits (`owe_reads_past`).
                    let code = &self.t.threads[c].code;
                    let ldr = |p: u16| {
                        matches!(
                            code.get(usize::from(p)),
                            Some(Instr::Load {
                                exclusive: Exclusivity::Plain,
                                ..
                            })
                        )
                    };
                    if !(ldr(ipc) && ldr(pc)) {
                        return None;
                    }
                    continue;
                }
                if Self::conflict(self.locs(st, c, ipc), locs_j, &j) {
                    fwd = Some(i);
                }
            }
        }
        let Some(i) = fwd else {
            return Some(None);
        };
        // The latest earlier access to a location j may touch: j may only
        // forward from it (a plain load from a plain store to the same
        // address, whose data is ready); any overlapping access before
        // that one is ordered before it already.
        let (ipc, _) = rob[i];
        let code = &self.t.threads[c].code;
        let plain_store = matches!(code.get(usize::from(ipc)), Some(Instr::Store { .. }));
        let plain_load = matches!(
            code.get(usize::from(pc)),
            Some(Instr::Load {
                exclusive: Exclusivity::Plain,
                ..
            })
        );
        let same = self.locs(st, c, ipc).0 == locs_j.0 && (locs_j.0 as u64).count_ones() == 1;
        let ready = get(ipc).data & pending_before(rob, i, get) == 0;
        (plain_store && plain_load && same && ready).then_some(Some(ipc))
    }
}
