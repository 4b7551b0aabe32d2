//! An executable model of the Arm A-profile VMSA (VMSAv8-64, stage 1,
//! EL1&0, 48-bit VA and PA) for checking translation table updates.
//!
//! The model has:
//! - bit-exact descriptors for the 4KB, 16KB and 64KB granules ([`descriptor`]),
//! - physical memory with exact, symbolic page contents and a buddy
//!   allocator ([`memory`], [`alloc`]),
//! - a walker with Access-flag and dirty-state hardware updates ([`walk`]),
//! - per-CPU TLBs with walk caches that keep stale entries, and the
//!   TLBIs, broadcast and local, with their exact scope ([`tlb`]),
//! - a machine where descriptor stores reach walkers only by a DSB and TLBIs
//!   complete only by a `DSB ISH` of their CPU, with every nondeterministic
//!   step exposed ([`machine`]),
//! - FEAT_BBM levels, hardware AF/DBM and MAIR as configuration ([`features`]),
//! - a checker of the Arm ARM's rules for table updates that cites rule IDs
//!   ([`rules`]), fed by a stream of [`event::Event`]s.
//!
//! The crate knows nothing of Linux's data structures or of this project's
//! protocols: those live in the crates above it.

pub mod addr;
pub mod alloc;
pub mod descriptor;
mod error;
pub mod event;
pub mod features;
pub mod frames;
pub mod granule;
pub mod herd_bbm;
pub mod isa;
pub mod machine;
pub mod memory;
pub mod rules;
pub mod tlb;
pub mod translate;
pub mod walk;

pub use addr::{PhysAddr, VirtAddr};
pub use descriptor::{Attributes, Descriptor, Entry, Leaf, LeafAttrs, Shareability};
pub use error::VmsaError;
pub use event::{DsbKind, Event};
pub use features::{BbmLevel, Config, Features};
pub use granule::{Granule, Level};
pub use herd_bbm::HerdBbm;
pub use machine::Machine;
pub use rules::{Rule, RuleChecker, Violation};
pub use tlb::{Tlbi, TlbiKind, TlbiScope};
pub use walk::{Access, Fault, FaultKind, Translation};
