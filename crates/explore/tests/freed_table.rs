//! A walk that reads a freed page-table page is a hazard, whether it is a
//! CPU's access walking from a stale walk-cache entry or its walker
//! caching entries (a speculative walk, R_FFWJK): the steps are driven by
//! hand to the state where a CPU holds a walk-cache entry for a PTE table
//! that the updater freed after last-level TLBIs only (TLBI VALE1IS leaves
//! walk-cache entries, R_RVJDB), and every step of that CPU is applied.

use explore::engine::{Engine, Outcome, Step};
use explore::state::State;
use explore::{HazardKind, Prepared, Scenario, Setup, WorkloadKind};
use mm::vmemmap::{VMEMMAP_START, struct_page_va};
use mm::{Desc, Instr, Page, Perm, Program, Protocol};
use vmsa::{BbmLevel, DsbKind, TlbiKind, TlbiScope};

/// Split the vmemmap's PMD block into a PTE table, collapse it back into
/// the same block, flush `flush` (for the neighbour's page, or all levels
/// for the block), free the table.
fn program(prep: &Prepared, flush: TlbiKind) -> Program {
    let block = prep.kernel.frame_of(VMEMMAP_START).expect("the block");
    let neighbour = struct_page_va(prep.sites.neighbour);
    let table = Page::Reg(1000, 0);
    let va = if flush == TlbiKind::Vale1 {
        neighbour
    } else {
        VMEMMAP_START
    };
    let mut p = Program::default();
    p.push(Instr::Alloc {
        reg: 1000,
        order: 0,
    });
    p.push(Instr::FillTable {
        table,
        va: VMEMMAP_START,
        level: 2,
    });
    p.push(Instr::Dsb(DsbKind::IshSt));
    p.push(Instr::Store {
        va: VMEMMAP_START,
        level: 2,
        desc: Desc::Table(table),
    });
    p.flush_tlb_all();
    p.push(Instr::Store {
        va: VMEMMAP_START,
        level: 2,
        desc: Desc::leaf(Page::Frame(block), Perm::Rw),
    });
    p.extend(Program {
        instrs: vec![
            Instr::Dsb(DsbKind::IshSt),
            Instr::Tlbi {
                kind: flush,
                scope: TlbiScope::Broadcast,
                va,
            },
            Instr::Dsb(DsbKind::Ish),
            Instr::Isb,
        ],
    });
    p.push(Instr::Free {
        page: table,
        order: 0,
    });
    p
}

fn next(engine: &Engine<'_>, s: &State, step: Step) -> State {
    match engine.apply(s, step, None) {
        Outcome::Next(n) => n,
        Outcome::Hazard(h) => panic!("{step:?}: {h}"),
        Outcome::Disabled => panic!("{step:?}: disabled"),
    }
}

/// Runs the updater to the end of the split (`split_ops` operations), lets
/// the neighbour's walker cache its page through the new table, runs the
/// updater to the end, then applies each of the neighbour's steps: returns
/// the kinds of hazard they give, for fills and for the neighbour's own
/// access.
fn hazards_after_free(flush: TlbiKind) -> (Vec<HazardKind>, Vec<HazardKind>) {
    let mut setup = Setup::standard(
        Protocol::by_name("linux-generic").expect("built in"),
        BbmLevel::Level2NoAbort,
    );
    setup.workloads = vec![WorkloadKind::Neighbour];
    let prep = Prepared::new(&setup).expect("prepared");
    let sc = Scenario::build(&prep, &program(&prep, flush)).expect("builds");
    let engine = Engine::new(&sc);
    let mut s = engine.initial();
    let mut steps = Vec::new();
    let split_ops = 8;
    for _ in 0..split_ops {
        s = next(&engine, &s, Step::Updater);
    }
    // The neighbour's walker caches its page: the walk from the root
    // through the PTE table.
    engine.steps(&s, &mut steps);
    let fill = steps
        .iter()
        .copied()
        .find(|st| matches!(st, Step::Fill { cpu: 1, .. }))
        .expect("a fill for the neighbour");
    s = next(&engine, &s, fill);
    for _ in split_ops..sc.ops.len() {
        s = next(&engine, &s, Step::Updater);
    }
    engine.steps(&s, &mut steps);
    let (mut fills, mut accesses) = (Vec::new(), Vec::new());
    for &st in &steps {
        if let Outcome::Hazard(h) = engine.apply(&s, st, None) {
            match st {
                Step::Fill { .. } => fills.push(h.kind),
                Step::Cpu { .. } => accesses.push(h.kind),
                _ => panic!("{st:?}: {h}"),
            }
        }
    }
    (fills, accesses)
}

#[test]
fn a_walk_through_a_table_freed_after_last_level_tlbis_is_a_hazard() {
    let (fills, accesses) = hazards_after_free(TlbiKind::Vale1);
    assert_eq!(fills, [HazardKind::FreedTableWalk]);
    assert_eq!(accesses, [HazardKind::FreedTableWalk]);
}

#[test]
fn no_walk_reads_a_table_freed_after_a_tlbi_of_all_levels() {
    let (fills, accesses) = hazards_after_free(TlbiKind::Vaae1);
    assert_eq!((fills, accesses), (vec![], vec![]));
}
