//! Early hardware dirty-state updates: the walk and dirty-bit update of a
//! thread's plain store performed before the store itself, ahead of
//! earlier instructions of its thread (the litmus executor's
//! `crates/litmus/src/exec/early.rs`, whose description cites the herd7
//! relations this follows).
//!
//! herd7's VMSA model orders a hardware update (`HU = Imp & TTD & W`,
//! herdtools7 `herd/libdir/aarch64hwreqs.cat`) after far fewer events than
//! the store's write: in `local-hw-reqs` only after its own translation
//! read (`[Imp & TTD & R]; rmw; [HU]`), the reads that feed its address
//! (`[Exp & R]; addr; [HU]`), the address of an earlier explicit access
//! (`[Exp & R]; addr; [Exp]; po; [HU]`), an earlier branch (`[Exp & R];
//! ctrl; [HU]`), and what a context synchronization orders (`CSE-ob`);
//! not after the reads feeding the store's data, nor after a barrier
//! (`DSB-ob` ends in `[~(Imp & M)]`). Catalogue tests
//! `S+dmb.st+data-HUdb`, `newlob/LB+dmb.sy+dsb.sy-HU` (Allowed) show it;
//! `S+dmb.st+addr-HUdb`, `LB+dmb.sy+addr-po-HUdb` (Forbidden) the orders
//! kept.
//!
//! Operationally: a thread may perform, as a step of its own
//! ([`Path::Early`]), the walk of a plain store it has not executed yet
//! and the dirty-bit update that walk makes, when none of the instructions
//! from its next one to the store forbids it (see
//! [`Engine::early_update_paths`]); the translation is kept in `Th::pre` and the
//! store uses it when it executes ([`Path::Hoisted`]). The update's timing
//! for explicit accesses is that of any hardware update (`hw_update.rs`).
//! If the thread faults before the store (it then does not reach it on
//! the straight-line path the update assumed), or another CPU's TLBI of
//! the page completes before the store while walkers no longer see the
//! value the update wrote (herd7's `TLBI-ob` orders the store before the
//! TLBI's completion then), the execution is dropped. The thread's own
//! TLBI removes nothing: herd7 puts such a walk before the TLBI
//! (`TLBI-after`) and orders only the walk before what follows the
//! TLBI's DSB (catalogue test `coWWExp-TLBI-NExp+VMALL`, Allowed).

use std::cell::Cell;

use vmsa::descriptor::Attributes;
use vmsa::isa::{Addr, Instr, Operand, Reg, StoreOrder, ZR};
use vmsa::tlb::TlbiScope;
use vmsa::walk::{self, Access, Choice};
use vmsa::{PhysAddr, VirtAddr};

use crate::state::{EarlyWalk, State};

use super::{Engine, Path};

/// How far past the next instruction an early update may look (as the
/// litmus executor's).
const LOOKAHEAD: usize = 16;

fn bit(r: Reg) -> u64 {
    if r == ZR { 0 } else { 1u64 << (r & 63) }
}

fn op_bit(o: Operand) -> u64 {
    match o {
        Operand::Reg { reg, .. } => bit(reg),
        Operand::Imm(_) => 0,
    }
}

fn addr_bits(a: &Addr) -> u64 {
    bit(a.base) | op_bit(a.off)
}

impl<'a> Engine<'a> {
    /// Where the descriptor a walk of `va` ends at (the leaf, or the one
    /// it faults on) lives, as walkers see the tables now.
    fn leaf_desc_pa(&self, s: &State, va: u64) -> u64 {
        let last = Cell::new(0);
        let read = |pa: PhysAddr| {
            last.set(pa.0);
            self.walker_read(s, pa.0)
        };
        let g = self.sc.config.granule;
        let _ = walk::walk_each(
            g,
            VirtAddr(va),
            g.start_level(),
            self.sc.root,
            &read,
            |_| {},
        );
        last.get()
    }

    /// Appends the early walks thread `t` may perform now: one path per
    /// plain store ahead and per walk of it that would set the dirty
    /// state.
    ///
    /// The instructions from the next one on are scanned in program
    /// order. The scan stops at a context synchronization (ISB, ERET), the
    /// end of the thread, a branch other than one to the next instruction
    /// on a condition no instruction ahead feeds, an access whose address
    /// depends on an instruction ahead (`[Exp & R]; addr; [Exp]; po;
    /// [HU]`, or not known yet). A read-modify-write or exclusive access
    /// ahead does not stop it (its result registers are then fed by a
    /// read). A store is a candidate when it is to a virtual address whose
    /// descriptor no access ahead of it walks (the update is ordered after
    /// the thread's earlier walks of the descriptor, `[Imp & TTD & R];
    /// (po & same-loc); [W]`). Explicit accesses to the descriptor ahead,
    /// reads, writes or read-modify-writes, do not stop it: herd7 relates
    /// them to the update only by coherence and reads-from (`[HU]; ca; [W]
    /// | [W]; ca; [HU]`, `[PTE & Imp]; rf`), so the update may come before
    /// them (catalogue tests `coRWExpNExp`, `coRmwWExpNExp`, `coWWExpNExp`:
    /// Allowed; the litmus executor stops, conservatively, at an explicit
    /// read or an atomic access). The thread's own TLBI does not stop the
    /// scan (`TLBI-after` lets the walk be before it; its edges to a later
    /// walk of the thread go through a context synchronization, `CSE-ob`).
    pub(super) fn early_update_paths(&self, s: &State, t: usize, out: &mut Vec<Path>) {
        let th = &s.threads[t];
        // The thread's CPU manages the dirty state (its own TTHM,
        // `tthm.rs`).
        if !self.sc.threads.code[t].hw.dirty || !th.running() {
            return;
        }
        let code = &self.threads().code[t].code;
        // Registers written by instructions ahead (their values are not
        // known yet), and those among them fed by a load ahead.
        let mut unknown = 0u64;
        let mut tainted = 0u64;
        let mut flags_tainted = false;
        // Descriptors the accesses ahead read explicitly or walk.
        let mut ptes: Vec<u64> = Vec::new();
        let start = usize::from(th.pc);
        for pc in start..start + LOOKAHEAD {
            let Some(&ins) = code.get(pc) else {
                return;
            };
            if let Some(a) = ins.addr() {
                if addr_bits(a) & (unknown | tainted) != 0 {
                    return;
                }
                let va = Self::address(s, t, a);
                let plain_store = matches!(
                    ins,
                    Instr::Store {
                        order: StoreOrder::Plain,
                        ..
                    }
                );
                if self
                    .threads()
                    .physical
                    .binary_search(&(va >> self.shift))
                    .is_err()
                {
                    let d = self.leaf_desc_pa(s, va);
                    if plain_store
                        && !ptes.contains(&d)
                        && !th.pre.iter().any(|e| e.pc == pc as u16)
                    {
                        self.hoist_paths(s, t, pc as u16, va, out);
                    }
                    ptes.push(d);
                }
            }
            let was = tainted;
            let src_t = |r: Reg| bit(r) & was != 0;
            let op_t = |o: Operand| op_bit(o) & was != 0;
            let mut set = |d: Reg, t: bool| {
                unknown |= bit(d);
                tainted = (tainted & !bit(d)) | if t { bit(d) } else { 0 };
            };
            match ins {
                Instr::Tlbi { .. } => {}
                Instr::Isb | Instr::Eret | Instr::Halt => return,
                // Their results come from a read (the status of a
                // store-exclusive from its load-exclusive's).
                Instr::StoreExclusive { status: dst, .. }
                | Instr::Swp { dst, .. }
                | Instr::Cas { expected: dst, .. }
                | Instr::Amo { dst, .. } => set(dst, true),
                Instr::B { cond, target } => {
                    if cond.is_none() || usize::from(target) != pc + 1 || flags_tainted {
                        return;
                    }
                }
                Instr::Cbz { reg, target, .. } => {
                    if usize::from(target) != pc + 1 || src_t(reg) || bit(reg) & unknown != 0 {
                        return;
                    }
                }
                Instr::Cmp { lhs, rhs } => flags_tainted = src_t(lhs) || op_t(rhs),
                Instr::Mov { dst, src, .. } => set(dst, op_t(src)),
                Instr::Alu { dst, lhs, rhs, .. } => set(dst, src_t(lhs) || op_t(rhs)),
                Instr::Csel {
                    dst,
                    if_true,
                    if_false,
                    ..
                } => set(dst, src_t(if_true) || src_t(if_false) || flags_tainted),
                Instr::Cset { dst, .. } => set(dst, flags_tainted),
                Instr::Adr { dst, .. } => set(dst, false),
                Instr::Load { dst, .. } => set(dst, true),
                Instr::Store { .. }
                | Instr::Dmb { .. }
                | Instr::Dsb { .. }
                | Instr::Nop
                | Instr::MsrElr { .. } => {}
            }
        }
    }

    /// Appends a path per walk of thread `t`'s store at `pc` to `va` that
    /// would set the dirty state now (AP\[2\] cleared, DBM set: R_WHZWS's
    /// "writable with DBM") and translate without a fault.
    fn hoist_paths(&self, s: &State, t: usize, pc: u16, va: u64, out: &mut Vec<Path>) {
        let cpu = self.thread_cpu(t);
        for choice in self.choices(s, cpu, va, Access::Store) {
            let dirty = choice.hw_update.is_some_and(|u| {
                u.expected.0 & Attributes::READ_ONLY.bits() != 0
                    && u.new.0 & Attributes::READ_ONLY.bits() == 0
                    // The update is an atomic read-modify-write of the
                    // descriptor: with a store to it still on its way to
                    // the walkers, the walk waits (as `commit` has it).
                    && !s.pending.iter().any(|p| p.pa == u.pa)
            });
            if dirty && choice.result.is_ok() {
                out.push(Path::Early { pc, va, choice });
            }
        }
    }

    /// Runs [`Path::Early`]: the walk and its update now, the translation
    /// kept for the store at `pc`.
    pub(super) fn run_early(
        &self,
        s: &mut State,
        t: usize,
        pc: u16,
        va: u64,
        choice: &Choice,
        log: Option<&mut String>,
    ) -> bool {
        let cpu = self.thread_cpu(t);
        if let Some(l) = log {
            let text = self.threads().code[t]
                .text
                .get(usize::from(pc))
                .map_or("", String::as_str);
            l.push_str(&format!(
                "cpu{cpu}: walk and dirty-bit update for `{text}` ahead of it"
            ));
        }
        let (Ok(tr), Some(u)) = (choice.result, choice.hw_update) else {
            return false;
        };
        if !self.thread_commit(s, cpu, choice, u8::MAX) {
            return false;
        }
        // herd7's BBM bookkeeping sees the update as any other (`bbm.rs`).
        self.bbm_hw_update(s, cpu, choice);
        let pre = &mut s.threads[t].pre;
        let i = pre.partition_point(|e| e.pc < pc);
        pre.insert(
            i,
            EarlyWalk {
                pc,
                va,
                pa: tr.pa.0,
                desc_pa: u.pa.0,
                desc: u.new.0,
            },
        );
        true
    }

    /// The early translation of thread `t`'s next instruction, if it has
    /// one.
    pub(super) fn hoisted(&self, s: &State, t: usize) -> Option<EarlyWalk> {
        let th = &s.threads[t];
        th.pre.iter().find(|e| e.pc == th.pc).copied()
    }

    /// Takes the early translation of thread `t`'s next instruction: the
    /// physical address its store writes.
    pub(super) fn take_hoisted(&self, s: &mut State, t: usize) -> Option<u64> {
        let th = &mut s.threads[t];
        let i = th.pre.iter().position(|e| e.pc == th.pc)?;
        Some(th.pre.remove(i).pa)
    }

    /// Tells whether thread `t` may take a fault at `pc`: not while it
    /// holds an early translation for a later instruction, which it would
    /// then not reach on the path the update assumed.
    pub(super) fn pre_survives_fault(&self, s: &State, t: usize, pc: u16) -> bool {
        !s.threads[t].pre.iter().any(|e| e.pc > pc)
    }

    /// Tells whether the TLBIs `cpu` is about to complete leave every
    /// other thread's early translations usable: not if one covers an
    /// early translation whose descriptor walkers no longer see as the
    /// update wrote it (the store would be performed after the TLBI with
    /// a translation it removed).
    pub(super) fn pre_survives_tlbis(&self, s: &State, cpu: usize) -> bool {
        let covers = |va: u64| {
            s.tlbis.iter().any(|tl| {
                tl.cpu == cpu
                    && tl.op.scope == TlbiScope::Broadcast
                    && (!tl.op.kind.by_va() || tl.op.va.0 >> self.shift == va >> self.shift)
            })
        };
        s.threads.iter().enumerate().all(|(t, th)| {
            self.thread_cpu(t) == cpu
                || th
                    .pre
                    .iter()
                    .all(|e| !covers(e.va) || self.walker_read(s, e.desc_pa) == e.desc)
        })
    }
}
