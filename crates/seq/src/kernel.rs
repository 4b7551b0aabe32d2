//! Kernel files: resolving the symbolic program against a booted kernel,
//! checking it (rules and explorer), and writing a protocol's program as a
//! kernel file.
//!
//! The writing (`emit`) is in `emit.rs`.

mod emit;
mod litmus;

pub use emit::{Emit, emit};
pub use litmus::{LitmusExport, emit_litmus};

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use explore::{Prepared, Row, Setup, Verdict};
use mm::vmemmap::VMEMMAP_START;
use mm::{Desc, Instr, Kernel, Page, Program};
use serde::Serialize;
use vmsa::{BbmLevel, Features};

use crate::ast::{
    Concurrent, Expect, Expr, ExprKind, KCase, KDesc, KOp, KernelFile, PageArg, PageRef,
};
use crate::error::SeqError;

/// What symbols mean: the huge page's head, its neighbour, and the booted
/// kernel (for `page-of` and `shared-tail`).
pub struct Env<'k> {
    /// The pfn `head` names.
    pub head: u64,
    /// The pfn `next` names.
    pub next: u64,
    /// The kernel before the program.
    pub kernel: &'k Kernel,
}

type Located<T> = Result<T, (Range<usize>, String)>;

/// Evaluates `e`; symbols need `env` (a kernel file).
///
/// # Errors
///
/// Returns the span and message of a symbol without a kernel, or of an
/// overflow.
pub fn eval(e: &Expr, env: Option<&Env<'_>>) -> Located<u64> {
    let need = |what: &str| {
        (
            e.span.clone(),
            format!("`{what}` names a huge page of a kernel file: a machine file uses numbers"),
        )
    };
    let overflow = || {
        (
            e.span.clone(),
            "expected a value that fits in 64 bits: this overflows".to_string(),
        )
    };
    match &e.kind {
        ExprKind::Num(n) => Ok(*n),
        ExprKind::Head => env.map(|v| v.head).ok_or_else(|| need("head")),
        ExprKind::Next => env.map(|v| v.next).ok_or_else(|| need("next")),
        ExprKind::Vmemmap(i) => {
            let pfn = eval(i, env)?;
            pfn.checked_mul(64)
                .and_then(|o| VMEMMAP_START.checked_add(o))
                .ok_or_else(overflow)
        }
        ExprKind::Add(a, b) => eval(a, env)?
            .checked_add(eval(b, env)?)
            .ok_or_else(overflow),
        ExprKind::Mul(a, b) => eval(a, env)?
            .checked_mul(eval(b, env)?)
            .ok_or_else(overflow),
    }
}

fn page(a: &PageArg, env: &Env<'_>) -> Located<Page> {
    Ok(match &a.page {
        PageRef::Reg(r, o) => Page::Reg(*r, *o),
        PageRef::Pfn(e) => Page::Frame(eval(e, Some(env))?),
        PageRef::PageOf(e) => {
            let va = eval(e, Some(env))?;
            Page::Frame(env.kernel.frame_of(va).map_err(|err| {
                (a.span.clone(), format!("expected a mapped VA: {va:#x} is not mapped when the program starts ({err})"))
            })?)
        }
        PageRef::Same => Page::Same,
        PageRef::SharedTail => Page::Frame(env.kernel.shared_tail.ok_or_else(|| {
            (a.span.clone(), "this kernel has no shared tail page: expected `kernel hvo tails=order` or `kernel de-hvo after=shared-tail`".to_string())
        })?),
    })
}

fn desc(d: &KDesc, level: u8, span: &Range<usize>, env: &Env<'_>) -> Located<Desc> {
    Ok(match d {
        KDesc::Invalid => Desc::Invalid,
        KDesc::Table(p) => Desc::Table(page(p, env)?),
        KDesc::Leaf {
            page: p,
            perm,
            af,
            nt,
            block,
        } => {
            if *block != (level < 3) {
                return Err((
                    span.clone(),
                    format!(
                        "expected `{}` at L{level}: a leaf at level 3 is a page, above it a block",
                        if level < 3 { "block" } else { "page" }
                    ),
                ));
            }
            Desc::Leaf {
                page: page(p, env)?,
                perm: *perm,
                af: *af,
                nt: *nt,
            }
        }
    })
}

/// Resolves a case's steps to the program the executor runs.
///
/// # Errors
///
/// Returns the span and message of a step that cannot be resolved.
pub fn program(case: &KCase, env: &Env<'_>) -> Located<Program> {
    let mut p = Program::default();
    // The order of each register's allocation so far: `rN+K` names page
    // K of it, and a page outside it is a frame the program never
    // allocated (the executor refuses it too, without the span).
    let mut allocated: BTreeMap<u16, u8> = BTreeMap::new();
    for s in &case.steps {
        for a in pages_of(&s.op) {
            let PageRef::Reg(r, off) = a.page else {
                continue;
            };
            let Some(&order) = allocated.get(&r) else {
                return Err((
                    a.span.clone(),
                    format!(
                        "register r{r} is used before `alloc r{r}`: expected an allocation first"
                    ),
                ));
            };
            // `free rN+K order=J` frees 2^J pages from page K; a block
            // maps every page of its size from page K.
            let granule = env.kernel.geo.granule;
            let count = match &s.op {
                KOp::Free { order: j, .. } => 1u64 << j,
                KOp::Store { level, .. } | KOp::Cas { level, .. }
                    if *level < 3 && is_leaf_page(&s.op, a) =>
                {
                    granule.level_size(*level) >> granule.page_shift()
                }
                _ => 1,
            };
            if off.checked_add(count).is_none_or(|end| end > 1u64 << order) {
                return Err((
                    a.span.clone(),
                    mm::program::out_of_allocation(r, off, count, order),
                ));
            }
        }
        if let KOp::Alloc { reg, order } = s.op {
            allocated.insert(reg, order);
        }
        let ev = |e: &Expr| eval(e, Some(env));
        p.push(match &s.op {
            KOp::Store { va, level, desc: d } => Instr::Store {
                va: ev(va)?,
                level: *level,
                desc: desc(d, *level, &s.span, env)?,
            },
            KOp::Cas {
                va,
                level,
                expect,
                desc: d,
                retries,
            } => Instr::Cas {
                va: ev(va)?,
                level: *level,
                expect: desc(expect, *level, &s.span, env)?,
                desc: desc(d, *level, &s.span, env)?,
                retries: *retries,
            },
            KOp::Dsb(k) => Instr::Dsb(*k),
            KOp::Isb => Instr::Isb,
            KOp::Tlbi { kind, scope, va } => Instr::Tlbi {
                kind: *kind,
                scope: *scope,
                va: va.as_ref().map(ev).transpose()?.unwrap_or(0),
            },
            KOp::Alloc { reg, order } => Instr::Alloc {
                reg: *reg,
                order: *order,
            },
            KOp::Free { page: pg, order } => Instr::Free {
                page: page(pg, env)?,
                order: *order,
            },
            KOp::Copy { dst, src } => Instr::Copy {
                dst: page(dst, env)?,
                src: page(src, env)?,
            },
            KOp::FillTable { level, .. } if *level >= 3 => {
                return Err((
                    s.span.clone(),
                    format!("expected the level of a block (L0..L2) to fill a table from, found L{level}"),
                ));
            }
            KOp::FillTable { table, va, level } => Instr::FillTable {
                table: page(table, env)?,
                va: ev(va)?,
                level: *level,
            },
            KOp::Reset {
                page: pg,
                count,
                head,
            } => {
                let per_page = env.kernel.geo.granule.page_size() / 64;
                let n = ev(count)?;
                if n > per_page {
                    return Err((
                        count.span.clone(),
                        format!("expected at most {per_page} struct pages (one page), found {n}"),
                    ));
                }
                Instr::ResetStructPages {
                    page: page(pg, env)?,
                    count: n,
                    head: ev(head)?,
                }
            }
            KOp::Pause => Instr::PauseCpus,
            KOp::Resume => Instr::ResumeCpus,
            KOp::StopMachine => Instr::StopMachine,
            KOp::StartMachine => Instr::StartMachine,
            KOp::SynchronizeRcu => Instr::SynchronizeRcu,
            KOp::Str { value, va } => Instr::WriteWord {
                va: ev(va)?,
                value: ev(value)?,
            },
        });
    }
    Ok(p)
}

fn desc_page(d: &KDesc) -> Option<&PageArg> {
    match d {
        KDesc::Invalid => None,
        KDesc::Table(p) | KDesc::Leaf { page: p, .. } => Some(p),
    }
}

/// Tells whether `a` is the page of a leaf descriptor of `op` (a store's
/// or a CAS's new or expected value), not of a table.
fn is_leaf_page(op: &KOp, a: &PageArg) -> bool {
    let leaf = |d: &KDesc| matches!(d, KDesc::Leaf { page, .. } if std::ptr::eq(page, a));
    match op {
        KOp::Store { desc, .. } => leaf(desc),
        KOp::Cas { expect, desc, .. } => leaf(expect) || leaf(desc),
        _ => false,
    }
}

fn pages_of(op: &KOp) -> Vec<&PageArg> {
    let d = desc_page;
    match op {
        KOp::Store { desc, .. } => d(desc).into_iter().collect(),
        KOp::Cas { expect, desc, .. } => d(expect).into_iter().chain(d(desc)).collect(),
        KOp::Free { page, .. } | KOp::Reset { page, .. } => vec![page],
        KOp::Copy { dst, src } => vec![dst, src],
        KOp::FillTable { table, .. } => vec![table],
        _ => Vec::new(),
    }
}

/// One case at one FEAT_BBM level: the result `hvo verify` gives for a
/// configuration, and what the file expected.
#[derive(Clone, Debug, Serialize)]
pub struct CheckRow {
    /// The file.
    pub file: String,
    /// The case.
    pub case: String,
    /// The rule checker's and the explorer's results (as `hvo verify`).
    pub row: Row,
    /// The rule codes expected.
    pub expected_rules: BTreeSet<String>,
    /// The explorer's verdict expected.
    pub expected_concurrent: String,
    /// Whether the rules verdict is the expected one.
    pub rules_ok: bool,
    /// Whether the explorer's verdict is the expected one.
    pub concurrent_ok: bool,
}

impl CheckRow {
    /// Tells whether both verdicts are the expected ones.
    pub fn passed(&self) -> bool {
        self.rules_ok && self.concurrent_ok
    }
}

/// Tells whether `row`'s explorer verdict is `c`.
pub fn concurrent_matches(c: &Concurrent, row: &Row) -> bool {
    let (v, run) = row.verdict();
    match (c, v) {
        (Concurrent::Safe, Verdict::Safe) => true,
        (Concurrent::Incomplete, Verdict::Incomplete { .. }) => true,
        (Concurrent::Hazard { slug, by }, Verdict::Hazard { hazard, .. }) => {
            hazard.kind.slug() == slug
                && by.as_ref().is_none_or(|b| {
                    let mut b = b.clone();
                    b.sort();
                    let mut w = run.map(|r| r.workloads.clone()).unwrap_or_default();
                    w.sort();
                    b == w
                })
        }
        _ => false,
    }
}

/// Returns the explorer verdict of `row` as a kernel file writes it.
pub fn concurrent_of(row: &Row) -> Concurrent {
    let (v, run) = row.verdict();
    match v {
        Verdict::Safe => Concurrent::Safe,
        Verdict::Incomplete { .. } => Concurrent::Incomplete,
        Verdict::Hazard { hazard, .. } => Concurrent::Hazard {
            slug: hazard.kind.slug().to_string(),
            by: run.map(|r| r.workloads.clone()),
        },
    }
}

impl KernelFile {
    /// Returns the explorer's setup at FEAT_BBM `bbm`.
    pub fn setup(&self, bbm: BbmLevel) -> Setup {
        Setup {
            protocol: self.boot,
            direction: self.direction,
            granule: self.granule,
            huge_size: self.huge_size,
            features: Features {
                bbm,
                hw_af: self.hw_af,
                hw_dbm: self.hw_dbm,
                ..Features::default()
            },
            workloads: self.workloads.clone(),
            copies: self.copies,
        }
    }

    fn err(&self, span: Range<usize>, msg: impl Into<String>) -> SeqError {
        SeqError::at(&self.file, &self.source, span, msg)
    }

    /// Boots the kernel for `bbm`, checks the `initial` lines against it,
    /// and resolves every case's program.
    ///
    /// # Errors
    ///
    /// Returns a located error when the kernel cannot be booted, when it
    /// maps a stated VA otherwise, or when a step cannot be resolved.
    pub fn prepare(&self, bbm: BbmLevel) -> Result<(Prepared, Vec<Program>), SeqError> {
        let prep = Prepared::new(&self.setup(bbm)).map_err(|e| {
            self.err(
                self.kernel_span.clone(),
                format!("cannot boot this kernel: {e}"),
            )
        })?;
        let env = Env {
            head: prep.sites.head,
            next: prep.sites.neighbour,
            kernel: &prep.kernel,
        };
        let g = self.granule;
        for i in &self.initial {
            let va = eval(&i.va, Some(&env)).map_err(|(s, m)| self.err(s, m))?;
            let first = match page(&i.page, &env).map_err(|(s, m)| self.err(s, m))? {
                Page::Frame(f) => f,
                _ => return Err(self.err(i.page.span.clone(), "expected a frame (`pfn N` or `page-of VA`): nothing is allocated before the program")),
            };
            for n in 0..i.pages {
                let v = va.wrapping_add(n.wrapping_mul(g.page_size()));
                let want = if i.shared {
                    first
                } else {
                    first.wrapping_add(n)
                };
                let found = prep
                    .kernel
                    .leaf_of(v)
                    .ok()
                    .map(|(pa, ro)| (pa >> g.page_shift(), ro));
                if found != Some((want, i.ro)) {
                    let booted = match found {
                        Some((f, ro)) => format!("pfn {f:#x} {}", if ro { "ro" } else { "rw" }),
                        None => "nothing".into(),
                    };
                    return Err(self.err(i.span.clone(), format!(
                        "the booted kernel maps {v:#x} (page {n} of this line) to {booted}, not pfn {want:#x} {}: expected the booted kernel's mapping (`hvo show PROTOCOL --format seq` writes it)",
                        if i.ro { "ro" } else { "rw" }
                    )));
                }
            }
        }
        let programs = self
            .cases
            .iter()
            .map(|c| program(c, &env).map_err(|(s, m)| self.err(s, m)))
            .collect::<Result<Vec<_>, _>>()?;
        for (case, program) in self.cases.iter().zip(&programs) {
            self.run_steps(&prep, case, program)?;
        }
        Ok((prep, programs))
    }

    /// Runs `program` (case `case`'s, one instruction per step) on a copy
    /// of the prepared kernel, one step at a time, as the explorer will
    /// resolve it: an error is then the step's, at the step's span.
    fn run_steps(&self, prep: &Prepared, case: &KCase, program: &Program) -> Result<(), SeqError> {
        let mut k = prep.kernel.clone();
        let mut regs = mm::Regs::default();
        for (step, ins) in case.steps.iter().zip(&program.instrs) {
            let one = Program {
                instrs: vec![ins.clone()],
            };
            k.run(&one, &mut regs).map_err(|e| {
                self.err(
                    step.span.clone(),
                    format!("this step of case `{}` cannot run: {e}", case.name),
                )
            })?;
        }
        Ok(())
    }

    /// Checks every case at every FEAT_BBM level: the rule checker and the
    /// explorer, as `hvo verify` does for a protocol.
    ///
    /// # Errors
    ///
    /// As [`KernelFile::prepare`], and a located error for a program the
    /// kernel cannot run sequentially.
    pub fn check(&self) -> Result<Vec<CheckRow>, SeqError> {
        let mut out = Vec::new();
        for &bbm in &self.levels {
            let (prep, programs) = self.prepare(bbm)?;
            for (case, program) in self.cases.iter().zip(&programs) {
                let row = explore::verify_program(&prep, program, &self.limits, self.together)
                    .map_err(|e| {
                        self.err(
                            case.span.clone(),
                            format!("case `{}` cannot run: {e}", case.name),
                        )
                    })?;
                let Some(exp) = case
                    .expects
                    .iter()
                    .find(|e| e.levels.as_ref().is_none_or(|l| l.contains(&bbm)))
                else {
                    return Err(self.err(
                        case.span.clone(),
                        format!("expected an `expect` line for FEAT_BBM {bbm}"),
                    ));
                };
                out.push(self.row(case, exp, row));
            }
        }
        Ok(out)
    }

    fn row(&self, case: &KCase, exp: &Expect, row: Row) -> CheckRow {
        let found: BTreeSet<String> = row.violations.iter().map(|(r, _)| r.code()).collect();
        CheckRow {
            file: self.file.clone(),
            case: case.name.clone(),
            rules_ok: found == exp.rules,
            concurrent_ok: concurrent_matches(&exp.concurrent, &row),
            expected_rules: exp.rules.clone(),
            expected_concurrent: exp.concurrent.to_string(),
            row,
        }
    }
}
