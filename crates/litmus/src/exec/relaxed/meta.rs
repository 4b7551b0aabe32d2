//! What the relaxed mode knows of each instruction ([`Meta`], computed once
//! per test: registers read and written, accesses, barriers) and the pages a
//! virtual address may map to (`may_pa`).

use super::*;

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
pub(in crate::exec) fn meta(th: &Thread, i: usize) -> Meta {
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
pub(in crate::exec) fn may_pa(t: &Test) -> Vec<u64> {
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
