//! HVO and de-HVO on the model, as the kernel does them.

use mm::vmemmap::{TailFormat, struct_page_va};
use mm::{Kernel, KernelConfig, PROTOCOLS, Protocol};
use vmsa::{BbmLevel, Features, Granule, Rule};

fn boot(granule: Granule, huge: u64, n: u64, bbm: BbmLevel, tails: TailFormat) -> Kernel {
    Kernel::boot(KernelConfig {
        granule,
        memory: None,
        huge_size: huge,
        hugepages: n,
        features: Features {
            bbm,
            hw_af: true,
            ..Features::default()
        },
        ncpus: 4,
        tails,
    })
    .expect("boots")
}

fn kernel_for(p: &Protocol, bbm: BbmLevel) -> Kernel {
    let tails = if p.needs_identical_tails() {
        TailFormat::Order
    } else {
        TailFormat::HeadPointer
    };
    boot(Granule::K4, 2 << 20, 16, bbm, tails)
}

/// What every struct page of the pool reads through the vmemmap: (output
/// address, read-only) per vmemmap page and the first struct page's words.
fn view(k: &Kernel) -> Vec<(u64, bool, Vec<u64>)> {
    let mut out = Vec::new();
    for i in 0..k.optimized.len() {
        for va in k.vmemmap_vas(i) {
            let (pa, ro) = k.leaf_of(va).unwrap();
            let words = (0..512)
                .map(|w| {
                    k.machine
                        .mem()
                        .read_u64(vmsa::PhysAddr(pa + w * 8))
                        .unwrap()
                })
                .collect();
            out.push((pa, ro, words));
        }
    }
    out
}

fn rules(k: &Kernel) -> Vec<Rule> {
    let mut r: Vec<Rule> = k.machine.violations().iter().map(|v| v.rule).collect();
    r.sort();
    r.dedup();
    r
}

#[test]
fn memory_freed_matches_the_geometry() {
    for (g, huge) in [
        (Granule::K4, 2u64 << 20),
        (Granule::K4, 32 << 20),
        (Granule::K4, 1 << 30),
        (Granule::K16, 32 << 20),
        (Granule::K16, 1 << 30),
        (Granule::K64, 512 << 20),
    ] {
        let mut k = boot(g, huge, 2, BbmLevel::Level2, TailFormat::HeadPointer);
        let before = k.vmemmap_bytes_in_use();
        let free_before = k.free_bytes();
        let p = Protocol::by_name("linux-generic").unwrap();
        assert_eq!(k.optimize(&p, &[0, 1], 8).unwrap(), 2);
        let freed = before - k.vmemmap_bytes_in_use();
        assert_eq!(freed, 2 * k.geo.freed_bytes(), "{g} {huge}");
        let tables = k.costs.table_pages * g.page_size();
        assert_eq!(k.free_bytes(), free_before + freed - tables, "{g} {huge}");
    }
}

#[test]
fn verdicts_of_the_rule_checker_per_protocol() {
    let expect = |name: &str, bbm: BbmLevel| -> Vec<Rule> {
        let p = Protocol::by_name(name).unwrap();
        let mut k = kernel_for(&p, bbm);
        let all: Vec<usize> = (0..16).collect();
        k.optimize(&p, &all, 8).unwrap();
        rules(&k)
    };
    // linux-generic changes output address and permission of live PTEs.
    let g0 = expect("linux-generic", BbmLevel::Level0);
    assert!(
        g0.contains(&Rule::OaChangeWritable) && g0.contains(&Rule::BlockSize),
        "{g0:?}"
    );
    assert!(!expect("linux-generic", BbmLevel::Level2).contains(&Rule::BlockSize));
    for name in ["bbm", "stop-machine", "pause-cpus"] {
        assert_eq!(expect(name, BbmLevel::Level0), vec![], "{name}");
    }
    assert_eq!(expect("ro-first", BbmLevel::Level2NoAbort), vec![]);
    assert_eq!(expect("ro-first", BbmLevel::Level0), vec![Rule::BlockSize]);
    assert_eq!(expect("shared-tail", BbmLevel::Level2), vec![]);
    assert_eq!(expect("af-cas", BbmLevel::Level0), vec![]);
}

#[test]
fn hvo_then_de_hvo_restores_every_struct_page() {
    for p in PROTOCOLS {
        let mut k = kernel_for(&p, BbmLevel::Level2);
        let all: Vec<usize> = (0..16).collect();
        let before = view(&k);
        k.optimize(&p, &all, 5).unwrap();
        // Every tail vmemmap page now maps one kept page, read-only.
        for i in 0..16 {
            let vas = k.vmemmap_vas(i);
            let kept = k.leaf_of(vas[1]).unwrap();
            assert!(kept.1, "{} tail mapping is read-only", p.name);
            assert!(vas[2..].iter().all(|&va| k.leaf_of(va).unwrap() == kept));
            assert!(
                !k.leaf_of(vas[0]).unwrap().1,
                "{} head page writable",
                p.name
            );
        }
        k.restore(&p, &all, 5).unwrap();
        let after = view(&k);
        for (a, b) in before.iter().zip(&after) {
            assert_eq!(a.1, b.1, "{}: permissions restored", p.name);
            assert_eq!(a.2, b.2, "{}: struct pages restored", p.name);
        }
        assert!(k.optimized.iter().all(|o| !o));
    }
}

#[test]
fn a_fake_head_shows_through_the_tails_after_hvo() {
    let p = Protocol::by_name("linux-generic").unwrap();
    let mut k = kernel_for(&p, BbmLevel::Level2);
    k.optimize(&p, &[3], 1).unwrap();
    let head = k.head(3);
    // The struct page at the start of vmemmap page 1 is pfn head + 64; it
    // now reads as a copy of the head (PG_head set): a fake head.
    let (pa, _) = k.leaf_of(struct_page_va(head + 64)).unwrap();
    let flags = k.machine.mem().read_u64(vmsa::PhysAddr(pa)).unwrap();
    assert_ne!(flags & mm::vmemmap::PG_HEAD, 0);
}

#[test]
fn rollback_on_every_allocation_failure() {
    for p in PROTOCOLS {
        // Count the allocations of an undisturbed run.
        let mut k = kernel_for(&p, BbmLevel::Level2);
        let base = k.machine.allocator().allocations();
        k.optimize(&p, &[0, 1, 2], 3).unwrap();
        k.restore(&p, &[0, 1, 2], 3).unwrap();
        let total = k.machine.allocator().allocations() - base;
        assert!(total > 0);
        for fail in 0..total {
            let mut k = kernel_for(&p, BbmLevel::Level2);
            let pristine = view(&k);
            let base = k.machine.allocator().allocations();
            k.machine.allocator_mut().fail_allocation(Some(base + fail));
            k.optimize(&p, &[0, 1, 2], 3).unwrap();
            let mid = view(&k);
            let optimized = k.optimized.clone();
            k.restore(&p, &[0, 1, 2], 3).unwrap();
            let end = view(&k);
            let per = k.geo.vmemmap_pages() as usize;
            for (i, &was_optimized) in optimized.iter().enumerate() {
                let r = i * per..(i + 1) * per;
                let strip = |v: &[(u64, bool, Vec<u64>)]| -> Vec<(bool, Vec<u64>)> {
                    v.iter().map(|x| (x.1, x.2.clone())).collect()
                };
                if !was_optimized {
                    // HVO failed for it: exactly as before, same pages too.
                    assert_eq!(
                        &pristine[r.clone()],
                        &mid[r.clone()],
                        "{} fail at {fail}",
                        p.name
                    );
                }
                if k.optimized[i] {
                    // De-HVO failed for it: exactly as after HVO.
                    assert_eq!(&mid[r.clone()], &end[r], "{} fail at {fail}", p.name);
                } else {
                    // Restored: every struct page reads as at boot.
                    assert_eq!(
                        strip(&pristine[r.clone()]),
                        strip(&end[r]),
                        "{} fail at {fail}",
                        p.name
                    );
                }
            }
            // No page leaked or freed twice: free memory is what it was at
            // boot, less the order-0 pages allocated, plus the pages freed.
            let boot_free = kernel_for(&p, BbmLevel::Level2).free_bytes();
            assert_eq!(
                k.free_bytes(),
                boot_free - k.costs.allocations * 4096 + k.costs.pages_freed * 4096,
                "{} fail at {fail}",
                p.name
            );
            assert!(
                k.costs.alloc_failures >= 1,
                "{} fail at {fail}: the failure was injected",
                p.name
            );
        }
    }
}

#[test]
fn split_strategies_are_compliant_exactly_from_their_feat_bbm_level() {
    use mm::SplitStrategy;
    for s in SplitStrategy::ALL {
        for bbm in BbmLevel::ALL {
            let mut p = Protocol::by_name("stop-machine").unwrap();
            p.split = s;
            let mut k = boot(Granule::K4, 2 << 20, 4, bbm, TailFormat::HeadPointer);
            k.optimize(&p, &[0, 1, 2, 3], 4).unwrap();
            let r = rules(&k);
            // Levels are ordered 0 < 1 < 2 < 2-noabort; a strategy needs
            // its level or one above (nT is in level 2 too: FEAT_BBM
            // levels include the lower ones).
            let ok = bbm >= s.needs();
            assert_eq!(r.is_empty(), ok, "{} at FEAT_BBM {bbm}: {r:?}", s.name());
            if !ok {
                assert_eq!(r, vec![Rule::BlockSize], "{} at {bbm}", s.name());
            }
        }
    }
}

/// The rule checker on its own thread (`Kernel::with_checker_thread`)
/// observes the same operations on its copy of the memory: the same
/// violations, in the same order, the same counts, for every protocol, HVO
/// then de-HVO, and the memory and tables it leaves are the same.
#[test]
fn checker_thread_finds_what_the_inline_checker_finds() {
    for p in PROTOCOLS.iter() {
        for bbm in [BbmLevel::Level0, BbmLevel::Level2] {
            let all: Vec<usize> = (0..16).collect();
            let mut inline = kernel_for(p, bbm);
            inline.optimize(p, &all, 5).unwrap();
            inline.restore(p, &all[..9], 4).unwrap();
            let mut threaded = kernel_for(p, bbm);
            threaded.with_checker_thread(|k| {
                // No checker here while it runs on its thread.
                assert!(k.machine.checker().is_none());
                k.optimize(p, &all, 5).unwrap();
                k.machine.sync_checker_thread();
                k.restore(p, &all[..9], 4).unwrap();
            });
            let (a, b) = (
                inline.machine.checker().unwrap(),
                threaded.machine.checker().unwrap(),
            );
            assert_eq!(a.violations(), b.violations(), "{} {bbm}", p.name);
            assert_eq!(a.counts(), b.counts(), "{} {bbm}", p.name);
            assert_eq!(a.steps(), b.steps(), "{} {bbm}", p.name);
            assert!(a.steps() > 0);
            assert_eq!(view(&inline), view(&threaded), "{} {bbm}", p.name);
        }
    }
    // linux-generic at FEAT_BBM 0 breaks the rules: the threaded checker
    // saw the violations, not an empty stream.
    let p = Protocol::by_name("linux-generic").unwrap();
    let mut k = kernel_for(&p, BbmLevel::Level0);
    k.with_checker_thread(|k| k.optimize(&p, &[0, 1, 2], 8).unwrap());
    assert!(rules(&k).contains(&Rule::OaChangeWritable));
}

/// `rN+K` names page K of the allocation in register N: the executor
/// refuses a page past it (a frame the program never allocated), for a
/// copy and for a free that reaches past it, and takes every page inside.
#[test]
fn a_register_offset_outside_its_allocation_is_refused() {
    use mm::{Instr, Page, Program, Regs};
    let mut k = kernel_for(
        &Protocol::by_name("bbm").expect("built in"),
        BbmLevel::Level0,
    );
    let src = k.frame_of(struct_page_va(k.head(0))).expect("mapped");
    let run = |k: &mut Kernel, order: u8, ins: Instr| {
        let p = Program {
            instrs: vec![Instr::Alloc { reg: 7, order }, ins],
        };
        k.run(&p, &mut Regs::default())
    };
    let copy = |off| Instr::Copy {
        dst: Page::Reg(7, off),
        src: Page::Frame(src),
    };
    let e = run(&mut k, 0, copy(3)).expect_err("r7+3 of one page");
    assert!(
        e.to_string().contains(
            "page offset 3 (r7+3) is outside the allocation in r7: it is 1 page (order 0)"
        ),
        "{e}"
    );
    run(&mut k, 1, copy(1)).expect("r7+1 of two pages");
    let free = |off, order| Instr::Free {
        page: Page::Reg(7, off),
        order,
    };
    let e = run(&mut k, 1, free(1, 1)).expect_err("pages 1..2 of two");
    assert!(
        e.to_string()
            .contains("page offsets 1..2 (r7+1, 2 pages) are outside"),
        "{e}"
    );
    run(&mut k, 1, free(0, 1)).expect("pages 0..1 of two");
    // A block maps every page of its size: a 2M block on one page is
    // refused before anything is stored.
    let block = Instr::Store {
        va: struct_page_va(k.head(0)),
        level: 2,
        desc: mm::Desc::Leaf {
            page: Page::Reg(7, 0),
            perm: mm::Perm::Rw,
            af: true,
            nt: false,
        },
    };
    let e = run(&mut k, 0, block).expect_err("a 2M block on one page");
    assert!(
        e.to_string()
            .contains("page offsets 0..511 (r7+0, 512 pages) are outside"),
        "{e}"
    );
}

/// `synchronize_rcu()` sleeps, and a `stop_machine()` callback cannot:
/// the batch path waits for the grace period before it stops the machine,
/// in both directions, as the one-huge-page programs the explorer runs do.
#[test]
fn the_grace_period_comes_before_stop_machine() {
    use mm::Instr;
    let p = Protocol::by_name("stop-machine").expect("built in");
    let mut k = kernel_for(&p, BbmLevel::Level0);
    let order = |log: &[Instr]| {
        let at = |x: &Instr| log.iter().position(|i| i == x).expect("in the log");
        (at(&Instr::SynchronizeRcu), at(&Instr::StopMachine))
    };
    k.log = Some(Vec::new());
    k.optimize(&p, &[0, 1], 2).expect("optimizes");
    let (rcu, stop) = order(k.log.as_deref().unwrap_or_default());
    assert!(
        rcu < stop,
        "synchronize_rcu at {rcu}, stop_machine at {stop}"
    );
    k.log = Some(Vec::new());
    k.restore(&p, &[0, 1], 2).expect("restores");
    let (rcu, stop) = order(k.log.as_deref().unwrap_or_default());
    assert!(
        rcu < stop,
        "synchronize_rcu at {rcu}, stop_machine at {stop}"
    );
    let mut fresh = kernel_for(&p, BbmLevel::Level0);
    let batch = fresh.hvo_batch_program(&p, 0).expect("a program");
    let (rcu, stop) = order(&batch.instrs);
    assert!(rcu < stop);
}
