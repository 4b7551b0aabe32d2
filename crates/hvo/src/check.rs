//! `hvo check FILE...`: runs sequence files and compares their verdicts
//! with the ones they expect. Kernel files give the same rows as `hvo
//! verify` (rules and explorer, with counterexamples); machine files the
//! rule checker's verdict per case.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use seq::{CaseResult, CheckRow, SeqFile};
use serde::Serialize;

use crate::table::Table;
use crate::verify::{
    BbmView, COLUMNS, RowJson, bbm_notes, cells, counterexample, herd7_pairs_cell, row_json,
    row_view, rules_cell,
};

#[derive(Serialize)]
struct CaseJson<'a> {
    kind: &'static str,
    file: String,
    case: String,
    bbm: String,
    expected: Vec<String>,
    found: Vec<String>,
    verdict: String,
    matches_expectation: bool,
    steps: u64,
    violations: Vec<vmsa::Violation>,
    herd7_bbm: MachineHerd7<'a>,
}

/// herd7's break-before-make flag of a machine case in `--json`.
#[derive(Serialize)]
struct MachineHerd7<'a> {
    warning: bool,
    differs_from_rules: bool,
    pairs: &'a [vmsa::herd_bbm::Pair],
}

#[derive(Serialize)]
struct KernelJson<'a> {
    kind: &'static str,
    file: &'a str,
    case: &'a str,
    expected_rules: &'a BTreeSet<String>,
    expected_concurrent: &'a str,
    rules_as_expected: bool,
    concurrent_as_expected: bool,
    matches_expectation: bool,
    /// The built-in protocol the kernel was booted for (its struct page
    /// format; for de-HVO, the one that optimized the huge page): the
    /// file's `kernel` line, not the program checked.
    booted_for: &'a str,
    #[serde(flatten)]
    row: RowJson<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum AnyJson<'a> {
    Kernel(KernelJson<'a>),
    Machine(CaseJson<'a>),
}

/// The results of every file: kernel rows and machine cases.
#[derive(Default)]
pub struct Checked {
    /// Kernel files' rows (one per case and FEAT_BBM level).
    pub kernel: Vec<CheckRow>,
    /// Machine files' cases.
    pub machine: Vec<(String, CaseResult)>,
}

/// Loads and runs every file.
///
/// # Errors
///
/// Returns the first error, rendered for the terminal.
pub fn run_files(files: &[PathBuf]) -> Result<Checked, String> {
    let mut parsed = Vec::new();
    for f in files {
        parsed.push(seq::load(f).map_err(|e| e.render())?);
    }
    let mut out = Checked::default();
    for f in &parsed {
        match f {
            SeqFile::Kernel(k) => {
                let rows = k.check().map_err(|error| {
                    seq::Error::Located {
                        error,
                        text: k.source.clone(),
                    }
                    .render()
                })?;
                out.kernel.extend(rows);
            }
            SeqFile::Machine(m) => {
                let results = m.run().map_err(|e| e.to_string())?;
                out.machine
                    .extend(results.into_iter().map(|r| (m.file.clone(), r)));
            }
        }
    }
    Ok(out)
}

/// Runs `hvo check FILE --emit litmus [--case NAME]`: writes the case's
/// program (at the file's first FEAT_BBM level: herd7 has none) as a herd7
/// litmus test; exits 2 with the reason when it cannot.
pub fn emit(files: &[PathBuf], format: &str, case: Option<&str>) -> ExitCode {
    match emit_text(files, format, case) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hvo: {e}");
            ExitCode::from(2)
        }
    }
}

fn emit_text(files: &[PathBuf], format: &str, case: Option<&str>) -> Result<String, String> {
    if format != "litmus" {
        return Err(format!("--emit {format}: expected litmus"));
    }
    let [file] = files else {
        return Err(format!(
            "--emit litmus writes one test: give one kernel file, not {}",
            files.len()
        ));
    };
    let k = match seq::load(file).map_err(|e| e.render())? {
        SeqFile::Kernel(k) => k,
        SeqFile::Machine(m) => {
            return Err(format!(
                "{}: --emit litmus applies to kernel files (a `kernel` line); this is a machine file",
                m.file
            ));
        }
    };
    let names: Vec<&str> = k.cases.iter().map(|c| c.name.as_str()).collect();
    let index = match case {
        Some(n) => names
            .iter()
            .position(|c| *c == n)
            .ok_or_else(|| format!("{}: no case `{n}`; its cases: {}", k.file, names.join(", ")))?,
        None if names.len() == 1 => 0,
        None => {
            return Err(format!(
                "{}: {} cases; choose one with --case ({})",
                k.file,
                names.len(),
                names.join(", ")
            ));
        }
    };
    let bbm = k.levels.first().copied().unwrap_or_default();
    let (prep, programs) = k.prepare(bbm).map_err(|error| {
        seq::Error::Located {
            error,
            text: k.source.clone(),
        }
        .render()
    })?;
    let c = &k.cases[index];
    let stem = Path::new(&k.file)
        .file_stem()
        .map_or("test".to_string(), |s| s.to_string_lossy().into_owned());
    let opts = seq::LitmusExport {
        name: format!("{stem}-{}", c.name),
        title: vec![
            format!(
                "Case `{}` of {} (line {}), {}.",
                c.name,
                short(&k.file),
                c.line,
                k.direction.name()
            ),
            format!("Written by `hvo check {} --emit litmus`.", short(&k.file)),
        ],
    };
    seq::emit_litmus(&prep, &programs[index], &opts)
        .map_err(|e| format!("{}:{}: case `{}`: {e}", k.file, c.line, c.name))
}

fn short(file: &str) -> String {
    Path::new(file)
        .file_name()
        .map_or(file.to_string(), |n| n.to_string_lossy().into_owned())
}

/// Names a kernel row: its file (without the directory) and case, as the
/// HTML report labels it.
fn label(r: &CheckRow) -> String {
    format!("{} {}", short(&r.file), r.case)
}

/// Returns the break-before-make view of a machine case.
fn machine_view<'a>(file: &str, r: &'a CaseResult) -> BbmView<'a> {
    BbmView {
        label: format!("{} case {}", short(file), r.name),
        bbm: r.bbm.to_string(),
        rules: machine_verdict(r),
        violations: r.violations.iter().map(|v| v.rule).collect(),
        pairs: &r.herd7_bbm,
    }
}

fn machine_verdict(r: &CaseResult) -> String {
    let found = r.found();
    if found.is_empty() {
        "compliant".into()
    } else {
        found.into_iter().collect::<Vec<_>>().join(", ")
    }
}

/// Returns the expected verdicts of a kernel row, with whether they held.
fn expected_cell(r: &CheckRow) -> String {
    format!(
        "{}: rules {}, concurrent {}",
        if r.passed() { "as expected" } else { "DIFFERS" },
        expected_rules(r),
        r.expected_concurrent
    )
}

/// Returns the rules a kernel row expects: `compliant` or their codes.
fn expected_rules(r: &CheckRow) -> String {
    if r.expected_rules.is_empty() {
        "compliant".to_string()
    } else {
        r.expected_rules
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Writes the HTML report of the kernel rows (machine cases have no
/// exploration; they are counted in the configuration lines).
fn write_html(path: &Path, files: &[PathBuf], checked: &Checked) -> Result<(), String> {
    let rows: Vec<explore::Row> = checked.kernel.iter().map(|r| r.row.clone()).collect();
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let passed = checked.kernel.iter().filter(|r| r.passed()).count();
    let page = crate::html::Page {
        title: format!("hvo check {}", names.join(" ")),
        meta: vec![
            ("files".into(), names.join(", ")),
            (
                "kernel cases".into(),
                format!(
                    "{} (one row per case and FEAT_BBM level), {passed} as expected",
                    rows.len()
                ),
            ),
            (
                "machine cases".into(),
                format!(
                    "{} (rule checker only; listed in the terminal output)",
                    checked.machine.len()
                ),
            ),
        ],
        rows: &rows,
        extra: Some((
            "expected".into(),
            checked.kernel.iter().map(expected_cell).collect(),
        )),
        labels: Some(checked.kernel.iter().map(label).collect()),
    };
    std::fs::write(path, crate::html::render(&page))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Runs `hvo check`.
pub fn run(files: &[PathBuf], json: bool, verbose: bool, html: Option<&Path>) -> ExitCode {
    let checked = match run_files(files) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hvo: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = html
        && let Err(e) = write_html(path, files, &checked)
    {
        eprintln!("hvo: {e}");
        return ExitCode::from(2);
    }
    let total = checked.kernel.len() + checked.machine.len();
    let mismatches = checked.kernel.iter().filter(|r| !r.passed()).count()
        + checked.machine.iter().filter(|(_, r)| !r.passed()).count();
    if json {
        let mut out: Vec<AnyJson> = Vec::new();
        for r in &checked.kernel {
            out.push(AnyJson::Kernel(KernelJson {
                kind: "kernel",
                file: &r.file,
                case: &r.case,
                expected_rules: &r.expected_rules,
                expected_concurrent: &r.expected_concurrent,
                rules_as_expected: r.rules_ok,
                concurrent_as_expected: r.concurrent_ok,
                matches_expectation: r.passed(),
                booted_for: r.row.setup.protocol.name,
                row: {
                    // The program checked is the file's case, not the
                    // protocol the kernel was booted for.
                    let mut row = row_json(&r.row);
                    row.protocol = label(r);
                    row
                },
            }));
        }
        for (file, r) in &checked.machine {
            out.push(AnyJson::Machine(CaseJson {
                kind: "machine",
                file: file.clone(),
                case: r.name.clone(),
                bbm: r.bbm.to_string(),
                expected: r.expect.iter().cloned().collect(),
                found: r.found().into_iter().collect(),
                verdict: machine_verdict(r),
                matches_expectation: r.passed(),
                steps: r.steps,
                violations: r.violations.clone(),
                herd7_bbm: MachineHerd7 {
                    warning: !r.herd7_bbm.is_empty(),
                    differs_from_rules: machine_view(file, r).differs(),
                    pairs: &r.herd7_bbm,
                },
            }));
        }
        if let Err(code) = crate::print_json(&out) {
            return code;
        }
    } else {
        print!("{}", render(&checked, verbose));
        println!(
            "\n{total} cases, {} as expected, {mismatches} not.",
            total - mismatches
        );
    }
    if mismatches > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn render(c: &Checked, verbose: bool) -> String {
    let mut out = String::new();
    if !c.kernel.is_empty() {
        let mut columns = vec!["file", "case"];
        columns.extend(&COLUMNS[1..]);
        columns.push("expected");
        let mut t = Table::new(&columns);
        for r in &c.kernel {
            let mut row = vec![short(&r.file), r.case.clone()];
            row.extend(cells(&r.row).into_iter().skip(1));
            row.push(if r.passed() { "yes" } else { "NO" }.into());
            t.row(row);
        }
        out.push_str(&t.render());
        for r in &c.kernel {
            if !r.passed() {
                let rules = expected_rules(r);
                out.push_str(&format!(
                    "\n{} case {} at FEAT_BBM {}: expected rules {rules}, concurrent {}; found rules {}, concurrent {}\n",
                    r.file,
                    r.case,
                    r.row.setup.features.bbm,
                    r.expected_concurrent,
                    rules_cell(&r.row),
                    seq::kernel::concurrent_of(&r.row)
                ));
            }
        }
        let views: Vec<BbmView> = c
            .kernel
            .iter()
            .map(|r| row_view(format!("{} case {}", short(&r.file), r.case), &r.row))
            .collect();
        out.push_str(&bbm_notes(&views));
        for r in &c.kernel {
            out.push_str(&counterexample(
                &format!("{} case {}", short(&r.file), r.case),
                &r.row,
            ));
        }
    }
    if !c.machine.is_empty() {
        if !c.kernel.is_empty() {
            out.push('\n');
        }
        let mut t = Table::new(&[
            "file",
            "case",
            "FEAT_BBM",
            "ops",
            "rule verdict",
            "herd7-bbm",
            "expected",
        ]);
        for (file, r) in &c.machine {
            t.row(vec![
                short(file),
                r.name.clone(),
                r.bbm.to_string(),
                r.steps.to_string(),
                machine_verdict(r),
                herd7_pairs_cell(r.herd7_bbm.len()),
                if r.passed() {
                    "yes".into()
                } else {
                    "NO".into()
                },
            ]);
        }
        out.push_str(&t.render());
        let views: Vec<BbmView> = c.machine.iter().map(|(f, r)| machine_view(f, r)).collect();
        out.push_str(&bbm_notes(&views));
        for (file, r) in &c.machine {
            if r.violations.is_empty() {
                continue;
            }
            out.push_str(&format!("\n{file} case {}:\n", r.name));
            let mut shown = BTreeSet::new();
            for v in &r.violations {
                if verbose || shown.insert(v.rule) {
                    out.push_str(&format!("  {v}\n"));
                }
            }
            let hidden = r.violations.len() - shown.len().min(r.violations.len());
            if !verbose && hidden > 0 {
                out.push_str(&format!("  ... and {hidden} more (use --verbose)\n"));
            }
        }
    }
    out
}
