//! What a thread's walker may still use of the descriptor values it saw
//! (early walks, `engine/thread/views.rs`), and its encoding as words.

/// A thread CPU's early-walk bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Views {
    /// Descriptor values, `(physical address, value)`, sorted, that the
    /// CPU's walker could see since its last context synchronization and
    /// no longer sees (a value it sees now is not kept: it is its current
    /// view, and is added back when that changes).
    pub whist: Vec<(u64, u64)>,
    /// The values of `whist` another CPU's TLBI removed since the CPU's
    /// last barrier, acquire or context synchronization, sorted: only a
    /// fault may still come from them.
    pub revoked: Vec<(u64, u64)>,
    /// The registers (bit `r`) whose value depends on a read performed
    /// since `revoked` was last empty: an access whose address depends on
    /// one is ordered after that read, so cannot use `revoked`.
    pub rdirty: u64,
}

impl Views {
    /// Tells whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.whist.is_empty() && self.revoked.is_empty() && self.rdirty == 0
    }

    /// Forgets everything (a context synchronization event, or the
    /// thread finished).
    pub fn clear(&mut self) {
        self.whist.clear();
        self.revoked.clear();
        self.rdirty = 0;
    }

    /// Appends the encoding: a header word (the counts of `whist` and
    /// `revoked`, whether `rdirty` is set), `rdirty` if set, the pairs.
    pub(super) fn encode(&self, out: &mut Vec<u64>) {
        out.push(
            self.whist.len() as u64 & 0xffff
                | (self.revoked.len() as u64 & 0xffff) << 16
                | u64::from(self.rdirty != 0) << 32,
        );
        if self.rdirty != 0 {
            out.push(self.rdirty);
        }
        for &(pa, v) in self.whist.iter().chain(&self.revoked) {
            out.extend_from_slice(&[pa, v]);
        }
    }

    /// Rebuilds the bookkeeping from the words `next` yields, as
    /// [`Views::encode`] wrote them.
    pub(super) fn decode(next: &mut dyn FnMut() -> u64) -> Views {
        let h = next();
        let rdirty = if h >> 32 & 1 != 0 { next() } else { 0 };
        let mut pair = || (next(), next());
        let whist = (0..h & 0xffff).map(|_| pair()).collect();
        let revoked = (0..(h >> 16 & 0xffff)).map(|_| pair()).collect();
        Views {
            whist,
            revoked,
            rdirty,
        }
    }
}

/// Inserts `e` into sorted `v` unless there.
pub(crate) fn insert(v: &mut Vec<(u64, u64)>, e: (u64, u64)) {
    if let Err(i) = v.binary_search(&e) {
        v.insert(i, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        for v in [
            Views::default(),
            Views {
                whist: vec![(0x8000_0008, 3), (0x8000_0010, u64::MAX)],
                revoked: vec![(0x8000_0008, 1)],
                rdirty: 1 << 63 | 2,
            },
            Views {
                whist: Vec::new(),
                revoked: vec![(8, 0)],
                rdirty: 0,
            },
        ] {
            let mut words = Vec::new();
            v.encode(&mut words);
            let mut it = words.iter().copied();
            let back = Views::decode(&mut || it.next().unwrap_or(0));
            assert_eq!(back, v);
            assert_eq!(it.next(), None);
        }
    }
}
