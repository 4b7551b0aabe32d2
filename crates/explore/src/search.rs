//! Breadth-first search over the reduced state graph, level by level, in
//! parallel, with fingerprints for the visited set.
//!
//! Determinism: each level's successors are generated in parallel but
//! collected in the frontier's order, and inserted into the visited set
//! in that order, so the same scenario gives the same states, the same
//! counts and the same (shortest) counterexample on any number of
//! threads.
//!
//! Fingerprints are 128 bits (two independent 64-bit hashes of the state),
//! as TLC and SPIN's hash compaction store fingerprints instead of states:
//! two distinct states of one run collide with probability about
//! n^2 / 2^129, negligible at the sizes run here.

use std::hash::Hash;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::engine::{Engine, Memo, Outcome, Step};
use crate::hazard::Hazard;
use crate::state::State;
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

fn fingerprint(s: &State) -> u128 {
    let mut h = Fingerprint::default();
    s.hash(&mut h);
    h.finish128()
}

/// A 128-bit fingerprint in one pass: two multiply-rotate lanes (FxHash's
/// step with different constants), mixed at the end (the MurmurHash3
/// finalizer).
#[derive(Default)]
struct Fingerprint {
    a: u64,
    b: u64,
}

impl Fingerprint {
    const K1: u64 = 0xf135_7aea_2e62_a9c5;
    const K2: u64 = 0x9e37_79b9_7f4a_7c15;

    fn add(&mut self, x: u64) {
        self.a = (self.a.rotate_left(26) ^ x).wrapping_mul(Self::K1);
        self.b = (self.b.rotate_left(23) ^ x)
            .wrapping_mul(Self::K2)
            .wrapping_add(1);
    }

    fn mix(mut x: u64) -> u64 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }

    fn finish128(&self) -> u128 {
        (u128::from(Self::mix(self.a)) << 64)
            | u128::from(Self::mix(self.b ^ self.a.rotate_left(32)))
    }
}

impl std::hash::Hasher for Fingerprint {
    fn finish(&self) -> u64 {
        Self::mix(self.a)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// Successors of one state: each step with its outcome's fingerprint.
type Expanded = Vec<(Step, Outcome, u128)>;

/// Explores every state reachable in `engine`'s scenario.
pub fn explore(engine: &Engine<'_>, limits: &Limits) -> Report {
    let start = Instant::now();
    let init = engine.initial();
    let mut visited: FxHashSet<u128> = FxHashSet::default();
    visited.insert(fingerprint(&init));
    // Parent links: node id -> (parent id, step).
    let mut nodes: Vec<(u32, Step)> = vec![(u32::MAX, Step::Updater)];
    // A level is kept as a list of parts, one per expanded chunk, so that
    // it never grows by reallocating (and copying) one huge vector.
    let mut frontier: Vec<Vec<(u32, State)>> = vec![vec![(0, init.clone())]];
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
    let mut next: Vec<Vec<(u32, State)>> = Vec::new();
    let check_limits =
        |states: usize, frontier: &[Vec<(u32, State)>], next: &[Vec<(u32, State)>]| {
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
    while !frontier.is_empty() {
        // Expand the level in chunks, so that successors not yet
        // deduplicated never hold much memory, and limits are checked often.
        let per_state = frontier
            .iter()
            .flatten()
            .next()
            .map_or(1, |(_, s)| s.approx_bytes().max(1));
        let chunk_len = (CHUNK_BYTES / (per_state * 32)).clamp(1, CHUNK);
        for chunk in frontier.iter().flat_map(|part| part.chunks(chunk_len)) {
            let expanded: Vec<Expanded> =
                chunk.par_iter().map(|(_, s)| expand(engine, s)).collect();
            let mut part = Vec::with_capacity(expanded.iter().map(Vec::len).sum());
            for ((id, s), succ) in chunk.iter().zip(expanded) {
                for (step, outcome, fp) in succ {
                    transitions += 1;
                    match outcome {
                        Outcome::Hazard(h) if h.kind == crate::HazardKind::GaveUp => gave_up += 1,
                        Outcome::Hazard(h) => {
                            let terminal =
                                engine.finished(s) || h.kind == crate::HazardKind::Deadlock;
                            let (trace, labels) =
                                rebuild(engine, &nodes, *id, (!terminal).then_some(step), h.va);
                            let mut hazard = h;
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
                        Outcome::Next(n) => {
                            if visited.insert(fp) {
                                nodes.push((*id, step));
                                part.push(((nodes.len() - 1) as u32, n));
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
                        Outcome::Disabled => {}
                    }
                }
            }
            part.shrink_to_fit();
            next.push(part);
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
        next.retain(|p| !p.is_empty());
        frontier = std::mem::take(&mut next);
    }
    report(Verdict::Safe, visited.len(), transitions, depth, gave_up)
}

/// States expanded at once, at most.
const CHUNK: usize = 1 << 15;
/// Bytes the successors of one chunk may take before deduplication
/// (assuming about 32 successors per state).
const CHUNK_BYTES: usize = 256 << 20;

fn expand(engine: &Engine<'_>, s: &State) -> Expanded {
    let mut steps = Vec::new();
    let mut memo = Memo::default();
    engine.steps_memo(s, &mut steps, &mut memo);
    if steps.is_empty() {
        let out = if engine.finished(s) {
            engine.check_final(s)
        } else {
            Some(deadlock(engine, s))
        };
        return out
            .map(|h| vec![(Step::Updater, Outcome::Hazard(h), 0)])
            .unwrap_or_default();
    }
    steps
        .into_iter()
        .filter_map(|st| match engine.apply_memo(s, st, &memo) {
            Outcome::Disabled => None,
            Outcome::Next(n) => {
                let fp = fingerprint(&n);
                Some((st, Outcome::Next(n), fp))
            }
            h => Some((st, h, 0)),
        })
        .collect()
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
/// about 20 bytes) and a parent link; per frontier state its own size,
/// estimated from a sample. (Not the process's resident set: several
/// searches may run at once.)
fn memory_in_use(
    visited: usize,
    frontier: &[Vec<(u32, State)>],
    next: &[Vec<(u32, State)>],
) -> u64 {
    let link = std::mem::size_of::<(u32, Step)>() as u64;
    let mut all = frontier.iter().chain(next).flatten();
    let per_state = all.next().map_or(0, |(_, s)| s.approx_bytes() as u64);
    let held: usize = frontier.iter().chain(next).map(Vec::len).sum();
    (visited as u64) * (20 + link) + (held as u64) * per_state
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
        match outcome {
            Outcome::Next(n) => {
                s = n;
                labels = perm.iter().map(|&i| labels[i]).collect();
                let state = trace::snapshot(engine, &s, &vas, &labels);
                out.push(TraceStep {
                    cpu,
                    text,
                    kind,
                    state,
                    hazard: false,
                });
            }
            outcome => {
                let state = trace::snapshot(engine, &s, &vas, &labels);
                out.push(TraceStep {
                    cpu,
                    text,
                    kind,
                    state,
                    hazard: matches!(outcome, Outcome::Hazard(_)),
                });
                break;
            }
        }
    }
    (out, labels)
}
