//! Per-CPU TLBs that keep stale entries, and the TLBI operations in their
//! broadcast (`IS`) and local forms.
//!
//! A TLB holds leaf entries (from block and page descriptors) and walk-cache
//! entries (from table descriptors; R_RVJDB counts both as TLB entries). An
//! entry stays until a TLBI that covers it takes effect on that CPU or until
//! it is evicted: TLBs are not coherent with table writes (R_FFWJK).
//! Faulting descriptors are never cached (I_WZCBG).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::VmsaError;
use crate::addr::{PhysAddr, VirtAddr};
use crate::descriptor::LeafAttrs;
use crate::granule::Level;

/// What a TLB entry caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TlbKind {
    /// A translation: the region maps linearly onto `oa`.
    Leaf {
        /// The output address of the region's first byte.
        oa: PhysAddr,
        /// The attributes and permissions of the descriptor.
        attrs: LeafAttrs,
    },
    /// A walk-cache entry: the next-level table for the region.
    Walk {
        /// The next-level table.
        next: PhysAddr,
    },
}

/// One TLB entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TlbEntry {
    /// The first VA of the region covered.
    pub va: VirtAddr,
    /// log2 of the region's size (a contiguous run counts as one region).
    pub size_shift: u8,
    /// The level of the descriptor it came from.
    pub level: Level,
    /// What it caches.
    pub kind: TlbKind,
    /// The ASID for a non-global entry, `None` for a global one.
    pub asid: Option<u16>,
    /// Where the descriptor it was filled from lives.
    pub desc_pa: PhysAddr,
}

impl TlbEntry {
    /// Returns the size of the region covered.
    #[inline]
    pub fn size(&self) -> u64 {
        1 << self.size_shift
    }

    /// Tells whether the entry covers `va`.
    #[inline]
    pub fn covers(&self, va: VirtAddr) -> bool {
        va.0.wrapping_sub(self.va.0) < self.size()
    }

    /// Tells whether the entry is a leaf (a translation, not a walk cache).
    #[inline]
    pub fn is_leaf(&self) -> bool {
        matches!(self.kind, TlbKind::Leaf { .. })
    }

    /// Returns the output address of `va` through this leaf entry.
    #[inline]
    pub fn translate(&self, va: VirtAddr) -> Option<PhysAddr> {
        match self.kind {
            TlbKind::Leaf { oa, .. } => Some(oa.add(va.0 - self.va.0)),
            TlbKind::Walk { .. } => None,
        }
    }
}

impl fmt::Display for TlbEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TlbKind::Leaf { oa, attrs } => write!(
                f,
                "L{} {}+{} -> {} {}",
                self.level,
                self.va,
                crate::granule::format_size(self.size()),
                oa,
                if attrs.read_only() { "RO" } else { "RW" }
            ),
            TlbKind::Walk { next } => write!(
                f,
                "walk L{} {}+{} -> table {}",
                self.level,
                self.va,
                crate::granule::format_size(self.size()),
                next
            ),
        }
    }
}

/// The TLB invalidation operations at EL1, without their scope
/// ([`TlbiScope`]): `VAE1` and `VAE1IS` are the same operation on
/// different sets of PEs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TlbiKind {
    /// By VA and ASID, all levels (leaf and walk-cache entries).
    Vae1,
    /// By VA and ASID, last level only: walk-cache entries are left alone.
    Vale1,
    /// By VA, all ASIDs, all levels (Linux `__flush_tlb_kernel_pgtable`).
    Vaae1,
    /// By VA, all ASIDs, last level only (Linux `flush_tlb_kernel_range`).
    Vaale1,
    /// Everything at EL1 for the VMID, all ASIDs and levels (Linux `flush_tlb_all`).
    Vmalle1,
}

/// Which PEs' TLBs a TLBI invalidates.
///
/// The instructions' own descriptions (Arm ARM system instruction pages,
/// DDI 0601, e.g. `TLBI VAE1IS` and `TLBI VAE1`; no rule ID): with the `IS`
/// suffix "the invalidation applies to all PEs in the same Inner Shareable
/// shareability domain as the PE that executes this System instruction";
/// without a shareability suffix it applies only to the PE that executes it (at EL1 with `HCR_EL2.FB == 0`,
/// which is the kernel's configuration). Either completes at a `DSB` of the
/// issuing PE (`DSB NSH` suffices for a local one; `DSB ISH`, the only full
/// DSB this model has, completes both).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TlbiScope {
    /// The Inner Shareable form (`...IS`): every PE's TLB.
    Broadcast,
    /// The form without a suffix: the issuing PE's TLB only.
    Local,
}

impl TlbiScope {
    /// Lists both scopes.
    pub const ALL: [TlbiScope; 2] = [TlbiScope::Broadcast, TlbiScope::Local];

    /// Returns the mnemonic suffix (`is` or nothing).
    pub fn suffix(self) -> &'static str {
        match self {
            TlbiScope::Broadcast => "is",
            TlbiScope::Local => "",
        }
    }
}

impl TlbiKind {
    /// Lists every kind.
    pub const ALL: [TlbiKind; 5] = [
        TlbiKind::Vae1,
        TlbiKind::Vale1,
        TlbiKind::Vaae1,
        TlbiKind::Vaale1,
        TlbiKind::Vmalle1,
    ];

    /// Tells whether the operation leaves walk-cache entries alone.
    pub fn last_level_only(self) -> bool {
        matches!(self, TlbiKind::Vale1 | TlbiKind::Vaale1)
    }

    /// Tells whether the operation takes a VA.
    pub fn by_va(self) -> bool {
        !matches!(self, TlbiKind::Vmalle1)
    }

    /// Tells whether the operation matches every ASID.
    pub fn all_asids(self) -> bool {
        matches!(self, TlbiKind::Vaae1 | TlbiKind::Vaale1 | TlbiKind::Vmalle1)
    }

    /// Returns the assembler mnemonic of the operation without its scope
    /// suffix (`vae1`); [`TlbiKind::mnemonic`] adds it.
    pub fn base(self) -> &'static str {
        match self {
            TlbiKind::Vae1 => "vae1",
            TlbiKind::Vale1 => "vale1",
            TlbiKind::Vaae1 => "vaae1",
            TlbiKind::Vaale1 => "vaale1",
            TlbiKind::Vmalle1 => "vmalle1",
        }
    }

    /// Returns the assembler mnemonic of the operation in `scope`
    /// (`vae1is`, `vae1`).
    pub fn mnemonic(self, scope: TlbiScope) -> String {
        format!("{}{}", self.base(), scope.suffix())
    }

    /// Parses a mnemonic (case-insensitive) into the operation and its
    /// scope: `vae1is` is ([`TlbiKind::Vae1`], [`TlbiScope::Broadcast`]),
    /// `vae1` the same operation, [`TlbiScope::Local`].
    ///
    /// # Errors
    ///
    /// Returns a parse error naming the operations for anything else.
    pub fn parse_scoped(s: &str) -> Result<(TlbiKind, TlbiScope), VmsaError> {
        let lower = s.to_ascii_lowercase();
        TlbiKind::ALL
            .into_iter()
            .flat_map(|k| TlbiScope::ALL.map(|sc| (k, sc)))
            .find(|&(k, sc)| k.mnemonic(sc) == lower)
            .ok_or_else(|| VmsaError::Parse {
                what: "TLBI operation",
                input: s.to_string(),
                expected: TlbiKind::EXPECTED,
            })
    }

    /// What [`TlbiKind::parse_scoped`] accepts, for error messages.
    pub const EXPECTED: &'static str =
        "vae1is, vale1is, vaae1is, vaale1is, vmalle1is, vae1, vale1, vaae1, vaale1 or vmalle1";
}

/// A TLBI instruction with its operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tlbi {
    /// The operation.
    pub kind: TlbiKind,
    /// Which PEs it invalidates.
    pub scope: TlbiScope,
    /// The VA operand (ignored by `VMALLE1[IS]`).
    pub va: VirtAddr,
    /// The ASID operand (ignored by the all-ASID forms).
    pub asid: u16,
}

impl Tlbi {
    /// Returns a broadcast TLBI of `kind` for `va` with ASID 0.
    pub fn new(kind: TlbiKind, va: VirtAddr) -> Self {
        Tlbi::scoped(kind, TlbiScope::Broadcast, va)
    }

    /// Returns a TLBI of `kind` in `scope` for `va` with ASID 0.
    pub fn scoped(kind: TlbiKind, scope: TlbiScope, va: VirtAddr) -> Self {
        Tlbi {
            kind,
            scope,
            va,
            asid: 0,
        }
    }

    /// Returns the mnemonic (`vae1is`, `vae1`).
    pub fn mnemonic(&self) -> String {
        self.kind.mnemonic(self.scope)
    }

    /// Tells whether this TLBI removes `entry` when it takes effect (on a
    /// CPU in its scope).
    pub fn matches(&self, entry: &TlbEntry) -> bool {
        if !self.kind.by_va() {
            return true;
        }
        if !entry.covers(self.va) {
            return false;
        }
        if self.kind.last_level_only() && !entry.is_leaf() {
            return false;
        }
        match entry.asid {
            None => true,
            Some(a) => self.kind.all_asids() || a == self.asid,
        }
    }
}

impl fmt::Display for Tlbi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.mnemonic();
        if self.kind.by_va() {
            write!(f, "tlbi {m}, {}", self.va)?;
            if !self.kind.all_asids() {
                write!(f, " asid={}", self.asid)?;
            }
            Ok(())
        } else {
            write!(f, "tlbi {m}")
        }
    }
}

/// The TLB of one CPU: a set of entries, kept sorted so equal TLBs compare
/// and hash equal.
///
/// A TLB also carries a mark, a number its owner may set
/// ([`Tlb::set_mark`]) and that every change to its entries clears: an
/// explorer marks the TLBs of a state it copies, and after applying a step
/// to the copy knows, without comparing them, which TLBs are still those
/// of the original. The mark is copied with the TLB and is not part of its
/// value (equality, hashing, serialization).
#[derive(Default, Serialize, Deserialize)]
pub struct Tlb {
    entries: Vec<TlbEntry>,
    #[serde(skip)]
    mark: Option<u32>,
}

impl fmt::Debug for Tlb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tlb")
            .field("entries", &self.entries)
            .finish()
    }
}

impl PartialEq for Tlb {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Tlb {}

impl std::hash::Hash for Tlb {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.entries.hash(state);
    }
}

impl Clone for Tlb {
    fn clone(&self) -> Self {
        Tlb {
            entries: self.entries.clone(),
            mark: self.mark,
        }
    }

    /// Copies `source` into this TLB's storage (no allocation when it is
    /// big enough: an explorer copies states many times a second), with
    /// its mark.
    #[inline]
    fn clone_from(&mut self, source: &Self) {
        self.entries.clone_from(&source.entries);
        self.mark = source.mark;
    }
}

impl Tlb {
    /// Returns the mark: the last [`Tlb::set_mark`], if no entry was
    /// inserted or removed since.
    #[inline]
    pub fn mark(&self) -> Option<u32> {
        self.mark
    }

    /// Sets the mark (see [`Tlb`]).
    #[inline]
    pub fn set_mark(&mut self, mark: u32) {
        self.mark = Some(mark);
    }

    /// Removes every entry.
    #[inline]
    pub fn clear(&mut self) {
        if !self.entries.is_empty() {
            self.entries.clear();
            self.mark = None;
        }
    }

    /// Inserts an entry, cheaply when it sorts after every entry present
    /// (a TLB rebuilt from its entries in order).
    #[inline]
    pub fn push(&mut self, e: TlbEntry) {
        if self.entries.last().is_none_or(|l| *l < e) {
            self.entries.push(e);
            self.mark = None;
        } else {
            self.insert(e);
        }
    }

    /// Appends an entry that sorts after every entry present (a TLB
    /// rebuilt from its entries in order), without comparing it: the
    /// caller guarantees the order (checked in debug builds only).
    #[inline]
    pub fn push_sorted(&mut self, e: TlbEntry) {
        debug_assert!(self.entries.last().is_none_or(|l| *l < e));
        self.entries.push(e);
        self.mark = None;
    }

    /// Returns the entries.
    #[inline]
    pub fn entries(&self) -> &[TlbEntry] {
        &self.entries
    }

    /// Inserts an entry (no effect if an identical one is present).
    pub fn insert(&mut self, e: TlbEntry) {
        if let Err(i) = self.entries.binary_search(&e) {
            self.entries.insert(i, e);
            self.mark = None;
        }
    }

    /// Removes the entry at `index` (an eviction).
    pub fn evict(&mut self, index: usize) -> Option<TlbEntry> {
        (index < self.entries.len()).then(|| {
            self.mark = None;
            self.entries.remove(index)
        })
    }

    /// Removes the entries a TLBI covers; returns how many.
    pub fn invalidate(&mut self, op: &Tlbi) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| !op.matches(e));
        let removed = before - self.entries.len();
        if removed > 0 {
            self.mark = None;
        }
        removed
    }

    /// Returns the leaf entries that match `va` for `asid`.
    #[inline]
    pub fn leaves(&self, va: VirtAddr, asid: u16) -> impl Iterator<Item = &TlbEntry> {
        self.entries
            .iter()
            .filter(move |e| e.is_leaf() && e.covers(va) && e.asid.is_none_or(|a| a == asid))
    }

    /// Returns the walk-cache entries that match `va`.
    #[inline]
    pub fn walks(&self, va: VirtAddr) -> impl Iterator<Item = &TlbEntry> {
        self.entries
            .iter()
            .filter(move |e| !e.is_leaf() && e.covers(va))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(va: u64, next: u64) -> TlbEntry {
        TlbEntry {
            va: VirtAddr(va),
            size_shift: 21,
            level: 2,
            kind: TlbKind::Walk {
                next: PhysAddr(next),
            },
            asid: None,
            desc_pa: PhysAddr(0x6010),
        }
    }

    #[test]
    fn a_change_of_the_entries_clears_the_mark() {
        let mut t = Tlb::default();
        t.insert(walk(0, 0x7000));
        t.insert(walk(1 << 21, 0x8000));
        t.set_mark(3);
        // Nothing changes: the mark stays.
        t.insert(walk(0, 0x7000));
        assert_eq!(t.invalidate(&Tlbi::new(TlbiKind::Vaale1, VirtAddr(0))), 0);
        assert_eq!(t.evict(2), None);
        assert_eq!(t.mark(), Some(3));
        // A copy carries the mark; the mark is not part of the value.
        let mut c = Tlb::default();
        c.clone_from(&t);
        assert_eq!(c.mark(), Some(3));
        assert_eq!(t.clone().mark(), Some(3));
        let mut unmarked = Tlb::default();
        unmarked.insert(walk(0, 0x7000));
        unmarked.insert(walk(1 << 21, 0x8000));
        assert_eq!(unmarked, t);
        assert_eq!(format!("{unmarked:?}"), format!("{t:?}"));
        // Each change clears it.
        let changes: [fn(&mut Tlb); 5] = [
            |t| t.insert(walk(1 << 22, 0x9000)),
            |t| t.push(walk(1 << 22, 0x9000)),
            |t| t.push_sorted(walk(1 << 22, 0x9000)),
            |t| assert!(t.evict(0).is_some()),
            |t| assert_eq!(t.invalidate(&Tlbi::new(TlbiKind::Vae1, VirtAddr(0))), 1),
        ];
        for change in changes {
            let mut c = t.clone();
            change(&mut c);
            assert_eq!(c.mark(), None);
        }
        let mut c = t.clone();
        c.clear();
        assert_eq!(c.mark(), None);
        c.set_mark(4);
        c.clear();
        assert_eq!(c.mark(), Some(4), "clearing an empty TLB changes nothing");
    }
}
