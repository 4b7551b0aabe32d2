//! Property tests of the parser (the fuzz target's checks, in the normal
//! test suite): random token soup, arbitrary text and mutations of every
//! corpus file never panic, and every error names a line and column that
//! exist, with a non-empty message and an underline.

use std::path::Path;

use proptest::prelude::*;

fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("tests/rules"),
        root.join("../hvo/tests/check/pass"),
        root.join("../hvo/tests/check/reject"),
        root.join("../hvo/tests/check/bad"),
        root.join("../../sequences"),
    ] {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "seq"))
            .collect();
        files.sort();
        for f in files {
            out.push(std::fs::read_to_string(&f).expect("readable"));
        }
    }
    assert!(out.len() >= 30, "{} corpus files", out.len());
    out
}

/// Parses `src` and checks what an error says about its place.
fn check(src: &str) {
    if let Err(e) = seq::parse("prop.seq", src) {
        let lines: Vec<&str> = src.split('\n').collect();
        assert!(
            e.line >= 1 && e.line <= lines.len(),
            "line {} of {}",
            e.line,
            lines.len()
        );
        let text = lines[e.line - 1].trim_end_matches('\r');
        assert_eq!(e.text, text);
        assert!(
            e.col >= 1 && e.col <= text.chars().count() + 1,
            "col {} in {text:?}",
            e.col
        );
        assert!(!e.message.is_empty());
        assert!(e.caret().ends_with('^'));
        assert!(e.span.start <= e.span.end && e.span.end <= src.len());
        let r = e.render(src);
        assert!(r.contains(&format!("prop.seq:{}:{}", e.line, e.col)), "{r}");
    }
}

const WORDS: &[&str] = &[
    "config",
    "kernel",
    "hvo",
    "de-hvo",
    "after=",
    "bbm-no",
    "workloads",
    "neighbour",
    "pfn-walker",
    "limits",
    "initial",
    "map",
    "fill",
    "case",
    "expect",
    "rules",
    "concurrent",
    "safe",
    "by",
    "compliant",
    "none",
    "R_WHZWS.oa-writable",
    "store",
    "cas",
    "dsb",
    "ish",
    "ishst",
    "isb",
    "tlbi",
    "vaale1is",
    "vmalle1is",
    "alloc",
    "free",
    "copy",
    "fill-table",
    "from",
    "reset",
    "structs",
    "pause",
    "resume",
    "stop-machine",
    "synchronize-rcu",
    "str",
    "page",
    "block",
    "table",
    "invalid",
    "rw",
    "ro",
    "noaf",
    "nt",
    "r0",
    "r1000",
    "pfn",
    "page-of",
    "same",
    "shared-tail",
    "head",
    "next",
    "vmemmap",
    "L2",
    "L3",
    "cpu0",
    "cpu1",
    "0x3f100",
    "64",
    "4k",
    "2M",
    "2-noabort",
    "bbm",
    "granule",
    "hugepagesz",
    "pages",
    "order",
    "cpus",
    "memory",
    "size",
    "level",
    "value",
    "raw",
    "split",
    "empty",
    "write",
    "table-at",
    "tails",
    "order",
    "=",
    ",",
    "+",
    "*",
    "[",
    "]",
    "(",
    ")",
    "->",
    "=>",
    "\n",
    "\n",
    "\n",
    " ",
    "#c\n",
    "0xffffffffffffffff",
    "99999999999999999999",
    "é",
    "\t",
    "\r\n",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS), 0..80).prop_map(|v| {
        let mut s = String::new();
        for w in v {
            s.push_str(w);
            if !w.ends_with('\n') && !w.ends_with('=') {
                s.push(' ');
            }
        }
        s
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, &'static str),
    Byte(usize, u8),
    DupLine(usize),
    SwapLines(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..12).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), prop::sample::select(WORDS)).prop_map(|(a, w)| Mutation::Insert(a, w)),
        (any::<usize>(), 0x20u8..0x7f).prop_map(|(a, b)| Mutation::Byte(a, b)),
        any::<usize>().prop_map(Mutation::DupLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn floor(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(src: &str, m: &Mutation) -> String {
    let n = src.len().max(1);
    match *m {
        Mutation::Delete(a, len) => {
            let a = floor(src, a % n);
            let b = floor(src, a + len);
            format!("{}{}", &src[..a], &src[b..])
        }
        Mutation::Insert(a, w) => {
            let a = floor(src, a % n);
            format!("{}{w}{}", &src[..a], &src[a..])
        }
        Mutation::Byte(a, b) => {
            let a = floor(src, a % n);
            let end = floor(src, a + src[a..].chars().next().map_or(0, char::len_utf8));
            format!("{}{}{}", &src[..a], b as char, &src[end..])
        }
        Mutation::DupLine(i) => {
            let mut lines: Vec<&str> = src.split('\n').collect();
            let i = i % lines.len();
            lines.insert(i, lines[i]);
            lines.join("\n")
        }
        Mutation::SwapLines(i, j) => {
            let mut lines: Vec<&str> = src.split('\n').collect();
            let (i, j) = (i % lines.len(), j % lines.len());
            lines.swap(i, j);
            lines.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(s in soup()) {
        check(&s);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
        check(&s);
    }

    #[test]
    fn mutated_corpus_files_never_panic(
        i in any::<usize>(),
        ms in prop::collection::vec(mutation(), 1..6),
    ) {
        let corpus = corpus();
        let mut s = corpus[i % corpus.len()].clone();
        for m in &ms {
            s = apply(&s, m);
        }
        check(&s);
    }
}

#[test]
fn every_corpus_file_parses_or_is_a_bad_example() {
    for src in corpus() {
        let bad = src.starts_with("# error:");
        let r = seq::parse("corpus.seq", &src);
        // Bad examples may fail later (when the kernel is booted), so
        // only the good ones must parse.
        if !bad {
            assert!(
                r.is_ok(),
                "{}",
                r.err().map(|e| e.to_string()).unwrap_or_default()
            );
        }
        check(&src);
    }
}

const STEPS: &[&str] = &[
    "store vmemmap[head+64] L3 invalid",
    "store vmemmap[head] L0 table r0",
    "store 0x0 L3 page pfn 0xffffffffffff rw",
    "store vmemmap[0] L2 block same rw nt",
    "cas vmemmap[head+64] L3 page r0 ro => invalid",
    "fill-table r0 from vmemmap[head] L2",
    "fill-table r0 from 0x1000 L1",
    "alloc r0",
    "alloc r0 order=31",
    "alloc r1 order=3",
    "free r0",
    "free pfn 0x3f100 order=9",
    "free page-of vmemmap[head] order=3",
    "copy r0 page-of vmemmap[head+64]",
    "copy pfn 0xfffffffffffff r0",
    "reset r0 structs=64 head=head",
    "reset r0 structs=99999999999 head=head",
    "fill-table r0 from vmemmap[head] L3",
    "reset page-of vmemmap[head] structs=3 head=0xffffffffffffffff",
    "str 0x1, [vmemmap[next]]",
    "str 0x1, [0x1000]",
    "tlbi vaale1is vmemmap[head]",
    "tlbi vmalle1is",
    "dsb ish",
    "isb",
    "pause",
    "resume",
    "stop-machine",
    "start-machine",
    "synchronize-rcu",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Programs made of arbitrary steps either resolve and run
    /// sequentially on the booted kernel or give an error: never a panic.
    #[test]
    fn arbitrary_kernel_programs_resolve_or_fail_cleanly(
        steps in prop::collection::vec(prop::sample::select(STEPS), 0..12),
        de_hvo in any::<bool>(),
    ) {
        let mut src = String::from("config granule=4k bbm=0\n");
        src.push_str(if de_hvo { "kernel de-hvo after=ro-first\n" } else { "kernel hvo\n" });
        src.push_str("workloads neighbour\ncase c\nexpect rules compliant concurrent safe\n");
        for s in &steps {
            src.push_str(s);
            src.push('\n');
        }
        let Ok(seq::SeqFile::Kernel(k)) = seq::parse("p.seq", &src) else {
            panic!("does not parse:\n{src}");
        };
        if let Ok((prep, programs)) = k.prepare(vmsa::BbmLevel::Level0) {
            let _ = explore::Scenario::build(&prep, &programs[0]);
        }
    }
}
