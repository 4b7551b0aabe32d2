//! Batches: [`Kernel::optimize`] and [`Kernel::restore`] as
//! `hugetlb_vmemmap_optimize_folios()` and
//! `hugetlb_vmemmap_restore_folios()` do them (mm/hugetlb_vmemmap.c), phase
//! by phase with rollback of the huge pages whose allocations fail; and the
//! same batch for one huge page as one program.

use vmsa::{DsbKind, PhysAddr, VmsaError};

use crate::program::{Instr, Program, Regs};
use crate::protocol::{Folio, Protocol};
use crate::vmemmap::{struct_page_va, vmemmap_leaf_level};

use super::{Kernel, MmError, SPLIT_REG};

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

impl Kernel {
    pub(super) fn folio(&mut self, i: usize) -> Result<Folio, MmError> {
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

    /// Returns the VAs of the vmemmap blocks that map huge page `i`'s
    /// struct pages and are still blocks (none where the vmemmap is mapped
    /// with base pages).
    pub(super) fn blocks_to_split(&mut self, i: usize) -> Result<Vec<u64>, MmError> {
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

    /// Runs the phases after the first of every plan of a batch: one
    /// `flush_tlb_all()` after the first phase, then phase k of every plan
    /// and one flush, for each k (the deferred flushes of
    /// `hugetlb_vmemmap_optimize_folios()`).
    pub(super) fn run_later_phases<'a>(
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

    pub(super) fn alloc_shared_tail(&mut self, which: &[usize]) -> Result<(), MmError> {
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
}
