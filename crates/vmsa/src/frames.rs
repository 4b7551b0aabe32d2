//! Dense per-frame bookkeeping for machines of a terabyte or more.

use rustc_hash::FxHashMap;

/// A count per frame, dense for the common 0 and 1 (one bit per frame) and
/// sparse above: the live-mapping counts of a vmemmap where most frames are
/// mapped once and a few (HVO's kept pages) many times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameCounts {
    bits: Vec<u64>,
    more: FxHashMap<u64, u32>,
}

impl FrameCounts {
    /// Returns the count of `frame`.
    pub fn get(&self, frame: u64) -> u32 {
        match self.more.get(&frame) {
            Some(&n) => n,
            None => u32::from(self.bit(frame)),
        }
    }

    fn bit(&self, frame: u64) -> bool {
        let (w, b) = ((frame / 64) as usize, frame % 64);
        self.bits.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    fn set_bit(&mut self, frame: u64, on: bool) {
        let (w, b) = ((frame / 64) as usize, frame % 64);
        if w >= self.bits.len() {
            self.bits.resize(w + 1, 0);
        }
        if on {
            self.bits[w] |= 1 << b;
        } else {
            self.bits[w] &= !(1 << b);
        }
    }

    /// Adds one to the count of `frame`.
    pub fn inc(&mut self, frame: u64) {
        if let Some(n) = self.more.get_mut(&frame) {
            *n += 1;
        } else if self.bit(frame) {
            self.more.insert(frame, 2);
        } else {
            self.set_bit(frame, true);
        }
    }

    /// Takes one from the count of `frame` (no effect at zero).
    pub fn dec(&mut self, frame: u64) {
        if let Some(n) = self.more.get_mut(&frame) {
            *n -= 1;
            if *n == 1 {
                self.more.remove(&frame);
            }
        } else {
            self.set_bit(frame, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_up_and_down() {
        let mut c = FrameCounts::default();
        assert_eq!(c.get(1000), 0);
        c.inc(1000);
        c.inc(1000);
        c.inc(1000);
        c.inc(7);
        assert_eq!((c.get(1000), c.get(7), c.get(8)), (3, 1, 0));
        c.dec(1000);
        c.dec(1000);
        assert_eq!(c.get(1000), 1);
        c.dec(1000);
        c.dec(7);
        assert_eq!((c.get(1000), c.get(7)), (0, 0));
        c.dec(7);
        assert_eq!(c.get(7), 0);
    }
}
