//! Breadth-first search over the reduced state graph, level by level, in
//! parallel, with fingerprints for the visited set.
//!
//! Determinism: each level's successors are generated in parallel but
//! collected in the frontier's order, and inserted into the visited set
//! in that order, so the same scenario gives the same states, the same
//! counts and the same (shortest) counterexample on any number of
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

use std::time::{Duration, Instant};

use rayon::prelude::*;
use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::engine::{Applied, Engine, Memo, Outcome, Step};
use crate::hazard::Hazard;
use crate::state::{Spans, State};
use crate::trace::{self, Snapshot, StepKind};

/// Limits on a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Unique states.
    pub states: u64,
    /// Approximate memory in bytes (visited set, parent links, frontier).
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
    /// Says which limit and how to raise it.
    pub fn advice(self, limits: &Limits) -> String {
        match self {
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
        }
    }
}

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

/// States kept encoded, one after another in one arena (see
/// [`State::encode`]): a part of a level, with each state's node id.
#[derive(Default)]
struct Part {
    /// The encodings.
    words: Vec<u64>,
    /// Where each state's encoding starts in `words` (and the next ends).
    starts: Vec<usize>,
    /// Each state's node id.
    ids: Vec<u32>,
}

impl Part {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn get(&self, k: usize) -> &[u64] {
        let end = self.starts.get(k + 1).copied().unwrap_or(self.words.len());
        &self.words[self.starts[k]..end]
    }

    fn push(&mut self, id: u32, words: &[u64]) {
        self.starts.push(self.words.len());
        self.ids.push(id);
        self.words.extend_from_slice(words);
    }

    fn reserve(&mut self, words: usize, states: usize) {
        self.words.reserve(words);
        self.starts.reserve(states);
        self.ids.reserve(states);
    }

    fn clear(&mut self) {
        self.words.clear();
        self.starts.clear();
        self.ids.clear();
    }

    fn bytes(&self) -> u64 {
        (self.words.len() * 8 + self.starts.len() * 12) as u64
    }
}

/// One successor of a batch's state `parent` (its index in the chunk).
struct Succ {
    parent: usize,
    step: Step,
    what: What,
}

enum What {
    /// A state, encoded at `words[start..end]` of the batch.
    Next { fp: u128, start: usize, end: usize },
    /// A state visited before the chunk was expanded.
    Known,
    /// A hazard.
    Hazard(Hazard),
}

/// The successors of a batch of states, in order.
#[derive(Default)]
struct Batch {
    words: Vec<u64>,
    succ: Vec<Succ>,
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

/// Explores every state reachable in `engine`'s scenario.
pub fn explore(engine: &Engine<'_>, limits: &Limits) -> Report {
    let start = Instant::now();
    let init = engine.initial();
    let mut enc = Vec::new();
    init.encode(&mut enc);
    let mut visited: FxHashSet<u128> = FxHashSet::default();
    visited.insert(fingerprint(&enc));
    // Parent links: node id -> (parent id, step).
    let mut nodes: Vec<(u32, Step)> = vec![(u32::MAX, Step::Updater)];
    // A level is kept as a list of parts, one per expanded chunk, so that
    // it never grows by reallocating (and copying) one huge arena; parts
    // of a finished level are reused for the one after next.
    let mut first = Part::default();
    first.push(0, &enc);
    let mut frontier: Vec<Part> = vec![first];
    let mut spare: Vec<Part> = Vec::new();
    let mut transitions = 0u64;
    let mut depth = 0u64;
    let mut gave_up = 0u64;
    let report = |verdict, states: usize, transitions, depth, gave_up| Report {
        verdict,
        states: states as u64,
        transitions,
        depth,
        gave_up,
        elapsed: start.elapsed(),
    };
    let mut next: Vec<Part> = Vec::new();
    let check_limits = |states: usize, frontier: &[Part], next: &[Part]| {
        if states as u64 >= limits.states {
            Some(Limit::States)
        } else if memory_in_use(states, frontier, next) >= limits.memory {
            Some(Limit::Memory)
        } else if start.elapsed() >= limits.time {
            Some(Limit::Time)
        } else {
            None
        }
    };
    let mut parent = State::default();
    let mut batches: Vec<Batch> = Vec::new();
    while !frontier.is_empty() {
        // Expand the level in chunks, so that successors not yet
        // deduplicated never hold much memory, and limits are checked often.
        let per_state = frontier
            .first()
            .map_or(8, |p| p.get(0).len() * 8 + 12)
            .max(1);
        let chunk_len = (CHUNK_BYTES / (per_state * 32)).clamp(1, CHUNK);
        // Tasks of at most `BATCH` states of one part, in the frontier's
        // order; a chunk is a run of tasks, across parts (a part can be
        // small: the new states of one chunk of the level before).
        let tasks: Vec<(usize, usize, usize)> = frontier
            .iter()
            .enumerate()
            .flat_map(|(p, part)| {
                (0..part.len())
                    .step_by(BATCH)
                    .map(move |lo| (p, lo, (lo + BATCH).min(part.len())))
            })
            .collect();
        for group in tasks.chunks((chunk_len / BATCH).max(1)) {
            // Each task's successors go to a batch kept from chunk to
            // chunk, so their storage is allocated once per search.
            let ntasks = group.len();
            if batches.len() < ntasks {
                batches.resize_with(ntasks, Batch::default);
            }
            batches[..ntasks]
                .par_iter_mut()
                .zip(group.par_iter())
                .for_each_init(Scratch::default, |scr, (out, &(p, lo, hi))| {
                    out.words.clear();
                    out.succ.clear();
                    let part = &frontier[p];
                    for k in lo..hi {
                        expand(engine, &visited, part.get(k), k, scr, out);
                    }
                });
            let mut out = spare.pop().unwrap_or_default();
            // Room for every successor not known before the chunk, made at
            // once (growing a part by doubling copied megabytes).
            let (words, succs) = batches[..ntasks]
                .iter()
                .fold((0, 0), |(w, n), b| (w + b.words.len(), n + b.succ.len()));
            out.reserve(words, succs);
            nodes.reserve(succs);
            for (batch, &(p, _, _)) in batches[..ntasks].iter().zip(group) {
                let part = &frontier[p];
                for succ in &batch.succ {
                    transitions += 1;
                    let id = part.ids[succ.parent];
                    match &succ.what {
                        What::Hazard(h) if h.kind == crate::HazardKind::GaveUp => {
                            gave_up += 1;
                        }
                        What::Hazard(h) => {
                            State::decode_into(part.get(succ.parent), &mut parent);
                            let terminal =
                                engine.finished(&parent) || h.kind == crate::HazardKind::Deadlock;
                            let (trace, labels) =
                                rebuild(engine, &nodes, id, (!terminal).then_some(succ.step), h.va);
                            let mut hazard = h.clone();
                            hazard.detail = relabel(&hazard.detail, &labels);
                            if hazard.cpu > 0 {
                                hazard.cpu = labels[hazard.cpu - 1];
                            }
                            return report(
                                Verdict::Hazard { hazard, trace },
                                visited.len(),
                                transitions,
                                depth + 1,
                                gave_up,
                            );
                        }
                        What::Known => {}
                        &What::Next { fp, start, end } => {
                            if visited.insert(fp) {
                                nodes.push((id, succ.step));
                                out.push((nodes.len() - 1) as u32, &batch.words[start..end]);
                                if visited.len() as u64 >= limits.states {
                                    return report(
                                        Verdict::Incomplete {
                                            limit: Limit::States,
                                            advice: Limit::States.advice(limits),
                                        },
                                        visited.len(),
                                        transitions,
                                        depth,
                                        gave_up,
                                    );
                                }
                            }
                        }
                    }
                }
            }
            if out.len() > 0 {
                next.push(out);
            } else {
                spare.push(out);
            }
            if let Some(l) = check_limits(visited.len(), &frontier, &next) {
                return report(
                    Verdict::Incomplete {
                        limit: l,
                        advice: l.advice(limits),
                    },
                    visited.len(),
                    transitions,
                    depth,
                    gave_up,
                );
            }
        }
        depth += 1;
        for mut p in std::mem::replace(&mut frontier, std::mem::take(&mut next)) {
            p.clear();
            spare.push(p);
        }
    }
    report(Verdict::Safe, visited.len(), transitions, depth, gave_up)
}

/// States expanded at once, at most.
const CHUNK: usize = 1 << 15;
/// Bytes the successors of one chunk may take before deduplication
/// (assuming about 32 successors per state): small enough that the
/// batches, reused from chunk to chunk, stay in the cache.
const CHUNK_BYTES: usize = 32 << 20;

/// Appends to `out` the successors of the state encoded in `words` (index
/// `k` in its chunk): each encoded with its fingerprint, or known (in
/// `visited`, which the merge does not change while chunks expand), or a
/// hazard.
fn expand(
    engine: &Engine<'_>,
    visited: &FxHashSet<u128>,
    words: &[u64],
    k: usize,
    scr: &mut Scratch,
    out: &mut Batch,
) {
    State::decode_spans(words, &mut scr.state, &mut scr.spans);
    let s = &scr.state;
    engine.steps_memo(s, &mut scr.steps, &mut scr.memo);
    if scr.steps.is_empty() {
        let h = if engine.finished(s) {
            engine.check_final(s)
        } else {
            Some(deadlock(engine, s))
        };
        if let Some(h) = h {
            out.succ.push(Succ {
                parent: k,
                step: Step::Updater,
                what: What::Hazard(h),
            });
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
        let what = match engine.apply_into(s, &mut scr.next, st, &scr.memo) {
            Applied::Disabled => continue,
            Applied::Next(_) => {
                let start = out.words.len();
                scr.next.encode_reusing(&mut out.words, words, &scr.spans);
                let end = out.words.len();
                let fp = fingerprint(&out.words[start..end]);
                if visited.contains(&fp) {
                    // Visited before this chunk: the merge would drop it.
                    out.words.truncate(start);
                    What::Known
                } else {
                    What::Next { fp, start, end }
                }
            }
            Applied::Hazard(h) => What::Hazard(h),
        };
        out.succ.push(Succ {
            parent: k,
            step: st,
            what,
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

/// Estimates the memory this search holds: per visited state a 16-byte
/// fingerprint in a hash set (with its control byte and load-factor slack,
/// about 20 bytes) and a parent link; the frontier's arenas. (Not the
/// process's resident set: several searches may run at once.)
fn memory_in_use(visited: usize, frontier: &[Part], next: &[Part]) -> u64 {
    let link = std::mem::size_of::<(u32, Step)>() as u64;
    let held: u64 = frontier.iter().chain(next).map(Part::bytes).sum();
    (visited as u64) * (20 + link) + held
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
