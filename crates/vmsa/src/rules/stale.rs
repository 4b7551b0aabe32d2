//! The stale-translation bookkeeping: what a TLB may still hold from a
//! descriptor that was written over ([`Stale`]), the records of each level
//! by first VA, and the questions asked of them (is the replacing store
//! visible, which records overlap a VA range).

use rustc_hash::FxHashMap;

use super::RuleChecker;
use crate::addr::PhysAddr;
use crate::descriptor::{Descriptor, LeafAttrs};
use crate::granule::Level;

/// What a TLB may still hold from a descriptor that was written over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StaleKind {
    /// A translation.
    Leaf {
        /// Output address of the region's first byte.
        oa: PhysAddr,
        /// The translation's attributes.
        attrs: LeafAttrs,
    },
    /// A walk-cache entry pointing at a table.
    Walk {
        /// The table pointed at.
        next: PhysAddr,
    },
}

/// An old translation that a TLB may still hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stale {
    /// First VA covered.
    pub va: u64,
    /// Size covered.
    pub size: u64,
    /// Level of the descriptor.
    pub level: Level,
    /// What is cached.
    pub kind: StaleKind,
    /// Whether the cached entry is global.
    pub global: bool,
    /// The descriptor's address and old value.
    pub desc_pa: PhysAddr,
    /// The descriptor value cached.
    pub desc: Descriptor,
    /// The CPU whose store replaced it.
    pub writer: usize,
    /// The sequence number of the replacing store: it is visible to walkers
    /// once the writer has executed a DSB after it.
    pub born: u64,
    /// Bit i: CPU i issued a covering TLBI after the store was visible, not
    /// yet completed.
    pub tlbi_by: u64,
}

/// The stale records of one descriptor position: almost always one.
#[derive(Clone, Debug)]
pub(super) enum Slot {
    One(Stale),
    Many(Vec<Stale>),
}

impl Slot {
    pub(super) fn as_slice(&self) -> &[Stale] {
        match self {
            Slot::One(s) => std::slice::from_ref(s),
            Slot::Many(v) => v,
        }
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [Stale] {
        match self {
            Slot::One(s) => std::slice::from_mut(s),
            Slot::Many(v) => v,
        }
    }

    pub(super) fn push(&mut self, s: Stale) {
        match self {
            Slot::One(first) => *self = Slot::Many(vec![*first, s]),
            Slot::Many(v) => v.push(s),
        }
    }

    /// Keeps the records `keep` accepts; returns how many it removed and
    /// whether none is left.
    pub(super) fn retain(&mut self, keep: impl Fn(&Stale) -> bool) -> (usize, bool) {
        match self {
            Slot::One(s) => {
                if keep(s) {
                    (0, false)
                } else {
                    (1, true)
                }
            }
            Slot::Many(v) => {
                let before = v.len();
                v.retain(|s| keep(s));
                (before - v.len(), v.is_empty())
            }
        }
    }
}

/// The stale records of one level by first VA: a map from the VA to a slot
/// in an arena. The map's entries are small (16 bytes), so the map of a
/// batch's tens of thousands of records stays in cache; the slots are
/// appended in the order the records are made. The map is what is iterated,
/// so the order records are found in is the map's, as with a map of slots.
#[derive(Clone, Debug, Default)]
pub(super) struct StaleMap {
    index: FxHashMap<u64, u32>,
    slots: Vec<Slot>,
    /// Arena positions free for reuse.
    holes: Vec<u32>,
}

impl StaleMap {
    pub(super) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    pub(super) fn get(&self, va: &u64) -> Option<&Slot> {
        self.index.get(va).map(|&i| &self.slots[i as usize])
    }

    pub(super) fn get_mut(&mut self, va: &u64) -> Option<&mut Slot> {
        self.index.get(va).map(|&i| &mut self.slots[i as usize])
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&u64, &Slot)> {
        self.index
            .iter()
            .map(|(k, &i)| (k, &self.slots[i as usize]))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Slot> {
        self.index.values().map(|&i| &self.slots[i as usize])
    }

    /// Adds `rec` to the records of `va`.
    pub(super) fn push(&mut self, va: u64, rec: Stale) {
        match self.index.entry(va) {
            std::collections::hash_map::Entry::Occupied(o) => {
                self.slots[*o.get() as usize].push(rec);
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                let i = match self.holes.pop() {
                    Some(i) => {
                        self.slots[i as usize] = Slot::One(rec);
                        i
                    }
                    None => {
                        self.slots.push(Slot::One(rec));
                        (self.slots.len() - 1) as u32
                    }
                };
                v.insert(i);
            }
        }
    }

    pub(super) fn remove(&mut self, va: &u64) {
        if let Some(i) = self.index.remove(va) {
            self.holes.push(i);
        }
    }

    pub(super) fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.holes.clear();
    }

    /// Keeps the slots `keep` (which may change them) accepts.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&mut Slot) -> bool) {
        let slots = &mut self.slots;
        let holes = &mut self.holes;
        self.index.retain(|_, &mut i| {
            let k = keep(&mut slots[i as usize]);
            if !k {
                holes.push(i);
            }
            k
        });
    }
}

impl RuleChecker {
    /// Returns the old translations a TLB may still hold, by level and VA.
    pub fn stale(&self) -> Vec<Stale> {
        let mut v: Vec<Stale> = self
            .stale
            .iter()
            .flat_map(|m| m.values().flat_map(|s| s.as_slice().iter().copied()))
            .collect();
        v.sort_by_key(|s| (s.level, s.va, s.born));
        v
    }

    pub(super) fn visible(&self, s: &Stale) -> bool {
        s.born <= self.synced.get(s.writer).copied().unwrap_or(0)
    }

    /// Returns the stale records whose VA range overlaps `va..end`.
    pub(super) fn overlapping(&self, va: u64, end: u64, out: &mut Vec<Stale>) {
        let g = self.config.granule;
        out.clear();
        for level in g.levels() {
            let size = g.level_size(level);
            let map = &self.stale[usize::from(level)];
            if map.is_empty() {
                continue;
            }
            let len = end.wrapping_sub(va);
            if size >= len {
                if let Some(v) = map.get(&(va & !(size - 1))) {
                    out.extend_from_slice(v.as_slice());
                }
            } else if len / size <= map.len() as u64 {
                let mut k = va;
                while k < end {
                    if let Some(v) = map.get(&k) {
                        out.extend_from_slice(v.as_slice());
                    }
                    k += size;
                }
            } else {
                for (_, v) in map.iter().filter(|(k, _)| va <= **k && **k < end) {
                    out.extend_from_slice(v.as_slice());
                }
            }
        }
    }
}
