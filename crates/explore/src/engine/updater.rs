//! The updater's (CPU 0's) kernel steps: each operation of the protocol's
//! program (descriptor stores and the af-cas retries, barriers, TLBIs
//! issued and completed, frees, copies and fills of fresh pages, which
//! stay unpublished until a barrier, pausing CPUs, RCU grace periods, its
//! own stores through the tables).

use std::fmt::Write as _;

use vmsa::machine::{PendingStore, PendingTlbi};
use vmsa::walk;
use vmsa::{PhysAddr, VirtAddr};

use crate::hazard::{Hazard, HazardKind};
use crate::state::State;
use crate::world::{Op, Source};

use super::Engine;

impl<'a> Engine<'a> {
    /// Marks a write to a fresh frame not mapped yet as not visible to
    /// other CPUs until a barrier. (Writes to a page already mapped are
    /// ordinary concurrent writes: readers see the old or the new words.)
    fn unpublish(&self, s: &mut State, frame: u64) {
        if self.sc.fresh.binary_search(&frame).is_err() {
            return;
        }
        let g = self.sc.config.granule;
        let read = |pa: PhysAddr| self.read(s, pa.0);
        let mapped = self.sc.pages.iter().any(|&(va, _, _)| {
            walk::walk_each(
                g,
                VirtAddr(va),
                g.start_level(),
                self.sc.root,
                &read,
                |_| {},
            )
            .is_ok_and(|(leaf, _, _, _)| leaf.oa.0 >> self.shift == frame)
        });
        if !mapped && let Err(i) = s.unpublished.binary_search(&frame) {
            s.unpublished.insert(i, frame);
        }
    }

    pub(super) fn run_updater(
        &self,
        s: &mut State,
        log: Option<&mut String>,
    ) -> Result<bool, Hazard> {
        let pc = usize::from(s.pc);
        let op = &self.sc.ops[pc];
        // What the log adds to the instruction (made only with a log: the
        // search runs without one).
        let on = log.is_some();
        let mut note = String::new();
        let mut say = |text: &dyn Fn() -> String| {
            if on {
                note = text();
            }
        };
        let mut next = pc + 1;
        match op {
            Op::Store { pa, value } => self.store(s, pa.0, *value),
            Op::Cas {
                pa, expect, tlbi, ..
            } if s.retry_stage > 0 => {
                // The retry of this entry: clear AF again and flush it.
                next = pc;
                match s.retry_stage {
                    1 => {
                        self.store(s, pa.0, *expect);
                        say(&|| format!(" (retry {}: clear AF again)", s.retries));
                    }
                    2 => {
                        s.pending.clear();
                        say(&|| " (retry: dsb ishst)".into());
                    }
                    3 => {
                        self.issue_tlbi(s, *tlbi);
                        say(&|| format!(" (retry: {tlbi})"));
                    }
                    _ => {
                        self.complete_tlbis(s);
                        say(&|| " (retry: dsb ish)".into());
                    }
                }
                s.retry_stage = (s.retry_stage + 1) % 5;
            }
            Op::Cas {
                pa,
                expect,
                value,
                retries,
                ..
            } => {
                let cur = self.read(s, pa.0);
                if cur == *expect {
                    self.store(s, pa.0, *value);
                    s.retries = 0;
                } else if s.retries < *retries {
                    s.retries += 1;
                    s.retry_stage = 1;
                    next = pc;
                    say(&|| format!(" -> found {cur:#x}, retry"));
                } else {
                    return Err(Hazard {
                        kind: HazardKind::GaveUp,
                        cpu: 0,
                        va: None,
                        detail: format!(
                            "the descriptor at {:#x} holds {cur:#x}, not {expect:#x}, after {} retries",
                            pa.0, retries
                        ),
                    });
                }
            }
            Op::Dsb(kind) => {
                s.pending.clear();
                s.unpublished.clear();
                if kind.completes_tlbi() {
                    self.complete_tlbis(s);
                }
            }
            Op::Isb | Op::Alloc => {}
            Op::Tlbi(t) => self.issue_tlbi(s, *t),
            Op::Free { first, count } => {
                for f in *first..first + count {
                    match s.freed.binary_search(&f) {
                        Ok(_) => {
                            return Err(Hazard {
                                kind: HazardKind::DoubleFree,
                                cpu: 0,
                                va: None,
                                detail: format!("pfn {f:#x} freed twice"),
                            });
                        }
                        Err(i) => s.freed.insert(i, f),
                    }
                }
            }
            Op::Copy { dst, src } => {
                s.mem.copy(*dst, *src, self.shift);
                self.unpublish(s, *dst);
            }
            Op::Fill { frame, first, step } => {
                s.mem.fill(
                    *frame,
                    Source::Fill {
                        first: *first,
                        step: *step,
                    },
                    self.shift,
                );
                self.unpublish(s, *frame);
            }
            Op::Words { frame, words } => {
                for &(w, v) in words.iter() {
                    s.mem.write((frame << self.shift) + u64::from(w) * 8, v);
                }
                self.unpublish(s, *frame);
            }
            Op::Pause => s.paused = true,
            Op::Resume => s.paused = false,
            Op::SynchronizeRcu => match s.gp {
                None => {
                    let m =
                        s.wl.iter()
                            .enumerate()
                            .filter(|(_, w)| w.rcu)
                            .fold(0u64, |m, (i, _)| m | 1 << (i + 1));
                    if m != 0 {
                        s.gp = Some(m);
                        next = pc;
                        say(&|| " (waits for the CPUs in a read section)".into());
                    }
                }
                Some(_) => s.gp = None,
            },
            Op::WriteWord { va, value } => {
                let g = self.sc.config.granule;
                let read = |pa: PhysAddr| self.read(s, pa.0);
                let w = walk::walk_each(
                    g,
                    VirtAddr(*va),
                    g.start_level(),
                    self.sc.root,
                    &read,
                    |_| {},
                );
                match w {
                    Ok((leaf, lvl, _, _)) => {
                        let pa = leaf.oa.0 + (va & (g.level_size(lvl) - 1));
                        s.mem.write(pa, *value);
                        s.wrote(*va, *value);
                    }
                    Err(f) => {
                        return Err(Hazard {
                            kind: HazardKind::Fault(f.kind),
                            cpu: 0,
                            va: Some(*va),
                            detail: format!("the updater's own store faulted: {f}"),
                        });
                    }
                }
            }
        }
        if let Some(l) = log {
            let _ = write!(l, "cpu0: {}{note}", self.sc.program.instrs[pc]);
        }
        s.pc = next as u16;
        Ok(true)
    }

    /// Issues a TLBI from the updater. A broadcast one may take effect on
    /// every other CPU until a `DSB ISH` completes it (the updater's own
    /// TLB, which it never walks through, is not waited on). A local one
    /// affects the updater's TLB alone: the other CPUs keep their entries,
    /// so it waits on no CPU and is recorded only until the `DSB ISH` (the
    /// state still shows it is pending).
    fn issue_tlbi(&self, s: &mut State, t: vmsa::Tlbi) {
        let all = u64::MAX >> (64 - s.tlbs.len());
        let waiting = match t.scope {
            vmsa::TlbiScope::Broadcast => all & !1,
            vmsa::TlbiScope::Local => 0,
        };
        s.tlbis.push(PendingTlbi {
            cpu: 0,
            op: t,
            waiting,
        });
    }

    /// `DSB ISH` on the updater: its TLBIs complete on every CPU still
    /// waiting for them.
    fn complete_tlbis(&self, s: &mut State) {
        for t in std::mem::take(&mut s.tlbis) {
            for c in 0..s.tlbs.len() {
                if t.waiting & (1 << c) != 0 {
                    s.tlbs[c].invalidate(&t.op);
                }
            }
        }
    }

    fn store(&self, s: &mut State, pa: u64, value: u64) {
        let prev = self.read(s, pa);
        s.mem.write(pa, value);
        s.pending.push(PendingStore {
            cpu: 0,
            pa: PhysAddr(pa),
            prev,
            value,
            walkers: 0,
        });
    }
}
