//! The herd7 export against the explorer: every line of
//! `tests/data/litmus-export.cases` names a protocol, a direction, one
//! workload and a variant of the program; the harness writes the program
//! as a kernel file (`hvo show --format seq`), checks it with the explorer
//! (`hvo check --json`, and `hvo verify --json` of the same scenario, which
//! must agree), exports the same file to herd7 (`hvo check
//! --emit litmus`, and for the program as-is also `hvo show --format
//! litmus`, which must write the same test), runs the test with `hvo
//! litmus` in both modes, and checks both verdicts against the line and,
//! where the line says they are comparable, against each other.

mod common;
use common::hvo;

use explore::{Direction, Limits, Mutant, Prepared, Setup, Verdict};
use rayon::prelude::*;
use serde_json::Value;
use vmsa::{BbmLevel, Granule};

/// The kernel the comparisons run on: the 16K granule and 32M huge pages,
/// where the vmemmap is mapped with pages (no block to split, so the
/// explorer's hazards are level-3 ones), FEAT_BBM 0.
const GEOMETRY: [&str; 6] = ["--granule", "16k", "--hugepagesz", "32M", "--levels", "0"];

/// One line of the data file.
struct Case {
    line: usize,
    protocol: String,
    direction: String,
    workload: String,
    variant: String,
    explorer: String,
    /// `hvo litmus`'s (SC, its default).
    litmus: String,
    /// `hvo litmus --relaxed`'s: `=` when it is the SC one.
    relaxed: String,
    compared: String,
}

fn cases() -> Vec<Case> {
    let text = include_str!("data/litmus-export.cases");
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.split('#').next().unwrap_or_default().trim();
        if l.is_empty() {
            continue;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f.len(), 8, "line {}: expected 8 columns: {l}", i + 1);
        out.push(Case {
            line: i + 1,
            protocol: f[0].into(),
            direction: f[1].into(),
            workload: f[2].into(),
            variant: f[3].into(),
            explorer: f[4].into(),
            litmus: f[5].into(),
            relaxed: f[6].into(),
            compared: f[7].into(),
        });
    }
    out
}

/// The explorer's verdict as the verdict corpus writes it: `safe`, a
/// hazard's slug, or `incomplete`.
fn explorer_slug(row: &Value) -> String {
    let run = row["runs"].as_array().and_then(|r| {
        r.iter()
            .find(|r| r["report"]["verdict"].get("Hazard").is_some())
    });
    let Some(run) = run else {
        return if row["safe"].as_bool() == Some(true) {
            "safe".into()
        } else {
            "incomplete".into()
        };
    };
    let kind = &run["report"]["verdict"]["Hazard"]["hazard"]["kind"];
    match kind.get("Fault").and_then(Value::as_str) {
        Some("Translation") => "translation-fault".into(),
        Some("Permission") => "permission-fault".into(),
        Some("AccessFlag") => "access-flag-fault".into(),
        Some("TlbConflict") => "tlb-conflict-abort".into(),
        Some(k) => format!("fault-{k}"),
        None => kind.as_str().unwrap_or("?").to_string(),
    }
}

/// The hazards the litmus test reaches (faults, and a use after free: a
/// reused page read or written), as `translation-fault+...`, or
/// `no-fault`; with the test's condition (reachable exactly when a fault
/// is).
fn litmus_result(file: &str, relaxed: bool) -> (String, bool) {
    let mut args = vec!["litmus", "--json", file];
    if relaxed {
        args.push("--relaxed");
    }
    let (code, out, err) = hvo(&args);
    assert_eq!(code, 0, "hvo litmus {file}: {err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let t = &v[0];
    assert_eq!(t["limit_hit"], Value::Bool(false), "{file}: state limit");
    let mut kinds = Vec::new();
    for s in t["states"].as_array().expect("states") {
        let s = s.as_str().unwrap_or_default();
        for (tag, slug) in [
            ("D-MMU:Translation", "translation-fault"),
            ("D-MMU:Permission", "permission-fault"),
            ("D-MMU:AccessFlag", "access-flag-fault"),
        ] {
            if s.contains(tag) && !kinds.contains(&slug) {
                kinds.push(slug);
            }
        }
        // A load of the poison a reused page holds, or the reader's 2
        // left in a reused page (the only pages the condition shows).
        // (P0's only register in the condition is the flag it sets when
        // it reuses the pages.)
        let atoms: Vec<&str> = s.split(';').map(str::trim).collect();
        let reused = atoms
            .iter()
            .any(|a| a.starts_with("0:X") && a.ends_with("=1"));
        let reuse = atoms.iter().any(|a| {
            (a.starts_with("1:X") && a.ends_with("=9"))
                || (reused && a.starts_with('[') && a.ends_with("]=2"))
        });
        if reuse && !kinds.contains(&"use-after-free") {
            kinds.push("use-after-free");
        }
    }
    kinds.sort_unstable();
    let faults = if kinds.is_empty() {
        "none".to_string()
    } else {
        kinds.join("+")
    };
    (faults, t["ok"].as_bool() == Some(true))
}

/// Returns the test from its `Variant=` line on: the part that does not
/// name the command that wrote it.
fn body(test: &str) -> &str {
    &test[test.find("Variant=").expect("a Variant= line")..]
}

/// The explorer's verdict, the exported test, and whether the program
/// pauses or stops the other CPUs.
type Sides = (String, String, bool);

/// Both sides through the command line: the program written by `hvo show
/// --format seq` (changed as the variant says), `hvo check` and `hvo
/// verify` for the explorer, `hvo check --emit litmus` and `hvo show
/// --format litmus` for the test.
fn through_cli(c: &Case, dir: &std::path::Path) -> Result<Sides, String> {
    let mut show = vec!["show", c.protocol.as_str()];
    show.extend(GEOMETRY);
    show.extend(["--workload", c.workload.as_str()]);
    match c.direction.as_str() {
        "hvo" => {}
        "de-hvo" => show.push("--restore"),
        d => return Err(format!("unknown direction {d}")),
    }
    match c.variant.as_str() {
        "as-is" | "no-pause" => {}
        "no-rcu" => show.push("--no-rcu"),
        "no-hw-af" => show.push("--no-hw-af"),
        v => return Err(format!("unknown variant {v}")),
    }
    let mut seq_args = show.clone();
    seq_args.extend(["--format", "seq"]);
    let (code, mut seq, err) = hvo(&seq_args);
    if code != 0 {
        return Err(format!("{seq_args:?}: {err}"));
    }
    let paused = seq.lines().any(|l| {
        matches!(
            l.trim(),
            "pause" | "resume" | "stop-machine" | "start-machine"
        )
    });
    if c.variant == "no-pause" {
        // The same program without pausing or stopping the other CPUs:
        // what the export keeps of it.
        if !paused {
            return Err("variant no-pause: the program pauses no CPU".into());
        }
        seq = seq
            .lines()
            .filter(|l| {
                !matches!(
                    l.trim(),
                    "pause" | "resume" | "stop-machine" | "start-machine"
                )
            })
            .map(|l| format!("{l}\n"))
            .collect();
    }
    let stem = format!(
        "{}-{}-{}-{}",
        c.protocol, c.direction, c.workload, c.variant
    );
    let seq_file = dir.join(format!("{stem}.seq"));
    std::fs::write(&seq_file, &seq).map_err(|e| e.to_string())?;
    let seq_path = seq_file.display().to_string();

    // The explorer (exit 1 when a changed program's verdict is not the
    // one its expect line states: the JSON is the result all the same).
    let (code, out, err) = hvo(&["check", &seq_path, "--json"]);
    if code == 2 {
        return Err(format!("hvo check {seq_path}: {err}"));
    }
    let rows: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    let explorer = explorer_slug(&rows[0]);
    if c.variant != "no-pause" {
        // The same scenario through `hvo verify`, as a user runs it.
        let mut verify = vec![
            "verify",
            "--protocol",
            c.protocol.as_str(),
            "--direction",
            c.direction.as_str(),
            "--granule",
            "16k",
            "--hugepagesz",
            "32M",
            "--bbm",
            "0",
            "--workload",
            c.workload.as_str(),
            "--json",
        ];
        match c.variant.as_str() {
            "no-rcu" => verify.push("--no-rcu"),
            "no-hw-af" => verify.push("--no-hw-af"),
            _ => {}
        }
        let (code, out, err) = hvo(&verify);
        if code == 2 {
            return Err(format!("{verify:?}: {err}"));
        }
        let rows: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        let verified = explorer_slug(&rows[0]);
        if verified != explorer {
            return Err(format!(
                "hvo verify finds {verified}, hvo check of the written file {explorer}"
            ));
        }
    }

    // The export of the same file, and of the protocol directly.
    let (code, test, err) = hvo(&["check", &seq_path, "--emit", "litmus"]);
    if code != 0 {
        return Err(format!("hvo check --emit litmus {seq_path}: {err}"));
    }
    if c.variant != "no-pause" {
        let mut lit_args = show.clone();
        lit_args.extend(["--format", "litmus"]);
        let (code, direct, err) = hvo(&lit_args);
        if code != 0 {
            return Err(format!("{lit_args:?}: {err}"));
        }
        if body(&direct) != body(&test) {
            return Err(format!(
                "`hvo show --format litmus` and `hvo check --emit litmus` write different tests:\n{direct}\n{test}"
            ));
        }
    }
    Ok((explorer, test, paused))
}

/// Both sides of a mutant (`no-tlbi@I`, `no-dsb@I`, `free-early@I`,
/// `merge-perm@I`: `explore::Mutant` at program index I) in process: the
/// explorer on the mutant program, and its export.
fn through_mutant(c: &Case) -> Result<Sides, String> {
    let (kind, at) = c
        .variant
        .split_once('@')
        .ok_or_else(|| format!("unknown variant {}", c.variant))?;
    let at: usize = at.parse().map_err(|e| format!("{}: {e}", c.variant))?;
    let mutant = match kind {
        "no-tlbi" => Mutant::RemoveTlbi(at),
        "no-dsb" => Mutant::RemoveDsb(at),
        "free-early" => Mutant::FreeBeforeFlush(at),
        "merge-perm" => Mutant::MergePermission(at),
        k => return Err(format!("unknown mutant {k}")),
    };
    let prep = Prepared::new(&setup(c)?).map_err(|e| e.to_string())?;
    let program = mutant
        .apply(&prep.program)
        .ok_or_else(|| format!("{mutant} does not apply"))?;
    let row = explore::verify_program(&prep, &program, &Limits::default(), false)
        .map_err(|e| e.to_string())?;
    let opts = seq::LitmusExport {
        name: format!("{}-{}-{kind}-{at}", c.protocol, c.direction),
        title: vec![format!("{} {}, {mutant}.", c.protocol, c.direction)],
    };
    let test = seq::emit_litmus(&prep, &program, &opts)?;
    let paused = program
        .instrs
        .iter()
        .any(|i| matches!(i, mm::Instr::PauseCpus | mm::Instr::StopMachine));
    Ok((slug(&row), test, paused))
}

/// The explorer's setup of a line: the 16K kernel of [`GEOMETRY`], hardware
/// AF on (`Setup::standard`), the line's workload.
fn setup(c: &Case) -> Result<Setup, String> {
    let p = mm::Protocol::by_name(&c.protocol).ok_or("unknown protocol")?;
    let mut s = Setup::standard(p, BbmLevel::Level0);
    s.direction = match c.direction.as_str() {
        "hvo" => Direction::Hvo,
        _ => Direction::Restore,
    };
    s.granule = Granule::K16;
    s.huge_size = 32 << 20;
    s.workloads = vec![c.workload.parse()?];
    Ok(s)
}

/// The verdict of a row as the verdict corpus writes it.
fn slug(row: &explore::Row) -> String {
    match row.verdict().0 {
        Verdict::Safe => "safe".into(),
        Verdict::Hazard { hazard, .. } => hazard.kind.slug().into(),
        Verdict::Incomplete { .. } => "incomplete".into(),
    }
}

/// Replaces every run of white space with one space (the comment is
/// wrapped).
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs one line; returns the line as found, or the reason it fails.
fn run(c: &Case, dir: &std::path::Path) -> Result<(), String> {
    let (explorer, test, paused) = if c.variant.contains('@') {
        through_mutant(c)?
    } else {
        through_cli(c, dir)?
    };
    let stem = format!(
        "{}-{}-{}-{}",
        c.protocol, c.direction, c.workload, c.variant
    );
    let lit_file = dir.join(format!("{stem}.litmus"));
    std::fs::write(&lit_file, &test).map_err(|e| e.to_string())?;
    let lit_path = lit_file.display().to_string();
    let (litmus, ok) = litmus_result(&lit_path, false);
    let (relaxed, relaxed_ok) = litmus_result(&lit_path, true);
    if relaxed_ok != (relaxed != "none") {
        return Err(format!(
            "relaxed: the condition is {} but the hazards reached are {relaxed}",
            if relaxed_ok {
                "reachable"
            } else {
                "unreachable"
            }
        ));
    }
    let relaxed = if relaxed == litmus {
        "=".to_string()
    } else {
        relaxed
    };
    if ok != (litmus != "none") {
        return Err(format!(
            "the condition is {} but the faults reached are {litmus}",
            if ok { "reachable" } else { "unreachable" }
        ));
    }
    let found = format!(
        "{} {} {} {} {explorer} {litmus} {relaxed} {}",
        c.protocol, c.direction, c.workload, c.variant, c.compared
    );
    if explorer != c.explorer || litmus != c.litmus || relaxed != c.relaxed {
        return Err(format!("found: {found}"));
    }

    // What the line says of the two verdicts, checked.
    let explorer_fault = explorer.ends_with("-fault") || explorer == "use-after-free";
    let test = flat(&test);
    match c.compared.as_str() {
        "equal" => {
            let agree = match explorer.as_str() {
                "safe" => litmus == "none",
                e if explorer_fault => litmus.split('+').any(|k| k == e),
                _ => false,
            };
            if !agree {
                return Err(format!(
                    "compared equal, but the explorer finds {explorer} and the litmus test {litmus}"
                ));
            }
        }
        "tlb-conflict-abort-left-out" => {
            // herd7 has no TLB conflict aborts: the explorer's shortest
            // hazard is one and the test says it leaves them out. The
            // explorer reports only its first hazard, so whether it would
            // find the test's faults (or none) as well is not known: the
            // two verdicts are not compared, each is only held to its
            // column.
            if explorer != "tlb-conflict-abort" || !test.contains("TLB conflict aborts") {
                return Err(format!(
                    "{}: expected the explorer's conflict abort and the comment saying it is left out",
                    c.compared
                ));
            }
        }
        slug @ ("uninitialized-left-out" | "final-state-left-out") => {
            // Hazards of contents and of the final state, which the test
            // does not model (its comment says so): the explorer's
            // shortest hazard is one of them, so whether it would find
            // the test's hazards (or none) is not known: not compared.
            let (kind, said) = match slug {
                "uninitialized-left-out" => ("uninitialized", "no uninitialized"),
                _ => ("final-state", "the final state"),
            };
            if explorer != kind || !test.contains(said) {
                return Err(format!(
                    "{slug}: expected the explorer's {kind} and the comment saying it is left out"
                ));
            }
        }
        "pause-left-out" => {
            // herd7 cannot pause a thread: the program pauses the other
            // CPUs, the test says it leaves that out, and its reader
            // faults where the explorer's paused one cannot; the
            // `no-pause` line of the same scenario compares the rest.
            if !paused
                || !test.contains("pausing or stopping the other CPUs")
                || explorer != "safe"
                || litmus == "none"
            {
                return Err(format!(
                    "{}: expected a paused program, the comment, a safe explorer and a faulting test",
                    c.compared
                ));
            }
        }
        other => return Err(format!("unknown comparison {other}")),
    }
    Ok(())
}

#[test]
fn every_protocol_exported_agrees_with_the_explorer() {
    let dir = std::env::temp_dir().join(format!("hvo-litmus-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cases = cases();
    // The lines run at once (each spawns hvo or explores in process);
    // failures are listed in the file's order.
    let mut failures: Vec<String> = cases
        .par_iter()
        .filter_map(|c| run(c, &dir).err().map(|e| format!("line {}: {e}", c.line)))
        .collect();
    // Every protocol and direction is covered by the file.
    for p in mm::protocol::PROTOCOLS {
        for d in ["hvo", "de-hvo"] {
            if !cases
                .iter()
                .any(|c| c.protocol == p.name && c.direction == d)
            {
                failures.push(format!("no line for {} {d}", p.name));
            }
        }
    }
    // Every mutant (one TLBI or DSB removed, a free moved before its
    // flush, a permission change merged) of every protocol, direction and
    // workload has its line.
    for p in mm::protocol::PROTOCOLS {
        for direction in ["hvo", "de-hvo"] {
            for workload in ["straddle", "pfn-walker"] {
                let mut c = Case {
                    line: 0,
                    protocol: p.name.into(),
                    direction: direction.into(),
                    workload: workload.into(),
                    variant: String::new(),
                    explorer: "?".into(),
                    litmus: "?".into(),
                    relaxed: "?".into(),
                    compared: "equal".into(),
                };
                let prep = Prepared::new(&setup(&c).expect("setup")).expect("prepared");
                for m in Mutant::all(&prep.program) {
                    c.variant = match m {
                        Mutant::RemoveTlbi(i) => format!("no-tlbi@{i}"),
                        Mutant::RemoveDsb(i) => format!("no-dsb@{i}"),
                        Mutant::FreeBeforeFlush(i) => format!("free-early@{i}"),
                        Mutant::MergePermission(i) => format!("merge-perm@{i}"),
                        Mutant::RemoveRcu(i) => format!("no-rcu@{i}"),
                    };
                    let listed = cases.iter().any(|l| {
                        (&l.protocol, &l.direction, &l.workload, &l.variant)
                            == (&c.protocol, &c.direction, &c.workload, &c.variant)
                    });
                    if !listed {
                        failures.push(format!(
                            "no line for the mutant ({})",
                            run(&c, &dir).err().unwrap_or_default()
                        ));
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The exported text is the same on every run.
#[test]
fn the_export_is_deterministic() {
    for p in ["af-cas", "pause-cpus"] {
        for dir in [None, Some("--restore")] {
            let mut args = vec!["show", p, "--format", "litmus", "--granule", "16k"];
            args.extend(["--hugepagesz", "32M"]);
            args.extend(dir);
            let runs: Vec<String> = (0..3)
                .map(|_| {
                    let (code, out, err) = hvo(&args);
                    assert_eq!(code, 0, "{args:?}: {err}");
                    out
                })
                .collect();
            assert!(runs.iter().all(|r| *r == runs[0]), "{args:?}");
        }
    }
}
