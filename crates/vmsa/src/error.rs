//! The crate's one error type.

use thiserror::Error;

use crate::granule::{Granule, Level};

/// Everything that can go wrong when building or running the model.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VmsaError {
    /// The level does not exist in a walk with this granule.
    #[error("level {level} does not exist with the {granule} granule and a 48-bit VA")]
    NoSuchLevel {
        /// The granule.
        granule: Granule,
        /// The level asked for.
        level: Level,
    },
    /// A block descriptor was asked for where the granule has none.
    #[error("the {granule} granule has no block descriptors at level {level} (48-bit OA)")]
    NoBlockAtLevel {
        /// The granule.
        granule: Granule,
        /// The level asked for.
        level: Level,
    },
    /// A page descriptor was asked for above level 3.
    #[error("page descriptors exist only at level 3, not at level {level} ({granule})")]
    NoPageAtLevel {
        /// The granule.
        granule: Granule,
        /// The level asked for.
        level: Level,
    },
    /// A table descriptor was asked for at level 3.
    #[error("table descriptors do not exist at level {level} ({granule})")]
    NoTableAtLevel {
        /// The granule.
        granule: Granule,
        /// The level asked for.
        level: Level,
    },
    /// An address is not aligned as required.
    #[error("address {addr:#x} is not aligned to {align:#x}")]
    Misaligned {
        /// The address.
        addr: u64,
        /// The alignment required.
        align: u64,
    },
    /// An output address does not fit in 48 bits.
    #[error("address {addr:#x} does not fit in a 48-bit output address")]
    AddressTooWide {
        /// The address.
        addr: u64,
    },
    /// A descriptor field is out of range.
    #[error("{field} cannot hold {value:#x}")]
    Field {
        /// Which field.
        field: &'static str,
        /// The value given.
        value: u64,
    },
    /// A physical address outside simulated memory.
    #[error("physical address {addr:#x} is outside simulated memory")]
    OutOfRange {
        /// The address.
        addr: u64,
    },
    /// The page allocator has no free block of that order.
    #[error("out of memory: no free block of order {order}")]
    OutOfMemory {
        /// The order asked for.
        order: u8,
    },
    /// A free that does not match an allocation.
    #[error("bad free of frame {frame:#x} order {order}: {why}")]
    BadFree {
        /// The frame.
        frame: u64,
        /// The order given.
        order: u8,
        /// What does not match.
        why: &'static str,
    },
    /// A CPU index out of range.
    #[error("CPU {cpu} does not exist (the machine has {ncpus})")]
    NoSuchCpu {
        /// The CPU asked for.
        cpu: usize,
        /// How many CPUs the machine has.
        ncpus: usize,
    },
    /// A machine with no CPU or more than the model supports.
    #[error("a machine has 1 to 64 CPUs, not {ncpus}")]
    CpuCount {
        /// The number asked for.
        ncpus: usize,
    },
    /// A VA outside the region TTBR1 translates.
    #[error("virtual address {va:#x} is not in the TTBR1 range of a 48-bit VA")]
    NotKernelVa {
        /// The address.
        va: u64,
    },
    /// Text that does not parse.
    #[error("cannot parse {what} from {input:?}: expected {expected}")]
    Parse {
        /// What was being parsed.
        what: &'static str,
        /// The text given.
        input: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A mapping request that the tables cannot satisfy.
    #[error("cannot map {va:#x}: {why}")]
    Map {
        /// The VA.
        va: u64,
        /// Why.
        why: String,
    },
}
