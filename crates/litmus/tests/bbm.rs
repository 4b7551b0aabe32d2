//! herd7's `Warning-BBM-expected` on the test files of `tests/data`: the
//! executor's flag is `vmsa::herd_bbm::TtdBbm`'s rule (`aarch64bbm.cat`
//! `TTD-update-needsBBM` less `aarch64.cat` `BBM`), in both modes.

use std::path::Path;

use litmus::exec::Options;

/// Whether the executor raises the warning on `name`, in SC and in relaxed
/// mode (the two must agree).
fn warns(name: &str) -> bool {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let src = std::fs::read_to_string(&path).expect("test data");
    let t = litmus::parse(name, &src).expect("parses");
    let [sc, relaxed] = [false, true].map(|relaxed| {
        let opts = Options {
            relaxed,
            ..Options::default()
        };
        litmus::run(&t, &opts).expect("runs").bbm_warning
    });
    assert_eq!(sc, relaxed, "{name}: SC and relaxed modes disagree");
    sc
}

#[test]
fn every_pair_of_cacheable_values_is_compared_not_only_successive_ones() {
    // herd7 7.58+1 raises Warning-BBM-expected on both (run by the team on
    // docs/litmus/): `ca` is transitive, so the initial value is paired
    // with the last one although each step alone needs no break (a
    // permission change, then an address change between read-only pages
    // of equal contents), and the completed TLBIs between them are no
    // break (no uncacheable value).
    assert!(warns("ro-first.litmus"));
    assert!(warns("de-hvo.litmus"));
}

#[test]
fn the_invalid_value_must_be_ordered_before_the_tlbi_by_a_dsb_that_orders_stores() {
    // aarch64hwreqs.cat DSB-ob: [Exp & W]; po; [dsb.full | dsb.st]; po;
    // [TLBI]. Without it, or with DSB LD, `BBM` does not hold.
    assert!(!warns("remap-bbm.litmus"));
    assert!(!warns("remap-bbm-dsb-st.litmus"));
    assert!(warns("remap-bbm-no-dsb.litmus"));
    assert!(warns("remap-bbm-dsb-ld.litmus"));
}
