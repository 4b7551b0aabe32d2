//! Frees: a page freed while a live descriptor maps it or points at it as
//! a table, or while a TLB or a walk cache may still hold a translation to
//! or from it.

use super::Rule;
use super::{RuleChecker, StaleKind};
use crate::addr::PhysAddr;

impl RuleChecker {
    pub(super) fn free(&mut self, cpu: usize, pa: PhysAddr, order: u8) {
        let g = self.config.granule;
        let shift = g.page_shift();
        let first = pa.0 >> shift;
        let n = 1u64 << order;
        let inside = |frame: u64| frame >= first && frame < first + n;
        // Live mappings onto the block.
        let mut mapped = None;
        for level in g.levels() {
            let step = (g.level_size(level) >> shift).max(1);
            let mut f = first & !(step - 1);
            while f < first + n && mapped.is_none() {
                let live = if level == 3 {
                    self.pages.get(f) > 0
                } else {
                    self.leaves.contains_key(&(f, level))
                };
                if live {
                    mapped = Some(format!("a live L{level} entry maps frame {f:#x}"));
                }
                f += step;
            }
        }
        if mapped.is_none() {
            // The lowest live table frame inside the block: probe the block's
            // frames when it is smaller than the set of tables (a free of a
            // few pages among thousands of tables), else scan the tables.
            let table = if n <= self.tables.len() as u64 {
                (first..first + n).find_map(|f| self.tables.get(&f).map(|t| (f, *t)))
            } else {
                self.tables
                    .iter()
                    .filter(|(f, _)| inside(**f))
                    .min_by_key(|(f, _)| **f)
                    .map(|(f, t)| (*f, *t))
            };
            if let Some((f, (l, va))) = table {
                mapped = Some(format!("frame {f:#x} is a live L{l} table for {va:#x}"));
            }
        }
        if let Some(why) = mapped {
            self.report(Rule::FreeWhileMapped, cpu, pa, None, (None, None), || why);
        }
        let mut cached = None;
        let mut walk_cached = None;
        let stale = if self.nstale > 0 {
            self.stale()
        } else {
            Vec::new()
        };
        for s in &stale {
            match s.kind {
                StaleKind::Leaf { oa, .. } => {
                    let a = oa.0 >> shift;
                    let b = (oa.0 + s.size) >> shift;
                    if cached.is_none() && a < first + n && first < b.max(a + 1) {
                        cached = Some(*s);
                    }
                }
                StaleKind::Walk { next } => {
                    if walk_cached.is_none() && inside(next.0 >> shift) {
                        walk_cached = Some(*s);
                    }
                }
            }
            if walk_cached.is_none()
                && matches!(s.kind, StaleKind::Walk { .. })
                && inside(s.desc_pa.0 >> shift)
            {
                walk_cached = Some(*s);
            }
        }
        if let Some(s) = cached {
            self.report(
                Rule::FreeWhileCached,
                cpu,
                pa,
                Some((s.level, s.va)),
                (Some(s.desc), None),
                || format!(
                    "the translation {} for {:#x} may still be cached (no completed TLBI since it was replaced)",
                    s.desc, s.va
                ),
            );
        }
        if let Some(s) = walk_cached {
            self.report(
                Rule::FreeTableWhileCached,
                cpu,
                pa,
                Some((s.level, s.va)),
                (Some(s.desc), None),
                || format!(
                    "the table entry {} for {:#x} may still be in a walk cache (no completed non-last-level TLBI)",
                    s.desc, s.va
                ),
            );
        }
    }
}
