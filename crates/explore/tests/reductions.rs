//! The reductions preserve verdicts: each configuration here is explored
//! with every reduction and without those not needed for a finite search
//! (ample sets, eager propagation, dropping unused TLB entries, the publish
//! filter, symmetry), and both searches must agree.

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
