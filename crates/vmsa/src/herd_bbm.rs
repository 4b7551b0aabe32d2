//! herd7's break-before-make flag, computed as herd7 computes it, over a
//! stream of [`Event`]s.
//!
//! herd7 (herdtools7 7.58+1, commit 5feffe4e8f98) raises
//! `Warning-BBM-expected` when an execution has a pair of descriptor
//! events in `TTD-update-needsBBM` (`herd/libdir/aarch64bbm.cat`) that is
//! not in `BBM` (`herd/libdir/aarch64.cat`, "Break Before Make"). In
//! words (the cat files are not reproduced here):
//!
//! - A descriptor value is TLB-cacheable (`TLBCacheableTTD`) unless it is
//!   invalid (`TTDINV`) or has its Access flag clear (`TTDAF0`), the two
//!   making `TLBUncacheableTTD`; hardware AF management changes nothing
//!   ([`cacheable`]).
//! - `TTD-update-needsBBM` is `TTD-update-BBM-cand` restricted to pairs of
//!   cacheable values. Each clause of `TTD-update-BBM-cand`
//!   (`TTD-MT-update`, `TTD-SH-update`, `TTD-ICH-update`,
//!   `TTD-OCH-update`, `TTD-DT-update`, and `TTD-OA-update` with
//!   `TTD-at-least-one-writable` or `TTD-memory-contents-mismatch`)
//!   relates two values of one location ordered by `ca`, coherence-after
//!   (`herd/libdir/cos.cat`: `fr` or `co`). Between writes that is `co`,
//!   which is transitive: *every* pair of cacheable values in coherence
//!   order is compared, not only successive ones, whatever happened
//!   between them ([`Reason`] names the clauses).
//! - `BBM` accepts a pair `(w1, w2)` only through an uncacheable value `u`
//!   coherence-after `w1`, ordered (`ob`) before a TLBI that is ordered
//!   before `w2` and whose `inv-scope` covers `w2`'s location. A completed
//!   TLBI after another cacheable value (a permission change, say) is no
//!   break.
//!
//! For one updater, whose writes to a location are in coherence order =
//! program order = stream order, `ob` between its own events is its
//! program order through the barriers `aarch64hwreqs.cat` lists under
//! `DSB-ob`: `u ob TLBI` needs a DSB of any kind (`dsb.full`, or
//! `dsb.st` after a store) between them, `TLBI ob w2` a `DSB ISH`
//! (`dsb.full`) between them. A DMB orders no TLBI (`bob` lists explicit
//! accesses only). `inv-scope` (`inv-domain`, `herd/machAction.ml`
//! `inv_domain_act`): a TLBI without an address covers every descriptor,
//! one by VA the descriptor of that VA. It does not depend on the TLBI's
//! shareability, so a local TLBI (`tlbi vaale1`) counts as the break as
//! its broadcast form does; the rule checker, which lets a local TLBI
//! count only on a one-CPU machine, reports such a break and herd7's flag
//! does not (hvo/tests/check/pass/pause-cpus-local-tlbi.seq).
//!
//! What the stream has and herd7's executions do not, and the reverse:
//!
//! - herd7's VMSA model has one level of translation table and no blocks,
//!   so only level-3 (page) descriptors are locations here; writes to
//!   other levels are not compared (they are the rule checker's alone).
//! - The chains of `ob` go through the updater's own barriers only; `ob`
//!   edges through other threads' events (which the stream does not carry)
//!   could only add breaks. With several CPUs writing, each CPU's chain
//!   is its own, so the flag may be raised where herd7 would find a
//!   cross-thread chain.
//! - `TTD-memory-contents-mismatch` relates the two values when some write
//!   to one physical page and some write to the other, anywhere in the
//!   execution, differ in value (through `PTEtoPA` and `different-values`);
//!   here the pages are compared, whole, at the later write of the pair,
//!   as the rule checker does (a litmus test whose data are written only
//!   by its initial state gets the same answer).
//! - Reads of a descriptor are `TLBCacheableTTD` too, but a read relates
//!   by `ca` exactly as the write it reads from does (`fr = rf^-1; co`),
//!   with the same value: reads add no pair.
//!
//! The first write to a location seen gives its initial value (`old`),
//! as herd7's initial state does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::addr::{PhysAddr, VirtAddr};
use crate::descriptor::{Descriptor, Entry, Leaf, describe};
use crate::event::Event;
use crate::features::Config;
use crate::granule::{Granule, Level};
use crate::memory::Memory;
use crate::rules::Rule;

/// The level herd7's single table level corresponds to.
const PAGE_LEVEL: Level = 3;

/// A clause of herd7's `TTD-update-BBM-cand` (`aarch64bbm.cat`) that a pair
/// of values meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Reason {
    /// `TTD-MT-update`: Normal to Device memory or back.
    MemoryType,
    /// `TTD-SH-update`: the shareability changes.
    Shareability,
    /// `TTD-ICH-update`: the inner cacheability (NC, WT, WB) changes.
    InnerCacheability,
    /// `TTD-OCH-update`: the outer cacheability changes.
    OuterCacheability,
    /// `TTD-DT-update`: the Device type (GRE, nGRE, nGnRE, nGnRnE) changes.
    DeviceType,
    /// `TTD-OA-update & TTD-at-least-one-writable`: the output address
    /// changes and one value grants write permission (DBM counting when
    /// hardware dirty-state management is on: herd's
    /// `AArch64PteVal.writable`).
    OaWritable,
    /// `TTD-OA-update & TTD-memory-contents-mismatch`: the output address
    /// changes to a page whose contents differ.
    OaContents,
}

impl Reason {
    /// Returns the clause as `aarch64bbm.cat` names it.
    pub fn relation(self) -> &'static str {
        match self {
            Reason::MemoryType => "TTD-MT-update",
            Reason::Shareability => "TTD-SH-update",
            Reason::InnerCacheability => "TTD-ICH-update",
            Reason::OuterCacheability => "TTD-OCH-update",
            Reason::DeviceType => "TTD-DT-update",
            Reason::OaWritable => "TTD-OA-update & TTD-at-least-one-writable",
            Reason::OaContents => "TTD-OA-update & TTD-memory-contents-mismatch",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.relation())
    }
}

/// One value of a location: the initial one or a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Value {
    /// Its place in the location's coherence order: 0 for the initial
    /// value, `n` for the `n`-th write seen.
    pub index: u64,
    /// The write's position in the stream (from 0), `None` for the initial
    /// value.
    pub step: Option<u64>,
    /// The CPU that wrote it (`None` for the initial value).
    pub cpu: Option<usize>,
    /// The descriptor.
    pub desc: Descriptor,
}

/// A pair herd7 flags: two cacheable values of one location in `TTD-update-needsBBM`
/// without a `BBM` break between them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Pair {
    /// Where the descriptor lives.
    pub pa: PhysAddr,
    /// The VA it translates.
    pub va: VirtAddr,
    /// The granule, which gives the descriptors their layout.
    #[serde(skip)]
    pub granule: Granule,
    /// The earlier value.
    pub first: Value,
    /// The later one.
    pub second: Value,
    /// The clauses the pair meets.
    pub reasons: Vec<Reason>,
    /// The step of the `DSB ISH` that completed a covering TLBI issued
    /// after a later value replaced `first` (and a DSB made that value
    /// visible), before `second` was written, if any: from then on no TLB
    /// holds `first` (R_DDMVT steps 2 to 4), so the two can never be held
    /// at once. herd7 does not count this as a break unless the
    /// replacing value was uncacheable.
    pub first_ended: Option<u64>,
}

impl Pair {
    /// Tells whether no completed TLBI separates the two values: a TLB may
    /// hold both (the pair is a break-before-make violation by the Arm
    /// ARM's reading too, when its R_WHZWS clause applies).
    pub fn coexist(&self) -> bool {
        self.first_ended.is_none()
    }
}

fn ordinal(v: &Value) -> String {
    match v.index {
        0 => "initial".to_string(),
        n => format!("write {n}"),
    }
}

/// Describes `d` briefly: its permission and output address, and with
/// `full` every field.
fn brief(g: Granule, d: Descriptor, full: bool) -> String {
    match leaf(g, d) {
        Some(l) if !full => format!("{} {}", if l.attrs.read_only() { "RO" } else { "RW" }, l.oa),
        _ => describe(&d.decode(g, PAGE_LEVEL)),
    }
}

impl Pair {
    /// Renders the pair on one line: each value's permission and output
    /// address (every field when an attribute clause is among the
    /// reasons).
    pub fn render(&self) -> String {
        let granule = self.granule;
        let full = self
            .reasons
            .iter()
            .any(|r| !matches!(r, Reason::OaWritable | Reason::OaContents));
        let reasons: Vec<&str> = self.reasons.iter().map(|r| r.relation()).collect();
        format!(
            "PTE of {} (at {}): {} {} -> {} {} [{}]{}",
            self.va,
            self.pa,
            ordinal(&self.first),
            brief(granule, self.first.desc, full),
            ordinal(&self.second),
            brief(granule, self.second.desc, full),
            reasons.join("; "),
            if self.first_ended.is_some() {
                ", a completed TLBI between them"
            } else {
                ", no completed TLBI between them"
            }
        )
    }
}

/// How far one CPU has gone in a chain "write, DSB, covering TLBI, DSB ISH"
/// for one location: each field is the index of the latest write of the
/// chain's kind (0 for none) that reached that point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Chain {
    /// Written.
    last: u64,
    /// Followed by a DSB of the CPU that orders it before later TLBIs
    /// (`aarch64hwreqs.cat`, `DSB-ob`: `dsb.full`, or `dsb.st` after an
    /// explicit write; not `dsb.ld`).
    synced: u64,
    /// Followed, after that DSB, by a TLBI of the CPU covering the location.
    tlbi: u64,
    /// That TLBI completed by a `DSB ISH` of the CPU (`dsb.full`, which
    /// orders the TLBI before later explicit accesses: `DSB-ob`).
    done: u64,
    /// The step of that `DSB ISH`.
    done_step: u64,
}

impl Chain {
    fn dsb(&mut self, orders_stores: bool, full: bool, step: u64) {
        if full && self.tlbi > self.done {
            self.done = self.tlbi;
            self.done_step = step;
        }
        if orders_stores || full {
            self.synced = self.last;
        }
    }

    fn tlbi(&mut self) {
        self.tlbi = self.synced;
    }

    fn complete(&self) -> bool {
        self.done == self.last
    }
}

/// Per CPU: the chain of uncacheable writes (herd7's `BBM`) and the chain
/// of any writes (the lifetime of the values they replaced).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Chains {
    brk: Chain,
    life: Chain,
}

/// herd7's break-before-make bookkeeping for one descriptor (one location
/// of `ca`), shared by [`HerdBbm`] and the litmus executor (crate
/// `litmus`): the cacheable values written so far, and per CPU how far its
/// latest break has gone.
///
/// The rule (`aarch64bbm.cat` `TTD-update-needsBBM` less `aarch64.cat`
/// `BBM`, see the module documentation): a cacheable value is compared
/// with *every* earlier cacheable value of the descriptor (`ca` is
/// transitive between writes), except those a completed break separates
/// from it: an uncacheable value written after the earlier one, then a DSB
/// ordering it before a TLBI (`dsb.full`, or `dsb.st`: `DSB-ob`), a TLBI
/// covering the descriptor (`inv-scope`), and a `DSB ISH` ordering the
/// TLBI before the new value, all by the CPU writing the new value.
///
/// `V` is the caller's value (a descriptor with its context); the caller
/// decides which pairs need break-before-make (the clauses of
/// `TTD-update-BBM-cand`, [`Reason`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TtdBbm<V> {
    /// Writes seen.
    writes: u64,
    /// The initial value (index 0), when cacheable and not forgotten.
    initial: Option<V>,
    /// Every cacheable value written so far, oldest first, with its index
    /// in the location's coherence order (`n` for the `n`-th write).
    cacheable: Vec<(u64, V)>,
    /// Per CPU.
    chains: Vec<Chains>,
}

impl<V> TtdBbm<V> {
    /// Starts with the initial value, given when it is cacheable.
    pub fn new(initial: Option<V>) -> Self {
        TtdBbm {
            writes: 0,
            initial,
            cacheable: Vec::new(),
            chains: Vec::new(),
        }
    }

    /// Returns the number of writes seen: the next write gets index
    /// `writes() + 1`.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    fn chains_mut(&mut self, cpu: usize) -> &mut Chains {
        if cpu >= self.chains.len() {
            self.chains.resize(cpu + 1, Chains::default());
        }
        &mut self.chains[cpu]
    }

    /// Records a write of `value` by `cpu`. When `cacheable`, first calls
    /// `earlier` with every earlier cacheable value no completed break of
    /// `cpu` separates from it, oldest first, and with the step of the
    /// `DSB ISH` that completed a covering TLBI after a later value
    /// replaced it, if any (the value can no longer be in a TLB; herd7 does
    /// not count that as a break unless the replacing value was
    /// uncacheable).
    pub fn write(
        &mut self,
        cpu: usize,
        value: V,
        cacheable: bool,
        mut earlier: impl FnMut(&V, Option<u64>),
    ) {
        self.writes += 1;
        let index = self.writes;
        let chains = *self.chains_mut(cpu);
        if cacheable {
            let initial = self.initial.iter().map(|v| (0, v));
            for (i, w1) in initial.chain(self.cacheable.iter().map(|(i, v)| (*i, v))) {
                // `BBM`: an uncacheable value after `w1`, then a TLBI
                // ordered after it and before `value`: `done` is the latest
                // uncacheable write whose chain completed.
                if i < chains.brk.done {
                    continue;
                }
                earlier(w1, (i < chains.life.done).then_some(chains.life.done_step));
            }
            self.cacheable.push((index, value));
        }
        let chains = self.chains_mut(cpu);
        chains.life.last = index;
        if !cacheable {
            chains.brk.last = index;
        }
    }

    /// Records a DSB of `cpu`: `orders_stores` unless it is `DSB LD`,
    /// `completes_tlbi` when it is a full `DSB` (`dsb.full`). `step` is
    /// the caller's clock, reported by [`TtdBbm::write`].
    pub fn dsb(&mut self, cpu: usize, orders_stores: bool, completes_tlbi: bool, step: u64) {
        // A CPU that has written nothing has nothing to order.
        if let Some(c) = self.chains.get_mut(cpu) {
            c.brk.dsb(orders_stores, completes_tlbi, step);
            c.life.dsb(orders_stores, completes_tlbi, step);
        }
    }

    /// Records a TLBI of `cpu` covering the descriptor.
    pub fn tlbi(&mut self, cpu: usize) {
        if let Some(c) = self.chains.get_mut(cpu) {
            c.brk.tlbi();
            c.life.tlbi();
        }
    }

    /// Forgets what cannot change whether a later write makes a pair:
    /// an earlier cacheable value equal to a later one (any break after
    /// the earlier one follows the later one too, so the later one pairs
    /// whenever the earlier would, for the same clauses), and the indices'
    /// absolute values (they are renumbered in order, so that two
    /// histories that differ only by forgotten writes compare equal). For
    /// callers that need only whether a pair exists, not each pair (the
    /// litmus executor, whose states are compared): the lifetimes of the
    /// values replaced are forgotten too, and [`TtdBbm::write`] reports
    /// none from then on.
    pub fn canonical(&mut self)
    where
        V: PartialEq,
    {
        if self.writes == 0 {
            return;
        }
        for c in &mut self.chains {
            c.life = Chain::default();
            // Only the lifetimes' steps are reported.
            c.brk.done_step = 0;
        }
        // A CPU without a chain has a default one.
        while self.chains.last().is_some_and(|c| *c == Chains::default()) {
            self.chains.pop();
        }
        if self
            .initial
            .as_ref()
            .is_some_and(|v0| self.cacheable.iter().any(|(_, v)| v == v0))
        {
            self.initial = None;
        }
        let mut i = 0;
        while i < self.cacheable.len() {
            if self.cacheable[i + 1..]
                .iter()
                .any(|(_, v)| *v == self.cacheable[i].1)
            {
                self.cacheable.remove(i);
            } else {
                i += 1;
            }
        }
        // The indices in use (the lifetimes are all 0 now), sorted and
        // without repeats, on the stack when few (this runs at every state
        // of the litmus executor).
        let n = 1 + self.cacheable.len() + 4 * self.chains.len();
        let mut stack = [0u64; 64];
        let mut heap = Vec::new();
        let used: &mut [u64] = if n <= stack.len() {
            &mut stack[..n]
        } else {
            heap.resize(n, 0);
            &mut heap
        };
        let mut k = 1;
        for (i, _) in &self.cacheable {
            used[k] = *i;
            k += 1;
        }
        for c in &self.chains {
            let ch = c.brk;
            used[k..k + 4].copy_from_slice(&[ch.last, ch.synced, ch.tlbi, ch.done]);
            k += 4;
        }
        used.sort_unstable();
        let mut len = 1;
        for i in 1..n {
            if used[i] != used[len - 1] {
                used[len] = used[i];
                len += 1;
            }
        }
        let used = &used[..len];
        let rank = |x: &mut u64| *x = used.binary_search(x).unwrap_or(0) as u64;
        for (i, _) in &mut self.cacheable {
            rank(i);
        }
        for c in &mut self.chains {
            rank(&mut c.brk.last);
            rank(&mut c.brk.synced);
            rank(&mut c.brk.tlbi);
            rank(&mut c.brk.done);
        }
        self.writes = len as u64 - 1;
    }

    /// Tells whether every write of `cpu` has gone through a completed
    /// covering TLBI (nothing is left for later barriers to do).
    pub fn complete(&self, cpu: usize) -> bool {
        self.chains
            .get(cpu)
            .is_none_or(|c| c.brk.complete() && c.life.complete())
    }
}

/// One location (a level-3 descriptor).
#[derive(Clone, Debug)]
struct Loc {
    va: VirtAddr,
    /// The values and breaks.
    bbm: TtdBbm<Value>,
}

/// herd7's BBM flag over a stream of events.
#[derive(Clone, Debug)]
pub struct HerdBbm {
    config: Config,
    locs: BTreeMap<PhysAddr, Loc>,
    /// The page VA each location translates.
    by_va: BTreeMap<u64, PhysAddr>,
    /// Per CPU: the locations with a chain not yet complete.
    pending: Vec<BTreeSet<PhysAddr>>,
    step: u64,
    pairs: Vec<Pair>,
}

/// Tells whether a violation of `rule` is the rule checker's counterpart of
/// herd7's warning: R_WHZWS (an update that needs break-before-make) or
/// R_DDMVT (the sequence done wrong), not the page-reuse rules.
pub fn is_bbm_rule(rule: Rule) -> bool {
    matches!(rule.id(), "R_WHZWS" | "R_DDMVT")
}

/// Tells whether herd7 counts `d` as TLB-cacheable at level 3
/// (`TLBCacheableTTD`: valid and AF set).
pub fn cacheable(granule: Granule, d: Descriptor) -> bool {
    leaf(granule, d).is_some_and(|l| l.attrs.af())
}

fn leaf(granule: Granule, d: Descriptor) -> Option<Leaf> {
    match d.decode(granule, PAGE_LEVEL) {
        Entry::Page(l) => Some(l),
        _ => None,
    }
}

/// Cacheability of Normal memory, as herd7's `iNC/iWT/iWB` and
/// `oNC/oWT/oWB` sets tell it apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cache {
    Nc,
    Wt,
    Wb,
}

/// A memory type as `aarch64memattrs.cat` tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MemType {
    /// Device memory, with its type (0 nGnRnE, 1 nGnRE, 2 nGRE, 3 GRE).
    Device(u8),
    /// Normal memory: inner and outer cacheability.
    Normal(Cache, Cache),
    /// An encoding herd7 has no name for (kept as the MAIR byte).
    Other(u8),
}

/// Decodes MAIR_EL1's attribute byte (Arm ARM, MAIR_EL1.Attr<n>): Device
/// when the high nibble is 0; else Normal, each nibble 0b0100 NC, 0b00RW
/// and 0b10RW Write-Through, 0b01RW and 0b11RW Write-Back (RW != 0 for the
/// transient forms). Normal-Tagged (0xf0, FEAT_MTE2) is Write-Back.
fn mem_type(mair: u64, idx: u8) -> MemType {
    let a = ((mair >> (8 * u32::from(idx & 7))) & 0xff) as u8;
    let cache = |n: u8| match n {
        0b0100 => Some(Cache::Nc),
        0b0001..=0b0011 | 0b1000..=0b1011 => Some(Cache::Wt),
        0b0101..=0b0111 | 0b1100..=0b1111 => Some(Cache::Wb),
        _ => None,
    };
    match (a >> 4, a & 0xf) {
        (0, lo) if lo & 0b0010 == 0 => MemType::Device(lo >> 2),
        (0xf, 0) => MemType::Normal(Cache::Wb, Cache::Wb),
        (hi, lo) if hi != 0 => match (cache(lo), cache(hi)) {
            (Some(i), Some(o)) => MemType::Normal(i, o),
            _ => MemType::Other(a),
        },
        _ => MemType::Other(a),
    }
}

impl HerdBbm {
    /// Starts with no location: each is added at its first write.
    pub fn new(config: Config) -> Self {
        HerdBbm {
            config,
            locs: BTreeMap::new(),
            by_va: BTreeMap::new(),
            pending: vec![BTreeSet::new(); config.ncpus.max(1)],
            step: 0,
            pairs: Vec::new(),
        }
    }

    /// Returns the pairs found so far, in the order found.
    pub fn pairs(&self) -> &[Pair] {
        &self.pairs
    }

    /// Tells whether herd7 would raise `Warning-BBM-expected`.
    pub fn flagged(&self) -> bool {
        !self.pairs.is_empty()
    }

    /// Returns the number of events observed.
    pub fn steps(&self) -> u64 {
        self.step
    }

    fn pending_mut(&mut self, cpu: usize) -> &mut BTreeSet<PhysAddr> {
        if cpu >= self.pending.len() {
            self.pending.resize(cpu + 1, BTreeSet::new());
        }
        &mut self.pending[cpu]
    }

    /// Observes one event. `at` is the level and VA of the descriptor a
    /// [`Event::DescWrite`] writes (`None` outside a live table: not a
    /// location yet); `mem` is the coherent memory with the event's store
    /// applied. Returns the pairs it adds.
    pub fn observe(&mut self, mem: &Memory, ev: &Event, at: Option<(Level, VirtAddr)>) -> &[Pair] {
        let before = self.pairs.len();
        match *ev {
            Event::DescWrite {
                cpu, pa, old, new, ..
            } => {
                if let Some((PAGE_LEVEL, va)) = at {
                    self.write(mem, cpu, pa, va, old, new);
                }
            }
            Event::Dsb { cpu, kind } => {
                let step = self.step;
                let full = kind.completes_tlbi();
                let pending = std::mem::take(self.pending_mut(cpu));
                let mut still = BTreeSet::new();
                for pa in pending {
                    let Some(loc) = self.locs.get_mut(&pa) else {
                        continue;
                    };
                    loc.bbm.dsb(cpu, true, full, step);
                    if !loc.bbm.complete(cpu) {
                        still.insert(pa);
                    }
                }
                self.pending[cpu] = still;
            }
            Event::Tlbi { cpu, op } => {
                let covered: Vec<PhysAddr> = if op.kind.by_va() {
                    let page = op.va.0 & !(self.config.granule.page_size() - 1);
                    self.by_va.get(&page).copied().into_iter().collect()
                } else {
                    self.pending_mut(cpu).iter().copied().collect()
                };
                for pa in covered {
                    if let Some(loc) = self.locs.get_mut(&pa) {
                        loc.bbm.tlbi(cpu);
                    }
                }
            }
            Event::Isb { .. } | Event::Free { .. } => {}
        }
        self.step += 1;
        &self.pairs[before..]
    }

    fn write(
        &mut self,
        mem: &Memory,
        cpu: usize,
        pa: PhysAddr,
        va: VirtAddr,
        old: Descriptor,
        new: Descriptor,
    ) {
        let g = self.config.granule;
        let config = self.config;
        let step = self.step;
        self.pending_mut(cpu).insert(pa);
        let loc = self.locs.entry(pa).or_insert_with(|| Loc {
            va,
            bbm: TtdBbm::new(cacheable(g, old).then_some(Value {
                index: 0,
                step: None,
                cpu: None,
                desc: old,
            })),
        });
        let moved = (loc.va != va).then_some(loc.va);
        loc.va = va;
        let value = Value {
            index: loc.bbm.writes() + 1,
            step: Some(step),
            cpu: Some(cpu),
            desc: new,
        };
        let pairs = &mut self.pairs;
        loc.bbm
            .write(cpu, value, cacheable(g, new), |w1, first_ended| {
                let reasons = reasons(&config, mem, w1.desc, new);
                if !reasons.is_empty() {
                    pairs.push(Pair {
                        granule: g,
                        pa,
                        va,
                        first: *w1,
                        second: value,
                        reasons,
                        first_ended,
                    });
                }
            });
        if let Some(v) = moved {
            self.by_va.remove(&v.0);
        }
        self.by_va.insert(va.0, pa);
    }
}

/// Returns the clauses of `TTD-update-BBM-cand` that `old` then `new` meet
/// (both cacheable level-3 values).
fn reasons(config: &Config, mem: &Memory, old: Descriptor, new: Descriptor) -> Vec<Reason> {
    let shift = config.granule.page_shift();
    reasons_with(config, old, new, |a, b| {
        mem.same_range(a.0 >> shift, b.0 >> shift, 1)
    })
}

/// Returns the clauses of `TTD-update-BBM-cand` that `old` then `new` meet
/// (both cacheable level-3 values), `same_contents` telling whether the
/// pages at two output addresses hold equal contents
/// (`TTD-memory-contents-mismatch`, asked only when the output address
/// changes). For a caller with its own memory (the explorer's threads).
pub fn reasons_with(
    config: &Config,
    old: Descriptor,
    new: Descriptor,
    same_contents: impl FnOnce(PhysAddr, PhysAddr) -> bool,
) -> Vec<Reason> {
    let g = config.granule;
    let f = config.features;
    let (Some(o), Some(n)) = (leaf(g, old), leaf(g, new)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match (
        mem_type(f.mair, o.attrs.attr_indx),
        mem_type(f.mair, n.attrs.attr_indx),
    ) {
        (MemType::Device(a), MemType::Device(b)) if a != b => out.push(Reason::DeviceType),
        (MemType::Normal(ai, ao), MemType::Normal(bi, bo)) => {
            if ai != bi {
                out.push(Reason::InnerCacheability);
            }
            if ao != bo {
                out.push(Reason::OuterCacheability);
            }
        }
        (a, b) if a != b => out.push(Reason::MemoryType),
        _ => {}
    }
    if o.attrs.sh != n.attrs.sh {
        out.push(Reason::Shareability);
    }
    if o.oa != n.oa {
        if o.attrs.writable(f.hw_dbm) || n.attrs.writable(f.hw_dbm) {
            out.push(Reason::OaWritable);
        }
        if !same_contents(o.oa, n.oa) {
            out.push(Reason::OaContents);
        }
    }
    out
}

mod encode;

#[cfg(test)]
mod tests;
