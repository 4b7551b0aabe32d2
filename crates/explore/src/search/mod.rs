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
//! [`State::encode`](crate::state::State::encode)), as TLC and SPIN's hash compaction store
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
//! encoding is copied from the state's ([`State::encode_reusing`](crate::state::State::encode_reusing)).
//!
//! Here: the public types (limits, progress, the report and its verdict)
//! and the search itself, level by level and chunk by chunk, with the
//! merge. The fingerprints, the visited set and the frontier's parts are
//! in `visited.rs`; a batch of states expanded in `expand.rs`; what the
//! search holds and the memory limit's estimate in `memory.rs`; the
//! counterexample rebuilt along the parent links in `replay.rs`.

mod expand;
mod memory;
mod replay;
mod visited;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;

use crate::engine::{Engine, Step};
use crate::hazard::Hazard;
use crate::thread::Final;
use crate::trace::{Snapshot, StepKind};

use expand::{Batch, Scratch, What, expand, into_part};
use memory::{Bound, Held, memory_peak};
use replay::hazard_verdict;
use visited::{Part, Visited, fingerprint};

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
/// States expanded at once, at most.
const CHUNK: usize = 1 << 15;
/// Bytes the successors of one chunk may take before deduplication
/// (assuming about 32 successors per state).
const CHUNK_BYTES: usize = 16 << 20;
