//! A booted kernel on the model: memory laid out, the vmemmap mapped, a
//! hugetlb pool allocated; and the executor that runs programs on it with
//! the rule checker watching, batch by batch, as
//! `hugetlb_vmemmap_optimize_folios()` and `hugetlb_vmemmap_restore_folios()`
//! do (mm/hugetlb_vmemmap.c, v6.10 to v6.19).
//!
//! This file boots the kernel and answers questions about it (where a
//! struct page is, which frame a VA maps, what is in use); `exec.rs` holds
//! the executor (`run`), `batch.rs` the batches with rollback and the batch
//! programs.

mod batch;
mod exec;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use vmsa::alloc::FrameAllocator;
use vmsa::memory::{Content, Memory};
use vmsa::{Config, Descriptor, Features, Granule, Machine, PhysAddr, VirtAddr, VmsaError};

use crate::geometry::{HugeGeometry, STRUCT_PAGE_SIZE};
use crate::program::{Desc, Instr, Page, Perm};
use crate::vmemmap::{
    StructPages, TailFormat, VMEMMAP_START, page_kernel, struct_page_va, vmemmap_leaf_level,
};

/// What can go wrong booting or running the kernel model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MmError {
    /// The architecture model refused an operation.
    #[error(transparent)]
    Model(#[from] VmsaError),
    /// The configuration cannot be booted.
    #[error("{0}")]
    Config(String),
    /// An allocation failed (out of memory, or injected).
    #[error("allocation of order {order} failed at instruction {index}")]
    Alloc {
        /// Index of the instruction in its program.
        index: usize,
        /// The order asked for.
        order: u8,
    },
    /// A compare-and-swap found another value (only with concurrent CPUs).
    #[error("compare-and-swap at {va:#x} found {found:#x}")]
    CasFailed {
        /// The VA whose descriptor was swapped.
        va: u64,
        /// The value found.
        found: u64,
    },
}

/// The kernel's boot parameters, in its own vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct KernelConfig {
    /// The base page size.
    pub granule: Granule,
    /// Physical memory in bytes; `None` sizes it to the pool plus the
    /// vmemmap plus room for tables and HVO's allocations.
    pub memory: Option<u64>,
    /// `hugepagesz=`.
    pub huge_size: u64,
    /// `hugepages=`.
    pub hugepages: u64,
    /// CPU features.
    pub features: Features,
    /// CPUs.
    pub ncpus: usize,
    /// How tail struct pages encode their head.
    pub tails: TailFormat,
}

/// Operation counts of everything the kernel ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Costs {
    /// Descriptor stores.
    pub stores: u64,
    /// Descriptor compare-and-swaps.
    pub cas: u64,
    /// Stores to struct pages through the vmemmap.
    pub data_stores: u64,
    /// `DSB ISH`.
    pub dsb_ish: u64,
    /// `DSB ISHST`.
    pub dsb_ishst: u64,
    /// `ISB`.
    pub isb: u64,
    /// TLBIs by mnemonic.
    pub tlbi: BTreeMap<String, u64>,
    /// Pauses of the other CPUs.
    pub pauses: u64,
    /// `stop_machine()` calls.
    pub stop_machines: u64,
    /// `synchronize_rcu()` calls.
    pub rcu_syncs: u64,
    /// `copy_page()` calls.
    pub copies: u64,
    /// Page allocations.
    pub allocations: u64,
    /// Failed allocations.
    pub alloc_failures: u64,
    /// Frees.
    pub frees: u64,
    /// Pages freed.
    pub pages_freed: u64,
    /// Translation table pages added.
    pub table_pages: u64,
}

impl Costs {
    /// Returns the total number of TLBIs.
    pub fn tlbis(&self) -> u64 {
        self.tlbi.values().sum()
    }
}

/// A booted kernel.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The machine.
    pub machine: Machine,
    /// The huge page geometry.
    pub geo: HugeGeometry,
    /// The boot-time struct pages.
    pub structs: StructPages,
    /// First frame backing the vmemmap.
    pub vm_base: u64,
    /// Frames backing the vmemmap at boot.
    pub vm_frames: u64,
    /// Which huge pages are optimized.
    pub optimized: Vec<bool>,
    /// The shared tail page (`shared-tail`), once allocated.
    pub shared_tail: Option<u64>,
    /// What ran so far.
    pub costs: Costs,
    /// When set, every executed operation is appended here.
    pub log: Option<Vec<Instr>>,
    /// The last fake-head repair: (page before, head, count, page after).
    /// The same repair of the same contents gives the same contents, so
    /// the pages of one huge page share the result.
    reset_cache: Option<(Content, u64, u64, Content)>,
    /// The table that held the last descriptor looked up: (level, first VA
    /// of the region the table covers, table address). Cleared by every
    /// store above the last level, which is what can move a table.
    slot_cache: Option<(u8, u64, u64)>,
    /// Each kernel leaf the programs write, encoded with output address 0,
    /// by [`leaf_key`] (`None` where it does not encode, e.g. nT on a
    /// page): a leaf is this with its address put in
    /// (`Descriptor::with_oa`).
    leaf_templates: [Option<Descriptor>; 32],
}

/// The index of a kernel leaf's template: level, permission, AF, nT.
fn leaf_key(level: u8, perm: Perm, af: bool, nt: bool) -> usize {
    usize::from(level & 3) * 8
        + usize::from(perm == Perm::Ro) * 4
        + usize::from(af) * 2
        + usize::from(nt)
}

/// The first register a batch program's splits allocate their tables into
/// (the remap phases use registers from 0).
pub const SPLIT_REG: u16 = 1000;

/// Memory HVO needs besides the pool and the vmemmap: tables, new head
/// pages, de-HVO pages; at least 64 MiB.
fn spare_bytes(geo: &HugeGeometry, hugepages: u64) -> u64 {
    let page = geo.granule.page_size();
    let per = geo.vmemmap_pages().max(1) * page + page;
    (hugepages * per).max(64 << 20)
}

impl Kernel {
    /// Boots: lays out memory (free memory low, the pool above it, the
    /// vmemmap's backing at the top), maps the vmemmap as arm64 does,
    /// initialises the struct pages, and starts the rule checker.
    ///
    /// # Errors
    ///
    /// Returns [`MmError::Config`] when the huge page size does not exist
    /// for the granule or the pool does not fit, and model errors.
    pub fn boot(cfg: KernelConfig) -> Result<Self, MmError> {
        let g = cfg.granule;
        let geo = HugeGeometry::new(g, cfg.huge_size).ok_or_else(|| {
            MmError::Config(format!(
                "hugepagesz={} does not exist with the {g} granule (arm64 supports {})",
                vmsa::granule::format_size(cfg.huge_size),
                HugeGeometry::sizes(g)
                    .iter()
                    .map(|&s| vmsa::granule::format_size(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let page = g.page_size();
        let shift = g.page_shift();
        let pool_bytes = cfg
            .hugepages
            .checked_mul(cfg.huge_size)
            .ok_or_else(|| MmError::Config("hugepages x hugepagesz overflows".into()))?;
        let block = g.level_size(vmemmap_leaf_level(g));
        let vm_for = |mem: u64| (mem / page * STRUCT_PAGE_SIZE).div_ceil(block) * block;
        let spare = spare_bytes(&geo, cfg.hugepages);
        let needed = |mem: u64| pool_bytes + vm_for(mem) + spare + cfg.huge_size;
        let memory = match cfg.memory {
            Some(m) => m,
            None => {
                let mut m = pool_bytes + spare;
                while needed(m) > m {
                    // Whole GiB and whole huge pages (16G pages with 64K).
                    let unit = cfg.huge_size.max(1 << 30);
                    m = needed(m).div_ceil(unit) * unit;
                }
                m
            }
        };
        if memory % page != 0 || memory % cfg.huge_size != 0 {
            return Err(MmError::Config(format!(
                "memory={} is not a multiple of hugepagesz",
                vmsa::granule::format_size(memory)
            )));
        }
        if needed(memory) > memory {
            return Err(MmError::Config(format!(
                "hugepages={} of {} need {} with the vmemmap and room for HVO; memory={} (raise --memory or omit it)",
                cfg.hugepages,
                vmsa::granule::format_size(cfg.huge_size),
                vmsa::granule::format_size(needed(memory).div_ceil(1 << 20) << 20),
                vmsa::granule::format_size(memory)
            )));
        }
        let frames = memory >> shift;
        let vm_bytes = vm_for(memory);
        let vm_frames = vm_bytes >> shift;
        let vm_base = frames - vm_frames;
        let huge_frames = cfg.huge_size >> shift;
        let pool_start = (spare >> shift).div_ceil(huge_frames) * huge_frames;
        if pool_start + cfg.hugepages * huge_frames > vm_base {
            return Err(MmError::Config("the pool overlaps the vmemmap".into()));
        }
        let order = huge_frames.trailing_zeros() as u8;
        let vm_order = geo.vmemmap_pages().max(1).trailing_zeros() as u8;
        let mut alloc = FrameAllocator::new(frames, order.max(vm_order).max(10));
        alloc.add_free_range(0, frames)?;
        alloc.claim(pool_start, pool_start + cfg.hugepages * huge_frames);
        alloc.claim(vm_base, frames);
        let structs = StructPages {
            pool_start,
            count: cfg.hugepages,
            order,
            tails: cfg.tails,
        };
        let mut mem = Memory::new(g, memory)?;
        let spp = page / STRUCT_PAGE_SIZE;
        let sp = structs;
        mem.add_region(
            "vmemmap",
            vm_base,
            frames,
            Arc::new(move |f, w| {
                let idx = (f - vm_base) * spp + w as u64 / 8;
                sp.word(idx, w as u64 % 8)
            }),
        )?;
        let root_frame = alloc.alloc(0)?;
        mem.zero_frame(root_frame)?;
        let config = Config {
            granule: g,
            features: cfg.features,
            ncpus: cfg.ncpus,
        };
        let mut machine = Machine::with_parts(config, mem, alloc, PhysAddr(root_frame << shift))?;
        machine.map(
            VirtAddr(VMEMMAP_START),
            PhysAddr(vm_base << shift),
            vm_bytes,
            vmemmap_leaf_level(g),
            page_kernel(),
        )?;
        machine.enable_checker();
        Ok(Kernel {
            machine,
            geo,
            structs,
            vm_base,
            vm_frames,
            optimized: vec![false; cfg.hugepages as usize],
            shared_tail: None,
            costs: Costs::default(),
            log: None,
            reset_cache: None,
            slot_cache: None,
            leaf_templates: std::array::from_fn(|k| {
                let level = (k / 8) as u8;
                let perm = if k & 4 != 0 { Perm::Ro } else { Perm::Rw };
                let (af, nt) = (k & 2 != 0, k & 1 != 0);
                let d = Desc::Leaf {
                    page: Page::Frame(0),
                    perm,
                    af,
                    nt,
                };
                d.encode(g, level, &|_| Ok(0), &|| Ok(Descriptor::INVALID))
                    .ok()
            }),
        })
    }

    /// Runs `f` with the rule checker on a thread of its own
    /// ([`Machine::start_checker_thread`]): it observes the same operations
    /// in the same order, on the second core while this one runs the
    /// programs, and is back in `self.machine` when `f` returns. For long
    /// runs (`hvo simulate`, `hvo bench`); `f` reads no violation.
    pub fn with_checker_thread<T>(&mut self, f: impl FnOnce(&mut Kernel) -> T) -> T {
        self.machine.start_checker_thread();
        let out = f(self);
        self.machine.join_checker_thread();
        out
    }

    /// Returns the head pfn of huge page `i`.
    pub fn head(&self, i: usize) -> u64 {
        self.structs.pool_start + ((i as u64) << self.structs.order)
    }

    /// Returns the VAs of the vmemmap pages of huge page `i`.
    pub fn vmemmap_vas(&self, i: usize) -> Vec<u64> {
        let page = self.geo.granule.page_size();
        let start = struct_page_va(self.head(i));
        (0..self.geo.vmemmap_pages())
            .map(|k| start + k * page)
            .collect()
    }

    /// Returns the frame that maps `va` now (following the coherent tables).
    ///
    /// # Errors
    ///
    /// Returns a model error when no leaf maps `va`.
    pub fn frame_of(&self, va: u64) -> Result<u64, MmError> {
        let (pa, _) = self.leaf_of(va)?;
        Ok(pa >> self.geo.granule.page_shift())
    }

    /// Returns where the descriptor for `va` at `level` lives (memoized per
    /// table).
    fn slot(&mut self, va: u64, level: u8) -> Result<PhysAddr, MmError> {
        let g = self.geo.granule;
        let region = if level > g.start_level() {
            va & !(g.level_size(level - 1) - 1)
        } else {
            0
        };
        let idx = g.index(level, va) as u64 * 8;
        if let Some((l, r, t)) = self.slot_cache
            && l == level
            && r == region
        {
            return Ok(PhysAddr(t + idx));
        }
        let pa = self.machine.desc_pa(VirtAddr(va), level)?;
        self.slot_cache = Some((level, region, pa.0 - idx));
        Ok(pa)
    }

    /// Returns the frames that map the vmemmap pages `vas` now.
    fn frames_of(&mut self, vas: &[u64]) -> Result<Vec<u64>, MmError> {
        let g = self.geo.granule;
        let shift = g.page_shift();
        let mut out = Vec::with_capacity(vas.len());
        // The usual case: consecutive pages whose entries are consecutive
        // words of one last-level table, read at once.
        let page = g.page_size();
        let region = |va: u64| va & !(g.level_size(2) - 1);
        if let (Some(&first), Some(&last)) = (vas.first(), vas.last())
            && vas.len() <= 64
            && vas.windows(2).all(|w| w[1] == w[0] + page)
            && region(first) == region(last)
            && let Ok(slot) = self.slot(first, 3)
        {
            let mut words = [0u64; 64];
            let words = &mut words[..vas.len()];
            self.machine.mem().read_run(slot, words)?;
            for &d in words.iter() {
                match Descriptor(d).leaf_oa(g, 3) {
                    Some(oa) => out.push(oa.0 >> shift),
                    None => break,
                }
            }
            if out.len() == vas.len() {
                return Ok(out);
            }
            // Not every page is mapped by a page: one by one below.
            out.clear();
        }
        for &va in vas {
            let fast = match self.slot(va, 3) {
                Ok(slot) => self
                    .machine
                    .read_desc(slot)?
                    .leaf_oa(g, 3)
                    .map(|oa| oa.0 >> shift),
                Err(_) => None,
            };
            out.push(match fast {
                Some(f) => f,
                None => self.frame_of(va)?,
            });
        }
        Ok(out)
    }

    /// Returns the output address of `va` and whether its leaf is read-only.
    ///
    /// # Errors
    ///
    /// Returns a model error when no leaf maps `va`.
    pub fn leaf_of(&self, va: u64) -> Result<(u64, bool), MmError> {
        let g = self.geo.granule;
        for level in g.levels() {
            let slot = self.machine.desc_pa(VirtAddr(va), level)?;
            let d = self.machine.read_desc(slot)?;
            if let Some(l) = d.as_leaf(g, level) {
                let off = va & (g.level_size(level) - 1);
                return Ok((l.oa.0 + off, l.attrs.read_only()));
            }
            if d.as_table(g, level).is_none() {
                break;
            }
        }
        Err(MmError::Model(VmsaError::Map {
            va,
            why: "not mapped".into(),
        }))
    }

    /// Returns the bytes of memory backing the vmemmap now: the boot-time
    /// backing less what HVO freed, plus pages HVO allocated for it (new
    /// head pages, de-HVO pages, the shared tail).
    pub fn vmemmap_bytes_in_use(&self) -> u64 {
        let page = self.geo.granule.page_size();
        let alloc_pages = self.costs.allocations - self.costs.table_pages;
        (self.vm_frames + alloc_pages).saturating_sub(self.costs.pages_freed) * page
    }

    /// Returns the free memory in bytes.
    pub fn free_bytes(&self) -> u64 {
        self.machine.allocator().free_frames() * self.geo.granule.page_size()
    }
}
