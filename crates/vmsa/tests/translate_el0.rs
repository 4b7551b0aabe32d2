//! The Exception level of an access ([`ExceptionLevel`]): AP\[1\] clear
//! denies an EL0 access (Arm ARM DDI 0487K.a D8.4.1.2.1, Table D8-49), in
//! a walk and on a TLB hit, after the Access flag fault and without a
//! hardware update (herd7: herdtools7 `herd/AArch64Sem.ml`, `check_ptw`);
//! an EL1 access is unaffected.

use std::collections::HashMap;

use vmsa::tlb::Tlb;
use vmsa::translate::{ExceptionLevel, Translator};
use vmsa::walk::Choice;
use vmsa::{
    Access, Attributes, Config, Descriptor, FaultKind, Granule, LeafAttrs, PhysAddr, VirtAddr,
};

const VA: VirtAddr = VirtAddr(0xffff_8000_0000_0000);
const ROOT: u64 = 0x1000;
const DATA: u64 = 0x10_0000;

/// Tables mapping `VA` to `DATA` with a page descriptor of `flags`.
fn tables(flags: Attributes) -> HashMap<u64, u64> {
    let g = Granule::K4;
    let mut mem = HashMap::new();
    let mut table = ROOT;
    for level in 0..3u8 {
        let next = table + 0x1000;
        let d = Descriptor::table(g, level, PhysAddr(next)).unwrap();
        mem.insert(table + 8 * g.index(level, VA.0) as u64, d.0);
        table = next;
    }
    let attrs = LeafAttrs {
        flags,
        ..LeafAttrs::default()
    };
    let d = Descriptor::leaf(g, 3, PhysAddr(DATA), attrs).unwrap();
    mem.insert(table + 8 * g.index(3, VA.0) as u64, d.0);
    mem
}

/// The choices of a `kind` access at `el`, with hardware AF management
/// `ha`, through `tlb`.
fn choices(
    flags: Attributes,
    el: ExceptionLevel,
    ha: bool,
    tlb: &Tlb,
    kind: Access,
) -> Vec<Choice> {
    let mem = tables(flags);
    let read = |pa: PhysAddr| mem.get(&pa.0).copied().unwrap_or(0);
    let mut config = Config::new(Granule::K4, 1);
    config.features.hw_af = ha;
    let t = Translator {
        config: &config,
        root: PhysAddr(ROOT),
        read: &read,
        same_page: None,
        el,
    };
    t.choices(tlb, 0, VA, kind)
}

fn kinds(cs: &[Choice]) -> Vec<Result<u64, FaultKind>> {
    cs.iter()
        .map(|c| c.result.map(|t| t.pa.0).map_err(|f| f.kind))
        .collect()
}

#[test]
fn el0_access_to_a_page_without_ap1_is_a_permission_fault() {
    let tlb = Tlb::default();
    let kernel = Attributes::AF;
    let user = Attributes::AF | Attributes::USER;
    for kind in [Access::Load, Access::Store] {
        let el0 = choices(kernel, ExceptionLevel::El0, false, &tlb, kind);
        assert_eq!(kinds(&el0), [Err(FaultKind::Permission)]);
        // A Permission fault may be cached (I_WZCBG): the leaf is among
        // the fills.
        assert!(el0[0].fills.iter().any(|e| e.is_leaf()));
        assert_eq!(
            kinds(&choices(kernel, ExceptionLevel::El1, false, &tlb, kind)),
            [Ok(DATA)]
        );
        assert_eq!(
            kinds(&choices(user, ExceptionLevel::El0, false, &tlb, kind)),
            [Ok(DATA)]
        );
    }
}

#[test]
fn el0_denial_comes_after_the_access_flag_and_sets_no_flag() {
    let tlb = Tlb::default();
    // AF clear, no HA: the Access flag fault first.
    let no_ha = choices(
        Attributes::empty(),
        ExceptionLevel::El0,
        false,
        &tlb,
        Access::Load,
    );
    assert_eq!(kinds(&no_ha), [Err(FaultKind::AccessFlag)]);
    // With HA: a Permission fault, AF not set, nothing cached but tables.
    let ha = choices(
        Attributes::empty(),
        ExceptionLevel::El0,
        true,
        &tlb,
        Access::Load,
    );
    assert_eq!(kinds(&ha), [Err(FaultKind::Permission)]);
    assert_eq!(ha[0].hw_update, None);
    assert!(ha[0].fills.iter().all(|e| !e.is_leaf()));
    // At EL1 the walk sets AF.
    let el1 = choices(
        Attributes::empty(),
        ExceptionLevel::El1,
        true,
        &tlb,
        Access::Load,
    );
    assert_eq!(kinds(&el1), [Ok(DATA)]);
    assert!(el1[0].hw_update.is_some());
}

#[test]
fn el0_hit_on_an_entry_without_ap1_is_a_permission_fault() {
    // The entry an EL1 walk cached.
    let fill = choices(
        Attributes::AF,
        ExceptionLevel::El1,
        false,
        &Tlb::default(),
        Access::Load,
    );
    let mut tlb = Tlb::default();
    for e in &fill[0].fills {
        tlb.insert(*e);
    }
    let hit = choices(
        Attributes::AF,
        ExceptionLevel::El0,
        false,
        &tlb,
        Access::Load,
    );
    assert_eq!(kinds(&hit), [Err(FaultKind::Permission)]);
    assert!(matches!(hit[0].via, vmsa::walk::Via::Tlb(_)));
    let el1 = choices(
        Attributes::AF,
        ExceptionLevel::El1,
        false,
        &tlb,
        Access::Load,
    );
    assert_eq!(kinds(&el1), [Ok(DATA)]);
}
