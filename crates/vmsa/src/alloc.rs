//! A buddy allocator of physical frames with orders.
//!
//! Blocks of order `n` are `2^n` naturally aligned frames, as in Linux's
//! page allocator (mm/page_alloc.c). The allocator hands out the lowest
//! free block first so that runs are deterministic, checks every free
//! against the allocation it undoes, and can be told to fail the n-th
//! allocation (failure injection for rollback tests).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::VmsaError;

/// The free blocks of one order: a bit per block, and a bit per word of
/// those saying the word is not zero, so the lowest block is found by
/// scanning a 64th of the words (a B-tree set before; same order, lowest
/// first, without a node allocation per insert).
#[derive(Clone, Debug, Default)]
struct FreeList {
    /// Bit `b % 64` of word `b / 64`: block `b` (first frame `b << order`)
    /// is free.
    bits: Vec<u64>,
    /// Bit `w % 64` of word `w / 64`: `bits[w]` is not zero.
    summary: Vec<u64>,
    /// Free blocks.
    len: u64,
    /// Every summary word below this one is zero.
    low: usize,
    order: u8,
}

impl PartialEq for FreeList {
    fn eq(&self, other: &Self) -> bool {
        self.order == other.order && self.len == other.len && self.bits == other.bits
    }
}

impl Eq for FreeList {}

impl FreeList {
    fn new(frames: u64, order: u8) -> Self {
        let blocks = frames.div_ceil(1 << order);
        let words = blocks.div_ceil(64);
        FreeList {
            bits: vec![0; words as usize],
            summary: vec![0; words.div_ceil(64) as usize],
            len: 0,
            low: 0,
            order,
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds the block at `frame` (aligned to the order).
    fn insert(&mut self, frame: u64) {
        let b = frame >> self.order;
        let w = (b / 64) as usize;
        if self.bits[w] & (1 << (b % 64)) == 0 {
            self.bits[w] |= 1 << (b % 64);
            self.summary[w / 64] |= 1 << (w % 64);
            self.low = self.low.min(w / 64);
            self.len += 1;
        }
    }

    /// Removes the block at `frame`; tells whether it was there.
    fn remove(&mut self, frame: u64) -> bool {
        let b = frame >> self.order;
        let w = (b / 64) as usize;
        let Some(word) = self.bits.get_mut(w) else {
            return false;
        };
        if *word & (1 << (b % 64)) == 0 {
            return false;
        }
        *word &= !(1 << (b % 64));
        if *word == 0 {
            self.summary[w / 64] &= !(1 << (w % 64));
        }
        self.len -= 1;
        true
    }

    /// Removes and returns the lowest free block's first frame.
    fn pop_first(&mut self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let s = self.low + self.summary[self.low..].iter().position(|&x| x != 0)?;
        self.low = s;
        let w = s * 64 + self.summary[s].trailing_zeros() as usize;
        let b = w as u64 * 64 + u64::from(self.bits[w].trailing_zeros());
        let frame = b << self.order;
        self.remove(frame);
        Some(frame)
    }

    /// Returns the first frames of the free blocks whose first frame is in
    /// `start..end`, lowest first.
    fn range(&self, start: u64, end: u64) -> Vec<u64> {
        let mut out = Vec::new();
        if self.len == 0 || start >= end {
            return out;
        }
        let first = start.div_ceil(1 << self.order);
        let last = (end - 1) >> self.order;
        let mut w = (first / 64) as usize;
        while w < self.bits.len() && (w as u64) * 64 <= last {
            let mut word = self.bits[w];
            while word != 0 {
                let b = w as u64 * 64 + u64::from(word.trailing_zeros());
                word &= word - 1;
                if b >= first && b <= last {
                    out.push(b << self.order);
                }
            }
            w += 1;
        }
        out
    }
}

/// A buddy allocator over a range of frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameAllocator {
    max_order: u8,
    free: Vec<FreeList>,
    /// Bit per frame: an allocated block starts there.
    allocated: Vec<u64>,
    /// The order of every allocated block of order > 0.
    orders: FxHashMap<u64, u8>,
    /// Frames that were never given to the allocator (memblock reservations):
    /// start -> end.
    reserved: BTreeMap<u64, u64>,
    frames: u64,
    free_frames: u64,
    allocations: u64,
    fail_at: Option<u64>,
}

impl FrameAllocator {
    /// Creates an allocator for frames `0..frames`, all reserved; give frames
    /// to it with [`FrameAllocator::add_free_range`].
    pub fn new(frames: u64, max_order: u8) -> Self {
        let mut reserved = BTreeMap::new();
        if frames > 0 {
            reserved.insert(0, frames);
        }
        FrameAllocator {
            max_order,
            free: (0..=max_order).map(|o| FreeList::new(frames, o)).collect(),
            allocated: vec![0; frames.div_ceil(64) as usize],
            orders: FxHashMap::default(),
            reserved,
            frames,
            free_frames: 0,
            allocations: 0,
            fail_at: None,
        }
    }

    /// Returns the highest order the allocator manages.
    pub fn max_order(&self) -> u8 {
        self.max_order
    }

    /// Returns the number of free frames.
    pub fn free_frames(&self) -> u64 {
        self.free_frames
    }

    /// Returns how many allocations succeeded so far.
    pub fn allocations(&self) -> u64 {
        self.allocations
    }

    /// Makes the allocation with index `n` (counting successful ones from
    /// zero, as [`FrameAllocator::allocations`] does) fail, once.
    pub fn fail_allocation(&mut self, n: Option<u64>) {
        self.fail_at = n;
    }

    fn unreserve(&mut self, start: u64, end: u64) -> Result<(), VmsaError> {
        let (&rs, &re) = self
            .reserved
            .range(..=start)
            .next_back()
            .filter(|&(_, &re)| re >= end)
            .ok_or(VmsaError::BadFree {
                frame: start,
                order: 0,
                why: "frames are neither reserved nor allocated",
            })?;
        self.reserved.remove(&rs);
        if rs < start {
            self.reserved.insert(rs, start);
        }
        if end < re {
            self.reserved.insert(end, re);
        }
        Ok(())
    }

    /// Gives reserved frames `start..end` to the allocator.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::BadFree`] if a frame of the range is not reserved.
    pub fn add_free_range(&mut self, start: u64, end: u64) -> Result<(), VmsaError> {
        if start >= end {
            return Ok(());
        }
        self.unreserve(start, end)?;
        let mut f = start;
        while f < end {
            let mut order = self.max_order;
            while order > 0 && (!f.is_multiple_of(1 << order) || f + (1 << order) > end) {
                order -= 1;
            }
            self.insert_free(f, order);
            f += 1 << order;
        }
        Ok(())
    }

    /// Takes frames `start..end` out of the free lists and marks them
    /// reserved (memory the caller lays out itself, e.g. boot-time data);
    /// frames already reserved or allocated are left as they are.
    pub fn claim(&mut self, start: u64, end: u64) {
        let end = end.min(self.frames);
        if start >= end {
            return;
        }
        let mut keep = Vec::new();
        for o in 0..=self.max_order {
            let size = 1u64 << o;
            let hit: Vec<u64> = self.free[usize::from(o)]
                .range(start.saturating_sub(size - 1), end)
                .into_iter()
                .filter(|&b| b + size > start)
                .collect();
            for b in hit {
                self.free[usize::from(o)].remove(b);
                self.free_frames -= size;
                let lo = b.max(start);
                let hi = (b + size).min(end);
                self.add_reserved(lo, hi);
                if b < lo {
                    keep.push((b, lo));
                }
                if hi < b + size {
                    keep.push((hi, b + size));
                }
            }
        }
        for (a, b) in keep {
            self.add_reserved(a, b);
            let _ = self.add_free_range(a, b);
        }
    }

    fn add_reserved(&mut self, mut start: u64, mut end: u64) {
        if let Some((&s, &e)) = self.reserved.range(..=start).next_back()
            && e >= start
        {
            start = s;
            end = end.max(e);
            self.reserved.remove(&s);
        }
        while let Some((&s, &e)) = self.reserved.range(start..=end).next() {
            end = end.max(e);
            self.reserved.remove(&s);
        }
        self.reserved.insert(start, end);
    }

    fn insert_free(&mut self, frame: u64, order: u8) {
        let mut frame = frame;
        let mut order = order;
        self.free_frames += 1 << order;
        while order < self.max_order {
            let buddy = frame ^ (1 << order);
            if !self.free[usize::from(order)].remove(buddy) {
                break;
            }
            frame = frame.min(buddy);
            order += 1;
        }
        self.free[usize::from(order)].insert(frame);
    }

    /// Allocates a block of `2^order` frames and returns its first frame.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::OutOfMemory`] when no block is free or when this
    /// allocation was chosen to fail.
    pub fn alloc(&mut self, order: u8) -> Result<u64, VmsaError> {
        if order > self.max_order || self.fail_at == Some(self.allocations) {
            self.fail_at = None;
            return Err(VmsaError::OutOfMemory { order });
        }
        let from = (order..=self.max_order)
            .find(|&o| !self.free[usize::from(o)].is_empty())
            .ok_or(VmsaError::OutOfMemory { order })?;
        let frame = self.free[usize::from(from)]
            .pop_first()
            .ok_or(VmsaError::OutOfMemory { order })?;
        let mut o = from;
        while o > order {
            o -= 1;
            self.free[usize::from(o)].insert(frame + (1 << o));
        }
        self.free_frames -= 1 << order;
        // A free block has no entry in `orders` (`mark(.., None)` removed
        // it): only a block of order > 0 needs one.
        self.allocated[(frame / 64) as usize] |= 1 << (frame % 64);
        if order > 0 {
            self.orders.insert(frame, order);
        }
        self.allocations += 1;
        Ok(frame)
    }

    /// Frees the block of `2^order` frames at `frame`: a block this
    /// allocator handed out, or reserved frames handed over for the first
    /// time (as Linux frees boot-time vmemmap pages).
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::BadFree`] for a double free, a wrong order, a
    /// misaligned frame or frames that are neither allocated nor reserved.
    pub fn free(&mut self, frame: u64, order: u8) -> Result<(), VmsaError> {
        let bad = |why| VmsaError::BadFree { frame, order, why };
        if !frame.is_multiple_of(1 << order) || order > self.max_order {
            return Err(bad("misaligned block or order too large"));
        }
        match self.order_of(frame) {
            Some(o) if o == order => self.mark(frame, None),
            Some(_) => return Err(bad("order differs from the allocation")),
            None => {
                if frame + (1 << order) > self.frames {
                    return Err(bad("frames outside memory"));
                }
                self.unreserve(frame, frame + (1 << order))
                    .map_err(|_| bad("double free, or frames never allocated"))?;
            }
        }
        self.insert_free(frame, order);
        Ok(())
    }

    /// Splits an allocated block of order `order` into `2^order` blocks of
    /// order 0 (Linux `split_page`), so they can be freed one by one.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::BadFree`] if no such block is allocated.
    pub fn split(&mut self, frame: u64, order: u8) -> Result<(), VmsaError> {
        if self.order_of(frame) != Some(order) {
            return Err(VmsaError::BadFree {
                frame,
                order,
                why: "split of a block that is not allocated with that order",
            });
        }
        for f in frame..frame + (1 << order) {
            self.mark(f, Some(0));
        }
        Ok(())
    }

    /// Returns the order of the allocated block starting at `frame`.
    fn order_of(&self, frame: u64) -> Option<u8> {
        let w = self.allocated.get((frame / 64) as usize)?;
        if w & (1 << (frame % 64)) == 0 {
            return None;
        }
        Some(self.orders.get(&frame).copied().unwrap_or(0))
    }

    /// Records (or with `None` forgets) an allocated block at `frame`.
    fn mark(&mut self, frame: u64, order: Option<u8>) {
        let (w, b) = ((frame / 64) as usize, frame % 64);
        match order {
            Some(o) => {
                self.allocated[w] |= 1 << b;
                if o > 0 {
                    self.orders.insert(frame, o);
                } else {
                    self.orders.remove(&frame);
                }
            }
            None => {
                self.allocated[w] &= !(1 << b);
                self.orders.remove(&frame);
            }
        }
    }

    /// Tells whether `frame` is the first frame of an allocated block.
    pub fn is_allocated(&self, frame: u64) -> bool {
        self.order_of(frame).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buddies_split_and_merge() {
        let mut a = FrameAllocator::new(1024, 10);
        a.add_free_range(0, 1024).unwrap();
        assert_eq!(a.free_frames(), 1024);
        let x = a.alloc(0).unwrap();
        let y = a.alloc(3).unwrap();
        assert_eq!(x, 0);
        assert_eq!(y, 8);
        assert_eq!(a.free_frames(), 1024 - 9);
        assert!(a.free(x, 3).is_err(), "wrong order");
        a.free(x, 0).unwrap();
        assert!(a.free(x, 0).is_err(), "double free");
        a.free(y, 3).unwrap();
        assert_eq!(a.free_frames(), 1024);
        // Fully merged again: one order-10 block.
        assert_eq!(a.alloc(10).unwrap(), 0);
    }

    #[test]
    fn reserved_frames_are_handed_over_once() {
        let mut a = FrameAllocator::new(64, 4);
        a.add_free_range(16, 64).unwrap();
        assert_eq!(a.free_frames(), 48);
        a.free(8, 3).unwrap();
        assert_eq!(a.free_frames(), 56);
        assert!(a.free(8, 3).is_err());
        assert!(a.free(0, 5).is_err());
    }

    #[test]
    fn claimed_frames_leave_the_free_lists() {
        let mut a = FrameAllocator::new(64, 4);
        a.add_free_range(0, 64).unwrap();
        a.claim(20, 24);
        assert_eq!(a.free_frames(), 60);
        for _ in 0..60 {
            let f = a.alloc(0).unwrap();
            assert!(!(20..24).contains(&f));
        }
        assert!(a.alloc(0).is_err());
        // Claimed frames can be handed over later, as boot memory is.
        a.free(20, 2).unwrap();
        assert_eq!(a.free_frames(), 4);
    }

    #[test]
    fn freed_frames_come_back_lowest_first() {
        let mut a = FrameAllocator::new(1 << 14, 10);
        a.add_free_range(0, 1 << 14).unwrap();
        let all: Vec<u64> = (0..1 << 14).map(|_| a.alloc(0).unwrap()).collect();
        assert_eq!(all, (0..1 << 14).collect::<Vec<u64>>());
        // Free scattered frames, far apart and out of order.
        for f in [9000, 5, 16383, 4096, 70, 71] {
            a.free(f, 0).unwrap();
        }
        // 70 and 71 merged into one order-1 block; order 0 hands out the
        // rest lowest first, then splits the order-1 block.
        let got: Vec<u64> = (0..6).map(|_| a.alloc(0).unwrap()).collect();
        assert_eq!(got, [5, 4096, 9000, 16383, 70, 71]);
        assert!(a.alloc(0).is_err());
    }

    #[test]
    fn failure_injection_fails_once() {
        let mut a = FrameAllocator::new(64, 4);
        a.add_free_range(0, 64).unwrap();
        a.fail_allocation(Some(1));
        a.alloc(0).unwrap();
        assert!(a.alloc(0).is_err());
        a.alloc(0).unwrap();
    }

    #[test]
    fn split_blocks_free_page_by_page() {
        let mut a = FrameAllocator::new(64, 4);
        a.add_free_range(0, 64).unwrap();
        let b = a.alloc(3).unwrap();
        a.split(b, 3).unwrap();
        for f in b..b + 8 {
            a.free(f, 0).unwrap();
        }
        assert_eq!(a.free_frames(), 64);
    }
}
