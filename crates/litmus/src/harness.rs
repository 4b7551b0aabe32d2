//! The conformance harness: run a directory of herd7 tests and compare
//! with the catalogue's verdicts and herd7's results.
//!
//! Two layouts are read: a directory with `results.tsv` (columns file,
//! name, condition, expected, herd7_observation, positive, negative,
//! bbm_warning, herd7_seconds; files under `tests/`), and a directory of
//! `X.litmus` files each with herd7's output in `X.litmus.expected`. A
//! directory with neither is searched one level down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::ast::{Prop, Quant, Test};
use crate::exec::{Options, Verdict, run, verdict_of};
use crate::states::{StatesDiff, diff, parse_expected};
use crate::{LitmusError, parse};

/// herd7's reference for one test.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Reference {
    /// The catalogue's verdict (`kinds.txt`), if known.
    pub expected: Option<Verdict>,
    /// herd7's observation (Always, Sometimes, Never), if it finished.
    pub herd7_observation: Option<String>,
    /// Whether herd7 raised `Warning-BBM-expected`, if known.
    pub herd7_bbm: Option<bool>,
    /// herd7's time as recorded (e.g. `0.05`, `>300`).
    pub herd7_seconds: String,
    /// herd7's final states as printed, from `NAME.litmus.expected` beside
    /// the test (None without that file).
    #[serde(skip)]
    pub herd7_states: Option<Vec<String>>,
}

/// Our result on one test.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status")]
pub enum Ours {
    /// The test ran.
    Ran {
        /// Never, Sometimes, Always.
        observation: String,
        /// The verdict.
        verdict: Verdict,
        /// Whether we found a descriptor update lacking break-before-make.
        bbm: bool,
        /// States explored.
        states: u64,
        /// The state limit stopped the search.
        limit_hit: bool,
        /// Seconds.
        seconds: f64,
        /// The final states as herd7 prints them ([`crate::states`]).
        #[serde(skip)]
        finals: Vec<String>,
    },
    /// The test uses a construct the model does not handle.
    Unsupported {
        /// The construct.
        reason: String,
        /// The full message, with the position.
        message: String,
    },
    /// The file is malformed (should not happen on the catalogue).
    Error {
        /// The message.
        message: String,
    },
}

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The file, relative to the directory.
    pub file: String,
    /// The test's name.
    pub name: String,
    /// herd7's reference.
    pub reference: Reference,
    /// herd7's verdict derived from its observation.
    pub herd7_verdict: Option<Verdict>,
    /// Our result (sequentially consistent mode).
    pub ours: Ours,
    /// Our result in relaxed mode: run where the SC verdict disagrees
    /// with the reference, and on every test when relaxed figures are
    /// asked for.
    pub relaxed: Option<Ours>,
    /// The class of a verdict disagreement of the SC mode (None when it
    /// agrees or did not run).
    pub verdict_class: Option<String>,
    /// The class of a BBM-warning disagreement.
    pub bbm_class: Option<String>,
    /// How the SC mode's final states differ from herd7's (None without
    /// herd7's states or when the test did not run; empty when equal).
    pub states: Option<StatesDiff>,
    /// How the relaxed mode's final states differ from herd7's.
    pub relaxed_states: Option<StatesDiff>,
}

/// The summary of a conformance run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Tests found.
    pub tests: usize,
    /// Tests run.
    pub ran: usize,
    /// Verdict agreement with the catalogue (agree, compared).
    pub verdict_vs_catalogue: (usize, usize),
    /// Verdict agreement with herd7's own run (agree, compared).
    pub verdict_vs_herd7: (usize, usize),
    /// BBM-warning agreement with herd7 (agree, compared).
    pub bbm_vs_herd7: (usize, usize),
    /// Final-state agreement with herd7's output (equal sets, tests with
    /// herd7's states: a test we do not run counts as differing).
    pub states_vs_herd7: (usize, usize),
    /// The tests whose SC final states differ from herd7's (or that did
    /// not run).
    pub states_differ: Vec<String>,
    /// herd7's recorded times summed (`herd7_seconds`), over the tests
    /// where it is a number, with their count and our SC time summed over
    /// the same tests.
    pub herd7_seconds: (f64, usize, f64),
    /// The tests herd7 did not finish, with their recorded bound summed
    /// (`>300` counts 300).
    pub herd7_unfinished: (usize, f64),
    /// Unsupported tests by reason.
    pub unsupported: BTreeMap<String, usize>,
    /// Malformed files.
    pub errors: usize,
    /// Verdict disagreements by class.
    pub verdict_classes: BTreeMap<String, usize>,
    /// BBM disagreements by class.
    pub bbm_classes: BTreeMap<String, usize>,
    /// Tests that hit the state limit.
    pub limit_hit: Vec<String>,
    /// Sum of our per-test times.
    pub seconds: f64,
    /// The slowest test and its time.
    pub slowest: (String, f64),
    /// The SC disagreements the relaxed mode does not explain, with their
    /// class.
    pub model_disagreements: Vec<(String, String)>,
    /// Relaxed-mode figures, when it ran on every test.
    pub relaxed: Option<RelaxedSummary>,
}

/// The relaxed mode's own figures over the whole directory.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RelaxedSummary {
    /// Tests run.
    pub ran: usize,
    /// Verdict agreement with the catalogue (agree, compared).
    pub verdict_vs_catalogue: (usize, usize),
    /// Verdict agreement with herd7's own run (agree, compared).
    pub verdict_vs_herd7: (usize, usize),
    /// BBM-warning agreement with herd7 (agree, compared).
    pub bbm_vs_herd7: (usize, usize),
    /// Final-state agreement with herd7's output (equal sets, tests with
    /// herd7's states: a test that did not run counts as differing).
    pub states_vs_herd7: (usize, usize),
    /// The tests whose relaxed final states differ from herd7's.
    pub states_differ: Vec<String>,
    /// Our relaxed time summed over the tests herd7 timed.
    pub seconds_herd7_timed: f64,
    /// Tests where the relaxed mode has a final state herd7 (or, where
    /// herd7 did not finish, the catalogue) rules out: the approximation
    /// over-allows there.
    pub more_permissive: Vec<String>,
    /// Tests that hit the state limit.
    pub limit_hit: Vec<String>,
    /// Sum of the per-test times.
    pub seconds: f64,
}

/// Counts one run's agreement, as (agree, compared), with the catalogue's
/// verdict, herd7's verdict and herd7's BBM warning, where the reference
/// has them.
fn tally(row: &Row, verdict: Verdict, bbm: bool, [cat, herd7, warn]: [&mut (usize, usize); 3]) {
    let count = |fig: &mut (usize, usize), agree: Option<bool>| {
        if let Some(a) = agree {
            fig.1 += 1;
            fig.0 += usize::from(a);
        }
    };
    count(cat, row.reference.expected.map(|e| e == verdict));
    count(herd7, row.herd7_verdict.map(|h| h == verdict));
    count(warn, row.reference.herd7_bbm.map(|b| b == bbm));
}

/// A report: the rows and the summary.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// One row per test, sorted by file.
    pub rows: Vec<Row>,
    /// The summary.
    pub summary: Summary,
}

fn io(path: &Path, source: std::io::Error) -> LitmusError {
    LitmusError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn parse_verdict(s: &str) -> Option<Verdict> {
    match s {
        "Allowed" => Some(Verdict::Allowed),
        "Forbidden" => Some(Verdict::Forbidden),
        "Required" => Some(Verdict::Required),
        _ => None,
    }
}

/// Reads `X.litmus.expected` beside test `X.litmus`, if there is one.
fn read_expected(test: &Path) -> Result<Option<crate::states::Expected>, LitmusError> {
    let mut name = test.as_os_str().to_owned();
    name.push(".expected");
    let exp = PathBuf::from(name);
    let Ok(text) = std::fs::read_to_string(&exp) else {
        return Ok(None);
    };
    parse_expected(&text)
        .map(Some)
        .map_err(|(line, msg)| LitmusError::Syntax {
            file: exp.display().to_string(),
            line,
            col: 1,
            msg,
        })
}

/// Finds the tests of `dir` with their references.
///
/// # Errors
///
/// Returns [`LitmusError::Io`] when the directory or an index cannot be
/// read, [`LitmusError::Syntax`] for a malformed `results.tsv` line.
pub fn collect(dir: &Path) -> Result<Vec<(String, PathBuf, Reference)>, LitmusError> {
    let mut out = Vec::new();
    let tsv = dir.join("results.tsv");
    if tsv.is_file() {
        let text = std::fs::read_to_string(&tsv).map_err(|e| io(&tsv, e))?;
        for (i, line) in text.lines().enumerate().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 9 {
                return Err(LitmusError::Syntax {
                    file: tsv.display().to_string(),
                    line: i + 1,
                    col: 1,
                    msg: "expected 9 tab-separated columns".into(),
                });
            }
            let r = Reference {
                expected: parse_verdict(f[3]),
                herd7_observation: ["Always", "Sometimes", "Never"]
                    .contains(&f[4])
                    .then(|| f[4].to_string()),
                herd7_bbm: match f[7] {
                    "yes" => Some(true),
                    "no" => Some(false),
                    _ => None,
                },
                herd7_seconds: f[8].to_string(),
                herd7_states: None,
            };
            let path = dir.join("tests").join(f[0]);
            let r = Reference {
                herd7_states: read_expected(&path)?.map(|e| e.states),
                ..r
            };
            out.push((f[0].to_string(), path, r));
        }
        return Ok(out);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut any = false;
    for p in &entries {
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".litmus") {
            continue;
        }
        any = true;
        let mut r = Reference::default();
        if let Some(e) = read_expected(p)? {
            r.herd7_bbm = Some(e.bbm());
            r.herd7_observation = e.observation.clone();
            r.herd7_seconds = "-".into();
            r.herd7_states = Some(e.states);
        }
        out.push((name.to_string(), p.clone(), r));
    }
    if !any {
        for p in &entries {
            if p.is_dir() {
                let sub = collect(p)?;
                let prefix = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                out.extend(
                    sub.into_iter()
                        .map(|(f, path, r)| (format!("{prefix}/{f}"), path, r)),
                );
            }
        }
    }
    Ok(out)
}

/// Names the model feature a test exercises, for a disagreement the
/// relaxed mode does not explain: the first of TLB maintenance, hardware
/// AF/dirty updates, fault handling (a handler or a fault atom),
/// translation ordering (descriptor writes and walks); a test with none
/// of these and no page-table aspect at all (no descriptor address, value
/// or initial descriptor) is "ordinary accesses only": the relaxed mode's
/// approximation falls short there, not the translation model.
pub fn feature(t: &Test) -> &'static str {
    use crate::ast::{Instr, Loc, Obs, Val};
    fn pt_atom(p: &Prop) -> bool {
        match p {
            Prop::True => false,
            Prop::Fault(_) => true,
            Prop::Eq(o, v) => {
                matches!(o, Obs::Mem(Loc::Pte(_)) | Obs::Fault(..))
                    || matches!(v, Val::Desc(_) | Val::PteAddr(_))
            }
            Prop::Not(q) => pt_atom(q),
            Prop::And(v) | Prop::Or(v) => v.iter().any(pt_atom),
        }
    }
    fn fault_atom(p: &Prop) -> bool {
        match p {
            Prop::True | Prop::Eq(..) => false,
            Prop::Fault(_) => true,
            Prop::Not(q) => fault_atom(q),
            Prop::And(v) | Prop::Or(v) => v.iter().any(fault_atom),
        }
    }
    if t.threads
        .iter()
        .any(|th| th.code.iter().any(|i| matches!(i, Instr::Tlbi { .. })))
    {
        "TLB maintenance"
    } else if t.tthm.ha != 0 || t.tthm.hd != 0 {
        "hardware AF/dirty updates"
    } else if t.threads.iter().any(|th| th.handler.is_some()) || fault_atom(&t.prop) {
        "fault handling"
    } else if pt_atom(&t.prop)
        || t.init_regs
            .iter()
            .any(|r| matches!(r.2, Val::Desc(_) | Val::PteAddr(_)))
        || t.init_mem.iter().any(|m| matches!(m.0, Loc::Pte(_)))
    {
        "translation ordering"
    } else {
        "ordinary accesses only"
    }
}

/// Classifies a verdict disagreement of the SC mode semantically: `ours`
/// is the SC verdict, `theirs` the reference's, `relaxed` the relaxed
/// mode's (None if it did not run), `explicit` the relaxed mode's without
/// early translations ([`Options::early_translations`] off; None if it did
/// not run).
///
/// - If the relaxed mode gives the reference's verdict, the disagreement
///   is shown to come from ordering: "needs relaxed ordering of ordinary
///   accesses" when the relaxed mode gives it without early translations
///   too, else "needs relaxed ordering of translations" (a walk or
///   dirty-bit update performed ahead of its access's turn: herd7 orders
///   a translation read before few events, `local-hw-reqs` in
///   `aarch64hwreqs.cat`).
/// - Otherwise it is a model disagreement: "model disagreement (FEATURE):
///   stricter than herd7" when the SC mode lacks a final state the
///   reference has (the relaxed mode then lacks it too), "more permissive
///   than herd7" when it has one the reference rules out, with the
///   [`feature`] the test exercises; on a test with no page-table aspect
///   (feature "ordinary accesses only") the translation model is not
///   involved and the class says the relaxed approximation falls short.
pub fn classify(
    t: &Test,
    ours: Verdict,
    theirs: Verdict,
    relaxed: Option<Verdict>,
    explicit: Option<Verdict>,
) -> String {
    if relaxed == Some(theirs) {
        return if explicit == Some(theirs) {
            "needs relaxed ordering of ordinary accesses".into()
        } else {
            "needs relaxed ordering of translations (early walks or dirty-bit updates)".into()
        };
    }
    let stricter = matches!(
        (ours, theirs),
        (Verdict::Forbidden, Verdict::Allowed | Verdict::Required)
            | (Verdict::Required, Verdict::Allowed)
    );
    let how = if stricter {
        "stricter than herd7"
    } else {
        "more permissive than herd7"
    };
    match feature(t) {
        "ordinary accesses only" => {
            format!("relaxed approximation too strict (ordinary accesses only): {how}")
        }
        f => format!("model disagreement ({f}): {how}"),
    }
}

/// Runs one file and returns our result (with the parsed test when it
/// parsed).
pub fn run_file(path: &Path, label: &str, opts: &Options) -> (Ours, Option<Test>) {
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            return (
                Ours::Error {
                    message: io(path, e).to_string(),
                },
                None,
            );
        }
    };
    let t = match parse(label, &src) {
        Ok(t) => t,
        Err(e) => return (failure(e), None),
    };
    match run(&t, opts) {
        Ok(o) => (
            Ours::Ran {
                observation: o.observation().into(),
                verdict: o.verdict(t.quant),
                bbm: o.bbm_warning,
                states: o.states,
                limit_hit: o.limit_hit,
                seconds: o.seconds,
                finals: o.herd7_states(&t),
            },
            Some(t),
        ),
        Err(e) => (failure(e), Some(t)),
    }
}

fn failure(e: LitmusError) -> Ours {
    match &e {
        LitmusError::Unsupported { what, .. } | LitmusError::Runtime { what, .. } => {
            let reason = what.split(" of ").next().unwrap_or(what).to_string();
            Ours::Unsupported {
                reason,
                message: e.to_string(),
            }
        }
        _ => Ours::Error {
            message: e.to_string(),
        },
    }
}

/// Runs every test of `dir` (in parallel) and compares.
///
/// # Errors
///
/// As [`collect`].
pub fn conformance(dir: &Path, opts: &Options) -> Result<Report, LitmusError> {
    let tests = collect(dir)?;
    let sc = Options {
        relaxed: false,
        ..*opts
    };
    let rx = Options {
        relaxed: true,
        ..*opts
    };
    let rx_explicit = Options {
        early_translations: false,
        ..rx
    };
    let mut rows: Vec<Row> = tests
        .par_iter()
        .map(|(file, path, r)| {
            let (ours, t) = run_file(path, file, &sc);
            let name = t.as_ref().map_or_else(|| file.clone(), |t| t.name.clone());
            let quant = t.as_ref().map_or(Quant::Exists, |t| t.quant);
            let herd7_verdict = r.herd7_observation.as_deref().map(|o| verdict_of(o, quant));
            let mut verdict_class = None;
            let mut bbm_class = None;
            let mut relaxed = None;
            if let (Ours::Ran { verdict, bbm, .. }, Some(t)) = (&ours, &t) {
                let theirs = r.expected.or(herd7_verdict);
                let disagrees = theirs.is_some_and(|v| v != *verdict)
                    || herd7_verdict.is_some_and(|v| v != *verdict);
                if opts.relaxed || disagrees {
                    relaxed = Some(run_file(path, file, &rx).0);
                }
                if let Some(theirs) = theirs
                    && theirs != *verdict
                {
                    let rv = match &relaxed {
                        Some(Ours::Ran { verdict, .. }) => Some(*verdict),
                        _ => None,
                    };
                    // Only where the relaxed mode explains it: does it
                    // without its early translations too?
                    let ev = if rv == Some(theirs) {
                        match run_file(path, file, &rx_explicit).0 {
                            Ours::Ran { verdict, .. } => Some(verdict),
                            _ => None,
                        }
                    } else {
                        None
                    };
                    verdict_class = Some(classify(t, *verdict, theirs, rv, ev));
                }
                if let Some(hb) = r.herd7_bbm
                    && hb != *bbm
                {
                    bbm_class = Some(if *bbm {
                        "we warn, herd7 does not".to_string()
                    } else {
                        "herd7 warns, we do not".to_string()
                    });
                }
            }
            let states_of = |o: &Ours| match (o, &r.herd7_states) {
                (Ours::Ran { finals, .. }, Some(theirs)) => Some(diff(finals, theirs)),
                _ => None,
            };
            Row {
                file: file.clone(),
                name,
                reference: r.clone(),
                herd7_verdict,
                states: states_of(&ours),
                relaxed_states: relaxed.as_ref().and_then(states_of),
                ours,
                relaxed,
                verdict_class,
                bbm_class,
            }
        })
        .collect();
    rows.sort_by(|a, b| a.file.cmp(&b.file));
    let mut s = Summary {
        tests: rows.len(),
        relaxed: opts.relaxed.then(RelaxedSummary::default),
        ..Summary::default()
    };
    for row in &rows {
        let herd7_time = row.reference.herd7_seconds.parse::<f64>().ok();
        if let Some(b) = row.reference.herd7_seconds.strip_prefix('>') {
            s.herd7_unfinished.0 += 1;
            s.herd7_unfinished.1 += b.parse::<f64>().unwrap_or(0.0);
        }
        // Over every test with herd7's states: one we did not run
        // (unsupported) counts as differing.
        if row.reference.herd7_states.is_some() {
            s.states_vs_herd7.1 += 1;
            if row.states.as_ref().is_some_and(StatesDiff::is_empty) {
                s.states_vs_herd7.0 += 1;
            } else {
                s.states_differ.push(row.file.clone());
            }
            if let Some(x) = s.relaxed.as_mut() {
                x.states_vs_herd7.1 += 1;
                if row
                    .relaxed_states
                    .as_ref()
                    .is_some_and(StatesDiff::is_empty)
                {
                    x.states_vs_herd7.0 += 1;
                } else {
                    x.states_differ.push(row.file.clone());
                }
            }
        }
        if let Some(h) = herd7_time {
            s.herd7_seconds.0 += h;
            s.herd7_seconds.1 += 1;
            if let Ours::Ran { seconds, .. } = &row.ours {
                s.herd7_seconds.2 += seconds;
            }
        }
        match &row.ours {
            Ours::Ran {
                verdict,
                bbm,
                limit_hit,
                seconds,
                ..
            } => {
                s.ran += 1;
                s.seconds += seconds;
                if *seconds > s.slowest.1 {
                    s.slowest = (row.file.clone(), *seconds);
                }
                if *limit_hit {
                    s.limit_hit.push(row.file.clone());
                }
                tally(
                    row,
                    *verdict,
                    *bbm,
                    [
                        &mut s.verdict_vs_catalogue,
                        &mut s.verdict_vs_herd7,
                        &mut s.bbm_vs_herd7,
                    ],
                );
                if let Some(c) = &row.verdict_class {
                    *s.verdict_classes.entry(c.clone()).or_default() += 1;
                    if !c.starts_with("needs") {
                        s.model_disagreements.push((row.file.clone(), c.clone()));
                    }
                }
                if let Some(c) = &row.bbm_class {
                    *s.bbm_classes.entry(c.clone()).or_default() += 1;
                }
            }
            Ours::Unsupported { reason, .. } => {
                *s.unsupported.entry(reason.clone()).or_default() += 1
            }
            Ours::Error { .. } => s.errors += 1,
        }
        if let (
            Some(x),
            Some(Ours::Ran {
                verdict,
                bbm,
                limit_hit,
                seconds,
                ..
            }),
        ) = (s.relaxed.as_mut(), &row.relaxed)
        {
            x.ran += 1;
            x.seconds += seconds;
            if herd7_time.is_some() {
                x.seconds_herd7_timed += seconds;
            }
            if *limit_hit {
                x.limit_hit.push(row.file.clone());
            }
            tally(
                row,
                *verdict,
                *bbm,
                [
                    &mut x.verdict_vs_catalogue,
                    &mut x.verdict_vs_herd7,
                    &mut x.bbm_vs_herd7,
                ],
            );
            // A state the reference rules out: it says Forbidden (no
            // positive state) or Required (no negative one) and we differ.
            if let Some(theirs) = row.herd7_verdict.or(row.reference.expected)
                && theirs != Verdict::Allowed
                && theirs != *verdict
            {
                x.more_permissive.push(row.file.clone());
            }
        }
    }
    Ok(Report { rows, summary: s })
}

/// Renders the summary as the lines of the committed baseline.
pub fn summary_text(s: &Summary) -> String {
    let pair = |out: &mut String, key: &str, (agree, compared): (usize, usize)| {
        out.push_str(&format!("{key} {agree} / {compared}\n"));
    };
    let mut out = String::new();
    out.push_str(&format!("tests {}\n", s.tests));
    out.push_str(&format!("ran {}\n", s.ran));
    pair(&mut out, "verdict_vs_catalogue", s.verdict_vs_catalogue);
    pair(&mut out, "verdict_vs_herd7", s.verdict_vs_herd7);
    pair(&mut out, "bbm_vs_herd7", s.bbm_vs_herd7);
    pair(&mut out, "states_vs_herd7", s.states_vs_herd7);
    out.push_str(&format!("errors {}\n", s.errors));
    for (r, n) in &s.unsupported {
        out.push_str(&format!("unsupported {n} {r}\n"));
    }
    for (c, n) in &s.verdict_classes {
        out.push_str(&format!("verdict_disagreement {n} {c}\n"));
    }
    for (c, n) in &s.bbm_classes {
        out.push_str(&format!("bbm_disagreement {n} {c}\n"));
    }
    for f in &s.limit_hit {
        out.push_str(&format!("state_limit {f}\n"));
    }
    for (f, c) in &s.model_disagreements {
        out.push_str(&format!("model_disagreement {f} {c}\n"));
    }
    if let Some(x) = &s.relaxed {
        out.push_str(&format!("relaxed_ran {}\n", x.ran));
        pair(
            &mut out,
            "relaxed_verdict_vs_catalogue",
            x.verdict_vs_catalogue,
        );
        pair(&mut out, "relaxed_verdict_vs_herd7", x.verdict_vs_herd7);
        pair(&mut out, "relaxed_bbm_vs_herd7", x.bbm_vs_herd7);
        pair(&mut out, "relaxed_states_vs_herd7", x.states_vs_herd7);
        for f in &x.states_differ {
            out.push_str(&format!("relaxed_states_differ {f}\n"));
        }
        out.push_str(&format!(
            "relaxed_more_permissive {}\n",
            x.more_permissive.len()
        ));
        for f in &x.more_permissive {
            out.push_str(&format!("relaxed_more_permissive_test {f}\n"));
        }
        for f in &x.limit_hit {
            out.push_str(&format!("relaxed_state_limit {f}\n"));
        }
    }
    out
}
