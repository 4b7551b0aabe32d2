//! Mutated catalogue files never make the reader or the executor panic:
//! each mutation (a deleted range, inserted characters, swapped lines, a
//! truncation) either parses and runs, or gives an error.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use litmus::exec::Options;
use proptest::prelude::*;

fn corpus() -> &'static [(PathBuf, String)] {
    static FILES: OnceLock<Vec<(PathBuf, String)>> = OnceLock::new();
    FILES.get_or_init(load)
}

fn load() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data"),
        common::conformance_root(),
    ];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "litmus")
                && let Ok(s) = std::fs::read_to_string(&p)
            {
                files.push((p, s));
            }
        }
    }
    files.sort();
    files
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    SwapLines(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..20).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), "[ -~\n]{1,8}").prop_map(|(a, s)| Mutation::Insert(a, s)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(src: &str, m: &Mutation) -> String {
    let chars: Vec<char> = src.chars().collect();
    let n = chars.len().max(1);
    match m {
        Mutation::Delete(a, k) => {
            let a = a % n;
            let b = (a + k).min(chars.len());
            chars[..a.min(chars.len())]
                .iter()
                .chain(&chars[b..])
                .collect()
        }
        Mutation::Insert(a, s) => {
            let a = (a % n).min(chars.len());
            let mut out: String = chars[..a].iter().collect();
            out.push_str(s);
            out.extend(&chars[a..]);
            out
        }
        Mutation::SwapLines(a, b) => {
            let mut lines: Vec<&str> = src.lines().collect();
            if !lines.is_empty() {
                let l = lines.len();
                lines.swap(a % l, b % l);
            }
            lines.join("\n")
        }
        Mutation::Truncate(a) => chars[..(a % n).min(chars.len())].iter().collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn mutated_files_never_panic(pick in any::<usize>(), ms in proptest::collection::vec(mutation(), 1..4)) {
        let files = corpus();
        prop_assume!(!files.is_empty());
        let (path, src) = &files[pick % files.len()];
        let mut text = src.clone();
        for m in &ms {
            text = apply(&text, m);
        }
        let label = path.display().to_string();
        if let Ok(t) = litmus::parse(&label, &text) {
            let _ = litmus::run(&t, &Options { max_states: 5_000, ..Options::default() });
        }
    }
}
