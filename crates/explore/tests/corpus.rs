//! The verdict corpus: `tests/data/*.verdicts`, one configuration per line,
//! run by this one harness. Add a line, get a check.
//!
//! Format (whitespace-separated, `#` starts a comment):
//!
//! ```text
//! protocol  op(hvo|de-hvo)  bbm  workloads(a+b)  expected  [options]
//! ```
//!
//! `expected` is `safe`, or the hazard: `translation-fault`,
//! `permission-fault`, `access-flag-fault`, `tlb-conflict-abort`,
//! `lost-update`, `use-after-free`, `freed-table-walk`, `torn-read`, `double-free`,
//! `uninitialized`, `final-state`, `deadlock`. Options: `no-rcu` (remove
//! `synchronize_rcu()`), `no-hw-af`, `granule=16k`, `hugepagesz=32M`,
//! `cpus=N` (CPUs per workload), `together`.

use explore::{Direction, Limits, Prepared, Setup, Verdict, WorkloadKind};
use vmsa::{BbmLevel, Granule};

struct Case {
    at: String,
    setup: Setup,
    expected: String,
    no_rcu: bool,
    together: bool,
}

fn parse(file: &str, text: &str) -> Vec<Case> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("{file}:{}", n + 1);
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(
            f.len() >= 5,
            "{at}: expected `protocol op bbm workloads expected [options]`"
        );
        let protocol =
            mm::Protocol::by_name(f[0]).unwrap_or_else(|| panic!("{at}: protocol {}", f[0]));
        let direction = match f[1] {
            "hvo" => Direction::Hvo,
            "de-hvo" => Direction::Restore,
            d => panic!("{at}: op `{d}`, expected hvo or de-hvo"),
        };
        let bbm: BbmLevel = f[2].parse().unwrap_or_else(|e| panic!("{at}: {e}"));
        let workloads: Vec<WorkloadKind> = f[3]
            .split('+')
            .map(|w| w.parse().unwrap_or_else(|e| panic!("{at}: {e}")))
            .collect();
        let mut setup = Setup::standard(protocol, bbm);
        setup.direction = direction;
        setup.workloads = workloads;
        let (mut no_rcu, mut together) = (false, false);
        for opt in &f[5..] {
            match opt.split_once('=') {
                None if *opt == "no-rcu" => no_rcu = true,
                None if *opt == "together" => together = true,
                None if *opt == "no-hw-af" => setup.features.hw_af = false,
                Some(("granule", g)) => {
                    setup.granule = g.parse::<Granule>().unwrap_or_else(|e| panic!("{at}: {e}"))
                }
                Some(("hugepagesz", s)) => {
                    setup.huge_size =
                        vmsa::granule::parse_size(s).unwrap_or_else(|e| panic!("{at}: {e}"))
                }
                Some(("cpus", n)) => {
                    setup.copies = n.parse().unwrap_or_else(|e| panic!("{at}: {e}"))
                }
                _ => panic!("{at}: unknown option `{opt}`"),
            }
        }
        out.push(Case {
            at,
            setup,
            expected: f[4].to_string(),
            no_rcu,
            together,
        });
    }
    out
}

#[test]
fn every_verdict_in_the_corpus_holds() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/data")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "verdicts"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    let mut n = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for case in parse(&name, &text) {
            n += 1;
            let prep = Prepared::new(&case.setup).unwrap_or_else(|e| panic!("{}: {e}", case.at));
            let mut program = prep.program.clone();
            if case.no_rcu {
                program
                    .instrs
                    .retain(|i| !matches!(i, mm::Instr::SynchronizeRcu));
            }
            let row = explore::verify_program(&prep, &program, &Limits::default(), case.together)
                .unwrap_or_else(|e| panic!("{}: {e}", case.at));
            let found = match row.verdict().0 {
                Verdict::Safe => "safe".to_string(),
                Verdict::Hazard { hazard, .. } => hazard.kind.slug().to_string(),
                Verdict::Incomplete { advice, .. } => format!("incomplete ({advice})"),
            };
            if found != case.expected {
                failures.push(format!(
                    "{}: expected {}, found {found}",
                    case.at, case.expected
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(n >= 40, "only {n} cases");
}
