//! The workload CPUs' instructions: the address an operation accesses,
//! what each operation does (loads, stores, the refcount CAS, picks, RCU
//! read sections, the straddle's two halves) with the translation chosen,
//! and how that translation's hardware update and TLB fills are committed.

use std::fmt::Write as _;

use vmsa::walk::{self, Access, Choice};

use crate::hazard::{Hazard, HazardKind};
use crate::state::{Half, State};
use crate::workload::{Addr, WOp};
use crate::world::REF_ONE;

use super::Engine;

impl<'a> Engine<'a> {
    fn resolve(&self, s: &State, i: usize, a: &Addr) -> u64 {
        match *a {
            Addr::Fixed(v) => v,
            Addr::Picked(o) => {
                let w = &self.sc.workloads[i];
                w.candidates()[usize::from(s.wl[i].pick.unwrap_or(0))] + o
            }
        }
    }

    pub(super) fn access_of(&self, s: &State, i: usize) -> (u64, Access) {
        let w = &self.sc.workloads[i];
        match &w.ops[usize::from(s.wl[i].pc)] {
            WOp::Load { addr, .. } => (self.resolve(s, i, addr), Access::Load),
            WOp::LoadHalf { va, .. } => (*va, Access::Load),
            WOp::Store { addr, .. } | WOp::CasIfNonZero { addr, .. } => {
                (self.resolve(s, i, addr), Access::Store)
            }
            _ => (0, Access::Load),
        }
    }

    /// Applies a choice's hardware update and fills to `cpu`'s TLB, as
    /// [`vmsa::Machine::commit`] does. Returns false if the update found
    /// the descriptor changed. `fresh` says which fills (bit `k` for fill
    /// `k`) the TLB may not hold yet; the others are not inserted again
    /// (all are, after a hardware update, which evicts entries).
    pub(super) fn commit(&self, s: &mut State, cpu: usize, c: &Choice, fresh: u8) -> bool {
        if let Some(u) = c.hw_update {
            if self.read(s, u.pa.0) != u.expected.0 || s.pending.iter().any(|p| p.pa == u.pa) {
                return false;
            }
            s.mem.write(u.pa.0, u.new.0);
            let tlb = &mut s.tlbs[cpu];
            let stale: Vec<usize> = (0..tlb.entries().len())
                .filter(|&k| tlb.entries()[k].desc_pa == u.pa)
                .collect();
            for k in stale.into_iter().rev() {
                tlb.evict(k);
            }
        }
        let fresh = if c.hw_update.is_some() {
            u8::MAX
        } else {
            fresh
        };
        for (k, e) in c.fills.iter().enumerate() {
            if fresh & (1 << k) != 0 && (e.is_leaf() || self.sc.threads.walk_cache) {
                s.tlbs[cpu].insert(*e);
            }
        }
        true
    }

    /// Runs workload CPU `cpu`'s next operation with translation `choice`;
    /// with `log`, describes it (also when it ends in a hazard).
    pub(super) fn run_cpu(
        &self,
        s: &mut State,
        cpu: usize,
        choice: usize,
        memoized: Option<Option<(&Choice, u8)>>,
        log: Option<&mut String>,
    ) -> Result<bool, Hazard> {
        let mut text = String::new();
        let r = self.cpu_op(s, cpu, choice, memoized, log.is_some(), &mut text);
        if let Some(l) = log
            && !matches!(r, Ok(false))
        {
            l.push_str(&text);
        }
        r
    }

    fn cpu_op(
        &self,
        s: &mut State,
        cpu: usize,
        choice: usize,
        memoized: Option<Option<(&Choice, u8)>>,
        on: bool,
        text: &mut String,
    ) -> Result<bool, Hazard> {
        let i = cpu - 1;
        let w = &self.sc.workloads[i];
        let pc = usize::from(s.wl[i].pc);
        let op = &w.ops[pc];
        let mut next = pc + 1;
        if on {
            *text = format!("cpu{cpu}: {op}");
        }
        match op {
            WOp::Pick(c) => {
                s.wl[i].pick = Some(choice as u8);
                if on {
                    *text = format!("cpu{cpu}: picks the struct page at {:#x}", c[choice]);
                }
            }
            WOp::RcuLock => s.wl[i].rcu = true,
            WOp::RcuUnlock => {
                s.wl[i].rcu = false;
                if let Some(m) = s.gp.as_mut() {
                    *m &= !(1 << cpu);
                }
            }
            WOp::SkipIfFakeHead { reg, to } => {
                let picked = self.resolve(s, i, &Addr::Picked(0));
                let flags = s.wl[i].regs[*reg];
                if picked != w.head
                    && flags & mm::vmemmap::PG_HEAD != 0
                    && picked.is_multiple_of(1 << self.shift)
                {
                    next = *to;
                    if on {
                        text.push_str(": fake head, skipped");
                    }
                }
            }
            WOp::CasIfNonZero { reg, .. } if s.wl[i].regs[*reg] >> 32 == 0 => {
                if on {
                    text.push_str(": refcount zero, no CAS");
                }
            }
            _ => {
                let (va, access) = self.access_of(s, i);
                let owned;
                let ch = match memoized {
                    Some(found) => found,
                    None => {
                        owned = self.choices(s, cpu, va, access);
                        owned.get(choice).map(|ch| (ch, u8::MAX))
                    }
                };
                let Some((ch, fresh)) = ch else {
                    return Ok(false);
                };
                if let Some(f) = self.freed_table(s, ch) {
                    let what = format!("{op}: {}", self.freed_table_walk(ch, f));
                    return Err(self.hazard(s, cpu, HazardKind::FreedTableWalk, va, what));
                }
                if !self.commit(s, cpu, ch, fresh) {
                    return Ok(false);
                }
                if on {
                    let _ = write!(text, " via {}", describe_via(ch));
                }
                let t = match ch.result {
                    Err(f) => {
                        return Err(self.hazard(
                            s,
                            cpu,
                            HazardKind::Fault(f.kind),
                            va,
                            format!("{f} on {op}"),
                        ));
                    }
                    Ok(t) => t,
                };
                let frame = t.pa.0 >> self.shift;
                if s.unpublished.binary_search(&frame).is_ok() {
                    return Err(self.hazard(
                        s,
                        cpu,
                        HazardKind::Uninitialized,
                        va,
                        format!(
                            "{op} reached pfn {frame:#x}, whose initialization cpu0 has not made visible (no barrier before the store that published it)"
                        ),
                    ));
                }
                if s.freed.binary_search(&frame).is_ok() {
                    return Err(self.hazard(
                        s,
                        cpu,
                        HazardKind::UseAfterFree,
                        va,
                        format!(
                            "{op} reached pfn {frame:#x}, freed, via {}",
                            describe_via(ch)
                        ),
                    ));
                }
                match op {
                    WOp::Load { reg, .. } => {
                        let v = self.read(s, t.pa.0);
                        s.wl[i].regs[*reg] = v;
                        if on {
                            let _ = write!(text, " = {v:#x}");
                        }
                    }
                    WOp::Store { value, .. } => {
                        s.mem.write(t.pa.0, *value);
                        s.wrote(va, *value);
                    }
                    WOp::CasIfNonZero { reg, .. } => {
                        let cur = self.read(s, t.pa.0);
                        let exp = s.wl[i].regs[*reg];
                        if cur == exp {
                            s.mem.write(t.pa.0, cur + REF_ONE);
                            s.wrote(va, cur + REF_ONE);
                            if on {
                                text.push_str(" (swapped)");
                            }
                        } else {
                            if on {
                                let _ = write!(text, " (found {cur:#x}, no swap)");
                            }
                        }
                    }
                    WOp::LoadHalf { half, .. } => {
                        let v = self.read(s, t.pa.0);
                        s.wl[i].regs[*half] = v;
                        let h = self.classify(s, va, v);
                        if on {
                            let _ = write!(text, " = {v:#x}");
                        }
                        if *half == 0 {
                            s.wl[i].half = h;
                        } else if let Half::Loaded { versions: first } = s.wl[i].half
                            && let Half::Loaded { versions: second } = h
                            && first & second == 0
                        {
                            // Torn: no one version of the two pages shows
                            // both halves (one half through each).
                            let first_value = s.wl[i].regs[0];
                            let what = format!(
                                "the halves come from different versions of vmemmap pages 0 and 1: the first ({first_value:#x}) is what they show mapped as {}, the second ({v:#x}) mapped as {}; no mapping (pfn of page 0, pfn of page 1) the program passes through shows both",
                                self.versions_text(first),
                                self.versions_text(second),
                            );
                            return Err(self.hazard(s, cpu, HazardKind::TornRead, va, what));
                        } else {
                            s.wl[i].half = Half::None;
                        }
                    }
                    _ => {}
                }
            }
        }
        s.wl[i].pc = next as u8;
        Ok(true)
    }
}

fn describe_via(c: &Choice) -> String {
    match &c.via {
        walk::Via::Tlb(e) => format!("TLB [{e}]"),
        walk::Via::Walk => "a walk".into(),
        walk::Via::WalkFrom(e) => format!("a walk from cached [{e}]"),
        walk::Via::Conflict => "a TLB conflict".into(),
    }
}
