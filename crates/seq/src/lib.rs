//! The `.seq` format: table-update sequences written by people, with their
//! expected verdicts, and their runners.
//!
//! One grammar (a lexer with spans and a recursive-descent parser), two
//! kinds of file:
//!
//! - a **kernel file** (it has a `kernel` line) boots the kernel model
//!   (the vmemmap as arm64 maps it, two huge pages), runs the updater's
//!   program (CPU 0) through the rule checker, and explores it against
//!   concurrent workloads on other CPUs, at each FEAT_BBM level of its
//!   `config` line, exactly as `hvo verify` does for a built-in protocol
//!   (`hvo show NAME --format seq` writes one);
//! - a **machine file** (`map`/`fill` lines) builds a bare machine from
//!   raw mappings and runs raw-address steps on any CPU through the rule
//!   checker only.
//!
//! A kernel file:
//!
//! ```text
//! # break-before-make for the tail pages, nobody paused
//! config granule=4k hugepagesz=2M bbm=0,2 hw-af=on
//! kernel hvo                                  # or: kernel de-hvo after=PROTOCOL
//! workloads neighbour pfn-walker straddle     # [cpus=N] [together]
//! limits states=1000000 time=60s              # optional: memory=SIZE
//! initial vmemmap[head] -> pfn 0x1000 pages=8 rw  # checked against the boot
//!
//! case bbm-no-pause
//! expect bbm=0,2 rules compliant concurrent translation-fault by neighbour
//! store vmemmap[head+64] L3 invalid
//! dsb ishst
//! tlbi vaale1is vmemmap[head+64]
//! dsb ish
//! store vmemmap[head+64] L3 page page-of vmemmap[head] ro
//! ```
//!
//! Expressions: numbers (`0x1000`, `4096`, `4K`), `head` and `next` (the
//! pfns of the updated huge page's head and of the next huge page's),
//! `vmemmap[PFN]` (the VA of a struct page), `+`, `*`, parentheses, and
//! names defined before the first case by `let NAME = EXPR`.
//! Pages: `rN`, `rN+K` (allocated by `alloc rN [order=K]`), a name given
//! by `alloc rN as NAME`, `pfn N`,
//! `page-of VA` (the frame mapping VA when the program starts), `same`
//! (the block's own memory), `shared-tail`. Descriptors: `invalid`,
//! `page PAGE rw|ro [noaf] [nt]` (level 3), `block PAGE rw|ro [noaf] [nt]`
//! (levels 0..2), `table PAGE`. Kernel steps: `store VA Ln DESC`,
//! `cas VA Ln DESC => DESC [retries=N]`, `dsb ish|ishst`, `isb`, `tlbi OP [VA]`,
//! `alloc rN [order=K] [as NAME]`, `free PAGE [order=K]`, `copy DST SRC`,
//! `fill-table PAGE from VA Ln`, `reset PAGE structs=N head=PFN`, `pause`,
//! `resume`, `stop-machine`, `start-machine`, `synchronize-rcu`,
//! `str VALUE, [VA]`. `expect [bbm=L,...] rules CODES|compliant
//! concurrent safe|incomplete|HAZARD [by WORKLOAD[+WORKLOAD]]`, one line
//! per level (a line without `bbm=` covers every level).
//!
//! TLBI operations (`OP`, kernel and machine files alike): the broadcast
//! (Inner Shareable) forms `vae1is`, `vale1is`, `vaae1is`, `vaale1is` and
//! `vmalle1is`, which invalidate every CPU's TLB, and the local forms
//! `vae1`, `vale1`, `vaae1`, `vaale1` and `vmalle1`, which invalidate the
//! issuing CPU's TLB only (Arm ARM, "TLB maintenance instructions"). All
//! but `vmalle1[is]` take a VA. Either completes at the issuer's `dsb ish`
//! (`dsb ishst` waits for stores only). The rule checker does not track
//! which CPU cached what, so on a machine of several CPUs a local TLBI
//! invalidates nothing it can count on (R_DDMVT break-before-make, frees);
//! in the explorer a local TLBI by the updater leaves the other CPUs'
//! TLBs as they are.
//!
//! A `cas` fails when the descriptor no longer holds the expected value:
//! against the explorer's CPUs, when a walk set its Access flag in memory
//! (hardware AF). A plain `cas` does not retry: the updater gives up on
//! the huge page (the table's `safe (N paths gave up the CAS)`, the
//! `gave-up` verdict). `retries=N` (0..255) retries it up to N times,
//! each retry as the 2026 AF-clear series does it: store the expected
//! value again (AF clear), `dsb ishst`, a TLBI of the VA (`vaale1is` at
//! L3, `vaae1is` above it, walk caches too), `dsb ish`, then the CAS again.
//! The built-in af-cas protocol retries twice (`retries=2`, which `hvo
//! show af-cas --format seq` writes). Without concurrent CPUs (the rule
//! checker's sequential run) a CAS cannot fail.
//!
//! A machine file:
//!
//! ```text
//! config granule=4k bbm=0 cpus=2 memory=64M     # hw-af, hw-dbm: on/off
//! map 0xffff800000000000 -> 0x2000000 size=32K level=3 rw
//! fill 0x2000000 pages=8 value=1
//!
//! case generic
//! expect R_WHZWS.oa-writable R_WHZWS.oa-contents
//! cpu0 store 0xffff800000001000 L3 page 0x2000000 ro
//! cpu0 dsb ishst
//! cpu0 tlbi vaale1is 0xffff800000001000
//! cpu0 dsb ish
//! ```
//!
//! Machine steps (`cpuN` then): `store VA Ln DESC`, `cas VA Ln DESC =>
//! DESC` where DESC is `invalid`, `page PA ATTRS`, `block PA ATTRS`,
//! `table NAME` or `raw 0xVALUE`; `dsb ish|ishst`, `isb`,
//! `tlbi OP [VA] [asid=N]`; `table NAME split VA Ln [ATTRS]`,
//! `table NAME empty`; `copy DST SRC`, `write PA VALUE`;
//! `free PA [order=N]`, `free table NAME`, `free table-at VA Ln`. ATTRS are
//! `rw` or `ro`, and any of `noaf`, `ng`, `nt`, `dbm`, `cont`, `pxn`,
//! `uxn`, `attr=N`, `sh=is|os|ns`. A case may run at its own level
//! (`case NAME bbm=2`).
//!
//! `#` starts a comment. Every error names the file, line and column,
//! shows the line with the span underlined, and says what was expected.

pub mod ast;
pub mod error;
pub mod kernel;
pub mod lex;
pub mod machine;
pub mod parse;

use std::path::Path;

pub use ast::KernelFile;
pub use error::{RunError, SeqError};
pub use kernel::{CheckRow, Emit, LitmusExport, emit, emit_litmus};
pub use machine::{CaseResult, MachineFile};
pub use parse::parse;

/// A parsed `.seq` file.
#[derive(Clone, Debug, PartialEq)]
pub enum SeqFile {
    /// A bare machine and raw steps: rules only.
    Machine(MachineFile),
    /// A booted kernel, the updater's program and workloads.
    Kernel(KernelFile),
}

impl SeqFile {
    /// Returns the file name as given.
    pub fn file(&self) -> &str {
        match self {
            SeqFile::Machine(m) => &m.file,
            SeqFile::Kernel(k) => &k.file,
        }
    }
}

/// The crate's error: a file that cannot be read, parsed or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("{file}: {message}")]
    Io {
        /// The file.
        file: String,
        /// Why.
        message: String,
    },
    /// A located error (parse, initial mapping, a step that cannot be
    /// resolved), with the file's text to render it.
    #[error("{error}")]
    Located {
        /// The error.
        error: SeqError,
        /// The file's text.
        text: String,
    },
    /// A machine step the model refuses.
    #[error(transparent)]
    Run(#[from] RunError),
}

impl Error {
    /// Renders the error for a terminal: located errors as ariadne
    /// reports (file:line:col, the line, the span underlined, what was
    /// expected).
    pub fn render(&self) -> String {
        match self {
            Error::Located { error, text } => error.render(text),
            e => e.to_string(),
        }
    }
}

/// Reads and parses a `.seq` file.
///
/// # Errors
///
/// Returns [`Error::Io`] if it cannot be read, else the parse error.
pub fn load(path: &Path) -> Result<SeqFile, Error> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        file: name.clone(),
        message: e.to_string(),
    })?;
    parse(&name, &text).map_err(|error| Error::Located { error, text })
}
