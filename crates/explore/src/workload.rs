//! The concurrent workloads (the brief's section 5): small programs, one per
//! CPU, that use the vmemmap while the updater remaps it.

use std::fmt;
use std::str::FromStr;

use mm::vmemmap::{FLAGS_BASE, PG_HEAD, struct_page_va, word};
use serde::Serialize;

use crate::world::Sites;

/// A kind of workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum WorkloadKind {
    /// Writes and reads the struct page of a page of *another* huge page
    /// whose vmemmap shares the block (4K) or the table (16K, 64K).
    Neighbour,
    /// A speculative PFN walker (compaction, memory-failure,
    /// `/proc/kpageflags`): inside an RCU read section, reads a struct page
    /// of the huge page (the head, a fake-head position or a tail), skips
    /// a fake head (`page_fixed_fake_head()`), and does
    /// `get_page_unless_zero()`: a CAS of the refcount when it is non-zero
    /// (commit bd225530a4c7).
    PfnWalker,
    /// A 16-byte load across the boundary of vmemmap pages 0 and 1.
    Straddle,
    /// Stress, outside the kernel's guarantees: a write of the optimized
    /// huge page's head struct page at any time (its refcount is frozen,
    /// so no kernel code does this).
    HeadWriter,
}

impl WorkloadKind {
    /// The standard set: what the kernel allows while a huge page is
    /// optimized.
    pub const STANDARD: [WorkloadKind; 3] = [
        WorkloadKind::Neighbour,
        WorkloadKind::PfnWalker,
        WorkloadKind::Straddle,
    ];

    /// Every workload.
    pub const ALL: [WorkloadKind; 4] = [
        WorkloadKind::Neighbour,
        WorkloadKind::PfnWalker,
        WorkloadKind::Straddle,
        WorkloadKind::HeadWriter,
    ];

    /// Returns its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Neighbour => "neighbour",
            WorkloadKind::PfnWalker => "pfn-walker",
            WorkloadKind::Straddle => "straddle",
            WorkloadKind::HeadWriter => "head-writer",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WorkloadKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WorkloadKind::ALL
            .iter()
            .copied()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown workload `{s}`; expected one of: {}",
                    WorkloadKind::ALL.map(|w| w.name()).join(", ")
                )
            })
    }
}

/// An address a workload operation uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr {
    /// A fixed VA.
    Fixed(u64),
    /// Byte offset into the struct page the workload picked.
    Picked(u64),
}

/// One operation of a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WOp {
    /// Choose one of these struct pages (by VA), nondeterministically.
    Pick(Vec<u64>),
    /// `rcu_read_lock()`.
    RcuLock,
    /// `rcu_read_unlock()`.
    RcuUnlock,
    /// Load a word into register `reg`.
    Load {
        /// Where.
        addr: Addr,
        /// The register.
        reg: usize,
    },
    /// One half of a 16-byte load that crosses a page boundary: half 0
    /// loads the last word of the first page into register 0, half 1 the
    /// first word of the next page into register 1.
    LoadHalf {
        /// The word's VA.
        va: u64,
        /// Which half.
        half: usize,
    },
    /// Store a word.
    Store {
        /// Where.
        addr: Addr,
        /// The value.
        value: u64,
    },
    /// `page_fixed_fake_head()`: if the picked struct page is not the real
    /// head and the flags in `reg` have PG_head, it is a fake head: go to
    /// operation `to`.
    SkipIfFakeHead {
        /// The register holding the flags.
        reg: usize,
        /// Where to go.
        to: usize,
    },
    /// `get_page_unless_zero()`: if the refcount in `reg` is non-zero,
    /// compare-and-swap it to one more (a write access, which needs write
    /// permission whether or not the comparison succeeds).
    CasIfNonZero {
        /// Where.
        addr: Addr,
        /// The register holding the counts word read.
        reg: usize,
    },
}

impl fmt::Display for WOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = |a: &Addr| match a {
            Addr::Fixed(v) => format!("{v:#x}"),
            Addr::Picked(o) => format!("page+{o:#x}"),
        };
        match self {
            WOp::Pick(v) => write!(f, "pick a struct page of {}", v.len()),
            WOp::RcuLock => f.write_str("rcu_read_lock"),
            WOp::RcuUnlock => f.write_str("rcu_read_unlock"),
            WOp::Load { addr, reg } => write!(f, "ldr x{reg}, [{}]", a(addr)),
            WOp::LoadHalf { va, half } => write!(f, "ldp (half {half}) [{va:#x}]"),
            WOp::Store { addr, value } => write!(f, "str {value:#x}, [{}]", a(addr)),
            WOp::SkipIfFakeHead { reg, .. } => write!(f, "skip if x{reg} is a fake head"),
            WOp::CasIfNonZero { addr, reg } => {
                write!(f, "get_page_unless_zero: cas [{}] if x{reg} != 0", a(addr))
            }
        }
    }
}

/// A workload: its kind, its operations, and the real head (for the
/// fake-head test).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The kind.
    pub kind: WorkloadKind,
    /// The operations.
    pub ops: Vec<WOp>,
    /// The VA of the huge page's head struct page.
    pub head: u64,
}

/// The model's `PG_referenced`-like flag a neighbour sets.
const NEIGHBOUR_FLAG: u64 = 1 << 2;
/// The flag the head writer sets.
const HEAD_FLAG: u64 = 1 << 3;

impl Workload {
    /// Builds the workload `kind` for the struct pages `sites`.
    pub fn new(kind: WorkloadKind, sites: &Sites) -> Self {
        let head = struct_page_va(sites.head);
        let flags = word::FLAGS * 8;
        let counts = word::COUNTS * 8;
        let ops = match kind {
            WorkloadKind::Neighbour => {
                let n = struct_page_va(sites.neighbour);
                vec![
                    WOp::Store {
                        addr: Addr::Fixed(n + flags),
                        value: FLAGS_BASE | NEIGHBOUR_FLAG,
                    },
                    WOp::Load {
                        addr: Addr::Fixed(n + counts),
                        reg: 0,
                    },
                ]
            }
            WorkloadKind::PfnWalker => vec![
                WOp::Pick(vec![
                    head,
                    struct_page_va(sites.fake_head),
                    struct_page_va(sites.tail),
                ]),
                WOp::RcuLock,
                WOp::Load {
                    addr: Addr::Picked(flags),
                    reg: 0,
                },
                WOp::SkipIfFakeHead { reg: 0, to: 6 },
                WOp::Load {
                    addr: Addr::Picked(counts),
                    reg: 1,
                },
                WOp::CasIfNonZero {
                    addr: Addr::Picked(counts),
                    reg: 1,
                },
                WOp::RcuUnlock,
            ],
            WorkloadKind::Straddle => vec![
                WOp::LoadHalf {
                    va: sites.page1 - 8,
                    half: 0,
                },
                WOp::LoadHalf {
                    va: sites.page1,
                    half: 1,
                },
            ],
            WorkloadKind::HeadWriter => vec![WOp::Store {
                addr: Addr::Fixed(head + flags),
                value: FLAGS_BASE | PG_HEAD | HEAD_FLAG,
            }],
        };
        Workload { kind, ops, head }
    }

    /// Returns the VA operation `pc` accesses with the pick `pick`, if it
    /// accesses one and the pick is made.
    pub fn va(&self, pc: usize, pick: Option<u64>) -> Vec<u64> {
        let resolve = |a: &Addr| match *a {
            Addr::Fixed(v) => vec![v],
            Addr::Picked(o) => match pick {
                Some(p) => vec![p + o],
                None => self.candidates().iter().map(|c| c + o).collect(),
            },
        };
        match self.ops.get(pc) {
            Some(WOp::Load { addr, .. })
            | Some(WOp::Store { addr, .. })
            | Some(WOp::CasIfNonZero { addr, .. }) => resolve(addr),
            Some(WOp::LoadHalf { va, .. }) => vec![*va],
            _ => Vec::new(),
        }
    }

    /// Returns the struct pages a `Pick` chooses among.
    pub fn candidates(&self) -> &[u64] {
        self.ops
            .iter()
            .find_map(|o| match o {
                WOp::Pick(v) => Some(v.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }
}
