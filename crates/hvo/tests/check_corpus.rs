//! The `hvo check` corpus, run by one harness: every file under
//! `tests/check/pass/` must check as expected (exit 0), every file under
//! `tests/check/reject/` states a wrong verdict and must be rejected (exit
//! 1), and every file under `tests/check/bad/` is bad input whose first
//! line, `# error: LINE:COL: MESSAGE`, is the error `hvo check` must give
//! (exit 2).

use std::path::{Path, PathBuf};
use std::process::Command;

fn files(dir: &str) -> Vec<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/check")
        .join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seq"))
        .collect();
    v.sort();
    v
}

fn check(args: &[&Path]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hvo"))
        .arg("check")
        .args(args)
        .output()
        .expect("hvo runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(f: &Path) -> (i32, Vec<serde_json::Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_hvo"))
        .args(["check", "--json"])
        .arg(f)
        .output()
        .expect("hvo runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code().unwrap_or(-1),
        v.as_array().expect("an array").clone(),
    )
}

#[test]
fn the_corpus_checks_as_it_states() {
    let pass = files("pass");
    let reject = files("reject");
    assert!(pass.len() + reject.len() >= 10, "the corpus is too small");
    let mut hazards = 0;
    for f in &pass {
        let (code, rows) = json(f);
        assert_eq!(code, 0, "{}: {rows:#?}", f.display());
        assert!(!rows.is_empty());
        for r in &rows {
            assert_eq!(r["matches_expectation"], true, "{}: {r:#?}", f.display());
        }
        // A file whose expected verdict is a hazard, and that finds it.
        if rows
            .iter()
            .all(|r| r["kind"] == "kernel" && r["safe"] == false)
        {
            hazards += 1;
        }
    }
    assert!(
        hazards >= 3,
        "only {hazards} files expect (and find) a hazard"
    );
    for f in &reject {
        let (code, rows) = json(f);
        assert_eq!(code, 1, "{} was not rejected", f.display());
        assert!(
            rows.iter().any(|r| r["matches_expectation"] == false),
            "{}",
            f.display()
        );
    }
    assert!(reject.len() >= 3);
    // All at once, as a user would: the table, and the exit code of the
    // worst file.
    let all: Vec<&Path> = pass.iter().map(PathBuf::as_path).collect();
    let (code, out, err) = check(&all);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("as expected, 0 not."), "{out}");
    assert!(out.contains("=>  translation fault on cpu1"), "{out}");
    let mut with_reject = all.clone();
    with_reject.push(&reject[0]);
    assert_eq!(check(&with_reject).0, 1);
}

#[test]
fn bad_files_give_the_error_they_state() {
    let bad = files("bad");
    assert!(bad.len() >= 3);
    for f in &bad {
        let text = std::fs::read_to_string(f).expect("readable");
        let want = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# error: "))
            .unwrap_or_else(|| panic!("{}: no `# error:` line", f.display()));
        let (code, out, err) = check(&[f]);
        assert_eq!(code, 2, "{}: {out}{err}", f.display());
        let located = format!("{}:{want}", f.display());
        assert!(
            err.contains(&located),
            "{}: expected\n{located}\nin\n{err}",
            f.display()
        );
        assert!(err.contains('^'), "{}: no underline\n{err}", f.display());
    }
}
