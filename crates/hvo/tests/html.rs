//! The HTML report as a browser shows it: `hvo verify --html` rendered in
//! headless Chromium (Debian's `chromium`, which `.ci/run` installs), its
//! DOM checked for the table and the timelines, its screenshot decoded and
//! checked for size and content.
//!
//! Chromium is required: without it these tests fail and say how to get
//! it (set `HVO_CHROMIUM` to use another binary).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";
const WIDTH: u32 = 1400;
const HEIGHT: u32 = 2000;

fn chromium() -> PathBuf {
    let path =
        std::env::var_os("HVO_CHROMIUM").map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from);
    assert!(
        path.is_file(),
        "headless Chromium is needed to test the HTML report, and {} does not exist: \
         install Debian's `chromium` package (`apt-get install chromium`; .ci/run does it) \
         or set HVO_CHROMIUM to a Chromium binary",
        path.display()
    );
    path
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn hvo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hvo"))
        .args(args)
        .output()
        .expect("hvo runs");
    assert!(
        out.status.success(),
        "hvo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Runs headless Chromium on `page` with `extra` options; returns what it
/// printed (its output goes to files, so a big DOM never fills a pipe).
/// Fails after two minutes.
fn browse(page: &Path, dir: &Path, extra: &[String]) -> String {
    let url = format!("file://{}", page.display());
    let (out_path, err_path) = (dir.join("chromium.out"), dir.join("chromium.err"));
    let file = |p: &Path| std::fs::File::create(p).expect("chromium output file");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(extra)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(file(&out_path))
        .stderr(file(&err_path))
        .spawn()
        .expect("chromium starts");
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait for chromium") {
            Some(status) => break status,
            None if start.elapsed() > Duration::from_secs(120) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish with {url} in 120 s");
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        status.success(),
        "chromium {extra:?} {url} failed ({status}): {}",
        read(&err_path)
    );
    read(&out_path)
}

/// Returns the value of attribute `name` in the start tag `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let end = tag[i..].find('"')?;
    Some(&tag[i..i + end])
}

/// Returns each start tag that begins with `prefix`, with the text up to
/// the next such tag (or the end).
fn pieces<'a>(dom: &'a str, prefix: &str) -> Vec<(&'a str, &'a str)> {
    let starts: Vec<usize> = dom.match_indices(prefix).map(|(i, _)| i).collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let end = starts.get(k + 1).copied().unwrap_or(dom.len());
            let tag_end = dom[i..].find('>').map_or(end, |e| i + e + 1);
            (&dom[i..tag_end], &dom[i..end])
        })
        .collect()
}

/// The expected lines of `tests/data/report.expect`.
fn expected() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/report.expect"
    ))
    .expect("tests/data/report.expect");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

/// Returns the counterexample of a `--json` row: its length and the
/// number of workload CPUs of its run.
fn counterexample(row: &Value) -> Option<(usize, usize)> {
    row["runs"].as_array()?.iter().find_map(|run| {
        let trace = run["report"]["verdict"]["Hazard"]["trace"].as_array()?;
        Some((trace.len(), run["workloads"].as_array()?.len()))
    })
}

#[test]
fn the_report_renders_in_chromium_with_its_table_and_timelines() {
    let chromium = chromium();
    let dir = scratch("html-report");
    let page = dir.join("report.html");
    let page_arg = page.to_str().expect("UTF-8 path");
    let args = [
        "verify",
        "--protocol",
        "linux-generic,bbm,stop-machine",
        "--bbm",
        "0",
        "--html",
        page_arg,
    ];
    let text = hvo(&args);
    // The text output is unchanged by --html.
    assert!(text.starts_with("hvo verify: 4K 2M pages"), "{text}");
    let json: Value = serde_json::from_str(&hvo(&[&args[..], &["--json"]].concat())).expect("JSON");
    let json = json.as_array().expect("rows");
    let dom = browse(&page, &dir, &["--dump-dom".to_string()]);
    assert!(
        dom.contains("<h1>hvo verify</h1>"),
        "no page in the DOM:\n{dom}"
    );

    // The table: one row per configuration, in order, with its verdict.
    let expected = expected();
    let rows = pieces(&dom, "<tr class=\"row\"");
    assert_eq!(rows.len(), expected.len(), "table rows in\n{dom}");
    assert_eq!(json.len(), expected.len());
    for ((tag, body), (want, j)) in rows.iter().zip(expected.iter().zip(json)) {
        let got: Vec<&str> = [
            "data-protocol",
            "data-op",
            "data-bbm",
            "data-rules",
            "data-verdict",
        ]
        .iter()
        .map(|a| attr(tag, a).unwrap_or("?"))
        .collect();
        assert_eq!(got, *want, "row {tag}");
        // The cells say what the terminal says.
        let verdict = j["verdict"].as_str().expect("verdict");
        let cell = if want[4] == "safe" {
            format!("<td class=\"safe\">{verdict}</td>")
        } else {
            format!("{verdict}</a></td>")
        };
        let body = &body[..body.find("</tr>").expect("row ends")];
        assert!(body.contains(&cell), "no `{cell}` in {body}");
        assert_eq!(body.matches("<td").count(), 14, "{body}");
        let hazard_cell = body.contains("<td class=\"hazard\">");
        assert_eq!(hazard_cell, want[4] != "safe", "{body}");
    }

    // The timelines: one per counterexample, in table order.
    let hazards: Vec<(&Vec<String>, &Value)> = expected
        .iter()
        .zip(json)
        .filter(|(w, _)| w[4] != "safe")
        .collect();
    let sections = pieces(&dom, "<section class=\"counterexample\"");
    assert_eq!(sections.len(), hazards.len(), "counterexamples in\n{dom}");
    assert_eq!(
        dom.matches("<svg class=\"timeline\"").count(),
        hazards.len()
    );
    for ((tag, body), (want, j)) in sections.iter().zip(hazards) {
        assert_eq!(attr(tag, "data-protocol"), Some(want[0].as_str()));
        assert_eq!(attr(tag, "data-op"), Some(want[1].as_str()));
        assert_eq!(attr(tag, "data-hazard"), Some(want[4].as_str()));
        let (steps, cpus) = counterexample(j).expect("a counterexample in --json");
        let svg = &body[body.find("<svg").expect("svg")..body.find("</svg>").expect("svg ends")];
        // Lanes: the updater, each workload CPU, the memory system.
        let lanes = cpus + 2;
        assert_eq!(
            attr(svg, "data-lanes"),
            Some(lanes.to_string().as_str()),
            "{tag}"
        );
        assert_eq!(svg.matches("<g class=\"lane\"").count(), lanes, "{tag}");
        assert!(svg.contains(">CPU0 updater</text>"), "{tag}");
        let workload = if want[1] == "hvo" {
            "neighbour"
        } else {
            "pfn-walker"
        };
        assert!(svg.contains(&format!(">CPU1 {workload}</text>")), "{tag}");
        assert!(svg.contains(">memory system</text>"), "{tag}");
        // One row per step, numbered 1..=steps.
        let step_tags = pieces(svg, "<g class=\"step");
        assert_eq!(step_tags.len(), steps, "{tag}");
        for (k, (t, _)) in step_tags.iter().enumerate() {
            assert_eq!(attr(t, "data-step"), Some((k + 1).to_string().as_str()));
        }
        // The hazard, marked once, on CPU1.
        let marks = pieces(svg, "<g class=\"hazard-mark\"");
        assert_eq!(marks.len(), 1, "{tag}");
        assert_eq!(attr(marks[0].0, "data-hazard"), Some(want[4].as_str()));
        assert_eq!(attr(marks[0].0, "data-cpu"), Some("1"));
        // The state column shows descriptors and TLB entries.
        assert!(svg.contains("class=\"st-desc"), "{tag}");
        assert!(svg.contains("CPU1 TLB: "), "{tag}");
    }

    // The screenshot: a real picture of the page at the window's size.
    let shot = dir.join("report.png");
    browse(
        &page,
        &dir,
        &[
            format!("--window-size={WIDTH},{HEIGHT}"),
            format!("--screenshot={}", shot.display()),
        ],
    );
    let (w, h, pixels) = decode(&shot);
    assert_eq!((w, h), (WIDTH, HEIGHT), "screenshot size");
    let count = |rgb: [u8; 3]| pixels.iter().filter(|p| **p == rgb).count();
    let white = count([255, 255, 255]);
    let total = pixels.len();
    assert!(
        white < total * 97 / 100,
        "screenshot nearly blank: {white} of {total} pixels white"
    );
    let mut colours: Vec<[u8; 3]> = pixels.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 100,
        "screenshot has only {} colours",
        colours.len()
    );
    // The hazard cells' background, the updater's boxes and dark text are
    // drawn (the page's CSS colours #fde2e1, #dfeaff).
    assert!(
        count([0xfd, 0xe2, 0xe1]) > 5_000,
        "no hazard highlight in the screenshot"
    );
    assert!(
        count([0xdf, 0xea, 0xff]) > 2_000,
        "no updater step boxes in the screenshot"
    );
    let dark = pixels.iter().filter(|p| p.iter().all(|c| *c < 80)).count();
    assert!(
        dark > 5_000,
        "no text in the screenshot ({dark} dark pixels)"
    );
    let _ = chromium;
}

#[test]
fn a_safe_report_has_its_table_and_no_timeline() {
    let dir = scratch("html-safe");
    let page = dir.join("safe.html");
    hvo(&[
        "verify",
        "--protocol",
        "stop-machine,pause-cpus",
        "--bbm",
        "2-noabort",
        "--direction",
        "hvo",
        "--html",
        page.to_str().expect("UTF-8 path"),
    ]);
    let dom = browse(&page, &dir, &["--dump-dom".to_string()]);
    let rows = pieces(&dom, "<tr class=\"row\"");
    assert_eq!(rows.len(), 2, "{dom}");
    for ((tag, _), p) in rows.iter().zip(["stop-machine", "pause-cpus"]) {
        assert_eq!(attr(tag, "data-protocol"), Some(p));
        assert_eq!(attr(tag, "data-verdict"), Some("safe"));
    }
    assert!(!dom.contains("<svg"), "a timeline for a safe run");
    assert!(dom.contains("class=\"no-counterexample\""));
}

#[test]
fn cpus_without_a_step_get_narrow_lanes() {
    // Three neighbour CPUs against bbm: the shortest translation fault
    // needs two of them, so the third is idle and its lane narrow.
    let dir = scratch("html-idle");
    let page = dir.join("idle.html");
    hvo(&[
        "verify",
        "--protocol",
        "bbm",
        "--bbm",
        "0",
        "--direction",
        "hvo",
        "--workload",
        "neighbour",
        "--cpus",
        "3",
        "--html",
        page.to_str().expect("UTF-8 path"),
    ]);
    let dom = browse(&page, &dir, &["--dump-dom".to_string()]);
    let lanes = pieces(&dom, "<g class=\"lane");
    let ids: Vec<_> = lanes.iter().map(|(t, _)| attr(t, "data-lane")).collect();
    assert_eq!(
        ids,
        [
            Some("cpu0"),
            Some("cpu1"),
            Some("cpu2"),
            Some("cpu3"),
            Some("memory")
        ],
        "{dom}"
    );
    let idle: Vec<_> = lanes
        .iter()
        .filter(|(t, _)| t.starts_with("<g class=\"lane lane-idle\""))
        .map(|(t, _)| attr(t, "data-lane"))
        .collect();
    assert_eq!(idle, [Some("cpu3")], "{dom}");
    // Steps on the busy CPUs, none on the idle one.
    let steps: Vec<_> = pieces(&dom, "<g class=\"step")
        .iter()
        .filter_map(|(t, _)| attr(t, "data-lane"))
        .collect();
    assert!(
        steps.contains(&"cpu1") && steps.contains(&"cpu2"),
        "{steps:?}"
    );
    assert!(
        !steps.contains(&"cpu3"),
        "a step on the idle CPU: {steps:?}"
    );
}

/// Decodes a PNG into RGB pixels.
fn decode(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Indexed => panic!("indexed PNG after expansion"),
    };
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(step)
        .map(|p| {
            if step >= 3 {
                [p[0], p[1], p[2]]
            } else {
                [p[0]; 3]
            }
        })
        .collect();
    (info.width, info.height, pixels)
}

#[test]
fn an_unwritable_report_is_an_error_naming_the_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_hvo"))
        .args([
            "verify",
            "--protocol",
            "stop-machine",
            "--bbm",
            "0",
            "--direction",
            "hvo",
            "--html",
            "/nonexistent-dir/report.html",
        ])
        .output()
        .expect("hvo runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write /nonexistent-dir/report.html"),
        "{err}"
    );
}

#[test]
fn json_counterexamples_carry_the_step_kinds_and_state() {
    let json: Value = serde_json::from_str(&hvo(&[
        "verify",
        "--protocol",
        "linux-generic",
        "--bbm",
        "0",
        "--direction",
        "hvo",
        "--workload",
        "neighbour",
        "--json",
    ]))
    .expect("JSON");
    let trace = json[0]["runs"][0]["report"]["verdict"]["Hazard"]["trace"]
        .as_array()
        .expect("a counterexample");
    let last = trace.last().expect("steps");
    assert_eq!(last["kind"]["kind"], "op");
    assert_eq!(last["cpu"], 1);
    let tlb = last["state"]["vas"][0]["tlb"]
        .as_array()
        .expect("TLB entries");
    assert!(
        tlb.iter()
            .any(|t| t["cpu"] == 1 && t["leaf"] == true && t["level"] == 2 && t["stale"] == true),
        "{last}"
    );
    assert!(
        trace
            .iter()
            .any(|s| s["kind"]["kind"] == "fill" && s["kind"]["cpu"] == 1)
    );
}

#[test]
fn a_check_report_names_each_file_and_case_with_its_expectation() {
    let dir = scratch("html-check");
    let page = dir.join("check.html");
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/check/pass");
    hvo(&[
        "check",
        &format!("{corpus}/bbm-no-pause.seq"),
        &format!("{corpus}/stop-machine.seq"),
        "--html",
        page.to_str().expect("UTF-8 path"),
    ]);
    let dom = browse(&page, &dir, &["--dump-dom".to_string()]);
    let rows = pieces(&dom, "<tr class=\"row\"");
    // bbm-no-pause at FEAT_BBM 0 and 2-noabort, then stop-machine's levels.
    let names: Vec<&str> = rows
        .iter()
        .filter_map(|(tag, _)| attr(tag, "data-protocol"))
        .collect();
    assert_eq!(names[..2], ["bbm-no-pause.seq bbm-no-pause"; 2], "{dom}");
    assert!(
        names[2..]
            .iter()
            .all(|n| n.starts_with("stop-machine.seq "))
    );
    for (tag, body) in &rows {
        assert!(body.contains("as expected: rules"), "{body}");
        let fault = attr(tag, "data-protocol").is_some_and(|n| n.starts_with("bbm-no-pause"));
        let verdict = attr(tag, "data-verdict");
        assert_eq!(verdict == Some("translation-fault"), fault, "{tag}");
        assert_eq!(verdict == Some("safe"), !fault, "{tag}");
    }
    let timelines = pieces(&dom, "<section class=\"counterexample\"");
    assert_eq!(timelines.len(), 2, "one timeline per bbm-no-pause level");
    for (tag, body) in &timelines {
        assert_eq!(
            attr(tag, "data-protocol"),
            Some("bbm-no-pause.seq bbm-no-pause")
        );
        assert_eq!(attr(tag, "data-hazard"), Some("translation-fault"));
        assert!(body.contains("<svg"), "{body}");
    }
}
