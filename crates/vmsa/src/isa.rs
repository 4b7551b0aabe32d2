//! The instruction set every CPU of the model runs: the subset of A64 that
//! herd7's AArch64 litmus tests use, as typed instructions. Memory order,
//! barrier kind, TLBI scope and shareability, widths and branch conditions
//! are fields, so no executor reads instruction text. The litmus reader
//! (`crates/litmus`) builds these; the explorer's threads
//! (`crates/explore`, `engine/thread.rs`) and the litmus executor run them.

/// A register: 0..=30, 31 for XZR/WZR.
pub type Reg = u8;

/// The zero register.
pub const ZR: Reg = 31;

/// The width a general-purpose register is named with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegWidth {
    /// `Wn`: the low 32 bits.
    W,
    /// `Xn`: all 64 bits.
    X,
}

/// A second operand: a register or an immediate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// A register.
    Reg {
        /// The register.
        reg: Reg,
        /// As named (`Wn` or `Xn`).
        width: RegWidth,
    },
    /// An immediate.
    Imm(u64),
}

/// An addressing mode `[Xn]`, `[Xn,#imm]`, `[Xn,Xm]`, `[Xn,Wm,SXTW]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr {
    /// The base register.
    pub base: Reg,
    /// The offset.
    pub off: Operand,
}

/// Arithmetic and logic operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alu {
    /// ADD.
    Add,
    /// SUB.
    Sub,
    /// EOR.
    Eor,
    /// AND.
    And,
    /// ORR.
    Orr,
    /// BIC.
    Bic,
    /// LSR.
    Lsr,
    /// LSL.
    Lsl,
}

/// The atomic memory operations of FEAT_LSE (LDADD, LDCLR, LDSET, LDEOR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmoOp {
    /// Add.
    Add,
    /// Bit clear.
    Clr,
    /// Bit set.
    Set,
    /// Exclusive or.
    Eor,
}

/// A condition code (only the ones the catalogue uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CondCode {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
}

/// The access types a barrier (DMB or DSB) orders or waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarrierKind {
    /// SY, ISH, OSH, NSH: everything (for a DSB, TLBIs included).
    Full,
    /// LD (ISHLD, OSHLD, NSHLD): loads only.
    Ld,
    /// ST (ISHST, OSHST, NSHST): stores only (for a DSB, descriptor stores
    /// reach the walkers; TLBIs are not completed).
    St,
}

/// What a TLBI invalidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbiScope {
    /// Every entry (VMALLE1, ALLE1, VMALLS12E1, ...).
    All,
    /// The entries of one page, given in a register as VA\[55:12\].
    Page(Reg),
}

/// Which TLBs a TLBI reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbiShareability {
    /// The issuing CPU's only (`TLBI VAE1`, ...).
    Local,
    /// Every CPU's of the shareability domain (the `IS` and `OS` forms).
    Broadcast,
}

/// The width of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 8 bits (`LDRB`, `STRB`, ...).
    Byte,
    /// 16 bits (`LDRH`, `STRH`, ...).
    Half,
    /// 32 bits (a W register).
    Word,
    /// 64 bits (an X register).
    Double,
}

impl Width {
    /// Returns the width in bytes.
    pub fn bytes(self) -> u8 {
        match self {
            Width::Byte => 1,
            Width::Half => 2,
            Width::Word => 4,
            Width::Double => 8,
        }
    }
}

/// The memory order of a load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadOrder {
    /// `LDR`, `LDXR`.
    Plain,
    /// Acquire (herd7's `A`): `LDAR`, `LDAXR`.
    Acquire,
    /// AcquirePC (herd7's `Q`, FEAT_LRCPC): `LDAPR`.
    AcquirePc,
}

impl LoadOrder {
    /// Tells whether the load is an acquire of either kind.
    pub fn acquires(self) -> bool {
        !matches!(self, LoadOrder::Plain)
    }
}

/// The memory order of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOrder {
    /// `STR`, `STXR`.
    Plain,
    /// Release (herd7's `L`): `STLR`, `STLXR`.
    Release,
}

/// The memory order of a read-modify-write (the `A` and `L` suffixes of
/// CAS, SWP, `LD<op>` and `ST<op>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmwOrder {
    /// No suffix.
    Plain,
    /// `A`: the read is an acquire.
    Acquire,
    /// `L`: the write is a release.
    Release,
    /// `AL`: both.
    AcquireRelease,
}

impl RmwOrder {
    /// Returns the order its mnemonic's suffix (`""`, `"A"`, `"L"`,
    /// `"AL"`) names, if any.
    pub fn from_suffix(s: &str) -> Option<Self> {
        Some(match s {
            "" => RmwOrder::Plain,
            "A" => RmwOrder::Acquire,
            "L" => RmwOrder::Release,
            "AL" => RmwOrder::AcquireRelease,
            _ => return None,
        })
    }

    /// Tells whether the read is an acquire.
    pub fn acquires(self) -> bool {
        matches!(self, RmwOrder::Acquire | RmwOrder::AcquireRelease)
    }

    /// Tells whether the write is a release.
    pub fn releases(self) -> bool {
        matches!(self, RmwOrder::Release | RmwOrder::AcquireRelease)
    }
}

/// Whether a load sets the exclusive monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exclusivity {
    /// An ordinary load.
    Plain,
    /// A load-exclusive (`LDXR`, `LDAXR`): it sets the monitor.
    Exclusive,
}

/// The condition of a compare-and-branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BranchOn {
    /// `CBZ`: branch when the register is zero.
    Zero,
    /// `CBNZ`: branch when it is not.
    NonZero,
}

/// One instruction. Everything an executor needs is a field: it never
/// reads the instruction's text (a front end keeps the text for traces).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instr {
    /// MOV Rd, op.
    Mov {
        /// Rd.
        dst: Reg,
        /// Rd's width (a W destination keeps the low 32 bits).
        width: RegWidth,
        /// The value moved.
        src: Operand,
    },
    /// ADD, SUB, EOR, AND, ORR, BIC, LSR, LSL Rd, Rn, op.
    Alu {
        /// The operation.
        op: Alu,
        /// Rd.
        dst: Reg,
        /// Rd's width.
        width: RegWidth,
        /// Rn.
        lhs: Reg,
        /// The second operand.
        rhs: Operand,
    },
    /// CMP Rn, op.
    Cmp {
        /// Rn.
        lhs: Reg,
        /// The second operand.
        rhs: Operand,
    },
    /// CSEL Rd, Rn, Rm, cond.
    Csel {
        /// Rd.
        dst: Reg,
        /// Rn, chosen when the condition holds.
        if_true: Reg,
        /// Rm, chosen otherwise.
        if_false: Reg,
        /// The condition.
        cond: CondCode,
    },
    /// CSET Rd, cond.
    Cset {
        /// Rd.
        dst: Reg,
        /// The condition.
        cond: CondCode,
    },
    /// B / B.cond.
    B {
        /// The condition (`None` for B).
        cond: Option<CondCode>,
        /// The instruction index branched to.
        target: u16,
    },
    /// CBZ / CBNZ Rn, target.
    Cbz {
        /// When the branch is taken.
        on: BranchOn,
        /// The register tested.
        reg: Reg,
        /// The instruction index branched to.
        target: u16,
    },
    /// A load: `LDR`, `LDRB`, `LDRH`, `LDAR*`, `LDAPR`, `LDXR`, `LDAXR`.
    Load {
        /// The register loaded.
        dst: Reg,
        /// The address.
        addr: Addr,
        /// The access width.
        width: Width,
        /// Plain, acquire or acquirePC.
        order: LoadOrder,
        /// Whether it sets the exclusive monitor.
        exclusive: Exclusivity,
    },
    /// A store: `STR`, `STRB`, `STRH`, `STLR*`.
    Store {
        /// The register stored.
        src: Reg,
        /// The address.
        addr: Addr,
        /// The access width.
        width: Width,
        /// Plain or release.
        order: StoreOrder,
    },
    /// A store-exclusive: `STXR Ws, Rt, [Xn]`, `STLXR`.
    StoreExclusive {
        /// The status register (0 success, 1 failure).
        status: Reg,
        /// The register stored.
        src: Reg,
        /// The address.
        addr: Addr,
        /// The access width.
        width: Width,
        /// Plain or release.
        order: StoreOrder,
    },
    /// `SWP Rs, Rt, [Xn]` and its A/L forms.
    Swp {
        /// The register stored (Rs).
        src: Reg,
        /// The register loaded (Rt).
        dst: Reg,
        /// The address.
        addr: Addr,
        /// The access width.
        width: Width,
        /// The A/L suffix.
        order: RmwOrder,
    },
    /// `CAS Rs, Rt, [Xn]` and its A/L forms.
    Cas {
        /// The value compared with, and the register loaded (Rs).
        expected: Reg,
        /// The value stored on success (Rt).
        new: Reg,
        /// The address.
        addr: Addr,
        /// The access width.
        width: Width,
        /// The A/L suffix.
        order: RmwOrder,
    },
    /// `LD<op> Rs, Rt, [Xn]` (Rt = ZR for `ST<op>`) and their A/L forms.
    Amo {
        /// The operation.
        op: AmoOp,
        /// The operand register (Rs).
        src: Reg,
        /// The register loaded (Rt; ZR for `ST<op>`).
        dst: Reg,
        /// The address.
        addr: Addr,
        /// The access width.
        width: Width,
        /// The A/L suffix.
        order: RmwOrder,
    },
    /// DMB of a kind. Ordinary accesses are sequentially consistent
    /// already in SC mode; a DMB that orders stores orders the thread's
    /// descriptor stores before its later stores, so they reach the walkers.
    Dmb {
        /// What it orders.
        kind: BarrierKind,
    },
    /// DSB of a kind.
    Dsb {
        /// What it waits for.
        kind: BarrierKind,
    },
    /// ISB.
    Isb,
    /// NOP.
    Nop,
    /// TLBI.
    Tlbi {
        /// The entries invalidated.
        scope: TlbiScope,
        /// The TLBs reached.
        shareability: TlbiShareability,
    },
    /// ADR Rd, label.
    Adr {
        /// Rd.
        dst: Reg,
        /// The instruction index of the label.
        target: u16,
    },
    /// MSR ELR_EL1, Rn.
    MsrElr {
        /// Rn.
        src: Reg,
    },
    /// ERET.
    Eret,
    /// The end of a thread's code (or of its fault handler).
    Halt,
}

impl Instr {
    /// Returns the address of a memory access.
    pub fn addr(&self) -> Option<&Addr> {
        match self {
            Instr::Load { addr, .. }
            | Instr::Store { addr, .. }
            | Instr::StoreExclusive { addr, .. }
            | Instr::Swp { addr, .. }
            | Instr::Cas { addr, .. }
            | Instr::Amo { addr, .. } => Some(addr),
            _ => None,
        }
    }
}
