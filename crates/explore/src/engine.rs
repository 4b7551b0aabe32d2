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

use std::fmt::Write as _;
use std::ops::Range;

use vmsa::machine::{PendingStore, PendingTlbi};
use vmsa::tlb::{Tlb, TlbEntry, TlbKind};
use vmsa::translate::Translator;
use vmsa::walk::{self, Access, Choice};
use vmsa::{PhysAddr, VirtAddr};

use crate::hazard::{Hazard, HazardKind};
use crate::state::{Half, Mem, State, Wl};
use crate::workload::{Addr, WOp};
use crate::world::{Op, REF_ONE, Scenario, Source};

/// A small set of addresses: a handful of walks' worth, so a vector beats
/// a hash set; the first [`Small::INLINE`] live inline (no allocation on
/// the search's hot path).
struct Small {
    n: usize,
    inline: [u64; Small::INLINE],
    more: Vec<u64>,
}

impl Default for Small {
    fn default() -> Self {
        Small {
            n: 0,
            inline: [0; Small::INLINE],
            more: Vec::new(),
        }
    }
}

impl Small {
    const INLINE: usize = 16;

    fn insert(&mut self, x: u64) {
        if self.contains(&x) {
            return;
        }
        if self.n < Self::INLINE {
            self.inline[self.n] = x;
            self.n += 1;
        } else {
            self.more.push(x);
        }
    }

    fn contains(&self, x: &u64) -> bool {
        self.inline[..self.n].contains(x) || self.more.contains(x)
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.inline[..self.n].iter().chain(&self.more).copied()
    }
}

/// How many times the af-cas protocol retries a failed compare-and-swap
/// (the 2026 AF-clear series retries a bounded number of times); each
/// CAS carries its own count (`mm::Instr::Cas`).
pub const CAS_RETRIES: u8 = mm::protocol::AF_CAS_RETRIES;

/// What a step may have changed in a normalized state (see
/// [`Engine::normalize_from`]); CPUs are numbered from 1 like the steps'.
#[derive(Clone, Copy)]
enum Touched {
    /// Anything (a state not normalized before).
    All,
    /// The TLB and the position of the CPU it holds (its own step, or a
    /// fill that updated a descriptor), and memory.
    Cpu(usize),
    /// Only the TLB of the CPU it holds, which gained entries for a VA the
    /// CPU will access (a fill without a hardware update).
    Grew(usize),
    /// Only the TLB of the CPU it holds, which lost an entry (an eviction).
    Shrank(usize),
    /// The updater's operation, which may have removed TLB entries (a TLBI
    /// completing) and added pending stores or TLBIs.
    Removed,
    /// The updater's operation, which removed no TLB entry.
    Nothing,
    /// Only a pending store or an unpublished frame went (it became
    /// visible to walkers or to other CPUs).
    Views,
}

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
}

/// The translation choices and walks [`Engine::steps`] computed for a
/// state, so that applying each step does not compute them again.
#[derive(Default)]
pub struct Memo {
    /// Every access's choices, one list after another (storage kept
    /// from state to state: no allocation per access).
    all: Vec<Choice>,
    /// For each choice in `all`, which of its fills the CPU's TLB does not
    /// hold yet (bit `k` for fill `k`).
    fresh: Vec<u8>,
    /// (CPU, its next access's choices: where they are in `all`).
    choices: Vec<(usize, Range<usize>)>,
    /// Every fill's walk, one list after another: where it is in the
    /// cache's choices, and its fresh fills (as in `fresh`).
    fills: Vec<(u32, u8)>,
    /// (CPU, VA, the walks a fill may make: where they are in `fills`).
    walks: Vec<(usize, u64, Range<usize>)>,
    /// Walks kept from state to state.
    cache: WalkCache,
    /// What the observability query's walks reach, kept from state to
    /// state.
    reached: ReachCache,
    /// The steps (their indices in the list, ascending) whose successor
    /// is an earlier step's (see [`Memo::repeats`]).
    repeats: Vec<u32>,
}

impl Memo {
    fn clear(&mut self) {
        self.all.clear();
        self.fresh.clear();
        self.repeats.clear();
        self.choices.clear();
        self.fills.clear();
        self.walks.clear();
    }

    /// Returns choice `k` of `cpu`'s next access, with its fresh fills
    /// (see [`Memo::fresh`]).
    fn choice(&self, cpu: usize, k: usize) -> Option<Option<(&Choice, u8)>> {
        self.choices.iter().find(|c| c.0 == cpu).map(|c| {
            let at = c.1.start + k;
            (at < c.1.end).then(|| (&self.all[at], self.fresh[at]))
        })
    }

    /// Returns the indices, ascending, of the steps [`Engine::steps_memo`]
    /// listed whose successor is an earlier step's: a fill that caches, in
    /// the same CPU's TLB, the same new entries as an earlier fill (for the
    /// same VA by another walk, or for another VA through the same tables);
    /// a choice of a CPU's access with the same result and the same new
    /// entries as an earlier choice (a hit on another entry, a walk from
    /// another start); neither updating a descriptor, and the later one
    /// reading no freed table (a hazard of its own, which the earlier step
    /// may not meet). A search may count
    /// such a step as a transition to a known state without applying it
    /// (if the earlier step met a hazard, the search stops there first).
    pub fn repeats(&self) -> &[u32] {
        &self.repeats
    }

    /// Returns walk `k` a fill for `va` on `cpu` may make, with its fresh
    /// fills (see [`Memo::fresh`]).
    fn walk(&self, cpu: usize, va: u64, k: usize) -> Option<Option<(&Choice, u8)>> {
        self.walks
            .iter()
            .find(|w| w.0 == cpu && w.1 == va)
            .map(|w| {
                let at = w.2.start + k;
                (at < w.2.end).then(|| {
                    let (i, fresh) = self.fills[at];
                    (&self.cache.items[i as usize], fresh)
                })
            })
    }
}

/// What was computed in one view of memory, kept from state to state
/// while the view is unchanged: by key, a run of items. The states a
/// worker expands one after another are mostly siblings that differ only
/// in their TLBs (a fill, an eviction), and CPUs walk the same VAs from
/// the root and from the same walk-cache entries.
struct Kept<K, T> {
    view: View,
    /// Each key and where its items are in `items`.
    keys: Vec<(K, Range<u32>)>,
    items: Vec<T>,
}

impl<K, T> Default for Kept<K, T> {
    fn default() -> Self {
        Kept {
            view: View::default(),
            keys: Vec::new(),
            items: Vec::new(),
        }
    }
}

impl<K: PartialEq, T> Kept<K, T> {
    /// Past this many items the cache starts again (a bound; a view
    /// rarely has more than a few dozen).
    const MAX: usize = 4096;

    /// Makes the cache hold what was computed in `s`'s view of memory,
    /// dropping what was computed in another.
    fn enter(&mut self, s: &State) {
        if self.view.enter(s, self.items.len() >= Self::MAX) {
            self.keys.clear();
            self.items.clear();
        }
    }

    /// Returns where the items for `key` are in `items`, appended by
    /// `make` unless kept.
    fn get(&mut self, key: K, make: impl FnOnce(&mut Vec<T>)) -> Range<usize> {
        let r = match self.keys.iter().find(|k| k.0 == key) {
            Some(k) => k.1.clone(),
            None => {
                let a = self.items.len() as u32;
                make(&mut self.items);
                let r = a..self.items.len() as u32;
                self.keys.push((key, r.clone()));
                r
            }
        };
        r.start as usize..r.end as usize
    }
}

/// The choices of walks, by VA, access and start (`None` the root, or a
/// walk-cache entry): a walk reads only descriptors as the walkers see
/// them ([`Engine::walker_read`]: memory, pending stores, unpublished
/// frames), from a start the scenario fixes or the entry names, so a walk
/// from the same start for the same access makes the same choices in
/// every state with the same view.
type WalkCache = Kept<(u64, Access, Option<TlbEntry>), Choice>;

/// What [`Engine::reach`] finds from a start (VA, level, table): the
/// descriptors it reads (`true`) and the frames it reaches (`false`); it
/// reads only memory, pending stores and unpublished frames.
type ReachCache = Kept<(u64, u8, u64), (bool, u64)>;

impl WalkCache {
    /// Appends to `out` the choices of the walk for a `kind` access to `va`
    /// from `start`, made by `walk_from` unless kept.
    fn walk_from(
        &mut self,
        va: u64,
        kind: Access,
        start: Option<&TlbEntry>,
        out: &mut Vec<Choice>,
        walk_from: impl FnOnce(&mut Vec<Choice>),
    ) {
        let r = self.get((va, kind, start.copied()), walk_from);
        out.extend_from_slice(&self.items[r]);
    }
}

impl ReachCache {
    /// Adds to `descs` and `frames` what a walk for `va` from `table` at
    /// `level` reaches, found by `reach` unless kept.
    fn reach(
        &mut self,
        key: (u64, u8, u64),
        descs: &mut Small,
        frames: &mut Small,
        reach: impl FnOnce(&mut Small, &mut Small),
    ) {
        let r = self.get(key, |items| {
            let (mut d, mut f) = (Small::default(), Small::default());
            reach(&mut d, &mut f);
            items.extend(d.iter().map(|x| (true, x)));
            items.extend(f.iter().map(|x| (false, x)));
        });
        for &(desc, x) in &self.items[r] {
            if desc {
                descs.insert(x);
            } else {
                frames.insert(x);
            }
        }
    }
}

/// The walkers' view of memory a cache was made in: what
/// [`Engine::walker_read`] and [`Engine::reach`] read besides the scenario.
#[derive(Default)]
struct View {
    /// Whether the fields below are a view.
    valid: bool,
    mem: Mem,
    pending: Vec<PendingStore>,
    unpublished: Vec<u64>,
}

impl View {
    /// Makes this `s`'s view; returns whether it changed (or `reset`
    /// asked for a new start), so that what was kept for it goes.
    fn enter(&mut self, s: &State, reset: bool) -> bool {
        if self.valid
            && !reset
            && self.pending == s.pending
            && self.unpublished == s.unpublished
            && self.mem == s.mem
        {
            return false;
        }
        self.valid = true;
        self.mem.clone_from(&s.mem);
        self.pending.clone_from(&s.pending);
        self.unpublished.clone_from(&s.unpublished);
        true
    }
}

/// What a step led to.
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
        Engine {
            sc,
            shift,
            pages,
            page_base,
            page_picks,
            page_vas,
            page_offsets,
            words,
            reduce: true,
            groups,
            aligned_root: sc.root.0 & ((1 << shift) - 1) == 0,
        }
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
            tlbs: vec![Tlb::default(); 1 + self.sc.workloads.len()],
            pc: 0,
            retries: 0,
            retry_stage: 0,
            paused: false,
            gp: None,
            wl: vec![Wl::default(); self.sc.workloads.len()],
            freed: Vec::new(),
            written: Vec::new(),
            unpublished: Vec::new(),
        };
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

    /// Marks a write to a fresh frame not mapped yet as not visible to
    /// other CPUs until a barrier. (Writes to a page already mapped are
    /// ordinary concurrent writes: readers see the old or the new words.)
    fn unpublish(&self, s: &mut State, frame: u64) {
        if self.sc.fresh.binary_search(&frame).is_err() {
            return;
        }
        let g = self.sc.config.granule;
        let read = |pa: PhysAddr| self.read(s, pa.0);
        let mapped = self.sc.pages.iter().any(|&(va, _, _)| {
            walk::walk_each(
                g,
                VirtAddr(va),
                g.start_level(),
                self.sc.root,
                &read,
                |_| {},
            )
            .is_ok_and(|(leaf, _, _, _)| leaf.oa.0 >> self.shift == frame)
        });
        if !mapped && let Err(i) = s.unpublished.binary_search(&frame) {
            s.unpublished.insert(i, frame);
        }
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

    /// Tells whether a remaining walk of a live CPU may read the descriptor
    /// at `pa`, by its position in its table alone: a walk for `va` reads at
    /// level `l` the entry `index(l, va)` of a granule-aligned table (the
    /// root, or one a table descriptor or walk-cache entry points to, whose
    /// next-level table address is granule-aligned: Arm ARM D8.2 and D8.3.1,
    /// `Granule::index` and `table_addr_mask`), so a descriptor at another
    /// offset is never read, whatever the tables hold. A necessary
    /// condition of [`Engine::observable`]'s answer, checked first because
    /// it is cheap: true when in doubt. (The offsets each position's pages
    /// are read at are a bitmap made once, [`Engine::page_offsets`].)
    fn may_read(&self, s: &State, pa: u64) -> bool {
        if !self.aligned_root {
            return true;
        }
        let i = ((pa & ((1 << self.shift) - 1)) / 8) as usize;
        (0..s.wl.len()).any(|w| {
            self.live(s, w) && {
                let row = self.row(s, w) * self.words;
                self.page_offsets[row + i / 64] & (1 << (i % 64)) != 0
            }
        })
    }

    /// Returns every descriptor address a remaining walk of a live CPU may
    /// read (from the root or a cached table, in the coherent or the
    /// walkers' view), and every frame such walks or cached entries lead
    /// to (tables and data); or stops early, with part of them, once
    /// `done` holds of what was found. `done` must be monotone (once true,
    /// true of any supersets), so that what a caller decides from the part
    /// is what it would decide from the whole.
    fn observable(&self, s: &State, done: &dyn Fn(&Small, &Small) -> bool) -> (Small, Small) {
        self.observable_in(s, done, None)
    }

    /// As [`Engine::observable`], with what walks reach kept in `cache`
    /// (which must have [`Kept::enter`]ed `s`'s view).
    fn observable_in(
        &self,
        s: &State,
        done: &dyn Fn(&Small, &Small) -> bool,
        mut cache: Option<&mut ReachCache>,
    ) -> (Small, Small) {
        let g = self.sc.config.granule;
        let mut descs = Small::default();
        let mut frames = Small::default();
        // Walks already followed (identical CPUs often walk the same VAs
        // from the same tables): following one again adds nothing.
        let mut seen = [(0u64, 0u8, 0u64); 32];
        let mut nseen = 0;
        let mut follow = |va: u64, level: u8, table: PhysAddr, d: &mut Small, f: &mut Small| {
            let key = (va, level, table.0);
            if seen[..nseen].contains(&key) {
                return;
            }
            if nseen < seen.len() {
                seen[nseen] = key;
                nseen += 1;
            }
            match cache.as_deref_mut() {
                Some(c) => c.reach(key, d, f, |d, f| self.reach(s, va, level, table, d, f)),
                None => self.reach(s, va, level, table, d, f),
            }
        };
        for i in 0..s.wl.len() {
            if !self.live(s, i) {
                continue;
            }
            let tlb = &s.tlbs[i + 1];
            for &va in self.remaining(s, i) {
                follow(va, g.start_level(), self.sc.root, &mut descs, &mut frames);
                for e in tlb.walks(VirtAddr(va)) {
                    if let TlbKind::Walk { next } = e.kind {
                        follow(va, e.level + 1, next, &mut descs, &mut frames);
                    }
                }
                for e in tlb.leaves(VirtAddr(va), 0) {
                    if let Some(pa) = e.translate(VirtAddr(va)) {
                        frames.insert(pa.0 >> self.shift);
                    }
                }
                if done(&descs, &frames) {
                    return (descs, frames);
                }
            }
        }
        (descs, frames)
    }

    /// Follows every walk for `va` from `table` at `level` that some view
    /// of memory allows: at each descriptor, the coherent value, every
    /// pending store's old and new value, and zero in a page whose
    /// initialization is not visible yet (so mixed views, one level's store
    /// visible and another's not, are covered). Records the descriptors
    /// read and the frames reached.
    fn reach(
        &self,
        s: &State,
        va: u64,
        level: u8,
        table: PhysAddr,
        descs: &mut Small,
        frames: &mut Small,
    ) {
        let g = self.sc.config.granule;
        let pa = table.add(g.index(level, va) as u64 * 8);
        descs.insert(pa.0);
        frames.insert(pa.0 >> self.shift);
        let coherent = self.read(s, pa.0);
        let next = |v: u64, descs: &mut Small, frames: &mut Small| match vmsa::Descriptor(v)
            .decode(g, level)
        {
            vmsa::Entry::Table(t) => self.reach(s, va, level + 1, t.next, descs, frames),
            vmsa::Entry::Block(leaf) | vmsa::Entry::Page(leaf) => {
                let off = va & (g.level_size(level) - 1);
                frames.insert((leaf.oa.0 + off) >> self.shift);
            }
            _ => {}
        };
        if !s.pending.iter().any(|p| p.pa == pa)
            && s.unpublished.binary_search(&(pa.0 >> self.shift)).is_err()
        {
            // One view only (the common case).
            next(coherent, descs, frames);
            return;
        }
        let mut vals = Small::default();
        vals.insert(coherent);
        for p in s.pending.iter().filter(|p| p.pa == pa) {
            vals.insert(p.prev);
            vals.insert(p.value);
        }
        if s.unpublished.binary_search(&(pa.0 >> self.shift)).is_ok() {
            vals.insert(0);
        }
        let mut inline = vals.inline;
        let mut more = vals.more;
        let vals: &mut [u64] = if more.is_empty() {
            &mut inline[..vals.n]
        } else {
            more.extend_from_slice(&inline);
            &mut more
        };
        vals.sort_unstable();
        for &v in vals.iter() {
            next(v, descs, frames);
        }
    }

    /// Brings a state to its canonical form: TLB entries no remaining
    /// access can use are dropped (an eviction), pending stores no
    /// remaining walk can read become visible, and pending TLBIs forget the
    /// CPUs where they match nothing.
    pub fn normalize(&self, s: &mut State) {
        self.normalize_in(s, None);
    }

    /// As [`Engine::normalize`]; returns how the symmetry reduction
    /// reordered the workload CPUs: position `k` now holds the CPU that was
    /// at position `order[k]`.
    pub fn normalize_perm(&self, s: &mut State) -> Vec<usize> {
        let mut perm: Vec<usize> = (0..s.wl.len()).collect();
        self.normalize_in(s, Some(&mut perm));
        perm
    }

    /// As [`Engine::normalize_perm`], recording the permutation in `perm`
    /// only when given (no allocation otherwise).
    fn normalize_in(&self, s: &mut State, perm: Option<&mut Vec<usize>>) {
        self.normalize_from(s, perm, Touched::All);
    }

    /// As [`Engine::normalize_in`], for a state that was normalized before
    /// a step touched only what `touched` says: the TLB entries a CPU keeps
    /// depend only on its TLB and its position (the pages it will still
    /// access), so a CPU whose TLB gained nothing and whose position did not
    /// move keeps them all (it kept them when the state was normalized, and
    /// removing entries elsewhere changes nothing for it).
    ///
    /// What each kind of step lets it skip (the parent was normalized):
    /// - the TLB entries a CPU keeps depend only on its TLB and its
    ///   position (the pages it will still access), so only a CPU whose
    ///   position moved or whose TLB gained entries needs filtering, and
    ///   not after a fill: a walk for `va` caches only entries that cover
    ///   `va` (walk-cache entries for the regions holding it, its leaf), a
    ///   VA the CPU will access;
    /// - whether a walk may read a pending store by its offset
    ///   ([`Engine::may_read`]) depends only on the positions and the
    ///   store, so only a step that moved a position or added a store
    ///   needs it again;
    /// - the descriptors remaining walks may read
    ///   ([`Engine::observable`]) only grow when a TLB gains entries and
    ///   nothing else changes, so after a fill without a hardware update
    ///   every pending store stays;
    /// - a pending TLBI forgets a CPU only once that CPU lost entries;
    /// - the symmetry sort has the other CPUs in order already when one
    ///   CPU's TLB or position changed.
    fn normalize_from(&self, s: &mut State, perm: Option<&mut Vec<usize>>, touched: Touched) {
        s.tlbs[0].clear();
        if self.reduce {
            let filter = match touched {
                Touched::All => 0..s.wl.len(),
                Touched::Cpu(c) => c - 1..c,
                _ => 0..0,
            };
            for i in filter {
                let keep: &[u64] = if self.live(s, i) {
                    self.remaining(s, i)
                } else {
                    &[]
                };
                let tlb = &mut s.tlbs[i + 1];
                for k in (0..tlb.entries().len()).rev() {
                    let e = &tlb.entries()[k];
                    if !keep.iter().any(|&va| e.covers(VirtAddr(va))) && !self.kept_for_end(e) {
                        tlb.evict(k);
                    }
                }
            }
        }
        if self.reduce && !s.pending.is_empty() && !matches!(touched, Touched::Grew(_)) {
            // Stores no walk can read by their offset go first (the query
            // below would drop them too); the query only when some remain.
            if matches!(
                touched,
                Touched::All | Touched::Cpu(_) | Touched::Removed | Touched::Nothing
            ) {
                let mut unread = 0u64;
                for (k, p) in s.pending.iter().enumerate().take(64) {
                    if !self.may_read(s, p.pa.0) {
                        unread |= 1 << k;
                    }
                }
                if unread != 0 {
                    let mut k = 0;
                    s.pending.retain(|_| {
                        k += 1;
                        k > 64 || unread & (1 << (k - 1)) == 0
                    });
                }
            }
            if !s.pending.is_empty() {
                let (descs, _) =
                    self.observable(s, &|d, _| s.pending.iter().all(|p| d.contains(&p.pa.0)));
                s.pending.retain(|p| descs.contains(&p.pa.0));
            }
        }
        if !s.tlbis.is_empty() {
            let cpus = match touched {
                Touched::Grew(_) | Touched::Views => 0..0,
                Touched::Cpu(c) | Touched::Shrank(c) => c..c + 1,
                Touched::All | Touched::Removed | Touched::Nothing => 0..s.tlbs.len(),
            };
            for t in s.tlbis.iter_mut() {
                for c in cpus.clone() {
                    if t.waiting & (1 << c) != 0
                        && !s.tlbs[c].entries().iter().any(|e| t.op.matches(e))
                    {
                        t.waiting &= !(1 << c);
                    }
                }
            }
            s.tlbis.retain(|t| t.waiting != 0);
        }
        if self.reduce {
            match touched {
                Touched::Nothing | Touched::Views => {}
                Touched::Cpu(c) | Touched::Grew(c) | Touched::Shrank(c) => {
                    self.symmetry_in(s, perm, Some(c - 1))
                }
                Touched::All | Touched::Removed => self.symmetry_in(s, perm, None),
            }
        }
    }

    /// Tells whether `e` is a leaf entry for a vmemmap page of the huge page:
    /// kept until the end, where no CPU may hold one that disagrees with
    /// the final tables (the kernel uses the struct pages freely once the
    /// batch is done; a stale read-only entry would fault a later write, a
    /// stale entry to an old page would read a freed page).
    fn kept_for_end(&self, e: &vmsa::tlb::TlbEntry) -> bool {
        e.is_leaf() && self.sc.pages.iter().any(|p| e.covers(VirtAddr(p.0)))
    }

    /// Sorts CPUs that run identical workloads by their state, so that
    /// states differing only by a permutation of them become one (symmetry
    /// reduction): the CPU masks of pending TLBIs and of a grace period
    /// are permuted with them. Hazards are preserved: a permutation of
    /// identical CPUs maps executions to executions. Records in `perm`,
    /// when given, which CPU each position now holds; allocates nothing.
    /// With `only` (a workload index), only that CPU changed since the
    /// CPUs were last sorted: it moves to its place among the others, in
    /// order already, which gives the same order as sorting them all.
    fn symmetry_in(&self, s: &mut State, mut perm: Option<&mut Vec<usize>>, only: Option<usize>) {
        for &(start, end) in &self.groups {
            if only.is_some_and(|i| i < start || i >= end) {
                continue;
            }
            let len = end - start;
            // `a`'s key (position, then TLB entries) is greater than `b`'s.
            let greater = |a: usize, b: usize| {
                cpu_order(
                    &s.wl[a],
                    s.tlbs[a + 1].entries(),
                    &s.wl[b],
                    s.tlbs[b + 1].entries(),
                )
                .is_gt()
            };
            // CPU masks are 64 bits wide, so a group has at most 63 CPUs.
            let mut order_buf = [0u8; 64];
            let order = &mut order_buf[..len];
            let moved = match only {
                Some(i) => {
                    // Its place: left past the greater ones, or right past
                    // the smaller ones (equal ones keep their side: stable).
                    let mut j = i;
                    while j > start && greater(j - 1, i) {
                        j -= 1;
                    }
                    if j == i {
                        while j + 1 < end && greater(i, j + 1) {
                            j += 1;
                        }
                    }
                    if j == i {
                        continue;
                    }
                    for (k, o) in order.iter_mut().enumerate() {
                        *o = (start + k) as u8;
                    }
                    // The CPU at `a` goes to `b`; those between shift by one.
                    let (a, b) = (i - start, j - start);
                    if a > b {
                        for k in (b + 1..=a).rev() {
                            order[k] = order[k - 1];
                        }
                    } else {
                        for k in a..b {
                            order[k] = order[k + 1];
                        }
                    }
                    order[b] = i as u8;
                    true
                }
                None => {
                    for (k, o) in order.iter_mut().enumerate() {
                        *o = (start + k) as u8;
                    }
                    // A stable insertion sort (a group is a handful of
                    // CPUs, most often in order already): the order
                    // `sort_by` would give.
                    let mut moved = false;
                    for k in 1..len {
                        let mut j = k;
                        while j > 0 && greater(usize::from(order[j - 1]), usize::from(order[j])) {
                            order.swap(j - 1, j);
                            j -= 1;
                            moved = true;
                        }
                    }
                    moved
                }
            };
            if !moved {
                continue;
            }
            if let Some(p) = perm.as_deref_mut() {
                let mut before = [0usize; 64];
                before[..len].copy_from_slice(&p[start..end]);
                for (k, &i) in order.iter().enumerate() {
                    p[start + k] = before[usize::from(i) - start];
                }
            }
            // Position `start + k` takes the CPU that was at `order[k]`:
            // swap each into place (`cur[j]`: the CPU now at `start + j`).
            let mut cur_buf = [0u8; 64];
            let cur = &mut cur_buf[..len];
            for (j, c) in cur.iter_mut().enumerate() {
                *c = (start + j) as u8;
            }
            for k in 0..len {
                let j = k + cur[k..]
                    .iter()
                    .position(|&c| c == order[k])
                    .expect("a permutation");
                if j != k {
                    cur.swap(k, j);
                    s.wl.swap(start + k, start + j);
                    s.tlbs.swap(start + k + 1, start + j + 1);
                }
            }
            let remap = |m: u64| {
                let mut out = m;
                for (k, &i) in order.iter().enumerate() {
                    let (to, from) = (start + k + 1, usize::from(i) + 1);
                    out = (out & !(1 << to)) | (((m >> from) & 1) << to);
                }
                out
            };
            for t in s.tlbis.iter_mut() {
                t.waiting = remap(t.waiting);
            }
            if let Some(m) = s.gp.as_mut() {
                *m = remap(*m);
            }
        }
    }

    fn translator<'b>(
        &'b self,
        read: &'b dyn Fn(PhysAddr) -> u64,
        same: &'b dyn Fn(PhysAddr, PhysAddr) -> bool,
    ) -> Translator<'b> {
        Translator {
            config: &self.sc.config,
            root: self.sc.root,
            read,
            same_page: Some(same),
        }
    }

    fn choices(&self, s: &State, cpu: usize, va: u64, access: Access) -> Vec<Choice> {
        let mut out = Vec::new();
        self.choices_into(s, cpu, va, access, &mut out, None);
        out
    }

    /// Appends to `out` the choices of `cpu`'s `access` to `va` (with the
    /// walks kept in `cache`, when given: it must have [`Kept::enter`]ed
    /// `s`'s view).
    fn choices_into(
        &self,
        s: &State,
        cpu: usize,
        va: u64,
        access: Access,
        out: &mut Vec<Choice>,
        cache: Option<&mut WalkCache>,
    ) {
        let read = |pa: PhysAddr| self.walker_read(s, pa.0);
        let same = |a: PhysAddr, b: PhysAddr| {
            s.mem.same_frame(
                &self.sc.base,
                self.shift,
                a.0 >> self.shift,
                b.0 >> self.shift,
            )
        };
        let t = self.translator(&read, &same);
        let (tlb, va) = (&s.tlbs[cpu], VirtAddr(va));
        match cache {
            Some(cache) => t.choices_with(tlb, 0, va, access, out, &mut |start, out| {
                cache.walk_from(va.0, access, start, out, |to| {
                    t.walk_from_into(start, 0, va, access, to)
                })
            }),
            None => t.choices_into(tlb, 0, va, access, out),
        }
    }

    fn walks(&self, s: &State, cpu: usize, va: u64) -> Vec<Choice> {
        let mut out = Vec::new();
        self.walks_into(s, cpu, va, &mut out);
        out
    }

    /// Appends to `out` the walks a fill for `va` on `cpu` may make.
    fn walks_into(&self, s: &State, cpu: usize, va: u64, out: &mut Vec<Choice>) {
        let read = |pa: PhysAddr| self.walker_read(s, pa.0);
        let same = |_: PhysAddr, _: PhysAddr| false;
        let first = out.len();
        self.translator(&read, &same)
            .walks_into(&s.tlbs[cpu], 0, VirtAddr(va), Access::Load, out);
        // A walk that caches nothing new changes nothing (`retain` on the
        // appended walks only).
        let tlb = s.tlbs[cpu].entries();
        let mut kept = first;
        for k in first..out.len() {
            if fresh_fills(&out[k].fills, tlb) != 0 {
                if kept != k {
                    out.swap(kept, k);
                }
                kept += 1;
            }
        }
        out.truncate(kept);
    }

    /// As [`Engine::walks_into`], with the walks kept in `cache` (which
    /// must have [`Kept::enter`]ed `s`'s view), appended to `list` as
    /// their places in the cache with their fresh fills (see
    /// [`Memo::fresh`]), not copied: the walks of
    /// [`Translator::walks_with`] (from the root, then from each matching
    /// walk-cache entry, consecutive equal ones merged), but those that
    /// cache nothing new.
    fn fill_walks(
        &self,
        s: &State,
        cpu: usize,
        va: u64,
        cache: &mut WalkCache,
        list: &mut Vec<(u32, u8)>,
    ) {
        let read = |pa: PhysAddr| self.walker_read(s, pa.0);
        let same = |_: PhysAddr, _: PhysAddr| false;
        let t = self.translator(&read, &same);
        let tlb = &s.tlbs[cpu];
        let mut last: Option<usize> = None;
        let mut from = |start: Option<&TlbEntry>| {
            let r = cache.get((va, Access::Load, start.copied()), |to| {
                t.walk_from_into(start, 0, VirtAddr(va), Access::Load, to)
            });
            for i in r {
                if last.is_some_and(|l| cache.items[l] == cache.items[i]) {
                    continue;
                }
                last = Some(i);
                let fresh = fresh_fills(&cache.items[i].fills, tlb.entries());
                if fresh != 0 {
                    list.push((i as u32, fresh));
                }
            }
        };
        from(None);
        for e in tlb.walks(VirtAddr(va)) {
            from(Some(e));
        }
    }

    /// Tells whether the updater's next operation is invisible to the
    /// workloads (see the module documentation).
    fn invisible(&self, s: &State, op: &Op, cache: &mut ReachCache) -> bool {
        let touches =
            |frames: &Small, first: u64, n: u64| (first..first + n).any(|f| frames.contains(&f));
        if s.retry_stage > 0 {
            return false;
        }
        match op {
            Op::Alloc | Op::Isb => true,
            Op::Dsb(_) => s.pending.is_empty() && s.tlbis.is_empty() && s.unpublished.is_empty(),
            Op::Tlbi(t) => !s
                .tlbs
                .iter()
                .any(|tlb| tlb.entries().iter().any(|e| t.matches(e))),
            Op::Store { pa, .. } | Op::Cas { pa, .. } => {
                !self.may_read(s, pa.0) || {
                    cache.enter(s);
                    !self
                        .observable_in(s, &|d, _| d.contains(&pa.0), Some(cache))
                        .0
                        .contains(&pa.0)
                }
            }
            Op::Free { first, count } => {
                let hit = |f: &Small| touches(f, *first, *count);
                cache.enter(s);
                !hit(&self.observable_in(s, &|_, f| hit(f), Some(cache)).1)
            }
            // A copy also reads its source: a workload store there must not
            // be reordered around it.
            Op::Copy { dst, src } => {
                let hit = |f: &Small| f.contains(dst) || f.contains(src);
                cache.enter(s);
                !hit(&self.observable_in(s, &|_, f| hit(f), Some(cache)).1)
            }
            Op::Fill { frame: f, .. } | Op::Words { frame: f, .. } => {
                cache.enter(s);
                !self
                    .observable_in(s, &|_, fr| fr.contains(f), Some(cache))
                    .1
                    .contains(f)
            }
            Op::Pause | Op::Resume | Op::SynchronizeRcu | Op::WriteWord { .. } => false,
        }
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
        usize::from(s.pc) >= self.sc.ops.len() && (0..s.wl.len()).all(|i| !self.live(s, i))
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
        // A mirrored repeat leads where its twin's step does only once the
        // symmetry sort has put the CPU that stepped in its place: without
        // the reductions (`Engine::unreduced`) the two successors differ.
        if self.reduce {
            self.mirrored_repeats(s, out, memo);
        }
    }

    /// Adds to `memo`'s repeats the steps of a workload CPU whose neighbour
    /// before it in its symmetry group is identical (position, registers,
    /// TLB, and its bit in every pending TLBI's and the grace period's CPU
    /// masks): the same step on the neighbour, listed earlier, reaches the
    /// same state once normalized. (Swapping the two CPUs maps the state to
    /// itself and one successor to the other; the symmetry sort then puts
    /// the CPU that stepped at the same place in both, since its key
    /// differs from the unchanged twin's: a step moves its CPU's position,
    /// or adds or removes a TLB entry.) Only steps that cannot be disabled
    /// (no hardware update) are added, so that the neighbour's step is a
    /// transition too.
    fn mirrored_repeats(&self, s: &State, out: &[Step], memo: &mut Memo) {
        let mut ident = 0u64;
        for &(start, end) in &self.groups {
            for i in start + 1..end {
                let (a, b) = (i, i + 1);
                let same_bits = |m: u64| (m >> a) & 1 == (m >> b) & 1;
                if s.wl[i - 1] == s.wl[i]
                    && s.tlbs[a].entries() == s.tlbs[b].entries()
                    && s.tlbis.iter().all(|t| same_bits(t.waiting))
                    && s.gp.is_none_or(same_bits)
                {
                    ident |= 1 << b;
                }
            }
        }
        if ident == 0 {
            return;
        }
        let before = memo.repeats.len();
        for (t, &st) in out.iter().enumerate() {
            let (cpu, twin, hw) = match st {
                Step::Cpu { cpu, choice } => (
                    cpu,
                    Step::Cpu {
                        cpu: cpu - 1,
                        choice,
                    },
                    memo.choice(usize::from(cpu), usize::from(choice))
                        .flatten()
                        .is_some_and(|(c, _)| c.hw_update.is_some()),
                ),
                Step::Fill { cpu, va, choice } => (
                    cpu,
                    Step::Fill {
                        cpu: cpu - 1,
                        va,
                        choice,
                    },
                    memo.walk(usize::from(cpu), va, usize::from(choice))
                        .flatten()
                        .is_none_or(|(c, _)| c.hw_update.is_some()),
                ),
                Step::Evict { cpu, index } => (
                    cpu,
                    Step::Evict {
                        cpu: cpu - 1,
                        index,
                    },
                    false,
                ),
                _ => continue,
            };
            if ident & (1 << cpu) != 0 && !hw && out[..t].contains(&twin) {
                memo.repeats.push(t as u32);
            }
        }
        if memo.repeats.len() > before {
            memo.repeats.sort_unstable();
            memo.repeats.dedup();
        }
    }

    fn resolve(&self, s: &State, i: usize, a: &Addr) -> u64 {
        match *a {
            Addr::Fixed(v) => v,
            Addr::Picked(o) => {
                let w = &self.sc.workloads[i];
                w.candidates()[usize::from(s.wl[i].pick.unwrap_or(0))] + o
            }
        }
    }

    fn access_of(&self, s: &State, i: usize) -> (u64, Access) {
        let w = &self.sc.workloads[i];
        match &w.ops[usize::from(s.wl[i].pc)] {
            WOp::Load { addr, .. } => (self.resolve(s, i, addr), Access::Load),
            WOp::LoadHalf { va, .. } => (*va, Access::Load),
            WOp::Store { addr, .. } | WOp::CasIfNonZero { addr, .. } => {
                (self.resolve(s, i, addr), Access::Store)
            }
            _ => (0, Access::Load),
        }
    }

    /// Applies a choice's hardware update and fills to `cpu`'s TLB, as
    /// [`vmsa::Machine::commit`] does. Returns false if the update found
    /// the descriptor changed. `fresh` says which fills (bit `k` for fill
    /// `k`) the TLB may not hold yet; the others are not inserted again
    /// (all are, after a hardware update, which evicts entries).
    fn commit(&self, s: &mut State, cpu: usize, c: &Choice, fresh: u8) -> bool {
        if let Some(u) = c.hw_update {
            if self.read(s, u.pa.0) != u.expected.0 || s.pending.iter().any(|p| p.pa == u.pa) {
                return false;
            }
            s.mem.write(u.pa.0, u.new.0);
            let tlb = &mut s.tlbs[cpu];
            let stale: Vec<usize> = (0..tlb.entries().len())
                .filter(|&k| tlb.entries()[k].desc_pa == u.pa)
                .collect();
            for k in stale.into_iter().rev() {
                tlb.evict(k);
            }
        }
        let fresh = if c.hw_update.is_some() {
            u8::MAX
        } else {
            fresh
        };
        for (k, e) in c.fills.iter().enumerate() {
            if fresh & (1 << k) != 0 {
                s.tlbs[cpu].insert(*e);
            }
        }
        true
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
                if !self.commit(n, c, ch, fresh) {
                    return Applied::Disabled;
                }
                fill_hw = ch.hw_update.is_some();
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
        };
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
                    Step::Fill { cpu, .. } if fill_hw => Touched::Cpu(usize::from(cpu)),
                    Step::Fill { cpu, .. } => Touched::Grew(usize::from(cpu)),
                    Step::Evict { cpu, .. } => Touched::Shrank(usize::from(cpu)),
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

    fn run_updater(&self, s: &mut State, log: Option<&mut String>) -> Result<bool, Hazard> {
        let pc = usize::from(s.pc);
        let op = &self.sc.ops[pc];
        // What the log adds to the instruction (made only with a log: the
        // search runs without one).
        let on = log.is_some();
        let mut note = String::new();
        let mut say = |text: &dyn Fn() -> String| {
            if on {
                note = text();
            }
        };
        let mut next = pc + 1;
        match op {
            Op::Store { pa, value } => self.store(s, pa.0, *value),
            Op::Cas {
                pa, expect, tlbi, ..
            } if s.retry_stage > 0 => {
                // The retry of this entry: clear AF again and flush it.
                next = pc;
                match s.retry_stage {
                    1 => {
                        self.store(s, pa.0, *expect);
                        say(&|| format!(" (retry {}: clear AF again)", s.retries));
                    }
                    2 => {
                        s.pending.clear();
                        say(&|| " (retry: dsb ishst)".into());
                    }
                    3 => {
                        self.issue_tlbi(s, *tlbi);
                        say(&|| format!(" (retry: {tlbi})"));
                    }
                    _ => {
                        self.complete_tlbis(s);
                        say(&|| " (retry: dsb ish)".into());
                    }
                }
                s.retry_stage = (s.retry_stage + 1) % 5;
            }
            Op::Cas {
                pa,
                expect,
                value,
                retries,
                ..
            } => {
                let cur = self.read(s, pa.0);
                if cur == *expect {
                    self.store(s, pa.0, *value);
                    s.retries = 0;
                } else if s.retries < *retries {
                    s.retries += 1;
                    s.retry_stage = 1;
                    next = pc;
                    say(&|| format!(" -> found {cur:#x}, retry"));
                } else {
                    return Err(Hazard {
                        kind: HazardKind::GaveUp,
                        cpu: 0,
                        va: None,
                        detail: format!(
                            "the descriptor at {:#x} holds {cur:#x}, not {expect:#x}, after {} retries",
                            pa.0, retries
                        ),
                    });
                }
            }
            Op::Dsb(kind) => {
                s.pending.clear();
                s.unpublished.clear();
                if kind.completes_tlbi() {
                    self.complete_tlbis(s);
                }
            }
            Op::Isb | Op::Alloc => {}
            Op::Tlbi(t) => self.issue_tlbi(s, *t),
            Op::Free { first, count } => {
                for f in *first..first + count {
                    match s.freed.binary_search(&f) {
                        Ok(_) => {
                            return Err(Hazard {
                                kind: HazardKind::DoubleFree,
                                cpu: 0,
                                va: None,
                                detail: format!("pfn {f:#x} freed twice"),
                            });
                        }
                        Err(i) => s.freed.insert(i, f),
                    }
                }
            }
            Op::Copy { dst, src } => {
                s.mem.copy(*dst, *src, self.shift);
                self.unpublish(s, *dst);
            }
            Op::Fill { frame, first, step } => {
                s.mem.fill(
                    *frame,
                    Source::Fill {
                        first: *first,
                        step: *step,
                    },
                    self.shift,
                );
                self.unpublish(s, *frame);
            }
            Op::Words { frame, words } => {
                for &(w, v) in words.iter() {
                    s.mem.write((frame << self.shift) + u64::from(w) * 8, v);
                }
                self.unpublish(s, *frame);
            }
            Op::Pause => s.paused = true,
            Op::Resume => s.paused = false,
            Op::SynchronizeRcu => match s.gp {
                None => {
                    let m =
                        s.wl.iter()
                            .enumerate()
                            .filter(|(_, w)| w.rcu)
                            .fold(0u64, |m, (i, _)| m | 1 << (i + 1));
                    if m != 0 {
                        s.gp = Some(m);
                        next = pc;
                        say(&|| " (waits for the CPUs in a read section)".into());
                    }
                }
                Some(_) => s.gp = None,
            },
            Op::WriteWord { va, value } => {
                let g = self.sc.config.granule;
                let read = |pa: PhysAddr| self.read(s, pa.0);
                let w = walk::walk_each(
                    g,
                    VirtAddr(*va),
                    g.start_level(),
                    self.sc.root,
                    &read,
                    |_| {},
                );
                match w {
                    Ok((leaf, lvl, _, _)) => {
                        let pa = leaf.oa.0 + (va & (g.level_size(lvl) - 1));
                        s.mem.write(pa, *value);
                        s.wrote(*va, *value);
                    }
                    Err(f) => {
                        return Err(Hazard {
                            kind: HazardKind::Fault(f.kind),
                            cpu: 0,
                            va: Some(*va),
                            detail: format!("the updater's own store faulted: {f}"),
                        });
                    }
                }
            }
        }
        if let Some(l) = log {
            let _ = write!(l, "cpu0: {}{note}", self.sc.program.instrs[pc]);
        }
        s.pc = next as u16;
        Ok(true)
    }

    /// Issues a broadcast TLBI from the updater: it may take effect on
    /// every other CPU until a `DSB ISH` completes it.
    fn issue_tlbi(&self, s: &mut State, t: vmsa::Tlbi) {
        let all = u64::MAX >> (64 - s.tlbs.len());
        s.tlbis.push(PendingTlbi {
            cpu: 0,
            op: t,
            waiting: all & !1,
        });
    }

    /// `DSB ISH` on the updater: its TLBIs complete on every CPU still
    /// waiting for them.
    fn complete_tlbis(&self, s: &mut State) {
        for t in std::mem::take(&mut s.tlbis) {
            for c in 0..s.tlbs.len() {
                if t.waiting & (1 << c) != 0 {
                    s.tlbs[c].invalidate(&t.op);
                }
            }
        }
    }

    fn store(&self, s: &mut State, pa: u64, value: u64) {
        let prev = self.read(s, pa);
        s.mem.write(pa, value);
        s.pending.push(PendingStore {
            cpu: 0,
            pa: PhysAddr(pa),
            prev,
            value,
        });
    }

    /// Runs workload CPU `cpu`'s next operation with translation `choice`;
    /// with `log`, describes it (also when it ends in a hazard).
    fn run_cpu(
        &self,
        s: &mut State,
        cpu: usize,
        choice: usize,
        memoized: Option<Option<(&Choice, u8)>>,
        log: Option<&mut String>,
    ) -> Result<bool, Hazard> {
        let mut text = String::new();
        let r = self.cpu_op(s, cpu, choice, memoized, log.is_some(), &mut text);
        if let Some(l) = log
            && !matches!(r, Ok(false))
        {
            l.push_str(&text);
        }
        r
    }

    fn cpu_op(
        &self,
        s: &mut State,
        cpu: usize,
        choice: usize,
        memoized: Option<Option<(&Choice, u8)>>,
        on: bool,
        text: &mut String,
    ) -> Result<bool, Hazard> {
        let i = cpu - 1;
        let w = &self.sc.workloads[i];
        let pc = usize::from(s.wl[i].pc);
        let op = &w.ops[pc];
        let mut next = pc + 1;
        if on {
            *text = format!("cpu{cpu}: {op}");
        }
        match op {
            WOp::Pick(c) => {
                s.wl[i].pick = Some(choice as u8);
                if on {
                    *text = format!("cpu{cpu}: picks the struct page at {:#x}", c[choice]);
                }
            }
            WOp::RcuLock => s.wl[i].rcu = true,
            WOp::RcuUnlock => {
                s.wl[i].rcu = false;
                if let Some(m) = s.gp.as_mut() {
                    *m &= !(1 << cpu);
                }
            }
            WOp::SkipIfFakeHead { reg, to } => {
                let picked = self.resolve(s, i, &Addr::Picked(0));
                let flags = s.wl[i].regs[*reg];
                if picked != w.head
                    && flags & mm::vmemmap::PG_HEAD != 0
                    && picked.is_multiple_of(1 << self.shift)
                {
                    next = *to;
                    if on {
                        text.push_str(": fake head, skipped");
                    }
                }
            }
            WOp::CasIfNonZero { reg, .. } if s.wl[i].regs[*reg] >> 32 == 0 => {
                if on {
                    text.push_str(": refcount zero, no CAS");
                }
            }
            _ => {
                let (va, access) = self.access_of(s, i);
                let owned;
                let ch = match memoized {
                    Some(found) => found,
                    None => {
                        owned = self.choices(s, cpu, va, access);
                        owned.get(choice).map(|ch| (ch, u8::MAX))
                    }
                };
                let Some((ch, fresh)) = ch else {
                    return Ok(false);
                };
                if let Some(f) = self.freed_table(s, ch) {
                    let what = format!("{op}: {}", self.freed_table_walk(ch, f));
                    return Err(self.hazard(s, cpu, HazardKind::FreedTableWalk, va, what));
                }
                if !self.commit(s, cpu, ch, fresh) {
                    return Ok(false);
                }
                if on {
                    let _ = write!(text, " via {}", describe_via(ch));
                }
                let t = match ch.result {
                    Err(f) => {
                        return Err(self.hazard(
                            s,
                            cpu,
                            HazardKind::Fault(f.kind),
                            va,
                            format!("{f} on {op}"),
                        ));
                    }
                    Ok(t) => t,
                };
                let frame = t.pa.0 >> self.shift;
                if s.unpublished.binary_search(&frame).is_ok() {
                    return Err(self.hazard(
                        s,
                        cpu,
                        HazardKind::Uninitialized,
                        va,
                        format!(
                            "{op} reached pfn {frame:#x}, whose initialization cpu0 has not made visible (no barrier before the store that published it)"
                        ),
                    ));
                }
                if s.freed.binary_search(&frame).is_ok() {
                    return Err(self.hazard(
                        s,
                        cpu,
                        HazardKind::UseAfterFree,
                        va,
                        format!(
                            "{op} reached pfn {frame:#x}, freed, via {}",
                            describe_via(ch)
                        ),
                    ));
                }
                match op {
                    WOp::Load { reg, .. } => {
                        let v = self.read(s, t.pa.0);
                        s.wl[i].regs[*reg] = v;
                        if on {
                            let _ = write!(text, " = {v:#x}");
                        }
                    }
                    WOp::Store { value, .. } => {
                        s.mem.write(t.pa.0, *value);
                        s.wrote(va, *value);
                    }
                    WOp::CasIfNonZero { reg, .. } => {
                        let cur = self.read(s, t.pa.0);
                        let exp = s.wl[i].regs[*reg];
                        if cur == exp {
                            s.mem.write(t.pa.0, cur + REF_ONE);
                            s.wrote(va, cur + REF_ONE);
                            if on {
                                text.push_str(" (swapped)");
                            }
                        } else {
                            if on {
                                let _ = write!(text, " (found {cur:#x}, no swap)");
                            }
                        }
                    }
                    WOp::LoadHalf { half, .. } => {
                        let v = self.read(s, t.pa.0);
                        s.wl[i].regs[*half] = v;
                        let h = self.classify(s, va, v);
                        if on {
                            let _ = write!(text, " = {v:#x}");
                        }
                        if *half == 0 {
                            s.wl[i].half = h;
                        } else if let Half::Loaded { versions: first } = s.wl[i].half
                            && let Half::Loaded { versions: second } = h
                            && first & second == 0
                        {
                            // Torn: no one version of the two pages shows
                            // both halves (one half through each).
                            let first_value = s.wl[i].regs[0];
                            let what = format!(
                                "the halves come from different versions of vmemmap pages 0 and 1: the first ({first_value:#x}) is what they show mapped as {}, the second ({v:#x}) mapped as {}; no mapping (pfn of page 0, pfn of page 1) the program passes through shows both",
                                self.versions_text(first),
                                self.versions_text(second),
                            );
                            return Err(self.hazard(s, cpu, HazardKind::TornRead, va, what));
                        } else {
                            s.wl[i].half = Half::None;
                        }
                    }
                    _ => {}
                }
            }
        }
        s.wl[i].pc = next as u8;
        Ok(true)
    }

    /// Returns the first freed frame walk `c` reads as a table, if any:
    /// where it starts (the root table, or the table a walk-cache entry
    /// points to) or a table a descriptor on the way points to (each
    /// table descriptor read is a walk-cache fill naming the next table).
    /// A TLB hit reads no table (but a write through a clean entry with
    /// hardware dirty-state management, which walks from the root).
    fn freed_table(&self, s: &State, c: &Choice) -> Option<u64> {
        if s.freed.is_empty() {
            return None;
        }
        let start = match c.via {
            walk::Via::Walk => self.sc.root,
            walk::Via::WalkFrom(TlbEntry {
                kind: TlbKind::Walk { next },
                ..
            }) => next,
            walk::Via::Tlb(_) if !c.fills.is_empty() || c.hw_update.is_some() => self.sc.root,
            _ => return None,
        };
        let nexts = c.fills.iter().filter_map(|e| match e.kind {
            TlbKind::Walk { next } => Some(next),
            TlbKind::Leaf { .. } => None,
        });
        std::iter::once(start)
            .chain(nexts)
            .map(|pa| pa.0 >> self.shift)
            .find(|f| s.freed.binary_search(f).is_ok())
    }

    /// Describes walk `c` reading freed frame `f` as a table, and how it
    /// came to (see [`Engine::freed_table`]).
    fn freed_table_walk(&self, c: &Choice, f: u64) -> String {
        let walk = match c.via {
            walk::Via::WalkFrom(e) => format!("a walk from cached [{e}]"),
            walk::Via::Tlb(e) => {
                format!("the walk of a dirty-state update (a write through [{e}])")
            }
            _ => "a walk from the root".into(),
        };
        let why = match c.via {
            walk::Via::WalkFrom(TlbEntry {
                kind: TlbKind::Walk { next },
                ..
            }) if next.0 >> self.shift == f => {
                "that walk-cache entry still points at it: no TLBI that invalidates walk caches (not a last-level one) removed it before the free"
            }
            _ if self.sc.root.0 >> self.shift == f => "it is the root table",
            _ => "a table descriptor the walk read still points at it",
        };
        format!("{walk} reads descriptors from pfn {f:#x}, a page-table page cpu0 freed ({why})")
    }

    /// Classifies a value `v` read at `va`: which versions of vmemmap pages
    /// 0 and 1 ([`Scenario::straddle_versions`]) show it now, i.e. map
    /// `va`'s page to a frame that holds `v` at `va`'s offset now. (A page
    /// the versions do not name shows the same in every version.) The
    /// contents are those of the moment of the read: a later version's
    /// frame (a fresh page filled later) does not show it yet, an earlier
    /// one's (a page being replaced) may still.
    fn classify(&self, s: &State, va: u64, v: u64) -> Half {
        let mask = (1u64 << self.shift) - 1;
        let all = (1u64 << self.sc.straddle_versions.len()) - 1;
        let Some(page) = self.sc.pages[..2].iter().position(|p| p.0 == va & !mask) else {
            return Half::Loaded { versions: all };
        };
        let mut versions = 0;
        for (k, frames) in self.sc.straddle_versions.iter().enumerate() {
            if let Some(f) = frames[page]
                && self.read(s, (f << self.shift) | (va & mask)) == v
            {
                versions |= 1 << k;
            }
        }
        Half::Loaded { versions }
    }

    /// Describes the versions in `mask` (see [`Engine::classify`]): the
    /// frames of vmemmap pages 0 and 1 in each.
    fn versions_text(&self, mask: u64) -> String {
        let pfn = |f: Option<u64>| f.map_or("unmapped".to_string(), |f| format!("pfn {f:#x}"));
        let list: Vec<String> = self
            .sc
            .straddle_versions
            .iter()
            .enumerate()
            .filter(|(k, _)| mask & (1 << k) != 0)
            .map(|(_, [a, b])| format!("({}, {})", pfn(*a), pfn(*b)))
            .collect();
        if list.is_empty() {
            "none of them".into()
        } else {
            list.join(" or ")
        }
    }

    fn hazard(&self, s: &State, cpu: usize, kind: HazardKind, va: u64, what: String) -> Hazard {
        Hazard {
            kind,
            cpu,
            va: Some(va),
            detail: format!("{what}; {}", self.context(s, cpu, va)),
        }
    }

    /// Describes the descriptors and TLB entries that matter for `va` on
    /// `cpu`.
    pub fn context(&self, s: &State, cpu: usize, va: u64) -> String {
        let g = self.sc.config.granule;
        let mut out = String::new();
        let mut table = self.sc.root;
        for level in g.levels() {
            let pa = table.add(g.index(level, va) as u64 * 8);
            let coherent = self.read(s, pa.0);
            let seen = self.walker_read(s, pa.0);
            let d = vmsa::Descriptor(coherent);
            let _ = write!(
                out,
                "L{level} desc {:#x} = {}",
                pa.0,
                vmsa::descriptor::describe(&d.decode(g, level))
            );
            if seen != coherent {
                let _ = write!(
                    out,
                    " (walkers still see {})",
                    vmsa::descriptor::describe(&vmsa::Descriptor(seen).decode(g, level))
                );
            }
            out.push_str("; ");
            match d.as_table(g, level) {
                Some(next) => table = next,
                None => break,
            }
        }
        let entries: Vec<String> = s.tlbs[cpu]
            .entries()
            .iter()
            .filter(|e| e.covers(VirtAddr(va)))
            .map(|e| format!("[{e}]"))
            .collect();
        let _ = write!(
            out,
            "cpu{cpu} TLB: {}",
            if entries.is_empty() {
                "nothing for it".to_string()
            } else {
                entries.join(" ")
            }
        );
        out
    }

    /// Checks a final state against the sequential run: every store
    /// reflected, struct pages as the sequential run left them, the
    /// intended mapping, every old page freed.
    pub fn check_final(&self, s: &State) -> Option<Hazard> {
        let g = self.sc.config.granule;
        let read = |pa: PhysAddr| self.read(s, pa.0);
        let leaf = |va: u64| -> Option<(u64, bool)> {
            let w = walk::walk_each(
                g,
                VirtAddr(va),
                g.start_level(),
                self.sc.root,
                &read,
                |_| {},
            );
            w.ok().map(|(l, lvl, _, _)| {
                (l.oa.0 + (va & (g.level_size(lvl) - 1)), l.attrs.read_only())
            })
        };
        let bad = |kind, va: u64, detail: String| {
            Some(Hazard {
                kind,
                cpu: 0,
                va: Some(va),
                detail,
            })
        };
        for &[va, v] in &s.written {
            match leaf(va) {
                Some((pa, _)) if self.read(s, pa) == v => {}
                Some((pa, _)) => {
                    return bad(
                        HazardKind::LostUpdate,
                        va,
                        format!(
                            "the last store wrote {v:#x}; the final mapping shows {:#x}",
                            self.read(s, pa)
                        ),
                    );
                }
                None => return bad(HazardKind::FinalState, va, "not mapped at the end".into()),
            }
        }
        // A word the final mapping shares with a written VA (a fake head
        // showing the head's flags) was checked with the stores.
        let written_at: Vec<u64> = s
            .written
            .iter()
            .filter_map(|&[va, _]| leaf(va))
            .map(|l| l.0)
            .collect();
        for &(va, v) in &self.sc.reference.words {
            if s.written.binary_search_by_key(&va, |w| w[0]).is_ok() {
                continue;
            }
            if let Some((pa, _)) = leaf(va)
                && !written_at.contains(&pa)
                && self.read(s, pa) != v
            {
                return bad(
                    HazardKind::FinalState,
                    va,
                    format!(
                        "struct page word is {:#x}; the sequential run leaves {v:#x}",
                        self.read(s, pa)
                    ),
                );
            }
        }
        for &(va, frame, ro) in &self.sc.reference.mapping {
            let got = leaf(va).map(|(pa, r)| (pa >> self.shift, r));
            if got != Some((frame, ro)) {
                return bad(
                    HazardKind::FinalState,
                    va,
                    format!("maps {got:?} at the end; intended (pfn {frame:#x}, read-only {ro})"),
                );
            }
        }
        for (c, tlb) in s.tlbs.iter().enumerate() {
            for e in tlb.entries().iter().filter(|e| self.kept_for_end(e)) {
                let TlbKind::Leaf { attrs, .. } = e.kind else {
                    continue;
                };
                for &(va, frame, ro) in &self.sc.reference.mapping {
                    if e.covers(VirtAddr(va))
                        && let Some(pa) = e.translate(VirtAddr(va))
                        && (pa.0 >> self.shift != frame || attrs.read_only() != ro)
                    {
                        return Some(Hazard {
                            kind: HazardKind::FinalState,
                            cpu: c,
                            va: Some(va),
                            detail: format!(
                                "when the batch ends cpu{c} still holds [{e}], but the tables map pfn {frame:#x}{}",
                                if ro { " read-only" } else { " read-write" }
                            ),
                        });
                    }
                }
            }
        }
        // No leak: every page the program allocated, and every page the
        // vmemmap mapped before (but the shared tail page, which other huge
        // pages map), is held by a live translation of the final tables (a
        // table reachable from the root, or inside the output range of a
        // page or block descriptor they hold), or was freed. The walks of
        // the huge page's vmemmap pages, which find most of them, go first;
        // the other frames are looked for in the whole tree (a PMD block
        // made of a new order-9 block maps frames the huge page's walks
        // never reach).
        let mut used = Small::default();
        for &(va, _, _) in &self.sc.pages {
            let w = walk::walk(g, VirtAddr(va), g.start_level(), self.sc.root, &read);
            for t in &w.tables {
                if let TlbKind::Walk { next } = t.kind {
                    used.insert(next.0 >> self.shift);
                }
            }
            if let Ok((leaf, lvl, _, _)) = w.result {
                used.insert((leaf.oa.0 + (va & (g.level_size(lvl) - 1))) >> self.shift);
            }
        }
        let old = self
            .sc
            .pages
            .iter()
            .map(|p| p.1)
            .filter(|&f| Some(f) != self.sc.shared_tail);
        let mut left: Vec<u64> = self
            .sc
            .fresh
            .iter()
            .copied()
            .chain(old)
            .filter(|f| !used.contains(f) && s.freed.binary_search(f).is_err())
            .collect();
        if !left.is_empty() {
            self.drop_mapped(s, &mut left);
        }
        if let Some(&f) = left.first() {
            return bad(
                HazardKind::FinalState,
                0,
                format!(
                    "pfn {f:#x}, allocated by the program or mapped by the vmemmap before, is neither freed nor held by the final tables (no table or page or block descriptor reachable from the root holds it): a leak"
                ),
            );
        }
        if s.freed != self.sc.reference.freed {
            return bad(
                HazardKind::FinalState,
                0,
                format!(
                    "{} pages freed, the sequential run frees {}",
                    s.freed.len(),
                    self.sc.reference.freed.len()
                ),
            );
        }
        None
    }

    /// Removes from `left` every frame the tables of `s`'s memory hold: a
    /// table reachable from the root, or a frame inside the output range of
    /// a valid page or block descriptor of such a table (the whole block:
    /// a block maps every frame of its range). Each table is read once,
    /// whatever number of descriptors point to it.
    fn drop_mapped(&self, s: &State, left: &mut Vec<u64>) {
        let g = self.sc.config.granule;
        let mut seen: Vec<(u8, u64)> = Vec::new();
        let mut todo = vec![(g.start_level(), self.sc.root.0)];
        while let Some((level, table)) = todo.pop() {
            if left.is_empty() {
                return;
            }
            if seen.contains(&(level, table)) {
                continue;
            }
            seen.push((level, table));
            left.retain(|&f| f != table >> self.shift);
            for i in 0..g.table_entries(level) {
                let d = vmsa::Descriptor(self.read(s, table + i as u64 * 8));
                match d.decode(g, level) {
                    vmsa::Entry::Table(t) => todo.push((level + 1, t.next.0)),
                    vmsa::Entry::Block(leaf) | vmsa::Entry::Page(leaf) => {
                        let first = leaf.oa.0 >> self.shift;
                        let n = g.level_size(level) >> self.shift;
                        left.retain(|f| !(first..first + n).contains(f));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Returns which of `fills` (bit `k` for fill `k`) `tlb` does not hold.
fn fresh_fills(fills: &[TlbEntry], tlb: &[TlbEntry]) -> u8 {
    let mut fresh = 0u8;
    for (k, e) in fills.iter().enumerate() {
        if !tlb.contains(e) {
            fresh |= 1 << k;
        }
    }
    fresh
}

/// Tells whether fills `a` and `b` hold the same fresh entries (bit `k` of
/// `fa` and `fb`: fill `k` is fresh), in the same order.
fn same_fresh(a: &[TlbEntry], fa: u8, b: &[TlbEntry], fb: u8) -> bool {
    fn pick(f: &[TlbEntry], m: u8) -> impl Iterator<Item = &TlbEntry> {
        f.iter()
            .enumerate()
            .filter(move |(k, _)| m & (1 << k) != 0)
            .map(|(_, e)| e)
    }
    fa.count_ones() == fb.count_ones() && pick(a, fa).eq(pick(b, fb))
}

/// Compares two workload CPUs for the symmetry reduction: by position and
/// registers, then by TLB entries, lexicographically (the order of the
/// tuple `(wl, entries)`); equal entries, the common case, are skipped
/// with an equality test, cheaper than ordering them.
#[inline]
fn cpu_order(
    wa: &Wl,
    ta: &[vmsa::tlb::TlbEntry],
    wb: &Wl,
    tb: &[vmsa::tlb::TlbEntry],
) -> std::cmp::Ordering {
    wa.cmp(wb)
        .then_with(|| match ta.iter().zip(tb).find(|(x, y)| x != y) {
            Some((x, y)) => x.cmp(y),
            None => ta.len().cmp(&tb.len()),
        })
}

fn describe_via(c: &Choice) -> String {
    match &c.via {
        walk::Via::Tlb(e) => format!("TLB [{e}]"),
        walk::Via::Walk => "a walk".into(),
        walk::Via::WalkFrom(e) => format!("a walk from cached [{e}]"),
        walk::Via::Conflict => "a TLB conflict".into(),
    }
}
