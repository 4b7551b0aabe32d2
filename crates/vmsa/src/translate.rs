//! How a translation may resolve: the choices the architecture allows for
//! one access, given a CPU's TLB and what its walkers read.
//!
//! Both the [`crate::Machine`] and the explorer (whose states keep memory
//! their own way) translate through a [`Translator`], so there is one
//! definition of TLB hits, conflict aborts, walks, Access-flag and dirty
//! updates and nT.

use crate::addr::{PhysAddr, VirtAddr};
use crate::descriptor::{Attributes, Descriptor, LeafAttrs};
use crate::features::{BbmLevel, Config};
use crate::tlb::{Tlb, TlbEntry, TlbKind};
use crate::walk::{self, Access, Choice, Fault, FaultKind, Fills, HwUpdate, Translation, Via};

/// The Exception level an access is made at, in the EL1&0 translation
/// regime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExceptionLevel {
    /// Unprivileged: a page whose descriptor has AP\[1\] clear
    /// ([`Attributes::USER`]) is not accessible (Arm ARM DDI 0487K.a
    /// D8.4.1.2.1, "Stage 1 data access permissions", Table D8-49: AP\[2:1\]
    /// = 0b00 and 0b10 give EL0 no access), a Permission fault.
    El0,
    /// Privileged: AP\[1\] does not matter (every kernel access).
    #[default]
    El1,
}

impl ExceptionLevel {
    /// Tells whether an access at this level to a page with `attrs` is
    /// denied by AP\[1\] (see [`ExceptionLevel::El0`]; herd7:
    /// herdtools7 `herd/AArch64Sem.ml`, `check_ptw`, `check_el0`).
    pub fn denied(self, attrs: &LeafAttrs) -> bool {
        self == ExceptionLevel::El0 && !attrs.flags.contains(Attributes::USER)
    }
}

/// What a CPU's translation depends on besides its TLB.
pub struct Translator<'a> {
    /// The configuration (granule, features).
    pub config: &'a Config,
    /// The root table (TTBR1_EL1).
    pub root: PhysAddr,
    /// Reads a descriptor as the walkers see it.
    pub read: &'a dyn Fn(PhysAddr) -> u64,
    /// Tells whether the pages holding two addresses have the same
    /// contents; `None`: assume they differ.
    pub same_page: Option<&'a dyn Fn(PhysAddr, PhysAddr) -> bool>,
    /// The Exception level of the accesses translated.
    pub el: ExceptionLevel,
}

impl Translator<'_> {
    /// Lists the ways a `kind` access to `va` may resolve now, for a CPU
    /// with TLB `tlb` and ASID `asid`:
    /// one per matching TLB entry (plus a TLB conflict abort where the
    /// FEAT_BBM level allows it), or one per possible walk start otherwise.
    pub fn choices(&self, tlb: &Tlb, asid: u16, va: VirtAddr, kind: Access) -> Vec<Choice> {
        let mut out = Vec::new();
        self.choices_into(tlb, asid, va, kind, &mut out);
        out
    }

    /// As [`Translator::choices`], appending the choices to `out` (whose
    /// storage a caller may reuse from access to access).
    pub fn choices_into(
        &self,
        tlb: &Tlb,
        asid: u16,
        va: VirtAddr,
        kind: Access,
        out: &mut Vec<Choice>,
    ) {
        self.choices_with(tlb, asid, va, kind, out, &mut |start, out| {
            self.walk_from_into(start, asid, va, kind, out)
        });
    }

    /// As [`Translator::choices_into`], with the choices of each walk made
    /// by `walk_from` (see [`Translator::walks_with`]).
    pub fn choices_with(
        &self,
        tlb: &Tlb,
        asid: u16,
        va: VirtAddr,
        kind: Access,
        out: &mut Vec<Choice>,
        walk_from: &mut dyn FnMut(Option<&TlbEntry>, &mut Vec<Choice>),
    ) {
        // The matching leaves, on the stack when there are few (always, in
        // practice).
        let mut leaves = tlb.leaves(va, asid);
        let Some(first) = leaves.next() else {
            return self.walks_with(tlb, va, out, walk_from);
        };
        let mut few = [first; 8];
        let mut n = 1;
        let mut many = Vec::new();
        for e in leaves {
            if n < few.len() {
                few[n] = e;
            } else {
                if many.is_empty() {
                    many.extend_from_slice(&few);
                }
                many.push(e);
            }
            n += 1;
        }
        let hits = if many.is_empty() {
            &few[..n]
        } else {
            &many[..]
        };
        self.hit_choices(asid, hits, va, kind, out);
    }

    /// Lists the walks a `kind` access to `va` may make now, ignoring leaf
    /// entries: from the root and from every matching walk-cache entry.
    /// Their fills are what a speculative walk may cache (R_FFWJK: a walk
    /// may happen at any time).
    pub fn walks(&self, tlb: &Tlb, asid: u16, va: VirtAddr, kind: Access) -> Vec<Choice> {
        let mut out = Vec::new();
        self.walks_into(tlb, asid, va, kind, &mut out);
        out
    }

    /// As [`Translator::walks`], appending the walks to `out` (consecutive
    /// equal choices among them merged).
    pub fn walks_into(
        &self,
        tlb: &Tlb,
        asid: u16,
        va: VirtAddr,
        kind: Access,
        out: &mut Vec<Choice>,
    ) {
        self.walks_with(tlb, va, out, &mut |start, out| {
            self.walk_from_into(start, asid, va, kind, out)
        });
    }

    /// As [`Translator::walks_into`], with the choices of the walk from
    /// each start (`None`: the root; or a walk-cache entry) appended by
    /// `walk_from`, which must append what [`Translator::walk_from_into`]
    /// would for the same access: a caller that keeps walks from one
    /// access to another (memory unchanged) may stand in for it.
    pub fn walks_with(
        &self,
        tlb: &Tlb,
        va: VirtAddr,
        out: &mut Vec<Choice>,
        walk_from: &mut dyn FnMut(Option<&TlbEntry>, &mut Vec<Choice>),
    ) {
        let first = out.len();
        // From the root, then from each matching walk-cache entry.
        walk_from(None, out);
        for start in tlb.walks(va) {
            walk_from(Some(start), out);
        }
        // `dedup` on the appended choices only.
        let mut kept = first;
        for k in first..out.len() {
            if kept == first || out[k] != out[kept - 1] {
                if kept != k {
                    out.swap(kept, k);
                }
                kept += 1;
            }
        }
        out.truncate(kept);
    }

    /// Appends to `out` the choices of one walk for a `kind` access to
    /// `va`: from the root table (`start` is `None`) or from walk-cache
    /// entry `start`.
    pub fn walk_from_into(
        &self,
        start: Option<&TlbEntry>,
        asid: u16,
        va: VirtAddr,
        kind: Access,
        out: &mut Vec<Choice>,
    ) {
        let (level, table) = match start {
            Some(&TlbEntry {
                kind: TlbKind::Walk { next },
                level,
                ..
            }) => (level + 1, next),
            _ => (self.config.granule.start_level(), self.root),
        };
        let walked = walk::walk(self.config.granule, va, level, table, self.read);
        let via = start.map_or(Via::Walk, |e| Via::WalkFrom(*e));
        self.walk_choices(asid, va, kind, via, walked, out);
    }

    fn hit_choices(
        &self,
        asid: u16,
        hits: &[&TlbEntry],
        va: VirtAddr,
        kind: Access,
        out: &mut Vec<Choice>,
    ) {
        for e in hits {
            let TlbKind::Leaf { attrs, .. } = e.kind else {
                continue;
            };
            if self.el.denied(&attrs) {
                // Checked before the dirty state: a denied access updates
                // nothing (herd7's `check_ptw` faults before `mok`).
                out.push(Choice {
                    via: Via::Tlb(**e),
                    result: Err(Fault {
                        kind: FaultKind::Permission,
                        va,
                        level: Some(e.level),
                    }),
                    fills: Fills::default(),
                    hw_update: None,
                });
                continue;
            }
            if kind.writes()
                && attrs.read_only()
                && self.config.features.hw_dbm
                && attrs.flags.contains(Attributes::DBM)
            {
                // Hardware dirty-state management (FEAT_HAFDBS, TCR_EL1.HD):
                // a write through a cached clean entry makes the CPU update
                // the descriptor in memory atomically (clear AP[2]) instead
                // of faulting; model it as a walk that performs the update.
                let g = self.config.granule;
                let walked = walk::walk(g, va, g.start_level(), self.root, self.read);
                self.walk_choices(asid, va, kind, Via::Tlb(**e), walked, out);
                continue;
            }
            let t = Translation {
                va,
                pa: e.translate(va).unwrap_or_default(),
                level: e.level,
                size: e.size(),
                attrs,
            };
            let result = if kind.writes() && attrs.read_only() {
                Err(Fault {
                    kind: FaultKind::Permission,
                    va,
                    level: Some(e.level),
                })
            } else {
                Ok(t)
            };
            out.push(Choice {
                via: Via::Tlb(**e),
                result,
                fills: Fills::default(),
                hw_update: None,
            });
        }
        if hits.len() > 1 && self.conflict_may_abort(hits, va) {
            out.push(Choice {
                via: Via::Conflict,
                result: Err(Fault {
                    kind: FaultKind::TlbConflict,
                    va,
                    level: None,
                }),
                fills: Fills::default(),
                hw_update: None,
            });
        }
    }

    /// Tells whether several matching entries may give a TLB conflict
    /// abort. Only a change the architecture requires break-before-make for
    /// can leave entries that abort (R_WHZWS; I_THWDH: skipping a required
    /// BBM can give a conflict abort): two entries of one size abort when
    /// their memory type or shareability differ, or their output addresses
    /// differ and either is writable or the pages' contents differ; a
    /// permission-only difference never aborts. Entries of different sizes
    /// may abort (R_FVQCK, I_HYQMB), except at FEAT_BBM level 2 with the
    /// no-abort property when nothing but the size differs (R_PVTFW).
    fn conflict_may_abort(&self, hits: &[&TlbEntry], va: VirtAddr) -> bool {
        let leaf = |e: &TlbEntry| match e.kind {
            TlbKind::Leaf { attrs, .. } => Some((e.translate(va), attrs)),
            TlbKind::Walk { .. } => None,
        };
        let hw_dbm = self.config.features.hw_dbm;
        let pair = |a: &TlbEntry, b: &TlbEntry| -> bool {
            let (Some((pa, x)), Some((pb, y))) = (leaf(a), leaf(b)) else {
                return true;
            };
            if a.size_shift != b.size_shift {
                let strip = |l: LeafAttrs| l.with(Attributes::CONTIGUOUS | Attributes::NT, false);
                return self.config.features.bbm != BbmLevel::Level2NoAbort
                    || pa != pb
                    || strip(x) != strip(y);
            }
            if x.attr_indx != y.attr_indx || x.sh != y.sh {
                return true;
            }
            if pa != pb {
                let (Some(pa), Some(pb)) = (pa, pb) else {
                    return true;
                };
                return x.writable(hw_dbm)
                    || y.writable(hw_dbm)
                    || !self.same_page.is_some_and(|same| same(pa, pb));
            }
            false
        };
        hits.iter()
            .enumerate()
            .any(|(i, a)| hits[i + 1..].iter().any(|b| pair(a, b)))
    }

    /// Appends to `out` the choices one walk gives.
    fn walk_choices(
        &self,
        asid: u16,
        va: VirtAddr,
        kind: Access,
        via: Via,
        walked: walk::Walked,
        out: &mut Vec<Choice>,
    ) {
        let g = self.config.granule;
        let f = self.config.features;
        let (leaf, level, desc_pa, desc) = match walked.result {
            Err(fault) => {
                out.push(Choice {
                    via,
                    result: Err(fault),
                    fills: walked.tables,
                    hw_update: None,
                });
                return;
            }
            Ok(x) => x,
        };
        let fault = |k| Fault {
            kind: k,
            va,
            level: Some(level),
        };
        let mut attrs = leaf.attrs;
        let mut hw = None;
        if !attrs.af() {
            if !f.hw_af {
                out.push(Choice {
                    via,
                    result: Err(fault(FaultKind::AccessFlag)),
                    fills: walked.tables,
                    hw_update: None,
                });
                return;
            }
            if !self.el.denied(&attrs) {
                attrs.flags.insert(Attributes::AF);
            }
        }
        if self.el.denied(&attrs) {
            // An AP\[1\] Permission fault comes after the Access flag
            // fault and sets no flag: herd7's `check_ptw` (herdtools7
            // `herd/AArch64Sem.ml`) ORs `check_el0` into the fault
            // condition, whose `mfault` gives AccessFlag without HA, a
            // Permission fault otherwise, and sets AF or the dirty state
            // only on the success path (`mok`). The leaf may be cached
            // when AF is set in memory (a Permission fault may be cached,
            // I_WZCBG names the faults that are not).
            let mut fills = walked.tables;
            let nt = f.bbm != BbmLevel::Level0 && level < 3 && attrs.flags.contains(Attributes::NT);
            if attrs.af() && !nt {
                fills.push(walk::leaf_entry(g, va, &leaf, level, desc_pa, asid));
            }
            out.push(Choice {
                via,
                result: Err(fault(FaultKind::Permission)),
                fills,
                hw_update: None,
            });
            return;
        }
        let mut result = Ok(());
        if kind.writes() && attrs.read_only() {
            if f.hw_dbm && attrs.flags.contains(Attributes::DBM) {
                attrs.flags.remove(Attributes::READ_ONLY);
            } else {
                result = Err(fault(FaultKind::Permission));
            }
        }
        if attrs != leaf.attrs {
            let new_leaf = crate::descriptor::Leaf { oa: leaf.oa, attrs };
            if let Ok(new) = Descriptor::leaf(g, level, new_leaf.oa, attrs) {
                hw = Some(HwUpdate {
                    pa: desc_pa,
                    expected: desc,
                    new,
                });
            }
        }
        let cached = crate::descriptor::Leaf { oa: leaf.oa, attrs };
        let entry = walk::leaf_entry(g, va, &cached, level, desc_pa, asid);
        let t = Translation {
            va,
            pa: entry.translate(va).unwrap_or_default(),
            level,
            size: entry.size(),
            attrs,
        };
        let mut fills = walked.tables;
        let nt = f.bbm != BbmLevel::Level0 && level < 3 && attrs.flags.contains(Attributes::NT);
        if !nt {
            fills.push(entry);
        }
        out.push(Choice {
            via,
            result: result.map(|()| t),
            fills,
            hw_update: hw,
        });
        if nt {
            // R_MRRPW: with nT set it is IMPLEMENTATION DEFINED whether the
            // access gives a Translation fault; both behaviours are allowed.
            out.push(Choice {
                via,
                result: Err(fault(FaultKind::Translation)),
                fills: Fills::default(),
                hw_update: None,
            });
        }
    }
}
