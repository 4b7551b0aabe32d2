//! What the data-driven tests share: reading a configuration from the
//! first fields of a line of a `tests/data/*.cases` file.

use explore::{Direction, Setup, WorkloadKind};
use vmsa::BbmLevel;

/// Builds the setup the fields `protocol op(hvo|de-hvo) bbm workload cpus`
/// name (the first five of `f`); `at` (file and line) starts every
/// message.
///
/// # Panics
///
/// On fewer than five fields or a field that does not parse, naming it.
pub fn setup(at: &str, f: &[&str]) -> Setup {
    assert!(
        f.len() >= 5,
        "{at}: expected `protocol op bbm workload cpus ...`"
    );
    let protocol = mm::Protocol::by_name(f[0]).unwrap_or_else(|| panic!("{at}: protocol {}", f[0]));
    let bbm: BbmLevel = f[2].parse().unwrap_or_else(|e| panic!("{at}: {e}"));
    let mut setup = Setup::standard(protocol, bbm);
    setup.direction = match f[1] {
        "hvo" => Direction::Hvo,
        "de-hvo" => Direction::Restore,
        d => panic!("{at}: op `{d}`, expected hvo or de-hvo"),
    };
    let w: WorkloadKind = f[3].parse().unwrap_or_else(|e| panic!("{at}: {e}"));
    setup.workloads = vec![w];
    setup.copies = f[4]
        .parse()
        .unwrap_or_else(|e| panic!("{at}: cpus `{}`: {e}", f[4]));
    setup
}
