//! [`TtdBbm`] over raw descriptor values as words, for a caller that keeps
//! it in a state compared by its encoding (the explorer's threads,
//! `explore::state`): the encoding is exact ([`TtdBbm::decode`] rebuilds
//! the value encoded), and small for the values [`TtdBbm::canonical`]
//! leaves (indices renumbered from 0, no lifetimes).

use super::{Chain, Chains, TtdBbm};

/// Header bit: the initial value follows.
const INITIAL: u64 = 1;
/// Header bit: the compact form (the writes in the header, one word per
/// CPU).
const COMPACT: u64 = 2;

impl Chain {
    /// Packs the four indices, 16 bits each, if they fit and nothing else
    /// is set.
    fn packed(&self) -> Option<u64> {
        let fields = [self.last, self.synced, self.tlbi, self.done];
        (self.done_step == 0 && fields.iter().all(|&f| f >> 16 == 0))
            .then(|| fields.iter().rev().fold(0, |w, &f| w << 16 | f))
    }

    fn unpacked(w: u64) -> Chain {
        Chain {
            last: w & 0xffff,
            synced: w >> 16 & 0xffff,
            tlbi: w >> 32 & 0xffff,
            done: w >> 48,
            done_step: 0,
        }
    }

    fn words(&self) -> [u64; 5] {
        [self.last, self.synced, self.tlbi, self.done, self.done_step]
    }

    fn read(next: &mut dyn FnMut() -> u64) -> Chain {
        Chain {
            last: next(),
            synced: next(),
            tlbi: next(),
            done: next(),
            done_step: next(),
        }
    }
}

impl TtdBbm<u64> {
    /// Appends the encoding: a header (whether the initial value is kept,
    /// the form, the numbers of cacheable values and of CPUs, 16 bits
    /// each, and in the compact form the writes seen, 24 bits), the
    /// writes seen in the wide form, the initial value if kept, each
    /// cacheable value with its index (two words), then each CPU's chains:
    /// one word in the compact form (the break's four indices), ten in the
    /// wide form. The compact form is used whenever it holds everything:
    /// after [`TtdBbm::canonical`], which forgets the lifetimes and
    /// renumbers the indices from 0, it always does for a few writes.
    pub fn encode(&self, out: &mut Vec<u64>) {
        let packed: Option<Vec<u64>> = (self.writes >> 24 == 0)
            .then(|| {
                self.chains
                    .iter()
                    .map(|c| (c.life == Chain::default()).then(|| c.brk.packed())?)
                    .collect()
            })
            .flatten();
        let counts = (self.cacheable.len() as u64 & 0xffff) << 8
            | (self.chains.len() as u64 & 0xffff) << 24
            | if self.initial.is_some() { INITIAL } else { 0 };
        match &packed {
            Some(_) => out.push(counts | COMPACT | self.writes << 40),
            None => out.extend_from_slice(&[counts, self.writes]),
        }
        out.extend(self.initial);
        for &(i, v) in &self.cacheable {
            out.extend_from_slice(&[i, v]);
        }
        match packed {
            Some(words) => out.extend(words),
            None => {
                for c in &self.chains {
                    out.extend_from_slice(&c.brk.words());
                    out.extend_from_slice(&c.life.words());
                }
            }
        }
    }

    /// Rebuilds the value [`TtdBbm::encode`] wrote, from the words `next`
    /// yields.
    pub fn decode(next: &mut dyn FnMut() -> u64) -> Self {
        let h = next();
        let compact = h & COMPACT != 0;
        let writes = if compact { h >> 40 } else { next() };
        let initial = (h & INITIAL != 0).then(&mut *next);
        let cacheable = (0..(h >> 8 & 0xffff)).map(|_| (next(), next())).collect();
        let chains = (0..(h >> 24 & 0xffff))
            .map(|_| {
                if compact {
                    Chains {
                        brk: Chain::unpacked(next()),
                        life: Chain::default(),
                    }
                } else {
                    Chains {
                        brk: Chain::read(next),
                        life: Chain::read(next),
                    }
                }
            })
            .collect();
        TtdBbm {
            writes,
            initial,
            cacheable,
            chains,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(b: &TtdBbm<u64>) -> usize {
        let mut words = Vec::new();
        b.encode(&mut words);
        let mut it = words.iter().copied();
        let back = TtdBbm::decode(&mut || it.next().unwrap_or(0));
        assert_eq!(&back, b);
        assert_eq!(it.next(), None, "every word read");
        words.len()
    }

    /// A history with a break by CPU 1 and a write by CPU 2.
    fn history() -> TtdBbm<u64> {
        let mut b = TtdBbm::new(Some(0x403));
        b.write(1, 0, false, |_, _| {});
        b.dsb(1, true, true, 7);
        b.tlbi(1);
        b.dsb(1, true, true, 9);
        b.write(1, 0x1403, true, |_, _| {});
        b.write(2, 0x2403, true, |_, _| {});
        b
    }

    #[test]
    fn every_form_decodes_to_what_was_encoded() {
        roundtrip(&TtdBbm::new(None));
        roundtrip(&TtdBbm::new(Some(0x403)));
        // Lifetimes and steps recorded: the wide form.
        let b = history();
        let wide = roundtrip(&b);
        let mut c = b.clone();
        c.canonical();
        let compact = roundtrip(&c);
        assert!(compact < wide, "{compact} words canonical, {wide} not");
        // The header, the initial value (no later value equals it), two
        // cacheable values, two CPUs' chains (CPU 0's, empty, before CPU
        // 1's; CPU 2 wrote no uncacheable value: its chain is empty, and
        // dropped as the last).
        assert_eq!(compact, 1 + 1 + 2 * 2 + 2);
    }

    #[test]
    fn large_indices_take_the_wide_form() {
        let mut b = TtdBbm::new(None);
        for _ in 0..70_000 {
            b.write(0, 0, false, |_, _| {});
        }
        // Header, writes, one CPU's two chains.
        assert_eq!(roundtrip(&b), 2 + 10);
        b.canonical();
        assert_eq!(roundtrip(&b), 1 + 1);
    }
}
