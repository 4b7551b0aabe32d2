//! The R_WHZWS clauses: an old translation a TLB may hold compared with
//! the new one that overlaps it (output address and writability or
//! contents, memory type, block size under FEAT_BBM, global over
//! non-global), and the detail of each finding.

use super::Rule;
use super::{RuleChecker, StaleKind, Trans};
use crate::addr::PhysAddr;
use crate::descriptor::{Attributes, Descriptor};
use crate::features::BbmLevel;
use crate::granule::{Granule, Level};
use crate::memory::Memory;

impl RuleChecker {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn compare(
        &mut self,
        mem: &Memory,
        cpu: usize,
        pa: PhysAddr,
        at: Option<(Level, u64)>,
        old: Descriptor,
        new: Descriptor,
        olds: &[Trans],
        news: &[Trans],
    ) {
        let g = self.config.granule;
        let f = self.config.features;
        // At most one finding per rule, in the order found, with the pair
        // of translations that showed it (five R_WHZWS clauses are compared
        // here); details are formatted afterwards, only for the violations
        // that will be kept.
        let mut found = [(Rule::OaChangeWritable, 0usize, 0usize); 5];
        let mut nfound = 0;
        let mut add = |r: Rule, oi: usize, ni: usize| {
            if !found[..nfound].iter().any(|&(x, _, _)| x == r) {
                found[nfound] = (r, oi, ni);
                nfound += 1;
            }
        };
        for (oi, o) in olds.iter().enumerate() {
            let StaleKind::Leaf {
                oa: ooa,
                attrs: oat,
            } = o.kind
            else {
                continue;
            };
            for (ni, n) in news.iter().enumerate() {
                let StaleKind::Leaf {
                    oa: noa,
                    attrs: nat,
                } = n.kind
                else {
                    continue;
                };
                let start = o.va.max(n.va);
                let stop = o.end().min(n.end());
                if start >= stop {
                    continue;
                }
                let opa = ooa.0 + (start - o.va);
                let npa = noa.0 + (start - n.va);
                if opa != npa {
                    if oat.writable(f.hw_dbm) || nat.writable(f.hw_dbm) {
                        add(Rule::OaChangeWritable, oi, ni);
                    }
                    let shift = g.page_shift();
                    let frames = ((stop - start) >> shift).max(1);
                    if !mem.same_range(opa >> shift, npa >> shift, frames) {
                        add(Rule::OaChangeContents, oi, ni);
                    }
                }
                if !f.same_memory_type(oat.attr_indx, nat.attr_indx) || oat.sh != nat.sh {
                    add(Rule::MemoryAttributes, oi, ni);
                }
                let ocont = oat.flags.contains(Attributes::CONTIGUOUS);
                let ncont = nat.flags.contains(Attributes::CONTIGUOUS);
                if o.level != n.level || ocont != ncont {
                    let nt = oat.flags.contains(Attributes::NT) && o.level < 3
                        || nat.flags.contains(Attributes::NT) && n.level < 3;
                    let allowed = match f.bbm {
                        BbmLevel::Level0 => false,
                        BbmLevel::Level1 => nt,
                        BbmLevel::Level2 | BbmLevel::Level2NoAbort => true,
                    };
                    if !allowed {
                        add(Rule::BlockSize, oi, ni);
                    }
                }
                if n.global && !o.global {
                    add(Rule::GlobalOverNonGlobal, oi, ni);
                }
            }
        }
        for &(rule, oi, ni) in &found[..nfound] {
            let (o, n) = (&olds[oi], &news[ni]);
            self.report(rule, cpu, pa, at, (Some(old), Some(new)), || {
                compare_detail(g, f.bbm, rule, o, n)
            });
        }
    }
}

/// Says what `compare` found for `rule` between the old translation `o`
/// and the new one `n` (both leaves that overlap).
fn compare_detail(g: Granule, bbm: BbmLevel, rule: Rule, o: &Trans, n: &Trans) -> String {
    let (StaleKind::Leaf { oa: ooa, .. }, StaleKind::Leaf { oa: noa, .. }) = (o.kind, n.kind)
    else {
        return String::new();
    };
    let start = o.va.max(n.va);
    let opa = ooa.0 + (start - o.va);
    let npa = noa.0 + (start - n.va);
    let what = format!(
        "{:#x}: L{} {} -> L{} {}",
        start,
        o.level,
        crate::descriptor::describe(&o.desc.decode(g, o.level)),
        n.level,
        crate::descriptor::describe(&n.desc.decode(g, n.level))
    );
    match rule {
        Rule::OaChangeWritable => {
            format!("output address changes with a writable translation, {what}")
        }
        Rule::OaChangeContents => format!(
            "output address changes from {opa:#x} to {npa:#x} whose contents differ, {what}"
        ),
        Rule::MemoryAttributes => format!("memory type or shareability changes, {what}"),
        Rule::BlockSize => format!("block size changes at FEAT_BBM level {bbm}, {what}"),
        Rule::GlobalOverNonGlobal => format!("a global entry replaces a non-global one, {what}"),
        _ => what,
    }
}
