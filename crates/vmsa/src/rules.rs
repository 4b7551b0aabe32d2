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

//!
//! Where each part lives: [`Rule`] and [`Violation`] in `catalogue.rs`;
//! the live tables and leaves in `live.rs`; the stale records in
//! `stale.rs`; a descriptor write in `desc_write.rs`, its level-3 fast path
//! in `page_write.rs` and the R_WHZWS comparison in `compare.rs`; DSBs and
//! TLBIs in `maintenance.rs`; frees in `free.rs`. This file holds the
//! checker's state, its accessors and the dispatch of each event.

mod catalogue;
mod compare;
mod desc_write;
mod free;
mod live;
mod maintenance;
mod page_write;
mod stale;

pub use catalogue::{Rule, Violation};
pub use stale::{Stale, StaleKind};

use std::cell::Cell;

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::addr::{PhysAddr, VirtAddr};
use crate::descriptor::Descriptor;
use crate::event::Event;
use crate::features::Config;
use crate::frames::FrameCounts;
use crate::granule::Level;
use crate::herd_bbm::HerdBbm;
use crate::memory::Memory;
use stale::StaleMap;

/// The base VA of the TTBR1_EL1 (kernel) half with a 48-bit VA: the model
/// translates that half.
pub const TTBR1_BASE: u64 = 0xffff_0000_0000_0000;

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

    fn cpu_slot(&mut self, cpu: usize) -> usize {
        if cpu >= self.synced.len() {
            self.synced.resize(cpu + 1, 0);
            self.last_born.resize(cpu + 1, 0);
            self.marked.resize(cpu + 1, Vec::new());
            self.all_marked.resize(cpu + 1, None);
        }
        cpu
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
}
