//! The fast path of a level-3 descriptor write (the remaps of a batch write
//! millions): the same findings and records as the general path.

use super::Rule;
use super::{RuleChecker, StaleKind, Trans};
use crate::addr::PhysAddr;
use crate::descriptor::{Descriptor, Entry};
use crate::memory::Memory;

impl RuleChecker {
    /// Does what the rest of [`RuleChecker::desc_write`] does, for a
    /// descriptor at level 3, the one the remaps of a batch write by the
    /// million. Level 3 holds pages and no tables (an entry with bits[1:0]
    /// = 0b01 is reserved there: Arm ARM D8.3.1, `Descriptor::decode`), so
    /// the old and the new value each translate one page at most, and the
    /// stale records that overlap the page are the ones filed under its VA
    /// at each level: no list of translations, no walk of memory (only the
    /// contents comparison reads it). The findings, records and counts are
    /// the ones the general path makes, in the same order.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn page_write(
        &mut self,
        mem: &Memory,
        cpu: usize,
        pa: PhysAddr,
        va: u64,
        old: Descriptor,
        new: Descriptor,
        cas: bool,
    ) {
        let g = self.config.granule;
        let shift = g.page_shift();
        let size = g.level_size(3);
        let end = va.wrapping_add(size);
        let page = |d: Descriptor| match d.decode(g, 3) {
            Entry::Page(l) => Some(Trans {
                va,
                size,
                level: 3,
                kind: StaleKind::Leaf {
                    oa: l.oa,
                    attrs: l.attrs,
                },
                global: l.attrs.global(),
                desc_pa: pa,
                desc: d,
            }),
            _ => None,
        };
        // The old translation is no longer live.
        let old_t = page(old);
        let mut old_cached = None;
        if let Some(t) = old_t
            && let StaleKind::Leaf { oa, attrs } = t.kind
        {
            self.pages.dec(oa.0 >> shift);
            // I_WZCBG, as in `desc_write`: AF clear is never cached unless
            // the hardware may set it, and not even then when a CAS found
            // it clear.
            if attrs.af() || (self.config.features.hw_af && !cas) {
                old_cached = Some(t);
            }
        }
        let new_t = page(new);
        if let Some(n) = new_t {
            // The translations a TLB may hold for the page: the old value
            // first, then every stale leaf record overlapping it (walk
            // records are filed above level 3 and do not count here), by
            // level as `overlapping` lists them.
            let mut olds = std::mem::take(&mut self.scratch.prior);
            olds.clear();
            olds.extend(old_cached);
            for level in g.levels() {
                let map = &self.stale[usize::from(level)];
                if map.is_empty() {
                    continue;
                }
                let Some(slot) = map.get(&(va & !(g.level_size(level) - 1))) else {
                    continue;
                };
                olds.extend(
                    slot.as_slice()
                        .iter()
                        .filter(|s| s.va < end && va < s.va.wrapping_add(s.size))
                        .filter(|s| matches!(s.kind, StaleKind::Leaf { .. }))
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
            }
            let at = Some((3, va));
            if old_cached.is_none() {
                if let Some(&p) = olds.first() {
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
                }
            } else {
                self.compare(mem, cpu, pa, at, old, new, &olds, std::slice::from_ref(&n));
            }
            self.scratch.prior = olds;
        }
        // The old translation becomes a stale record.
        self.seq += 1;
        let c = self.cpu_slot(cpu);
        if let Some(t) = old_cached {
            self.last_born[c] = self.seq;
            self.nstale += 1;
            let rec = t.stale(cpu, self.seq);
            self.stale[3].push(t.va, rec);
        }
        if let Some(StaleKind::Leaf { oa, .. }) = new_t.map(|t| t.kind) {
            self.pages.inc(oa.0 >> shift);
        }
    }
}
