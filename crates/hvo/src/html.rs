//! The HTML report of `hvo verify --html` (and of `hvo check --html`): one
//! self-contained page (inline CSS and SVG, no script, no external
//! resource) with the configuration, the verdict and cost table, and for
//! each counterexample a timeline: one lane per CPU, one row per step, the
//! descriptors and TLB entries that matter after each step, the hazard
//! marked.
//!
//! The page is built from what both commands share: a slice of
//! [`explore::Row`] and a [`Page`] header. Every piece of text goes through
//! [`esc`].

use std::fmt::Write as _;

use explore::{Hazard, Row, Snapshot, StepKind, TraceStep, Verdict, WorkloadKind};

use crate::verify::{BbmView, COLUMNS, bbm_notes, cells, names, row_view};

/// What the page says above the table.
pub struct Page<'a> {
    /// The page's title (`hvo verify`, `hvo check FILE`).
    pub title: String,
    /// The configuration, as (name, value) lines.
    pub meta: Vec<(String, String)>,
    /// The configurations checked.
    pub rows: &'a [Row],
    /// One more column for the table (header, one cell per row), e.g. the
    /// file and expected verdict of `hvo check`.
    pub extra: Option<(String, Vec<String>)>,
    /// Names for the rows in place of the protocol (one per row), e.g.
    /// `file case` for `hvo check`, whose rows run a user's program rather
    /// than the protocol the kernel was booted with.
    pub labels: Option<Vec<String>>,
}

impl Page<'_> {
    /// Returns the name of row `i`: its label, else its protocol.
    fn name(&self, i: usize) -> &str {
        self.labels
            .as_ref()
            .and_then(|l| l.get(i))
            .map_or(self.rows[i].setup.protocol.name, String::as_str)
    }
}

/// Escapes `s` for HTML text and attribute values (also inside inline
/// SVG).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 15px;
       color: #1d1d1f; background: #ffffff; margin: 20px 20px; }
h1 { font-size: 24px; margin: 0 0 8px 0; }
h2 { font-size: 20px; margin: 32px 0 8px 0; border-bottom: 1px solid #ccc; }
h3 { font-size: 17px; margin: 24px 0 6px 0; }
code, pre, td, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; }
dl.config { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 8px 0 16px 0; }
dl.config dt { font-weight: bold; }
dl.config dd { margin: 0; font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; }
table.verdicts { border-collapse: collapse; font-size: 13px; }
table.verdicts th { background: #eef1f5; text-align: left; padding: 4px 8px; border-bottom: 2px solid #999; }
table.verdicts td { padding: 3px 8px; border-bottom: 1px solid #e3e3e3; white-space: nowrap; }
table.verdicts td.num { text-align: right; }
table.verdicts td.hazard { background: #fde2e1; color: #a31515; font-weight: bold; }
td.hazard a { color: #a31515; }
table.verdicts td.violation { background: #fff1d6; color: #7a4b00; white-space: normal; }
span.rule { white-space: nowrap; }
td.incomplete { background: #ececec; color: #555; font-style: italic; }
td.safe { color: #1b6e20; }
td.compliant { color: #1b6e20; }
p.summary { margin: 10px 0; }
pre.bbm-notes { white-space: pre-wrap; font-size: 13px; background: #fff8e1; padding: 8px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 13px; margin: 8px 0; }
.legend span.key { display: inline-block; width: 22px; height: 12px; border: 2px solid; vertical-align: middle; margin-right: 4px; }
div.scroll { overflow-x: auto; }
p.hazard-detail { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 13px;
                  background: #fde2e1; border-left: 4px solid #c62828; padding: 6px 10px; white-space: pre-wrap; }
pre.trace { font-size: 12px; background: #f6f8fa; padding: 8px; }
svg.timeline { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 13px; }
svg.timeline .lane-title { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 15px; font-weight: bold; }
svg.timeline .lane-sub { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 12px; fill: #5f6b7a; }
svg.timeline .band-even { fill: #ffffff; }
svg.timeline .band-odd { fill: #f5f7fa; }
svg.timeline .num { fill: #666; }
svg.timeline .lane-line { stroke: #c9ced6; stroke-width: 1; }
svg.timeline .box-updater { fill: #dfeaff; stroke: #3367d6; }
svg.timeline .box-workload { fill: #dff3e1; stroke: #2e7d32; }
svg.timeline .box-tlb { fill: #f1e8fb; stroke: #7b3fb5; stroke-dasharray: 5 3; }
svg.timeline .box-memory { fill: #fff3d6; stroke: #b7791f; }
svg.timeline .box-hazard { stroke: #c62828; stroke-width: 3; }
svg.timeline .st-va { font-weight: bold; fill: #1d1d1f; }
svg.timeline .st-desc { fill: #1d1d1f; }
svg.timeline .st-walkers { fill: #b25d00; }
svg.timeline .st-tlb { fill: #4a2a78; }
svg.timeline .st-stale { fill: #c62828; font-weight: bold; }
svg.timeline .st-same { fill: #8a8a8a; font-style: italic; }
svg.timeline .changed { text-decoration: underline; }
svg.timeline .hazard-band { fill: #fde2e1; stroke: #c62828; stroke-width: 2; }
svg.timeline .hazard-text { fill: #a31515; font-weight: bold; }
svg.timeline .hazard-dot { fill: #c62828; }
"#;

/// Renders the whole page.
pub fn render(page: &Page<'_>) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(&page.title),
        esc(&page.title)
    );
    o.push_str("<dl class=\"config\">\n");
    for (k, v) in &page.meta {
        let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
    }
    o.push_str("</dl>\n");
    let rows = page.rows;
    let _ = writeln!(
        o,
        "<p class=\"summary\">{} configurations, {} compliant, {} safe; {} states explored.</p>",
        rows.len(),
        rows.iter().filter(|r| r.compliant()).count(),
        rows.iter().filter(|r| r.safe()).count(),
        rows.iter().map(Row::states).sum::<u64>()
    );
    table(&mut o, page);
    o.push_str(
        "<p>Rules: the rule checker on the sequential run (Arm ARM rule IDs). \
         herd7-bbm: herd7 7.58+1's <code>Warning-BBM-expected</code> on the same run, with the pairs of descriptor values it flags. \
         Concurrent: the explorer, against each workload on other CPUs under every behaviour the architecture allows: \
         <code>safe</code>, or the first hazard with the workload that found it (its counterexample below).</p>\n",
    );
    let views: Vec<BbmView> = (0..rows.len())
        .map(|i| {
            let label = format!("{} {}", page.name(i), rows[i].setup.direction.name());
            row_view(label, &rows[i])
        })
        .collect();
    let notes = bbm_notes(&views);
    if !notes.is_empty() {
        let _ = writeln!(o, "<pre class=\"bbm-notes\">{}</pre>", esc(notes.trim()));
    }
    let mut n = 0;
    let mut header = false;
    for (i, r) in rows.iter().enumerate() {
        let (v, run) = r.verdict();
        match v {
            Verdict::Hazard { hazard, trace } => {
                if !header {
                    o.push_str("<h2>Counterexamples</h2>\n");
                    legend(&mut o);
                    header = true;
                }
                n += 1;
                let workloads = run.map(|r| r.workloads.clone()).unwrap_or_default();
                counterexample(&mut o, n, page.name(i), r, &workloads, hazard, trace);
            }
            Verdict::Incomplete { advice, .. } => {
                let _ = writeln!(
                    o,
                    "<p class=\"incomplete\">{} {} at FEAT_BBM {}: incomplete after {} states: {}</p>",
                    esc(page.name(i)),
                    esc(r.setup.direction.name()),
                    esc(&r.setup.features.bbm.to_string()),
                    r.states(),
                    esc(advice)
                );
            }
            Verdict::Safe => {}
        }
    }
    if n == 0 {
        o.push_str("<p class=\"no-counterexample\">No counterexample: every exploration finished without a hazard.</p>\n");
    }
    o.push_str("</body>\n</html>\n");
    o
}

fn table(o: &mut String, page: &Page<'_>) {
    o.push_str("<table class=\"verdicts\">\n<thead><tr>");
    for c in COLUMNS {
        let _ = write!(o, "<th>{}</th>", esc(c));
    }
    if let Some((h, _)) = &page.extra {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    o.push_str("</tr></thead>\n<tbody>\n");
    let mut n = 0;
    for (i, r) in page.rows.iter().enumerate() {
        let (v, _) = r.verdict();
        let (slug, class) = match v {
            Verdict::Safe => ("safe".to_string(), "safe"),
            Verdict::Hazard { hazard, .. } => (hazard.kind.slug().to_string(), "hazard"),
            Verdict::Incomplete { .. } => ("incomplete".to_string(), "incomplete"),
        };
        let _ = write!(
            o,
            "<tr class=\"row\" data-protocol=\"{}\" data-op=\"{}\" data-bbm=\"{}\" data-rules=\"{}\" data-verdict=\"{}\">",
            esc(page.name(i)),
            esc(r.setup.direction.name()),
            esc(&r.setup.features.bbm.to_string()),
            if r.compliant() {
                "compliant"
            } else {
                "violation"
            },
            esc(&slug)
        );
        let mut row_cells = cells(r);
        row_cells[0] = page.name(i).to_string();
        for (k, c) in row_cells.iter().enumerate() {
            match k {
                3 => {
                    let cls = if r.compliant() {
                        "compliant"
                    } else {
                        "violation"
                    };
                    // Wrap between rules, never inside a rule's ID.
                    let rules: Vec<String> = c
                        .split(", ")
                        .map(|r| format!("<span class=\"rule\">{}</span>", esc(r)))
                        .collect();
                    let _ = write!(o, "<td class=\"{cls}\">{}</td>", rules.join(", "));
                }
                5 if class == "hazard" => {
                    n += 1;
                    let _ = write!(
                        o,
                        "<td class=\"hazard\"><a href=\"#cx-{n}\">{}</a></td>",
                        esc(c)
                    );
                }
                5 => {
                    let _ = write!(o, "<td class=\"{class}\">{}</td>", esc(c));
                }
                k if k >= 6 => {
                    let _ = write!(o, "<td class=\"num\">{}</td>", esc(c));
                }
                _ => {
                    let _ = write!(o, "<td>{}</td>", esc(c));
                }
            }
        }
        if let Some((_, col)) = &page.extra {
            let _ = write!(o, "<td>{}</td>", esc(col.get(i).map_or("", String::as_str)));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody>\n</table>\n");
}

fn legend(o: &mut String) {
    o.push_str("<div class=\"legend\">");
    for (stroke, fill, dash, what) in [
        ("#3367d6", "#dfeaff", false, "updater (CPU0) operation"),
        ("#2e7d32", "#dff3e1", false, "workload CPU operation"),
        (
            "#7b3fb5",
            "#f1e8fb",
            true,
            "TLB fill or eviction on that CPU (hardware)",
        ),
        (
            "#b7791f",
            "#fff3d6",
            false,
            "memory system: a descriptor store reaching walkers, a fresh page's writes made visible",
        ),
        ("#c62828", "#fde2e1", false, "the hazard"),
    ] {
        let _ = write!(
            o,
            "<span><span class=\"key\" style=\"border-color:{stroke};background:{fill};{}\"></span>{}</span>",
            if dash { "border-style:dashed" } else { "" },
            esc(what)
        );
    }
    o.push_str("</div>\n<p style=\"font-size:13px\">Right column: after each step, for each vmemmap page a workload accesses, \
        the descriptors a walk of memory reads (level, where, value decoded; <span style=\"color:#b25d00\">what walkers still see</span> \
        while a store is pending) and every CPU's TLB entries covering it (<span style=\"color:#c62828;font-weight:bold\">STALE</span>: \
        no longer what the tables in memory say). Only the pages whose state changed are repeated; changed lines are underlined. \
        Attributes shown: RW/RO, AF, DBM, nG, CONT, nT.</p>\n");
}

// Geometry of the timeline, in pixels. Monospace 13px: about 7.9 px per
// character.
const CH: f64 = 7.9;
const LINE: f64 = 17.0;
const PAD: f64 = 6.0;
const NUM_W: f64 = 44.0;
const LANE_W: f64 = 260.0;
const MEM_W: f64 = 210.0;
/// The width of the lane of a CPU with no step in the trace: its title on
/// two lines and nothing else, so that many workload CPUs do not push the
/// state column off the screen.
const IDLE_W: f64 = 118.0;
const STATE_W: f64 = 540.0;
const HEAD_H: f64 = 44.0;

/// A lane of the timeline.
struct Lane {
    title: String,
    x: f64,
    w: f64,
}

/// Returns the lanes: one per CPU (the updater, then each workload CPU in
/// the order `explore` numbers them: each workload's `copies` CPUs in
/// turn), then the memory system. A CPU lane is narrow (`IDLE_W`) when
/// `busy` says the CPU has no step in the trace.
fn lanes(workloads: &[WorkloadKind], copies: usize, busy: &[bool]) -> Vec<Lane> {
    let mut titles = vec!["CPU0 updater".to_string()];
    for w in workloads {
        for _ in 0..copies.max(1) {
            titles.push(format!("CPU{} {}", titles.len(), w.name()));
        }
    }
    titles.push("memory system".to_string());
    let n = titles.len();
    let mut x = NUM_W;
    titles
        .into_iter()
        .enumerate()
        .map(|(i, title)| {
            let w = if i + 1 == n {
                MEM_W
            } else if busy.get(i).copied().unwrap_or(true) {
                LANE_W
            } else {
                IDLE_W
            };
            let l = Lane { title, x, w };
            x += w;
            l
        })
        .collect()
}

/// Wraps `s` into lines of at most `width` characters, at spaces where
/// possible.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut out = Vec::new();
    let mut line = String::new();
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let mut word = word.to_string();
        while word.chars().count() > width {
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            out.push(head);
        }
        let need = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if need > width && !line.is_empty() {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

/// Drops the attributes every vmemmap mapping has alike (the full value
/// is in the tooltip and in `--json`).
fn short_desc(text: &str) -> String {
    text.split(' ')
        .filter(|t| {
            !(t.starts_with("SH=") || t.starts_with("AttrIndx=") || *t == "PXN" || *t == "UXN")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Strips the `cpuN: ` or `hw: ` prefix of a trace line (the lane says it).
fn strip_prefix(text: &str) -> &str {
    let t = text.trim_start();
    if let Some(rest) = t.strip_prefix("hw:") {
        return rest.trim_start();
    }
    if let Some(rest) = t.strip_prefix("cpu")
        && let Some(i) = rest.find(':')
        && rest[..i].bytes().all(|b| b.is_ascii_digit())
    {
        return rest[i + 1..].trim_start();
    }
    t
}

/// One line of the state column.
#[derive(Clone, PartialEq, Eq)]
struct StateLine {
    class: &'static str,
    text: String,
    title: String,
}

/// The state column's lines for each VA of `snap`, showing descriptors
/// from `min_level` down and the TLB entries at those levels.
fn state_lines(snap: &Snapshot, min_level: u8) -> Vec<(u64, Vec<StateLine>)> {
    snap.vas
        .iter()
        .map(|v| {
            let mut lines = Vec::new();
            for d in v.descs.iter().filter(|d| d.level >= min_level) {
                lines.push(StateLine {
                    class: "st-desc",
                    text: format!("L{} {:#x}: {}", d.level, d.pa, short_desc(&d.text)),
                    title: format!(
                        "L{} descriptor at {:#x} = {:#018x}: {}",
                        d.level, d.pa, d.value, d.text
                    ),
                });
                if let (Some(w), Some(t)) = (d.walkers, &d.walkers_text) {
                    lines.push(StateLine {
                        class: "st-walkers",
                        text: format!("   walkers still see: {}", short_desc(t)),
                        title: format!("walkers still read {w:#018x}: {t}"),
                    });
                }
            }
            for t in v.tlb.iter().filter(|t| t.leaf || t.level >= min_level) {
                lines.push(StateLine {
                    class: if t.stale { "st-stale" } else { "st-tlb" },
                    text: format!(
                        "CPU{} TLB: {}{}",
                        t.cpu,
                        t.text,
                        if t.stale { "  STALE" } else { "" }
                    ),
                    title: format!(
                        "CPU{} TLB entry from an L{} descriptor{}",
                        t.cpu,
                        t.level,
                        if t.stale {
                            ": stale, the tables in memory no longer say this"
                        } else {
                            ""
                        }
                    ),
                });
            }
            if v.tlb.iter().all(|t| !(t.leaf || t.level >= min_level)) {
                lines.push(StateLine {
                    class: "st-tlb",
                    text: "no TLB holds it".into(),
                    title: "no CPU's TLB has an entry for this page".into(),
                });
            }
            (v.va, lines)
        })
        .collect()
}

/// The first level worth showing: the highest level whose descriptor
/// changes during the trace (or that walkers see differently), else the
/// leaf's.
fn min_level(trace: &[TraceStep]) -> u8 {
    let mut min = u8::MAX;
    let mut leaf = 0;
    for (i, s) in trace.iter().enumerate() {
        for v in &s.state.vas {
            for d in &v.descs {
                leaf = leaf.max(d.level);
                let changed = i > 0
                    && trace[i - 1]
                        .state
                        .vas
                        .iter()
                        .find(|p| p.va == v.va)
                        .and_then(|p| p.descs.iter().find(|e| e.level == d.level))
                        .is_none_or(|e| e.value != d.value || e.pa != d.pa);
                if changed || d.walkers.is_some() {
                    min = min.min(d.level);
                }
            }
        }
    }
    min.min(leaf)
}

/// Writes `lines` as one `<text>` of `<tspan>`s at (x, y).
fn text_block(o: &mut String, x: f64, y: f64, lines: &[String], class: &str) {
    let _ = write!(o, "<text x=\"{x:.1}\" y=\"{y:.1}\" class=\"{class}\">");
    for (i, l) in lines.iter().enumerate() {
        let _ = write!(
            o,
            "<tspan x=\"{x:.1}\" dy=\"{}\">{}</tspan>",
            if i == 0 { 0.0 } else { LINE },
            esc(l)
        );
    }
    o.push_str("</text>");
}

/// What goes in a step's box: its lane and its lines.
fn step_box(
    step: &TraceStep,
    prev: Option<&Snapshot>,
    nlanes: usize,
    width: usize,
) -> (usize, &'static str, Vec<String>) {
    let lane = step_lane(step, nlanes);
    let body = strip_prefix(&step.text);
    match step.kind {
        StepKind::Op => {
            let class = if lane == 0 {
                "box-updater"
            } else {
                "box-workload"
            };
            (lane, class, wrap(body, width))
        }
        StepKind::Propagate { pa, .. } => {
            let desc = step
                .state
                .vas
                .iter()
                .flat_map(|v| &v.descs)
                .find(|d| d.pa == pa)
                .map(|d| format!("L{} {:#x} = {}", d.level, d.pa, short_desc(&d.text)));
            let text = match desc {
                Some(d) => format!("store reaches walkers: {d}"),
                None => body.to_string(),
            };
            (lane, "box-memory", wrap(&text, width))
        }
        StepKind::Publish { .. } => (lane, "box-memory", wrap(body, width)),
        StepKind::Fill { cpu, va } => {
            // The entries this fill added: in the state after it, not
            // before (leaf entries and the last walk-cache level).
            let before: Vec<&str> = prev
                .map(|p| {
                    p.vas
                        .iter()
                        .flat_map(|v| &v.tlb)
                        .filter(|t| t.cpu == cpu)
                        .map(|t| t.text.as_str())
                        .collect()
                })
                .unwrap_or_default();
            let mut added: Vec<&str> = step
                .state
                .vas
                .iter()
                .flat_map(|v| &v.tlb)
                .filter(|t| t.cpu == cpu && !before.contains(&t.text.as_str()))
                .filter(|t| t.leaf || t.level >= 2)
                .map(|t| t.text.as_str())
                .collect();
            let mut seen = Vec::new();
            added.retain(|a| {
                let new = !seen.contains(a);
                seen.push(*a);
                new
            });
            let mut lines = wrap(&format!("TLB fill: walk for {va:#x} cached"), width);
            for a in added {
                lines.extend(wrap(&format!("+ [{a}]"), width));
            }
            if body.contains("(sets AF)") {
                lines.push("(the walk sets AF)".into());
            }
            (lane, "box-tlb", lines)
        }
        StepKind::Evict { .. } => {
            let what = body.split_once("evicts ").map_or(body, |(_, e)| e);
            (lane, "box-tlb", wrap(&format!("TLB evicts {what}"), width))
        }
    }
}

fn counterexample(
    o: &mut String,
    n: usize,
    name: &str,
    r: &Row,
    workloads: &[WorkloadKind],
    hazard: &Hazard,
    trace: &[TraceStep],
) {
    let title = format!(
        "{} {} at FEAT_BBM {} with {}: {}",
        name,
        r.setup.direction.name(),
        r.setup.features.bbm,
        names(workloads),
        hazard.kind.name()
    );
    let _ = writeln!(
        o,
        "<section class=\"counterexample\" id=\"cx-{n}\" data-protocol=\"{}\" data-op=\"{}\" data-bbm=\"{}\" data-hazard=\"{}\">\n<h3>{}</h3>",
        esc(name),
        esc(r.setup.direction.name()),
        esc(&r.setup.features.bbm.to_string()),
        esc(hazard.kind.slug()),
        esc(&title)
    );
    o.push_str("<div class=\"scroll\">");
    timeline(o, r, workloads, hazard, trace, &title);
    o.push_str("</div>\n");
    // The hazard as the text trace says it, one clause a line.
    let _ = writeln!(
        o,
        "<p class=\"hazard-detail\">&#8658; {}</p>",
        esc(&hazard.to_string().replace("; ", ";\n   "))
    );
    o.push_str("<details><summary>The counterexample as text (as <code>hvo verify</code> prints it)</summary><pre class=\"trace\">");
    for (i, s) in trace.iter().enumerate() {
        let _ = writeln!(o, "{:>3}  {}", i + 1, esc(&s.text));
    }
    let _ = writeln!(
        o,
        " =>  {}</pre></details>\n</section>",
        esc(&hazard.to_string())
    );
}

fn timeline(
    o: &mut String,
    r: &Row,
    workloads: &[WorkloadKind],
    hazard: &Hazard,
    trace: &[TraceStep],
    title: &str,
) {
    let ncpus = 1 + workloads.len() * r.setup.copies.max(1);
    let mut busy = vec![false; ncpus];
    for step in trace {
        if let Some(b) = busy.get_mut(step_lane(step, ncpus + 1)) {
            *b = true;
        }
    }
    if let Some(b) = busy.get_mut(hazard.cpu) {
        *b = true;
    }
    let lanes = lanes(workloads, r.setup.copies, &busy);
    let nl = lanes.len();
    let state_x = lanes[nl - 1].x + MEM_W;
    let width = state_x + STATE_W;
    let min_level = min_level(trace);
    // Lay the rows out first: the height of each is its tallest cell.
    struct RowOut {
        lane: usize,
        class: &'static str,
        lines: Vec<String>,
        state: Vec<StateLine>,
        changed: Vec<bool>,
    }
    let state_chars = ((STATE_W - 2.0 * PAD) / CH) as usize;
    let mut prev_lines: Vec<(u64, Vec<StateLine>)> = Vec::new();
    let mut rows = Vec::new();
    for (i, step) in trace.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| &trace[p].state);
        let box_w = if step_lane_is_mem(step) {
            MEM_W
        } else {
            LANE_W
        };
        let (lane, class, lines) = step_box(step, prev, nl, ((box_w - 3.0 * PAD) / CH) as usize);
        let now = state_lines(&step.state, min_level);
        let last = i + 1 == trace.len();
        let mut state = Vec::new();
        let mut changed = Vec::new();
        for (va, lines) in &now {
            let before = prev_lines.iter().find(|p| p.0 == *va).map(|p| &p.1);
            let differs = before != Some(lines);
            if !(differs || last) {
                continue;
            }
            state.push(StateLine {
                class: "st-va",
                text: format!("vmemmap page {va:#x}"),
                title: format!("the vmemmap page at {va:#x}"),
            });
            changed.push(false);
            for l in lines {
                let new = i > 0 && before.is_none_or(|b| !b.contains(l));
                for (k, w) in wrap(&l.text, state_chars).into_iter().enumerate() {
                    state.push(StateLine {
                        class: l.class,
                        text: if k == 0 { w } else { format!("     {w}") },
                        title: l.title.clone(),
                    });
                    changed.push(new);
                }
            }
        }
        if state.is_empty() {
            state.push(StateLine {
                class: "st-same",
                text: "(no change)".into(),
                title: String::new(),
            });
            changed.push(false);
        }
        prev_lines = now;
        rows.push(RowOut {
            lane,
            class,
            lines,
            state,
            changed,
        });
    }
    let heights: Vec<f64> = rows
        .iter()
        .map(|r| r.lines.len().max(r.state.len()) as f64 * LINE + 3.0 * PAD)
        .collect();
    let hazard_h = 2.0 * LINE + 3.0 * PAD;
    let height = HEAD_H + heights.iter().sum::<f64>() + hazard_h + PAD;
    let _ = write!(
        o,
        "<svg class=\"timeline\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"{}\" data-lanes=\"{nl}\" data-steps=\"{}\">",
        esc(&format!("timeline: {title}")),
        trace.len()
    );
    let _ = write!(o, "<title>{}</title>", esc(title));
    // Lane headers and lines.
    for (i, l) in lanes.iter().enumerate() {
        let id = if i + 1 == nl {
            "memory".to_string()
        } else {
            format!("cpu{i}")
        };
        if l.w == IDLE_W {
            // "CPUn" over "workload, idle".
            let (cpu, what) = l.title.split_once(' ').unwrap_or((&l.title, ""));
            let _ = write!(
                o,
                "<g class=\"lane lane-idle\" data-lane=\"{id}\"><text class=\"lane-title\" x=\"{tx:.1}\" y=\"18\">{}</text><text class=\"lane-sub\" x=\"{tx:.1}\" y=\"34\">{}, idle</text></g>",
                esc(cpu),
                esc(what),
                tx = l.x + PAD,
            );
        } else {
            let _ = write!(
                o,
                "<g class=\"lane\" data-lane=\"{id}\"><text class=\"lane-title\" x=\"{tx:.1}\" y=\"28\">{}</text></g>",
                esc(&l.title),
                tx = l.x + PAD,
            );
        }
    }
    let _ = write!(
        o,
        "<text class=\"lane-title\" x=\"{:.1}\" y=\"28\">descriptors and TLBs after the step</text>",
        state_x + PAD
    );
    let mut y = HEAD_H;
    for (i, (row, h)) in rows.iter().zip(&heights).enumerate() {
        let step = &trace[i];
        let lane_attr = if row.lane + 1 == nl {
            "memory".to_string()
        } else {
            format!("cpu{}", row.lane)
        };
        let is_hazard = step.hazard;
        let _ = write!(
            o,
            "<g class=\"step{}\" data-step=\"{}\" data-lane=\"{lane_attr}\">",
            if is_hazard { " hazard-step" } else { "" },
            i + 1
        );
        let _ = write!(
            o,
            "<rect class=\"{}\" x=\"0\" y=\"{y:.1}\" width=\"{width:.0}\" height=\"{h:.1}\"/>",
            if i % 2 == 0 { "band-even" } else { "band-odd" }
        );
        text_block(
            o,
            8.0,
            y + PAD + LINE - 4.0,
            &[format!("{:>2}", i + 1)],
            "num",
        );
        let l = &lanes[row.lane];
        let bh = row.lines.len() as f64 * LINE + PAD;
        let _ = write!(
            o,
            "<rect class=\"box {}{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" rx=\"4\"><title>{}</title></rect>",
            row.class,
            if is_hazard { " box-hazard" } else { "" },
            l.x + PAD,
            y + PAD,
            l.w - 2.0 * PAD,
            esc(&step.text)
        );
        text_block(o, l.x + 2.0 * PAD, y + PAD + LINE - 4.0, &row.lines, "op");
        // The state column, line by line (each with its class).
        let _ = write!(o, "<g class=\"state\">");
        for (k, (s, ch)) in row.state.iter().zip(&row.changed).enumerate() {
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"{}{}\">{}{}</text>",
                state_x + PAD,
                y + PAD + LINE - 4.0 + LINE * k as f64,
                s.class,
                if *ch { " changed" } else { "" },
                if s.title.is_empty() {
                    String::new()
                } else {
                    format!("<title>{}</title>", esc(&s.title))
                },
                esc(&s.text)
            );
        }
        o.push_str("</g></g>");
        y += h;
    }
    // The lanes' edges, over the rows' bands.
    for x in lanes.iter().map(|l| l.x).chain([state_x]) {
        let _ = write!(
            o,
            "<line class=\"lane-line\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{y:.1}\"/>",
            HEAD_H - 8.0
        );
    }
    // The hazard: a band across, a dot in the lane of the CPU it hit.
    let lane = hazard.cpu.min(nl - 2);
    let hx = lanes[lane].x + PAD;
    let _ = write!(
        o,
        "<g class=\"hazard-mark\" data-cpu=\"{}\" data-hazard=\"{}\"><rect class=\"hazard-band\" x=\"1\" y=\"{:.1}\" width=\"{:.0}\" height=\"{:.1}\" rx=\"4\"/>",
        hazard.cpu,
        esc(hazard.kind.slug()),
        y + 2.0,
        width - 2.0,
        hazard_h - 4.0
    );
    let _ = write!(
        o,
        "<circle class=\"hazard-dot\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"9\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#fff\" font-weight=\"bold\" text-anchor=\"middle\">!</text>",
        hx + 10.0,
        y + PAD + LINE - 2.0,
        hx + 10.0,
        y + PAD + LINE + 2.0
    );
    let mut what = format!("{} on CPU{}", hazard.kind.name(), hazard.cpu);
    if !trace.iter().any(|s| s.hazard) {
        what.push_str(", found when every CPU had finished");
    }
    if let Some(va) = hazard.va {
        let _ = write!(what, " at {va:#x}");
    }
    let first = hazard.detail.split(';').next().unwrap_or("");
    text_block(
        o,
        hx + 26.0,
        y + PAD + LINE,
        &[what, first.trim().to_string()],
        "hazard-text",
    );
    o.push_str("</g></svg>");
}

/// Tells whether a step's box goes in the memory lane.
/// Returns the lane of a step's box among `nlanes` (the memory system's
/// last): the CPU that acted or whose TLB changed, or the memory system.
fn step_lane(step: &TraceStep, nlanes: usize) -> usize {
    let mem = nlanes - 1;
    match step.kind {
        StepKind::Op => step.cpu.unwrap_or(0).min(mem - 1),
        StepKind::Fill { cpu, .. } | StepKind::Evict { cpu } => cpu.min(mem - 1),
        StepKind::Propagate { .. } | StepKind::Publish { .. } => mem,
    }
}

fn step_lane_is_mem(step: &TraceStep) -> bool {
    matches!(
        step.kind,
        StepKind::Propagate { .. } | StepKind::Publish { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use explore::{Limits, Setup};
    use mm::Protocol;
    use vmsa::BbmLevel;

    /// linux-generic (a hazard) and stop-machine (safe), HVO at FEAT_BBM 0
    /// against one neighbour CPU.
    fn rows() -> Vec<Row> {
        ["linux-generic", "stop-machine"]
            .iter()
            .map(|name| {
                let mut s =
                    Setup::standard(Protocol::by_name(name).expect("built in"), BbmLevel::Level0);
                s.workloads = vec![WorkloadKind::Neighbour];
                explore::verify(&s, &Limits::default(), false).expect("explores")
            })
            .collect()
    }

    fn page(rows: &[Row]) -> Page<'_> {
        Page {
            title: "hvo verify".into(),
            meta: vec![("granule".into(), "4K".into())],
            rows,
            extra: None,
            labels: None,
        }
    }

    #[test]
    fn table_has_a_row_per_configuration_and_a_timeline_per_counterexample() {
        let rows = rows();
        let html = render(&page(&rows));
        assert_eq!(html.matches("<tr class=\"row\"").count(), 2, "{html}");
        assert!(html.contains(
            "<tr class=\"row\" data-protocol=\"linux-generic\" data-op=\"hvo\" data-bbm=\"0\" data-rules=\"violation\" data-verdict=\"tlb-conflict-abort\">"
        ));
        assert!(html.contains(
            "<tr class=\"row\" data-protocol=\"stop-machine\" data-op=\"hvo\" data-bbm=\"0\" data-rules=\"compliant\" data-verdict=\"safe\">"
        ));
        assert_eq!(html.matches("<td class=\"hazard\">").count(), 1);
        // One timeline: CPU0, CPU1 and the memory system; one row a step.
        let Verdict::Hazard { trace, .. } = rows[0].verdict().0 else {
            panic!("linux-generic has a hazard")
        };
        assert_eq!(html.matches("<svg class=\"timeline\"").count(), 1);
        assert!(html.contains(&format!("data-lanes=\"3\" data-steps=\"{}\"", trace.len())));
        assert_eq!(html.matches("<g class=\"lane\"").count(), 3);
        for t in ["CPU0 updater", "CPU1 neighbour", "memory system"] {
            assert!(html.contains(&format!(">{t}</text>")), "{t}");
        }
        assert_eq!(html.matches("<g class=\"step").count(), trace.len());
        assert_eq!(
            html.matches(
                "<g class=\"hazard-mark\" data-cpu=\"1\" data-hazard=\"tlb-conflict-abort\">"
            )
            .count(),
            1
        );
        // The hazard's step is the last, on CPU1; its box is marked.
        assert_eq!(html.matches("hazard-step").count(), 1);
        assert!(html.contains(&format!(
            "<g class=\"step hazard-step\" data-step=\"{}\" data-lane=\"cpu1\">",
            trace.len()
        )));
        // The stale 2M block entry is shown.
        assert!(html.contains("STALE"));
    }

    #[test]
    fn a_safe_run_has_no_timeline() {
        let rows = rows();
        let html = render(&page(&rows[1..]));
        assert_eq!(html.matches("<tr class=\"row\"").count(), 1);
        assert!(!html.contains("<svg"));
        assert!(html.contains("class=\"no-counterexample\""));
    }

    #[test]
    fn escapes_what_it_is_given() {
        let rows = rows();
        let p = Page {
            title: "<script>alert(1)</script>".into(),
            meta: vec![("a&b".into(), "\"quoted\" <x>".into())],
            rows: &rows,
            extra: Some(("file".into(), vec!["<b>bold</b>.seq".into()])),
            labels: None,
        };
        let html = render(&p);
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>"));
        assert!(!html.contains("<x>"));
        assert!(html.contains("<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>"));
        assert!(html.contains("<dt>a&amp;b</dt><dd>&quot;quoted&quot; &lt;x&gt;</dd>"));
        assert!(html.contains("<th>file</th>"));
        assert!(html.contains("<td>&lt;b&gt;bold&lt;/b&gt;.seq</td>"));
        // Nothing loaded from elsewhere, no script.
        for bad in ["<script", "<link", "src=", "http://", "https://"] {
            let n = html.matches(bad).count();
            assert_eq!(n, 0, "{bad}");
        }
    }

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("plain 0x1f"), "plain 0x1f");
    }

    #[test]
    fn wraps_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("aaa bbb ccc", 8), vec!["aaa bbb", "ccc"]);
        assert_eq!(wrap("0123456789abcdef", 8), vec!["01234567", "89abcdef"]);
        assert_eq!(wrap("", 8), vec![""]);
    }

    #[test]
    fn strips_the_cpu_prefix() {
        assert_eq!(strip_prefix("cpu12: dsb ish"), "dsb ish");
        assert_eq!(strip_prefix("hw:   cpu1 evicts [x]"), "cpu1 evicts [x]");
        assert_eq!(strip_prefix("cpuX: y"), "cpuX: y");
    }

    #[test]
    fn names_the_lanes() {
        let l = lanes(
            &[WorkloadKind::Neighbour, WorkloadKind::PfnWalker],
            2,
            &[true, true, false, true, false],
        );
        let t: Vec<&str> = l.iter().map(|l| l.title.as_str()).collect();
        assert_eq!(
            t,
            [
                "CPU0 updater",
                "CPU1 neighbour",
                "CPU2 neighbour",
                "CPU3 pfn-walker",
                "CPU4 pfn-walker",
                "memory system"
            ]
        );
        // Idle CPUs get narrow lanes; the next lane starts where one ends.
        let w: Vec<f64> = l.iter().map(|l| l.w).collect();
        assert_eq!(w, [LANE_W, LANE_W, IDLE_W, LANE_W, IDLE_W, MEM_W]);
        for p in l.windows(2) {
            assert_eq!(p[0].x + p[0].w, p[1].x);
        }
    }
}
