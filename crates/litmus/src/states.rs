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
//! atom for each atom no fault matches (`~Fault(P0,x)`). [`render`]
//! prints a state byte for byte as herd7 does; the comparison is of the
//! sets of lines (herd7's order of the lines is not reproduced).

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

/// The parts of a final state as herd7 prints them (each item without
/// its `;`): the values, the faults taken, the fault atoms not matched.
struct Parts {
    vals: Vec<String>,
    faults: Vec<String>,
    absent: Vec<String>,
}

/// herd7's order of the values of a state (its `RState` is a map on
/// locations): registers by thread and number, then data, then
/// descriptors, each by symbol name.
fn value_order(t: &Test, o: &Obs) -> (u8, u8, u8, String) {
    use crate::ast::Loc;
    let name = |s: Sym| t.syms[usize::from(s)].clone();
    match *o {
        Obs::Reg(th, r) => (0, th, r, String::new()),
        Obs::Mem(Loc::Data(s)) => (1, 0, 0, name(s)),
        Obs::Mem(Loc::Pte(s)) => (2, 0, 0, name(s)),
        Obs::Mem(Loc::Elem(s, o)) => (1, 0, 0, format!("{}+{o:05}", name(s))),
        Obs::Fault(..) => (3, 0, 0, String::new()),
    }
}

fn parts(t: &Test, shown: &[Obs], f: &Final) -> Parts {
    let mut vals: Vec<(&Obs, String)> = Vec::new();
    for (o, v) in shown.iter().zip(&f.vals) {
        if let ObsVal::Val(v) = v {
            vals.push((o, format!("{}={}", t.obs_name(o), t.val_name(*v))));
        }
    }
    vals.sort_by_cached_key(|(o, _)| value_order(t, o));
    // The atoms in herd7's order (`FaultAtomSet`: thread, label,
    // address, kind).
    let mut atoms: Vec<&Obs> = shown
        .iter()
        .filter(|o| matches!(o, Obs::Fault(..)))
        .collect();
    atoms.sort_by_key(|o| match **o {
        Obs::Fault(th, pc, va, k) => (
            th,
            pc.map(|pc| label_part(t, th, Some(pc))),
            va.map(|v| t.syms[usize::from(v)].clone()),
            k,
        ),
        _ => (0, None, None, None),
    });
    let mut faults = Vec::new();
    for flt in &f.faults {
        let typed = atoms.iter().find_map(|o| match o {
            Obs::Fault(_, _, _, Some(k)) if matches(o, flt) => Some(*k),
            _ => None,
        });
        let kind = match typed {
            Some(k) => kind_name(k, true),
            None => kind_name(flt.3, false),
        };
        faults.push(fault_text(
            t,
            label_part(t, flt.0, Some(flt.1)),
            Some(flt.2),
            Some(kind),
        ));
    }
    // herd7 folds over the atom set consing onto a list: the last atom
    // comes first.
    let mut absent = Vec::new();
    for o in atoms.iter().rev() {
        if let Obs::Fault(th, pc, va, k) = **o
            && !f.faults.iter().any(|flt| matches(o, flt))
        {
            absent.push(format!(
                "~{}",
                fault_text(t, label_part(t, th, pc), va, k.map(|k| kind_name(k, true)))
            ));
        }
    }
    Parts {
        vals: vals.into_iter().map(|v| v.1).collect(),
        faults,
        absent,
    }
}

/// Returns the items of final state `f` of `t` as herd7 prints them
/// (without the `;` after each): the values, then the faults taken, then
/// the fault atoms no fault matches (`~Fault(...)`).
pub fn items(t: &Test, shown: &[Obs], f: &Final) -> Vec<String> {
    let p = parts(t, shown, f);
    p.vals.into_iter().chain(p.faults).chain(p.absent).collect()
}

/// Returns final state `f` of `t` as herd7 prints it, byte for byte
/// (herdtools7 `herd/archExtra_herd.ml`, `do_dump_final_state`): each
/// item followed by `;`, values joined by a space, then, when the test
/// has fault atoms, a space, the faults joined by a space, and ` ~...;`
/// for each atom not matched (so a state without faults shows two
/// spaces before its first `~`).
pub fn render(t: &Test, shown: &[Obs], f: &Final) -> String {
    let p = parts(t, shown, f);
    let semi = |v: &[String]| {
        v.iter()
            .map(|i| format!("{i};"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = semi(&p.vals);
    if !p.faults.is_empty() || !p.absent.is_empty() {
        s.push(' ');
        s.push_str(&semi(&p.faults));
        for a in &p.absent {
            s.push_str(&format!(" {a};"));
        }
    }
    s
}

/// Joins items as herd7 joins the values of a state: each followed by
/// `;`, one space between.
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
            .map(|f| render(t, &self.shown, f))
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
        .map(|l| l.to_string())
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

/// Compares our state lines with herd7's as sets of lines, byte for byte
/// (the order of the lines does not matter).
pub fn diff(ours: &[String], theirs: &[String]) -> StatesDiff {
    let ok: BTreeSet<&str> = ours.iter().map(String::as_str).collect();
    let tk: BTreeSet<&str> = theirs.iter().map(String::as_str).collect();
    StatesDiff {
        missing: tk.difference(&ok).map(|l| l.to_string()).collect(),
        extra: ok.difference(&tk).map(|l| l.to_string()).collect(),
    }
}
