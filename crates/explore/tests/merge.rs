//! The search gives the same report on any number of threads, and the
//! report the sequential merge gave: for each configuration in
//! `tests/data/merge.cases`, searched on pools of 1, 2 and 3 threads, the
//! verdict, the counts of states, transitions and paths given up, the depth
//! and the counterexample are those the file records (taken from the
//! search before its merge ran in parallel). The cases stop a search at a
//! state limit (exactly at the state that reaches it, even when a hazard
//! lies later in the same chunk or before it in the next), at a hazard
//! (counting only the states before it in the chunk), and at a hazard met
//! after paths were given up; and at a memory limit (estimated before each
//! chunk from counts the same on any number of threads).

mod common;

use explore::engine::Engine;
use explore::search::explore;
use explore::{Limits, Prepared, Scenario, Setup, Verdict};

/// One case: where it is, the setup, whether `synchronize_rcu()` is
/// removed, the state limit, the memory limit, and the expected summary.
struct Case {
    at: String,
    setup: Setup,
    no_rcu: bool,
    states: u64,
    memory: u64,
    expected: Option<String>,
}

fn parse(text: &str) -> Vec<Case> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("merge.cases:{}", n + 1);
        let (config, expected) = match line.split_once('=') {
            Some((c, e)) => (c, Some(e.split_whitespace().collect::<Vec<_>>().join(" "))),
            None => (line, None),
        };
        let f: Vec<&str> = config.split_whitespace().collect();
        assert!(
            f.len() >= 7,
            "{at}: expected `protocol op bbm workload cpus rcu|no-rcu max-states [N MiB] = summary`"
        );
        let setup = common::setup(&at, &f);
        let no_rcu = match f[5] {
            "rcu" => false,
            "no-rcu" => true,
            o => panic!("{at}: `{o}`, expected rcu or no-rcu"),
        };
        let states = f[6]
            .parse()
            .unwrap_or_else(|e| panic!("{at}: max-states `{}`: {e}", f[6]));
        let memory = match f.get(7) {
            None => Limits::default().memory,
            Some(m) => {
                let mib: u64 = m
                    .strip_suffix("MiB")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{at}: max-memory `{m}`, expected N MiB"));
                mib << 20
            }
        };
        out.push(Case {
            at: format!("{at} {config}"),
            setup,
            no_rcu,
            states,
            memory,
            expected,
        });
    }
    out
}

/// Searches `case` and summarizes the report: verdict, states,
/// transitions, depth, paths given up, and for a hazard its kind, CPU,
/// detail and the counterexample's steps.
fn run(case: &Case) -> String {
    let prep = Prepared::new(&case.setup).expect("prepares");
    let mut program = prep.program.clone();
    if case.no_rcu {
        program
            .instrs
            .retain(|i| !matches!(i, mm::Instr::SynchronizeRcu));
    }
    let sc = Scenario::build(&prep, &program).expect("builds");
    let limits = Limits {
        states: case.states,
        memory: case.memory,
        ..Limits::default()
    };
    let r = explore(&Engine::new(&sc), &limits);
    let verdict = match &r.verdict {
        Verdict::Safe => "safe".to_string(),
        Verdict::Incomplete { limit, .. } => format!("incomplete-{limit:?}"),
        Verdict::Hazard { hazard, trace } => format!(
            "{} cpu{} steps{} {:x}",
            hazard.kind.slug(),
            hazard.cpu,
            trace.len(),
            // The detail and every step's text, as one digest.
            fnv(trace
                .iter()
                .map(|t| format!("{:?} {}", t.cpu, t.text))
                .chain([hazard.detail.clone()]))
        ),
    };
    format!(
        "{verdict} {} {} {} {}",
        r.states, r.transitions, r.depth, r.gave_up
    )
}

/// FNV-1a over the lines.
fn fnv(lines: impl Iterator<Item = String>) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for l in lines {
        for b in l.bytes().chain([b'\n']) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[test]
fn the_same_report_on_any_number_of_threads() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/merge.cases"
    ))
    .expect("reads tests/data/merge.cases");
    let cases = parse(&text);
    assert!(cases.len() >= 10, "{} cases", cases.len());
    let mut missing = Vec::new();
    for case in &cases {
        let mut got = Vec::new();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool");
            got.push(pool.install(|| run(case)));
        }
        assert!(
            got.iter().all(|g| *g == got[0]),
            "{}: 1, 2 and 3 threads differ:\n{}",
            case.at,
            got.join("\n")
        );
        match &case.expected {
            Some(e) => assert_eq!(&got[0], e, "{}", case.at),
            None => missing.push(format!("{} = {}", case.at, got[0])),
        }
    }
    assert!(
        missing.is_empty(),
        "cases without a summary:\n{}",
        missing.join("\n")
    );
}
