//! The way out to herd7: the level-3 part of a protocol's [`Program`]
//! written as a herd7 AArch64 VMSA litmus test (`hvo show --format
//! litmus`, `hvo check --emit litmus`).
//!
//! herd7's VMSA model has one level of translation table, symbolic pages
//! and descriptors written as fields, so the test keeps what a reader of
//! the remapped vmemmap pages can observe at level 3 and says, in a
//! `(* ... *)` comment, everything it leaves out:
//!
//! - the pages: the vmemmap pages of the huge page whose level-3
//!   descriptor the program writes and that a workload accesses (at most
//!   two: `x`, `y` in VA order; the standard workloads touch pages 0 and
//!   1);
//! - P0, the updater: from its first store to one of their descriptors on,
//!   the stores and compare-and-swaps to them (`CASAL`, a failed one
//!   giving up: `CMP`, `B.NE` to the end, as the explorer's updater gives
//!   up after its retries), every `DSB` and `ISB`, every TLBI that covers
//!   a page (by VA as `LSR` by 12 and `TLBI VAAE1IS`, as the catalogue
//!   writes it), and the free of a page the descriptors mapped, written as
//!   its reuse: a store of a poison value through another VA mapping it;
//! - P1, the reader: the workloads' accesses to the pages, loads and,
//!   where a workload writes, stores, each labelled;
//! - the final condition: a fault of the reader, a load of the poison, or
//!   the reader's store left in a reused page: the hazards the explorer
//!   reports as a translation, Access-flag or permission fault, or a use
//!   after free.
//!
//! The generator reads the program as the explorer resolved it
//! ([`Scenario`]: slots, descriptor values, TLBI operands and freed frames
//! as addresses), so the test's values are the bits the explorer runs,
//! written as herd7's fields.

mod parts;

use std::fmt::Write as _;

use explore::workload::WOp;
use explore::world::{Op, Scenario};
use explore::{Direction, Prepared};
use mm::{Instr, Program};
use parts::{Fields, Frames, NAMES, Values, counted, kind_of, suffix, wrap};
use vmsa::{DsbKind, TlbiKind, TlbiScope};

/// How to write a litmus test.
#[derive(Clone, Debug)]
pub struct LitmusExport {
    /// The test's name (herd7's `AArch64 NAME` line).
    pub name: String,
    /// Comment lines at the top of the `(* ... *)` comment.
    pub title: Vec<String>,
}

/// One instruction of P0 (indices into the pages and the values).
enum P0 {
    Store {
        page: usize,
        value: usize,
    },
    Cas {
        page: usize,
        /// The register the CAS compares and overwrites.
        expect: usize,
        /// A register holding the expected value still, to tell a failed
        /// CAS.
        check: usize,
        value: usize,
    },
    Dsb(DsbKind),
    Isb,
    TlbiVa {
        page: usize,
        scope: TlbiScope,
    },
    TlbiAll(TlbiScope),
    /// The free of a page of the test, written as its reuse: a store of
    /// [`POISON`] to it through another VA (index into the aliases).
    Reuse(usize),
}

/// What a freed page holds once it is reused (every page holds 1 before,
/// and the reader's stores write 2).
const POISON: u8 = 9;

/// A vmemmap page of the test: one the program writes the level-3
/// descriptor of and a workload accesses.
struct TestPage {
    /// Its VA (page-aligned).
    va: u64,
    /// Its descriptor's slot.
    slot: u64,
    /// Its symbol.
    name: &'static str,
}

/// One access of the reader: the page (index) and whether it writes.
type Access = (usize, bool);

/// Writes the level-3 part of `program` (run on `prep`'s kernel against
/// `prep`'s workloads) as a herd7 AArch64 VMSA litmus test.
///
/// # Errors
///
/// Returns a message saying why the program cannot be exported: it cannot
/// run sequentially, no workload accesses a page whose level-3 descriptor
/// it writes, or a descriptor it writes is not one herd7's fields
/// describe.
pub fn emit_litmus(
    prep: &Prepared,
    program: &Program,
    opts: &LitmusExport,
) -> Result<String, String> {
    let sc = Scenario::build(prep, program).map_err(|e| e.to_string())?;
    let g = prep.setup.granule;
    let shift = g.page_shift();
    let page_of = |va: u64| va >> shift << shift;
    // The pages whose level-3 descriptor the program writes, with the
    // slot of each.
    let mut written: Vec<(u64, u64)> = Vec::new();
    for (ins, op) in program.instrs.iter().zip(&sc.ops) {
        let (Instr::Store { va, level: 3, .. } | Instr::Cas { va, level: 3, .. }) = ins else {
            continue;
        };
        let (Op::Store { pa, .. } | Op::Cas { pa, .. }) = op else {
            continue;
        };
        if !written.iter().any(|(p, _)| *p == page_of(*va)) {
            written.push((page_of(*va), pa.0));
        }
    }
    // The pages of the test: those the workloads access.
    let mut vas: Vec<u64> = Vec::new();
    for w in &sc.workloads {
        for pc in 0..w.ops.len() {
            for va in w.va(pc, None) {
                let p = page_of(va);
                if written.iter().any(|(q, _)| *q == p) && !vas.contains(&p) {
                    vas.push(p);
                }
            }
        }
    }
    vas.sort_unstable();
    if vas.is_empty() {
        let names: Vec<&str> = sc.workloads.iter().map(|w| w.kind.name()).collect();
        return Err(format!(
            "cannot export to herd7: no workload ({}) accesses a vmemmap page whose level-3 descriptor the program writes (the level-3 part herd7 can express); the program writes {} such page(s)",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
            written.len()
        ));
    }
    if vas.len() > 2 {
        return Err(format!(
            "cannot export to herd7: the workloads access {} remapped vmemmap pages; this export writes at most 2",
            vas.len()
        ));
    }
    let pages: Vec<TestPage> = vas
        .iter()
        .enumerate()
        .map(|(i, va)| TestPage {
            va: *va,
            slot: written
                .iter()
                .find(|(p, _)| p == va)
                .map(|(_, s)| *s)
                .unwrap_or_default(),
            name: NAMES[i],
        })
        .collect();
    let page_index = |va: u64| pages.iter().position(|p| p.va == page_of(va));
    let slot_index = |pa: u64| pages.iter().position(|p| p.slot == pa);
    // Vmemmap page 0 is the head's; `page1` follows it.
    let page0 = prep.sites.page1 - g.page_size();
    let index_of = |va: u64| (va - page0) >> shift;

    // The reader: each workload's accesses to the pages, in program order.
    let has_rcu = program
        .instrs
        .iter()
        .any(|i| matches!(i, Instr::SynchronizeRcu));
    let mut reader: Vec<Access> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for w in &sc.workloads {
        let mut in_rcu = false;
        let mut touched = false;
        let mut cas_left: Vec<&str> = Vec::new();
        for (pc, op) in w.ops.iter().enumerate() {
            match op {
                WOp::RcuLock => in_rcu = true,
                WOp::RcuUnlock => in_rcu = false,
                _ => {}
            }
            let write = match op {
                WOp::Load { .. } | WOp::LoadHalf { .. } => false,
                WOp::Store { .. } => true,
                // get_page_unless_zero() CASes only a non-zero refcount.
                // Inside an RCU read section, with synchronize_rcu() in
                // the program, only a section synchronize_rcu() waits for
                // can find one (the freeze before HVO, the refcount frozen
                // since HVO before de-HVO; commit bd225530a4c7), so the
                // write precedes the remap. Without synchronize_rcu() a
                // walker that read a reference before the freeze may CAS
                // at any time.
                WOp::CasIfNonZero { .. } => !(in_rcu && has_rcu),
                _ => continue,
            };
            for va in w.va(pc, None) {
                let Some(i) = page_index(va) else { continue };
                touched = true;
                if matches!(op, WOp::CasIfNonZero { .. })
                    && in_rcu
                    && has_rcu
                    && !cas_left.contains(&pages[i].name)
                {
                    cas_left.push(pages[i].name);
                }
                // A load is always exported: the CAS reads first.
                for wr in [false, write] {
                    if !reader.contains(&(i, wr)) {
                        reader.push((i, wr));
                    }
                }
            }
        }
        if !cas_left.is_empty() {
            notes.push(format!(
                "{}'s get_page_unless_zero() CAS of {}: it writes only a non-zero refcount, which only an RCU read section synchronize_rcu() waits for can see (the freeze before HVO, the refcount frozen since HVO before de-HVO; commit bd225530a4c7), so the write precedes the remap",
                w.kind.name(),
                cas_left.join(" and ")
            ));
        }
        if !touched {
            notes.push(format!(
                "{}'s accesses: none reaches a page of the test",
                w.kind.name()
            ));
        }
    }

    // The initial descriptors: what each slot holds before the program's
    // first store to it (the boot's, or a table the program fills).
    let first = sc
        .ops
        .iter()
        .position(|op| matches!(op, Op::Store { pa, .. } | Op::Cas { pa, .. } if slot_index(pa.0).is_some()))
        .unwrap_or_default();
    let mut frames = Frames {
        named: Vec::new(),
        reserved: pages.iter().map(|p| p.name).collect(),
    };
    let mut init: Vec<Fields> = Vec::new();
    for p in &pages {
        let mut v = sc
            .base
            .read_u64(vmsa::PhysAddr(p.slot))
            .map_err(|e| e.to_string())?;
        for op in &sc.ops[..first] {
            if let Op::Fill { frame, first, step } = op
                && *frame == p.slot >> shift
            {
                v = first + ((p.slot & (g.page_size() - 1)) / 8) * step;
            }
        }
        init.push(frames.describe(v, g, None, Some(p.name))?);
    }

    // P0: the program's operations on the pages.
    let mut prev = init.clone();
    let mut values = Values::default();
    let mut p0: Vec<P0> = Vec::new();
    let mut before: Vec<String> = Vec::new();
    let mut left: Vec<String> = Vec::new();
    let mut retries = 0u8;
    let mut narrowed = false;
    // The frames freed, by symbol, in order.
    let mut aliases: Vec<&'static str> = Vec::new();
    for (i, (ins, op)) in program.instrs.iter().zip(&sc.ops).enumerate() {
        if i < first {
            before.push(kind_of(ins));
            continue;
        }
        match op {
            Op::Store { pa, value } if slot_index(pa.0).is_some() => {
                let page = slot_index(pa.0).unwrap_or_default();
                let f = frames.describe(*value, g, Some(prev[page]), None)?;
                prev[page] = f;
                let value = values.shared(f);
                p0.push(P0::Store { page, value });
            }
            Op::Cas {
                pa,
                expect,
                value,
                retries: r,
                ..
            } if slot_index(pa.0).is_some() => {
                let page = slot_index(pa.0).unwrap_or_default();
                let e = frames.describe(*expect, g, Some(prev[page]), None)?;
                let f = frames.describe(*value, g, Some(e), None)?;
                prev[page] = f;
                let expect = values.own(e);
                let check = values.shared(e);
                let value = values.shared(f);
                p0.push(P0::Cas {
                    page,
                    expect,
                    check,
                    value,
                });
                retries = retries.max(*r);
            }
            Op::Store { .. } | Op::Cas { .. } => {
                left.push("stores to the descriptors of other pages".into());
            }
            Op::Dsb(k) => p0.push(P0::Dsb(*k)),
            Op::Isb => p0.push(P0::Isb),
            Op::Tlbi(t) if t.kind == TlbiKind::Vmalle1 => p0.push(P0::TlbiAll(t.scope)),
            Op::Tlbi(t) => match page_index(t.va.0) {
                Some(page) => {
                    narrowed |=
                        matches!(t.kind, TlbiKind::Vaale1 | TlbiKind::Vale1 | TlbiKind::Vae1);
                    p0.push(P0::TlbiVa {
                        page,
                        scope: t.scope,
                    });
                }
                None => left.push("TLBIs of other pages".into()),
            },
            Op::Free { first, count } => {
                let mut any = false;
                for (frame, name) in &frames.named {
                    if (*first..first + count).contains(frame) {
                        aliases.push(name);
                        p0.push(P0::Reuse(aliases.len() - 1));
                        any = true;
                    }
                }
                if !any {
                    left.push("frees of other pages".into());
                }
            }
            _ => left.push(kind_of(ins)),
        }
    }

    // Registers. P0: X0.. the descriptors' addresses, then the values,
    // then each page's VA and page number for a TLBI by VA.
    let n = pages.len();
    let tlbi_pages: Vec<usize> = (0..n)
        .filter(|i| {
            p0.iter()
                .any(|o| matches!(o, P0::TlbiVa { page, .. } if page == i))
        })
        .collect();
    let va_reg = |page: usize| {
        n + values.len()
            + 2 * tlbi_pages
                .iter()
                .position(|p| *p == page)
                .unwrap_or_default()
    };
    // Then the poison and each reused page's alias VA.
    let poison_reg = n + values.len() + 2 * tlbi_pages.len();
    // And a flag set when the pages are reused (a failed CAS skips it).
    let reused_reg = poison_reg + 1 + aliases.len();
    if reused_reg + 1 > 30 {
        return Err("cannot export to herd7: more descriptor values than registers".into());
    }

    // Each reused page is written through a VA of its own that maps it
    // (as the kernel writes a freed page through the linear map).
    let mut alias_names: Vec<&'static str> = Vec::new();
    for _ in &aliases {
        let used = |n: &&str| {
            frames.named.iter().any(|(_, m)| m == n)
                || frames.reserved.contains(n)
                || alias_names.contains(n)
        };
        let name = NAMES.iter().find(|n| !used(n)).ok_or_else(|| {
            format!(
                "cannot export to herd7: more pages than the {} symbols this export names",
                NAMES.len()
            )
        })?;
        alias_names.push(name);
    }

    let setup = &prep.setup;
    let mut out = String::new();
    let _ = writeln!(out, "AArch64 {}", opts.name);
    let named: Vec<String> = pages
        .iter()
        .map(|p| {
            format!(
                "{} is vmemmap page {} (VA {:#x})",
                p.name,
                index_of(p.va),
                p.va
            )
        })
        .collect();
    // A title never ends the comment early.
    let mut head: Vec<String> = opts.title.iter().map(|l| l.replace("*)", "* )")).collect();
    head.push(format!(
        "{} granule, {} huge page, {}: {}.",
        g,
        vmsa::granule::format_size(setup.huge_size),
        match setup.direction {
            Direction::Hvo => "HVO",
            Direction::Restore => "de-HVO",
        },
        named.join(", ")
    ));
    head.push("P0 is the updater's level-3 part for them; P1 the workloads' accesses to them. The condition holds exactly when the reader faults (translation, Access flag or permission) or uses a freed page, the hazards hvo's explorer reports as a fault or a use after free.".into());
    if !aliases.is_empty() {
        head.push(format!(
            "A free of a page of the test is written as its reuse: P0 stores {POISON} to it through another VA that maps it ({}). A load of {POISON} by the reader, or the reader's 2 left in such a page once it is reused (P0 then sets X{reused_reg} to 1, where the reader stores), is a use after free.",
            alias_names
                .iter()
                .zip(&aliases)
                .map(|(a, f)| format!("{a} maps PA({f})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    head.push("Left out (herd7 cannot express them, or they do not touch the pages):".into());
    // The caller's lines as they are (a command stays on one line), the
    // rest wrapped.
    for (i, l) in head.iter().enumerate() {
        let first = if i == 0 { "(*" } else { "  " };
        if i < opts.title.len() {
            let _ = writeln!(out, "{first} {l}");
        } else {
            out.push_str(&wrap(l, first, "  "));
        }
    }
    let mut lines: Vec<String> = Vec::new();
    if !before.is_empty() {
        lines.push(format!(
            "the {} operations before the first store to a PTE of the test: {}",
            before.len(),
            counted(&before)
        ));
    }
    if !left.is_empty() {
        lines.push(format!("after it: {}", counted(&left)));
    }
    lines.push("several table levels, blocks and their split (the test starts from the level-3 descriptors as the program finds them)".into());
    lines.push(format!(
        "FEAT_BBM levels and TLB conflict aborts (herd7 has neither; this kernel: FEAT_BBM {})",
        setup.features.bbm
    ));
    lines.push("allocation and copies: every page holds 1, as if copies were done (no uninitialized, torn or lost value is checked)".into());
    lines.push("the final state (mapping, TLB entries and struct pages once the program is done): the condition is on the reader's faults only".into());
    if program
        .instrs
        .iter()
        .any(|i| matches!(i, Instr::PauseCpus | Instr::StopMachine))
    {
        lines.push("pausing or stopping the other CPUs (pause_cpus / stop_machine()): P1 runs throughout, so it may see what the pause hides".into());
    }
    if retries > 0 {
        lines.push(format!(
            "the CAS's retries (up to {retries}: AF cleared again, DSB, TLBI, DSB, CAS): a CAS that fails gives up at once, P0 branching to its end (Lout), as the explorer's updater gives up after its retries (its `gave-up` paths)"
        ));
    }
    lines.push("PXN/UXN, nG, AP[1] (el0) and the contents' struct page layout: the threads run at EL1 on Normal memory (herd7's defaults)".into());
    lines.extend(notes);
    if narrowed {
        lines.push("the TLBIs' last-level and ASID restrictions: TLBI VAALE1IS, VALE1IS and VAE1IS are written TLBI VAAE1IS, as the catalogue writes them (herd7 has no walk caches; the kernel's entries are global)".into());
    }
    for l in &lines {
        out.push_str(&wrap(l, "   -", "    "));
    }
    out.push_str("*)\nVariant=vmsa\n");
    let f = setup.features;
    match (f.hw_af, f.hw_dbm) {
        (true, true) => out.push_str("TTHM=HA HD\n"),
        (true, false) => out.push_str("TTHM=HA\n"),
        (false, true) => out.push_str("TTHM=HD\n"),
        (false, false) => {}
    }
    out.push_str("{\n");
    let mut syms: Vec<&str> = pages.iter().map(|p| p.name).collect();
    for (_, name) in &frames.named {
        if !syms.contains(name) {
            syms.push(name);
        }
    }
    for name in &syms {
        let _ = writeln!(out, " [{name}]=1;");
    }
    for (alias, freed) in alias_names.iter().zip(&aliases) {
        let _ = writeln!(out, " [PTE({alias})]=(oa:PA({freed}));");
    }
    for (p, f) in pages.iter().zip(&init) {
        let _ = writeln!(out, " [PTE({})]={};", p.name, f.text());
    }
    let mut p0_init: Vec<String> = pages
        .iter()
        .enumerate()
        .map(|(i, p)| format!("0:X{i}=PTE({})", p.name))
        .collect();
    for (i, (v, _)) in values.0.iter().enumerate() {
        p0_init.push(format!("0:X{}={}", n + i, v.text()));
    }
    for &p in &tlbi_pages {
        p0_init.push(format!("0:X{}={}", va_reg(p), pages[p].name));
    }
    if !aliases.is_empty() {
        p0_init.push(format!("0:X{poison_reg}={POISON}"));
    }
    for (k, alias) in alias_names.iter().enumerate() {
        p0_init.push(format!("0:X{}={alias}", poison_reg + 1 + k));
    }
    let _ = writeln!(out, " {};", p0_init.join("; "));
    // P1: X1.. each page's VA, X0 the value a store writes.
    let mut p1_init: Vec<String> = pages
        .iter()
        .enumerate()
        .map(|(i, p)| format!("1:X{}={}", i + 1, p.name))
        .collect();
    if reader.iter().any(|(_, w)| *w) {
        p1_init.push("1:X0=2".into());
    }
    let _ = writeln!(out, " {};", p1_init.join("; "));
    out.push_str("}\n");

    let mut col0 = vec!["P0".to_string()];
    let mut shifted: Vec<usize> = Vec::new();
    for i in &p0 {
        match *i {
            P0::Store { page, value } => col0.push(format!("STR X{},[X{page}]", n + value)),
            // Linux's cmpxchg() is fully ordered: CASAL
            // (arch/arm64/include/asm/atomic_lse.h, __CMPXCHG_CASE with
            // the `mb` and `al` variants); the catalogue writes CASAL on
            // descriptors too.
            // A failed CAS gives up on the huge page: P0 goes to its end
            // (the explorer's `gave-up` after the retries; the catalogue's
            // `CMP` and `B.NE`, as in NT-03-ctrl).
            P0::Cas {
                page,
                expect,
                check,
                value,
            } => {
                col0.push(format!("CASAL X{},X{},[X{page}]", n + expect, n + value));
                col0.push(format!("CMP X{},X{}", n + expect, n + check));
                col0.push("B.NE Lout".into());
            }
            P0::Dsb(DsbKind::Ish) => col0.push("DSB ISH".into()),
            P0::Dsb(DsbKind::IshSt) => col0.push("DSB ISHST".into()),
            P0::Isb => col0.push("ISB".into()),
            P0::TlbiVa { page, scope } => {
                let r = va_reg(page);
                if !shifted.contains(&page) {
                    col0.push(format!("LSR X{},X{r},#12", r + 1));
                    shifted.push(page);
                }
                col0.push(format!("TLBI {},X{}", suffix("VAAE1", scope), r + 1));
            }
            P0::TlbiAll(scope) => col0.push(format!("TLBI {}", suffix("VMALLE1", scope))),
            P0::Reuse(k) => {
                // The flag matters only to a reader's store.
                if k == 0 && reader.iter().any(|(_, w)| *w) {
                    col0.push(format!("MOV W{reused_reg},#1"));
                }
                col0.push(format!("STR W{poison_reg},[X{}]", poison_reg + 1 + k));
            }
        }
    }
    if p0.iter().any(|i| matches!(i, P0::Cas { .. })) {
        col0.push("Lout:".into());
    }
    let mut col1 = vec!["P1".to_string()];
    let mut atoms = Vec::new();
    for (k, &(page, write)) in reader.iter().enumerate() {
        col1.push(if write {
            format!("L{k}: STR W0,[X{}]", page + 1)
        } else {
            format!("L{k}: LDR W{},[X{}]", 10 + k, page + 1)
        });
        atoms.push(format!("fault(P1:L{k},{})", pages[page].name));
        if !write && !aliases.is_empty() {
            // A load of a reused page's poison: a use after free.
            atoms.push(format!("1:X{}={POISON}", 10 + k));
        }
    }
    if reader.iter().any(|(_, w)| *w) {
        // A store that lands in a reused page after its reuse (the page
        // ends holding the reader's 2, and it was reused): a use after
        // free.
        for freed in &aliases {
            atoms.push(format!("(0:X{reused_reg}=1 /\\ {freed}=2)"));
        }
    }
    let w0 = col0.iter().map(String::len).max().unwrap_or(0);
    let w1 = col1.iter().map(String::len).max().unwrap_or(0);
    for r in 0..col0.len().max(col1.len()) {
        let a = col0.get(r).map_or("", String::as_str);
        let b = col1.get(r).map_or("", String::as_str);
        let _ = writeln!(out, " {a:w0$} | {b:w1$} ;");
    }
    out.push('\n');
    let _ = writeln!(out, "exists ({})", atoms.join(" \\/ "));
    Ok(out)
}
