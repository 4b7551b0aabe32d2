//! A search's progress on the terminal: after a second of search, its
//! states, depth, states per second, memory, and the limit it is heading
//! for, on one line of standard error, cleared when the search ends. Shown
//! only when standard error is a terminal and the output is not JSON.

use std::io::IsTerminal;
use std::time::Duration;

use explore::{Limits, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long a search runs before its progress is shown.
const AFTER: Duration = Duration::from_secs(1);

/// The progress line (nothing when not shown).
pub(crate) struct Display {
    bar: Option<ProgressBar>,
    limits: Limits,
}

impl Display {
    /// A progress line for searches under `limits`, shown if `show` and
    /// standard error is a terminal.
    pub(crate) fn new(show: bool, limits: Limits) -> Self {
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        });
        Display { bar, limits }
    }

    /// Shows how far the search of `label` got (once it has run a second).
    pub(crate) fn update(&self, label: &str, p: &Progress) {
        let Some(bar) = &self.bar else { return };
        if p.elapsed < AFTER {
            return;
        }
        bar.set_message(line(label, p, &self.limits));
        bar.tick();
    }

    /// Clears the line.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The progress line's text: counts, rate, memory, and the limit nearest
/// to being reached, with how near.
pub(crate) fn line(label: &str, p: &Progress, limits: &Limits) -> String {
    let secs = p.elapsed.as_secs_f64().max(1e-3);
    let share = |x: f64, of: f64| if of > 0.0 { x / of } else { 1.0 };
    let near = [
        ("states", share(p.states as f64, limits.states as f64)),
        ("memory", share(p.memory as f64, limits.memory as f64)),
        ("time", share(secs, limits.time.as_secs_f64())),
    ]
    .into_iter()
    .fold(("states", -1.0), |a, b| if b.1 > a.1 { b } else { a });
    format!(
        "{label}: {} states, depth {}, {:.0} states/s, {} of {} MiB; {:.0}% of the {} limit",
        p.states,
        p.depth,
        p.states as f64 / secs,
        p.memory >> 20,
        limits.memory >> 20,
        near.1 * 100.0,
        near.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_the_nearest_limit() {
        let limits = Limits {
            states: 1000,
            memory: 100 << 20,
            time: Duration::from_secs(100),
        };
        let p = Progress {
            states: 100,
            transitions: 300,
            depth: 7,
            memory: 50 << 20,
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(
            line("x", &p, &limits),
            "x: 100 states, depth 7, 50 states/s, 50 of 100 MiB; 50% of the memory limit"
        );
    }
}
