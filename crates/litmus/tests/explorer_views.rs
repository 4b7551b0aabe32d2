//! Per-CPU walker views of descriptor stores, and early walks, on the
//! explorer (`explore::engine::thread::views`): herd7's catalogue tests
//! and small tests of `tests/data`, run with `Model::Explorer`, give
//! herd7's verdict and final states.

mod common;

use std::path::Path;

use litmus::exec::{Model, Options};
use litmus::states::{diff, parse_expected};

fn explorer() -> Options {
    Options {
        model: Model::Explorer,
        ..Options::default()
    }
}

/// Runs catalogue test `name` on the explorer and checks herd7's
/// observation and final states (its `.litmus.expected` file).
fn agrees_with_herd7(name: &str) {
    let dir = common::conformance_root().join("herd7-vmsa/tests");
    let src = std::fs::read_to_string(dir.join(format!("{name}.litmus")))
        .unwrap_or_else(|e| panic!("{name}: {e} (conformance data under {})", dir.display()));
    let expected = std::fs::read_to_string(dir.join(format!("{name}.litmus.expected")))
        .unwrap_or_else(|e| panic!("{name}.expected: {e}"));
    let expected = parse_expected(&expected).expect("herd7's output reads");
    let t = litmus::parse(name, &src).expect("parses");
    let o = litmus::run(&t, &explorer()).expect("runs on the explorer");
    assert!(!o.limit_hit, "{name}: state limit");
    assert_eq!(
        Some(o.observation()),
        expected.observation.as_deref(),
        "{name}: observation"
    );
    let d = diff(&o.herd7_states(&t), &expected.states);
    assert!(d.is_empty(), "{name}: final states differ: {d:?}");
}

/// Runs `tests/data/NAME` on the explorer: its observation and the
/// number of final states satisfying the condition and not.
fn data(name: &str) -> (&'static str, (usize, usize)) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let src = std::fs::read_to_string(&path).expect("test data");
    let t = litmus::parse(name, &src).expect("parses");
    let o = litmus::run(&t, &explorer()).expect("runs on the explorer");
    (o.observation(), o.counts())
}

#[test]
fn a_walk_before_the_writers_dsb_may_miss_another_cpus_store() {
    // J2: P1's store faults on the invalid descriptor although P0's DSB
    // made P0's valid one visible before P0 read P1's earlier store: P1's
    // walk is not ordered after its earlier store (no context
    // synchronization), so it may have read the descriptor early.
    agrees_with_herd7("J2");
}

#[test]
fn a_control_dependency_does_not_order_a_fault_after_a_tlbi() {
    agrees_with_herd7("D15347-M-load-shoot+ctrl");
}

#[test]
fn the_writers_own_walk_after_its_dsb_sees_its_store() {
    agrees_with_herd7("D15347-store-DSB");
}

#[test]
fn a_dmb_st_publishes_a_descriptor_store_to_other_walkers() {
    agrees_with_herd7("D15347-R-DMBST+DSB-ISB");
}

#[test]
fn a_dmb_publishes_a_descriptor_store_to_other_cpus_walkers_only() {
    // P0 makes PTE(x) valid, then DMB ST and a flag; P1 reads the flag and
    // then x. Without the DMB P1's walker may miss the store; with it,
    // once the flag is read, it may not: Forbidden.
    assert_eq!(data("views-dmb-publish.litmus").0, "Never");
    // The same without the barrier: Allowed.
    assert_eq!(data("views-no-dmb.litmus").0, "Sometimes");
}

#[test]
fn an_isb_orders_later_walks_after_the_earlier_instructions() {
    // P1 reads P0's flag, set after P0's DSB made PTE(x) valid. Without
    // an ISB P1's walk may have been performed early, on the invalid
    // value: Allowed; with one, Forbidden.
    assert_eq!(data("views-early-walk.litmus").0, "Sometimes");
    assert_eq!(data("views-early-walk-isb.litmus").0, "Never");
}

#[test]
fn a_fault_from_a_value_a_tlbi_removed_lasts_until_a_barrier() {
    // FL: a control dependency does not order the fault after the read
    // (Allowed); FF: an address dependency does, FI: an acquire does, FC:
    // nothing lets an access use the removed value as a translation
    // (Forbidden).
    for name in ["FL", "FF", "FI", "FC"] {
        agrees_with_herd7(name);
    }
}

#[test]
fn the_issuers_own_early_walk_outlives_its_tlbi_until_an_isb() {
    agrees_with_herd7("VIS7+TLBI");
}

#[test]
fn a_tlbi_removes_the_values_other_walkers_saw_in_its_scope() {
    // Each was Allowed on the explorer while a store was invisible to
    // every walker until it propagated: herd7 forbids them.
    for name in [
        "S+dmb.st+dsb.st-tlbi-dsb-isb",
        "I2V-R-DSB.ISH-ISB-R+W",
        "TA1",
        "Artem3+TLBIx-TLBIy+dmb.sy+dmb.ld",
    ] {
        agrees_with_herd7(name);
    }
}
