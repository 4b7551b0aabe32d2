//! What the search does to save work gives the steps and successors the
//! plain transition relation gives: for the first states of each
//! configuration in `tests/data/memo.cases`, the steps listed with a memo
//! kept from state to state (walks and what the observability query's
//! walks reach, kept while the walkers' view of memory is unchanged) are
//! those listed with a new one; every step applied with the memo the
//! listing left (the walks, the fills a TLB lacks, normalization that
//! knows what the step touched) leads where the step applied afresh does
//! (walks made again, full normalization); and every step listed as a
//! repeat leads to the state (or the kind of hazard) an earlier step of
//! the same state leads to. The search's own path gives the same
//! successors too: the state decoded from its encoding, each step not a
//! repeat applied over a copy restored from it (`State::restore_from`:
//! only what the step before changed) and normalized knowing what the step
//! touched (`Engine::apply_into`), its encoding made reusing the parent's
//! for the TLBs the step left alone (`State::encode_reusing`), must equal
//! the plain successor's encoding. The updater's notes, made only for a
//! log, still reach it.

mod common;

use std::collections::{HashSet, VecDeque};

use explore::engine::{Applied, Engine, Memo, Outcome, Step};
use explore::state::{Spans, State};
use explore::{Prepared, Scenario, Setup, WorkloadKind};
use vmsa::BbmLevel;

/// States taken from each configuration, breadth first.
const STATES: usize = 4000;

fn parse(text: &str) -> Vec<(String, Setup)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("memo.cases:{}", n + 1);
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(
            f.len() >= 5,
            "{at}: expected `protocol op bbm workload cpus [options]`"
        );
        let mut setup = common::setup(&at, &f);
        for opt in &f[5..] {
            match *opt {
                "no-hw-af" => setup.features.hw_af = false,
                "hw-dbm" => setup.features.hw_dbm = true,
                _ => panic!("{at}: unknown option `{opt}`, expected no-hw-af or hw-dbm"),
            }
        }
        out.push((format!("{at} {line}"), setup));
    }
    out
}

/// What a step led to, comparably.
#[derive(Debug, PartialEq)]
enum Led {
    Next(Box<State>),
    Hazard(explore::HazardKind),
    Disabled,
}

fn led(o: Outcome) -> Led {
    match o {
        Outcome::Next(s) => Led::Next(Box::new(s)),
        Outcome::Hazard(h) => Led::Hazard(h.kind),
        Outcome::Disabled => Led::Disabled,
    }
}

/// Counts, for one configuration: steps compared, repeats checked.
fn check(at: &str, sc: &Scenario) -> (usize, usize) {
    let engine = Engine::new(sc);
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([engine.initial()]);
    let (mut memo, mut steps, mut plain) = (Memo::default(), Vec::<Step>::new(), Vec::new());
    let (mut compared, mut repeats) = (0, 0);
    // The search's path: the state as decoded from its encoding, the copy
    // its successors are built over.
    let (mut words, mut parent, mut spans, mut next) = (
        Vec::new(),
        State::default(),
        Spans::default(),
        State::default(),
    );
    let (mut reused, mut plain_enc) = (Vec::new(), Vec::new());
    while let Some(s) = queue.pop_front() {
        if seen.len() >= STATES || !seen.insert(s.clone()) {
            continue;
        }
        words.clear();
        s.encode(&mut words);
        State::decode_spans(&words, &mut parent, &mut spans);
        assert_eq!(parent, s, "{at}: decoded");
        engine.steps_memo(&s, &mut steps, &mut memo);
        // The steps listed with what the memo kept from the states before
        // (walks, what the observability query's walks reach) are those
        // listed from nothing.
        engine.steps(&s, &mut plain);
        assert_eq!(steps, plain, "{at}: the steps of {s:?}");
        let mut after = Vec::new();
        let mut first = true;
        next.clone_from(&parent);
        for (k, &st) in steps.iter().enumerate() {
            let with = led(engine.apply_memo(&s, st, &memo));
            let fresh = led(engine.apply(&s, st, None));
            assert_eq!(with, fresh, "{at}: step {st:?} of {s:?}");
            compared += 1;
            let repeat = memo.repeats().contains(&(k as u32));
            if !repeat {
                // As `search::expand` does.
                if !first {
                    next.restore_from(&parent);
                }
                first = false;
                assert_eq!(next, parent, "{at}: the copy restored before {st:?}");
                match engine.apply_into(&parent, &mut next, st, &memo) {
                    Applied::Next(_) => {
                        reused.clear();
                        next.encode_reusing(&mut reused, &words, &spans);
                        let Led::Next(n) = &fresh else {
                            panic!(
                                "{at}: step {st:?} of {s:?}: a successor on the search's path, {fresh:?} on the plain one"
                            )
                        };
                        plain_enc.clear();
                        n.encode(&mut plain_enc);
                        assert!(
                            reused == plain_enc,
                            "{at}: step {st:?} of {s:?}: the search's encoding of {next:?} is not the plain successor's {n:?}"
                        );
                    }
                    Applied::Hazard(h) => assert_eq!(
                        Led::Hazard(h.kind),
                        fresh,
                        "{at}: step {st:?} of {s:?} on the search's path"
                    ),
                    Applied::Disabled => assert_eq!(
                        Led::Disabled,
                        fresh,
                        "{at}: step {st:?} of {s:?} on the search's path"
                    ),
                }
            }
            if repeat {
                // (A hazard: the search stops at the earlier step's first.)
                assert!(
                    with != Led::Disabled && after.contains(&with),
                    "{at}: step {st:?}, listed as a repeat, leads to {with:?}, which no earlier step of {s:?} leads to"
                );
                repeats += 1;
            }
            if let Led::Next(n) = &with {
                queue.push_back((**n).clone());
            }
            after.push(with);
        }
    }
    (compared, repeats)
}

#[test]
fn the_memo_and_the_repeats_give_the_plain_successors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/memo.cases");
    let text = std::fs::read_to_string(path).expect("tests/data/memo.cases");
    let cases = parse(&text);
    assert!(!cases.is_empty());
    let (mut compared, mut repeats) = (0, 0);
    for (at, setup) in &cases {
        let prep = Prepared::new(setup).unwrap_or_else(|e| panic!("{at}: {e}"));
        let sc = Scenario::build(&prep, &prep.program).unwrap_or_else(|e| panic!("{at}: {e}"));
        let (c, r) = check(at, &sc);
        compared += c;
        repeats += r;
    }
    println!("{compared} steps compared, {repeats} repeats checked");
    // Enough of both for the check to mean something.
    assert!(compared > 50_000, "{compared} steps compared");
    assert!(repeats > 1_000, "{repeats} repeats checked");
}

/// Returns the texts the updater's steps log in the first `n` states of
/// `protocol` against `workload`, breadth first.
fn updater_texts(protocol: &str, workload: WorkloadKind, n: usize) -> Vec<String> {
    let mut setup = Setup::standard(
        mm::Protocol::by_name(protocol).expect("built in"),
        BbmLevel::Level0,
    );
    setup.workloads = vec![workload];
    let prep = Prepared::new(&setup).expect("prepares");
    let sc = Scenario::build(&prep, &prep.program).expect("builds");
    let engine = Engine::new(&sc);
    let (mut seen, mut texts) = (HashSet::new(), Vec::new());
    let mut queue = VecDeque::from([engine.initial()]);
    let mut steps = Vec::new();
    while let Some(s) = queue.pop_front() {
        if seen.len() >= n || !seen.insert(s.clone()) {
            continue;
        }
        engine.steps(&s, &mut steps);
        for &st in &steps {
            let mut text = String::new();
            let log = (st == Step::Updater).then_some(&mut text);
            if let Outcome::Next(next) = engine.apply(&s, st, log) {
                queue.push_back(next);
            }
            if !text.is_empty() {
                texts.push(text);
            }
        }
    }
    texts
}

/// The updater's notes (made only for a log) still reach the log: a wait
/// for a CPU in its read section, and a failed CAS's retry.
#[test]
fn the_log_notes_waits_and_retries() {
    let rcu = updater_texts("stop-machine", WorkloadKind::PfnWalker, 3000);
    assert!(
        rcu.iter()
            .any(|t| t.ends_with(" (waits for the CPUs in a read section)")),
        "{rcu:?}"
    );
    let cas = updater_texts("af-cas", WorkloadKind::Neighbour, 20_000);
    for note in [
        ", retry",
        " (retry 1: clear AF again)",
        " (retry: dsb ishst)",
        " (retry: dsb ish)",
    ] {
        assert!(cas.iter().any(|t| t.contains(note)), "{note}: {cas:?}");
    }
}
