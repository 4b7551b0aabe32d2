//! Dense per-frame bookkeeping for machines of a terabyte or more.

use rustc_hash::FxHashMap;

/// Frames per chunk: a chunk is one byte per frame, allocated when one of
/// its frames is first counted.
const CHUNK_SHIFT: u32 = 12;

/// A byte that means "the count is in the overflow map".
const MANY: u8 = u8::MAX;

/// A count per frame, dense: one byte per frame in chunks of 4096 frames
/// allocated where frames are counted (the vmemmap's backing and the pages
/// HVO allocates), with counts of 255 and more in a map (a shared tail
/// page mapped by every tail). A lookup is two indexings and touches one
/// byte, so counting the output frames of millions of stores stays in
/// cache.
#[derive(Clone, Debug, Default)]
pub struct FrameCounts {
    chunks: Vec<Option<Box<[u8]>>>,
    more: FxHashMap<u64, u32>,
}

impl PartialEq for FrameCounts {
    fn eq(&self, other: &Self) -> bool {
        // A chunk of zeroes equals no chunk.
        let zero = |c: &Option<Box<[u8]>>| c.as_ref().is_none_or(|c| c.iter().all(|&b| b == 0));
        let n = self.chunks.len().max(other.chunks.len());
        self.more == other.more
            && (0..n).all(|i| match (self.chunks.get(i), other.chunks.get(i)) {
                (Some(Some(a)), Some(Some(b))) => a == b,
                (a, b) => a.is_none_or(zero) && b.is_none_or(zero),
            })
    }
}

impl Eq for FrameCounts {}

impl FrameCounts {
    fn byte(&self, frame: u64) -> u8 {
        let (c, i) = (
            (frame >> CHUNK_SHIFT) as usize,
            (frame & ((1 << CHUNK_SHIFT) - 1)) as usize,
        );
        match self.chunks.get(c) {
            Some(Some(b)) => b[i],
            _ => 0,
        }
    }

    fn byte_mut(chunks: &mut Vec<Option<Box<[u8]>>>, frame: u64) -> &mut u8 {
        let (c, i) = (
            (frame >> CHUNK_SHIFT) as usize,
            (frame & ((1 << CHUNK_SHIFT) - 1)) as usize,
        );
        if c >= chunks.len() {
            chunks.resize(c + 1, None);
        }
        &mut chunks[c].get_or_insert_with(|| vec![0; 1 << CHUNK_SHIFT].into_boxed_slice())[i]
    }

    /// Returns the count of `frame`.
    pub fn get(&self, frame: u64) -> u32 {
        match self.byte(frame) {
            MANY => self.more[&frame],
            b => u32::from(b),
        }
    }

    /// Adds one to the count of `frame`.
    pub fn inc(&mut self, frame: u64) {
        let b = Self::byte_mut(&mut self.chunks, frame);
        match *b {
            MANY => *self.more.get_mut(&frame).expect("count of 255 or more") += 1,
            n if n == MANY - 1 => {
                *b = MANY;
                self.more.insert(frame, u32::from(MANY));
            }
            _ => *b += 1,
        }
    }

    /// Takes one from the count of `frame` (no effect at zero).
    pub fn dec(&mut self, frame: u64) {
        if self.byte(frame) == 0 {
            return;
        }
        let b = Self::byte_mut(&mut self.chunks, frame);
        if *b == MANY {
            let n = self.more.get_mut(&frame).expect("count of 255 or more");
            *n -= 1;
            if *n < u32::from(MANY) {
                self.more.remove(&frame);
                *b = MANY - 1;
            }
        } else {
            *b -= 1;
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

    #[test]
    fn counts_overflow_the_byte() {
        let mut c = FrameCounts::default();
        for _ in 0..300 {
            c.inc(5 << 20);
        }
        assert_eq!(c.get(5 << 20), 300);
        for _ in 0..46 {
            c.dec(5 << 20);
        }
        assert_eq!(c.get(5 << 20), 254);
        c.inc(5 << 20);
        assert_eq!(c.get(5 << 20), 255);
        for _ in 0..255 {
            c.dec(5 << 20);
        }
        assert_eq!(c.get(5 << 20), 0);
        assert_eq!(c, FrameCounts::default());
    }
}
