//! The syntax tree of kernel files: expressions and pages stay symbolic
//! (with their spans) until they are resolved against the booted kernel.

use std::collections::BTreeSet;
use std::ops::Range;

use explore::{Direction, Limits, WorkloadKind};
use mm::{Perm, Protocol};
use vmsa::{BbmLevel, DsbKind, Granule, TlbiKind, TlbiScope};

/// An integer expression: numbers, `head`, `next`, `vmemmap[E]`, `+`, `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is.
    pub span: Range<usize>,
}

/// The kinds of expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKind {
    /// A number.
    Num(u64),
    /// The pfn of the head of the huge page the program updates.
    Head,
    /// The pfn of the head of the next huge page (the neighbour).
    Next,
    /// The VA of the struct page of a pfn.
    Vmemmap(Box<Expr>),
    /// A sum.
    Add(Box<Expr>, Box<Expr>),
    /// A product.
    Mul(Box<Expr>, Box<Expr>),
}

/// A page operand of a kernel step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageRef {
    /// `rN` or `rN+K`: the page allocated into register N, plus K pages.
    Reg(u16, u64),
    /// `pfn E`: a frame number.
    Pfn(Expr),
    /// `page-of E`: the frame that maps VA E when the program starts.
    PageOf(Expr),
    /// `same`: the memory the block being changed already maps.
    Same,
    /// `shared-tail`: the shared tail page (the `shared-tail` struct page
    /// format).
    SharedTail,
}

/// A page operand and its span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageArg {
    /// The page.
    pub page: PageRef,
    /// Where it is.
    pub span: Range<usize>,
}

/// A descriptor of a kernel step (Linux's `PAGE_KERNEL` or
/// `PAGE_KERNEL_RO` leaves, tables, 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KDesc {
    /// `invalid`.
    Invalid,
    /// `page PAGE rw|ro [noaf] [nt]` or `block ...`.
    Leaf {
        /// The page mapped.
        page: PageArg,
        /// The permission.
        perm: Perm,
        /// Access flag set.
        af: bool,
        /// nT set.
        nt: bool,
        /// Written `block` (else `page`).
        block: bool,
    },
    /// `table PAGE`.
    Table(PageArg),
}

/// The operation of a kernel step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KOp {
    /// `store VA Ln DESC`.
    Store {
        /// The VA.
        va: Expr,
        /// The level.
        level: u8,
        /// The value.
        desc: KDesc,
    },
    /// `cas VA Ln EXPECTED => DESC [retries=N]`.
    Cas {
        /// The VA.
        va: Expr,
        /// The level.
        level: u8,
        /// The value expected.
        expect: KDesc,
        /// The value written.
        desc: KDesc,
        /// How many times a failed CAS is retried (`retries=N`; 0 when
        /// absent): see [`mm::Instr::Cas`].
        retries: u8,
    },
    /// `dsb ish|ishst`.
    Dsb(DsbKind),
    /// `isb`.
    Isb,
    /// `tlbi OP [VA]`.
    Tlbi {
        /// The operation.
        kind: TlbiKind,
        /// Broadcast (`vae1is`) or local (`vae1`).
        scope: TlbiScope,
        /// The VA (by-VA operations).
        va: Option<Expr>,
    },
    /// `alloc rN [order=K]`.
    Alloc {
        /// The register.
        reg: u16,
        /// The order.
        order: u8,
    },
    /// `free PAGE [order=K]`.
    Free {
        /// The page.
        page: PageArg,
        /// The order.
        order: u8,
    },
    /// `copy DST SRC`.
    Copy {
        /// Destination.
        dst: PageArg,
        /// Source.
        src: PageArg,
    },
    /// `fill-table PAGE from VA Ln`.
    FillTable {
        /// The new table.
        table: PageArg,
        /// A VA of the block.
        va: Expr,
        /// The block's level.
        level: u8,
    },
    /// `reset PAGE structs=N head=PFN`.
    Reset {
        /// The vmemmap page.
        page: PageArg,
        /// How many struct pages.
        count: Expr,
        /// The head's pfn.
        head: Expr,
    },
    /// `pause`.
    Pause,
    /// `resume`.
    Resume,
    /// `stop-machine`.
    StopMachine,
    /// `start-machine`.
    StartMachine,
    /// `synchronize-rcu`.
    SynchronizeRcu,
    /// `str VALUE, [VA]`.
    Str {
        /// The value.
        value: Expr,
        /// The VA.
        va: Expr,
    },
}

/// A step of a kernel case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KStep {
    /// The operation.
    pub op: KOp,
    /// The step's span (its line).
    pub span: Range<usize>,
}

/// The explorer's expected verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Concurrent {
    /// `safe`.
    Safe,
    /// `incomplete`: a limit stops the search.
    Incomplete,
    /// A hazard (its slug, e.g. `tlb-conflict-abort`), optionally `by`
    /// the workloads of the exploration that finds it.
    Hazard {
        /// The hazard's slug.
        slug: String,
        /// The workloads (`neighbour`, `pfn-walker+straddle`).
        by: Option<Vec<WorkloadKind>>,
    },
}

impl std::fmt::Display for Concurrent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Concurrent::Safe => f.write_str("safe"),
            Concurrent::Incomplete => f.write_str("incomplete"),
            Concurrent::Hazard { slug, by: None } => f.write_str(slug),
            Concurrent::Hazard { slug, by: Some(w) } => write!(
                f,
                "{slug} by {}",
                w.iter().map(|w| w.name()).collect::<Vec<_>>().join("+")
            ),
        }
    }
}

/// An `expect` line of a kernel case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// The FEAT_BBM levels it is for (`None`: every level).
    pub levels: Option<Vec<BbmLevel>>,
    /// The rule codes expected (empty: compliant).
    pub rules: BTreeSet<String>,
    /// The explorer's verdict expected.
    pub concurrent: Concurrent,
    /// Where it is.
    pub span: Range<usize>,
}

/// One case of a kernel file: the updater's program and its verdicts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KCase {
    /// The name.
    pub name: String,
    /// 1-based line of `case`.
    pub line: usize,
    /// The `case` line's span.
    pub span: Range<usize>,
    /// The expected verdicts.
    pub expects: Vec<Expect>,
    /// The program.
    pub steps: Vec<KStep>,
}

/// An `initial` line: what the booted kernel maps, checked before the
/// program runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Initial {
    /// The first VA.
    pub va: Expr,
    /// The frame mapping it.
    pub page: PageArg,
    /// How many pages (consecutive VAs).
    pub pages: u64,
    /// All pages map the one frame (else consecutive frames).
    pub shared: bool,
    /// Read-only (else read-write).
    pub ro: bool,
    /// Where it is.
    pub span: Range<usize>,
}

/// A parsed kernel file.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelFile {
    /// The file name as given.
    pub file: String,
    /// The file's text (error spans index it).
    pub source: String,
    /// The granule.
    pub granule: Granule,
    /// The huge page size.
    pub huge_size: u64,
    /// The FEAT_BBM levels to check.
    pub levels: Vec<BbmLevel>,
    /// Hardware Access flag management.
    pub hw_af: bool,
    /// Hardware dirty state management.
    pub hw_dbm: bool,
    /// HVO or de-HVO.
    pub direction: Direction,
    /// The protocol the kernel is booted for: its struct page format, and
    /// for de-HVO the one that optimized the huge page.
    pub boot: Protocol,
    /// The `kernel` line's span.
    pub kernel_span: Range<usize>,
    /// The workloads.
    pub workloads: Vec<WorkloadKind>,
    /// CPUs per workload.
    pub copies: usize,
    /// All workloads in one exploration.
    pub together: bool,
    /// Search limits.
    pub limits: Limits,
    /// The mapping stated for the start.
    pub initial: Vec<Initial>,
    /// The cases.
    pub cases: Vec<KCase>,
}
