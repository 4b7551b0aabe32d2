//! Final states as herd7 prints them, herd7's `.litmus.expected` output,
//! and the comparison of the two.
//!
//! herd7 prints a final state (herdtools7 `herd/archExtra_herd.ml`,
//! `do_dump_final_state`) as the values of the registers and locations the
//! condition and `locations [...]` name, then every fault the execution
//! took that matches a fault atom of the condition or `locations`, with its
//! kind (`Fault(P1:L0,x,D-MMU:Translation)`: the thread, the labels of the
//! faulting instruction, the virtual address, the kind; an atom that names
//! a kind prints that kind instead, `MMU:Permission`), then `~` and the
//! atom for each atom no fault matches (`~Fault(P0,x)`). The items of a
//! state are compared as a set, so their order within a line does not
//! matter.

use std::collections::BTreeSet;

use crate::ast::{FaultKind, Obs, Sym, Test};
use crate::exec::{Final, ObsVal, Outcome};

/// How herd7 names a fault kind of a data access (`lib/faultType.ml`):
/// `D-MMU:Translation`; `MMU:Translation` when `any` (the kind as a fault
/// atom writes it).
fn kind_name(k: FaultKind, any: bool) -> String {
    format!("{}MMU:{k:?}", if any { "" } else { "D-" })
}

/// herd7's label part of a fault (`lib/fault.ml`, `pp_lbl`): `P0`, `P0:L0`
/// or `P0:{L0,L1}` for an instruction with several labels.
fn label_part(t: &Test, th: u8, pc: Option<u16>) -> String {
    let Some(pc) = pc else {
        return format!("P{th}");
    };
    let mut ls: Vec<&str> = t
        .threads
        .get(usize::from(th))
        .map(|x| {
            x.labels
                .iter()
                .filter(|(_, i)| *i == pc)
                .map(|(l, _)| l.as_str())
                .collect()
        })
        .unwrap_or_default();
    ls.sort_unstable();
    ls.dedup();
    match ls.as_slice() {
        [] => format!("P{th}"),
        [l] => format!("P{th}:{l}"),
        _ => format!("P{th}:{{{}}}", ls.join(",")),
    }
}

fn fault_text(t: &Test, lbl: String, va: Option<Sym>, kind: Option<String>) -> String {
    let mut s = format!("Fault({lbl}");
    if let Some(v) = va {
        s.push(',');
        s.push_str(&t.syms[usize::from(v)]);
    }
    if let Some(k) = kind {
        s.push(',');
        s.push_str(&k);
    }
    s.push(')');
    s
}

/// Tells whether fault `f` (thread, instruction, address, kind) matches
/// fault atom `o` (herdtools7 `lib/fault.ml`, `check_one_fatom`).
pub fn matches(o: &Obs, f: &(u8, u16, Sym, FaultKind)) -> bool {
    match *o {
        Obs::Fault(t, pc, va, k) => {
            t == f.0
                && pc.is_none_or(|p| p == f.1)
                && va.is_none_or(|v| v == f.2)
                && k.is_none_or(|k| k == f.3)
        }
        _ => false,
    }
}

/// Returns the items of final state `f` of `t` as herd7 prints them
/// (without the `;` after each): registers and locations of `shown` in
/// order, then the faults taken, then the fault atoms not matched.
pub fn items(t: &Test, shown: &[Obs], f: &Final) -> Vec<String> {
    let mut out = Vec::new();
    for (o, v) in shown.iter().zip(&f.vals) {
        if let ObsVal::Val(v) = v {
            out.push(format!("{}={}", t.obs_name(o), t.val_name(*v)));
        }
    }
    let atoms: Vec<&Obs> = shown
        .iter()
        .filter(|o| matches!(o, Obs::Fault(..)))
        .collect();
    for flt in &f.faults {
        let typed = atoms.iter().find_map(|o| match o {
            Obs::Fault(_, _, _, Some(k)) if matches(o, flt) => Some(*k),
            _ => None,
        });
        let kind = match typed {
            Some(k) => kind_name(k, true),
            None => kind_name(flt.3, false),
        };
        out.push(fault_text(
            t,
            label_part(t, flt.0, Some(flt.1)),
            Some(flt.2),
            Some(kind),
        ));
    }
    for o in atoms {
        if let Obs::Fault(th, pc, va, k) = *o
            && !f.faults.iter().any(|flt| matches(o, flt))
        {
            out.push(format!(
                "~{}",
                fault_text(t, label_part(t, th, pc), va, k.map(|k| kind_name(k, true)))
            ));
        }
    }
    out
}

/// Joins the items of a state as herd7 does: each followed by `;`, one
/// space between.
pub fn line(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("{i};"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Outcome {
    /// Returns the final states as herd7 prints them, one line each,
    /// sorted.
    pub fn herd7_states(&self, t: &Test) -> Vec<String> {
        let mut v: Vec<String> = self
            .finals
            .keys()
            .map(|f| line(&items(t, &self.shown, f)))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// herd7's output for one test, as a `.litmus.expected` file holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// The final states, one line each, as printed.
    pub states: Vec<String>,
    /// `Ok` (true) or `No`.
    pub ok: bool,
    /// The observation word: Never, Sometimes or Always.
    pub observation: Option<String>,
    /// The flags (`Warning-BBM-expected`, ...).
    pub flags: Vec<String>,
}

impl Expected {
    /// Tells whether herd7 raised `Warning-BBM-expected`.
    pub fn bbm(&self) -> bool {
        self.flags.iter().any(|f| f == "Warning-BBM-expected")
    }
}

/// Reads herd7's output: `Test`, `States N` and N state lines, `Ok` or
/// `No`, `Witnesses`, `Positive: ...`, `Flag ...` lines, `Condition`,
/// `Observation NAME WORD P N`.
///
/// # Errors
///
/// Returns the line (1-based) and what was expected when the text has no
/// `States N` line or fewer than N state lines after it.
pub fn parse_expected(text: &str) -> Result<Expected, (usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut e = Expected::default();
    let Some(si) = lines.iter().position(|l| l.starts_with("States ")) else {
        return Err((1, "expected a `States N` line".into()));
    };
    let n: usize = lines[si]["States ".len()..]
        .trim()
        .parse()
        .map_err(|_| (si + 1, "expected a number after `States`".into()))?;
    if si + n >= lines.len() {
        return Err((
            lines.len(),
            format!("expected {n} state lines after line {}", si + 1),
        ));
    }
    e.states = lines[si + 1..=si + n]
        .iter()
        .map(|l| l.trim().to_string())
        .collect();
    for l in &lines[si + n + 1..] {
        let l = l.trim();
        if l == "Ok" {
            e.ok = true;
        } else if let Some(f) = l.strip_prefix("Flag ") {
            e.flags.push(f.trim().to_string());
        } else if let Some(o) = l.strip_prefix("Observation ") {
            e.observation = o.split_whitespace().nth(1).map(str::to_string);
        }
    }
    Ok(e)
}

/// Returns a state line's items as a set (each item without its `;`,
/// blanks trimmed), so that two lines listing the same items in another
/// order compare equal.
pub fn key(line: &str) -> BTreeSet<String> {
    line.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The difference between our final states and herd7's.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatesDiff {
    /// herd7's states we do not reach (as herd7 prints them).
    pub missing: Vec<String>,
    /// Our states herd7 does not have (as we print them).
    pub extra: Vec<String>,
}

impl StatesDiff {
    /// Tells whether the two sets are equal.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Compares our state lines with herd7's, as sets of item sets.
pub fn diff(ours: &[String], theirs: &[String]) -> StatesDiff {
    let ok: BTreeSet<BTreeSet<String>> = ours.iter().map(|l| key(l)).collect();
    let tk: BTreeSet<BTreeSet<String>> = theirs.iter().map(|l| key(l)).collect();
    StatesDiff {
        missing: theirs
            .iter()
            .filter(|l| !ok.contains(&key(l)))
            .cloned()
            .collect(),
        extra: ours
            .iter()
            .filter(|l| !tk.contains(&key(l)))
            .cloned()
            .collect(),
    }
}
