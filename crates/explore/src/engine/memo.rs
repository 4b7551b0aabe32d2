//! What a step reuses instead of computing it again: the translation
//! choices and walks [`Engine::steps_memo`] computed for a state
//! ([`Memo`]), for [`Engine::apply_memo`]; the walks and reach queries kept
//! from state to state while the walkers' view of memory is unchanged
//! ([`Kept`], [`View`], [`WalkCache`], [`ReachCache`]); the steps whose
//! successor is an earlier step's (repeats, and mirrored repeats of an
//! identical neighbour CPU); what a step touched, so that normalizing its
//! successor redoes only that ([`Touched`]); and the small address set the
//! queries collect into ([`Small`]).

use std::ops::Range;

use vmsa::machine::PendingStore;
use vmsa::tlb::TlbEntry;
use vmsa::walk::{Access, Choice};

use crate::state::{Mem, State};

use super::{Engine, Step};

/// A small set of addresses: a handful of walks' worth, so a vector beats
/// a hash set; the first [`Small::INLINE`] live inline (no allocation on
/// the search's hot path).
pub(super) struct Small {
    pub(super) n: usize,
    pub(super) inline: [u64; Small::INLINE],
    pub(super) more: Vec<u64>,
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

    pub(super) fn insert(&mut self, x: u64) {
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

    pub(super) fn contains(&self, x: &u64) -> bool {
        self.inline[..self.n].contains(x) || self.more.contains(x)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.inline[..self.n].iter().chain(&self.more).copied()
    }
}

/// What a step may have changed in a normalized state (see
/// [`Engine::normalize_from`]); CPUs are numbered from 1 like the steps'.
#[derive(Clone, Copy)]
pub(super) enum Touched {
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

/// The translation choices and walks [`Engine::steps`] computed for a
/// state, so that applying each step does not compute them again.
#[derive(Default)]
pub struct Memo {
    /// Every access's choices, one list after another (storage kept
    /// from state to state: no allocation per access).
    pub(super) all: Vec<Choice>,
    /// For each choice in `all`, which of its fills the CPU's TLB does not
    /// hold yet (bit `k` for fill `k`).
    pub(super) fresh: Vec<u8>,
    /// (CPU, its next access's choices: where they are in `all`).
    pub(super) choices: Vec<(usize, Range<usize>)>,
    /// Every fill's walk, one list after another: where it is in the
    /// cache's choices, and its fresh fills (as in `fresh`).
    pub(super) fills: Vec<(u32, u8)>,
    /// (CPU, VA, the walks a fill may make: where they are in `fills`).
    pub(super) walks: Vec<(usize, u64, Range<usize>)>,
    /// Walks kept from state to state.
    pub(super) cache: WalkCache,
    /// What the observability query's walks reach, kept from state to
    /// state.
    pub(super) reached: ReachCache,
    /// The steps (their indices in the list, ascending) whose successor
    /// is an earlier step's (see [`Memo::repeats`]).
    pub(super) repeats: Vec<u32>,
}

impl Memo {
    pub(super) fn clear(&mut self) {
        self.all.clear();
        self.fresh.clear();
        self.repeats.clear();
        self.choices.clear();
        self.fills.clear();
        self.walks.clear();
    }

    /// Returns choice `k` of `cpu`'s next access, with its fresh fills
    /// (see [`Memo::fresh`]).
    pub(super) fn choice(&self, cpu: usize, k: usize) -> Option<Option<(&Choice, u8)>> {
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
    pub(super) fn walk(&self, cpu: usize, va: u64, k: usize) -> Option<Option<(&Choice, u8)>> {
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
pub(super) struct Kept<K, T> {
    view: View,
    /// Each key and where its items are in `items`.
    keys: Vec<(K, Range<u32>)>,
    pub(super) items: Vec<T>,
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
    pub(super) fn enter(&mut self, s: &State) {
        if self.view.enter(s, self.items.len() >= Self::MAX) {
            self.keys.clear();
            self.items.clear();
        }
    }

    /// Returns where the items for `key` are in `items`, appended by
    /// `make` unless kept.
    pub(super) fn get(&mut self, key: K, make: impl FnOnce(&mut Vec<T>)) -> Range<usize> {
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

/// The choices of walks, by VA, access, start (`None` the root, or a
/// walk-cache entry) and translator (its key, `thread::tthm::walker_key`:
/// a thread's CPU may manage AF and the dirty state otherwise, or access
/// at EL0): a walk reads only descriptors as the walkers see
/// them ([`Engine::walker_read`]: memory, pending stores, unpublished
/// frames), from a start the scenario fixes or the entry names, so a walk
/// from the same start for the same access makes the same choices in
/// every state with the same view.
pub(super) type WalkCache = Kept<(u64, Access, Option<TlbEntry>, u8), Choice>;

/// What [`Engine::reach`] finds from a start (VA, level, table): the
/// descriptors it reads (`true`) and the frames it reaches (`false`); it
/// reads only memory, pending stores and unpublished frames.
pub(super) type ReachCache = Kept<(u64, u8, u64), (bool, u64)>;

impl WalkCache {
    /// Appends to `out` the choices of the walk for a `kind` access to `va`
    /// from `start` by translator `who`, made by `walk_from` unless kept.
    pub(super) fn walk_from(
        &mut self,
        va: u64,
        kind: Access,
        start: Option<&TlbEntry>,
        who: u8,
        out: &mut Vec<Choice>,
        walk_from: impl FnOnce(&mut Vec<Choice>),
    ) {
        let r = self.get((va, kind, start.copied(), who), walk_from);
        out.extend_from_slice(&self.items[r]);
    }
}

impl ReachCache {
    /// Adds to `descs` and `frames` what a walk for `va` from `table` at
    /// `level` reaches, found by `reach` unless kept.
    pub(super) fn reach(
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
pub(super) struct View {
    /// Whether the fields below are a view.
    valid: bool,
    mem: Mem,
    pending: Vec<PendingStore>,
    unpublished: Vec<u64>,
}

impl View {
    /// Makes this `s`'s view; returns whether it changed (or `reset`
    /// asked for a new start), so that what was kept for it goes.
    pub(super) fn enter(&mut self, s: &State, reset: bool) -> bool {
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

impl<'a> Engine<'a> {
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
    pub(super) fn mirrored_repeats(&self, s: &State, out: &[Step], memo: &mut Memo) {
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
}

/// Returns which of `fills` (bit `k` for fill `k`) `tlb` does not hold.
pub(super) fn fresh_fills(fills: &[TlbEntry], tlb: &[TlbEntry]) -> u8 {
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
pub(super) fn same_fresh(a: &[TlbEntry], fa: u8, b: &[TlbEntry], fb: u8) -> bool {
    fn pick(f: &[TlbEntry], m: u8) -> impl Iterator<Item = &TlbEntry> {
        f.iter()
            .enumerate()
            .filter(move |(k, _)| m & (1 << k) != 0)
            .map(|(_, e)| e)
    }
    fa.count_ones() == fb.count_ones() && pick(a, fa).eq(pick(b, fb))
}
