//! A state of the exploration: the whole model, compactly.
//!
//! Memory is the initial memory (shared by every state, not stored) plus
//! what changed: frames whose contents were replaced as a whole (a copy,
//! a filled table) and single words written. Together with the pending
//! descriptor stores, the pending TLBIs, every CPU's TLB and every CPU's
//! position, a state is a few hundred bytes, `Clone + Hash + Eq`.

use vmsa::machine::{PendingStore, PendingTlbi};
use vmsa::tlb::Tlb;
use vmsa::{PhysAddr, memory::Memory};

use crate::world::Source;

/// Memory as a difference from the initial memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Mem {
    /// Words written, by physical address, sorted.
    words: Vec<(u64, u64)>,
    /// Frames whose contents were replaced, sorted.
    frames: Vec<(u64, Source)>,
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
        if let Ok(i) = self.words.binary_search_by_key(&pa, |w| w.0) {
            return self.words[i].1;
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
        match self.words.binary_search_by_key(&pa, |w| w.0) {
            Ok(i) => self.words[i].1 = value,
            Err(i) => self.words.insert(i, (pa, value)),
        }
    }

    fn set_source(&mut self, frame: u64, source: Source) {
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
        let lo = self.words.partition_point(|w| w.0 < frame << shift);
        let hi = self.words.partition_point(|w| w.0 < (frame + 1) << shift);
        lo..hi
    }

    /// Replaces the contents of `frame` by `source`.
    pub fn fill(&mut self, frame: u64, source: Source, shift: u32) {
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
            .map(|&(pa, v)| ((pa - (src << shift)) | (dst << shift), v))
            .collect();
        self.fill(dst, source, shift);
        for (pa, v) in moved {
            self.write(pa, v);
        }
    }
}

/// One workload CPU's position and registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wl {
    /// The next operation.
    pub pc: u8,
    /// The struct page picked (index among the candidates).
    pub pick: Option<u8>,
    /// Registers.
    pub regs: [u64; 2],
    /// Inside an RCU read section.
    pub rcu: bool,
    /// For a split load: how the first half was translated.
    pub half: Half,
}

/// What the first half of a split load saw, relative to the remap: whether
/// its value equals what the page's old frame and its new frame held at
/// that moment (both, for a page the program does not move).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Half {
    /// No half loaded.
    #[default]
    None,
    /// The first half is loaded.
    Loaded {
        /// The value matches the old generation.
        old: bool,
        /// The value matches the new generation.
        new: bool,
    },
}

/// A state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Coherent memory: what data accesses and CASes see.
    pub mem: Mem,
    /// Descriptor stores walkers cannot see yet (all the updater's).
    pub pending: Vec<PendingStore>,
    /// TLBIs not complete, with the CPUs they may still remove entries on.
    pub tlbis: Vec<PendingTlbi>,
    /// Every CPU's TLB.
    pub tlbs: Vec<Tlb>,
    /// The updater's next operation.
    pub pc: u16,
    /// Failed compare-and-swaps of the current CAS so far.
    pub retries: u8,
    /// Where the updater is in retrying a failed CAS: 0 not retrying; 1 to
    /// 4: the AF-clear store, `dsb ishst`, the TLBI, `dsb ish` to run next.
    pub retry_stage: u8,
    /// Other CPUs paused or stopped.
    pub paused: bool,
    /// A `synchronize_rcu()` waiting for these CPUs to leave their read
    /// section.
    pub gp: Option<u64>,
    /// The workload CPUs (CPU `i + 1` is `wl[i]`).
    pub wl: Vec<Wl>,
    /// Frames freed, sorted.
    pub freed: Vec<u64>,
    /// The last value stored to each VA (by any CPU), sorted by VA.
    pub written: Vec<(u64, u64)>,
    /// Freshly allocated frames the updater wrote (a copy, a filled
    /// table, a repair) whose writes other CPUs may not see yet: ordinary
    /// stores, ordered before later stores only by a barrier (the
    /// `smp_wmb()` of `vmemmap_remap_pte()` and `vmemmap_split_pmd()`).
    pub unpublished: Vec<u64>,
}

impl State {
    /// Estimates the bytes this state holds, heap included.
    pub fn approx_bytes(&self) -> usize {
        use std::mem::size_of_val;
        size_of_val(self)
            + size_of_val(self.mem.words.as_slice())
            + size_of_val(self.mem.frames.as_slice())
            + size_of_val(self.pending.as_slice())
            + size_of_val(self.tlbis.as_slice())
            + self
                .tlbs
                .iter()
                .map(|t| size_of_val(t) + size_of_val(t.entries()))
                .sum::<usize>()
            + size_of_val(self.wl.as_slice())
            + size_of_val(self.freed.as_slice())
            + size_of_val(self.written.as_slice())
            + size_of_val(self.unpublished.as_slice())
    }

    /// Records a store of `value` to `va`.
    pub fn wrote(&mut self, va: u64, value: u64) {
        match self.written.binary_search_by_key(&va, |w| w.0) {
            Ok(i) => self.written[i].1 = value,
            Err(i) => self.written.insert(i, (va, value)),
        }
    }
}
