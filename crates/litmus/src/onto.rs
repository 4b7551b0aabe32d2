//! A litmus test on the explorer: its locations mapped onto 4K
//! translation tables, its threads run as the explorer's threads
//! (`explore::thread`) on the explorer's engine and search, its final
//! condition evaluated on the final states the search reports. This is
//! the model that gives `hvo verify`'s verdicts, measured against herd7
//! on herd7's own tests.
//!
//! The mapping: symbol `x` (index s) keeps the executor's numbers (module
//! `ast`): its virtual page [`va_of`], its physical page [`pa_of`];
//! four tables, one per level, map every symbol's page through one
//! level-3 table ([`L3`]), whose entry for `x` is `PTE(x)` (herd7's single
//! level: one last-level descriptor per location, the upper levels fixed).
//! Descriptor values are the hardware's encoding already
//! ([`PteFields::encode`]), with the same output addresses.
//!
//! Each thread's CPU has the test's hardware AF/dirty management for it
//! (`TTHM=`) and runs at the Exception level `EL0=` gives it.
//!
//! Not on the explorer yet (a test that needs one of these is refused
//! with [`LitmusError::Unsupported`], and the conformance harness counts
//! it): the relaxed mode.

use std::collections::BTreeMap;
use std::time::Instant;

use explore::engine::Engine;
use explore::search::{Limits, explore};
use explore::thread::{
    CODE_BASE, ExceptionLevel, FaultMode as EFaultMode, HwManagement, ThreadCode, Threads,
};
use explore::{Scenario, Verdict as SearchVerdict};
use vmsa::features::{Config, Features};
use vmsa::memory::Memory;
use vmsa::{Descriptor, Granule, PhysAddr};

use crate::LitmusError;
use crate::ast::*;
use crate::exec::{Final, ObsVal, Options, Outcome, UNROLL, collect_obs, counted, eval};

/// The level-3 table: `PTE(x)` is its entry for `x`'s page.
pub const L3: u64 = 0x8000_0000;

/// The tables above it (levels 2, 1, 0: the root), one page each.
const UPPER: [u64; 3] = [0x8000_1000, 0x8000_2000, 0x8000_3000];

/// The physical memory the machine has (the tables are its last pages).
const MEM_SIZE: u64 = 0x8000_4000;

/// The MAIR of the mapping: attribute index i as [`ATTRS`] numbers it
/// (0 Normal write-back, 1 Device-nGnRnE, 2 Device-nGnRE, 3 Device-GRE,
/// 4 Device-nGRE, 5 Normal non-cacheable, 6 Normal write-through; Arm
/// ARM D19, MAIR_EL1 attribute encodings).
const MAIR: u64 = 0x00bb_4408_0c04_00ff;

/// Returns the address of `PTE(x)` in the tables.
pub fn pte_of(s: Sym) -> u64 {
    L3 + 8 * ((va_of(s) >> 12) & 511)
}

/// Returns the number a value of the test is on the explorer.
fn num(v: Val) -> u64 {
    match v {
        Val::PteAddr(s) => pte_of(s),
        Val::Label(t, i) => CODE_BASE | u64::from(t) << 16 | u64::from(i),
        v => v.num(),
    }
}

/// Returns the physical address of a location.
fn loc_pa(l: Loc) -> u64 {
    match l {
        Loc::Data(s) => pa_of(s),
        Loc::Pte(s) => pte_of(s),
        Loc::Elem(s, o) => pa_of(s) + u64::from(o),
    }
}

/// Returns the value of the test a number of the explorer shows as:
/// an address of a symbol, a label, a descriptor (a number that decodes
/// as a page descriptor of a symbol's page), or an integer.
fn val(t: &Test, n: u64) -> Val {
    for s in 0..t.syms.len() as Sym {
        if n == va_of(s) {
            return Val::Va(s);
        }
        if n == pa_of(s) {
            return Val::Pa(s);
        }
        if n == pte_of(s) {
            return Val::PteAddr(s);
        }
    }
    for &(s, size, count) in &t.arrays {
        let o = n.wrapping_sub(va_of(s));
        if o > 0 && o < u64::from(size) * u64::from(count) && o.is_multiple_of(u64::from(size)) {
            return Val::VaOff(s, o as u16);
        }
    }
    if n & !0xffff_ffff == CODE_BASE && ((n >> 16) & 0xffff) < t.threads.len() as u64 {
        return Val::Label((n >> 16) as u8, n as u16);
    }
    if n & 2 == 2 && PteFields::decode(n).is_some() {
        return Val::Desc(n);
    }
    Val::Int(n)
}

fn fault_kind(k: vmsa::FaultKind) -> Option<FaultKind> {
    match k {
        vmsa::FaultKind::Translation => Some(FaultKind::Translation),
        vmsa::FaultKind::AccessFlag => Some(FaultKind::AccessFlag),
        vmsa::FaultKind::Permission => Some(FaultKind::Permission),
        vmsa::FaultKind::TlbConflict => None,
    }
}

fn unsupported(t: &Test, what: &str) -> LitmusError {
    LitmusError::Runtime {
        test: t.name.clone(),
        what: format!("not on the explorer yet: {what}"),
    }
}

/// Builds the explorer's scenario for `t`: the tables, the initial
/// values, the threads. Also returns the physical addresses observed (in
/// the order of `shown`'s memory locations).
fn scenario(t: &Test, shown: &[Obs]) -> Result<Scenario, LitmusError> {
    if t.syms.len() > 256 {
        return Err(unsupported(t, "more than 256 locations"));
    }
    let g = Granule::K4;
    let config = Config {
        granule: g,
        // Hardware AF/dirty management is per thread
        // (`ThreadCode::hw`), not the machine's.
        features: Features {
            mair: MAIR,
            ..Features::default()
        },
        // The idle updater (CPU 0) and the threads.
        ncpus: 1 + t.threads.len(),
    };
    let mut mem = Memory::new(g, MEM_SIZE).map_err(|e| unsupported(t, &e.to_string()))?;
    let mut write = |pa: u64, v: u64| {
        mem.write_u64(PhysAddr(pa), v)
            .map_err(|e| unsupported(t, &e.to_string()))
    };
    // Root -> level 1 -> level 2 -> L3, at the indices of the symbols'
    // pages (all in one 2 MiB region: `va_of`).
    let va0 = va_of(0);
    let mut next = L3;
    for (k, &table) in UPPER.iter().enumerate() {
        let level = 2 - k as u8;
        let d = Descriptor::table(g, level, PhysAddr(next))
            .map_err(|e| unsupported(t, &e.to_string()))?;
        write(table + 8 * g.index(level, va0) as u64, d.0)?;
        next = table;
    }
    let mut init = Vec::new();
    for s in 0..t.syms.len() as Sym {
        write(pte_of(s), PteFields::new(s).encode())?;
        init.push((pa_of(s), 0));
    }
    for &(s, size, count) in &t.arrays {
        for i in 1..count {
            init.push((pa_of(s) + u64::from(i) * u64::from(size), 0));
        }
    }
    for &(l, v) in &t.init_mem {
        match l {
            Loc::Pte(_) => write(loc_pa(l), num(v))?,
            _ => init.push((loc_pa(l), num(v))),
        }
    }
    let mut code: Vec<ThreadCode> = t
        .threads
        .iter()
        .enumerate()
        .map(|(i, th)| ThreadCode {
            code: th.code.clone(),
            text: th.text.clone(),
            regs: Vec::new(),
            handler: th.handler,
            counted: counted(th),
            hw: HwManagement {
                access_flag: t.tthm.ha >> i & 1 == 1,
                dirty: t.tthm.hd >> i & 1 == 1,
            },
            el: if t.el0 >> i & 1 == 1 {
                ExceptionLevel::El0
            } else {
                ExceptionLevel::El1
            },
        })
        .collect();
    for &(th, r, v) in &t.init_regs {
        if r == ZR {
            continue;
        }
        let regs = &mut code[usize::from(th)].regs;
        if regs.len() <= usize::from(r) {
            regs.resize(usize::from(r) + 1, 0);
        }
        regs[usize::from(r)] = num(v);
    }
    let root = *UPPER.last().unwrap_or(&L3);
    let tables: Vec<u64> = std::iter::once(L3).chain(UPPER).map(|a| a >> 12).collect();
    let mut physical: Vec<u64> = (0..t.syms.len() as Sym)
        .map(|s| pa_of(s) >> 12)
        .chain(tables.iter().copied())
        .collect();
    physical.sort_unstable();
    let threads = Threads {
        code,
        fault_mode: match t.fault_mode {
            FaultMode::Fatal => EFaultMode::Fatal,
            FaultMode::Handled => EFaultMode::Handled,
            FaultMode::Skip => EFaultMode::Skip,
        },
        vas: (0..t.syms.len() as Sym).map(va_of).collect(),
        tables,
        physical,
        init,
        observe: shown
            .iter()
            .filter_map(|o| match o {
                Obs::Mem(l) => Some(loc_pa(*l)),
                _ => None,
            })
            .collect(),
        // The tables above level 3 never change (a test writes only
        // `PTE(x)`), so walk-cache entries add no behaviour.
        walk_cache: false,
        // herd7's VMSA model has no TLB conflict aborts: no event or
        // relation of `aarch64.cat` produces one (an update lacking
        // break-before-make is flagged, `Warning-BBM-expected`, and its
        // accesses see either value).
        conflict_aborts: false,
        unroll: UNROLL,
    };
    Ok(Scenario::of_threads(config, mem, PhysAddr(root), threads))
}

/// Explores every execution of `t` on the explorer (sequentially
/// consistent, as the explorer runs HVO).
///
/// # Errors
///
/// Returns [`LitmusError::Runtime`] for a test that needs what the
/// explorer does not have yet (see the module's documentation), and for
/// a search stopped by a limit before its end.
pub fn run(t: &Test, opts: &Options) -> Result<Outcome, LitmusError> {
    let start = Instant::now();
    if opts.relaxed {
        return Err(unsupported(t, "the relaxed mode"));
    }
    let mut shown: Vec<Obs> = t.locations.clone();
    collect_obs(&t.prop, &mut shown);
    let sc = scenario(t, &shown)?;
    let engine = Engine::new(&sc);
    let report = explore(
        &engine,
        &Limits {
            states: opts.max_states,
            ..Limits::default()
        },
    );
    let limit_hit = match &report.verdict {
        SearchVerdict::Safe => false,
        SearchVerdict::Incomplete { .. } => true,
        SearchVerdict::Hazard { hazard, .. } => {
            return Err(LitmusError::Runtime {
                test: t.name.clone(),
                what: format!("the explorer met a hazard: {}", hazard.detail),
            });
        }
    };
    let mut finals = BTreeMap::new();
    let mut unroll_cut = false;
    for f in &report.finals {
        if f.cut {
            unroll_cut = true;
            continue;
        }
        let faults: Vec<(u8, u16, Sym, FaultKind)> = f
            .faults
            .iter()
            .filter_map(|e| {
                let s = (0..t.syms.len() as Sym).find(|&s| va_of(s) == e.va & !0xfff)?;
                Some((e.thread, e.pc, s, fault_kind(e.kind)?))
            })
            .collect();
        let mut words = f.words.iter();
        let mut vals = Vec::new();
        for o in &shown {
            vals.push(match *o {
                Obs::Reg(th, r) => ObsVal::Val(val(
                    t,
                    f.regs
                        .get(usize::from(th))
                        .and_then(|regs| regs.get(usize::from(r)))
                        .copied()
                        .unwrap_or(0),
                )),
                Obs::Mem(Loc::Pte(_)) => ObsVal::Val(Val::Desc(*words.next().unwrap_or(&0))),
                Obs::Mem(_) => ObsVal::Val(val(t, *words.next().unwrap_or(&0))),
                Obs::Fault(..) => {
                    ObsVal::Fault(faults.iter().any(|e| crate::states::matches(o, e)))
                }
            });
        }
        let get = |o: &Obs| vals[shown.iter().position(|x| x == o).unwrap_or(0)];
        let sat = eval(&t.prop, &get);
        let key = Final {
            vals: vals.clone(),
            faults: faults
                .iter()
                .filter(|e| shown.iter().any(|o| crate::states::matches(o, e)))
                .copied()
                .collect(),
        };
        finals.insert(key, sat);
    }
    Ok(Outcome {
        shown,
        finals,
        states: report.states,
        limit_hit,
        // herd7's `Warning-BBM-expected`, computed by the threads over
        // every state explored (`explore`'s `engine/thread/bbm.rs`).
        bbm_warning: report.herd7_bbm,
        unroll_cut,
        seconds: start.elapsed().as_secs_f64(),
    })
}
