//! The reductions preserve verdicts: each configuration here is explored
//! with every reduction and without those not needed for a finite search
//! (ample sets, eager propagation, dropping unused TLB entries, the publish
//! filter, symmetry), and both searches must agree.

mod common;

use explore::engine::Engine;
use explore::search::explore;
use explore::{Direction, Limits, Prepared, Scenario, Setup, Verdict, WorkloadKind};
use vmsa::BbmLevel;

fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Safe => "safe".into(),
        Verdict::Hazard { hazard, .. } => hazard.kind.slug().into(),
        Verdict::Incomplete { advice, .. } => panic!("incomplete: {advice}"),
    }
}

#[test]
fn reduced_and_unreduced_searches_agree() {
    use WorkloadKind::*;
    let cases: &[(&str, Direction, BbmLevel, WorkloadKind, usize, bool)] = &[
        (
            "linux-generic",
            Direction::Hvo,
            BbmLevel::Level0,
            Neighbour,
            1,
            false,
        ),
        ("bbm", Direction::Hvo, BbmLevel::Level0, Neighbour, 1, false),
        (
            "stop-machine",
            Direction::Hvo,
            BbmLevel::Level0,
            PfnWalker,
            1,
            false,
        ),
        (
            "stop-machine",
            Direction::Hvo,
            BbmLevel::Level0,
            PfnWalker,
            1,
            true,
        ),
        (
            "ro-first",
            Direction::Restore,
            BbmLevel::Level0,
            Neighbour,
            1,
            false,
        ),
        (
            "pause-cpus",
            Direction::Hvo,
            BbmLevel::Level0,
            HeadWriter,
            1,
            false,
        ),
        (
            "shared-tail",
            Direction::Hvo,
            BbmLevel::Level2NoAbort,
            Neighbour,
            2,
            false,
        ),
        (
            "ro-first",
            Direction::Hvo,
            BbmLevel::Level2NoAbort,
            Straddle,
            1,
            false,
        ),
        (
            "shared-tail",
            Direction::Hvo,
            BbmLevel::Level2NoAbort,
            Neighbour,
            1,
            false,
        ),
        (
            "af-cas",
            Direction::Hvo,
            BbmLevel::Level0,
            Neighbour,
            1,
            false,
        ),
    ];
    let mut report = Vec::new();
    for &(name, dir, bbm, w, copies, no_rcu) in cases {
        let mut setup = Setup::standard(mm::Protocol::by_name(name).unwrap(), bbm);
        setup.direction = dir;
        setup.workloads = vec![w];
        setup.copies = copies;
        let prep = Prepared::new(&setup).unwrap();
        let mut program = prep.program.clone();
        if no_rcu {
            program
                .instrs
                .retain(|i| !matches!(i, mm::Instr::SynchronizeRcu));
        }
        let sc = Scenario::build(&prep, &program).unwrap();
        let reduced = explore(&Engine::new(&sc), &Limits::default());
        let full = explore(&Engine::unreduced(&sc), &Limits::default());
        let (a, b) = (verdict(&reduced.verdict), verdict(&full.verdict));
        report.push(format!(
            "{name} {} {bbm} {w} x{copies}{}: reduced {a} ({} states), unreduced {b} ({} states)",
            dir.name(),
            if no_rcu { " no-rcu" } else { "" },
            reduced.states,
            full.states
        ));
        assert_eq!(a, b, "{}", report.join("\n"));
        if a == "safe" {
            assert!(reduced.states <= full.states, "{}", report.join("\n"));
        }
    }
    println!("{}", report.join("\n"));
}

/// The final-state invariants catch a program that leaks: without its free,
/// stop-machine's HVO leaves the old vmemmap pages neither mapped nor freed.
#[test]
fn a_program_without_its_free_leaks() {
    let setup = Setup::standard(
        mm::Protocol::by_name("stop-machine").unwrap(),
        BbmLevel::Level0,
    );
    let mut setup = setup;
    setup.workloads = vec![WorkloadKind::Neighbour];
    let prep = Prepared::new(&setup).unwrap();
    let mut program = prep.program.clone();
    program
        .instrs
        .retain(|i| !matches!(i, mm::Instr::Free { .. }));
    let sc = Scenario::build(&prep, &program).unwrap();
    let r = explore(&Engine::new(&sc), &Limits::default());
    let Verdict::Hazard { hazard, .. } = r.verdict else {
        panic!("no hazard: {:?}", r.verdict);
    };
    assert_eq!(hazard.kind, explore::HazardKind::FinalState);
    assert!(hazard.detail.contains("a leak"), "{}", hazard.detail);
}

/// The unreduced search, the reference above, skips no step the reductions
/// alone would justify: its state and transition counts are those of the
/// explorer before any step was skipped as a repeat
/// (`tests/data/unreduced.counts`).
#[test]
fn the_unreduced_search_explores_every_state() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/unreduced.counts");
    let text = std::fs::read_to_string(path).expect("tests/data/unreduced.counts");
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("unreduced.counts:{}", i + 1);
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            f.len(),
            7,
            "{at}: expected `protocol op bbm workload cpus states transitions`"
        );
        let num = |s: &str| -> u64 { s.parse().unwrap_or_else(|e| panic!("{at}: `{s}`: {e}")) };
        let setup = common::setup(&at, &f);
        let prep = Prepared::new(&setup).unwrap_or_else(|e| panic!("{at}: {e}"));
        let sc = Scenario::build(&prep, &prep.program).unwrap_or_else(|e| panic!("{at}: {e}"));
        let r = explore(&Engine::unreduced(&sc), &Limits::default());
        assert_eq!(
            (r.states, r.transitions),
            (num(f[5]), num(f[6])),
            "{at}: {line}: (states, transitions)"
        );
        n += 1;
    }
    assert!(n > 0, "no cases in {path}");
}
