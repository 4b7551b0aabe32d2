//! Bit-exact VMSAv8-64 stage 1 translation table descriptors.
//!
//! Source: Arm ARM (DDI0487) D8.3 "Translation table descriptor formats"
//! (VMSAv8-64, 48-bit OA, no FEAT_LPA/FEAT_LPA2):
//!
//! | bits    | leaf (block or page)                 | table                    |
//! |---------|--------------------------------------|--------------------------|
//! | 0       | valid                                | valid                    |
//! | 1       | 0 = block, 1 = page (level 3)        | 1 = table (levels 0..2)  |
//! | 4:2     | AttrIndx (index into MAIR_EL1)       | ignored                  |
//! | 5       | NS                                   | ignored                  |
//! | 7:6     | AP\[2:1\] (AP\[2\] = read-only, AP\[1\] = EL0 access) | ignored       |
//! | 9:8     | SH                                   | ignored                  |
//! | 10      | AF                                   | ignored                  |
//! | 11      | nG                                   | ignored                  |
//! | 16      | nT (block only, FEAT_BBM, R_MRRPW)   | -                        |
//! | 47:n    | output address                       | next-level table address |
//! | 50      | GP (FEAT_BTI)                        | RES0                     |
//! | 51      | DBM                                  | ignored                  |
//! | 52      | Contiguous                           | ignored                  |
//! | 53      | PXN                                  | ignored                  |
//! | 54      | UXN / XN                             | ignored                  |
//! | 58:55   | reserved for software use            | ignored                  |
//! | 59..63  | ignored (PBHA without FEAT_HPDS2)    | PXNTable 59, UXNTable 60, APTable 62:61, NSTable 63 |
//!
//! Every bit the model does not interpret is kept verbatim (`res0`,
//! `ignored`), so decoding and re-encoding any 64-bit value gives it back.

use std::fmt;

use bitflags::bitflags;
use serde::{Deserialize, Serialize};

use crate::VmsaError;
use crate::addr::PhysAddr;
use crate::granule::{Granule, Level, PA_BITS};

bitflags! {
    /// Single-bit attributes of a block or page descriptor.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    pub struct Attributes: u64 {
        /// Non-secure output address (bit 5).
        const NS = 1 << 5;
        /// AP\[1\]: accessible from EL0 (bit 6).
        const USER = 1 << 6;
        /// AP\[2\]: read-only (bit 7).
        const READ_ONLY = 1 << 7;
        /// Access flag (bit 10).
        const AF = 1 << 10;
        /// Not global: the entry is tagged with the current ASID (bit 11).
        const NG = 1 << 11;
        /// nT, block descriptors only, FEAT_BBM level 1 (bit 16, R_MRRPW).
        const NT = 1 << 16;
        /// Guarded page, FEAT_BTI (bit 50).
        const GP = 1 << 50;
        /// Dirty Bit Modifier, FEAT_HAFDBS (bit 51). Linux calls it PTE_WRITE.
        const DBM = 1 << 51;
        /// Contiguous hint (bit 52).
        const CONTIGUOUS = 1 << 52;
        /// Privileged execute-never (bit 53).
        const PXN = 1 << 53;
        /// Unprivileged execute-never (bit 54).
        const UXN = 1 << 54;
    }
}

/// The SH\[1:0\] field.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum Shareability {
    /// 0b00.
    #[default]
    NonShareable,
    /// 0b01, reserved (CONSTRAINED UNPREDICTABLE).
    Reserved,
    /// 0b10.
    Outer,
    /// 0b11.
    Inner,
}

impl Shareability {
    fn from_bits(b: u64) -> Self {
        match b & 3 {
            0 => Shareability::NonShareable,
            1 => Shareability::Reserved,
            2 => Shareability::Outer,
            _ => Shareability::Inner,
        }
    }

    fn bits(self) -> u64 {
        match self {
            Shareability::NonShareable => 0,
            Shareability::Reserved => 1,
            Shareability::Outer => 2,
            Shareability::Inner => 3,
        }
    }
}

/// The attributes of a block or page descriptor: everything but the type and
/// the output address.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct LeafAttrs {
    /// The single-bit attributes.
    pub flags: Attributes,
    /// AttrIndx\[2:0\]: index of the memory attributes in MAIR_EL1.
    pub attr_indx: u8,
    /// SH\[1:0\].
    pub sh: Shareability,
    /// Bits \[58:55\], reserved for software.
    pub sw: u8,
    /// Bits \[63:59\], ignored by the hardware (PBHA without FEAT_HPDS2).
    pub ignored: u8,
    /// RES0 bits that are set, kept verbatim (should be zero).
    pub res0: u64,
}

impl LeafAttrs {
    /// Tells whether AP\[2\] makes the entry read-only.
    pub fn read_only(&self) -> bool {
        self.flags.contains(Attributes::READ_ONLY)
    }

    /// Tells whether the entry grants write permission, counting an entry
    /// with DBM set as writable when hardware dirty-state management is on
    /// (R_WHZWS treats "writable with DBM" as writable).
    pub fn writable(&self, hw_dbm: bool) -> bool {
        !self.read_only() || (hw_dbm && self.flags.contains(Attributes::DBM))
    }

    /// Tells whether the Access flag is set.
    pub fn af(&self) -> bool {
        self.flags.contains(Attributes::AF)
    }

    /// Tells whether the entry is global (nG clear).
    pub fn global(&self) -> bool {
        !self.flags.contains(Attributes::NG)
    }

    /// Returns a copy with `flags` set or cleared.
    pub fn with(mut self, flags: Attributes, on: bool) -> Self {
        self.flags.set(flags, on);
        self
    }
}

/// The attributes of a table descriptor.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct TableAttrs {
    /// PXNTable (bit 59).
    pub pxn_table: bool,
    /// UXNTable / XNTable (bit 60).
    pub uxn_table: bool,
    /// APTable\[1:0\] (bits 62:61).
    pub ap_table: u8,
    /// NSTable (bit 63).
    pub ns_table: bool,
    /// Ignored bits \[11:2\] and \[58:51\], kept verbatim.
    pub ignored: u64,
    /// RES0 bits that are set, kept verbatim.
    pub res0: u64,
}

/// A block or page descriptor, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Leaf {
    /// The output address (aligned to the size the entry maps).
    pub oa: PhysAddr,
    /// The attributes.
    pub attrs: LeafAttrs,
}

/// A table descriptor, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Table {
    /// The address of the next-level table.
    pub next: PhysAddr,
    /// The hierarchical attributes.
    pub attrs: TableAttrs,
}

/// A descriptor decoded for the level it sits at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Entry {
    /// Bit 0 clear: a translation fault; the other bits are kept verbatim
    /// (software may use them).
    Invalid(u64),
    /// Bit 0 set but no descriptor of that type exists at this level (bits
    /// \[1:0\] = 0b01 at level 3, or a block where the granule has none):
    /// treated as invalid, a translation fault (D8.3.1).
    Reserved(u64),
    /// A table descriptor (levels 0 to 2).
    Table(Table),
    /// A block descriptor (levels where [`Granule::block_allowed`]).
    Block(Leaf),
    /// A page descriptor (level 3).
    Page(Leaf),
}

impl Entry {
    /// Returns the leaf if the entry is a block or a page.
    pub fn leaf(&self) -> Option<&Leaf> {
        match self {
            Entry::Block(l) | Entry::Page(l) => Some(l),
            _ => None,
        }
    }

    /// Tells whether the entry translates (is a table, block or page).
    pub fn is_valid(&self) -> bool {
        matches!(self, Entry::Table(_) | Entry::Block(_) | Entry::Page(_))
    }

    /// Encodes the entry for `level`.
    ///
    /// # Errors
    ///
    /// Returns an error if the entry cannot exist at that level (a block
    /// where the granule has none, a table at level 3, a page above level
    /// 3), if an address is misaligned or wider than 48 bits, if a field is
    /// out of range, or if a page descriptor sets nT.
    pub fn encode(&self, granule: Granule, level: Level) -> Result<Descriptor, VmsaError> {
        check_level(granule, level)?;
        match *self {
            Entry::Invalid(bits) => {
                if bits & 1 != 0 {
                    return Err(VmsaError::Field {
                        field: "invalid descriptor bit 0",
                        value: bits,
                    });
                }
                Ok(Descriptor(bits))
            }
            Entry::Reserved(bits) => {
                if Descriptor(bits).decode(granule, level) != Entry::Reserved(bits) {
                    return Err(VmsaError::Field {
                        field: "reserved descriptor",
                        value: bits,
                    });
                }
                Ok(Descriptor(bits))
            }
            Entry::Table(t) => Descriptor::table_with(granule, level, t.next, t.attrs),
            Entry::Block(l) => {
                if level == 3 {
                    return Err(VmsaError::NoBlockAtLevel { granule, level });
                }
                Descriptor::leaf(granule, level, l.oa, l.attrs)
            }
            Entry::Page(l) => {
                if level != 3 {
                    return Err(VmsaError::NoPageAtLevel { granule, level });
                }
                Descriptor::leaf(granule, level, l.oa, l.attrs)
            }
        }
    }
}

/// A raw 64-bit descriptor, as stored in a translation table.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Descriptor(pub u64);

const VALID: u64 = 1 << 0;
const TYPE: u64 = 1 << 1;
const ATTR_INDX_SHIFT: u32 = 2;
const SH_SHIFT: u32 = 8;
const SW_SHIFT: u32 = 55;
const IGNORED_HI_SHIFT: u32 = 59;
/// Bits \[49:12\]: where output-address and RES0 bits live.
const ADDR_REGION: u64 = ((1 << 50) - 1) & !0xfff;
const TABLE_IGNORED: u64 = 0x0000_0000_0000_0ffc | (0xff << 51);

fn check_level(granule: Granule, level: Level) -> Result<(), VmsaError> {
    if level > 3 || level < granule.start_level() {
        return Err(VmsaError::NoSuchLevel { granule, level });
    }
    Ok(())
}

fn leaf_res0(granule: Granule, level: Level) -> u64 {
    let nt = if level < 3 { Attributes::NT.bits() } else { 0 };
    ADDR_REGION & !granule.oa_mask(level) & !nt
}

fn table_res0(granule: Granule) -> u64 {
    (ADDR_REGION | (1 << 50)) & !granule.table_addr_mask()
}

impl Descriptor {
    /// The all-zero invalid descriptor.
    pub const INVALID: Descriptor = Descriptor(0);

    /// Tells whether bit 0 (valid) is set.
    pub const fn is_valid_bit(self) -> bool {
        self.0 & VALID != 0
    }

    /// Decodes the descriptor as found at `level` of a `granule` walk.
    pub fn decode(self, granule: Granule, level: Level) -> Entry {
        let d = self.0;
        if d & VALID == 0 {
            return Entry::Invalid(d);
        }
        let table_or_page = d & TYPE != 0;
        if level == 3 {
            if !table_or_page {
                return Entry::Reserved(d);
            }
            return Entry::Page(self.decode_leaf(granule, level));
        }
        if table_or_page {
            let attrs = TableAttrs {
                pxn_table: d & (1 << 59) != 0,
                uxn_table: d & (1 << 60) != 0,
                ap_table: ((d >> 61) & 3) as u8,
                ns_table: d & (1 << 63) != 0,
                ignored: d & TABLE_IGNORED,
                res0: d & table_res0(granule),
            };
            return Entry::Table(Table {
                next: PhysAddr(d & granule.table_addr_mask()),
                attrs,
            });
        }
        if !granule.block_allowed(level) {
            return Entry::Reserved(d);
        }
        Entry::Block(self.decode_leaf(granule, level))
    }

    fn decode_leaf(self, granule: Granule, level: Level) -> Leaf {
        let d = self.0;
        let mut flag_bits = Attributes::all().bits();
        if level == 3 {
            flag_bits &= !Attributes::NT.bits();
        }
        Leaf {
            oa: PhysAddr(d & granule.oa_mask(level)),
            attrs: LeafAttrs {
                flags: Attributes::from_bits_truncate(d & flag_bits),
                attr_indx: ((d >> ATTR_INDX_SHIFT) & 7) as u8,
                sh: Shareability::from_bits(d >> SH_SHIFT),
                sw: ((d >> SW_SHIFT) & 0xf) as u8,
                ignored: ((d >> IGNORED_HI_SHIFT) & 0x1f) as u8,
                res0: d & leaf_res0(granule, level),
            },
        }
    }

    /// Builds a block (levels 0 to 2) or page (level 3) descriptor.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::NoBlockAtLevel`] where the granule has no block
    /// at that level, [`VmsaError::Misaligned`] or [`VmsaError::AddressTooWide`]
    /// for a bad output address, and [`VmsaError::Field`] for a field out of
    /// range, RES0 bits outside the RES0 positions, or nT on a page.
    pub fn leaf(
        granule: Granule,
        level: Level,
        oa: PhysAddr,
        attrs: LeafAttrs,
    ) -> Result<Descriptor, VmsaError> {
        check_level(granule, level)?;
        if level < 3 && !granule.block_allowed(level) {
            return Err(VmsaError::NoBlockAtLevel { granule, level });
        }
        check_oa(oa, granule.level_size(level))?;
        if level == 3 && attrs.flags.contains(Attributes::NT) {
            return Err(VmsaError::Field {
                field: "nT on a page descriptor (nT exists only in blocks)",
                value: Attributes::NT.bits(),
            });
        }
        if attrs.attr_indx > 7 {
            return Err(VmsaError::Field {
                field: "AttrIndx",
                value: attrs.attr_indx.into(),
            });
        }
        if attrs.sw > 0xf {
            return Err(VmsaError::Field {
                field: "software bits [58:55]",
                value: attrs.sw.into(),
            });
        }
        if attrs.ignored > 0x1f {
            return Err(VmsaError::Field {
                field: "ignored bits [63:59]",
                value: attrs.ignored.into(),
            });
        }
        if attrs.res0 & !leaf_res0(granule, level) != 0 {
            return Err(VmsaError::Field {
                field: "RES0 bits",
                value: attrs.res0,
            });
        }
        let ty = if level == 3 { TYPE } else { 0 };
        Ok(Descriptor(
            VALID
                | ty
                | oa.0
                | attrs.flags.bits()
                | (u64::from(attrs.attr_indx) << ATTR_INDX_SHIFT)
                | (attrs.sh.bits() << SH_SHIFT)
                | (u64::from(attrs.sw) << SW_SHIFT)
                | (u64::from(attrs.ignored) << IGNORED_HI_SHIFT)
                | attrs.res0,
        ))
    }

    /// Builds a table descriptor at `level` pointing at `next`, with no
    /// hierarchical attributes.
    ///
    /// # Errors
    ///
    /// Returns an error for level 3, a misaligned or too wide address.
    pub fn table(granule: Granule, level: Level, next: PhysAddr) -> Result<Descriptor, VmsaError> {
        Self::table_with(granule, level, next, TableAttrs::default())
    }

    /// Builds a table descriptor with hierarchical attributes.
    ///
    /// # Errors
    ///
    /// As [`Descriptor::table`], and [`VmsaError::Field`] for ignored or
    /// RES0 bits outside their positions.
    pub fn table_with(
        granule: Granule,
        level: Level,
        next: PhysAddr,
        attrs: TableAttrs,
    ) -> Result<Descriptor, VmsaError> {
        check_level(granule, level)?;
        if level == 3 {
            return Err(VmsaError::NoTableAtLevel { granule, level });
        }
        check_oa(next, granule.page_size())?;
        if attrs.ap_table > 3 {
            return Err(VmsaError::Field {
                field: "APTable",
                value: attrs.ap_table.into(),
            });
        }
        if attrs.ignored & !TABLE_IGNORED != 0 {
            return Err(VmsaError::Field {
                field: "table ignored bits",
                value: attrs.ignored,
            });
        }
        if attrs.res0 & !table_res0(granule) != 0 {
            return Err(VmsaError::Field {
                field: "table RES0 bits",
                value: attrs.res0,
            });
        }
        Ok(Descriptor(
            VALID
                | TYPE
                | next.0
                | (u64::from(attrs.pxn_table) << 59)
                | (u64::from(attrs.uxn_table) << 60)
                | (u64::from(attrs.ap_table) << 61)
                | (u64::from(attrs.ns_table) << 63)
                | attrs.ignored
                | attrs.res0,
        ))
    }

    /// Returns the decoded leaf if this is a block or page at `level`.
    pub fn as_leaf(self, granule: Granule, level: Level) -> Option<Leaf> {
        self.decode(granule, level).leaf().copied()
    }

    /// Returns this block or page descriptor at `level` with its output
    /// address replaced by `oa`, the other bits kept: what
    /// [`Descriptor::leaf`] returns for `oa` and the same attributes, which
    /// it ORs with the address.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::Misaligned`] or [`VmsaError::AddressTooWide`]
    /// for a bad output address, as [`Descriptor::leaf`].
    pub fn with_oa(
        self,
        granule: Granule,
        level: Level,
        oa: PhysAddr,
    ) -> Result<Descriptor, VmsaError> {
        check_oa(oa, granule.level_size(level))?;
        Ok(Descriptor((self.0 & !granule.oa_mask(level)) | oa.0))
    }

    /// Returns the output address if this is a block or page at `level`:
    /// what [`Descriptor::as_leaf`] gives as `oa`, without decoding the
    /// attributes.
    pub fn leaf_oa(self, granule: Granule, level: Level) -> Option<PhysAddr> {
        let d = self.0;
        if d & VALID == 0 {
            return None;
        }
        let table_or_page = d & TYPE != 0;
        // As `decode`: a page at level 3, a block where the granule allows
        // one above it.
        let leaf = if level == 3 {
            table_or_page
        } else {
            !table_or_page && granule.block_allowed(level)
        };
        leaf.then(|| PhysAddr(d & granule.oa_mask(level)))
    }

    /// Returns the next-level table address if this is a table descriptor at `level`.
    pub fn as_table(self, granule: Granule, level: Level) -> Option<PhysAddr> {
        match self.decode(granule, level) {
            Entry::Table(t) => Some(t.next),
            _ => None,
        }
    }
}

fn check_oa(oa: PhysAddr, align: u64) -> Result<(), VmsaError> {
    if oa.0 >> PA_BITS != 0 {
        return Err(VmsaError::AddressTooWide { addr: oa.0 });
    }
    if !oa.is_aligned(align) {
        return Err(VmsaError::Misaligned { addr: oa.0, align });
    }
    Ok(())
}

impl fmt::Debug for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Descriptor({:#018x})", self.0)
    }
}

impl fmt::Display for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}

impl fmt::LowerHex for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// Formats a decoded entry the way a kernel developer reads a PTE dump:
/// `page oa=0x40001000 RO AF nG SH=IS AttrIndx=0 PXN UXN`.
pub fn describe(entry: &Entry) -> String {
    match entry {
        Entry::Invalid(0) => "invalid".to_string(),
        Entry::Invalid(b) => format!("invalid ({b:#x})"),
        Entry::Reserved(b) => format!("reserved ({b:#x})"),
        Entry::Table(t) => format!("table next={}", t.next),
        Entry::Block(l) | Entry::Page(l) => {
            let kind = if matches!(entry, Entry::Block(_)) {
                "block"
            } else {
                "page"
            };
            let a = &l.attrs;
            let mut s = format!(
                "{kind} oa={} {}",
                l.oa,
                if a.read_only() { "RO" } else { "RW" }
            );
            for (name, flag) in [
                ("AF", Attributes::AF),
                ("nG", Attributes::NG),
                ("nT", Attributes::NT),
                ("DBM", Attributes::DBM),
                ("CONT", Attributes::CONTIGUOUS),
                ("USER", Attributes::USER),
                ("PXN", Attributes::PXN),
                ("UXN", Attributes::UXN),
                ("NS", Attributes::NS),
                ("GP", Attributes::GP),
            ] {
                if a.flags.contains(flag) {
                    s.push(' ');
                    s.push_str(name);
                }
            }
            let sh = match a.sh {
                Shareability::NonShareable => "NS",
                Shareability::Reserved => "res",
                Shareability::Outer => "OS",
                Shareability::Inner => "IS",
            };
            s.push_str(&format!(" SH={sh} AttrIndx={}", a.attr_indx));
            if a.sw != 0 {
                s.push_str(&format!(" SW={:#x}", a.sw));
            }
            s
        }
    }
}
