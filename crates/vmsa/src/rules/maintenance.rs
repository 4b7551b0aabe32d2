//! Barriers and TLB maintenance: a DSB makes a CPU's stores visible and
//! completes its TLBIs (removing the stale records they cover); a TLBI
//! marks the records it covers, and one issued before the store it should
//! remove is visible breaks R_DDMVT.
//!
//! The checker does not track which CPU may hold a stale entry: any CPU
//! may have cached any translation it could walk. A local TLBI (no `IS`
//! suffix) invalidates only the issuing CPU's TLB, so on a machine of more
//! than one CPU it removes no stale record: it cannot be the invalidation
//! R_DDMVT's break-before-make needs, nor make a free safe.

use super::Rule;
use super::{RuleChecker, Stale, StaleKind};
use crate::tlb::{Tlbi, TlbiScope};

impl RuleChecker {
    pub(super) fn dsb(&mut self, cpu: usize, completes: bool) {
        let c = self.cpu_slot(cpu);
        self.synced[c] = self.seq;
        if !completes {
            return;
        }
        let bit = 1u64 << (cpu % 64);
        for (level, va) in std::mem::take(&mut self.marked[c]) {
            let map = &mut self.stale[usize::from(level)];
            if let Some(v) = map.get_mut(&va) {
                let (removed, empty) = v.retain(|s| s.tlbi_by & bit == 0);
                self.nstale -= removed;
                if empty {
                    map.remove(&va);
                }
            }
        }
        if let Some(snap) = self.all_marked[c].take() {
            let visible = |s: &Stale| s.born <= snap.get(s.writer).copied().unwrap_or(0);
            // Every record of CPU w was born at or before `last_born[w]`, so
            // when each of those is covered by the snapshot, every record is
            // visible, without visiting them.
            let all = (0..self.last_born.len())
                .all(|w| self.last_born[w] <= snap.get(w).copied().unwrap_or(0))
                || self
                    .stale
                    .iter()
                    .all(|m| m.values().all(|v| v.as_slice().iter().all(visible)));
            if all {
                // The common case: the flush covers everything.
                for m in &mut self.stale {
                    m.clear();
                }
                self.nstale = 0;
            } else {
                let mut removed = 0;
                for map in &mut self.stale {
                    map.retain(|v| {
                        let (r, empty) = v.retain(|s| !visible(s));
                        removed += r;
                        !empty
                    });
                }
                self.nstale -= removed;
            }
        }
    }

    pub(super) fn tlbi(&mut self, cpu: usize, op: &Tlbi) {
        let asid = self.asid;
        let c = self.cpu_slot(cpu);
        // Whether the TLBI reaches every CPU that may cache an entry.
        let everywhere = op.scope == TlbiScope::Broadcast || self.synced.len() == 1;
        let mut early = None;
        if !op.kind.by_va() {
            // VMALLE1IS: everything visible now is invalidated at completion.
            let unsynced = (0..self.synced.len()).any(|w| self.last_born[w] > self.synced[w]);
            if unsynced {
                early = self.stale().into_iter().find(|s| !self.visible(s));
            }
            if everywhere {
                self.all_marked[c] = Some(self.synced.clone());
            }
        } else {
            let g = self.config.granule;
            let bit = 1u64 << (cpu % 64);
            for level in g.levels() {
                let key = op.va.0 & !(g.level_size(level) - 1);
                let synced = &self.synced;
                let Some(v) = self.stale[usize::from(level)].get_mut(&key) else {
                    continue;
                };
                let mut hit = false;
                for s in v.as_mut_slice() {
                    let covers = (matches!(s.kind, StaleKind::Leaf { .. })
                        || !op.kind.last_level_only())
                        && (s.global || op.kind.all_asids() || op.asid == asid);
                    if !covers {
                        continue;
                    }
                    if s.born <= synced.get(s.writer).copied().unwrap_or(0) {
                        if everywhere {
                            s.tlbi_by |= bit;
                            hit = true;
                        }
                    } else if early.is_none() {
                        early = Some(*s);
                    }
                }
                if hit {
                    self.marked[c].push((level, key));
                }
            }
        }
        if let Some(s) = early {
            self.report(
                Rule::TlbiBeforeDsb,
                cpu,
                s.desc_pa,
                Some((s.level, s.va)),
                (Some(s.desc), None),
                || {
                    format!(
                        "{op} issued before a DSB of cpu{} made the store replacing {} visible",
                        s.writer, s.desc
                    )
                },
            );
        }
    }
}
