//! Helpers shared by the `cli_*.rs` tests: the `hvo` binary run as a
//! user runs it.

use std::process::Command;

/// Runs `hvo` with `args` in the crate's directory; returns the exit
/// code, standard output and standard error.
pub fn hvo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hvo"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("hvo runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
