//! Per-CPU walker views of descriptor stores, and early walks, for the
//! threads (the litmus executor's semantics, `crates/litmus/src/exec.rs`,
//! "Descriptor stores" and "Early walks").
//!
//! **Descriptor stores.** A thread's store to a translation table is seen
//! at once by loads of it, and by walkers later
//! ([`PendingStore::walkers`]): by the other CPUs' walkers once a barrier
//! (a DMB other than DMB LD, or a release) orders it before later stores
//! (herd7 `aarch64.cat`: `dmb.full`, `dmb.st` and `[L]` in `bob`), or once
//! another CPU has read it (Armv8 is other-multi-copy atomic: a write
//! another observer has read is visible to all, `ob` is `obs | dob | aob |
//! bob` with `rfe` in `obs`); by every walker when it propagates, at any
//! time; and by its writer's own walker at the latest at the writer's next
//! DSB other than DSB LD (Arm ARM R_DDMVT's sequence: the DSB before the
//! TLBI "so the walker sees the new value"). The updater's and the
//! workloads' stores keep one view shared by every walker
//! ([`Engine::walker_read`]): nothing here runs for a kernel scenario.
//!
//! **Early walks.** A walk is not ordered after the earlier instructions
//! of its thread until a context synchronization event (ISB, exception
//! entry, ERET), so it may use any descriptor value its walker could
//! see since then ([`Views::whist`]), except values another CPU's TLBI
//! has removed since (herd7 catalogue tests `J-simple`, `F1`,
//! `VIS7+TLBI` Allowed; `FC`, `MP+shoot+DSB` Forbidden: herd7 orders
//! translation reads before a TLBI that overwrites them, `aarch64.cat`
//! `TLBI-ob`); only results that need no hardware update, and it caches
//! nothing. A fault from such a removed value ([`Views::revoked`]) stays
//! possible until the CPU's next barrier, acquire or context
//! synchronization, for accesses whose address does not depend on a value
//! read since ([`Views::rdirty`]: herd7 orders a fault after an earlier
//! read only through a barrier, an address dependency (`addr` in `dob`) or
//! a context synchronization, not a control dependency: catalogue tests
//! `FL`, `D15347-M-load-shoot+ctrl` Allowed; `FF`, `FI` Forbidden).
//!
//! The explorer's TLBs fill by explicit steps (R_FFWJK: a walk may cache
//! at any time) from the CPU's current view, where the litmus executor's
//! TLBs hold every cacheable value seen since the last invalidation: the
//! same entries, one step later. An early walk caches nothing, as the
//! executor's does not: its value was cacheable when the walker saw it,
//! and a fill could have cached it then.
//!
//! Reductions (the executor's `canonical`): a value equal to the CPU's
//! current view is not kept in `whist` (it is added back when the view
//! changes); `rdirty` is dropped while `revoked` is empty; a finished
//! thread keeps nothing; a pending TLBI keeps a thread CPU only while the
//! CPU caches an entry it removes or saw a value it would revoke.

use std::cell::Cell;

use vmsa::isa::{Instr, Operand, Reg};
use vmsa::machine::PendingStore;
use vmsa::tlb::Tlbi;
use vmsa::translate::Translator;
use vmsa::walk::{Access, Fills};
use vmsa::{PhysAddr, VirtAddr};

use crate::state::{State, Views, insert_view};

use super::super::Engine;
use super::Path;

/// VA bits a TLBI by VA compares: VA\[47:12\] (the register holds
/// VA\[55:12\]; a 48-bit VA).
const VA_PAGE: u64 = ((1 << 36) - 1) << 12;

impl<'a> Engine<'a> {
    /// The thread CPUs, as a mask.
    fn thread_mask(&self) -> u64 {
        let first = self.thread_cpu(0);
        let n = self.sc.threads.code.len();
        ((1u64 << n) - 1) << first
    }

    /// Descriptor `pa` as `cpu`'s walker sees it, in a scenario with
    /// threads: the newest pending store to it that walker sees, or the
    /// value before the oldest pending store, or memory.
    pub(in crate::engine) fn thread_view(&self, s: &State, cpu: usize, pa: u64) -> u64 {
        let mut first: Option<&PendingStore> = None;
        let mut seen: Option<u64> = None;
        for p in s.pending.iter().filter(|p| p.pa.0 == pa) {
            first.get_or_insert(p);
            if p.walkers >> cpu & 1 != 0 {
                seen = Some(p.value);
            }
        }
        match (seen, first) {
            (Some(v), _) => v,
            (None, Some(p)) => p.prev,
            (None, None) => self.walker_read(s, pa),
        }
    }

    /// Makes the pending stores `which` selects visible to every walker
    /// but their writer's.
    pub(super) fn publish_stores(&self, s: &mut State, which: impl Fn(&PendingStore) -> bool) {
        let all = self.thread_mask();
        for p in s.pending.iter_mut().filter(|p| which(p)) {
            p.walkers = all & !(1 << p.cpu);
        }
    }

    /// A DSB other than DSB LD of `cpu`: its descriptor stores become
    /// visible to every walker, each with the older stores to the same
    /// descriptor (oldest first); each value a thread's walker stops seeing
    /// stays in its history.
    pub(super) fn drain(&self, s: &mut State, cpu: usize) {
        while let Some(last) = s.pending.iter().rposition(|p| p.cpu == cpu) {
            let pa = s.pending[last].pa;
            let first = s.pending.iter().position(|p| p.pa == pa).unwrap_or(last);
            let before = self.views_of(s, pa.0);
            s.pending.remove(first);
            self.note_changes(s, pa.0, &before);
        }
    }

    /// Every thread CPU's view of `pa`.
    fn views_of(&self, s: &State, pa: u64) -> Vec<u64> {
        (0..s.threads.len())
            .map(|t| self.thread_view(s, self.thread_cpu(t), pa))
            .collect()
    }

    /// Adds to each running thread's history its view of `pa` in
    /// `before` where its view now differs.
    fn note_changes(&self, s: &mut State, pa: u64, before: &[u64]) {
        for (t, &old) in before.iter().enumerate() {
            if s.threads[t].running() && self.thread_view(s, self.thread_cpu(t), pa) != old {
                insert_view(&mut s.threads[t].views.whist, (pa, old));
            }
        }
    }

    /// Returns the descriptors walks of the threads' VAs read in `s`,
    /// `(descriptor's address, VA)`, sorted: those whose values early
    /// walks may use. (Computed once, on the initial state: a litmus
    /// test's tables above the last level never change.)
    pub(in crate::engine) fn walked_descs(&self, s: &State) -> Vec<(u64, u64)> {
        let g = self.sc.config.granule;
        let mut out = Vec::new();
        for &va in &self.sc.threads.vas {
            let seen = std::cell::RefCell::new(Vec::new());
            let rec = |pa: PhysAddr| {
                seen.borrow_mut().push(pa.0);
                self.walker_read(s, pa.0)
            };
            vmsa::walk::walk(g, VirtAddr(va), g.start_level(), self.sc.root, &rec);
            out.extend(seen.into_inner().into_iter().map(|pa| (pa, va)));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// After a step from `parent` to `n` in a scenario with threads: the
    /// views that changed go into the histories, and the bookkeeping is
    /// brought to its canonical form (see the module documentation).
    pub(in crate::engine) fn note_views(&self, parent: &State, n: &mut State) {
        // A view changes only with the pending stores or memory.
        if parent.pending != n.pending || parent.mem != n.mem {
            let mut pas: Vec<u64> = self.thread_descs.iter().map(|e| e.0).collect();
            for p in parent.pending.iter().chain(&n.pending) {
                pas.push(p.pa.0);
            }
            pas.sort_unstable();
            pas.dedup();
            for &pa in &pas {
                let before = self.views_of(parent, pa);
                self.note_changes(n, pa, &before);
            }
        }
        for t in 0..n.threads.len() {
            if !n.threads[t].running() {
                n.threads[t].views.clear();
                continue;
            }
            let cpu = self.thread_cpu(t);
            let mut v = std::mem::take(&mut n.threads[t].views);
            v.whist.retain(|&(pa, d)| self.thread_view(n, cpu, pa) != d);
            if v.revoked.is_empty() {
                v.rdirty = 0;
            }
            n.threads[t].views = v;
        }
    }

    /// Tells whether descriptor `pa` is one a walk for a VA `op` covers
    /// reads.
    fn in_scope(&self, op: &Tlbi, pa: u64) -> bool {
        let at = self.thread_descs.partition_point(|e| e.0 < pa);
        self.thread_descs[at..]
            .iter()
            .take_while(|e| e.0 == pa)
            .any(|&(_, va)| !op.kind.by_va() || (op.va.0 ^ va) & VA_PAGE == 0)
    }

    /// Tells whether TLBI `op` of `issuer`, taking effect on `cpu`, would
    /// revoke a value its walker saw: `cpu` is a thread's, not the
    /// issuer's, and saw a value in the TLBI's scope that it no longer
    /// sees. (The issuer's own early walks stay until its next context
    /// synchronization: the ISB of R_DDMVT's sequence; catalogue tests
    /// `VIS7+TLBI`, `coRRExpNExp+DSB-TLBI-DSB2` Allowed without it.)
    pub(in crate::engine) fn revocable(
        &self,
        s: &State,
        issuer: usize,
        op: &Tlbi,
        cpu: usize,
    ) -> bool {
        let Some(t) = self.thread_of(cpu) else {
            return false;
        };
        issuer != cpu
            && s.threads[t]
                .views
                .whist
                .iter()
                .any(|&(pa, _)| self.in_scope(op, pa))
    }

    /// Returns the thread CPU `cpu` runs, if any.
    fn thread_of(&self, cpu: usize) -> Option<usize> {
        cpu.checked_sub(self.thread_cpu(0))
            .filter(|&t| t < self.sc.threads.code.len())
    }

    /// TLBI `op` of `issuer` takes effect on the walker of `cpu`: the
    /// values it saw in the TLBI's scope and no longer sees can no longer
    /// serve a translation (herd7 `aarch64.cat`, `TLBI-ob`), only a fault
    /// until its next barrier (`Views::revoked`).
    pub(in crate::engine) fn revoke(&self, s: &mut State, issuer: usize, op: &Tlbi, cpu: usize) {
        let Some(t) = self.thread_of(cpu) else {
            return;
        };
        if issuer == cpu {
            return;
        }
        let whist = std::mem::take(&mut s.threads[t].views.whist);
        let (gone, keep): (Vec<_>, Vec<_>) = whist
            .into_iter()
            .partition(|&(pa, d)| self.thread_view(s, cpu, pa) != d && self.in_scope(op, pa));
        let v = &mut s.threads[t].views;
        v.whist = keep;
        for e in gone {
            insert_view(&mut v.revoked, e);
        }
    }

    /// Appends to `out` the early walks of thread `t`'s `access` to `va`:
    /// a walk reading a value of `whist` (any result), or of `revoked`
    /// (a fault only; not for an address that depends on a read since),
    /// instead of the current view; none needing a hardware update, none
    /// caching anything.
    pub(super) fn early_walk_paths(
        &self,
        s: &State,
        t: usize,
        va: u64,
        access: Access,
        dirty: bool,
        out: &mut Vec<Path>,
    ) {
        let cpu = self.thread_cpu(t);
        let v = &s.threads[t].views;
        let lists: [(&[(u64, u64)], bool); 2] = [(&v.whist, false), (&v.revoked, true)];
        let first = out.len();
        for (list, revoked) in lists {
            if revoked && dirty {
                continue;
            }
            for &(at, d) in list {
                if self.thread_view(s, cpu, at) == d {
                    continue;
                }
                let used = Cell::new(false);
                let read = |pa: PhysAddr| {
                    if pa.0 == at {
                        used.set(true);
                        d
                    } else {
                        self.thread_view(s, cpu, pa.0)
                    }
                };
                // The thread's own configuration and Exception level
                // (`tthm.rs`), as for its other walks.
                let (config, el) = self.walker_of(s, cpu);
                let tr = Translator {
                    config,
                    root: self.sc.root,
                    read: &read,
                    same_page: None,
                    el,
                };
                let mut cs = Vec::new();
                tr.walk_from_into(None, 0, VirtAddr(va), access, &mut cs);
                if !used.get() {
                    continue;
                }
                for mut c in cs {
                    if c.hw_update.is_some() || (revoked && c.result.is_ok()) {
                        continue;
                    }
                    c.fills = Fills::default();
                    let dup = out[first..].iter().any(|p| {
                        matches!(p, Path::Via { access: a, choice } if *a == access && choice.result == c.result)
                    });
                    if !dup {
                        out.push(Path::Via { access, choice: c });
                    }
                }
            }
        }
    }

    /// Tells whether the address of `a` depends on a register thread `t`
    /// wrote from a read since its revoked values appeared.
    pub(super) fn addr_dirty(s: &State, t: usize, a: &vmsa::isa::Addr) -> bool {
        let v = &s.threads[t].views;
        let bit = |r: Reg| v.rdirty >> (r & 63) & 1 == 1;
        bit(a.base) || matches!(a.off, Operand::Reg { reg, .. } if bit(reg))
    }

    /// After thread `t` ran `ins` with bookkeeping `before` (if it had
    /// revoked values): an acquire orders the later walks after it (herd7:
    /// `[A|Q]; po` in `bob`; catalogue test `FI` Forbidden; atomics are
    /// taken as acquires whatever their order, conservatively:
    /// `S+shoot+swpal-mmufault` Forbidden), so the revoked values go;
    /// otherwise a register written from a read, or from a register that
    /// depends on one, depends on one (register data flow; the condition
    /// flags carry no address dependency: herd7 allows
    /// `S+shoot+pickaddr_mmufault_db`).
    pub(super) fn after_instr(before: &Views, s: &mut State, t: usize, ins: &Instr) {
        if before.revoked.is_empty() {
            return;
        }
        let acquire = match ins {
            Instr::Load { order, .. } => order.acquires(),
            Instr::Swp { .. } | Instr::Cas { .. } | Instr::Amo { .. } => true,
            _ => false,
        };
        let v = before;
        let bit = |r: Reg| v.rdirty >> (r & 63) & 1 == 1;
        let op = |o: Operand| matches!(o, Operand::Reg { reg, .. } if bit(reg));
        let dest = match *ins {
            Instr::Mov { dst, src, .. } => Some((dst, op(src))),
            Instr::Alu { dst, lhs, rhs, .. } => Some((dst, bit(lhs) || op(rhs))),
            Instr::Csel {
                dst,
                if_true,
                if_false,
                ..
            } => Some((dst, bit(if_true) || bit(if_false))),
            Instr::Cset { dst, .. } | Instr::Adr { dst, .. } => Some((dst, false)),
            Instr::Load { dst, .. }
            | Instr::StoreExclusive { status: dst, .. }
            | Instr::Swp { dst, .. }
            | Instr::Cas { expected: dst, .. }
            | Instr::Amo { dst, .. } => Some((dst, true)),
            _ => None,
        };
        let n = &mut s.threads[t].views;
        if acquire {
            n.revoked.clear();
        } else if let Some((d, taint)) = dest {
            if taint {
                n.rdirty |= 1u64 << (d & 63);
            } else {
                n.rdirty &= !(1u64 << (d & 63));
            }
        }
    }
}
