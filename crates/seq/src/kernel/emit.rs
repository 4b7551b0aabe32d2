//! The way back: a protocol's [`Program`] written as a kernel file
//! (`hvo show --format seq`), its addresses named symbolically.

use std::fmt::Write as _;

use explore::{Direction, Limits, Prepared, Row};
use mm::vmemmap::{VMEMMAP_START, struct_page_va};
use mm::{Desc, Instr, Kernel, Page, Perm, Program};
use vmsa::BbmLevel;

use super::concurrent_of;

/// How to write a kernel file.
#[derive(Clone, Debug)]
pub struct Emit<'a> {
    /// Comment lines at the top (without `#`).
    pub title: Vec<String>,
    /// The case's name.
    pub case: &'a str,
    /// All workloads in one exploration.
    pub together: bool,
    /// The search limits.
    pub limits: Limits,
}

fn level_list(l: &[BbmLevel]) -> String {
    l.iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

struct Names<'k> {
    head: u64,
    next: u64,
    /// (frame, VA) of the vmemmap pages stated in `initial`.
    frames: Vec<(u64, u64)>,
    kernel: &'k Kernel,
}

impl Names<'_> {
    fn va(&self, va: u64) -> String {
        if va < VMEMMAP_START {
            return format!("{va:#x}");
        }
        let off = va - VMEMMAP_START;
        let (pfn, rem) = (off / 64, off % 64);
        let base = if pfn >= self.next {
            sym("next", pfn - self.next)
        } else if pfn >= self.head {
            sym("head", pfn - self.head)
        } else if pfn < 4096 {
            pfn.to_string()
        } else {
            format!("{pfn:#x}")
        };
        if rem == 0 {
            format!("vmemmap[{base}]")
        } else {
            format!("vmemmap[{base}] + {rem:#x}")
        }
    }

    fn page(&self, p: Page) -> String {
        match p {
            Page::Reg(r, 0) => format!("r{r}"),
            Page::Reg(r, o) => format!("r{r}+{o}"),
            Page::Same => "same".into(),
            Page::Frame(f) => {
                if let Some((_, va)) = self.frames.iter().find(|(fr, _)| *fr == f) {
                    format!("page-of {}", self.va(*va))
                } else if self.kernel.shared_tail == Some(f) {
                    "shared-tail".into()
                } else {
                    format!("pfn {f:#x}")
                }
            }
        }
    }

    fn desc(&self, d: &Desc, level: u8) -> String {
        match *d {
            Desc::Invalid => "invalid".into(),
            Desc::Table(p) => format!("table {}", self.page(p)),
            Desc::Leaf { page, perm, af, nt } => format!(
                "{} {} {}{}{}",
                if level < 3 { "block" } else { "page" },
                self.page(page),
                if perm == Perm::Rw { "rw" } else { "ro" },
                if af { "" } else { " noaf" },
                if nt { " nt" } else { "" }
            ),
        }
    }

    fn instr(&self, i: &Instr) -> String {
        match i {
            Instr::Store { va, level, desc } => {
                format!(
                    "store {} L{level} {}",
                    self.va(*va),
                    self.desc(desc, *level)
                )
            }
            Instr::Cas {
                va,
                level,
                expect,
                desc,
                retries,
            } => format!(
                "cas {} L{level} {} => {}{}",
                self.va(*va),
                self.desc(expect, *level),
                self.desc(desc, *level),
                if *retries > 0 {
                    format!(" retries={retries}")
                } else {
                    String::new()
                }
            ),
            Instr::Dsb(k) => k.to_string(),
            Instr::Isb => "isb".into(),
            Instr::Tlbi { kind, scope, va } if kind.by_va() => {
                format!("tlbi {} {}", kind.mnemonic(*scope), self.va(*va))
            }
            Instr::Tlbi { kind, scope, .. } => format!("tlbi {}", kind.mnemonic(*scope)),
            Instr::Alloc { reg, order: 0 } => format!("alloc r{reg}"),
            Instr::Alloc { reg, order } => format!("alloc r{reg} order={order}"),
            Instr::Free { page, order: 0 } => format!("free {}", self.page(*page)),
            Instr::Free { page, order } => format!("free {} order={order}", self.page(*page)),
            Instr::Copy { dst, src } => format!("copy {} {}", self.page(*dst), self.page(*src)),
            Instr::FillTable { table, va, level } => {
                format!(
                    "fill-table {} from {} L{level}",
                    self.page(*table),
                    self.va(*va)
                )
            }
            Instr::ResetStructPages { page, count, head } => format!(
                "reset {} structs={count} head={}",
                self.page(*page),
                if *head == self.head {
                    "head".to_string()
                } else {
                    format!("{head:#x}")
                }
            ),
            Instr::PauseCpus => "pause".into(),
            Instr::ResumeCpus => "resume".into(),
            Instr::StopMachine => "stop-machine".into(),
            Instr::StartMachine => "start-machine".into(),
            Instr::SynchronizeRcu => "synchronize-rcu".into(),
            Instr::WriteWord { va, value } => format!("str {value:#x}, [{}]", self.va(*va)),
        }
    }
}

/// Returns a comment to write before instruction `i`, naming the phase
/// it starts.
fn comment(i: usize, is: &[Instr]) -> Option<String> {
    let prev = i.checked_sub(1).and_then(|p| is.get(p));
    let next = is.get(i + 1);
    match (&is[i], next) {
        (Instr::WriteWord { .. }, _) if !matches!(prev, Some(Instr::WriteWord { .. })) => {
            Some("the refcount freeze (a speculative PFN walker may hold a reference)".into())
        }
        (Instr::Alloc { .. }, _) if !matches!(prev, Some(Instr::Alloc { .. })) => {
            match is[i..].iter().find(|x| !matches!(x, Instr::Alloc { .. })) {
                Some(Instr::FillTable { level, .. }) => Some(format!(
                    "split the L{level} block: a private table mapping the same memory"
                )),
                _ => Some("new pages, allocated before any visible change".into()),
            }
        }
        (Instr::Free { .. }, _) if !matches!(prev, Some(Instr::Free { .. })) => {
            Some("free what is no longer mapped".into())
        }
        (
            Instr::Store {
                desc: Desc::Invalid,
                ..
            },
            _,
        ) if !matches!(
            prev,
            Some(Instr::Store {
                desc: Desc::Invalid,
                ..
            })
        ) =>
        {
            Some("break".into())
        }
        (Instr::ResetStructPages { .. }, _)
            if !matches!(prev, Some(Instr::ResetStructPages { .. })) =>
        {
            Some("repair the fake heads".into())
        }
        _ => None,
    }
}

fn sym(name: &str, d: u64) -> String {
    if d == 0 {
        name.to_string()
    } else {
        format!("{name}+{d}")
    }
}

/// Writes `program`, prepared on `prep`'s kernel, as a kernel file whose
/// `expect` lines are the verdicts of `rows` (one per FEAT_BBM level).
///
/// # Errors
///
/// Returns a message when the kernel cannot say how a stated VA is mapped.
pub fn emit(
    prep: &Prepared,
    program: &Program,
    rows: &[Row],
    opts: &Emit<'_>,
) -> Result<String, String> {
    let s = &prep.setup;
    let k = &prep.kernel;
    let g = s.granule;
    let mut out = String::new();
    for t in &opts.title {
        let _ = writeln!(out, "# {t}");
    }
    let levels: Vec<BbmLevel> = rows.iter().map(|r| r.setup.features.bbm).collect();
    let onoff = |b: bool| if b { "on" } else { "off" };
    let _ = writeln!(
        out,
        "config granule={g} hugepagesz={} bbm={} hw-af={} hw-dbm={}",
        vmsa::granule::format_size(s.huge_size),
        level_list(&levels),
        onoff(s.features.hw_af),
        onoff(s.features.hw_dbm)
    );
    match s.direction {
        Direction::Hvo if s.protocol.needs_identical_tails() => {
            out.push_str("kernel hvo tails=order\n")
        }
        Direction::Hvo => out.push_str("kernel hvo\n"),
        Direction::Restore => {
            let _ = writeln!(out, "kernel de-hvo after={}", s.protocol.name);
        }
    }
    let _ = writeln!(
        out,
        "workloads {}{}{}",
        s.workloads
            .iter()
            .map(|w| w.name())
            .collect::<Vec<_>>()
            .join(" "),
        if s.copies > 1 {
            format!(" cpus={}", s.copies)
        } else {
            String::new()
        },
        if opts.together { " together" } else { "" }
    );
    let d = Limits::default();
    if opts.limits != d {
        let _ = writeln!(
            out,
            "limits states={} memory={} time={}s",
            opts.limits.states,
            opts.limits.memory,
            opts.limits.time.as_secs()
        );
    }
    // The initial mapping: the huge page's vmemmap pages and the
    // neighbour's first one, in runs.
    let head = prep.sites.head;
    let next = prep.sites.neighbour;
    let mut vas: Vec<u64> = (0..k.geo.vmemmap_pages())
        .map(|i| struct_page_va(head) + i * g.page_size())
        .collect();
    vas.push(struct_page_va(next));
    let mut mapped = Vec::new();
    for &va in &vas {
        let (pa, ro) = k.leaf_of(va).map_err(|e| format!("{va:#x}: {e}"))?;
        mapped.push((va, pa >> g.page_shift(), ro));
    }
    let mut names = Names {
        head,
        next,
        frames: Vec::new(),
        kernel: k,
    };
    for &(va, f, _) in &mapped {
        if !names.frames.iter().any(|(x, _)| *x == f) {
            names.frames.push((f, va));
        }
    }
    out.push_str("# the mapping when the program starts (checked against the booted kernel)\n");
    let mut i = 0;
    while i < mapped.len() {
        let (va, f, ro) = mapped[i];
        let mut n = 1;
        let run = |n: usize, shared: bool| {
            i + n < mapped.len() && {
                let (v2, f2, r2) = mapped[i + n];
                v2 == va + n as u64 * g.page_size()
                    && r2 == ro
                    && f2 == if shared { f } else { f + n as u64 }
            }
        };
        let shared = !run(1, false) && run(1, true);
        while run(n, shared) {
            n += 1;
        }
        let _ = writeln!(
            out,
            "initial {} -> pfn {f:#x}{}{} {}",
            names.va(va),
            if n > 1 {
                format!(" pages={n}")
            } else {
                String::new()
            },
            if shared && n > 1 { " shared" } else { "" },
            if ro { "ro" } else { "rw" }
        );
        i += n;
    }
    let _ = writeln!(out, "\ncase {}", opts.case);
    // Expected verdicts, levels with the same verdicts on one line.
    let mut lines: Vec<(Vec<BbmLevel>, String)> = Vec::new();
    for r in rows {
        let rules = if r.violations.is_empty() {
            "compliant".to_string()
        } else {
            r.violations
                .iter()
                .map(|(r, _)| r.code())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let v = format!("rules {rules} concurrent {}", concurrent_of(r));
        match lines.iter_mut().find(|(_, x)| *x == v) {
            Some((l, _)) => l.push(r.setup.features.bbm),
            None => lines.push((vec![r.setup.features.bbm], v)),
        }
    }
    for (l, v) in &lines {
        let _ = writeln!(out, "expect bbm={} {v}", level_list(l));
    }
    let is = &program.instrs;
    for (i, ins) in is.iter().enumerate() {
        if let Some(c) = comment(i, is) {
            let _ = writeln!(out, "# {c}");
        }
        let _ = writeln!(out, "{}", names.instr(ins));
    }
    Ok(out)
}
