//! A thread's state ([`crate::thread`]): its position, flags, exclusive
//! monitor, registers, loop counts and early-walk bookkeeping, and its
//! encoding as words.

use vmsa::walk::FaultKind;

use crate::thread::ThreadFault;

use super::thread_hu::{self, EarlyWalk, PendingHu};
use super::views::Views;

/// Whether a thread runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThStatus {
    /// It has instructions left.
    #[default]
    Running,
    /// It finished (its code ended, or a fatal fault stopped it).
    Done,
    /// It went past the loop bound ([`crate::thread::Threads::unroll`]):
    /// the execution is cut, and its final state says so.
    Cut,
}

/// One thread's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Th {
    /// The next instruction.
    pub pc: u16,
    /// Running, done or cut.
    pub status: ThStatus,
    /// The Z flag (the only flag the litmus subset's conditions read).
    pub z: bool,
    /// ELR_EL1: where ERET returns (an instruction index).
    pub elr: u16,
    /// The thread took a fault without a handler under
    /// [`crate::thread::FaultMode::Handled`] and executes the faulting
    /// instruction again (herdtools7 `herd/mem.ml`, `re_exec`).
    pub retried: bool,
    /// The exclusive monitor: the physical address a load-exclusive
    /// marked.
    pub excl: Option<u64>,
    /// The registers ([`crate::thread::ThreadCode::regs`]'s numbering).
    pub regs: Vec<u64>,
    /// Per target of a counted backward branch, sorted: the times taken.
    pub loops: Vec<(u16, u8)>,
    /// What its walker may still use of the descriptor values it saw
    /// (early walks: `engine/thread/views.rs`).
    pub views: Views,
    /// Its hardware AF/dirty updates not in memory for explicit accesses
    /// yet, oldest first (`engine/thread/hw_update.rs`).
    pub hu: Vec<PendingHu>,
    /// Its early store translations, by instruction
    /// (`engine/thread/early.rs`).
    pub pre: Vec<EarlyWalk>,
}

impl Th {
    /// Tells whether the thread has instructions left.
    pub fn running(&self) -> bool {
        self.status == ThStatus::Running
    }

    /// Appends the encoding: a header word (pc, status, Z, retried,
    /// whether the monitor is set, whether updates or early walks are
    /// pending, the loop and register counts, ELR), the monitor's address
    /// if set, the loops, the registers, the updates and early walks
    /// (`thread_hu`).
    pub(super) fn encode(&self, out: &mut Vec<u64>) {
        let status = match self.status {
            ThStatus::Running => 0,
            ThStatus::Done => 1,
            ThStatus::Cut => 2,
        };
        out.push(
            u64::from(self.pc)
                | status << 16
                | u64::from(self.z) << 18
                | u64::from(self.retried) << 19
                | u64::from(self.excl.is_some()) << 20
                | u64::from(!self.hu.is_empty() || !self.pre.is_empty()) << 23
                | (self.loops.len() as u64 & 0xff) << 24
                | (self.regs.len() as u64 & 0xff) << 32
                | u64::from(self.elr) << 48,
        );
        if let Some(a) = self.excl {
            out.push(a);
        }
        out.extend(
            self.loops
                .iter()
                .map(|&(t, n)| u64::from(t) << 8 | u64::from(n)),
        );
        out.extend_from_slice(&self.regs);
        self.views.encode(out);
        if !self.hu.is_empty() || !self.pre.is_empty() {
            thread_hu::encode(&self.hu, &self.pre, out);
        }
    }

    /// Rebuilds a thread from the words `next` yields, as
    /// [`Th::encode`] wrote them.
    pub(super) fn decode(next: &mut dyn FnMut() -> u64) -> Th {
        let h = next();
        let excl = (h >> 20 & 1 != 0).then(&mut *next);
        let loops = (0..(h >> 24 & 0xff))
            .map(|_| {
                let w = next();
                ((w >> 8) as u16, w as u8)
            })
            .collect();
        let regs = (0..(h >> 32 & 0xff)).map(|_| next()).collect();
        let views = Views::decode(next);
        let (hu, pre) = if h >> 23 & 1 != 0 {
            thread_hu::decode(next)
        } else {
            (Vec::new(), Vec::new())
        };
        Th {
            pc: h as u16,
            status: match h >> 16 & 3 {
                0 => ThStatus::Running,
                1 => ThStatus::Done,
                _ => ThStatus::Cut,
            },
            z: h >> 18 & 1 != 0,
            retried: h >> 19 & 1 != 0,
            excl,
            regs,
            loops,
            elr: (h >> 48) as u16,
            views,
            hu,
            pre,
        }
    }
}

const KINDS: [FaultKind; 4] = [
    FaultKind::Translation,
    FaultKind::Permission,
    FaultKind::AccessFlag,
    FaultKind::TlbConflict,
];

/// Appends a fault's encoding: two words.
pub(super) fn encode_fault(f: &ThreadFault, out: &mut Vec<u64>) {
    let kind = KINDS.iter().position(|&k| k == f.kind).unwrap_or(0) as u64;
    out.extend_from_slice(&[
        u64::from(f.thread) << 32 | u64::from(f.pc) << 8 | kind,
        f.va,
    ]);
}

/// Rebuilds a fault from its two words.
pub(super) fn decode_fault(a: u64, va: u64) -> ThreadFault {
    ThreadFault {
        thread: (a >> 32) as u8,
        pc: (a >> 8) as u16,
        va,
        kind: KINDS[(a & 0xff) as usize % KINDS.len()],
    }
}
