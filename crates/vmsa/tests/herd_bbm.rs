//! The rule checker and herd7's BBM flag on the same streams
//! (`RuleChecker::enable_herd_bbm`): where the two readings of R_WHZWS
//! part (Catalin Marinas's RO-first remap and de-HVO) and where they agree
//! (plain break-before-make; a writable entry's output address changed in
//! place).

use vmsa::herd_bbm::Reason;
use vmsa::memory::Memory;
use vmsa::{
    Attributes, Config, Descriptor, DsbKind, Event, Granule, LeafAttrs, PhysAddr, Rule,
    RuleChecker, Shareability, Tlbi, TlbiKind, VirtAddr,
};

const G: Granule = Granule::K4;
const VA: u64 = 0xffff_8000_0000_0000;
/// The L3 table's first descriptor (VA above).
const PTE: PhysAddr = PhysAddr(3 << 12);

fn attrs(ro: bool) -> LeafAttrs {
    LeafAttrs {
        flags: Attributes::AF,
        sh: Shareability::Inner,
        ..LeafAttrs::default()
    }
    .with(Attributes::READ_ONLY, ro)
}

fn page(frame: u64, ro: bool) -> Descriptor {
    Descriptor::leaf(G, 3, PhysAddr(frame << 12), attrs(ro)).unwrap()
}

/// A four-level table laid out by hand (root at frame 0, L3 at frame 3),
/// VA mapped onto frame 16 with `init`, frames 16 and 17 of different
/// contents; the checker with herd7's flag on.
struct Both {
    mem: Memory,
    c: RuleChecker,
}

impl Both {
    fn new(init: Descriptor) -> Self {
        let mut mem = Memory::new(G, 1 << 20).unwrap();
        let t = |f: u64| PhysAddr(f << 12);
        for (level, (table, next)) in [(0u8, (0u64, 1u64)), (1, (1, 2)), (2, (2, 3))] {
            let slot = t(table).add(G.index(level, VA) as u64 * 8);
            mem.write_u64(slot, Descriptor::table(G, level, t(next)).unwrap().0)
                .unwrap();
        }
        mem.write_u64(PTE, init.0).unwrap();
        for f in [16, 17] {
            mem.write_u64(t(f), f).unwrap();
        }
        let mut c = RuleChecker::new(Config::new(G, 2), t(0), &mem);
        c.enable_herd_bbm();
        Both { mem, c }
    }

    fn str(&mut self, new: Descriptor) -> &mut Self {
        let old = Descriptor(self.mem.read_u64(PTE).unwrap());
        self.mem.write_u64(PTE, new.0).unwrap();
        self.ev(Event::DescWrite {
            cpu: 0,
            pa: PTE,
            old,
            new,
            cas: false,
        })
    }

    fn ev(&mut self, ev: Event) -> &mut Self {
        self.c.observe(&self.mem, &ev);
        self
    }

    /// `dsb ishst; tlbi vaale1is; dsb ish`.
    fn flush(&mut self) -> &mut Self {
        for ev in [
            Event::Dsb {
                cpu: 0,
                kind: DsbKind::IshSt,
            },
            Event::Tlbi {
                cpu: 0,
                op: Tlbi::new(TlbiKind::Vaale1, VirtAddr(VA)),
            },
            Event::Dsb {
                cpu: 0,
                kind: DsbKind::Ish,
            },
        ] {
            self.ev(ev);
        }
        self
    }

    fn copy(&mut self, dst: u64, src: u64) -> &mut Self {
        self.mem.copy_frame(dst, src).unwrap();
        self
    }

    fn rules(&self) -> Vec<Rule> {
        self.c.violations().iter().map(|v| v.rule).collect()
    }

    fn herd(&self) -> Vec<(u64, u64, Vec<Reason>)> {
        self.c
            .herd_bbm()
            .expect("enabled")
            .pairs()
            .iter()
            .map(|p| (p.first.index, p.second.index, p.reasons.clone()))
            .collect()
    }
}

#[test]
fn ro_first_is_compliant_by_the_rules_and_flagged_by_herd7() {
    let mut b = Both::new(page(16, false));
    b.str(page(16, true))
        .flush()
        .copy(17, 16)
        .str(page(17, true))
        .flush();
    assert_eq!(b.rules(), vec![]);
    assert_eq!(b.herd(), vec![(0, 2, vec![Reason::OaWritable])]);
}

#[test]
fn de_hvo_is_compliant_by_the_rules_and_flagged_by_herd7() {
    let mut b = Both::new(page(16, true));
    b.copy(17, 16)
        .str(page(17, true))
        .flush()
        .str(page(17, false))
        .flush();
    assert_eq!(b.rules(), vec![]);
    assert_eq!(b.herd(), vec![(0, 2, vec![Reason::OaWritable])]);
}

#[test]
fn without_the_first_flush_both_object() {
    // The RW translation may still be cached when the address changes.
    let mut b = Both::new(page(16, false));
    b.str(page(16, true))
        .copy(17, 16)
        .str(page(17, true))
        .flush();
    assert_eq!(b.rules(), vec![Rule::OaChangeWritable]);
    assert_eq!(b.herd(), vec![(0, 2, vec![Reason::OaWritable])]);
}

#[test]
fn plain_break_before_make_satisfies_both() {
    let mut b = Both::new(page(16, false));
    b.str(Descriptor::INVALID)
        .flush()
        .str(page(17, false))
        .flush();
    assert_eq!(b.rules(), vec![]);
    assert_eq!(b.herd(), vec![]);
}

#[test]
fn a_writable_output_address_change_in_place_violates_both() {
    let mut b = Both::new(page(16, false));
    b.str(page(17, false)).flush();
    assert_eq!(
        b.rules(),
        vec![Rule::OaChangeWritable, Rule::OaChangeContents]
    );
    assert_eq!(
        b.herd(),
        vec![(0, 1, vec![Reason::OaWritable, Reason::OaContents])]
    );
}
