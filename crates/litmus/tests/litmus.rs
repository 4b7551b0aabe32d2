//! Verdicts, BBM warnings and errors on the test files of `tests/data`.

use std::path::Path;

use litmus::LitmusError;
use litmus::exec::{Options, Outcome};

fn run(name: &str) -> (litmus::Test, Outcome) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let src = std::fs::read_to_string(&path).expect("test data");
    let t = litmus::parse(name, &src).expect("parses");
    let o = litmus::run(&t, &Options::default()).expect("runs");
    (t, o)
}

fn parse_err(name: &str) -> LitmusError {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let src = std::fs::read_to_string(&path).expect("test data");
    litmus::parse(name, &src).expect_err("must not parse")
}

#[test]
fn store_buffering_is_forbidden_on_the_sc_executor() {
    let (t, o) = run("SB.litmus");
    assert_eq!(o.observation(), "Never");
    assert!(!o.ok(t.quant));
    assert_eq!(o.counts(), (0, 3));
    assert!(!o.bbm_warning);
}

#[test]
fn remap_without_bbm_warns_and_shows_the_stale_read() {
    let (t, o) = run("remap-no-bbm.litmus");
    assert!(o.bbm_warning);
    // New mapping then old one: a stale TLB entry.
    assert_eq!(o.observation(), "Sometimes");
    assert!(o.ok(t.quant));
}

#[test]
fn remap_with_bbm_does_not_warn_and_forbids_the_stale_read() {
    let (t, o) = run("remap-bbm.litmus");
    assert!(!o.bbm_warning);
    assert_eq!(o.observation(), "Never");
    assert!(!o.ok(t.quant));
}

#[test]
fn hardware_af_sets_the_flag_instead_of_faulting() {
    let (t, o) = run("ha-af.litmus");
    assert_eq!(o.observation(), "Always");
    assert_eq!(o.verdict(t.quant), litmus::Verdict::Required);
}

#[test]
fn access_flag_fault_stops_the_thread() {
    let (t, o) = run("no-ha-af.litmus");
    assert_eq!(o.observation(), "Always");
    assert!(o.ok(t.quant));
    assert_eq!(o.finals.len(), 1);
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let e = parse_err("bad-operand.litmus");
    match &e {
        LitmusError::Syntax {
            file,
            line,
            col,
            msg,
        } => {
            assert_eq!(file, "bad-operand.litmus");
            assert_eq!((*line, *col), (6, 9));
            assert!(msg.contains("expected `[`"), "{msg}");
        }
        other => panic!("expected a syntax error, got {other}"),
    }
    assert!(e.to_string().starts_with("bad-operand.litmus:6:9: "));
}

#[test]
fn unsupported_constructs_are_named() {
    let e = parse_err("unsupported.litmus");
    match e {
        LitmusError::Unsupported { line, what, .. } => {
            assert_eq!(line, 7);
            assert_eq!(what, "instruction DC");
        }
        other => panic!("expected unsupported, got {other}"),
    }
}

fn run_relaxed(name: &str) -> (Outcome, Outcome) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let src = std::fs::read_to_string(&path).expect("test data");
    let t = litmus::parse(name, &src).expect("parses");
    let sc = litmus::run(&t, &Options::default()).expect("runs");
    let rx = Options {
        relaxed: true,
        ..Options::default()
    };
    (sc, litmus::run(&t, &rx).expect("runs"))
}

#[test]
fn relaxed_mode_allows_store_buffering_and_message_passing_without_barriers() {
    for name in ["SB.litmus", "MP.litmus"] {
        let (sc, rx) = run_relaxed(name);
        assert_eq!(sc.observation(), "Never", "{name} SC");
        assert_eq!(rx.observation(), "Sometimes", "{name} relaxed");
        // Every SC final state is a relaxed one too.
        for k in sc.finals.keys() {
            assert!(rx.finals.contains_key(k), "{name}: {k:?}");
        }
    }
}

#[test]
fn relaxed_mode_respects_dmb_st_and_address_dependencies() {
    let (sc, rx) = run_relaxed("MP+dmb.st+addr.litmus");
    assert_eq!(sc.observation(), "Never");
    assert_eq!(rx.observation(), "Never");
    assert_eq!(rx.counts(), (0, 3));
}

#[test]
fn relaxed_mode_forwards_a_threads_own_store() {
    let (sc, rx) = run_relaxed("SB+fwd.litmus");
    assert_eq!(sc.observation(), "Never");
    assert_eq!(rx.observation(), "Sometimes");
}

#[test]
fn relaxed_mode_takes_a_fault_before_the_data_of_its_store() {
    let (sc, rx) = run_relaxed("MP+rel+data-fault.litmus");
    assert_eq!(sc.observation(), "Never");
    assert_eq!(rx.observation(), "Sometimes");
}

#[test]
fn a_pointer_loaded_from_memory_may_hit_a_tlb_entry_refilled_after_the_tlbi() {
    let (sc, rx) = run_relaxed("tlbi-then-pointer.litmus");
    assert_eq!(sc.observation(), "Sometimes");
    assert_eq!(sc.counts(), (1, 2));
    assert_eq!(rx.observation(), "Sometimes");
}

#[test]
fn relaxed_mode_translates_a_load_before_a_later_store_and_reads_after_it() {
    let (sc, rx) = run_relaxed("LB+pte.litmus");
    assert_eq!(sc.observation(), "Never");
    assert_eq!(rx.observation(), "Sometimes");
    assert_eq!(rx.counts(), (1, 3));
}

#[test]
fn without_early_translations_neither_mode_goes_ahead_with_a_walk() {
    // The harness's check for "needs relaxed ordering of translations":
    // the load's translation ahead of its read (relaxed mode) and the
    // early dirty-bit update (both modes) are what allow these outcomes.
    let off = |relaxed| Options {
        relaxed,
        early_translations: false,
        ..Options::default()
    };
    for (name, relaxed) in [
        ("LB+pte.litmus", true),
        ("MP+dmb.sy+data-hu.litmus", false),
        ("remap-tlbi-hu.litmus", false),
        ("remap-tlbi-hu.litmus", true),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name);
        let src = std::fs::read_to_string(&path).expect("test data");
        let t = litmus::parse(name, &src).expect("parses");
        let o = litmus::run(&t, &off(relaxed)).expect("runs");
        assert_eq!(o.observation(), "Never", "{name} relaxed={relaxed}");
    }
}

#[test]
fn relaxed_mode_performs_a_tlbi_before_an_earlier_store_without_a_dsb() {
    let (sc, rx) = run_relaxed("S+dmb.st+tlbi-dsb-isb.litmus");
    assert_eq!(sc.observation(), "Never");
    assert_eq!(rx.observation(), "Sometimes");
}

#[test]
fn dirty_bit_update_goes_before_the_data_of_its_store_and_past_a_dsb() {
    for name in ["MP+dmb.sy+data-hu.litmus", "LB+dmb.sy+dsb-hu.litmus"] {
        let (sc, rx) = run_relaxed(name);
        assert_eq!(sc.observation(), "Sometimes", "{name} SC");
        assert_eq!(sc.counts(), (1, 3), "{name} SC");
        assert_eq!(rx.observation(), "Sometimes", "{name} relaxed");
    }
}

#[test]
fn dirty_bit_update_waits_for_its_address() {
    let (sc, rx) = run_relaxed("MP+dmb.sy+addr-hu.litmus");
    assert_eq!(sc.counts(), (0, 3));
    assert_eq!(rx.counts(), (0, 3));
}

#[test]
fn dirty_bit_update_goes_before_the_threads_own_tlbi_but_not_an_isb() {
    // The store may use the old mapping, its update placed before the
    // thread's own remap in coherence; an ISB after the DSB forbids it.
    let (sc, rx) = run_relaxed("remap-tlbi-hu.litmus");
    assert_eq!(sc.counts(), (1, 1));
    assert_eq!(rx.counts(), (1, 1));
    let (sc, rx) = run_relaxed("remap-tlbi-isb-hu.litmus");
    assert_eq!(sc.counts(), (0, 1));
    assert_eq!(rx.counts(), (0, 1));
}

#[test]
fn no_early_dirty_bit_update_for_a_store_after_a_fatal_fault() {
    let (sc, rx) = run_relaxed("fault-then-hu.litmus");
    assert_eq!(sc.counts(), (0, 1));
    assert_eq!(rx.counts(), (0, 1));
}

#[test]
fn a_handler_may_return_before_the_fault_commits_once_the_walk_is_done() {
    // The fault is ordered after the DMB ST, the load after the ERET only
    // after the faulting walk.
    let (sc, rx) = run_relaxed("MP+rel+dmb.st-fault-eret.litmus");
    assert_eq!(sc.counts(), (0, 3));
    assert_eq!(rx.counts(), (1, 3));
    // A DMB SY orders the store before the load directly.
    let (sc, rx) = run_relaxed("MP+rel+dmb.sy-fault-eret.litmus");
    assert_eq!(sc.counts(), (0, 3));
    assert_eq!(rx.counts(), (0, 3));
}

#[test]
fn a_loop_on_memory_is_unrolled_as_herd7_does() {
    let (sc, rx) = run_relaxed("spin-counter.litmus");
    for o in [&sc, &rx] {
        // One pass and at most UNROLL jumps back.
        assert_eq!(o.counts(), (0, 3));
        assert!(o.unroll_cut);
        assert!(!o.limit_hit);
    }
    assert_eq!(litmus::exec::UNROLL, 2);
}

#[test]
fn a_loop_on_a_register_counter_is_not_bounded() {
    let (sc, rx) = run_relaxed("register-loop.litmus");
    for o in [&sc, &rx] {
        assert_eq!(o.counts(), (1, 0));
        assert!(!o.unroll_cut);
    }
}

#[test]
fn relaxed_mode_lets_a_load_pass_one_whose_address_is_not_known() {
    let (sc, rx) = run_relaxed("MP+dmb.sy+addr-po.litmus");
    assert_eq!(sc.counts(), (0, 3));
    assert_eq!(rx.counts(), (1, 3));
    // ... and checks read-read coherence when that load commits.
    let (sc, rx) = run_relaxed("CoRR+addr-unknown.litmus");
    assert_eq!(sc.counts(), (0, 3));
    assert_eq!(rx.counts(), (0, 3));
}

fn run_mode(name: &str, relaxed: bool) -> (litmus::Test, Outcome) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let src = std::fs::read_to_string(&path).expect("test data");
    let t = litmus::parse(name, &src).expect("parses");
    let opts = Options {
        relaxed,
        ..Options::default()
    };
    let o = litmus::run(&t, &opts).expect("runs");
    (t, o)
}

/// The final states as herd7 prints them, sorted.
fn states(name: &str, relaxed: bool) -> Vec<String> {
    let (t, o) = run_mode(name, relaxed);
    o.herd7_states(&t)
}

fn sorted<const N: usize>(v: [&str; N]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn a_tests_variant_line_overrides_fatal_and_its_states_are_herd7s() {
    // Sc03 as written (`variant=imprecise`): herd7 gives Never, 18 states.
    let exp = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/Sc03.litmus.expected"),
    )
    .expect("expected output");
    let exp = litmus::states::parse_expected(&exp).expect("herd7 output");
    assert_eq!(exp.states.len(), 18);
    assert_eq!(exp.observation.as_deref(), Some("Never"));
    for relaxed in [false, true] {
        let (t, o) = run_mode("Sc03.litmus", relaxed);
        assert_eq!(t.fault_mode, litmus::ast::FaultMode::Handled);
        assert_eq!(o.observation(), "Never", "relaxed {relaxed}");
        let d = litmus::states::diff(&o.herd7_states(&t), &exp.states);
        assert!(d.is_empty(), "relaxed {relaxed}: {d:?}");
    }
}

#[test]
fn without_its_variant_line_sc03_allows_the_faulting_read() {
    let (t, o) = run_mode("Sc03-fatal.litmus", true);
    assert_eq!(t.fault_mode, litmus::ast::FaultMode::Fatal);
    assert_eq!(o.observation(), "Sometimes");
    let pos: Vec<String> = o
        .finals
        .iter()
        .filter(|(_, sat)| **sat)
        .map(|(f, _)| litmus::states::render(&t, &o.shown, f))
        .collect();
    assert_eq!(
        pos,
        ["1:X1=1; 1:X3=0; Fault(P1,x,D-MMU:Translation); ~Fault(P0,x);"]
    );
}

#[test]
fn a_fault_without_handler_stops_retries_or_skips_as_the_variant_says() {
    use litmus::ast::FaultMode;
    let cases = [
        (
            "fault-fatal.litmus",
            FaultMode::Fatal,
            "[x]=0; [y]=0; Fault(P0,x,D-MMU:Translation);",
        ),
        (
            "fault-handled.litmus",
            FaultMode::Handled,
            "[x]=1; [y]=1; Fault(P0,x,D-MMU:Translation);",
        ),
        (
            "fault-skip.litmus",
            FaultMode::Skip,
            "[x]=0; [y]=1; Fault(P0,x,D-MMU:Translation);",
        ),
    ];
    for (name, mode, faulted) in cases {
        for relaxed in [false, true] {
            let (t, _) = run_mode(name, relaxed);
            assert_eq!(t.fault_mode, mode, "{name}");
            assert_eq!(
                states(name, relaxed),
                sorted([faulted, "[x]=1; [y]=1;  ~Fault(P0,x);"]),
                "{name} relaxed {relaxed}"
            );
        }
    }
}

#[test]
fn locations_alone_are_a_condition_that_shows_every_state() {
    let (t, o) = run_mode("locations-only.litmus", false);
    assert_eq!(t.quant, litmus::ast::Quant::Forall);
    assert_eq!(o.observation(), "Always");
    assert_eq!(
        o.herd7_states(&t),
        sorted([
            "[x]=0; [y]=0; Fault(P0,x,D-MMU:Translation);",
            "[x]=1; [y]=1;  ~Fault(P0,x);"
        ])
    );
}

#[test]
fn a_tlbi_orders_later_walks_after_it_even_from_an_invalid_descriptor() {
    for relaxed in [false, true] {
        let (t, o) = run_mode("tlbi-invalid.litmus", relaxed);
        assert_eq!(o.observation(), "Never", "relaxed {relaxed}");
        assert!(
            !o.herd7_states(&t)
                .contains(&"1:X0=1; Fault(P1:L0,x,D-MMU:Translation);".to_string())
        );
    }
}

#[test]
fn values_print_as_herd7_prints_them() {
    assert_eq!(
        states("pte-values.litmus", false),
        ["0:X2=(oa:PA(x), af:0, valid:0); 0:X3=1;"]
    );
}

#[test]
fn array_elements_are_locations_of_their_own_on_the_symbols_page() {
    for relaxed in [false, true] {
        let (t, o) = run_mode("array.litmus", relaxed);
        assert_eq!(t.arrays.len(), 2);
        assert_eq!(o.verdict(t.quant), litmus::Verdict::Required);
        assert_eq!(
            o.herd7_states(&t),
            ["0:X2=2; 0:X6=7; 0:X7=1; 0:X8=4; [x]=1;"]
        );
    }
}
