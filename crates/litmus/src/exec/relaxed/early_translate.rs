//! Translations ahead of their access: a plain load translated before its
//! read, and a predicted fault's walk performed before its handler's first
//! access or ERET.

use super::*;

impl Ctx<'_> {
    /// Adds the successors of `st` where window entry `k` of `c`, a load
    /// through a virtual address, is translated without a fault before it
    /// reads (herd7 orders the translation read before the access, `tr-ib`,
    /// and as the access's fault would be ordered: after barriers,
    /// acquires, a control dependency and the address; the read itself
    /// may come later). A faulting translation is the fault's commit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn translate_early(
        &self,
        st: &State,
        c: usize,
        rob: &[(u16, u8)],
        fetched: usize,
        k: usize,
        get: &dyn Fn(u16) -> Meta,
        out: &mut Vec<State>,
    ) -> Result<(), LitmusError> {
        let pc = rob[k].0;
        let Some(Instr::Load {
            addr: a,
            exclusive: Exclusivity::Plain,
            ..
        }) = self.t.threads[c].code.get(usize::from(pc))
        else {
            return Ok(());
        };
        if self.may_commit(st, c, rob, k, true, get).is_none()
            || !matches!(self.addr(st, c, a), Ok(Val::Va(_)))
        {
            return Ok(());
        }
        // Walks of one descriptor stay in program order: an earlier walk
        // is ordered before whatever a later one of the same page is
        // TLBI-ordered before (herd7 `TLBI-ob`, its `TTD-in-same-scope;
        // po` case: catalogue tests `coRR-pte9-bis1`, `Luc00`,
        // `MP+tlbi-sync.ishsptev0pteoa.v1+pos`, Forbidden).
        let walks = self.locs(st, c, pc).1;
        if rob[..k].iter().any(|&(ipc, istate)| {
            let m = get(ipc);
            (istate == PENDING || istate == PREDICTED)
                && (m.load || m.store)
                && self.locs(st, c, ipc).1 & walks != 0
        }) {
            return Ok(());
        }
        let mut n = st.clone();
        n.cpus[c].rob = rob[..fetched.max(k + 1)].to_vec();
        n.cpus[c].pc = pc;
        let mut tmp = Vec::new();
        self.access(&n, c, a, Access::Read, &mut tmp, &|m, l| match l {
            Loc::Data(p) => {
                m.cpus[c].rob[k].1 = TRANSLATED + p;
                true
            }
            Loc::Pte(_) | Loc::Elem(..) => false,
        })?;
        for mut m in tmp {
            if m.cpus[c].done || m.cpus[c].pc != pc + 1 {
                continue;
            }
            // Nothing new was fetched but up to `k`.
            m.cpus[c].pc = if k + 1 == m.cpus[c].rob.len() {
                pc + 1
            } else {
                st.cpus[c].pc
            };
            out.push(m);
        }
        Ok(())
    }

    /// Performs the read of the load at `pc` of `c`, translated already to
    /// physical page `p`, as `step` would.
    pub(super) fn read_translated(&self, n: &mut State, c: usize, pc: u16, p: Sym) {
        let Some(&Instr::Load {
            dst: t,
            width,
            order,
            ..
        }) = self.t.threads[c].code.get(usize::from(pc))
        else {
            return;
        };
        let v = narrow(n.mem[self.mi(Loc::Data(p))], width.bytes());
        Self::set(n, c, t, v);
        n.cpus[c].pc = pc + 1;
        // As `step`: an acquire orders later walks after it; a loaded
        // value taints its register.
        if !n.revoked[c].is_empty() {
            if order.acquires() {
                n.revoked[c].clear();
            } else {
                n.rdirty[c] |= 1u64 << (t & 63);
            }
        }
    }

    /// Returns the states from which window entry `k` of `c` commits: `n`
    /// itself, unless `k` is a memory access or an ERET of the handler of
    /// a fault predicted at an earlier entry whose walk is not done yet;
    /// then the states after that walk (`Ctx::walk_predicted`: herd7
    /// orders the walk before the handler, the fault itself not), or none
    /// while the faulting access's address is not known.
    pub(super) fn walk_before_handler(
        &self,
        n: State,
        c: usize,
        rob: &[(u16, u8)],
        k: usize,
        get: &dyn Fn(u16) -> Meta,
    ) -> Vec<State> {
        let j = get(rob[k].0);
        let eret = matches!(
            self.t.threads[c].code.get(usize::from(rob[k].0)),
            Some(Instr::Eret)
        );
        let Some(i) = rob[..k].iter().position(|e| e.1 == PREDICTED) else {
            return vec![n];
        };
        let ipc = rob[i].0;
        if !(j.load || j.store || eret) || n.cpus[c].pre.iter().any(|e| e.0 == ipc) {
            return vec![n];
        }
        if get(ipc).addr & pending_before(rob, i, get) != 0 {
            return Vec::new();
        }
        self.walk_predicted(&n, c, ipc)
    }
}
