//! Memory writes and the visibility of descriptor stores to walkers:
//! pending stores, publication to other CPUs' walkers (other-multi-copy
//! atomicity), a DSB draining the writer's own, and herd7's BBM warning
//! computed at each descriptor store.

use super::*;

impl Ctx<'_> {
    /// Writes memory, with the BBM bookkeeping for descriptors and the
    /// exclusive monitors.
    pub(super) fn write(&self, st: &mut State, writer: usize, l: Loc, v: Val) {
        let v = match l {
            Loc::Pte(_) => Val::Desc(v.num()),
            Loc::Data(_) | Loc::Elem(..) => v,
        };
        st.mem[self.mi(l)] = v;
        if let Some(bit) = self.loc_bit(l) {
            relaxed::written_past(st, writer, bit);
        }
        for (i, cpu) in st.cpus.iter_mut().enumerate() {
            if i != writer && cpu.excl == Some(l) {
                cpu.excl = None;
            }
        }
        if let Loc::Pte(sym) = l {
            let d = v.num();
            st.pend.push((sym, writer as u8, d, false));
            let mut bbm = std::mem::replace(&mut st.bbm[usize::from(sym)], TtdBbm::new(None));
            let mut warn = false;
            bbm.write(writer, d, cacheable(d), |&old, _| {
                warn |= self.needs_bbm(st, old, d);
            });
            st.bbm[usize::from(sym)] = bbm;
            st.warn |= warn;
        }
    }

    /// Makes pending descriptor store `i` (the oldest of its descriptor)
    /// visible to walkers; the value may then be cached by every CPU that
    /// uses it.
    pub(super) fn propagate(&self, st: &mut State, i: usize) {
        let (sym, _, d, _) = st.pend.remove(i);
        st.wmem[usize::from(sym)] = d;
        for c in 0..st.cpus.len() {
            if !st.cpus[c].done && self.vas[c] >> sym & 1 == 1 {
                insert(&mut st.whist[c], (sym, d));
            }
        }
        if cacheable(d) {
            for c in 0..st.cpus.len() {
                if !st.cpus[c].done && self.vas[c] >> sym & 1 == 1 {
                    insert(&mut st.tlbs[c], (sym, d));
                }
            }
        }
    }

    /// Records that `c` read location `l`: a descriptor store another CPU
    /// can read is visible to every observer (Armv8 is other-multi-copy
    /// atomic), walkers included; only the writer's own walker may lag
    /// (it needs a DSB).
    pub(super) fn observed(&self, st: &mut State, c: usize, l: Loc) {
        if let Loc::Pte(s) = l {
            for i in 0..st.pend.len() {
                if st.pend[i].0 == s && usize::from(st.pend[i].1) != c {
                    self.publish(st, i);
                }
            }
        }
    }

    /// Makes pending store `i` visible to the walkers of every CPU but its
    /// writer.
    fn publish(&self, st: &mut State, i: usize) {
        let (sym, w, d, _) = st.pend[i];
        st.pend[i].3 = true;
        for c in 0..st.cpus.len() {
            if c != usize::from(w) && !st.cpus[c].done && self.vas[c] >> sym & 1 == 1 {
                insert(&mut st.whist[c], (sym, d));
            }
        }
        if cacheable(d) {
            for c in 0..st.cpus.len() {
                if c != usize::from(w) && !st.cpus[c].done && self.vas[c] >> sym & 1 == 1 {
                    insert(&mut st.tlbs[c], (sym, d));
                }
            }
        }
    }

    /// Publishes every pending descriptor store of `c` (a DMB other than
    /// DMB LD, or a release).
    pub(super) fn publish_all(&self, st: &mut State, c: usize) {
        for i in 0..st.pend.len() {
            if usize::from(st.pend[i].1) == c {
                self.publish(st, i);
            }
        }
    }

    /// Returns descriptor `s` as `c`'s walker sees it.
    pub(super) fn view(st: &State, c: usize, s: Sym) -> u64 {
        st.pend
            .iter()
            .rev()
            .find(|e| e.0 == s && e.3 && usize::from(e.1) != c)
            .map_or(st.wmem[usize::from(s)], |e| e.2)
    }

    /// Makes every descriptor store of `c` visible to walkers (a DSB),
    /// with the older stores to the same descriptors.
    pub(super) fn drain(&self, st: &mut State, c: usize) {
        while let Some(last) = st.pend.iter().rposition(|e| usize::from(e.1) == c) {
            let sym = st.pend[last].0;
            let first = st.pend.iter().position(|e| e.0 == sym).unwrap_or(last);
            self.propagate(st, first);
        }
    }

    /// Tells whether replacing cacheable `old` by cacheable `new` needs
    /// break-before-make (R_WHZWS; herd7's `TTD-update-needsBBM`).
    fn needs_bbm(&self, st: &State, old: u64, new: u64) -> bool {
        if old == 0 {
            return false;
        }
        let (Some(o), Some(n)) = (PteFields::decode(old), PteFields::decode(new)) else {
            return false;
        };
        if o.device() != n.device() || o.attr != n.attr || o.sh != n.sh {
            return true;
        }
        if o.oa != n.oa {
            let writable = |f: &PteFields| f.db || (f.dbm && self.hd_any);
            let same = self.page_cells(st, o.oa) == self.page_cells(st, n.oa);
            return writable(&o) || writable(&n) || !same;
        }
        false
    }
}
