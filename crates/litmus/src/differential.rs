//! The differential run: every test of a directory on the litmus executor
//! and on the explorer (both sequentially consistent), test by test, and
//! each difference with what herd7 says, so that each is explained before
//! the executor goes (a difference where the executor agrees with herd7 is
//! a bug, or a missing feature, of the explorer).

use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::LitmusError;
use crate::exec::{Model, Options, Verdict, verdict_of};
use crate::harness::{Ours, collect, feature, run_file};
use crate::states::diff;

/// Who herd7 sides with where the two models differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Right {
    /// herd7 agrees with the executor: the explorer lacks something.
    Executor,
    /// herd7 agrees with the explorer.
    Explorer,
    /// herd7 agrees with neither, or did not finish.
    Neither,
}

/// One test on which the two models differ.
#[derive(Clone, Debug, Serialize)]
pub struct Difference {
    /// The file, relative to the directory.
    pub file: String,
    /// What differs: `verdict`, `states` (same verdict, other final
    /// states), `bbm` (herd7's flag), or `unsupported` (the explorer does
    /// not run the test).
    pub what: &'static str,
    /// The executor's verdict, if it ran.
    pub executor: Option<Verdict>,
    /// The explorer's verdict, if it ran.
    pub explorer: Option<Verdict>,
    /// herd7's verdict, if it finished.
    pub herd7: Option<Verdict>,
    /// Who herd7 sides with.
    pub right: Right,
    /// The feature of the model the test exercises ([`feature`]), or why
    /// the explorer does not run it.
    pub cause: String,
}

impl Difference {
    /// Returns the difference as one line: file, what, the verdicts,
    /// who is right, the cause.
    pub fn line(&self) -> String {
        let v = |v: Option<Verdict>| v.map_or("-", Verdict::as_str);
        format!(
            "differ {} {} executor={} explorer={} herd7={} right={:?} cause={}",
            self.file,
            self.what,
            v(self.executor),
            v(self.explorer),
            v(self.herd7),
            self.right,
            self.cause
        )
    }
}

/// Runs every test of `dir` on both models (sequentially consistent,
/// `opts.max_states` each) and returns the tests on which they differ,
/// sorted by file.
///
/// # Errors
///
/// As [`collect`].
pub fn differential(dir: &Path, opts: &Options) -> Result<Vec<Difference>, LitmusError> {
    let tests = collect(dir)?;
    let on = |model| Options {
        model,
        relaxed: false,
        ..*opts
    };
    let mut out: Vec<Difference> = tests
        .par_iter()
        .filter_map(|(file, path, r)| {
            let (old, t) = run_file(path, file, &on(Model::Executor));
            let (new, _) = run_file(path, file, &on(Model::Explorer));
            let t = t?;
            let herd7 = r
                .herd7_observation
                .as_deref()
                .map(|o| verdict_of(o, t.quant))
                .or(r.expected);
            let d = |what, executor, explorer, right, cause: String| Difference {
                file: file.clone(),
                what,
                executor,
                explorer,
                herd7,
                right,
                cause,
            };
            match (&old, &new) {
                (
                    Ours::Ran {
                        verdict: ov,
                        bbm: ob,
                        finals: of,
                        ..
                    },
                    Ours::Ran {
                        verdict: nv,
                        bbm: nb,
                        finals: nf,
                        ..
                    },
                ) => {
                    let right = |old_ok: bool, new_ok: bool| match (old_ok, new_ok) {
                        (true, false) => Right::Executor,
                        (false, true) => Right::Explorer,
                        _ => Right::Neither,
                    };
                    if ov != nv {
                        let r = right(herd7 == Some(*ov), herd7 == Some(*nv));
                        return Some(d("verdict", Some(*ov), Some(*nv), r, feature(&t).into()));
                    }
                    if !diff(of, nf).is_empty() {
                        let r = match &r.herd7_states {
                            Some(h) => right(diff(of, h).is_empty(), diff(nf, h).is_empty()),
                            None => Right::Neither,
                        };
                        return Some(d("states", Some(*ov), Some(*nv), r, feature(&t).into()));
                    }
                    if ob != nb {
                        let r = match r.herd7_bbm {
                            Some(h) => right(h == *ob, h == *nb),
                            None => Right::Neither,
                        };
                        return Some(d("bbm", Some(*ov), Some(*nv), r, "BBM flag".into()));
                    }
                    None
                }
                (Ours::Ran { verdict, .. }, Ours::Unsupported { reason, .. }) => Some(d(
                    "unsupported",
                    Some(*verdict),
                    None,
                    Right::Executor,
                    reason.clone(),
                )),
                _ => None,
            }
        })
        .collect();
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

/// Counts the differences by (what, who is right, cause), for a summary.
pub fn tally(diffs: &[Difference]) -> Vec<(String, usize)> {
    let mut m: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for d in diffs {
        *m.entry(format!("{} right={:?} cause={}", d.what, d.right, d.cause))
            .or_default() += 1;
    }
    m.into_iter().collect()
}
