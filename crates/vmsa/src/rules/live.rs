//! The live tables and leaves: which frames are live translation tables
//! (and at which level and VA), which frames live leaves map, and the
//! translations under a descriptor.

use super::{RuleChecker, StaleKind, Trans};
use crate::addr::{PhysAddr, VirtAddr};
use crate::descriptor::{Descriptor, Entry};
use crate::granule::Level;
use crate::memory::Memory;

impl RuleChecker {
    /// Tells whether `pa` is a descriptor in a live table, and if so its
    /// level and the first VA it translates.
    pub fn locate(&self, pa: PhysAddr) -> Option<(Level, VirtAddr)> {
        let g = self.config.granule;
        let frame = pa.0 >> g.page_shift();
        let (level, base) = match self.last_table.get() {
            Some((f, level, base)) if f == frame => (level, base),
            _ => {
                let &(level, base) = self.tables.get(&frame)?;
                self.last_table.set(Some((frame, level, base)));
                (level, base)
            }
        };
        let idx = (pa.0 & (g.page_size() - 1)) / 8;
        if idx as usize >= g.table_entries(level) {
            return None;
        }
        Some((level, VirtAddr(base + idx * g.level_size(level))))
    }

    /// Lists the translations (leaves, and walk entries for tables) under
    /// descriptor `d` at `level` translating from `va`.
    pub(super) fn translations(
        &self,
        mem: &Memory,
        d: Descriptor,
        level: Level,
        va: u64,
        desc_pa: PhysAddr,
        only_cacheable: bool,
    ) -> Vec<Trans> {
        let mut out = Vec::new();
        self.collect(mem, d, level, va, desc_pa, only_cacheable, &mut out);
        out
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn collect(
        &self,
        mem: &Memory,
        d: Descriptor,
        level: Level,
        va: u64,
        desc_pa: PhysAddr,
        only_cacheable: bool,
        out: &mut Vec<Trans>,
    ) {
        let g = self.config.granule;
        match d.decode(g, level) {
            Entry::Invalid(_) | Entry::Reserved(_) => {}
            Entry::Table(t) => {
                out.push(Trans {
                    va,
                    size: g.level_size(level),
                    level,
                    kind: StaleKind::Walk { next: t.next },
                    global: true,
                    desc_pa,
                    desc: d,
                });
                for i in 0..g.table_entries(level + 1) {
                    let pa = t.next.add(i as u64 * 8);
                    let sub = Descriptor(mem.read_u64(pa).unwrap_or(0));
                    if sub.is_valid_bit() {
                        let sva = va + i as u64 * g.level_size(level + 1);
                        self.collect(mem, sub, level + 1, sva, pa, only_cacheable, out);
                    }
                }
            }
            Entry::Block(l) | Entry::Page(l) => {
                if only_cacheable && !l.attrs.af() && !self.config.features.hw_af {
                    // I_WZCBG: an entry that gives an Access flag fault is
                    // never cached.
                    return;
                }
                out.push(Trans {
                    va,
                    size: g.level_size(level),
                    level,
                    kind: StaleKind::Leaf {
                        oa: l.oa,
                        attrs: l.attrs,
                    },
                    global: l.attrs.global(),
                    desc_pa,
                    desc: d,
                });
            }
        }
    }

    pub(super) fn add_live(&mut self, t: &Trans) {
        let g = self.config.granule;
        match t.kind {
            StaleKind::Walk { next } => {
                self.last_table.set(None);
                self.tables
                    .insert(next.0 >> g.page_shift(), (t.level + 1, t.va));
            }
            StaleKind::Leaf { oa, .. } if t.level == 3 => self.pages.inc(oa.0 >> g.page_shift()),
            StaleKind::Leaf { oa, .. } => {
                *self
                    .leaves
                    .entry((oa.0 >> g.page_shift(), t.level))
                    .or_default() += 1;
            }
        }
    }

    pub(super) fn remove_live(&mut self, t: &Trans) {
        let g = self.config.granule;
        match t.kind {
            StaleKind::Walk { next } => {
                self.last_table.set(None);
                self.tables.remove(&(next.0 >> g.page_shift()));
            }
            StaleKind::Leaf { oa, .. } if t.level == 3 => self.pages.dec(oa.0 >> g.page_shift()),
            StaleKind::Leaf { oa, .. } => {
                let key = (oa.0 >> g.page_shift(), t.level);
                if let Some(n) = self.leaves.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        self.leaves.remove(&key);
                    }
                }
            }
        }
    }
}
