//! The executor: [`Kernel::run`] runs a program's instructions on the
//! machine (descriptor stores and CASes, barriers, TLBIs, allocations,
//! frees, copies, struct page writes) with the rule checker watching; and
//! what a batch uses to run one program and undo it when an allocation
//! fails.

use vmsa::{Attributes, Descriptor, DsbKind, PhysAddr, Tlbi, VirtAddr};

use crate::program::{Desc, Instr, Page, Program, Regs};

use super::{Kernel, MmError, leaf_key};

impl Kernel {
    pub(super) fn page_pa(&self, p: Page, regs: &Regs) -> Result<u64, MmError> {
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

    pub(super) fn encode(
        &self,
        d: &Desc,
        va: u64,
        level: u8,
        regs: &Regs,
    ) -> Result<Descriptor, MmError> {
        // A block maps every page of its size, so all of them must lie in
        // the allocation it names (a page of it is checked by `page_pa`).
        if let Desc::Leaf {
            page: Page::Reg(r, off),
            ..
        } = *d
            && level < 3
        {
            let g = self.geo.granule;
            regs.pages(r, off, g.level_size(level) >> g.page_shift())
                .map_err(MmError::Config)?;
        }
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
                Instr::Tlbi { kind, scope, va } => {
                    let op = Tlbi::scoped(*kind, *scope, VirtAddr(*va));
                    self.machine.tlbi(cpu, op)?;
                    *self.costs.tlbi.entry(op.mnemonic()).or_default() += 1;
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

    pub(super) fn run_fresh(&mut self, prog: &Program) -> Result<Regs, MmError> {
        let mut regs = Regs::default();
        self.run(prog, &mut regs)?;
        Ok(regs)
    }

    pub(super) fn flush_all(&mut self) -> Result<(), MmError> {
        let mut p = Program::default();
        p.flush_tlb_all();
        self.run_fresh(&p).map(|_| ())
    }

    /// Runs the one-instruction program `ins` when `when` holds.
    pub(super) fn mark(&mut self, when: bool, ins: Instr) -> Result<(), MmError> {
        if when {
            self.run_fresh(&Program { instrs: vec![ins] })?;
        }
        Ok(())
    }

    /// Frees the allocations a failed program made before failing.
    pub(super) fn undo_allocs(&mut self, prog: &Program, regs: &Regs) -> Result<(), MmError> {
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
    pub(super) fn run_or_undo(&mut self, prog: &Program) -> Result<Option<Regs>, MmError> {
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
}
