//! The structured counterexample: each step's kind, and after it the
//! descriptors and every CPU's TLB entries for the pages the workloads
//! access, as the replay computes them.

use explore::{Hazard, Limits, Setup, StepKind, TraceStep, Verdict, WorkloadKind};
use mm::Protocol;
use vmsa::BbmLevel;

fn counterexample(
    protocol: &str,
    bbm: BbmLevel,
    workload: WorkloadKind,
    copies: usize,
) -> (Hazard, Vec<TraceStep>) {
    let mut s = Setup::standard(Protocol::by_name(protocol).expect("built in"), bbm);
    s.workloads = vec![workload];
    s.copies = copies;
    let row = explore::verify(&s, &Limits::default(), false).expect("explores");
    match row.verdict().0 {
        Verdict::Hazard { hazard, trace } => (hazard.clone(), trace.clone()),
        v => panic!("{protocol} at {bbm}: expected a hazard, got {v:?}"),
    }
}

#[test]
fn the_conflict_abort_shows_the_stale_block_and_the_new_page_on_the_cpu() {
    let (hazard, trace) = counterexample(
        "linux-generic",
        BbmLevel::Level0,
        WorkloadKind::Neighbour,
        1,
    );
    let va = hazard.va.expect("the hazard's VA") & !0xfff;
    // Steps by a CPU are operations; hardware steps are not.
    for s in &trace {
        assert_eq!(s.cpu.is_some(), s.kind == StepKind::Op, "{}", s.text);
        // The neighbour touches one page: that page, every step.
        assert_eq!(s.state.vas.iter().map(|v| v.va).collect::<Vec<_>>(), [va]);
    }
    // The neighbour's walker cached the page: a fill on CPU1 for its VA.
    assert!(trace.iter().any(|s| matches!(
        s.kind,
        StepKind::Fill { cpu: 1, va: v } if v & !0xfff == va
    )));
    // At the abort: L2 is a table in memory and the L3 page maps the
    // neighbour; CPU1 holds the 2M block (stale: memory no longer has it)
    // and the 4K page (current).
    let last = &trace.last().expect("steps").state.vas[0];
    let levels: Vec<(u8, &str)> = last
        .descs
        .iter()
        .map(|d| (d.level, d.text.split(' ').next().unwrap_or("")))
        .collect();
    assert_eq!(
        levels,
        [(0, "table"), (1, "table"), (2, "table"), (3, "page")]
    );
    assert!(last.descs.iter().all(|d| d.walkers.is_none()));
    let leaves: Vec<(usize, u8, u64, bool, bool)> = last
        .tlb
        .iter()
        .filter(|t| t.leaf)
        .map(|t| (t.cpu, t.level, t.size, t.read_only, t.stale))
        .collect();
    assert_eq!(
        leaves,
        [(1, 2, 2 << 20, false, true), (1, 3, 4096, false, false)]
    );
    let page = last
        .tlb
        .iter()
        .find(|t| t.leaf && t.level == 3)
        .expect("L3");
    assert!(last.descs[3].text.contains(&format!("oa={:#x}", page.oa)));
    // The text is what `hvo verify` prints.
    assert!(
        trace
            .last()
            .expect("steps")
            .text
            .contains("via a TLB conflict")
    );
    // The last step met the hazard, and no other.
    let met: Vec<bool> = trace.iter().map(|s| s.hazard).collect();
    assert_eq!(met.iter().filter(|m| **m).count(), 1);
    assert!(met[met.len() - 1]);
}

#[test]
fn a_hazard_found_at_the_end_is_met_by_no_step() {
    // pause-cpus loses the head writer's store (README: what each protocol
    // relies on); the final-state check finds it once every CPU finished.
    let (hazard, trace) =
        counterexample("pause-cpus", BbmLevel::Level0, WorkloadKind::HeadWriter, 1);
    assert_eq!(hazard.kind.slug(), "lost-update");
    assert!(trace.iter().all(|s| !s.hazard));
}

#[test]
fn a_pending_store_shows_what_walkers_still_see_until_it_propagates() {
    let (_, trace) = counterexample(
        "linux-generic",
        BbmLevel::Level2NoAbort,
        WorkloadKind::Straddle,
        1,
    );
    let (i, pa, value) = trace
        .iter()
        .enumerate()
        .find_map(|(i, s)| match s.kind {
            StepKind::Propagate { pa, value } => Some((i, pa, value)),
            _ => None,
        })
        .expect("a store reaches walkers in this counterexample");
    let desc = |k: usize| {
        trace[k]
            .state
            .vas
            .iter()
            .flat_map(|v| &v.descs)
            .find(|d| d.pa == pa)
            .cloned()
            .expect("the descriptor is on a walk")
    };
    // Before: memory has the new value, walkers the old one.
    let before = desc(i - 1);
    assert_eq!(before.value, value);
    assert!(before.walkers.is_some_and(|w| w != value), "{before:?}");
    assert!(before.walkers_text.is_some());
    // After: walkers see memory.
    let after = desc(i);
    assert_eq!(after.value, value);
    assert_eq!(after.walkers, None);
}

#[test]
fn tlb_entries_name_the_real_cpus_under_symmetry() {
    let (hazard, trace) = counterexample(
        "linux-generic",
        BbmLevel::Level0,
        WorkloadKind::PfnWalker,
        2,
    );
    let va = hazard.va.expect("the hazard's VA");
    // The CPU that aborted holds two translations for the VA (that is the
    // conflict), under its real number.
    let last = &trace.last().expect("steps").state;
    let held: Vec<usize> = last
        .vas
        .iter()
        .filter(|v| v.va == va & !0xfff)
        .flat_map(|v| &v.tlb)
        .filter(|t| t.leaf)
        .map(|t| t.cpu)
        .collect();
    assert!(
        held.iter().filter(|&&c| c == hazard.cpu).count() >= 2,
        "cpu{} aborted; leaf entries on {held:?}",
        hazard.cpu
    );
    // Every fill names a CPU that steps in the trace.
    for s in &trace {
        if let Some(cpu) = s.kind.tlb_cpu() {
            assert!(
                trace.iter().any(|t| t.cpu == Some(cpu)),
                "fill on cpu{cpu}, which never runs"
            );
            assert!(s.text.contains(&format!("cpu{cpu} ")), "{}", s.text);
        }
    }
}
