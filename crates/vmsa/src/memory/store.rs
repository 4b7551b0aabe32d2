//! The dense frame store: the contents of the frames written so far,
//! indexed by frame number through a directory of chunks.

use super::Content;

/// At most this many chunks in the page store's directory.
const MAX_DIR: u64 = 1 << 16;

/// The contents of the frames written so far, indexed by frame number: a
/// directory of chunks of consecutive frames, a chunk allocated when one
/// of its frames is first written. Frames a run touches are dense (the
/// vmemmap's backing, and what the allocator hands out lowest first), so a
/// lookup is two indexings, never a hash, and storing a frame never moves
/// the others (no rehash of millions of entries).
#[derive(Clone)]
pub(super) struct PageStore {
    shift: u32,
    dir: Vec<Option<Box<[Option<Content>]>>>,
    pub(super) len: usize,
}

impl PageStore {
    pub(super) fn new(frames: u64) -> Self {
        // Chunks of 4096 frames (fewer for small memories), more for memories
        // so large that the directory would exceed `MAX_DIR` entries.
        let mut shift = 12u32.min(64 - frames.saturating_sub(1).leading_zeros());
        while frames >> shift > MAX_DIR {
            shift += 1;
        }
        PageStore {
            shift,
            dir: vec![None; frames.div_ceil(1 << shift) as usize],
            len: 0,
        }
    }

    fn split(&self, frame: u64) -> (usize, usize) {
        (
            (frame >> self.shift) as usize,
            (frame & ((1 << self.shift) - 1)) as usize,
        )
    }

    #[inline]
    pub(super) fn get(&self, frame: u64) -> Option<&Content> {
        let (d, i) = self.split(frame);
        self.dir.get(d)?.as_ref()?[i].as_ref()
    }

    #[inline]
    pub(super) fn get_mut(&mut self, frame: u64) -> Option<&mut Content> {
        let (d, i) = self.split(frame);
        self.dir.get_mut(d)?.as_mut()?[i].as_mut()
    }

    pub(super) fn insert(&mut self, frame: u64, c: Content) {
        let (d, i) = self.split(frame);
        let n = 1usize << self.shift;
        let s = &mut self.dir[d].get_or_insert_with(|| vec![None; n].into_boxed_slice())[i];
        if s.is_none() {
            self.len += 1;
        }
        *s = Some(c);
    }

    pub(super) fn take(&mut self, frame: u64) -> Option<Content> {
        let (d, i) = self.split(frame);
        let c = self.dir.get_mut(d)?.as_mut()?[i].take();
        if c.is_some() {
            self.len -= 1;
        }
        c
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.dir.iter().enumerate().flat_map(move |(d, c)| {
            c.iter().flat_map(move |c| {
                c.iter()
                    .enumerate()
                    .filter(|(_, x)| x.is_some())
                    .map(move |(i, _)| ((d as u64) << self.shift) + i as u64)
            })
        })
    }
}
