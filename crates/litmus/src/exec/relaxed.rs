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

fn bit(r: Reg) -> u64 {
    if r == ZR { 0 } else { 1 << r }
}

fn op_bits(o: Operand) -> u64 {
    match o {
        Operand::Reg { reg: r, .. } => bit(r),
        Operand::Imm(_) => 0,
    }
}

fn addr_bits(a: &Addr) -> u64 {
    bit(a.base) | op_bits(a.off)
}

/// Describes instruction `i` of `th`, from its fields alone (memory
/// order, barrier kind).
pub(super) fn meta(th: &Thread, i: usize) -> Meta {
    let mut m = Meta::default();
    let Some(&ins) = th.code.get(i) else {
        return m;
    };
    match ins {
        Instr::Mov { dst: d, src: o, .. } => {
            m.reads = op_bits(o);
            m.writes = bit(d);
        }
        Instr::Alu {
            dst: d,
            lhs: a,
            rhs: o,
            ..
        } => {
            m.reads = bit(a) | op_bits(o);
            m.writes = bit(d);
        }
        Instr::Cmp { lhs: a, rhs: o } => {
            m.reads = bit(a) | op_bits(o);
            m.writes = FLAGS;
        }
        Instr::Csel {
            dst: d,
            if_true: a,
            if_false: b,
            ..
        } => {
            m.reads = bit(a) | bit(b) | FLAGS;
            m.writes = bit(d);
        }
        Instr::Cset { dst: d, .. } => {
            m.reads = FLAGS;
            m.writes = bit(d);
        }
        Instr::B {
            cond: cc,
            target: t,
        } => {
            m.reads = if cc.is_some() { FLAGS } else { 0 };
            m.ctrl_next = cc.is_some() && usize::from(t) == i + 1;
            m.control = !m.ctrl_next;
        }
        Instr::Cbz {
            reg: r, target: t, ..
        } => {
            m.reads = bit(r);
            m.ctrl_next = usize::from(t) == i + 1;
            m.control = !m.ctrl_next;
        }
        Instr::Load {
            dst: t,
            addr: a,
            order,
            exclusive,
            ..
        } => {
            m.addr = addr_bits(&a);
            m.reads = m.addr;
            m.writes = bit(t)
                | if exclusive == Exclusivity::Exclusive {
                    MONITOR
                } else {
                    0
                };
            m.load = true;
            m.acq = order == LoadOrder::Acquire;
            m.acq_pc = order == LoadOrder::AcquirePc;
        }
        Instr::Store {
            src: t,
            addr: a,
            order,
            ..
        } => {
            m.addr = addr_bits(&a);
            m.data = bit(t);
            m.reads = m.addr | m.data;
            m.store = true;
            m.rel = order == StoreOrder::Release;
        }
        Instr::StoreExclusive {
            status: s,
            src: t,
            addr: a,
            order,
            ..
        } => {
            m.addr = addr_bits(&a);
            m.data = bit(t);
            m.reads = m.addr | m.data | MONITOR;
            m.writes = bit(s) | MONITOR;
            m.store = true;
            m.rel = order == StoreOrder::Release;
        }
        Instr::Swp {
            src: s,
            dst: t,
            addr: a,
            order,
            ..
        }
        | Instr::Amo {
            src: s,
            dst: t,
            addr: a,
            order,
            ..
        } => {
            m.addr = addr_bits(&a);
            m.data = bit(s);
            m.reads = m.addr | m.data;
            m.writes = bit(t);
            m.load = true;
            m.store = true;
            m.acq = order.acquires();
            m.rel = order.releases();
        }
        Instr::Cas {
            expected: s,
            new: t,
            addr: a,
            order,
            ..
        } => {
            m.addr = addr_bits(&a);
            m.data = bit(s) | bit(t);
            m.reads = m.addr | m.data;
            m.writes = bit(s);
            m.load = true;
            m.store = true;
            m.acq = order.acquires();
            m.rel = order.releases();
        }
        Instr::Dmb { kind } => {
            m.fence = Some(match kind {
                BarrierKind::Full => Fence::Full,
                BarrierKind::Ld => Fence::Ld,
                BarrierKind::St => Fence::St,
            });
        }
        Instr::Adr { dst: d, .. } => m.writes = bit(d),
        Instr::MsrElr { src: r } => {
            m.reads = bit(r);
            m.writes = ELR;
        }
        Instr::Eret => {
            // A branch to ELR_EL1 and a context synchronization event, but
            // no barrier: later accesses are not ordered after the earlier
            // ones by it (herd7 catalogue test `R-via_fault_STR`, Allowed).
            m.reads = ELR;
            m.control = true;
        }
        Instr::Nop => {}
        // DSB LD and DSB ST order as DMB LD and DMB ST do (herd7's
        // `aarch64.cat`: `dmb.ld` includes `dsb.ld`, `dmb.st` includes
        // `dsb.st`), and nothing later is fetched before they complete
        // (Arm ARM B2.3, "Data Synchronization Barrier").
        Instr::Dsb {
            kind: BarrierKind::Ld,
        } => {
            m.fence = Some(Fence::Ld);
            m.control = true;
        }
        Instr::Dsb {
            kind: BarrierKind::St,
        } => {
            m.fence = Some(Fence::St);
            m.control = true;
        }
        // An ISB waits for earlier branches and for what computes earlier
        // addresses (herd7: `(ctrl | addr; po); [ISB]; po; [R]`): here for
        // every earlier instruction but the accesses themselves, which may
        // still be pending (catalogue test `I2V-R-DSB.ST-ISB-R+W`, Allowed:
        // an explicit read before DSB ST; ISB need not be complete).
        Instr::Isb => {
            m.isb = true;
            m.control = true;
        }
        // A TLBI is ordered after the earlier barriers (the DSB of
        // R_DDMVT's sequence orders the descriptor store before it), not
        // after earlier loads or stores as such: an explicit read of the
        // new descriptor before DSB ST does not order the TLBI after the
        // store it read (catalogue test `coRRExpNExp+DSB.ST-TLBI-DSB-ISB`,
        // Allowed), nor does a store before DSB LD
        // (`S+dmb.st+dsb.ld-tlbi-dsb-isb`, Allowed).
        Instr::Tlbi { scope, .. } => {
            if let TlbiScope::Page(r) = scope {
                m.reads = bit(r);
            }
            m.tlbi = true;
            m.control = true;
        }
        Instr::Dsb {
            kind: BarrierKind::Full,
        }
        | Instr::Halt => {
            m.serial = true;
        }
    }
    m.control |= m.serial;
    m
}

/// Returns, per symbol, the physical pages its virtual address may map
/// to: its initial descriptor's output address, and, when a thread may
/// store to that descriptor (the test holds its address in a register or
/// in memory, or some thread computes addresses), that of every
/// descriptor value the test names (a store may install any of them, or
/// copy another descriptor). A descriptor nothing can store to keeps its
/// output address (hardware updates change AF and AP\[2\] only), so its
/// page aliases no other (herd7 catalogue test `F2.mod-MP-sync`, Allowed:
/// P0's load of `x` and store to `y` are not ordered by coherence).
pub(super) fn may_pa(t: &Test) -> Vec<u64> {
    let oa = |v: u64| PteFields::decode(v).map(|f| f.oa);
    let mut held = 0u64;
    for v in t
        .init_regs
        .iter()
        .map(|e| e.2)
        .chain(t.init_mem.iter().map(|e| e.1))
    {
        if let Val::PteAddr(s) = v {
            held |= 1 << s;
        }
    }
    // Computed addresses: a register offset, or arithmetic on a register
    // later used as a base (it may reach any descriptor's address).
    let computes = t.threads.iter().any(|th| {
        let addrs = || th.code.iter().filter_map(|i| i.addr().copied());
        addrs().any(|a| matches!(a.off, Operand::Reg { .. }))
            || th
                .code
                .iter()
                .any(|i| matches!(i, Instr::Alu { dst: d, .. } if addrs().any(|a| a.base == *d)))
    });
    let mut named = 0u64;
    for v in t
        .init_regs
        .iter()
        .map(|e| e.2)
        .chain(t.init_mem.iter().map(|e| e.1))
    {
        if let Val::Desc(d) = v
            && let Some(o) = oa(d)
        {
            named |= 1 << o;
        }
    }
    (0..t.syms.len())
        .map(|s| {
            let named = if computes || held >> s & 1 == 1 {
                named
            } else {
                0
            };
            let init = t
                .init_mem
                .iter()
                .rev()
                .find(|e| e.0 == Loc::Pte(s as Sym))
                .and_then(|e| oa(e.1.num()))
                .unwrap_or(s as Sym);
            named | 1 << init | 1 << s
        })
        .collect()
}

impl Ctx<'_> {
    /// Returns the locations the access of `c` at instruction `pc` may
    /// touch explicitly, and the descriptors its translation reads: data
    /// pages in the low 64 bits, descriptors in the high ones; every
    /// location when the address is not one.
    fn locs(&self, st: &State, c: usize, pc: u16) -> (u128, u128) {
        let Some(&addr) = self.t.threads[c]
            .code
            .get(usize::from(pc))
            .and_then(Instr::addr)
        else {
            return (u128::MAX, 0);
        };
        match self.addr(st, c, &addr) {
            Ok(Val::Va(s)) => (
                u128::from(self.may_pa[usize::from(s)]),
                1u128 << (64 + u32::from(s)),
            ),
            Ok(Val::VaOff(s, o)) => {
                // The element at that offset of each page the address may
                // map to.
                let pages = self.may_pa[usize::from(s)];
                let bits = (0..self.nsym as Sym)
                    .filter(|p| pages >> p & 1 == 1)
                    .filter_map(|p| self.loc_bit(Loc::Elem(p, o)))
                    .fold(0u64, |a, b| a | b);
                (u128::from(bits), 1u128 << (64 + u32::from(s)))
            }
            Ok(Val::Pa(s)) => (1u128 << s, 0),
            Ok(Val::PteAddr(s)) => (1u128 << (64 + u32::from(s)), 0),
            _ => (u128::MAX, 0),
        }
    }

    /// Tells whether accesses `i` (earlier) and `j` may touch the same
    /// location in a way coherence orders: explicitly both, or `i`'s walk
    /// and `j`'s explicit store to the descriptor (the walk's read is an
    /// implicit read that a po-later store must not affect: catalogue
    /// tests `coRWImpExp`, `VIS01-store`, `load-xy`, Forbidden). An
    /// explicit *read* of the descriptor is not ordered with a walk or its
    /// hardware update (`coRWExpNExp`, Allowed), nor is an earlier explicit
    /// store with a later walk, which may read an older value until a
    /// context synchronization (`coWWExpNExp`, Allowed; the early walks of
    /// the SC model).
    fn conflict(i: (u128, u128), j: (u128, u128), mj: &Meta) -> bool {
        i.0 & j.0 != 0 || (i.1 & j.0 != 0 && mj.store)
    }

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

    /// Adds the successors of `st` where window entry `k` of `c`, a load
    /// through a virtual address, is translated without a fault before it
    /// reads (herd7 orders the translation read before the access, `tr-ib`,
    /// and as the access's fault would be ordered: after barriers,
    /// acquires, a control dependency and the address; the read itself
    /// may come later). A faulting translation is the fault's commit.
    #[allow(clippy::too_many_arguments)]
    fn translate_early(
        &self,
        st: &State,
        c: usize,
        rob: &[(u16, u8)],
        fetched: usize,
        k: usize,
        get: &dyn Fn(u16) -> Meta,
        out: &mut Vec<State>,
    ) -> Result<(), LitmusError> {
        let pc = rob[k].0;
        let Some(Instr::Load {
            addr: a,
            exclusive: Exclusivity::Plain,
            ..
        }) = self.t.threads[c].code.get(usize::from(pc))
        else {
            return Ok(());
        };
        if self.may_commit(st, c, rob, k, true, get).is_none()
            || !matches!(self.addr(st, c, a), Ok(Val::Va(_)))
        {
            return Ok(());
        }
        // Walks of one descriptor stay in program order: an earlier walk
        // is ordered before whatever a later one of the same page is
        // TLBI-ordered before (herd7 `TLBI-ob`, its `TTD-in-same-scope;
        // po` case: catalogue tests `coRR-pte9-bis1`, `Luc00`,
        // `MP+tlbi-sync.ishsptev0pteoa.v1+pos`, Forbidden).
        let walks = self.locs(st, c, pc).1;
        if rob[..k].iter().any(|&(ipc, istate)| {
            let m = get(ipc);
            (istate == PENDING || istate == PREDICTED)
                && (m.load || m.store)
                && self.locs(st, c, ipc).1 & walks != 0
        }) {
            return Ok(());
        }
        let mut n = st.clone();
        n.cpus[c].rob = rob[..fetched.max(k + 1)].to_vec();
        n.cpus[c].pc = pc;
        let mut tmp = Vec::new();
        self.access(&n, c, a, Access::Read, &mut tmp, &|m, l| match l {
            Loc::Data(p) => {
                m.cpus[c].rob[k].1 = TRANSLATED + p;
                true
            }
            Loc::Pte(_) | Loc::Elem(..) => false,
        })?;
        for mut m in tmp {
            if m.cpus[c].done || m.cpus[c].pc != pc + 1 {
                continue;
            }
            // Nothing new was fetched but up to `k`.
            m.cpus[c].pc = if k + 1 == m.cpus[c].rob.len() {
                pc + 1
            } else {
                st.cpus[c].pc
            };
            out.push(m);
        }
        Ok(())
    }

    /// Performs the read of the load at `pc` of `c`, translated already to
    /// physical page `p`, as `step` would.
    fn read_translated(&self, n: &mut State, c: usize, pc: u16, p: Sym) {
        let Some(&Instr::Load {
            dst: t,
            width,
            order,
            ..
        }) = self.t.threads[c].code.get(usize::from(pc))
        else {
            return;
        };
        let v = narrow(n.mem[self.mi(Loc::Data(p))], width.bytes());
        Self::set(n, c, t, v);
        n.cpus[c].pc = pc + 1;
        // As `step`: an acquire orders later walks after it; a loaded
        // value taints its register.
        if !n.revoked[c].is_empty() {
            if order.acquires() {
                n.revoked[c].clear();
            } else {
                n.rdirty[c] |= 1u64 << (t & 63);
            }
        }
    }

    /// Returns the states from which window entry `k` of `c` commits: `n`
    /// itself, unless `k` is a memory access or an ERET of the handler of
    /// a fault predicted at an earlier entry whose walk is not done yet;
    /// then the states after that walk (`Ctx::walk_predicted`: herd7
    /// orders the walk before the handler, the fault itself not), or none
    /// while the faulting access's address is not known.
    fn walk_before_handler(
        &self,
        n: State,
        c: usize,
        rob: &[(u16, u8)],
        k: usize,
        get: &dyn Fn(u16) -> Meta,
    ) -> Vec<State> {
        let j = get(rob[k].0);
        let eret = matches!(
            self.t.threads[c].code.get(usize::from(rob[k].0)),
            Some(Instr::Eret)
        );
        let Some(i) = rob[..k].iter().position(|e| e.1 == PREDICTED) else {
            return vec![n];
        };
        let ipc = rob[i].0;
        if !(j.load || j.store || eret) || n.cpus[c].pre.iter().any(|e| e.0 == ipc) {
            return vec![n];
        }
        if get(ipc).addr & pending_before(rob, i, get) != 0 {
            return Vec::new();
        }
        self.walk_predicted(&n, c, ipc)
    }

    /// Tells whether window entry `k` of `c` may commit now, as an access
    /// or (`as_fault`) as a fault: `None` if not, `Some(Some(pc))` if a
    /// load takes its value from the store at `pc`, `Some(None)` else.
    ///
    /// A fault is no memory event: herd7 orders it after barriers and
    /// acquires (`bob`: `[dmb.full]`, `[dmb.ld]`, `[dmb.st]`, `[A | Q]; po`
    /// into `MMU & FAULT`), after a control dependency and after its
    /// address (catalogue tests `MP+rel+pickctrlW-mmufault-po`,
    /// `MP+rel+pickaddr-mmufault_db-po`: Forbidden), but not after its
    /// data, not by a release (`po; [L]` needs an `L` write:
    /// `R+rel+rel-mmufault_db-po`, Allowed) and not by coherence (no write
    /// to order: `R+rel+lws-mmufault_db-po`, Allowed).
    fn may_commit(
        &self,
        st: &State,
        c: usize,
        rob: &[(u16, u8)],
        k: usize,
        as_fault: bool,
        get: &dyn Fn(u16) -> Meta,
    ) -> Option<Option<u16>> {
        let (pc, _) = rob[k];
        let j = get(pc);
        let mem_j = j.load || j.store;
        let locs_j = if mem_j && j.addr & pending_before(rob, k, get) == 0 {
            self.locs(st, c, pc)
        } else {
            (u128::MAX, 0)
        };
        let mut pending = 0u64;
        let mut fwd: Option<usize> = None;
        for (i, &(ipc, istate)) in rob[..k].iter().enumerate() {
            if istate == DONE {
                continue;
            }
            let mut m = get(ipc);
            if istate == PREDICTED && !elr_rewritten(&self.t.threads[c].code, rob, i, k) {
                m.writes |= ELR;
            }
            let before_i = pending;
            pending |= m.writes;
            let mem_i = m.load || m.store;
            if as_fault {
                let fenced = m.fence.is_some() || m.isb;
                if j.addr & m.writes != 0 || fenced || m.acq || m.acq_pc || m.ctrl_next {
                    return None;
                }
                continue;
            }
            // Registers.
            if j.writes & (m.reads | m.writes) != 0 || j.reads & m.writes != 0 {
                return None;
            }
            // An ISB after anything but an access; anything after an ISB
            // (it stops fetching, so only the handler of a predicted fault
            // can be here).
            if (j.isb && !mem_i) || m.isb {
                return None;
            }
            // An ISB waits for the translations of the earlier accesses
            // (herd7 `CSE-ob`: `[Imp & TTD & R]; tr-ib; po; [CSE]; po`;
            // catalogue test `MP+dmb.st+trib-po-isb-po`, Forbidden).
            if j.isb && mem_i && istate < TRANSLATED && self.locs(st, c, ipc).1 != 0 {
                return None;
            }
            // A TLBI is ordered after the earlier stores only through a
            // DSB (herd7 `DSB-ob`, herdtools7 `herd/libdir/aarch64hwreqs.cat`
            // 010b3770: `[M]; po; [dsb.full]; po`, `[Exp & W];
            // po; [dsb.st]; po`, `[Exp & R]; po; [dsb.ld]; po`, into any
            // event but an implicit access; catalogue test
            // `S+dmb.st+dsb.ld-tlbi-dsb-isb`, Allowed: a DSB LD does not
            // order the earlier store), after a control dependency (`dob`:
            // `ctrl; [TLBI]`) and its address register; kept after earlier
            // barriers and TLBIs.
            if j.tlbi && (m.fence.is_some() || m.tlbi || m.ctrl_next) {
                return None;
            }
            // Barriers (bob).
            let ordered = match (m.fence, j.fence) {
                (Some(_), Some(_)) => true,
                (Some(Fence::Full | Fence::Ld), None) => mem_j,
                (Some(Fence::St), None) => j.store,
                (None, Some(Fence::Full)) => mem_i,
                (None, Some(Fence::Ld)) => m.load,
                (None, Some(Fence::St)) => m.store,
                (None, None) => false,
            };
            if ordered
                || ((m.acq || m.acq_pc) && mem_j)
                || (j.rel && mem_i)
                || (m.rel && j.acq)
                || (m.ctrl_next && j.store)
            {
                return None;
            }
            // A store waits for the translation of every earlier load
            // (herd7 `dob`: `[Imp & TTD & R]; tr-ib; [Exp & M]; po; [W]`,
            // as herdtools7 `tools/tests/miaou.t`, 59a256cd, expands it;
            // catalogue tests `S+dmb.st+trib-po`,
            // `MP+dmb.st+trib-po-isb-po`, Forbidden), not for its read
            // (`F2.mod-MP-sync`, Allowed). An earlier store is translated
            // at its commit, so coherence alone orders the later one.
            if j.store && m.load && !m.store && istate < TRANSLATED && self.locs(st, c, ipc).1 != 0
            {
                return None;
            }
            // Coherence and unknown addresses.
            if mem_i && mem_j {
                if m.addr & before_i != 0 {
                    // A plain load may pass a plain load whose address is
                    // not known yet; the check comes when that load
                    // commits (`owe_reads_past`).
                    let code = &self.t.threads[c].code;
                    let ldr = |p: u16| {
                        matches!(
                            code.get(usize::from(p)),
                            Some(Instr::Load {
                                exclusive: Exclusivity::Plain,
                                ..
                            })
                        )
                    };
                    if !(ldr(ipc) && ldr(pc)) {
                        return None;
                    }
                    continue;
                }
                if Self::conflict(self.locs(st, c, ipc), locs_j, &j) {
                    fwd = Some(i);
                }
            }
        }
        let Some(i) = fwd else {
            return Some(None);
        };
        // The latest earlier access to a location j may touch: j may only
        // forward from it (a plain load from a plain store to the same
        // address, whose data is ready); any overlapping access before
        // that one is ordered before it already.
        let (ipc, _) = rob[i];
        let code = &self.t.threads[c].code;
        let plain_store = matches!(code.get(usize::from(ipc)), Some(Instr::Store { .. }));
        let plain_load = matches!(
            code.get(usize::from(pc)),
            Some(Instr::Load {
                exclusive: Exclusivity::Plain,
                ..
            })
        );
        let same = self.locs(st, c, ipc).0 == locs_j.0 && (locs_j.0 as u64).count_ones() == 1;
        let ready = get(ipc).data & pending_before(rob, i, get) == 0;
        (plain_store && plain_load && same && ready).then_some(Some(ipc))
    }
}

impl Ctx<'_> {
    /// Records the checks owed by load `k` of `c`, which commits (by
    /// forwarding from the store at `spc`, or from memory), for each
    /// pending plain load before it whose address is not known yet.
    ///
    /// Armv8 lets a load go before an earlier load whose address is not
    /// known, and herd7 orders the two only through coherence: herd7's
    /// `aarch64.cat` has no `po-loc` between reads in `ob`, only `[R &
    /// Exp]; po-loc; [R & Exp]; fre; [W & Exp]` (a read may not see a write
    /// coherence-after one a po-later read saw) and the `internal` axiom
    /// (`po-loc | ca | rf` acyclic). So the earlier load, if it turns out
    /// to read the page the later one read, must read what that one read
    /// or an older write: not a write another CPU makes after the later
    /// load read memory, or after the store it forwarded from commits
    /// (catalogue tests `MP+dmb.sy+addr-store-pos-addr`, `...+W`,
    /// `MP+dmb.sy+addrR-pos-addr+W`: Allowed). The thread's own stores
    /// cannot come in between: a store waits for an earlier access whose
    /// address is not known, and a load forwards from a pending one.
    #[allow(clippy::too_many_arguments)]
    fn owe_reads_past(
        &self,
        st: &State,
        n: &mut State,
        c: usize,
        rob: &[(u16, u8)],
        k: usize,
        spc: Option<u16>,
        get: &dyn Fn(u16) -> Meta,
    ) {
        let code = &self.t.threads[c].code;
        if !matches!(
            code.get(usize::from(rob[k].0)),
            Some(Instr::Load {
                exclusive: Exclusivity::Plain,
                ..
            })
        ) {
            return;
        }
        let page = self.locs(st, c, rob[k].0).0 as u64;
        let (spc, stage) = match spc {
            Some(p) => (p, 0),
            None => (u16::MAX, 1),
        };
        for i in 0..k {
            let (ipc, state) = rob[i];
            if state == PENDING
                && matches!(
                    self.t.threads[c].code.get(usize::from(ipc)),
                    Some(Instr::Load {
                        exclusive: Exclusivity::Plain,
                        ..
                    })
                )
                && get(ipc).addr & pending_before(rob, i, get) != 0
            {
                n.cpus[c].past.push((ipc, page, spc, stage));
            }
        }
    }

    /// Brings the checks of `c` up to date with the commit of its
    /// instruction at `pc` into `m`: a store owed to has committed, or an
    /// earlier load owing a check commits; returns false when that load
    /// may have read the page a later load read after another CPU wrote it
    /// following the store (a coherence violation: the execution is
    /// dropped).
    fn check_reads_past(&self, st: &State, m: &mut State, c: usize, pc: u16) -> bool {
        if m.cpus[c].past.is_empty() {
            return true;
        }
        let page = self.locs(st, c, pc).0 as u64;
        let past = &mut m.cpus[c].past;
        let ok = !past
            .iter()
            .any(|o| o.0 == pc && o.3 == 2 && o.1 & page != 0);
        past.retain(|o| o.0 != pc);
        for o in past.iter_mut() {
            if o.2 == pc && o.3 == 0 {
                o.3 = 1;
            }
        }
        ok
    }
}

/// Records that `writer` wrote the data location of `bit` (`Ctx::loc_bit`): a check of another CPU whose store has
/// committed to that page is now owed against a newer write.
pub(super) fn written_past(st: &mut State, writer: usize, bit: u64) {
    for (i, cpu) in st.cpus.iter_mut().enumerate() {
        if i != writer {
            for o in &mut cpu.past {
                if o.3 == 1 && o.1 & bit != 0 {
                    o.3 = 2;
                }
            }
        }
    }
}

/// Tells whether the handler of the fault predicted at window entry `i`
/// sets ELR_EL1 itself (MSR ELR_EL1) at or before entry `k`: then the
/// instructions from `k` on read the handler's value, not the one taking
/// the exception writes, and the handler's write is the later one (the
/// commit of the fault keeps it: `step_relaxed`), so neither waits for the
/// fault (catalogue test `order-via-faults/R-via_fault_STR-2`, Allowed).
fn elr_rewritten(code: &[Instr], rob: &[(u16, u8)], i: usize, k: usize) -> bool {
    rob[i + 1..=k]
        .iter()
        .any(|e| matches!(code.get(usize::from(e.0)), Some(Instr::MsrElr { .. })))
}

/// Returns the registers written by the uncommitted instructions before
/// window entry `k`.
fn pending_before(rob: &[(u16, u8)], k: usize, get: &dyn Fn(u16) -> Meta) -> u64 {
    rob[..k]
        .iter()
        .filter(|e| e.1 != DONE)
        .fold(0, |a, e| a | get(e.0).writes)
}
