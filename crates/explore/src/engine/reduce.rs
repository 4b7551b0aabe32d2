//! The reductions: the canonical form of a state ([`Engine::normalize`]:
//! TLB entries and pending stores no remaining access can use dropped,
//! TLBIs forgetting the CPUs where they match nothing, identical CPUs
//! sorted), what remaining walks may read or reach
//! ([`Engine::observable`]), and which updater operations no workload can
//! observe, taken alone ([`Engine::invisible`]). Each function argues why
//! it preserves every hazard.

use vmsa::tlb::TlbKind;
use vmsa::{PhysAddr, VirtAddr};

use crate::state::{State, Wl};
use crate::world::Op;

use super::Engine;
#[cfg(doc)]
use super::memo::Kept;
use super::memo::{ReachCache, Small, Touched};

impl<'a> Engine<'a> {
    /// Tells whether a remaining walk of a live CPU may read the descriptor
    /// at `pa`, by its position in its table alone: a walk for `va` reads at
    /// level `l` the entry `index(l, va)` of a granule-aligned table (the
    /// root, or one a table descriptor or walk-cache entry points to, whose
    /// next-level table address is granule-aligned: Arm ARM D8.2 and D8.3.1,
    /// `Granule::index` and `table_addr_mask`), so a descriptor at another
    /// offset is never read, whatever the tables hold. A necessary
    /// condition of [`Engine::observable`]'s answer, checked first because
    /// it is cheap: true when in doubt. (The offsets each position's pages
    /// are read at are a bitmap made once, [`Engine::page_offsets`].)
    fn may_read(&self, s: &State, pa: u64) -> bool {
        if !self.aligned_root {
            return true;
        }
        let i = ((pa & ((1 << self.shift) - 1)) / 8) as usize;
        (0..s.wl.len()).any(|w| {
            self.live(s, w) && {
                let row = self.row(s, w) * self.words;
                self.page_offsets[row + i / 64] & (1 << (i % 64)) != 0
            }
        })
    }

    /// Returns every descriptor address a remaining walk of a live CPU may
    /// read (from the root or a cached table, in the coherent or the
    /// walkers' view), and every frame such walks or cached entries lead
    /// to (tables and data); or stops early, with part of them, once
    /// `done` holds of what was found. `done` must be monotone (once true,
    /// true of any supersets), so that what a caller decides from the part
    /// is what it would decide from the whole.
    fn observable(&self, s: &State, done: &dyn Fn(&Small, &Small) -> bool) -> (Small, Small) {
        self.observable_in(s, done, None)
    }

    /// As [`Engine::observable`], with what walks reach kept in `cache`
    /// (which must have [`Kept::enter`]ed `s`'s view).
    pub(super) fn observable_in(
        &self,
        s: &State,
        done: &dyn Fn(&Small, &Small) -> bool,
        mut cache: Option<&mut ReachCache>,
    ) -> (Small, Small) {
        let g = self.sc.config.granule;
        let mut descs = Small::default();
        let mut frames = Small::default();
        // Walks already followed (identical CPUs often walk the same VAs
        // from the same tables): following one again adds nothing.
        let mut seen = [(0u64, 0u8, 0u64); 32];
        let mut nseen = 0;
        let mut follow = |va: u64, level: u8, table: PhysAddr, d: &mut Small, f: &mut Small| {
            let key = (va, level, table.0);
            if seen[..nseen].contains(&key) {
                return;
            }
            if nseen < seen.len() {
                seen[nseen] = key;
                nseen += 1;
            }
            match cache.as_deref_mut() {
                Some(c) => c.reach(key, d, f, |d, f| self.reach(s, va, level, table, d, f)),
                None => self.reach(s, va, level, table, d, f),
            }
        };
        for i in 0..s.wl.len() {
            if !self.live(s, i) {
                continue;
            }
            let tlb = &s.tlbs[i + 1];
            for &va in self.remaining(s, i) {
                follow(va, g.start_level(), self.sc.root, &mut descs, &mut frames);
                for e in tlb.walks(VirtAddr(va)) {
                    if let TlbKind::Walk { next } = e.kind {
                        follow(va, e.level + 1, next, &mut descs, &mut frames);
                    }
                }
                for e in tlb.leaves(VirtAddr(va), 0) {
                    if let Some(pa) = e.translate(VirtAddr(va)) {
                        frames.insert(pa.0 >> self.shift);
                    }
                }
                if done(&descs, &frames) {
                    return (descs, frames);
                }
            }
        }
        (descs, frames)
    }

    /// Follows every walk for `va` from `table` at `level` that some view
    /// of memory allows: at each descriptor, the coherent value, every
    /// pending store's old and new value, and zero in a page whose
    /// initialization is not visible yet (so mixed views, one level's store
    /// visible and another's not, are covered). Records the descriptors
    /// read and the frames reached.
    fn reach(
        &self,
        s: &State,
        va: u64,
        level: u8,
        table: PhysAddr,
        descs: &mut Small,
        frames: &mut Small,
    ) {
        let g = self.sc.config.granule;
        let pa = table.add(g.index(level, va) as u64 * 8);
        descs.insert(pa.0);
        frames.insert(pa.0 >> self.shift);
        let coherent = self.read(s, pa.0);
        let next = |v: u64, descs: &mut Small, frames: &mut Small| match vmsa::Descriptor(v)
            .decode(g, level)
        {
            vmsa::Entry::Table(t) => self.reach(s, va, level + 1, t.next, descs, frames),
            vmsa::Entry::Block(leaf) | vmsa::Entry::Page(leaf) => {
                let off = va & (g.level_size(level) - 1);
                frames.insert((leaf.oa.0 + off) >> self.shift);
            }
            _ => {}
        };
        if !s.pending.iter().any(|p| p.pa == pa)
            && s.unpublished.binary_search(&(pa.0 >> self.shift)).is_err()
        {
            // One view only (the common case).
            next(coherent, descs, frames);
            return;
        }
        let mut vals = Small::default();
        vals.insert(coherent);
        for p in s.pending.iter().filter(|p| p.pa == pa) {
            vals.insert(p.prev);
            vals.insert(p.value);
        }
        if s.unpublished.binary_search(&(pa.0 >> self.shift)).is_ok() {
            vals.insert(0);
        }
        let mut inline = vals.inline;
        let mut more = vals.more;
        let vals: &mut [u64] = if more.is_empty() {
            &mut inline[..vals.n]
        } else {
            more.extend_from_slice(&inline);
            &mut more
        };
        vals.sort_unstable();
        for &v in vals.iter() {
            next(v, descs, frames);
        }
    }

    /// Brings a state to its canonical form: TLB entries no remaining
    /// access can use are dropped (an eviction), pending stores no
    /// remaining walk can read become visible, and pending TLBIs forget the
    /// CPUs where they match nothing.
    pub fn normalize(&self, s: &mut State) {
        self.normalize_in(s, None);
    }

    /// As [`Engine::normalize`]; returns how the symmetry reduction
    /// reordered the workload CPUs: position `k` now holds the CPU that was
    /// at position `order[k]`.
    pub fn normalize_perm(&self, s: &mut State) -> Vec<usize> {
        let mut perm: Vec<usize> = (0..s.wl.len()).collect();
        self.normalize_in(s, Some(&mut perm));
        perm
    }

    /// As [`Engine::normalize_perm`], recording the permutation in `perm`
    /// only when given (no allocation otherwise).
    fn normalize_in(&self, s: &mut State, perm: Option<&mut Vec<usize>>) {
        self.normalize_from(s, perm, Touched::All);
    }

    /// As [`Engine::normalize_in`], for a state that was normalized before
    /// a step touched only what `touched` says: the TLB entries a CPU keeps
    /// depend only on its TLB and its position (the pages it will still
    /// access), so a CPU whose TLB gained nothing and whose position did not
    /// move keeps them all (it kept them when the state was normalized, and
    /// removing entries elsewhere changes nothing for it).
    ///
    /// What each kind of step lets it skip (the parent was normalized):
    /// - the TLB entries a CPU keeps depend only on its TLB and its
    ///   position (the pages it will still access), so only a CPU whose
    ///   position moved or whose TLB gained entries needs filtering, and
    ///   not after a fill: a walk for `va` caches only entries that cover
    ///   `va` (walk-cache entries for the regions holding it, its leaf), a
    ///   VA the CPU will access;
    /// - whether a walk may read a pending store by its offset
    ///   ([`Engine::may_read`]) depends only on the positions and the
    ///   store, so only a step that moved a position or added a store
    ///   needs it again;
    /// - the descriptors remaining walks may read
    ///   ([`Engine::observable`]) only grow when a TLB gains entries and
    ///   nothing else changes, so after a fill without a hardware update
    ///   every pending store stays;
    /// - a pending TLBI forgets a CPU only once that CPU lost entries;
    /// - the symmetry sort has the other CPUs in order already when one
    ///   CPU's TLB or position changed.
    pub(super) fn normalize_from(
        &self,
        s: &mut State,
        perm: Option<&mut Vec<usize>>,
        touched: Touched,
    ) {
        s.tlbs[0].clear();
        if self.reduce {
            let filter = match touched {
                Touched::All => 0..s.wl.len(),
                Touched::Cpu(c) => c - 1..c,
                _ => 0..0,
            };
            for i in filter {
                let keep: &[u64] = if self.live(s, i) {
                    self.remaining(s, i)
                } else {
                    &[]
                };
                let tlb = &mut s.tlbs[i + 1];
                for k in (0..tlb.entries().len()).rev() {
                    let e = &tlb.entries()[k];
                    if !keep.iter().any(|&va| e.covers(VirtAddr(va))) && !self.kept_for_end(e) {
                        tlb.evict(k);
                    }
                }
            }
        }
        if self.reduce && !s.pending.is_empty() && !matches!(touched, Touched::Grew(_)) {
            // Stores no walk can read by their offset go first (the query
            // below would drop them too); the query only when some remain.
            if matches!(
                touched,
                Touched::All | Touched::Cpu(_) | Touched::Removed | Touched::Nothing
            ) {
                let mut unread = 0u64;
                for (k, p) in s.pending.iter().enumerate().take(64) {
                    if !self.may_read(s, p.pa.0) {
                        unread |= 1 << k;
                    }
                }
                if unread != 0 {
                    let mut k = 0;
                    s.pending.retain(|_| {
                        k += 1;
                        k > 64 || unread & (1 << (k - 1)) == 0
                    });
                }
            }
            if !s.pending.is_empty() {
                let (descs, _) =
                    self.observable(s, &|d, _| s.pending.iter().all(|p| d.contains(&p.pa.0)));
                s.pending.retain(|p| descs.contains(&p.pa.0));
            }
        }
        if !s.tlbis.is_empty() {
            let cpus = match touched {
                Touched::Grew(_) | Touched::Views => 0..0,
                Touched::Cpu(c) | Touched::Shrank(c) => c..c + 1,
                Touched::All | Touched::Removed | Touched::Nothing => 0..s.tlbs.len(),
            };
            for k in 0..s.tlbis.len() {
                let t = s.tlbis[k];
                for c in cpus.clone() {
                    if t.waiting & (1 << c) != 0
                        && !s.tlbs[c].entries().iter().any(|e| t.op.matches(e))
                        && (s.threads.is_empty() || !self.revocable(s, t.cpu, &t.op, c))
                    {
                        s.tlbis[k].waiting &= !(1 << c);
                    }
                }
            }
            s.tlbis.retain(|t| t.waiting != 0);
        }
        if self.reduce {
            match touched {
                Touched::Nothing | Touched::Views => {}
                Touched::Cpu(c) | Touched::Grew(c) | Touched::Shrank(c) => {
                    self.symmetry_in(s, perm, Some(c - 1))
                }
                Touched::All | Touched::Removed => self.symmetry_in(s, perm, None),
            }
        }
    }

    /// Tells whether `e` is a leaf entry for a vmemmap page of the huge page:
    /// kept until the end, where no CPU may hold one that disagrees with
    /// the final tables (the kernel uses the struct pages freely once the
    /// batch is done; a stale read-only entry would fault a later write, a
    /// stale entry to an old page would read a freed page).
    pub(super) fn kept_for_end(&self, e: &vmsa::tlb::TlbEntry) -> bool {
        e.is_leaf() && self.sc.pages.iter().any(|p| e.covers(VirtAddr(p.0)))
    }

    /// Sorts CPUs that run identical workloads by their state, so that
    /// states differing only by a permutation of them become one (symmetry
    /// reduction): the CPU masks of pending TLBIs and of a grace period
    /// are permuted with them. Hazards are preserved: a permutation of
    /// identical CPUs maps executions to executions. Records in `perm`,
    /// when given, which CPU each position now holds; allocates nothing.
    /// With `only` (a workload index), only that CPU changed since the
    /// CPUs were last sorted: it moves to its place among the others, in
    /// order already, which gives the same order as sorting them all.
    fn symmetry_in(&self, s: &mut State, mut perm: Option<&mut Vec<usize>>, only: Option<usize>) {
        for &(start, end) in &self.groups {
            if only.is_some_and(|i| i < start || i >= end) {
                continue;
            }
            let len = end - start;
            // `a`'s key (position, then TLB entries) is greater than `b`'s.
            let greater = |a: usize, b: usize| {
                cpu_order(
                    &s.wl[a],
                    s.tlbs[a + 1].entries(),
                    &s.wl[b],
                    s.tlbs[b + 1].entries(),
                )
                .is_gt()
            };
            // CPU masks are 64 bits wide, so a group has at most 63 CPUs.
            let mut order_buf = [0u8; 64];
            let order = &mut order_buf[..len];
            let moved = match only {
                Some(i) => {
                    // Its place: left past the greater ones, or right past
                    // the smaller ones (equal ones keep their side: stable).
                    let mut j = i;
                    while j > start && greater(j - 1, i) {
                        j -= 1;
                    }
                    if j == i {
                        while j + 1 < end && greater(i, j + 1) {
                            j += 1;
                        }
                    }
                    if j == i {
                        continue;
                    }
                    for (k, o) in order.iter_mut().enumerate() {
                        *o = (start + k) as u8;
                    }
                    // The CPU at `a` goes to `b`; those between shift by one.
                    let (a, b) = (i - start, j - start);
                    if a > b {
                        for k in (b + 1..=a).rev() {
                            order[k] = order[k - 1];
                        }
                    } else {
                        for k in a..b {
                            order[k] = order[k + 1];
                        }
                    }
                    order[b] = i as u8;
                    true
                }
                None => {
                    for (k, o) in order.iter_mut().enumerate() {
                        *o = (start + k) as u8;
                    }
                    // A stable insertion sort (a group is a handful of
                    // CPUs, most often in order already): the order
                    // `sort_by` would give.
                    let mut moved = false;
                    for k in 1..len {
                        let mut j = k;
                        while j > 0 && greater(usize::from(order[j - 1]), usize::from(order[j])) {
                            order.swap(j - 1, j);
                            j -= 1;
                            moved = true;
                        }
                    }
                    moved
                }
            };
            if !moved {
                continue;
            }
            if let Some(p) = perm.as_deref_mut() {
                let mut before = [0usize; 64];
                before[..len].copy_from_slice(&p[start..end]);
                for (k, &i) in order.iter().enumerate() {
                    p[start + k] = before[usize::from(i) - start];
                }
            }
            // Position `start + k` takes the CPU that was at `order[k]`:
            // swap each into place (`cur[j]`: the CPU now at `start + j`).
            let mut cur_buf = [0u8; 64];
            let cur = &mut cur_buf[..len];
            for (j, c) in cur.iter_mut().enumerate() {
                *c = (start + j) as u8;
            }
            for k in 0..len {
                let j = k + cur[k..]
                    .iter()
                    .position(|&c| c == order[k])
                    .expect("a permutation");
                if j != k {
                    cur.swap(k, j);
                    s.wl.swap(start + k, start + j);
                    s.tlbs.swap(start + k + 1, start + j + 1);
                }
            }
            let remap = |m: u64| {
                let mut out = m;
                for (k, &i) in order.iter().enumerate() {
                    let (to, from) = (start + k + 1, usize::from(i) + 1);
                    out = (out & !(1 << to)) | (((m >> from) & 1) << to);
                }
                out
            };
            for t in s.tlbis.iter_mut() {
                t.waiting = remap(t.waiting);
            }
            if let Some(m) = s.gp.as_mut() {
                *m = remap(*m);
            }
        }
    }

    /// Tells whether the updater's next operation is invisible to the
    /// workloads (see the module documentation).
    pub(super) fn invisible(&self, s: &State, op: &Op, cache: &mut ReachCache) -> bool {
        let touches =
            |frames: &Small, first: u64, n: u64| (first..first + n).any(|f| frames.contains(&f));
        if s.retry_stage > 0 {
            return false;
        }
        match op {
            Op::Alloc | Op::Isb => true,
            Op::Dsb(_) => s.pending.is_empty() && s.tlbis.is_empty() && s.unpublished.is_empty(),
            Op::Tlbi(t) => !s
                .tlbs
                .iter()
                .any(|tlb| tlb.entries().iter().any(|e| t.matches(e))),
            Op::Store { pa, .. } | Op::Cas { pa, .. } => {
                !self.may_read(s, pa.0) || {
                    cache.enter(s);
                    !self
                        .observable_in(s, &|d, _| d.contains(&pa.0), Some(cache))
                        .0
                        .contains(&pa.0)
                }
            }
            Op::Free { first, count } => {
                let hit = |f: &Small| touches(f, *first, *count);
                cache.enter(s);
                !hit(&self.observable_in(s, &|_, f| hit(f), Some(cache)).1)
            }
            // A copy also reads its source: a workload store there must not
            // be reordered around it.
            Op::Copy { dst, src } => {
                let hit = |f: &Small| f.contains(dst) || f.contains(src);
                cache.enter(s);
                !hit(&self.observable_in(s, &|_, f| hit(f), Some(cache)).1)
            }
            Op::Fill { frame: f, .. } | Op::Words { frame: f, .. } => {
                cache.enter(s);
                !self
                    .observable_in(s, &|_, fr| fr.contains(f), Some(cache))
                    .1
                    .contains(f)
            }
            Op::Pause | Op::Resume | Op::SynchronizeRcu | Op::WriteWord { .. } => false,
        }
    }
}

/// Compares two workload CPUs for the symmetry reduction: by position and
/// registers, then by TLB entries, lexicographically (the order of the
/// tuple `(wl, entries)`); equal entries, the common case, are skipped
/// with an equality test, cheaper than ordering them.
#[inline]
fn cpu_order(
    wa: &Wl,
    ta: &[vmsa::tlb::TlbEntry],
    wb: &Wl,
    tb: &[vmsa::tlb::TlbEntry],
) -> std::cmp::Ordering {
    wa.cmp(wb)
        .then_with(|| match ta.iter().zip(tb).find(|(x, y)| x != y) {
            Some((x, y)) => x.cmp(y),
            None => ta.len().cmp(&tb.len()),
        })
}
