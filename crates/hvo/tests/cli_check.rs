//! `hvo check` used as a kernel developer would use it: verdicts on `.seq`
//! files, the exit code, errors with file, line and column, JSON.

mod common;

use common::hvo;

fn row<'a>(out: &'a str, case: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(case))
        .unwrap_or_else(|| panic!("no row for {case} in\n{out}"))
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
