//! Memory as a difference from the initial memory: the words written and
//! the frames replaced as a whole (a copy, a filled table).

use std::fmt;
use std::hash::{Hash, Hasher};

use vmsa::{PhysAddr, memory::Memory};

use crate::world::Source;

/// Memory as a difference from the initial memory.
#[derive(Default)]
pub struct Mem {
    /// Words written, `[physical address, value]`, sorted by address (pairs
    /// of words, so that the encoding copies them as one slice).
    pub(super) words: Vec<[u64; 2]>,
    /// Frames whose contents were replaced, sorted.
    pub(super) frames: Vec<(u64, Source)>,
    /// Unchanged since decoded ([`super::State::decode_spans`]), copies included:
    /// as a TLB's mark, not part of the value.
    pub(super) kept: bool,
}

impl fmt::Debug for Mem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mem")
            .field("words", &self.words)
            .field("frames", &self.frames)
            .finish()
    }
}

impl PartialEq for Mem {
    fn eq(&self, other: &Self) -> bool {
        self.words == other.words && self.frames == other.frames
    }
}

impl Eq for Mem {}

impl Hash for Mem {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.words.hash(state);
        self.frames.hash(state);
    }
}

impl Clone for Mem {
    fn clone(&self) -> Self {
        Mem {
            words: self.words.clone(),
            frames: self.frames.clone(),
            kept: self.kept,
        }
    }

    fn clone_from(&mut self, source: &Self) {
        self.words.clone_from(&source.words);
        self.frames.clone_from(&source.frames);
        self.kept = source.kept;
    }
}

impl Mem {
    /// Returns where the contents of `frame` come from.
    pub fn source(&self, frame: u64) -> Source {
        match self.frames.binary_search_by_key(&frame, |f| f.0) {
            Ok(i) => self.frames[i].1,
            Err(_) => Source::Base(frame),
        }
    }

    /// Reads the word at `pa`.
    pub fn read(&self, base: &Memory, shift: u32, pa: u64) -> u64 {
        if let Ok(i) = self.words.binary_search_by_key(&pa, |w| w[0]) {
            return self.words[i][1];
        }
        let frame = pa >> shift;
        let off = pa & ((1 << shift) - 1);
        match self.source(frame) {
            Source::Base(f) => base.read_u64(PhysAddr((f << shift) | off)).unwrap_or(0),
            Source::Fill { first, step } => first.wrapping_add((off / 8).wrapping_mul(step)),
        }
    }

    /// Tells whether frames `a` and `b` hold the same contents.
    pub fn same_frame(&self, base: &Memory, shift: u32, a: u64, b: u64) -> bool {
        if a == b {
            return true;
        }
        let (ra, rb) = (self.word_range(a, shift), self.word_range(b, shift));
        if ra.is_empty() && rb.is_empty() {
            match (self.source(a), self.source(b)) {
                (Source::Base(x), Source::Base(y)) => return base.same_contents(x, y),
                (x, y) if x == y => return true,
                _ => {}
            }
        }
        (0..1u64 << (shift - 3)).all(|w| {
            self.read(base, shift, (a << shift) + w * 8)
                == self.read(base, shift, (b << shift) + w * 8)
        })
    }

    /// Writes the word at `pa`.
    pub fn write(&mut self, pa: u64, value: u64) {
        self.kept = false;
        match self.words.binary_search_by_key(&pa, |w| w[0]) {
            Ok(i) => self.words[i][1] = value,
            Err(i) => self.words.insert(i, [pa, value]),
        }
    }

    fn set_source(&mut self, frame: u64, source: Source) {
        self.kept = false;
        let i = self.frames.binary_search_by_key(&frame, |f| f.0);
        match (i, source == Source::Base(frame)) {
            (Ok(i), true) => {
                self.frames.remove(i);
            }
            (Ok(i), false) => self.frames[i].1 = source,
            (Err(_), true) => {}
            (Err(i), false) => self.frames.insert(i, (frame, source)),
        }
    }

    fn word_range(&self, frame: u64, shift: u32) -> std::ops::Range<usize> {
        let lo = self.words.partition_point(|w| w[0] < frame << shift);
        let hi = self.words.partition_point(|w| w[0] < (frame + 1) << shift);
        lo..hi
    }

    /// Replaces the contents of `frame` by `source`.
    pub fn fill(&mut self, frame: u64, source: Source, shift: u32) {
        self.kept = false;
        let r = self.word_range(frame, shift);
        self.words.drain(r);
        self.set_source(frame, source);
    }

    /// Copies frame `src` onto frame `dst` (`copy_page()`).
    pub fn copy(&mut self, dst: u64, src: u64, shift: u32) {
        if dst == src {
            return;
        }
        let source = self.source(src);
        let moved: Vec<(u64, u64)> = self.words[self.word_range(src, shift)]
            .iter()
            .map(|&[pa, v]| ((pa - (src << shift)) | (dst << shift), v))
            .collect();
        self.fill(dst, source, shift);
        for (pa, v) in moved {
            self.write(pa, v);
        }
    }
}
