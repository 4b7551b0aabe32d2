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

use serde::Serialize;

use crate::LitmusError;
use crate::ast::*;
use vmsa::herd_bbm::TtdBbm;

mod access;
mod early;
mod fault;
mod hw_update;
mod relaxed;
mod search;
mod step;
mod translate;
mod unroll;
mod visibility;
use relaxed::{Meta, may_pa, meta};
pub use search::run;
pub(crate) use search::{collect_obs, eval};
use step::narrow;
pub use unroll::UNROLL;
pub(crate) use unroll::counted;

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

/// Which model runs a test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Model {
    /// This module's executor (one level of table, per-CPU walker views,
    /// early walks, the relaxed mode).
    #[default]
    Executor,
    /// The explorer, which gives `hvo verify`'s verdicts (module
    /// [`crate::onto`]: the test on 4K tables).
    Explorer,
}

impl Model {
    /// Returns its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Model::Executor => "executor",
            Model::Explorer => "explorer",
        }
    }
}

impl std::str::FromStr for Model {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "executor" => Ok(Model::Executor),
            "explorer" => Ok(Model::Explorer),
            _ => Err(format!(
                "unknown model `{s}`; expected `executor` or `explorer`"
            )),
        }
    }
}

/// Options of a run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Which model runs the test.
    pub model: Model,
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
            model: Model::Executor,
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
}

fn insert(v: &mut Vec<(Sym, u64)>, e: (Sym, u64)) {
    if let Err(i) = v.binary_search(&e) {
        v.insert(i, e);
    }
}
