//! `hvo verify`: every protocol, checked against the rules and explored
//! against concurrent CPUs; one table, then each counterexample.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use explore::{Direction, Limits, Row, Setup, Verdict, WorkloadKind};
use mm::{PROTOCOLS, Protocol};
use serde::Serialize;
use vmsa::{BbmLevel, Features, Granule};

use crate::table::Table;

/// Options of `hvo verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Protocols, comma-separated (default: all; see `hvo protocols`).
    #[arg(long, value_delimiter = ',')]
    protocol: Vec<String>,
    /// FEAT_BBM levels, comma-separated: 0, 1, 2, 2-noabort.
    #[arg(long, value_delimiter = ',', default_value = "0,2,2-noabort")]
    bbm: Vec<BbmLevel>,
    /// The translation granule: 4k, 16k or 64k.
    #[arg(long, default_value = "4k")]
    granule: Granule,
    /// The huge page size (`hugepagesz=`).
    #[arg(long = "hugepagesz", default_value = "2M")]
    huge_size: String,
    /// Workloads, comma-separated: neighbour, pfn-walker, straddle,
    /// head-writer (default: the standard set, the first three).
    #[arg(long, value_delimiter = ',')]
    workload: Vec<String>,
    /// CPUs per workload (identical CPUs).
    #[arg(long, default_value_t = 1)]
    cpus: usize,
    /// Run all workloads in one exploration, one CPU each, instead of one
    /// exploration per workload.
    #[arg(long)]
    together: bool,
    /// What the updater does: hvo, de-hvo or both.
    #[arg(long, default_value = "both")]
    direction: String,
    /// Hardware Access flag management off (FEAT_HAFDBS, TCR_EL1.HA = 0).
    #[arg(long)]
    no_hw_af: bool,
    /// Hardware dirty-state management on (TCR_EL1.HD = 1).
    #[arg(long)]
    hw_dbm: bool,
    /// Remove `synchronize_rcu()` from the programs (commit bd225530a4c7's
    /// race).
    #[arg(long)]
    no_rcu: bool,
    /// Stop a search after this many unique states.
    #[arg(long, default_value_t = Limits::default().states)]
    max_states: u64,
    /// Stop a search before it would hold more than this much memory, in
    /// MiB (the searches of one configuration run at once share it; the
    /// process holds a fixed overhead more, a few tens of MiB).
    #[arg(long, default_value_t = Limits::default().memory >> 20)]
    max_memory: u64,
    /// Stop a search after this many seconds.
    #[arg(long, default_value_t = Limits::default().time.as_secs())]
    max_time: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the report as one self-contained HTML page to this file:
    /// the table, and each counterexample as a timeline (one lane per CPU,
    /// the descriptors and TLB entries after each step, the hazard marked).
    #[arg(long, value_name = "FILE")]
    html: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
pub(crate) struct RowJson<'a> {
    /// What was checked: the protocol's name, or for a user's kernel
    /// file its file and case (`hvo check` sets it).
    pub(crate) protocol: String,
    direction: &'a str,
    granule: String,
    huge_size: String,
    bbm: String,
    hw_af: bool,
    rules: Vec<String>,
    compliant: bool,
    herd7_bbm: Herd7Json<'a>,
    safe: bool,
    verdict: String,
    states: u64,
    seconds: f64,
    costs: &'a mm::Costs,
    runs: &'a [explore::Run],
}

/// herd7's break-before-make flag in `--json`.
#[derive(Serialize)]
pub(crate) struct Herd7Json<'a> {
    /// Whether herd7 7.58+1 would raise `Warning-BBM-expected`.
    warning: bool,
    /// Whether the rule checker says otherwise (R_WHZWS or R_DDMVT
    /// violated without the warning, or the warning without them).
    differs_from_rules: bool,
    /// The pairs of descriptor values herd7 flags.
    pairs: &'a [vmsa::herd_bbm::Pair],
}

fn fail(msg: String) -> ExitCode {
    eprintln!("hvo: {msg}");
    ExitCode::from(2)
}

/// Runs `hvo verify`.
pub fn run(a: &VerifyArgs) -> ExitCode {
    let protocols: Vec<Protocol> = if a.protocol.is_empty() {
        PROTOCOLS.to_vec()
    } else {
        let mut v = Vec::new();
        for name in &a.protocol {
            match Protocol::by_name(name) {
                Some(p) => v.push(p),
                None => {
                    return fail(format!(
                        "unknown protocol `{name}`; expected one of: {}",
                        PROTOCOLS.map(|p| p.name).join(", ")
                    ));
                }
            }
        }
        v
    };
    let workloads: Vec<WorkloadKind> = if a.workload.is_empty() {
        WorkloadKind::STANDARD.to_vec()
    } else {
        match a.workload.iter().map(|w| w.parse()).collect() {
            Ok(v) => v,
            Err(e) => return fail(e),
        }
    };
    let directions = match a.direction.as_str() {
        "hvo" => vec![Direction::Hvo],
        "de-hvo" => vec![Direction::Restore],
        "both" => vec![Direction::Hvo, Direction::Restore],
        d => {
            return fail(format!(
                "unknown direction `{d}`; expected hvo, de-hvo or both"
            ));
        }
    };
    let huge_size = match vmsa::granule::parse_size(&a.huge_size) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    if a.cpus == 0 || a.cpus.saturating_mul(workloads.len()) > 63 {
        return fail(format!(
            "--cpus {} with {} workload(s): the model has 1 to 64 CPUs, the updater and the workloads' CPUs",
            a.cpus,
            workloads.len()
        ));
    }
    let limits = Limits {
        states: a.max_states,
        memory: a.max_memory << 20,
        time: Duration::from_secs(a.max_time),
    };
    let mut setups = Vec::new();
    for p in &protocols {
        for d in &directions {
            for bbm in &a.bbm {
                setups.push(Setup {
                    protocol: *p,
                    direction: *d,
                    granule: a.granule,
                    huge_size,
                    features: Features {
                        bbm: *bbm,
                        hw_af: !a.no_hw_af,
                        hw_dbm: a.hw_dbm,
                        ..Features::default()
                    },
                    workloads: workloads.clone(),
                    copies: a.cpus,
                });
            }
        }
    }
    // One configuration at a time (each search is parallel): the memory
    // limit is then the limit of the whole run.
    let display = crate::progress::Display::new(!a.json, limits);
    let results: Vec<Result<Row, explore::ExploreError>> = setups
        .iter()
        .map(|s| {
            let prep = explore::Prepared::new(s)?;
            let mut program = prep.program.clone();
            if a.no_rcu {
                program
                    .instrs
                    .retain(|i| !matches!(i, mm::Instr::SynchronizeRcu));
            }
            let label = format!(
                "{} {} {}",
                s.protocol.name,
                s.direction.name(),
                s.features.bbm
            );
            explore::verify_program_with(&prep, &program, &limits, a.together, &|p| {
                display.update(&label, p)
            })
        })
        .collect();
    display.finish();
    let mut rows = Vec::new();
    for r in results {
        match r {
            Ok(row) => rows.push(row),
            Err(e) => return fail(e.to_string()),
        }
    }
    if let Some(path) = &a.html {
        let page = crate::html::Page {
            title: "hvo verify".into(),
            meta: meta(&workloads, a),
            rows: &rows,
            extra: None,
            labels: None,
        };
        if let Err(e) = std::fs::write(path, crate::html::render(&page)) {
            return fail(format!("cannot write {}: {e}", path.display()));
        }
    }
    if a.json {
        let out: Vec<RowJson> = rows.iter().map(row_json).collect();
        return match crate::print_json(&out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => code,
        };
    }
    print!("{}", render(&rows, &workloads, a));
    ExitCode::SUCCESS
}

/// Returns the rules cell: `compliant` or the rules violated.
pub(crate) fn rules_cell(row: &Row) -> String {
    if row.compliant() {
        "compliant".into()
    } else {
        row.violations
            .iter()
            .map(|(r, _)| r.code())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Returns the herd7-bbm cell: `-`, or `flag` and the pairs herd7's
/// `Warning-BBM-expected` is about.
pub(crate) fn herd7_cell(row: &Row) -> String {
    herd7_pairs_cell(row.herd7_bbm.len())
}

/// Returns the herd7-bbm cell for `n` pairs.
pub(crate) fn herd7_pairs_cell(n: usize) -> String {
    match n {
        0 => "-".into(),
        1 => "flag (1 pair)".into(),
        n => format!("flag ({n} pairs)"),
    }
}

/// Pairs shown per note; `--json` lists them all.
const NOTE_PAIRS: usize = 2;

/// A line of a table as the break-before-make notes see it: a kernel row
/// of `verify` or `check`, or a machine case of `check`.
pub(crate) struct BbmView<'a> {
    /// What the line is (protocol and direction, or file and case).
    pub label: String,
    /// Its FEAT_BBM level.
    pub bbm: String,
    /// The rules cell.
    pub rules: String,
    /// The rules violated.
    pub violations: Vec<vmsa::Rule>,
    /// The pairs herd7 flags.
    pub pairs: &'a [vmsa::herd_bbm::Pair],
}

impl BbmView<'_> {
    /// Tells whether the rule checker requires break-before-make where
    /// the sequence did not do it.
    fn rules_need_bbm(&self) -> bool {
        self.violations
            .iter()
            .any(|r| vmsa::herd_bbm::is_bbm_rule(*r))
    }

    /// Tells whether the rule checker and herd7 disagree.
    pub fn differs(&self) -> bool {
        self.rules_need_bbm() == self.pairs.is_empty()
    }
}

/// Returns `row`'s view, labelled `label`.
pub(crate) fn row_view<'a>(label: String, row: &'a Row) -> BbmView<'a> {
    BbmView {
        label,
        bbm: row.setup.features.bbm.to_string(),
        rules: rules_cell(row),
        violations: row.violations.iter().map(|(r, _)| *r).collect(),
        pairs: &row.herd7_bbm,
    }
}

/// Returns the notes on the lines where the rule checker and herd7's
/// `Warning-BBM-expected` disagree (empty when they agree everywhere):
/// one per label and finding, with its FEAT_BBM levels and the first
/// pairs.
pub(crate) fn bbm_notes(views: &[BbmView<'_>]) -> String {
    // (label, rules cell, pair count), then the levels and the first line.
    type Key<'k> = (&'k str, &'k str, usize);
    let mut groups: Vec<(Key, Vec<&str>, usize)> = Vec::new();
    for (i, v) in views.iter().enumerate() {
        if !v.differs() {
            continue;
        }
        let key = (v.label.as_str(), v.rules.as_str(), v.pairs.len());
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(&v.bbm),
            None => groups.push((key, vec![&v.bbm], i)),
        }
    }
    if groups.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\nWhere the rule checker and herd7 disagree on break-before-make (docs/bbm-herd7.md):\n",
    );
    for ((label, rules, n), levels, i) in &groups {
        let v = &views[*i];
        let at = format!("{label} at FEAT_BBM {}", levels.join(", "));
        if !v.pairs.is_empty() {
            let plural = if *n == 1 { "" } else { "s" };
            let rules = if *rules == "compliant" {
                "compliant by R_WHZWS and R_DDMVT".to_string()
            } else {
                format!("no R_WHZWS or R_DDMVT violation ({rules})")
            };
            out.push_str(&format!(
                "  {at}: {rules}, but herd7 7.58+1 raises Warning-BBM-expected \
                 (aarch64bbm.cat TTD-update-needsBBM without aarch64.cat BBM) for {n} pair{plural}:\n"
            ));
            for p in v.pairs.iter().take(NOTE_PAIRS) {
                out.push_str(&format!("    {}\n", p.render()));
            }
            if *n > NOTE_PAIRS {
                out.push_str(&format!(
                    "    ... and {} more (--json lists them)\n",
                    n - NOTE_PAIRS
                ));
            }
            if v.pairs.iter().all(|p| !p.coexist()) {
                out.push_str(
                    "    A completed TLBI separates the two values of every pair, so no TLB holds both: \
                     R_WHZWS applies to each change of an entry (I_THWDH), herd7 to every pair.\n",
                );
            }
        } else {
            let why = if v.violations.iter().all(|r| *r == vmsa::Rule::BlockSize) {
                " (herd7's VMSA model has one table level and no blocks: a block-size change is outside it)"
            } else {
                ""
            };
            out.push_str(&format!(
                "  {at}: {rules} by the rule checker, but herd7 7.58+1 raises no Warning-BBM-expected{why}\n"
            ));
        }
    }
    out
}

/// Returns the concurrent cell: `safe`, the hazard and its workloads, or
/// the limit that stopped the search.
pub(crate) fn verdict_cell(row: &Row) -> String {
    let (v, run) = row.verdict();
    let gave_up: u64 = row.runs.iter().map(|r| r.report.gave_up).sum();
    match v {
        Verdict::Safe if gave_up > 0 => format!("safe ({gave_up} paths gave up the CAS)"),
        Verdict::Safe => "safe".into(),
        Verdict::Hazard { hazard, .. } => format!(
            "{} ({})",
            hazard.kind.name(),
            run.map(|r| names(&r.workloads)).unwrap_or_default()
        ),
        Verdict::Incomplete { limit, .. } => format!("incomplete: {limit:?} limit"),
    }
}

/// Joins workload names with `+`.
pub(crate) fn names(w: &[WorkloadKind]) -> String {
    w.iter().map(|w| w.name()).collect::<Vec<_>>().join("+")
}

pub(crate) fn row_json(row: &Row) -> RowJson<'_> {
    RowJson {
        protocol: row.setup.protocol.name.to_string(),
        direction: row.setup.direction.name(),
        granule: row.setup.granule.to_string(),
        huge_size: vmsa::granule::format_size(row.setup.huge_size),
        bbm: row.setup.features.bbm.to_string(),
        hw_af: row.setup.features.hw_af,
        rules: row.violations.iter().map(|(r, _)| r.code()).collect(),
        compliant: row.compliant(),
        herd7_bbm: Herd7Json {
            warning: row.herd7_flags(),
            differs_from_rules: row.bbm_readings_differ(),
            pairs: &row.herd7_bbm,
        },
        safe: row.safe(),
        verdict: verdict_cell(row),
        states: row.states(),
        seconds: row.elapsed().as_secs_f64(),
        costs: &row.costs,
        runs: &row.runs,
    }
}

/// Returns the configuration lines of the HTML report.
fn meta(workloads: &[WorkloadKind], a: &VerifyArgs) -> Vec<(String, String)> {
    let on = |b: bool| if b { "on" } else { "off" }.to_string();
    vec![
        ("granule".into(), a.granule.to_string()),
        ("huge page size".into(), a.huge_size.clone()),
        (
            "FEAT_BBM levels".into(),
            a.bbm
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("direction".into(), a.direction.clone()),
        (
            "workloads".into(),
            format!(
                "{}, {} CPU(s) each, {}",
                names(workloads),
                a.cpus,
                if a.together {
                    "in one exploration"
                } else {
                    "one exploration each"
                }
            ),
        ),
        ("hardware AF (TCR_EL1.HA)".into(), on(!a.no_hw_af)),
        ("hardware DBM (TCR_EL1.HD)".into(), on(a.hw_dbm)),
        (
            "synchronize_rcu()".into(),
            if a.no_rcu { "removed" } else { "kept" }.into(),
        ),
        (
            "search limits".into(),
            format!(
                "{} states, {} MiB, {} s",
                a.max_states, a.max_memory, a.max_time
            ),
        ),
    ]
}

/// The columns of the verdict and cost table (the terminal's and the
/// HTML report's).
pub(crate) const COLUMNS: [&str; 14] = [
    "protocol",
    "op",
    "FEAT_BBM",
    "rules",
    "herd7-bbm",
    "concurrent",
    "states",
    "time",
    "stores",
    "cas",
    "dsb",
    "tlbi",
    "pause",
    "rcu",
];

/// Returns the cells of `r`'s line in the verdict and cost table.
pub(crate) fn cells(r: &Row) -> Vec<String> {
    let mut cells = vec![
        r.setup.protocol.name.to_string(),
        r.setup.direction.name().to_string(),
        r.setup.features.bbm.to_string(),
        rules_cell(r),
        herd7_cell(r),
        verdict_cell(r),
        r.states().to_string(),
        format!("{:.2}s", r.elapsed().as_secs_f64()),
    ];
    cells.extend(cost_cells(r));
    cells
}

fn render(rows: &[Row], workloads: &[WorkloadKind], a: &VerifyArgs) -> String {
    let mut t = Table::new(&COLUMNS);
    for r in rows {
        t.row(cells(r));
    }
    let mut out = format!(
        "hvo verify: {} {} pages, {} CPU(s) per workload, workloads: {}{}, hardware AF {}{}\n\n",
        a.granule,
        a.huge_size,
        a.cpus,
        names(workloads),
        if a.together {
            " (together)"
        } else {
            " (one exploration each)"
        },
        if a.no_hw_af { "off" } else { "on" },
        if a.no_rcu {
            ", synchronize_rcu removed"
        } else {
            ""
        },
    );
    out.push_str(&t.render());
    let total: u64 = rows.iter().map(Row::states).sum();
    let time: Duration = rows.iter().map(Row::elapsed).sum();
    out.push_str(&format!(
        "\n{} configurations, {} compliant, {} safe; {total} states in {:.2}s of search\n",
        rows.len(),
        rows.iter().filter(|r| r.compliant()).count(),
        rows.iter().filter(|r| r.safe()).count(),
        time.as_secs_f64()
    ));
    out.push_str(&answer(rows));
    let views: Vec<BbmView> = rows
        .iter()
        .map(|r| {
            let label = format!("{} {}", r.setup.protocol.name, r.setup.direction.name());
            row_view(label, r)
        })
        .collect();
    out.push_str(&bbm_notes(&views));
    for r in rows {
        let label = format!("{} {}", r.setup.protocol.name, r.setup.direction.name());
        out.push_str(&counterexample(&label, r));
    }
    out
}

/// Returns the short answer under the table: for each protocol and
/// direction, at which of the FEAT_BBM levels checked it is both compliant
/// and safe.
fn answer(rows: &[Row]) -> String {
    /// One protocol in one direction: how many levels were checked, and
    /// those at which it was compliant and safe.
    struct Group {
        label: String,
        checked: usize,
        good: Vec<String>,
    }
    let mut levels: Vec<String> = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    for r in rows {
        let bbm = r.setup.features.bbm.to_string();
        if !levels.contains(&bbm) {
            levels.push(bbm.clone());
        }
        let label = format!("{} {}", r.setup.protocol.name, r.setup.direction.name());
        let i = match groups.iter().position(|g| g.label == label) {
            Some(i) => i,
            None => {
                groups.push(Group {
                    label,
                    checked: 0,
                    good: Vec::new(),
                });
                groups.len() - 1
            }
        };
        groups[i].checked += 1;
        if r.compliant() && r.safe() {
            groups[i].good.push(bbm);
        }
    }
    let width = groups.iter().map(|g| g.label.len()).max().unwrap_or(0);
    let mut out = format!(
        "\nCompliant and safe (FEAT_BBM levels checked: {}):\n",
        levels.join(", ")
    );
    for g in &groups {
        let text = if g.good.is_empty() {
            "at no level checked".to_string()
        } else if g.good.len() == g.checked {
            "at every level checked".to_string()
        } else {
            format!("only at FEAT_BBM {}", g.good.join(", "))
        };
        out.push_str(&format!("  {:<width$}  {text}\n", g.label));
    }
    out
}

/// Renders the counterexample (or the incomplete search) of `r`, if any,
/// headed by `label`: one line per step, then the hazard.
pub(crate) fn counterexample(label: &str, r: &Row) -> String {
    let mut out = String::new();
    let (v, run) = r.verdict();
    match v {
        Verdict::Hazard { hazard, trace } => {
            out.push_str(&format!(
                "\n{label} at FEAT_BBM {} with {}: {}\n",
                r.setup.features.bbm,
                run.map(|r| names(&r.workloads)).unwrap_or_default(),
                hazard.kind.name()
            ));
            for (i, s) in trace.iter().enumerate() {
                out.push_str(&format!("  {:>3}  {}\n", i + 1, s.text));
            }
            out.push_str(&hazard_block(hazard));
        }
        Verdict::Incomplete { advice, .. } => {
            // The advice says how far the search stopped got.
            out.push_str(&format!(
                "\n{label} at FEAT_BBM {} with {}: incomplete: {advice}\n",
                r.setup.features.bbm,
                run.map(|r| names(&r.workloads)).unwrap_or_default(),
            ));
        }
        Verdict::Safe => {}
    }
    out
}

/// Renders the hazard line of a counterexample: `=>` and what happened,
/// then, where the explorer describes the state (the descriptors of the
/// walk and the CPU's TLB entries, `; `-separated in the hazard's detail,
/// `explore`'s `Engine::context`), one item per line, indented, and each
/// TLB entry on a line of its own.
pub(crate) fn hazard_block(h: &explore::Hazard) -> String {
    let mut head = format!("   =>  {} on cpu{}", h.kind.name(), h.cpu);
    if let Some(va) = h.va {
        head.push_str(&format!(" at {va:#x}"));
    }
    let items: Vec<&str> = h.detail.split("; ").collect();
    if items.len() == 1 {
        return format!("{head}: {}\n", h.detail);
    }
    let mut out = format!("{head}:\n");
    for item in items {
        // `cpuN TLB: [entry] [entry] ...`
        match item.split_once(" TLB: [") {
            Some((cpu, entries)) => {
                out.push_str(&format!("         {cpu} TLB:\n"));
                for e in entries.trim_end_matches(']').split("] [") {
                    out.push_str(&format!("           [{e}]\n"));
                }
            }
            None => out.push_str(&format!("         {item}\n")),
        }
    }
    out
}

/// Returns the cost cells of `r` (stores, cas, dsb, tlbi, pause, rcu).
pub(crate) fn cost_cells(r: &Row) -> Vec<String> {
    let c = &r.costs;
    vec![
        c.stores.to_string(),
        c.cas.to_string(),
        (c.dsb_ish + c.dsb_ishst).to_string(),
        c.tlbis().to_string(),
        (c.pauses + c.stop_machines).to_string(),
        c.rcu_syncs.to_string(),
    ]
}

/// Runs `hvo bench --explore`: the default `hvo verify`, then the largest
/// standard configuration (three identical neighbour CPUs against
/// pause-cpus) on one thread and on all, with unique states per second.
pub fn bench() -> ExitCode {
    let limits = Limits::default();
    let t = std::time::Instant::now();
    let mut states = 0;
    let mut rows = 0;
    for p in PROTOCOLS {
        for d in [Direction::Hvo, Direction::Restore] {
            for bbm in [BbmLevel::Level0, BbmLevel::Level2, BbmLevel::Level2NoAbort] {
                let mut s = Setup::standard(p, bbm);
                s.direction = d;
                match explore::verify(&s, &limits, false) {
                    Ok(r) => {
                        states += r.states();
                        rows += 1;
                    }
                    Err(e) => return fail(e.to_string()),
                }
            }
        }
    }
    let wall = t.elapsed().as_secs_f64();
    println!("hvo bench --explore");
    println!(
        "  default verify (sequential rows): {rows} configurations, {states} states, {wall:.2} s, {:.0} states/s",
        states as f64 / wall
    );
    let mut big = Setup::standard(
        Protocol::by_name("pause-cpus").expect("built in"),
        BbmLevel::Level2NoAbort,
    );
    big.workloads = vec![WorkloadKind::Neighbour];
    big.copies = 3;
    for threads in [1, rayon::current_num_threads()] {
        let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            Ok(p) => p,
            Err(e) => return fail(e.to_string()),
        };
        let t = std::time::Instant::now();
        let r = match pool.install(|| explore::verify(&big, &limits, false)) {
            Ok(r) => r,
            Err(e) => return fail(e.to_string()),
        };
        let wall = t.elapsed().as_secs_f64();
        println!(
            "  pause-cpus HVO, 3 neighbour CPUs, FEAT_BBM 2-noabort, {threads} thread(s): {} states, {wall:.2} s, {:.0} states/s",
            r.states(),
            r.states() as f64 / wall
        );
    }
    ExitCode::SUCCESS
}
