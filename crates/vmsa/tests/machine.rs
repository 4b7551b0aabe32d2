//! Behaviour tests of the simulated machine: every test pins down one
//! architectural fact that a simpler (wrong) model of TLBs, walkers and
//! barriers would get wrong.

use vmsa::machine::Machine;
use vmsa::tlb::{TlbEntry, TlbKind};
use vmsa::walk::Via;
use vmsa::{
    Access, Attributes, BbmLevel, Config, Descriptor, DsbKind, Fault, FaultKind, Granule,
    LeafAttrs, PhysAddr, Shareability, Tlbi, TlbiKind, TlbiScope, VirtAddr,
};

const VA: VirtAddr = VirtAddr(0xffff_8000_0000_0000);
/// Data pages well above the frames the allocator hands out for tables.
const PA_A: PhysAddr = PhysAddr(0x200_0000);
const PA_B: PhysAddr = PhysAddr(0x300_0000);
const K4: u64 = 4096;

fn attrs() -> LeafAttrs {
    LeafAttrs {
        flags: Attributes::AF,
        sh: Shareability::Inner,
        ..Default::default()
    }
}

fn config(g: Granule, f: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::new(g, 2);
    f(&mut c);
    c
}

fn machine4k() -> Machine {
    Machine::new(Config::new(Granule::K4, 2), 64 << 20).unwrap()
}

/// A 4K page at `VA` mapped to `pa` with `a`; returns the L3 slot.
fn map_page(m: &mut Machine, va: VirtAddr, pa: PhysAddr, a: LeafAttrs) -> PhysAddr {
    m.map(va, pa, K4, 3, a).unwrap();
    m.desc_pa(va, 3).unwrap()
}

fn page(pa: PhysAddr, a: LeafAttrs) -> Descriptor {
    Descriptor::leaf(Granule::K4, 3, pa, a).unwrap()
}

fn pa_of(m: &mut Machine, cpu: usize, va: VirtAddr) -> PhysAddr {
    m.translate(cpu, va, Access::Load).unwrap().unwrap().pa
}

fn leaves_of(m: &Machine, cpu: usize) -> Vec<TlbEntry> {
    m.cpus()[cpu]
        .tlb
        .entries()
        .iter()
        .copied()
        .filter(TlbEntry::is_leaf)
        .collect()
}

fn walks_of(m: &Machine, cpu: usize) -> Vec<TlbEntry> {
    m.cpus()[cpu]
        .tlb
        .entries()
        .iter()
        .copied()
        .filter(|e| !e.is_leaf())
        .collect()
}

/// R_FFWJK: TLBs are not coherent with table writes. A translation cached
/// on CPU 1 survives a change of the descriptor (even made visible by a
/// DSB), a TLBI not yet completed, a `DSB ISHST` (which does not complete
/// TLB maintenance), a `DSB ISH` of another CPU, and a completed TLBI for
/// another VA; only a covering TLBI completed by a `DSB ISH` of the issuing
/// CPU removes it (R_DDMVT step 3-4).
#[test]
fn stale_translation_survives_until_tlbi_completes() {
    let mut m = machine4k();
    let slot = map_page(&mut m, VA, PA_A, attrs());
    assert_eq!(pa_of(&mut m, 1, VA), PA_A);

    m.store_desc(0, slot, page(PA_B, attrs())).unwrap();
    m.dsb(0, DsbKind::Ish).unwrap();
    assert_eq!(m.walker_read(slot), page(PA_B, attrs()).0);
    assert_eq!(
        pa_of(&mut m, 1, VA),
        PA_A,
        "TLB is not coherent with the table"
    );

    // A completed TLBI for the next page does not cover VA.
    m.tlbi(0, Tlbi::new(TlbiKind::Vaale1, VA.add(K4))).unwrap();
    m.dsb(0, DsbKind::Ish).unwrap();
    assert_eq!(pa_of(&mut m, 1, VA), PA_A);

    m.tlbi(0, Tlbi::new(TlbiKind::Vaale1, VA)).unwrap();
    assert_eq!(pa_of(&mut m, 1, VA), PA_A, "TLBI not complete yet");
    m.dsb(0, DsbKind::IshSt).unwrap();
    assert_eq!(
        m.pending_tlbis().len(),
        1,
        "DSB ISHST does not complete a TLBI"
    );
    assert_eq!(pa_of(&mut m, 1, VA), PA_A);
    m.dsb(1, DsbKind::Ish).unwrap();
    assert_eq!(
        m.pending_tlbis().len(),
        1,
        "only the issuing CPU's DSB completes it"
    );
    assert_eq!(pa_of(&mut m, 1, VA), PA_A);

    m.dsb(0, DsbKind::Ish).unwrap();
    assert!(m.pending_tlbis().is_empty());
    assert!(
        leaves_of(&m, 1)
            .iter()
            .all(|e| e.translate(VA) != Some(PA_A))
    );
    assert_eq!(pa_of(&mut m, 1, VA), PA_B);
}

/// R_DDMVT step 2: a descriptor store reaches the table walkers only once
/// it propagates, at the latest at a DSB of the storing CPU; data accesses
/// (coherent memory) see it at once. A DSB of another CPU does not push
/// it; stores to one descriptor propagate in order.
#[test]
fn descriptor_store_invisible_to_walkers_until_propagated_or_dsb() {
    let mut m = machine4k();
    let slot = map_page(&mut m, VA, PA_A, attrs());
    let old = page(PA_A, attrs());
    let new = page(PA_B, attrs());

    m.store_desc(0, slot, new).unwrap();
    assert_eq!(
        m.read_desc(slot).unwrap(),
        new,
        "coherent memory has the new value"
    );
    assert_eq!(
        m.walker_read(slot),
        old.0,
        "walkers still see the old value"
    );
    let ch = m.choices(1, VA, Access::Load);
    assert!(!ch.is_empty());
    assert!(ch.iter().all(|c| c.result.unwrap().pa == PA_A), "{ch:?}");
    m.dsb(1, DsbKind::Ish).unwrap();
    assert_eq!(
        m.walker_read(slot),
        old.0,
        "another CPU's DSB does not propagate it"
    );

    assert!(m.propagate(0));
    assert_eq!(m.walker_read(slot), new.0);
    let ch = m.choices(1, VA, Access::Load);
    assert!(ch.iter().all(|c| c.result.unwrap().pa == PA_B), "{ch:?}");

    // Two stores to one descriptor: the younger cannot overtake the older.
    m.store_desc(0, slot, Descriptor::INVALID).unwrap();
    m.store_desc(1, slot, old).unwrap();
    assert!(!m.propagate(1));
    assert_eq!(m.walker_read(slot), new.0);
    // The storing CPU's DSB (even ISHST) pushes its store.
    m.dsb(0, DsbKind::IshSt).unwrap();
    assert_eq!(m.walker_read(slot), 0);
    let ch = m.choices(0, VA, Access::Load);
    assert!(
        ch.iter()
            .all(|c| c.result.unwrap_err().kind == FaultKind::Translation)
    );
    m.dsb(1, DsbKind::IshSt).unwrap();
    assert_eq!(m.walker_read(slot), old.0);
    assert!(m.pending_stores().is_empty());
}

/// TLBI scope (R_RVJDB: walk-cache entries are TLB entries): the
/// last-level forms VALE1IS/VAALE1IS leave walk-cache entries, the
/// all-level forms VAE1IS/VAAE1IS and VMALLE1IS remove them.
#[test]
fn last_level_tlbis_keep_walk_cache_entries() {
    let mut m = machine4k();
    map_page(&mut m, VA, PA_A, attrs());
    assert!(m.fill(1, VA));
    assert_eq!(walks_of(&m, 1).len(), 3, "walk caches for L0, L1, L2");
    assert_eq!(leaves_of(&m, 1).len(), 1);
    for kind in TlbiKind::ALL {
        let mut m = m.clone();
        m.tlbi(0, Tlbi::new(kind, VA)).unwrap();
        m.dsb(0, DsbKind::Ish).unwrap();
        assert!(leaves_of(&m, 1).is_empty(), "{kind:?}");
        let walks = walks_of(&m, 1);
        if kind.last_level_only() {
            assert_eq!(walks.len(), 3, "{kind:?} keeps walk-cache entries");
            assert!(walks.iter().all(|e| matches!(e.kind, TlbKind::Walk { .. })));
        } else {
            assert!(walks.is_empty(), "{kind:?} removes walk-cache entries");
        }
    }
}

/// Scope of TLB maintenance (Arm ARM, "TLB maintenance instructions"): a
/// TLBI without the `IS` suffix invalidates only the issuing CPU's TLB;
/// the `IS` form every CPU's. Both complete at the issuer's `DSB ISH`.
#[test]
fn a_local_tlbi_leaves_other_cpus_entries() {
    let mut m = machine4k();
    map_page(&mut m, VA, PA_A, attrs());
    assert!(m.fill(0, VA) && m.fill(1, VA));
    for kind in TlbiKind::ALL {
        let mut local = m.clone();
        local
            .tlbi(0, Tlbi::scoped(kind, TlbiScope::Local, VA))
            .unwrap();
        assert!(!local.tlbi_take_effect(0, 1), "{kind:?}: not CPU 1's");
        local.dsb(0, DsbKind::Ish).unwrap();
        assert!(local.pending_tlbis().is_empty());
        assert!(leaves_of(&local, 0).is_empty(), "{kind:?} on the issuer");
        assert_eq!(leaves_of(&local, 1).len(), 1, "{kind:?} elsewhere");
        let mut bcast = m.clone();
        bcast.tlbi(0, Tlbi::new(kind, VA)).unwrap();
        bcast.dsb(0, DsbKind::Ish).unwrap();
        assert!(leaves_of(&bcast, 0).is_empty() && leaves_of(&bcast, 1).is_empty());
    }
}

/// TLBI by VA and ASID removes global entries whatever the ASID, but a
/// non-global entry only for its own ASID; VAAE1IS matches every ASID.
#[test]
fn vae1is_matches_asid_only_for_non_global_entries() {
    let mut m = machine4k();
    let ng = attrs().with(Attributes::NG, true);
    map_page(&mut m, VA, PA_A, ng);
    map_page(&mut m, VA.add(K4), PA_A.add(K4), attrs());
    m.fill(1, VA);
    m.fill(1, VA.add(K4));
    let l = leaves_of(&m, 1);
    assert_eq!(l.len(), 2);
    assert_eq!(l.iter().filter(|e| e.asid == Some(0)).count(), 1);
    assert_eq!(l.iter().filter(|e| e.asid.is_none()).count(), 1);

    let other = |kind, va| Tlbi {
        kind,
        scope: TlbiScope::Broadcast,
        va,
        asid: 1,
    };
    let mut a = m.clone();
    a.tlbi(0, other(TlbiKind::Vae1, VA)).unwrap();
    a.tlbi(0, other(TlbiKind::Vale1, VA)).unwrap();
    a.dsb(0, DsbKind::Ish).unwrap();
    assert_eq!(
        leaves_of(&a, 1).len(),
        2,
        "nG entry of ASID 0 survives ASID 1 TLBIs"
    );
    a.tlbi(0, other(TlbiKind::Vae1, VA.add(K4))).unwrap();
    a.dsb(0, DsbKind::Ish).unwrap();
    let l = leaves_of(&a, 1);
    assert_eq!(l.len(), 1, "global entry removed by a TLBI of any ASID");
    assert_eq!(l[0].asid, Some(0));
    a.tlbi(0, other(TlbiKind::Vaae1, VA)).unwrap();
    a.dsb(0, DsbKind::Ish).unwrap();
    assert!(leaves_of(&a, 1).is_empty(), "VAAE1IS matches all ASIDs");

    let mut b = m.clone();
    b.tlbi(
        0,
        Tlbi {
            kind: TlbiKind::Vale1,
            scope: TlbiScope::Broadcast,
            va: VA,
            asid: 0,
        },
    )
    .unwrap();
    b.dsb(0, DsbKind::Ish).unwrap();
    assert_eq!(leaves_of(&b, 1).len(), 1, "own ASID matches");
}

/// The 'TLBI before DSB' hazard (R_DDMVT: the DSB that makes the new
/// descriptor visible must come before the TLBI): the TLBI may take effect
/// on a CPU at once, that CPU may refill from the old descriptor still
/// seen by walkers, and the completing DSB does not remove the refill.
/// With the DSB ISHST first, the refill reads the new descriptor.
#[test]
fn tlbi_before_dsb_leaves_a_stale_refill() {
    let mut m = machine4k();
    let slot = map_page(&mut m, VA, PA_A, attrs());
    assert_eq!(pa_of(&mut m, 1, VA), PA_A);
    let before = m.clone();

    // Wrong order: store; tlbi; dsb ish.
    m.store_desc(0, slot, page(PA_B, attrs())).unwrap();
    m.tlbi(0, Tlbi::new(TlbiKind::Vaale1, VA)).unwrap();
    assert!(m.tlbi_take_effect(0, 1));
    assert!(!m.tlbi_take_effect(0, 1), "already taken effect on CPU 1");
    assert!(leaves_of(&m, 1).is_empty());
    assert!(m.fill(1, VA), "speculative refill from the old descriptor");
    m.dsb(0, DsbKind::Ish).unwrap();
    assert!(m.pending_tlbis().is_empty() && m.pending_stores().is_empty());
    assert_eq!(m.read_desc(slot).unwrap(), page(PA_B, attrs()));
    assert_eq!(
        pa_of(&mut m, 1, VA),
        PA_A,
        "stale entry survived the completed TLBI"
    );

    // Right order: store; dsb ishst; tlbi; dsb ish.
    let mut m = before;
    m.store_desc(0, slot, page(PA_B, attrs())).unwrap();
    m.dsb(0, DsbKind::IshSt).unwrap();
    m.tlbi(0, Tlbi::new(TlbiKind::Vaale1, VA)).unwrap();
    assert!(m.tlbi_take_effect(0, 1));
    assert!(m.fill(1, VA));
    m.dsb(0, DsbKind::Ish).unwrap();
    assert_eq!(pa_of(&mut m, 1, VA), PA_B);
}

/// Splits the 2 MiB block at `VA` (-> `PA_A`) into a table of 4K pages at
/// `pages_oa` with `pages_attrs`, without any TLBI, after CPU 1 cached the
/// block; CPU 1 then walks the new table. Returns the machine with two
/// matching leaf entries on CPU 1 for `VA + 4K`.
fn split_without_tlbi(bbm: BbmLevel, pages_oa: PhysAddr, pages_attrs: LeafAttrs) -> Machine {
    let cfg = config(Granule::K4, |c| c.features.bbm = bbm);
    let mut m = Machine::new(cfg, 64 << 20).unwrap();
    m.map(VA, PA_A, 2 << 20, 2, attrs()).unwrap();
    let va = VA.add(K4);
    let t = m.translate(1, va, Access::Load).unwrap().unwrap();
    assert_eq!((t.pa, t.level, t.size), (PA_A.add(K4), 2, 2 << 20));

    let table = m.alloc_table().unwrap();
    for i in 0..512 {
        let d = page(pages_oa.add(i * K4), pages_attrs);
        m.mem_mut().write_u64(table.add(i * 8), d.0).unwrap();
    }
    let l2 = m.desc_pa(VA, 2).unwrap();
    m.store_desc(0, l2, Descriptor::table(Granule::K4, 2, table).unwrap())
        .unwrap();
    m.dsb(0, DsbKind::Ish).unwrap();
    assert!(m.fill(1, va));
    let hits = leaves_of(&m, 1);
    assert_eq!(hits.len(), 2, "{hits:?}");
    m
}

fn has_conflict(m: &Machine, va: VirtAddr) -> bool {
    m.choices(1, va, Access::Load).iter().any(|c| {
        c.via == Via::Conflict
            && matches!(
                c.result,
                Err(Fault {
                    kind: FaultKind::TlbConflict,
                    ..
                })
            )
    })
}

/// R_FVQCK / I_HYQMB: with several matching TLB entries (a 2 MiB block and
/// a 4K page after a block-to-table split without invalidation) a TLB
/// conflict abort is possible at FEAT_BBM level 0 and level 2; only
/// BBML2_NOABORT CPUs rule it out, and only when the entries agree on the
/// output address and attributes (R_PVTFW: a pure size change).
#[test]
fn multiple_hits_may_raise_a_tlb_conflict() {
    let va = VA.add(K4);
    for bbm in [BbmLevel::Level0, BbmLevel::Level1, BbmLevel::Level2] {
        let m = split_without_tlbi(bbm, PA_A, attrs());
        assert!(has_conflict(&m, va), "{bbm}");
        // Both entries are also allowed to answer, and agree.
        let ok: Vec<_> = m
            .choices(1, va, Access::Load)
            .into_iter()
            .filter_map(|c| c.result.ok())
            .collect();
        assert_eq!(ok.len(), 2);
        assert!(ok.iter().all(|t| t.pa == PA_A.add(K4)));
        assert_eq!(
            ok.iter()
                .map(|t| t.level)
                .collect::<std::collections::BTreeSet<_>>(),
            [2, 3].into()
        );
    }
    let same = split_without_tlbi(BbmLevel::Level2NoAbort, PA_A, attrs());
    assert!(
        !has_conflict(&same, va),
        "pure size change on a no-abort CPU"
    );

    let moved = split_without_tlbi(BbmLevel::Level2NoAbort, PA_B, attrs());
    assert!(has_conflict(&moved, va), "different output addresses");
    let pas: Vec<_> = moved
        .choices(1, va, Access::Load)
        .into_iter()
        .filter_map(|c| c.result.ok().map(|t| t.pa))
        .collect();
    assert!(pas.contains(&PA_A.add(K4)) && pas.contains(&PA_B.add(K4)));

    let ro = split_without_tlbi(
        BbmLevel::Level2NoAbort,
        PA_A,
        attrs().with(Attributes::READ_ONLY, true),
    );
    assert!(has_conflict(&ro, va), "different permissions");
}

/// Hardware Access flag (FEAT_HAFDBS, TCR_EL1.HA). Without it a walk
/// reaching an AF=0 leaf gives an Access flag fault and the faulting leaf is
/// not cached (I_WZCBG); with it the walk succeeds and sets AF in memory
/// with an atomic update.
#[test]
fn access_flag_fault_or_hardware_update() {
    let no_af = LeafAttrs {
        sh: Shareability::Inner,
        ..Default::default()
    };
    let mut m = machine4k();
    let slot = map_page(&mut m, VA, PA_A, no_af);
    let r = m.translate(1, VA, Access::Load).unwrap();
    assert_eq!(
        r,
        Err(Fault {
            kind: FaultKind::AccessFlag,
            va: VA,
            level: Some(3)
        })
    );
    assert!(leaves_of(&m, 1).is_empty(), "faults are not cached");
    assert_eq!(m.read_desc(slot).unwrap(), page(PA_A, no_af));
    // Once software sets AF (no TLBI needed: nothing was cached) it works.
    m.store_desc(0, slot, page(PA_A, attrs())).unwrap();
    m.dsb(0, DsbKind::IshSt).unwrap();
    assert_eq!(pa_of(&mut m, 1, VA), PA_A);

    let cfg = config(Granule::K4, |c| c.features.hw_af = true);
    let mut m = Machine::new(cfg, 64 << 20).unwrap();
    let slot = map_page(&mut m, VA, PA_A, no_af);
    let t = m.translate(1, VA, Access::Load).unwrap().unwrap();
    assert_eq!(t.pa, PA_A);
    assert!(t.attrs.af());
    assert_eq!(
        m.read_desc(slot).unwrap(),
        page(PA_A, attrs()),
        "AF set in memory"
    );
    assert!(leaves_of(&m, 1)[0].translate(VA) == Some(PA_A));
}

/// Hardware dirty state (FEAT_HAFDBS, TCR_EL1.HD): a store through a
/// read-only entry with DBM=1 clears AP[2] in memory instead of faulting;
/// without HD, or with DBM=0, it is a permission fault.
#[test]
fn dirty_bit_management_or_permission_fault() {
    let clean = attrs().with(Attributes::READ_ONLY | Attributes::DBM, true);
    let dirty = attrs().with(Attributes::DBM, true);

    let cfg = config(Granule::K4, |c| c.features.hw_dbm = true);
    let mut m = Machine::new(cfg, 64 << 20).unwrap();
    let slot = map_page(&mut m, VA, PA_A, clean);
    assert_eq!(m.store(1, VA, 0xdead).unwrap(), Ok(()));
    assert_eq!(
        m.read_desc(slot).unwrap(),
        page(PA_A, dirty),
        "AP[2] cleared"
    );
    assert_eq!(m.load(1, VA).unwrap(), Ok(0xdead));
    // DBM=0 read-only: still a permission fault with HD.
    let slot2 = map_page(
        &mut m,
        VA.add(K4),
        PA_A.add(K4),
        attrs().with(Attributes::READ_ONLY, true),
    );
    assert_eq!(
        m.store(1, VA.add(K4), 1).unwrap().unwrap_err().kind,
        FaultKind::Permission
    );
    assert_eq!(m.read_desc(slot2).unwrap().0 & (1 << 7), 1 << 7);

    let mut m = machine4k();
    let slot = map_page(&mut m, VA, PA_A, clean);
    assert_eq!(
        m.store(1, VA, 0xdead).unwrap().unwrap_err().kind,
        FaultKind::Permission
    );
    assert_eq!(
        m.read_desc(slot).unwrap(),
        page(PA_A, clean),
        "no update without HD"
    );
    assert_eq!(m.load(1, VA).unwrap(), Ok(0));
}

/// Stores through a read-only entry give a permission fault at the leaf's
/// level, loads succeed; an invalid descriptor gives a translation fault at
/// the level where the walk stopped, and a reserved encoding (bits[1:0] =
/// 0b01 at level 3, D8.3.1) does too.
#[test]
fn permission_and_translation_faults() {
    let mut m = machine4k();
    let ro = attrs().with(Attributes::READ_ONLY, true);
    let slot = map_page(&mut m, VA, PA_A, ro);
    assert_eq!(m.load(1, VA).unwrap(), Ok(0));
    assert_eq!(
        m.store(1, VA, 7).unwrap(),
        Err(Fault {
            kind: FaultKind::Permission,
            va: VA,
            level: Some(3)
        })
    );
    // The same from the TLB entry the load cached.
    assert!(!leaves_of(&m, 1).is_empty());
    assert_eq!(
        m.store(1, VA, 7).unwrap().unwrap_err().kind,
        FaultKind::Permission
    );

    // Neighbouring page in the same L3 table: invalid -> level 3 fault.
    let next = VA.add(K4);
    assert_eq!(
        m.load(1, next).unwrap(),
        Err(Fault {
            kind: FaultKind::Translation,
            va: next,
            level: Some(3)
        })
    );
    // A VA in another 1 GiB region: the L1 entry is invalid.
    let far = VA.add(1 << 30);
    assert_eq!(m.load(1, far).unwrap().unwrap_err().level, Some(1));
    // A reserved level 3 encoding faults and is not cached.
    let l3_next = slot.add(8);
    m.store_desc(0, l3_next, Descriptor(PA_A.add(K4).0 | 0x401))
        .unwrap();
    m.dsb(0, DsbKind::IshSt).unwrap();
    assert_eq!(
        m.load(1, next).unwrap().unwrap_err().kind,
        FaultKind::Translation
    );
    assert_eq!(leaves_of(&m, 1).len(), 1);
}

/// R_MRRPW (FEAT_BBM level 1): an access through a block with nT set may
/// give a Translation fault, or succeed without caching the translation;
/// both outcomes must be offered.
#[test]
fn nt_block_at_bbm_level1() {
    let cfg = config(Granule::K4, |c| c.features.bbm = BbmLevel::Level1);
    let mut m = Machine::new(cfg, 64 << 20).unwrap();
    m.map(VA, PA_A, 2 << 20, 2, attrs().with(Attributes::NT, true))
        .unwrap();
    let va = VA.add(0x1_2345);
    let ch = m.choices(1, va, Access::Load);
    assert!(ch.iter().any(|c| matches!(
        c.result,
        Err(Fault {
            kind: FaultKind::Translation,
            level: Some(2),
            ..
        })
    )));
    let ok = ch
        .iter()
        .find(|c| c.result.is_ok())
        .expect("a successful outcome");
    assert_eq!(ok.result.unwrap().pa, PA_A.add(0x1_2345));
    assert!(ok.fills.iter().all(|e| !e.is_leaf()), "nT leaf not cached");
    assert_eq!(m.commit(1, ok), Some(ok.result));
    assert!(leaves_of(&m, 1).is_empty());
    // So the next access walks again rather than hitting.
    assert!(
        m.choices(1, va, Access::Load)
            .iter()
            .all(|c| !matches!(c.via, Via::Tlb(_)))
    );
}

/// 16KB granule geometry (D8.2): level 0 resolves VA[47] only (2 entries),
/// levels 1..3 resolve 11 bits each from VA[46:36], VA[35:25], VA[24:14].
#[test]
fn granule_16k_page_translates() {
    let g = Granule::K16;
    let mut m = Machine::new(Config::new(g, 2), 64 << 20).unwrap();
    let va = VirtAddr(VA.0 + (5 << 36) + (7 << 25) + (9 << 14));
    let pa = PhysAddr(0x200_0000 + 3 * (16 << 10));
    m.map(va, pa, 16 << 10, 3, attrs()).unwrap();
    let l0 = m.root().add(8); // VA[47] = 1
    let l1 = Descriptor(m.walker_read(l0))
        .as_table(g, 0)
        .unwrap()
        .add(5 * 8);
    let l2 = Descriptor(m.walker_read(l1))
        .as_table(g, 1)
        .unwrap()
        .add(7 * 8);
    let l3 = Descriptor(m.walker_read(l2))
        .as_table(g, 2)
        .unwrap()
        .add(9 * 8);
    assert_eq!(m.desc_pa(va, 3).unwrap(), l3);
    assert_eq!(
        m.walker_read(l3),
        Descriptor::leaf(g, 3, pa, attrs()).unwrap().0
    );
    let t = m
        .translate(1, va.add(0x3ff8), Access::Load)
        .unwrap()
        .unwrap();
    assert_eq!((t.pa, t.level, t.size), (pa.add(0x3ff8), 3, 16 << 10));
    // The next 16K page is not mapped.
    assert!(
        m.translate(1, va.add(16 << 10), Access::Load)
            .unwrap()
            .is_err()
    );
}

/// 64KB granule geometry (D8.2): the walk starts at level 1 with 64 entries
/// (VA[47:42]), then 13 bits per level: VA[41:29], VA[28:16]; a level 2
/// block maps 512 MiB with OA bits [47:29].
#[test]
fn granule_64k_page_and_block_translate() {
    let g = Granule::K64;
    let mut m = Machine::new(Config::new(g, 2), 64 << 20).unwrap();
    let va = VirtAddr(VA.0 + (3 << 29) + (5 << 16));
    let pa = PhysAddr(0x300_0000);
    m.map(va, pa, 64 << 10, 3, attrs()).unwrap();
    let l1 = m.root().add(32 * 8); // VA[47:42] of 0xffff_8... = 0b100000
    let l2 = Descriptor(m.walker_read(l1))
        .as_table(g, 1)
        .unwrap()
        .add(3 * 8);
    let l3 = Descriptor(m.walker_read(l2))
        .as_table(g, 2)
        .unwrap()
        .add(5 * 8);
    assert_eq!(m.desc_pa(va, 3).unwrap(), l3);
    let t = m
        .translate(0, va.add(0xfff8), Access::Load)
        .unwrap()
        .unwrap();
    assert_eq!((t.pa, t.level, t.size), (pa.add(0xfff8), 3, 64 << 10));
    assert_eq!(walks_of(&m, 0).len(), 2, "walk caches for L1 and L2 only");

    let bva = VirtAddr(VA.0 + (1 << 30));
    let bpa = PhysAddr(0x4000_0000);
    m.map(bva, bpa, 512 << 20, 2, attrs()).unwrap();
    let t = m
        .translate(1, bva.add(0x1234_5678), Access::Load)
        .unwrap()
        .unwrap();
    assert_eq!(
        (t.pa, t.level, t.size),
        (bpa.add(0x1234_5678), 2, 512 << 20)
    );
    // The TLB entry covers the whole block.
    let e = leaves_of(&m, 1)[0];
    assert_eq!((e.va, e.size()), (bva, 512 << 20));
    assert_eq!(
        e.translate(bva.add((512 << 20) - 8)),
        Some(bpa.add((512 << 20) - 8))
    );
}

/// FEAT_HAFDBS dirty state through a cached entry: once a load has cached
/// a writable-clean entry (AP[2] = 1, DBM = 1), a store hitting that TLB
/// entry must still perform the atomic dirty-state update of the
/// descriptor (AP[2] := 0) rather than take a permission fault (Arm ARM
/// D8.4.6 "Hardware management of dirty state": with TCR_EL1.HD = 1 a
/// write to a DBM=1 entry does not generate a permission fault).
///
/// The clean entry is replaced, not joined, by the dirty one: a later store
/// has one way to resolve, not a false TLB conflict.
#[test]
fn dirty_update_through_a_cached_clean_entry() {
    let clean = attrs().with(Attributes::READ_ONLY | Attributes::DBM, true);
    let cfg = config(Granule::K4, |c| c.features.hw_dbm = true);
    let mut m = Machine::new(cfg, 64 << 20).unwrap();
    let slot = map_page(&mut m, VA, PA_A, clean);
    assert_eq!(m.load(1, VA).unwrap(), Ok(0));
    assert_eq!(m.store(1, VA, 0xdead).unwrap(), Ok(()));
    assert_eq!(
        m.read_desc(slot).unwrap(),
        page(PA_A, attrs().with(Attributes::DBM, true))
    );
    let again = m.choices(1, VA, Access::Store);
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].result.is_ok());
}
