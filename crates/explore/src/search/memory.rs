//! What the search holds between chunks (`Held`), what a chunk may add
//! (`Bound`), and `memory_peak`: the estimate of the most memory the
//! search holds while it expands a chunk, which the memory limit is
//! checked against before each chunk.

use crate::engine::Step;

use super::visited::Part;

/// What a search holds between chunks.
pub(super) struct Held {
    /// States visited (fingerprints in the visited set).
    states: usize,
    /// The capacity of the parent links.
    links: usize,
    /// The bytes of the frontier's, the next level's and the spare parts'
    /// arenas.
    parts: u64,
}

impl Held {
    /// Returns what the search holds with `states` visited, parent links
    /// of capacity `links`, and the arenas of `parts` (the frontier's, the
    /// next level's and the spare ones).
    pub(super) fn of(states: usize, links: usize, parts: [&[Part]; 3]) -> Self {
        Held {
            states,
            links,
            parts: parts.iter().flat_map(|p| p.iter()).map(Part::bytes).sum(),
        }
    }
}

/// What a chunk may add, at most.
#[derive(Default)]
pub(super) struct Bound {
    /// New states.
    pub(super) new: usize,
    /// Bytes of the batches' buffers.
    pub(super) buffers: u64,
    /// Bytes of one state's encoding in a part.
    pub(super) per_state: u64,
}

/// Bytes of a hashbrown table (the `HashSet` of std and `FxHashSet`)
/// holding `n` fingerprints: buckets the next power of two of 8/7 `n` (it
/// is full at 7/8), each a 16-byte fingerprint and a control byte, and a
/// group of control bytes more.
fn table_bytes(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let buckets = if n < 8 {
        if n < 4 { 4 } else { 8 }
    } else {
        (n * 8).div_ceil(7).next_power_of_two()
    };
    buckets * 17 + 16
}

/// Estimates the most memory the search holds while it expands a chunk:
/// what it holds (`held`) and what the chunk may add (`bound`), counting
/// the moments a table grows, when the old and the new one are both
/// allocated:
/// - the visited set: its table (the shards' tables, a power of two of
///   them, take what one table would; a shard reaches its growth a little
///   before or after the others, so the counts are widened by 1/16 and
///   1024 each side), and if the chunk's new states may make it grow, the
///   grown table besides;
/// - the parent links (`(u32, Step)` each), and if the chunk's new states
///   pass their capacity, the doubled vector besides;
/// - the parts' arenas, and the chunk's new states' encodings besides;
/// - the chunk's buffers, twice their size (a vector's doubling slack).
///
/// The estimate depends only on counts the same on any number of threads,
/// so the memory limit stops a search at the same state on any. It is of
/// the search alone, not the process (several searches may run at once):
/// the process holds a fixed overhead more (its code, the threads' stacks
/// and scratch storage, the allocator's own).
pub(super) fn memory_peak(held: &Held, bound: &Bound) -> u64 {
    let n = held.states as u64;
    let after = n + bound.new as u64;
    let hi = |n: u64| n + n / 16 + 1024;
    let lo = |n: u64| (n - n / 16).saturating_sub(1024);
    let now = table_bytes(hi(n));
    let grown = table_bytes(hi(after));
    let visited = if grown > table_bytes(lo(n)) {
        now + grown
    } else {
        now
    };
    let link = std::mem::size_of::<(u32, Step)>() as u64;
    let cap = held.links as u64;
    let links = if after > cap {
        cap + (2 * cap).max(after)
    } else {
        cap
    } * link;
    let arenas = held.parts + bound.new as u64 * (bound.per_state + 12);
    visited + links + arenas + 2 * bound.buffers
}
