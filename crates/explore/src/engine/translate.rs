//! The ways the hardware may translate a workload CPU's access, and the
//! walks its walker may make to fill its TLB: [`Translator`] on the
//! walkers' view of memory, with walks kept in the walk cache. A thread's
//! CPU translates with its own configuration and Exception level
//! (`thread/tthm.rs`).

use vmsa::tlb::TlbEntry;
use vmsa::translate::Translator;
use vmsa::walk::{Access, Choice};
use vmsa::{PhysAddr, VirtAddr};

use crate::state::State;

use super::Engine;
#[cfg(doc)]
use super::memo::{Kept, Memo};
use super::memo::{WalkCache, fresh_fills};
use super::thread::tthm::walker_key;

impl<'a> Engine<'a> {
    /// Returns `cpu`'s translator in `s`, with its key in the walk cache.
    fn translator<'b>(
        &'b self,
        s: &State,
        cpu: usize,
        read: &'b dyn Fn(PhysAddr) -> u64,
        same: &'b dyn Fn(PhysAddr, PhysAddr) -> bool,
    ) -> (Translator<'b>, u8) {
        let (config, el) = self.walker_of(s, cpu);
        let t = Translator {
            config,
            root: self.sc.root,
            read,
            same_page: Some(same),
            el,
        };
        (t, walker_key(config, el))
    }

    pub(super) fn choices(&self, s: &State, cpu: usize, va: u64, access: Access) -> Vec<Choice> {
        let mut out = Vec::new();
        self.choices_into(s, cpu, va, access, &mut out, None);
        out
    }

    /// Appends to `out` the choices of `cpu`'s `access` to `va` (with the
    /// walks kept in `cache`, when given: it must have [`Kept::enter`]ed
    /// `s`'s view).
    pub(super) fn choices_into(
        &self,
        s: &State,
        cpu: usize,
        va: u64,
        access: Access,
        out: &mut Vec<Choice>,
        cache: Option<&mut WalkCache>,
    ) {
        let read = |pa: PhysAddr| self.walker_read_for(s, cpu, pa.0);
        let same = |a: PhysAddr, b: PhysAddr| {
            s.mem.same_frame(
                &self.sc.base,
                self.shift,
                a.0 >> self.shift,
                b.0 >> self.shift,
            )
        };
        let (t, who) = self.translator(s, cpu, &read, &same);
        let (tlb, va) = (&s.tlbs[cpu], VirtAddr(va));
        match cache {
            Some(cache) => t.choices_with(tlb, 0, va, access, out, &mut |start, out| {
                cache.walk_from(va.0, access, start, who, out, |to| {
                    t.walk_from_into(start, 0, va, access, to)
                })
            }),
            None => t.choices_into(tlb, 0, va, access, out),
        }
    }

    pub(super) fn walks(&self, s: &State, cpu: usize, va: u64) -> Vec<Choice> {
        let mut out = Vec::new();
        self.walks_into(s, cpu, va, &mut out);
        out
    }

    /// Appends to `out` the walks a fill for `va` on `cpu` may make.
    fn walks_into(&self, s: &State, cpu: usize, va: u64, out: &mut Vec<Choice>) {
        let read = |pa: PhysAddr| self.walker_read_for(s, cpu, pa.0);
        let same = |_: PhysAddr, _: PhysAddr| false;
        let first = out.len();
        self.translator(s, cpu, &read, &same).0.walks_into(
            &s.tlbs[cpu],
            0,
            VirtAddr(va),
            Access::Load,
            out,
        );
        // A walk that caches nothing new changes nothing (`retain` on the
        // appended walks only).
        let tlb = s.tlbs[cpu].entries();
        let mut kept = first;
        for k in first..out.len() {
            if fresh_fills(&out[k].fills, tlb) != 0 {
                if kept != k {
                    out.swap(kept, k);
                }
                kept += 1;
            }
        }
        out.truncate(kept);
    }

    /// As [`Engine::walks_into`], with the walks kept in `cache` (which
    /// must have [`Kept::enter`]ed `s`'s view), appended to `list` as
    /// their places in the cache with their fresh fills (see
    /// [`Memo::fresh`]), not copied: the walks of
    /// [`Translator::walks_with`] (from the root, then from each matching
    /// walk-cache entry, consecutive equal ones merged), but those that
    /// cache nothing new.
    pub(super) fn fill_walks(
        &self,
        s: &State,
        cpu: usize,
        va: u64,
        cache: &mut WalkCache,
        list: &mut Vec<(u32, u8)>,
    ) {
        let read = |pa: PhysAddr| self.walker_read_for(s, cpu, pa.0);
        let same = |_: PhysAddr, _: PhysAddr| false;
        let (t, who) = self.translator(s, cpu, &read, &same);
        let tlb = &s.tlbs[cpu];
        let mut last: Option<usize> = None;
        let mut from = |start: Option<&TlbEntry>| {
            let r = cache.get((va, Access::Load, start.copied(), who), |to| {
                t.walk_from_into(start, 0, VirtAddr(va), Access::Load, to)
            });
            for i in r {
                if last.is_some_and(|l| cache.items[l] == cache.items[i]) {
                    continue;
                }
                last = Some(i);
                let fresh = fresh_fills(&cache.items[i].fills, tlb.entries());
                if fresh != 0 {
                    list.push((i as u32, fresh));
                }
            }
        };
        from(None);
        for e in tlb.walks(VirtAddr(va)) {
            from(Some(e));
        }
    }
}
