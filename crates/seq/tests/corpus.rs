//! Runs every `.seq` file under `tests/rules/` and checks that each case
//! reports exactly the rule clauses it expects.

use std::path::Path;

fn machine(p: &Path) -> seq::MachineFile {
    match seq::load(p) {
        Ok(seq::SeqFile::Machine(m)) => m,
        Ok(_) => panic!("{}: a kernel file among the rule cases", p.display()),
        Err(e) => panic!("{}", e.render()),
    }
}

#[test]
fn every_case_reports_what_it_expects() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/rules exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seq"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut compliant = 0;
    for f in &files {
        let seq = machine(f);
        let results = seq.run().unwrap_or_else(|e| panic!("{e}"));
        for r in results {
            cases += 1;
            if r.expect.is_empty() {
                compliant += 1;
            }
            if !r.passed() {
                failures.push(format!(
                    "{} case {} (bbm {}): expected {:?}, found {:?}\n    {}",
                    f.display(),
                    r.name,
                    r.bbm,
                    r.expect,
                    r.found(),
                    r.violations
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join("\n    ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every rule clause has a violating case, and there are compliant twins.
    assert!(compliant >= 10, "only {compliant} compliant cases");
}

#[test]
fn every_rule_has_a_violating_case() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules");
    let mut seen = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(&dir).expect("tests/rules exists") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|e| e == "seq") {
            for c in machine(&p).cases {
                seen.extend(c.expect);
            }
        }
    }
    for r in vmsa::Rule::ALL {
        assert!(seen.contains(&r.code()), "no case expects {}", r.code());
    }
}
