//! A thread's hardware AF/dirty updates on their way to memory and its
//! early translations (`engine/thread/hw_update.rs`,
//! `engine/thread/early.rs`), and their encoding as words.

/// A hardware AF/dirty update made by a thread's walk that walkers see
/// (memory holds it) but explicit accesses do not yet: they still read
/// `old` at `pa` (`engine/thread/hw_update.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PendingHu {
    /// Where the descriptor lives.
    pub pa: u64,
    /// The value the update replaced: what explicit accesses read until
    /// the update reaches memory.
    pub old: u64,
}

/// A plain store's walk and dirty-bit update performed ahead of the store
/// (`engine/thread/early.rs`): the store, when it executes, uses this
/// translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EarlyWalk {
    /// The store's instruction.
    pub pc: u16,
    /// The virtual address it stores to.
    pub va: u64,
    /// The physical address the walk translated it to.
    pub pa: u64,
    /// Where the leaf descriptor lives.
    pub desc_pa: u64,
    /// The value the update wrote there.
    pub desc: u64,
}

/// Appends the encoding of `hu` and `pre`: a word with both counts, then
/// two words per update and five per early walk. Nothing when both are
/// empty (the caller's header says which).
pub(super) fn encode(hu: &[PendingHu], pre: &[EarlyWalk], out: &mut Vec<u64>) {
    if hu.is_empty() && pre.is_empty() {
        return;
    }
    out.push(hu.len() as u64 & 0xffff | (pre.len() as u64 & 0xffff) << 16);
    for h in hu {
        out.extend_from_slice(&[h.pa, h.old]);
    }
    for e in pre {
        out.extend_from_slice(&[u64::from(e.pc), e.va, e.pa, e.desc_pa, e.desc]);
    }
}

/// Rebuilds what [`encode`] wrote.
pub(super) fn decode(next: &mut dyn FnMut() -> u64) -> (Vec<PendingHu>, Vec<EarlyWalk>) {
    let n = next();
    let hu = (0..n & 0xffff)
        .map(|_| PendingHu {
            pa: next(),
            old: next(),
        })
        .collect();
    let pre = (0..(n >> 16 & 0xffff))
        .map(|_| EarlyWalk {
            pc: next() as u16,
            va: next(),
            pa: next(),
            desc_pa: next(),
            desc: next(),
        })
        .collect();
    (hu, pre)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{State, Th};
    use crate::thread::ThreadFault;
    use vmsa::walk::FaultKind;

    #[test]
    fn pending_updates_and_early_walks_round_trip_and_tell_states_apart() {
        let s = State {
            threads: vec![
                Th {
                    pc: 3,
                    regs: vec![1, 2],
                    hu: vec![
                        PendingHu {
                            pa: 0x8008,
                            old: 0x403,
                        },
                        PendingHu {
                            pa: 0x8008,
                            old: 0x603,
                        },
                    ],
                    pre: vec![EarlyWalk {
                        pc: 5,
                        va: 0x40_0000,
                        pa: 0x10_0000,
                        desc_pa: 0x8000,
                        desc: 0x8_0000_0010_0683,
                    }],
                    ..Th::default()
                },
                Th {
                    pc: 1,
                    regs: vec![7],
                    ..Th::default()
                },
            ],
            faults: vec![ThreadFault {
                thread: 1,
                pc: 0,
                va: 0x40_1000,
                kind: FaultKind::Permission,
            }],
            ..State::default()
        };
        let mut words = Vec::new();
        s.encode(&mut words);
        let mut back = State::default();
        State::decode_into(&words, &mut back);
        assert_eq!(back, s);
        // Without the updates, or once one reached memory: another state.
        for change in [
            |s: &mut State| s.threads[0].hu.remove(0),
            |s: &mut State| s.threads[0].hu.remove(1),
        ] {
            let mut t = s.clone();
            change(&mut t);
            let mut other = Vec::new();
            t.encode(&mut other);
            assert_ne!(other, words);
            State::decode_into(&other, &mut back);
            assert_eq!(back, t);
        }
        let mut t = s.clone();
        t.threads[0].pre.clear();
        t.threads[0].hu.clear();
        let mut other = Vec::new();
        t.encode(&mut other);
        State::decode_into(&other, &mut back);
        assert_eq!(back, t);
    }
}
