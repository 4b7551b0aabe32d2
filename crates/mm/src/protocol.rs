//! The ways of remapping a live vmemmap that arm64 developers proposed, each
//! a strategy that emits programs.
//!
//! A protocol is a split strategy (how a vmemmap PMD block becomes a table
//! of PTEs) and a remap strategy (how the PTEs of one huge page's vmemmap
//! are pointed at the kept page, and back for de-HVO). Remaps come in
//! *phases*: the batcher runs phase k for every huge page of a batch, then
//! one `flush_tlb_all()`, then phase k+1, as `hugetlb_vmemmap_optimize_folios()`
//! defers its flushes (mm/hugetlb_vmemmap.c, `VMEMMAP_REMAP_NO_TLB_FLUSH`).

use std::fmt;

use serde::Serialize;
use vmsa::{BbmLevel, DsbKind, Level};

use crate::program::{Desc, Instr, Page, Perm, Program};

/// How a live vmemmap block is split into a table of the same memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum SplitStrategy {
    /// `vmemmap_split_pmd()`: fill a table, `smp_wmb()`, replace the block
    /// by the table in one store, flush later. Compliant at FEAT_BBM level 2.
    Direct,
    /// Break-before-make: invalid, `__flush_tlb_kernel_pgtable()`, table.
    Bbm,
    /// Break-before-make with the other CPUs paused (Yu Zhao's 2024 v2
    /// pauses them for the PMD update as for the PTEs).
    PausedBbm,
    /// FEAT_BBM level 1: set nT on the block, flush, replace by the table,
    /// flush (R_KFLJB, R_MRRPW).
    Nt,
    /// As `Direct`, relying on CPUs that never raise a TLB conflict abort
    /// (Linux's BBML2_NOABORT allow-list).
    Bbml2NoAbort,
    /// Clear AF on the block, flush, compare-and-swap the block for the
    /// table (2026 arm64 series, needs hardware AF).
    AfCas,
}

impl SplitStrategy {
    /// Lists every split strategy.
    pub const ALL: [SplitStrategy; 6] = [
        SplitStrategy::Direct,
        SplitStrategy::Bbm,
        SplitStrategy::PausedBbm,
        SplitStrategy::Nt,
        SplitStrategy::Bbml2NoAbort,
        SplitStrategy::AfCas,
    ];

    /// Returns the strategy's name.
    pub fn name(self) -> &'static str {
        match self {
            SplitStrategy::Direct => "direct",
            SplitStrategy::Bbm => "bbm",
            SplitStrategy::PausedBbm => "paused-bbm",
            SplitStrategy::Nt => "nt",
            SplitStrategy::Bbml2NoAbort => "bbml2-noabort",
            SplitStrategy::AfCas => "af-cas",
        }
    }

    /// Returns the FEAT_BBM level from which the strategy complies with the
    /// rules (R_KFLJB).
    pub fn needs(self) -> BbmLevel {
        match self {
            SplitStrategy::Direct | SplitStrategy::Bbml2NoAbort => BbmLevel::Level2,
            SplitStrategy::Nt => BbmLevel::Level1,
            SplitStrategy::Bbm | SplitStrategy::PausedBbm | SplitStrategy::AfCas => {
                BbmLevel::Level0
            }
        }
    }

    /// Tells whether the strategy is safe only on CPUs that never raise a
    /// TLB conflict abort for a size change (I_HYQMB: at level 2 the old and
    /// new entries may both be cached until the TLBI completes). That is a
    /// matter of concurrent safety, not of rule compliance.
    pub fn relies_on_no_abort(self) -> bool {
        matches!(self, SplitStrategy::Bbml2NoAbort)
    }

    /// Emits the split of the block that maps `va` at `level` into the
    /// table allocated into register `reg`.
    pub fn program(self, va: u64, level: Level, reg: u16) -> Program {
        let t = Page::Reg(reg, 0);
        let mut p = Program::default();
        p.push(Instr::Alloc { reg, order: 0 });
        p.push(Instr::FillTable {
            table: t,
            va,
            level,
        });
        // smp_wmb() before pmd_populate_kernel(): the table's entries must
        // be visible before the table (vmemmap_split_pmd, "See comment in
        // pmd_install()"); on arm64 a DSB ISHST also makes them visible to
        // walkers.
        p.push(Instr::Dsb(DsbKind::IshSt));
        let block = Desc::Leaf {
            page: Page::Same,
            perm: Perm::Rw,
            af: true,
            nt: false,
        };
        match self {
            SplitStrategy::Direct | SplitStrategy::Bbml2NoAbort => {
                p.push(Instr::Store {
                    va,
                    level,
                    desc: Desc::Table(t),
                });
            }
            SplitStrategy::Bbm | SplitStrategy::PausedBbm => {
                let paused = self == SplitStrategy::PausedBbm;
                if paused {
                    p.push(Instr::PauseCpus);
                }
                p.push(Instr::Store {
                    va,
                    level,
                    desc: Desc::Invalid,
                });
                p.flush_tlb_kernel_pgtable(va);
                p.push(Instr::Store {
                    va,
                    level,
                    desc: Desc::Table(t),
                });
                p.push(Instr::Dsb(DsbKind::IshSt));
                p.push(Instr::Isb);
                if paused {
                    p.push(Instr::ResumeCpus);
                }
            }
            SplitStrategy::Nt => {
                p.push(Instr::Store {
                    va,
                    level,
                    desc: with_nt(block),
                });
                p.flush_tlb_kernel_pgtable(va);
                p.push(Instr::Store {
                    va,
                    level,
                    desc: Desc::Table(t),
                });
                p.flush_tlb_kernel_pgtable(va);
            }
            SplitStrategy::AfCas => {
                p.push(Instr::Store {
                    va,
                    level,
                    desc: without_af(block),
                });
                p.flush_tlb_kernel_pgtable(va);
                p.push(Instr::Cas {
                    va,
                    level,
                    expect: without_af(block),
                    desc: Desc::Table(t),
                    retries: AF_CAS_RETRIES,
                });
                p.push(Instr::Dsb(DsbKind::IshSt));
                p.push(Instr::Isb);
            }
        }
        p
    }

    /// Tells whether the batch must run one `flush_tlb_all()` after its
    /// splits (the strategies that do not flush themselves).
    pub fn deferred_flush(self) -> bool {
        matches!(self, SplitStrategy::Direct | SplitStrategy::Bbml2NoAbort)
    }
}

/// How many times the af-cas protocol retries a compare-and-swap that a
/// hardware Access-flag update made fail (the 2026 AF-clear series
/// retries a bounded number of times; [`Instr::Cas`] says what a retry
/// does).
pub const AF_CAS_RETRIES: u8 = 2;

fn with_nt(d: Desc) -> Desc {
    match d {
        Desc::Leaf { page, perm, af, .. } => Desc::Leaf {
            page,
            perm,
            af,
            nt: true,
        },
        other => other,
    }
}

/// A kernel leaf mapping `page` with the Access flag clear.
fn noaf(page: Page, perm: Perm) -> Desc {
    Desc::Leaf {
        page,
        perm,
        af: false,
        nt: false,
    }
}

fn without_af(d: Desc) -> Desc {
    match d {
        Desc::Leaf { page, perm, nt, .. } => Desc::Leaf {
            page,
            perm,
            af: false,
            nt,
        },
        other => other,
    }
}

/// How the PTEs of one huge page's vmemmap are remapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RemapStrategy {
    /// One store per PTE changing address (and permission), flush later.
    Generic,
    /// Break-before-make on every PTE, other CPUs running.
    Bbm,
    /// Break-before-make with every other CPU stopped (`stop_machine`).
    StopMachine,
    /// Break-before-make with other CPUs paused by a pseudo-NMI.
    PauseCpus,
    /// Read-only first, equal contents, then the address, then write.
    RoFirst,
    /// Tails read-only onto one shared, byte-identical page.
    SharedTail,
    /// Access flag clear, flush, compare-and-swap.
    AfCas,
}

impl RemapStrategy {
    /// Tells whether the batch's last `flush_tlb_all()` (after the last
    /// phase, before the frees) is needed, or only its `dsb ishst; isb`. The kernel's generic batching
    /// always flushes there; the explorer shows it is redundant where the
    /// protocol leaves no old entry behind: after break-before-make (every
    /// old entry went with the flush after the invalidation) and after
    /// AF-clear + CAS (an entry can be cached again only by setting AF,
    /// which makes the CAS fail). Read-only-first and shared-tail need it:
    /// their last change is permission-only, and a CPU still holding the
    /// read-only entry would fault a later write.
    pub fn needs_final_flush(self) -> bool {
        !matches!(
            self,
            RemapStrategy::Bbm
                | RemapStrategy::StopMachine
                | RemapStrategy::PauseCpus
                | RemapStrategy::AfCas
        )
    }
}

/// What a remap needs to know about one huge page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Folio {
    /// The head's pfn.
    pub head: u64,
    /// The VA of each vmemmap page, in order.
    pub vas: Vec<u64>,
    /// The frame each vmemmap page maps now (before HVO: its own page;
    /// after: the kept page).
    pub frames: Vec<u64>,
    /// For HVO: the frame of the shared tail page (`shared-tail`), if any.
    pub shared: Option<u64>,
    /// For HVO: reuse vmemmap page 0 instead of a copy (the fallback when
    /// the head page cannot be allocated).
    pub reuse_head: bool,
}

/// A named protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Protocol {
    /// Its name on the command line.
    pub name: &'static str,
    /// How it splits vmemmap blocks.
    pub split: SplitStrategy,
    /// How it remaps.
    pub remap: RemapStrategy,
    /// One line on what it does.
    pub summary: &'static str,
    /// Where it comes from.
    pub source: &'static str,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The protocols, in the order `hvo protocols` lists them.
pub const PROTOCOLS: [Protocol; 7] = [
    Protocol {
        name: "linux-generic",
        split: SplitStrategy::Direct,
        remap: RemapStrategy::Generic,
        summary: "split in place, one store per PTE changing address and permission, deferred flush",
        source: "mm/hugetlb_vmemmap.c (x86; arm64 before 060a2c92d1b6, Feb 2023)",
    },
    Protocol {
        name: "bbm",
        split: SplitStrategy::Bbm,
        remap: RemapStrategy::Bbm,
        summary: "break-before-make on the PMD and every PTE, other CPUs running",
        source: "Arm ARM R_DDMVT; the reason 060a2c92d1b6 disabled HVO",
    },
    Protocol {
        name: "stop-machine",
        split: SplitStrategy::Bbm,
        remap: RemapStrategy::StopMachine,
        summary: "break-before-make with every other CPU stopped for the batch",
        source: "July 2024 thread (Yu Zhao, Catalin Marinas): stop_machine()",
    },
    Protocol {
        name: "pause-cpus",
        split: SplitStrategy::PausedBbm,
        remap: RemapStrategy::PauseCpus,
        summary: "interrupts off, remote CPUs paused by pseudo-NMI, clear, flush, write, resume",
        source: "Yu Zhao, 'hugetlb: arm64: add HVO support' v2, 2024",
    },
    Protocol {
        name: "ro-first",
        split: SplitStrategy::Direct,
        remap: RemapStrategy::RoFirst,
        summary: "PTEs read-only first, contents made equal, address changed read-only, then entry 0 writable",
        source: "Catalin Marinas, linux-mm, 10 July 2024",
    },
    Protocol {
        name: "shared-tail",
        split: SplitStrategy::Direct,
        remap: RemapStrategy::SharedTail,
        summary: "tails byte-identical; read-only first, then onto one shared tail page per order",
        source: "Kiryl Shutsemau, 'eliminate fake head pages', 2026",
    },
    Protocol {
        name: "af-cas",
        split: SplitStrategy::AfCas,
        remap: RemapStrategy::AfCas,
        summary: "clear AF, flush, compare-and-swap the new entry (retry if the walker set AF)",
        source: "arm64 series, 2026 (needs hardware AF; BBML2_NOABORT for the split)",
    },
];

impl Protocol {
    /// Finds a protocol by name.
    pub fn by_name(name: &str) -> Option<Protocol> {
        PROTOCOLS.iter().copied().find(|p| p.name == name)
    }

    /// Tells whether the protocol needs tails that are identical across
    /// huge pages (the 2026 struct page format).
    pub fn needs_identical_tails(&self) -> bool {
        self.remap == RemapStrategy::SharedTail
    }

    /// Tells whether the batch runs inside `stop_machine()`.
    pub fn stops_machine(&self) -> bool {
        self.remap == RemapStrategy::StopMachine
    }

    /// Emits the HVO phases for one huge page; the batcher runs a
    /// `flush_tlb_all()` after each phase and frees [`Protocol::hvo_frees`]
    /// after the last.
    pub fn hvo_phases(&self, f: &Folio, reg: u16) -> Vec<Program> {
        let n = f.vas.len();
        let kept = if f.reuse_head {
            Page::Frame(f.frames[0])
        } else {
            Page::Reg(reg, 0)
        };
        // Room for the first phase as most protocols emit it (one store or
        // two per page and a few barriers).
        let mut prep = Program::with_capacity(n + 8);
        if !f.reuse_head && self.remap != RemapStrategy::SharedTail {
            prep.push(Instr::Alloc { reg, order: 0 });
            prep.push(Instr::Copy {
                dst: kept,
                src: Page::Frame(f.frames[0]),
            });
            // smp_wmb() in vmemmap_remap_pte(): the copy is visible before
            // the PTE that maps it.
            prep.push(Instr::Dsb(DsbKind::IshSt));
        }
        let store = |p: &mut Program, i: usize, desc: Desc| {
            p.push(Instr::Store {
                va: f.vas[i],
                level: 3,
                desc,
            })
        };
        let target = |i: usize| -> Desc {
            if i == 0 {
                Desc::leaf(kept, Perm::Rw)
            } else {
                Desc::leaf(kept, Perm::Ro)
            }
        };
        match self.remap {
            RemapStrategy::Generic => {
                let mut p = prep;
                for i in 0..n {
                    store(&mut p, i, target(i));
                }
                vec![p]
            }
            RemapStrategy::Bbm | RemapStrategy::StopMachine => {
                let mut p1 = prep;
                for i in 0..n {
                    store(&mut p1, i, Desc::Invalid);
                }
                let mut p2 = Program::default();
                for i in 0..n {
                    store(&mut p2, i, target(i));
                }
                vec![p1, p2]
            }
            RemapStrategy::PauseCpus => {
                let mut p = prep;
                paused_bbm(&mut p, f, 0, &target);
                vec![p]
            }
            RemapStrategy::RoFirst => {
                // 1. The kept page (allocated first, so a failure changes
                //    nothing), then read-only, same pages.
                let mut p1 = prep;
                for i in 0..n {
                    store(&mut p1, i, Desc::leaf(Page::Frame(f.frames[i]), Perm::Ro));
                }
                // 2. Equal contents, then the address, still read-only.
                let mut p2 = Program::default();
                for i in 1..n {
                    p2.push(Instr::Copy {
                        dst: Page::Frame(f.frames[i]),
                        src: Page::Frame(f.frames[0]),
                    });
                }
                p2.push(Instr::Dsb(DsbKind::IshSt));
                for i in 0..n {
                    store(&mut p2, i, Desc::leaf(kept, Perm::Ro));
                }
                // 3. Entry 0 writable again.
                let mut p3 = Program::default();
                store(&mut p3, 0, Desc::leaf(kept, Perm::Rw));
                vec![p1, p2, p3]
            }
            RemapStrategy::SharedTail => {
                let shared = Page::Frame(f.shared.unwrap_or(f.frames[1.min(n - 1)]));
                let mut p1 = Program::default();
                for i in 1..n {
                    store(&mut p1, i, Desc::leaf(Page::Frame(f.frames[i]), Perm::Ro));
                }
                let mut p2 = Program::default();
                for i in 1..n {
                    store(&mut p2, i, Desc::leaf(shared, Perm::Ro));
                }
                vec![p1, p2]
            }
            RemapStrategy::AfCas => {
                let mut p1 = prep;
                for i in 0..n {
                    let cur = noaf(Page::Frame(f.frames[i]), Perm::Rw);
                    store(&mut p1, i, cur);
                }
                let mut p2 = Program::default();
                for i in 0..n {
                    p2.push(Instr::Cas {
                        va: f.vas[i],
                        level: 3,
                        expect: noaf(Page::Frame(f.frames[i]), Perm::Rw),
                        desc: target(i),
                        retries: AF_CAS_RETRIES,
                    });
                }
                vec![p1, p2]
            }
        }
    }

    /// Emits the frees that follow the batch's last flush: the old vmemmap
    /// pages (the whole block when page 0 was copied).
    pub fn hvo_frees(&self, f: &Folio) -> Program {
        let mut p = Program::with_capacity(1);
        let n = f.frames.len() as u64;
        let keep_first = f.reuse_head || self.remap == RemapStrategy::SharedTail;
        if !keep_first && n.is_power_of_two() && f.frames[0].is_multiple_of(n) {
            p.push(Instr::Free {
                page: Page::Frame(f.frames[0]),
                order: n.trailing_zeros() as u8,
            });
        } else {
            for &fr in &f.frames[usize::from(keep_first)..] {
                p.push(Instr::Free {
                    page: Page::Frame(fr),
                    order: 0,
                });
            }
        }
        p
    }

    /// Emits the de-HVO phases for one optimized huge page: `frames` all
    /// map the kept page (entry 0's frame), pages `reg+1 ..` are the new
    /// ones. Allocation comes first, so a failure changes nothing.
    pub fn restore_phases(&self, f: &Folio, reg: u16) -> Vec<Program> {
        let n = f.vas.len();
        let kept = Page::Frame(f.frames[0]);
        let src = match self.remap {
            RemapStrategy::SharedTail => Page::Frame(f.frames[1.min(n - 1)]),
            _ => kept,
        };
        let new = |i: usize| Page::Reg(reg + i as u16, 0);
        // Room for the first phase: allocations, copies, repairs, stores.
        let mut prep = Program::with_capacity(4 * n + 4);
        for i in 1..n {
            prep.push(Instr::Alloc {
                reg: reg + i as u16,
                order: 0,
            });
        }
        for i in 1..n {
            prep.push(Instr::Copy { dst: new(i), src });
        }
        let repair = |p: &mut Program| {
            if self.remap != RemapStrategy::SharedTail {
                for i in 1..n {
                    p.push(Instr::ResetStructPages {
                        page: new(i),
                        count: NR_RESET_STRUCT_PAGE,
                        head: f.head,
                    });
                }
            }
        };
        let store = |p: &mut Program, i: usize, desc: Desc| {
            p.push(Instr::Store {
                va: f.vas[i],
                level: 3,
                desc,
            })
        };
        match self.remap {
            RemapStrategy::Generic => {
                let mut p = prep;
                repair(&mut p);
                p.push(Instr::Dsb(DsbKind::IshSt));
                for i in 1..n {
                    store(&mut p, i, Desc::leaf(new(i), Perm::Rw));
                }
                vec![p]
            }
            RemapStrategy::Bbm | RemapStrategy::StopMachine => {
                let mut p1 = prep;
                repair(&mut p1);
                p1.push(Instr::Dsb(DsbKind::IshSt));
                for i in 1..n {
                    store(&mut p1, i, Desc::Invalid);
                }
                let mut p2 = Program::default();
                for i in 1..n {
                    store(&mut p2, i, Desc::leaf(new(i), Perm::Rw));
                }
                vec![p1, p2]
            }
            RemapStrategy::PauseCpus => {
                let mut p = prep;
                repair(&mut p);
                paused_bbm(&mut p, f, 1, &|i| Desc::leaf(new(i), Perm::Rw));
                vec![p]
            }
            RemapStrategy::RoFirst | RemapStrategy::SharedTail => {
                // Catalin Marinas: copy so the contents match, remap
                // read-only, flush, then repair and make writable, flush.
                let mut p1 = prep;
                p1.push(Instr::Dsb(DsbKind::IshSt));
                for i in 1..n {
                    store(&mut p1, i, Desc::leaf(new(i), Perm::Ro));
                }
                let mut p2 = Program::default();
                repair(&mut p2);
                p2.push(Instr::Dsb(DsbKind::IshSt));
                for i in 1..n {
                    store(&mut p2, i, Desc::leaf(new(i), Perm::Rw));
                }
                vec![p1, p2]
            }
            RemapStrategy::AfCas => {
                let mut p1 = prep;
                for i in 1..n {
                    store(&mut p1, i, noaf(kept, Perm::Ro));
                }
                let mut p2 = Program::default();
                repair(&mut p2);
                p2.push(Instr::Dsb(DsbKind::IshSt));
                for i in 1..n {
                    p2.push(Instr::Cas {
                        va: f.vas[i],
                        level: 3,
                        expect: noaf(kept, Perm::Ro),
                        desc: Desc::leaf(new(i), Perm::Rw),
                        retries: AF_CAS_RETRIES,
                    });
                }
                vec![p1, p2]
            }
        }
    }
}

/// The number of struct pages at the start of a vmemmap page that differ
/// from tail struct pages after HVO (the head, page\[1\], page\[2\]):
/// `NR_RESET_STRUCT_PAGE` in mm/hugetlb_vmemmap.c (v5.18 to v6.8).
pub const NR_RESET_STRUCT_PAGE: u64 = 3;

/// Emits Yu Zhao's paused break-before-make (2024 v2) of the vmemmap pages
/// `first..` of `f`: pause the other CPUs, invalidate, flush the range,
/// write `target(i)`, resume.
fn paused_bbm(p: &mut Program, f: &Folio, first: usize, target: &dyn Fn(usize) -> Desc) {
    let n = f.vas.len();
    p.push(Instr::PauseCpus);
    for i in first..n {
        p.push(Instr::Store {
            va: f.vas[i],
            level: 3,
            desc: Desc::Invalid,
        });
    }
    p.flush_tlb_kernel_range(
        f.vas[first],
        f.vas[n - 1] - f.vas[first] + page_of(f),
        page_of(f),
    );
    for i in first..n {
        p.push(Instr::Store {
            va: f.vas[i],
            level: 3,
            desc: target(i),
        });
    }
    p.push(Instr::Dsb(DsbKind::IshSt));
    p.push(Instr::Isb);
    p.push(Instr::ResumeCpus);
}

fn page_of(f: &Folio) -> u64 {
    if f.vas.len() > 1 {
        f.vas[1] - f.vas[0]
    } else {
        4096
    }
}
