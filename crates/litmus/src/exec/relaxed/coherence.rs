//! Read-read coherence for a load that commits past an earlier load whose
//! address is not known yet: the checks it owes, brought up to date at each
//! commit, and stores of other CPUs that make them fail.

use super::*;

/// Records that `writer` wrote the data location of `bit` (`Ctx::loc_bit`): a check of another CPU whose store has
/// committed to that page is now owed against a newer write.
pub(in crate::exec) fn written_past(st: &mut State, writer: usize, bit: u64) {
    for (i, cpu) in st.cpus.iter_mut().enumerate() {
        if i != writer {
            for o in &mut cpu.past {
                if o.3 == 1 && o.1 & bit != 0 {
                    o.3 = 2;
                }
            }
        }
    }
}

impl Ctx<'_> {
    /// Records the checks owed by load `k` of `c`, which commits (by
    /// forwarding from the store at `spc`, or from memory), for each
    /// pending plain load before it whose address is not known yet.
    ///
    /// Armv8 lets a load go before an earlier load whose address is not
    /// known, and herd7 orders the two only through coherence: herd7's
    /// `aarch64.cat` has no `po-loc` between reads in `ob`, only `[R &
    /// Exp]; po-loc; [R & Exp]; fre; [W & Exp]` (a read may not see a write
    /// coherence-after one a po-later read saw) and the `internal` axiom
    /// (`po-loc | ca | rf` acyclic). So the earlier load, if it turns out
    /// to read the page the later one read, must read what that one read
    /// or an older write: not a write another CPU makes after the later
    /// load read memory, or after the store it forwarded from commits
    /// (catalogue tests `MP+dmb.sy+addr-store-pos-addr`, `...+W`,
    /// `MP+dmb.sy+addrR-pos-addr+W`: Allowed). The thread's own stores
    /// cannot come in between: a store waits for an earlier access whose
    /// address is not known, and a load forwards from a pending one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn owe_reads_past(
        &self,
        st: &State,
        n: &mut State,
        c: usize,
        rob: &[(u16, u8)],
        k: usize,
        spc: Option<u16>,
        get: &dyn Fn(u16) -> Meta,
    ) {
        let code = &self.t.threads[c].code;
        if !matches!(
            code.get(usize::from(rob[k].0)),
            Some(Instr::Load {
                exclusive: Exclusivity::Plain,
                ..
            })
        ) {
            return;
        }
        let page = self.locs(st, c, rob[k].0).0 as u64;
        let (spc, stage) = match spc {
            Some(p) => (p, 0),
            None => (u16::MAX, 1),
        };
        for i in 0..k {
            let (ipc, state) = rob[i];
            if state == PENDING
                && matches!(
                    self.t.threads[c].code.get(usize::from(ipc)),
                    Some(Instr::Load {
                        exclusive: Exclusivity::Plain,
                        ..
                    })
                )
                && get(ipc).addr & pending_before(rob, i, get) != 0
            {
                n.cpus[c].past.push((ipc, page, spc, stage));
            }
        }
    }

    /// Brings the checks of `c` up to date with the commit of its
    /// instruction at `pc` into `m`: a store owed to has committed, or an
    /// earlier load owing a check commits; returns false when that load
    /// may have read the page a later load read after another CPU wrote it
    /// following the store (a coherence violation: the execution is
    /// dropped).
    pub(super) fn check_reads_past(&self, st: &State, m: &mut State, c: usize, pc: u16) -> bool {
        if m.cpus[c].past.is_empty() {
            return true;
        }
        let page = self.locs(st, c, pc).0 as u64;
        let past = &mut m.cpus[c].past;
        let ok = !past
            .iter()
            .any(|o| o.0 == pc && o.3 == 2 && o.1 & page != 0);
        past.retain(|o| o.0 != pc);
        for o in past.iter_mut() {
            if o.2 == pc && o.3 == 0 {
                o.3 = 1;
            }
        }
        ok
    }
}
