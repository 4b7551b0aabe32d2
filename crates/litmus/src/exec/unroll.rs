//! herd7's loop unrolling bound.
//!
//! herd7 builds a thread's events by running its code symbolically, and
//! bounds the loops that this cannot decide: a backward jump (to an address
//! at or before the jump's) that is unconditional, or conditional on a value
//! not determined when the code is run (one that depends on a read from
//! memory), is taken at most `unroll` times per target; the next one cuts
//! the execution there (herdtools7 `herd/mem.ml`, `fetch_addr`: "loop
//! unrolling limit reached", then `EM.cutoffT`). The bound is `-unroll`,
//! 2 by default outside ASL (`herd/opts.ml`). A loop on a register counter
//! alone is decided and not bounded.
//!
//! The executor does the same, with the same default ([`UNROLL`]): a
//! counted backward branch taken more than [`UNROLL`] times to one target
//! on an execution drops that execution, and the outcome says that some
//! were dropped (`Outcome::unroll_cut`). This keeps a test whose loop spins
//! on memory without bound (catalogue test `Sc06+BIS`, a CAS retry loop with
//! an observed iteration counter) finite, as herd7 does. ERET returns are
//! not counted (herd7 counts them when they jump backwards, which depends on
//! where it places the handler's code).

use super::*;

/// The most times a counted backward branch is taken to one target on an
/// execution (herd7's `-unroll` default outside ASL).
pub const UNROLL: u8 = 2;

/// The bit of the condition flags in [`mem_dependent`]'s result.
const FLAGS: u64 = 1 << 32;

fn bit(r: Reg) -> u64 {
    if r == ZR { 0 } else { 1u64 << (r & 31) }
}

fn op_bit(o: Operand) -> u64 {
    match o {
        Operand::Reg { reg: r, .. } => bit(r),
        Operand::Imm(_) => 0,
    }
}

/// Returns the registers (bit r) and flags ([`FLAGS`]) of `th` whose value
/// may depend on a read from memory on some path: a flow-insensitive
/// fixed point over the thread's code (an over-approximation of herd7's
/// "not determined").
fn mem_dependent(th: &Thread) -> u64 {
    let mut m = 0u64;
    loop {
        let before = m;
        for ins in &th.code {
            let (dest, src) = match *ins {
                Instr::Load { dst: d, .. }
                | Instr::StoreExclusive { status: d, .. }
                | Instr::Swp { dst: d, .. }
                | Instr::Amo { dst: d, .. }
                | Instr::Cas { expected: d, .. } => (bit(d), true),
                Instr::Mov { dst: d, src: o, .. } => (bit(d), m & op_bit(o) != 0),
                Instr::Alu {
                    dst: d,
                    lhs: a,
                    rhs: o,
                    ..
                } => (bit(d), m & (bit(a) | op_bit(o)) != 0),
                Instr::Csel {
                    dst: d,
                    if_true: a,
                    if_false: b,
                    ..
                } => (bit(d), m & (bit(a) | bit(b) | FLAGS) != 0),
                Instr::Cset { dst: d, .. } => (bit(d), m & FLAGS != 0),
                Instr::Cmp { lhs: a, rhs: o } => (FLAGS, m & (bit(a) | op_bit(o)) != 0),
                _ => (0, false),
            };
            if src {
                m |= dest;
            }
        }
        if m == before {
            return m;
        }
    }
}

/// Returns, per instruction of `th`, whether it is a backward branch herd7
/// bounds: unconditional, or conditional on a value that may come from
/// memory.
pub(crate) fn counted(th: &Thread) -> Vec<bool> {
    let m = mem_dependent(th);
    th.code
        .iter()
        .enumerate()
        .map(|(i, ins)| match *ins {
            Instr::B {
                cond: cc,
                target: t,
            } => usize::from(t) <= i && (cc.is_none() || m & FLAGS != 0),
            Instr::Cbz {
                reg: r, target: t, ..
            } => usize::from(t) <= i && m & bit(r) != 0,
            _ => false,
        })
        .collect()
}

impl Ctx<'_> {
    /// Counts a taken branch of `c` from `pc` to `t` if herd7 bounds it,
    /// and cuts the execution (`State::cut`) past the bound.
    pub(super) fn back_jump(&self, st: &mut State, c: usize, pc: u16, t: u16) {
        if !self.counted[c]
            .get(usize::from(pc))
            .copied()
            .unwrap_or(false)
        {
            return;
        }
        let loops = &mut st.cpus[c].loops;
        let i = loops.partition_point(|e| e.0 < t);
        match loops.get_mut(i) {
            Some(e) if e.0 == t => {
                if e.1 >= UNROLL {
                    st.cut = true;
                } else {
                    e.1 += 1;
                }
            }
            _ => loops.insert(i, (t, 1)),
        }
    }
}
