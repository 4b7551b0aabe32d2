//! `hvo simulate`, `hvo protocols` and `hvo bench`: the kernel model at work.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mm::vmemmap::TailFormat;
use mm::{Costs, Kernel, KernelConfig, PROTOCOLS, Protocol, SplitStrategy};
use serde::Serialize;
use vmsa::granule::{format_size, parse_size};
use vmsa::{BbmLevel, Features, Granule, Violation};

use crate::table::Table;

/// The machine and the pool, in the kernel's vocabulary.
#[derive(Args, Clone, Debug)]
pub struct MachineArgs {
    /// Base page size: 4k, 16k or 64k.
    #[arg(long, default_value = "4k")]
    pub granule: Granule,
    /// `hugepagesz=`: 64K, 2M, 32M, 1G (4k); 2M, 32M, 1G (16k); 2M, 512M, 16G (64k).
    #[arg(long = "hugepagesz", default_value = "2M", value_parser = size)]
    pub huge_size: u64,
    /// `hugepages=`: the pool size.
    #[arg(long, default_value_t = 64)]
    pub hugepages: u64,
    /// Physical memory (default: what the pool, the vmemmap and HVO need).
    #[arg(long, value_parser = size)]
    pub memory: Option<u64>,
    /// The protocol (see `hvo protocols`).
    #[arg(long, default_value = "linux-generic")]
    pub protocol: String,
    /// Override the protocol's split strategy: direct, bbm, nt, bbml2-noabort, af-cas.
    #[arg(long)]
    pub split: Option<String>,
    /// FEAT_BBM level: 0, 1, 2 or 2-noabort.
    #[arg(long, default_value = "0")]
    pub bbm: BbmLevel,
    /// Hardware Access flag management (FEAT_HAFDBS).
    #[arg(long)]
    pub hw_af: bool,
    /// Hardware dirty state management (FEAT_HAFDBS).
    #[arg(long)]
    pub hw_dbm: bool,
    /// CPUs.
    #[arg(long, default_value_t = 4)]
    pub cpus: usize,
}

fn size(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

impl MachineArgs {
    /// Resolves the protocol, with the split override.
    pub fn protocol(&self) -> Result<Protocol, String> {
        let mut p = Protocol::by_name(&self.protocol).ok_or_else(|| {
            format!(
                "unknown protocol {:?}: expected one of {}",
                self.protocol,
                PROTOCOLS
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        if let Some(s) = &self.split {
            p.split = SplitStrategy::ALL
                .into_iter()
                .find(|x| x.name() == s)
                .ok_or_else(|| {
                    format!(
                        "unknown split strategy {s:?}: expected one of {}",
                        SplitStrategy::ALL.map(|x| x.name()).join(", ")
                    )
                })?;
        }
        Ok(p)
    }

    /// Boots the kernel these arguments describe.
    pub fn boot(&self, hugepages: u64, p: &Protocol) -> Result<Kernel, String> {
        Kernel::boot(KernelConfig {
            granule: self.granule,
            memory: self.memory,
            huge_size: self.huge_size,
            hugepages,
            features: Features {
                bbm: self.bbm,
                hw_af: self.hw_af,
                hw_dbm: self.hw_dbm,
                ..Features::default()
            },
            ncpus: self.cpus,
            tails: if p.needs_identical_tails() {
                TailFormat::Order
            } else {
                TailFormat::HeadPointer
            },
        })
        .map_err(|e| e.to_string())
    }
}

/// `hvo simulate` options.
#[derive(Args, Clone, Debug)]
pub struct SimulateArgs {
    #[command(flatten)]
    machine: MachineArgs,
    /// Huge pages per batch (`hugetlb_vmemmap_optimize_folios` list).
    #[arg(long, default_value_t = 8192)]
    batch: usize,
    /// Restore (de-HVO) this many huge pages afterwards.
    #[arg(long, default_value_t = 0)]
    restore: u64,
    /// Print JSON instead of a report.
    #[arg(long)]
    json: bool,
    /// Print every violation, not only the first of each rule.
    #[arg(long, short)]
    verbose: bool,
    /// Run the rule checker on a second thread (the same findings; faster
    /// when a second core is free, slower when it is not, more memory).
    #[arg(long)]
    checker_thread: bool,
}

#[derive(Serialize)]
struct Meminfo {
    memory: u64,
    mem_free: u64,
    vmemmap: u64,
    hugetlb_optimized: usize,
}

/// The violations of one rule: how many, and the first.
#[derive(Serialize)]
pub(crate) struct RuleGroup {
    /// The rule's code.
    pub(crate) rule: String,
    /// How many times it was violated.
    pub(crate) count: u64,
    /// The first violation.
    pub(crate) first: Violation,
}

#[derive(Serialize)]
struct SimReport {
    protocol: String,
    split: String,
    granule: String,
    hugepagesz: u64,
    hugepages: u64,
    bbm: String,
    hw_af: bool,
    before: Meminfo,
    after_hvo: Meminfo,
    after_restore: Option<Meminfo>,
    vmemmap_freed: u64,
    table_pages_added: u64,
    costs: Costs,
    violations: Vec<RuleGroup>,
    seconds_hvo: f64,
    seconds_restore: f64,
}

fn meminfo(k: &Kernel) -> Meminfo {
    Meminfo {
        memory: k.machine.mem().size(),
        mem_free: k.free_bytes(),
        vmemmap: k.vmemmap_bytes_in_use(),
        hugetlb_optimized: k.optimized.iter().filter(|&&o| o).count(),
    }
}

pub(crate) fn groups(k: &Kernel) -> Vec<RuleGroup> {
    let Some(c) = k.machine.checker() else {
        return Vec::new();
    };
    let mut firsts: BTreeMap<vmsa::Rule, &Violation> = BTreeMap::new();
    for v in c.violations() {
        firsts.entry(v.rule).or_insert(v);
    }
    c.counts()
        .iter()
        .filter_map(|(rule, &count)| {
            firsts.get(rule).map(|first| RuleGroup {
                rule: rule.code(),
                count,
                first: (*first).clone(),
            })
        })
        .collect()
}

/// Violations kept per rule in a simulation (all are counted).
const KEEP_PER_RULE: u64 = 1000;

fn kib(b: u64) -> String {
    format!("{} kB", b / 1024)
}

/// Runs `hvo simulate`.
pub fn simulate(a: &SimulateArgs) -> ExitCode {
    no_transparent_huge_pages();
    let p = match a.machine.protocol() {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let mut k = match a.machine.boot(a.machine.hugepages, &p) {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    if !k.geo.hvo_applies() {
        return fail(&not_applicable(&k));
    }
    if let Some(c) = k.machine.checker_mut() {
        c.keep_per_rule(if a.verbose { u64::MAX } else { KEEP_PER_RULE });
    }
    let before = meminfo(&k);
    let n = a.machine.hugepages as usize;
    let bar = if a.json || n < 4096 {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(n as u64);
        b.set_style(
            ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} huge pages ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_message("HVO");
        b
    };
    let all: Vec<usize> = (0..n).collect();
    // Each phase is timed until the checker has observed its last
    // operation (on its own thread, with `--checker-thread`: the same
    // violations in the same order).
    let run = |k: &mut Kernel| {
        let t = Instant::now();
        for chunk in all.chunks(a.batch.max(1)) {
            k.optimize(&p, chunk, a.batch)?;
            bar.inc(chunk.len() as u64);
        }
        k.machine.sync_checker_thread();
        let seconds_hvo = t.elapsed().as_secs_f64();
        let after_hvo = meminfo(k);
        let table_pages_added = k.costs.table_pages;
        let t = Instant::now();
        let mut after_restore = None;
        if a.restore > 0 {
            let r: Vec<usize> = (0..(a.restore as usize).min(n)).collect();
            bar.set_position(0);
            bar.set_length(r.len() as u64);
            bar.set_message("de-HVO");
            for chunk in r.chunks(a.batch.max(1)) {
                k.restore(&p, chunk, a.batch)?;
                bar.inc(chunk.len() as u64);
            }
            after_restore = Some(meminfo(k));
        }
        k.machine.sync_checker_thread();
        let seconds_restore = t.elapsed().as_secs_f64();
        Ok::<_, mm::MmError>((
            seconds_hvo,
            after_hvo,
            table_pages_added,
            after_restore,
            seconds_restore,
        ))
    };
    let run = if a.checker_thread {
        k.with_checker_thread(run)
    } else {
        run(&mut k)
    };
    bar.finish_and_clear();
    let (seconds_hvo, after_hvo, table_pages_added, after_restore, seconds_restore) = match run {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    let vmemmap_freed = before.vmemmap - after_hvo.vmemmap;
    let report = SimReport {
        protocol: p.name.into(),
        split: p.split.name().into(),
        granule: a.machine.granule.to_string(),
        hugepagesz: a.machine.huge_size,
        hugepages: a.machine.hugepages,
        bbm: a.machine.bbm.to_string(),
        hw_af: a.machine.hw_af,
        before,
        after_hvo,
        after_restore,
        vmemmap_freed,
        table_pages_added,
        costs: k.costs.clone(),
        violations: groups(&k),
        seconds_hvo,
        seconds_restore,
    };
    if a.json {
        return match crate::print_json(&report) {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => code,
        };
    }
    let r = &report;
    println!(
        "protocol {} (split {}), {} granule, {} x {} huge pages, memory {}, FEAT_BBM {}, hardware AF {}",
        r.protocol,
        r.split,
        r.granule,
        r.hugepages,
        format_size(r.hugepagesz),
        format_size(r.before.memory),
        r.bbm,
        if r.hw_af { "on" } else { "off" }
    );
    println!();
    let mut t = Table::new(&["", "before", "after HVO", "after de-HVO"]);
    let col = |f: &dyn Fn(&Meminfo) -> String| -> Vec<String> {
        vec![
            f(&r.before),
            f(&r.after_hvo),
            r.after_restore.as_ref().map_or("-".into(), f),
        ]
    };
    let mut row = |name: &str, f: &dyn Fn(&Meminfo) -> String| {
        let mut v = vec![name.to_string()];
        v.extend(col(f));
        t.row(v);
    };
    row("MemFree", &|m| kib(m.mem_free));
    row("vmemmap", &|m| kib(m.vmemmap));
    row("HugeTLB optimized", &|m| m.hugetlb_optimized.to_string());
    print!("{}", t.render());
    println!(
        "\nvmemmap freed by HVO: {} ({}), page-table pages added: {}",
        format_size(r.vmemmap_freed),
        kib(r.vmemmap_freed),
        r.table_pages_added
    );
    let c = &r.costs;
    println!(
        "\ncosts: {} stores, {} CAS, {} DSB ISH, {} DSB ISHST, {} ISB, {} TLBI ({}), {} pauses, {} stop_machine, {} synchronize_rcu, {} copies, {} allocations ({} failed), {} frees ({} pages)",
        c.stores,
        c.cas,
        c.dsb_ish,
        c.dsb_ishst,
        c.isb,
        c.tlbis(),
        c.tlbi
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        c.pauses,
        c.stop_machines,
        c.rcu_syncs,
        c.copies,
        c.allocations,
        c.alloc_failures,
        c.frees,
        c.pages_freed
    );
    println!(
        "time: HVO {:.2} s, de-HVO {:.2} s",
        r.seconds_hvo, r.seconds_restore
    );
    if r.violations.is_empty() {
        println!(
            "\nrule verdict: compliant (no violation in {} checked operations)",
            k.machine.checker().map_or(0, |c| c.steps())
        );
    } else {
        let total: u64 = r.violations.iter().map(|g| g.count).sum();
        println!("\nrule verdict: {total} violations");
        for g in &r.violations {
            println!("  {} x{}: {}", g.rule, g.count, g.first);
        }
        if a.verbose {
            for v in k.machine.violations() {
                println!("    {v}");
            }
        }
    }
    ExitCode::SUCCESS
}

pub(crate) fn not_applicable(k: &Kernel) -> String {
    format!(
        "HVO does not apply to {} pages with the {} granule: their struct pages fill {} bytes, less than a page",
        format_size(k.geo.huge_size),
        k.geo.granule,
        k.geo.vmemmap_bytes
    )
}

pub(crate) fn fail(msg: &str) -> ExitCode {
    eprintln!("hvo: {msg}");
    ExitCode::from(2)
}

/// Runs `hvo protocols`.
pub fn protocols(json: bool) -> ExitCode {
    if json {
        return match crate::print_json(&PROTOCOLS.to_vec()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => code,
        };
    }
    let mut t = Table::new(&["protocol", "split", "what it does", "source"]);
    for p in PROTOCOLS {
        t.row(vec![
            p.name.into(),
            p.split.name().into(),
            p.summary.into(),
            p.source.into(),
        ]);
    }
    print!("{}", t.render());
    println!();
    let mut t = Table::new(&["split strategy", "compliant from FEAT_BBM", "note"]);
    for s in SplitStrategy::ALL {
        t.row(vec![
            s.name().into(),
            s.needs().to_string(),
            if s.relies_on_no_abort() {
                "relies on CPUs that never raise a TLB conflict abort (BBML2_NOABORT)".into()
            } else {
                String::new()
            },
        ]);
    }
    print!("{}", t.render());
    ExitCode::SUCCESS
}

/// `hvo bench` options.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Huge pages of 2M in the pool (524288 = 1 TiB).
    #[arg(long, default_value_t = 524_288)]
    hugepages: u64,
    /// The protocol.
    #[arg(long, default_value = "linux-generic")]
    protocol: String,
    /// FEAT_BBM level.
    #[arg(long, default_value = "0")]
    bbm: BbmLevel,
    /// Benchmark the explorer instead: the default `hvo verify` and the
    /// largest standard configuration, in unique states per second.
    #[arg(long)]
    pub explore: bool,
    /// Where the rule checker runs: `auto` (on a second thread when the
    /// machine has a second CPU), `on` or `off`. The findings are the same;
    /// the thread is faster when the second core is free, slower when
    /// another job takes it, and needs about 200 MiB more.
    #[arg(long, value_name = "auto|on|off", default_value = "auto")]
    checker_thread: String,
}

impl BenchArgs {
    /// Tells whether the checker runs on its own thread.
    ///
    /// # Errors
    ///
    /// Returns a message naming the flag when its value is not `auto`,
    /// `on` or `off`.
    fn threaded(&self) -> Result<bool, String> {
        match self.checker_thread.as_str() {
            "auto" => Ok(std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)),
            "on" => Ok(true),
            "off" => Ok(false),
            v => Err(format!(
                "--checker-thread: expected auto, on or off, found `{v}`"
            )),
        }
    }
}

/// Returns the peak resident set size of this process in bytes (VmHWM).
fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `PR_SET_THP_DISABLE` (Linux `include/uapi/linux/prctl.h`).
#[cfg(target_os = "linux")]
const PR_SET_THP_DISABLE: std::ffi::c_int = 41;

#[cfg(target_os = "linux")]
unsafe extern "C" {
    /// The C library's `prctl(2)`.
    fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
}

/// Turns transparent huge pages off for this process, as mimalloc's
/// `MIMALLOC_ALLOW_THP=0` does (mimalloc v3 `src/prim/unix/prim.c`); it
/// cannot be set from here through mimalloc's options, whose arena is
/// reserved and advised before `main`. The model grows to half a GiB in
/// small allocations: with THP each first touch of a 2 MiB region makes
/// the kernel zero all of it, and memory mimalloc purges is faulted back
/// and zeroed again. Measured on `hvo bench`: 0.5 to 1.4 s of system time
/// with THP, 0.2 to 0.3 s without, and 455 MiB peak RSS against 511 MiB.
/// A failure (an old kernel) only leaves THP on.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes one integer argument and only sets
    // a flag of the process (prctl(2)); no memory is passed.
    unsafe {
        prctl(
            PR_SET_THP_DISABLE,
            1 as std::ffi::c_ulong,
            0 as std::ffi::c_ulong,
            0 as std::ffi::c_ulong,
            0 as std::ffi::c_ulong,
        );
    }
}

/// Runs `hvo bench`: boots the pool, optimizes and restores all of it with
/// the rule checker on, and prints wall time and peak memory.
pub fn bench(a: &BenchArgs) -> ExitCode {
    let threaded = match a.threaded() {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    no_transparent_huge_pages();
    let m = MachineArgs {
        granule: Granule::K4,
        huge_size: 2 << 20,
        hugepages: a.hugepages,
        memory: None,
        protocol: a.protocol.clone(),
        split: None,
        bbm: a.bbm,
        hw_af: false,
        hw_dbm: false,
        cpus: 4,
    };
    let p = match m.protocol() {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let t0 = Instant::now();
    let mut k = match m.boot(a.hugepages, &p) {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    if let Some(c) = k.machine.checker_mut() {
        c.keep_per_rule(KEEP_PER_RULE);
    }
    let boot = t0.elapsed().as_secs_f64();
    let all: Vec<usize> = (0..a.hugepages as usize).collect();
    // Each phase is timed until the checker has observed its last
    // operation (on its own thread, with `--checker-thread`).
    let run = |k: &mut Kernel| {
        let t = Instant::now();
        k.optimize(&p, &all, 8192)?;
        k.machine.sync_checker_thread();
        let hvo = t.elapsed().as_secs_f64();
        let freed = k.vm_frames * k.geo.granule.page_size() - k.vmemmap_bytes_in_use();
        let t = Instant::now();
        k.restore(&p, &all, 8192)?;
        k.machine.sync_checker_thread();
        Ok::<_, mm::MmError>((hvo, freed, t.elapsed().as_secs_f64()))
    };
    let run = if threaded {
        k.with_checker_thread(run)
    } else {
        run(&mut k)
    };
    let (hvo, freed, restore) = match run {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    let ops = k.machine.checker().map_or(0, |c| c.steps());
    println!(
        "hvo bench: {} x 2M ({}) with {}, FEAT_BBM {}, checker on{}",
        a.hugepages,
        format_size(a.hugepages << 21),
        p.name,
        a.bbm,
        if threaded { " (its own thread)" } else { "" }
    );
    println!("  boot           {boot:8.2} s");
    println!(
        "  HVO            {hvo:8.2} s   ({} freed)",
        format_size(freed)
    );
    println!("  de-HVO         {restore:8.2} s");
    println!(
        "  HVO + de-HVO   {:8.2} s   ({ops} table operations checked, {:.1} M/s)",
        hvo + restore,
        ops as f64 / (hvo + restore) / 1e6
    );
    match peak_rss() {
        Some(b) => println!("  peak RSS       {:8} MiB", b >> 20),
        None => println!("  peak RSS       unknown (no /proc/self/status)"),
    }
    ExitCode::SUCCESS
}
