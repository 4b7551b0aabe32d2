//! Per-thread hardware AF/dirty management (herd7's `TTHM=P0:HA`) and EL0
//! threads (`EL0=`) on the explorer (`Model::Explorer`): herd7's catalogue
//! tests that need them, with herd7's verdicts and final states, and small
//! tests of the Exception level of a handler and of a re-executed
//! instruction.

mod common;

use std::path::Path;

use litmus::exec::{Model, Options, Outcome};
use litmus::states::parse_expected;

fn explorer() -> Options {
    Options {
        model: Model::Explorer,
        ..Options::default()
    }
}

fn run_file(path: &Path) -> (litmus::Test, Outcome) {
    let src = std::fs::read_to_string(path).expect("test file");
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let t = litmus::parse(&name, &src).expect("parses");
    let o = litmus::run(&t, &explorer()).expect("runs on the explorer");
    (t, o)
}

/// Runs catalogue test `name` on the explorer and checks herd7's
/// observation and final states (its `.litmus.expected`).
fn agrees_with_herd7(name: &str) {
    let dir = common::conformance_root().join("herd7-vmsa/tests");
    let path = dir.join(format!("{name}.litmus"));
    let (t, o) = run_file(&path);
    let text = std::fs::read_to_string(dir.join(format!("{name}.litmus.expected")))
        .expect("herd7's output");
    let want = parse_expected(&text).expect("herd7's output parses");
    assert!(!o.limit_hit, "{name}: state limit");
    assert_eq!(
        Some(o.observation()),
        want.observation.as_deref(),
        "{name}: observation"
    );
    let mut theirs = want.states.clone();
    theirs.sort();
    assert_eq!(o.herd7_states(&t), theirs, "{name}: final states");
}

/// P0 manages AF in hardware, P1 does not: P1's load of x may take an
/// Access flag fault before P0's walk sets AF, P0's never faults (with
/// the machine's setting for both, one of the two would be wrong).
#[test]
fn hardware_af_on_one_thread_only() {
    agrees_with_herd7("NT-10-tlbi");
}

/// P1 manages the dirty state in hardware (`TTHM=P1:HD`).
#[test]
fn hardware_dirty_state_on_one_thread_only() {
    agrees_with_herd7("Artem2+TLBIx-HDy+dsb.ish");
    agrees_with_herd7("SWP-RpteW+RR+DMBLD+DMBLD-P0noHD");
}

/// An EL0 thread's load of an `el0:0` page is a Permission fault; an EL1
/// thread's is not (herd7's `TST-EL0`, Required).
#[test]
fn el0_thread_faults_on_an_el1_only_page() {
    agrees_with_herd7("TST-EL0");
}

/// An EL0 thread under the handled mode (`Luc00`).
#[test]
fn el0_thread_under_the_handled_mode() {
    agrees_with_herd7("Luc00");
}

fn data(name: &str) -> (litmus::Test, Outcome) {
    run_file(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
}

#[test]
fn a_reexecuted_instruction_and_those_after_it_run_at_el1() {
    let (t, o) = data("el0-handled.litmus");
    assert_eq!(
        o.herd7_states(&t),
        ["0:X0=1; 0:X1=1; Fault(P0,x,D-MMU:Permission);"]
    );
    assert_eq!(o.verdict(t.quant), litmus::Verdict::Allowed);
}

#[test]
fn a_fault_handler_runs_at_el1_and_eret_returns_to_el0() {
    let (t, o) = data("el0-handler.litmus");
    assert_eq!(
        o.herd7_states(&t),
        ["0:X0=0; 0:X1=3; 0:X5=1; Fault(P0,x,D-MMU:Permission);"]
    );
    assert_eq!(o.verdict(t.quant), litmus::Verdict::Allowed);
}
