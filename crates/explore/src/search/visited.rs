//! The visited set and the frontier's storage: a state's 128-bit
//! fingerprint (`fingerprint`), the visited set in shards (`Visited`), and
//! the arenas of encoded states a level is kept in (`Part`).

use rustc_hash::FxHashSet;

/// Fingerprints a state's encoding (see [`State::encode`](crate::state::State::encode)): XXH3-128 of
/// its bytes (native byte order; fingerprints are compared within one run
/// only). XXH3 takes 64 bytes at a time with SIMD multiplies; `twox-hash`
/// picks AVX2 at run time where the CPU has it (SSE2 otherwise, on any
/// x86-64), which takes a third fewer instructions for the ~600 bytes of
/// a state here than the SSE2 code `xxhash-rust` compiles for a baseline
/// x86-64 target. The value does not depend on the code path.
pub(super) fn fingerprint(words: &[u64]) -> u128 {
    twox_hash::XxHash3_128::oneshot(bytemuck::cast_slice(words))
}

/// States kept encoded in one arena (see [`State::encode`](crate::state::State::encode)): a part of a
/// level (the new states of one batch of the level before), with each
/// state's node id.
#[derive(Default)]
pub(super) struct Part {
    /// The encodings.
    pub(super) words: Vec<u64>,
    /// Where each state's encoding lies in `words`: start and end.
    pub(super) spans: Vec<(u32, u32)>,
    /// Each state's node id.
    pub(super) ids: Vec<u32>,
}

impl Part {
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(super) fn get(&self, k: usize) -> &[u64] {
        let (start, end) = self.spans[k];
        &self.words[start as usize..end as usize]
    }

    pub(super) fn push(&mut self, id: u32, words: &[u64]) {
        let start = self.words.len() as u32;
        self.words.extend_from_slice(words);
        self.spans.push((start, self.words.len() as u32));
        self.ids.push(id);
    }

    pub(super) fn clear(&mut self) {
        self.words.clear();
        self.spans.clear();
        self.ids.clear();
    }

    /// The bytes its arenas hold (allocated, used or not).
    pub(super) fn bytes(&self) -> u64 {
        (self.words.capacity() * 8 + self.spans.capacity() * 8 + self.ids.capacity() * 4) as u64
    }
}

/// The visited set: fingerprints in shards chosen by their top bits, so
/// that a chunk's fingerprints are inserted shard by shard in parallel,
/// each shard taking them in the chunk's order (the first occurrence of
/// a state in the chunk is the one that is new, as with one set).
pub(super) struct Visited {
    pub(super) shards: Vec<FxHashSet<u128>>,
}

impl Visited {
    /// Makes a set of `n` shards (1 on one thread: the merge then runs as
    /// one task; the sharding never changes which states are new).
    pub(super) fn new(n: usize) -> Self {
        Visited {
            shards: (0..n.max(1)).map(|_| FxHashSet::default()).collect(),
        }
    }

    /// Says which shard holds `fp`: the top bits of its high word scaled
    /// to the number of shards (the fingerprint is uniform).
    pub(super) fn shard(fp: u128, n: usize) -> usize {
        ((u128::from((fp >> 64) as u64) * n as u128) >> 64) as usize
    }

    pub(super) fn contains(&self, fp: u128) -> bool {
        self.shards[Self::shard(fp, self.shards.len())].contains(&fp)
    }

    pub(super) fn insert(&mut self, fp: u128) -> bool {
        let n = self.shards.len();
        self.shards[Self::shard(fp, n)].insert(fp)
    }
}
