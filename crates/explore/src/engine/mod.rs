//! The transition relation: every step the architecture and the programs
//! allow from a state, and what each step does.
//!
//! Steps:
//! - the updater (CPU 0) runs its next operation;
//! - a workload CPU runs its next operation, one successor per way its
//!   translation may resolve (TLB hit on each matching entry, conflict
//!   abort as the FEAT_BBM level allows, each walk start), via
//!   [`vmsa::translate::Translator`];
//! - a pending descriptor store becomes visible to walkers (before the DSB
//!   that would force it);
//! - a CPU's walker fills its TLB from any walk it could make now
//!   (R_FFWJK: entries may be cached at any time); with hardware AF such a
//!   walk may set AF in memory. The model lets a speculative walk update AF
//!   as a walk for a real access does: the adversarial choice for the
//!   AF-clear + CAS protocol (DDI0487's rules on hardware AF updates for
//!   speculative walks are cited second-hand here; check them before
//!   relying on af-cas's verdict);
//! - a CPU evicts any TLB entry.
//!
//! A TLBI taking effect on a CPU before the DSB that completes it removes
//! that CPU's matching entries: the same as evicting them, which is a
//! step already. So a pending TLBI only keeps the CPUs on which a matching
//! entry is cached; the others are dropped from it at once, since an
//! entry cached there later may as well have been cached after the TLBI
//! took effect (and, if not, evicted by it, an eviction step).
//!
//! Reductions (each preserves every hazard, see the functions):
//! - TLB entries and walks matter only for the VAs a CPU will still access
//!   ([`Engine::normalize`]);
//! - a pending store to a descriptor no remaining walk can read becomes
//!   visible at once;
//! - an updater operation that nothing a workload can observe depends on
//!   or changes (an allocation, a copy into an unmapped page, a store to a
//!   descriptor no remaining walk reads, a barrier with nothing pending)
//!   is taken alone: the other interleavings reach the same states (an
//!   ample set of one, partial-order reduction).
//!
//! This module lists the steps enabled in a state and applies one; what a
//! step does is in its submodule: `cpu` (the workload CPUs'
//! instructions), `updater` (the updater's kernel steps), `translate` (the
//! translation choices of an access, the walks of a fill), `reduce` (the
//! reductions), `memo` (what a step reuses from its parent or siblings),
//! `invariants` (the hazards and the final state's checks).

mod cpu;
mod invariants;
mod memo;
mod reduce;
mod thread;
mod translate;
mod updater;

use std::fmt::Write as _;

use vmsa::VirtAddr;
use vmsa::tlb::Tlb;

use crate::hazard::{Hazard, HazardKind};
use crate::state::{Half, HerdBbm, Mem, State, Th, Wl};
use crate::workload::WOp;
use crate::world::{Op, Scenario};

pub use memo::Memo;
use memo::{Touched, fresh_fills, same_fresh};

/// How many times the af-cas protocol retries a failed compare-and-swap
/// (the 2026 AF-clear series retries a bounded number of times); each
/// CAS carries its own count (`mm::Instr::Cas`).
pub const CAS_RETRIES: u8 = mm::protocol::AF_CAS_RETRIES;

/// A step, as recorded for the counterexample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// The updater's next operation.
    Updater,
    /// Workload CPU `cpu`'s next operation, with its `choice`.
    Cpu {
        /// The CPU.
        cpu: u8,
        /// Which translation choice (or pick).
        choice: u8,
    },
    /// Thread `thread`'s next instruction, along path `path` (a
    /// translation choice, or a store-exclusive failing).
    Thread {
        /// The thread.
        thread: u8,
        /// Which path.
        path: u8,
    },
    /// Pending store `index` becomes visible to walkers.
    Propagate {
        /// Its index.
        index: u8,
    },
    /// The updater's writes to unpublished frame `index` become visible.
    Publish {
        /// Its index.
        index: u8,
    },
    /// CPU `cpu` caches what walk `choice` for `va` reads.
    Fill {
        /// The CPU.
        cpu: u8,
        /// The VA walked.
        va: u64,
        /// Which walk.
        choice: u8,
    },
    /// CPU `cpu` evicts TLB entry `index`.
    Evict {
        /// The CPU.
        cpu: u8,
        /// The entry.
        index: u8,
    },
    /// Pending TLBI `index` takes effect on thread CPU `cpu` before it
    /// completes: it removes the CPU's matching entries, and the values
    /// its walker saw in its scope no longer serve early walks
    /// (`thread/views.rs`).
    Invalidate {
        /// The CPU.
        cpu: u8,
        /// The TLBI.
        index: u8,
    },
}

/// What a step led to.
#[allow(clippy::large_enum_variant)] // the successor is taken out at once; a box would allocate per step
pub enum Outcome {
    /// A new state.
    Next(State),
    /// A hazard (the state is not explored further).
    Hazard(Hazard),
    /// The step cannot be taken (a hardware update found the descriptor
    /// changed).
    Disabled,
}

/// What a step applied in place led to (see [`Engine::apply_into`]).
pub enum Applied {
    /// The successor is in place; the symmetry permutation it took
    /// (empty from [`Engine::apply_into`], which does not record it).
    Next(Vec<usize>),
    /// A hazard.
    Hazard(Hazard),
    /// The step cannot be taken.
    Disabled,
}

/// The transition relation of a scenario.
pub struct Engine<'a> {
    sc: &'a Scenario,
    shift: u32,
    /// For each workload, for each pc: the pages its remaining operations
    /// access, by pick (index) or all candidates (last element), as ranges
    /// of `page_vas`: workload `i`'s table starts at `page_base[i]`, one row
    /// of `page_picks[i]` (candidates + 1) ranges per pc.
    pages: Vec<(u32, u32)>,
    page_base: Vec<usize>,
    page_picks: Vec<usize>,
    page_vas: Vec<u64>,
    /// For each row of `pages`, a bitmap of the table entries (by index in
    /// their table, `words` words a row) that walks for its pages read, at
    /// any level (see [`Engine::may_read`]).
    page_offsets: Vec<u64>,
    words: usize,
    /// Whether the reductions are on (off only to test them).
    reduce: bool,
    /// Runs of identical workloads, `start..end`, of two or more: the
    /// CPUs the symmetry reduction may reorder.
    groups: Vec<(usize, usize)>,
    /// Whether the root table is aligned to the granule, as every table a
    /// descriptor points to is (so [`Engine::may_read`] applies).
    aligned_root: bool,
    /// Per thread, the configuration its CPU translates with
    /// (`thread/tthm.rs`).
    thread_configs: Vec<vmsa::features::Config>,
    /// The descriptors walks of the threads' VAs read in the initial
    /// state, `(descriptor's address, VA)`, sorted (`thread/views.rs`);
    /// empty without threads.
    thread_descs: Vec<(u64, u64)>,
}

impl<'a> Engine<'a> {
    /// Creates the engine for `sc`.
    pub fn new(sc: &'a Scenario) -> Self {
        let shift = sc.page_shift();
        let mask = !((1u64 << shift) - 1);
        let (mut pages, mut page_base, mut page_picks, mut page_vas) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let g = sc.config.granule;
        let words = g.entries_per_table().div_ceil(64);
        let mut page_offsets = Vec::new();
        for w in &sc.workloads {
            let ncand = w.candidates().len();
            page_base.push(pages.len());
            page_picks.push(ncand + 1);
            for pc in 0..=w.ops.len() {
                for pick in 0..=ncand {
                    let p = (pick < ncand).then(|| w.candidates()[pick]);
                    let mut v: Vec<u64> = (pc..w.ops.len())
                        .flat_map(|i| w.va(i, p))
                        .map(|va| va & mask)
                        .collect();
                    v.sort_unstable();
                    v.dedup();
                    let mut row = vec![0u64; words];
                    for &va in &v {
                        for l in g.levels() {
                            let i = g.index(l, va);
                            row[i / 64] |= 1 << (i % 64);
                        }
                    }
                    page_offsets.extend(row);
                    pages.push((page_vas.len() as u32, v.len() as u32));
                    page_vas.extend(v);
                }
            }
        }
        let n = sc.workloads.len();
        let mut groups = Vec::new();
        let mut start = 0;
        while start < n {
            let mut end = start + 1;
            while end < n && sc.workloads[end] == sc.workloads[start] {
                end += 1;
            }
            if end - start > 1 {
                groups.push((start, end));
            }
            start = end;
        }
        let mut e = Engine {
            sc,
            shift,
            pages,
            page_base,
            page_picks,
            page_vas,
            page_offsets,
            words,
            // The reductions are argued for the updater and the workloads;
            // threads (small litmus programs) run unreduced.
            reduce: sc.threads.code.is_empty(),
            groups,
            aligned_root: sc.root.0 & ((1 << shift) - 1) == 0,
            thread_configs: thread::tthm::thread_configs(sc),
            thread_descs: Vec::new(),
        };
        if !sc.threads.code.is_empty() {
            e.thread_descs = e.walked_descs(&e.initial());
        }
        e
    }

    /// Creates the engine for `sc` without the reductions that are not
    /// needed for a finite search (ample sets, eager propagation, dropping
    /// unused TLB entries, the publish filter, symmetry): to test that they
    /// preserve every verdict.
    pub fn unreduced(sc: &'a Scenario) -> Self {
        Engine {
            reduce: false,
            ..Engine::new(sc)
        }
    }

    /// Returns the scenario.
    pub fn scenario(&self) -> &Scenario {
        self.sc
    }

    /// Returns the initial state.
    pub fn initial(&self) -> State {
        let mut s = State {
            mem: Mem::default(),
            pending: Vec::new(),
            tlbis: Vec::new(),
            tlbs: vec![Tlb::default(); 1 + self.sc.workloads.len() + self.sc.threads.code.len()],
            pc: 0,
            retries: 0,
            retry_stage: 0,
            paused: false,
            gp: None,
            wl: vec![Wl::default(); self.sc.workloads.len()],
            freed: Vec::new(),
            written: Vec::new(),
            unpublished: Vec::new(),
            threads: self
                .sc
                .threads
                .code
                .iter()
                .map(|c| Th {
                    regs: c.regs.clone(),
                    ..Th::default()
                })
                .collect(),
            faults: Vec::new(),
            herd_bbm: HerdBbm::default(),
        };
        for &(pa, v) in &self.sc.threads.init {
            s.mem.write(pa, v);
        }
        self.normalize(&mut s);
        s
    }

    fn read(&self, s: &State, pa: u64) -> u64 {
        s.mem.read(&self.sc.base, self.shift, pa)
    }

    /// What walkers read: the oldest pending store's previous value, or
    /// memory.
    pub(crate) fn walker_read(&self, s: &State, pa: u64) -> u64 {
        if s.unpublished.binary_search(&(pa >> self.shift)).is_ok() {
            // A table whose entries are not visible yet: the fresh page's
            // earlier contents, taken as zero (invalid entries).
            return 0;
        }
        match s.pending.iter().find(|p| p.pa.0 == pa) {
            Some(p) => p.prev,
            None => self.read(s, pa),
        }
    }

    /// What `cpu`'s walker reads: as [`Engine::walker_read`], but a
    /// thread's walker may see a pending store already
    /// ([`vmsa::machine::PendingStore::walkers`]: `thread/views.rs`).
    #[inline]
    pub(crate) fn walker_read_for(&self, s: &State, cpu: usize, pa: u64) -> u64 {
        if s.threads.is_empty() {
            return self.walker_read(s, pa);
        }
        self.thread_view(s, cpu, pa)
    }

    #[inline]
    fn live(&self, s: &State, i: usize) -> bool {
        usize::from(s.wl[i].pc) < self.sc.workloads[i].ops.len()
    }

    /// The row of `pages` for workload `i`'s position.
    #[inline]
    fn row(&self, s: &State, i: usize) -> usize {
        let w = &s.wl[i];
        let picks = self.page_picks[i];
        let pick = w.pick.map_or(picks - 1, usize::from);
        self.page_base[i] + usize::from(w.pc) * picks + pick
    }

    /// The pages workload `i` will still access.
    #[inline]
    fn remaining(&self, s: &State, i: usize) -> &[u64] {
        let (at, n) = self.pages[self.row(s, i)];
        &self.page_vas[at as usize..(at + n) as usize]
    }

    fn updater_enabled(&self, s: &State) -> bool {
        match self.sc.ops.get(usize::from(s.pc)) {
            None => false,
            Some(Op::SynchronizeRcu) => !matches!(s.gp, Some(m) if m != 0),
            // The IPI that pauses or stops a CPU is taken between its
            // instructions, never between the two halves of one load.
            Some(Op::Pause) => s.wl.iter().all(|w| w.half == Half::None),
            Some(_) => true,
        }
    }

    /// Tells whether every CPU has finished.
    pub fn finished(&self, s: &State) -> bool {
        usize::from(s.pc) >= self.sc.ops.len()
            && (0..s.wl.len()).all(|i| !self.live(s, i))
            && s.threads.iter().all(|t| !t.running())
    }

    /// Lists the steps enabled in `s`, reduced.
    pub fn steps(&self, s: &State, out: &mut Vec<Step>) {
        self.steps_memo(s, out, &mut Memo::default());
    }

    /// As [`Engine::steps`], keeping what it computed in `memo` for
    /// [`Engine::apply_memo`].
    pub fn steps_memo(&self, s: &State, out: &mut Vec<Step>, memo: &mut Memo) {
        out.clear();
        memo.clear();
        if self.updater_enabled(s) {
            let op = &self.sc.ops[usize::from(s.pc)];
            if self.reduce && self.invisible(s, op, &mut memo.reached) {
                out.push(Step::Updater);
                return;
            }
            out.push(Step::Updater);
        }
        memo.cache.enter(s);
        for i in 0..s.wl.len() {
            if !self.live(s, i) || s.paused {
                continue;
            }
            let cpu = i + 1;
            let w = &self.sc.workloads[i];
            let pc = usize::from(s.wl[i].pc);
            match &w.ops[pc] {
                WOp::SkipIfFakeHead { .. } if self.reduce => {
                    // Local: taken alone.
                    out.clear();
                    memo.repeats.clear();
                    out.push(Step::Cpu {
                        cpu: cpu as u8,
                        choice: 0,
                    });
                    return;
                }
                WOp::Pick(c) if self.reduce => {
                    out.clear();
                    memo.repeats.clear();
                    for k in 0..c.len() {
                        out.push(Step::Cpu {
                            cpu: cpu as u8,
                            choice: k as u8,
                        });
                    }
                    return;
                }
                WOp::Pick(c) => {
                    for k in 0..c.len() {
                        out.push(Step::Cpu {
                            cpu: cpu as u8,
                            choice: k as u8,
                        });
                    }
                }
                WOp::RcuLock | WOp::RcuUnlock | WOp::SkipIfFakeHead { .. } => out.push(Step::Cpu {
                    cpu: cpu as u8,
                    choice: 0,
                }),
                WOp::CasIfNonZero { reg, .. } if s.wl[i].regs[*reg] >> 32 == 0 => {
                    out.push(Step::Cpu {
                        cpu: cpu as u8,
                        choice: 0,
                    })
                }
                _ => {
                    let (va, access) = self.access_of(s, i);
                    let first = memo.all.len();
                    self.choices_into(s, cpu, va, access, &mut memo.all, Some(&mut memo.cache));
                    let tlb = s.tlbs[cpu].entries();
                    for at in first..memo.all.len() {
                        memo.fresh.push(fresh_fills(&memo.all[at].fills, tlb));
                    }
                    let n = memo.all.len() - first;
                    memo.choices.push((cpu, first..memo.all.len()));
                    for k in 0..n {
                        // The same result and the same new entries, neither
                        // choice updating a descriptor: the same successor
                        // (a hazard's description may name another way,
                        // but only the first hazard of a state is reported).
                        let at = first + k;
                        let (a, fa) = (&memo.all[at], memo.fresh[at]);
                        if a.hw_update.is_none()
                            && self.freed_table(s, a).is_none()
                            && (first..at).any(|b| {
                                let (b, fb) = (&memo.all[b], memo.fresh[b]);
                                b.hw_update.is_none()
                                    && b.result == a.result
                                    && same_fresh(&a.fills, fa, &b.fills, fb)
                            })
                        {
                            memo.repeats.push(out.len() as u32);
                        }
                        out.push(Step::Cpu {
                            cpu: cpu as u8,
                            choice: k as u8,
                        });
                    }
                }
            }
        }
        for t in 0..s.threads.len() {
            // A stopped thread may still have hardware updates to bring
            // to memory (`thread/hw_update.rs`).
            for k in 0..self.thread_paths(s, t).len() {
                out.push(Step::Thread {
                    thread: t as u8,
                    path: k as u8,
                });
            }
        }
        for (k, p) in s.pending.iter().enumerate() {
            if !s.pending[..k].iter().any(|q| q.pa == p.pa) {
                out.push(Step::Propagate { index: k as u8 });
            }
        }
        if !s.unpublished.is_empty() {
            // Only a frame some remaining access can reach: publishing
            // another now or when it becomes reachable is the same.
            memo.reached.enter(s);
            let (_, frames) = self.observable_in(
                s,
                &|_, f| s.unpublished.iter().all(|u| f.contains(u)),
                Some(&mut memo.reached),
            );
            for (k, f) in s.unpublished.iter().enumerate() {
                if !self.reduce || frames.contains(f) {
                    out.push(Step::Publish { index: k as u8 });
                }
            }
        }
        for i in 0..s.wl.len() {
            if !self.live(s, i) {
                continue;
            }
            let cpu = i + 1;
            let cpu_first = memo.fills.len();
            for &va in self.remaining(s, i) {
                let first = memo.fills.len();
                self.fill_walks(s, cpu, va, &mut memo.cache, &mut memo.fills);
                let n = memo.fills.len() - first;
                memo.walks.push((cpu, va, first..memo.fills.len()));
                for k in 0..n {
                    let (a, fa) = memo.fills[first + k];
                    let a = &memo.cache.items[a as usize];
                    let repeat = a.hw_update.is_none()
                        && self.freed_table(s, a).is_none()
                        && memo.fills[cpu_first..first + k].iter().any(|&(b, fb)| {
                            let b = &memo.cache.items[b as usize];
                            b.hw_update.is_none() && same_fresh(&a.fills, fa, &b.fills, fb)
                        });
                    if repeat {
                        memo.repeats.push(out.len() as u32);
                    }
                    out.push(Step::Fill {
                        cpu: cpu as u8,
                        va,
                        choice: k as u8,
                    });
                }
            }
            let keep = self.remaining(s, i);
            for (k, e) in s.tlbs[cpu].entries().iter().enumerate() {
                // Evicting an entry no remaining access uses only helps the
                // end-of-batch check; it is not offered.
                if !self.reduce || keep.iter().any(|&va| e.covers(VirtAddr(va))) {
                    out.push(Step::Evict {
                        cpu: cpu as u8,
                        index: k as u8,
                    });
                }
            }
        }
        for t in 0..s.threads.len() {
            if !s.threads[t].running() {
                continue;
            }
            let cpu = self.thread_cpu(t);
            // Walks kept from state to state assume one view for every
            // walker: not so once a thread's walker sees a store others do
            // not (`thread/views.rs`); the fill then walks again.
            let shared = s.pending.iter().all(|p| p.walkers == 0);
            for &va in &self.sc.threads.vas {
                let n = if shared {
                    let first = memo.fills.len();
                    self.fill_walks(s, cpu, va, &mut memo.cache, &mut memo.fills);
                    memo.walks.push((cpu, va, first..memo.fills.len()));
                    memo.fills.len() - first
                } else {
                    self.walks(s, cpu, va).len()
                };
                for k in 0..n {
                    out.push(Step::Fill {
                        cpu: cpu as u8,
                        va,
                        choice: k as u8,
                    });
                }
            }
            for k in 0..s.tlbs[cpu].entries().len() {
                out.push(Step::Evict {
                    cpu: cpu as u8,
                    index: k as u8,
                });
            }
            for (k, tl) in s.tlbis.iter().enumerate() {
                if tl.waiting & (1 << cpu) != 0 && self.revocable(s, tl.cpu, &tl.op, cpu) {
                    out.push(Step::Invalidate {
                        cpu: cpu as u8,
                        index: k as u8,
                    });
                }
            }
        }
        // A mirrored repeat leads where its twin's step does only once the
        // symmetry sort has put the CPU that stepped in its place: without
        // the reductions (`Engine::unreduced`) the two successors differ.
        if self.reduce {
            self.mirrored_repeats(s, out, memo);
        }
    }

    /// Applies `step` to `s`; with `log`, describes it.
    pub fn apply(&self, s: &State, step: Step, log: Option<&mut String>) -> Outcome {
        self.apply_traced(s, step, log).0
    }

    /// As [`Engine::apply`], with the choices [`Engine::steps_memo`]
    /// computed for `s`.
    pub fn apply_memo(&self, s: &State, step: Step, memo: &Memo) -> Outcome {
        self.apply_inner(s, step, None, Some(memo)).0
    }

    /// As [`Engine::apply`]; also returns the symmetry permutation of the
    /// new state (see [`Engine::normalize_perm`]).
    pub fn apply_traced(
        &self,
        s: &State,
        step: Step,
        log: Option<&mut String>,
    ) -> (Outcome, Vec<usize>) {
        self.apply_inner(s, step, log, None)
    }

    fn apply_inner(
        &self,
        s: &State,
        step: Step,
        log: Option<&mut String>,
        memo: Option<&Memo>,
    ) -> (Outcome, Vec<usize>) {
        let none = || (0..s.wl.len()).collect::<Vec<usize>>();
        let mut n = s.clone();
        match self.apply_to(s, &mut n, step, log, memo, true) {
            Applied::Next(perm) => (Outcome::Next(n), perm),
            Applied::Hazard(h) => (Outcome::Hazard(h), none()),
            Applied::Disabled => (Outcome::Disabled, none()),
        }
    }

    /// As [`Engine::apply_memo`], in place: `n` holds a copy of `s` and
    /// becomes the successor (the search reuses one state's storage for
    /// every successor). On a hazard or a disabled step `n` is garbage.
    /// The permutation in [`Applied::Next`] is left empty.
    pub fn apply_into(&self, s: &State, n: &mut State, step: Step, memo: &Memo) -> Applied {
        self.apply_to(s, n, step, None, Some(memo), false)
    }

    fn apply_to(
        &self,
        s: &State,
        n: &mut State,
        step: Step,
        mut log: Option<&mut String>,
        memo: Option<&Memo>,
        want_perm: bool,
    ) -> Applied {
        // Whether a fill updated a descriptor (set AF).
        let mut fill_hw = false;
        let r = match step {
            Step::Updater => self.run_updater(n, log.as_deref_mut()),
            Step::Cpu { cpu, choice } => {
                let (c, k) = (usize::from(cpu), usize::from(choice));
                let memoized = memo.and_then(|m| m.choice(c, k));
                self.run_cpu(n, c, k, memoized, log.as_deref_mut())
            }
            Step::Thread { thread, path } => Ok(self.run_thread(
                n,
                usize::from(thread),
                usize::from(path),
                log.as_deref_mut(),
            )),
            Step::Propagate { index } => {
                let p = n.pending.remove(usize::from(index));
                if let Some(l) = log.as_deref_mut() {
                    let _ = write!(
                        l,
                        "hw:   store to {:#x} ({:#x}) visible to walkers",
                        p.pa.0, p.value
                    );
                }
                Ok(true)
            }
            Step::Publish { index } => {
                let f = n.unpublished.remove(usize::from(index));
                if let Some(l) = log.as_deref_mut() {
                    let _ = write!(l, "hw:   cpu0's writes to pfn {f:#x} visible to all");
                }
                Ok(true)
            }
            Step::Fill { cpu, va, choice } => {
                let c = usize::from(cpu);
                let k = usize::from(choice);
                let owned;
                let ch = match memo.and_then(|m| m.walk(c, va, k)) {
                    Some(found) => found,
                    None => {
                        owned = self.walks(s, c, va);
                        owned.get(k).map(|ch| (ch, u8::MAX))
                    }
                };
                let Some((ch, fresh)) = ch else {
                    return Applied::Disabled;
                };
                if let Some(f) = self.freed_table(n, ch) {
                    let what = format!(
                        "cpu{c}'s walker, caching for {va:#x}: {}",
                        self.freed_table_walk(ch, f)
                    );
                    return Applied::Hazard(self.hazard(
                        n,
                        c,
                        HazardKind::FreedTableWalk,
                        va,
                        what,
                    ));
                }
                let committed = if c > self.sc.workloads.len() {
                    // A thread's walker: its update's timing
                    // (`thread/hw_update.rs`).
                    self.thread_commit(n, c, ch, fresh)
                } else {
                    self.commit(n, c, ch, fresh)
                };
                if !committed {
                    return Applied::Disabled;
                }
                fill_hw = ch.hw_update.is_some();
                if fill_hw {
                    // A thread's walker: herd7's BBM bookkeeping.
                    self.bbm_hw_update(n, c, ch);
                }
                if let Some(l) = log.as_deref_mut() {
                    let _ = write!(l, "hw:   cpu{c} walker caches for {va:#x}:");
                    for e in &ch.fills {
                        let _ = write!(l, " [{e}]");
                    }
                    if ch.hw_update.is_some() {
                        l.push_str(" (sets AF)");
                    }
                }
                Ok(true)
            }
            Step::Evict { cpu, index } => {
                let c = usize::from(cpu);
                let e = n.tlbs[c].evict(usize::from(index));
                if let Some(l) = log
                    && let Some(e) = e
                {
                    let _ = write!(l, "hw:   cpu{c} evicts [{e}]");
                }
                Ok(true)
            }
            Step::Invalidate { cpu, index } => {
                let c = usize::from(cpu);
                let Some(tl) = n.tlbis.get_mut(usize::from(index)) else {
                    return Applied::Disabled;
                };
                tl.waiting &= !(1 << c);
                let tl = *tl;
                n.tlbs[c].invalidate(&tl.op);
                self.revoke(n, tl.cpu, &tl.op, c);
                if let Some(l) = log {
                    let _ = write!(l, "hw:   {} (cpu{}) takes effect on cpu{c}", tl.op, tl.cpu);
                }
                Ok(true)
            }
        };
        if matches!(r, Ok(true)) && !self.sc.threads.code.is_empty() {
            // What the threads' walkers saw and no longer see
            // (`thread/views.rs`).
            self.note_views(s, n);
        }
        match r {
            Err(h) => Applied::Hazard(h),
            Ok(false) => Applied::Disabled,
            Ok(true) if want_perm => Applied::Next(self.normalize_perm(n)),
            Ok(true) => {
                // Only a workload CPU's own step or fill adds TLB entries
                // or moves a position; the other steps only remove entries
                // (an eviction, a TLBI completing) or touch neither.
                let entries = |s: &State| s.tlbs.iter().map(|t| t.entries().len()).sum::<usize>();
                let touched = match step {
                    Step::Cpu { cpu, .. } => Touched::Cpu(usize::from(cpu)),
                    Step::Thread { .. } => Touched::All,
                    Step::Fill { cpu, .. } if fill_hw => Touched::Cpu(usize::from(cpu)),
                    Step::Fill { cpu, .. } => Touched::Grew(usize::from(cpu)),
                    Step::Evict { cpu, .. } | Step::Invalidate { cpu, .. } => {
                        Touched::Shrank(usize::from(cpu))
                    }
                    // The updater only removes entries (a TLBI completing).
                    Step::Updater if entries(n) == entries(s) => Touched::Nothing,
                    Step::Updater => Touched::Removed,
                    Step::Propagate { .. } | Step::Publish { .. } => Touched::Views,
                };
                self.normalize_from(n, None, touched);
                Applied::Next(Vec::new())
            }
        }
    }
}
