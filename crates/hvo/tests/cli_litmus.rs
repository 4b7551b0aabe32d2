//! herd7 tests written by `hvo show --format litmus` and `hvo check --emit
//! litmus`, run by `hvo litmus`.

mod common;

use common::hvo;

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
