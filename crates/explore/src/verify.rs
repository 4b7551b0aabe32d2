//! One configuration, checked both ways: the rule checker on the
//! sequential run and the explorer against the workloads.

use serde::Serialize;
use vmsa::Rule;

use crate::engine::Engine;
use crate::search::{Limits, Report, explore};
use crate::world::{Scenario, Setup};
use crate::ExploreError;

/// The result for one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// What was checked.
    pub setup: Setup,
    /// Rules the sequential run violates, with counts (empty: compliant).
    pub violations: Vec<(Rule, u64)>,
    /// The program's costs.
    pub costs: mm::Costs,
    /// Operations in the program.
    pub ops: usize,
    /// The search.
    pub report: Report,
}

/// Checks `setup`.
///
/// # Errors
///
/// Returns [`ExploreError`] when the configuration cannot be set up.
pub fn verify(setup: &Setup, limits: &Limits) -> Result<Row, ExploreError> {
    let sc = Scenario::new(setup)?;
    Ok(check(&sc, limits))
}

/// Checks a built scenario.
pub fn check(sc: &Scenario, limits: &Limits) -> Row {
    let engine = Engine::new(sc);
    let report = explore(&engine, limits);
    Row {
        setup: sc.setup.clone(),
        violations: sc.violations.clone(),
        costs: sc.costs.clone(),
        ops: sc.ops.len(),
        report,
    }
}
