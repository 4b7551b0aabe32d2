//! Mutants of a protocol's program: each removes or moves one step, to show
//! that the step is needed (the rule checker or the explorer must report
//! the mutant) or that it is not.

use std::fmt;

use mm::program::{Instr, Program};
use serde::Serialize;

/// One change to a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Mutant {
    /// Remove the TLBI at this index.
    RemoveTlbi(usize),
    /// Remove the DSB at this index.
    RemoveDsb(usize),
    /// Move the free at this index before the TLBI that precedes it.
    FreeBeforeFlush(usize),
    /// Remove the permission-only store at this index, so the next store
    /// to the same descriptor changes permission and address at once.
    MergePermission(usize),
    /// Remove the `synchronize_rcu()` at this index.
    RemoveRcu(usize),
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mutant::RemoveTlbi(i) => write!(f, "without the TLBI at {i}"),
            Mutant::RemoveDsb(i) => write!(f, "without the DSB at {i}"),
            Mutant::FreeBeforeFlush(i) => write!(f, "the free at {i} before its flush"),
            Mutant::MergePermission(i) => {
                write!(
                    f,
                    "the permission change at {i} merged into the address change"
                )
            }
            Mutant::RemoveRcu(i) => write!(f, "without the synchronize_rcu at {i}"),
        }
    }
}

impl Mutant {
    /// Applies the change; `None` if it does not apply to `p`.
    pub fn apply(self, p: &Program) -> Option<Program> {
        let mut v = p.instrs.clone();
        match self {
            Mutant::RemoveTlbi(i) => {
                matches!(v.get(i), Some(Instr::Tlbi { .. })).then(|| v.remove(i))?;
            }
            Mutant::RemoveDsb(i) => {
                matches!(v.get(i), Some(Instr::Dsb(_))).then(|| v.remove(i))?;
            }
            Mutant::RemoveRcu(i) => {
                matches!(v.get(i), Some(Instr::SynchronizeRcu)).then(|| v.remove(i))?;
            }
            Mutant::FreeBeforeFlush(i) => {
                if !matches!(v.get(i), Some(Instr::Free { .. })) {
                    return None;
                }
                let t = v[..i]
                    .iter()
                    .rposition(|x| matches!(x, Instr::Tlbi { .. }))?;
                let free = v.remove(i);
                v.insert(t, free);
            }
            Mutant::MergePermission(i) => {
                let Some(Instr::Store { va, level, desc }) = v.get(i).cloned() else {
                    return None;
                };
                let mm::Desc::Leaf { page, .. } = desc else {
                    return None;
                };
                let to_slot = |x: &Instr| match x {
                    Instr::Store {
                        va: a,
                        level: l,
                        desc,
                    } if *a == va && *l == level => Some(*desc),
                    _ => None,
                };
                // The next store to the same slot must change the page.
                let next = v[i + 1..].iter().find_map(to_slot)?;
                let mm::Desc::Leaf { page: p2, .. } = next else {
                    return None;
                };
                let prev = v[..i].iter().rev().find_map(to_slot);
                // A permission-only change: same page as before (or the
                // first store, keeping the boot mapping's page).
                let same_page = match prev {
                    Some(mm::Desc::Leaf { page: p0, .. }) => p0 == page,
                    Some(_) => false,
                    None => matches!(page, mm::Page::Frame(_) | mm::Page::Same),
                };
                if p2 == page || !same_page {
                    return None;
                }
                v.remove(i);
            }
        }
        Some(Program { instrs: v })
    }

    /// Lists the mutants of `p` of the kinds the issue asks for (TLBI, DSB,
    /// free, permission merge); `RemoveRcu` is separate.
    pub fn all(p: &Program) -> Vec<Mutant> {
        let mut out = Vec::new();
        for (i, ins) in p.instrs.iter().enumerate() {
            let cands = match ins {
                Instr::Tlbi { .. } => vec![Mutant::RemoveTlbi(i)],
                Instr::Dsb(_) => vec![Mutant::RemoveDsb(i)],
                Instr::Free { .. } => vec![Mutant::FreeBeforeFlush(i)],
                Instr::Store { .. } => vec![Mutant::MergePermission(i)],
                _ => vec![],
            };
            out.extend(cands.into_iter().filter(|m| m.apply(p).is_some()));
        }
        out
    }

    /// Lists the `synchronize_rcu()` removals of `p`.
    pub fn rcu(p: &Program) -> Vec<Mutant> {
        (0..p.instrs.len())
            .map(Mutant::RemoveRcu)
            .filter(|m| m.apply(p).is_some())
            .collect()
    }
}
