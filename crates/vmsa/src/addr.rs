//! Newtypes for virtual and physical addresses.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A virtual address (an input address of stage 1 translation).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct VirtAddr(pub u64);

/// A physical address (an output address of stage 1 translation).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct PhysAddr(pub u64);

macro_rules! addr_impls {
    ($t:ident) => {
        impl $t {
            /// Returns the address rounded down to a multiple of `align`
            /// (a power of two).
            #[inline]
            pub const fn align_down(self, align: u64) -> Self {
                Self(self.0 & !(align - 1))
            }

            /// Tells whether the address is a multiple of `align` (a power of two).
            #[inline]
            pub const fn is_aligned(self, align: u64) -> bool {
                self.0 & (align - 1) == 0
            }

            /// Returns the address `off` bytes further on.
            #[inline]
            pub const fn add(self, off: u64) -> Self {
                Self(self.0.wrapping_add(off))
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::LowerHex for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

addr_impls!(VirtAddr);
addr_impls!(PhysAddr);
