//! The journal of changes to memory ([`MemOp`]): recorded while it runs,
//! replayed in order on a copy (the rule checker's thread keeps one).

use std::sync::Arc;

use super::{Content, Memory, PatternFn};
use crate::VmsaError;
use crate::addr::PhysAddr;

/// One change to memory, as the journal records it ([`Memory::start_journal`]):
/// replayed in order on a copy of the memory as it was when the journal
/// started ([`Memory::apply`]), it makes the copy hold the same contents.
#[derive(Clone)]
pub enum MemOp {
    /// [`Memory::write_u64`].
    WriteU64 {
        /// The word's address.
        pa: PhysAddr,
        /// The value.
        value: u64,
    },
    /// [`Memory::write_words`].
    WriteWords {
        /// The frame.
        frame: u64,
        /// The words written.
        words: Box<[(u32, u64)]>,
    },
    /// [`Memory::set_words`].
    SetWords {
        /// The frame.
        frame: u64,
        /// Its words.
        words: Box<[u64]>,
    },
    /// [`Memory::zero_frame`].
    Zero(u64),
    /// [`Memory::copy_frame`].
    Copy {
        /// Destination frame.
        dst: u64,
        /// Source frame.
        src: u64,
    },
    /// [`Memory::set_content`].
    Set {
        /// The frame.
        frame: u64,
        /// Its new contents.
        content: Content,
    },
    /// [`Memory::add_region`].
    AddRegion {
        /// The region's name.
        name: Arc<str>,
        /// First frame.
        start: u64,
        /// Frame after the last.
        end: u64,
        /// The initial contents.
        pattern: Arc<PatternFn>,
    },
}

impl Memory {
    /// Starts recording every change to the contents ([`MemOp`]) until
    /// [`Memory::stop_journal`]; a copy of the memory taken now, fed the
    /// changes by [`Memory::apply`] in order, follows this one exactly (the
    /// rule checker's thread keeps such a copy).
    pub fn start_journal(&mut self) {
        self.journal.get_or_insert_with(Vec::new);
    }

    /// Stops recording changes and drops those not yet taken.
    pub fn stop_journal(&mut self) {
        self.journal = None;
    }

    /// Moves the changes recorded since the last call to the end of `out`,
    /// in order (none unless [`Memory::start_journal`] runs).
    pub fn take_journal<T>(&mut self, out: &mut Vec<T>, wrap: impl Fn(MemOp) -> T) {
        if let Some(j) = self.journal.as_mut() {
            out.extend(j.drain(..).map(wrap));
        }
    }

    /// Makes the change `op` that another memory recorded (see
    /// [`Memory::start_journal`]).
    ///
    /// # Errors
    ///
    /// Returns the error the change itself returns, which it cannot when
    /// this memory is a copy of the one that recorded it.
    pub fn apply(&mut self, op: MemOp) -> Result<(), VmsaError> {
        match op {
            MemOp::WriteU64 { pa, value } => self.write_u64(pa, value),
            MemOp::WriteWords { frame, words } => self.write_words(frame, &words),
            MemOp::SetWords { frame, words } => self.set_words(frame, words),
            MemOp::Zero(frame) => self.zero_frame(frame),
            MemOp::Copy { dst, src } => self.copy_frame(dst, src),
            MemOp::Set { frame, content } => self.set_content(frame, content),
            MemOp::AddRegion {
                name,
                start,
                end,
                pattern,
            } => self.add_region(&name, start, end, pattern),
        }
    }

    pub(super) fn record(&mut self, op: impl FnOnce() -> MemOp) {
        if let Some(j) = self.journal.as_mut() {
            j.push(op());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::granule::Granule;

    #[test]
    fn a_copy_fed_the_journal_follows_the_original() {
        let mut m = Memory::new(Granule::K4, 1 << 20).unwrap();
        m.add_region("ids", 16, 32, Arc::new(|f, w| f * 1000 + w as u64))
            .unwrap();
        m.write_u64(PhysAddr(4096), 7).unwrap();
        let mut copy = m.clone();
        m.start_journal();
        m.write_u64(PhysAddr(8192 + 16), 3).unwrap();
        m.write_words(17, &[(1, 5), (9, 6)]).unwrap();
        m.copy_frame(3, 17).unwrap();
        m.set_content(4, m.content(18)).unwrap();
        m.zero_frame(1).unwrap();
        m.set_words(5, (0..512u64).collect()).unwrap();
        m.write_u64(PhysAddr((5 << 12) + 8), 99).unwrap();
        m.add_region("more", 40, 48, Arc::new(|f, _| f)).unwrap();
        let mut ops = Vec::new();
        m.take_journal(&mut ops, |op| op);
        assert_eq!(ops.len(), 8);
        // Every word, every frame (`==` also asks for the very same list of
        // regions, which a replayed `add_region` rebuilds).
        let words = |x: &Memory| -> Vec<u64> {
            (0..256u64 * 512)
                .map(|i| x.read_u64(PhysAddr(i * 8)).unwrap())
                .collect()
        };
        assert_ne!(words(&copy), words(&m));
        for op in ops {
            copy.apply(op).unwrap();
        }
        assert_eq!(words(&copy), words(&m));
        assert_eq!(copy.read_u64(PhysAddr(40 << 12)).unwrap(), 40);
        // A run of words reads what single reads read, within one page.
        let mut run = [0u64; 4];
        m.read_run(PhysAddr((17 << 12) + 8), &mut run).unwrap();
        let one = |w: u64| m.read_u64(PhysAddr((17 << 12) + 8 * w)).unwrap();
        assert_eq!(run, [one(1), one(2), one(3), one(4)]);
        assert!(m.read_run(PhysAddr((17 << 12) + 4088), &mut run).is_err());
        // Stopped, it records nothing.
        m.stop_journal();
        m.write_u64(PhysAddr(0), 1).unwrap();
        let mut none: Vec<MemOp> = Vec::new();
        m.take_journal(&mut none, |op| op);
        assert!(none.is_empty());
    }
}
