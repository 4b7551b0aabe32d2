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
