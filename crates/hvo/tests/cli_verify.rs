//! `hvo verify` used as a kernel developer would use it: the table and its
//! short answer, counterexamples, limits, JSON, and herd7's BBM flag beside
//! the rule checker's verdict.

mod common;

use common::hvo;

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
