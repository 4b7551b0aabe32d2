//! A counterexample's timeline as SVG: one lane per CPU and one for the
//! memory system, one row per step, the descriptors and TLB entries that
//! matter after each step beside it, the hazard marked; and its legend.

use std::fmt::Write as _;

use explore::{Hazard, Row, Snapshot, StepKind, TraceStep, WorkloadKind};

use super::esc;

pub(super) fn legend(o: &mut String) {
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

pub(super) fn timeline(
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
    use explore::WorkloadKind;

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
