//! The other commands used as a kernel developer would use them: `hvo
//! rules`, `hvo decode`, `hvo simulate`, `hvo protocols`, `hvo bench`, bad
//! options, and a closed pipe.

mod common;

use common::hvo;

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

/// A reader that closes the pipe early (`hvo verify | head -1`) ends `hvo`
/// quietly: no panic message about a broken pipe.
#[cfg(unix)]
#[test]
fn a_closed_pipe_is_no_panic() {
    use std::io::Read;
    use std::process::{Command, Stdio};
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
