//! The operations of CPUs that update translation tables, as a stream.
//!
//! The machine emits one [`Event`] per maintenance operation it executes,
//! and the rule checker consumes any such stream, whoever produced it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::VmsaError;
use crate::addr::PhysAddr;
use crate::descriptor::Descriptor;
use crate::tlb::Tlbi;

/// The data synchronization barriers that matter for table maintenance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DsbKind {
    /// `DSB ISH`: waits for earlier memory accesses and for the completion of
    /// earlier TLB maintenance issued by this CPU, on every CPU of the Inner
    /// Shareable domain.
    Ish,
    /// `DSB ISHST`: waits for earlier stores only. It makes descriptor stores
    /// visible to walkers but does not complete TLB maintenance; Linux issues
    /// `dsb(ishst)` before a TLBI and `dsb(ish)` after it
    /// (arch/arm64/include/asm/tlbflush.h, header comment).
    IshSt,
}

impl DsbKind {
    /// Tells whether the barrier completes earlier TLBIs.
    pub fn completes_tlbi(self) -> bool {
        matches!(self, DsbKind::Ish)
    }
}

impl fmt::Display for DsbKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DsbKind::Ish => "dsb ish",
            DsbKind::IshSt => "dsb ishst",
        })
    }
}

impl FromStr for DsbKind {
    type Err = VmsaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ish" => Ok(DsbKind::Ish),
            "ishst" => Ok(DsbKind::IshSt),
            _ => Err(VmsaError::Parse {
                what: "DSB option",
                input: s.to_string(),
                expected: "ish or ishst",
            }),
        }
    }
}

/// One operation of a CPU that updates translation tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Event {
    /// A store (or a successful compare-and-swap) of a descriptor at `pa`.
    DescWrite {
        /// The CPU.
        cpu: usize,
        /// Where the descriptor lives.
        pa: PhysAddr,
        /// The value it replaces (the coherent value before the write).
        old: Descriptor,
        /// The value written.
        new: Descriptor,
        /// Whether it was a compare-and-swap that found `old` in memory.
        cas: bool,
    },
    /// A DSB.
    Dsb {
        /// The CPU.
        cpu: usize,
        /// The barrier's option.
        kind: DsbKind,
    },
    /// An ISB.
    Isb {
        /// The CPU.
        cpu: usize,
    },
    /// A TLBI, broadcast or local ([`Tlbi::scope`]).
    Tlbi {
        /// The CPU.
        cpu: usize,
        /// The operation and its operands.
        op: Tlbi,
    },
    /// `2^order` frames at `pa` given back to the page allocator.
    Free {
        /// The CPU.
        cpu: usize,
        /// The first byte of the block.
        pa: PhysAddr,
        /// The block's order.
        order: u8,
    },
}

impl Event {
    /// Returns the CPU that performed the operation.
    pub fn cpu(&self) -> usize {
        match *self {
            Event::DescWrite { cpu, .. }
            | Event::Dsb { cpu, .. }
            | Event::Isb { cpu }
            | Event::Tlbi { cpu, .. }
            | Event::Free { cpu, .. } => cpu,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::DescWrite {
                cpu,
                pa,
                old,
                new,
                cas,
            } => write!(
                f,
                "cpu{cpu}: {} [{pa}] {old} -> {new}",
                if *cas { "cas" } else { "str" }
            ),
            Event::Dsb { cpu, kind } => write!(f, "cpu{cpu}: {kind}"),
            Event::Isb { cpu } => write!(f, "cpu{cpu}: isb"),
            Event::Tlbi { cpu, op } => write!(f, "cpu{cpu}: {op}"),
            Event::Free { cpu, pa, order } => write!(f, "cpu{cpu}: free {pa} order {order}"),
        }
    }
}
