//! herd7's `Warning-BBM-expected` on the explorer (`Model::Explorer`):
//! the threads keep `vmsa::herd_bbm::TtdBbm` per level-3 descriptor
//! (`explore`'s `engine/thread/bbm.rs`), as the litmus executor does, and
//! the search reports whether any state explored raised it.

mod common;

use std::path::Path;

use litmus::exec::{Model, Options, Outcome, run};
use litmus::states::{diff, parse_expected};

fn explorer() -> Options {
    Options {
        model: Model::Explorer,
        ..Options::default()
    }
}

fn load(path: &Path) -> litmus::Test {
    let src = std::fs::read_to_string(path).expect("test file");
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    litmus::parse(name, &src).expect("parses")
}

/// Runs a file of `tests/data` on the explorer and on the litmus
/// executor; returns the explorer's warning after checking that the two
/// agree.
fn warns(name: &str) -> bool {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let t = load(&path);
    let ours = run(&t, &explorer()).expect("runs on the explorer");
    let old = run(&t, &Options::default()).expect("runs on the executor");
    assert_eq!(
        ours.bbm_warning, old.bbm_warning,
        "{name}: the explorer and the executor disagree on the warning"
    );
    ours.bbm_warning
}

/// Runs catalogue test `name` on the explorer; checks herd7's final
/// states, observation and BBM flag from its `.litmus.expected` file;
/// returns the outcome.
fn catalogue(name: &str) -> Outcome {
    let dir = common::conformance_root().join("herd7-vmsa/tests");
    let path = dir.join(name);
    let t = load(&path);
    let text = std::fs::read_to_string(dir.join(format!("{name}.expected"))).expect("expected");
    let e = parse_expected(&text).expect("herd7 output");
    let o = run(&t, &explorer()).expect("runs on the explorer");
    let d = diff(&o.herd7_states(&t), &e.states);
    assert!(
        d.is_empty(),
        "{name}: final states differ from herd7's: {d:?}"
    );
    assert_eq!(Some(o.observation()), e.observation.as_deref(), "{name}");
    assert_eq!(o.bbm_warning, e.bbm(), "{name}: herd7's BBM flag");
    o
}

#[test]
fn every_pair_of_cacheable_values_is_compared_not_only_successive_ones() {
    // herd7 7.58+1 raises the warning on both (docs/bbm-herd7.md): `ca`
    // is transitive, and a completed TLBI after a cacheable value is no
    // break (`aarch64.cat` `BBM` needs an uncacheable value).
    assert!(warns("ro-first.litmus"));
    assert!(warns("de-hvo.litmus"));
}

#[test]
fn a_break_needs_an_invalid_value_ordered_before_the_tlbi_by_a_dsb() {
    // `aarch64hwreqs.cat` `DSB-ob`: the invalid store reaches the TLBI
    // through DSB ISH or DSB ISHST, not DSB LD.
    assert!(!warns("remap-bbm.litmus"));
    assert!(!warns("remap-bbm-dsb-st.litmus"));
    assert!(warns("remap-bbm-no-dsb.litmus"));
    assert!(warns("remap-bbm-dsb-ld.litmus"));
    assert!(warns("remap-no-bbm.litmus"));
}

#[test]
fn a_hardware_update_of_af_is_a_write_of_the_descriptor() {
    // An AF-clear value at a new output address (uncacheable: no pair),
    // then the hardware sets AF for the thread's access: a cacheable,
    // writable value at another output address than the initial one,
    // with no TLBI between them.
    assert!(warns("remap-af0-hu.litmus"));
}

#[test]
fn catalogue_tests_that_herd7_flags() {
    // The output address changes without an invalid value between the
    // two (herd7 7.58+1: Flag Warning-BBM-expected).
    for name in [
        "MP+shoot+dsb.litmus",
        "STR-TLBI.litmus",
        "LDRx-ctrl-TLBI-STRptex-RO.litmus",
        "MPV2I2V-no-bbm.litmus",
    ] {
        assert!(catalogue(name).bbm_warning, "{name}");
    }
}

#[test]
fn catalogue_tests_with_a_break_that_herd7_does_not_flag() {
    // Invalid value, DSB ISH, TLBI, DSB ISH, new value: `BBM` holds.
    for name in [
        "MP+bbm+dmbld.litmus",
        "MP+BBM+DSB-ISB+BIS.litmus",
        "MP+DSB-TLBI-DSB+DMBLD.litmus",
    ] {
        assert!(!catalogue(name).bbm_warning, "{name}");
    }
}
