//! Hardware updates of AF and the dirty state (Arm ARM D8, "Hardware
//! management of the Access flag", "Hardware management of the dirty
//! state"): seen by walkers at once, by explicit accesses once they reach
//! memory (`State::hu`).

use super::*;

impl Ctx<'_> {
    /// Writes a descriptor as the hardware does when it updates AF or the
    /// dirty state: an atomic update, seen by walkers at once, and by
    /// explicit accesses once it reaches memory (`State::hu`).
    pub(super) fn hw_write(&self, st: &mut State, c: usize, s: Sym, d: u64) {
        st.hu.push((s, c as u8, d));
        st.pend.push((s, c as u8, d, false));
        let i = st.pend.len() - 1;
        self.propagate(st, i);
    }

    /// Makes pending hardware update `i` (the oldest of its descriptor)
    /// reach memory: explicit accesses see it from now on.
    pub(super) fn flush_hu(&self, st: &mut State, i: usize) {
        let (s, c, d) = st.hu.remove(i);
        self.write(st, usize::from(c), Loc::Pte(s), Val::Desc(d));
        // Walkers have it already.
        st.pend.pop();
    }

    /// Records that `c`'s translation used value `d` of descriptor `s`: if
    /// that is another CPU's hardware update still on its way to memory,
    /// it reaches memory now (Armv8 is other-multi-copy atomic: a write
    /// another observer has read is visible to all; catalogue tests
    /// `NT-12-dsb-allha`, `MP+HA-DSB.ISH`: Forbidden).
    pub(super) fn seen_hu(&self, st: &mut State, c: usize, s: Sym, d: u64) {
        if st
            .hu
            .iter()
            .any(|e| e.0 == s && e.2 == d && usize::from(e.1) != c)
        {
            self.flush_hus(st, Some(s), None);
        }
    }

    /// Makes every pending hardware update of descriptor `s` (all if
    /// None) by CPU `c` (any if None) reach memory, oldest first.
    pub(super) fn flush_hus(&self, st: &mut State, s: Option<Sym>, c: Option<usize>) {
        while let Some(i) = st
            .hu
            .iter()
            .rposition(|e| s.is_none_or(|s| s == e.0) && c.is_none_or(|c| c == usize::from(e.1)))
        {
            let sym = st.hu[i].0;
            let first = st.hu.iter().position(|e| e.0 == sym).unwrap_or(i);
            self.flush_hu(st, first);
        }
    }
}
