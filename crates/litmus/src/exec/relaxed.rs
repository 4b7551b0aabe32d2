//! The relaxed mode: an operational approximation of the Armv8 ordering of
//! ordinary memory accesses.
//!
//! Each thread fetches its instructions in program order into a window
//! (`Cpu::rob`, at most [`WINDOW`] entries) and *commits* any fetched
//! instruction whose predecessors in preserved program order have
//! committed. A commit is the step of the SC executor for that instruction
//! alone (a load reads memory, a store writes it, an access translates
//! then), so memory stays multi-copy atomic: a store is seen by every other
//! thread when it commits. Armv8 is other-multi-copy atomic (Arm ARM B2.3,
//! "Other-multi-copy atomicity", since Armv8.0 as revised in 2017); the one
//! non-MCA behaviour, a thread reading its own store early, is modelled by
//! forwarding: a load may take its value from an earlier, uncommitted store
//! of its thread to the same address (herd7's `lrs`, local read successor).
//!
//! An instruction `j` may commit while an earlier fetched instruction `i`
//! has not when none of these holds (herd7 `aarch64.cat`, herdtools7
//! `herd/libdir/aarch64.cat`: `ob = (obs | dob | aob | bob)+`):
//!
//! - *registers*: `j` reads a register (or the flags, or the exclusive
//!   monitor) `i` writes (this gives `addr`, `data` and the register part of
//!   `ctrl` in `dob`), or writes one `i` reads or writes (no renaming: an
//!   under-approximation);
//! - *coherence* (`po-loc` within `ob` via `coe`/`fre`, and Arm ARM B2.3
//!   "Coherence order"): both access memory and may touch the same
//!   location (a virtual address may alias every physical page its
//!   descriptor may name), or `i`'s address is not known yet (`addr; po;
//!   [W]` in `dob`, and a possible alias), except the forwarding above and
//!   a plain load passing a plain load whose address is not known yet,
//!   checked for read-read coherence when that load commits
//!   (`owe_reads_past`);
//! - *control* (`dob`: `ctrl; [W]`): `i` is a conditional branch and `j`
//!   writes memory (a store may also not *fault* before the branch:
//!   catalogue test `MP+rel+pickctrlW-mmufault-po`, Forbidden);
//! - *barriers* (`bob`): `po; [dmb.full]; po` (a full DMB is ordered with
//!   every access both ways), `[R]; po; [dmb.ld]; po`, `[W]; po; [dmb.st];
//!   po; [W]`, `[A | Q]; po` (acquire, acquirePC: LDAR, LDAPR, the A forms
//!   of atomics), `po; [L]` (release: STLR, the L forms), `[L]; po; [A]`;
//! - *atomics* (`aob`: `rmw`): a load-exclusive and its store-exclusive
//!   use the exclusive monitor (a register here) and the same location; an
//!   atomic read-modify-write is one commit.
//!
//! A store whose data is not ready but whose address is may still commit
//! as a *fault* (its translation needs no data: herd7's fault events are
//! not ordered by `data`, catalogue test `MP+rel+pickdata-mmufault_db-po`,
//! Allowed); the exception is taken precisely: a faulting commit is
//! dropped when a later instruction has committed, the window is cut
//! after it and fetching continues at the handler, whose instructions may
//! then commit before the faulting thread's earlier ones (exception entry
//! is context synchronization, not a barrier).
//!
//! Fetching stops at an uncommitted branch (except one to the next
//! instruction, the litmus idiom for a control dependency, whose two
//! directions meet), ERET, DSB, ISB or TLBI. DSB LD/ST order as DMB LD/ST
//! (herd7's `dmb.ld`/`dmb.st` include them); an ISB waits for every
//! earlier instruction but the accesses, and for the translations of the
//! accesses (stronger than herd7's `(ctrl | addr; po); [ISB]; po; [R]`,
//! which needs only the branches and address computations, and
//! `CSE-ob`); a TLBI waits for the earlier barriers, TLBIs and control
//! dependencies, and so for the earlier stores only through a DSB. The
//! *serializing* instructions commit only when nothing earlier is pending
//! and before anything later is fetched: DSB SY/ISH (Arm ARM B2.3, "Data
//! Synchronization Barrier") and the end of a thread. ERET and MSR ELR_EL1 are ordered through ELR_EL1 only (a
//! register here, also written by taking a fault): exception return is a
//! context synchronization event, not a barrier (catalogue test
//! `R-via_fault_STR`, Allowed); a handler's MSR ELR_EL1 supersedes the
//! exception's write, so its ERET need not wait for the fault, only for the
//! faulting walk, performed before the handler's first access or ERET
//! commits (`walk_before_handler`; `R-via_fault_STR-2`, Allowed). So stronger orders, never weaker, are used
//! where the approximation is unsure: it may under-allow, and where it
//! allows more than herd7 the conformance report lists the test.
//!
//! Translation is as in SC mode, performed at the commit of its access:
//! walks and TLB use keep the model's own relaxations (early walks until a
//! context synchronization, TLB fills and evictions at any time, pending
//! invalidations), and are ordered with ordinary accesses only through the
//! commit order above. herd7's `aarch64.cat` orders a translation read
//! before its access (`tr-ib` within the instruction), which holds here
//! because both happen in one commit, and before every later store (`dob`:
//! `[Imp & TTD & R]; tr-ib; [Exp & M]; po; [W]`) and anything after a
//! later ISB (`CSE-ob`), but not the access's read itself: so a plain load
//! through a virtual address may be *translated* ahead of its read (when
//! it could commit as a fault, and after the earlier walks of its page),
//! and a store, or an ISB, waits for the translation of the earlier loads,
//! not for their reads (catalogue test `F2.mod-MP-sync`, Allowed). Stores
//! are translated at their commit only.

use super::*;

mod coherence;
mod early_translate;
mod meta;
mod ppo;
pub(super) use coherence::written_past;
pub(super) use meta::{may_pa, meta};
use ppo::pending_before;

/// The most instructions of a thread in flight at once.
pub(super) const WINDOW: usize = 8;

/// A window entry not committed yet.
const PENDING: u8 = 0;
/// A committed window entry.
pub(super) const DONE: u8 = 1;
/// A window entry not committed yet, predicted to fault: the handler's
/// instructions follow it, and it may only commit as a fault.
pub(super) const PREDICTED: u8 = 2;
/// A load whose translation is done (without a fault) and whose read is
/// not: the state is `TRANSLATED` plus the physical page it reads.
const TRANSLATED: u8 = 3;

/// The register bit of the NZCV flags (only Z is modelled).
const FLAGS: u64 = 1 << 32;
/// The register bit of the exclusive monitor.
const MONITOR: u64 = 1 << 33;
/// The register bit of ELR_EL1 (written by MSR and by taking a fault, read
/// by ERET).
const ELR: u64 = 1 << 34;

/// A barrier's kind, for `bob`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fence {
    Full,
    Ld,
    St,
}

/// What the relaxed mode knows of one instruction.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Meta {
    /// Registers read (bit r), the flags, the monitor.
    reads: u64,
    /// Registers written.
    writes: u64,
    /// The address registers of an access.
    addr: u64,
    /// The data registers of a store.
    data: u64,
    /// Reads memory.
    load: bool,
    /// Writes memory.
    store: bool,
    /// Acquire (`A`): LDAR, LDAXR, SWPA, CASA, LD<op>A.
    acq: bool,
    /// AcquirePC (`Q`): LDAPR.
    acq_pc: bool,
    /// Release (`L`): STLR, STLXR, SWPL, CASL, LD<op>L, ST<op>L.
    rel: bool,
    /// A DMB.
    fence: Option<Fence>,
    /// A conditional branch to the next instruction (a control
    /// dependency and nothing else).
    ctrl_next: bool,
    /// Fetching stops after it until it commits.
    control: bool,
    /// Commits only with nothing earlier pending.
    serial: bool,
    /// An ISB: waits for the earlier instructions other than memory
    /// accesses.
    isb: bool,
    /// A TLBI: waits for the earlier barriers, TLBIs and control
    /// dependencies only.
    tlbi: bool,
}

impl Ctx<'_> {
    /// Every successor of `st` by one step of `c` in relaxed mode: the
    /// commit of one instruction, or a fault prediction (see the module's
    /// description).
    pub(super) fn step_relaxed(
        &self,
        st: &State,
        c: usize,
        out: &mut Vec<State>,
    ) -> Result<(), LitmusError> {
        let cpu = &st.cpus[c];
        let metas = &self.meta[c];
        let get = |pc: u16| {
            metas.get(usize::from(pc)).copied().unwrap_or(Meta {
                serial: true,
                control: true,
                ..Meta::default()
            })
        };
        // Nothing in flight: the next instruction commits as in SC mode
        // (serializing instructions only ever commit this way).
        if cpu.rob.is_empty() && get(cpu.pc).serial {
            return self.step(st, c, out);
        }
        // The window as it may be: the fetched instructions, then those a
        // fetch may add (fetching has no other effect, so it happens with
        // the step that needs it).
        let fetched = cpu.rob.len();
        let mut rob = cpu.rob.clone();
        let mut p = cpu.pc;
        while rob.len() < WINDOW
            && rob
                .last()
                .is_none_or(|&(pc, s)| s == DONE || !get(pc).control)
            && !get(p).serial
        {
            rob.push((p, PENDING));
            p += 1;
        }
        let handler = self.t.threads[c].handler;
        let predicted = rob.iter().any(|e| e.1 == PREDICTED);
        let mut tmp = Vec::new();
        for k in 0..rob.len() {
            let (pc, state) = rob[k];
            if state == DONE {
                continue;
            }
            let j = get(pc);
            let mem_j = j.load || j.store;
            let later_done = rob[k + 1..].iter().any(|e| e.1 == DONE);
            // A fault prediction: fetching goes on at the handler.
            if mem_j
                && state == PENDING
                && !predicted
                && !later_done
                && let Some(h) = handler
            {
                let mut n = st.clone();
                let mut r = rob[..=k].to_vec();
                r[k].1 = PREDICTED;
                n.cpus[c].rob = r;
                n.cpus[c].pc = h;
                out.push(n);
            }
            // A load's translation ahead of its read.
            if state == PENDING && self.early {
                self.translate_early(st, c, &rob, fetched, k, &get, out)?;
            }
            // The commit as an access (not faulting), then as a fault.
            for as_fault in [false, true] {
                if (as_fault && !mem_j) || (!as_fault && state == PREDICTED) {
                    continue;
                }
                if as_fault && state >= TRANSLATED {
                    continue;
                }
                if as_fault && later_done && state != PREDICTED {
                    continue;
                }
                let Some(forward) = self.may_commit(st, c, &rob, k, as_fault, &get) else {
                    continue;
                };
                let mut n = st.clone();
                n.cpus[c].pc = pc;
                tmp.clear();
                match forward {
                    Some(ipc) => {
                        let code = &self.t.threads[c].code;
                        let (
                            Some(Instr::Store {
                                src: s, width: ws, ..
                            }),
                            Some(Instr::Load {
                                dst: t, width: wl, ..
                            }),
                        ) = (code.get(usize::from(ipc)), code.get(usize::from(pc)))
                        else {
                            continue;
                        };
                        let v = narrow(narrow(Self::reg(&n, c, *s), ws.bytes()), wl.bytes());
                        Self::set(&mut n, c, *t, v);
                        n.cpus[c].pc = pc + 1;
                        tmp.push(n);
                    }
                    None if state >= TRANSLATED => {
                        for mut n in self.walk_before_handler(n, c, &rob, k, &get) {
                            self.read_translated(&mut n, c, pc, state - TRANSLATED);
                            tmp.push(n);
                        }
                    }
                    None => {
                        for n in self.walk_before_handler(n, c, &rob, k, &get) {
                            self.step(&n, c, &mut tmp)?;
                        }
                    }
                }
                let is_branch = matches!(
                    self.t.threads[c].code.get(usize::from(pc)),
                    Some(Instr::B { .. } | Instr::Cbz { .. } | Instr::Eret)
                );
                for mut m in tmp.drain(..) {
                    let newpc = m.cpus[c].pc;
                    // A fault stops the thread, jumps to its handler,
                    // re-executes the instruction or (`FaultMode::Skip`)
                    // goes on at the next one; that last is told by the
                    // fault recorded.
                    let faulted = m.cpus[c].done
                        || (!is_branch && newpc != pc + 1)
                        || m.faults.len() != st.faults.len();
                    if faulted != as_fault {
                        continue;
                    }
                    if !self.check_reads_past(st, &mut m, c, pc) {
                        continue;
                    }
                    if !faulted {
                        self.owe_reads_past(st, &mut m, c, &rob, k, forward, &get);
                    }
                    let mut r = rob[..fetched.max(k + 1)].to_vec();
                    r[k].1 = DONE;
                    let last = k + 1 == r.len();
                    if state == PREDICTED {
                        // The handler is fetched already; if it has set
                        // ELR_EL1 already, that write is the later one.
                        m.cpus[c].pc = st.cpus[c].pc;
                        let code = &self.t.threads[c].code;
                        if rob[k + 1..].iter().any(|e| {
                            e.1 == DONE
                                && matches!(code.get(usize::from(e.0)), Some(Instr::MsrElr { .. }))
                        }) {
                            m.cpus[c].elr = st.cpus[c].elr;
                        }
                    } else if faulted {
                        r.truncate(k + 1);
                        if m.cpus[c].done {
                            // No handler: the thread stops once the earlier
                            // instructions have committed.
                            m.cpus[c].done = false;
                            m.cpus[c].pc = u16::MAX;
                        }
                    } else if !last {
                        // Nothing new was fetched: the fetch point stays.
                        m.cpus[c].pc = st.cpus[c].pc;
                    }
                    while r.first().is_some_and(|e| e.1 == DONE) {
                        r.remove(0);
                    }
                    m.cpus[c].rob = r;
                    out.push(m);
                }
            }
        }
        Ok(())
    }
}
