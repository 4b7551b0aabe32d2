//! The `hvo` command line: verdicts on live vmemmap remapping sequences for
//! arm64.

mod check;
mod html;
mod litmus;
mod progress;
mod show;
mod simulate;
mod table;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;
use vmsa::descriptor::describe;
use vmsa::{Descriptor, Granule, Rule};

use crate::table::Table;

/// The explorer allocates and frees millions of small vectors; mimalloc
/// does that several times faster than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hvo",
    version,
    about = "HugeTLB Vmemmap Optimization on arm64: which ways of remapping a live vmemmap follow the Arm ARM's rules and are safe while other CPUs run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every protocol against the Arm ARM's rules and explore it
    /// against concurrent CPUs: one table of verdicts and costs, then the
    /// shortest counterexample of each failure.
    Verify(verify::VerifyArgs),
    /// Check sequence files (`.seq`) you wrote: kernel files through the
    /// rule checker and the explorer (as `verify`), machine files through
    /// the rule checker; exits 1 when a verdict differs from the file's
    /// `expect` line, 2 on bad input.
    Check {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Print every violation, not only the first of each rule.
        #[arg(long, short)]
        verbose: bool,
        /// Also write a self-contained HTML report (the table and a
        /// timeline per counterexample) to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Instead of checking, write the kernel file's case as `litmus`:
        /// the level-3 part of its program as a herd7 AArch64 VMSA litmus
        /// test (one kernel file; `--case` when it has several cases).
        #[arg(long, value_name = "FORMAT")]
        emit: Option<String>,
        /// With `--emit`: the case to write.
        #[arg(long, value_name = "NAME")]
        case: Option<String>,
    },
    /// Simulate a whole arm64 machine: boot, build the vmemmap, allocate the
    /// hugetlb pool, optimize it in batches (and restore part of it) with
    /// the rule checker on every descriptor update.
    Simulate(simulate::SimulateArgs),
    /// Benchmark: optimize and restore a 2M pool (1 TiB by default) with
    /// the rule checker on; prints wall time and peak RSS.
    Bench(simulate::BenchArgs),
    /// Print the program a protocol runs for one huge page: the one
    /// `verify` explores.
    Show(show::ShowArgs),
    /// List the protocols and split strategies, with their sources.
    Protocols {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the rules the checker enforces, with their Arm ARM IDs.
    Rules {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run herd7 AArch64 VMSA litmus tests on the model; prints herd7-style
    /// results.
    Litmus(litmus::LitmusArgs),
    /// Run a directory of herd7 tests and compare with herd7's verdicts and
    /// BBM warnings.
    Conformance(litmus::ConformanceArgs),
    /// Decode a descriptor value as found at a level of a walk.
    Decode {
        /// The 64-bit descriptor, e.g. 0x0060000040001703.
        value: String,
        /// The translation granule: 4k, 16k or 64k.
        #[arg(long, default_value = "4k")]
        granule: Granule,
        /// The level of the table it sits in (0..3).
        #[arg(long, default_value_t = 3)]
        level: u8,
    },
}

/// Returns `v` as pretty-printed JSON, or a message saying why it cannot
/// be written (every `--json` output goes through here: a failure is
/// reported, never printed as nothing).
///
/// # Errors
///
/// Returns the message of serde_json's error.
pub(crate) fn json_text<T: Serialize + ?Sized>(v: &T) -> Result<String, String> {
    serde_json::to_string_pretty(v).map_err(|e| format!("cannot write the JSON output: {e}"))
}

/// Prints `v` as JSON; on failure says why on stderr and returns exit
/// code 2.
pub(crate) fn print_json<T: Serialize + ?Sized>(v: &T) -> Result<(), ExitCode> {
    match json_text(v) {
        Ok(s) => {
            println!("{s}");
            Ok(())
        }
        Err(e) => {
            eprintln!("hvo: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// Restores the default action of SIGPIPE, which the Rust runtime ignores:
/// with it ignored, `hvo verify | head` makes `println!` panic on the closed
/// pipe; with the default, the process ends quietly, as `cat` does.
#[cfg(unix)]
fn quiet_on_closed_pipe() {
    unsafe extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    /// POSIX's SIGPIPE number on Linux and the BSDs; `SIG_DFL` is 0.
    const SIGPIPE: i32 = 13;
    // SAFETY: signal(2) with SIG_DFL installs no handler; it runs before
    // any other thread exists.
    unsafe {
        signal(SIGPIPE, 0);
    }
}

#[cfg(not(unix))]
fn quiet_on_closed_pipe() {}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    match cli.command {
        Command::Verify(a) => verify::run(&a),
        Command::Litmus(a) => litmus::litmus(&a),
        Command::Conformance(a) => litmus::conformance_cmd(&a),
        Command::Check {
            files,
            json,
            verbose,
            html,
            emit: Some(format),
            case,
        } => {
            if json || verbose || html.is_some() {
                eprintln!(
                    "hvo: --emit writes a test instead of checking: --json, --verbose and --html do not apply"
                );
                return ExitCode::from(2);
            }
            check::emit(&files, &format, case.as_deref())
        }
        Command::Check {
            files,
            json,
            verbose,
            html,
            emit: None,
            case,
        } => {
            if case.is_some() {
                eprintln!("hvo: --case applies to --emit only");
                return ExitCode::from(2);
            }
            check::run(&files, json, verbose, html.as_deref())
        }
        Command::Simulate(a) => simulate::simulate(&a),
        Command::Show(a) => show::show(&a),
        Command::Bench(a) if a.explore => verify::bench(),
        Command::Bench(a) => simulate::bench(&a),
        Command::Protocols { json } => simulate::protocols(json),
        Command::Rules { json } => {
            if json {
                #[derive(Serialize)]
                struct R {
                    code: String,
                    id: &'static str,
                    clause: &'static str,
                    summary: &'static str,
                    source: &'static str,
                }
                let v: Vec<R> = Rule::ALL
                    .iter()
                    .map(|r| R {
                        code: r.code(),
                        id: r.id(),
                        clause: r.clause(),
                        summary: r.summary(),
                        source: r.source(),
                    })
                    .collect();
                if let Err(code) = print_json(&v) {
                    return code;
                }
            } else {
                let mut t = Table::new(&["rule", "what it forbids"]);
                for r in Rule::ALL {
                    t.row(vec![r.code(), r.summary().to_string()]);
                }
                print!("{}", t.render());
                println!(
                    "\nR_* are Arm ARM (DDI0487) rule IDs; HVO_FREE names the page-reuse rules the\nArm ARM states through R_RVJDB and R_FFWJK. `hvo rules --json` gives sources."
                );
            }
            ExitCode::SUCCESS
        }
        Command::Decode {
            value,
            granule,
            level,
        } => {
            let v = value.trim().replace('_', "");
            let parsed = match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => v.parse(),
            };
            let Ok(raw) = parsed else {
                eprintln!(
                    "hvo: cannot parse descriptor {value:?}: expected a 64-bit number such as 0x0060000040001703"
                );
                return ExitCode::from(2);
            };
            if level > 3 || level < granule.start_level() {
                eprintln!(
                    "hvo: level {level} does not exist with the {granule} granule (levels {}..3)",
                    granule.start_level()
                );
                return ExitCode::from(2);
            }
            let e = Descriptor(raw).decode(granule, level);
            println!("{}", describe(&e));
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// A value serde_json cannot write (a map whose keys are not strings)
    /// gives a message naming the failure, not an empty output.
    #[test]
    fn a_json_failure_is_reported() {
        let mut m = BTreeMap::new();
        m.insert((1, 2), 3);
        assert_eq!(
            super::json_text(&m),
            Err("cannot write the JSON output: key must be a string".to_string())
        );
        assert_eq!(super::json_text(&[1]), Ok("[\n  1\n]".to_string()));
    }
}
