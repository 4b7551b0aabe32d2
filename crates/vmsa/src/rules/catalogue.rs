//! The catalogue of the rules the checker enforces: [`Rule`] (each clause
//! with its Arm ARM rule ID, short name, summary and source) and
//! [`Violation`], one finding.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::addr::{PhysAddr, VirtAddr};
use crate::descriptor::Descriptor;
use crate::granule::Level;

/// A rule (or one clause of a rule) the checker enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Rule {
    /// R_WHZWS: the output address of a live entry changes while the old or
    /// the new translation is writable (DBM with hardware dirty management
    /// counts as writable).
    OaChangeWritable,
    /// R_WHZWS: the output address of a live entry changes and the memory
    /// at the new address differs from the memory at the old one.
    OaChangeContents,
    /// R_WHZWS: the memory type, cacheability or shareability of a live
    /// entry changes.
    MemoryAttributes,
    /// R_WHZWS with R_KFLJB / R_PVTFW: the block size of a live entry
    /// changes where the FEAT_BBM level does not allow it.
    BlockSize,
    /// R_WHZWS: a global entry is written where non-global entries may be
    /// cached.
    GlobalOverNonGlobal,
    /// R_DDMVT: a new valid entry is written while an old translation for
    /// the same addresses may still be cached (no completed broadcast TLBI
    /// since the break).
    MakeBeforeInvalidation,
    /// R_DDMVT: a TLBI is issued for an entry whose invalidating store no
    /// DSB has yet made visible to walkers, so the TLBI may be undone by a
    /// refill of the old entry.
    TlbiBeforeDsb,
    /// A page is freed while a live descriptor still maps it or points at it
    /// as a table.
    FreeWhileMapped,
    /// A page is freed while a TLB may still hold a translation to it.
    FreeWhileCached,
    /// A table page is freed while a walk cache may still hold a pointer to
    /// it or an entry read from it (R_RVJDB: walk caches are TLB entries;
    /// only non-last-level TLBIs remove them).
    FreeTableWhileCached,
}

impl Rule {
    /// Lists every rule.
    pub const ALL: [Rule; 10] = [
        Rule::OaChangeWritable,
        Rule::OaChangeContents,
        Rule::MemoryAttributes,
        Rule::BlockSize,
        Rule::GlobalOverNonGlobal,
        Rule::MakeBeforeInvalidation,
        Rule::TlbiBeforeDsb,
        Rule::FreeWhileMapped,
        Rule::FreeWhileCached,
        Rule::FreeTableWhileCached,
    ];

    /// Returns the rule's position in [`Rule::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Returns the Arm ARM rule ID (DDI0487, "Translation table updates"),
    /// or `HVO_FREE` for the page-reuse rules, which the Arm ARM states
    /// through R_RVJDB and R_FFWJK rather than as one rule.
    pub fn id(self) -> &'static str {
        match self {
            Rule::OaChangeWritable
            | Rule::OaChangeContents
            | Rule::MemoryAttributes
            | Rule::BlockSize
            | Rule::GlobalOverNonGlobal => "R_WHZWS",
            Rule::MakeBeforeInvalidation | Rule::TlbiBeforeDsb => "R_DDMVT",
            Rule::FreeWhileMapped | Rule::FreeWhileCached | Rule::FreeTableWhileCached => {
                "HVO_FREE"
            }
        }
    }

    /// Returns the clause's short name.
    pub fn clause(self) -> &'static str {
        match self {
            Rule::OaChangeWritable => "oa-writable",
            Rule::OaChangeContents => "oa-contents",
            Rule::MemoryAttributes => "memory-attributes",
            Rule::BlockSize => "block-size",
            Rule::GlobalOverNonGlobal => "global",
            Rule::MakeBeforeInvalidation => "make-before-invalidation",
            Rule::TlbiBeforeDsb => "tlbi-before-dsb",
            Rule::FreeWhileMapped => "mapped",
            Rule::FreeWhileCached => "cached",
            Rule::FreeTableWhileCached => "walk-cached",
        }
    }

    /// Returns `ID.clause`, e.g. `R_WHZWS.oa-writable`.
    pub fn code(self) -> String {
        format!("{}.{}", self.id(), self.clause())
    }

    /// Returns one line saying what the rule forbids.
    pub fn summary(self) -> &'static str {
        match self {
            Rule::OaChangeWritable => {
                "output address of a live entry changed while the old or new translation is writable"
            }
            Rule::OaChangeContents => {
                "output address of a live entry changed to memory whose contents differ"
            }
            Rule::MemoryAttributes => {
                "memory type, cacheability or shareability of a live entry changed"
            }
            Rule::BlockSize => {
                "block size of a live entry changed where the FEAT_BBM level does not allow it (level 0; level 1 without nT)"
            }
            Rule::GlobalOverNonGlobal => {
                "global entry written where non-global entries may still be cached"
            }
            Rule::MakeBeforeInvalidation => {
                "new entry written before the break was invalidated by a completed broadcast TLBI"
            }
            Rule::TlbiBeforeDsb => {
                "TLBI issued before a DSB made the invalidating store visible to walkers"
            }
            Rule::FreeWhileMapped => "page freed while a live descriptor maps it or points to it",
            Rule::FreeWhileCached => "page freed while a TLB may still hold a translation to it",
            Rule::FreeTableWhileCached => {
                "table page freed while a walk cache may still hold a pointer to it or an entry in it"
            }
        }
    }

    /// Returns where the rule comes from.
    pub fn source(self) -> &'static str {
        match self {
            Rule::OaChangeWritable | Rule::OaChangeContents => {
                "Arm ARM R_WHZWS (DDI0487, Translation table updates, Use of break-before-make)"
            }
            Rule::MemoryAttributes | Rule::GlobalOverNonGlobal => "Arm ARM R_WHZWS",
            Rule::BlockSize => "Arm ARM R_WHZWS, R_KFLJB, R_PVTFW, R_MRRPW, I_HYQMB",
            Rule::MakeBeforeInvalidation | Rule::TlbiBeforeDsb => {
                "Arm ARM R_DDMVT (the break-before-make sequence)"
            }
            Rule::FreeWhileMapped | Rule::FreeWhileCached => {
                "Arm ARM R_FFWJK (TLBs are not coherent with table writes), R_GPPYH"
            }
            Rule::FreeTableWhileCached => {
                "Arm ARM R_RVJDB (walk caches are TLB entries); Linux __flush_tlb_kernel_pgtable (vaae1is)"
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id(), self.clause())
    }
}

/// One violation of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// The index of the offending operation in the stream (from 0).
    pub step: u64,
    /// The CPU that performed it.
    pub cpu: usize,
    /// The descriptor written, or the page freed.
    pub pa: PhysAddr,
    /// The VA the descriptor translates, if any.
    pub va: Option<VirtAddr>,
    /// The descriptor's level, if any.
    pub level: Option<Level>,
    /// The value replaced (or the cached translation involved).
    pub old: Option<Descriptor>,
    /// The value written.
    pub new: Option<Descriptor>,
    /// What exactly was found.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} cpu{} {}: {}",
            self.step, self.cpu, self.rule, self.detail
        )?;
        if let Some(va) = self.va {
            write!(f, " [va {va}")?;
            if let Some(l) = self.level {
                write!(f, " L{l}")?;
            }
            write!(f, " desc {}]", self.pa)?;
        }
        if let (Some(o), Some(n)) = (self.old, self.new) {
            write!(f, " {o} -> {n}")?;
        }
        Ok(())
    }
}
