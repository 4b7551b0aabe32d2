//! Translation granules and the geometry of their levels for a 48-bit VA.
//!
//! Source: Arm ARM (DDI0487) D8.2 "Translation tables and the translation
//! process": with a 48-bit input address the 4KB granule resolves VA\[47:12\]
//! in four levels (0 to 3) of 9 bits, the 16KB granule VA\[47:14\] in four
//! levels of which level 0 resolves only VA\[47\], and the 64KB granule
//! VA\[47:16\] in three levels (1 to 3) of which level 1 resolves VA\[47:42\].
//! Block descriptors with a 48-bit output address exist at levels 1 and 2 for
//! 4KB and at level 2 only for 16KB and 64KB (level 1 blocks for 16KB and
//! 64KB need FEAT_LPA2 / FEAT_LPA, which are out of scope; D8.3.1, table
//! "Translation granule sizes and block sizes"). The contiguous-run lengths
//! are those of D8.6.1 "The Contiguous bit".

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::VmsaError;

/// Number of VA bits translated by TTBR1_EL1 in this model (T1SZ = 16).
pub const VA_BITS: u32 = 48;
/// Number of output-address bits (no FEAT_LPA / FEAT_LPA2).
pub const PA_BITS: u32 = 48;

/// A translation table level, 0 to 3.
pub type Level = u8;

/// The translation granule: the size of a page and of a translation table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Granule {
    /// 4KB pages, 512 entries per table.
    #[serde(rename = "4k")]
    K4,
    /// 16KB pages, 2048 entries per table.
    #[serde(rename = "16k")]
    K16,
    /// 64KB pages, 8192 entries per table.
    #[serde(rename = "64k")]
    K64,
}

impl Granule {
    /// Lists every granule, smallest first.
    pub const ALL: [Granule; 3] = [Granule::K4, Granule::K16, Granule::K64];

    /// Returns log2 of the page size.
    #[inline]
    pub const fn page_shift(self) -> u32 {
        match self {
            Granule::K4 => 12,
            Granule::K16 => 14,
            Granule::K64 => 16,
        }
    }

    /// Returns the page size in bytes.
    #[inline]
    pub const fn page_size(self) -> u64 {
        1 << self.page_shift()
    }

    /// Returns how many VA bits a full table level resolves (page_shift - 3).
    #[inline]
    pub const fn bits_per_level(self) -> u32 {
        self.page_shift() - 3
    }

    /// Returns the number of 8-byte entries in a full table (one page).
    pub const fn entries_per_table(self) -> usize {
        1 << self.bits_per_level()
    }

    /// Returns the first level of a walk for a 48-bit VA.
    #[inline]
    pub const fn start_level(self) -> Level {
        match self {
            Granule::K4 | Granule::K16 => 0,
            Granule::K64 => 1,
        }
    }

    /// Returns the levels a walk visits, first to last.
    #[inline]
    pub fn levels(self) -> std::ops::RangeInclusive<Level> {
        self.start_level()..=3
    }

    /// Returns the lowest VA bit resolved at `level`, i.e. log2 of the size
    /// of the region one entry at that level maps.
    #[inline]
    pub const fn level_shift(self, level: Level) -> u32 {
        self.page_shift() + (3 - level as u32) * self.bits_per_level()
    }

    /// Returns the size of the region one entry at `level` maps.
    #[inline]
    pub const fn level_size(self, level: Level) -> u64 {
        1 << self.level_shift(level)
    }

    /// Returns the number of entries of the table at `level` (the start
    /// level's table is smaller than a page for 16KB and 64KB).
    #[inline]
    pub const fn table_entries(self, level: Level) -> usize {
        if level == self.start_level() {
            1 << (VA_BITS - self.level_shift(level))
        } else {
            self.entries_per_table()
        }
    }

    /// Returns the index of `va` in the table at `level`.
    #[inline]
    pub const fn index(self, level: Level, va: u64) -> usize {
        ((va >> self.level_shift(level)) as usize) & (self.table_entries(level) - 1)
    }

    /// Tells whether a block descriptor may be used at `level` with a 48-bit
    /// output address (Arm ARM D8.3.1).
    pub const fn block_allowed(self, level: Level) -> bool {
        matches!(
            (self, level),
            (Granule::K4, 1) | (Granule::K4, 2) | (Granule::K16, 2) | (Granule::K64, 2)
        )
    }

    /// Returns how many adjacent entries form a contiguous run at `level`
    /// when their Contiguous bit is set (Arm ARM D8.6.1), or `None` where
    /// the level holds no leaf descriptors.
    #[inline]
    pub const fn contiguous_entries(self, level: Level) -> Option<usize> {
        match (self, level) {
            (Granule::K4, 1..=3) => Some(16),
            (Granule::K16, 3) => Some(128),
            (Granule::K16, 2) => Some(32),
            (Granule::K64, 2 | 3) => Some(32),
            _ => None,
        }
    }

    /// Returns the leaf level and the contiguous flag that map a region of
    /// `size` bytes the way Linux maps a huge page of that size (block,
    /// contiguous block, page or contiguous pages), or `None` if no single
    /// leaf or contiguous run maps exactly that size.
    pub fn leaf_for_size(self, size: u64) -> Option<(Level, bool)> {
        for level in (self.start_level()..=3).rev() {
            let leaf = level == 3 || self.block_allowed(level);
            if !leaf {
                continue;
            }
            if self.level_size(level) == size {
                return Some((level, false));
            }
            if let Some(n) = self.contiguous_entries(level)
                && self.level_size(level) * n as u64 == size
            {
                return Some((level, true));
            }
        }
        None
    }

    /// Returns the mask of output-address bits of a leaf at `level`
    /// (bits \[47:level_shift\]).
    #[inline]
    pub const fn oa_mask(self, level: Level) -> u64 {
        let low = self.level_shift(level);
        ((1u64 << PA_BITS) - 1) & !((1u64 << low) - 1)
    }

    /// Returns the mask of next-level table address bits of a table
    /// descriptor (bits \[47:page_shift\]).
    #[inline]
    pub const fn table_addr_mask(self) -> u64 {
        self.oa_mask(3)
    }
}

impl fmt::Display for Granule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Granule::K4 => "4K",
            Granule::K16 => "16K",
            Granule::K64 => "64K",
        })
    }
}

impl FromStr for Granule {
    type Err = VmsaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "4k" | "4096" => Ok(Granule::K4),
            "16k" | "16384" => Ok(Granule::K16),
            "64k" | "65536" => Ok(Granule::K64),
            _ => Err(VmsaError::Parse {
                what: "granule",
                input: s.to_string(),
                expected: "4K, 16K or 64K",
            }),
        }
    }
}

/// Formats a size in bytes with a binary unit (`4K`, `2M`, `1G`, `16G`).
pub fn format_size(size: u64) -> String {
    const UNITS: [(&str, u32); 5] = [("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10)];
    for (unit, shift) in UNITS {
        if size >= 1 << shift && size.is_multiple_of(1 << shift) {
            return format!("{}{unit}", size >> shift);
        }
    }
    format!("{size}")
}

/// Parses a size with an optional binary unit (`64K`, `2M`, `1G`, `1T`,
/// `2MiB`, `4096`).
///
/// # Errors
///
/// Returns [`VmsaError::Parse`] when the text is not a number with one of
/// the units K, M, G, T, P (optionally followed by `iB` or `B`).
pub fn parse_size(s: &str) -> Result<u64, VmsaError> {
    let err = || VmsaError::Parse {
        what: "size",
        input: s.to_string(),
        expected: "a number with an optional unit K, M, G, T or P (e.g. 2M, 1G)",
    };
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix("ib"))
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                'P' => 50,
                _ => return Err(err()),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = num.trim().replace('_', "").parse().map_err(|_| err())?;
    n.checked_mul(1u64 << shift).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_geometry_matches_the_arm_arm() {
        // 4KB: L0 512GB, L1 1GB, L2 2MB, L3 4KB; 512 entries at every level.
        assert_eq!(Granule::K4.level_size(0), 512 << 30);
        assert_eq!(Granule::K4.level_size(1), 1 << 30);
        assert_eq!(Granule::K4.level_size(2), 2 << 20);
        assert_eq!(Granule::K4.table_entries(0), 512);
        // 16KB: L0 resolves VA[47] only (2 entries), L1 64GB, L2 32MB.
        assert_eq!(Granule::K16.table_entries(0), 2);
        assert_eq!(Granule::K16.level_size(1), 64 << 30);
        assert_eq!(Granule::K16.level_size(2), 32 << 20);
        // 64KB: starts at L1 with 64 entries (VA[47:42]), L2 512MB.
        assert_eq!(Granule::K64.start_level(), 1);
        assert_eq!(Granule::K64.table_entries(1), 64);
        assert_eq!(Granule::K64.level_size(2), 512 << 20);
    }

    #[test]
    fn huge_page_sizes_map_as_the_brief_says() {
        // BRIEF.md section 1, column "how mapped".
        let m = |g: Granule, s: u64| g.leaf_for_size(s);
        assert_eq!(m(Granule::K4, 64 << 10), Some((3, true)));
        assert_eq!(m(Granule::K4, 2 << 20), Some((2, false)));
        assert_eq!(m(Granule::K4, 32 << 20), Some((2, true)));
        assert_eq!(m(Granule::K4, 1 << 30), Some((1, false)));
        assert_eq!(m(Granule::K16, 2 << 20), Some((3, true)));
        assert_eq!(m(Granule::K16, 32 << 20), Some((2, false)));
        assert_eq!(m(Granule::K16, 1 << 30), Some((2, true)));
        assert_eq!(m(Granule::K64, 2 << 20), Some((3, true)));
        assert_eq!(m(Granule::K64, 512 << 20), Some((2, false)));
        assert_eq!(m(Granule::K64, 16 << 30), Some((2, true)));
        assert_eq!(m(Granule::K4, 4 << 20), None);
    }

    #[test]
    fn sizes_parse_and_format() {
        assert_eq!(parse_size("2M").unwrap(), 2 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1T").unwrap(), 1 << 40);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("2Q").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(format_size(16 << 30), "16G");
        assert_eq!(format_size(28 << 10), "28K");
    }
}
