//! The exhaustive search: every interleaving of steps explored from the
//! initial state, states canonicalized and deduplicated by fingerprint,
//! the final condition evaluated on each final state ([`run`]).

use std::hash::{Hash, Hasher};
use std::time::Instant;

use rustc_hash::FxHashSet;

use super::*;

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

pub(crate) fn eval(p: &Prop, get: &dyn Fn(&Obs) -> ObsVal) -> bool {
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

pub(crate) fn collect_obs(p: &Prop, out: &mut Vec<Obs>) {
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
    if opts.model == Model::Explorer {
        return crate::onto::run(t, opts);
    }
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
