//! Programs: the exact sequence of operations a protocol performs.
//!
//! A protocol does not touch the model; it emits a [`Program`], which the
//! executor ([`crate::kernel::Kernel::run`]) runs on the machine with the rule checker
//! watching, and which the explorer will run against concurrent CPUs.
//! Pages a program allocates are named by registers ([`Page::Reg`]) because
//! their addresses are known only when the allocation runs.

use std::fmt;

use serde::Serialize;
use vmsa::{Attributes, Descriptor, DsbKind, Granule, Level, PhysAddr, TlbiKind, TlbiScope};

use crate::kernel::MmError;
use crate::vmemmap::{page_kernel, page_kernel_ro};

/// A page a program refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Page {
    /// A physical frame known when the program is emitted.
    Frame(u64),
    /// The page allocated into register `r`; with an offset in pages for
    /// a multi-page allocation.
    Reg(u16, u64),
    /// The memory the slot's leaf maps when the instruction runs ("the
    /// block's own memory", a split that keeps it): only the page of a
    /// leaf descriptor, read from the slot by the executor.
    Same,
}

impl fmt::Display for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Page::Frame(n) => write!(f, "pfn {n:#x}"),
            Page::Reg(r, 0) => write!(f, "r{r}"),
            Page::Reg(r, o) => write!(f, "r{r}+{o}"),
            Page::Same => f.write_str("same"),
        }
    }
}

/// The registers of a running program: the first frame each
/// [`Instr::Alloc`] returned, and its order, by register. A program
/// allocates a handful, so they are a short list searched from the start,
/// not a hash map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Regs(Vec<(u16, u64, u8)>);

impl Regs {
    /// Returns empty registers with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Regs(Vec::with_capacity(n))
    }

    /// Returns the frame in register `r`, if it was allocated.
    pub fn get(&self, r: &u16) -> Option<&u64> {
        self.0.iter().find(|(x, _, _)| x == r).map(|(_, f, _)| f)
    }

    /// Sets register `r` to the `2^order` frames from `frame`.
    pub fn insert(&mut self, r: u16, frame: u64, order: u8) {
        match self.0.iter_mut().find(|(x, _, _)| *x == r) {
            Some(e) => *e = (r, frame, order),
            None => self.0.push((r, frame, order)),
        }
    }

    /// Returns the frames `off .. off + count` of the allocation in
    /// register `r` (the first of them): `rN+K` names page K of it, and
    /// a page outside it is a frame the program never allocated.
    ///
    /// # Errors
    ///
    /// Returns a message when `r` was not allocated, or when the pages
    /// reach past the allocation's `2^order` pages.
    pub fn pages(&self, r: u16, off: u64, count: u64) -> Result<u64, String> {
        let (_, f, order) = self
            .0
            .iter()
            .find(|(x, _, _)| *x == r)
            .ok_or_else(|| format!("register r{r} used before allocation"))?;
        let size = 1u64 << order;
        if off.checked_add(count).is_none_or(|end| end > size) {
            return Err(out_of_allocation(r, off, count, *order));
        }
        Ok(f + off)
    }

    /// Forgets every register.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// Says that pages `off .. off + count` of register `r` lie outside its
/// allocation of order `order` (shared by the executor and the `.seq`
/// resolver, so that both say it alike).
pub fn out_of_allocation(r: u16, off: u64, count: u64, order: u8) -> String {
    let size = 1u64 << order;
    let pages = if size == 1 {
        "1 page".to_string()
    } else {
        format!("{size} pages")
    };
    let what = if count == 1 {
        format!("page offset {off} (r{r}+{off}) is")
    } else {
        format!(
            "page offsets {off}..{} (r{r}+{off}, {count} pages) are",
            off.saturating_add(count - 1)
        )
    };
    format!(
        "{what} outside the allocation in r{r}: it is {pages} (order {order}), offsets 0..{}; expected an offset inside it",
        size - 1
    )
}

/// Permissions of a kernel leaf mapping: Linux's `PAGE_KERNEL` (read-write,
/// DBM set as `PTE_WRITE`) or `PAGE_KERNEL_RO` (arch/arm64/include/asm/pgtable-prot.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Perm {
    /// `PAGE_KERNEL` / `PROT_SECT_NORMAL`.
    Rw,
    /// `PAGE_KERNEL_RO`.
    Ro,
}

/// A descriptor value, with pages symbolic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Desc {
    /// The invalid descriptor 0.
    Invalid,
    /// A block or page (by the slot's level) mapping `page`.
    Leaf {
        /// The first page mapped.
        page: Page,
        /// The permissions.
        perm: Perm,
        /// Whether the Access flag is set.
        af: bool,
        /// Whether nT is set (blocks, FEAT_BBM level 1).
        nt: bool,
    },
    /// A table descriptor pointing at `page`.
    Table(Page),
}

impl Desc {
    /// Returns a kernel leaf with AF set and nT clear.
    pub fn leaf(page: Page, perm: Perm) -> Self {
        Desc::Leaf {
            page,
            perm,
            af: true,
            nt: false,
        }
    }
}

impl Desc {
    /// Encodes the descriptor for a slot at `level`: `page_pa` resolves a
    /// page to its physical address, `current` reads the slot's value now
    /// (for [`Page::Same`], "the block's own memory").
    /// Permissions are Linux's `PAGE_KERNEL` and `PAGE_KERNEL_RO`.
    ///
    /// # Errors
    ///
    /// Returns the resolvers' errors, [`MmError::Config`] when
    /// [`Page::Same`] finds no leaf, and model errors for a level where the
    /// granule has no such descriptor.
    pub fn encode(
        &self,
        granule: Granule,
        level: Level,
        page_pa: &dyn Fn(Page) -> Result<u64, MmError>,
        current: &dyn Fn() -> Result<Descriptor, MmError>,
    ) -> Result<Descriptor, MmError> {
        let g = granule;
        Ok(match *self {
            Desc::Invalid => Descriptor::INVALID,
            Desc::Table(p) => Descriptor::table(g, level, PhysAddr(page_pa(p)?))?,
            Desc::Leaf { page, perm, af, nt } => {
                let pa = if page == Page::Same {
                    current()?
                        .as_leaf(g, level)
                        .map(|l| l.oa.0)
                        .ok_or_else(|| MmError::Config(format!("no block at L{level} to keep")))?
                } else {
                    page_pa(page)?
                };
                let mut a = match perm {
                    Perm::Rw => page_kernel(),
                    Perm::Ro => page_kernel_ro(),
                };
                a.flags.set(Attributes::AF, af);
                a.flags.set(Attributes::NT, nt);
                Descriptor::leaf(g, level, PhysAddr(pa), a)?
            }
        })
    }
}

impl fmt::Display for Desc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Desc::Invalid => f.write_str("invalid"),
            Desc::Leaf { page, perm, af, nt } => {
                write!(f, "{page} {}", if perm == Perm::Rw { "rw" } else { "ro" })?;
                if !af {
                    f.write_str(" noaf")?;
                }
                if nt {
                    f.write_str(" nt")?;
                }
                Ok(())
            }
            Desc::Table(p) => write!(f, "table {p}"),
        }
    }
}

/// One operation of a program.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Instr {
    /// Store the descriptor that translates `va` at `level`.
    Store {
        /// A VA the descriptor translates.
        va: u64,
        /// Its level.
        level: Level,
        /// The value.
        desc: Desc,
    },
    /// Compare-and-swap that descriptor from `expect` to `desc` (the 2026
    /// AF-clear + CAS series). Without concurrent CPUs it cannot fail.
    /// Against them (the explorer) it fails when another CPU's walk set
    /// the Access flag in memory; it is then retried up to `retries`
    /// times, each retry as the series does it: store `expect` again
    /// (AF clear), `dsb ishst`, a TLBI of the VA (`vaale1is` at level 3,
    /// `vaae1is` above it, for the walk caches), `dsb ish`, and the CAS
    /// again. With no retry left the updater gives up on the huge page.
    Cas {
        /// A VA the descriptor translates.
        va: u64,
        /// Its level.
        level: Level,
        /// The value expected.
        expect: Desc,
        /// The value to write.
        desc: Desc,
        /// How many times a failed CAS is retried (0: never;
        /// [`crate::protocol::AF_CAS_RETRIES`] in the af-cas protocol).
        retries: u8,
    },
    /// `DSB ISH` or `DSB ISHST`.
    Dsb(DsbKind),
    /// `ISB`.
    Isb,
    /// A TLBI, broadcast or local (`va` ignored by `vmalle1[is]`).
    Tlbi {
        /// The operation.
        kind: TlbiKind,
        /// Which CPUs' TLBs it invalidates.
        scope: TlbiScope,
        /// Its VA operand.
        va: u64,
    },
    /// Allocate `2^order` pages into register `reg`.
    Alloc {
        /// The register.
        reg: u16,
        /// The order.
        order: u8,
    },
    /// Free `2^order` pages.
    Free {
        /// The first page.
        page: Page,
        /// The order.
        order: u8,
    },
    /// `copy_page(dst, src)`.
    Copy {
        /// Destination.
        dst: Page,
        /// Source.
        src: Page,
    },
    /// Fill the new table `table` with entries one level below `level`
    /// mapping the same memory as the block that maps `va` at `level`
    /// (`vmemmap_split_pmd`'s private PTE table, not yet live).
    FillTable {
        /// The table page.
        table: Page,
        /// A VA of the block.
        va: u64,
        /// The block's level.
        level: Level,
    },
    /// Overwrite the first `count` struct pages of `page` with tail struct
    /// pages of the huge page whose head is pfn `head` (de-HVO's fake-head
    /// repair, `reset_struct_pages()`).
    ResetStructPages {
        /// The vmemmap page.
        page: Page,
        /// How many struct pages.
        count: u64,
        /// The head's pfn.
        head: u64,
    },
    /// Make other CPUs spin with interrupts off (Yu Zhao's pause, 2024 v2:
    /// pseudo-NMI IPI) until [`Instr::ResumeCpus`].
    PauseCpus,
    /// Let paused CPUs go on.
    ResumeCpus,
    /// `stop_machine()`: every other CPU stops; until [`Instr::StartMachine`].
    StopMachine,
    /// End of the `stop_machine()` callback.
    StartMachine,
    /// `synchronize_rcu()`: wait until every RCU read section that began
    /// before it has ended (commit bd225530a4c7).
    SynchronizeRcu,
    /// A 64-bit store by the running CPU to a kernel VA: a struct page field
    /// written through the vmemmap (the refcount freeze before HVO).
    WriteWord {
        /// The VA.
        va: u64,
        /// The value.
        value: u64,
    },
}

impl fmt::Display for Instr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Instr::Store { va, level, desc } => write!(f, "store L{level}[{va:#x}] = {desc}"),
            Instr::Cas {
                va,
                level,
                expect,
                desc,
                retries,
            } => {
                write!(f, "cas L{level}[{va:#x}]: {expect} => {desc}")?;
                if *retries > 0 {
                    write!(f, " retries={retries}")?;
                }
                Ok(())
            }
            Instr::Dsb(k) => write!(f, "{k}"),
            Instr::Isb => f.write_str("isb"),
            Instr::Tlbi { kind, scope, va } => {
                let m = kind.mnemonic(*scope);
                if kind.by_va() {
                    write!(f, "tlbi {m}, {va:#x}")
                } else {
                    write!(f, "tlbi {m}")
                }
            }
            Instr::Alloc { reg, order } => write!(f, "r{reg} = alloc_pages(order {order})"),
            Instr::Free { page, order } => write!(f, "free {page} order {order}"),
            Instr::Copy { dst, src } => write!(f, "copy_page({dst}, {src})"),
            Instr::FillTable { table, va, level } => {
                write!(f, "fill {table} from the L{level} block at {va:#x}")
            }
            Instr::ResetStructPages { page, count, head } => {
                write!(
                    f,
                    "reset {count} struct pages of {page} to tails of pfn {head:#x}"
                )
            }
            Instr::PauseCpus => f.write_str("pause other CPUs"),
            Instr::ResumeCpus => f.write_str("resume other CPUs"),
            Instr::StopMachine => f.write_str("stop_machine begin"),
            Instr::StartMachine => f.write_str("stop_machine end"),
            Instr::SynchronizeRcu => f.write_str("synchronize_rcu"),
            Instr::WriteWord { va, value } => write!(f, "str {value:#x}, [{va:#x}]"),
        }
    }
}

/// A program: a name and its operations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Program {
    /// The operations in order.
    pub instrs: Vec<Instr>,
}

impl Program {
    /// Returns an empty program with room for `n` operations.
    pub fn with_capacity(n: usize) -> Self {
        Program {
            instrs: Vec::with_capacity(n),
        }
    }

    /// Appends one operation.
    pub fn push(&mut self, i: Instr) {
        if self.instrs.capacity() == 0 {
            // Fewer reallocations for the usual handful of operations.
            self.instrs.reserve(8);
        }
        self.instrs.push(i);
    }

    /// Appends Linux's `flush_tlb_all()`: `dsb ishst; tlbi vmalle1is;
    /// dsb ish; isb` (arch/arm64/include/asm/tlbflush.h).
    pub fn flush_tlb_all(&mut self) {
        self.instrs.extend([
            Instr::Dsb(DsbKind::IshSt),
            Instr::Tlbi {
                kind: TlbiKind::Vmalle1,
                scope: TlbiScope::Broadcast,
                va: 0,
            },
            Instr::Dsb(DsbKind::Ish),
            Instr::Isb,
        ]);
    }

    /// Appends Linux's `flush_tlb_kernel_range(start, start + len)`: `dsb
    /// ishst`, one `tlbi vaale1is` per page, `dsb ish; isb`.
    pub fn flush_tlb_kernel_range(&mut self, start: u64, len: u64, page: u64) {
        self.push(Instr::Dsb(DsbKind::IshSt));
        let mut va = start;
        while va < start + len {
            self.push(Instr::Tlbi {
                kind: TlbiKind::Vaale1,
                scope: TlbiScope::Broadcast,
                va,
            });
            va += page;
        }
        self.push(Instr::Dsb(DsbKind::Ish));
        self.push(Instr::Isb);
    }

    /// Appends Linux's `__flush_tlb_kernel_pgtable(va)`: `dsb ishst; tlbi
    /// vaae1is; dsb ish; isb`, which also removes walk-cache entries.
    pub fn flush_tlb_kernel_pgtable(&mut self, va: u64) {
        self.instrs.extend([
            Instr::Dsb(DsbKind::IshSt),
            Instr::Tlbi {
                kind: TlbiKind::Vaae1,
                scope: TlbiScope::Broadcast,
                va,
            },
            Instr::Dsb(DsbKind::Ish),
            Instr::Isb,
        ]);
    }

    /// Appends every operation of `other`.
    pub fn extend(&mut self, other: Program) {
        self.instrs.extend(other.instrs);
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, ins) in self.instrs.iter().enumerate() {
            writeln!(f, "{i:4}  {ins}")?;
        }
        Ok(())
    }
}
