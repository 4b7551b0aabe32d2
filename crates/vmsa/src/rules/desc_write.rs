//! A descriptor write at any level: what stops being live, what a TLB may
//! still hold (I_WZCBG), R_DDMVT's make-before-invalidation, the R_WHZWS
//! comparison, and the stale records the write leaves.

use super::Rule;
use super::{RuleChecker, StaleKind, Trans};
use crate::addr::{PhysAddr, VirtAddr};
use crate::descriptor::Descriptor;
use crate::memory::Memory;

impl RuleChecker {
    pub(super) fn desc_write(
        &mut self,
        mem: &Memory,
        cpu: usize,
        pa: PhysAddr,
        old: Descriptor,
        new: Descriptor,
        cas: bool,
    ) {
        if old == new {
            return;
        }
        let Some((level, VirtAddr(va))) = self.locate(pa) else {
            // Not a live table: writing a table before publishing it.
            return;
        };
        if level == 3 {
            self.page_write(mem, cpu, pa, va, old, new, cas);
            return;
        }
        let g = self.config.granule;
        let size = g.level_size(level);
        let end = va.wrapping_add(size);
        let overlaps = |a: u64, b: u64| a < end && va < b;

        let mut sc = std::mem::take(&mut self.scratch);
        // Everything under the old value is no longer live.
        sc.old_all.clear();
        self.collect(mem, old, level, va, pa, false, &mut sc.old_all);
        for t in &sc.old_all {
            self.remove_live(t);
        }
        // What a TLB may hold from the old value: an entry with AF clear is
        // never cached (I_WZCBG) unless the hardware may set AF; with a CAS
        // that found AF clear, not even then (the hardware sets AF before
        // caching, so a cached entry would have made the CAS fail).
        let hw_af = self.config.features.hw_af;
        sc.old_cached.clear();
        sc.old_cached
            .extend(sc.old_all.iter().copied().filter(|t| match t.kind {
                StaleKind::Leaf { attrs, .. } => attrs.af() || (hw_af && !(cas && t.desc_pa == pa)),
                StaleKind::Walk { .. } => true,
            }));
        sc.new_all.clear();
        self.collect(mem, new, level, va, pa, false, &mut sc.new_all);
        // `collect` lists a table's own walk entry first: the old value was
        // a table exactly when `old_all` starts with a walk entry from `pa`
        // (no second decode).
        let old_leaf_cached = sc
            .old_cached
            .iter()
            .any(|t| t.desc_pa == pa && matches!(t.kind, StaleKind::Leaf { .. }))
            || sc
                .old_all
                .first()
                .is_some_and(|t| t.desc_pa == pa && matches!(t.kind, StaleKind::Walk { .. }));
        self.overlapping(va, end, &mut sc.near);
        sc.prior.clear();
        sc.prior.extend(
            sc.near
                .iter()
                .filter(|s| overlaps(s.va, s.va.wrapping_add(s.size)))
                .filter(|s| matches!(s.kind, StaleKind::Leaf { .. }) || s.level >= level)
                .map(|s| Trans {
                    va: s.va,
                    size: s.size,
                    level: s.level,
                    kind: s.kind,
                    global: s.global,
                    desc_pa: s.desc_pa,
                    desc: s.desc,
                }),
        );
        let at = Some((level, va));

        if !sc.new_all.is_empty() {
            if !old_leaf_cached && !sc.prior.is_empty() {
                let p = sc.prior[0];
                self.report(
                    Rule::MakeBeforeInvalidation,
                    cpu,
                    pa,
                    at,
                    (Some(old), Some(new)),
                    || {
                        format!(
                            "the old entry {} (L{} at {:#x}) may still be cached",
                            p.desc, p.level, p.va
                        )
                    },
                );
            } else if old_leaf_cached {
                let n = sc.old_cached.len();
                sc.old_cached.extend_from_slice(&sc.prior);
                self.compare(mem, cpu, pa, at, old, new, &sc.old_cached, &sc.new_all);
                sc.old_cached.truncate(n);
            }
        }

        // The old translations become stale records.
        self.seq += 1;
        let c = self.cpu_slot(cpu);
        if !sc.old_cached.is_empty() {
            self.last_born[c] = self.seq;
        }
        for t in &sc.old_cached {
            self.nstale += 1;
            let rec = t.stale(cpu, self.seq);
            self.stale[usize::from(t.level)].push(t.va, rec);
        }
        for t in &sc.new_all {
            self.add_live(t);
        }
        self.scratch = sc;
    }
}
