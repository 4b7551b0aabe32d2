//! The counterexample: the path to a hazard replayed from the initial
//! state along the parent links (`rebuild`), with the real CPU numbers
//! (`relabel`), and the verdict of a hazard met (`hazard_verdict`).

use crate::engine::{Engine, Outcome, Step};
use crate::state::State;
use crate::trace;

use super::expand::{Batch, What};
use super::visited::Part;
use super::{TraceStep, Verdict};

/// Makes the verdict for the hazard batch `b` met at its successor `si`:
/// the counterexample replayed along the parent links, with the real CPU
/// numbers.
pub(super) fn hazard_verdict(
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
