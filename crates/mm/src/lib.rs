//! The Linux side of HugeTLB Vmemmap Optimization on the VMSA model.
//!
//! This crate knows the kernel's data (struct pages, the vmemmap, the
//! hugetlb pool) and the ways of remapping the vmemmap; it drives the
//! architecture model in `vmsa` and never the other way round.

pub mod geometry;

pub use geometry::HugeGeometry;
