//! The threads' instructions ([`crate::thread`]): one instruction of the
//! typed A64 set per step, in program order, on the same memory, pending
//! descriptor stores, pending TLBIs, TLBs and translations as the updater
//! and the workloads.
//!
//! What each instruction does (sequentially consistent, as the explorer's
//! other CPUs):
//! - a load, store or read-modify-write of a virtual address is
//!   translated as a workload's access is: one path per translation
//!   choice of [`vmsa::translate::Translator`] (TLB hits, walks, hardware
//!   AF/dirty updates, faults); a physical address is accessed directly;
//! - a hardware AF/dirty update is seen by walkers at once and by explicit
//!   accesses once it reaches memory (`hw_update.rs`); a plain store's walk
//!   and dirty-bit update may be performed ahead of it (`early.rs`);
//! - a store to a translation table is a descriptor store: loads see it at
//!   once; the other CPUs' walkers once a DMB (not LD) or a release of its
//!   writer orders it before later stores, or another CPU reads it; every
//!   walker when it propagates, and at the latest at the writer's next DSB
//!   other than DSB LD (`views.rs`);
//! - `DSB` (not LD) makes the thread's descriptor stores visible to
//!   walkers; a full DSB also completes its TLBIs on every CPU (R_DDMVT's
//!   sequence: the DSB after the TLBI waits for it) and brings its hardware
//!   updates to memory;
//! - `TLBI` waits, until completed, on every CPU (broadcast) or on the
//!   issuer (local); each CPU may lose the entries before (an eviction),
//!   and a thread's walker its early-walk values in its scope
//!   ([`super::Step::Invalidate`]);
//! - a walk is not ordered after the thread's earlier instructions until a
//!   context synchronization event (`ISB`, `ERET`, a fault): it may use a
//!   value its walker saw since (early walks, `views.rs`); a barrier or an
//!   acquire ends the faults a TLBI left possible;
//! - a fault is recorded as herd7 records it; the thread then runs its
//!   handler (ELR = the faulting instruction), or does what
//!   [`FaultMode`] says;
//! - a counted backward branch taken more than [`Threads::unroll`] times
//!   to one target cuts the execution (the thread stops, marked cut);
//! - descriptor stores, hardware updates, DSBs and TLBIs also feed herd7's
//!   BBM bookkeeping (`bbm.rs`: `Warning-BBM-expected`).

use vmsa::isa::{
    Addr, Alu, AmoOp, BarrierKind, BranchOn, CondCode, Exclusivity, Instr, Operand, RegWidth,
    StoreOrder, TlbiScope as IsaScope, TlbiShareability, Width, ZR,
};
use vmsa::machine::{PendingStore, PendingTlbi};
use vmsa::tlb::{Tlbi, TlbiKind, TlbiScope};
use vmsa::walk::{Access, Choice, FaultKind};
use vmsa::{PhysAddr, VirtAddr};

use crate::state::{State, ThStatus};
use crate::thread::{CODE_BASE, FaultMode, Final, ThreadFault, Threads};

use super::Engine;

mod bbm;
mod early;
mod hw_update;
pub(super) mod tthm;
mod views;

/// One way a thread's next instruction may execute.
#[allow(clippy::large_enum_variant)] // a few per instruction, consumed at once
pub(super) enum Path {
    /// No translation (a register, branch or barrier instruction, an
    /// access to a physical address), or a store-exclusive that fails.
    Plain,
    /// Through translation choice `choice` of the access.
    Via {
        /// The access.
        access: Access,
        /// Which choice.
        choice: Choice,
    },
    /// A pending hardware update of the thread reaches memory
    /// (`hw_update.rs`); the thread's position does not move.
    HuFlush {
        /// Its index in `Th::hu`.
        index: u8,
    },
    /// The walk and dirty-bit update of the store at `pc`, ahead of it
    /// (`early.rs`).
    Early {
        /// The store.
        pc: u16,
        /// The virtual address it stores to.
        va: u64,
        /// The walk.
        choice: Choice,
    },
    /// The next instruction, a store, through its early translation.
    Hoisted,
}

fn holds(cc: CondCode, z: bool) -> bool {
    match cc {
        CondCode::Eq => z,
        CondCode::Ne => !z,
    }
}

/// Truncates `v` to `w` (as the litmus executor does: a location holds
/// the value last stored, narrowed to the store's width).
fn narrow(v: u64, w: Width) -> u64 {
    match w {
        Width::Double => v,
        w => v & ((1u64 << (8 * u32::from(w.bytes()))) - 1),
    }
}

impl<'a> Engine<'a> {
    fn threads(&self) -> &Threads {
        &self.sc.threads
    }

    /// Returns thread `t`'s CPU number.
    pub(super) fn thread_cpu(&self, t: usize) -> usize {
        1 + self.sc.workloads.len() + t
    }

    fn reg(s: &State, t: usize, r: u8) -> u64 {
        if r == ZR {
            return 0;
        }
        s.threads[t].regs.get(usize::from(r)).copied().unwrap_or(0)
    }

    fn set_reg(s: &mut State, t: usize, r: u8, v: u64) {
        if r == ZR {
            return;
        }
        let regs = &mut s.threads[t].regs;
        let r = usize::from(r);
        if r >= regs.len() {
            regs.resize(r + 1, 0);
        }
        regs[r] = v;
    }

    fn operand(s: &State, t: usize, o: Operand) -> u64 {
        match o {
            Operand::Imm(n) => n,
            Operand::Reg { reg, width } => {
                let v = Self::reg(s, t, reg);
                if width == RegWidth::W {
                    v & 0xffff_ffff
                } else {
                    v
                }
            }
        }
    }

    /// The address an addressing mode names (a W offset register is
    /// sign-extended, `SXTW`).
    fn address(s: &State, t: usize, a: &Addr) -> u64 {
        let base = Self::reg(s, t, a.base);
        let off = match a.off {
            Operand::Imm(n) => n,
            Operand::Reg { reg, width } => {
                let v = Self::reg(s, t, reg);
                if width == RegWidth::W {
                    (v as u32 as i32) as i64 as u64
                } else {
                    v
                }
            }
        };
        base.wrapping_add(off)
    }

    /// Lists the steps thread `t` may take, in a fixed order (the step's
    /// index names one): the ways its next instruction may execute (none
    /// once it has stopped), its pending hardware updates reaching memory,
    /// its early walks.
    pub(super) fn thread_paths(&self, s: &State, t: usize) -> Vec<Path> {
        let mut out = if s.threads[t].running() {
            self.instr_paths(s, t)
        } else {
            Vec::new()
        };
        self.hu_paths(s, t, &mut out);
        self.early_update_paths(s, t, &mut out);
        out
    }

    /// Lists the ways thread `t`'s next instruction may execute.
    fn instr_paths(&self, s: &State, t: usize) -> Vec<Path> {
        let th = &self.threads().code[t];
        let Some(ins) = th.code.get(usize::from(s.threads[t].pc)) else {
            return vec![Path::Plain];
        };
        let Some(a) = ins.addr() else {
            return vec![Path::Plain];
        };
        if self.hoisted(s, t).is_some() {
            return vec![Path::Hoisted];
        }
        let va = Self::address(s, t, a);
        let accesses: &[Access] = match ins {
            Instr::Load { .. } => &[Access::Load],
            // A CAS whose comparison fails is a read (no write permission
            // needed); one that succeeds is a write (as the litmus
            // executor has it).
            Instr::Cas { .. } => &[Access::Load, Access::Store],
            _ => &[Access::Store],
        };
        let mut out = Vec::new();
        if matches!(ins, Instr::StoreExclusive { .. }) {
            // A failed store-exclusive writes nothing and needs no
            // translation.
            out.push(Path::Plain);
        }
        if self
            .threads()
            .physical
            .binary_search(&(va >> self.shift))
            .is_ok()
        {
            out.extend(accesses.iter().map(|_| Path::Plain));
            return out;
        }
        let cpu = self.thread_cpu(t);
        let dirty = Self::addr_dirty(s, t, a);
        for &access in accesses {
            for choice in self.choices(s, cpu, va, access) {
                if !self.threads().conflict_aborts
                    && matches!(&choice.result, Err(f) if f.kind == FaultKind::TlbConflict)
                {
                    continue;
                }
                out.push(Path::Via { access, choice });
            }
            self.early_walk_paths(s, t, va, access, dirty, &mut out);
        }
        out
    }

    /// Runs thread `t`'s next instruction along path `k` of
    /// [`Engine::thread_paths`]. Returns false when that path is not
    /// possible (a CAS whose comparison goes the other way, a hardware
    /// update that found the descriptor changed, an execution herd7
    /// discards).
    pub(super) fn run_thread(
        &self,
        s: &mut State,
        t: usize,
        k: usize,
        log: Option<&mut String>,
    ) -> bool {
        let mut paths = self.thread_paths(s, t);
        if k >= paths.len() {
            return false;
        }
        let path = paths.swap_remove(k);
        match path {
            Path::HuFlush { index } => return self.run_hu_flush(s, t, usize::from(index), log),
            Path::Early { pc, va, choice } => return self.run_early(s, t, pc, va, &choice, log),
            Path::Plain | Path::Via { .. } | Path::Hoisted => {}
        }
        let pc = usize::from(s.threads[t].pc);
        let th = &self.threads().code[t];
        if let Some(l) = log {
            let text = th.text.get(pc).map_or("(end)", String::as_str);
            l.push_str(&format!("cpu{}: {text}", self.thread_cpu(t)));
        }
        let Some(&ins) = th.code.get(pc) else {
            s.threads[t].status = ThStatus::Done;
            return true;
        };
        // The early-walk bookkeeping before the instruction, when it has
        // revoked values (`views.rs`, `after_instr`).
        let before = (!s.threads[t].views.revoked.is_empty()).then(|| s.threads[t].views.clone());
        let ok = self.run_instr(s, t, pc, ins, path, k);
        if ok && let Some(before) = before {
            Self::after_instr(&before, s, t, &ins);
        }
        ok
    }

    /// Runs instruction `ins` at `pc` of thread `t` along `path` (index
    /// `k`).
    fn run_instr(
        &self,
        s: &mut State,
        t: usize,
        pc: usize,
        ins: Instr,
        path: Path,
        k: usize,
    ) -> bool {
        if let Some(a) = ins.addr() {
            return self.thread_access(s, t, ins, a, path, k);
        }
        let mut next = pc + 1;
        let cpu = self.thread_cpu(t);
        match ins {
            Instr::Halt => {
                s.threads[t].status = ThStatus::Done;
                return true;
            }
            Instr::Nop => {}
            // A context synchronization event: later walks are ordered
            // after it (`views.rs`).
            Instr::Isb => s.threads[t].views.clear(),
            Instr::Dmb { kind } => {
                // Later walks are ordered after the barrier: no fault from
                // a revoked value any more.
                s.threads[t].views.revoked.clear();
                if kind != BarrierKind::Ld {
                    // The descriptor stores before the barrier are ordered
                    // before the stores after it: they reach the other
                    // CPUs' walkers now (`views.rs`).
                    self.publish_stores(s, |p| p.cpu == cpu);
                }
            }
            Instr::Dsb { kind } => {
                s.threads[t].views.revoked.clear();
                if kind != BarrierKind::Ld {
                    self.drain(s, cpu);
                }
                if kind == BarrierKind::Full {
                    if !self.pre_survives_tlbis(s, cpu) {
                        return false;
                    }
                    self.complete_tlbis_of(s, cpu);
                    self.flush_hus_of(s, t);
                }
                self.bbm_dsb(s, t, kind);
            }
            Instr::Tlbi {
                scope,
                shareability,
            } => {
                let (kind, va) = match scope {
                    IsaScope::All => (TlbiKind::Vmalle1, 0),
                    // The register holds VA[55:12]: the page number of a
                    // TTBR1 address keeps its top bits, so shifting back
                    // gives the address.
                    IsaScope::Page(r) => (TlbiKind::Vaae1, Self::reg(s, t, r) << 12),
                };
                let (scope, waiting) = match shareability {
                    TlbiShareability::Broadcast => {
                        (TlbiScope::Broadcast, (u64::MAX >> (64 - s.tlbs.len())) & !1)
                    }
                    TlbiShareability::Local => (TlbiScope::Local, 1 << cpu),
                };
                let op = Tlbi::scoped(kind, scope, VirtAddr(va));
                self.bbm_tlbi(s, t, &op);
                s.tlbis.push(PendingTlbi { cpu, op, waiting });
            }
            Instr::Mov { dst, width, src } => {
                let v = Self::operand(s, t, src);
                let v = if width == RegWidth::W {
                    v & 0xffff_ffff
                } else {
                    v
                };
                Self::set_reg(s, t, dst, v);
            }
            Instr::Alu {
                op,
                dst,
                width,
                lhs,
                rhs,
            } => {
                let (a, b) = (Self::reg(s, t, lhs), Self::operand(s, t, rhs));
                let r = match op {
                    Alu::Add => a.wrapping_add(b),
                    Alu::Sub => a.wrapping_sub(b),
                    Alu::Eor => a ^ b,
                    Alu::And => a & b,
                    Alu::Orr => a | b,
                    Alu::Bic => a & !b,
                    Alu::Lsr => a.checked_shr(b as u32).unwrap_or(0),
                    Alu::Lsl => a.checked_shl(b as u32).unwrap_or(0),
                };
                let r = if width == RegWidth::W {
                    r & 0xffff_ffff
                } else {
                    r
                };
                Self::set_reg(s, t, dst, r);
            }
            Instr::Cmp { lhs, rhs } => {
                s.threads[t].z = Self::reg(s, t, lhs) == Self::operand(s, t, rhs);
            }
            Instr::Csel {
                dst,
                if_true,
                if_false,
                cond,
            } => {
                let r = if holds(cond, s.threads[t].z) {
                    if_true
                } else {
                    if_false
                };
                let v = Self::reg(s, t, r);
                Self::set_reg(s, t, dst, v);
            }
            Instr::Cset { dst, cond } => {
                let v = u64::from(holds(cond, s.threads[t].z));
                Self::set_reg(s, t, dst, v);
            }
            Instr::B { cond, target } => {
                if cond.is_none_or(|c| holds(c, s.threads[t].z)) {
                    next = self.jump(s, t, pc, target);
                }
            }
            Instr::Cbz { on, reg, target } => {
                let zero = Self::reg(s, t, reg) == 0;
                if zero == (on == BranchOn::Zero) {
                    next = self.jump(s, t, pc, target);
                }
            }
            Instr::Adr { dst, target } => {
                Self::set_reg(s, t, dst, CODE_BASE | (t as u64) << 16 | u64::from(target));
            }
            Instr::MsrElr { src } => {
                let v = Self::reg(s, t, src);
                if v & !0xffff != CODE_BASE | (t as u64) << 16 {
                    // ELR set to no label of the thread: the litmus reader
                    // refuses such a test; no execution goes on here.
                    return false;
                }
                s.threads[t].elr = v as u16;
            }
            Instr::Eret => {
                // An exception return synchronizes context.
                s.threads[t].views.clear();
                next = usize::from(s.threads[t].elr);
            }
            Instr::Load { .. }
            | Instr::Store { .. }
            | Instr::StoreExclusive { .. }
            | Instr::Swp { .. }
            | Instr::Cas { .. }
            | Instr::Amo { .. } => unreachable!("an access has an address"),
        }
        if s.threads[t].running() {
            s.threads[t].pc = next as u16;
        }
        true
    }

    /// Takes a branch from `pc` to `target`, counting it if it is a
    /// counted backward branch; returns where the thread goes on.
    fn jump(&self, s: &mut State, t: usize, pc: usize, target: u16) -> usize {
        if self.threads().code[t]
            .counted
            .get(pc)
            .copied()
            .unwrap_or(false)
        {
            let bound = self.threads().unroll;
            let th = &mut s.threads[t];
            let i = th.loops.partition_point(|e| e.0 < target);
            match th.loops.get_mut(i) {
                Some(e) if e.0 == target => {
                    if e.1 >= bound {
                        th.status = ThStatus::Cut;
                    } else {
                        e.1 += 1;
                    }
                }
                _ => th.loops.insert(i, (target, 1)),
            }
        }
        usize::from(target)
    }

    /// A full DSB on `cpu`: its TLBIs complete on every CPU still waiting
    /// for them.
    fn complete_tlbis_of(&self, s: &mut State, cpu: usize) {
        let mut k = 0;
        while k < s.tlbis.len() {
            if s.tlbis[k].cpu != cpu {
                k += 1;
                continue;
            }
            let tl = s.tlbis.remove(k);
            for c in 0..s.tlbs.len() {
                if tl.waiting & (1 << c) != 0 {
                    s.tlbs[c].invalidate(&tl.op);
                    self.revoke(s, cpu, &tl.op, c);
                }
            }
        }
    }

    /// Tells whether `pa` lies in a translation table.
    fn is_table(&self, pa: u64) -> bool {
        self.threads()
            .tables
            .binary_search(&(pa >> self.shift))
            .is_ok()
    }

    /// Reads the location at physical address `pa`.
    fn load_pa(&self, s: &State, pa: u64) -> u64 {
        self.explicit_read(s, pa)
    }

    /// Writes `v` at physical address `pa` for `cpu`: a descriptor store
    /// if `pa` lies in a table; other CPUs' exclusive monitors on it are
    /// cleared.
    fn store_pa(&self, s: &mut State, cpu: usize, pa: u64, v: u64) {
        self.flush_hus_at(s, pa);
        let prev = self.read(s, pa);
        s.mem.write(pa, v);
        let me = cpu - self.thread_cpu(0);
        if self.is_table(pa) {
            s.pending.push(PendingStore {
                cpu,
                pa: PhysAddr(pa),
                prev,
                value: v,
                walkers: 0,
            });
            self.bbm_write(s, me, pa, prev, v);
        }
        for (i, th) in s.threads.iter_mut().enumerate() {
            if i != me && th.excl == Some(pa) {
                th.excl = None;
            }
        }
    }

    /// Runs a memory access along `path` (index `k`).
    fn thread_access(
        &self,
        s: &mut State,
        t: usize,
        ins: Instr,
        a: &Addr,
        path: Path,
        k: usize,
    ) -> bool {
        let cpu = self.thread_cpu(t);
        let pc = s.threads[t].pc;
        let va = Self::address(s, t, a);
        if Self::addr_dirty(s, t, a) {
            // Ordered after the read its address depends on: no revoked
            // value serves it, nor a later access (`views.rs`).
            s.threads[t].views.revoked.clear();
        }
        if let Instr::Store {
            order: StoreOrder::Release,
            ..
        } = ins
        {
            // A release orders every earlier store before it.
            self.publish_stores(s, |p| p.cpu == cpu);
        }
        if let Instr::StoreExclusive { status, .. } = ins
            && k == 0
        {
            Self::set_reg(s, t, status, 1);
            s.threads[t].excl = None;
            s.threads[t].pc = pc + 1;
            return true;
        }
        let (pa, access) = match path {
            Path::Plain => {
                // A physical access: which of a CAS's two paths.
                let cas_write = matches!(ins, Instr::Cas { .. }) && k == 1;
                (
                    va,
                    if cas_write {
                        Access::Store
                    } else {
                        Access::Load
                    },
                )
            }
            Path::Hoisted => match self.take_hoisted(s, t) {
                Some(pa) => (pa, Access::Store),
                None => return false,
            },
            Path::HuFlush { .. } | Path::Early { .. } => return false,
            Path::Via { access, choice } => {
                if !self.thread_commit(s, cpu, &choice, u8::MAX) {
                    return false;
                }
                self.bbm_hw_update(s, cpu, &choice);
                match choice.result {
                    Ok(tr) => (tr.pa.0, access),
                    Err(f) => return self.thread_fault(s, t, va, f.kind),
                }
            }
        };
        let writes = match ins {
            Instr::Cas { .. } => access == Access::Store,
            _ => !matches!(ins, Instr::Load { .. }),
        };
        if writes {
            // A write: the pending hardware updates of the location reach
            // memory before it (`hw_update.rs`), before its read for a
            // read-modify-write.
            self.flush_hus_at(s, pa);
        }
        match ins {
            Instr::Load {
                dst,
                width,
                exclusive,
                ..
            } => {
                let v = narrow(self.load_pa(s, pa), width);
                Self::set_reg(s, t, dst, v);
                if exclusive == Exclusivity::Exclusive {
                    s.threads[t].excl = Some(pa);
                }
                if self.is_table(pa) {
                    // A descriptor store another CPU has read is visible
                    // to every observer (other-multi-copy atomicity),
                    // walkers included; only its writer's may lag.
                    self.publish_stores(s, |p| p.pa.0 == pa && p.cpu != cpu);
                }
            }
            Instr::Store { src, width, .. } => {
                let v = narrow(Self::reg(s, t, src), width);
                self.store_pa(s, cpu, pa, v);
            }
            Instr::StoreExclusive {
                status, src, width, ..
            } => {
                if s.threads[t].excl != Some(pa) {
                    return false;
                }
                let v = narrow(Self::reg(s, t, src), width);
                self.store_pa(s, cpu, pa, v);
                Self::set_reg(s, t, status, 0);
                s.threads[t].excl = None;
            }
            Instr::Swp {
                src, dst, width, ..
            } => {
                let v = narrow(Self::reg(s, t, src), width);
                let old = narrow(self.load_pa(s, pa), width);
                self.store_pa(s, cpu, pa, v);
                Self::set_reg(s, t, dst, old);
            }
            Instr::Amo {
                op,
                src,
                dst,
                width,
                ..
            } => {
                let x = narrow(Self::reg(s, t, src), width);
                let old = narrow(self.load_pa(s, pa), width);
                let r = match op {
                    AmoOp::Add => old.wrapping_add(x),
                    AmoOp::Clr => old & !x,
                    AmoOp::Set => old | x,
                    AmoOp::Eor => old ^ x,
                };
                self.store_pa(s, cpu, pa, narrow(r, width));
                Self::set_reg(s, t, dst, old);
            }
            Instr::Cas {
                expected,
                new,
                width,
                ..
            } => {
                let cmp = narrow(Self::reg(s, t, expected), width);
                let old = narrow(self.load_pa(s, pa), width);
                let succeeds = old == cmp;
                if succeeds != (access == Access::Store) {
                    return false;
                }
                if succeeds {
                    let v = narrow(Self::reg(s, t, new), width);
                    self.store_pa(s, cpu, pa, v);
                }
                Self::set_reg(s, t, expected, old);
            }
            _ => unreachable!("only accesses have an address"),
        }
        s.threads[t].pc = pc + 1;
        true
    }

    /// Takes a fault of thread `t` at `va`: recorded, then the handler or
    /// the fault mode (herdtools7 `herd/mem.ml`, `add_fault`). Returns
    /// false when herd7 discards the execution (a second fault under
    /// [`FaultMode::Handled`]).
    fn thread_fault(&self, s: &mut State, t: usize, va: u64, kind: vmsa::FaultKind) -> bool {
        let pc = s.threads[t].pc;
        if !self.pre_survives_fault(s, t, pc) {
            return false;
        }
        let f = ThreadFault {
            thread: t as u8,
            pc,
            va,
            kind,
        };
        if let Err(i) = s.faults.binary_search(&f) {
            s.faults.insert(i, f);
        }
        let th = &mut s.threads[t];
        match (self.threads().code[t].handler, self.threads().fault_mode) {
            (Some(h), _) => {
                th.elr = pc;
                th.pc = h;
            }
            (None, FaultMode::Fatal) => th.status = ThStatus::Done,
            (None, FaultMode::Skip) => th.pc = pc + 1,
            (None, FaultMode::Handled) if th.retried => return false,
            (None, FaultMode::Handled) => th.retried = true,
        }
        // The fault is a synchronous exception entry in every mode
        // (herdtools7 `herd/AArch64Sem.ml`, `mk_fault`): a context
        // synchronization event for what the thread does next.
        th.views.clear();
        true
    }

    /// Returns what a final state shows, for a scenario with threads.
    pub fn final_of(&self, s: &State) -> Option<Final> {
        if self.threads().code.is_empty() {
            return None;
        }
        Some(Final {
            regs: s.threads.iter().map(|t| t.regs.clone()).collect(),
            words: self
                .threads()
                .observe
                .iter()
                .map(|&pa| self.read(s, pa))
                .collect(),
            faults: s.faults.clone(),
            cut: s.threads.iter().any(|t| t.status == ThStatus::Cut),
        })
    }
}
