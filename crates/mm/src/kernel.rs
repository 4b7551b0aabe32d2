//! A booted kernel on the model: memory laid out, the vmemmap mapped, a
//! hugetlb pool allocated; and the executor that runs programs on it with
//! the rule checker watching, batch by batch, as
//! `hugetlb_vmemmap_optimize_folios()` and `hugetlb_vmemmap_restore_folios()`
//! do (mm/hugetlb_vmemmap.c, v6.10 to v6.19).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use vmsa::alloc::FrameAllocator;
use vmsa::memory::{Content, Memory};
use vmsa::{
    Attributes, Config, Descriptor, DsbKind, Features, Granule, Machine, PhysAddr, Tlbi, VirtAddr,
    VmsaError,
};

use crate::geometry::{HugeGeometry, STRUCT_PAGE_SIZE};
use crate::program::{Desc, Instr, Page, Perm, Program, Regs};
use crate::protocol::{Folio, Protocol};
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

/// Appends what ends a remap phase of a batch: `flush_tlb_all()`; after the
/// last phase of a protocol that leaves no stale entry
/// ([`crate::RemapStrategy::needs_final_flush`]) only what makes its stores
/// visible, `dsb ishst; isb` (R_DDMVT's last step).
fn end_of_phase(p: &mut Program, proto: &Protocol, last: bool) {
    if last && !proto.remap.needs_final_flush() {
        p.push(Instr::Dsb(DsbKind::IshSt));
        p.push(Instr::Isb);
    } else {
        p.flush_tlb_all();
    }
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

    fn folio(&mut self, i: usize) -> Result<Folio, MmError> {
        let vas = self.vmemmap_vas(i);
        let frames = self.frames_of(&vas)?;
        Ok(Folio {
            head: self.head(i),
            vas,
            frames,
            shared: self.shared_tail,
            reuse_head: false,
        })
    }

    fn page_pa(&self, p: Page, regs: &Regs) -> Result<u64, MmError> {
        let shift = self.geo.granule.page_shift();
        match p {
            Page::Frame(f) => Ok(f << shift),
            Page::Same => Err(MmError::Config(
                "`same` is the memory a leaf already maps: only the page of a leaf descriptor"
                    .into(),
            )),
            Page::Reg(r, off) => regs
                .pages(r, off, 1)
                .map(|f| f << shift)
                .map_err(MmError::Config),
        }
    }

    fn encode(&self, d: &Desc, va: u64, level: u8, regs: &Regs) -> Result<Descriptor, MmError> {
        if let Desc::Leaf { page, perm, af, nt } = *d
            && level <= 3
            && page != Page::Same
            && let Some(t) = self.leaf_templates[leaf_key(level, perm, af, nt)]
        {
            // `Desc::encode` resolves the page first, then encodes; the
            // checks that do not depend on the address passed for the
            // template.
            let pa = self.page_pa(page, regs)?;
            return Ok(t.with_oa(self.geo.granule, level, PhysAddr(pa))?);
        }
        d.encode(self.geo.granule, level, &|p| self.page_pa(p, regs), &|| {
            let slot = self.machine.desc_pa(VirtAddr(va), level)?;
            Ok(self.machine.read_desc(slot)?)
        })
    }

    /// Runs `prog` on CPU 0 with registers `regs`.
    ///
    /// # Errors
    ///
    /// Returns [`MmError::Alloc`] at the first failed allocation (the
    /// operations before it have run), and model errors.
    pub fn run(&mut self, prog: &Program, regs: &mut Regs) -> Result<(), MmError> {
        let cpu = 0;
        let g = self.geo.granule;
        let shift = g.page_shift();
        for (index, ins) in prog.instrs.iter().enumerate() {
            match ins {
                Instr::Store { va, level, desc } => {
                    let slot = self.slot(*va, *level)?;
                    let d = self.encode(desc, *va, *level, regs)?;
                    self.machine.store_desc(cpu, slot, d)?;
                    self.costs.stores += 1;
                    if *level < 3 {
                        self.slot_cache = None;
                    }
                }
                Instr::Cas {
                    va,
                    level,
                    expect,
                    desc,
                    ..
                } => {
                    let slot = self.slot(*va, *level)?;
                    let e = self.encode(expect, *va, *level, regs)?;
                    let d = self.encode(desc, *va, *level, regs)?;
                    self.costs.cas += 1;
                    let found = self.machine.cas_desc(cpu, slot, e, d)?;
                    if *level < 3 {
                        self.slot_cache = None;
                    }
                    if found != e {
                        return Err(MmError::CasFailed {
                            va: *va,
                            found: found.0,
                        });
                    }
                }
                Instr::Dsb(k) => {
                    self.machine.dsb(cpu, *k)?;
                    match k {
                        DsbKind::Ish => self.costs.dsb_ish += 1,
                        DsbKind::IshSt => self.costs.dsb_ishst += 1,
                    }
                }
                Instr::Isb => {
                    self.machine.isb(cpu)?;
                    self.costs.isb += 1;
                }
                Instr::Tlbi { kind, va } => {
                    self.machine.tlbi(cpu, Tlbi::new(*kind, VirtAddr(*va)))?;
                    *self
                        .costs
                        .tlbi
                        .entry(kind.mnemonic().to_string())
                        .or_default() += 1;
                }
                Instr::Alloc { reg, order } => match self.machine.allocator_mut().alloc(*order) {
                    Ok(f) => {
                        regs.insert(*reg, f, *order);
                        self.costs.allocations += 1;
                    }
                    Err(_) => {
                        self.costs.alloc_failures += 1;
                        return Err(MmError::Alloc {
                            index,
                            order: *order,
                        });
                    }
                },
                Instr::Free { page, order } => {
                    // Every page freed, not only the first, lies in the
                    // allocation of a register.
                    if let Page::Reg(r, off) = *page {
                        regs.pages(r, off, 1 << order).map_err(MmError::Config)?;
                    }
                    let pa = self.page_pa(*page, regs)?;
                    self.machine.free_pages(cpu, PhysAddr(pa), *order)?;
                    self.costs.frees += 1;
                    self.costs.pages_freed += 1 << order;
                }
                Instr::Copy { dst, src } => {
                    let (d, s) = (self.page_pa(*dst, regs)?, self.page_pa(*src, regs)?);
                    self.machine.copy_page(PhysAddr(d), PhysAddr(s))?;
                    self.costs.copies += 1;
                }
                Instr::FillTable { table, va, level } => {
                    let slot = self.machine.desc_pa(VirtAddr(*va), *level)?;
                    let block = self.machine.read_desc(slot)?;
                    let leaf = block.as_leaf(g, *level).ok_or_else(|| {
                        MmError::Config(format!("no block at L{level} for {va:#x} to split"))
                    })?;
                    let t = self.page_pa(*table, regs)?;
                    let sub = level + 1;
                    let mut attrs = leaf.attrs;
                    attrs.flags.remove(Attributes::NT);
                    // Every entry of the table page, written at once. A
                    // leaf is its output address ORed with the rest
                    // (`Descriptor::leaf`), and entry i maps the block's
                    // memory at i x its size, inside the block: entry i is
                    // entry 0 plus that offset (as the explorer's fill).
                    let first = Descriptor::leaf(g, sub, leaf.oa, attrs)?.0;
                    let step = g.level_size(sub);
                    let words: Box<[u64]> = (0..g.entries_per_table() as u64)
                        .map(|i| first + i * step)
                        .collect();
                    self.machine.mem_mut().set_words(t >> shift, words)?;
                    self.costs.table_pages += 1;
                }
                Instr::ResetStructPages { page, count, head } => {
                    let frame = self.page_pa(*page, regs)? >> shift;
                    let before = self.machine.mem().content(frame);
                    match &self.reset_cache {
                        Some((b, h, n, after)) if *b == before && h == head && n == count => {
                            let after = after.clone();
                            self.machine.mem_mut().set_content(frame, after)?;
                        }
                        _ => {
                            let words: Vec<(u32, u64)> = (0..*count * 8)
                                .map(|i| (i as u32, self.structs.tail_word(*head, 3, i % 8)))
                                .collect();
                            self.machine.mem_mut().write_words(frame, &words)?;
                            let after = self.machine.mem().content(frame);
                            self.reset_cache = Some((before, *head, *count, after));
                        }
                    }
                }
                Instr::PauseCpus => self.costs.pauses += 1,
                Instr::StopMachine => self.costs.stop_machines += 1,
                Instr::SynchronizeRcu => self.costs.rcu_syncs += 1,
                Instr::WriteWord { va, value } => {
                    if let Err(f) = self.machine.store(cpu, VirtAddr(*va), *value)? {
                        return Err(MmError::Config(format!(
                            "the kernel's own store faulted: {f}"
                        )));
                    }
                    self.costs.data_stores += 1;
                }
                Instr::ResumeCpus | Instr::StartMachine => {}
            }
            if let Some(log) = self.log.as_mut() {
                log.push(ins.clone());
            }
        }
        Ok(())
    }

    fn run_fresh(&mut self, prog: &Program) -> Result<Regs, MmError> {
        let mut regs = Regs::default();
        self.run(prog, &mut regs)?;
        Ok(regs)
    }

    fn flush_all(&mut self) -> Result<(), MmError> {
        let mut p = Program::default();
        p.flush_tlb_all();
        self.run_fresh(&p).map(|_| ())
    }

    /// Frees the allocations a failed program made before failing.
    fn undo_allocs(&mut self, prog: &Program, regs: &Regs) -> Result<(), MmError> {
        for ins in &prog.instrs {
            if let Instr::Alloc { reg, order } = ins
                && let Some(&f) = regs.get(reg)
            {
                self.machine.allocator_mut().free(f, *order)?;
                self.costs.allocations -= 1;
            }
        }
        Ok(())
    }

    /// Runs `prog` whose allocations all come before its first visible
    /// change; on an allocation failure frees what it allocated and
    /// returns `Ok(None)`.
    fn run_or_undo(&mut self, prog: &Program) -> Result<Option<Regs>, MmError> {
        // Sized once for the registers the program allocates.
        let allocs = prog
            .instrs
            .iter()
            .filter(|i| matches!(i, Instr::Alloc { .. }))
            .count();
        let mut regs = Regs::with_capacity(allocs);
        match self.run(prog, &mut regs) {
            Ok(()) => Ok(Some(regs)),
            Err(MmError::Alloc { .. }) => {
                self.undo_allocs(prog, &regs)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Optimizes huge pages `which` with `proto`, `batch` at a time.
    /// Returns how many were optimized; the others (a split whose table
    /// could not be allocated) are left exactly as they were, except that
    /// blocks already split stay split, as in the kernel.
    ///
    /// # Errors
    ///
    /// Returns model errors (never an allocation failure).
    pub fn optimize(
        &mut self,
        proto: &Protocol,
        which: &[usize],
        batch: usize,
    ) -> Result<usize, MmError> {
        if !self.geo.hvo_applies() {
            return Ok(0);
        }
        let g = self.geo.granule;
        let leaf = vmemmap_leaf_level(g);
        let mut done = 0;
        if proto.needs_identical_tails() && self.shared_tail.is_none() {
            match self.alloc_shared_tail(which) {
                Ok(()) => {}
                // Without the shared tail page nothing can be optimized;
                // nothing has changed.
                Err(MmError::Model(VmsaError::OutOfMemory { .. })) => {
                    self.costs.alloc_failures += 1;
                    return Ok(0);
                }
                Err(e) => return Err(e),
            }
        }
        // One plan list for every batch: its memory is reused, not returned
        // to the system and faulted back at each batch.
        let mut plans = Vec::with_capacity(batch.clamp(1, which.len().max(1)));
        for chunk in which.chunks(batch.max(1)) {
            let chunk: Vec<usize> = chunk
                .iter()
                .copied()
                .filter(|&i| !self.optimized[i])
                .collect();
            if chunk.is_empty() {
                continue;
            }
            // stop_machine()'s callback cannot sleep: with it, the grace
            // period comes first (as in `hvo_batch_program`).
            self.mark(proto.stops_machine(), Instr::SynchronizeRcu)?;
            self.mark(proto.stops_machine(), Instr::StopMachine)?;
            // Split every vmemmap block of the batch (4K: PMD blocks).
            let mut ok = Vec::new();
            let mut split_any = false;
            for &i in &chunk {
                let mut fine = true;
                for b in self.blocks_to_split(i)? {
                    let p = proto.split.program(b, leaf, 0);
                    if self.run_or_undo(&p)?.is_none() {
                        fine = false;
                        break;
                    }
                    split_any = true;
                }
                if fine {
                    ok.push(i);
                }
            }
            if split_any && proto.split.deferred_flush() {
                self.flush_all()?;
            }
            // bd225530a4c7: one synchronize_rcu() per batch, before the
            // first remap, so speculative PFN walkers that saw a refcount
            // before it was frozen are done (before stop_machine(), above,
            // where the protocol stops the machine).
            self.mark(!proto.stops_machine(), Instr::SynchronizeRcu)?;
            plans.clear();
            for &i in &ok {
                let mut f = self.folio(i)?;
                let mut phases = proto.hvo_phases(&f, 0);
                let mut regs = Regs::default();
                if let Err(e) = self.run(&phases[0], &mut regs) {
                    let MmError::Alloc { .. } = e else {
                        return Err(e);
                    };
                    // "Fallback to the currently mapped head page" when the
                    // new head page cannot be allocated (vmemmap_remap_free).
                    self.undo_allocs(&phases[0], &regs)?;
                    f.reuse_head = true;
                    phases = proto.hvo_phases(&f, 0);
                    regs.clear();
                    self.run(&phases[0], &mut regs)?;
                }
                // Phase 0 has run: its memory goes back to the allocator now
                // (reused by the next huge page's) rather than at the end of
                // the batch, when the allocator would return it to the system.
                phases[0] = Program::default();
                plans.push((i, f, phases, regs));
            }
            self.run_later_phases(
                proto,
                plans.iter_mut().map(|(_, _, p, r)| (p.as_slice(), r)),
            )?;
            for (i, f, _, regs) in plans.iter_mut() {
                let p = proto.hvo_frees(f);
                self.run(&p, regs)?;
                self.optimized[*i] = true;
                done += 1;
            }
            self.mark(proto.stops_machine(), Instr::StartMachine)?;
        }
        Ok(done)
    }

    /// Returns the VAs of the vmemmap blocks that map huge page `i`'s
    /// struct pages and are still blocks (none where the vmemmap is mapped
    /// with base pages).
    fn blocks_to_split(&mut self, i: usize) -> Result<Vec<u64>, MmError> {
        let g = self.geo.granule;
        let leaf = vmemmap_leaf_level(g);
        let n = self.geo.vmemmap_pages();
        if leaf == 3 || n == 0 {
            return Ok(Vec::new());
        }
        // The vmemmap pages are consecutive: the blocks are those from the
        // first page's to the last page's.
        let size = g.level_size(leaf);
        let start = struct_page_va(self.head(i));
        let first = start & !(size - 1);
        let last = (start + (n - 1) * g.page_size()) & !(size - 1);
        let mut out = Vec::new();
        let mut b = first;
        loop {
            let slot = self.slot(b, leaf)?;
            if self.machine.read_desc(slot)?.leaf_oa(g, leaf).is_some() {
                out.push(b);
            }
            if b == last {
                break;
            }
            b += size;
        }
        Ok(out)
    }

    /// Emits, as one program, everything `optimize(proto, &[i], 1)` runs
    /// for huge page `i` (a batch of one): `stop_machine()` if the protocol
    /// stops it, the split of each vmemmap block (table in register 1000),
    /// the deferred `flush_tlb_all()`, `synchronize_rcu()`, each remap
    /// phase followed by `flush_tlb_all()` (after the last, only `dsb ishst;
    /// isb` where the protocol leaves no stale entry,
    /// [`crate::RemapStrategy::needs_final_flush`]), and the frees. The kernel is
    /// not changed, except that `shared-tail` allocates its shared page.
    ///
    /// # Errors
    ///
    /// Returns [`MmError::Config`] where HVO does not apply or huge page
    /// `i` is already optimized, and model errors.
    pub fn hvo_batch_program(&mut self, proto: &Protocol, i: usize) -> Result<Program, MmError> {
        if !self.geo.hvo_applies() || self.optimized.get(i) != Some(&false) {
            return Err(MmError::Config(format!(
                "huge page {i} cannot be optimized here"
            )));
        }
        if proto.needs_identical_tails() && self.shared_tail.is_none() {
            self.alloc_shared_tail(&[i])?;
        }
        let g = self.geo.granule;
        let leaf = vmemmap_leaf_level(g);
        let mut p = Program::default();
        if proto.stops_machine() {
            // stop_machine()'s callback cannot sleep: the grace period
            // comes first.
            p.push(Instr::SynchronizeRcu);
            p.push(Instr::StopMachine);
        }
        let mut split_any = false;
        for (n, b) in self.blocks_to_split(i)?.into_iter().enumerate() {
            p.extend(proto.split.program(b, leaf, SPLIT_REG + n as u16));
            split_any = true;
        }
        if split_any && proto.split.deferred_flush() {
            p.flush_tlb_all();
        }
        if !proto.stops_machine() {
            p.push(Instr::SynchronizeRcu);
        }
        let f = self.folio(i)?;
        let phases = proto.hvo_phases(&f, 0);
        let n = phases.len();
        for (k, phase) in phases.into_iter().enumerate() {
            p.extend(phase);
            end_of_phase(&mut p, proto, k + 1 == n);
        }
        p.extend(proto.hvo_frees(&f));
        if proto.stops_machine() {
            p.push(Instr::StartMachine);
        }
        Ok(p)
    }

    /// Emits, as one program, everything `restore(proto, &[i], 1)` runs for
    /// the optimized huge page `i`: `stop_machine()` if the protocol stops
    /// it, `synchronize_rcu()`, then each de-HVO phase followed by
    /// `flush_tlb_all()`.
    ///
    /// # Errors
    ///
    /// Returns [`MmError::Config`] when huge page `i` is not optimized, and
    /// model errors.
    pub fn restore_batch_program(
        &mut self,
        proto: &Protocol,
        i: usize,
    ) -> Result<Program, MmError> {
        if self.optimized.get(i) != Some(&true) {
            return Err(MmError::Config(format!("huge page {i} is not optimized")));
        }
        let mut p = Program::default();
        p.push(Instr::SynchronizeRcu);
        if proto.stops_machine() {
            p.push(Instr::StopMachine);
        }
        let f = self.folio(i)?;
        let phases = proto.restore_phases(&f, 0);
        let n = phases.len();
        for (k, phase) in phases.into_iter().enumerate() {
            p.extend(phase);
            end_of_phase(&mut p, proto, k + 1 == n);
        }
        if proto.stops_machine() {
            p.push(Instr::StartMachine);
        }
        Ok(p)
    }

    /// Runs the one-instruction program `ins` when `when` holds.
    fn mark(&mut self, when: bool, ins: Instr) -> Result<(), MmError> {
        if when {
            self.run_fresh(&Program { instrs: vec![ins] })?;
        }
        Ok(())
    }

    /// Runs the phases after the first of every plan of a batch: one
    /// `flush_tlb_all()` after the first phase, then phase k of every plan
    /// and one flush, for each k (the deferred flushes of
    /// `hugetlb_vmemmap_optimize_folios()`).
    fn run_later_phases<'a>(
        &mut self,
        proto: &Protocol,
        plans: impl Iterator<Item = (&'a [Program], &'a mut Regs)>,
    ) -> Result<(), MmError> {
        let mut plans: Vec<_> = plans.collect();
        if plans.is_empty() {
            return Ok(());
        }
        let nphases = plans.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
        let end_phase = |k: usize, kernel: &mut Kernel| {
            let mut p = Program::default();
            end_of_phase(&mut p, proto, k + 1 == nphases);
            kernel.run_fresh(&p).map(|_| ())
        };
        end_phase(0, self)?;
        for k in 1..nphases {
            for (phases, regs) in plans.iter_mut() {
                if let Some(p) = phases.get(k) {
                    self.run(p, regs)?;
                }
            }
            end_phase(k, self)?;
        }
        Ok(())
    }

    fn alloc_shared_tail(&mut self, which: &[usize]) -> Result<(), MmError> {
        let Some(&first) = which.first() else {
            return Ok(());
        };
        let f = self.machine.allocator_mut().alloc(0)?;
        let vas = self.vmemmap_vas(first);
        let src = self.frame_of(vas[1.min(vas.len() - 1)])?;
        let shift = self.geo.granule.page_shift();
        self.machine
            .copy_page(PhysAddr(f << shift), PhysAddr(src << shift))?;
        self.costs.allocations += 1;
        self.costs.copies += 1;
        self.shared_tail = Some(f);
        Ok(())
    }

    /// Restores (de-HVO) huge pages `which`, `batch` at a time. Returns how
    /// many were restored; a huge page whose pages cannot be allocated is
    /// left exactly as it was.
    ///
    /// # Errors
    ///
    /// Returns model errors (never an allocation failure).
    pub fn restore(
        &mut self,
        proto: &Protocol,
        which: &[usize],
        batch: usize,
    ) -> Result<usize, MmError> {
        let mut done = 0;
        // One plan list for every batch: its memory is reused, not returned
        // to the system and faulted back at each batch.
        let mut plans = Vec::with_capacity(batch.clamp(1, which.len().max(1)));
        for chunk in which.chunks(batch.max(1)) {
            let chunk: Vec<usize> = chunk
                .iter()
                .copied()
                .filter(|&i| self.optimized[i])
                .collect();
            if chunk.is_empty() {
                continue;
            }
            // The grace period before stop_machine(), whose callback
            // cannot sleep (as in `restore_batch_program`).
            self.mark(true, Instr::SynchronizeRcu)?;
            self.mark(proto.stops_machine(), Instr::StopMachine)?;
            plans.clear();
            for &i in &chunk {
                let f = self.folio(i)?;
                let mut phases = proto.restore_phases(&f, 0);
                if let Some(regs) = self.run_or_undo(&phases[0])? {
                    // Phase 0 has run (see `optimize`).
                    phases[0] = Program::default();
                    plans.push((i, phases, regs));
                }
            }
            self.run_later_phases(proto, plans.iter_mut().map(|(_, p, r)| (p.as_slice(), r)))?;
            for (i, _, _) in &plans {
                self.optimized[*i] = false;
                done += 1;
            }
            self.mark(proto.stops_machine(), Instr::StartMachine)?;
        }
        Ok(done)
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
