//! Property tests of the bit-exact descriptor encodings (Arm ARM DDI0487
//! D8.3 "Translation table descriptor formats", VMSAv8-64, 48-bit OA).

use proptest::prelude::*;
use vmsa::descriptor::{Table, TableAttrs};
use vmsa::{
    Attributes, Descriptor, Entry, Granule, Leaf, LeafAttrs, PhysAddr, Shareability, VmsaError,
};

/// Bits [11:2] and [58:51] of a table descriptor are ignored (D8.3.2).
const TABLE_IGNORED: u64 = 0x0000_0000_0000_0ffc | (0xff << 51);

fn every_level() -> Vec<(Granule, u8)> {
    Granule::ALL
        .iter()
        .flat_map(|&g| g.levels().map(move |l| (g, l)))
        .collect()
}

fn shareability() -> impl Strategy<Value = Shareability> {
    prop_oneof![
        Just(Shareability::NonShareable),
        Just(Shareability::Reserved),
        Just(Shareability::Outer),
        Just(Shareability::Inner),
    ]
}

fn sh_bits(sh: Shareability) -> u64 {
    match sh {
        Shareability::NonShareable => 0,
        Shareability::Reserved => 1,
        Shareability::Outer => 2,
        Shareability::Inner => 3,
    }
}

fn leaf_attrs() -> impl Strategy<Value = LeafAttrs> {
    (any::<u64>(), 0u8..8, shareability(), 0u8..16, 0u8..32).prop_map(
        |(flags, attr_indx, sh, sw, ignored)| LeafAttrs {
            flags: Attributes::from_bits_truncate(flags),
            attr_indx,
            sh,
            sw,
            ignored,
            res0: 0,
        },
    )
}

fn table_attrs() -> impl Strategy<Value = TableAttrs> {
    (
        any::<bool>(),
        any::<bool>(),
        0u8..4,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(pxn_table, uxn_table, ap_table, ns_table, ign)| TableAttrs {
                pxn_table,
                uxn_table,
                ap_table,
                ns_table,
                ignored: ign & TABLE_IGNORED,
                res0: 0,
            },
        )
}

/// The leaf encoding computed independently of the model, straight from
/// the D8.3 field table.
fn reference_leaf(level: u8, oa: u64, a: &LeafAttrs) -> u64 {
    1 | if level == 3 { 2 } else { 0 }
        | oa
        | a.flags.bits()
        | (u64::from(a.attr_indx) << 2)
        | (sh_bits(a.sh) << 8)
        | (u64::from(a.sw) << 55)
        | (u64::from(a.ignored) << 59)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Decoding then encoding any 64-bit value at any level of any granule
    /// gives the value back bit for bit (Invalid and Reserved included):
    /// the model never loses bits software may rely on (D8.3: bits of an
    /// invalid descriptor are ignored by hardware and free for software).
    #[test]
    fn decode_encode_round_trips_every_u64(d in any::<u64>()) {
        for (g, l) in every_level() {
            let e = Descriptor(d).decode(g, l);
            prop_assert_eq!(e.encode(g, l), Ok(Descriptor(d)), "{} L{} {:?}", g, l, e);
        }
    }

    /// The same with the valid bit set and the type bit chosen, so that
    /// every descriptor type is exercised at every level with many cases.
    #[test]
    fn decode_encode_round_trips_valid_descriptors(d in any::<u64>(), table in any::<bool>()) {
        let d = (d & !3) | 1 | if table { 2 } else { 0 };
        for (g, l) in every_level() {
            let e = Descriptor(d).decode(g, l);
            match (l, table) {
                (3, true) => prop_assert!(matches!(e, Entry::Page(_))),
                // D8.3.1: bits[1:0] = 0b01 at level 3 is reserved (invalid).
                (3, false) => prop_assert_eq!(e, Entry::Reserved(d)),
                (_, true) => prop_assert!(matches!(e, Entry::Table(_))),
                (_, false) if g.block_allowed(l) => prop_assert!(matches!(e, Entry::Block(_))),
                (_, false) => prop_assert_eq!(e, Entry::Reserved(d)),
            }
            prop_assert_eq!(e.encode(g, l), Ok(Descriptor(d)));
        }
    }

    /// A block (levels with blocks) or page (level 3) built from fields
    /// decodes to the same leaf, and matches the independent encoding;
    /// where the granule has no block at that level (4K L0, 16K L0/L1, 64K
    /// L1 with a 48-bit OA, D8.3.1) building one is an error.
    #[test]
    fn leaf_fields_round_trip(attrs in leaf_attrs(), raw_oa in any::<u64>()) {
        for (g, l) in every_level() {
            let oa = PhysAddr(raw_oa & g.oa_mask(l));
            let mut attrs = attrs;
            if l == 3 {
                // nT exists only in block descriptors (R_MRRPW).
                attrs.flags.remove(Attributes::NT);
            }
            let built = Descriptor::leaf(g, l, oa, attrs);
            if l == 3 || g.block_allowed(l) {
                let d = built.expect("leaf must encode");
                prop_assert_eq!(d.0, reference_leaf(l, oa.0, &attrs));
                let leaf = Leaf { oa, attrs };
                let want = if l == 3 { Entry::Page(leaf) } else { Entry::Block(leaf) };
                prop_assert_eq!(d.decode(g, l), want);
                prop_assert_eq!(want.encode(g, l), Ok(d));
            } else {
                prop_assert_eq!(built, Err(VmsaError::NoBlockAtLevel { granule: g, level: l }));
            }
        }
    }

    /// `leaf_oa` is `as_leaf`'s output address for any value at any level,
    /// and a leaf built at address 0 then given an address with `with_oa`
    /// is the leaf built at that address (or the same error for a bad one).
    #[test]
    fn leaf_oa_and_with_oa_agree_with_the_full_encoding(
        d in any::<u64>(),
        attrs in leaf_attrs(),
        raw_oa in any::<u64>(),
        aligned in any::<bool>(),
    ) {
        for (g, l) in every_level() {
            let d = Descriptor(d);
            prop_assert_eq!(d.leaf_oa(g, l), d.as_leaf(g, l).map(|x| x.oa));
            let mut attrs = attrs;
            if l == 3 {
                attrs.flags.remove(Attributes::NT);
            }
            let oa = PhysAddr(if aligned { raw_oa & g.oa_mask(l) } else { raw_oa });
            if let Ok(t) = Descriptor::leaf(g, l, PhysAddr(0), attrs) {
                prop_assert_eq!(t.with_oa(g, l, oa), Descriptor::leaf(g, l, oa, attrs));
            }
        }
    }

    /// nT (bit 16) is a block-only bit: a page descriptor with nT is
    /// refused (R_MRRPW); at level 3 of the 4K granule bit 16 is OA[16].
    #[test]
    fn page_rejects_nt(attrs in leaf_attrs(), raw_oa in any::<u64>()) {
        for g in Granule::ALL {
            let oa = PhysAddr(raw_oa & g.oa_mask(3));
            let attrs = attrs.with(Attributes::NT, true);
            let r = Descriptor::leaf(g, 3, oa, attrs);
            prop_assert!(matches!(r, Err(VmsaError::Field { .. })), "{:?}", r);
        }
    }

    /// Table descriptors at levels 0..2 round-trip their next-level address
    /// and hierarchical attributes; level 3 has no tables.
    #[test]
    fn table_fields_round_trip(attrs in table_attrs(), raw in any::<u64>()) {
        for (g, l) in every_level() {
            let next = PhysAddr(raw & g.table_addr_mask());
            let built = Descriptor::table_with(g, l, next, attrs);
            if l == 3 {
                prop_assert_eq!(built, Err(VmsaError::NoTableAtLevel { granule: g, level: 3 }));
                continue;
            }
            let d = built.expect("table must encode");
            let want = 0b11
                | next.0
                | (u64::from(attrs.pxn_table) << 59)
                | (u64::from(attrs.uxn_table) << 60)
                | (u64::from(attrs.ap_table) << 61)
                | (u64::from(attrs.ns_table) << 63)
                | attrs.ignored;
            prop_assert_eq!(d.0, want);
            prop_assert_eq!(d.decode(g, l), Entry::Table(Table { next, attrs }));
        }
    }

    /// An output address not aligned to the size the leaf maps is refused,
    /// as is one of 48 bits or more; the same for a table's next address
    /// (aligned to the granule).
    #[test]
    fn bad_addresses_are_refused(raw in any::<u64>(), low in 1u64..(1 << 29), high in 48u32..64) {
        for (g, l) in every_level() {
            let attrs = LeafAttrs::default();
            let size = g.level_size(l);
            let mis = (raw & g.oa_mask(l)) | (low & (size - 1)).max(1);
            let wide = (raw & g.oa_mask(l)) | (1 << high);
            if l == 3 || g.block_allowed(l) {
                prop_assert_eq!(
                    Descriptor::leaf(g, l, PhysAddr(mis), attrs),
                    Err(VmsaError::Misaligned { addr: mis, align: size })
                );
                prop_assert_eq!(
                    Descriptor::leaf(g, l, PhysAddr(wide), attrs),
                    Err(VmsaError::AddressTooWide { addr: wide })
                );
            }
            if l < 3 {
                let tmis = (raw & g.table_addr_mask()) | (low & (g.page_size() - 1)).max(1);
                let twide = (raw & g.table_addr_mask()) | (1 << high);
                prop_assert_eq!(
                    Descriptor::table(g, l, PhysAddr(tmis)),
                    Err(VmsaError::Misaligned { addr: tmis, align: g.page_size() })
                );
                prop_assert_eq!(
                    Descriptor::table(g, l, PhysAddr(twide)),
                    Err(VmsaError::AddressTooWide { addr: twide })
                );
            }
        }
    }
}

fn kernel_attrs() -> LeafAttrs {
    LeafAttrs {
        flags: Attributes::AF | Attributes::PXN | Attributes::UXN,
        sh: Shareability::Inner,
        ..Default::default()
    }
}

/// 4K L3 page at 0x4000_1000, AF, SH=Inner, AttrIndx 0, PXN, UXN:
/// valid(1) | page(2) | SH (3 << 8) | AF (1 << 10) | PXN (1 << 53) | UXN (1 << 54).
#[test]
fn known_4k_page_encoding() {
    let d = Descriptor::leaf(Granule::K4, 3, PhysAddr(0x4000_1000), kernel_attrs()).unwrap();
    assert_eq!(d, Descriptor(0x0060_0000_4000_1703));
    match d.decode(Granule::K4, 3) {
        Entry::Page(l) => {
            assert_eq!(l.oa, PhysAddr(0x4000_1000));
            assert_eq!(l.attrs, kernel_attrs());
        }
        e => panic!("{e:?}"),
    }
    // The same bits at level 2 are a table descriptor (bits[1:0] = 0b11).
    assert!(matches!(d.decode(Granule::K4, 2), Entry::Table(_)));
}

/// 4K L2 block at 0x4020_0000 with nT (bit 16, FEAT_BBM, R_MRRPW) and
/// AttrIndx 4 (MT_DEVICE_nGnRE in Linux's MAIR).
#[test]
fn known_4k_block_with_nt() {
    let attrs = LeafAttrs {
        flags: Attributes::AF | Attributes::NT,
        attr_indx: 4,
        sh: Shareability::Inner,
        ..Default::default()
    };
    let d = Descriptor::leaf(Granule::K4, 2, PhysAddr(0x4020_0000), attrs).unwrap();
    assert_eq!(d, Descriptor(0x0000_0000_4021_0711));
    assert_eq!(
        d.decode(Granule::K4, 2),
        Entry::Block(Leaf {
            oa: PhysAddr(0x4020_0000),
            attrs
        })
    );
    // A 2 MiB block needs OA[20:12] zero.
    assert_eq!(
        Descriptor::leaf(Granule::K4, 2, PhysAddr(0x4020_1000), attrs),
        Err(VmsaError::Misaligned {
            addr: 0x4020_1000,
            align: 2 << 20
        })
    );
    // Bit 16 of a 4K page is OA[16], not nT.
    let page = Descriptor(0x0000_0000_4021_0713).decode(Granule::K4, 3);
    assert_eq!(page.leaf().unwrap().oa, PhysAddr(0x4021_0000));
    assert!(!page.leaf().unwrap().attrs.flags.contains(Attributes::NT));
}

/// 64K L2 block (512 MiB): the OA is bits [47:29]; bits [28:17] are RES0
/// and bit 16 is nT (D8.3.1, 64KB granule block descriptor).
#[test]
fn known_64k_l2_block() {
    let oa = PhysAddr(0x0000_8000_6000_0000);
    let d = Descriptor::leaf(Granule::K64, 2, oa, kernel_attrs()).unwrap();
    assert_eq!(d, Descriptor(0x0060_8000_6000_0701));
    assert_eq!(Granule::K64.oa_mask(2), 0x0000_ffff_e000_0000);
    // Bit 28 set is a RES0 bit kept verbatim, not part of the OA.
    match Descriptor(d.0 | 1 << 28).decode(Granule::K64, 2) {
        Entry::Block(l) => {
            assert_eq!(l.oa, oa);
            assert_eq!(l.attrs.res0, 1 << 28);
        }
        e => panic!("{e:?}"),
    }
    // 64K has no level-1 block with a 48-bit OA, and no level 0 at all.
    assert_eq!(
        Descriptor::leaf(Granule::K64, 1, PhysAddr(0), kernel_attrs()),
        Err(VmsaError::NoBlockAtLevel {
            granule: Granule::K64,
            level: 1
        })
    );
    assert_eq!(
        Descriptor::leaf(Granule::K64, 0, PhysAddr(0), kernel_attrs()),
        Err(VmsaError::NoSuchLevel {
            granule: Granule::K64,
            level: 0
        })
    );
    // A 64K table descriptor keeps next-level address bits [47:16].
    let t = Descriptor::table(Granule::K64, 2, PhysAddr(0x1234_0000)).unwrap();
    assert_eq!(t, Descriptor(0x1234_0003));
    assert_eq!(t.as_table(Granule::K64, 2), Some(PhysAddr(0x1234_0000)));
}

/// Blocks are refused exactly where D8.3.1 has none with a 48-bit OA: 4K
/// level 0, 16K levels 0 and 1, 64K level 1; and such a descriptor in memory
/// decodes as reserved (a translation fault).
#[test]
fn block_levels_follow_the_arm_arm() {
    for (g, l) in [
        (Granule::K4, 0),
        (Granule::K16, 0),
        (Granule::K16, 1),
        (Granule::K64, 1),
    ] {
        assert_eq!(
            Descriptor::leaf(g, l, PhysAddr(0), kernel_attrs()),
            Err(VmsaError::NoBlockAtLevel {
                granule: g,
                level: l
            })
        );
        assert_eq!(Descriptor(0x401).decode(g, l), Entry::Reserved(0x401));
    }
    for (g, l) in [
        (Granule::K4, 1),
        (Granule::K4, 2),
        (Granule::K16, 2),
        (Granule::K64, 2),
    ] {
        assert!(Descriptor::leaf(g, l, PhysAddr(0), kernel_attrs()).is_ok());
    }
}
