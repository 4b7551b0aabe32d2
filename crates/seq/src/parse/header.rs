//! The header lines: `config`, `kernel`, `workloads`, `limits`, `initial`,
//! and a case's `expect` lines.

use std::collections::BTreeSet;
use std::time::Duration;

use explore::{Direction, Limits, WorkloadKind};
use mm::{PROTOCOLS, Protocol};

use crate::ast::{Concurrent, Initial};

use super::expr::page_arg;
use super::{ExpectParts, Header, Parser, R, number, onoff};

pub(super) fn config(p: &mut Parser<'_>, h: &mut Header) -> R<()> {
    const KEYS: &str = "granule=, bbm=, hugepagesz=, hw-af=, hw-dbm=, cpus= or memory=";
    while !p.at_eol() {
        let Some(k) = p.at_key() else {
            return Err(p.err(&format!("key=value ({KEYS})")));
        };
        let ks = p.span();
        match k {
            "granule" => {
                let (v, s) = p.value("4k, 16k or 64k")?;
                h.granule = Some(v.parse().map_err(|_| {
                    p.err_at(s, format!("expected granule=4k, 16k or 64k, found `{v}`"))
                })?);
            }
            "bbm" => {
                p.bump();
                p.punct("=")?;
                h.levels = Some(p.bbm_list()?);
            }
            "hugepagesz" => {
                let (v, s) = p.value("a huge page size such as 2M")?;
                let n = number(v).ok_or_else(|| {
                    p.err_at(
                        s.clone(),
                        format!("expected a huge page size such as 2M, found `{v}`"),
                    )
                })?;
                h.huge = Some((n, ks.start..s.end));
            }
            "cpus" => {
                let (v, s) = p.value("1..64")?;
                let n = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| {
                        p.err_at(s.clone(), format!("expected cpus=1..64, found `{v}`"))
                    })?;
                h.cpus = Some((n, ks.start..s.end));
            }
            "memory" => {
                let (v, s) = p.value("a size such as 64M")?;
                let n = number(v).ok_or_else(|| {
                    p.err_at(
                        s.clone(),
                        format!("expected memory=SIZE (e.g. 64M), found `{v}`"),
                    )
                })?;
                h.memory = Some((n, ks.start..s.end));
            }
            "hw-af" => {
                let (v, s) = p.value("on or off")?;
                h.hw_af = Some(onoff(v).ok_or_else(|| {
                    p.err_at(s, format!("expected hw-af=on or off, found `{v}`"))
                })?);
            }
            "hw-dbm" => {
                let (v, s) = p.value("on or off")?;
                h.hw_dbm = onoff(v).ok_or_else(|| {
                    p.err_at(s, format!("expected hw-dbm=on or off, found `{v}`"))
                })?;
            }
            _ => return Err(p.err(&format!("one of {KEYS}"))),
        }
    }
    Ok(())
}

pub(super) fn kernel_line(p: &mut Parser<'_>) -> R<(Direction, Protocol)> {
    let (d, s) = p.word("hvo or de-hvo")?;
    let names = PROTOCOLS.map(|p| p.name).join(", ");
    match d {
        "hvo" => {
            let mut proto = Protocol::by_name("linux-generic");
            if let Some(k) = p.at_key() {
                if k != "tails" {
                    return Err(p.err("`tails=head` or `tails=order`, or the end of the line"));
                }
                let (v, vs) = p.value("head or order")?;
                proto = match v {
                    "head" => Protocol::by_name("linux-generic"),
                    "order" => PROTOCOLS
                        .iter()
                        .copied()
                        .find(|p| p.needs_identical_tails()),
                    _ => {
                        return Err(p.err_at(
                            vs,
                            format!("expected tails=head or tails=order, found `{v}`"),
                        ));
                    }
                };
            }
            let proto = proto
                .ok_or_else(|| p.err_at(s, "no built-in protocol has this struct page format"))?;
            Ok((Direction::Hvo, proto))
        }
        "de-hvo" => {
            if p.at_key() != Some("after") {
                return Err(p.err(&format!(
                    "after=PROTOCOL (the protocol that optimized the huge page: {names})"
                )));
            }
            let (v, vs) = p.value("a protocol")?;
            let proto = Protocol::by_name(v).ok_or_else(|| {
                p.err_at(vs, format!("expected a protocol ({names}), found `{v}`"))
            })?;
            Ok((Direction::Restore, proto))
        }
        _ => Err(p.err_at(s, format!("expected hvo or de-hvo, found `{d}`"))),
    }
}

pub(super) fn workload(p: &mut Parser<'_>) -> R<WorkloadKind> {
    let names = WorkloadKind::ALL.map(|w| w.name()).join(", ");
    let (w, s) = p.word(&format!("a workload ({names})"))?;
    w.parse()
        .map_err(|_| p.err_at(s, format!("expected a workload ({names}), found `{w}`")))
}

pub(super) fn workloads_line(p: &mut Parser<'_>) -> R<(Vec<WorkloadKind>, usize, bool)> {
    let mut v = vec![workload(p)?];
    let mut copies = 1;
    let mut together = false;
    while !p.at_eol() {
        if p.at_key() == Some("cpus") {
            let (w, s) = p.value("1..63")?;
            copies = w
                .parse()
                .ok()
                .filter(|n| (1..=63).contains(n))
                .ok_or_else(|| {
                    p.err_at(
                        s,
                        format!("expected cpus=1..63 (CPUs per workload), found `{w}`"),
                    )
                })?;
        } else if p.eat_word("together") {
            together = true;
        } else {
            let w = workload(p)?;
            if !v.contains(&w) {
                v.push(w);
            }
        }
    }
    if copies * v.len() > 63 {
        let e = p.prev_end();
        return Err(p.err_at(e.saturating_sub(1)..e, format!("{copies} CPUs per workload with {} workloads: the model has at most 64 CPUs, the updater and the workloads' CPUs", v.len())));
    }
    Ok((v, copies, together))
}

pub(super) fn limits_line(p: &mut Parser<'_>) -> R<Limits> {
    let mut l = Limits::default();
    while !p.at_eol() {
        match p.at_key() {
            Some("states") => {
                l.states = {
                    let (w, s) = p.value("a number")?;
                    number(w)
                        .ok_or_else(|| p.err_at(s, format!("expected states=N, found `{w}`")))?
                }
            }
            Some("memory") => {
                l.memory = {
                    let (w, s) = p.value("a size")?;
                    number(w).ok_or_else(|| {
                        p.err_at(s, format!("expected memory=SIZE (e.g. 8G), found `{w}`"))
                    })?
                }
            }
            Some("time") => {
                l.time = {
                    let (w, s) = p.value("seconds")?;
                    Duration::from_secs(
                        w.strip_suffix('s')
                            .and_then(number)
                            .or_else(|| number(w))
                            .ok_or_else(|| {
                                p.err_at(
                                    s,
                                    format!("expected time=SECONDS (e.g. 600s), found `{w}`"),
                                )
                            })?,
                    )
                }
            }
            _ => return Err(p.err("states=N, memory=SIZE or time=SECONDS")),
        }
    }
    Ok(l)
}

pub(super) fn initial_line(p: &mut Parser<'_>, start: usize) -> R<Initial> {
    let va = p.expr("a virtual address")?;
    p.punct("->")?;
    let page = page_arg(p)?;
    let mut pages = 1;
    let mut shared = false;
    let mut ro = None;
    while !p.at_eol() {
        if p.at_key() == Some("pages") {
            let (w, s) = p.value("a count")?;
            pages = number(w)
                .filter(|&n| (1..=1 << 20).contains(&n))
                .ok_or_else(|| p.err_at(s, format!("expected pages=1..1048576, found `{w}`")))?;
        } else if p.eat_word("shared") {
            shared = true;
        } else if p.eat_word("rw") {
            ro = Some(false);
        } else if p.eat_word("ro") {
            ro = Some(true);
        } else {
            return Err(p.err("pages=N, shared, rw or ro"));
        }
    }
    let ro = ro.ok_or_else(|| p.err("rw or ro"))?;
    Ok(Initial {
        va,
        page,
        pages,
        shared,
        ro,
        span: start..p.prev_end(),
    })
}

pub(super) fn expect_line(p: &mut Parser<'_>, kernel: bool) -> R<ExpectParts> {
    let mut levels = None;
    if p.at_key() == Some("bbm") {
        p.bump();
        p.bump();
        levels = Some(p.bbm_list()?.0);
    }
    let keyed = p.eat_word("rules");
    let mut rules = BTreeSet::new();
    let mut any = false;
    while let Some(w) = p.peek_word() {
        if w == "concurrent" {
            break;
        }
        any = true;
        if w != "none" && w != "compliant" {
            if !vmsa::Rule::ALL.iter().any(|r| r.code() == w) {
                return Err(p.err("a rule code such as R_WHZWS.oa-writable (see `hvo rules`), `none` or `compliant`"));
            }
            rules.insert(w.to_string());
        }
        p.bump();
    }
    if !any {
        return Err(p.err(if keyed {
            "rule codes or `compliant`"
        } else {
            "rule codes, `none`, or `rules ...`"
        }));
    }
    let mut concurrent = None;
    if p.peek_word() == Some("concurrent") {
        if !kernel {
            return Err(p.err_at(p.span(), "a machine file runs no concurrent CPUs: `concurrent` needs a kernel file (`kernel hvo`)"));
        }
        p.bump();
        let slugs = explore_slugs();
        let what = format!("safe, incomplete or a hazard ({})", slugs.join(", "));
        let (w, s) = p.word(&what)?;
        concurrent = Some(match w {
            "safe" => Concurrent::Safe,
            "incomplete" => Concurrent::Incomplete,
            w if slugs.contains(&w) => {
                let by = if p.eat_word("by") {
                    let mut v = vec![workload(p)?];
                    while p.eat_punct("+") {
                        v.push(workload(p)?);
                    }
                    Some(v)
                } else {
                    None
                };
                Concurrent::Hazard {
                    slug: w.to_string(),
                    by,
                }
            }
            _ => return Err(p.err_at(s, format!("expected {what}, found `{w}`"))),
        });
    } else if kernel {
        return Err(p.err("`concurrent VERDICT` (safe, incomplete or a hazard)"));
    }
    Ok((levels, rules, concurrent))
}

pub(super) fn explore_slugs() -> Vec<&'static str> {
    use explore::HazardKind as H;
    use vmsa::walk::FaultKind as F;
    [
        H::Fault(F::Translation),
        H::Fault(F::Permission),
        H::Fault(F::AccessFlag),
        H::Fault(F::TlbConflict),
        H::LostUpdate,
        H::UseAfterFree,
        H::FreedTableWalk,
        H::TornRead,
        H::Uninitialized,
        H::DoubleFree,
        H::FinalState,
        H::Deadlock,
    ]
    .map(|h| h.slug())
    .to_vec()
}
