//! `hvo litmus` and `hvo conformance`: herd7 AArch64 VMSA litmus tests on
//! the model.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use litmus::exec::{Model, Options};
use litmus::harness::{Ours, conformance, summary_text};
use serde::Serialize;

/// Arguments of `hvo litmus`.
#[derive(Args)]
pub struct LitmusArgs {
    /// The litmus files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print JSON instead of herd7-style text.
    #[arg(long)]
    json: bool,
    /// The most states explored per test.
    #[arg(long, default_value_t = 500_000)]
    max_states: u64,
    /// Use the relaxed mode (out-of-order commits in preserved program
    /// order) instead of the sequentially consistent one.
    #[arg(long)]
    relaxed: bool,
    /// The model that runs the tests: `executor` (the litmus executor) or
    /// `explorer` (the explorer that gives `hvo verify`'s verdicts, the
    /// test mapped onto 4K tables; sequentially consistent only).
    #[arg(long, default_value = "executor")]
    model: Model,
}

/// Arguments of `hvo conformance`.
#[derive(Args)]
pub struct ConformanceArgs {
    /// A directory with `results.tsv` and `tests/`, or with `.litmus` and
    /// `.litmus.expected` files, or a parent of such directories.
    dir: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The most states explored per test.
    #[arg(long, default_value_t = 500_000)]
    max_states: u64,
    /// Also run the relaxed mode on every test and print its figures (it
    /// always runs where the SC verdict disagrees, to classify).
    #[arg(long)]
    relaxed: bool,
    /// The model that runs the tests (as `hvo litmus --model`).
    #[arg(long, default_value = "executor")]
    model: Model,
    /// Instead: run every test on both models (sequentially consistent)
    /// and list the tests on which they differ, with herd7's verdict, who
    /// herd7 sides with and the feature the test exercises.
    #[arg(long, conflicts_with_all = ["relaxed", "model"])]
    differential: bool,
}

#[derive(Serialize)]
struct TestJson {
    file: String,
    name: String,
    kind: &'static str,
    states: Vec<String>,
    ok: bool,
    positive: usize,
    negative: usize,
    condition: &'static str,
    observation: &'static str,
    bbm_warning: bool,
    explored: u64,
    limit_hit: bool,
    /// Some execution was cut at herd7's loop unrolling bound.
    unroll_cut: bool,
    seconds: f64,
}

/// Runs `hvo litmus`.
pub fn litmus(a: &LitmusArgs) -> ExitCode {
    let opts = Options {
        max_states: a.max_states,
        relaxed: a.relaxed,
        model: a.model,
        ..Options::default()
    };
    let mut out = Vec::new();
    let mut status = ExitCode::SUCCESS;
    for f in &a.files {
        let label = f.display().to_string();
        let src = match std::fs::read_to_string(f) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hvo: {label}: {e}");
                return ExitCode::from(2);
            }
        };
        let t = match litmus::parse(&label, &src) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("hvo: {e}");
                status = ExitCode::from(2);
                continue;
            }
        };
        let o = match litmus::run(&t, &opts) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("hvo: {e}");
                status = ExitCode::from(2);
                continue;
            }
        };
        let kind = match t.quant {
            litmus::ast::Quant::Exists => "Allowed",
            litmus::ast::Quant::NotExists => "Forbidden",
            litmus::ast::Quant::Forall => "Required",
        };
        // As herd7 prints them: `litmus::states`.
        let states = o.herd7_states(&t);
        let (pos, neg) = o.counts();
        let j = TestJson {
            file: label,
            name: t.name.clone(),
            kind,
            states,
            ok: o.ok(t.quant),
            positive: pos,
            negative: neg,
            condition: t.quant.as_str(),
            observation: o.observation(),
            bbm_warning: o.bbm_warning,
            explored: o.states,
            limit_hit: o.limit_hit,
            unroll_cut: o.unroll_cut,
            seconds: o.seconds,
        };
        if a.json {
            out.push(j);
        } else {
            println!("Test {} {}", j.name, j.kind);
            println!("States {}", j.states.len());
            for s in &j.states {
                println!("{s}");
            }
            println!("{}", if j.ok { "Ok" } else { "No" });
            println!("Witnesses");
            println!("Positive: {} Negative: {}", pos, neg);
            if j.bbm_warning {
                println!("Flag Warning-BBM-expected");
            }
            if j.limit_hit {
                println!(
                    "Flag state-limit-hit ({} states explored; raise --max-states)",
                    j.explored
                );
            }
            if j.unroll_cut {
                println!(
                    "Warning: loop unrolling limit reached (herd7's -unroll {}: a backward \
                     branch on a value read from memory is taken at most {} times per target; \
                     longer executions are cut)",
                    litmus::exec::UNROLL,
                    litmus::exec::UNROLL
                );
            }
            println!(
                "Condition {} (final states counted, not executions)",
                j.condition
            );
            println!("Observation {} {} {} {}", j.name, j.observation, pos, neg);
            println!("Time {} {:.3}s ({} states)", j.name, j.seconds, j.explored);
            println!();
        }
    }
    if a.json
        && let Err(code) = crate::print_json(&out)
    {
        return code;
    }
    status
}

/// Runs `hvo conformance`.
pub fn conformance_cmd(a: &ConformanceArgs) -> ExitCode {
    let opts = Options {
        max_states: a.max_states,
        relaxed: a.relaxed,
        model: a.model,
        ..Options::default()
    };
    if a.differential {
        return differential_cmd(a, &opts);
    }
    let start = std::time::Instant::now();
    let r = match conformance(&a.dir, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hvo: {e}");
            return ExitCode::from(2);
        }
    };
    let wall = start.elapsed().as_secs_f64();
    if a.json {
        return match crate::print_json(&r) {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => code,
        };
    }
    let opt = |v: Option<litmus::Verdict>| v.map_or("?", |v| v.as_str());
    println!(
        "{:<70} {:<10} {:<10} {:<10} {:<10} {:<5} {:<5} {:>9} {:>8}  class",
        "test", "ours", "relaxed", "expected", "herd7", "bbm", "herd7", "states", "time"
    );
    for row in &r.rows {
        let hb = row
            .reference
            .herd7_bbm
            .map_or("?", |b| if b { "yes" } else { "no" });
        let rx = match &row.relaxed {
            Some(Ours::Ran { verdict, .. }) => verdict.as_str(),
            Some(_) => "unsupp.",
            None => "-",
        };
        match &row.ours {
            Ours::Ran {
                verdict,
                bbm,
                states,
                limit_hit,
                seconds,
                ..
            } => {
                let mut class = row.verdict_class.clone().unwrap_or_default();
                if let Some(b) = &row.bbm_class {
                    if !class.is_empty() {
                        class.push_str("; ");
                    }
                    class.push_str("BBM: ");
                    class.push_str(b);
                }
                if *limit_hit {
                    class.push_str(" [state limit]");
                }
                println!(
                    "{:<70} {:<10} {:<10} {:<10} {:<10} {:<5} {:<5} {:>9} {:>7.3}s  {}",
                    row.file,
                    verdict.as_str(),
                    rx,
                    opt(row.reference.expected),
                    opt(row.herd7_verdict),
                    if *bbm { "yes" } else { "no" },
                    hb,
                    states,
                    seconds,
                    class
                );
            }
            Ours::Unsupported { message, .. } => {
                println!(
                    "{:<70} {:<10} {:<10} {:<10} {:<10} {:<5} {:<5} {:>9} {:>8}  {}",
                    row.file,
                    "unsupp.",
                    rx,
                    opt(row.reference.expected),
                    opt(row.herd7_verdict),
                    "-",
                    hb,
                    "-",
                    "-",
                    message
                );
            }
            Ours::Error { message } => {
                println!("{:<70} error: {message}", row.file);
            }
        }
    }
    // The final states that differ from herd7's: the relaxed mode's when
    // it ran on every test, else the SC mode's.
    let relaxed_all = r.summary.relaxed.is_some();
    let mut header = false;
    for row in &r.rows {
        let d = if relaxed_all {
            &row.relaxed_states
        } else {
            &row.states
        };
        let not_run = d.is_none() && row.reference.herd7_states.is_some();
        if d.as_ref().is_none_or(|d| d.is_empty()) && !not_run {
            continue;
        }
        if !header {
            println!();
            println!(
                "final states that differ from herd7's ({} mode): missing = herd7's, extra = ours",
                if relaxed_all { "relaxed" } else { "SC" }
            );
            header = true;
        }
        let Some(d) = d else {
            let why = match &row.ours {
                Ours::Unsupported { message, .. } | Ours::Error { message } => message.as_str(),
                Ours::Ran { .. } => "not run",
            };
            println!("{} (did not run: {why})", row.file);
            continue;
        };
        println!(
            "{} (missing {}, extra {})",
            row.file,
            d.missing.len(),
            d.extra.len()
        );
        for m in &d.missing {
            println!("  missing {m}");
        }
        for e in &d.extra {
            println!("  extra   {e}");
        }
    }
    println!();
    print!("{}", summary_text(&r.summary));
    println!(
        "time {:.2}s wall, {:.2}s summed over tests (slowest {} {:.2}s)",
        wall, r.summary.seconds, r.summary.slowest.0, r.summary.slowest.1
    );
    let (h, n, ours) = r.summary.herd7_seconds;
    if n > 0 {
        let (un, ub) = r.summary.herd7_unfinished;
        let rx = r.summary.relaxed.as_ref().map_or(String::new(), |x| {
            format!(", {:.2}s in relaxed mode", x.seconds_herd7_timed)
        });
        println!(
            "time herd7 {h:.2}s summed over the {n} tests it timed (results.tsv herd7_seconds; \
             {un} more unfinished, over {ub:.0}s), ours {ours:.2}s in SC mode{rx} on the same tests"
        );
    }
    if let Some(x) = &r.summary.relaxed {
        println!(
            "time {:.2}s summed over tests in SC mode, {:.2}s in relaxed mode",
            r.summary.seconds, x.seconds
        );
    }
    ExitCode::SUCCESS
}

/// Runs `hvo conformance --differential`.
fn differential_cmd(a: &ConformanceArgs, opts: &Options) -> ExitCode {
    let diffs = match litmus::differential::differential(&a.dir, opts) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("hvo: {e}");
            return ExitCode::from(2);
        }
    };
    if a.json {
        return match crate::print_json(&diffs) {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => code,
        };
    }
    for d in &diffs {
        println!("{}", d.line());
    }
    println!();
    for (k, n) in litmus::differential::tally(&diffs) {
        println!("tally {n} {k}");
    }
    println!("differences {}", diffs.len());
    ExitCode::SUCCESS
}
