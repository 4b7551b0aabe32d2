//! The memory limit holds: a search driven into a small memory limit stops
//! before it (estimated before each chunk, `search.rs` `memory_peak`), says
//! so and how far it got, and the process's peak memory stays within the
//! limit and a fixed overhead. The only test of its binary, so that the
//! process's peak is this search's.

use explore::{Limit, Limits, Setup, Verdict};

/// The process's memory (kB) on the line `key` of `/proc/self/status`
/// (`VmRSS`, `VmHWM`); `None` off Linux.
fn status_kb(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The limit, in MiB.
const LIMIT_MIB: u64 = 64;
/// What the process holds besides what the search counts: the threads'
/// stacks and scratch storage, the allocator's own, the engine.
const OVERHEAD_MIB: u64 = 16;

#[test]
fn a_search_stops_before_its_memory_limit_and_says_how_far_it_got() {
    let before = status_kb("VmRSS:");
    // Two copies of every workload together: some 2.5 million states and
    // several GiB to search in full.
    let mut setup = Setup::standard(
        mm::Protocol::by_name("pause-cpus").expect("a protocol"),
        vmsa::BbmLevel::Level2NoAbort,
    );
    setup.copies = 2;
    let limits = Limits {
        memory: LIMIT_MIB << 20,
        ..Limits::default()
    };
    let row = explore::verify(&setup, &limits, true).expect("explores");
    let r = &row.runs[0].report;
    let Verdict::Incomplete { limit, advice } = &r.verdict else {
        panic!(
            "expected the memory limit to stop the search: {:?}",
            r.verdict
        );
    };
    assert_eq!(*limit, Limit::Memory, "{advice}");
    assert!(
        r.states > 1000 && r.transitions > r.states && r.depth > 1,
        "{r:?}"
    );
    for part in [
        format!("the memory limit ({LIMIT_MIB} MiB)"),
        format!("after {} states, at depth {}", r.states, r.depth),
        "--max-memory".to_string(),
    ] {
        assert!(advice.contains(&part), "`{part}` not in `{advice}`");
    }
    if let (Some(before), Some(peak)) = (before, status_kb("VmHWM:")) {
        let allowed = before + ((LIMIT_MIB + OVERHEAD_MIB) << 10);
        assert!(
            peak <= allowed,
            "peak {peak} kB, over {before} kB before the search + {LIMIT_MIB} MiB limit + {OVERHEAD_MIB} MiB overhead"
        );
        eprintln!("before {before} kB, peak {peak} kB, {} states", r.states);
    }
}
