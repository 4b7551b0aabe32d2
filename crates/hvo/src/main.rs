//! The `hvo` command line.

fn main() {}
