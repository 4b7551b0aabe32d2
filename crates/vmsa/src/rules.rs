//! The checker of the Arm ARM's rules for translation table updates.
//!
//! Fed the stream of table-maintenance operations ([`Event`]) of one or more
//! CPUs, [`RuleChecker`] knows which pages are live translation tables and
//! which old translations a TLB may still hold, and reports every
//! violation with its rule ID, the step, the descriptor and the old and new
//! values.
//!
//! The state it keeps per descriptor is the one of the break-before-make
//! sequence (R_DDMVT): *valid* (a TLB may cache it, unless its Access flag
//! is clear and no hardware will set it, I_WZCBG), *invalid but maybe still
//! cached* (a [`Stale`] record: the old translation written over, whose store
//! may not yet be visible to walkers or whose invalidation has not been
//! completed), and *invalidated* (the record is gone: a broadcast TLBI that
//! covers it was issued after a DSB made the store visible, and a `DSB ISH`
//! of the issuing CPU completed it).
//!
//! A new valid entry is compared with every translation a TLB may still
//! hold for the same VAs: the old value it replaces and every stale record
//! that overlaps it. That is what makes "change permission, then change the
//! address without a TLBI in between" a violation, as it is.

use std::cell::Cell;
use std::fmt;

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::addr::{PhysAddr, VirtAddr};
use crate::descriptor::{Attributes, Descriptor, Entry, LeafAttrs};
use crate::event::Event;
use crate::features::{BbmLevel, Config};
use crate::frames::FrameCounts;
use crate::granule::{Granule, Level};
use crate::herd_bbm::HerdBbm;
use crate::memory::Memory;
use crate::tlb::Tlbi;

/// The base VA of the TTBR1_EL1 (kernel) half with a 48-bit VA: the model
/// translates that half.
pub const TTBR1_BASE: u64 = 0xffff_0000_0000_0000;

/// A rule (or one clause of a rule) the checker enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Rule {
    /// R_WHZWS: the output address of a live entry changes while the old or
    /// the new translation is writable (DBM with hardware dirty management
    /// counts as writable).
    OaChangeWritable,
    /// R_WHZWS: the output address of a live entry changes and the memory
    /// at the new address differs from the memory at the old one.
    OaChangeContents,
    /// R_WHZWS: the memory type, cacheability or shareability of a live
    /// entry changes.
    MemoryAttributes,
    /// R_WHZWS with R_KFLJB / R_PVTFW: the block size of a live entry
    /// changes where the FEAT_BBM level does not allow it.
    BlockSize,
    /// R_WHZWS: a global entry is written where non-global entries may be
    /// cached.
    GlobalOverNonGlobal,
    /// R_DDMVT: a new valid entry is written while an old translation for
    /// the same addresses may still be cached (no completed broadcast TLBI
    /// since the break).
    MakeBeforeInvalidation,
    /// R_DDMVT: a TLBI is issued for an entry whose invalidating store no
    /// DSB has yet made visible to walkers, so the TLBI may be undone by a
    /// refill of the old entry.
    TlbiBeforeDsb,
    /// A page is freed while a live descriptor still maps it or points at it
    /// as a table.
    FreeWhileMapped,
    /// A page is freed while a TLB may still hold a translation to it.
    FreeWhileCached,
    /// A table page is freed while a walk cache may still hold a pointer to
    /// it or an entry read from it (R_RVJDB: walk caches are TLB entries;
    /// only non-last-level TLBIs remove them).
    FreeTableWhileCached,
}

impl Rule {
    /// Lists every rule.
    pub const ALL: [Rule; 10] = [
        Rule::OaChangeWritable,
        Rule::OaChangeContents,
        Rule::MemoryAttributes,
        Rule::BlockSize,
        Rule::GlobalOverNonGlobal,
        Rule::MakeBeforeInvalidation,
        Rule::TlbiBeforeDsb,
        Rule::FreeWhileMapped,
        Rule::FreeWhileCached,
        Rule::FreeTableWhileCached,
    ];

    /// Returns the rule's position in [`Rule::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Returns the Arm ARM rule ID (DDI0487, "Translation table updates"),
    /// or `HVO_FREE` for the page-reuse rules, which the Arm ARM states
    /// through R_RVJDB and R_FFWJK rather than as one rule.
    pub fn id(self) -> &'static str {
        match self {
            Rule::OaChangeWritable
            | Rule::OaChangeContents
            | Rule::MemoryAttributes
            | Rule::BlockSize
            | Rule::GlobalOverNonGlobal => "R_WHZWS",
            Rule::MakeBeforeInvalidation | Rule::TlbiBeforeDsb => "R_DDMVT",
            Rule::FreeWhileMapped | Rule::FreeWhileCached | Rule::FreeTableWhileCached => {
                "HVO_FREE"
            }
        }
    }

    /// Returns the clause's short name.
    pub fn clause(self) -> &'static str {
        match self {
            Rule::OaChangeWritable => "oa-writable",
            Rule::OaChangeContents => "oa-contents",
            Rule::MemoryAttributes => "memory-attributes",
            Rule::BlockSize => "block-size",
            Rule::GlobalOverNonGlobal => "global",
            Rule::MakeBeforeInvalidation => "make-before-invalidation",
            Rule::TlbiBeforeDsb => "tlbi-before-dsb",
            Rule::FreeWhileMapped => "mapped",
            Rule::FreeWhileCached => "cached",
            Rule::FreeTableWhileCached => "walk-cached",
        }
    }

    /// Returns `ID.clause`, e.g. `R_WHZWS.oa-writable`.
    pub fn code(self) -> String {
        format!("{}.{}", self.id(), self.clause())
    }

    /// Returns one line saying what the rule forbids.
    pub fn summary(self) -> &'static str {
        match self {
            Rule::OaChangeWritable => {
                "output address of a live entry changed while the old or new translation is writable"
            }
            Rule::OaChangeContents => {
                "output address of a live entry changed to memory whose contents differ"
            }
            Rule::MemoryAttributes => {
                "memory type, cacheability or shareability of a live entry changed"
            }
            Rule::BlockSize => {
                "block size of a live entry changed where the FEAT_BBM level does not allow it (level 0; level 1 without nT)"
            }
            Rule::GlobalOverNonGlobal => {
                "global entry written where non-global entries may still be cached"
            }
            Rule::MakeBeforeInvalidation => {
                "new entry written before the break was invalidated by a completed broadcast TLBI"
            }
            Rule::TlbiBeforeDsb => {
                "TLBI issued before a DSB made the invalidating store visible to walkers"
            }
            Rule::FreeWhileMapped => "page freed while a live descriptor maps it or points to it",
            Rule::FreeWhileCached => "page freed while a TLB may still hold a translation to it",
            Rule::FreeTableWhileCached => {
                "table page freed while a walk cache may still hold a pointer to it or an entry in it"
            }
        }
    }

    /// Returns where the rule comes from.
    pub fn source(self) -> &'static str {
        match self {
            Rule::OaChangeWritable | Rule::OaChangeContents => {
                "Arm ARM R_WHZWS (DDI0487, Translation table updates, Use of break-before-make)"
            }
            Rule::MemoryAttributes | Rule::GlobalOverNonGlobal => "Arm ARM R_WHZWS",
            Rule::BlockSize => "Arm ARM R_WHZWS, R_KFLJB, R_PVTFW, R_MRRPW, I_HYQMB",
            Rule::MakeBeforeInvalidation | Rule::TlbiBeforeDsb => {
                "Arm ARM R_DDMVT (the break-before-make sequence)"
            }
            Rule::FreeWhileMapped | Rule::FreeWhileCached => {
                "Arm ARM R_FFWJK (TLBs are not coherent with table writes), R_GPPYH"
            }
            Rule::FreeTableWhileCached => {
                "Arm ARM R_RVJDB (walk caches are TLB entries); Linux __flush_tlb_kernel_pgtable (vaae1is)"
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id(), self.clause())
    }
}

/// One violation of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// The index of the offending operation in the stream (from 0).
    pub step: u64,
    /// The CPU that performed it.
    pub cpu: usize,
    /// The descriptor written, or the page freed.
    pub pa: PhysAddr,
    /// The VA the descriptor translates, if any.
    pub va: Option<VirtAddr>,
    /// The descriptor's level, if any.
    pub level: Option<Level>,
    /// The value replaced (or the cached translation involved).
    pub old: Option<Descriptor>,
    /// The value written.
    pub new: Option<Descriptor>,
    /// What exactly was found.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} cpu{} {}: {}",
            self.step, self.cpu, self.rule, self.detail
        )?;
        if let Some(va) = self.va {
            write!(f, " [va {va}")?;
            if let Some(l) = self.level {
                write!(f, " L{l}")?;
            }
            write!(f, " desc {}]", self.pa)?;
        }
        if let (Some(o), Some(n)) = (self.old, self.new) {
            write!(f, " {o} -> {n}")?;
        }
        Ok(())
    }
}

/// What a TLB may still hold from a descriptor that was written over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StaleKind {
    /// A translation.
    Leaf {
        /// Output address of the region's first byte.
        oa: PhysAddr,
        /// The translation's attributes.
        attrs: LeafAttrs,
    },
    /// A walk-cache entry pointing at a table.
    Walk {
        /// The table pointed at.
        next: PhysAddr,
    },
}

/// An old translation that a TLB may still hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stale {
    /// First VA covered.
    pub va: u64,
    /// Size covered.
    pub size: u64,
    /// Level of the descriptor.
    pub level: Level,
    /// What is cached.
    pub kind: StaleKind,
    /// Whether the cached entry is global.
    pub global: bool,
    /// The descriptor's address and old value.
    pub desc_pa: PhysAddr,
    /// The descriptor value cached.
    pub desc: Descriptor,
    /// The CPU whose store replaced it.
    pub writer: usize,
    /// The sequence number of the replacing store: it is visible to walkers
    /// once the writer has executed a DSB after it.
    pub born: u64,
    /// Bit i: CPU i issued a covering TLBI after the store was visible, not
    /// yet completed.
    pub tlbi_by: u64,
}

/// The stale records of one descriptor position: almost always one.
#[derive(Clone, Debug)]
enum Slot {
    One(Stale),
    Many(Vec<Stale>),
}

impl Slot {
    fn as_slice(&self) -> &[Stale] {
        match self {
            Slot::One(s) => std::slice::from_ref(s),
            Slot::Many(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Stale] {
        match self {
            Slot::One(s) => std::slice::from_mut(s),
            Slot::Many(v) => v,
        }
    }

    fn push(&mut self, s: Stale) {
        match self {
            Slot::One(first) => *self = Slot::Many(vec![*first, s]),
            Slot::Many(v) => v.push(s),
        }
    }

    /// Keeps the records `keep` accepts; returns how many it removed and
    /// whether none is left.
    fn retain(&mut self, keep: impl Fn(&Stale) -> bool) -> (usize, bool) {
        match self {
            Slot::One(s) => {
                if keep(s) {
                    (0, false)
                } else {
                    (1, true)
                }
            }
            Slot::Many(v) => {
                let before = v.len();
                v.retain(|s| keep(s));
                (before - v.len(), v.is_empty())
            }
        }
    }
}

/// The stale records of one level by first VA: a map from the VA to a slot
/// in an arena. The map's entries are small (16 bytes), so the map of a
/// batch's tens of thousands of records stays in cache; the slots are
/// appended in the order the records are made. The map is what is iterated,
/// so the order records are found in is the map's, as with a map of slots.
#[derive(Clone, Debug, Default)]
struct StaleMap {
    index: FxHashMap<u64, u32>,
    slots: Vec<Slot>,
    /// Arena positions free for reuse.
    holes: Vec<u32>,
}

impl StaleMap {
    fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn get(&self, va: &u64) -> Option<&Slot> {
        self.index.get(va).map(|&i| &self.slots[i as usize])
    }

    fn get_mut(&mut self, va: &u64) -> Option<&mut Slot> {
        self.index.get(va).map(|&i| &mut self.slots[i as usize])
    }

    fn iter(&self) -> impl Iterator<Item = (&u64, &Slot)> {
        self.index
            .iter()
            .map(|(k, &i)| (k, &self.slots[i as usize]))
    }

    fn values(&self) -> impl Iterator<Item = &Slot> {
        self.index.values().map(|&i| &self.slots[i as usize])
    }

    /// Adds `rec` to the records of `va`.
    fn push(&mut self, va: u64, rec: Stale) {
        match self.index.entry(va) {
            std::collections::hash_map::Entry::Occupied(o) => {
                self.slots[*o.get() as usize].push(rec);
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                let i = match self.holes.pop() {
                    Some(i) => {
                        self.slots[i as usize] = Slot::One(rec);
                        i
                    }
                    None => {
                        self.slots.push(Slot::One(rec));
                        (self.slots.len() - 1) as u32
                    }
                };
                v.insert(i);
            }
        }
    }

    fn remove(&mut self, va: &u64) {
        if let Some(i) = self.index.remove(va) {
            self.holes.push(i);
        }
    }

    fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.holes.clear();
    }

    /// Keeps the slots `keep` (which may change them) accepts.
    fn retain(&mut self, mut keep: impl FnMut(&mut Slot) -> bool) {
        let slots = &mut self.slots;
        let holes = &mut self.holes;
        self.index.retain(|_, &mut i| {
            let k = keep(&mut slots[i as usize]);
            if !k {
                holes.push(i);
            }
            k
        });
    }
}

/// A translation found under a descriptor.
#[derive(Clone, Copy, Debug)]
struct Trans {
    va: u64,
    size: u64,
    level: Level,
    kind: StaleKind,
    global: bool,
    desc_pa: PhysAddr,
    desc: Descriptor,
}

impl Trans {
    fn end(&self) -> u64 {
        self.va.wrapping_add(self.size)
    }

    /// Returns the stale record of this translation, replaced by `writer`'s
    /// store number `born`.
    fn stale(&self, writer: usize, born: u64) -> Stale {
        Stale {
            va: self.va,
            size: self.size,
            level: self.level,
            kind: self.kind,
            global: self.global,
            desc_pa: self.desc_pa,
            desc: self.desc,
            writer,
            born,
            tlbi_by: 0,
        }
    }
}

/// Buffers `desc_write` reuses, so a write allocates nothing.
#[derive(Clone, Debug, Default)]
struct Scratch {
    old_all: Vec<Trans>,
    old_cached: Vec<Trans>,
    new_all: Vec<Trans>,
    prior: Vec<Trans>,
    near: Vec<Stale>,
}

/// The rule checker.
#[derive(Clone, Debug)]
pub struct RuleChecker {
    config: Config,
    asid: u16,
    /// Live table frames: frame -> (level, first VA).
    tables: FxHashMap<u64, (Level, u64)>,
    /// The last entry of `tables` `locate` found (a batch writes the
    /// entries of one table one after another); cleared when `tables`
    /// changes.
    last_table: Cell<Option<(u64, Level, u64)>>,
    /// Live valid page (level 3) leaves: count per output frame.
    pages: FrameCounts,
    /// Live valid block leaves by (first output frame, level): count.
    leaves: FxHashMap<(u64, Level), u32>,
    /// Stale records by level, then by first VA (aligned to the level).
    stale: [StaleMap; 4],
    nstale: usize,
    /// Sequence number of the last descriptor write.
    seq: u64,
    /// Per CPU: `seq` at its last DSB (its writes up to there are visible).
    synced: Vec<u64>,
    /// Per CPU: the newest stale record it created.
    last_born: Vec<u64>,
    /// Per CPU: stale records its by-VA TLBIs marked, awaiting its DSB ISH.
    marked: Vec<Vec<(Level, u64)>>,
    /// Per CPU: for a `VMALLE1IS` awaiting its DSB ISH, `synced` as it was
    /// at the TLBI (what it invalidates).
    all_marked: Vec<Option<Vec<u64>>>,
    step: u64,
    violations: Vec<Violation>,
    /// Violations found per rule (indexed by [`Rule::index`]), stored or
    /// not.
    counts: [u64; Rule::ALL.len()],
    /// Keep at most this many violations of each rule (all by default).
    keep_per_rule: u64,
    scratch: Scratch,
    /// herd7's break-before-make flag over the same stream, when enabled
    /// ([`RuleChecker::enable_herd_bbm`]).
    herd: Option<Box<HerdBbm>>,
}

impl RuleChecker {
    /// Starts a checker on the tables rooted at `root` (the TTBR1_EL1
    /// table) as they are in `mem`: every valid entry there is live.
    pub fn new(config: Config, root: PhysAddr, mem: &Memory) -> Self {
        let mut c = RuleChecker {
            config,
            asid: 0,
            tables: FxHashMap::default(),
            last_table: Cell::new(None),
            pages: FrameCounts::default(),
            leaves: FxHashMap::default(),
            stale: Default::default(),
            nstale: 0,
            seq: 0,
            synced: vec![0; config.ncpus.max(1)],
            last_born: vec![0; config.ncpus.max(1)],
            marked: vec![Vec::new(); config.ncpus.max(1)],
            all_marked: vec![None; config.ncpus.max(1)],
            step: 0,
            violations: Vec::new(),
            counts: [0; Rule::ALL.len()],
            keep_per_rule: u64::MAX,
            scratch: Scratch::default(),
            herd: None,
        };
        let g = config.granule;
        let root_frame = root.0 >> g.page_shift();
        c.tables.insert(root_frame, (g.start_level(), TTBR1_BASE));
        let root_entries = g.table_entries(g.start_level());
        for i in 0..root_entries {
            let pa = root.add(i as u64 * 8);
            let d = Descriptor(mem.read_u64(pa).unwrap_or(0));
            let va = TTBR1_BASE + i as u64 * g.level_size(g.start_level());
            for t in c.translations(mem, d, g.start_level(), va, pa, false) {
                c.add_live(&t);
            }
        }
        c
    }

    /// Sets the ASID non-global entries of these tables are used with
    /// (default 0): a TLBI by ASID invalidates non-global entries only for it.
    pub fn set_asid(&mut self, asid: u16) {
        self.asid = asid;
    }

    /// Returns the violations kept so far, in stream order (all of them
    /// unless [`RuleChecker::keep_per_rule`] set a limit).
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Keeps at most `n` violations of each rule; the others are only
    /// counted ([`RuleChecker::counts`]). For runs of millions of updates.
    pub fn keep_per_rule(&mut self, n: u64) {
        self.keep_per_rule = n;
    }

    /// Returns how many violations of each rule were found, kept or not
    /// (the rules with at least one).
    pub fn counts(&self) -> BTreeMap<Rule, u64> {
        Rule::ALL
            .iter()
            .zip(self.counts)
            .filter(|&(_, n)| n > 0)
            .map(|(&r, n)| (r, n))
            .collect()
    }

    /// Computes herd7's break-before-make flag ([`HerdBbm`]) over the
    /// operations observed from now on, beside the rules: the two readings
    /// of R_WHZWS, side by side (docs/bbm-herd7.md).
    pub fn enable_herd_bbm(&mut self) {
        self.herd = Some(Box::new(HerdBbm::new(self.config)));
    }

    /// Returns herd7's flag, if enabled.
    pub fn herd_bbm(&self) -> Option<&HerdBbm> {
        self.herd.as_deref()
    }

    /// Returns the number of operations observed.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Returns the old translations a TLB may still hold, by level and VA.
    pub fn stale(&self) -> Vec<Stale> {
        let mut v: Vec<Stale> = self
            .stale
            .iter()
            .flat_map(|m| m.values().flat_map(|s| s.as_slice().iter().copied()))
            .collect();
        v.sort_by_key(|s| (s.level, s.va, s.born));
        v
    }

    fn cpu_slot(&mut self, cpu: usize) -> usize {
        if cpu >= self.synced.len() {
            self.synced.resize(cpu + 1, 0);
            self.last_born.resize(cpu + 1, 0);
            self.marked.resize(cpu + 1, Vec::new());
            self.all_marked.resize(cpu + 1, None);
        }
        cpu
    }

    fn visible(&self, s: &Stale) -> bool {
        s.born <= self.synced.get(s.writer).copied().unwrap_or(0)
    }

    /// Returns the stale records whose VA range overlaps `va..end`.
    fn overlapping(&self, va: u64, end: u64, out: &mut Vec<Stale>) {
        let g = self.config.granule;
        out.clear();
        for level in g.levels() {
            let size = g.level_size(level);
            let map = &self.stale[usize::from(level)];
            if map.is_empty() {
                continue;
            }
            let len = end.wrapping_sub(va);
            if size >= len {
                if let Some(v) = map.get(&(va & !(size - 1))) {
                    out.extend_from_slice(v.as_slice());
                }
            } else if len / size <= map.len() as u64 {
                let mut k = va;
                while k < end {
                    if let Some(v) = map.get(&k) {
                        out.extend_from_slice(v.as_slice());
                    }
                    k += size;
                }
            } else {
                for (_, v) in map.iter().filter(|(k, _)| va <= **k && **k < end) {
                    out.extend_from_slice(v.as_slice());
                }
            }
        }
    }

    fn dsb(&mut self, cpu: usize, completes: bool) {
        let c = self.cpu_slot(cpu);
        self.synced[c] = self.seq;
        if !completes {
            return;
        }
        let bit = 1u64 << (cpu % 64);
        for (level, va) in std::mem::take(&mut self.marked[c]) {
            let map = &mut self.stale[usize::from(level)];
            if let Some(v) = map.get_mut(&va) {
                let (removed, empty) = v.retain(|s| s.tlbi_by & bit == 0);
                self.nstale -= removed;
                if empty {
                    map.remove(&va);
                }
            }
        }
        if let Some(snap) = self.all_marked[c].take() {
            let visible = |s: &Stale| s.born <= snap.get(s.writer).copied().unwrap_or(0);
            // Every record of CPU w was born at or before `last_born[w]`, so
            // when each of those is covered by the snapshot, every record is
            // visible, without visiting them.
            let all = (0..self.last_born.len())
                .all(|w| self.last_born[w] <= snap.get(w).copied().unwrap_or(0))
                || self
                    .stale
                    .iter()
                    .all(|m| m.values().all(|v| v.as_slice().iter().all(visible)));
            if all {
                // The common case: the flush covers everything.
                for m in &mut self.stale {
                    m.clear();
                }
                self.nstale = 0;
            } else {
                let mut removed = 0;
                for map in &mut self.stale {
                    map.retain(|v| {
                        let (r, empty) = v.retain(|s| !visible(s));
                        removed += r;
                        !empty
                    });
                }
                self.nstale -= removed;
            }
        }
    }

    /// Tells whether `pa` is a descriptor in a live table, and if so its
    /// level and the first VA it translates.
    pub fn locate(&self, pa: PhysAddr) -> Option<(Level, VirtAddr)> {
        let g = self.config.granule;
        let frame = pa.0 >> g.page_shift();
        let (level, base) = match self.last_table.get() {
            Some((f, level, base)) if f == frame => (level, base),
            _ => {
                let &(level, base) = self.tables.get(&frame)?;
                self.last_table.set(Some((frame, level, base)));
                (level, base)
            }
        };
        let idx = (pa.0 & (g.page_size() - 1)) / 8;
        if idx as usize >= g.table_entries(level) {
            return None;
        }
        Some((level, VirtAddr(base + idx * g.level_size(level))))
    }

    /// Observes one operation; `mem` is the coherent memory with the
    /// operation's own store already applied. Returns the violations it
    /// adds.
    pub fn observe(&mut self, mem: &Memory, ev: &Event) -> &[Violation] {
        let before = self.violations.len();
        if self.herd.is_some() {
            let at = match *ev {
                Event::DescWrite { pa, .. } => self.locate(pa),
                _ => None,
            };
            if let Some(h) = self.herd.as_deref_mut() {
                h.observe(mem, ev, at);
            }
        }
        match *ev {
            Event::DescWrite {
                cpu,
                pa,
                old,
                new,
                cas,
            } => self.desc_write(mem, cpu, pa, old, new, cas),
            Event::Dsb { cpu, kind } => self.dsb(cpu, kind.completes_tlbi()),
            Event::Isb { .. } => {}
            Event::Tlbi { cpu, op } => self.tlbi(cpu, &op),
            Event::Free { cpu, pa, order } => self.free(cpu, pa, order),
        }
        self.step += 1;
        &self.violations[before..]
    }

    /// Lists the translations (leaves, and walk entries for tables) under
    /// descriptor `d` at `level` translating from `va`.
    fn translations(
        &self,
        mem: &Memory,
        d: Descriptor,
        level: Level,
        va: u64,
        desc_pa: PhysAddr,
        only_cacheable: bool,
    ) -> Vec<Trans> {
        let mut out = Vec::new();
        self.collect(mem, d, level, va, desc_pa, only_cacheable, &mut out);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn collect(
        &self,
        mem: &Memory,
        d: Descriptor,
        level: Level,
        va: u64,
        desc_pa: PhysAddr,
        only_cacheable: bool,
        out: &mut Vec<Trans>,
    ) {
        let g = self.config.granule;
        match d.decode(g, level) {
            Entry::Invalid(_) | Entry::Reserved(_) => {}
            Entry::Table(t) => {
                out.push(Trans {
                    va,
                    size: g.level_size(level),
                    level,
                    kind: StaleKind::Walk { next: t.next },
                    global: true,
                    desc_pa,
                    desc: d,
                });
                for i in 0..g.table_entries(level + 1) {
                    let pa = t.next.add(i as u64 * 8);
                    let sub = Descriptor(mem.read_u64(pa).unwrap_or(0));
                    if sub.is_valid_bit() {
                        let sva = va + i as u64 * g.level_size(level + 1);
                        self.collect(mem, sub, level + 1, sva, pa, only_cacheable, out);
                    }
                }
            }
            Entry::Block(l) | Entry::Page(l) => {
                if only_cacheable && !l.attrs.af() && !self.config.features.hw_af {
                    // I_WZCBG: an entry that gives an Access flag fault is
                    // never cached.
                    return;
                }
                out.push(Trans {
                    va,
                    size: g.level_size(level),
                    level,
                    kind: StaleKind::Leaf {
                        oa: l.oa,
                        attrs: l.attrs,
                    },
                    global: l.attrs.global(),
                    desc_pa,
                    desc: d,
                });
            }
        }
    }

    fn add_live(&mut self, t: &Trans) {
        let g = self.config.granule;
        match t.kind {
            StaleKind::Walk { next } => {
                self.last_table.set(None);
                self.tables
                    .insert(next.0 >> g.page_shift(), (t.level + 1, t.va));
            }
            StaleKind::Leaf { oa, .. } if t.level == 3 => self.pages.inc(oa.0 >> g.page_shift()),
            StaleKind::Leaf { oa, .. } => {
                *self
                    .leaves
                    .entry((oa.0 >> g.page_shift(), t.level))
                    .or_default() += 1;
            }
        }
    }

    fn remove_live(&mut self, t: &Trans) {
        let g = self.config.granule;
        match t.kind {
            StaleKind::Walk { next } => {
                self.last_table.set(None);
                self.tables.remove(&(next.0 >> g.page_shift()));
            }
            StaleKind::Leaf { oa, .. } if t.level == 3 => self.pages.dec(oa.0 >> g.page_shift()),
            StaleKind::Leaf { oa, .. } => {
                let key = (oa.0 >> g.page_shift(), t.level);
                if let Some(n) = self.leaves.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        self.leaves.remove(&key);
                    }
                }
            }
        }
    }

    fn report(
        &mut self,
        rule: Rule,
        cpu: usize,
        pa: PhysAddr,
        at: Option<(Level, u64)>,
        (old, new): (Option<Descriptor>, Option<Descriptor>),
        detail: impl FnOnce() -> String,
    ) {
        let n = &mut self.counts[rule.index()];
        *n += 1;
        if *n > self.keep_per_rule {
            return;
        }
        let detail = detail();
        self.violations.push(Violation {
            rule,
            step: self.step,
            cpu,
            pa,
            va: at.map(|(_, va)| VirtAddr(va)),
            level: at.map(|(l, _)| l),
            old,
            new,
            detail,
        });
    }

    fn desc_write(
        &mut self,
        mem: &Memory,
        cpu: usize,
        pa: PhysAddr,
        old: Descriptor,
        new: Descriptor,
        cas: bool,
    ) {
        if old == new {
            return;
        }
        let Some((level, VirtAddr(va))) = self.locate(pa) else {
            // Not a live table: writing a table before publishing it.
            return;
        };
        if level == 3 {
            self.page_write(mem, cpu, pa, va, old, new, cas);
            return;
        }
        let g = self.config.granule;
        let size = g.level_size(level);
        let end = va.wrapping_add(size);
        let overlaps = |a: u64, b: u64| a < end && va < b;

        let mut sc = std::mem::take(&mut self.scratch);
        // Everything under the old value is no longer live.
        sc.old_all.clear();
        self.collect(mem, old, level, va, pa, false, &mut sc.old_all);
        for t in &sc.old_all {
            self.remove_live(t);
        }
        // What a TLB may hold from the old value: an entry with AF clear is
        // never cached (I_WZCBG) unless the hardware may set AF; with a CAS
        // that found AF clear, not even then (the hardware sets AF before
        // caching, so a cached entry would have made the CAS fail).
        let hw_af = self.config.features.hw_af;
        sc.old_cached.clear();
        sc.old_cached
            .extend(sc.old_all.iter().copied().filter(|t| match t.kind {
                StaleKind::Leaf { attrs, .. } => attrs.af() || (hw_af && !(cas && t.desc_pa == pa)),
                StaleKind::Walk { .. } => true,
            }));
        sc.new_all.clear();
        self.collect(mem, new, level, va, pa, false, &mut sc.new_all);
        // `collect` lists a table's own walk entry first: the old value was
        // a table exactly when `old_all` starts with a walk entry from `pa`
        // (no second decode).
        let old_leaf_cached = sc
            .old_cached
            .iter()
            .any(|t| t.desc_pa == pa && matches!(t.kind, StaleKind::Leaf { .. }))
            || sc
                .old_all
                .first()
                .is_some_and(|t| t.desc_pa == pa && matches!(t.kind, StaleKind::Walk { .. }));
        self.overlapping(va, end, &mut sc.near);
        sc.prior.clear();
        sc.prior.extend(
            sc.near
                .iter()
                .filter(|s| overlaps(s.va, s.va.wrapping_add(s.size)))
                .filter(|s| matches!(s.kind, StaleKind::Leaf { .. }) || s.level >= level)
                .map(|s| Trans {
                    va: s.va,
                    size: s.size,
                    level: s.level,
                    kind: s.kind,
                    global: s.global,
                    desc_pa: s.desc_pa,
                    desc: s.desc,
                }),
        );
        let at = Some((level, va));

        if !sc.new_all.is_empty() {
            if !old_leaf_cached && !sc.prior.is_empty() {
                let p = sc.prior[0];
                self.report(
                    Rule::MakeBeforeInvalidation,
                    cpu,
                    pa,
                    at,
                    (Some(old), Some(new)),
                    || {
                        format!(
                            "the old entry {} (L{} at {:#x}) may still be cached",
                            p.desc, p.level, p.va
                        )
                    },
                );
            } else if old_leaf_cached {
                let n = sc.old_cached.len();
                sc.old_cached.extend_from_slice(&sc.prior);
                self.compare(mem, cpu, pa, at, old, new, &sc.old_cached, &sc.new_all);
                sc.old_cached.truncate(n);
            }
        }

        // The old translations become stale records.
        self.seq += 1;
        let c = self.cpu_slot(cpu);
        if !sc.old_cached.is_empty() {
            self.last_born[c] = self.seq;
        }
        for t in &sc.old_cached {
            self.nstale += 1;
            let rec = t.stale(cpu, self.seq);
            self.stale[usize::from(t.level)].push(t.va, rec);
        }
        for t in &sc.new_all {
            self.add_live(t);
        }
        self.scratch = sc;
    }

    /// Does what the rest of [`RuleChecker::desc_write`] does, for a
    /// descriptor at level 3, the one the remaps of a batch write by the
    /// million. Level 3 holds pages and no tables (an entry with bits[1:0]
    /// = 0b01 is reserved there: Arm ARM D8.3.1, `Descriptor::decode`), so
    /// the old and the new value each translate one page at most, and the
    /// stale records that overlap the page are the ones filed under its VA
    /// at each level: no list of translations, no walk of memory (only the
    /// contents comparison reads it). The findings, records and counts are
    /// the ones the general path makes, in the same order.
    #[allow(clippy::too_many_arguments)]
    fn page_write(
        &mut self,
        mem: &Memory,
        cpu: usize,
        pa: PhysAddr,
        va: u64,
        old: Descriptor,
        new: Descriptor,
        cas: bool,
    ) {
        let g = self.config.granule;
        let shift = g.page_shift();
        let size = g.level_size(3);
        let end = va.wrapping_add(size);
        let page = |d: Descriptor| match d.decode(g, 3) {
            Entry::Page(l) => Some(Trans {
                va,
                size,
                level: 3,
                kind: StaleKind::Leaf {
                    oa: l.oa,
                    attrs: l.attrs,
                },
                global: l.attrs.global(),
                desc_pa: pa,
                desc: d,
            }),
            _ => None,
        };
        // The old translation is no longer live.
        let old_t = page(old);
        let mut old_cached = None;
        if let Some(t) = old_t
            && let StaleKind::Leaf { oa, attrs } = t.kind
        {
            self.pages.dec(oa.0 >> shift);
            // I_WZCBG, as in `desc_write`: AF clear is never cached unless
            // the hardware may set it, and not even then when a CAS found
            // it clear.
            if attrs.af() || (self.config.features.hw_af && !cas) {
                old_cached = Some(t);
            }
        }
        let new_t = page(new);
        if let Some(n) = new_t {
            // The translations a TLB may hold for the page: the old value
            // first, then every stale leaf record overlapping it (walk
            // records are filed above level 3 and do not count here), by
            // level as `overlapping` lists them.
            let mut olds = std::mem::take(&mut self.scratch.prior);
            olds.clear();
            olds.extend(old_cached);
            for level in g.levels() {
                let map = &self.stale[usize::from(level)];
                if map.is_empty() {
                    continue;
                }
                let Some(slot) = map.get(&(va & !(g.level_size(level) - 1))) else {
                    continue;
                };
                olds.extend(
                    slot.as_slice()
                        .iter()
                        .filter(|s| s.va < end && va < s.va.wrapping_add(s.size))
                        .filter(|s| matches!(s.kind, StaleKind::Leaf { .. }))
                        .map(|s| Trans {
                            va: s.va,
                            size: s.size,
                            level: s.level,
                            kind: s.kind,
                            global: s.global,
                            desc_pa: s.desc_pa,
                            desc: s.desc,
                        }),
                );
            }
            let at = Some((3, va));
            if old_cached.is_none() {
                if let Some(&p) = olds.first() {
                    self.report(
                        Rule::MakeBeforeInvalidation,
                        cpu,
                        pa,
                        at,
                        (Some(old), Some(new)),
                        || {
                            format!(
                                "the old entry {} (L{} at {:#x}) may still be cached",
                                p.desc, p.level, p.va
                            )
                        },
                    );
                }
            } else {
                self.compare(mem, cpu, pa, at, old, new, &olds, std::slice::from_ref(&n));
            }
            self.scratch.prior = olds;
        }
        // The old translation becomes a stale record.
        self.seq += 1;
        let c = self.cpu_slot(cpu);
        if let Some(t) = old_cached {
            self.last_born[c] = self.seq;
            self.nstale += 1;
            let rec = t.stale(cpu, self.seq);
            self.stale[3].push(t.va, rec);
        }
        if let Some(StaleKind::Leaf { oa, .. }) = new_t.map(|t| t.kind) {
            self.pages.inc(oa.0 >> shift);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn compare(
        &mut self,
        mem: &Memory,
        cpu: usize,
        pa: PhysAddr,
        at: Option<(Level, u64)>,
        old: Descriptor,
        new: Descriptor,
        olds: &[Trans],
        news: &[Trans],
    ) {
        let g = self.config.granule;
        let f = self.config.features;
        // At most one finding per rule, in the order found, with the pair
        // of translations that showed it (five R_WHZWS clauses are compared
        // here); details are formatted afterwards, only for the violations
        // that will be kept.
        let mut found = [(Rule::OaChangeWritable, 0usize, 0usize); 5];
        let mut nfound = 0;
        let mut add = |r: Rule, oi: usize, ni: usize| {
            if !found[..nfound].iter().any(|&(x, _, _)| x == r) {
                found[nfound] = (r, oi, ni);
                nfound += 1;
            }
        };
        for (oi, o) in olds.iter().enumerate() {
            let StaleKind::Leaf {
                oa: ooa,
                attrs: oat,
            } = o.kind
            else {
                continue;
            };
            for (ni, n) in news.iter().enumerate() {
                let StaleKind::Leaf {
                    oa: noa,
                    attrs: nat,
                } = n.kind
                else {
                    continue;
                };
                let start = o.va.max(n.va);
                let stop = o.end().min(n.end());
                if start >= stop {
                    continue;
                }
                let opa = ooa.0 + (start - o.va);
                let npa = noa.0 + (start - n.va);
                if opa != npa {
                    if oat.writable(f.hw_dbm) || nat.writable(f.hw_dbm) {
                        add(Rule::OaChangeWritable, oi, ni);
                    }
                    let shift = g.page_shift();
                    let frames = ((stop - start) >> shift).max(1);
                    if !mem.same_range(opa >> shift, npa >> shift, frames) {
                        add(Rule::OaChangeContents, oi, ni);
                    }
                }
                if !f.same_memory_type(oat.attr_indx, nat.attr_indx) || oat.sh != nat.sh {
                    add(Rule::MemoryAttributes, oi, ni);
                }
                let ocont = oat.flags.contains(Attributes::CONTIGUOUS);
                let ncont = nat.flags.contains(Attributes::CONTIGUOUS);
                if o.level != n.level || ocont != ncont {
                    let nt = oat.flags.contains(Attributes::NT) && o.level < 3
                        || nat.flags.contains(Attributes::NT) && n.level < 3;
                    let allowed = match f.bbm {
                        BbmLevel::Level0 => false,
                        BbmLevel::Level1 => nt,
                        BbmLevel::Level2 | BbmLevel::Level2NoAbort => true,
                    };
                    if !allowed {
                        add(Rule::BlockSize, oi, ni);
                    }
                }
                if n.global && !o.global {
                    add(Rule::GlobalOverNonGlobal, oi, ni);
                }
            }
        }
        for &(rule, oi, ni) in &found[..nfound] {
            let (o, n) = (&olds[oi], &news[ni]);
            self.report(rule, cpu, pa, at, (Some(old), Some(new)), || {
                compare_detail(g, f.bbm, rule, o, n)
            });
        }
    }

    fn tlbi(&mut self, cpu: usize, op: &Tlbi) {
        let asid = self.asid;
        let c = self.cpu_slot(cpu);
        let mut early = None;
        if !op.kind.by_va() {
            // VMALLE1IS: everything visible now is invalidated at completion.
            let unsynced = (0..self.synced.len()).any(|w| self.last_born[w] > self.synced[w]);
            if unsynced {
                early = self.stale().into_iter().find(|s| !self.visible(s));
            }
            self.all_marked[c] = Some(self.synced.clone());
        } else {
            let g = self.config.granule;
            let bit = 1u64 << (cpu % 64);
            for level in g.levels() {
                let key = op.va.0 & !(g.level_size(level) - 1);
                let synced = &self.synced;
                let Some(v) = self.stale[usize::from(level)].get_mut(&key) else {
                    continue;
                };
                let mut hit = false;
                for s in v.as_mut_slice() {
                    let covers = (matches!(s.kind, StaleKind::Leaf { .. })
                        || !op.kind.last_level_only())
                        && (s.global || op.kind.all_asids() || op.asid == asid);
                    if !covers {
                        continue;
                    }
                    if s.born <= synced.get(s.writer).copied().unwrap_or(0) {
                        s.tlbi_by |= bit;
                        hit = true;
                    } else if early.is_none() {
                        early = Some(*s);
                    }
                }
                if hit {
                    self.marked[c].push((level, key));
                }
            }
        }
        if let Some(s) = early {
            self.report(
                Rule::TlbiBeforeDsb,
                cpu,
                s.desc_pa,
                Some((s.level, s.va)),
                (Some(s.desc), None),
                || {
                    format!(
                        "{op} issued before a DSB of cpu{} made the store replacing {} visible",
                        s.writer, s.desc
                    )
                },
            );
        }
    }

    fn free(&mut self, cpu: usize, pa: PhysAddr, order: u8) {
        let g = self.config.granule;
        let shift = g.page_shift();
        let first = pa.0 >> shift;
        let n = 1u64 << order;
        let inside = |frame: u64| frame >= first && frame < first + n;
        // Live mappings onto the block.
        let mut mapped = None;
        for level in g.levels() {
            let step = (g.level_size(level) >> shift).max(1);
            let mut f = first & !(step - 1);
            while f < first + n && mapped.is_none() {
                let live = if level == 3 {
                    self.pages.get(f) > 0
                } else {
                    self.leaves.contains_key(&(f, level))
                };
                if live {
                    mapped = Some(format!("a live L{level} entry maps frame {f:#x}"));
                }
                f += step;
            }
        }
        if mapped.is_none() {
            // The lowest live table frame inside the block: probe the block's
            // frames when it is smaller than the set of tables (a free of a
            // few pages among thousands of tables), else scan the tables.
            let table = if n <= self.tables.len() as u64 {
                (first..first + n).find_map(|f| self.tables.get(&f).map(|t| (f, *t)))
            } else {
                self.tables
                    .iter()
                    .filter(|(f, _)| inside(**f))
                    .min_by_key(|(f, _)| **f)
                    .map(|(f, t)| (*f, *t))
            };
            if let Some((f, (l, va))) = table {
                mapped = Some(format!("frame {f:#x} is a live L{l} table for {va:#x}"));
            }
        }
        if let Some(why) = mapped {
            self.report(Rule::FreeWhileMapped, cpu, pa, None, (None, None), || why);
        }
        let mut cached = None;
        let mut walk_cached = None;
        let stale = if self.nstale > 0 {
            self.stale()
        } else {
            Vec::new()
        };
        for s in &stale {
            match s.kind {
                StaleKind::Leaf { oa, .. } => {
                    let a = oa.0 >> shift;
                    let b = (oa.0 + s.size) >> shift;
                    if cached.is_none() && a < first + n && first < b.max(a + 1) {
                        cached = Some(*s);
                    }
                }
                StaleKind::Walk { next } => {
                    if walk_cached.is_none() && inside(next.0 >> shift) {
                        walk_cached = Some(*s);
                    }
                }
            }
            if walk_cached.is_none()
                && matches!(s.kind, StaleKind::Walk { .. })
                && inside(s.desc_pa.0 >> shift)
            {
                walk_cached = Some(*s);
            }
        }
        if let Some(s) = cached {
            self.report(
                Rule::FreeWhileCached,
                cpu,
                pa,
                Some((s.level, s.va)),
                (Some(s.desc), None),
                || format!(
                    "the translation {} for {:#x} may still be cached (no completed TLBI since it was replaced)",
                    s.desc, s.va
                ),
            );
        }
        if let Some(s) = walk_cached {
            self.report(
                Rule::FreeTableWhileCached,
                cpu,
                pa,
                Some((s.level, s.va)),
                (Some(s.desc), None),
                || format!(
                    "the table entry {} for {:#x} may still be in a walk cache (no completed non-last-level TLBI)",
                    s.desc, s.va
                ),
            );
        }
    }
}

/// Says what `compare` found for `rule` between the old translation `o`
/// and the new one `n` (both leaves that overlap).
fn compare_detail(g: Granule, bbm: BbmLevel, rule: Rule, o: &Trans, n: &Trans) -> String {
    let (StaleKind::Leaf { oa: ooa, .. }, StaleKind::Leaf { oa: noa, .. }) = (o.kind, n.kind)
    else {
        return String::new();
    };
    let start = o.va.max(n.va);
    let opa = ooa.0 + (start - o.va);
    let npa = noa.0 + (start - n.va);
    let what = format!(
        "{:#x}: L{} {} -> L{} {}",
        start,
        o.level,
        crate::descriptor::describe(&o.desc.decode(g, o.level)),
        n.level,
        crate::descriptor::describe(&n.desc.decode(g, n.level))
    );
    match rule {
        Rule::OaChangeWritable => {
            format!("output address changes with a writable translation, {what}")
        }
        Rule::OaChangeContents => format!(
            "output address changes from {opa:#x} to {npa:#x} whose contents differ, {what}"
        ),
        Rule::MemoryAttributes => format!("memory type or shareability changes, {what}"),
        Rule::BlockSize => format!("block size changes at FEAT_BBM level {bbm}, {what}"),
        Rule::GlobalOverNonGlobal => format!("a global entry replaces a non-global one, {what}"),
        _ => what,
    }
}
