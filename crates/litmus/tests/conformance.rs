//! The conformance ratchet: runs `../shared/conformance` (relative to the
//! repository root) and fails when an agreement figure falls below the
//! committed baseline `tests/conformance.baseline`, when a file no longer
//! parses, or when the whole set takes 30 s or more.
//!
//! To raise the baseline after an improvement:
//! `cargo run --release -p hvo -- conformance ../shared/conformance` and copy
//! the summary lines (up to `time`) into the baseline.

use std::path::Path;

use litmus::exec::Options;
use litmus::harness::{conformance, summary_text};

fn figure(text: &str, key: &str) -> Option<(usize, usize)> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let n = f.get(1)?.parse().ok()?;
    let m = if f.get(2) == Some(&"/") {
        f.get(3)?.parse().ok()?
    } else {
        n
    };
    Some((n, m))
}

#[test]
fn agreement_with_herd7_does_not_fall_below_the_baseline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance");
    if !root.is_dir() {
        eprintln!("skipped: {} not found", root.display());
        return;
    }
    let start = std::time::Instant::now();
    let report = conformance(&root, &Options::default()).expect("conformance data readable");
    let wall = start.elapsed().as_secs_f64();
    let now = summary_text(&report.summary);
    println!("{now}");
    println!("wall {wall:.2}s");
    let base_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance.baseline");
    let base = std::fs::read_to_string(&base_path).expect("baseline");
    for key in [
        "ran",
        "verdict_vs_catalogue",
        "verdict_vs_herd7",
        "bbm_vs_herd7",
    ] {
        let (b, _) = figure(&base, key).expect("baseline figure");
        let (n, _) = figure(&now, key).expect("current figure");
        assert!(n >= b, "{key}: {n} is below the baseline {b}\n{now}");
    }
    assert_eq!(report.summary.errors, 0, "malformed files:\n{now}");
    // Every test that runs agrees with herd7 on the BBM warning.
    let (agree, compared) = report.summary.bbm_vs_herd7;
    assert_eq!(agree, compared, "BBM-warning disagreements:\n{now}");
    if !cfg!(debug_assertions) {
        assert!(wall < 30.0, "the shared set took {wall:.1}s");
    }
}

#[test]
fn bbm_catalogue_matches_herd7_outputs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/herd7-bbm");
    if !dir.is_dir() {
        eprintln!("skipped: {} not found", dir.display());
        return;
    }
    let report = conformance(&dir, &Options::default()).expect("readable");
    assert_eq!(report.rows.len(), 8);
    for row in &report.rows {
        let litmus::harness::Ours::Ran { verdict, bbm, .. } = &row.ours else {
            panic!("{} did not run", row.file);
        };
        assert_eq!(Some(*verdict), row.herd7_verdict, "{}", row.file);
        assert_eq!(Some(*bbm), row.reference.herd7_bbm, "{}", row.file);
    }
    // The exemption: read-only, identical contents.
    let get = |n: &str| {
        report
            .rows
            .iter()
            .find(|r| r.file == n)
            .map(|r| r.reference.herd7_bbm)
    };
    assert_eq!(get("CoRR+PteOA.DB0.val.litmus"), Some(Some(false)));
    assert_eq!(get("CoRR+PteOA.DB1.val.litmus"), Some(Some(true)));
}
