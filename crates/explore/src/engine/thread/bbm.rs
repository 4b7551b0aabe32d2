//! herd7's `Warning-BBM-expected` for the threads, as the litmus
//! executor computes it (`crates/litmus/src/exec/visibility.rs`, `write`),
//! with the same shared bookkeeping, `vmsa::herd_bbm::TtdBbm` (see its
//! documentation and docs/bbm-herd7.md): herd7 raises the warning when an
//! execution has a pair of descriptor values in `TTD-update-needsBBM`
//! (`herd/libdir/aarch64bbm.cat`) and not in `BBM`
//! (`herd/libdir/aarch64.cat`, "Break Before Make").
//!
//! The state keeps, per level-3 descriptor written (herd7's VMSA model
//! has one table level: the others are not its locations), the
//! bookkeeping, canonical ([`crate::state::HerdBbm`]); the hooks:
//! - a descriptor store of a thread, or a hardware update of AF or the
//!   dirty state a thread's access or walk makes: a write, compared with
//!   every earlier TLB-cacheable value (`TLBCacheableTTD`: valid, AF set)
//!   that no completed break of the writer separates from it; a pair
//!   needs break-before-make by the clauses of `TTD-update-BBM-cand`
//!   (`vmsa::herd_bbm::reasons_with`: memory type, shareability,
//!   cacheability, or the output address with one value writable or the
//!   two pages' contents different, compared in coherent memory at the
//!   write);
//! - a DSB of the thread (`DSB-ob` in `herd/libdir/aarch64hwreqs.cat`: any
//!   DSB but DSB LD orders an earlier store before a later TLBI; a full DSB
//!   orders the TLBI before later accesses);
//! - a TLBI of the thread, covering the descriptors in its `inv-scope`
//!   (`herd/machAction.ml`, `inv_domain_act`: every descriptor without an
//!   address, the descriptor of the VA with one; the shareability plays
//!   no part).
//!
//! The search collects the warning over every state it explores
//! ([`crate::search::Report::herd7_bbm`]), as the litmus executor does
//! (`exec/search.rs`, `run`); once raised in a state the bookkeeping is
//! dropped from it, since nothing lowers the warning.

use vmsa::Descriptor;
use vmsa::herd_bbm::{TtdBbm, cacheable, reasons_with};
use vmsa::isa::BarrierKind;
use vmsa::tlb::Tlbi;
use vmsa::walk::Choice;

use crate::state::State;

use super::Engine;

/// herd7's single table level.
const PAGE_LEVEL: u8 = 3;

impl Engine<'_> {
    /// Returns the address of the level-3 descriptor that translates `va`
    /// (the tables walked in coherent memory), if the walk gets there.
    fn level3_desc(&self, s: &State, va: u64) -> Option<u64> {
        let g = self.sc.config.granule;
        let mut table = self.sc.root.0;
        for level in g.start_level()..PAGE_LEVEL {
            let d = self.read(s, table + 8 * g.index(level, va) as u64);
            table = Descriptor(d).as_table(g, level)?.0;
        }
        Some(table + 8 * g.index(PAGE_LEVEL, va) as u64)
    }

    /// Records a write of `value` over `prev` to the descriptor at `pa`
    /// by thread `t` (a store, or a hardware update its CPU made), if it
    /// is a level-3 descriptor of a VA the threads use.
    pub(super) fn bbm_write(&self, s: &mut State, t: usize, pa: u64, prev: u64, value: u64) {
        if s.herd_bbm.raised
            || !self
                .threads()
                .vas
                .iter()
                .any(|&va| self.level3_desc(s, va) == Some(pa))
        {
            return;
        }
        // herd's `AArch64PteVal.writable` counts DBM as writable when
        // hardware dirty-state management is on: on any CPU, as the
        // litmus executor has it (`Ctx::hd_any`).
        let mut config = self.sc.config;
        config.features.hw_dbm |= self.threads().code.iter().any(|c| c.hw.dirty);
        let config = &config;
        let g = config.granule;
        let shift = g.page_shift();
        let State { mem, herd_bbm, .. } = s;
        let i = match herd_bbm.descs.binary_search_by_key(&pa, |d| d.0) {
            Ok(i) => i,
            Err(i) => {
                // The value before the first write is the initial one
                // (every later write, hardware updates included, passes
                // here).
                let initial = cacheable(g, Descriptor(prev)).then_some(prev);
                herd_bbm.descs.insert(i, (pa, TtdBbm::new(initial)));
                i
            }
        };
        let b = &mut herd_bbm.descs[i].1;
        let mut warn = false;
        b.write(t, value, cacheable(g, Descriptor(value)), |&old, _| {
            warn |= !reasons_with(config, Descriptor(old), Descriptor(value), |a, b| {
                mem.same_frame(&self.sc.base, shift, a.0 >> shift, b.0 >> shift)
            })
            .is_empty();
        });
        if warn {
            herd_bbm.raised = true;
            herd_bbm.descs.clear();
        } else {
            b.canonical();
        }
    }

    /// Records a write the hardware makes for `cpu`'s translation
    /// `choice` (AF or the dirty state), if `cpu` runs a thread.
    pub(in crate::engine) fn bbm_hw_update(&self, s: &mut State, cpu: usize, choice: &Choice) {
        let first = self.thread_cpu(0);
        if let Some(u) = choice.hw_update
            && cpu >= first
        {
            self.bbm_write(s, cpu - first, u.pa.0, u.expected.0, u.new.0);
        }
    }

    /// Records a DSB of thread `t`.
    pub(super) fn bbm_dsb(&self, s: &mut State, t: usize, kind: BarrierKind) {
        for (_, b) in &mut s.herd_bbm.descs {
            b.dsb(t, kind != BarrierKind::Ld, kind == BarrierKind::Full, 0);
            b.canonical();
        }
    }

    /// Records a TLBI of thread `t`.
    pub(super) fn bbm_tlbi(&self, s: &mut State, t: usize, op: &Tlbi) {
        if s.herd_bbm.descs.is_empty() {
            return;
        }
        let covered = op
            .kind
            .by_va()
            .then(|| self.level3_desc(s, op.va.0))
            .flatten();
        if op.kind.by_va() && covered.is_none() {
            return;
        }
        for (pa, b) in &mut s.herd_bbm.descs {
            if covered.is_none_or(|c| c == *pa) {
                b.tlbi(t);
                b.canonical();
            }
        }
    }
}
