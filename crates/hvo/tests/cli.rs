//! The `hvo` binary used as a kernel developer would use it.

use std::process::Command;

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

#[test]
fn verify_gives_the_threads_verdicts() {
    let (code, out, err) = hvo(&["verify"]);
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
    let (code, out, _) = hvo(&["verify", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    let cases = v.as_array().expect("an array");
    assert_eq!(cases.len(), 8);
    let generic = cases
        .iter()
        .find(|c| c["case"] == "linux-generic")
        .expect("linux-generic");
    assert_eq!(generic["bbm"], "0");
    assert!(
        generic["violations"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    );
    assert_eq!(generic["violations"][0]["rule"], "BlockSize");
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
        err.contains("expected vae1is, vale1is, vaae1is, vaale1is or vmalle1is, found `vae2is`"),
        "{err}"
    );
    assert!(err.contains("^^^^^^"), "{err}");
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
