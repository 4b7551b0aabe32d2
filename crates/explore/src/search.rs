//! Breadth-first search over the reduced state graph, level by level, in
//! parallel, with fingerprints for the visited set.
//!
//! Determinism: each level's successors are generated in parallel but
//! collected in the frontier's order, and inserted into the visited set
//! in that order (each shard of the set takes its own in that order, the
//! shards in parallel), so the same scenario gives the same states, the
//! same counts and the same (shortest) counterexample on any number of
//! threads.
//!
//! Fingerprints are 128 bits (XXH3-128 of the state's encoding,
//! [`State::encode`]), as TLC and SPIN's hash compaction store
//! fingerprints instead of states: two distinct states of one run collide
//! with probability about n^2 / 2^129 (taking the hash as a random
//! function), negligible at the sizes run here.
//!
//! The frontier holds states encoded, one after another in arenas reused
//! from level to level; a worker decodes a state into storage it keeps
//! and builds every successor in place, so the search allocates almost
//! nothing per state. Between successors the copy is restored from the
//! state, and a TLB the step left alone (its mark, [`vmsa::tlb::Tlb::mark`],
//! still its position) is neither copied back nor encoded again: its
//! encoding is copied from the state's ([`State::encode_reusing`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::engine::{Applied, Engine, Memo, Outcome, Step};
use crate::hazard::Hazard;
use crate::state::{Spans, State};
use crate::thread::Final;
use crate::trace::{self, Snapshot, StepKind};

/// Limits on a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Unique states.
    pub states: u64,
    /// Memory in bytes the search may hold: visited set, parent links,
    /// frontier and the buffers of a chunk's successors, estimated before
    /// each chunk is expanded with what the chunk may add (see
    /// `memory_peak`); the process holds a fixed overhead more.
    pub memory: u64,
    /// Wall-clock time.
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            states: 20_000_000,
            memory: 4 << 30,
            time: Duration::from_secs(600),
        }
    }
}

/// Which limit stopped a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Limit {
    /// `--max-states`.
    States,
    /// `--max-memory`.
    Memory,
    /// `--max-time`.
    Time,
}

impl Limit {
    /// Says which limit, how far the search got (its `states` and
    /// `depth`) and how to raise the limit.
    pub fn advice(self, limits: &Limits, states: u64, depth: u64) -> String {
        let got = format!(" after {states} states, at depth {depth}");
        let text = match self {
            Limit::States => format!(
                "the state limit ({}) was reached; raise it with --max-states",
                limits.states
            ),
            Limit::Memory => format!(
                "the memory limit ({} MiB) was reached; raise it with --max-memory (MiB)",
                limits.memory >> 20
            ),
            Limit::Time => format!(
                "the time limit ({} s) was reached; raise it with --max-time (seconds)",
                limits.time.as_secs()
            ),
        };
        // "... was reached after N states, at depth D; raise it ..."
        text.replacen(" was reached;", &format!(" was reached{got};"), 1)
    }
}

/// How far a search has got, given to a progress callback (see
/// [`explore_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Unique states so far.
    pub states: u64,
    /// Transitions taken so far.
    pub transitions: u64,
    /// The level being expanded.
    pub depth: u64,
    /// The memory the search holds, as the memory limit counts it (bytes).
    pub memory: u64,
    /// Wall-clock time since the search started.
    pub elapsed: Duration,
}

/// How often, at most, a search calls its progress callback.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// One line of a counterexample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceStep {
    /// The CPU that acted (0 the updater), or `None` for the hardware.
    pub cpu: Option<usize>,
    /// What happened.
    pub text: String,
    /// What kind of step it is.
    pub kind: StepKind,
    /// The descriptors and TLB entries that matter, after the step (for
    /// the step that meets the hazard: when it meets it).
    pub state: Snapshot,
    /// This step met the hazard (the last step, unless the hazard was
    /// found when every CPU had finished: a final-state check, a
    /// deadlock).
    pub hazard: bool,
}

/// What a search found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Every reachable state explored; no hazard.
    Safe,
    /// A hazard, with the shortest path to it.
    Hazard {
        /// The hazard.
        hazard: Hazard,
        /// The steps that lead to it.
        trace: Vec<TraceStep>,
    },
    /// A limit stopped the search first; no hazard up to there.
    Incomplete {
        /// Which limit.
        limit: Limit,
        /// How to raise it.
        advice: String,
    },
}

/// Statistics and verdict of a search.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// Unique states explored.
    pub states: u64,
    /// Transitions taken.
    pub transitions: u64,
    /// The deepest level reached.
    pub depth: u64,
    /// Paths on which the updater gave up (CAS retries exhausted).
    pub gave_up: u64,
    /// What the final states of a scenario with threads show
    /// ([`crate::thread`]), sorted, each once (empty without threads, and
    /// then left out of JSON).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finals: Vec<Final>,
    /// Some state explored had herd7's `Warning-BBM-expected` raised by
    /// its threads (`engine/thread/bbm.rs`; always false without threads:
    /// a kernel scenario's herd7 flag is [`crate::Scenario::herd7_bbm`],
    /// from the rule checker's run; left out of JSON when false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub herd7_bbm: bool,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// Fingerprints a state's encoding (see [`State::encode`]): XXH3-128 of
/// its bytes (native byte order; fingerprints are compared within one run
/// only). XXH3 takes 64 bytes at a time with SIMD multiplies; `twox-hash`
/// picks AVX2 at run time where the CPU has it (SSE2 otherwise, on any
/// x86-64), which takes a third fewer instructions for the ~600 bytes of
/// a state here than the SSE2 code `xxhash-rust` compiles for a baseline
/// x86-64 target. The value does not depend on the code path.
fn fingerprint(words: &[u64]) -> u128 {
    twox_hash::XxHash3_128::oneshot(bytemuck::cast_slice(words))
}

/// States kept encoded in one arena (see [`State::encode`]): a part of a
/// level (the new states of one batch of the level before), with each
/// state's node id.
#[derive(Default)]
struct Part {
    /// The encodings.
    words: Vec<u64>,
    /// Where each state's encoding lies in `words`: start and end.
    spans: Vec<(u32, u32)>,
    /// Each state's node id.
    ids: Vec<u32>,
}

impl Part {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn get(&self, k: usize) -> &[u64] {
        let (start, end) = self.spans[k];
        &self.words[start as usize..end as usize]
    }

    fn push(&mut self, id: u32, words: &[u64]) {
        let start = self.words.len() as u32;
        self.words.extend_from_slice(words);
        self.spans.push((start, self.words.len() as u32));
        self.ids.push(id);
    }

    fn clear(&mut self) {
        self.words.clear();
        self.spans.clear();
        self.ids.clear();
    }

    /// The bytes its arenas hold (allocated, used or not).
    fn bytes(&self) -> u64 {
        (self.words.capacity() * 8 + self.spans.capacity() * 8 + self.ids.capacity() * 4) as u64
    }
}

/// The visited set: fingerprints in shards chosen by their top bits, so
/// that a chunk's fingerprints are inserted shard by shard in parallel,
/// each shard taking them in the chunk's order (the first occurrence of
/// a state in the chunk is the one that is new, as with one set).
struct Visited {
    shards: Vec<FxHashSet<u128>>,
}

impl Visited {
    /// Makes a set of `n` shards (1 on one thread: the merge then runs as
    /// one task; the sharding never changes which states are new).
    fn new(n: usize) -> Self {
        Visited {
            shards: (0..n.max(1)).map(|_| FxHashSet::default()).collect(),
        }
    }

    /// Says which shard holds `fp`: the top bits of its high word scaled
    /// to the number of shards (the fingerprint is uniform).
    fn shard(fp: u128, n: usize) -> usize {
        ((u128::from((fp >> 64) as u64) * n as u128) >> 64) as usize
    }

    fn contains(&self, fp: u128) -> bool {
        self.shards[Self::shard(fp, self.shards.len())].contains(&fp)
    }

    fn insert(&mut self, fp: u128) -> bool {
        let n = self.shards.len();
        self.shards[Self::shard(fp, n)].insert(fp)
    }
}

/// One successor of a batch's state `parent` (its index in the batch's
/// `from`).
struct Succ {
    parent: u32,
    step: Step,
    what: What,
}

enum What {
    /// A state not visited before the chunk, encoded at
    /// `words[start..end]` of the batch, the batch's next candidate.
    Next { start: u32, end: u32 },
    /// A state visited before the chunk was expanded.
    Known,
    /// A hazard.
    Hazard(Hazard),
}

/// The successors of a batch of states, in order, and what the merge
/// found of them.
#[derive(Default)]
struct Batch {
    /// The encodings of the `Next` successors (this becomes a part of the
    /// next level if one of them is new).
    words: Vec<u64>,
    succ: Vec<Succ>,
    /// The states expanded: part and index in the frontier.
    from: Vec<(u32, u32)>,
    /// The candidates (the `Next` successors) of each shard of the visited
    /// set, in order: fingerprint and index among the candidates.
    fps: Vec<Vec<(u128, u32)>>,
    /// Whether each candidate is new: set by the merge's shard tasks.
    new: Vec<AtomicBool>,
    /// How many candidates are new: added to by the merge's shard tasks.
    fresh: AtomicUsize,
    /// Where the first hazard (other than a path given up) lies in `succ`.
    hazard: Option<usize>,
    /// Paths given up in `succ`.
    gave_up: u64,
    /// What the final states of threads expanded show.
    finals: Vec<Final>,
    /// Some state expanded had herd7's BBM warning raised.
    herd7_bbm: bool,
    /// The most candidates one state of the batch gave.
    most: u32,
}

impl Batch {
    /// Empties the batch, for a visited set of `shards` shards.
    fn clear(&mut self, shards: usize) {
        self.words.clear();
        self.succ.clear();
        self.from.clear();
        self.fps.resize_with(shards, Vec::new);
        self.fps.iter_mut().for_each(Vec::clear);
        self.new.clear();
        *self.fresh.get_mut() = 0;
        self.hazard = None;
        self.gave_up = 0;
        self.finals.clear();
        self.herd7_bbm = false;
        self.most = 0;
    }

    /// The bytes the batch's buffers hold for its successors (in use; the
    /// buffers' capacity, which depends on the shards for `fps`, is left
    /// to [`memory_peak`]'s slack, so that the estimate is the same on
    /// any number of threads).
    fn bytes(&self) -> u64 {
        (self.words.len() * 8
            + self.succ.len() * std::mem::size_of::<Succ>()
            + self.from.len() * 8
            + self.new.len() * (std::mem::size_of::<(u128, u32)>() + 1)) as u64
    }
}

/// A worker's storage, reused from state to state.
#[derive(Default)]
struct Scratch {
    state: State,
    /// Where the memory and each TLB of `state` lie in its encoding.
    spans: Spans,
    next: State,
    steps: Vec<Step>,
    memo: Memo,
}

/// States per parallel task.
const BATCH: usize = 32;

/// Shards of the visited set per thread (more than one, so that a thread
/// slowed by other work leaves its shards to the others).
const SHARDS_PER_THREAD: usize = 8;

/// Counts so far, and where a search stops.
struct Counts {
    states: usize,
    transitions: u64,
    gave_up: u64,
    finals: BTreeSet<Final>,
    herd7_bbm: bool,
}

/// Why a chunk's merge stopped the search: a hazard (the index of the
/// batch and of the successor) or the state limit.
enum Stop {
    Hazard(usize, usize),
    States,
}

/// Explores every state reachable in `engine`'s scenario (no progress
/// callback: see [`explore_with`]).
pub fn explore(engine: &Engine<'_>, limits: &Limits) -> Report {
    explore_with(engine, limits, &|_| {})
}

/// Explores every state reachable in `engine`'s scenario, calling
/// `progress` after a chunk at most every [`PROGRESS_EVERY`] (the first
/// time after that long), from the thread that runs the search.
///
/// A level is expanded in chunks of tasks; after each chunk, the merge:
/// inserts the fingerprints of the successors not known before the chunk
/// into the visited set, shard by shard in parallel (each shard in the
/// chunk's order); walks the batches in order, counting states,
/// transitions and paths given up per batch, and successor by successor
/// only in a batch where the search stops (its first hazard, or the state
/// that reaches the limit); then, in parallel, copies each batch's new
/// states into a part of the next level, with the node ids and parent
/// links the chunk's order gives.
pub fn explore_with(
    engine: &Engine<'_>,
    limits: &Limits,
    progress: &(dyn Fn(&Progress) + Sync),
) -> Report {
    // Off the pool (a caller's own thread), the search runs on one of its
    // workers, so that each chunk's parallel steps start there instead of
    // waking a worker and putting this thread to sleep, three times a chunk.
    if rayon::current_thread_index().is_none() {
        return rayon::scope(|_| search(engine, limits, progress));
    }
    search(engine, limits, progress)
}

/// Explores, on the current thread (a worker of the pool or not).
fn search(engine: &Engine<'_>, limits: &Limits, progress: &(dyn Fn(&Progress) + Sync)) -> Report {
    let start = Instant::now();
    let init = engine.initial();
    let mut enc = Vec::new();
    init.encode(&mut enc);
    // A power of two of shards: their tables together then take what one
    // table of all the states would (see `memory_peak`).
    let threads = rayon::current_num_threads();
    let mut visited = Visited::new(if threads > 1 {
        (threads * SHARDS_PER_THREAD).next_power_of_two()
    } else {
        1
    });
    visited.insert(fingerprint(&enc));
    // Parent links: node id -> (parent id, step).
    let mut nodes: Vec<(u32, Step)> = vec![(u32::MAX, Step::Updater)];
    // A level is kept as a list of parts, one per batch that found a new
    // state, so that it never grows by reallocating (and copying) one huge
    // arena; parts of a finished level are reused for the level after
    // next.
    let mut first = Part::default();
    first.push(0, &enc);
    let mut frontier: Vec<Part> = vec![first];
    let mut spare: Vec<Part> = Vec::new();
    let mut c = Counts {
        states: 1,
        transitions: 0,
        gave_up: 0,
        finals: BTreeSet::new(),
        herd7_bbm: false,
    };
    let mut depth = 0u64;
    let report = |verdict, c: &Counts, depth| Report {
        verdict,
        states: c.states as u64,
        transitions: c.transitions,
        depth,
        gave_up: c.gave_up,
        finals: c.finals.iter().cloned().collect(),
        herd7_bbm: c.herd7_bbm,
        elapsed: start.elapsed(),
    };
    let mut next: Vec<Part> = Vec::new();
    let stopped = |l: Limit, c: &Counts, depth| {
        report(
            Verdict::Incomplete {
                limit: l,
                advice: l.advice(limits, c.states as u64, depth),
            },
            c,
            depth,
        )
    };
    let mut batches: Vec<Batch> = Vec::new();
    let mut outs: Vec<Part> = Vec::new();
    // What the chunks so far tell of the next: the most candidates one
    // state gave, and the most bytes a chunk's buffers held per state
    // expanded (both the same on any number of threads).
    let mut most = 0usize;
    let mut buf_per_state = 0u64;
    let mut shown = start;
    while !frontier.is_empty() {
        // Expand the level in chunks, so that successors not yet
        // deduplicated never hold much memory, and limits are checked often.
        let per_state = frontier
            .first()
            .map_or(8, |p| p.get(0).len() * 8 + 12)
            .max(1);
        // Chunks of a fixed size, whatever the threads: on one thread a
        // chunk's batches stay in the L2 cache while the merge reads them,
        // and the limits on memory and time, checked after each chunk, are
        // checked at the same states on any number of threads. The chunk
        // size changes no result otherwise: the first occurrence of a
        // state in the frontier's order is the new one, and the merge stops
        // at the first hazard or at the state reaching the limit, in that
        // order, whatever the chunks.
        let chunk_len = (CHUNK_BYTES / (per_state * 32)).clamp(1, CHUNK);
        let tasks = tasks(&frontier);
        for group in tasks.chunks((chunk_len / BATCH).max(1)) {
            // Stop before a chunk that could take the search past the
            // memory limit.
            let expanding: usize = group.iter().map(|t| t.2).sum();
            let held = Held::of(c.states, nodes.capacity(), [&frontier, &next, &spare]);
            let bound = Bound {
                new: expanding * if most == 0 { 64 } else { most },
                buffers: expanding as u64
                    * if buf_per_state == 0 {
                        64 * per_state as u64
                    } else {
                        buf_per_state
                    },
                per_state: per_state as u64,
            };
            if memory_peak(&held, &bound) > limits.memory {
                return stopped(Limit::Memory, &c, depth);
            }
            // Each task's successors go to a batch kept from chunk to
            // chunk, so their storage is allocated once per search.
            let ntasks = group.len();
            if batches.len() < ntasks {
                batches.resize_with(ntasks, Batch::default);
            }
            let batches = &mut batches[..ntasks];
            batches.par_iter_mut().zip(group.par_iter()).for_each_init(
                Scratch::default,
                |scr, (out, &(mut p, mut k, n))| {
                    out.clear(visited.shards.len());
                    for i in 0..n as u32 {
                        while k == frontier[p].len() {
                            (p, k) = (p + 1, 0);
                        }
                        out.from.push((p as u32, k as u32));
                        expand(engine, &visited, frontier[p].get(k), i, scr, out);
                        k += 1;
                    }
                },
            );
            let bytes: u64 = batches.iter().map(Batch::bytes).sum();
            buf_per_state = buf_per_state.max(bytes.div_ceil(expanding as u64));
            most = batches.iter().fold(most, |m, b| m.max(b.most as usize));
            // Insert the candidates, shard by shard, in the chunk's order.
            let shared: &[Batch] = batches;
            visited
                .shards
                .par_iter_mut()
                .enumerate()
                .for_each(|(s, set)| {
                    for b in shared {
                        let mut fresh = 0;
                        for &(fp, i) in &b.fps[s] {
                            if set.insert(fp) {
                                b.new[i as usize].store(true, Ordering::Relaxed);
                                fresh += 1;
                            }
                        }
                        if fresh > 0 {
                            b.fresh.fetch_add(fresh, Ordering::Relaxed);
                        }
                    }
                });
            // Count, batch by batch in order; successor by successor in
            // the batch where the search stops.
            let first_id = nodes.len();
            for (i, b) in batches.iter().enumerate() {
                c.finals.extend(b.finals.iter().cloned());
                c.herd7_bbm |= b.herd7_bbm;
                let fresh = b.fresh.load(Ordering::Relaxed);
                if b.hazard.is_none() && ((c.states + fresh) as u64) < limits.states {
                    c.states += fresh;
                    c.transitions += b.succ.len() as u64;
                    c.gave_up += b.gave_up;
                    continue;
                }
                let Some(stop) = settle(b, i, &mut c, limits) else {
                    continue;
                };
                return match stop {
                    Stop::States => stopped(Limit::States, &c, depth),
                    Stop::Hazard(bi, si) => {
                        let verdict = hazard_verdict(engine, &nodes, &frontier, &batches[bi], si);
                        report(verdict, &c, depth + 1)
                    }
                };
            }
            // Copy each batch's new states into a part of the next level,
            // batches in parallel: node ids follow the chunk's order.
            nodes.resize(c.states, (u32::MAX, Step::Updater));
            let mut links = &mut nodes[first_id..];
            let mut id = first_id as u32;
            outs.clear();
            let mut jobs = Vec::with_capacity(ntasks);
            for b in batches.iter_mut() {
                let fresh = *b.fresh.get_mut();
                if fresh == 0 {
                    continue;
                }
                let (mine, rest) = std::mem::take(&mut links).split_at_mut(fresh);
                links = rest;
                jobs.push((b, mine, id, spare.pop().unwrap_or_default()));
                id += fresh as u32;
            }
            outs.par_extend(
                jobs.into_par_iter()
                    .map(|(b, links, id, part)| into_part(b, &frontier, links, id, part)),
            );
            next.append(&mut outs);
            if c.states as u64 >= limits.states {
                return stopped(Limit::States, &c, depth);
            }
            let now = Instant::now();
            if now - start >= limits.time {
                return stopped(Limit::Time, &c, depth);
            }
            if now - shown >= PROGRESS_EVERY {
                shown = now;
                progress(&Progress {
                    states: c.states as u64,
                    transitions: c.transitions,
                    depth,
                    memory: memory_peak(
                        &Held::of(c.states, nodes.capacity(), [&frontier, &next, &spare]),
                        &Bound::default(),
                    ),
                    elapsed: now - start,
                });
            }
        }
        depth += 1;
        for mut p in std::mem::replace(&mut frontier, std::mem::take(&mut next)) {
            p.clear();
            spare.push(p);
        }
    }
    report(Verdict::Safe, &c, depth)
}

/// Splits the frontier into tasks of `BATCH` states (the last fewer), in
/// its order, across parts (a part can be small: the new states of one
/// batch of the level before): each its first state's part and index, and
/// its number of states.
fn tasks(frontier: &[Part]) -> Vec<(usize, usize, usize)> {
    let mut tasks = Vec::new();
    let (mut p, mut k) = (0, 0);
    let mut left: usize = frontier.iter().map(Part::len).sum();
    while left > 0 {
        let n = BATCH.min(left);
        tasks.push((p, k, n));
        left -= n;
        k += n;
        while p < frontier.len() && k >= frontier[p].len() {
            k -= frontier[p].len();
            p += 1;
        }
    }
    tasks
}

/// Counts batch `b` (index `i` in its chunk) successor by successor, in
/// order, as far as the search goes: to its first hazard, or to the new
/// state that reaches the state limit. Returns why it stopped, if it did.
fn settle(b: &Batch, i: usize, c: &mut Counts, limits: &Limits) -> Option<Stop> {
    let mut k = 0;
    for (si, succ) in b.succ.iter().enumerate() {
        c.transitions += 1;
        match &succ.what {
            What::Hazard(h) if h.kind == crate::HazardKind::GaveUp => c.gave_up += 1,
            What::Hazard(_) => return Some(Stop::Hazard(i, si)),
            What::Known => {}
            What::Next { .. } => {
                if b.new[k].load(Ordering::Relaxed) {
                    c.states += 1;
                    if c.states as u64 >= limits.states {
                        return Some(Stop::States);
                    }
                }
                k += 1;
            }
        }
    }
    None
}

/// Makes the verdict for the hazard batch `b` met at its successor `si`:
/// the counterexample replayed along the parent links, with the real CPU
/// numbers.
fn hazard_verdict(
    engine: &Engine<'_>,
    nodes: &[(u32, Step)],
    frontier: &[Part],
    b: &Batch,
    si: usize,
) -> Verdict {
    let succ = &b.succ[si];
    let What::Hazard(h) = &succ.what else {
        unreachable!("a stop at a hazard is at a hazard");
    };
    let (p, k) = b.from[succ.parent as usize];
    let part = &frontier[p as usize];
    let mut parent = State::default();
    State::decode_into(part.get(k as usize), &mut parent);
    let terminal = engine.finished(&parent) || h.kind == crate::HazardKind::Deadlock;
    let id = part.ids[k as usize];
    let (trace, labels) = rebuild(engine, nodes, id, (!terminal).then_some(succ.step), h.va);
    let mut hazard = h.clone();
    hazard.detail = relabel(&hazard.detail, &labels);
    if hazard.cpu > 0 {
        hazard.cpu = labels[hazard.cpu - 1];
    }
    Verdict::Hazard { hazard, trace }
}

/// Copies batch `b`'s new states into `part` (empty, its arena reused),
/// with their node ids from `id` on, and writes their parent links into
/// `links`.
fn into_part(
    b: &mut Batch,
    frontier: &[Part],
    links: &mut [(u32, Step)],
    id: u32,
    mut part: Part,
) -> Part {
    // Where the new states lie in the batch, then room for them made at
    // once (without copying what the part's arena held: nothing).
    let mut k = 0;
    let mut words = 0;
    let mut links = links.iter_mut();
    for succ in &b.succ {
        if let What::Next { start, end } = succ.what {
            if *b.new[k].get_mut() {
                if let Some(l) = links.next() {
                    let (p, k) = b.from[succ.parent as usize];
                    *l = (frontier[p as usize].ids[k as usize], succ.step);
                }
                part.spans.push((start, end));
                words += (end - start) as usize;
            }
            k += 1;
        }
    }
    if part.words.capacity() < words {
        part.words = Vec::with_capacity(words);
    }
    for span in &mut part.spans {
        let start = part.words.len() as u32;
        part.words
            .extend_from_slice(&b.words[span.0 as usize..span.1 as usize]);
        *span = (start, part.words.len() as u32);
    }
    part.ids.extend(id..id + part.spans.len() as u32);
    part
}

/// States expanded at once, at most.
const CHUNK: usize = 1 << 15;
/// Bytes the successors of one chunk may take before deduplication
/// (assuming about 32 successors per state).
const CHUNK_BYTES: usize = 16 << 20;

/// Appends to `out` the successors of the state encoded in `words` (index
/// `k` in the batch): each encoded with its fingerprint, or known (in
/// `visited`, which the merge does not change while chunks expand), or a
/// hazard.
fn expand(
    engine: &Engine<'_>,
    visited: &Visited,
    words: &[u64],
    k: u32,
    scr: &mut Scratch,
    out: &mut Batch,
) {
    State::decode_spans(words, &mut scr.state, &mut scr.spans);
    let s = &scr.state;
    out.herd7_bbm |= s.herd_bbm.raised;
    engine.steps_memo(s, &mut scr.steps, &mut scr.memo);
    if scr.steps.is_empty() {
        if engine.finished(s)
            && let Some(f) = engine.final_of(s)
        {
            out.finals.push(f);
            return;
        }
        let h = if engine.finished(s) {
            engine.check_final(s)
        } else {
            Some(deadlock(engine, s))
        };
        if let Some(h) = h {
            out.push_hazard(k, Step::Updater, h);
        }
        return;
    }
    // Each successor is built over a copy of the state; after the first
    // step applied, the copy is restored from the state, and TLBs a step
    // left alone (still marked with their positions) are neither copied
    // back nor encoded again (their encoding is copied from the state's).
    // Steps whose successor is an earlier step's are a transition to a
    // state known by then (see `Memo::repeats`), and are not applied.
    let mut repeats = scr.memo.repeats().iter().peekable();
    let mut fresh = true;
    let candidates = out.new.len();
    scr.next.clone_from(s);
    for (i, &st) in scr.steps.iter().enumerate() {
        if repeats.next_if_eq(&&(i as u32)).is_some() {
            out.succ.push(Succ {
                parent: k,
                step: st,
                what: What::Known,
            });
            continue;
        }
        if !fresh {
            scr.next.restore_from(s);
        }
        fresh = false;
        match engine.apply_into(s, &mut scr.next, st, &scr.memo) {
            Applied::Disabled => {}
            Applied::Next(_) => {
                let start = out.words.len();
                scr.next.encode_reusing(&mut out.words, words, &scr.spans);
                let end = out.words.len();
                let fp = fingerprint(&out.words[start..end]);
                let what = if visited.contains(fp) {
                    // Visited before this chunk: the merge would drop it.
                    out.words.truncate(start);
                    What::Known
                } else {
                    let n = visited.shards.len();
                    out.fps[Visited::shard(fp, n)].push((fp, out.new.len() as u32));
                    out.new.push(AtomicBool::new(false));
                    What::Next {
                        start: start as u32,
                        end: end as u32,
                    }
                };
                out.succ.push(Succ {
                    parent: k,
                    step: st,
                    what,
                });
            }
            Applied::Hazard(h) => out.push_hazard(k, st, h),
        }
    }
    out.most = out.most.max((out.new.len() - candidates) as u32);
}

impl Batch {
    /// Appends a hazard met from state `k` by `step`, noting the first
    /// (other than a path given up) and counting paths given up.
    fn push_hazard(&mut self, k: u32, step: Step, h: Hazard) {
        if h.kind == crate::HazardKind::GaveUp {
            self.gave_up += 1;
        } else if self.hazard.is_none() {
            self.hazard = Some(self.succ.len());
        }
        self.succ.push(Succ {
            parent: k,
            step,
            what: What::Hazard(h),
        });
    }
}

fn deadlock(engine: &Engine<'_>, s: &State) -> Hazard {
    Hazard {
        kind: crate::HazardKind::Deadlock,
        cpu: 0,
        va: None,
        detail: format!(
            "the updater waits at operation {} ({}) and no CPU can go on",
            s.pc,
            engine
                .scenario()
                .program
                .instrs
                .get(usize::from(s.pc))
                .map_or_else(|| "end".to_string(), |i| i.to_string())
        ),
    }
}

/// What a search holds between chunks.
struct Held {
    /// States visited (fingerprints in the visited set).
    states: usize,
    /// The capacity of the parent links.
    links: usize,
    /// The bytes of the frontier's, the next level's and the spare parts'
    /// arenas.
    parts: u64,
}

impl Held {
    /// Returns what the search holds with `states` visited, parent links
    /// of capacity `links`, and the arenas of `parts` (the frontier's, the
    /// next level's and the spare ones).
    fn of(states: usize, links: usize, parts: [&[Part]; 3]) -> Self {
        Held {
            states,
            links,
            parts: parts.iter().flat_map(|p| p.iter()).map(Part::bytes).sum(),
        }
    }
}

/// What a chunk may add, at most.
#[derive(Default)]
struct Bound {
    /// New states.
    new: usize,
    /// Bytes of the batches' buffers.
    buffers: u64,
    /// Bytes of one state's encoding in a part.
    per_state: u64,
}

/// Bytes of a hashbrown table (the `HashSet` of std and `FxHashSet`)
/// holding `n` fingerprints: buckets the next power of two of 8/7 `n` (it
/// is full at 7/8), each a 16-byte fingerprint and a control byte, and a
/// group of control bytes more.
fn table_bytes(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let buckets = if n < 8 {
        if n < 4 { 4 } else { 8 }
    } else {
        (n * 8).div_ceil(7).next_power_of_two()
    };
    buckets * 17 + 16
}

/// Estimates the most memory the search holds while it expands a chunk:
/// what it holds (`held`) and what the chunk may add (`bound`), counting
/// the moments a table grows, when the old and the new one are both
/// allocated:
/// - the visited set: its table (the shards' tables, a power of two of
///   them, take what one table would; a shard reaches its growth a little
///   before or after the others, so the counts are widened by 1/16 and
///   1024 each side), and if the chunk's new states may make it grow, the
///   grown table besides;
/// - the parent links (`(u32, Step)` each), and if the chunk's new states
///   pass their capacity, the doubled vector besides;
/// - the parts' arenas, and the chunk's new states' encodings besides;
/// - the chunk's buffers, twice their size (a vector's doubling slack).
///
/// The estimate depends only on counts the same on any number of threads,
/// so the memory limit stops a search at the same state on any. It is of
/// the search alone, not the process (several searches may run at once):
/// the process holds a fixed overhead more (its code, the threads' stacks
/// and scratch storage, the allocator's own).
fn memory_peak(held: &Held, bound: &Bound) -> u64 {
    let n = held.states as u64;
    let after = n + bound.new as u64;
    let hi = |n: u64| n + n / 16 + 1024;
    let lo = |n: u64| (n - n / 16).saturating_sub(1024);
    let now = table_bytes(hi(n));
    let grown = table_bytes(hi(after));
    let visited = if grown > table_bytes(lo(n)) {
        now + grown
    } else {
        now
    };
    let link = std::mem::size_of::<(u32, Step)>() as u64;
    let cap = held.links as u64;
    let links = if after > cap {
        cap + (2 * cap).max(after)
    } else {
        cap
    } * link;
    let arenas = held.parts + bound.new as u64 * (bound.per_state + 12);
    visited + links + arenas + 2 * bound.buffers
}

/// Rewrites `cpuN` (N a workload position, from 1) into the real CPU
/// number `labels[N - 1]`.
fn relabel(text: &str, labels: &[usize]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("cpu") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) if n >= 1 && n <= labels.len() => out.push_str(&labels[n - 1].to_string()),
            _ => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// Replays the path to node `id` (then `last`) from the initial state,
/// describing each step with the real CPU numbers (the symmetry reduction
/// reorders identical CPUs in the states it stores), and the state of the
/// workloads' pages (and `hazard_va`'s) after it. Returns the steps and
/// the final labels: position `k` holds CPU `labels[k]`.
fn rebuild(
    engine: &Engine<'_>,
    nodes: &[(u32, Step)],
    id: u32,
    last: Option<Step>,
    hazard_va: Option<u64>,
) -> (Vec<TraceStep>, Vec<usize>) {
    let mut path = Vec::new();
    let mut cur = id;
    while cur != 0 {
        let (parent, step) = nodes[cur as usize];
        path.push(step);
        cur = parent;
    }
    path.reverse();
    path.extend(last);
    let vas = trace::relevant_vas(engine.scenario(), hazard_va);
    let mut s = engine.initial();
    let mut labels: Vec<usize> = (1..=s.wl.len()).collect();
    let mut out = Vec::new();
    for step in path {
        let mut text = String::new();
        let kind = trace::kind_of(&s, step, &labels);
        let (outcome, perm) = engine.apply_traced(&s, step, Some(&mut text));
        let cpu = match step {
            Step::Updater => Some(0),
            Step::Cpu { cpu, .. } => Some(labels[usize::from(cpu) - 1]),
            Step::Thread { thread, .. } => Some(1 + s.wl.len() + usize::from(thread)),
            _ => None,
        };
        let text = relabel(&text, &labels);
        let hazard = matches!(outcome, Outcome::Hazard(_));
        let last = match outcome {
            Outcome::Next(n) => {
                s = n;
                labels = perm.iter().map(|&i| labels[i]).collect();
                false
            }
            _ => true,
        };
        out.push(TraceStep {
            cpu,
            text,
            kind,
            state: trace::snapshot(engine, &s, &vas, &labels),
            hazard,
        });
        if last {
            break;
        }
    }
    (out, labels)
}
