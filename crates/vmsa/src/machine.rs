//! A simulated multi-CPU arm64 machine: memory, translation tables, per-CPU
//! TLBs, descriptor stores not yet visible to walkers and TLBIs not yet
//! complete.
//!
//! Memory ordering model: ordinary data accesses are sequentially
//! consistent. A descriptor store (or CAS) is at once part of the coherent
//! memory that data accesses and later CASes see, but reaches the walkers
//! only when it *propagates*: at any time chosen by the caller
//! ([`Machine::propagate`]), and at the latest at a DSB of the storing CPU
//! (R_DDMVT step 2; the DSB before a TLBI "so the walker sees the new
//! entry"). Stores to one descriptor propagate in order. A TLBI takes
//! effect on each CPU of its scope (every CPU for a broadcast `...IS` one,
//! the issuing CPU alone for a local one) at a time chosen by the caller
//! ([`Machine::tlbi_take_effect`]) and on all of them at the latest at a
//! `DSB ISH` of the issuing CPU; entries refilled on a CPU after the TLBI
//! took effect there survive it. TLB fills and evictions may happen at any
//! time ([`Machine::fill`], [`Machine::evict`]). Each nondeterministic step
//! is a method, so an explorer can enumerate them; a plain run takes none
//! and gets the eager behaviour of the barriers.
//!
//! Table updates are made by physical address, as the kernel makes them
//! through the linear map, which is not modelled and never faults.
//!
//! The rule checker's place in the machine (inline, or on a thread of its
//! own fed the memory journal) is in `checker.rs`.

mod checker;

use checker::Remote;

use crate::VmsaError;
use crate::addr::{PhysAddr, VirtAddr};
use crate::alloc::FrameAllocator;
use crate::descriptor::{Descriptor, Entry, LeafAttrs};
use crate::event::{DsbKind, Event};
use crate::features::Config;
use crate::granule::Level;
use crate::memory::Memory;
use crate::rules::RuleChecker;
use crate::tlb::{Tlb, Tlbi, TlbiScope};
use crate::translate::Translator;
use crate::walk::{Access, Choice, Fault, FaultKind, Translation};

/// Checks the CPU count: CPU sets are 64-bit masks.
fn check_ncpus(config: &Config) -> Result<(), VmsaError> {
    if config.ncpus == 0 || config.ncpus > 64 {
        return Err(VmsaError::CpuCount {
            ncpus: config.ncpus,
        });
    }
    Ok(())
}

/// One CPU's translation state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cpu {
    /// The TLB, walk caches included.
    pub tlb: Tlb,
    /// The current ASID.
    pub asid: u16,
}

/// A descriptor store that walkers cannot see yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PendingStore {
    /// The storing CPU.
    pub cpu: usize,
    /// The descriptor's address.
    pub pa: PhysAddr,
    /// The value before the store.
    pub prev: u64,
    /// The value stored.
    pub value: u64,
    /// The CPUs (bit `c` for CPU `c`) whose walkers see the store already,
    /// before it propagates to all: a store a barrier ordered before
    /// later stores, or that another CPU read, is seen by every walker but
    /// its writer's (Armv8 is other-multi-copy atomic; the explorer's
    /// threads, `explore::engine::thread::views`). None here: the machine
    /// makes a store visible to every walker at once when it propagates.
    pub walkers: u64,
}

/// A TLBI that has not completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PendingTlbi {
    /// The issuing CPU.
    pub cpu: usize,
    /// The operation.
    pub op: Tlbi,
    /// Bit i set: not yet taken effect on CPU i.
    pub waiting: u64,
}

/// The whole simulated machine.
#[derive(Clone, Debug)]
pub struct Machine {
    config: Config,
    mem: Memory,
    alloc: FrameAllocator,
    root: PhysAddr,
    cpus: Vec<Cpu>,
    pending: Vec<PendingStore>,
    tlbis: Vec<PendingTlbi>,
    checker: Option<RuleChecker>,
    remote: Remote,
}

impl Machine {
    /// Creates a machine with `mem_size` bytes of memory, all free but the
    /// root table (TTBR1_EL1), which the allocator hands out first.
    ///
    /// # Errors
    ///
    /// Returns an error for a memory size that is not a multiple of the
    /// page size, or for more than 64 CPUs or none.
    pub fn new(config: Config, mem_size: u64) -> Result<Self, VmsaError> {
        check_ncpus(&config)?;
        let mem = Memory::new(config.granule, mem_size)?;
        let frames = mem_size >> config.granule.page_shift();
        let mut alloc = FrameAllocator::new(frames, 10.min(63 - frames.leading_zeros() as u8));
        alloc.add_free_range(0, frames)?;
        let mut m = Machine {
            config,
            mem,
            alloc,
            root: PhysAddr(0),
            cpus: vec![Cpu::default(); config.ncpus],
            pending: Vec::new(),
            tlbis: Vec::new(),
            checker: None,
            remote: Remote::default(),
        };
        m.root = m.alloc_table()?;
        Ok(m)
    }

    /// Creates a machine over existing memory and allocator (the caller lays
    /// out memory) with the root table at `root`.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::CpuCount`] for no CPU or more than 64.
    pub fn with_parts(
        config: Config,
        mem: Memory,
        alloc: FrameAllocator,
        root: PhysAddr,
    ) -> Result<Self, VmsaError> {
        check_ncpus(&config)?;
        Ok(Machine {
            config,
            mem,
            alloc,
            root,
            cpus: vec![Cpu::default(); config.ncpus],
            pending: Vec::new(),
            tlbis: Vec::new(),
            checker: None,
            remote: Remote::default(),
        })
    }

    /// Returns the configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Returns the coherent memory (what data accesses and CASes see).
    pub fn mem(&self) -> &Memory {
        &self.mem
    }

    /// Returns the memory for direct set-up (not checked, not delayed).
    pub fn mem_mut(&mut self) -> &mut Memory {
        &mut self.mem
    }

    /// Returns the frame allocator.
    pub fn allocator(&self) -> &FrameAllocator {
        &self.alloc
    }

    /// Returns the frame allocator for direct set-up.
    pub fn allocator_mut(&mut self) -> &mut FrameAllocator {
        &mut self.alloc
    }

    /// Returns the root table (TTBR1_EL1).
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// Returns the CPUs.
    pub fn cpus(&self) -> &[Cpu] {
        &self.cpus
    }

    /// Returns the descriptor stores walkers cannot see yet, oldest first.
    pub fn pending_stores(&self) -> &[PendingStore] {
        &self.pending
    }

    /// Returns the TLBIs not yet complete, oldest first.
    pub fn pending_tlbis(&self) -> &[PendingTlbi] {
        &self.tlbis
    }

    fn check_cpu(&self, cpu: usize) -> Result<(), VmsaError> {
        if cpu >= self.cpus.len() {
            return Err(VmsaError::NoSuchCpu {
                cpu,
                ncpus: self.cpus.len(),
            });
        }
        Ok(())
    }

    fn frame_pa(&self, frame: u64) -> PhysAddr {
        PhysAddr(frame << self.config.granule.page_shift())
    }

    /// Allocates a zeroed page for a translation table.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::OutOfMemory`] when no page is free.
    pub fn alloc_table(&mut self) -> Result<PhysAddr, VmsaError> {
        let f = self.alloc.alloc(0)?;
        self.mem.zero_frame(f)?;
        Ok(self.frame_pa(f))
    }

    /// Allocates `2^order` frames (contents left as they were).
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::OutOfMemory`] when no block is free.
    pub fn alloc_pages(&mut self, order: u8) -> Result<PhysAddr, VmsaError> {
        let f = self.alloc.alloc(order)?;
        Ok(self.frame_pa(f))
    }

    /// Frees `2^order` frames at `pa` on behalf of `cpu`; the rule checker
    /// sees the free.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::BadFree`] for a free that matches no allocation.
    pub fn free_pages(&mut self, cpu: usize, pa: PhysAddr, order: u8) -> Result<(), VmsaError> {
        self.check_cpu(cpu)?;
        self.alloc
            .free(pa.0 >> self.config.granule.page_shift(), order)?;
        self.observe(Event::Free { cpu, pa, order });
        Ok(())
    }

    /// Copies a page (`copy_page`).
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::OutOfRange`] outside memory.
    pub fn copy_page(&mut self, dst: PhysAddr, src: PhysAddr) -> Result<(), VmsaError> {
        let s = self.config.granule.page_shift();
        self.mem.copy_frame(dst.0 >> s, src.0 >> s)
    }

    /// Maps `len` bytes at `va` to `pa` with leaves at `level`, allocating
    /// tables as needed, directly in memory: the boot-time set-up, before
    /// any CPU uses the tables (not checked, visible at once).
    ///
    /// # Errors
    ///
    /// Returns an error if the level cannot hold a leaf, if an address or
    /// the length is misaligned, or if the range is already mapped
    /// differently.
    pub fn map(
        &mut self,
        va: VirtAddr,
        pa: PhysAddr,
        len: u64,
        level: Level,
        attrs: LeafAttrs,
    ) -> Result<(), VmsaError> {
        let g = self.config.granule;
        let size = g.level_size(level);
        if !va.is_aligned(size) || !len.is_multiple_of(size) {
            return Err(VmsaError::Misaligned {
                addr: va.0,
                align: size,
            });
        }
        let mut off = 0;
        while off < len {
            let desc = Descriptor::leaf(g, level, pa.add(off), attrs)?;
            let slot = self.table_slot(va.add(off), level, true)?;
            let old = self.mem.read_u64(slot)?;
            if old != 0 && old != desc.0 {
                return Err(VmsaError::Map {
                    va: va.0 + off,
                    why: format!("already mapped by {:#x}", old),
                });
            }
            self.mem.write_u64(slot, desc.0)?;
            off += size;
        }
        Ok(())
    }

    /// Returns where the descriptor for `va` at `level` lives, following
    /// the coherent memory; with `create`, allocates missing tables.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::Map`] if a leaf above `level` maps `va`, or the
    /// table is missing and `create` is false.
    pub fn table_slot(
        &mut self,
        va: VirtAddr,
        level: Level,
        create: bool,
    ) -> Result<PhysAddr, VmsaError> {
        let g = self.config.granule;
        let mut table = self.root;
        for l in g.start_level()..level {
            let slot = table.add(g.index(l, va.0) as u64 * 8);
            let d = Descriptor(self.mem.read_u64(slot)?);
            table = match d.decode(g, l) {
                Entry::Table(t) => t.next,
                Entry::Invalid(0) if create => {
                    let t = self.alloc_table()?;
                    self.mem.write_u64(slot, Descriptor::table(g, l, t)?.0)?;
                    t
                }
                other => {
                    return Err(VmsaError::Map {
                        va: va.0,
                        why: format!(
                            "level {l} holds {} where a table was expected",
                            crate::descriptor::describe(&other)
                        ),
                    });
                }
            };
        }
        Ok(table.add(g.index(level, va.0) as u64 * 8))
    }

    /// Returns where the descriptor for `va` at `level` lives, without
    /// changing anything.
    ///
    /// # Errors
    ///
    /// As [`Machine::table_slot`] without `create`.
    pub fn desc_pa(&self, va: VirtAddr, level: Level) -> Result<PhysAddr, VmsaError> {
        let g = self.config.granule;
        let mut table = self.root;
        for l in g.start_level()..level {
            let slot = table.add(g.index(l, va.0) as u64 * 8);
            match Descriptor(self.mem.read_u64(slot)?).decode(g, l) {
                Entry::Table(t) => table = t.next,
                other => {
                    return Err(VmsaError::Map {
                        va: va.0,
                        why: format!(
                            "level {l} holds {} where a table was expected",
                            crate::descriptor::describe(&other)
                        ),
                    });
                }
            }
        }
        Ok(table.add(g.index(level, va.0) as u64 * 8))
    }

    /// Reads a descriptor as data accesses see it.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::OutOfRange`] outside memory.
    pub fn read_desc(&self, pa: PhysAddr) -> Result<Descriptor, VmsaError> {
        Ok(Descriptor(self.mem.read_u64(pa)?))
    }

    /// Reads a descriptor as walkers see it (older than the coherent value
    /// while a store to it is pending).
    pub fn walker_read(&self, pa: PhysAddr) -> u64 {
        match self.pending.iter().find(|p| p.pa == pa) {
            Some(p) => p.prev,
            None => self.mem.read_u64(pa).unwrap_or(0),
        }
    }

    /// Stores descriptor `value` at `pa` from `cpu`.
    ///
    /// # Errors
    ///
    /// Returns an error for a bad CPU or an address outside memory.
    pub fn store_desc(
        &mut self,
        cpu: usize,
        pa: PhysAddr,
        value: Descriptor,
    ) -> Result<(), VmsaError> {
        self.check_cpu(cpu)?;
        let old = self.read_desc(pa)?;
        self.write_pending(cpu, pa, old.0, value.0)?;
        self.observe(Event::DescWrite {
            cpu,
            pa,
            old,
            new: value,
            cas: false,
        });
        Ok(())
    }

    /// Compare-and-swaps the descriptor at `pa` from `cpu`: writes `new` if
    /// it holds `expected`. Returns the value found.
    ///
    /// # Errors
    ///
    /// Returns an error for a bad CPU or an address outside memory.
    pub fn cas_desc(
        &mut self,
        cpu: usize,
        pa: PhysAddr,
        expected: Descriptor,
        new: Descriptor,
    ) -> Result<Descriptor, VmsaError> {
        self.check_cpu(cpu)?;
        let old = self.read_desc(pa)?;
        if old == expected {
            self.write_pending(cpu, pa, old.0, new.0)?;
            self.observe(Event::DescWrite {
                cpu,
                pa,
                old,
                new,
                cas: true,
            });
        }
        Ok(old)
    }

    fn write_pending(
        &mut self,
        cpu: usize,
        pa: PhysAddr,
        prev: u64,
        value: u64,
    ) -> Result<(), VmsaError> {
        self.mem.write_u64(pa, value)?;
        self.pending.push(PendingStore {
            cpu,
            pa,
            prev,
            value,
            walkers: 0,
        });
        Ok(())
    }

    /// Makes the pending store at `index` visible to walkers, if no older
    /// store to the same descriptor is pending. Returns whether it did.
    pub fn propagate(&mut self, index: usize) -> bool {
        let Some(p) = self.pending.get(index).copied() else {
            return false;
        };
        if self.pending[..index].iter().any(|q| q.pa == p.pa) {
            return false;
        }
        self.pending.remove(index);
        true
    }

    fn propagate_cpu(&mut self, cpu: usize) {
        // Stores of `cpu`, and any older store to the same descriptor
        // (coherence order), become visible.
        let Some(last) = self.pending.iter().rposition(|p| p.cpu == cpu) else {
            return;
        };
        if self.pending[..=last].iter().all(|p| p.cpu == cpu) {
            self.pending.drain(..=last);
            return;
        }
        let pas: rustc_hash::FxHashSet<PhysAddr> = self.pending[..=last]
            .iter()
            .filter(|p| p.cpu == cpu)
            .map(|p| p.pa)
            .collect();
        let mut i = 0;
        self.pending.retain(|p| {
            i += 1;
            !(i <= last + 1 && pas.contains(&p.pa))
        });
    }

    /// Executes a DSB on `cpu`: its descriptor stores become visible to
    /// walkers, and with `DSB ISH` its TLBIs complete on every CPU.
    ///
    /// # Errors
    ///
    /// Returns an error for a bad CPU.
    pub fn dsb(&mut self, cpu: usize, kind: DsbKind) -> Result<(), VmsaError> {
        self.check_cpu(cpu)?;
        self.propagate_cpu(cpu);
        if kind.completes_tlbi() {
            let mut i = 0;
            while i < self.tlbis.len() {
                if self.tlbis[i].cpu == cpu {
                    let t = self.tlbis.remove(i);
                    for c in 0..self.cpus.len() {
                        if t.waiting & (1 << c) != 0 {
                            self.cpus[c].tlb.invalidate(&t.op);
                        }
                    }
                } else {
                    i += 1;
                }
            }
        }
        self.observe(Event::Dsb { cpu, kind });
        Ok(())
    }

    /// Executes an ISB on `cpu` (context synchronization; no effect on the
    /// translation state of this model beyond what the checker records).
    ///
    /// # Errors
    ///
    /// Returns an error for a bad CPU.
    pub fn isb(&mut self, cpu: usize) -> Result<(), VmsaError> {
        self.check_cpu(cpu)?;
        self.observe(Event::Isb { cpu });
        Ok(())
    }

    /// Issues a TLBI on `cpu`. It takes effect on each CPU in its scope
    /// (every CPU for a broadcast one, `cpu` alone for a local one) at any
    /// time until the issuing CPU's next `DSB ISH`.
    ///
    /// # Errors
    ///
    /// Returns an error for a bad CPU.
    pub fn tlbi(&mut self, cpu: usize, op: Tlbi) -> Result<(), VmsaError> {
        self.check_cpu(cpu)?;
        let waiting = match op.scope {
            TlbiScope::Broadcast if self.cpus.len() == 64 => u64::MAX,
            TlbiScope::Broadcast => (1u64 << self.cpus.len()) - 1,
            TlbiScope::Local => 1u64 << cpu,
        };
        self.tlbis.push(PendingTlbi { cpu, op, waiting });
        self.observe(Event::Tlbi { cpu, op });
        Ok(())
    }

    /// Makes the pending TLBI at `index` take effect on `cpu` now. Returns
    /// whether it was still waiting there.
    pub fn tlbi_take_effect(&mut self, index: usize, cpu: usize) -> bool {
        let Some(t) = self.tlbis.get_mut(index) else {
            return false;
        };
        if cpu >= 64 || t.waiting & (1 << cpu) == 0 {
            return false;
        }
        t.waiting &= !(1 << cpu);
        let op = t.op;
        self.cpus[cpu].tlb.invalidate(&op);
        true
    }

    /// Evicts entry `index` of `cpu`'s TLB. Returns whether there was one.
    pub fn evict(&mut self, cpu: usize, index: usize) -> bool {
        self.cpus
            .get_mut(cpu)
            .is_some_and(|c| c.tlb.evict(index).is_some())
    }

    /// Returns the translator for this machine's walkers (what they read
    /// is [`Machine::walker_read`]).
    fn with_translator<T>(&self, f: impl FnOnce(&Translator<'_>) -> T) -> T {
        let read = |pa| self.walker_read(pa);
        let g = self.config.granule;
        let same = |a: PhysAddr, b: PhysAddr| {
            let (fa, fb) = (a.0 >> g.page_shift(), b.0 >> g.page_shift());
            self.mem.same_contents(fa, fb)
        };
        f(&Translator {
            config: &self.config,
            root: self.root,
            read: &read,
            same_page: Some(&same),
            el: crate::translate::ExceptionLevel::El1,
        })
    }

    /// Lists the ways a `kind` access to `va` by `cpu` may resolve now:
    /// one per matching TLB entry (plus a TLB conflict abort where the
    /// FEAT_BBM level allows it), or one per possible walk start otherwise.
    pub fn choices(&self, cpu: usize, va: VirtAddr, kind: Access) -> Vec<Choice> {
        let Some(c) = self.cpus.get(cpu) else {
            return Vec::new();
        };
        self.with_translator(|t| t.choices(&c.tlb, c.asid, va, kind))
    }
    /// Applies a choice from [`Machine::choices`] for `cpu`: caches its
    /// entries and performs its hardware update. Returns the translation or
    /// fault, or `None` if the hardware update found the descriptor changed
    /// (the walk must be retried; nothing happened).
    pub fn commit(&mut self, cpu: usize, choice: &Choice) -> Option<Result<Translation, Fault>> {
        if let Some(u) = choice.hw_update {
            let cur = self.mem.read_u64(u.pa).unwrap_or(0);
            if cur != u.expected.0 || self.pending.iter().any(|p| p.pa == u.pa) {
                return None;
            }
            let _ = self.mem.write_u64(u.pa, u.new.0);
            // The CPU's entries cached from the old value are replaced by
            // the updated one.
            if let Some(c) = self.cpus.get_mut(cpu) {
                let stale: Vec<usize> = (0..c.tlb.entries().len())
                    .filter(|&i| c.tlb.entries()[i].desc_pa == u.pa)
                    .collect();
                for i in stale.into_iter().rev() {
                    c.tlb.evict(i);
                }
            }
        }
        if let Some(c) = self.cpus.get_mut(cpu) {
            for e in &choice.fills {
                c.tlb.insert(*e);
            }
        }
        Some(choice.result)
    }

    /// Translates a `kind` access to `va` on `cpu`, taking the first choice
    /// (a TLB hit if there is one, else a walk from the root), and applies
    /// it.
    ///
    /// # Errors
    ///
    /// Returns an error for a bad CPU.
    pub fn translate(
        &mut self,
        cpu: usize,
        va: VirtAddr,
        kind: Access,
    ) -> Result<Result<Translation, Fault>, VmsaError> {
        self.check_cpu(cpu)?;
        let choices = self.choices(cpu, va, kind);
        let Some(first) = choices.first() else {
            return Ok(Err(Fault {
                kind: FaultKind::Translation,
                va,
                level: None,
            }));
        };
        Ok(self.commit(cpu, first).unwrap_or(Err(Fault {
            kind: FaultKind::Translation,
            va,
            level: None,
        })))
    }

    /// Fills `cpu`'s TLB as a speculative walk for `va` from the root
    /// would; returns whether it cached a leaf.
    pub fn fill(&mut self, cpu: usize, va: VirtAddr) -> bool {
        let Some(c) = self.cpus.get(cpu) else {
            return false;
        };
        let asid = c.asid;
        let mut choices =
            self.with_translator(|t| t.walks(&Tlb::default(), asid, va, Access::Load));
        choices.retain(|ch| ch.result.is_ok());
        match choices.first().cloned() {
            Some(ch) => self.commit(cpu, &ch).is_some(),
            None => false,
        }
    }

    /// Loads the 64-bit word at `va` on `cpu`.
    ///
    /// # Errors
    ///
    /// Returns an error for a bad CPU; a fault is the inner `Err`.
    pub fn load(&mut self, cpu: usize, va: VirtAddr) -> Result<Result<u64, Fault>, VmsaError> {
        Ok(match self.translate(cpu, va, Access::Load)? {
            Ok(t) => Ok(self.mem.read_u64(t.pa)?),
            Err(f) => Err(f),
        })
    }

    /// Stores the 64-bit word at `va` on `cpu`.
    ///
    /// # Errors
    ///
    /// Returns an error for a bad CPU; a fault is the inner `Err`.
    pub fn store(
        &mut self,
        cpu: usize,
        va: VirtAddr,
        value: u64,
    ) -> Result<Result<(), Fault>, VmsaError> {
        Ok(match self.translate(cpu, va, Access::Store)? {
            Ok(t) => Ok(self.mem.write_u64(t.pa, value)?),
            Err(f) => Err(f),
        })
    }
}
