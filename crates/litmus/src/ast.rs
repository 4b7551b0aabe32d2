//! The parsed form of a litmus test: locations, values, instructions, the
//! final condition.

use serde::Serialize;
use vmsa::{Attributes, Descriptor, Granule, LeafAttrs, PhysAddr, Shareability};

/// A symbol of the test (`x`, `y`, ...), an index into [`Test::syms`].
pub type Sym = u8;

/// Where the virtual address of symbol `i` lives (herd7 keeps addresses
/// symbolic; the executor needs distinct numbers for arithmetic).
pub fn va_of(s: Sym) -> u64 {
    0x10_0000 + (u64::from(s) << 12)
}

/// The physical address `PA(x)` of symbol `i`: a 4K page.
pub fn pa_of(s: Sym) -> u64 {
    0x4000_0000 + (u64::from(s) << 12)
}

/// The address of the descriptor `PTE(x)` of symbol `i`.
pub fn pte_addr_of(s: Sym) -> u64 {
    0x8000_0000 + (u64::from(s) << 3)
}

/// A value held in a register or a memory location. Addresses stay tagged
/// with their symbol so that outcomes print as herd7 prints them;
/// arithmetic works on the numbers ([`Val::num`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Val {
    /// A plain integer.
    Int(u64),
    /// The virtual address of a symbol (`x`).
    Va(Sym),
    /// The physical address of a symbol (`PA(x)`, `phy_x`).
    Pa(Sym),
    /// The address of the last-level descriptor of a symbol (`PTE(x)`,
    /// `pte_x`, `TTD(x)`).
    PteAddr(Sym),
    /// A descriptor value, encoded as the hardware encodes a 4K level-3
    /// page descriptor (vmsa's encoder): `(oa:PA(x), af:0, ...)`.
    Desc(u64),
    /// A code label of a thread: `label:"P1:L0"` (thread, instruction index).
    Label(u8, u16),
    /// The virtual address of an element other than the first of an
    /// array symbol (`int x[3]`): the symbol and the byte offset (the
    /// element's page is the symbol's).
    VaOff(Sym, u16),
}

impl Val {
    /// Returns the value as a number.
    pub fn num(self) -> u64 {
        match self {
            Val::Int(n) | Val::Desc(n) => n,
            Val::Va(s) => va_of(s),
            Val::Pa(s) => pa_of(s),
            Val::PteAddr(s) => pte_addr_of(s),
            Val::Label(t, i) => 0xc000_0000 + (u64::from(t) << 16) + u64::from(i) * 4,
            Val::VaOff(s, o) => va_of(s) + u64::from(o),
        }
    }
}

/// The memory type of a descriptor, herd7's `attrs:(...)`: the model keeps
/// it as an AttrIndx into a fixed MAIR (index 0 Normal write-back, the
/// default).
pub const ATTRS: &[(&str, u8)] = &[
    ("Normal", 0),
    ("Device-nGnRnE", 1),
    ("Device-nGnRE", 2),
    ("Device-GRE", 3),
    ("Device-nGRE", 4),
    ("iNC", 5),
    ("oNC", 5),
    ("iWT", 6),
    ("oWT", 6),
];

/// The fields of a herd7 descriptor value, each with herd7's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PteFields {
    /// `oa:PA(x)`.
    pub oa: Sym,
    /// `valid:` (default 1).
    pub valid: bool,
    /// `af:` (default 1).
    pub af: bool,
    /// `db:` dirty, i.e. AP\[2\] clear (default 1).
    pub db: bool,
    /// `dbm:` (default 0).
    pub dbm: bool,
    /// `el0:` AP\[1\] (default 1).
    pub el0: bool,
    /// AttrIndx (see [`ATTRS`]).
    pub attr: u8,
    /// Shareability: 0 inner (default), 1 outer, 2 non-shareable.
    pub sh: u8,
}

impl PteFields {
    /// Returns herd7's default descriptor for `oa`.
    pub fn new(oa: Sym) -> Self {
        PteFields {
            oa,
            valid: true,
            af: true,
            db: true,
            dbm: false,
            el0: true,
            attr: 0,
            sh: 0,
        }
    }

    /// Encodes the fields as a 4K level-3 page descriptor with vmsa's
    /// encoder (D8.3 of the Arm ARM: AF bit 10, AP\[2\] bit 7, AP\[1\] bit 6,
    /// DBM bit 51, valid bit 0). `valid:0` clears bit 0 and keeps the rest,
    /// as software does when it breaks an entry.
    pub fn encode(&self) -> u64 {
        let mut flags = Attributes::empty();
        flags.set(Attributes::AF, self.af);
        flags.set(Attributes::READ_ONLY, !self.db);
        flags.set(Attributes::DBM, self.dbm);
        flags.set(Attributes::USER, self.el0);
        let attrs = LeafAttrs {
            flags,
            attr_indx: self.attr,
            sh: match self.sh {
                1 => Shareability::Outer,
                2 => Shareability::NonShareable,
                _ => Shareability::Inner,
            },
            ..LeafAttrs::default()
        };
        let d = Descriptor::leaf(Granule::K4, 3, PhysAddr(pa_of(self.oa)), attrs)
            .map(|d| d.0)
            .unwrap_or(0);
        if self.valid { d } else { d & !1 }
    }

    /// Decodes a descriptor value, whatever its valid bit, with vmsa's
    /// decoder; `None` if the output address is not a symbol's page.
    pub fn decode(bits: u64) -> Option<Self> {
        let leaf = Descriptor(bits | 1).as_leaf(Granule::K4, 3)?;
        let oa = leaf.oa.0.checked_sub(pa_of(0))? >> 12;
        let oa = Sym::try_from(oa).ok()?;
        let f = leaf.attrs.flags;
        Some(PteFields {
            oa,
            valid: bits & 1 == 1,
            af: f.contains(Attributes::AF),
            db: !f.contains(Attributes::READ_ONLY),
            dbm: f.contains(Attributes::DBM),
            el0: f.contains(Attributes::USER),
            attr: leaf.attrs.attr_indx,
            sh: match leaf.attrs.sh {
                Shareability::Outer => 1,
                Shareability::NonShareable => 2,
                _ => 0,
            },
        })
    }

    /// Tells whether the memory type is Device.
    pub fn device(&self) -> bool {
        (1..=4).contains(&self.attr)
    }
}

/// A memory location: the data of a physical page or a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Loc {
    /// The data at `PA(x)` (herd7's `[x]` or `x`).
    Data(Sym),
    /// The descriptor `PTE(x)`.
    Pte(Sym),
    /// An element other than the first of an array on the physical page
    /// of a symbol: the page and the byte offset (the first element is
    /// [`Loc::Data`]).
    Elem(Sym, u16),
}

/// The instruction set (typed A64), shared with the explorer.
pub use vmsa::isa::*;

/// A thread: its code (main code, a `Halt`, then the fault handler if the
/// test has a `Pn.F` column) and the labels.
#[derive(Clone, Debug, Default)]
pub struct Thread {
    /// The instructions.
    pub code: Vec<Instr>,
    /// The source text of each instruction, for traces and printing only:
    /// the executor never reads it (every ordering annotation is a field of
    /// [`Instr`]).
    pub text: Vec<String>,
    /// Where the fault handler starts, if there is one.
    pub handler: Option<u16>,
    /// Labels and the instruction index they name.
    pub labels: Vec<(String, u16)>,
}

/// The kind of an MMU fault, as herd7 names it (`MMU:Translation`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum FaultKind {
    /// The descriptor is invalid.
    Translation,
    /// AF clear without hardware AF.
    AccessFlag,
    /// A write to a read-only page without hardware dirty-bit management.
    Permission,
}

/// What a final condition observes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Obs {
    /// A register of a thread.
    Reg(u8, Reg),
    /// A memory location.
    Mem(Loc),
    /// A fault: thread, instruction index (None: any), virtual address
    /// (None: any), kind (None: any).
    Fault(u8, Option<u16>, Option<Sym>, Option<FaultKind>),
}

/// A proposition of the final condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prop {
    /// `true`.
    True,
    /// An equality.
    Eq(Obs, Val),
    /// A fault atom holds.
    Fault(Obs),
    /// Negation.
    Not(Box<Prop>),
    /// Conjunction.
    And(Vec<Prop>),
    /// Disjunction.
    Or(Vec<Prop>),
}

/// The quantifier of the final condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Quant {
    /// `exists`.
    Exists,
    /// `~exists`.
    NotExists,
    /// `forall`.
    Forall,
}

impl Quant {
    /// Returns the quantifier as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Quant::Exists => "exists",
            Quant::NotExists => "~exists",
            Quant::Forall => "forall",
        }
    }
}

/// Hardware Access flag / dirty state updates per thread (`TTHM=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tthm {
    /// Bit i: thread i updates AF in hardware.
    pub ha: u64,
    /// Bit i: thread i updates the dirty state in hardware.
    pub hd: u64,
}

/// What a fault does when its thread has no handler (no `Pn.F` column):
/// herd7's fault handling (herdtools7 `lib/fault.ml`, `Handling`;
/// `herd/mem.ml`, `add_fault`). A test's `variant=` header line sets it
/// (the key is case-insensitive, the tags too: `imprecise`/`handled`,
/// `precise`/`fatal`, `faultToNext`/`skip`) and overrides the command
/// line's; the conformance data was made with `-variant vmsa,fatal`, so
/// [`FaultMode::Fatal`] is the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub enum FaultMode {
    /// `precise`/`fatal`: the faulting thread stops.
    #[default]
    Fatal,
    /// `imprecise`/`handled`: the faulting instruction is executed again,
    /// once; from then on the thread runs as herd7 runs a fault handler,
    /// and an execution where it faults again is discarded (`add_fault`'s
    /// `None, true` case: the code monad returns false).
    Handled,
    /// `faultToNext`/`skip`: execution goes on at the next instruction
    /// (the faulting one writes nothing).
    Skip,
}

impl FaultMode {
    /// Parses one `variant=` tag (lower-cased first), as herdtools7
    /// `lib/fault.ml`'s `Handling.parse` does; None for another tag.
    pub fn parse_tag(tag: &str) -> Option<Self> {
        match tag.to_ascii_lowercase().as_str() {
            "imprecise" | "handled" => Some(FaultMode::Handled),
            "precise" | "fatal" => Some(FaultMode::Fatal),
            "faulttonext" | "skip" => Some(FaultMode::Skip),
            _ => None,
        }
    }
}

/// A parsed litmus test.
#[derive(Clone, Debug)]
pub struct Test {
    /// The test's name.
    pub name: String,
    /// `Variant=` words.
    pub variants: Vec<String>,
    /// The fault handling the `Variant=` words select (the last one
    /// naming a mode wins), [`FaultMode::Fatal`] if none does.
    pub fault_mode: FaultMode,
    /// `TTHM=`.
    pub tthm: Tthm,
    /// `EL0=`: bit i set if thread i runs at EL0 (unprivileged), where a
    /// page whose descriptor has `el0:0` (AP\[1\] clear) is not accessible.
    pub el0: u64,
    /// The symbols, by index.
    pub syms: Vec<String>,
    /// Initial memory (everything else: data 0, descriptor `(oa:PA(x))`).
    pub init_mem: Vec<(Loc, Val)>,
    /// The array symbols (`int x[3]={...}`): symbol, element size in
    /// bytes, number of elements. Each element is a location of its own
    /// on the symbol's page ([`Loc::Elem`]).
    pub arrays: Vec<(Sym, u8, u16)>,
    /// Initial registers: thread, register, value.
    pub init_regs: Vec<(u8, Reg, Val)>,
    /// The threads.
    pub threads: Vec<Thread>,
    /// `locations [...]`.
    pub locations: Vec<Obs>,
    /// The quantifier.
    pub quant: Quant,
    /// The proposition.
    pub prop: Prop,
}

impl Test {
    /// Returns how herd7 prints an observed location.
    pub fn obs_name(&self, o: &Obs) -> String {
        match *o {
            Obs::Reg(t, r) => format!("{t}:X{r}"),
            Obs::Mem(Loc::Data(s)) => format!("[{}]", self.syms[usize::from(s)]),
            Obs::Mem(Loc::Pte(s)) => format!("[PTE({})]", self.syms[usize::from(s)]),
            Obs::Mem(Loc::Elem(s, o)) => format!("[{}+{o}]", self.syms[usize::from(s)]),
            Obs::Fault(t, pc, va, kind) => {
                let mut s = format!("fault(P{t}");
                if let Some(pc) = pc {
                    let th = &self.threads[usize::from(t)];
                    let l = th
                        .labels
                        .iter()
                        .find(|(_, i)| *i == pc)
                        .map_or("?", |(l, _)| l.as_str());
                    s.push(':');
                    s.push_str(l);
                }
                if let Some(va) = va {
                    s.push(',');
                    s.push_str(&self.syms[usize::from(va)]);
                }
                if let Some(k) = kind {
                    s.push_str(&format!(",MMU:{k:?}"));
                }
                s.push(')');
                s
            }
        }
    }

    /// Returns how herd7 prints a value.
    pub fn val_name(&self, v: Val) -> String {
        let sym = |s: Sym| self.syms[usize::from(s)].clone();
        match v {
            Val::Int(n) => format!("{}", n as i64),
            Val::Va(s) => sym(s),
            Val::VaOff(s, o) => format!("{}+{o}", sym(s)),
            Val::Pa(s) => format!("PA({})", sym(s)),
            Val::PteAddr(s) => format!("PTE({})", sym(s)),
            Val::Label(t, i) => {
                let l = self.threads[usize::from(t)]
                    .labels
                    .iter()
                    .find(|(_, j)| *j == i)
                    .map_or("?", |(l, _)| l.as_str());
                format!("label:\"P{t}:{l}\"")
            }
            // A value computed from a descriptor that is no descriptor
            // (`AND X0,X5,#1`): herd7 prints the number.
            Val::Desc(bits) => match PteFields::decode(bits) {
                None => format!("{}", bits as i64),
                Some(f) => {
                    // herd7's field order (herdtools7 `lib/AArch64PteVal.ml`,
                    // `do_pp`): oa, af, db, dbm, valid, el0, attrs; only
                    // fields that differ from the default.
                    let mut s = format!("(oa:PA({})", sym(f.oa));
                    if !f.af {
                        s.push_str(", af:0");
                    }
                    if !f.db {
                        s.push_str(", db:0");
                    }
                    if f.dbm {
                        s.push_str(", dbm:1");
                    }
                    if !f.valid {
                        s.push_str(", valid:0");
                    }
                    if !f.el0 {
                        s.push_str(", el0:0");
                    }
                    if f.attr != 0 {
                        let a = ATTRS
                            .iter()
                            .find(|(_, i)| *i == f.attr)
                            .map_or("?", |a| a.0);
                        s.push_str(&format!(", attrs:({a})"));
                    }
                    s.push(')');
                    s
                }
            },
        }
    }
}
