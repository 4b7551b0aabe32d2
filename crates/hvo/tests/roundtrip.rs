//! `hvo show NAME --format seq` writes a kernel file on which `hvo check`
//! gives exactly the verdicts of `hvo verify --protocol NAME` (rules,
//! explorer verdict, states, costs), for every protocol, HVO and de-HVO.

mod common;
use common::hvo;

use serde_json::Value;

fn rows(out: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(out)
        .expect("JSON")
        .as_array()
        .expect("an array")
        .clone()
}

/// The fields both commands must agree on.
fn key(r: &Value) -> (String, String, Value, String, Value, Value, Value) {
    (
        r["direction"].as_str().unwrap_or_default().to_string(),
        r["bbm"].as_str().unwrap_or_default().to_string(),
        r["rules"].clone(),
        r["verdict"].as_str().unwrap_or_default().to_string(),
        r["states"].clone(),
        r["costs"].clone(),
        r["safe"].clone(),
    )
}

fn round_trip(protocol: &str, geometry: &[&str], levels: &str) {
    let dir = std::env::temp_dir().join(format!(
        "hvo-roundtrip-{}-{}",
        std::process::id(),
        geometry.join("")
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut files = Vec::new();
    for restore in [false, true] {
        let mut args = vec!["show", protocol, "--format", "seq", "--levels", levels];
        args.extend(geometry);
        if restore {
            args.push("--restore");
        }
        let (code, text, err) = hvo(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        let f = dir.join(format!("{protocol}-{restore}.seq"));
        std::fs::write(&f, text).expect("written");
        files.push(f.display().to_string());
    }
    let mut args = vec!["check", "--json"];
    args.extend(files.iter().map(String::as_str));
    let (code, out, err) = hvo(&args);
    assert_eq!(code, 0, "{protocol}: {out}{err}");
    let checked = rows(&out);
    let mut args = vec!["verify", "--json", "--protocol", protocol, "--bbm", levels];
    args.extend(geometry);
    let (code, out, err) = hvo(&args);
    assert_eq!(code, 0, "{err}");
    let verified = rows(&out);
    assert_eq!(checked.len(), verified.len(), "{protocol}");
    let mut a: Vec<_> = checked.iter().map(key).collect();
    let mut b: Vec<_> = verified.iter().map(key).collect();
    a.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
    b.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
    assert_eq!(a, b, "{protocol} {geometry:?}");
    for r in &checked {
        assert_eq!(r["matches_expectation"], true, "{r:#?}");
    }
}

#[test]
fn every_protocol_checks_as_it_verifies() {
    for p in [
        "linux-generic",
        "bbm",
        "stop-machine",
        "pause-cpus",
        "ro-first",
        "shared-tail",
        "af-cas",
    ] {
        round_trip(p, &[], "0,2,2-noabort");
    }
}

#[test]
fn other_geometries_round_trip() {
    round_trip(
        "ro-first",
        &["--granule", "16k", "--hugepagesz", "32M"],
        "0",
    );
    round_trip("bbm", &["--granule", "64k", "--hugepagesz", "512M"], "2");
}
