//! The timing of a thread's hardware AF/dirty updates (Arm ARM D8.4.9,
//! "Hardware management of the Access flag", D8.4.10, "Hardware management
//! of the dirty state"; FEAT_HAFDBS), as the litmus executor has it
//! (`crates/litmus/src/exec/hw_update.rs`, `State::hu`).
//!
//! An update a thread's walk makes (for an access, for a TLB fill, or
//! ahead of a store: `early.rs`) is an atomic read-modify-write of the
//! descriptor that walkers see at once: [`Engine::commit`] writes it to
//! memory, which walkers read. Explicit accesses (loads of the descriptor)
//! see it only once it reaches memory: until then they read the value it
//! replaced ([`PendingHu`], kept by the thread, oldest first). It reaches
//! memory
//! - at any time (a step of the thread, [`Path::HuFlush`]; the oldest of
//!   its descriptor first);
//! - before any explicit write to its descriptor (the update is an atomic
//!   read-modify-write, ordered with the writes to its descriptor by
//!   coherence: herd7 `aarch64.cat`, `HU-pred`, `[HU]; co | co; [HU]`;
//!   catalogue test `NT-12-dmb-allha-variant1`, Forbidden);
//! - when another CPU's walk reads it (Armv8 is other-multi-copy atomic: a
//!   write another observer has read is visible to all; catalogue tests
//!   `NT-12-dsb-allha`, `MP+HA-DSB.ISH`, Forbidden);
//! - at the latest at its CPU's next full DSB (herd7's VMSA model,
//!   herdtools7 5feffe4e8f98, as its catalogue verdicts show: `NT-12-dsb`
//!   Forbidden; `NT-12-dmb+dsb`, `NT-12-dsbld`, `MP+HA-DSB.ST` Allowed: a
//!   DMB or a DSB LD/ST does not complete it).
//!
//! Since every update of a descriptor waits for the other CPUs' updates of
//! it to reach memory (its walk reads them), the pending updates of one
//! descriptor all belong to one thread. Reaching memory is a write in
//! coherence order: it clears the other threads' exclusive monitors on
//! the descriptor (`aarch64.cat`'s `atomic`: `rmw & (fre; coe)` empty).

use vmsa::walk::Choice;

use crate::state::{PendingHu, State};

use super::{Engine, Path};

impl<'a> Engine<'a> {
    /// Thread `t`'s number, if `cpu` runs a thread.
    pub(in crate::engine) fn thread_of_cpu(&self, cpu: usize) -> Option<usize> {
        cpu.checked_sub(1 + self.sc.workloads.len())
    }

    /// Applies a thread CPU's translation choice as [`Engine::commit`]
    /// does, with the timing of its hardware update (see the module's
    /// description): a walk that reads another thread's update brings that
    /// update to memory; the choice's own update is recorded as pending for
    /// explicit accesses. Returns false if the update found the descriptor
    /// changed.
    pub(in crate::engine) fn thread_commit(
        &self,
        s: &mut State,
        cpu: usize,
        c: &Choice,
        fresh: u8,
    ) -> bool {
        let Some(t) = self.thread_of_cpu(cpu) else {
            return self.commit(s, cpu, c, fresh);
        };
        // A walk (also one a write through a clean cached entry makes,
        // `Translator`'s hit choices): the leaf it read is among its fills.
        if let Some(leaf) = c.fills.as_slice().iter().find(|e| e.is_leaf()) {
            let pa = leaf.desc_pa.0;
            let others = s
                .threads
                .iter()
                .enumerate()
                .any(|(i, th)| i != t && th.hu.iter().any(|h| h.pa == pa));
            if others {
                self.flush_hus_at(s, pa);
            }
        }
        if !self.commit(s, cpu, c, fresh) {
            return false;
        }
        if let Some(u) = c.hw_update {
            s.threads[t].hu.push(PendingHu {
                pa: u.pa.0,
                old: u.expected.0,
            });
        }
        true
    }

    /// What an explicit access reads at `pa`: the value the oldest pending
    /// update there replaced, or memory.
    pub(super) fn explicit_read(&self, s: &State, pa: u64) -> u64 {
        s.threads
            .iter()
            .find_map(|th| th.hu.iter().find(|h| h.pa == pa))
            .map_or_else(|| self.read(s, pa), |h| h.old)
    }

    /// Brings update `i` of thread `t` to memory for explicit accesses
    /// (it must be the oldest of its descriptor).
    fn flush_hu(s: &mut State, t: usize, i: usize) {
        let h = s.threads[t].hu.remove(i);
        for (k, th) in s.threads.iter_mut().enumerate() {
            if k != t && th.excl == Some(h.pa) {
                th.excl = None;
            }
        }
    }

    /// Brings every pending update of the descriptor at `pa` to memory
    /// (before an explicit write to it, or another CPU's walk of it).
    pub(super) fn flush_hus_at(&self, s: &mut State, pa: u64) {
        for t in 0..s.threads.len() {
            while let Some(i) = s.threads[t].hu.iter().position(|h| h.pa == pa) {
                Self::flush_hu(s, t, i);
            }
        }
    }

    /// A full DSB of thread `t`: its updates reach memory.
    pub(super) fn flush_hus_of(&self, s: &mut State, t: usize) {
        while !s.threads[t].hu.is_empty() {
            Self::flush_hu(s, t, 0);
        }
    }

    /// Appends the paths on which one of thread `t`'s pending updates
    /// reaches memory: the oldest of each descriptor.
    pub(super) fn hu_paths(&self, s: &State, t: usize, out: &mut Vec<Path>) {
        let hu = &s.threads[t].hu;
        for (i, h) in hu.iter().enumerate() {
            if !hu[..i].iter().any(|e| e.pa == h.pa) {
                out.push(Path::HuFlush { index: i as u8 });
            }
        }
    }

    /// Runs [`Path::HuFlush`].
    pub(super) fn run_hu_flush(
        &self,
        s: &mut State,
        t: usize,
        index: usize,
        log: Option<&mut String>,
    ) -> bool {
        if let Some(l) = log
            && let Some(h) = s.threads[t].hu.get(index)
        {
            l.push_str(&format!(
                "hw:   cpu{}'s update of {:#x} reaches memory",
                self.thread_cpu(t),
                h.pa
            ));
        }
        if index >= s.threads[t].hu.len() {
            return false;
        }
        Self::flush_hu(s, t, index);
        true
    }
}
