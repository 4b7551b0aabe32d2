//! Where the tests find herd7's conformance data.

use std::path::PathBuf;

/// Returns the directory of herd7's conformance data: `HVO_CONFORMANCE` if
/// set, else `../shared/conformance` beside the repository.
pub fn conformance_root() -> PathBuf {
    match std::env::var_os("HVO_CONFORMANCE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
}

/// Returns the figure `key N / M` (or `key N`, as `(N, N)`) of a summary
/// text (`litmus::harness::summary_text`).
#[allow(dead_code)] // not every test file that shares this module reads figures
pub fn figure(text: &str, key: &str) -> Option<(usize, usize)> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let n = f.get(1)?.parse().ok()?;
    let m = if f.get(2) == Some(&"/") {
        f.get(3)?.parse().ok()?
    } else {
        n
    };
    Some((n, m))
}
