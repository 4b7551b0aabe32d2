//! herd7 AArch64 VMSA litmus tests on the project's model: a reader for the
//! catalogue's files ([`parse()`]), an exhaustive executor on an operational
//! model with per-CPU TLBs ([`exec`] module), and a conformance harness comparing
//! verdicts, BBM warnings and final states with herd7's ([`harness`],
//! [`states`]).

pub mod ast;
pub mod differential;
pub mod exec;
pub mod harness;
pub mod onto;
pub mod parse;
pub mod states;

pub use ast::Test;
pub use exec::{Outcome, Verdict, run};
pub use parse::parse;

/// The crate's error type.
#[derive(Debug, thiserror::Error)]
pub enum LitmusError {
    /// The file is not a well-formed litmus test.
    #[error("{file}:{line}:{col}: {msg}")]
    Syntax {
        /// The file.
        file: String,
        /// The line (1-based).
        line: usize,
        /// The column (1-based).
        col: usize,
        /// What was expected.
        msg: String,
    },
    /// A herd7 construct the model does not handle.
    #[error("{file}:{line}:{col}: unsupported: {what}")]
    Unsupported {
        /// The file.
        file: String,
        /// The line (1-based).
        line: usize,
        /// The column (1-based).
        col: usize,
        /// The construct.
        what: String,
    },
    /// The execution met something the model does not handle (e.g. an
    /// access through a value that is no address).
    #[error("{test}: unsupported at run time: {what}")]
    Runtime {
        /// The test's name.
        test: String,
        /// The construct.
        what: String,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}
