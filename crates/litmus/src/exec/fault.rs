//! Taking a fault: recorded as herd7 records it, then the thread's handler
//! or the test's fault mode ([`FaultMode`]).

use super::*;

impl Ctx<'_> {
    pub(super) fn fault(&self, st: &mut State, c: usize, s: Sym, k: FaultKind) {
        let pc = st.cpus[c].pc;
        Self::pre_fault(st, c, pc);
        let f = (c as u8, pc, s, k);
        if let Err(i) = st.faults.binary_search(&f) {
            st.faults.insert(i, f);
        }
        let th = &self.t.threads[c];
        // Without a handler, the test's fault handling decides (herdtools7
        // `herd/mem.ml`, `add_fault`); the fault is a synchronous exception
        // entry in every mode (`herd/AArch64Sem.ml`, `mk_fault`), so a
        // context synchronization event for what the thread does next.
        match (th.handler, self.t.fault_mode) {
            (Some(h), _) => {
                st.cpus[c].elr = pc;
                st.cpus[c].pc = h;
                self.sync(st, c);
            }
            (None, FaultMode::Fatal) => st.cpus[c].done = true,
            (None, FaultMode::Skip) => {
                st.cpus[c].pc = pc + 1;
                self.sync(st, c);
            }
            // The instruction is executed again, once, as in a handler; a
            // thread that faults again is an execution herd7 discards.
            (None, FaultMode::Handled) if st.cpus[c].retried => st.bad = true,
            (None, FaultMode::Handled) => {
                st.cpus[c].retried = true;
                self.sync(st, c);
            }
        }
    }
}
