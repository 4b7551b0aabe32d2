//! Mutants: for every protocol that verifies compliant and safe, each
//! variant with one TLBI removed, one DSB removed, one free moved before its
//! flush, or one permission change merged into the address change must be
//! reported by the rule checker or the explorer under the standard
//! workloads. The mutants that are not (the step was not needed) are listed
//! in `tests/data/unreported.mutants`, each with the reason, and the test
//! checks the list is exact.

use explore::{Direction, Limits, Mutant, Prepared, Setup};
use mm::PROTOCOLS;
use vmsa::BbmLevel;

/// Returns the first FEAT_BBM level at which `setup` is compliant and safe.
fn safe_level(p: mm::Protocol, d: Direction) -> Option<(Setup, Prepared)> {
    for bbm in [BbmLevel::Level0, BbmLevel::Level2, BbmLevel::Level2NoAbort] {
        let mut s = Setup::standard(p, bbm);
        s.direction = d;
        let prep = Prepared::new(&s).expect("prepared");
        let row =
            explore::verify_program(&prep, &prep.program, &Limits::default(), false).expect("runs");
        if row.compliant() && row.safe() {
            return Some((s, prep));
        }
    }
    None
}

#[test]
fn every_step_of_a_safe_protocol_is_needed_or_listed() {
    let listed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/unreported.mutants"
    ))
    .expect("the list");
    let mut expected: Vec<String> = listed
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    expected.sort();
    let mut unreported = Vec::new();
    let mut checked = 0;
    for p in PROTOCOLS {
        for d in [Direction::Hvo, Direction::Restore] {
            let Some((setup, prep)) = safe_level(p, d) else {
                continue;
            };
            for m in Mutant::all(&prep.program) {
                let program = m.apply(&prep.program).expect("applies");
                checked += 1;
                let row = explore::verify_program(&prep, &program, &Limits::default(), false)
                    .expect("runs");
                if row.compliant() && row.safe() {
                    unreported.push(format!(
                        "{} {} {} {}: {}",
                        p.name,
                        d.name(),
                        setup.features.bbm,
                        m,
                        prep.program.instrs[match m {
                            Mutant::RemoveTlbi(i)
                            | Mutant::RemoveDsb(i)
                            | Mutant::FreeBeforeFlush(i)
                            | Mutant::MergePermission(i)
                            | Mutant::RemoveRcu(i) => i,
                        }]
                    ));
                }
            }
        }
    }
    unreported.sort();
    assert!(checked > 100, "only {checked} mutants");
    assert_eq!(
        unreported,
        expected,
        "mutants neither the checker nor the explorer reports (of {checked}):\n{}",
        unreported.join("\n")
    );
}
