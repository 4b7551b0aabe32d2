//! The translation table walker and the outcomes of a translation.
//!
//! [`walk`] is pure: it reads descriptors through a closure that gives the
//! walker's view of memory (stores become visible to walkers only after a
//! DSB, see [`crate::machine`]). Faults are never cached (I_WZCBG); table
//! descriptors met on the way become walk-cache entries.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::addr::{PhysAddr, VirtAddr};
use crate::descriptor::{Attributes, Descriptor, Entry, Leaf, LeafAttrs};
use crate::granule::{Granule, Level};
use crate::tlb::{TlbEntry, TlbKind};

/// The kind of data access being translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Access {
    /// A load.
    Load,
    /// A store.
    Store,
    /// A compare-and-swap (needs read and write permission).
    Cas,
}

impl Access {
    /// Tells whether the access writes.
    pub fn writes(self) -> bool {
        !matches!(self, Access::Load)
    }
}

/// The kind of a fault on a data access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FaultKind {
    /// Invalid or reserved descriptor (or an nT block, R_MRRPW).
    Translation,
    /// Write to a read-only entry.
    Permission,
    /// AF clear and hardware AF management off.
    AccessFlag,
    /// Several TLB entries match and the CPU aborts (R_FVQCK, I_HYQMB).
    TlbConflict,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::Translation => "translation fault",
            FaultKind::Permission => "permission fault",
            FaultKind::AccessFlag => "access flag fault",
            FaultKind::TlbConflict => "TLB conflict abort",
        })
    }
}

/// A fault on a data access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fault {
    /// What kind.
    pub kind: FaultKind,
    /// The faulting VA.
    pub va: VirtAddr,
    /// The level of the descriptor that faulted, if one did.
    pub level: Option<Level>,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.kind, self.va)?;
        if let Some(l) = self.level {
            write!(f, " (level {l})")?;
        }
        Ok(())
    }
}

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Translation {
    /// The VA translated.
    pub va: VirtAddr,
    /// Its output address.
    pub pa: PhysAddr,
    /// The level of the leaf used.
    pub level: Level,
    /// The size of the region the leaf (or contiguous run) maps.
    pub size: u64,
    /// The leaf's attributes.
    pub attrs: LeafAttrs,
}

/// An atomic hardware update of a descriptor (Access flag or dirty state,
/// FEAT_HAFDBS): it applies only if the descriptor still holds `expected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HwUpdate {
    /// Where the descriptor lives.
    pub pa: PhysAddr,
    /// The value the walk read.
    pub expected: Descriptor,
    /// The value with AF set (and AP\[2\] cleared for a dirty update).
    pub new: Descriptor,
}

/// How a translation was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Via {
    /// A TLB hit on this entry.
    Tlb(TlbEntry),
    /// A walk starting at the root table.
    Walk,
    /// A walk starting from this walk-cache entry.
    WalkFrom(TlbEntry),
    /// A TLB conflict abort among several matching entries.
    Conflict,
}

/// One way, among those the architecture allows, a translation may resolve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Choice {
    /// How.
    pub via: Via,
    /// The translation or the fault.
    pub result: Result<Translation, Fault>,
    /// The entries the CPU may cache as a result (none for a fault other
    /// than a permission fault, I_WZCBG).
    pub fills: Fills,
    /// The hardware update of the descriptor, if the walk makes one.
    pub hw_update: Option<HwUpdate>,
}

/// What a walk found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walked {
    /// The leaf, its level, and where its descriptor lives; or the fault.
    pub result: Result<(Leaf, Level, PhysAddr, Descriptor), Fault>,
    /// Walk-cache entries for the table descriptors read on the way.
    pub tables: Fills,
}

/// The TLB entries one walk may fill, held inline (no allocation): a
/// walk-cache entry per table descriptor read (levels 0 to 2 at most: a
/// level-3 descriptor is a page or invalid, D8.3.1) and the leaf entry.
#[derive(Clone, Copy, Debug)]
pub struct Fills {
    len: u8,
    entries: [TlbEntry; 4],
}

impl Default for Fills {
    fn default() -> Self {
        // Placeholders past `len`, never read.
        let unused = TlbEntry {
            va: VirtAddr(0),
            size_shift: 0,
            level: 0,
            kind: TlbKind::Walk { next: PhysAddr(0) },
            asid: None,
            desc_pa: PhysAddr(0),
        };
        Fills {
            len: 0,
            entries: [unused; 4],
        }
    }
}

impl Fills {
    /// Appends `e`.
    ///
    /// # Panics
    ///
    /// Panics past four entries, which no walk makes (three tables and a
    /// leaf).
    #[inline]
    pub fn push(&mut self, e: TlbEntry) {
        self.entries[usize::from(self.len)] = e;
        self.len += 1;
    }

    /// Returns the entries as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[TlbEntry] {
        &self.entries[..usize::from(self.len)]
    }
}

impl std::ops::Deref for Fills {
    type Target = [TlbEntry];

    #[inline]
    fn deref(&self) -> &[TlbEntry] {
        self.as_slice()
    }
}

impl<'a> IntoIterator for &'a Fills {
    type Item = &'a TlbEntry;
    type IntoIter = std::slice::Iter<'a, TlbEntry>;

    #[inline]
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl PartialEq for Fills {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Fills {}

impl std::hash::Hash for Fills {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

/// Walks the tables for `va` starting at `level` in the table at `table`,
/// reading descriptors with `read`.
pub fn walk(
    granule: Granule,
    va: VirtAddr,
    level: Level,
    table: PhysAddr,
    read: &dyn Fn(PhysAddr) -> u64,
) -> Walked {
    // Room, inline, for a table at every level above the last and the leaf
    // entry a caller adds (`Translator` pushes it).
    let mut tables = Fills::default();
    let result = walk_each(granule, va, level, table, read, |e| tables.push(e));
    Walked { result, tables }
}

/// Walks as [`walk`] does, handing `on_table` the walk-cache entry of each
/// table descriptor read on the way instead of keeping them (a caller that
/// needs only the leaf passes a closure that does nothing).
///
/// # Errors
///
/// The fault the walk meets: a translation fault on an invalid or
/// reserved descriptor.
pub fn walk_each(
    granule: Granule,
    va: VirtAddr,
    mut level: Level,
    mut table: PhysAddr,
    read: &dyn Fn(PhysAddr) -> u64,
    mut on_table: impl FnMut(TlbEntry),
) -> Result<(Leaf, Level, PhysAddr, Descriptor), Fault> {
    loop {
        let desc_pa = table.add(granule.index(level, va.0) as u64 * 8);
        let d = Descriptor(read(desc_pa));
        match d.decode(granule, level) {
            Entry::Invalid(_) | Entry::Reserved(_) => {
                return Err(Fault {
                    kind: FaultKind::Translation,
                    va,
                    level: Some(level),
                });
            }
            Entry::Table(t) => {
                on_table(TlbEntry {
                    va: va.align_down(granule.level_size(level)),
                    size_shift: granule.level_shift(level) as u8,
                    level,
                    kind: TlbKind::Walk { next: t.next },
                    asid: None,
                    desc_pa,
                });
                table = t.next;
                level += 1;
            }
            Entry::Block(leaf) | Entry::Page(leaf) => {
                return Ok((leaf, level, desc_pa, d));
            }
        }
    }
}

/// Builds the leaf TLB entry a CPU caches for `va` from `leaf` at `level`:
/// a contiguous run becomes one entry for the whole run, whose output
/// address is derived from this descriptor (R_JQQTC: a misprogrammed run
/// translates as one of its entries).
pub fn leaf_entry(
    granule: Granule,
    va: VirtAddr,
    leaf: &Leaf,
    level: Level,
    desc_pa: PhysAddr,
    asid: u16,
) -> TlbEntry {
    let mut shift = granule.level_shift(level);
    let mut oa = leaf.oa;
    let mut base = va.align_down(granule.level_size(level));
    if leaf.attrs.flags.contains(Attributes::CONTIGUOUS)
        && let Some(n) = granule.contiguous_entries(level)
    {
        let run = granule.level_size(level) * n as u64;
        let run_base = va.align_down(run);
        let off = base.0 - run_base.0;
        if oa.0 >= off {
            oa = PhysAddr(oa.0 - off);
            base = run_base;
            shift += n.trailing_zeros();
        }
    }
    TlbEntry {
        va: base,
        size_shift: shift as u8,
        level,
        kind: TlbKind::Leaf {
            oa,
            attrs: leaf.attrs,
        },
        asid: (!leaf.attrs.global()).then_some(asid),
        desc_pa,
    }
}
