//! The executor: every execution of a litmus test on an operational model
//! of the VMSA, explored exhaustively.
//!
//! The model (what a step may do):
//!
//! - **Threads** execute their instructions in program order, one
//!   instruction per step, interleaved in every order. Ordinary memory
//!   accesses are therefore *sequentially consistent*; herd7 uses the
//!   relaxed Armv8 model, so some outcomes it allows are not reached here
//!   (the conformance harness counts and classifies them). DMB, acquire and
//!   release add nothing on an SC model. The relaxed mode
//!   ([`Options::relaxed`], module `relaxed`) commits instructions out of
//!   program order instead, each commit being this SC step.
//! - **Translation**: an access to a virtual address either uses a value
//!   its CPU's TLB may hold (see `State::tlbs`: TLBs are not coherent with
//!   table writes, R_FFWJK, and fill and evict at any time) or walks the
//!   descriptor as its walker sees it. A walk of an invalid descriptor is a
//!   Translation fault; AF clear is an Access flag fault unless the CPU
//!   updates AF in hardware (`TTHM=HA`), in which case the walk sets AF in
//!   memory (Arm ARM D8, "Hardware management of the Access flag"); a write
//!   to a read-only (`db:0`) page is a Permission fault unless DBM is set
//!   and the CPU manages dirty state in hardware (`TTHM=HD`), which then
//!   clears AP\[2\] in memory ("Hardware management of the dirty state").
//!   Such an update is seen by walkers at once and by explicit accesses
//!   once it reaches memory (`State::hu`). Entries with AF clear or
//!   invalid are never cached (I_WZCBG). A thread `EL0=` names gets a
//!   Permission fault on an `el0:0` page.
//! - **Speculative AF updates**: with hardware AF a walk may happen at any
//!   time and set AF (herd7 allows it: catalogue test `SpecAF`).
//! - **Early dirty-bit updates** (module `early`): the walk and dirty-bit
//!   update of a plain store may be performed before the store and before
//!   earlier instructions that do not feed its address or a branch
//!   (herd7's `HU` ordering, `aarch64hwreqs.cat`); the store then uses
//!   that translation.
//! - **TLBI** records one pending invalidation per target CPU (all CPUs for
//!   the broadcast `IS` forms, the issuer otherwise); each takes effect at
//!   any time and all of the issuer's are complete at its next full DSB
//!   (SY/ISH/NSH/OSH, not LD/ST: herd7's `dsb.full` in `TLBI-ob`; R_DDMVT's
//!   sequence ends with such a DSB).
//! - **Descriptor stores** are seen at once by loads of the descriptor, and
//!   by walkers later: by the other CPUs' walkers once a barrier (a DMB
//!   other than DMB LD, or a release) orders the store before later stores
//!   or another CPU has read it (other-multi-copy atomicity), by every
//!   walker at any time, and by the writer's own walker at the latest at
//!   its next DSB other than DSB LD (R_DDMVT step 2: the DSB before a TLBI
//!   "so the walker sees the new value"). Hardware AF/dirty updates are
//!   atomic and seen by walkers at once.
//! - **Early walks**: a walk is not ordered after the earlier instructions
//!   of its thread until a context synchronization event (ISB, exception
//!   entry, ERET), so it may use any value its walker saw since then,
//!   except values another CPU's TLBI of the CPU has since removed
//!   (catalogue tests `J-simple`, `F1`, `VIS7+TLBI` allowed, `FC`,
//!   `MP+shoot+DSB` forbidden); a fault from such a removed value stays
//!   possible until the CPU's next barrier, acquire or context
//!   synchronization, for accesses whose address does not depend on a
//!   value read since (a control dependency does not order it:
//!   `FL`, `D15347-M-load-shoot+ctrl` allowed; `FF`, `FI` forbidden).
//! - **Faults** are recorded as herd7 records them (thread, instruction,
//!   address, kind: `Fault(P0:L0,x,D-MMU:Translation)`); the faulting
//!   thread jumps to its handler (`P0.F` column) if it has one, with ELR
//!   pointing at the faulting instruction, and otherwise does what the
//!   test's fault mode says ([`FaultMode`], from its `variant=` line;
//!   herdtools7 `herd/mem.ml`, `add_fault`): stops (fatal, herd7's
//!   `-variant vmsa,fatal`, the default), executes the instruction again
//!   once, at EL1, an execution faulting again being discarded (handled,
//!   imprecise), or goes on at the next instruction (skip, faultToNext).
//!   Taking a fault is a context synchronization event.
//! - **BBM warning** (herd7's `Warning-BBM-expected`: `aarch64bbm.cat`
//!   `TTD-update-needsBBM` less `aarch64.cat` `BBM`), by the rule checker's
//!   own bookkeeping (`vmsa::herd_bbm::TtdBbm`): every cacheable value
//!   (valid, AF set) of a descriptor is compared with every earlier one,
//!   not only the last (`ca` is transitive), unless a break separates them:
//!   an uncacheable value (invalid, or AF clear) written after the earlier
//!   one, a DSB that orders it before a TLBI (`DSB-ob`: a full DSB or DSB
//!   ST, not DSB LD), a TLBI covering the descriptor, and a full DSB, all
//!   by the CPU writing the later value. A pair needs break-before-make
//!   when its output address differs (unless both are read-only and the
//!   two pages hold equal contents) or its memory type or shareability
//!   differs (`Ctx::needs_bbm`).
//!

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::LitmusError;
use crate::ast::*;
use vmsa::herd_bbm::TtdBbm;

mod early;
mod relaxed;
mod unroll;
use relaxed::{Meta, may_pa, meta};
pub use unroll::UNROLL;

/// A herd7-style verdict on the final condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Some final state satisfies the proposition.
    Allowed,
    /// No final state satisfies it.
    Forbidden,
    /// Every final state satisfies it (a `forall` test).
    Required,
}

impl Verdict {
    /// Returns the verdict as herd7's `kinds.txt` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "Allowed",
            Verdict::Forbidden => "Forbidden",
            Verdict::Required => "Required",
        }
    }
}

/// A value of an observed location in a final state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObsVal {
    /// A register or memory value.
    Val(Val),
    /// Whether a fault atom holds.
    Fault(bool),
}

/// A final state: what herd7 prints of it ([`crate::states`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Final {
    /// The values of [`Outcome::shown`], in order (for a fault atom,
    /// whether a fault matches it).
    pub vals: Vec<ObsVal>,
    /// The faults taken that match a fault atom of [`Outcome::shown`],
    /// sorted: (thread, instruction, virtual address, kind).
    pub faults: Vec<(u8, u16, Sym, FaultKind)>,
}

/// The result of exploring a test.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The locations shown, in order.
    pub shown: Vec<Obs>,
    /// The distinct final states (values of `shown`, and the faults herd7
    /// prints) and whether each satisfies the proposition.
    pub finals: BTreeMap<Final, bool>,
    /// States explored.
    pub states: u64,
    /// True when the state limit stopped the search (the verdict then
    /// covers only what was explored).
    pub limit_hit: bool,
    /// True when some execution updated a descriptor without the
    /// break-before-make it needed.
    pub bbm_warning: bool,
    /// True when some execution was cut at herd7's loop unrolling bound
    /// ([`UNROLL`]: module `unroll`).
    pub unroll_cut: bool,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl Outcome {
    /// Returns the number of final states satisfying / not satisfying the
    /// proposition.
    pub fn counts(&self) -> (usize, usize) {
        let pos = self.finals.values().filter(|b| **b).count();
        (pos, self.finals.len() - pos)
    }

    /// Returns herd7's observation word: Never, Sometimes or Always.
    pub fn observation(&self) -> &'static str {
        match self.counts() {
            (0, _) => "Never",
            (_, 0) => "Always",
            _ => "Sometimes",
        }
    }

    /// Tells whether the condition holds (herd7's `Ok`).
    pub fn ok(&self, q: Quant) -> bool {
        let (pos, neg) = self.counts();
        match q {
            Quant::Exists => pos > 0,
            Quant::NotExists => pos == 0,
            Quant::Forall => neg == 0,
        }
    }

    /// Returns the verdict in the catalogue's terms (`kinds.txt`): Never is
    /// Forbidden, Always under `forall` is Required, anything else Allowed.
    pub fn verdict(&self, q: Quant) -> Verdict {
        verdict_of(self.observation(), q)
    }
}

/// Maps an observation word and a quantifier to a catalogue verdict.
pub fn verdict_of(observation: &str, q: Quant) -> Verdict {
    match observation {
        "Never" => Verdict::Forbidden,
        "Always" if q == Quant::Forall => Verdict::Required,
        _ => Verdict::Allowed,
    }
}

/// Options of a run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// The most states explored before the search stops.
    pub max_states: u64,
    /// Explore the relaxed (out-of-order commit) mode instead of the
    /// sequentially consistent one: see [`crate::exec`]'s "Relaxed mode".
    pub relaxed: bool,
    /// Let walks go ahead of their access's turn: the early dirty-bit
    /// updates (`exec/early.rs`, both modes) and, in relaxed mode, a
    /// load's translation ahead of its read. On by default; the harness
    /// turns it off only to tell which disagreements need them
    /// ([`crate::harness::classify`]).
    pub early_translations: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_states: 500_000,
            relaxed: false,
            early_translations: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Cpu {
    pc: u16,
    done: bool,
    z: bool,
    elr: u16,
    excl: Option<Loc>,
    /// The registers the test uses (index = register number).
    regs: Vec<Val>,
    /// Relaxed mode only: the instructions fetched and not yet retired,
    /// in program order, with their state (pending, committed, predicted
    /// to fault). `pc` is then the next instruction to fetch. Empty in SC
    /// mode.
    rob: Vec<(u16, u8)>,
    /// Early translations (module `early`), sorted: (instruction, virtual
    /// address, result) for an access not executed yet whose walk was
    /// performed ahead of it. `Ok(d)`: a store's walk and dirty-bit
    /// update, `d` the value the update wrote (the store writes the page
    /// it maps); `Err(k)`: the faulting walk of an access predicted to
    /// fault (relaxed mode), done before its handler went on.
    pre: Vec<(u16, Sym, Result<u64, FaultKind>)>,
    /// The thread took a fault with no handler under
    /// [`FaultMode::Handled`] and re-executes from the faulting
    /// instruction on, as herd7 runs a handler (`re_exec` in herdtools7
    /// `herd/mem.ml`): at EL1, and a second fault discards the execution.
    retried: bool,
    /// Per target of a backward branch herd7 bounds (module `unroll`),
    /// sorted: how many times the execution has jumped back to it.
    loops: Vec<(u16, u8)>,
    /// Relaxed mode only: the checks owed by loads that committed early,
    /// forwarding from the thread's store, past an earlier load whose
    /// address was not known (`relaxed::owe_reads_past`): (earlier load,
    /// the page the later one read, as a bit, the store, stage: 0 the store
    /// is pending, 1 it has committed, 2 another CPU has written the page
    /// since).
    past: Vec<(u16, u64, u16, u8)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    cpus: Vec<Cpu>,
    /// Index 2s: data of PA(s); 2s+1: descriptor PTE(s).
    mem: Vec<Val>,
    /// Per CPU: the descriptors its TLB may hold, sorted: every cacheable
    /// value (valid, AF set) a descriptor it uses has had since the CPU's
    /// last invalidation of it. A fill may happen at any time and an
    /// eviction too, so the entries a TLB may hold at an access are exactly
    /// these (a hit is a choice, a walk always another): no fill step is
    /// needed.
    tlbs: Vec<Vec<(Sym, u64)>>,
    /// Per symbol: the descriptor as walkers see it.
    wmem: Vec<u64>,
    /// Descriptor stores not yet visible to walkers, oldest first:
    /// (symbol, writer, value). A store to a descriptor reaches the
    /// translation table walks only when it propagates (at any time) and
    /// at the latest at the writer's next DSB that is not DSB LD (the Arm
    /// ARM's "Ordering of translation table updates": a DSB is needed
    /// before the walk is guaranteed to see the store).
    /// The flag: the store is already visible to the other CPUs' walkers
    /// (a barrier ordered it before a later store, or another CPU read
    /// it); only the writer's own walker may still miss it.
    pend: Vec<(Sym, u8, u64, bool)>,
    /// Per CPU: every descriptor value its walker could see since its last
    /// context synchronization (ISB, exception entry or return), sorted. A
    /// walk is not ordered after the earlier instructions without one, so
    /// it may have read any of them (herd7 allows such early walks:
    /// catalogue tests `J-simple`, `F1`); only faults and hits that need no
    /// hardware update come from these stale reads.
    whist: Vec<Vec<(Sym, u64)>>,
    /// Per CPU: the stale values of `whist` another CPU's TLBI removed
    /// since the CPU's last barrier. A walk that faults on one of them may
    /// still have been performed before the TLBI: herd7 orders a fault
    /// after an earlier read only through a barrier, an address
    /// dependency or a context synchronization, not a control dependency
    /// (catalogue tests `FL`, `D15347-M-load-shoot+ctrl` Allowed, `FC`
    /// Forbidden).
    revoked: Vec<Vec<(Sym, u64)>>,
    /// Per CPU: the registers whose value depends on a read performed
    /// since `revoked` was last empty (by register data flow); an
    /// access whose address depends on one is ordered after the read
    /// (herd7: `addr` in `dob`; catalogue tests `FF`,
    /// `D15347-M-load-shoot+addr` Forbidden), so it cannot use `revoked`.
    rdirty: Vec<u64>,
    /// Pending invalidations: (issuer, target, symbol or all).
    inv: Vec<(u8, u8, Option<Sym>)>,
    /// Faults taken: (thread, pc, va, kind).
    faults: Vec<(u8, u16, Sym, FaultKind)>,
    /// Per descriptor: herd7's break-before-make bookkeeping (the
    /// cacheable values written and each CPU's breaks), shared with the
    /// rule checker's herd7 flag (`vmsa::herd_bbm::TtdBbm`).
    bbm: Vec<TtdBbm<u64>>,
    /// Hardware AF/dirty updates that walkers see but that have not reached
    /// memory for explicit accesses yet, oldest first: (symbol, CPU,
    /// value). One reaches memory at any time, before any explicit write
    /// to its descriptor (the update is an atomic read-modify-write:
    /// herd7 catalogue test `NT-12-dmb-allha-variant1`, Forbidden), and at
    /// the latest at its CPU's next full DSB (herd7's VMSA model, herdtools7
    /// 5feffe4e8f98, as its catalogue verdicts show: `NT-12-dsb`
    /// Forbidden; `NT-12-dmb+dsb`, `NT-12-dsbld`, `MP+HA-DSB.ST` Allowed: a
    /// DMB or a DSB LD/ST does not complete them).
    hu: Vec<(Sym, u8, u64)>,
    warn: bool,
    /// The execution is impossible (an early translation's assumption
    /// failed: module `early`); the state is dropped.
    bad: bool,
    /// The execution went past herd7's loop unrolling bound (module
    /// `unroll`); the state is dropped and the outcome says so.
    cut: bool,
}

fn cacheable(d: u64) -> bool {
    d & 1 == 1 && PteFields::decode(d).is_some_and(|f| f.af)
}

struct Ctx<'a> {
    t: &'a Test,
    nsym: usize,
    hd_any: bool,
    /// Per thread: bit s set if the thread may access symbol s through a
    /// translation.
    vas: Vec<u64>,
    /// Per thread and instruction: what the relaxed mode needs to know.
    meta: Vec<Vec<Meta>>,
    /// Per symbol: the physical pages its virtual address may map to.
    may_pa: Vec<u64>,
    /// Per thread and instruction: a backward branch herd7 bounds.
    counted: Vec<Vec<bool>>,
    /// [`Options::early_translations`].
    early: bool,
    /// The array elements other than the first ([`Loc::Elem`]), sorted:
    /// (page, byte offset). Element k lives at `State::mem[2 * nsym + k]`.
    elems: Vec<(Sym, u16)>,
}

enum Access {
    Read,
    Write,
}

impl Ctx<'_> {
    /// Returns the index of location `l` in `State::mem`: 2s for the data
    /// of page s (an array's first element), 2s+1 for its descriptor, and
    /// after those the other array elements (`Ctx::elems`).
    fn mi(&self, l: Loc) -> usize {
        match l {
            Loc::Data(s) => 2 * usize::from(s),
            Loc::Pte(s) => 2 * usize::from(s) + 1,
            // An element not declared was refused at the access
            // (`Ctx::access`); its page's first element stands in.
            Loc::Elem(s, o) => self
                .elems
                .binary_search(&(s, o))
                .map_or(2 * usize::from(s), |k| 2 * self.nsym + k),
        }
    }

    /// Returns the bit of data location `l` in the location sets of the
    /// relaxed mode (`relaxed::locs`): page s is bit s, array element k
    /// bit `nsym + k`; None for a descriptor.
    fn loc_bit(&self, l: Loc) -> Option<u64> {
        match l {
            Loc::Data(s) => Some(1u64 << s),
            Loc::Elem(s, o) => self
                .elems
                .binary_search(&(s, o))
                .ok()
                .map(|k| 1u64 << (self.nsym + k)),
            Loc::Pte(_) => None,
        }
    }

    /// Returns the contents of page `p`: its first word and its other
    /// array elements, with their offsets.
    fn page_cells(&self, st: &State, p: Sym) -> Vec<(u16, Val)> {
        let mut v = vec![(0, st.mem[self.mi(Loc::Data(p))])];
        for &(s, o) in &self.elems {
            if s == p {
                v.push((o, st.mem[self.mi(Loc::Elem(s, o))]));
            }
        }
        v
    }

    fn err(&self, what: impl Into<String>) -> LitmusError {
        LitmusError::Runtime {
            test: self.t.name.clone(),
            what: what.into(),
        }
    }

    fn ha(&self, c: usize) -> bool {
        self.t.tthm.ha >> c & 1 == 1
    }

    /// Tells whether `c` runs at EL0 and descriptor fields `f` deny it
    /// access: AP\[1\] (the `vmsa` crate's `Attributes::USER`) clear
    /// makes an EL0 access a Permission fault (Arm ARM D8, "Memory access
    /// control"; herd7 catalogue test `TST-EL0`, Required).
    /// A re-executed instruction (`Cpu::retried`) runs at EL1, as a
    /// handler does (herdtools7 `herd/AArch64Sem.ml`, `check_ptw`: no EL0
    /// check when `in_handler`).
    fn el0_denied(&self, st: &State, c: usize, f: &PteFields) -> bool {
        self.t.el0 >> c & 1 == 1 && !f.el0 && !st.cpus[c].retried
    }

    fn hd(&self, c: usize) -> bool {
        self.t.tthm.hd >> c & 1 == 1
    }

    /// Resolves a value used as an address.
    fn resolve(&self, v: u64) -> Option<Val> {
        let elem = self.t.arrays.iter().find_map(|&(s, size, n)| {
            let o = v.checked_sub(va_of(s))?;
            (o > 0 && o < u64::from(size) * u64::from(n) && o % u64::from(size) == 0)
                .then_some(Val::VaOff(s, o as u16))
        });
        if elem.is_some() {
            return elem;
        }
        (0..self.nsym).find_map(|s| {
            let s = s as Sym;
            if v == va_of(s) {
                Some(Val::Va(s))
            } else if v == pa_of(s) {
                Some(Val::Pa(s))
            } else if v == pte_addr_of(s) {
                Some(Val::PteAddr(s))
            } else {
                None
            }
        })
    }

    fn addr(&self, st: &State, c: usize, a: &Addr) -> Result<Val, LitmusError> {
        let base = Self::reg(st, c, a.base);
        let off = match a.off {
            Operand::Imm(n) => n,
            Operand::Reg { reg: r, width: w } => {
                let v = Self::reg(st, c, r).num();
                if w == RegWidth::W {
                    (v as u32 as i32) as i64 as u64
                } else {
                    v
                }
            }
        };
        if off == 0 && !matches!(base, Val::Int(_) | Val::Desc(_)) {
            return Ok(base);
        }
        let n = base.num().wrapping_add(off);
        self.resolve(n).ok_or_else(|| {
            self.err(format!(
                "access to {n:#x}, which is no location of the test"
            ))
        })
    }

    /// Writes memory, with the BBM bookkeeping for descriptors and the
    /// exclusive monitors.
    fn write(&self, st: &mut State, writer: usize, l: Loc, v: Val) {
        let v = match l {
            Loc::Pte(_) => Val::Desc(v.num()),
            Loc::Data(_) | Loc::Elem(..) => v,
        };
        st.mem[self.mi(l)] = v;
        if let Some(bit) = self.loc_bit(l) {
            relaxed::written_past(st, writer, bit);
        }
        for (i, cpu) in st.cpus.iter_mut().enumerate() {
            if i != writer && cpu.excl == Some(l) {
                cpu.excl = None;
            }
        }
        if let Loc::Pte(sym) = l {
            let d = v.num();
            st.pend.push((sym, writer as u8, d, false));
            let mut bbm = std::mem::replace(&mut st.bbm[usize::from(sym)], TtdBbm::new(None));
            let mut warn = false;
            bbm.write(writer, d, cacheable(d), |&old, _| {
                warn |= self.needs_bbm(st, old, d);
            });
            st.bbm[usize::from(sym)] = bbm;
            st.warn |= warn;
        }
    }

    /// Writes a descriptor as the hardware does when it updates AF or the
    /// dirty state: an atomic update, seen by walkers at once, and by
    /// explicit accesses once it reaches memory (`State::hu`).
    fn hw_write(&self, st: &mut State, c: usize, s: Sym, d: u64) {
        st.hu.push((s, c as u8, d));
        st.pend.push((s, c as u8, d, false));
        let i = st.pend.len() - 1;
        self.propagate(st, i);
    }

    /// Makes pending hardware update `i` (the oldest of its descriptor)
    /// reach memory: explicit accesses see it from now on.
    fn flush_hu(&self, st: &mut State, i: usize) {
        let (s, c, d) = st.hu.remove(i);
        self.write(st, usize::from(c), Loc::Pte(s), Val::Desc(d));
        // Walkers have it already.
        st.pend.pop();
    }

    /// Records that `c`'s translation used value `d` of descriptor `s`: if
    /// that is another CPU's hardware update still on its way to memory,
    /// it reaches memory now (Armv8 is other-multi-copy atomic: a write
    /// another observer has read is visible to all; catalogue tests
    /// `NT-12-dsb-allha`, `MP+HA-DSB.ISH`: Forbidden).
    fn seen_hu(&self, st: &mut State, c: usize, s: Sym, d: u64) {
        if st
            .hu
            .iter()
            .any(|e| e.0 == s && e.2 == d && usize::from(e.1) != c)
        {
            self.flush_hus(st, Some(s), None);
        }
    }

    /// Makes every pending hardware update of descriptor `s` (all if
    /// None) by CPU `c` (any if None) reach memory, oldest first.
    fn flush_hus(&self, st: &mut State, s: Option<Sym>, c: Option<usize>) {
        while let Some(i) = st
            .hu
            .iter()
            .rposition(|e| s.is_none_or(|s| s == e.0) && c.is_none_or(|c| c == usize::from(e.1)))
        {
            let sym = st.hu[i].0;
            let first = st.hu.iter().position(|e| e.0 == sym).unwrap_or(i);
            self.flush_hu(st, first);
        }
    }

    /// Makes pending descriptor store `i` (the oldest of its descriptor)
    /// visible to walkers; the value may then be cached by every CPU that
    /// uses it.
    fn propagate(&self, st: &mut State, i: usize) {
        let (sym, _, d, _) = st.pend.remove(i);
        st.wmem[usize::from(sym)] = d;
        for c in 0..st.cpus.len() {
            if !st.cpus[c].done && self.vas[c] >> sym & 1 == 1 {
                insert(&mut st.whist[c], (sym, d));
            }
        }
        if cacheable(d) {
            for c in 0..st.cpus.len() {
                if !st.cpus[c].done && self.vas[c] >> sym & 1 == 1 {
                    insert(&mut st.tlbs[c], (sym, d));
                }
            }
        }
    }

    /// Records that `c` read location `l`: a descriptor store another CPU
    /// can read is visible to every observer (Armv8 is other-multi-copy
    /// atomic), walkers included; only the writer's own walker may lag
    /// (it needs a DSB).
    fn observed(&self, st: &mut State, c: usize, l: Loc) {
        if let Loc::Pte(s) = l {
            for i in 0..st.pend.len() {
                if st.pend[i].0 == s && usize::from(st.pend[i].1) != c {
                    self.publish(st, i);
                }
            }
        }
    }

    /// Makes pending store `i` visible to the walkers of every CPU but its
    /// writer.
    fn publish(&self, st: &mut State, i: usize) {
        let (sym, w, d, _) = st.pend[i];
        st.pend[i].3 = true;
        for c in 0..st.cpus.len() {
            if c != usize::from(w) && !st.cpus[c].done && self.vas[c] >> sym & 1 == 1 {
                insert(&mut st.whist[c], (sym, d));
            }
        }
        if cacheable(d) {
            for c in 0..st.cpus.len() {
                if c != usize::from(w) && !st.cpus[c].done && self.vas[c] >> sym & 1 == 1 {
                    insert(&mut st.tlbs[c], (sym, d));
                }
            }
        }
    }

    /// Publishes every pending descriptor store of `c` (a DMB other than
    /// DMB LD, or a release).
    fn publish_all(&self, st: &mut State, c: usize) {
        for i in 0..st.pend.len() {
            if usize::from(st.pend[i].1) == c {
                self.publish(st, i);
            }
        }
    }

    /// Returns descriptor `s` as `c`'s walker sees it.
    fn view(st: &State, c: usize, s: Sym) -> u64 {
        st.pend
            .iter()
            .rev()
            .find(|e| e.0 == s && e.3 && usize::from(e.1) != c)
            .map_or(st.wmem[usize::from(s)], |e| e.2)
    }

    /// Makes every descriptor store of `c` visible to walkers (a DSB),
    /// with the older stores to the same descriptors.
    fn drain(&self, st: &mut State, c: usize) {
        while let Some(last) = st.pend.iter().rposition(|e| usize::from(e.1) == c) {
            let sym = st.pend[last].0;
            let first = st.pend.iter().position(|e| e.0 == sym).unwrap_or(last);
            self.propagate(st, first);
        }
    }

    /// Tells whether replacing cacheable `old` by cacheable `new` needs
    /// break-before-make (R_WHZWS; herd7's `TTD-update-needsBBM`).
    fn needs_bbm(&self, st: &State, old: u64, new: u64) -> bool {
        if old == 0 {
            return false;
        }
        let (Some(o), Some(n)) = (PteFields::decode(old), PteFields::decode(new)) else {
            return false;
        };
        if o.device() != n.device() || o.attr != n.attr || o.sh != n.sh {
            return true;
        }
        if o.oa != n.oa {
            let writable = |f: &PteFields| f.db || (f.dbm && self.hd_any);
            let same = self.page_cells(st, o.oa) == self.page_cells(st, n.oa);
            return writable(&o) || writable(&n) || !same;
        }
        false
    }

    /// Returns every way an access by `c` to virtual address `s` may
    /// translate: the state after the translation's side effects and the
    /// physical page or the fault (with the page the walk found).
    fn translate(
        &self,
        st: &State,
        c: usize,
        s: Sym,
        acc: &Access,
    ) -> Vec<(State, Result<Sym, FaultKind>)> {
        let mut out: Vec<(State, Result<Sym, FaultKind>)> = Vec::new();
        let write = matches!(acc, Access::Write);
        for &(es, d) in &st.tlbs[c] {
            if es != s {
                continue;
            }
            let Some(f) = PteFields::decode(d) else {
                continue;
            };
            if self.el0_denied(st, c, &f) {
                out.push((st.clone(), Err(FaultKind::Permission)));
            } else if write && !f.db {
                if f.dbm && self.hd(c) {
                    continue; // the update goes through a walk
                }
                let mut n = st.clone();
                self.seen_hu(&mut n, c, s, d);
                out.push((n, Err(FaultKind::Permission)));
            } else {
                let mut n = st.clone();
                self.seen_hu(&mut n, c, s, d);
                out.push((n, Ok(f.oa)));
            }
        }
        // Early walks: stale values seen since the last context
        // synchronization.
        let cur = Self::view(st, c, s);
        for &(es, d) in &st.whist[c] {
            if es != s || d == cur {
                continue;
            }
            let res = match PteFields::decode(d) {
                _ if d & 1 == 0 => Err(FaultKind::Translation),
                None => Err(FaultKind::Translation),
                Some(f) if !f.af && !self.ha(c) => Err(FaultKind::AccessFlag),
                Some(f) if !f.af => continue,
                Some(f) if self.el0_denied(st, c, &f) => Err(FaultKind::Permission),
                Some(f) if write && !f.db => {
                    if f.dbm && self.hd(c) {
                        continue;
                    }
                    Err(FaultKind::Permission)
                }
                Some(f) => Ok(f.oa),
            };
            let mut n = st.clone();
            self.seen_hu(&mut n, c, s, d);
            out.push((n, res));
        }
        // Faulting early walks from before another CPU's TLBI.
        for &(es, d) in &st.revoked[c] {
            if es != s || d == cur {
                continue;
            }
            let res = match PteFields::decode(d) {
                _ if d & 1 == 0 => FaultKind::Translation,
                None => FaultKind::Translation,
                Some(f) if !f.af && !self.ha(c) => FaultKind::AccessFlag,
                Some(f) if !f.af => continue,
                Some(f) if self.el0_denied(st, c, &f) => FaultKind::Permission,
                Some(f) if write && !f.db && !(f.dbm && self.hd(c)) => FaultKind::Permission,
                _ => continue,
            };
            out.push((st.clone(), Err(res)));
        }
        // A walk.
        let mut n = st.clone();
        let d = Self::view(&n, c, s);
        self.seen_hu(&mut n, c, s, d);
        let quiet = !n.pend.iter().any(|e| e.0 == s);
        let res = match PteFields::decode(d) {
            _ if d & 1 == 0 => Err(FaultKind::Translation),
            None => Err(FaultKind::Translation),
            Some(mut f) => {
                if !f.af && !self.ha(c) {
                    Err(FaultKind::AccessFlag)
                } else if f.af && self.el0_denied(st, c, &f) {
                    Err(FaultKind::Permission)
                } else if write && !f.db && !(f.dbm && self.hd(c)) {
                    if !f.af {
                        if !quiet {
                            return out;
                        }
                        f.af = true;
                        self.hw_write(&mut n, c, s, f.encode());
                    }
                    Err(FaultKind::Permission)
                } else {
                    let mut g = f;
                    g.af = true;
                    if write {
                        g.db = true;
                    }
                    if g != f {
                        // The hardware update is an atomic read-modify-write
                        // of the descriptor; with a store to it still on its
                        // way to walkers, the walk waits.
                        if !quiet {
                            return out;
                        }
                        self.hw_write(&mut n, c, s, g.encode());
                    }
                    Ok(g.oa)
                }
            }
        };
        out.push((n, res));
        out
    }

    /// Removes the TLB entries of `c` for `s` (all if None); the current
    /// descriptor may be cached again at once, so it stays.
    fn invalidate(&self, st: &mut State, issuer: usize, c: usize, s: Option<Sym>) {
        if issuer != c {
            Self::pre_tlbi(st, c, s);
        }
        st.tlbs[c].retain(|e| s.is_some_and(|s| e.0 != s));
        // A walk that read an overwritten value cannot serve an access of
        // another CPU performed after a TLBI of it has taken effect (herd7
        // orders such translation reads before the TLBI: catalogue tests
        // `FC`, `MP+shoot+DSB`), whether the value could be cached or not.
        // The issuer's own later accesses may still use such a walk until
        // its next context synchronization (the ISB of R_DDMVT's sequence;
        // catalogue tests `VIS7+TLBI`, `coRRExpNExp+DSB-TLBI-DSB2`:
        // Allowed without the ISB).
        if issuer != c {
            let cur: Vec<u64> = (0..self.nsym as Sym)
                .map(|x| Self::view(st, c, x))
                .collect();
            let (keep, gone): (Vec<_>, Vec<_>) = st.whist[c]
                .iter()
                .partition(|e| s.is_some_and(|s| e.0 != s) || cur[usize::from(e.0)] == e.1);
            st.whist[c] = keep;
            for e in gone {
                insert(&mut st.revoked[c], e);
            }
        }
        let keep: Vec<(Sym, u64)> = (0..self.nsym as Sym)
            .filter(|&x| s.is_none_or(|s| s == x) && self.vas[c] >> x & 1 == 1)
            .map(|x| (x, Self::view(st, c, x)))
            .filter(|e| cacheable(e.1))
            .collect();
        for e in keep {
            insert(&mut st.tlbs[c], e);
        }
    }

    /// A context synchronization event of `c`: later walks are ordered
    /// after it.
    fn sync(&self, st: &mut State, c: usize) {
        st.whist[c].clear();
        st.revoked[c].clear();
        for x in 0..self.nsym as Sym {
            if self.vas[c] >> x & 1 == 1 {
                let d = Self::view(st, c, x);
                insert(&mut st.whist[c], (x, d));
            }
        }
    }

    fn fault(&self, st: &mut State, c: usize, s: Sym, k: FaultKind) {
        let pc = st.cpus[c].pc;
        Self::pre_fault(st, c, pc);
        let f = (c as u8, pc, s, k);
        if let Err(i) = st.faults.binary_search(&f) {
            st.faults.insert(i, f);
        }
        let th = &self.t.threads[c];
        // Without a handler, the test's fault handling decides (herdtools7
        // `herd/mem.ml`, `add_fault`); the fault is a synchronous exception
        // entry in every mode (`herd/AArch64Sem.ml`, `mk_fault`), so a
        // context synchronization event for what the thread does next.
        match (th.handler, self.t.fault_mode) {
            (Some(h), _) => {
                st.cpus[c].elr = pc;
                st.cpus[c].pc = h;
                self.sync(st, c);
            }
            (None, FaultMode::Fatal) => st.cpus[c].done = true,
            (None, FaultMode::Skip) => {
                st.cpus[c].pc = pc + 1;
                self.sync(st, c);
            }
            // The instruction is executed again, once, as in a handler; a
            // thread that faults again is an execution herd7 discards.
            (None, FaultMode::Handled) if st.cpus[c].retried => st.bad = true,
            (None, FaultMode::Handled) => {
                st.cpus[c].retried = true;
                self.sync(st, c);
            }
        }
    }

    /// Performs a memory access of the instruction at `c`'s pc: `f` gets
    /// the state and the physical location, does the access and returns
    /// false when this way of doing it is impossible (the successor is
    /// dropped).
    /// Tells whether the address of `a` depends on a register written
    /// since `c`'s revoked walks appeared.
    fn addr_dirty(&self, st: &State, c: usize, a: &Addr) -> bool {
        let bit = |r: Reg| st.rdirty[c] >> (r & 63) & 1 == 1;
        bit(a.base) || matches!(a.off, Operand::Reg { reg: r, .. } if bit(r))
    }

    fn access(
        &self,
        st: &State,
        c: usize,
        a: &Addr,
        acc: Access,
        out: &mut Vec<State>,
        f: &dyn Fn(&mut State, Loc) -> bool,
    ) -> Result<(), LitmusError> {
        let clean;
        let st = if !st.revoked[c].is_empty() && self.addr_dirty(st, c, a) {
            let mut n = st.clone();
            n.revoked[c].clear();
            clean = n;
            &clean
        } else {
            st
        };
        let pc = st.cpus[c].pc;
        if st.cpus[c].pre.iter().any(|e| e.0 == pc) {
            // The walk was done early.
            let mut n = st.clone();
            match Self::take_pre(&mut n, c, pc) {
                Some((_, Ok(pa))) if f(&mut n, Loc::Data(pa)) => {
                    n.cpus[c].pc += 1;
                    out.push(n);
                }
                Some((s, Err(k))) => {
                    self.fault(&mut n, c, s, k);
                    out.push(n);
                }
                _ => {}
            }
            return Ok(());
        }
        match self.addr(st, c, a)? {
            Val::Va(s) => {
                for (mut n, r) in self.translate(st, c, s, &acc) {
                    match r {
                        Ok(pa) => {
                            if !f(&mut n, Loc::Data(pa)) {
                                continue;
                            }
                            n.cpus[c].pc += 1;
                        }
                        Err(k) => self.fault(&mut n, c, s, k),
                    }
                    out.push(n);
                }
            }
            Val::VaOff(s, o) => {
                for (mut n, r) in self.translate(st, c, s, &acc) {
                    match r {
                        Ok(pa) => {
                            if self.elems.binary_search(&(pa, o)).is_err() {
                                let p = &self.t.syms[usize::from(pa)];
                                return Err(self.err(format!(
                                    "access to PA({p})+{o}, which is no element of an array"
                                )));
                            }
                            if !f(&mut n, Loc::Elem(pa, o)) {
                                continue;
                            }
                            n.cpus[c].pc += 1;
                        }
                        Err(k) => self.fault(&mut n, c, s, k),
                    }
                    out.push(n);
                }
            }
            Val::Pa(s) => {
                let mut n = st.clone();
                if f(&mut n, Loc::Data(s)) {
                    n.cpus[c].pc += 1;
                    out.push(n);
                }
            }
            Val::PteAddr(s) => {
                let mut n = st.clone();
                if matches!(acc, Access::Write) {
                    self.flush_hus(&mut n, Some(s), None);
                }
                if f(&mut n, Loc::Pte(s)) {
                    n.cpus[c].pc += 1;
                    out.push(n);
                }
            }
            _ => return Err(self.err("access through a value that is no address")),
        }
        Ok(())
    }

    fn reg(st: &State, c: usize, r: Reg) -> Val {
        st.cpus[c]
            .regs
            .get(usize::from(r))
            .copied()
            .unwrap_or(Val::Int(0))
    }

    fn set(st: &mut State, c: usize, r: Reg, v: Val) {
        if r != ZR {
            let regs = &mut st.cpus[c].regs;
            let r = usize::from(r);
            if r >= regs.len() {
                regs.resize(r + 1, Val::Int(0));
            }
            regs[r] = v;
        }
    }

    fn operand(st: &State, c: usize, o: Operand) -> Val {
        match o {
            Operand::Imm(n) => Val::Int(n),
            Operand::Reg { reg: r, width: w } => {
                let v = Self::reg(st, c, r);
                if w == RegWidth::W { narrow(v, 4) } else { v }
            }
        }
    }

    /// Every successor of `st` by one step of CPU `c`.
    fn step(&self, st: &State, c: usize, out: &mut Vec<State>) -> Result<(), LitmusError> {
        let start = out.len();
        self.step_inner(st, c, out)?;
        if st.revoked[c].is_empty() {
            return Ok(());
        }
        let th = &self.t.threads[c];
        let pc = usize::from(st.cpus[c].pc);
        let Some(&ins) = th.code.get(pc) else {
            return Ok(());
        };
        // An acquire orders the later walks after it (herd7: `[A|Q]; po`
        // in `bob`; catalogue test `FI` Forbidden): LDAR, LDAXR, LDAPR.
        // Atomics are treated as acquires too, whatever their order,
        // conservatively (SWPAL: catalogue test `S+shoot+swpal-mmufault`
        // Forbidden).
        let acquire = match ins {
            Instr::Load { order, .. } => order.acquires(),
            Instr::Swp { .. } | Instr::Cas { .. } | Instr::Amo { .. } => true,
            _ => false,
        };
        // Register data flow: a loaded value taints its register, and an
        // instruction's result is tainted when a source register is. The
        // condition flags carry no address dependency (herd7 allows
        // `S+shoot+pickaddr_mmufault_db`, whose address comes from a
        // CSEL on a comparison with the read value).
        let bit = |r: Reg| st.rdirty[c] >> (r & 63) & 1 == 1;
        let op = |o: Operand| matches!(o, Operand::Reg { reg: r, .. } if bit(r));
        let dest = match ins {
            Instr::Mov { dst: d, src: o, .. } => Some((d, op(o))),
            Instr::Alu {
                dst: d,
                lhs: n,
                rhs: o,
                ..
            } => Some((d, bit(n) || op(o))),
            Instr::Csel {
                dst: d,
                if_true: n,
                if_false: m,
                ..
            } => Some((d, bit(n) || bit(m))),
            Instr::Cset { dst: d, .. } | Instr::Adr { dst: d, .. } => Some((d, false)),
            Instr::Load { dst: d, .. }
            | Instr::StoreExclusive { status: d, .. }
            | Instr::Swp { dst: d, .. }
            | Instr::Cas { expected: d, .. }
            | Instr::Amo { dst: d, .. } => Some((d, true)),
            _ => None,
        };
        for n in &mut out[start..] {
            if acquire {
                n.revoked[c].clear();
            } else if let Some((d, taint)) = dest {
                if taint {
                    n.rdirty[c] |= 1u64 << (d & 63);
                } else {
                    n.rdirty[c] &= !(1u64 << (d & 63));
                }
            }
        }
        Ok(())
    }

    fn step_inner(&self, st: &State, c: usize, out: &mut Vec<State>) -> Result<(), LitmusError> {
        let cpu = &st.cpus[c];
        let th = &self.t.threads[c];
        let Some(&ins) = th.code.get(usize::from(cpu.pc)) else {
            let mut n = st.clone();
            n.cpus[c].done = true;
            out.push(n);
            return Ok(());
        };
        let mut n = st.clone();
        let next = |n: &mut State| n.cpus[c].pc += 1;
        match ins {
            Instr::Halt => n.cpus[c].done = true,
            Instr::Nop => next(&mut n),
            Instr::Dmb {
                kind: BarrierKind::Ld,
            } => {
                n.revoked[c].clear();
                next(&mut n);
            }
            Instr::Isb => {
                self.sync(&mut n, c);
                next(&mut n);
            }
            Instr::Dmb {
                kind: BarrierKind::Full | BarrierKind::St,
            } => {
                n.revoked[c].clear();
                // The descriptor stores before the barrier are ordered
                // before the stores after it, which other CPUs see at once
                // on this model: they reach the other CPUs' walkers now.
                self.publish_all(&mut n, c);
                next(&mut n);
            }
            Instr::Dsb { kind } => {
                n.revoked[c].clear();
                if kind != BarrierKind::Ld {
                    self.drain(&mut n, c);
                }
                if kind == BarrierKind::Full {
                    self.flush_hus(&mut n, None, Some(c));
                    let mine: Vec<_> = n
                        .inv
                        .iter()
                        .copied()
                        .filter(|e| usize::from(e.0) == c)
                        .collect();
                    n.inv.retain(|e| usize::from(e.0) != c);
                    for (i, t, s) in mine {
                        self.invalidate(&mut n, usize::from(i), usize::from(t), s);
                    }
                }
                for b in &mut n.bbm {
                    b.dsb(c, kind != BarrierKind::Ld, kind == BarrierKind::Full, 0);
                }
                next(&mut n);
            }
            Instr::Mov {
                dst: d,
                width: w,
                src: o,
            } => {
                let v = Self::operand(&n, c, o);
                Self::set(
                    &mut n,
                    c,
                    d,
                    if w == RegWidth::W { narrow(v, 4) } else { v },
                );
                next(&mut n);
            }
            Instr::Alu {
                op,
                dst: d,
                width: w,
                lhs: a,
                rhs: o,
            } => {
                let x = Self::reg(&n, c, a);
                let y = Self::operand(&n, c, o);
                let v = alu(op, x, y, self);
                Self::set(
                    &mut n,
                    c,
                    d,
                    if w == RegWidth::W { narrow(v, 4) } else { v },
                );
                next(&mut n);
            }
            Instr::Cmp { lhs: a, rhs: o } => {
                let x = Self::reg(&n, c, a).num();
                let y = Self::operand(&n, c, o).num();
                n.cpus[c].z = x == y;
                next(&mut n);
            }
            Instr::Csel {
                dst: d,
                if_true: a,
                if_false: b,
                cond: cc,
            } => {
                let v = if holds(cc, n.cpus[c].z) {
                    Self::reg(&n, c, a)
                } else {
                    Self::reg(&n, c, b)
                };
                Self::set(&mut n, c, d, v);
                next(&mut n);
            }
            Instr::Cset { dst: d, cond: cc } => {
                let v = Val::Int(u64::from(holds(cc, n.cpus[c].z)));
                Self::set(&mut n, c, d, v);
                next(&mut n);
            }
            Instr::B {
                cond: cc,
                target: t,
            } => {
                if cc.is_none_or(|cc| holds(cc, n.cpus[c].z)) {
                    n.cpus[c].pc = t;
                    self.back_jump(&mut n, c, cpu.pc, t);
                } else {
                    next(&mut n);
                }
            }
            Instr::Cbz {
                on,
                reg: r,
                target: t,
            } => {
                let zero = Self::reg(&n, c, r).num() == 0;
                if zero == (on == BranchOn::Zero) {
                    n.cpus[c].pc = t;
                    self.back_jump(&mut n, c, cpu.pc, t);
                } else {
                    next(&mut n);
                }
            }
            Instr::Adr { dst: d, target: t } => {
                Self::set(&mut n, c, d, Val::Label(c as u8, t));
                next(&mut n);
            }
            Instr::MsrElr { src: r } => {
                n.cpus[c].elr = match Self::reg(&n, c, r) {
                    Val::Label(t, i) if usize::from(t) == c => i,
                    _ => {
                        return Err(
                            self.err("ELR_EL1 set to a value that is no label of the thread")
                        );
                    }
                };
                next(&mut n);
            }
            Instr::Eret => {
                self.sync(&mut n, c);
                n.cpus[c].pc = n.cpus[c].elr;
            }
            Instr::Tlbi {
                scope,
                shareability,
            } => {
                let sym = match scope {
                    TlbiScope::All => None,
                    TlbiScope::Page(r) => {
                        let v = Self::reg(&n, c, r).num();
                        // A page that is no symbol's (e.g. the page of a
                        // descriptor address) has no entry to invalidate.
                        match (0..self.nsym)
                            .find(|&s| va_of(s as Sym) >> 12 == v || va_of(s as Sym) == v)
                        {
                            Some(s) => Some(s as Sym),
                            None => {
                                next(&mut n);
                                out.push(n);
                                return Ok(());
                            }
                        }
                    }
                };
                let targets: Vec<usize> = if shareability == TlbiShareability::Broadcast {
                    (0..n.cpus.len()).collect()
                } else {
                    vec![c]
                };
                for t in targets {
                    let e = (c as u8, t as u8, sym);
                    if let Err(i) = n.inv.binary_search(&e) {
                        n.inv.insert(i, e);
                    }
                }
                for (s, b) in n.bbm.iter_mut().enumerate() {
                    if sym.is_none_or(|x| usize::from(x) == s) {
                        b.tlbi(c);
                    }
                }
                next(&mut n);
            }
            Instr::Load {
                dst: t,
                addr: a,
                width,
                exclusive,
                ..
            } => {
                self.access(&n, c, &a, Access::Read, out, &|m, l| {
                    let v = narrow(m.mem[self.mi(l)], width.bytes());
                    Self::set(m, c, t, v);
                    self.observed(m, c, l);
                    if exclusive == Exclusivity::Exclusive {
                        m.cpus[c].excl = Some(l);
                    }
                    true
                })?;
                return Ok(());
            }
            Instr::Store {
                src: t,
                addr: a,
                width,
                order,
            } => {
                let v = narrow(Self::reg(&n, c, t), width.bytes());
                if order == StoreOrder::Release {
                    // A release orders every earlier store before it.
                    self.publish_all(&mut n, c);
                }
                self.access(&n, c, &a, Access::Write, out, &|m, l| {
                    self.write(m, c, l, v);
                    true
                })?;
                return Ok(());
            }
            Instr::StoreExclusive {
                status: s,
                src: t,
                addr: a,
                width,
                ..
            } => {
                let v = narrow(Self::reg(&n, c, t), width.bytes());
                // A failed store-exclusive writes nothing and needs no
                // translation.
                let mut fail = n.clone();
                Self::set(&mut fail, c, s, Val::Int(1));
                fail.cpus[c].excl = None;
                fail.cpus[c].pc += 1;
                out.push(fail);
                self.access(&n, c, &a, Access::Write, out, &|m, l| {
                    if m.cpus[c].excl != Some(l) {
                        return false;
                    }
                    self.write(m, c, l, v);
                    Self::set(m, c, s, Val::Int(0));
                    m.cpus[c].excl = None;
                    true
                })?;
                return Ok(());
            }
            Instr::Swp {
                src: s,
                dst: t,
                addr: a,
                width,
                ..
            } => {
                let w = width.bytes();
                let v = narrow(Self::reg(&n, c, s), w);
                self.access(&n, c, &a, Access::Write, out, &|m, l| {
                    let old = narrow(m.mem[self.mi(l)], w);
                    self.write(m, c, l, v);
                    Self::set(m, c, t, old);
                    true
                })?;
                return Ok(());
            }
            Instr::Amo {
                op,
                src: s,
                dst: t,
                addr: a,
                width,
                ..
            } => {
                let w = width.bytes();
                let x = narrow(Self::reg(&n, c, s), w);
                self.access(&n, c, &a, Access::Write, out, &|m, l| {
                    let old = narrow(m.mem[self.mi(l)], w);
                    let o = old.num();
                    let y = x.num();
                    let r = match op {
                        AmoOp::Add => o.wrapping_add(y),
                        AmoOp::Clr => o & !y,
                        AmoOp::Set => o | y,
                        AmoOp::Eor => o ^ y,
                    };
                    let r = if matches!(old, Val::Desc(_)) {
                        Val::Desc(r)
                    } else {
                        retag(r, &[old, x], self)
                    };
                    self.write(m, c, l, narrow(r, w));
                    Self::set(m, c, t, old);
                    true
                })?;
                return Ok(());
            }
            Instr::Cas {
                expected: s,
                new: t,
                addr: a,
                width,
                ..
            } => {
                let w = width.bytes();
                let cmp = narrow(Self::reg(&n, c, s), w);
                let new = narrow(Self::reg(&n, c, t), w);
                // A CAS whose comparison fails is a read (no write
                // permission needed); one that succeeds is a write.
                self.access(&n, c, &a, Access::Read, out, &|m, l| {
                    let old = narrow(m.mem[self.mi(l)], w);
                    if old.num() == cmp.num() {
                        return false;
                    }
                    Self::set(m, c, s, old);
                    true
                })?;
                self.access(&n, c, &a, Access::Write, out, &|m, l| {
                    let old = narrow(m.mem[self.mi(l)], w);
                    if old.num() != cmp.num() {
                        return false;
                    }
                    self.write(m, c, l, new);
                    Self::set(m, c, s, old);
                    true
                })?;
                return Ok(());
            }
        }
        out.push(n);
        Ok(())
    }
}

fn insert(v: &mut Vec<(Sym, u64)>, e: (Sym, u64)) {
    if let Err(i) = v.binary_search(&e) {
        v.insert(i, e);
    }
}

/// Drops what no future step can observe: the TLB entries of finished
/// CPUs, and pending invalidations whose target holds no entry in their
/// scope, cached or seen by an early walk: a TLBI orders the later walks
/// after it whatever they read, an invalid value too (herdtools7
/// `herd/libdir/aarch64.cat`, `TLBI-ob` and `TLBI-ca`: a walk after the
/// TLBI reads no value overwritten before it; catalogue tests
/// `NT-20-tlbi`, `NT-23-tlbi+dsb`: a stale invalid descriptor faults no
/// access ordered after the TLBI's DSB).
fn canonical(n: &mut State) {
    if n.warn {
        // Only the warning depends on the BBM bookkeeping, and it is raised.
        n.bbm.fill(TtdBbm::new(None));
    }
    for b in &mut n.bbm {
        b.canonical();
    }
    for c in 0..n.cpus.len() {
        if n.revoked[c].is_empty() {
            n.rdirty[c] = 0;
        }
    }
    for (c, cpu) in n.cpus.iter().enumerate() {
        if cpu.done {
            n.tlbs[c].clear();
            n.whist[c].clear();
            n.revoked[c].clear();
        }
    }
    let stale = |n: &State, t: usize, e: &(Sym, u64)| Ctx::view(n, t, e.0) != e.1;
    let keep: Vec<bool> = n
        .inv
        .iter()
        .map(|&(iss, t, s)| {
            let t = usize::from(t);
            let scope = |e: &&(Sym, u64)| s.is_none_or(|s| e.0 == s);
            // The issuer's own early walks are kept until its next
            // context synchronization (`Ctx::invalidate`).
            n.tlbs[t].iter().any(|e| scope(&e))
                || (usize::from(iss) != t
                    && n.whist[t].iter().filter(scope).any(|e| stale(n, t, e)))
        })
        .collect();
    let mut i = 0;
    n.inv.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

fn holds(cc: CondCode, z: bool) -> bool {
    match cc {
        CondCode::Eq => z,
        CondCode::Ne => !z,
    }
}

/// Truncates a value to `w` bytes (addresses and descriptors are kept).
fn narrow(v: Val, w: u8) -> Val {
    match v {
        Val::Int(n) if w < 8 => Val::Int(n & ((1u64 << (8 * u32::from(w))) - 1)),
        _ => v,
    }
}

/// Keeps an address's tag when arithmetic leaves the number unchanged
/// (`ADD X0,X1,X2` with X2 = 0 after `EOR X2,X3,X3`), or finds the
/// location a computed number names.
fn retag(r: u64, inputs: &[Val], cx: &Ctx<'_>) -> Val {
    for v in inputs {
        if !matches!(v, Val::Int(_)) && v.num() == r {
            return *v;
        }
    }
    if inputs.iter().any(|v| matches!(v, Val::Desc(_))) {
        return Val::Desc(r);
    }
    match cx.resolve(r) {
        Some(v) if r != 0 => v,
        _ => Val::Int(r),
    }
}

fn alu(op: Alu, x: Val, y: Val, cx: &Ctx<'_>) -> Val {
    let (a, b) = (x.num(), y.num());
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
    if matches!(op, Alu::Lsr | Alu::Lsl) && !matches!(x, Val::Desc(_)) {
        return Val::Int(r);
    }
    retag(r, &[x, y], cx)
}

fn eval(p: &Prop, get: &dyn Fn(&Obs) -> ObsVal) -> bool {
    match p {
        Prop::True => true,
        Prop::Eq(o, v) => match get(o) {
            ObsVal::Val(x) => {
                x == *v || (x.num() == v.num() && !matches!((x, v), (Val::Desc(_), Val::Desc(_))))
            }
            ObsVal::Fault(_) => false,
        },
        Prop::Fault(o) => get(o) == ObsVal::Fault(true),
        Prop::Not(q) => !eval(q, get),
        Prop::And(v) => v.iter().all(|q| eval(q, get)),
        Prop::Or(v) => v.iter().any(|q| eval(q, get)),
    }
}

fn collect_obs(p: &Prop, out: &mut Vec<Obs>) {
    match p {
        Prop::True => {}
        Prop::Eq(o, _) | Prop::Fault(o) => {
            if !out.contains(o) {
                out.push(*o);
            }
        }
        Prop::Not(q) => collect_obs(q, out),
        Prop::And(v) | Prop::Or(v) => v.iter().for_each(|q| collect_obs(q, out)),
    }
}

fn observe(cx: &Ctx<'_>, st: &State, o: &Obs) -> ObsVal {
    match *o {
        Obs::Reg(t, r) => ObsVal::Val(st.cpus.get(usize::from(t)).map_or(Val::Int(0), |c| {
            c.regs.get(usize::from(r)).copied().unwrap_or(Val::Int(0))
        })),
        Obs::Mem(l) => ObsVal::Val(st.mem[cx.mi(l)]),
        Obs::Fault(t, pc, va, k) => ObsVal::Fault(st.faults.iter().any(|f| {
            f.0 == t
                && pc.is_none_or(|p| p == f.1)
                && va.is_none_or(|v| v == f.2)
                && k.is_none_or(|k| k == f.3)
        })),
    }
}

/// Returns, per thread, the symbols it may access through a translation
/// (bit s): those whose virtual address it holds in a register at the
/// start; all if it computes addresses with a register offset; and, if it
/// writes a register it uses as an address (it loads a pointer, or moves
/// one), every virtual address the test starts with in any register or in
/// memory, since such values may reach it through memory (herd7 catalogue
/// test `newlob/MP+dmb.ish+scope-tlbi.vmall-dsb.ish-isb`, Allowed: the
/// address comes from a load, and the CPU's TLB may hold the page's entry
/// from before the TLBI).
fn accessible_vas(t: &Test) -> Vec<u64> {
    let addr_of = |i: &Instr| i.addr().copied();
    let dest = |i: &Instr| match *i {
        Instr::Mov { dst: d, .. }
        | Instr::Alu { dst: d, .. }
        | Instr::Csel { dst: d, .. }
        | Instr::Cset { dst: d, .. }
        | Instr::Adr { dst: d, .. }
        | Instr::Load { dst: d, .. }
        | Instr::StoreExclusive { status: d, .. }
        | Instr::Swp { dst: d, .. }
        | Instr::Cas { expected: d, .. }
        | Instr::Amo { dst: d, .. } => Some(d),
        _ => None,
    };
    let mut any = 0u64;
    for v in t
        .init_regs
        .iter()
        .map(|e| e.2)
        .chain(t.init_mem.iter().map(|e| e.1))
    {
        if let Val::Va(s) = v {
            any |= 1 << s;
        }
    }
    (0..t.threads.len())
        .map(|c| {
            let mut m = 0u64;
            for &(th, _, v) in &t.init_regs {
                if usize::from(th) == c
                    && let Val::Va(s) = v
                {
                    m |= 1 << s;
                }
            }
            let code = &t.threads[c].code;
            let computed = code
                .iter()
                .filter_map(addr_of)
                .any(|a| matches!(a.off, Operand::Reg { .. }));
            if computed {
                return u64::MAX;
            }
            let written: Vec<Reg> = code.iter().filter_map(dest).filter(|&d| d != ZR).collect();
            let loaded = code
                .iter()
                .filter_map(addr_of)
                .any(|a| written.contains(&a.base));
            if loaded { m | any } else { m }
        })
        .collect()
}

/// Explores every execution of `t`.
///
/// # Errors
///
/// Returns [`LitmusError::Runtime`] when an execution meets something the
/// model does not handle (an access to a number that names no location, a
/// TLBI of an unknown page, ...).
pub fn run(t: &Test, opts: &Options) -> Result<Outcome, LitmusError> {
    let start = Instant::now();
    let nsym = t.syms.len();
    let vas = accessible_vas(t);
    let cx = Ctx {
        t,
        nsym,
        hd_any: t.tthm.hd != 0,
        vas,
        meta: t
            .threads
            .iter()
            .map(|th| (0..th.code.len()).map(|i| meta(th, i)).collect())
            .collect(),
        may_pa: may_pa(t),
        counted: t.threads.iter().map(unroll::counted).collect(),
        early: opts.early_translations,
        elems: {
            let mut e: Vec<(Sym, u16)> = t
                .arrays
                .iter()
                .flat_map(|&(s, size, n)| (1..n).map(move |i| (s, i * u16::from(size))))
                .collect();
            e.sort_unstable();
            e
        },
    };
    if nsym + cx.elems.len() > 64 {
        return Err(cx.err("more than 64 data locations (pages and array elements)"));
    }
    let nthreads = t.threads.len();
    let mut mem = Vec::with_capacity(2 * nsym);
    for s in 0..nsym {
        mem.push(Val::Int(0));
        mem.push(Val::Desc(PteFields::new(s as Sym).encode()));
    }
    mem.resize(2 * nsym + cx.elems.len(), Val::Int(0));
    for &(l, v) in &t.init_mem {
        mem[cx.mi(l)] = match l {
            Loc::Pte(_) => Val::Desc(v.num()),
            Loc::Data(_) | Loc::Elem(..) => v,
        };
    }
    let nregs = t
        .init_regs
        .iter()
        .filter(|e| e.1 != ZR)
        .map(|e| usize::from(e.1) + 1)
        .max()
        .unwrap_or(0);
    let mut cpus = vec![
        Cpu {
            pc: 0,
            done: false,
            z: false,
            elr: 0,
            excl: None,
            regs: vec![Val::Int(0); nregs],
            rob: Vec::new(),
            retried: false,
            pre: Vec::new(),
            loops: Vec::new(),
            past: Vec::new(),
        };
        nthreads
    ];
    for &(th, r, v) in &t.init_regs {
        if r != ZR {
            cpus[usize::from(th)].regs[usize::from(r)] = v;
        }
    }
    let bbm = (0..nsym)
        .map(|s| {
            let d = mem[2 * s + 1].num();
            TtdBbm::new(cacheable(d).then_some(d))
        })
        .collect();
    let tlbs: Vec<Vec<(Sym, u64)>> = (0..nthreads)
        .map(|c| {
            (0..nsym)
                .filter(|&x| cx.vas[c] >> x & 1 == 1 && cacheable(mem[2 * x + 1].num()))
                .map(|x| (x as Sym, mem[2 * x + 1].num()))
                .collect()
        })
        .collect();
    let wmem = (0..nsym).map(|x| mem[2 * x + 1].num()).collect();
    let whist: Vec<Vec<(Sym, u64)>> = (0..nthreads)
        .map(|c| {
            (0..nsym)
                .filter(|&x| cx.vas[c] >> x & 1 == 1)
                .map(|x| (x as Sym, mem[2 * x + 1].num()))
                .collect()
        })
        .collect();
    let init = State {
        cpus,
        mem,
        wmem,
        pend: Vec::new(),
        whist,
        revoked: vec![Vec::new(); nthreads],
        rdirty: vec![0; nthreads],
        tlbs,
        inv: Vec::new(),
        faults: Vec::new(),
        bbm,
        hu: Vec::new(),
        warn: false,
        bad: false,
        cut: false,
    };
    let mut shown: Vec<Obs> = t.locations.clone();
    collect_obs(&t.prop, &mut shown);
    // Visited states are kept as 128-bit fingerprints (two independent
    // 64-bit hashes with fixed keys): a collision would need ~2^64 states.
    let fp = |s: &State| -> u128 {
        let mut a = rustc_hash::FxHasher::default();
        s.hash(&mut a);
        let mut b = std::hash::DefaultHasher::new();
        s.hash(&mut b);
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    };
    let mut seen: FxHashSet<u128> = FxHashSet::default();
    seen.insert(fp(&init));
    let mut stack = vec![init];
    let mut finals = BTreeMap::new();
    let mut warn = false;
    let mut unroll_cut = false;
    let mut limit_hit = false;
    let mut succ = Vec::new();
    while let Some(st) = stack.pop() {
        warn |= st.warn;
        if st.cpus.iter().all(|c| c.done) && st.hu.is_empty() {
            let key = Final {
                vals: shown.iter().map(|o| observe(&cx, &st, o)).collect(),
                faults: st
                    .faults
                    .iter()
                    .filter(|f| shown.iter().any(|o| crate::states::matches(o, f)))
                    .copied()
                    .collect(),
            };
            let sat = eval(&t.prop, &|o| observe(&cx, &st, o));
            finals.insert(key, sat);
            continue;
        }
        succ.clear();
        for c in 0..nthreads {
            if st.cpus[c].done {
                continue;
            }
            if opts.relaxed {
                cx.step_relaxed(&st, c, &mut succ)?;
            } else {
                cx.step(&st, c, &mut succ)?;
            }
            cx.early_hu(&st, c, &mut succ);
            // Speculative walks: with hardware AF, a walk for any address
            // may set AF at any time (herd7 allows it: catalogue test
            // `SpecAF`). Fills of cacheable values need no step: see
            // `State::tlbs`.
            if cx.ha(c) {
                for s in 0..nsym {
                    let s = s as Sym;
                    let d = st.wmem[usize::from(s)];
                    if d & 1 == 0 || st.pend.iter().any(|e| e.0 == s) {
                        continue;
                    }
                    let Some(mut f) = PteFields::decode(d) else {
                        continue;
                    };
                    if f.af {
                        continue;
                    }
                    let mut n = st.clone();
                    f.af = true;
                    cx.hw_write(&mut n, c, s, f.encode());
                    succ.push(n);
                }
            }
        }
        // Descriptor stores reaching walkers (the oldest of each
        // descriptor).
        for i in 0..st.pend.len() {
            if st.pend[..i].iter().any(|e| e.0 == st.pend[i].0) {
                continue;
            }
            let mut n = st.clone();
            cx.propagate(&mut n, i);
            succ.push(n);
        }
        // Hardware updates reaching memory (the oldest of each
        // descriptor).
        for i in 0..st.hu.len() {
            if st.hu[..i].iter().any(|e| e.0 == st.hu[i].0) {
                continue;
            }
            let mut n = st.clone();
            cx.flush_hu(&mut n, i);
            succ.push(n);
        }
        // Pending invalidations taking effect.
        for k in 0..st.inv.len() {
            let mut n = st.clone();
            let (iss, tgt, s) = n.inv.remove(k);
            cx.invalidate(&mut n, usize::from(iss), usize::from(tgt), s);
            succ.push(n);
        }
        for mut n in succ.drain(..) {
            if n.bad {
                continue;
            }
            if n.cut {
                unroll_cut = true;
                continue;
            }
            canonical(&mut n);
            if seen.len() as u64 >= opts.max_states {
                limit_hit = true;
                break;
            }
            if seen.insert(fp(&n)) {
                stack.push(n);
            }
        }
        if limit_hit {
            break;
        }
    }
    Ok(Outcome {
        shown,
        finals,
        states: seen.len() as u64,
        limit_hit,
        bbm_warning: warn,
        unroll_cut,
        seconds: start.elapsed().as_secs_f64(),
    })
}
