//! `hvo show` used as a kernel developer would use it: a protocol's program
//! (the one the explorer runs), its verdict, and the `.seq` file it writes.

mod common;

use common::hvo;
use explore::{Direction, Setup};
use vmsa::BbmLevel;

#[test]
fn show_prints_the_program_and_its_verdict() {
    let (code, out, _) = hvo(&["show", "ro-first", "--bbm", "2"]);
    assert_eq!(code, 0);
    assert!(out.contains("synchronize_rcu"));
    assert!(out.contains("copy_page("));
    assert!(out.contains("free pfn"));
    assert!(
        out.trim_end().ends_with("# rule verdict: compliant"),
        "{out}"
    );
    let (code, out, _) = hvo(&["show", "linux-generic", "--restore"]);
    assert_eq!(code, 0);
    assert!(out.contains("# de-HVO"));
    assert!(out.contains("R_WHZWS.block-size"));
    let (code, _, err) = hvo(&["show", "linux-generic", "--hugepagesz", "64K"]);
    assert_eq!(code, 2);
    assert!(err.contains("HVO does not apply"), "{err}");
}

/// Returns the programs `hvo show` printed, one per `# HVO` or `# de-HVO`
/// block: each instruction line's text after its index.
fn shown_programs(out: &str) -> Vec<Vec<String>> {
    let mut programs: Vec<Vec<String>> = Vec::new();
    for l in out.lines() {
        if l == "# HVO" || l == "# de-HVO" {
            programs.push(Vec::new());
        } else if let Some((n, ins)) = l.trim_start().split_once("  ")
            && n.bytes().all(|b| b.is_ascii_digit())
            && let Some(p) = programs.last_mut()
        {
            assert_eq!(n, p.len().to_string(), "{l}");
            p.push(ins.to_string());
        }
    }
    programs
}

/// `hvo show` prints the program the explorer runs, step for step and in
/// its order (the refcount freeze, then the protocol's batch of one huge
/// page), for every protocol in both directions: the one `hvo verify`
/// explores and `--format seq` writes.
#[test]
fn show_prints_the_program_the_explorer_runs() {
    for p in mm::PROTOCOLS {
        let (code, out, err) = hvo(&["show", p.name, "--restore"]);
        assert_eq!(code, 0, "{err}");
        let shown = shown_programs(&out);
        assert_eq!(shown.len(), 2, "{out}");
        for (shown, d) in shown.iter().zip([Direction::Hvo, Direction::Restore]) {
            let mut s = Setup::standard(p, BbmLevel::Level0);
            s.direction = d;
            s.features.hw_af = false;
            let prep = explore::Prepared::new(&s).expect("prepares");
            let explored: Vec<String> = prep.program.instrs.iter().map(|i| i.to_string()).collect();
            assert_eq!(*shown, explored, "{} {}", p.name, d.name());
        }
    }
    // The reported case: stop-machine waits for the grace period before it
    // stops the machine (its callback cannot sleep), and freezes the
    // refcounts first.
    let (_, out, _) = hvo(&["show", "stop-machine"]);
    let program = &shown_programs(&out)[0];
    let at = |x: &str| program.iter().position(|i| i == x).expect(x);
    assert!(at("synchronize_rcu") < at("stop_machine begin"), "{out}");
    assert!(program[0].starts_with("str 0xffffffff, ["), "{out}");
    // The explorer's kernel is sized for its two huge pages: a memory size
    // of the user's would be ignored, so it is refused.
    let (code, _, err) = hvo(&["show", "stop-machine", "--memory", "1G"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--memory does not apply to `hvo show`"),
        "{err}"
    );
}

/// A block's own memory (`same`, a split that keeps it) is printed as
/// `same`, in `hvo show`, in the kernel file it writes and in a
/// counterexample, never as the number that once stood for it.
#[test]
fn the_blocks_own_memory_is_printed_as_same() {
    let (code, out, err) = hvo(&["show", "bbm", "--split", "nt"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("store L2[0xfffffc0000000000] = same rw nt"),
        "{out}"
    );
    let (_, seq, _) = hvo(&[
        "show",
        "bbm",
        "--split",
        "nt",
        "--format",
        "seq",
        "--levels",
        "0",
        "--workload",
        "neighbour",
    ]);
    assert!(
        seq.contains("store vmemmap[0] L2 block same rw nt"),
        "{seq}"
    );
    let (_, cx, _) = hvo(&["check", "tests/check/pass/af-cas-no-hw-af.seq"]);
    assert!(
        cx.contains("cpu0: store L2[0xfffffc0000000000] = same rw noaf"),
        "{cx}"
    );
    for text in [&out, &seq, &cx] {
        assert!(!text.contains("0xffffffffffffffff"), "{text}");
    }
}

/// The header of `hvo show --format seq` names the command that wrote
/// it, with every option that changes the file: run again, it writes
/// the same file.
#[test]
fn show_seq_names_the_command_that_wrote_it() {
    let (code, out, err) = hvo(&[
        "show",
        "bbm",
        "--format",
        "seq",
        "--split",
        "nt",
        "--levels",
        "0",
        "--workload",
        "neighbour",
        "--no-rcu",
    ]);
    assert_eq!(code, 0, "{err}");
    let command = out
        .lines()
        .find_map(|l| l.strip_prefix("# written by `"))
        .and_then(|l| l.split_once('`'))
        .map(|(c, _)| c)
        .expect("the command");
    assert_eq!(
        command,
        "hvo show bbm --format seq --split nt --levels 0 --workload neighbour --no-rcu"
    );
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let (code, again, err) = hvo(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(again, out);
}
