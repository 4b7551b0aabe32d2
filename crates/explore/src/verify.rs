//! One configuration, checked both ways: the rule checker on the
//! sequential run, and the explorer against each workload (or all of them
//! together).

use std::time::Duration;

use mm::program::Program;
use rayon::prelude::*;
use serde::Serialize;
use vmsa::Rule;

use crate::ExploreError;
use crate::engine::Engine;
use crate::search::{Limits, Progress, Report, Verdict, explore_with};
use crate::workload::WorkloadKind;
use crate::world::{Prepared, Scenario, Setup};

/// One exploration: the workloads it ran and what it found.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// The workloads, one CPU each (times the setup's copies).
    pub workloads: Vec<WorkloadKind>,
    /// The search.
    pub report: Report,
}

/// The result for one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// What was checked.
    pub setup: Setup,
    /// Rules the sequential run violates, with counts (empty: compliant).
    pub violations: Vec<(Rule, u64)>,
    /// The pairs of descriptor values for which herd7 7.58+1 would raise
    /// `Warning-BBM-expected` on the sequential run (empty: no warning);
    /// see `vmsa::herd_bbm` and docs/bbm-herd7.md.
    pub herd7_bbm: Vec<vmsa::herd_bbm::Pair>,
    /// The program's costs.
    pub costs: mm::Costs,
    /// Operations in the program.
    pub ops: usize,
    /// The explorations.
    pub runs: Vec<Run>,
}

impl Row {
    /// Returns the verdict: the first hazard (in workload order), else the
    /// first incomplete search, else safe.
    pub fn verdict(&self) -> (&Verdict, Option<&Run>) {
        let hazard = self
            .runs
            .iter()
            .find(|r| matches!(r.report.verdict, Verdict::Hazard { .. }));
        let incomplete = self
            .runs
            .iter()
            .find(|r| matches!(r.report.verdict, Verdict::Incomplete { .. }));
        match hazard.or(incomplete) {
            Some(r) => (&r.report.verdict, Some(r)),
            None => (&Verdict::Safe, None),
        }
    }

    /// Returns the unique states explored in all runs.
    pub fn states(&self) -> u64 {
        self.runs.iter().map(|r| r.report.states).sum()
    }

    /// Returns the time of all runs.
    pub fn elapsed(&self) -> Duration {
        self.runs.iter().map(|r| r.report.elapsed).sum()
    }

    /// Tells whether the rule checker found nothing.
    pub fn compliant(&self) -> bool {
        self.violations.is_empty()
    }

    /// Tells whether the rule checker requires break-before-make where the
    /// program did not do it: a violation of R_WHZWS or of the sequence
    /// R_DDMVT (not the page-reuse rules).
    pub fn rules_need_bbm(&self) -> bool {
        self.violations
            .iter()
            .any(|(r, _)| vmsa::herd_bbm::is_bbm_rule(*r))
    }

    /// Tells whether herd7 would raise `Warning-BBM-expected`.
    pub fn herd7_flags(&self) -> bool {
        !self.herd7_bbm.is_empty()
    }

    /// Tells whether the rule checker and herd7 disagree on whether the
    /// program breaks before it makes.
    pub fn bbm_readings_differ(&self) -> bool {
        self.rules_need_bbm() != self.herd7_flags()
    }

    /// Tells whether the explorer finished without a hazard.
    pub fn safe(&self) -> bool {
        matches!(self.verdict().0, Verdict::Safe)
    }
}

/// Checks `setup`: each workload in its own exploration, or all together.
///
/// # Errors
///
/// Returns [`ExploreError`] when the configuration cannot be set up.
pub fn verify(setup: &Setup, limits: &Limits, together: bool) -> Result<Row, ExploreError> {
    let prep = Prepared::new(setup)?;
    verify_program(&prep, &prep.program, limits, together)
}

/// Checks `program` (the prepared one or a mutant) on the prepared kernel.
///
/// # Errors
///
/// Returns [`ExploreError`] when the program cannot run sequentially.
pub fn verify_program(
    prep: &Prepared,
    program: &Program,
    limits: &Limits,
    together: bool,
) -> Result<Row, ExploreError> {
    verify_program_with(prep, program, limits, together, &|_| {})
}

/// [`verify_program`], calling `progress` as each search goes (see
/// [`crate::search::explore_with`]; the searches of the workloads checked
/// one by one run at once, and each calls it). The searches run at once
/// share the memory limit: each may hold its part of it.
///
/// # Errors
///
/// Returns [`ExploreError`] when the program cannot run sequentially.
pub fn verify_program_with(
    prep: &Prepared,
    program: &Program,
    limits: &Limits,
    together: bool,
    progress: &(dyn Fn(&Progress) + Sync),
) -> Result<Row, ExploreError> {
    let groups: Vec<Vec<WorkloadKind>> = if together {
        vec![prep.setup.workloads.clone()]
    } else {
        prep.setup.workloads.iter().map(|w| vec![*w]).collect()
    };
    let full = Scenario::build(prep, program)?;
    let limits = &Limits {
        memory: limits.memory / groups.len().max(1) as u64,
        ..*limits
    };
    let runs = groups
        .par_iter()
        .map(|g| {
            let mut sc = full.clone();
            sc.workloads = full
                .workloads
                .iter()
                .filter(|w| g.contains(&w.kind))
                .cloned()
                .collect();
            let engine = Engine::new(&sc);
            Run {
                workloads: g.clone(),
                report: explore_with(&engine, limits, progress),
            }
        })
        .collect();
    Ok(Row {
        setup: prep.setup.clone(),
        violations: full.violations.clone(),
        herd7_bbm: full.herd7_bbm.clone(),
        costs: full.costs.clone(),
        ops: full.ops.len(),
        runs,
    })
}
