//! What can go wrong while another CPU remaps the vmemmap.

use std::fmt;

use serde::Serialize;
use vmsa::FaultKind;

/// A kind of hazard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum HazardKind {
    /// A fault on a kernel vmemmap access: an oops.
    Fault(FaultKind),
    /// A store the final memory does not reflect.
    LostUpdate,
    /// An access through a stale translation to a freed page.
    UseAfterFree,
    /// A translation table walk (for an access, or a walker caching
    /// entries) that reads a freed page as a table: from a walk-cache entry
    /// still pointing at a table page freed after TLBIs that leave walk
    /// caches alone (`tlbi vale1is` and the other last-level operations,
    /// Arm ARM R_RVJDB: walk-cache entries are TLB entries), or through a
    /// table descriptor still pointing at it. Once the page is reused its
    /// contents are read as descriptors (any translation), and a hardware
    /// Access-flag update writes into it.
    FreedTableWalk,
    /// A load across two vmemmap pages whose halves no single version of
    /// the two pages shows: each half is compared, when it is read, with
    /// what every mapping of the pages the sequential run passes through
    /// (each pair of frames they map) holds there, and the load is torn
    /// when no one mapping holds both halves (one half through an older
    /// translation, the other through a newer one, where their contents
    /// differ).
    TornRead,
    /// A read of a freshly allocated page whose initialization another CPU
    /// cannot see yet: the barrier before the store that published the page
    /// is missing.
    Uninitialized,
    /// A page freed twice.
    DoubleFree,
    /// The final state is not the sequential run's: mapping, freed pages
    /// or struct page contents.
    FinalState,
    /// No CPU can go on.
    Deadlock,
    /// Not a hazard: the compare-and-swap failed more often than the
    /// protocol retries, and the updater gives up on this huge page (a
    /// liveness question; the path is not explored further).
    GaveUp,
}

impl HazardKind {
    /// Returns a one-word name, as the verdict corpus writes it.
    pub fn slug(self) -> &'static str {
        match self {
            HazardKind::Fault(FaultKind::Translation) => "translation-fault",
            HazardKind::Fault(FaultKind::Permission) => "permission-fault",
            HazardKind::Fault(FaultKind::AccessFlag) => "access-flag-fault",
            HazardKind::Fault(FaultKind::TlbConflict) => "tlb-conflict-abort",
            HazardKind::LostUpdate => "lost-update",
            HazardKind::UseAfterFree => "use-after-free",
            HazardKind::FreedTableWalk => "freed-table-walk",
            HazardKind::TornRead => "torn-read",
            HazardKind::Uninitialized => "uninitialized",
            HazardKind::DoubleFree => "double-free",
            HazardKind::FinalState => "final-state",
            HazardKind::Deadlock => "deadlock",
            HazardKind::GaveUp => "gave-up",
        }
    }

    /// Returns a short name.
    pub fn name(self) -> String {
        match self {
            HazardKind::Fault(k) => format!("{k}"),
            HazardKind::LostUpdate => "lost update".into(),
            HazardKind::UseAfterFree => "use after free".into(),
            HazardKind::FreedTableWalk => "walk of a freed table".into(),
            HazardKind::TornRead => "torn read".into(),
            HazardKind::Uninitialized => "uninitialized read".into(),
            HazardKind::DoubleFree => "double free".into(),
            HazardKind::FinalState => "final state".into(),
            HazardKind::Deadlock => "deadlock".into(),
            HazardKind::GaveUp => "CAS retries exhausted".into(),
        }
    }
}

/// A hazard found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hazard {
    /// What.
    pub kind: HazardKind,
    /// The CPU it happened on.
    pub cpu: usize,
    /// The VA concerned, if any.
    pub va: Option<u64>,
    /// What exactly.
    pub detail: String,
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on cpu{}", self.kind.name(), self.cpu)?;
        if let Some(va) = self.va {
            write!(f, " at {va:#x}")?;
        }
        write!(f, ": {}", self.detail)
    }
}
