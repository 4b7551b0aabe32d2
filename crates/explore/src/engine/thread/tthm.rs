//! Per-thread translation: the hardware AF/dirty management of a thread's
//! CPU ([`ThreadCode::hw`], herd7's `TTHM=`) and the Exception level of
//! its accesses ([`ThreadCode::el`], herd7's `EL0=`).
//!
//! A thread's CPU translates (its accesses and its TLB fills: a fill's
//! walk may set AF with HA) with the scenario's configuration but for
//! `hw_af`/`hw_dbm`, which are the thread's own; the updater's and the
//! workloads' CPUs (every kernel scenario) keep the scenario's.
//!
//! An EL0 thread's access is at EL0 (a page whose descriptor has AP\[1\]
//! clear gives it a Permission fault: [`ExceptionLevel::El0`]), except in
//! its fault handler and, under [`FaultMode::Handled`], from the
//! re-executed instruction on: herd7 runs both with `in_handler` set
//! (herdtools7 `herd/mem.ml`, `add_fault`: `add_code true` for the
//! handler, `add_next_instr true` for the re-execution, kept for the
//! instructions after it; an ERET, `FaultRet`, goes back with it clear),
//! and `check_ptw` (`herd/AArch64Sem.ml`) makes no EL0 check then
//! ("Handler runs at level more privileged than EL0").

use vmsa::features::Config;
use vmsa::translate::ExceptionLevel;

use crate::state::State;
#[cfg(doc)]
use crate::thread::{FaultMode, ThreadCode};
use crate::world::Scenario;

use super::super::Engine;

/// Returns, per thread, the configuration its CPU translates with.
pub(in crate::engine) fn thread_configs(sc: &Scenario) -> Vec<Config> {
    sc.threads
        .code
        .iter()
        .map(|c| {
            let mut config = sc.config;
            config.features.hw_af = c.hw.access_flag || c.hw.dirty;
            config.features.hw_dbm = c.hw.dirty;
            config
        })
        .collect()
}

impl<'a> Engine<'a> {
    /// Returns the configuration `cpu` translates with and the Exception
    /// level of its accesses in `s`.
    #[inline]
    pub(in crate::engine) fn walker_of(&self, s: &State, cpu: usize) -> (&Config, ExceptionLevel) {
        let first = 1 + self.sc.workloads.len();
        if cpu < first {
            return (&self.sc.config, ExceptionLevel::El1);
        }
        let t = cpu - first;
        (&self.thread_configs[t], self.thread_el(s, t))
    }

    /// Returns the Exception level of thread `t`'s accesses in `s`.
    fn thread_el(&self, s: &State, t: usize) -> ExceptionLevel {
        let code = &self.sc.threads.code[t];
        let th = &s.threads[t];
        let in_handler = th.retried || code.handler.is_some_and(|h| th.pc >= h);
        if in_handler {
            ExceptionLevel::El1
        } else {
            code.el
        }
    }
}

/// The key of a walk's translator in the walk cache: what besides the
/// walkers' view and the scenario a walk's choices depend on.
pub(in crate::engine) fn walker_key(config: &Config, el: ExceptionLevel) -> u8 {
    u8::from(config.features.hw_af)
        | u8::from(config.features.hw_dbm) << 1
        | u8::from(el == ExceptionLevel::El0) << 2
}
