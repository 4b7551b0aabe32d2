//! The world an exploration runs in: a small booted kernel, the updater's
//! program resolved to physical operations, the workloads, and the final
//! state a sequential run reaches (the reference for the final-state
//! invariants).
//!
//! The updater's program is the one `Kernel::optimize` (or `restore`) runs
//! for a batch of one huge page ([`mm::Kernel::hvo_batch_program`]), after a
//! refcount freeze. It is resolved by running it, one operation at a time,
//! on the kernel model with the rule checker on: every descriptor slot,
//! encoded value, allocated frame and copied page is then known, so the
//! explorer interprets addresses, not symbols. Only the updater stores
//! descriptors and allocates, so under any interleaving its stores hit
//! the slots and values of the sequential run; the one exception, a
//! compare-and-swap that a hardware Access-flag update made fail, is the
//! retry loop the explorer follows.

use std::sync::Arc;

use mm::kernel::MmError;
use mm::program::{Instr, Page, Program};
use mm::vmemmap::{StructPages, TailFormat, struct_page_va, word};
use mm::{Costs, Kernel, KernelConfig, Protocol};
use serde::Serialize;
use vmsa::memory::Memory;
use vmsa::{
    Attributes, BbmLevel, Config, Descriptor, DsbKind, Features, Granule, PhysAddr, Rule, Tlbi,
    VirtAddr,
};

use crate::ExploreError;
use crate::thread::Threads;
use crate::workload::{Workload, WorkloadKind};

/// Whether the updater optimizes a huge page or restores one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Direction {
    /// HVO (`hugetlb_vmemmap_optimize_folios`).
    Hvo,
    /// De-HVO (`hugetlb_vmemmap_restore_folios`).
    Restore,
}

impl Direction {
    /// Returns the name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Hvo => "hvo",
            Direction::Restore => "de-hvo",
        }
    }
}

/// What to explore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Setup {
    /// The protocol.
    pub protocol: Protocol,
    /// HVO or de-HVO.
    pub direction: Direction,
    /// The granule.
    pub granule: Granule,
    /// The huge page size in bytes.
    pub huge_size: u64,
    /// FEAT_BBM level, hardware AF/DBM.
    pub features: Features,
    /// The workloads, one CPU each, after the updater (CPU 0).
    pub workloads: Vec<WorkloadKind>,
    /// CPUs per workload (identical CPUs are symmetric).
    pub copies: usize,
}

impl Setup {
    /// Returns a setup with the standard workloads for `protocol` at
    /// `bbm` with the 4K granule and 2 MiB pages, hardware AF on (the
    /// thread's case).
    pub fn standard(protocol: Protocol, bbm: BbmLevel) -> Self {
        Setup {
            protocol,
            direction: Direction::Hvo,
            granule: Granule::K4,
            huge_size: 2 << 20,
            features: Features {
                bbm,
                hw_af: true,
                ..Features::default()
            },
            workloads: WorkloadKind::STANDARD.to_vec(),
            copies: 1,
        }
    }

    /// Returns the number of CPUs: the updater and the workloads.
    pub fn ncpus(&self) -> usize {
        self.workloads
            .len()
            .checked_mul(self.copies)
            .and_then(|n| n.checked_add(1))
            .unwrap_or(usize::MAX)
    }
}

/// How a frame's contents are made, where no word was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// As frame `n` of the initial memory.
    Base(u64),
    /// Descriptor `i` is `first + i * step` (a table filled from a block).
    Fill {
        /// Entry 0.
        first: u64,
        /// The increment per entry.
        step: u64,
    },
}

/// One operation of the updater, resolved to addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A descriptor store.
    Store {
        /// The slot.
        pa: PhysAddr,
        /// The value.
        value: u64,
    },
    /// A descriptor compare-and-swap. On failure (a walker set AF) the
    /// updater retries this entry alone: clear AF again, `dsb ishst`, TLBI
    /// for the VA, `dsb ish`, CAS, up to `retries` times (the
    /// instruction's, [`mm::Instr::Cas`]).
    Cas {
        /// The slot.
        pa: PhysAddr,
        /// The value expected.
        expect: u64,
        /// The value written.
        value: u64,
        /// The TLBI of a retry (by VA; walk caches too above the last level).
        tlbi: Tlbi,
        /// How many times a failed CAS is retried.
        retries: u8,
    },
    /// `DSB`.
    Dsb(DsbKind),
    /// `ISB`.
    Isb,
    /// A broadcast TLBI.
    Tlbi(Tlbi),
    /// An allocation (its frames are those of the sequential run).
    Alloc,
    /// Frees frames `first .. first + count`.
    Free {
        /// The first frame.
        first: u64,
        /// How many.
        count: u64,
    },
    /// `copy_page(dst, src)`.
    Copy {
        /// The destination frame.
        dst: u64,
        /// The source frame.
        src: u64,
    },
    /// Fills a new table: descriptor `i` is `first + i * step`.
    Fill {
        /// The table's frame.
        frame: u64,
        /// Entry 0.
        first: u64,
        /// The increment per entry.
        step: u64,
    },
    /// Writes words of a frame (fake-head repair).
    Words {
        /// The frame.
        frame: u64,
        /// (word index, value).
        words: Arc<[(u32, u64)]>,
    },
    /// Pause or stop the other CPUs.
    Pause,
    /// Let them go.
    Resume,
    /// `synchronize_rcu()`.
    SynchronizeRcu,
    /// A data store through the vmemmap.
    WriteWord {
        /// The VA.
        va: u64,
        /// The value.
        value: u64,
    },
}

/// The final state of the sequential run.
#[derive(Clone, Debug, Default)]
pub struct Reference {
    /// (VA, value) of every checked struct page word.
    pub words: Vec<(u64, u64)>,
    /// (VA, frame, read-only) of every vmemmap page checked.
    pub mapping: Vec<(u64, u64, bool)>,
    /// Frames freed, sorted.
    pub freed: Vec<u64>,
}

/// A resolved exploration problem.
#[derive(Clone)]
pub struct Scenario {
    /// The machine configuration.
    pub config: Config,
    /// TTBR1_EL1.
    pub root: PhysAddr,
    /// The memory before the updater runs.
    pub base: Arc<Memory>,
    /// The program as the protocol emitted it (plus the freeze).
    pub program: Program,
    /// The updater's operations, one per program instruction.
    pub ops: Vec<Op>,
    /// The workloads: CPU `i + 1` runs `workloads[i]`.
    pub workloads: Vec<Workload>,
    /// What a sequential run ends with.
    pub reference: Reference,
    /// The rules the sequential run violated, with counts.
    pub violations: Vec<(Rule, u64)>,
    /// The pairs of level-3 descriptor values for which herd7 would raise
    /// `Warning-BBM-expected` on the sequential run (`vmsa::herd_bbm`):
    /// empty when herd7 finds every update broken as it accepts.
    pub herd7_bbm: Vec<vmsa::herd_bbm::Pair>,
    /// What the sequential run cost.
    pub costs: Costs,
    /// VA of each vmemmap page of the huge page, and its frame before and
    /// after the program.
    pub pages: Vec<(u64, u64, u64)>,
    /// VAs whose final value the invariants check.
    pub checked: Vec<u64>,
    /// Frames the program allocates (their earlier contents are garbage).
    pub fresh: Vec<u64>,
    /// The shared tail page (`shared-tail`), which outlives every huge
    /// page that maps it.
    pub shared_tail: Option<u64>,
    /// The versions of vmemmap pages 0 and 1 (the pages the straddle load
    /// crosses): the frames they map at each point of the sequential run
    /// (`None`: unmapped), before the program and after each instruction,
    /// each distinct pair once, in the order the run reaches them. A
    /// page's contents in a version are what its frame holds; a read whose
    /// halves no one version shows is torn.
    pub straddle_versions: Vec<[Option<u64>; 2]>,
    /// The threads, after the workloads (none in a kernel scenario).
    pub threads: Arc<Threads>,
}

/// A kernel booted for an exploration, with the program it will run.
pub struct Prepared {
    /// The kernel, before the program.
    pub kernel: Kernel,
    /// The program: the refcount freeze and the batch.
    pub program: Program,
    /// The setup.
    pub setup: Setup,
    /// Named struct pages: the head, the fake-head position, a tail, the
    /// neighbour.
    pub sites: Sites,
}

/// Struct pages the workloads use.
#[derive(Clone, Copy, Debug)]
pub struct Sites {
    /// The huge page's head.
    pub head: u64,
    /// Struct page 0 of vmemmap page 1 (a fake head after HVO).
    pub fake_head: u64,
    /// Struct page 1 of vmemmap page 1 (a plain tail).
    pub tail: u64,
    /// The first struct page of the next huge page (same block or table).
    pub neighbour: u64,
    /// The VA of vmemmap page 1.
    pub page1: u64,
}

/// `_refcount` is the high half of the counts word.
pub const REF_ONE: u64 = 1 << 32;

impl Prepared {
    /// Boots a kernel with two huge pages and builds the updater's
    /// program for the first.
    ///
    /// # Errors
    ///
    /// Returns [`ExploreError::Setup`] where HVO does not apply and model
    /// errors.
    pub fn new(setup: &Setup) -> Result<Self, ExploreError> {
        let ncpus = setup.ncpus();
        if ncpus > 64 {
            return Err(ExploreError::Setup(format!(
                "{ncpus} CPUs: at most 64 (the updater and the workloads)"
            )));
        }
        let cfg = KernelConfig {
            granule: setup.granule,
            memory: None,
            huge_size: setup.huge_size,
            hugepages: 2,
            features: setup.features,
            ncpus,
            tails: if setup.protocol.needs_identical_tails() {
                TailFormat::Order
            } else {
                TailFormat::HeadPointer
            },
        };
        let mut kernel = Kernel::boot(cfg)?;
        if !kernel.geo.hvo_applies() {
            return Err(ExploreError::Setup(format!(
                "HVO does not apply to {} pages with the {} granule (one vmemmap page or less)",
                vmsa::granule::format_size(setup.huge_size),
                setup.granule
            )));
        }
        let g = setup.granule;
        let spp = kernel.geo.structs_per_page();
        let head = kernel.head(0);
        let sites = Sites {
            head,
            fake_head: head + spp,
            tail: head + spp + 1,
            neighbour: kernel.head(1),
            page1: struct_page_va(head) + g.page_size(),
        };
        if setup.direction == Direction::Restore {
            kernel.optimize(&setup.protocol, &[0], 1)?;
        }
        // The exploration's own record starts here.
        kernel.machine.enable_checker();
        kernel.costs = Costs::default();
        let batch = match setup.direction {
            Direction::Hvo => kernel.hvo_batch_program(&setup.protocol, 0)?,
            Direction::Restore => kernel.restore_batch_program(&setup.protocol, 0)?,
        };
        // A speculative walker may have seen these struct pages with a
        // reference before the huge page was allocated (commit
        // bd225530a4c7's race); the updater freezes them first.
        let counts = |pfn: u64| struct_page_va(pfn) + word::COUNTS * 8;
        let mut freeze = Program::default();
        let hvo = setup.direction == Direction::Hvo;
        for pfn in [sites.head, sites.fake_head, sites.tail]
            .into_iter()
            .filter(|_| hvo)
        {
            let pa = phys_of(&kernel, counts(pfn))?;
            let old = kernel.machine.mem().read_u64(pa)?;
            kernel.machine.mem_mut().write_u64(pa, old | REF_ONE)?;
            freeze.push(Instr::WriteWord {
                va: counts(pfn),
                value: old & u64::from(u32::MAX),
            });
        }
        let mut program = Program::default();
        if setup.direction == Direction::Hvo {
            program.extend(freeze);
        }
        program.extend(batch);
        Ok(Prepared {
            kernel,
            program,
            setup: setup.clone(),
            sites,
        })
    }
}

fn phys_of(kernel: &Kernel, va: u64) -> Result<PhysAddr, ExploreError> {
    let (pa, _) = kernel.leaf_of(va)?;
    Ok(PhysAddr(pa))
}

impl Scenario {
    /// Resolves `program` (the prepared one, or a mutant of it) on a copy
    /// of the prepared kernel.
    ///
    /// # Errors
    ///
    /// Returns [`ExploreError::Setup`] when the program cannot run
    /// sequentially (a register used before its allocation, a fault of the
    /// kernel's own store) and model errors.
    pub fn build(prep: &Prepared, program: &Program) -> Result<Self, ExploreError> {
        let mut k = prep.kernel.clone();
        // herd7's flag beside the rules, from the program's first operation
        // (the values before it are the initial values).
        if let Some(c) = k.machine.checker_mut() {
            c.enable_herd_bbm();
        }
        let g = k.geo.granule;
        let shift = g.page_shift();
        let setup = prep.setup.clone();
        let head = prep.sites.head;
        let vas = {
            let page = g.page_size();
            let start = struct_page_va(head);
            (0..k.geo.vmemmap_pages())
                .map(|i| start + i * page)
                .collect::<Vec<_>>()
        };
        let before: Vec<u64> = vas
            .iter()
            .map(|&va| k.frame_of(va))
            .collect::<Result<_, _>>()?;
        let base = Arc::new(k.machine.mem().clone());
        let root = k.machine.root();
        let straddled = |k: &Kernel| [vas[0], vas[1]].map(|va| k.frame_of(va).ok());
        let mut straddle_versions = vec![straddled(&k)];
        let mut regs = mm::Regs::default();
        let mut ops = Vec::with_capacity(program.instrs.len());
        for (index, ins) in program.instrs.iter().enumerate() {
            let frame = |p: Page, regs: &mm::Regs| -> Result<u64, ExploreError> {
                match p {
                    Page::Frame(f) => Ok(f),
                    Page::Same => Err(ExploreError::Setup(format!(
                        "instruction {index} ({ins}): `same` is only the page of a leaf descriptor"
                    ))),
                    Page::Reg(r, off) => regs.pages(r, off, 1).map_err(|e| {
                        ExploreError::Setup(format!("instruction {index} ({ins}): {e}"))
                    }),
                }
            };
            // Encodes a descriptor for the slot at `pa`, `level`.
            let enc = |d: &mm::Desc, pa: PhysAddr, level: u8| {
                d.encode(
                    g,
                    level,
                    &|p| frame(p, &regs).map(|f| f << shift).map_err(to_mm),
                    &|| Ok(k.machine.read_desc(pa)?),
                )
            };
            let op = match ins {
                Instr::Store { va, level, desc } => {
                    let pa = k.machine.desc_pa(VirtAddr(*va), *level)?;
                    Op::Store {
                        pa,
                        value: enc(desc, pa, *level)?.0,
                    }
                }
                Instr::Cas {
                    va,
                    level,
                    expect,
                    desc,
                    retries,
                } => {
                    let pa = k.machine.desc_pa(VirtAddr(*va), *level)?;
                    let (e, d) = (enc(expect, pa, *level)?, enc(desc, pa, *level)?);
                    let kind = if *level < 3 {
                        vmsa::TlbiKind::Vaae1
                    } else {
                        vmsa::TlbiKind::Vaale1
                    };
                    Op::Cas {
                        pa,
                        expect: e.0,
                        value: d.0,
                        tlbi: Tlbi::new(kind, VirtAddr(*va)),
                        retries: *retries,
                    }
                }
                Instr::Dsb(kd) => Op::Dsb(*kd),
                Instr::Isb => Op::Isb,
                Instr::Tlbi { kind, scope, va } => {
                    Op::Tlbi(Tlbi::scoped(*kind, *scope, VirtAddr(*va)))
                }
                Instr::Alloc { .. } => Op::Alloc,
                Instr::Free { page, order } => Op::Free {
                    first: match *page {
                        // Every page freed lies in the allocation.
                        Page::Reg(r, off) => regs.pages(r, off, 1 << order).map_err(|e| {
                            ExploreError::Setup(format!("instruction {index} ({ins}): {e}"))
                        })?,
                        p => frame(p, &regs)?,
                    },
                    count: 1 << order,
                },
                Instr::Copy { dst, src } => Op::Copy {
                    dst: frame(*dst, &regs)?,
                    src: frame(*src, &regs)?,
                },
                Instr::FillTable { table, va, level } => {
                    let slot = k.machine.desc_pa(VirtAddr(*va), *level)?;
                    let leaf = k
                        .machine
                        .read_desc(slot)?
                        .as_leaf(g, *level)
                        .ok_or_else(|| {
                            ExploreError::Setup(format!(
                                "no block at L{level} for {va:#x} to split"
                            ))
                        })?;
                    let mut attrs = leaf.attrs;
                    attrs.flags.remove(Attributes::NT);
                    let sub = level + 1;
                    let first = Descriptor::leaf(g, sub, leaf.oa, attrs)?.0;
                    Op::Fill {
                        frame: frame(*table, &regs)?,
                        first,
                        step: g.level_size(sub),
                    }
                }
                Instr::ResetStructPages { page, count, head } => {
                    let sp: StructPages = k.structs;
                    let words: Vec<(u32, u64)> = (0..count * 8)
                        .map(|i| (i as u32, sp.tail_word(*head, 3, i % 8)))
                        .collect();
                    Op::Words {
                        frame: frame(*page, &regs)?,
                        words: words.into(),
                    }
                }
                Instr::PauseCpus | Instr::StopMachine => Op::Pause,
                Instr::ResumeCpus | Instr::StartMachine => Op::Resume,
                Instr::SynchronizeRcu => Op::SynchronizeRcu,
                Instr::WriteWord { va, value } => Op::WriteWord {
                    va: *va,
                    value: *value,
                },
            };
            k.run(
                &Program {
                    instrs: vec![ins.clone()],
                },
                &mut regs,
            )
            .map_err(|e| match e {
                MmError::Alloc { order, .. } => ExploreError::Setup(format!(
                    "instruction {index} ({ins}): allocation of order {order} failed"
                )),
                e => ExploreError::Model(e),
            })?;
            ops.push(op);
            let v = straddled(&k);
            if !straddle_versions.contains(&v) {
                straddle_versions.push(v);
            }
        }
        if straddle_versions.len() > crate::state::Half::MAX_VERSIONS
            && setup.workloads.contains(&WorkloadKind::Straddle)
        {
            return Err(ExploreError::Setup(format!(
                "the program maps vmemmap pages 0 and 1 to {} different pairs of frames; the straddle workload tells at most {} apart",
                straddle_versions.len(),
                crate::state::Half::MAX_VERSIONS
            )));
        }
        let mut fresh = Vec::new();
        for ins in &program.instrs {
            if let Instr::Alloc { reg, order } = ins
                && let Some(&f) = regs.get(reg)
            {
                fresh.extend(f..f + (1 << order));
            }
        }
        fresh.sort_unstable();
        let after: Vec<u64> = vas
            .iter()
            .map(|&va| k.frame_of(va))
            .collect::<Result<_, _>>()?;
        let pages: Vec<(u64, u64, u64)> = vas
            .iter()
            .zip(before.iter().zip(&after))
            .map(|(&va, (&b, &a))| (va, b, a))
            .collect();
        let sites = prep.sites;
        // The words the final-state invariants check: the first three
        // struct pages and the last of every vmemmap page of the huge page
        // (heads, fake heads, the folio's fields), and the neighbour.
        let spp = k.geo.structs_per_page();
        let mut checked = Vec::new();
        for &va in &vas {
            for sp in [0, 1, 2, spp - 1] {
                for w in 0..8 {
                    checked.push(va + sp * 64 + w * 8);
                }
            }
        }
        for w in 0..8 {
            checked.push(struct_page_va(sites.neighbour) + w * 8);
        }
        let mut words = Vec::new();
        for &va in &checked {
            let (pa, _) = k.leaf_of(va)?;
            words.push((va, k.machine.mem().read_u64(PhysAddr(pa))?));
        }
        let mut mapping = Vec::new();
        for &va in vas.iter().chain([&struct_page_va(sites.neighbour)]) {
            let (pa, ro) = k.leaf_of(va)?;
            mapping.push((va, pa >> shift, ro));
        }
        let mut freed = Vec::new();
        for op in &ops {
            if let Op::Free { first, count } = op {
                freed.extend(*first..first + count);
            }
        }
        freed.sort_unstable();
        let violations = k
            .machine
            .checker()
            .map(|c| {
                c.counts()
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(r, n)| (*r, *n))
                    .collect()
            })
            .unwrap_or_default();
        let herd7_bbm = k
            .machine
            .checker()
            .and_then(|c| c.herd_bbm())
            .map(|h| h.pairs().to_vec())
            .unwrap_or_default();
        let workloads = build_workloads(&setup, &sites);
        Ok(Scenario {
            config: *k.machine.config(),
            root,
            base,
            program: program.clone(),
            ops,
            workloads,
            reference: Reference {
                words,
                mapping,
                freed,
            },
            violations,
            herd7_bbm,
            costs: k.costs.clone(),
            pages,
            checked,
            fresh,
            shared_tail: k.shared_tail,
            straddle_versions,
            threads: Arc::new(Threads::default()),
        })
    }

    /// Returns a scenario of threads alone ([`crate::thread`]): no
    /// updater program, no workloads, the threads on CPUs 1 and up, on
    /// `base` with its tables at `root`.
    pub fn of_threads(config: Config, base: Memory, root: PhysAddr, threads: Threads) -> Self {
        Scenario {
            config,
            root,
            base: Arc::new(base),
            program: Program::default(),
            ops: Vec::new(),
            workloads: Vec::new(),
            reference: Reference::default(),
            violations: Vec::new(),
            herd7_bbm: Vec::new(),
            costs: Costs::default(),
            pages: Vec::new(),
            checked: Vec::new(),
            fresh: Vec::new(),
            shared_tail: None,
            straddle_versions: Vec::new(),
            threads: Arc::new(threads),
        }
    }

    /// Prepares and builds the protocol's own program.
    ///
    /// # Errors
    ///
    /// As [`Prepared::new`] and [`Scenario::build`].
    pub fn new(setup: &Setup) -> Result<Self, ExploreError> {
        let prep = Prepared::new(setup)?;
        Scenario::build(&prep, &prep.program)
    }

    /// Returns the page shift.
    pub fn page_shift(&self) -> u32 {
        self.config.granule.page_shift()
    }
}

fn to_mm(e: ExploreError) -> MmError {
    MmError::Config(e.to_string())
}

fn build_workloads(setup: &Setup, sites: &Sites) -> Vec<Workload> {
    let mut out = Vec::new();
    for kind in &setup.workloads {
        for _ in 0..setup.copies {
            out.push(Workload::new(*kind, sites));
        }
    }
    out
}
