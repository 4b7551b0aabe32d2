//! Architecture features and the machine configuration.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::VmsaError;
use crate::granule::Granule;

/// The FEAT_BBM level in force (ID_AA64MMFR2_EL1.BBM), and for level 2
/// whether the CPUs are known never to raise a TLB conflict abort for a
/// block-size change.
///
/// Sources: Arm ARM R_KFLJB (level 0: break-before-make; level 1: BBM or
/// the nT bit; level 2: change size directly), R_PVTFW (the relaxation is for
/// a pure size change only), I_HYQMB (at level 2 a TLB conflict abort is
/// still possible while old entries remain). Linux only relies on level 2
/// on an allow-list of cores that attest to never aborting
/// (`cpu_has_bbml2_noabort()`, arch/arm64/kernel/cpufeature.c, capability
/// `ARM64_HAS_BBML2_NOABORT`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum BbmLevel {
    /// No FEAT_BBM: every block-size change needs break-before-make.
    #[default]
    #[serde(rename = "0")]
    Level0,
    /// FEAT_BBM level 1: break-before-make or the nT bit.
    #[serde(rename = "1")]
    Level1,
    /// FEAT_BBM level 2: size changes without breaking, conflict aborts possible.
    #[serde(rename = "2")]
    Level2,
    /// FEAT_BBM level 2 on CPUs that never abort for a size change
    /// (Linux's BBML2_NOABORT).
    #[serde(rename = "2-noabort")]
    Level2NoAbort,
}

impl BbmLevel {
    /// Lists every level.
    pub const ALL: [BbmLevel; 4] = [
        BbmLevel::Level0,
        BbmLevel::Level1,
        BbmLevel::Level2,
        BbmLevel::Level2NoAbort,
    ];

    /// Returns the numeric level (0, 1 or 2).
    pub fn level(self) -> u8 {
        match self {
            BbmLevel::Level0 => 0,
            BbmLevel::Level1 => 1,
            BbmLevel::Level2 | BbmLevel::Level2NoAbort => 2,
        }
    }
}

impl fmt::Display for BbmLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BbmLevel::Level0 => "0",
            BbmLevel::Level1 => "1",
            BbmLevel::Level2 => "2",
            BbmLevel::Level2NoAbort => "2-noabort",
        })
    }
}

impl FromStr for BbmLevel {
    type Err = VmsaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "0" => Ok(BbmLevel::Level0),
            "1" => Ok(BbmLevel::Level1),
            "2" => Ok(BbmLevel::Level2),
            "2-noabort" | "2noabort" | "2na" | "bbml2-noabort" => Ok(BbmLevel::Level2NoAbort),
            _ => Err(VmsaError::Parse {
                what: "FEAT_BBM level",
                input: s.to_string(),
                expected: "0, 1, 2 or 2-noabort",
            }),
        }
    }
}

/// Linux's MAIR_EL1 (arch/arm64/mm/proc.S `MAIR_EL1_SET` with the indexes
/// of arch/arm64/include/asm/memory.h): MT_NORMAL 0 = 0xff, MT_NORMAL_TAGGED
/// 1 = 0xff (0xf0 once MTE is enabled), MT_NORMAL_NC 2 = 0x44,
/// MT_DEVICE_nGnRnE 3 = 0x00, MT_DEVICE_nGnRE 4 = 0x04.
pub const LINUX_MAIR: u64 = 0x0000_0004_0044_ffff;

/// The features of the simulated CPUs (all CPUs alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Features {
    /// The FEAT_BBM level.
    pub bbm: BbmLevel,
    /// Hardware management of the Access flag (FEAT_HAFDBS, TCR_EL1.HA):
    /// the walker sets AF with an atomic update instead of faulting.
    pub hw_af: bool,
    /// Hardware management of dirty state (FEAT_HAFDBS, TCR_EL1.HD): a write
    /// through an entry with DBM set and AP\[2\] set clears AP\[2\] atomically.
    pub hw_dbm: bool,
    /// MAIR_EL1, which gives AttrIndx its meaning.
    pub mair: u64,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            bbm: BbmLevel::Level0,
            hw_af: false,
            hw_dbm: false,
            mair: LINUX_MAIR,
        }
    }
}

impl Features {
    /// Tells whether two AttrIndx values give the same memory type,
    /// cacheability and allocation hints under MAIR_EL1. Normal and
    /// Normal-Tagged (0xf0) count as the same type, as Linux's
    /// `pgattr_change_is_safe()` (arch/arm64/mm/mmu.c) treats Tagged as a
    /// permission attribute.
    pub fn same_memory_type(&self, a: u8, b: u8) -> bool {
        let attr = |i: u8| ((self.mair >> (8 * u32::from(i & 7))) & 0xff) as u8;
        let norm = |x: u8| if x == 0xf0 { 0xff } else { x };
        norm(attr(a)) == norm(attr(b))
    }
}

/// The configuration of a simulated machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Config {
    /// The translation granule.
    pub granule: Granule,
    /// The CPU features.
    pub features: Features,
    /// The number of CPUs (at most 64).
    pub ncpus: usize,
}

impl Config {
    /// Returns a configuration with default features.
    pub fn new(granule: Granule, ncpus: usize) -> Self {
        Config {
            granule,
            features: Features::default(),
            ncpus,
        }
    }
}
