//! A machine file's parts: `map` and `fill` lines, leaf attributes and
//! descriptors, its cases and their operations.

use std::collections::BTreeSet;

use vmsa::{Attributes, Config, Granule, LeafAttrs, Shareability, Tlbi, VirtAddr};

use crate::SeqFile;
use crate::lex::Tok;
use crate::machine::{Case, Desc, Init, MachineFile, Op, Setup, Step};

use super::expr::{dsb_kind, order, tlbi_kind};
use super::header::expect_line;
use super::{Header, MACHINE_OPS, Parser, R, case_head, cpu_prefix, number};

pub(super) fn machine_file(p: &mut Parser<'_>, h: Header) -> R<SeqFile> {
    let mut config = Config::new(
        h.granule.unwrap_or(Granule::K4),
        h.cpus.as_ref().map_or(2, |c| c.0),
    );
    if let Some((l, s)) = &h.levels {
        if l.len() > 1 {
            return Err(p.err_at(
                s.clone(),
                "one FEAT_BBM level in a machine file (give `bbm=` on a case for another)",
            ));
        }
        config.features.bbm = l[0];
    }
    config.features.hw_af = h.hw_af.unwrap_or(false);
    config.features.hw_dbm = h.hw_dbm;
    let mut cases: Vec<Case> = Vec::new();
    while p.peek_word() == Some("case") {
        let (name, line, _, bbm) = case_head(p)?;
        let bbm = match bbm {
            Some((l, s)) if l.len() > 1 => return Err(p.err_at(s, "one FEAT_BBM level per case")),
            Some((l, _)) => Some(l[0]),
            None => None,
        };
        let mut case = Case {
            name,
            line,
            expect: BTreeSet::new(),
            bbm,
            steps: Vec::new(),
        };
        p.skip_blank();
        while !matches!(p.tok(), Tok::Eof) && p.peek_word() != Some("case") {
            let start = p.span().start;
            if p.eat_word("expect") {
                let (lv, rules, _) = expect_line(p, false)?;
                if lv.is_some() {
                    return Err(p.err_at(
                        start..p.prev_end(),
                        "a machine case gives its FEAT_BBM level on its `case` line",
                    ));
                }
                case.expect.extend(rules);
            } else if matches!(p.peek_word(), Some("map" | "fill" | "config")) {
                return Err(p.err("a step (`cpuN ...`), `expect` or `case`: set-up lines go before the first case"));
            } else {
                let cpu = cpu_prefix(p)?;
                let op = mop(p)?;
                case.steps.push(Step {
                    line: p.line_of(start),
                    cpu,
                    op,
                });
            }
            p.end_line()?;
            p.skip_blank();
        }
        cases.push(case);
    }
    if cases.is_empty() {
        return Err(p.err("`case NAME`: expected at least one case"));
    }
    Ok(SeqFile::Machine(MachineFile {
        file: p.file.to_string(),
        setup: Setup {
            config,
            memory: h.memory.map_or(64 << 20, |m| m.0),
        },
        init: h.init,
        cases,
    }))
}

pub(super) fn map_line(p: &mut Parser<'_>) -> R<Init> {
    let va = p.const_expr("a virtual address")?;
    p.punct("->")?;
    let pa = p.const_expr("a physical address")?;
    let mut size = None;
    let mut level = None;
    loop {
        match p.at_key() {
            Some("size") => {
                let (w, s) = p.value("a size")?;
                size = Some(number(w).ok_or_else(|| {
                    p.err_at(s, format!("expected size=SIZE (e.g. 2M), found `{w}`"))
                })?);
            }
            Some("level") => {
                let (w, s) = p.value("0..3")?;
                level = Some(
                    w.parse::<u8>()
                        .ok()
                        .filter(|&l| l <= 3)
                        .ok_or_else(|| p.err_at(s, format!("expected level=0..3, found `{w}`")))?,
                );
            }
            _ => break,
        }
    }
    let size = size.ok_or_else(|| p.err("size=SIZE"))?;
    let level = level.ok_or_else(|| p.err("level=N"))?;
    let attrs = attrs(p)?;
    Ok(Init::Map {
        va,
        pa,
        size,
        level,
        attrs,
    })
}

pub(super) fn fill_line(p: &mut Parser<'_>) -> R<Init> {
    let pa = p.const_expr("a physical address")?;
    let mut pages = 1;
    if p.at_key() == Some("pages") {
        let (w, s) = p.value("a count")?;
        pages = number(w).ok_or_else(|| p.err_at(s, format!("expected pages=N, found `{w}`")))?;
    }
    if p.at_key() != Some("value") {
        return Err(p.err("value=N"));
    }
    let (w, s) = p.value("a value")?;
    let value = number(w).ok_or_else(|| p.err_at(s, format!("expected value=N, found `{w}`")))?;
    Ok(Init::Fill { pa, pages, value })
}

pub(super) fn attrs(p: &mut Parser<'_>) -> R<LeafAttrs> {
    let mut a = LeafAttrs {
        flags: Attributes::AF,
        sh: Shareability::Inner,
        ..LeafAttrs::default()
    };
    loop {
        if let Some(k) = p.at_key() {
            match k {
                "attr" => {
                    let (w, s) = p.value("0..7")?;
                    a.attr_indx =
                        w.parse().ok().filter(|&n: &u8| n < 8).ok_or_else(|| {
                            p.err_at(s, format!("expected attr=0..7, found `{w}`"))
                        })?;
                }
                "sh" => {
                    let (w, s) = p.value("is, os or ns")?;
                    a.sh = match w {
                        "is" => Shareability::Inner,
                        "os" => Shareability::Outer,
                        "ns" => Shareability::NonShareable,
                        _ => {
                            return Err(p.err_at(
                                s,
                                format!("expected sh=is, sh=os or sh=ns, found `{w}`"),
                            ));
                        }
                    };
                }
                _ => break,
            }
            continue;
        }
        let f = match p.peek_word() {
            Some("rw") => {
                a.flags.remove(Attributes::READ_ONLY);
                p.bump();
                continue;
            }
            Some("ro") => Attributes::READ_ONLY,
            Some("noaf") => {
                a.flags.remove(Attributes::AF);
                p.bump();
                continue;
            }
            Some("ng") => Attributes::NG,
            Some("nt") => Attributes::NT,
            Some("dbm") => Attributes::DBM,
            Some("cont") => Attributes::CONTIGUOUS,
            Some("pxn") => Attributes::PXN,
            Some("uxn") => Attributes::UXN,
            _ => break,
        };
        a.flags.insert(f);
        p.bump();
    }
    Ok(a)
}

pub(super) fn mdesc(p: &mut Parser<'_>) -> R<Desc> {
    const WHAT: &str = "a descriptor: invalid, page, block, table or raw";
    let (w, _) = p.word(WHAT)?;
    match w {
        "invalid" => Ok(Desc::Invalid),
        "page" | "block" => {
            let pa = p.const_expr("an output address")?;
            Ok(Desc::Leaf {
                pa,
                attrs: attrs(p)?,
            })
        }
        "table" => Ok(Desc::Table(p.word("a table name")?.0.to_string())),
        "raw" => Ok(Desc::Raw(p.const_expr("a 64-bit descriptor value")?)),
        _ => {
            p.pos -= 1;
            Err(p.err(WHAT))
        }
    }
}

pub(super) fn mop(p: &mut Parser<'_>) -> R<Op> {
    let (w, s) = p.word(MACHINE_OPS)?;
    Ok(match w {
        "store" => {
            let va = p.const_expr("a virtual address")?;
            let level = p.level()?;
            Op::Store {
                va,
                level,
                desc: mdesc(p)?,
            }
        }
        "cas" => {
            let va = p.const_expr("a virtual address")?;
            let level = p.level()?;
            let expected = mdesc(p)?;
            p.punct("=>")?;
            Op::Cas {
                va,
                level,
                expected,
                desc: mdesc(p)?,
            }
        }
        "dsb" => Op::Dsb(dsb_kind(p)?),
        "isb" => Op::Isb,
        "tlbi" => {
            let (kind, scope) = tlbi_kind(p)?;
            let va = if kind.by_va() {
                p.const_expr("the TLBI's virtual address")?
            } else {
                0
            };
            let mut asid = 0;
            if p.at_key() == Some("asid") {
                let (w, s) = p.value("0..65535")?;
                asid = w
                    .parse()
                    .map_err(|_| p.err_at(s, format!("expected asid=0..65535, found `{w}`")))?;
            }
            Op::Tlbi(Tlbi {
                kind,
                scope,
                va: VirtAddr(va),
                asid,
            })
        }
        "table" => {
            let (name, _) = p.word("a table name")?;
            let name = name.to_string();
            let (k, ks) = p.word("split or empty")?;
            match k {
                "split" => {
                    let va = p.const_expr("the VA of the block to split")?;
                    let level = p.level()?;
                    let attrs = if p.at_eol() { None } else { Some(attrs(p)?) };
                    Op::SplitTable {
                        name,
                        va,
                        level,
                        attrs,
                    }
                }
                "empty" => Op::EmptyTable(name),
                _ => return Err(p.err_at(ks, format!("expected split or empty, found `{k}`"))),
            }
        }
        "copy" => Op::Copy {
            dst: p.const_expr("a destination physical address")?,
            src: p.const_expr("a source physical address")?,
        },
        "write" => Op::Write {
            pa: p.const_expr("a physical address")?,
            value: p.const_expr("a value")?,
        },
        "free" => {
            if p.eat_word("table") {
                Op::FreeTable(p.word("a table name")?.0.to_string())
            } else if p.eat_word("table-at") {
                let va = p.const_expr("a virtual address")?;
                Op::FreeTableAt {
                    va,
                    level: p.level()?,
                }
            } else {
                let pa = p.const_expr("a physical address or `table NAME`")?;
                Op::Free {
                    pa,
                    order: order(p)?,
                }
            }
        }
        _ => return Err(p.err_at(s, format!("expected {MACHINE_OPS}, found `{w}`"))),
    })
}
