//! A task's states expanded: the successors of a batch of states and what
//! the merge found of them (`Batch`, `Succ`, `What`), a worker's storage
//! reused from state to state (`Scratch`), `expand` (every successor of a
//! state built in place, encoded and fingerprinted), a deadlock's hazard,
//! and `into_part` (a batch's new states copied into a part of the next
//! level, with their parent links).

use std::sync::atomic::{AtomicBool, AtomicUsize};

use crate::engine::{Applied, Engine, Memo, Step};
use crate::hazard::Hazard;
use crate::state::{Spans, State};
use crate::thread::Final;

use super::visited::{Part, Visited, fingerprint};

/// One successor of a batch's state `parent` (its index in the batch's
/// `from`).
pub(super) struct Succ {
    pub(super) parent: u32,
    pub(super) step: Step,
    pub(super) what: What,
}

pub(super) enum What {
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
pub(super) struct Batch {
    /// The encodings of the `Next` successors (this becomes a part of the
    /// next level if one of them is new).
    pub(super) words: Vec<u64>,
    pub(super) succ: Vec<Succ>,
    /// The states expanded: part and index in the frontier.
    pub(super) from: Vec<(u32, u32)>,
    /// The candidates (the `Next` successors) of each shard of the visited
    /// set, in order: fingerprint and index among the candidates.
    pub(super) fps: Vec<Vec<(u128, u32)>>,
    /// Whether each candidate is new: set by the merge's shard tasks.
    pub(super) new: Vec<AtomicBool>,
    /// How many candidates are new: added to by the merge's shard tasks.
    pub(super) fresh: AtomicUsize,
    /// Where the first hazard (other than a path given up) lies in `succ`.
    pub(super) hazard: Option<usize>,
    /// Paths given up in `succ`.
    pub(super) gave_up: u64,
    /// What the final states of threads expanded show.
    pub(super) finals: Vec<Final>,
    /// Some state expanded had herd7's BBM warning raised.
    pub(super) herd7_bbm: bool,
    /// The most candidates one state of the batch gave.
    pub(super) most: u32,
}

impl Batch {
    /// Empties the batch, for a visited set of `shards` shards.
    pub(super) fn clear(&mut self, shards: usize) {
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
    /// to [`memory_peak`](super::memory::memory_peak)'s slack, so that the estimate is the same on
    /// any number of threads).
    pub(super) fn bytes(&self) -> u64 {
        (self.words.len() * 8
            + self.succ.len() * std::mem::size_of::<Succ>()
            + self.from.len() * 8
            + self.new.len() * (std::mem::size_of::<(u128, u32)>() + 1)) as u64
    }
}

/// A worker's storage, reused from state to state.
#[derive(Default)]
pub(super) struct Scratch {
    state: State,
    /// Where the memory and each TLB of `state` lie in its encoding.
    spans: Spans,
    next: State,
    steps: Vec<Step>,
    memo: Memo,
}
/// Copies batch `b`'s new states into `part` (empty, its arena reused),
/// with their node ids from `id` on, and writes their parent links into
/// `links`.
pub(super) fn into_part(
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
/// Appends to `out` the successors of the state encoded in `words` (index
/// `k` in the batch): each encoded with its fingerprint, or known (in
/// `visited`, which the merge does not change while chunks expand), or a
/// hazard.
pub(super) fn expand(
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
