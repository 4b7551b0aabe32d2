//! A kernel file's cases and their steps (`store`, `cas`, `tlbi`, `alloc`,
//! `free`, `copy`, `fill-table`, ...).

use explore::{Direction, Limits, WorkloadKind};
use vmsa::{BbmLevel, Granule};

use crate::SeqFile;
use crate::ast::{Concurrent, Expect, KCase, KOp, KStep, KernelFile, PageRef};
use crate::lex::Tok;

use super::expr::{dsb_kind, kdesc, order, page_arg, tlbi_kind};
use super::header::expect_line;
use super::{Header, KERNEL_OPS, Parser, R, case_head, cpu_prefix, reserved};

pub(super) fn kernel_file(p: &mut Parser<'_>, h: Header) -> R<SeqFile> {
    let (direction, boot, kernel_span) =
        h.kernel
            .clone()
            .unwrap_or((Direction::Hvo, mm::PROTOCOLS[0], 0..0));
    let levels = h.levels.clone().map_or(vec![BbmLevel::Level0], |l| l.0);
    let mut cases = Vec::new();
    while p.peek_word() == Some("case") {
        let (name, line, span, bbm) = case_head(p)?;
        if let Some((_, s)) = bbm {
            return Err(p.err_at(s, "a kernel case runs at the `config` line's FEAT_BBM levels: give `bbm=` on its `expect` lines"));
        }
        p.names.clear();
        let mut case = KCase {
            name,
            line,
            span,
            expects: Vec::new(),
            steps: Vec::new(),
        };
        p.skip_blank();
        while !matches!(p.tok(), Tok::Eof) && p.peek_word() != Some("case") {
            let start = p.span().start;
            if p.eat_word("expect") {
                let (lv, rules, conc) = expect_line(p, true)?;
                let span = start..p.prev_end();
                if let Some(lv) = &lv
                    && let Some(l) = lv.iter().find(|l| !levels.contains(l))
                {
                    return Err(p.err_at(
                        span,
                        format!(
                            "FEAT_BBM {l} is not among the `config` line's levels ({})",
                            levels
                                .iter()
                                .map(|l| l.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                for e in &case.expects {
                    let overlap =
                        |a: &Option<Vec<BbmLevel>>, b: &Option<Vec<BbmLevel>>| match (a, b) {
                            (Some(a), Some(b)) => a.iter().any(|l| b.contains(l)),
                            _ => true,
                        };
                    if overlap(&e.levels, &lv) {
                        return Err(p.err_at(span, "a second `expect` line for the same FEAT_BBM level: expected one per level"));
                    }
                }
                case.expects.push(Expect {
                    levels: lv,
                    rules,
                    concurrent: conc.unwrap_or(Concurrent::Safe),
                    span,
                });
            } else {
                let cs = p.span();
                let cpu = cpu_prefix(p)?;
                if cpu != 0 {
                    return Err(p.err_at(
                        cs,
                        "in a kernel file the updater is cpu0; the other CPUs run the `workloads`",
                    ));
                }
                let op = kop(p)?;
                case.steps.push(KStep {
                    op,
                    span: start..p.prev_end(),
                });
            }
            p.end_line()?;
            p.skip_blank();
        }
        for l in &levels {
            if !case
                .expects
                .iter()
                .any(|e| e.levels.as_ref().is_none_or(|v| v.contains(l)))
            {
                return Err(p.err_at(case.span.clone(), format!("case `{}` has no `expect` line for FEAT_BBM {l}: expected one for each level of the `config` line", case.name)));
            }
        }
        cases.push(case);
    }
    if cases.is_empty() {
        return Err(p.err("`case NAME`: expected at least one case"));
    }
    Ok(SeqFile::Kernel(KernelFile {
        file: p.file.to_string(),
        source: p.src.to_string(),
        granule: h.granule.unwrap_or(Granule::K4),
        huge_size: h.huge.map_or(2 << 20, |h| h.0),
        levels,
        hw_af: h.hw_af.unwrap_or(true),
        hw_dbm: h.hw_dbm,
        direction,
        boot,
        kernel_span,
        workloads: h
            .workloads
            .as_ref()
            .map_or(WorkloadKind::STANDARD.to_vec(), |w| w.0.clone()),
        copies: h.workloads.as_ref().map_or(1, |w| w.1),
        together: h.workloads.as_ref().is_some_and(|w| w.2),
        limits: h.limits.map_or_else(Limits::default, |l| l.0),
        initial: h.initial,
        cases,
    }))
}

pub(super) fn kop(p: &mut Parser<'_>) -> R<KOp> {
    let (w, s) = p.word(KERNEL_OPS)?;
    Ok(match w {
        "store" => {
            let va = p.expr("a virtual address")?;
            let level = p.level()?;
            KOp::Store {
                va,
                level,
                desc: kdesc(p)?,
            }
        }
        "cas" => {
            let va = p.expr("a virtual address")?;
            let level = p.level()?;
            let expect = kdesc(p)?;
            p.punct("=>")?;
            let desc = kdesc(p)?;
            let retries = if p.at_key() == Some("retries") {
                let (w, s) = p.value("a count of retries")?;
                w.parse()
                    .map_err(|_| p.err_at(s, format!("expected retries=0..255, found `{w}`")))?
            } else {
                0
            };
            KOp::Cas {
                va,
                level,
                expect,
                desc,
                retries,
            }
        }
        "dsb" => KOp::Dsb(dsb_kind(p)?),
        "isb" => KOp::Isb,
        "tlbi" => {
            let (kind, scope) = tlbi_kind(p)?;
            let va = if kind.by_va() {
                Some(p.expr("the TLBI's virtual address")?)
            } else {
                None
            };
            KOp::Tlbi { kind, scope, va }
        }
        "alloc" => {
            let a = page_arg(p)?;
            let PageRef::Reg(reg, 0) = a.page else {
                return Err(p.err_at(a.span, "expected a register rN to allocate into"));
            };
            let order = order(p)?;
            if p.eat_word("as") {
                let (name, ns) = p.word("a name for the page")?;
                if reserved(name) || p.names.contains_key(name) || p.lets.contains_key(name) {
                    return Err(p.err_at(ns, format!("expected a new name, found `{name}` (a keyword, a number, a register or a name already defined)")));
                }
                p.names.insert(name.to_string(), reg);
            }
            KOp::Alloc { reg, order }
        }
        "free" => KOp::Free {
            page: page_arg(p)?,
            order: order(p)?,
        },
        "copy" => KOp::Copy {
            dst: page_arg(p)?,
            src: page_arg(p)?,
        },
        "fill-table" => {
            let table = page_arg(p)?;
            if !p.eat_word("from") {
                return Err(p.err("`from` (fill-table PAGE from VA Ln)"));
            }
            let va = p.expr("the VA of the block")?;
            KOp::FillTable {
                table,
                va,
                level: p.level()?,
            }
        }
        "reset" => {
            let page = page_arg(p)?;
            if p.at_key() != Some("structs") {
                return Err(p.err("structs=N"));
            }
            p.bump();
            p.bump();
            let count = p.expr("a count of struct pages")?;
            if p.at_key() != Some("head") {
                return Err(p.err("head=PFN"));
            }
            p.bump();
            p.bump();
            KOp::Reset {
                page,
                count,
                head: p.expr("the head's pfn")?,
            }
        }
        "pause" => KOp::Pause,
        "resume" => KOp::Resume,
        "stop-machine" => KOp::StopMachine,
        "start-machine" => KOp::StartMachine,
        "synchronize-rcu" => KOp::SynchronizeRcu,
        "str" => {
            let value = p.expr("the value")?;
            p.punct(",")?;
            p.punct("[")?;
            let va = p.expr("a virtual address")?;
            p.punct("]")?;
            KOp::Str { value, va }
        }
        _ => return Err(p.err_at(s, format!("expected {KERNEL_OPS}, found `{w}`"))),
    })
}
