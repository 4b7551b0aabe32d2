//! The Linux side of HugeTLB Vmemmap Optimization on the VMSA model.
//!
//! This crate knows the kernel's data (struct pages, the vmemmap, the
//! hugetlb pool) and the ways of remapping the vmemmap; it drives the
//! architecture model in `vmsa` and never the other way round.
//!
//! - [`geometry`]: vmemmap pages per huge page, what HVO frees;
//! - [`vmemmap`]: the vmemmap's VA layout, its mapping, struct page contents;
//! - [`program`]: programs, the data a protocol emits;
//! - [`protocol`]: the protocols and split strategies;
//! - [`kernel`]: boot, the executor, HVO and de-HVO in batches.

pub mod geometry;
pub mod kernel;
pub mod program;
pub mod protocol;
pub mod vmemmap;

pub use geometry::HugeGeometry;
pub use kernel::{Costs, Kernel, KernelConfig, MmError};
pub use program::{Desc, Instr, Page, Perm, Program, Regs};
pub use protocol::{PROTOCOLS, Protocol, RemapStrategy, SplitStrategy};
pub use vmemmap::TailFormat;
