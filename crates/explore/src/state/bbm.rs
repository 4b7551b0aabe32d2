//! herd7's break-before-make bookkeeping of the threads
//! ([`crate::thread`]), part of a state: per level-3 descriptor a thread
//! wrote, a [`TtdBbm`] (the shared implementation of herd7's
//! `Warning-BBM-expected`, `vmsa::herd_bbm`), and whether the warning was
//! raised on the way to the state. The steps are
//! `engine/thread/bbm.rs`. Empty in every scenario without threads.

use vmsa::herd_bbm::TtdBbm;

/// The threads' BBM bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HerdBbm {
    /// Some execution reaching the state had a pair of descriptor values
    /// in `TTD-update-needsBBM` and not in `BBM` (herd7's
    /// `herd/libdir/aarch64bbm.cat`, `aarch64.cat`). Once it is raised,
    /// the descriptors are forgotten: nothing can lower it.
    pub raised: bool,
    /// Per descriptor written (physical address, sorted): its values and
    /// breaks, canonical ([`TtdBbm::canonical`]), each thread's chains
    /// numbered by thread.
    pub descs: Vec<(u64, TtdBbm<u64>)>,
}

impl HerdBbm {
    /// Tells whether there is nothing to encode (no descriptor written,
    /// the warning not raised).
    pub fn is_empty(&self) -> bool {
        !self.raised && self.descs.is_empty()
    }

    /// Appends the encoding, nothing when empty: a header (raised, the
    /// number of descriptors), then per descriptor its address and its
    /// [`TtdBbm::encode`].
    pub(super) fn encode(&self, out: &mut Vec<u64>) {
        if self.is_empty() {
            return;
        }
        out.push(u64::from(self.raised) | (self.descs.len() as u64) << 1);
        for (pa, b) in &self.descs {
            out.push(*pa);
            b.encode(out);
        }
    }

    /// Rebuilds into `self` what [`HerdBbm::encode`] wrote to `words`
    /// (empty: nothing).
    pub(super) fn decode_from(&mut self, words: &[u64]) {
        self.descs.clear();
        let mut it = words.iter().copied();
        let mut next = || it.next().unwrap_or(0);
        let h = next();
        self.raised = h & 1 != 0;
        for _ in 0..h >> 1 {
            let pa = next();
            let b = TtdBbm::decode(&mut next);
            self.descs.push((pa, b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    fn encoded(s: &State) -> Vec<u64> {
        let mut w = Vec::new();
        s.encode(&mut w);
        w
    }

    fn decoded(w: &[u64], into: &mut State) -> State {
        State::decode_into(w, into);
        into.clone()
    }

    #[test]
    fn the_bookkeeping_is_in_the_encoding_and_nothing_without_it() {
        // Without threads nothing is added: the header and the counts.
        let empty = encoded(&State::default());
        assert_eq!(empty.len(), 4);
        // A descriptor broken by thread 1, then written by thread 0.
        let mut b = TtdBbm::new(Some(0x8040_0403));
        b.write(1, 0, false, |_, _| {});
        b.dsb(1, true, true, 0);
        b.tlbi(1);
        b.write(0, 0x8040_1403, true, |_, _| {});
        b.canonical();
        let mut s = State::default();
        s.herd_bbm.descs.push((0x8000_0008, b.clone()));
        let w = encoded(&s);
        assert_ne!(w, empty);
        let mut scratch = State::default();
        assert_eq!(decoded(&w, &mut scratch), s);
        // Two states that differ only in the bookkeeping stay distinct
        // (thread 1 completes its TLBI).
        let mut other = s.clone();
        other.herd_bbm.descs[0].1.dsb(1, true, true, 0);
        other.herd_bbm.descs[0].1.canonical();
        assert_ne!(encoded(&other), w);
        let mut raised = State::default();
        raised.herd_bbm.raised = true;
        let r = encoded(&raised);
        assert_ne!(r, empty);
        // Decoding over a state that held bookkeeping replaces it.
        assert_eq!(decoded(&r, &mut scratch), raised);
        assert_eq!(decoded(&empty, &mut scratch), State::default());
    }
}
