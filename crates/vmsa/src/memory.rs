//! Simulated physical memory with symbolic page contents.
//!
//! A machine of a terabyte cannot hold its bytes, so a page's contents are a
//! [`Content`]: a base (zero, a region's initial pattern for some frame, or
//! materialised words) plus a sparse overlay of 64-bit words written since.
//! Copying a page copies that value, not bytes. Equality is exact:
//! [`Memory::same_contents`] compares word by word whenever the two
//! representations differ, so two pages are "the same" exactly when every
//! byte is the same (the R_WHZWS contents clause needs nothing less).
//!
//! The store of the frames written so far is in `store.rs`; the journal of
//! changes a copy can replay ([`MemOp`]) in `journal.rs`.

mod journal;
mod store;

pub use journal::MemOp;
use store::PageStore;

use std::fmt;
use std::sync::Arc;

use crate::VmsaError;
use crate::addr::PhysAddr;
use crate::granule::Granule;

/// Computes the initial 64-bit word `word` of frame `frame` of a region.
pub type PatternFn = dyn Fn(u64, usize) -> u64 + Send + Sync;

/// Beyond this many overlay words a page is materialised as plain words.
const OVERLAY_LIMIT: usize = 32;

/// Where a page's words come from before its overlay applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Base {
    /// All zero.
    Zero,
    /// The initial contents of frame `frame` of region `region`.
    Pattern { region: u32, frame: u64 },
    /// Materialised words, shared by the frames copied from one another.
    Words(Arc<[u64]>),
    /// Materialised words of one frame alone (a translation table, a page
    /// written word by word): written in place, with no reference count to
    /// update. A copy of the frame shares its words ([`Memory::copy_frame`]
    /// turns them into [`Base::Words`] first).
    Owned(Box<[u64]>),
}

/// The contents of one page: a base plus a sorted overlay of written words.
/// Cloning shares the overlay.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Content {
    base: Base,
    overlay: Option<Arc<[(u32, u64)]>>,
}

impl Content {
    /// Returns an all-zero page.
    pub const fn zero() -> Self {
        Content {
            base: Base::Zero,
            overlay: None,
        }
    }

    fn overlay(&self) -> &[(u32, u64)] {
        self.overlay.as_deref().unwrap_or(&[])
    }
}

struct Region {
    start: u64,
    end: u64,
    name: Arc<str>,
    pattern: Arc<PatternFn>,
}

/// Physical memory of one machine: `size` bytes of `granule`-sized frames.
#[derive(Clone)]
pub struct Memory {
    granule: Granule,
    frames: u64,
    pages: PageStore,
    regions: Arc<Vec<Region>>,
    /// The changes made since [`Memory::start_journal`], while it runs.
    journal: Option<Vec<MemOp>>,
}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memory")
            .field("granule", &self.granule)
            .field("frames", &self.frames)
            .field("pages_written", &self.pages.len)
            .field(
                "regions",
                &self
                    .regions
                    .iter()
                    .map(|r| (r.name.clone(), r.start..r.end))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PartialEq for Memory {
    fn eq(&self, other: &Self) -> bool {
        self.granule == other.granule
            && self.frames == other.frames
            && Arc::ptr_eq(&self.regions, &other.regions)
            && {
                let mut keys = self.pages.keys().chain(other.pages.keys());
                keys.all(|f| self.same_frames(f, other, f))
            }
    }
}

impl Memory {
    /// Creates `size` bytes of zeroed memory.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::Misaligned`] if `size` is not a multiple of the
    /// page size.
    pub fn new(granule: Granule, size: u64) -> Result<Self, VmsaError> {
        if !size.is_multiple_of(granule.page_size()) || size == 0 {
            return Err(VmsaError::Misaligned {
                addr: size,
                align: granule.page_size(),
            });
        }
        Ok(Memory {
            granule,
            frames: size / granule.page_size(),
            pages: PageStore::new(size / granule.page_size()),
            regions: Arc::new(Vec::new()),
            journal: None,
        })
    }

    /// Returns the granule (the page size of a frame).
    pub fn granule(&self) -> Granule {
        self.granule
    }

    /// Returns the size in bytes.
    pub fn size(&self) -> u64 {
        self.frames * self.granule.page_size()
    }

    /// Returns the number of frames whose contents were written or copied
    /// (the model's own memory cost).
    pub fn pages_stored(&self) -> usize {
        self.pages.len
    }

    /// Declares that frames `start..end` initially hold `pattern(frame,
    /// word)`, e.g. the struct pages a kernel initialised at boot. Frames
    /// written before keep their contents.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::OutOfRange`] if the range leaves memory or
    /// overlaps a region declared before.
    pub fn add_region(
        &mut self,
        name: &str,
        start: u64,
        end: u64,
        pattern: Arc<PatternFn>,
    ) -> Result<(), VmsaError> {
        if start >= end || end > self.frames {
            return Err(VmsaError::OutOfRange {
                addr: end * self.granule.page_size(),
            });
        }
        if self.regions.iter().any(|r| r.start < end && start < r.end) {
            return Err(VmsaError::OutOfRange {
                addr: start * self.granule.page_size(),
            });
        }
        let mut regions: Vec<Region> = self
            .regions
            .iter()
            .map(|r| Region {
                start: r.start,
                end: r.end,
                name: r.name.clone(),
                pattern: r.pattern.clone(),
            })
            .collect();
        self.record(|| MemOp::AddRegion {
            name: name.into(),
            start,
            end,
            pattern: pattern.clone(),
        });
        regions.push(Region {
            start,
            end,
            name: name.into(),
            pattern,
        });
        regions.sort_by_key(|r| r.start);
        self.regions = Arc::new(regions);
        Ok(())
    }

    fn words_per_page(&self) -> usize {
        (self.granule.page_size() / 8) as usize
    }

    fn frame_of(&self, pa: PhysAddr) -> Result<u64, VmsaError> {
        let f = pa.0 >> self.granule.page_shift();
        if f >= self.frames {
            return Err(VmsaError::OutOfRange { addr: pa.0 });
        }
        Ok(f)
    }

    fn initial(&self, frame: u64) -> Content {
        match self
            .regions
            .iter()
            .position(|r| r.start <= frame && frame < r.end)
        {
            Some(i) => Content {
                base: Base::Pattern {
                    region: i as u32,
                    frame,
                },
                overlay: None,
            },
            None => Content::zero(),
        }
    }

    /// Returns the contents of frame `frame` (a copy of the symbolic value).
    pub fn content(&self, frame: u64) -> Content {
        self.pages
            .get(frame)
            .cloned()
            .unwrap_or_else(|| self.initial(frame))
    }

    fn base_word(&self, base: &Base, word: usize) -> u64 {
        match base {
            Base::Zero => 0,
            Base::Pattern { region, frame } => {
                (self.regions[*region as usize].pattern)(*frame, word)
            }
            Base::Words(w) => w[word],
            Base::Owned(w) => w[word],
        }
    }

    #[inline]
    fn content_word(&self, c: &Content, word: usize) -> u64 {
        let Some(o) = c.overlay.as_deref() else {
            return self.base_word(&c.base, word);
        };
        match o.binary_search_by_key(&(word as u32), |&(i, _)| i) {
            Ok(i) => o[i].1,
            Err(_) => self.base_word(&c.base, word),
        }
    }

    /// Reads the aligned 64-bit word at `pa`.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::OutOfRange`] outside memory and
    /// [`VmsaError::Misaligned`] if `pa` is not 8-byte aligned.
    pub fn read_u64(&self, pa: PhysAddr) -> Result<u64, VmsaError> {
        let frame = self.frame_of(pa)?;
        check_word(pa)?;
        let word = self.word_index(pa);
        Ok(match self.pages.get(frame) {
            Some(c) => self.content_word(c, word),
            None => self.content_word(&self.initial(frame), word),
        })
    }

    /// Reads `out.len()` consecutive aligned 64-bit words from `pa`, all in
    /// one page (the entries of a table a run of pages uses), with one
    /// look-up of the page.
    ///
    /// # Errors
    ///
    /// As [`Memory::read_u64`], and [`VmsaError::OutOfRange`] when the words
    /// run past the page.
    pub fn read_run(&self, pa: PhysAddr, out: &mut [u64]) -> Result<(), VmsaError> {
        let frame = self.frame_of(pa)?;
        check_word(pa)?;
        let first = self.word_index(pa);
        if first + out.len() > self.words_per_page() {
            return Err(VmsaError::OutOfRange {
                addr: pa.0 + out.len() as u64 * 8,
            });
        }
        let initial;
        let c = match self.pages.get(frame) {
            Some(c) => c,
            None => {
                initial = self.initial(frame);
                &initial
            }
        };
        for (i, w) in out.iter_mut().enumerate() {
            *w = self.content_word(c, first + i);
        }
        Ok(())
    }

    fn word_index(&self, pa: PhysAddr) -> usize {
        ((pa.0 & (self.granule.page_size() - 1)) / 8) as usize
    }

    /// Writes the aligned 64-bit word at `pa`.
    ///
    /// # Errors
    ///
    /// As [`Memory::read_u64`].
    pub fn write_u64(&mut self, pa: PhysAddr, value: u64) -> Result<(), VmsaError> {
        let frame = self.frame_of(pa)?;
        check_word(pa)?;
        self.record(|| MemOp::WriteU64 { pa, value });
        let word = self.word_index(pa) as u32;
        match self.pages.get_mut(frame) {
            Some(Content {
                base: Base::Owned(w),
                ..
            }) => {
                w[word as usize] = value;
                return Ok(());
            }
            Some(Content {
                base: Base::Words(w),
                ..
            }) => {
                Arc::make_mut(w)[word as usize] = value;
                return Ok(());
            }
            _ => {}
        }
        self.write_words_unrecorded(frame, &[(word, value)])
    }

    /// Writes several 64-bit words (`(index in the page, value)`) of frame
    /// `frame` at once.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::OutOfRange`] outside memory or for a word index
    /// beyond the page.
    pub fn write_words(&mut self, frame: u64, words: &[(u32, u64)]) -> Result<(), VmsaError> {
        self.write_words_unrecorded(frame, words)?;
        if let Some(j) = self.journal.as_mut() {
            // The result itself when it is shared cheaply (a base and an
            // overlay): the copy then shares the overlay rather than
            // building its own.
            j.push(match self.pages.get(frame) {
                Some(c) if !matches!(c.base, Base::Owned(_)) => MemOp::Set {
                    frame,
                    content: c.clone(),
                },
                _ => MemOp::WriteWords {
                    frame,
                    words: words.into(),
                },
            });
        }
        Ok(())
    }

    fn write_words_unrecorded(
        &mut self,
        frame: u64,
        words: &[(u32, u64)],
    ) -> Result<(), VmsaError> {
        let shift = self.granule.page_shift();
        self.frame_of(PhysAddr(frame << shift))?;
        let wpp = self.words_per_page();
        if let Some(&(w, _)) = words.iter().find(|&&(w, _)| w as usize >= wpp) {
            return Err(VmsaError::OutOfRange {
                addr: (frame << shift) + u64::from(w) * 8,
            });
        }
        // Taken out, not cloned: materialised words are then changed in
        // place rather than copied.
        let c = match self.pages.take(frame) {
            Some(c) => c,
            None => self.initial(frame),
        };
        let Content { base, overlay } = c;
        let c = match base {
            Base::Words(mut w) => {
                let m = Arc::make_mut(&mut w);
                for &(i, v) in words {
                    m[i as usize] = v;
                }
                Content {
                    base: Base::Words(w),
                    overlay: None,
                }
            }
            Base::Owned(mut w) => {
                for &(i, v) in words {
                    w[i as usize] = v;
                }
                Content {
                    base: Base::Owned(w),
                    overlay: None,
                }
            }
            base => {
                let old = overlay.as_deref().unwrap_or(&[]);
                let mut o: Vec<(u32, u64)> = Vec::with_capacity(old.len() + words.len());
                o.extend_from_slice(old);
                for &(i, v) in words {
                    // Words past the last one written are appended (the
                    // common case: a run of struct pages in order).
                    if o.last().is_none_or(|&(j, _)| j < i) {
                        o.push((i, v));
                        continue;
                    }
                    match o.binary_search_by_key(&i, |&(j, _)| j) {
                        Ok(k) => o[k].1 = v,
                        Err(k) => o.insert(k, (i, v)),
                    }
                }
                let c = Content {
                    base,
                    overlay: Some(o.into()),
                };
                if c.overlay().len() > OVERLAY_LIMIT {
                    let words: Vec<u64> = (0..wpp).map(|i| self.content_word(&c, i)).collect();
                    Content {
                        base: Base::Owned(words.into_boxed_slice()),
                        overlay: None,
                    }
                } else {
                    c
                }
            }
        };
        self.pages.insert(frame, c);
        Ok(())
    }

    /// Sets every word of frame `frame` at once (a new translation table
    /// filled before it is published): the same contents as writing each
    /// word with [`Memory::write_u64`], kept as the frame's own words.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::OutOfRange`] outside memory or when `words` is
    /// not one page of words.
    pub fn set_words(&mut self, frame: u64, words: Box<[u64]>) -> Result<(), VmsaError> {
        let shift = self.granule.page_shift();
        self.frame_of(PhysAddr(frame << shift))?;
        if words.len() != self.words_per_page() {
            return Err(VmsaError::OutOfRange {
                addr: (frame << shift) + words.len() as u64 * 8,
            });
        }
        if self.journal.is_some() {
            self.record(|| MemOp::SetWords {
                frame,
                words: words.clone(),
            });
        }
        self.pages.insert(
            frame,
            Content {
                base: Base::Owned(words),
                overlay: None,
            },
        );
        Ok(())
    }

    /// Sets frame `frame` to all zeroes.
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::OutOfRange`] outside memory.
    pub fn zero_frame(&mut self, frame: u64) -> Result<(), VmsaError> {
        self.frame_of(PhysAddr(frame << self.granule.page_shift()))?;
        self.pages.insert(frame, Content::zero());
        self.record(|| MemOp::Zero(frame));
        Ok(())
    }

    /// Copies the contents of frame `src` to frame `dst` (`copy_page`).
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::OutOfRange`] outside memory.
    pub fn copy_frame(&mut self, dst: u64, src: u64) -> Result<(), VmsaError> {
        let shift = self.granule.page_shift();
        self.frame_of(PhysAddr(dst << shift))?;
        self.frame_of(PhysAddr(src << shift))?;
        if let Some(c) = self.pages.get_mut(src)
            && let Base::Owned(w) = &mut c.base
        {
            // From now on the copies share the words.
            c.base = Base::Words(Arc::from(std::mem::take(w)));
        }
        let c = self.content(src);
        self.pages.insert(dst, c);
        self.record(|| MemOp::Copy { dst, src });
        Ok(())
    }

    /// Sets frame `frame` to the contents `c` (as returned by [`Memory::content`]).
    ///
    /// # Errors
    ///
    /// Returns [`VmsaError::OutOfRange`] outside memory.
    pub fn set_content(&mut self, frame: u64, c: Content) -> Result<(), VmsaError> {
        self.frame_of(PhysAddr(frame << self.granule.page_shift()))?;
        if self.journal.is_some() {
            self.record(|| MemOp::Set {
                frame,
                content: c.clone(),
            });
        }
        self.pages.insert(frame, c);
        Ok(())
    }

    /// Tells whether frames `a` and `b` hold the same bytes.
    pub fn same_contents(&self, a: u64, b: u64) -> bool {
        self.same_frames(a, self, b)
    }

    /// Tells whether `n` frames from `a` hold the same bytes as `n` frames from `b`.
    pub fn same_range(&self, a: u64, b: u64, n: u64) -> bool {
        a == b || (0..n).all(|i| self.same_contents(a + i, b + i))
    }

    fn content_ref(&self, frame: u64) -> std::borrow::Cow<'_, Content> {
        match self.pages.get(frame) {
            Some(c) => std::borrow::Cow::Borrowed(c),
            None => std::borrow::Cow::Owned(self.initial(frame)),
        }
    }

    fn same_frames(&self, a: u64, other: &Memory, b: u64) -> bool {
        let ca = self.content_ref(a);
        let cb = other.content_ref(b);
        if *ca == *cb {
            return true;
        }
        (0..self.words_per_page()).all(|i| self.content_word(&ca, i) == other.content_word(&cb, i))
    }
}

fn check_word(pa: PhysAddr) -> Result<(), VmsaError> {
    if !pa.0.is_multiple_of(8) {
        return Err(VmsaError::Misaligned {
            addr: pa.0,
            align: 8,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_is_exact_across_representations() {
        let mut m = Memory::new(Granule::K4, 1 << 20).unwrap();
        // A region whose frames hold their frame number in word 0 only.
        m.add_region("ids", 16, 32, Arc::new(|f, w| if w == 0 { f } else { 0 }))
            .unwrap();
        assert!(!m.same_contents(16, 17));
        assert!(m.same_contents(0, 1)); // zero pages
        // Writing frame 17's id into frame 2 makes it equal to frame 17.
        m.write_u64(PhysAddr(2 << 12), 17).unwrap();
        assert!(m.same_contents(2, 17));
        // A copy is equal until one side is written.
        m.copy_frame(3, 16).unwrap();
        assert!(m.same_contents(3, 16));
        m.write_u64(PhysAddr((3 << 12) + 8), 1).unwrap();
        assert!(!m.same_contents(3, 16));
        // Writing the value back makes them equal again.
        m.write_u64(PhysAddr((3 << 12) + 8), 0).unwrap();
        assert!(m.same_contents(3, 16));
        // Two copies written differently, then alike (same base, different
        // overlays).
        m.copy_frame(4, 16).unwrap();
        m.write_u64(PhysAddr((3 << 12) + 16), 5).unwrap();
        m.write_u64(PhysAddr((4 << 12) + 24), 5).unwrap();
        assert!(!m.same_contents(3, 4));
        m.write_u64(PhysAddr((3 << 12) + 24), 5).unwrap();
        m.write_u64(PhysAddr((4 << 12) + 16), 5).unwrap();
        assert!(m.same_contents(3, 4));
        // Frames of one region with the same overlay stay apart by base.
        m.write_u64(PhysAddr((18 << 12) + 8), 7).unwrap();
        m.write_u64(PhysAddr((19 << 12) + 8), 7).unwrap();
        assert!(!m.same_contents(18, 19));
        // Two written zero pages: equal while their written words are.
        m.write_u64(PhysAddr((5 << 12) + 8), 9).unwrap();
        m.write_u64(PhysAddr((6 << 12) + 16), 9).unwrap();
        assert!(!m.same_contents(5, 6));
        m.write_u64(PhysAddr((5 << 12) + 8), 0).unwrap();
        m.write_u64(PhysAddr((6 << 12) + 16), 0).unwrap();
        assert!(m.same_contents(5, 6));
    }

    #[test]
    fn copies_of_a_page_written_in_place_stay_apart() {
        // 64 MiB: 16384 frames, four chunks of the page store.
        let mut m = Memory::new(Granule::K4, 64 << 20).unwrap();
        let (a, b, c) = (4095u64, 4096u64, 16383u64);
        // More words than the overlay keeps: frame `a` is materialised.
        for i in 0..64u64 {
            m.write_u64(PhysAddr((a << 12) + i * 8), i + 1).unwrap();
        }
        m.copy_frame(b, a).unwrap();
        m.copy_frame(c, a).unwrap();
        assert_eq!(m.pages_stored(), 3);
        // Writing the original (or a copy) leaves the others as they were.
        m.write_u64(PhysAddr(a << 12), 100).unwrap();
        m.write_u64(PhysAddr((c << 12) + 8), 200).unwrap();
        assert_eq!(m.read_u64(PhysAddr(a << 12)).unwrap(), 100);
        assert_eq!(m.read_u64(PhysAddr(b << 12)).unwrap(), 1);
        assert_eq!(m.read_u64(PhysAddr((b << 12) + 8)).unwrap(), 2);
        assert_eq!(m.read_u64(PhysAddr((c << 12) + 8)).unwrap(), 200);
        assert!(!m.same_contents(a, b) && !m.same_contents(b, c));
        // Equality of memories is by contents, whatever the representation.
        let mut other = m.clone();
        assert_eq!(m, other);
        other.write_u64(PhysAddr((b << 12) + 8), 3).unwrap();
        assert_ne!(m, other);
        other.write_u64(PhysAddr((b << 12) + 8), 2).unwrap();
        assert_eq!(m, other);
    }

    #[test]
    fn materialisation_keeps_words() {
        let mut m = Memory::new(Granule::K4, 1 << 20).unwrap();
        for i in 0..100u64 {
            m.write_u64(PhysAddr(4096 + i * 8), i * 3).unwrap();
        }
        for i in 0..100u64 {
            assert_eq!(m.read_u64(PhysAddr(4096 + i * 8)).unwrap(), i * 3);
        }
        m.copy_frame(5, 1).unwrap();
        assert!(m.same_contents(5, 1));
        assert!(m.read_u64(PhysAddr(1 << 20)).is_err());
        assert!(m.read_u64(PhysAddr(4)).is_err());
    }
}
