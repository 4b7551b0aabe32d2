//! The geometry of a huge page's vmemmap: how many pages of struct pages it
//! has, how it is mapped, and what HVO frees.
//!
//! Sources: `struct page` is 64 bytes (include/linux/mm_types.h, with
//! CONFIG_HAVE_ALIGNED_STRUCT_PAGE on arm64); a huge page of size H has
//! H / G struct pages, so `H / G * 64` bytes of vmemmap, i.e. that divided
//! by G pages. HVO keeps one vmemmap page and frees the others, and applies
//! only where the huge page has more than one (mm/hugetlb_vmemmap.c,
//! `hugetlb_vmemmap_optimizable_size()`; Documentation/mm/vmemmap_dedup.rst).
//! How each huge page size is mapped is `Granule::leaf_for_size`
//! (arch/arm64/mm/hugetlbpage.c, `arch_hugetlb_valid_size()`).

use serde::Serialize;
use vmsa::{Granule, Level};

/// Bytes of one `struct page`.
pub const STRUCT_PAGE_SIZE: u64 = 64;

/// The vmemmap geometry of one huge page size with one granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HugeGeometry {
    /// The granule.
    pub granule: Granule,
    /// The huge page size in bytes.
    pub huge_size: u64,
    /// The level of the leaf that maps the huge page.
    pub level: Level,
    /// Whether it is a contiguous run of leaves rather than one.
    pub contiguous: bool,
    /// Bytes of struct pages: `huge_size / page_size * 64`.
    pub vmemmap_bytes: u64,
}

impl HugeGeometry {
    /// Returns the geometry of `huge_size` pages with `granule`, or `None`
    /// if arm64 has no huge page of that size with that granule.
    pub fn new(granule: Granule, huge_size: u64) -> Option<Self> {
        let (level, contiguous) = granule.leaf_for_size(huge_size)?;
        if huge_size <= granule.page_size() {
            return None;
        }
        Some(HugeGeometry {
            granule,
            huge_size,
            level,
            contiguous,
            vmemmap_bytes: huge_size / granule.page_size() * STRUCT_PAGE_SIZE,
        })
    }

    /// Lists the huge page sizes arm64 supports for `granule`: contiguous
    /// PTEs, the PMD block, contiguous PMDs and (4K only) the PUD block.
    pub fn sizes(granule: Granule) -> Vec<u64> {
        match granule {
            Granule::K4 => vec![64 << 10, 2 << 20, 32 << 20, 1 << 30],
            Granule::K16 => vec![2 << 20, 32 << 20, 1 << 30],
            Granule::K64 => vec![2 << 20, 512 << 20, 16 << 30],
        }
    }

    /// Returns the number of base pages in the huge page.
    pub fn base_pages(&self) -> u64 {
        self.huge_size / self.granule.page_size()
    }

    /// Returns the number of struct pages that fit in one vmemmap page.
    pub fn structs_per_page(&self) -> u64 {
        self.granule.page_size() / STRUCT_PAGE_SIZE
    }

    /// Returns the number of whole vmemmap pages of the huge page (0 when
    /// its struct pages fill less than one page).
    pub fn vmemmap_pages(&self) -> u64 {
        self.vmemmap_bytes / self.granule.page_size()
    }

    /// Tells whether HVO applies: the struct pages span more than one page.
    pub fn hvo_applies(&self) -> bool {
        self.vmemmap_pages() > 1
    }

    /// Returns the vmemmap pages HVO frees per huge page (all but one).
    pub fn freed_pages(&self) -> u64 {
        if self.hvo_applies() {
            self.vmemmap_pages() - 1
        } else {
            0
        }
    }

    /// Returns the bytes HVO frees per huge page.
    pub fn freed_bytes(&self) -> u64 {
        self.freed_pages() * self.granule.page_size()
    }

    /// Describes how the huge page is mapped ("PMD block", "contiguous PTEs").
    pub fn mapping(&self) -> String {
        let name = match (self.granule, self.level) {
            (_, 3) => "PTE",
            (_, 2) => "PMD",
            (_, 1) => "PUD",
            _ => "P4D",
        };
        if self.contiguous {
            format!("contiguous {name}s")
        } else if self.level == 3 {
            "PTE".into()
        } else {
            format!("{name} block")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BRIEF.md section 1: vmemmap pages and pages freed per huge page.
    #[test]
    fn the_briefs_table() {
        let rows: [(Granule, u64, &str, u64, u64); 10] = [
            (Granule::K4, 64 << 10, "contiguous PTEs", 0, 0),
            (Granule::K4, 2 << 20, "PMD block", 8, 7),
            (Granule::K4, 32 << 20, "contiguous PMDs", 128, 127),
            (Granule::K4, 1 << 30, "PUD block", 4096, 4095),
            (Granule::K16, 2 << 20, "contiguous PTEs", 0, 0),
            (Granule::K16, 32 << 20, "PMD block", 8, 7),
            (Granule::K16, 1 << 30, "contiguous PMDs", 256, 255),
            (Granule::K64, 2 << 20, "contiguous PTEs", 0, 0),
            (Granule::K64, 512 << 20, "PMD block", 8, 7),
            (Granule::K64, 16 << 30, "contiguous PMDs", 256, 255),
        ];
        for (g, size, mapping, pages, freed) in rows {
            let h = HugeGeometry::new(g, size).unwrap();
            assert_eq!(h.mapping(), mapping, "{g} {size}");
            assert_eq!(h.vmemmap_pages(), pages, "{g} {size}");
            assert_eq!(h.freed_pages(), freed, "{g} {size}");
            assert_eq!(h.hvo_applies(), freed > 0);
        }
        // 64K with 4K pages: 16 struct pages, a quarter of a page.
        let h = HugeGeometry::new(Granule::K4, 64 << 10).unwrap();
        assert_eq!(h.vmemmap_bytes * 4, Granule::K4.page_size());
        // 2M with 64K pages: 32 struct pages, 1/32 of a page.
        let h = HugeGeometry::new(Granule::K64, 2 << 20).unwrap();
        assert_eq!(h.vmemmap_bytes * 32, Granule::K64.page_size());
        // 28 KiB per 2 MiB; 16 MiB - 4 KiB per 1 GiB.
        assert_eq!(
            HugeGeometry::new(Granule::K4, 2 << 20)
                .unwrap()
                .freed_bytes(),
            28 << 10
        );
        assert_eq!(
            HugeGeometry::new(Granule::K4, 1 << 30)
                .unwrap()
                .freed_bytes(),
            (16 << 20) - (4 << 10)
        );
    }

    #[test]
    fn the_reference_pools() {
        // 1 TiB of 2 MiB pages frees 14 GiB; of 1 GiB pages about 16 GiB.
        let two_m = HugeGeometry::new(Granule::K4, 2 << 20).unwrap();
        assert_eq!(524_288 * two_m.freed_bytes(), 14 << 30);
        let one_g = HugeGeometry::new(Granule::K4, 1 << 30).unwrap();
        assert_eq!(1024 * one_g.freed_bytes(), (16 << 30) - (4 << 20));
        assert!(HugeGeometry::new(Granule::K4, 4 << 20).is_none());
        assert!(HugeGeometry::new(Granule::K16, 64 << 10).is_none());
    }
}
