//! The pieces of a litmus test: descriptor values as herd7's fields, the
//! symbols of the pages, P0's value registers, and the text helpers.

use std::fmt::Write as _;

use mm::Instr;
use vmsa::{Attributes, Descriptor, Shareability, TlbiScope};

/// A descriptor value as herd7 writes it: `(oa:PA(s), valid:0, af:0,
/// db:0, dbm:1)` with only the fields that differ from herd7's defaults
/// (valid 1, af 1, db 1, dbm 0: herd7's `lib/AArch64PteVal.ml`,
/// `prot_default`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fields {
    /// The output page's symbol.
    pub(super) oa: &'static str,
    pub(super) valid: bool,
    pub(super) af: bool,
    /// Dirty: AP\[2\] clear (writable).
    pub(super) db: bool,
    pub(super) dbm: bool,
}

/// The test's symbols: the pages the reader accesses first (`x`, `y`, in
/// VA order), then the other physical pages the descriptors map.
pub(super) const NAMES: [&str; 8] = ["x", "y", "z", "w", "u", "v", "s", "t"];

impl Fields {
    pub(super) fn text(&self) -> String {
        let mut s = format!("(oa:PA({})", self.oa);
        for (on, default, name) in [
            (self.valid, true, "valid"),
            (self.af, true, "af"),
            (self.db, true, "db"),
            (self.dbm, false, "dbm"),
        ] {
            if on != default {
                let _ = write!(s, ", {name}:{}", u8::from(on));
            }
        }
        s.push(')');
        s
    }
}

/// The physical pages the descriptors map, each with its symbol.
pub(super) struct Frames {
    pub(super) named: Vec<(u64, &'static str)>,
    /// Symbols of the test's pages, which a frame may take only as the
    /// page's initial frame.
    pub(super) reserved: Vec<&'static str>,
}

impl Frames {
    /// Returns the symbol of `frame`, naming it `preferred` (a page's own
    /// symbol, for its initial frame) or the first free symbol.
    fn name(
        &mut self,
        frame: u64,
        preferred: Option<&'static str>,
    ) -> Result<&'static str, String> {
        if let Some((_, n)) = self.named.iter().find(|(f, _)| *f == frame) {
            return Ok(n);
        }
        let used = |n: &&str| self.named.iter().any(|(_, m)| m == n);
        let name = match preferred.filter(|p| !used(p)) {
            Some(p) => p,
            None => *NAMES
                .iter()
                .find(|n| !used(n) && !self.reserved.contains(n))
                .ok_or_else(|| {
                    format!(
                        "cannot export to herd7: the descriptors map more than the {} pages this export names",
                        NAMES.len()
                    )
                })?,
        };
        self.named.push((frame, name));
        Ok(name)
    }

    /// Describes the level-3 descriptor `v` as herd7's fields; an invalid
    /// one keeps the output address of the slot's value before it
    /// (`prev`), as the catalogue writes `(oa:PA(x), valid:0)` (Linux's
    /// `pte_clear()` writes 0, which a walker reads as invalid all the
    /// same: bit 0 is the valid bit, Arm ARM D8.3 "Translation table
    /// descriptor formats").
    pub(super) fn describe(
        &mut self,
        v: u64,
        g: vmsa::Granule,
        prev: Option<Fields>,
        preferred: Option<&'static str>,
    ) -> Result<Fields, String> {
        if v & 1 == 0 {
            let mut f = if v != 0 {
                self.describe(v | 1, g, prev, preferred)?
            } else {
                prev.ok_or("cannot export to herd7: a page's descriptor is invalid before the program stores to it")?
            };
            f.valid = false;
            return Ok(f);
        }
        let leaf = Descriptor(v).as_leaf(g, 3).ok_or_else(|| {
            format!("cannot export to herd7: {v:#x} is not a level-3 page descriptor")
        })?;
        let a = leaf.attrs;
        if a.attr_indx != 0 || a.sh != Shareability::Inner {
            return Err(format!(
                "cannot export to herd7: descriptor {v:#x} is not Normal Inner Shareable memory (AttrIndx {}, {:?}), herd7's default",
                a.attr_indx, a.sh
            ));
        }
        Ok(Fields {
            oa: self.name(leaf.oa.0 >> g.page_shift(), preferred)?,
            valid: true,
            af: a.flags.contains(Attributes::AF),
            db: !a.flags.contains(Attributes::READ_ONLY),
            dbm: a.flags.contains(Attributes::DBM),
        })
    }
}

/// The descriptor values P0 holds in registers: a value stores share, and
/// a CAS's expected value in a register of its own (a CAS writes the value
/// it read into that register).
#[derive(Default)]
pub(super) struct Values(pub(super) Vec<(Fields, bool)>);

impl Values {
    /// Returns the register index of `f` for a store, adding it.
    pub(super) fn shared(&mut self, f: Fields) -> usize {
        match self.0.iter().position(|(v, own)| *v == f && !own) {
            Some(i) => i,
            None => {
                self.0.push((f, false));
                self.0.len() - 1
            }
        }
    }

    /// Returns a register index of its own for a CAS's expected `f`.
    pub(super) fn own(&mut self, f: Fields) -> usize {
        self.0.push((f, true));
        self.0.len() - 1
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

/// `VAAE1IS` for a broadcast TLBI, `VAAE1` for a local one (the
/// instructions' descriptions, DDI 0601: `IS` applies to the Inner
/// Shareable domain).
pub(super) fn suffix(op: &str, scope: TlbiScope) -> String {
    match scope {
        TlbiScope::Broadcast => format!("{op}IS"),
        TlbiScope::Local => op.to_string(),
    }
}

/// Returns `text` wrapped at 78 columns, its first line after `first`, the
/// others after `rest` (each word after a space), each line ended by a
/// newline.
pub(super) fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut words = 0;
    for word in text.split_whitespace() {
        if words > 0 && line.len() + 1 + word.len() > 78 {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_string();
            words = 0;
        }
        line.push(' ');
        line.push_str(word);
        words += 1;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// Returns `kinds` as `2 barriers, 1 frees`, each kind once in order of
/// first appearance with its count.
pub(super) fn counted(kinds: &[String]) -> String {
    let mut c: Vec<(&str, usize)> = Vec::new();
    for k in kinds {
        match c.iter_mut().find(|(w, _)| w == k) {
            Some(e) => e.1 += 1,
            None => c.push((k, 1)),
        }
    }
    c.iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names an operation the test leaves out.
pub(super) fn kind_of(i: &Instr) -> String {
    match i {
        Instr::Store { level, .. } | Instr::Cas { level, .. } if *level < 3 => {
            format!("descriptor stores at level {level}")
        }
        Instr::Store { .. } | Instr::Cas { .. } => "level-3 descriptor stores".into(),
        Instr::Dsb(_) | Instr::Isb => "barriers".into(),
        Instr::Tlbi { .. } => "TLBIs".into(),
        Instr::Alloc { .. } => "allocations".into(),
        Instr::Free { .. } => "frees".into(),
        Instr::Copy { .. } => "page copies".into(),
        Instr::FillTable { .. } => "table fills (a block's split)".into(),
        Instr::ResetStructPages { .. } => "struct page repairs".into(),
        Instr::PauseCpus | Instr::ResumeCpus => "pause/resume of the other CPUs".into(),
        Instr::StopMachine | Instr::StartMachine => "stop_machine()".into(),
        Instr::SynchronizeRcu => "synchronize_rcu()".into(),
        Instr::WriteWord { .. } => "struct page stores (the refcount freeze)".into(),
    }
}
