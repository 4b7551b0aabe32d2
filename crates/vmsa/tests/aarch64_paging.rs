//! Cross-checks of the model's 4KB stage 1 descriptors against the
//! `aarch64-paging` crate (an independent implementation used by real
//! firmware): tables built by that crate must decode, walk and re-encode
//! exactly as the model says (Arm ARM D8.3, VMSAv8-64 descriptor formats).

use aarch64_paging::descriptor::{El1Attributes as A, PhysicalAddress};
use aarch64_paging::paging::{Constraints, El1And0, MemoryRegion, RootTable, VaRange};
use aarch64_paging::target::TargetAllocator;
use proptest::prelude::*;
use vmsa::descriptor::{Table, TableAttrs};
use vmsa::tlb::TlbKind;
use vmsa::walk::walk;
use vmsa::{
    Attributes, Descriptor, Entry, Granule, Leaf, LeafAttrs, PhysAddr, Shareability, VirtAddr,
};

const G: Granule = Granule::K4;
/// Where the crate's tables would be loaded on the target.
const TABLE_BASE: u64 = 0x8000_0000;
const PAGE: u64 = 4096;

type Root = RootTable<El1And0, TargetAllocator<A>>;

/// The one-bit attributes, paired by name (not by bit position).
const FLAGS: [(A, Attributes); 11] = [
    (A::NS, Attributes::NS),
    (A::USER, Attributes::USER),
    (A::READ_ONLY, Attributes::READ_ONLY),
    (A::ACCESSED, Attributes::AF),
    (A::NON_GLOBAL, Attributes::NG),
    (A::NT, Attributes::NT),
    (A::GP, Attributes::GP),
    (A::DBM, Attributes::DBM),
    (A::CONTIGUOUS_OR_PROTECTED, Attributes::CONTIGUOUS),
    (A::PXN, Attributes::PXN),
    (A::UXN, Attributes::UXN),
];
const SW: [A; 4] = [A::SWFLAG_0, A::SWFLAG_1, A::SWFLAG_2, A::SWFLAG_3];
const INDEX: [A; 8] = [
    A::ATTRIBUTE_INDEX_0,
    A::ATTRIBUTE_INDEX_1,
    A::ATTRIBUTE_INDEX_2,
    A::ATTRIBUTE_INDEX_3,
    A::ATTRIBUTE_INDEX_4,
    A::ATTRIBUTE_INDEX_5,
    A::ATTRIBUTE_INDEX_6,
    A::ATTRIBUTE_INDEX_7,
];
const SH: [(A, Shareability); 3] = [
    (A::empty(), Shareability::NonShareable),
    (A::OUTER_SHAREABLE, Shareability::Outer),
    (A::INNER_SHAREABLE, Shareability::Inner),
];

/// One attribute combination, as the crate's flags and as the model's
/// fields.
#[derive(Clone, Copy, Debug)]
struct Combo {
    theirs: A,
    ours: LeafAttrs,
}

/// Builds a combination from a bit set over `FLAGS` (bits 0..11) and `SW`
/// (bits 11..15), an attribute index and a shareability.
fn combo(set: u32, index: usize, sh: usize) -> Combo {
    let mut theirs = A::VALID | INDEX[index] | SH[sh].0;
    let mut ours = LeafAttrs {
        attr_indx: index as u8,
        sh: SH[sh].1,
        ..Default::default()
    };
    for (i, (t, o)) in FLAGS.iter().enumerate() {
        if set & (1 << i) != 0 {
            theirs |= *t;
            ours.flags |= *o;
        }
    }
    for (i, t) in SW.iter().enumerate() {
        if set & (1 << (FLAGS.len() + i)) != 0 {
            theirs |= *t;
            ours.sw |= 1 << i;
        }
    }
    Combo { theirs, ours }
}

const NT_BIT: u32 = 5;

fn new_root(range: VaRange) -> Root {
    RootTable::with_va_range(TargetAllocator::new(TABLE_BASE), 0, El1And0, range)
}

/// Reads the crate's tables as a walker would, by physical address.
fn reader(root: &Root) -> impl Fn(PhysAddr) -> u64 {
    let bytes = root.translation().as_bytes();
    move |pa: PhysAddr| {
        let off = usize::try_from(pa.0 - TABLE_BASE).unwrap();
        u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap())
    }
}

/// Returns every descriptor the crate's `walk_range` reports for
/// `[start, end)`: (first VA of the step, raw value, level).
fn leaves(root: &Root, start: u64, end: u64) -> Vec<(u64, u64, u8)> {
    let mut out = Vec::new();
    root.walk_range(
        &MemoryRegion::new(start as usize, end as usize),
        &mut |mr, d, level| {
            let raw = d.output_address().0 as u64 | d.flags().bits() as u64;
            out.push((mr.start().0 as u64, raw, level as u8));
            Ok(())
        },
    )
    .unwrap();
    out
}

/// Checks one leaf the crate wrote at `level` for `va`:
/// - the model decodes it as a block (levels 1, 2) or page (level 3) with
///   the expected OA and attributes;
/// - the model's encoder builds the same 64-bit value from those fields;
/// - the model's walker, reading the crate's table bytes, reaches the same
///   descriptor at the same level through table descriptors only.
fn check_leaf(root: &Root, va: u64, raw: u64, level: u8, oa: u64, c: &Combo) {
    let leaf = Leaf {
        oa: PhysAddr(oa),
        attrs: c.ours,
    };
    let want = if level == 3 {
        Entry::Page(leaf)
    } else {
        Entry::Block(leaf)
    };
    assert_eq!(
        Descriptor(raw).decode(G, level),
        want,
        "raw {raw:#018x} level {level} flags {:?}",
        c.theirs
    );
    assert_eq!(
        Descriptor::leaf(G, level, PhysAddr(oa), c.ours),
        Ok(Descriptor(raw)),
        "flags {:?}",
        c.theirs
    );
    let read = reader(root);
    let walked = walk(
        G,
        VirtAddr(va),
        0,
        PhysAddr(root.to_physical().0 as u64),
        &read,
    );
    let (wleaf, wlevel, _, wd) = walked.result.expect("model walk must succeed");
    assert_eq!((wleaf, wlevel, wd), (leaf, level, Descriptor(raw)));
    assert_eq!(walked.tables.len(), usize::from(level));
    for t in &walked.tables {
        assert!(matches!(t.kind, TlbKind::Walk { next } if next.0 >= TABLE_BASE));
    }
}

/// Visits every table of the crate's hierarchy from the root: each valid
/// entry at levels 0..2 with bits[1:0] = 0b11 must decode as a table
/// descriptor with no hierarchical attributes whose encoding is the raw
/// value (D8.3.2); returns how many table descriptors were seen.
fn check_tables(root: &Root) -> usize {
    fn visit(read: &dyn Fn(PhysAddr) -> u64, table: PhysAddr, level: u8) -> usize {
        let mut n = 0;
        for i in 0..G.entries_per_table() as u64 {
            let raw = read(table.add(i * 8));
            if raw & 3 != 3 || level == 3 {
                continue;
            }
            let d = Descriptor(raw);
            let next = PhysAddr(raw & G.table_addr_mask());
            assert_eq!(
                d.decode(G, level),
                Entry::Table(Table {
                    next,
                    attrs: TableAttrs::default()
                })
            );
            assert_eq!(Descriptor::table(G, level, next), Ok(d));
            n += 1 + visit(read, next, level + 1);
        }
        n
    }
    let read = reader(root);
    visit(&read, PhysAddr(root.to_physical().0 as u64), 0)
}

/// The grid: every single flag (nT for blocks only) and the empty set, each
/// with every AttrIndx and every shareability, at level 3 (4K pages),
/// level 2 (2 MiB blocks) and level 1 (1 GiB blocks): 360 + 384 + 384
/// descriptors written by aarch64-paging and checked against the model.
#[test]
fn grid_of_single_attributes_matches() {
    let mut root = new_root(VaRange::Lower);
    // (level, VA base, OA base, size)
    let layout: [(u8, u64, u64, u64); 3] = [
        (3, 0x10_0000_0000, 0x8_0000_0000, PAGE),
        (2, 0x20_0000_0000, 0x1000_0000_0000, 2 << 20),
        (1, 0x80_0000_0000, 0x7000_0000_0000, 1 << 30),
    ];
    let mut total = 0;
    for (level, va0, oa0, size) in layout {
        let mut combos = Vec::new();
        for bit in (0..FLAGS.len() + SW.len()).map(Some).chain([None]) {
            if level == 3 && bit == Some(NT_BIT as usize) {
                continue;
            }
            let set = bit.map_or(0, |b| 1 << b);
            for index in 0..8 {
                for sh in 0..3 {
                    combos.push(combo(set, index, sh));
                }
            }
        }
        assert!(combos.len() <= 512);
        for (i, c) in combos.iter().enumerate() {
            let va = va0 + i as u64 * size;
            // A different OA pattern per level: every few entries skip one.
            let oa = oa0 + (i as u64 + i as u64 / 3) * size;
            root.map_range(
                &MemoryRegion::new(va as usize, (va + size) as usize),
                PhysicalAddress(oa as usize),
                c.theirs,
                Constraints::empty(),
            )
            .unwrap();
        }
        let found = leaves(&root, va0, va0 + combos.len() as u64 * size);
        assert_eq!(found.len(), combos.len());
        for (i, (va, raw, l)) in found.into_iter().enumerate() {
            assert_eq!(l, level);
            assert_eq!(va, va0 + i as u64 * size);
            let oa = oa0 + (i as u64 + i as u64 / 3) * size;
            check_leaf(&root, va, raw, level, oa, &combos[i]);
        }
        total += combos.len();
    }
    assert_eq!(total, 360 + 384 + 384);
    // L0 -> L1 for 0x10_0000_0000 .. and 0x80_0000_0000 (two L0 entries),
    // L1 -> L2 tables, L2 -> L3 tables: all decode as tables.
    assert!(check_tables(&root) >= 5);
}

/// When aarch64-paging maps a page inside a 2 MiB block it splits the block
/// into a level 3 table of pages with the block's attributes (adding the
/// page type bit): the model must decode each as a page of the same
/// attributes and the matching slice of the block's OA.
#[test]
fn split_block_gives_pages_with_block_attributes() {
    let mut root = new_root(VaRange::Lower);
    let va0 = 0x4000_0000u64;
    let oa0 = 0x1_2340_0000u64;
    let block = combo(0x169c, 2, 2);
    assert!(!block.theirs.contains(A::NT));
    root.map_range(
        &MemoryRegion::new(va0 as usize, (va0 + (2 << 20)) as usize),
        PhysicalAddress(oa0 as usize),
        block.theirs,
        Constraints::empty(),
    )
    .unwrap();
    let before = leaves(&root, va0, va0 + (2 << 20));
    assert_eq!(before.len(), 1);
    check_leaf(&root, va0, before[0].1, 2, oa0, &block);

    let page = combo(0x400a, 4, 1);
    let hole = va0 + 0x7_000;
    root.map_range(
        &MemoryRegion::new(hole as usize, (hole + PAGE) as usize),
        PhysicalAddress(0x9_9999_9000),
        page.theirs,
        Constraints::empty(),
    )
    .unwrap();
    let after = leaves(&root, va0, va0 + (2 << 20));
    assert_eq!(after.len(), 512);
    for (va, raw, level) in after {
        assert_eq!(level, 3);
        if va == hole {
            check_leaf(&root, va, raw, 3, 0x9_9999_9000, &page);
        } else {
            check_leaf(&root, va, raw, 3, oa0 + (va - va0), &block);
        }
    }
    // L0, L1, L2 table descriptors.
    assert_eq!(check_tables(&root), 3);
}

/// TTBR1 (upper) range: the crate indexes kernel VAs the way the model
/// does for a 48-bit VA (VA[47:39] at level 0).
#[test]
fn upper_range_kernel_va_walks_the_same() {
    let mut root = new_root(VaRange::Upper);
    let va = 0xffff_8000_0012_3000u64;
    let c = combo(0b0110_0000_1000, 0, 2); // AF, PXN, UXN, Inner
    root.map_range(
        &MemoryRegion::new(va as usize, (va + PAGE) as usize),
        PhysicalAddress(0x4000_1000),
        c.theirs,
        Constraints::empty(),
    )
    .unwrap();
    let found = leaves(&root, va, va + PAGE);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1, 0x0060_0000_4000_1703);
    check_leaf(&root, va, found[0].1, 3, 0x4000_1000, &c);
    assert_eq!(check_tables(&root), 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random combinations of many flags at once, random AttrIndx,
    /// shareability, level (1, 2 or 3) and OA below 2^48.
    #[test]
    fn random_attribute_sets_match(
        set in 0u32..(1 << 15),
        index in 0usize..8,
        sh in 0usize..3,
        level in 1u8..=3,
        oa in 0u64..(1 << 48),
        slot in 0u64..512,
    ) {
        let mut set = set;
        if level == 3 {
            set &= !(1 << NT_BIT);
        }
        let c = combo(set, index, sh);
        let size = G.level_size(level);
        let oa = oa & G.oa_mask(level);
        let va = 0x40_0000_0000 + slot * size;
        let mut root = new_root(VaRange::Lower);
        root.map_range(
            &MemoryRegion::new(va as usize, (va + size) as usize),
            PhysicalAddress(oa as usize),
            c.theirs,
            Constraints::empty(),
        )
        .unwrap();
        let found = leaves(&root, va, va + size);
        prop_assert_eq!(found.len(), 1);
        let (fva, raw, l) = found[0];
        prop_assert_eq!((fva, l), (va, level));
        check_leaf(&root, va, raw, level, oa, &c);
        prop_assert_eq!(check_tables(&root), usize::from(level));
    }
}
