//! The exhaustive concurrent explorer: runs a protocol's program on one
//! CPU against workloads on the others, under every behaviour the
//! architecture allows (interleavings, TLB fills and evictions, stores
//! reaching walkers late, TLBIs taking effect late, the choice among
//! matching TLB entries or a conflict abort), and reports the first
//! hazard with its shortest counterexample, or that there is none.
//!
//! - [`world`]: the scenario (a small booted kernel, the resolved program,
//!   the reference final state);
//! - [`workload`]: the concurrent workloads;
//! - [`state`]: the compact state;
//! - [`thread`]: threads, CPUs that run programs in the typed A64 set
//!   ([`vmsa::isa`]): how a herd7 litmus test runs on this engine;
//! - [`engine`]: the steps and what they do, with the reductions;
//! - [`hazard`]: what can go wrong;
//! - [`search`]: parallel breadth-first search with limits;
//! - [`trace`]: the structured counterexample: step kinds, descriptors
//!   and TLB entries after each step;
//! - [`mod@verify`]: one configuration's rule verdict, costs and safety verdict;
//! - [`mutate`]: mutants of a program, one step removed or moved.

pub mod engine;
pub mod hazard;
pub mod mutate;
pub mod search;
pub mod state;
pub mod thread;
pub mod trace;
pub mod verify;
pub mod workload;
pub mod world;

pub use hazard::{Hazard, HazardKind};
pub use mutate::Mutant;
pub use search::{Limit, Limits, Progress, Report, TraceStep, Verdict};
pub use trace::{DescState, Snapshot, StepKind, TlbState, VaState};
pub use verify::{Row, Run, verify, verify_program, verify_program_with};
pub use workload::WorkloadKind;
pub use world::{Direction, Prepared, Scenario, Setup};

/// What can go wrong setting up an exploration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExploreError {
    /// The kernel model refused.
    #[error(transparent)]
    Model(#[from] mm::MmError),
    /// The configuration cannot be explored.
    #[error("{0}")]
    Setup(String),
}

impl From<vmsa::VmsaError> for ExploreError {
    fn from(e: vmsa::VmsaError) -> Self {
        ExploreError::Model(mm::MmError::Model(e))
    }
}
