//! The rule checker used as a library on a hand-written event stream, with
//! no `Machine` producing the events.

use vmsa::memory::Memory;
use vmsa::{
    Attributes, Config, Descriptor, DsbKind, Event, Granule, LeafAttrs, PhysAddr, Rule,
    RuleChecker, Shareability, Tlbi, TlbiKind, VirtAddr,
};

const G: Granule = Granule::K4;

fn rw() -> LeafAttrs {
    LeafAttrs {
        flags: Attributes::AF,
        sh: Shareability::Inner,
        ..LeafAttrs::default()
    }
}

/// Lays out a four-level table by hand: root at frame 0, L1 at 1, L2 at 2,
/// L3 at 3, the L3 table mapping VA 0xffff800000000000.. onto frames 16...
fn tables() -> (Memory, PhysAddr) {
    let mut m = Memory::new(G, 1 << 20).unwrap();
    let va = 0xffff_8000_0000_0000u64;
    let t = |f: u64| PhysAddr(f << 12);
    for (level, (table, next)) in [(0u8, (0u64, 1u64)), (1, (1, 2)), (2, (2, 3))] {
        let slot = t(table).add(G.index(level, va) as u64 * 8);
        m.write_u64(slot, Descriptor::table(G, level, t(next)).unwrap().0)
            .unwrap();
    }
    for i in 0..4u64 {
        let d = Descriptor::leaf(G, 3, t(16 + i), rw()).unwrap();
        m.write_u64(t(3).add(i * 8), d.0).unwrap();
    }
    (m, t(0))
}

#[test]
fn a_stream_from_elsewhere_is_checked() {
    let (mut mem, root) = tables();
    let mut c = RuleChecker::new(Config::new(G, 4), root, &mem);
    let pte1 = PhysAddr((3 << 12) + 8);
    assert_eq!(c.locate(pte1), Some((3, VirtAddr(0xffff_8000_0000_1000))));
    let old = Descriptor(mem.read_u64(pte1).unwrap());
    let new = Descriptor::leaf(
        G,
        3,
        PhysAddr(20 << 12),
        rw().with(Attributes::READ_ONLY, true),
    )
    .unwrap();
    mem.write_u64(pte1, new.0).unwrap();
    let found: Vec<Rule> = c
        .observe(
            &mem,
            &Event::DescWrite {
                cpu: 3,
                pa: pte1,
                old,
                new,
                cas: false,
            },
        )
        .iter()
        .map(|v| v.rule)
        .collect();
    assert_eq!(found, vec![Rule::OaChangeWritable]);
    let v = &c.violations()[0];
    assert_eq!((v.step, v.cpu, v.level), (0, 3, Some(3)));
    assert_eq!((v.old, v.new), (Some(old), Some(new)));
    // The old page is freed after a completed flush: no report.
    for ev in [
        Event::Dsb {
            cpu: 3,
            kind: DsbKind::IshSt,
        },
        Event::Tlbi {
            cpu: 3,
            op: Tlbi::new(TlbiKind::Vaale1, VirtAddr(0xffff_8000_0000_1000)),
        },
        Event::Dsb {
            cpu: 3,
            kind: DsbKind::Ish,
        },
        Event::Free {
            cpu: 3,
            pa: PhysAddr(17 << 12),
            order: 0,
        },
    ] {
        assert!(c.observe(&mem, &ev).is_empty(), "{ev}");
    }
    assert!(c.stale().is_empty());
    assert_eq!(c.steps(), 5);
}

#[test]
fn stores_to_tables_not_yet_published_are_not_checked() {
    let (mut mem, root) = tables();
    let mut c = RuleChecker::new(Config::new(G, 1), root, &mem);
    // Frame 8 is no live table: filling it is preparation, not an update.
    let pa = PhysAddr(8 << 12);
    let new = Descriptor::leaf(G, 3, PhysAddr(30 << 12), rw()).unwrap();
    mem.write_u64(pa, new.0).unwrap();
    let ev = Event::DescWrite {
        cpu: 0,
        pa,
        old: Descriptor::INVALID,
        new,
        cas: false,
    };
    assert!(c.observe(&mem, &ev).is_empty());
    assert_eq!(c.locate(pa), None);
}
