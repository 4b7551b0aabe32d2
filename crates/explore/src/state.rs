//! A state of the exploration: the whole model, compactly.
//!
//! Memory is the initial memory (shared by every state, not stored) plus
//! what changed: frames whose contents were replaced as a whole (a copy,
//! a filled table) and single words written. Together with the pending
//! descriptor stores, the pending TLBIs, every CPU's TLB and every CPU's
//! position, a state is a few hundred bytes, `Clone + Hash + Eq`.

use std::ops::Range;

use vmsa::descriptor::{Attributes, LeafAttrs, Shareability};
use vmsa::machine::{PendingStore, PendingTlbi};
use vmsa::tlb::{Tlb, TlbEntry, TlbKind, Tlbi, TlbiKind, TlbiScope};
use vmsa::{PhysAddr, VirtAddr};

use crate::world::Source;

mod bbm;
mod mem;
mod thread;
mod views;
pub use bbm::HerdBbm;
mod thread_hu;
pub use mem::Mem;
pub use thread::{Th, ThStatus};
pub use thread_hu::{EarlyWalk, PendingHu};
pub use views::Views;
pub(crate) use views::insert as insert_view;

use crate::thread::ThreadFault;

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

/// What the first half of a split load saw, relative to the remap: the
/// versions of the vmemmap pages it crosses (the mappings the sequential
/// run passes through, [`crate::Scenario::straddle_versions`]) whose frame
/// held its value at that moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Half {
    /// No half loaded.
    #[default]
    None,
    /// The first half is loaded.
    Loaded {
        /// Bit `k`: the value is what version `k` shows (at most
        /// [`Half::MAX_VERSIONS`] versions).
        versions: u64,
    },
}

impl Half {
    /// How many versions a half tells apart (the bits its encoding has
    /// room for, see [`State::encode`]).
    pub const MAX_VERSIONS: usize = 45;
}

/// A state.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
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
    /// The last value stored to each VA (by any CPU), `[va, value]`,
    /// sorted by VA (pairs of words, encoded as one slice).
    pub written: Vec<[u64; 2]>,
    /// Freshly allocated frames the updater wrote (a copy, a filled
    /// table, a repair) whose writes other CPUs may not see yet: ordinary
    /// stores, ordered before later stores only by a barrier (the
    /// `smp_wmb()` of `vmemmap_remap_pte()` and `vmemmap_split_pmd()`).
    pub unpublished: Vec<u64>,
    /// The threads ([`crate::thread`]): CPU `1 + wl.len() + t` is
    /// `threads[t]`.
    pub threads: Vec<Th>,
    /// The faults the threads took, sorted.
    pub faults: Vec<ThreadFault>,
    /// herd7's BBM bookkeeping of the threads (empty without threads).
    pub herd_bbm: HerdBbm,
}

impl Clone for State {
    fn clone(&self) -> Self {
        let mut s = State::default();
        s.clone_from(self);
        s
    }

    /// Copies `source` into this state's storage: no allocation once the
    /// vectors are big enough (the search copies a state per successor).
    fn clone_from(&mut self, source: &Self) {
        self.mem.clone_from(&source.mem);
        self.tlbs.truncate(source.tlbs.len());
        let n = self.tlbs.len();
        for (d, t) in self.tlbs.iter_mut().zip(&source.tlbs) {
            d.clone_from(t);
        }
        self.tlbs.extend(source.tlbs[n..].iter().cloned());
        self.copy_rest(source);
    }
}

impl State {
    /// Makes this state equal to `source` again after a step changed it,
    /// copying of the memory and the TLBs only what the step changed: the
    /// memory if it changed, the TLBs whose mark is no longer their
    /// position. `self` must have been copied from `source` (`clone_from`,
    /// or this function) and `source` decoded ([`State::decode_into`]
    /// marks its memory kept and its TLBs with their positions); a TLB
    /// keeps its mark while unchanged and takes it along when the
    /// symmetry reduction moves it.
    pub fn restore_from(&mut self, source: &Self) {
        if !self.mem.kept {
            self.mem.clone_from(&source.mem);
        }
        for (i, (d, t)) in self.tlbs.iter_mut().zip(&source.tlbs).enumerate() {
            if d.mark() != Some(i as u32) {
                d.clone_from(t);
            }
        }
        self.copy_rest(source);
    }

    /// Copies from `source` everything but the memory and the TLBs.
    #[inline]
    fn copy_rest(&mut self, source: &Self) {
        self.pending.clone_from(&source.pending);
        self.tlbis.clone_from(&source.tlbis);
        self.pc = source.pc;
        self.retries = source.retries;
        self.retry_stage = source.retry_stage;
        self.paused = source.paused;
        self.gp = source.gp;
        self.wl.clone_from(&source.wl);
        self.freed.clone_from(&source.freed);
        self.written.clone_from(&source.written);
        self.unpublished.clone_from(&source.unpublished);
        // The threads' parts are empty in every kernel scenario: copied
        // only when either side has some (the search copies a state per
        // successor).
        if !(self.threads.is_empty() && source.threads.is_empty()) {
            self.threads.clone_from(&source.threads);
        }
        if !(self.faults.is_empty() && source.faults.is_empty()) {
            self.faults.clone_from(&source.faults);
        }
        if !(self.herd_bbm.is_empty() && source.herd_bbm.is_empty()) {
            self.herd_bbm.clone_from(&source.herd_bbm);
        }
    }

    /// Records a store of `value` to `va`.
    pub fn wrote(&mut self, va: u64, value: u64) {
        match self.written.binary_search_by_key(&va, |w| w[0]) {
            Ok(i) => self.written[i][1] = value,
            Err(i) => self.written.insert(i, [va, value]),
        }
    }
}

/// The fields of a state's encoding header that hold counts: 16 bits each.
const COUNTS: usize = 12;

impl State {
    /// Appends this state's encoding to `out`: a sequence of words from
    /// which [`State::decode_into`] rebuilds it exactly, so two states are
    /// equal exactly when their encodings are (the search stores frontier
    /// states encoded in one arena, and fingerprints the encoding).
    pub fn encode(&self, out: &mut Vec<u64>) {
        self.encode_reusing(out, &[], &Spans::default());
    }

    /// Appends this state's encoding to `out` as [`State::encode`] does,
    /// copying from `parent`, the encoding of the state it was copied from
    /// ([`State::restore_from`]), the parts it kept: the memory if it is
    /// unchanged, each TLB marked `m` (TLB `m` of the parent). `spans`
    /// says where they lie in `parent` ([`State::decode_spans`]); without
    /// spans everything is encoded.
    pub fn encode_reusing(&self, out: &mut Vec<u64>, parent: &[u64], spans: &Spans) {
        // Every vector of a state is far below 2^16 entries: the counts,
        // 16 bits each, four to a word, in the order of the parts.
        let c = |n: usize| n as u64 & 0xffff;
        let head = out.len();
        out.extend_from_slice(&[
            u64::from(self.pc)
                | u64::from(self.retries) << 16
                | u64::from(self.retry_stage) << 24
                | u64::from(self.paused) << 32
                | u64::from(self.gp.is_some()) << 33,
            c(self.mem.words.len())
                | c(self.mem.frames.len()) << 16
                | c(self.pending.len()) << 32
                | c(self.tlbis.len()) << 48,
            c(self.tlbs.len())
                | c(self.wl.len()) << 16
                | c(self.freed.len()) << 32
                | c(self.written.len()) << 48,
            c(self.unpublished.len()) | c(self.threads.len()) << 16 | c(self.faults.len()) << 32,
        ]);
        if let Some(m) = self.gp {
            out.push(m);
        }
        // Parts copied from `parent`: runs of parts that lie one after
        // another there are copied at once.
        let mut run = 0..0;
        let mut copy = |out: &mut Vec<u64>, r: Option<&Range<usize>>| match r {
            Some(r) if run.end == r.start && !run.is_empty() => run.end = r.end,
            _ => {
                out.extend_from_slice(
                    &parent[std::mem::replace(&mut run, r.cloned().unwrap_or(0..0))],
                );
            }
        };
        match &spans.mem {
            Some(r) if self.mem.kept => copy(out, Some(r)),
            _ => {
                out.extend_from_slice(self.mem.words.as_flattened());
                for &(f, src) in &self.mem.frames {
                    match src {
                        Source::Base(b) => out.extend_from_slice(&[f, 0, b]),
                        Source::Fill { first, step } => {
                            out.extend_from_slice(&[f, 1, first, step]);
                        }
                    }
                }
            }
        }
        if !self.pending.is_empty() || !self.tlbis.is_empty() {
            copy(out, None);
        }
        for p in &self.pending {
            // A physical address has at most 52 bits (FEAT_LPA); the CPU
            // number (below 64) goes above it, and bit 52 says whether the
            // store is seen by some walkers already (threads only: a word
            // with them follows).
            out.extend_from_slice(&[
                p.pa.0 | (p.cpu as u64) << 56 | u64::from(p.walkers != 0) << 52,
                p.prev,
                p.value,
            ]);
            if p.walkers != 0 {
                out.push(p.walkers);
            }
        }
        for t in &self.tlbis {
            let kind = TlbiKind::ALL
                .iter()
                .position(|&k| k == t.op.kind)
                .unwrap_or(0) as u64;
            out.extend_from_slice(&[
                (t.cpu as u64) << 32
                    | u64::from(t.op.scope == TlbiScope::Local) << 24
                    | kind
                    | u64::from(t.op.asid) << 8,
                t.op.va.0,
                t.waiting,
            ]);
        }
        for tlb in &self.tlbs {
            if let Some(r) = tlb.mark().and_then(|m| spans.tlbs.get(m as usize)) {
                copy(out, Some(r));
                continue;
            }
            copy(out, None);
            out.push(tlb.entries().len() as u64);
            for e in tlb.entries() {
                encode_entry(e, out);
            }
        }
        copy(out, None);
        for w in &self.wl {
            let (half, versions) = match w.half {
                Half::None => (0, 0),
                Half::Loaded { versions } => (1, versions),
            };
            out.extend_from_slice(&[
                u64::from(w.pc)
                    | u64::from(w.pick.is_some()) << 8
                    | u64::from(w.pick.unwrap_or(0)) << 9
                    | u64::from(w.rcu) << 17
                    | half << 18
                    | versions << 19,
                w.regs[0],
                w.regs[1],
            ]);
        }
        out.extend_from_slice(&self.freed);
        out.extend_from_slice(self.written.as_flattened());
        out.extend_from_slice(&self.unpublished);
        for t in &self.threads {
            t.encode(out);
        }
        for f in &self.faults {
            thread::encode_fault(f, out);
        }
        if !self.herd_bbm.is_empty() {
            // Its length, known once encoded, is the last count.
            let at = out.len();
            self.herd_bbm.encode(out);
            out[head + 3] |= c(out.len() - at) << 48;
        }
    }

    /// Rebuilds into `s` the state [`State::encode`] wrote to `words`,
    /// reusing `s`'s storage; marks each TLB with its position.
    pub fn decode_into(words: &[u64], s: &mut State) {
        Self::decode_spans(words, s, &mut Spans::default());
    }

    /// Decodes as [`State::decode_into`] does, and records in `spans`
    /// where the memory's and each TLB's encodings lie in `words` (for
    /// [`State::encode_reusing`]).
    pub fn decode_spans(words: &[u64], s: &mut State, spans: &mut Spans) {
        spans.tlbs.clear();
        let mut r = Reader { words, at: 0 };
        let h = r.next();
        s.pc = h as u16;
        s.retries = (h >> 16) as u8;
        s.retry_stage = (h >> 24) as u8;
        s.paused = h >> 32 & 1 != 0;
        let mut counts = [0usize; COUNTS];
        let w = [r.next(), r.next(), r.next()];
        for (k, c) in counts.iter_mut().enumerate() {
            *c = (w[k / 4] >> (16 * (k % 4)) & 0xffff) as usize;
        }
        s.gp = (h >> 33 & 1 != 0).then(|| r.next());
        let start = r.at;
        s.mem.words.clear();
        s.mem.words.extend_from_slice(pairs(r.take(2 * counts[0])));
        s.mem.frames.clear();
        for _ in 0..counts[1] {
            let f = r.next();
            let src = match r.next() {
                0 => Source::Base(r.next()),
                _ => Source::Fill {
                    first: r.next(),
                    step: r.next(),
                },
            };
            s.mem.frames.push((f, src));
        }
        s.mem.kept = true;
        spans.mem = Some(start..r.at.min(words.len()));
        s.pending.clear();
        for _ in 0..counts[2] {
            let pa = r.next();
            let (prev, value) = (r.next(), r.next());
            s.pending.push(PendingStore {
                cpu: (pa >> 56) as usize,
                pa: PhysAddr(pa & ((1 << 52) - 1)),
                prev,
                value,
                walkers: if pa >> 52 & 1 != 0 { r.next() } else { 0 },
            });
        }
        s.tlbis.clear();
        for _ in 0..counts[3] {
            let k = r.next();
            s.tlbis.push(PendingTlbi {
                cpu: (k >> 32) as usize,
                op: Tlbi {
                    kind: TlbiKind::ALL[(k & 0xff) as usize % TlbiKind::ALL.len()],
                    scope: if k >> 24 & 1 == 1 {
                        TlbiScope::Local
                    } else {
                        TlbiScope::Broadcast
                    },
                    asid: (k >> 8) as u16,
                    va: VirtAddr(r.next()),
                },
                waiting: r.next(),
            });
        }
        s.tlbs.resize_with(counts[4], Tlb::default);
        for (i, tlb) in s.tlbs.iter_mut().enumerate() {
            let start = r.at;
            tlb.clear();
            for _ in 0..r.next() {
                // Encoded from a sorted TLB, in order.
                tlb.push_sorted(decode_entry(&mut r));
            }
            tlb.set_mark(i as u32);
            spans.tlbs.push(start..r.at.min(words.len()));
        }
        s.wl.clear();
        for _ in 0..counts[5] {
            let h = r.next();
            s.wl.push(Wl {
                pc: h as u8,
                pick: (h >> 8 & 1 != 0).then_some((h >> 9) as u8),
                rcu: h >> 17 & 1 != 0,
                half: if h >> 18 & 1 != 0 {
                    Half::Loaded { versions: h >> 19 }
                } else {
                    Half::None
                },
                regs: [r.next(), r.next()],
            });
        }
        s.freed.clear();
        s.freed.extend_from_slice(r.take(counts[6]));
        s.written.clear();
        s.written.extend_from_slice(pairs(r.take(2 * counts[7])));
        s.unpublished.clear();
        s.unpublished.extend_from_slice(r.take(counts[8]));
        if counts[9..].iter().all(|&c| c == 0)
            && s.threads.is_empty()
            && s.faults.is_empty()
            && s.herd_bbm.is_empty()
        {
            // A kernel scenario's state: no threads, faults or herd7
            // bookkeeping (the search decodes a state per expansion).
            return;
        }
        s.threads.clear();
        for _ in 0..counts[9] {
            s.threads.push(Th::decode(&mut || r.next()));
        }
        s.faults.clear();
        for _ in 0..counts[10] {
            let a = r.next();
            s.faults.push(thread::decode_fault(a, r.next()));
        }
        match counts[11] {
            0 => s.herd_bbm = HerdBbm::default(),
            n => s.herd_bbm.decode_from(r.take(n)),
        }
    }
}

/// Views `words` as pairs (a trailing odd word, only in a truncated
/// encoding, is left out).
fn pairs(words: &[u64]) -> &[[u64; 2]] {
    bytemuck::cast_slice(&words[..words.len() & !1])
}

/// Where the parts of a state's encoding that a copy of it may keep lie
/// in the encoding (see [`State::decode_spans`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spans {
    /// The memory.
    pub mem: Option<Range<usize>>,
    /// Each TLB, in order.
    pub tlbs: Vec<Range<usize>>,
}

struct Reader<'a> {
    words: &'a [u64],
    at: usize,
}

impl Reader<'_> {
    fn next(&mut self) -> u64 {
        let w = self.words.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        w
    }

    fn take(&mut self, n: usize) -> &[u64] {
        let end = (self.at + n).min(self.words.len());
        let out = &self.words[self.at.min(end)..end];
        self.at += n;
        out
    }
}

fn encode_entry(e: &TlbEntry, out: &mut Vec<u64>) {
    let head = u64::from(e.size_shift)
        | u64::from(e.level) << 8
        | u64::from(e.asid.is_some()) << 17
        | u64::from(e.asid.unwrap_or(0)) << 18;
    match e.kind {
        TlbKind::Walk { next } => out.extend_from_slice(&[e.va.0, head, e.desc_pa.0, next.0]),
        TlbKind::Leaf { oa, attrs } => {
            let sh = match attrs.sh {
                Shareability::NonShareable => 0,
                Shareability::Reserved => 1,
                Shareability::Outer => 2,
                Shareability::Inner => 3,
            };
            // AttrIndx (3 bits), SH (2), the software bits (4) and the
            // ignored bits (5) fit above the ASID; RES0 bits (should be
            // none) take a word only when set.
            let small = u64::from(attrs.attr_indx)
                | sh << 8
                | u64::from(attrs.sw) << 10
                | u64::from(attrs.ignored) << 18;
            let head = head | 1 << 16 | u64::from(attrs.res0 != 0) << 35 | small << 36;
            out.extend_from_slice(&[e.va.0, head, e.desc_pa.0, oa.0, attrs.flags.bits()]);
            if attrs.res0 != 0 {
                out.push(attrs.res0);
            }
        }
    }
}

fn decode_entry(r: &mut Reader<'_>) -> TlbEntry {
    let va = VirtAddr(r.next());
    let head = r.next();
    let desc_pa = PhysAddr(r.next());
    let to = PhysAddr(r.next());
    let kind = if head >> 16 & 1 == 0 {
        TlbKind::Walk { next: to }
    } else {
        let flags = Attributes::from_bits_retain(r.next());
        let res0 = if head >> 35 & 1 != 0 { r.next() } else { 0 };
        let m = head >> 36;
        TlbKind::Leaf {
            oa: to,
            attrs: LeafAttrs {
                flags,
                attr_indx: m as u8,
                sh: match m >> 8 & 3 {
                    0 => Shareability::NonShareable,
                    1 => Shareability::Reserved,
                    2 => Shareability::Outer,
                    _ => Shareability::Inner,
                },
                sw: (m >> 10) as u8,
                ignored: (m >> 18) as u8,
                res0,
            },
        }
    };
    TlbEntry {
        va,
        size_shift: head as u8,
        level: (head >> 8) as u8,
        kind,
        asid: (head >> 17 & 1 != 0).then_some((head >> 18) as u16),
        desc_pa,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(va: u64, oa: u64, asid: Option<u16>, res0: u64) -> TlbEntry {
        TlbEntry {
            va: VirtAddr(va),
            size_shift: 12,
            level: 3,
            kind: TlbKind::Leaf {
                oa: PhysAddr(oa),
                attrs: LeafAttrs {
                    flags: Attributes::AF | Attributes::READ_ONLY,
                    attr_indx: 7,
                    sh: Shareability::Inner,
                    sw: 0xf,
                    ignored: 0x1f,
                    res0,
                },
            },
            asid,
            desc_pa: PhysAddr(0x4000_0ff8),
        }
    }

    fn sample() -> State {
        let mut s = State {
            pc: 300,
            retries: 2,
            retry_stage: 4,
            paused: true,
            gp: Some(0b1010),
            ..State::default()
        };
        s.mem.write(0x1008, 7);
        s.mem.write(0x2000, u64::MAX);
        s.mem.fill(5, Source::Fill { first: 3, step: 8 }, 12);
        s.mem.fill(9, Source::Base(11), 12);
        s.pending.push(PendingStore {
            cpu: 3,
            pa: PhysAddr(0xf_ffff_ffff_fff8),
            prev: 1,
            value: 2,
            walkers: 0,
        });
        s.pending.push(PendingStore {
            cpu: 1,
            pa: PhysAddr(0x1ff8),
            prev: 2,
            value: 3,
            walkers: 0b1100,
        });
        s.tlbis.push(PendingTlbi {
            cpu: 2,
            op: Tlbi {
                kind: TlbiKind::Vale1,
                scope: TlbiScope::Local,
                va: VirtAddr(0xffff_0000_1000_0000),
                asid: 0xbeef,
            },
            waiting: 0b110,
        });
        s.tlbis.push(PendingTlbi {
            cpu: 0,
            op: Tlbi {
                kind: TlbiKind::Vmalle1,
                scope: TlbiScope::Broadcast,
                va: VirtAddr(0),
                asid: 0xffff,
            },
            waiting: 0b100,
        });
        let mut t = Tlb::default();
        t.insert(leaf(0xffff_0000_0000_0000, 0x8000, Some(0xffff), 0));
        t.insert(leaf(0xffff_0000_0000_1000, 0x9000, None, 1 << 50));
        t.insert(TlbEntry {
            va: VirtAddr(0xffff_0000_0000_0000),
            size_shift: 21,
            level: 2,
            kind: TlbKind::Walk {
                next: PhysAddr(0x7000),
            },
            asid: None,
            desc_pa: PhysAddr(0x6010),
        });
        s.tlbs = vec![Tlb::default(), t];
        s.wl = vec![
            Wl {
                pc: 200,
                pick: Some(255),
                regs: [u64::MAX, 1],
                rcu: true,
                half: Half::Loaded {
                    versions: 1 << (Half::MAX_VERSIONS - 1) | 1,
                },
            },
            Wl::default(),
        ];
        s.freed = vec![1, 2, 3];
        s.written = vec![[0xffff_0000_0000_0008, 9]];
        s.unpublished = vec![42];
        s
    }

    #[test]
    fn encoding_round_trips() {
        let s = sample();
        let mut words = Vec::new();
        s.encode(&mut words);
        let mut back = State::default();
        State::decode_into(&words, &mut back);
        assert_eq!(back, s);
        // Decoding into a state that held something else gives the same.
        let mut reused = sample();
        reused.wl.push(Wl::default());
        reused.tlbs.push(Tlb::default());
        reused.mem.write(0x3000, 1);
        State::decode_into(&words, &mut reused);
        assert_eq!(reused, s);
        let mut copy = State::default();
        copy.clone_from(&s);
        assert_eq!(copy, s);
    }

    #[test]
    fn distinct_states_encode_differently() {
        let s = sample();
        let mut a = Vec::new();
        s.encode(&mut a);
        let mut t = sample();
        t.wl[1].half = Half::Loaded { versions: 0 };
        let mut b = Vec::new();
        t.encode(&mut b);
        assert_ne!(a, b);
        let mut u = sample();
        u.gp = None;
        let mut c = Vec::new();
        u.encode(&mut c);
        assert_ne!(a, c);
    }

    #[test]
    fn a_copy_reuses_the_encoding_of_the_tlbs_it_did_not_change() {
        let mut a = sample();
        a.tlbs.push(a.tlbs[1].clone());
        let mut words = Vec::new();
        a.encode(&mut words);
        let mut parent = State::default();
        let mut spans = Spans::default();
        State::decode_spans(&words, &mut parent, &mut spans);
        assert_eq!(parent, a);
        assert!(parent.mem.kept);
        // Two memory words, two frames (`Base`: 3 words, `Fill`: 4) after
        // the header, the counts and `gp`.
        assert_eq!(spans.mem, Some(5..5 + 4 + 3 + 4));
        assert_eq!(spans.tlbs.len(), 3);
        let marks: Vec<_> = parent.tlbs.iter().map(Tlb::mark).collect();
        assert_eq!(marks, [Some(0), Some(1), Some(2)]);
        // Each span is the TLB's encoding: its entry count, then its entries.
        assert_eq!(words[spans.tlbs[0].clone()], [0]);
        assert_eq!(words[spans.tlbs[1].start], 3);
        assert_eq!(words[spans.tlbs[1].clone()], words[spans.tlbs[2].clone()]);

        // An unchanged copy encodes as the parent.
        let mut next = State::default();
        next.clone_from(&parent);
        let mut out = vec![7];
        next.encode_reusing(&mut out, &words, &spans);
        assert_eq!(out[1..], words[..]);

        // A TLB changed, two moved (the symmetry reduction swaps TLBs),
        // memory written: the result is the encoding of the new state.
        next.tlbs[0].insert(leaf(0xffff_0000_0020_0000, 0xa000, None, 0));
        next.tlbs.swap(1, 2);
        next.tlbs[1].evict(0);
        next.mem.write(0x1010, 5);
        assert!(!next.mem.kept);
        let marks: Vec<_> = next.tlbs.iter().map(Tlb::mark).collect();
        assert_eq!(marks, [None, None, Some(1)]);
        let (mut reused, mut fresh) = (Vec::new(), Vec::new());
        next.encode_reusing(&mut reused, &words, &spans);
        next.encode(&mut fresh);
        assert_eq!(reused, fresh);
        let mut back = State::default();
        State::decode_into(&reused, &mut back);
        assert_eq!(back, next);

        // Restoring copies back what changed, and the marks with it.
        next.restore_from(&parent);
        assert_eq!(next, parent);
        assert!(next.mem.kept);
        let marks: Vec<_> = next.tlbs.iter().map(Tlb::mark).collect();
        assert_eq!(marks, [Some(0), Some(1), Some(2)]);
        let mut again = Vec::new();
        next.encode_reusing(&mut again, &words, &spans);
        assert_eq!(again, words);
    }
}
