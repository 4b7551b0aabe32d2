//! The `hvo` binary used as a kernel developer would use it.

use std::process::Command;

use explore::{Direction, Setup};
use vmsa::BbmLevel;

fn hvo(args: &[&str]) -> (i32, String, String) {
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

fn row<'a>(out: &'a str, case: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(case))
        .unwrap_or_else(|| panic!("no row for {case} in\n{out}"))
}

/// Returns the row of `protocol` `op` at FEAT_BBM `bbm` in `hvo verify`'s table.
fn verify_row<'a>(out: &'a str, protocol: &str, op: &str, bbm: &str) -> &'a str {
    out.lines()
        .find(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some(protocol) && w.next() == Some(op) && w.next() == Some(bbm)
        })
        .unwrap_or_else(|| panic!("no row for {protocol} {op} {bbm} in\n{out}"))
}

/// The short answer under the table follows the rows: a protocol is listed
/// at a level only when that row is both compliant and safe.
#[test]
fn verify_ends_its_table_with_the_short_answer() {
    let (code, out, err) = hvo(&["verify", "--protocol", "ro-first,bbm,stop-machine"]);
    assert_eq!(code, 0, "{out}{err}");
    let answer: Vec<&str> = out
        .lines()
        .skip_while(|l| {
            !l.starts_with("Compliant and safe (FEAT_BBM levels checked: 0, 2, 2-noabort):")
        })
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").leak() as &str)
        .collect();
    assert_eq!(
        answer,
        [
            "ro-first hvo only at FEAT_BBM 2-noabort",
            "ro-first de-hvo at every level checked",
            "bbm hvo at no level checked",
            "bbm de-hvo at no level checked",
            "stop-machine hvo at every level checked",
            "stop-machine de-hvo at every level checked",
        ],
        "{out}"
    );
}

#[test]
fn verify_gives_every_protocols_verdicts_and_counterexamples() {
    let (code, out, err) = hvo(&["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let generic = verify_row(&out, "linux-generic", "hvo", "0");
    assert!(generic.contains("R_WHZWS.oa-writable"), "{generic}");
    assert!(
        generic.contains("TLB conflict abort (neighbour)"),
        "{generic}"
    );
    assert!(verify_row(&out, "bbm", "hvo", "0").contains("translation fault (neighbour)"));
    for bbm in ["0", "2", "2-noabort"] {
        for op in ["hvo", "de-hvo"] {
            for p in ["stop-machine", "pause-cpus"] {
                let r = verify_row(&out, p, op, bbm);
                assert!(r.contains("compliant") && r.contains("safe"), "{r}");
            }
        }
        // Catalin's de-HVO: compliant and safe even at level 0.
        let r = verify_row(&out, "ro-first", "de-hvo", bbm);
        assert!(r.contains("compliant") && r.contains("safe"), "{r}");
    }
    assert!(out.contains("42 configurations"), "{out}");
    // The counterexample: numbered steps and the hazard with the
    // descriptors and TLB entries behind it.
    assert!(out.contains("linux-generic hvo at FEAT_BBM 0 with neighbour: TLB conflict abort"));
    assert!(out.contains("=>  TLB conflict abort on cpu1"));
    assert!(out.contains("\n         cpu1 TLB:\n           ["));
}

#[test]
fn verify_shows_the_pfn_walker_race_without_synchronize_rcu() {
    let args = [
        "verify",
        "--protocol",
        "stop-machine,pause-cpus",
        "--workload",
        "pfn-walker",
        "--direction",
        "hvo",
        "--bbm",
        "0",
    ];
    let (code, out, _) = hvo(&args);
    assert_eq!(code, 0);
    assert!(verify_row(&out, "pause-cpus", "hvo", "0").contains("safe"));
    let mut racy = args.to_vec();
    racy.push("--no-rcu");
    let (code, out, _) = hvo(&racy);
    assert_eq!(code, 0);
    for p in ["stop-machine", "pause-cpus"] {
        assert!(
            verify_row(&out, p, "hvo", "0").contains("permission fault (pfn-walker)"),
            "{out}"
        );
    }
    assert!(out.contains("get_page_unless_zero"), "{out}");
}

#[test]
fn verify_stops_at_a_limit_and_says_which() {
    let (code, out, _) = hvo(&[
        "verify",
        "--protocol",
        "af-cas",
        "--direction",
        "hvo",
        "--bbm",
        "0",
        "--max-states",
        "100",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("incomplete"), "{out}");
    assert!(out.contains("raise it with --max-states"), "{out}");
}

/// A search of more than a second shows its progress only on a terminal:
/// with standard error a pipe, nothing is written there; the memory limit
/// stops the search and the report says how far it got.
#[test]
fn verify_shows_no_progress_off_a_terminal_and_reports_the_memory_limit() {
    let (code, out, err) = hvo(&[
        "verify",
        "--protocol",
        "pause-cpus",
        "--direction",
        "hvo",
        "--bbm",
        "2-noabort",
        "--cpus",
        "2",
        "--together",
        "--max-memory",
        "400",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "", "nothing on standard error");
    assert!(
        out.contains("incomplete: the memory limit (400 MiB) was reached after "),
        "{out}"
    );
    assert!(out.contains("raise it with --max-memory"), "{out}");
}

#[test]
fn check_gives_the_threads_rule_verdicts() {
    let (code, out, err) = hvo(&[
        "check",
        "../../sequences/thread-2024-07.seq",
        "../../sequences/de-hvo-2024-07.seq",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(row(&out, "linux-generic").contains("R_WHZWS.block-size"));
    assert!(row(&out, "linux-generic").contains("R_WHZWS.oa-writable"));
    assert!(!row(&out, "linux-generic-bbml2").contains("block-size"));
    assert!(row(&out, "bbm").contains("compliant"));
    assert!(row(&out, "ro-first").contains("compliant"));
    assert!(row(&out, "ro-first-bbm0").contains("R_WHZWS.block-size"));
    assert!(row(&out, "catalin-restore").contains("compliant"));
    assert!(row(&out, "linux-restore").contains("R_WHZWS.oa-writable"));
    assert!(out.contains("8 cases, 8 as expected, 0 not."));
}

#[test]
fn verify_json_is_machine_readable() {
    let (code, out, _) = hvo(&[
        "verify",
        "--json",
        "--protocol",
        "bbm",
        "--direction",
        "hvo",
        "--bbm",
        "0",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    let rows = v.as_array().expect("an array");
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r["protocol"], "bbm");
    assert_eq!(r["compliant"], true);
    assert_eq!(r["safe"], false);
    assert_eq!(r["runs"].as_array().unwrap().len(), 3);
    let neighbour = &r["runs"][0];
    assert_eq!(neighbour["workloads"][0], "Neighbour");
    let hazard = &neighbour["report"]["verdict"]["Hazard"];
    assert!(!hazard["trace"].as_array().expect("a trace").is_empty());
    assert_eq!(hazard["hazard"]["kind"]["Fault"], "Translation");
}

#[test]
fn check_exits_nonzero_when_a_verdict_differs() {
    let dir = std::env::temp_dir().join(format!("hvo-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("wrong.seq");
    std::fs::write(
        &f,
        "config granule=4k bbm=0\nmap 0xffff800000000000 -> 0x2000000 size=8K level=3 rw\n\
         case claims-compliant\nexpect none\n\
         cpu0 store 0xffff800000001000 L3 page 0x2000000 ro\ncpu0 dsb ish\n",
    )
    .unwrap();
    let (code, out, _) = hvo(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(row(&out, "claims-compliant").contains("R_WHZWS.oa-writable"));
    assert!(row(&out, "claims-compliant").ends_with("NO"));
}

#[test]
fn bad_input_names_file_line_and_expectation() {
    let dir = std::env::temp_dir().join(format!("hvo-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.seq");
    std::fs::write(
        &f,
        "config granule=4k\ncase a\nexpect none\ncpu0 tlbi vae2is 0x1000\n",
    )
    .unwrap();
    let (code, out, err) = hvo(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("bad.seq:4:11"), "{err}");
    assert!(
        err.contains("expected vae1is, vale1is, vaae1is, vaale1is, vmalle1is, vae1, vale1, vaae1, vaale1 or vmalle1, found `vae2is`"),
        "{err}"
    );
    // The source line, with the span underlined (ariadne, ASCII).
    assert!(err.contains(" 4 | cpu0 tlbi vae2is 0x1000"), "{err}");
    assert!(err.contains("|           ^^^|^^"), "{err}");
    let (code, _, err) = hvo(&["check", "/nonexistent/x.seq"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/x.seq"), "{err}");
}

#[test]
fn rules_lists_every_rule_with_its_id() {
    let (code, out, _) = hvo(&["rules"]);
    assert_eq!(code, 0);
    for code in [
        "R_WHZWS.oa-writable",
        "R_WHZWS.oa-contents",
        "R_WHZWS.memory-attributes",
        "R_WHZWS.block-size",
        "R_WHZWS.global",
        "R_DDMVT.make-before-invalidation",
        "R_DDMVT.tlbi-before-dsb",
        "HVO_FREE.mapped",
        "HVO_FREE.cached",
        "HVO_FREE.walk-cached",
    ] {
        assert!(out.contains(code), "missing {code}");
    }
}

#[test]
fn decode_reads_a_kernel_pte() {
    // PAGE_KERNEL-like PTE: valid page, AttrIndx 0, SH inner, AF, PXN, UXN.
    let (code, out, _) = hvo(&["decode", "0x0060000040001703"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        "page oa=0x40001000 RW AF PXN UXN SH=IS AttrIndx=0"
    );
    let (code, out, _) = hvo(&["decode", "0x0000000040200741", "--level", "2"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("block oa=0x40200000"), "{out}");
    let (code, _, err) = hvo(&["decode", "0x1", "--granule", "64k", "--level", "0"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("level 0 does not exist with the 64K granule"),
        "{err}"
    );
}

fn sim_json(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["simulate", "--json"];
    a.extend_from_slice(args);
    let (code, out, err) = hvo(&a);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).expect("valid JSON")
}

#[test]
fn simulate_frees_what_the_geometry_says() {
    let v = sim_json(&["--hugepages", "64"]);
    assert_eq!(v["vmemmap_freed"], 64 * 28 * 1024);
    assert_eq!(v["after_hvo"]["hugetlb_optimized"], 64);
    let rules: Vec<&str> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"R_WHZWS.oa-writable"), "{rules:?}");
    assert!(rules.contains(&"R_WHZWS.block-size"), "{rules:?}");
    // One vmemmap PMD covers 64 huge pages of 2M; the pool starts on a
    // 2M boundary, not a 128M one, so its 64 pages straddle two PMDs.
    assert_eq!(v["table_pages_added"], 2);
    let v = sim_json(&[
        "--hugepagesz",
        "1G",
        "--hugepages",
        "2",
        "--protocol",
        "stop-machine",
    ]);
    assert_eq!(v["vmemmap_freed"], 2 * ((16 << 20) - 4096));
    assert_eq!(v["violations"].as_array().unwrap().len(), 0);
    assert_eq!(v["costs"]["stop_machines"], 1);
}

/// `--checker-thread` changes where the checker runs, not what it finds:
/// the report is the same but for the timings.
#[test]
fn simulate_with_the_checker_on_its_thread_reports_the_same() {
    let args = ["--hugepages", "200", "--restore", "120", "--batch", "64"];
    let mut inline = sim_json(&args);
    let mut threaded = sim_json(&[&args[..], &["--checker-thread"]].concat());
    for v in [&mut inline, &mut threaded] {
        let o = v.as_object_mut().unwrap();
        o.remove("seconds_hvo");
        o.remove("seconds_restore");
    }
    assert_eq!(inline, threaded);
    assert!(!inline["violations"].as_array().unwrap().is_empty());
}

#[test]
fn simulate_restores_and_counts_costs() {
    let v = sim_json(&[
        "--hugepages",
        "16",
        "--restore",
        "16",
        "--protocol",
        "pause-cpus",
    ]);
    assert_eq!(v["after_restore"]["vmemmap"], v["before"]["vmemmap"]);
    assert_eq!(v["after_restore"]["hugetlb_optimized"], 0);
    // pause-cpus pauses once per huge page, for HVO and for de-HVO, and
    // once per vmemmap block split.
    assert_eq!(
        v["costs"]["pauses"].as_u64(),
        v["costs"]["table_pages"].as_u64().map(|t| 32 + t)
    );
    assert_eq!(v["violations"].as_array().unwrap().len(), 0);
    let v = sim_json(&[
        "--hugepages",
        "16",
        "--bbm",
        "2-noabort",
        "--protocol",
        "ro-first",
    ]);
    assert_eq!(v["violations"].as_array().unwrap().len(), 0);
}

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

/// Runs `hvo check --json` on `text` written to a file named `name`;
/// returns the exit code and the rows.
fn check_text(name: &str, text: &str) -> (i32, Vec<serde_json::Value>) {
    let dir = std::env::temp_dir().join(format!("hvo-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("written");
    let (code, out, err) = hvo(&["check", "--json", path.to_str().expect("utf-8")]);
    let rows: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, rows.as_array().expect("rows").clone())
}

/// A `cas` step retries only as its line says. `hvo show af-cas --format
/// seq` writes the protocol's retry loop as `retries=2` on every CAS, and
/// the file checks as written; the same file with plain `cas` steps never
/// retries: a failed CAS gives up at once, so fewer states are reached.
#[test]
fn a_cas_retries_only_as_written() {
    let (code, file, err) = hvo(&[
        "show",
        "af-cas",
        "--format",
        "seq",
        "--levels",
        "0",
        "--workload",
        "neighbour",
    ]);
    assert_eq!(code, 0, "{err}");
    let cas: Vec<&str> = file.lines().filter(|l| l.starts_with("cas ")).collect();
    assert_eq!(cas.len(), 9, "{file}");
    assert!(cas.iter().all(|l| l.ends_with(" retries=2")), "{file}");
    let (code, retried) = check_text("af-cas-retries.seq", &file);
    assert_eq!(code, 0, "{retried:#?}");
    let (_, plain) = check_text("af-cas-plain.seq", &file.replace(" retries=2", ""));
    let figure = |rows: &[serde_json::Value], key: &str| {
        rows[0]["runs"][0]["report"][key].as_u64().expect(key)
    };
    assert!(
        figure(&plain, "states") < figure(&retried, "states"),
        "{plain:#?} {retried:#?}"
    );
    assert!(figure(&plain, "gave_up") > 0);
    // The text form says so too.
    let (_, text, _) = hvo(&["show", "af-cas"]);
    assert!(
        text.lines()
            .any(|l| l.contains("cas L3[") && l.ends_with(" retries=2")),
        "{text}"
    );
}

#[test]
fn protocols_and_bad_options() {
    let (code, out, _) = hvo(&["protocols"]);
    assert_eq!(code, 0);
    for p in [
        "linux-generic",
        "bbm",
        "stop-machine",
        "pause-cpus",
        "ro-first",
        "shared-tail",
        "af-cas",
        "bbml2-noabort",
    ] {
        assert!(out.contains(p), "{p}");
    }
    let (code, _, err) = hvo(&["simulate", "--protocol", "nope"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown protocol \"nope\": expected one of linux-generic"),
        "{err}"
    );
    let (code, _, err) = hvo(&["simulate", "--hugepagesz", "4M"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("hugepagesz=4M does not exist with the 4K granule"),
        "{err}"
    );
    let (code, _, err) = hvo(&["simulate", "--cpus", "100"]);
    assert_eq!(code, 2);
    assert!(err.contains("a machine has 1 to 64 CPUs, not 100"), "{err}");
    let (code, _, err) = hvo(&["simulate", "--granule", "64k", "--hugepagesz", "2M"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("HVO does not apply to 2M pages with the 64K granule"),
        "{err}"
    );
    let (code, _, err) = hvo(&["simulate", "--hugepages", "1000", "--memory", "1G"]);
    assert_eq!(code, 2);
    assert!(err.contains("raise --memory"), "{err}");
    let (code, _, err) = hvo(&["bench", "--checker-thread", "maybe"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--checker-thread: expected auto, on or off, found `maybe`"),
        "{err}"
    );
}

/// `hvo bench` on a small pool: the checker's thread (`on`) and the main
/// thread (`off`) free the same memory and check the same operations.
#[test]
fn bench_checks_the_same_operations_on_either_thread() {
    let figures = |mode: &str| {
        let (code, out, err) = hvo(&["bench", "--hugepages", "512", "--checker-thread", mode]);
        assert_eq!(code, 0, "{err}");
        let line = |key: &str| {
            out.lines()
                .find(|l| l.trim_start().starts_with(key))
                .unwrap_or_else(|| panic!("no {key} line: {out}"))
                .to_string()
        };
        let hvo = line("HVO ");
        let both = line("HVO + de-HVO");
        let freed = hvo[hvo.find('(').expect("freed")..].to_string();
        let ops = both[both.find('(').expect("ops")..]
            .split(',')
            .next()
            .expect("ops")
            .to_string();
        (
            out.lines().next().unwrap_or_default().to_string(),
            freed,
            ops,
        )
    };
    let (head_on, freed_on, ops_on) = figures("on");
    let (head_off, freed_off, ops_off) = figures("off");
    assert!(
        head_on.ends_with("checker on (its own thread)"),
        "{head_on}"
    );
    assert!(head_off.ends_with("checker on"), "{head_off}");
    assert_eq!(freed_on, "(14M freed)");
    assert_eq!(freed_on, freed_off);
    assert_eq!(ops_on, ops_off);
    assert!(ops_on.contains("table operations checked"), "{ops_on}");
}

#[test]
fn counterexamples_name_the_real_cpus_under_symmetry() {
    let (code, out, _) = hvo(&[
        "verify",
        "--protocol",
        "linux-generic",
        "--workload",
        "pfn-walker",
        "--cpus",
        "2",
        "--bbm",
        "0",
        "--direction",
        "hvo",
    ]);
    assert_eq!(code, 0);
    let hazard = out
        .lines()
        .find(|l| l.trim_start().starts_with("=>"))
        .expect("a hazard line");
    let cpu = hazard
        .split_whitespace()
        .find(|w| w.starts_with("cpu"))
        .expect("the CPU");
    // The CPU that aborts is the one that took the RCU read lock and picked.
    assert!(out.contains(&format!("{cpu}: rcu_read_lock")), "{out}");
    assert!(
        out.contains(&format!("{cpu}: picks the struct page")),
        "{out}"
    );
}

#[test]
fn verify_refuses_too_many_cpus() {
    let (code, _, err) = hvo(&["verify", "--cpus", "40"]);
    assert_eq!(code, 2);
    assert!(err.contains("1 to 64 CPUs"), "{err}");
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

/// `hvo check --json` names a user's case by its file and case, not by
/// the protocol the kernel was booted for (given as `booted_for`).
#[test]
fn check_json_names_the_file_and_case() {
    let (code, out, err) = hvo(&["check", "--json", "tests/check/pass/stop-machine.seq"]);
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    for r in rows.as_array().expect("rows") {
        assert_eq!(r["protocol"], "stop-machine.seq stop-machine", "{r:#}");
        assert_eq!(r["booted_for"], "linux-generic", "{r:#}");
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

/// A counterexample's hazard is a block: what happened on the `=>` line,
/// then each descriptor of the walk and each TLB entry on a line of its
/// own, indented.
#[test]
fn a_hazard_is_printed_one_item_per_line() {
    let (code, out, _) = hvo(&[
        "verify",
        "--protocol",
        "linux-generic",
        "--direction",
        "hvo",
        "--bbm",
        "0",
    ]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with("=>"))
        .expect("a hazard");
    assert_eq!(
        lines[at],
        "   =>  TLB conflict abort on cpu1 at 0xfffffc0000108028:"
    );
    let block: Vec<&str> = lines[at + 1..]
        .iter()
        .take_while(|l| l.starts_with("         "))
        .copied()
        .collect();
    let trimmed: Vec<&str> = block.iter().map(|l| l.trim()).collect();
    assert_eq!(
        trimmed[..6],
        [
            "TLB conflict abort at 0xfffffc0000108028 on ldr x0, [0xfffffc0000108028]",
            "L0 desc 0xfc0 = table next=0x1000",
            "L1 desc 0x1000 = table next=0x2000",
            "L2 desc 0x2000 = table next=0x3000",
            "L3 desc 0x3840 = page oa=0x3f108000 RW AF DBM PXN UXN SH=IS AttrIndx=0",
            "cpu1 TLB:",
        ]
    );
    assert!(trimmed.contains(&"[L2 0xfffffc0000000000+2M -> 0x3f000000 RW]"));
    assert!(block.iter().all(|l| l.len() < 100), "{block:#?}");
}

/// A reader that closes the pipe early (`hvo verify | head -1`) ends `hvo`
/// quietly: no panic message about a broken pipe.
#[cfg(unix)]
#[test]
fn a_closed_pipe_is_no_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hvo"))
        .args(["rules"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hvo runs");
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr readable");
    child.wait().expect("hvo ends");
    assert!(!err.contains("panicked"), "{err}");
}

/// Returns the herd7-bbm cell of a `hvo verify` row (the fifth column).
fn herd7_cell(row: &str) -> &str {
    let rules_end = row
        .find("compliant")
        .map(|i| i + "compliant".len())
        .or_else(|| {
            row.rfind("R_WHZWS.")
                .map(|i| i + row[i..].find(' ').unwrap())
        })
        .expect("a rules cell");
    let rest = row[rules_end..].trim_start();
    if rest.starts_with('-') {
        "-"
    } else {
        &rest[..rest.find(')').expect("flag (N pairs)") + 1]
    }
}

#[test]
fn verify_shows_herd7s_bbm_flag_where_it_differs_from_the_rules() {
    // Catalin Marinas's RO-first remap and de-HVO: compliant by R_WHZWS,
    // yet herd7's Warning-BBM-expected (aarch64bbm.cat pairs every two
    // cacheable values in coherence order).
    let (code, out, err) = hvo(&["verify", "--protocol", "ro-first"]);
    assert_eq!(code, 0, "{out}{err}");
    for (op, bbm, pairs) in [
        ("hvo", "2", "flag (10 pairs)"),
        ("hvo", "2-noabort", "flag (10 pairs)"),
        ("de-hvo", "0", "flag (7 pairs)"),
    ] {
        let r = verify_row(&out, "ro-first", op, bbm);
        assert!(r.contains(" compliant "), "{r}");
        assert_eq!(herd7_cell(r), pairs, "{r}");
    }
    assert!(out.contains("Where the rule checker and herd7 disagree on break-before-make"));
    assert!(out.contains(
        "ro-first hvo at FEAT_BBM 2, 2-noabort: compliant by R_WHZWS and R_DDMVT, \
         but herd7 7.58+1 raises Warning-BBM-expected"
    ));
    assert!(out.contains(
        "ro-first de-hvo at FEAT_BBM 0, 2, 2-noabort: compliant by R_WHZWS and R_DDMVT, \
         but herd7 7.58+1 raises Warning-BBM-expected"
    ));
    // The pair: the initial writable value and the final read-only one at
    // the new address, a completed TLBI between them.
    assert!(out.contains(
        "PTE of 0xfffffc0000100000 (at 0x3800): initial RW 0x3f100000 -> write 2 RO 0x4000 \
         [TTD-OA-update & TTD-at-least-one-writable], a completed TLBI between them"
    ));
    assert!(out.contains("A completed TLBI separates the two values of every pair"));
    // At FEAT_BBM 0 both object (the split's block size, herd7's pairs):
    // no note for it.
    let notes: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("  ro-first hvo at FEAT_BBM"))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
}

#[test]
fn the_html_report_shows_the_bbm_difference_too() {
    let path = std::env::temp_dir().join(format!("hvo-cli-bbm-{}.html", std::process::id()));
    let (code, out, err) = hvo(&[
        "verify",
        "--protocol",
        "ro-first",
        "--direction",
        "de-hvo",
        "--bbm",
        "0",
        "--html",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let html = std::fs::read_to_string(&path).expect("the report");
    let _ = std::fs::remove_file(&path);
    assert!(html.contains("<th>herd7-bbm</th>"), "{html}");
    assert!(html.contains("<td>flag (7 pairs)</td>"), "{html}");
    assert!(html.contains(
        "<pre class=\"bbm-notes\">Where the rule checker and herd7 disagree on break-before-make"
    ));
    assert!(html.contains("ro-first de-hvo at FEAT_BBM 0: compliant by R_WHZWS and R_DDMVT"));
}

#[test]
fn verify_shows_no_bbm_difference_where_the_readings_agree() {
    let (code, out, err) = hvo(&["verify", "--protocol", "bbm,linux-generic"]);
    assert_eq!(code, 0, "{out}{err}");
    for op in ["hvo", "de-hvo"] {
        for bbm in ["0", "2", "2-noabort"] {
            // Plain break-before-make: compliant, and no warning.
            let r = verify_row(&out, "bbm", op, bbm);
            assert_eq!(herd7_cell(r), "-", "{r}");
            // The generic remap: violations, and the warning.
            let r = verify_row(&out, "linux-generic", op, bbm);
            assert!(r.contains("R_WHZWS.oa-writable"), "{r}");
            assert!(herd7_cell(r).starts_with("flag ("), "{r}");
        }
    }
    assert!(!out.contains("disagree"), "{out}");
}

#[test]
fn verify_json_lists_herd7s_pairs() {
    let (code, out, _) = hvo(&[
        "verify",
        "--json",
        "--protocol",
        "ro-first,bbm",
        "--direction",
        "hvo",
        "--bbm",
        "2",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    let rows = v.as_array().expect("an array");
    let (ro, bbm) = (&rows[0]["herd7_bbm"], &rows[1]["herd7_bbm"]);
    assert_eq!(ro["warning"], true);
    assert_eq!(ro["differs_from_rules"], true);
    let pairs = ro["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 10);
    let p = &pairs[0];
    assert_eq!(p["va"], 0xfffffc0000100000u64);
    assert_eq!(
        (&p["first"]["index"], &p["second"]["index"]),
        (&0.into(), &2.into())
    );
    assert_eq!(p["first"]["step"], serde_json::Value::Null);
    assert_eq!(p["reasons"], serde_json::json!(["OaWritable"]));
    assert!(p["first_ended"].is_u64(), "{p}");
    assert_eq!(bbm["warning"], false);
    assert_eq!(bbm["differs_from_rules"], false);
    assert_eq!(bbm["pairs"], serde_json::json!([]));
}

#[test]
fn check_shows_herd7s_flag_on_the_threads_sequences() {
    let (code, out, err) = hvo(&[
        "check",
        "../../sequences/thread-2024-07.seq",
        "../../sequences/de-hvo-2024-07.seq",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let cells = |case: &str| -> Vec<String> {
        row(&out, case)
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    // file, case, FEAT_BBM, ops, rule verdict, herd7-bbm, expected
    assert_eq!(cells("ro-first")[4..6], ["compliant", "flag (10 pairs)"]);
    assert_eq!(
        cells("catalin-restore")[4..6],
        ["compliant", "flag (2 pairs)"]
    );
    assert_eq!(cells("bbm")[4..6], ["compliant", "-"]);
    assert!(out.contains(
        "thread-2024-07.seq case ro-first at FEAT_BBM 2: compliant by R_WHZWS and R_DDMVT, \
         but herd7 7.58+1 raises Warning-BBM-expected"
    ));
    assert!(out.contains(
        "de-hvo-2024-07.seq case catalin-restore at FEAT_BBM 0: compliant by R_WHZWS and R_DDMVT, \
         but herd7 7.58+1 raises Warning-BBM-expected"
    ));
    // Where both object (the generic remap) or neither does (BBM): no note.
    assert!(!out.contains("case linux-generic at"), "{out}");
    assert!(!out.contains("case bbm at"), "{out}");
}

/// `hvo show --format litmus` and `hvo check --emit litmus` write herd7
/// tests that `hvo litmus` runs; what cannot be exported exits 2 with the
/// reason.
#[test]
fn litmus_export_from_show_and_check() {
    let args = [
        "show",
        "bbm",
        "--format",
        "litmus",
        "--granule",
        "16k",
        "--hugepagesz",
        "32M",
    ];
    let (code, out, err) = hvo(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("AArch64 bbm-hvo\n(*"), "{out}");
    for want in [
        "Written by `hvo show bbm --format litmus --granule 16k --hugepagesz 32M`.",
        "Variant=vmsa\nTTHM=HA\n",
        " [PTE(x)]=(oa:PA(x), dbm:1);",
        "0:X2=(oa:PA(x), valid:0, dbm:1)",
        " STR X2,[X0]    | L0: LDR W10,[X1] ;",
        " TLBI VMALLE1IS |                  ;",
        " [PTE(w)]=(oa:PA(x));",
        " STR W6,[X7]    |                  ;",
        "exists (fault(P1:L0,x) \\/ 1:X10=9 \\/ fault(P1:L1,y) \\/ 1:X11=9)",
    ] {
        assert!(out.contains(want), "{want:?} in:\n{out}");
    }
    let dir = std::env::temp_dir().join(format!("hvo-cli-litmus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bbm.litmus");
    std::fs::write(&file, &out).expect("written");
    let (code, run, err) = hvo(&["litmus", file.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    assert!(run.contains("Observation bbm-hvo Sometimes 2 1"), "{run}");
    let mut restore = args.to_vec();
    restore.push("--restore");
    let (code, out, err) = hvo(&restore);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("AArch64 bbm-de-hvo\n"), "{out}");

    let (code, out, err) = hvo(&[
        "check",
        "tests/check/pass/ro-first-16k.seq",
        "--emit",
        "litmus",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("AArch64 ro-first-16k-ro-first-16k\n"),
        "{out}"
    );
    std::fs::write(&file, &out).expect("written");
    let (code, run, err) = hvo(&["litmus", file.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        run.contains("Observation ro-first-16k-ro-first-16k Never 0 1"),
        "{run}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    for (args, want) in [
        (
            vec![
                "show",
                "bbm",
                "--format",
                "litmus",
                "--workload",
                "neighbour",
            ],
            "cannot export to herd7: no workload (neighbour) accesses a vmemmap page whose level-3 descriptor the program writes",
        ),
        (
            vec!["show", "bbm", "--format", "herd"],
            "unknown format `herd`: expected text, seq or litmus",
        ),
        (
            vec![
                "check",
                "../../sequences/thread-2024-07.seq",
                "--emit",
                "litmus",
            ],
            "--emit litmus applies to kernel files",
        ),
        (
            vec!["check", "tests/check/pass/af-cas.seq", "--emit", "seq"],
            "--emit seq: expected litmus",
        ),
        (
            vec![
                "check",
                "tests/check/pass/split-collapse-free-table.seq",
                "--emit",
                "litmus",
            ],
            "2 cases; choose one with --case (last-level-tlbi-then-free, all-level-tlbi-then-free)",
        ),
        (
            vec![
                "check",
                "tests/check/pass/af-cas.seq",
                "--emit",
                "litmus",
                "--case",
                "x",
            ],
            "no case `x`; its cases: af-cas",
        ),
        (
            vec!["check", "tests/check/pass/af-cas.seq", "--case", "af-cas"],
            "--case applies to --emit only",
        ),
    ] {
        let (code, out, err) = hvo(&args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
