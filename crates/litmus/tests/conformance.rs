//! The conformance ratchet: runs herd7's conformance data
//! (`../shared/conformance` beside the repository, or `HVO_CONFORMANCE`) in both modes (SC and relaxed) and fails when an
//! agreement figure of either (verdicts, BBM warnings, final states, each
//! against herd7's) falls below the committed baseline
//! `tests/conformance.baseline`, when the relaxed mode over-allows on more
//! tests or the model disagreements (SC disagreements the relaxed mode
//! does not explain) grow in number, when a file no longer parses, or when
//! a BBM warning disagrees with herd7's. (Its speed is a
//! benchmark figure, `hvo conformance` prints the wall time; no test is
//! timed.)
//!
//! To raise the baseline after an improvement:
//! `cargo run --release -p hvo -- conformance --relaxed ../shared/conformance`
//! and copy the summary lines (up to `time`) into the baseline.

mod common;

use std::path::Path;

use litmus::exec::Options;
use litmus::harness::{conformance, summary_text};

#[test]
fn agreement_with_herd7_does_not_fall_below_the_baseline() {
    let root = common::conformance_root();
    assert!(
        root.is_dir(),
        "herd7's conformance data is expected at {} (../shared/conformance beside the repository, or set HVO_CONFORMANCE)",
        root.display()
    );
    let opts = Options {
        relaxed: true,
        ..Options::default()
    };
    let report = conformance(&root, &opts).expect("conformance data readable");
    let now = summary_text(&report.summary);
    println!("{now}");
    let base_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance.baseline");
    let base = std::fs::read_to_string(&base_path).expect("baseline");
    for key in [
        "ran",
        "verdict_vs_catalogue",
        "verdict_vs_herd7",
        "bbm_vs_herd7",
        "states_vs_herd7",
        "relaxed_ran",
        "relaxed_verdict_vs_catalogue",
        "relaxed_verdict_vs_herd7",
        "relaxed_bbm_vs_herd7",
        "relaxed_states_vs_herd7",
    ] {
        let (b, _) = common::figure(&base, key).expect("baseline figure");
        let (n, _) = common::figure(&now, key).expect("current figure");
        assert!(n >= b, "{key}: {n} is below the baseline {b}\n{now}");
    }
    // Figures that may only go down.
    let (b, _) = common::figure(&base, "relaxed_more_permissive").expect("baseline figure");
    let (n, _) = common::figure(&now, "relaxed_more_permissive").expect("current figure");
    assert!(
        n <= b,
        "relaxed mode over-allows on {n} tests, baseline {b}\n{now}"
    );
    let count = |t: &str, key: &str| t.lines().filter(|l| l.starts_with(key)).count();
    for key in ["model_disagreement ", "relaxed_states_differ "] {
        assert!(
            count(&now, key) <= count(&base, key),
            "{} lines `{key}`, baseline {}\n{now}",
            count(&now, key),
            count(&base, key)
        );
    }
    let rx = report.summary.relaxed.as_ref().expect("relaxed figures");
    // The states are compared on every test with herd7's output.
    let with_output = report
        .rows
        .iter()
        .filter(|r| r.reference.herd7_states.is_some())
        .count();
    assert_eq!(report.summary.states_vs_herd7.1, with_output, "{now}");
    assert_eq!(rx.states_vs_herd7.1, with_output, "{now}");
    // The one disagreement that needs a walk ahead of its access's turn
    // (the load's translation before its read) is labelled so.
    let class = |f: &str| {
        report
            .rows
            .iter()
            .find(|r| r.file.ends_with(f))
            .and_then(|r| r.verdict_class.clone())
    };
    assert_eq!(
        class("/F2.mod-MP-sync.litmus").as_deref(),
        Some("needs relaxed ordering of translations (early walks or dirty-bit updates)")
    );
    assert_eq!(
        class("/MP+dmb.sy+addr-store-pos-addr.litmus").as_deref(),
        Some("needs relaxed ordering of ordinary accesses")
    );
    assert_eq!(rx.bbm_vs_herd7.0, rx.bbm_vs_herd7.1, "relaxed BBM:\n{now}");
    assert_eq!(report.summary.errors, 0, "malformed files:\n{now}");
    // Every test that runs agrees with herd7 on the BBM warning.
    let (agree, compared) = report.summary.bbm_vs_herd7;
    assert_eq!(agree, compared, "BBM-warning disagreements:\n{now}");
}

#[test]
fn bbm_catalogue_matches_herd7_outputs() {
    let dir = common::conformance_root().join("herd7-bbm");
    assert!(
        dir.is_dir(),
        "herd7's BBM catalogue is expected at {} (../shared/conformance/herd7-bbm, or under HVO_CONFORMANCE)",
        dir.display()
    );
    let report = conformance(&dir, &Options::default()).expect("readable");
    assert_eq!(report.rows.len(), 8);
    for row in &report.rows {
        let litmus::harness::Ours::Ran { verdict, bbm, .. } = &row.ours else {
            panic!("{} did not run", row.file);
        };
        assert_eq!(Some(*verdict), row.herd7_verdict, "{}", row.file);
        assert_eq!(Some(*bbm), row.reference.herd7_bbm, "{}", row.file);
        // herd7's final states, exactly.
        let d = row.states.as_ref().expect("herd7's states");
        assert!(d.is_empty(), "{}: {d:?}", row.file);
    }
    assert_eq!(report.summary.states_vs_herd7, (8, 8));
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
