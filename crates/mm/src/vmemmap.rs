//! The vmemmap: where each `struct page` lives, how the range is mapped, and
//! what the struct pages of a hugetlb pool contain.
//!
//! Sources: the arm64 VA layout puts the vmemmap at `0xfffffc0000000000`
//! with a 48-bit VA (Documentation/arch/arm64/memory.rst, "2TB vmemmap"
//! for 4K and 64K pages); `vmemmap_populate()` (arch/arm64/mm/mmu.c) maps it
//! with 2 MiB PMD blocks when the kernel uses 4K pages and with base pages
//! otherwise, with `PROT_SECT_NORMAL` / `PAGE_KERNEL`.

use vmsa::{Attributes, Granule, LeafAttrs, Level, Shareability};

use crate::geometry::STRUCT_PAGE_SIZE;

/// The first VA of the vmemmap with a 48-bit VA.
pub const VMEMMAP_START: u64 = 0xffff_fc00_0000_0000;

/// Returns the VA of the struct page of `pfn`.
pub fn struct_page_va(pfn: u64) -> u64 {
    VMEMMAP_START + pfn * STRUCT_PAGE_SIZE
}

/// Returns the level of the leaves that map the vmemmap: PMD blocks with
/// the 4K granule, pages with 16K and 64K (`vmemmap_populate()`).
pub fn vmemmap_leaf_level(granule: Granule) -> Level {
    match granule {
        Granule::K4 => 2,
        Granule::K16 | Granule::K64 => 3,
    }
}

/// Linux's `PAGE_KERNEL` / `PROT_SECT_NORMAL` attributes on arm64: AF, inner
/// shareable, MT_NORMAL (AttrIndx 0), PXN, UXN, `PTE_WRITE` (= DBM),
/// global (arch/arm64/include/asm/pgtable-prot.h, `PROT_NORMAL`).
pub fn page_kernel() -> LeafAttrs {
    LeafAttrs {
        flags: Attributes::AF | Attributes::PXN | Attributes::UXN | Attributes::DBM,
        attr_indx: 0,
        sh: Shareability::Inner,
        ..LeafAttrs::default()
    }
}

/// Linux's `PAGE_KERNEL_RO`: `PROT_NORMAL` without `PTE_WRITE`, with
/// `PTE_RDONLY` (AP\[2\]).
pub fn page_kernel_ro() -> LeafAttrs {
    let mut a = page_kernel();
    a.flags.remove(Attributes::DBM);
    a.flags.insert(Attributes::READ_ONLY);
    a
}

/// How tail struct pages encode their head: by pointer (`compound_head =
/// head | 1`, every kernel since 2.6) or, in Kiryl Shutsemau's 2026 series
/// "eliminate fake head pages", by the folio's order, which makes every tail
/// of one order byte-identical.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum TailFormat {
    /// `compound_head = head | 1`.
    HeadPointer,
    /// Tails of one order are identical.
    Order,
}

/// Struct page word indexes (a 64-byte struct page is 8 words; the model
/// keeps the fields HVO touches: include/linux/mm_types.h).
pub mod word {
    /// `flags` (PG_head, zone bits, for page\[1\] the folio order).
    pub const FLAGS: u64 = 0;
    /// `compound_head` for tails; `lru.next` for heads and other pages.
    pub const COMPOUND_HEAD: u64 = 1;
    /// `lru.prev`, or folio fields in page\[1\] and page\[2\].
    pub const LRU_PREV: u64 = 2;
    /// `_mapcount` (low 32 bits) and `_refcount` (high 32 bits).
    pub const COUNTS: u64 = 5;
}

/// The model's `PG_head` flag bit (include/linux/page-flags.h; the real bit
/// number varies by config, the model needs only a fixed one).
pub const PG_HEAD: u64 = 1 << 6;
/// Zone and node bits every struct page of the model's one zone carries.
pub const FLAGS_BASE: u64 = 0x0200_0000_0000_0000;
/// `_mapcount == -1` in the low half, `_refcount` in the high half.
const MAPCOUNT_NONE: u64 = 0xffff_ffff;

/// The struct pages of a machine whose frames `pool_start..pool_start +
/// count << order` hold a hugetlb pool of order-`order` pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StructPages {
    /// First pfn of the pool.
    pub pool_start: u64,
    /// Number of huge pages.
    pub count: u64,
    /// Their order.
    pub order: u8,
    /// How tails encode their head.
    pub tails: TailFormat,
}

impl StructPages {
    /// Returns word `w` (0..8) of the boot-time struct page of `pfn`: a huge
    /// page's head (refcount 0, in the free pool), page\[1\] and page\[2\]
    /// with the folio's fields, plain tails, and ordinary pages outside the
    /// pool (refcount 1, on a list by their own address).
    pub fn word(&self, pfn: u64, w: u64) -> u64 {
        let end = self.pool_start + (self.count << self.order);
        if pfn < self.pool_start || pfn >= end {
            let me = struct_page_va(pfn);
            return match w {
                word::FLAGS => FLAGS_BASE,
                word::COMPOUND_HEAD => me + 8,
                word::LRU_PREV => me + 8,
                word::COUNTS => (1 << 32) | MAPCOUNT_NONE,
                _ => 0,
            };
        }
        let head = self.pool_start + ((pfn - self.pool_start) >> self.order << self.order);
        let i = pfn - head;
        if i == 0 {
            let me = struct_page_va(pfn);
            return match w {
                word::FLAGS => FLAGS_BASE | PG_HEAD,
                word::COMPOUND_HEAD | word::LRU_PREV => me + 8,
                word::COUNTS => MAPCOUNT_NONE,
                _ => 0,
            };
        }
        self.tail_word(head, i, w)
    }

    /// Returns word `w` of tail `i` (>= 1) of the huge page at `head`.
    pub fn tail_word(&self, head: u64, i: u64, w: u64) -> u64 {
        let link = match self.tails {
            TailFormat::HeadPointer => struct_page_va(head) | 1,
            TailFormat::Order => (u64::from(self.order) << 1) | 1,
        };
        match (i, w) {
            (_, word::COMPOUND_HEAD) => link,
            (1, word::FLAGS) => FLAGS_BASE | u64::from(self.order),
            (1, word::LRU_PREV) => MAPCOUNT_NONE,
            (2, word::LRU_PREV) => 0x5afe_0000 | u64::from(self.order),
            (_, word::FLAGS) => FLAGS_BASE,
            (_, word::COUNTS) => MAPCOUNT_NONE,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_differ_from_the_head_page_and_by_format() {
        let sp = StructPages {
            pool_start: 512,
            count: 2,
            order: 9,
            tails: TailFormat::HeadPointer,
        };
        // Tails of one huge page are identical; of two, not (head pointer).
        assert_eq!(sp.word(512 + 100, 1), sp.word(512 + 200, 1));
        assert_ne!(sp.word(512 + 100, 1), sp.word(1024 + 100, 1));
        assert_eq!(sp.word(512, 0) & PG_HEAD, PG_HEAD);
        let by_order = StructPages {
            tails: TailFormat::Order,
            ..sp
        };
        assert_eq!(by_order.word(512 + 100, 1), by_order.word(1024 + 100, 1));
    }
}
