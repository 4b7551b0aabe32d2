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
//!
//! This file holds the page: its header, the verdict table and each
//! counterexample's section; `timeline.rs` draws a counterexample's SVG
//! timeline.

mod timeline;

use std::fmt::Write as _;

use explore::{Hazard, Row, TraceStep, Verdict, WorkloadKind};

use crate::verify::{BbmView, COLUMNS, bbm_notes, cells, names, row_view};
use timeline::{legend, timeline};

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
                    "<p class=\"incomplete\">{} {} at FEAT_BBM {}: incomplete: {}</p>",
                    esc(page.name(i)),
                    esc(r.setup.direction.name()),
                    esc(&r.setup.features.bbm.to_string()),
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
}
