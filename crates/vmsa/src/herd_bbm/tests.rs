//! herd7's BBM flag on small hand-written streams: Catalin Marinas's
//! RO-first remap and de-HVO (flagged by herd7, compliant by R_WHZWS),
//! plain break-before-make (neither), a direct change of a writable
//! entry's output address (both), and each piece of herd7's `BBM` break.

use super::*;
use crate::descriptor::{Attributes, LeafAttrs, Shareability};
use crate::event::DsbKind;
use crate::granule::Granule;
use crate::tlb::{Tlbi, TlbiKind};

const G: Granule = Granule::K4;
const VA: u64 = 0xffff_8000_0000_0000;
/// The descriptor's address.
const PTE: PhysAddr = PhysAddr(3 << 12);
/// Frames A and B, of different contents unless copied.
const A: u64 = 16;
const B: u64 = 17;

fn attrs(ro: bool) -> LeafAttrs {
    let mut flags = Attributes::AF;
    flags.set(Attributes::READ_ONLY, ro);
    LeafAttrs {
        flags,
        sh: Shareability::Inner,
        ..LeafAttrs::default()
    }
}

fn page(frame: u64, a: LeafAttrs) -> Descriptor {
    Descriptor::leaf(G, 3, PhysAddr(frame << 12), a).unwrap()
}

fn rw(frame: u64) -> Descriptor {
    page(frame, attrs(false))
}

fn ro(frame: u64) -> Descriptor {
    page(frame, attrs(true))
}

/// Feeds a one-location stream of one CPU to a fresh [`HerdBbm`].
struct Run {
    h: HerdBbm,
    mem: Memory,
    cur: Descriptor,
}

impl Run {
    fn new(init: Descriptor) -> Self {
        let mut mem = Memory::new(G, 1 << 20).unwrap();
        for f in [A, B] {
            mem.write_u64(PhysAddr(f << 12), f).unwrap();
        }
        Run {
            h: HerdBbm::new(Config::new(G, 2)),
            mem,
            cur: init,
        }
    }

    fn at(&mut self, level: Level, new: Descriptor) -> &mut Self {
        let ev = Event::DescWrite {
            cpu: 0,
            pa: PTE,
            old: self.cur,
            new,
            cas: false,
        };
        self.cur = new;
        self.h.observe(&self.mem, &ev, Some((level, VirtAddr(VA))));
        self
    }

    fn str(&mut self, new: Descriptor) -> &mut Self {
        self.at(3, new)
    }

    fn dsb(&mut self, kind: DsbKind) -> &mut Self {
        self.h
            .observe(&self.mem, &Event::Dsb { cpu: 0, kind }, None);
        self
    }

    fn tlbi_kind(&mut self, kind: TlbiKind, va: u64) -> &mut Self {
        let op = Tlbi::new(kind, VirtAddr(va));
        self.h.observe(&self.mem, &Event::Tlbi { cpu: 0, op }, None);
        self
    }

    fn tlbi(&mut self) -> &mut Self {
        self.tlbi_kind(TlbiKind::Vaale1, VA)
    }

    /// `dsb ishst; tlbi; dsb ish`: Linux's `flush_tlb_kernel_range`.
    fn flush(&mut self) -> &mut Self {
        self.dsb(DsbKind::IshSt).tlbi().dsb(DsbKind::Ish)
    }

    fn copy(&mut self, dst: u64, src: u64) -> &mut Self {
        self.mem.copy_frame(dst, src).unwrap();
        self
    }

    fn pairs(&self) -> Vec<(u64, u64, Vec<Reason>, bool)> {
        self.h
            .pairs()
            .iter()
            .map(|p| {
                (
                    p.first.index,
                    p.second.index,
                    p.reasons.clone(),
                    p.coexist(),
                )
            })
            .collect()
    }
}

#[test]
fn ro_first_remap_is_flagged_through_the_transitive_pair() {
    // RW -> RO at A, flush; contents made equal; RO -> RO at B, flush.
    let mut r = Run::new(rw(A));
    r.str(ro(A)).flush().copy(B, A).str(ro(B)).flush();
    // Successive pairs need nothing (a permission change; RO to RO with
    // equal contents); the initial RW value and the final RO one differ
    // in output address with one writable: herd7 pairs them across the
    // completed TLBI, which is no break of its kind.
    assert_eq!(r.pairs(), vec![(0, 2, vec![Reason::OaWritable], false)]);
    let p = &r.h.pairs()[0];
    // Write 2 is step 4; the DSB ISH completing the first flush is step 3.
    assert_eq!((p.second.step, p.first_ended), (Some(4), Some(3)));
    assert!(r.h.flagged());
    let line = p.render();
    assert!(
        line.contains("initial") && line.contains("write 2"),
        "{line}"
    );
    assert!(
        line.contains("TTD-OA-update & TTD-at-least-one-writable"),
        "{line}"
    );
}

#[test]
fn de_hvo_is_flagged_through_the_transitive_pair() {
    // RO at the shared page A -> RO at the copy B, flush -> RW at B, flush.
    let mut r = Run::new(ro(A));
    r.copy(B, A).str(ro(B)).flush().str(rw(B)).flush();
    assert_eq!(r.pairs(), vec![(0, 2, vec![Reason::OaWritable], false)]);
}

#[test]
fn without_the_flush_between_the_pair_may_coexist() {
    // RO-first with the first flush left out: herd7 flags the same pair,
    // and now a TLB may hold both values (R_WHZWS applies to it too).
    let mut r = Run::new(rw(A));
    r.str(ro(A)).copy(B, A).str(ro(B)).flush();
    assert_eq!(r.pairs(), vec![(0, 2, vec![Reason::OaWritable], true)]);
}

#[test]
fn plain_break_before_make_is_not_flagged() {
    let mut r = Run::new(rw(A));
    r.str(Descriptor(0)).flush().str(rw(B)).dsb(DsbKind::IshSt);
    assert!(r.pairs().is_empty());
    assert!(!r.h.flagged());
}

#[test]
fn a_writable_entrys_output_address_changed_in_place_is_flagged() {
    let mut r = Run::new(rw(A));
    r.str(rw(B)).flush();
    assert_eq!(
        r.pairs(),
        vec![(0, 1, vec![Reason::OaWritable, Reason::OaContents], true)]
    );
}

#[test]
fn read_only_output_address_changes_need_equal_contents() {
    // herd7's CoRR+PteOA.DB0.val (equal contents: no warning) and
    // CoRR+PteOA.DB0 (different: warning).
    let mut r = Run::new(ro(A));
    r.copy(B, A).str(ro(B));
    assert!(r.pairs().is_empty());
    let mut r = Run::new(ro(A));
    r.str(ro(B));
    assert_eq!(r.pairs(), vec![(0, 1, vec![Reason::OaContents], true)]);
}

#[test]
fn the_break_needs_each_barrier_and_a_covering_tlbi() {
    let broken = |f: &dyn Fn(&mut Run)| {
        let mut r = Run::new(rw(A));
        r.str(Descriptor(0));
        f(&mut r);
        r.str(rw(B));
        r.h.flagged()
    };
    // No TLBI at all.
    assert!(broken(&|r| {
        r.dsb(DsbKind::Ish);
    }));
    // A TLBI not ordered after the invalid store (`u ob TLBI` is DSB-ob).
    assert!(broken(&|r| {
        r.tlbi().dsb(DsbKind::Ish);
    }));
    // A TLBI not completed by a DSB ISH (`TLBI ob w2` needs dsb.full).
    assert!(broken(&|r| {
        r.dsb(DsbKind::Ish).tlbi().dsb(DsbKind::IshSt);
    }));
    // A TLBI of another page (`inv-scope`).
    assert!(broken(&|r| {
        r.dsb(DsbKind::Ish)
            .tlbi_kind(TlbiKind::Vaale1, VA + 0x1000)
            .dsb(DsbKind::Ish);
    }));
    // The whole sequence, with a DSB ISHST or a DSB ISH before the TLBI,
    // by VA (any level) or all.
    for kind in [DsbKind::IshSt, DsbKind::Ish] {
        for (op, va) in [
            (TlbiKind::Vaale1, VA),
            (TlbiKind::Vae1, VA + 0x123),
            (TlbiKind::Vmalle1, 0),
        ] {
            assert!(!broken(&|r| {
                r.dsb(kind).tlbi_kind(op, va).dsb(DsbKind::Ish);
            }));
        }
    }
}

#[test]
fn an_access_flag_clear_value_is_a_break() {
    // The AF-clear + CAS sequence: herd7's `TTDAF0` is uncacheable, with or
    // without hardware AF management (aarch64-BBM catalogue, no warning).
    let noaf = page(
        A,
        LeafAttrs {
            flags: Attributes::empty(),
            ..attrs(false)
        },
    );
    let mut r = Run::new(rw(A));
    r.str(noaf).flush().str(ro(B)).flush();
    assert!(r.pairs().is_empty());
    // The AF-clear value is itself no value herd7 compares.
    let mut r = Run::new(noaf);
    r.str(rw(B));
    assert!(r.pairs().is_empty());
}

#[test]
fn memory_attribute_changes_are_named_by_herd7s_relations() {
    // Linux's MAIR: 0 Normal WB, 2 Normal NC, 3 Device-nGnRnE, 4 Device-nGnRE.
    let with = |idx: u8| {
        page(
            A,
            LeafAttrs {
                attr_indx: idx,
                ..attrs(false)
            },
        )
    };
    let mut r = Run::new(with(0));
    r.str(with(2));
    assert_eq!(
        r.pairs(),
        vec![(
            0,
            1,
            vec![Reason::InnerCacheability, Reason::OuterCacheability],
            true
        )]
    );
    let mut r = Run::new(with(3));
    r.str(with(4));
    assert_eq!(r.pairs(), vec![(0, 1, vec![Reason::DeviceType], true)]);
    let mut r = Run::new(with(0));
    r.str(with(4));
    assert_eq!(r.pairs(), vec![(0, 1, vec![Reason::MemoryType], true)]);
    // Normal-Tagged (index 1) is Normal WB: no change herd7 names.
    let mut r = Run::new(with(0));
    r.str(with(1));
    assert!(r.pairs().is_empty());
    let sh = page(
        A,
        LeafAttrs {
            sh: Shareability::Outer,
            ..attrs(false)
        },
    );
    let mut r = Run::new(rw(A));
    r.str(sh);
    assert_eq!(r.pairs(), vec![(0, 1, vec![Reason::Shareability], true)]);
}

#[test]
fn every_earlier_value_is_compared_not_only_the_last() {
    // RW A -> RW A (software bit) -> RO B: two pairs, both from before.
    let sw = page(
        A,
        LeafAttrs {
            sw: 1,
            ..attrs(false)
        },
    );
    let mut r = Run::new(rw(A));
    r.str(sw).flush().copy(B, A).str(ro(B));
    let got: Vec<(u64, u64)> = r.pairs().iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(got, vec![(0, 2), (1, 2)]);
}

#[test]
fn only_level_3_descriptors_are_locations() {
    let block = |f: u64| Descriptor::leaf(G, 2, PhysAddr(f << 21), attrs(false)).unwrap();
    let mut r = Run::new(block(1));
    r.at(2, block(2));
    assert!(r.pairs().is_empty());
}

/// The earlier values [`TtdBbm::write`] reports for a cacheable write.
fn earlier(t: &mut TtdBbm<u64>, cpu: usize, v: u64) -> Vec<u64> {
    let mut out = Vec::new();
    t.write(cpu, v, true, |&w, _| out.push(w));
    out
}

#[test]
fn ttd_bbm_compares_every_earlier_value_and_needs_a_dsb_that_orders_the_break() {
    // Initial 1, then 2, then 3: 3 is compared with 1 and 2 (`ca` is
    // transitive).
    let mut t = TtdBbm::new(Some(1));
    assert_eq!(earlier(&mut t, 0, 2), [1]);
    assert_eq!(earlier(&mut t, 0, 3), [1, 2]);
    // The break: an uncacheable value, DSB LD (orders no store before the
    // TLBI), TLBI, DSB ISH: no break; with DSB ST instead, a break for the
    // writing CPU only.
    let mut ld = t.clone();
    ld.write(0, 0, false, |_, _| {});
    ld.dsb(0, false, false, 0);
    ld.tlbi(0);
    ld.dsb(0, true, true, 0);
    assert_eq!(earlier(&mut ld, 0, 4), [1, 2, 3]);
    let mut st = t.clone();
    st.write(0, 0, false, |_, _| {});
    st.dsb(0, true, false, 0);
    st.tlbi(0);
    st.dsb(0, true, true, 0);
    assert!(st.complete(0));
    assert_eq!(earlier(&mut st.clone(), 0, 4), Vec::<u64>::new());
    assert_eq!(earlier(&mut st, 1, 4), [1, 2, 3]);
}

#[test]
fn ttd_bbm_canonical_forgets_what_cannot_matter() {
    // From initial 1: writes 2, 1 by CPU 0, or 1, 2, 1 by CPU 1: the same
    // future once canonical (earlier duplicates dropped, indices
    // renumbered, chains with nothing pending forgotten).
    let mut a = TtdBbm::new(Some(1));
    a.write(0, 2, true, |_, _| {});
    a.write(0, 1, true, |_, _| {});
    let mut b = TtdBbm::new(Some(1));
    for v in [1, 2, 1] {
        b.write(1, v, true, |_, _| {});
    }
    assert_ne!(a, b);
    a.canonical();
    b.canonical();
    assert_eq!(a, b);
    assert_eq!(earlier(&mut a, 0, 3), [2, 1]);
}
