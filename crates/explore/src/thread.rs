//! Threads: CPUs that run programs in the typed A64 instruction set
//! ([`vmsa::isa`]), beside the updater and the workloads, on the same
//! engine and the same search. A herd7 litmus test runs as threads
//! (`crates/litmus`, module `onto`): its locations mapped onto 4K
//! translation tables, its threads' code as these programs, its final
//! condition evaluated on the [`Final`]s the search reports.
//!
//! Addresses a thread uses are concrete numbers. One whose frame is in
//! [`Threads::physical`] is a physical address, accessed untranslated, as
//! herd7 accesses `PTE(x)` and `PA(x)`; any other is a virtual address,
//! translated through the tables (TLBs, walks, faults, hardware AF/dirty
//! updates, as for a workload). A store to a physical address inside a
//! translation table ([`Threads::tables`]) is a descriptor store:
//! coherent for loads at once, and seen by walkers later: each CPU's
//! walker has its own view of such stores, and a walk may use a value its
//! walker saw before the thread's last instructions (early walks: the
//! step semantics' `views.rs`). Labels
//! (`ADR`) are values at [`CODE_BASE`].
//!
//! The step semantics is `engine/thread.rs`.

use serde::Serialize;
use vmsa::isa::Instr;
pub use vmsa::translate::ExceptionLevel;
use vmsa::walk::FaultKind;

/// Where labels live as values: label `i` of thread `t` is
/// `CODE_BASE | t << 16 | i` (no location of a test lies there).
pub const CODE_BASE: u64 = 0x00c0_de00_0000_0000;

/// What a thread does after a fault without a handler (herd7's
/// `variant=` fault handling: herdtools7 `herd/mem.ml`, `add_fault`;
/// `lib/fault.ml`, `Handling.parse`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub enum FaultMode {
    /// `fatal`/`precise`: the thread stops.
    #[default]
    Fatal,
    /// `handled`/`imprecise`: the faulting instruction is executed again,
    /// once (at EL1); an execution that faults again is discarded.
    Handled,
    /// `skip`/`faultToNext`: execution goes on at the next instruction.
    Skip,
}

/// One thread's program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadCode {
    /// The instructions: the main code, then the fault handler if any.
    pub code: Vec<Instr>,
    /// Each instruction's text, for traces only.
    pub text: Vec<String>,
    /// The registers the thread uses (index = register number), with
    /// their initial values.
    pub regs: Vec<u64>,
    /// Where the fault handler starts, if the thread has one.
    pub handler: Option<u16>,
    /// Per instruction: a backward branch that counts towards the loop
    /// bound ([`Threads::unroll`]).
    pub counted: Vec<bool>,
    /// The hardware management of the Access flag and dirty state the
    /// thread's CPU does (herd7's `TTHM=` line, per thread): it replaces
    /// the scenario's `Features::hw_af`/`hw_dbm` for the CPU's accesses
    /// and TLB fills (`engine/thread/tthm.rs`).
    pub hw: HwManagement,
    /// The Exception level the thread runs at (herd7's `EL0=` line). An
    /// EL0 thread's fault handler, and an instruction executed again
    /// under [`FaultMode::Handled`] and those after it, run at EL1.
    pub el: ExceptionLevel,
}

/// Which hardware updates of descriptors a thread's CPU makes
/// (FEAT_HAFDBS: TCR_EL1.HA and TCR_EL1.HD).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HwManagement {
    /// Hardware management of the Access flag (TCR_EL1.HA).
    pub access_flag: bool,
    /// Hardware management of the dirty state (TCR_EL1.HD; herd7's HD
    /// implies HA).
    pub dirty: bool,
}

/// The threads of a scenario, and what the search reports of their final
/// states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Threads {
    /// CPU `1 + workloads + t` runs `code[t]`.
    pub code: Vec<ThreadCode>,
    /// What a fault without a handler does.
    pub fault_mode: FaultMode,
    /// The virtual pages the threads may translate (page-aligned VAs).
    pub vas: Vec<u64>,
    /// The frames that hold translation tables, sorted: a physical store
    /// there is a descriptor store.
    pub tables: Vec<u64>,
    /// The frames accessed by physical address, sorted (the tables and
    /// the data pages, as herd7's `PTE(x)` and `PA(x)`).
    pub physical: Vec<u64>,
    /// Words written before any thread runs, `(physical address,
    /// value)`: the test's initial values (at any byte address, as a
    /// location's value is one word).
    pub init: Vec<(u64, u64)>,
    /// The physical addresses whose final words a [`Final`] reports.
    pub observe: Vec<u64>,
    /// Whether walks cache the table descriptors they read (walk-cache
    /// entries). A front end whose tables above the last level never
    /// change turns it off: an entry for an unchanged table descriptor
    /// leads where the walk from the root does, so leaving it out loses
    /// no behaviour and saves the states of every subset of them cached.
    /// On for every kernel scenario.
    pub walk_cache: bool,
    /// Whether a thread's access may take a TLB conflict abort where two
    /// matching entries allow one (R_FVQCK), as the workloads' may. A
    /// front end for a model without them (herd7's) turns it off: such an
    /// access then uses one of the entries.
    pub conflict_aborts: bool,
    /// The most times a counted backward branch is taken to one target
    /// on an execution; an execution going further is cut and counted
    /// (herd7's `-unroll`).
    pub unroll: u8,
}

impl Default for Threads {
    fn default() -> Self {
        Threads {
            code: Vec::new(),
            fault_mode: FaultMode::Fatal,
            vas: Vec::new(),
            tables: Vec::new(),
            physical: Vec::new(),
            init: Vec::new(),
            observe: Vec::new(),
            walk_cache: true,
            conflict_aborts: true,
            unroll: 2,
        }
    }
}

/// A fault a thread took, as herd7 records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ThreadFault {
    /// The thread (index in [`Threads::code`]).
    pub thread: u8,
    /// The faulting instruction.
    pub pc: u16,
    /// The virtual address accessed.
    pub va: u64,
    /// The fault.
    pub kind: FaultKind,
}

/// What a final state shows: every thread's registers, the observed
/// words, the faults taken.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Final {
    /// Per thread, its registers ([`ThreadCode::regs`]'s numbering).
    pub regs: Vec<Vec<u64>>,
    /// The words at [`Threads::observe`], in order.
    pub words: Vec<u64>,
    /// The faults taken, sorted.
    pub faults: Vec<ThreadFault>,
    /// Some thread went past the loop bound: herd7 drops such an
    /// execution.
    pub cut: bool,
}
