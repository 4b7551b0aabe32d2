//! The structured side of a counterexample: what kind each step is, and
//! after it, for the VAs that matter, the descriptors as memory holds them
//! (and what walkers see while a store is pending) and every CPU's TLB
//! entries. Computed only when a counterexample is replayed
//! ([`crate::search`]'s `rebuild`), never on the search's hot path.

use serde::Serialize;
use vmsa::tlb::{TlbEntry, TlbKind};
use vmsa::{Descriptor, VirtAddr};

use crate::engine::{Engine, Step};
use crate::state::State;
use crate::world::Scenario;

/// What kind of step a counterexample line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum StepKind {
    /// A CPU runs its program's next operation (the CPU is the step's).
    Op,
    /// A pending descriptor store becomes visible to walkers.
    Propagate {
        /// Where the descriptor lives.
        pa: u64,
        /// The value stored.
        value: u64,
    },
    /// The updater's writes to a freshly allocated page become visible to
    /// the other CPUs.
    Publish {
        /// The page's frame number.
        pfn: u64,
    },
    /// A CPU's walker caches a walk in its TLB.
    Fill {
        /// The CPU.
        cpu: usize,
        /// The VA walked.
        va: u64,
    },
    /// A CPU evicts a TLB entry.
    Evict {
        /// The CPU.
        cpu: usize,
    },
}

impl StepKind {
    /// Returns the CPU whose TLB a fill or an eviction changes.
    pub fn tlb_cpu(self) -> Option<usize> {
        match self {
            StepKind::Fill { cpu, .. } | StepKind::Evict { cpu } => Some(cpu),
            _ => None,
        }
    }
}

/// One descriptor on the walk of a VA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DescState {
    /// The level of the table it sits in.
    pub level: u8,
    /// Its physical address.
    pub pa: u64,
    /// Its value in memory (what data accesses and CASes see).
    pub value: u64,
    /// The value decoded.
    pub text: String,
    /// What walkers still read while a store to it is pending (or the
    /// page holding it is not yet published), when that differs.
    pub walkers: Option<u64>,
    /// That value decoded.
    pub walkers_text: Option<String>,
}

/// One TLB entry covering a VA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TlbState {
    /// The CPU holding it.
    pub cpu: usize,
    /// The first VA of the region it covers.
    pub va: u64,
    /// The region's size in bytes.
    pub size: u64,
    /// The level of the descriptor it was filled from.
    pub level: u8,
    /// A translation (`true`) or a walk-cache entry (`false`).
    pub leaf: bool,
    /// The output address (a translation) or the next table (a walk-cache
    /// entry).
    pub oa: u64,
    /// Read-only (translations only).
    pub read_only: bool,
    /// It disagrees with the tables as memory holds them now: a walk of
    /// memory for its VA no longer reaches the same translation (or the
    /// same next table) at its level.
    pub stale: bool,
    /// The entry as the text trace writes it.
    pub text: String,
}

/// The state of one VA after a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VaState {
    /// The VA (a vmemmap page).
    pub va: u64,
    /// The descriptors a walk of memory reads for it, from the root.
    pub descs: Vec<DescState>,
    /// The TLB entries covering it, on every CPU (by CPU, then as held).
    pub tlb: Vec<TlbState>,
}

/// The state that matters after one step: one entry per VA that a
/// workload accesses (and the hazard's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The VAs, in address order.
    pub vas: Vec<VaState>,
}

/// Returns the pages the scenario's workloads may access (every operation,
/// every pick) and the page of `extra`, sorted.
pub(crate) fn relevant_vas(sc: &Scenario, extra: Option<u64>) -> Vec<u64> {
    let mask = !((1u64 << sc.page_shift()) - 1);
    let mut v: Vec<u64> = sc
        .workloads
        .iter()
        .flat_map(|w| (0..w.ops.len()).flat_map(move |pc| w.va(pc, None)))
        .chain(extra)
        .map(|va| va & mask)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Returns the kind of `step` taken from `s`, with real CPU numbers
/// (`labels[k - 1]` is the CPU at workload position `k`).
pub(crate) fn kind_of(s: &State, step: Step, labels: &[usize]) -> StepKind {
    let real = |pos: u8| match usize::from(pos) {
        0 => 0,
        k => labels.get(k - 1).copied().unwrap_or(k),
    };
    match step {
        Step::Updater | Step::Cpu { .. } | Step::Thread { .. } => StepKind::Op,
        Step::Propagate { index } => {
            s.pending
                .get(usize::from(index))
                .map_or(StepKind::Op, |p| StepKind::Propagate {
                    pa: p.pa.0,
                    value: p.value,
                })
        }
        Step::Publish { index } => s
            .unpublished
            .get(usize::from(index))
            .map_or(StepKind::Op, |&pfn| StepKind::Publish { pfn }),
        Step::Fill { cpu, va, .. } => StepKind::Fill { cpu: real(cpu), va },
        // A TLBI taking effect on a thread's CPU removes entries, as an
        // eviction does.
        Step::Evict { cpu, .. } | Step::Invalidate { cpu, .. } => {
            StepKind::Evict { cpu: real(cpu) }
        }
    }
}

/// Describes `vas` in state `s`, with real CPU numbers.
pub(crate) fn snapshot(engine: &Engine<'_>, s: &State, vas: &[u64], labels: &[usize]) -> Snapshot {
    let sc = engine.scenario();
    let g = sc.config.granule;
    let shift = sc.page_shift();
    let read = |pa: u64| s.mem.read(&sc.base, shift, pa);
    // The descriptor a walk of memory reads for `va` at `level`, if the
    // walk gets there.
    let at_level = |va: u64, level: u8| -> Option<Descriptor> {
        let mut table = sc.root;
        for l in g.levels() {
            let d = Descriptor(read(table.add(g.index(l, va) as u64 * 8).0));
            if l == level {
                return Some(d);
            }
            table = d.as_table(g, l)?;
        }
        None
    };
    let stale = |e: &TlbEntry| -> bool {
        let Some(d) = at_level(e.va.0, e.level) else {
            return true;
        };
        match e.kind {
            TlbKind::Leaf { oa, attrs } => d
                .as_leaf(g, e.level)
                .is_none_or(|l| l.oa != oa || l.attrs.read_only() != attrs.read_only()),
            TlbKind::Walk { next } => d.as_table(g, e.level) != Some(next),
        }
    };
    let cpu_of = |pos: usize| match pos {
        0 => 0,
        k => labels.get(k - 1).copied().unwrap_or(k),
    };
    let vas = vas
        .iter()
        .map(|&va| {
            let mut descs = Vec::new();
            let mut table = sc.root;
            for level in g.levels() {
                let pa = table.add(g.index(level, va) as u64 * 8).0;
                let value = read(pa);
                let seen = engine.walker_read(s, pa);
                let d = Descriptor(value);
                let describe = |v: u64| vmsa::descriptor::describe(&Descriptor(v).decode(g, level));
                descs.push(DescState {
                    level,
                    pa,
                    value,
                    text: describe(value),
                    walkers: (seen != value).then_some(seen),
                    walkers_text: (seen != value).then(|| describe(seen)),
                });
                match d.as_table(g, level) {
                    Some(next) => table = next,
                    None => break,
                }
            }
            let mut tlb: Vec<TlbState> = s
                .tlbs
                .iter()
                .enumerate()
                .flat_map(|(pos, t)| {
                    t.entries()
                        .iter()
                        .filter(move |e| e.covers(VirtAddr(va)))
                        .map(move |e| (cpu_of(pos), e))
                })
                .map(|(cpu, e)| {
                    let (leaf, oa, read_only) = match e.kind {
                        TlbKind::Leaf { oa, attrs } => (true, oa.0, attrs.read_only()),
                        TlbKind::Walk { next } => (false, next.0, false),
                    };
                    TlbState {
                        cpu,
                        va: e.va.0,
                        size: e.size(),
                        level: e.level,
                        leaf,
                        oa,
                        read_only,
                        stale: stale(e),
                        text: e.to_string(),
                    }
                })
                .collect();
            tlb.sort_by_key(|t| t.cpu);
            VaState { va, descs, tlb }
        })
        .collect();
    Snapshot { vas }
}
