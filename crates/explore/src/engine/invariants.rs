//! The hazards a step may meet and the invariants of a final state: a walk
//! of a freed page-table page, which versions of vmemmap pages a half of
//! the straddle's load shows (a torn read), a hazard's description with the
//! descriptors and TLB entries for its VA, and the end-of-batch check
//! against the sequential run (every store reflected, the struct pages,
//! the mapping, the TLBs, no leak, every old page freed).

use std::fmt::Write as _;

use vmsa::tlb::{TlbEntry, TlbKind};
use vmsa::walk::{self, Choice};
use vmsa::{PhysAddr, VirtAddr};

use crate::hazard::{Hazard, HazardKind};
use crate::state::{Half, State};

use super::Engine;
use super::memo::Small;
#[cfg(doc)]
use crate::world::Scenario;

impl<'a> Engine<'a> {
    /// Returns the first freed frame walk `c` reads as a table, if any:
    /// where it starts (the root table, or the table a walk-cache entry
    /// points to) or a table a descriptor on the way points to (each
    /// table descriptor read is a walk-cache fill naming the next table).
    /// A TLB hit reads no table (but a write through a clean entry with
    /// hardware dirty-state management, which walks from the root).
    pub(super) fn freed_table(&self, s: &State, c: &Choice) -> Option<u64> {
        if s.freed.is_empty() {
            return None;
        }
        let start = match c.via {
            walk::Via::Walk => self.sc.root,
            walk::Via::WalkFrom(TlbEntry {
                kind: TlbKind::Walk { next },
                ..
            }) => next,
            walk::Via::Tlb(_) if !c.fills.is_empty() || c.hw_update.is_some() => self.sc.root,
            _ => return None,
        };
        let nexts = c.fills.iter().filter_map(|e| match e.kind {
            TlbKind::Walk { next } => Some(next),
            TlbKind::Leaf { .. } => None,
        });
        std::iter::once(start)
            .chain(nexts)
            .map(|pa| pa.0 >> self.shift)
            .find(|f| s.freed.binary_search(f).is_ok())
    }

    /// Describes walk `c` reading freed frame `f` as a table, and how it
    /// came to (see [`Engine::freed_table`]).
    pub(super) fn freed_table_walk(&self, c: &Choice, f: u64) -> String {
        let walk = match c.via {
            walk::Via::WalkFrom(e) => format!("a walk from cached [{e}]"),
            walk::Via::Tlb(e) => {
                format!("the walk of a dirty-state update (a write through [{e}])")
            }
            _ => "a walk from the root".into(),
        };
        let why = match c.via {
            walk::Via::WalkFrom(TlbEntry {
                kind: TlbKind::Walk { next },
                ..
            }) if next.0 >> self.shift == f => {
                "that walk-cache entry still points at it: no TLBI that invalidates walk caches (not a last-level one) removed it before the free"
            }
            _ if self.sc.root.0 >> self.shift == f => "it is the root table",
            _ => "a table descriptor the walk read still points at it",
        };
        format!("{walk} reads descriptors from pfn {f:#x}, a page-table page cpu0 freed ({why})")
    }

    /// Classifies a value `v` read at `va`: which versions of vmemmap pages
    /// 0 and 1 ([`Scenario::straddle_versions`]) show it now, i.e. map
    /// `va`'s page to a frame that holds `v` at `va`'s offset now. (A page
    /// the versions do not name shows the same in every version.) The
    /// contents are those of the moment of the read: a later version's
    /// frame (a fresh page filled later) does not show it yet, an earlier
    /// one's (a page being replaced) may still.
    pub(super) fn classify(&self, s: &State, va: u64, v: u64) -> Half {
        let mask = (1u64 << self.shift) - 1;
        let all = (1u64 << self.sc.straddle_versions.len()) - 1;
        let Some(page) = self.sc.pages[..2].iter().position(|p| p.0 == va & !mask) else {
            return Half::Loaded { versions: all };
        };
        let mut versions = 0;
        for (k, frames) in self.sc.straddle_versions.iter().enumerate() {
            if let Some(f) = frames[page]
                && self.read(s, (f << self.shift) | (va & mask)) == v
            {
                versions |= 1 << k;
            }
        }
        Half::Loaded { versions }
    }

    /// Describes the versions in `mask` (see [`Engine::classify`]): the
    /// frames of vmemmap pages 0 and 1 in each.
    pub(super) fn versions_text(&self, mask: u64) -> String {
        let pfn = |f: Option<u64>| f.map_or("unmapped".to_string(), |f| format!("pfn {f:#x}"));
        let list: Vec<String> = self
            .sc
            .straddle_versions
            .iter()
            .enumerate()
            .filter(|(k, _)| mask & (1 << k) != 0)
            .map(|(_, [a, b])| format!("({}, {})", pfn(*a), pfn(*b)))
            .collect();
        if list.is_empty() {
            "none of them".into()
        } else {
            list.join(" or ")
        }
    }

    pub(super) fn hazard(
        &self,
        s: &State,
        cpu: usize,
        kind: HazardKind,
        va: u64,
        what: String,
    ) -> Hazard {
        Hazard {
            kind,
            cpu,
            va: Some(va),
            detail: format!("{what}; {}", self.context(s, cpu, va)),
        }
    }

    /// Describes the descriptors and TLB entries that matter for `va` on
    /// `cpu`.
    pub fn context(&self, s: &State, cpu: usize, va: u64) -> String {
        let g = self.sc.config.granule;
        let mut out = String::new();
        let mut table = self.sc.root;
        for level in g.levels() {
            let pa = table.add(g.index(level, va) as u64 * 8);
            let coherent = self.read(s, pa.0);
            let seen = self.walker_read(s, pa.0);
            let d = vmsa::Descriptor(coherent);
            let _ = write!(
                out,
                "L{level} desc {:#x} = {}",
                pa.0,
                vmsa::descriptor::describe(&d.decode(g, level))
            );
            if seen != coherent {
                let _ = write!(
                    out,
                    " (walkers still see {})",
                    vmsa::descriptor::describe(&vmsa::Descriptor(seen).decode(g, level))
                );
            }
            out.push_str("; ");
            match d.as_table(g, level) {
                Some(next) => table = next,
                None => break,
            }
        }
        let entries: Vec<String> = s.tlbs[cpu]
            .entries()
            .iter()
            .filter(|e| e.covers(VirtAddr(va)))
            .map(|e| format!("[{e}]"))
            .collect();
        let _ = write!(
            out,
            "cpu{cpu} TLB: {}",
            if entries.is_empty() {
                "nothing for it".to_string()
            } else {
                entries.join(" ")
            }
        );
        out
    }

    /// Checks a final state against the sequential run: every store
    /// reflected, struct pages as the sequential run left them, the
    /// intended mapping, every old page freed.
    pub fn check_final(&self, s: &State) -> Option<Hazard> {
        let g = self.sc.config.granule;
        let read = |pa: PhysAddr| self.read(s, pa.0);
        let leaf = |va: u64| -> Option<(u64, bool)> {
            let w = walk::walk_each(
                g,
                VirtAddr(va),
                g.start_level(),
                self.sc.root,
                &read,
                |_| {},
            );
            w.ok().map(|(l, lvl, _, _)| {
                (l.oa.0 + (va & (g.level_size(lvl) - 1)), l.attrs.read_only())
            })
        };
        let bad = |kind, va: u64, detail: String| {
            Some(Hazard {
                kind,
                cpu: 0,
                va: Some(va),
                detail,
            })
        };
        for &[va, v] in &s.written {
            match leaf(va) {
                Some((pa, _)) if self.read(s, pa) == v => {}
                Some((pa, _)) => {
                    return bad(
                        HazardKind::LostUpdate,
                        va,
                        format!(
                            "the last store wrote {v:#x}; the final mapping shows {:#x}",
                            self.read(s, pa)
                        ),
                    );
                }
                None => return bad(HazardKind::FinalState, va, "not mapped at the end".into()),
            }
        }
        // A word the final mapping shares with a written VA (a fake head
        // showing the head's flags) was checked with the stores.
        let written_at: Vec<u64> = s
            .written
            .iter()
            .filter_map(|&[va, _]| leaf(va))
            .map(|l| l.0)
            .collect();
        for &(va, v) in &self.sc.reference.words {
            if s.written.binary_search_by_key(&va, |w| w[0]).is_ok() {
                continue;
            }
            if let Some((pa, _)) = leaf(va)
                && !written_at.contains(&pa)
                && self.read(s, pa) != v
            {
                return bad(
                    HazardKind::FinalState,
                    va,
                    format!(
                        "struct page word is {:#x}; the sequential run leaves {v:#x}",
                        self.read(s, pa)
                    ),
                );
            }
        }
        for &(va, frame, ro) in &self.sc.reference.mapping {
            let got = leaf(va).map(|(pa, r)| (pa >> self.shift, r));
            if got != Some((frame, ro)) {
                return bad(
                    HazardKind::FinalState,
                    va,
                    format!("maps {got:?} at the end; intended (pfn {frame:#x}, read-only {ro})"),
                );
            }
        }
        for (c, tlb) in s.tlbs.iter().enumerate() {
            for e in tlb.entries().iter().filter(|e| self.kept_for_end(e)) {
                let TlbKind::Leaf { attrs, .. } = e.kind else {
                    continue;
                };
                for &(va, frame, ro) in &self.sc.reference.mapping {
                    if e.covers(VirtAddr(va))
                        && let Some(pa) = e.translate(VirtAddr(va))
                        && (pa.0 >> self.shift != frame || attrs.read_only() != ro)
                    {
                        return Some(Hazard {
                            kind: HazardKind::FinalState,
                            cpu: c,
                            va: Some(va),
                            detail: format!(
                                "when the batch ends cpu{c} still holds [{e}], but the tables map pfn {frame:#x}{}",
                                if ro { " read-only" } else { " read-write" }
                            ),
                        });
                    }
                }
            }
        }
        // No leak: every page the program allocated, and every page the
        // vmemmap mapped before (but the shared tail page, which other huge
        // pages map), is held by a live translation of the final tables (a
        // table reachable from the root, or inside the output range of a
        // page or block descriptor they hold), or was freed. The walks of
        // the huge page's vmemmap pages, which find most of them, go first;
        // the other frames are looked for in the whole tree (a PMD block
        // made of a new order-9 block maps frames the huge page's walks
        // never reach).
        let mut used = Small::default();
        for &(va, _, _) in &self.sc.pages {
            let w = walk::walk(g, VirtAddr(va), g.start_level(), self.sc.root, &read);
            for t in &w.tables {
                if let TlbKind::Walk { next } = t.kind {
                    used.insert(next.0 >> self.shift);
                }
            }
            if let Ok((leaf, lvl, _, _)) = w.result {
                used.insert((leaf.oa.0 + (va & (g.level_size(lvl) - 1))) >> self.shift);
            }
        }
        let old = self
            .sc
            .pages
            .iter()
            .map(|p| p.1)
            .filter(|&f| Some(f) != self.sc.shared_tail);
        let mut left: Vec<u64> = self
            .sc
            .fresh
            .iter()
            .copied()
            .chain(old)
            .filter(|f| !used.contains(f) && s.freed.binary_search(f).is_err())
            .collect();
        if !left.is_empty() {
            self.drop_mapped(s, &mut left);
        }
        if let Some(&f) = left.first() {
            return bad(
                HazardKind::FinalState,
                0,
                format!(
                    "pfn {f:#x}, allocated by the program or mapped by the vmemmap before, is neither freed nor held by the final tables (no table or page or block descriptor reachable from the root holds it): a leak"
                ),
            );
        }
        if s.freed != self.sc.reference.freed {
            return bad(
                HazardKind::FinalState,
                0,
                format!(
                    "{} pages freed, the sequential run frees {}",
                    s.freed.len(),
                    self.sc.reference.freed.len()
                ),
            );
        }
        None
    }

    /// Removes from `left` every frame the tables of `s`'s memory hold: a
    /// table reachable from the root, or a frame inside the output range of
    /// a valid page or block descriptor of such a table (the whole block:
    /// a block maps every frame of its range). Each table is read once,
    /// whatever number of descriptors point to it.
    fn drop_mapped(&self, s: &State, left: &mut Vec<u64>) {
        let g = self.sc.config.granule;
        let mut seen: Vec<(u8, u64)> = Vec::new();
        let mut todo = vec![(g.start_level(), self.sc.root.0)];
        while let Some((level, table)) = todo.pop() {
            if left.is_empty() {
                return;
            }
            if seen.contains(&(level, table)) {
                continue;
            }
            seen.push((level, table));
            left.retain(|&f| f != table >> self.shift);
            for i in 0..g.table_entries(level) {
                let d = vmsa::Descriptor(self.read(s, table + i as u64 * 8));
                match d.decode(g, level) {
                    vmsa::Entry::Table(t) => todo.push((level + 1, t.next.0)),
                    vmsa::Entry::Block(leaf) | vmsa::Entry::Page(leaf) => {
                        let first = leaf.oa.0 >> self.shift;
                        let n = g.level_size(level) >> self.shift;
                        left.retain(|f| !(first..first + n).contains(f));
                    }
                    _ => {}
                }
            }
        }
    }
}
