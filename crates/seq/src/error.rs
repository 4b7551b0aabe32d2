//! Errors of the `.seq` format, with their place in the file.

use std::ops::Range;

/// An error in a `.seq` file: where it is and what was expected.
///
/// `Display` gives `file:line:col: message`, the source line and a caret
/// line under the span; [`SeqError::render`] draws the same with ariadne.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}\n  {text}\n  {}", self.caret())]
pub struct SeqError {
    /// The file name as given.
    pub file: std::sync::Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// What was wrong and what was expected.
    pub message: String,
    /// The source line.
    pub text: String,
    /// The byte range in the file.
    pub span: Range<usize>,
}

impl SeqError {
    /// Builds the error for `span` (byte offsets) of `src`.
    pub fn at(file: &str, src: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let start = floor_char(src, span.start.min(src.len()));
        let end = floor_char(src, span.end.clamp(start, src.len()));
        let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
        let text = src[line_start..line_end].trim_end_matches('\r');
        let line = src[..start].matches('\n').count() + 1;
        let col0 = src[line_start..start].chars().count();
        SeqError {
            file: file.into(),
            line,
            col: col0 + 1,
            message: message.into(),
            text: text.to_string(),
            span: start..end.max(start),
        }
    }

    /// Returns a line of carets under the span in [`SeqError::text`].
    pub fn caret(&self) -> String {
        let col0 = self.col.saturating_sub(1);
        let rest = self.text.chars().count().saturating_sub(col0);
        // The span in characters, clipped to the line.
        let width = self.span.len().min(rest).max(1);
        format!("{}{}", " ".repeat(col0), "^".repeat(width))
    }

    /// Renders the error with ariadne: the file, line and column, the
    /// source line with the span underlined and the message; `src` is the
    /// file's text (the span indexes it).
    pub fn render(&self, src: &str) -> String {
        use ariadne::{Config, Label, Report, ReportKind, Source};
        // ariadne counts characters; the span is in bytes.
        let cs = src.get(..self.span.start).map_or(0, |s| s.chars().count());
        let ce = src
            .get(..self.span.end)
            .map_or(cs, |s| s.chars().count())
            .max(cs + 1);
        let name: &str = &self.file;
        let mut out = Vec::new();
        let report = Report::build(ReportKind::Error, (name, cs..ce))
            .with_config(
                Config::default()
                    .with_color(false)
                    .with_char_set(ariadne::CharSet::Ascii),
            )
            .with_message(format!(
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            ))
            .with_label(Label::new((name, cs..ce)).with_message(&self.message))
            .finish();
        if report.write((name, Source::from(src)), &mut out).is_err() {
            return self.to_string();
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// An error while running a case: a step the model refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct RunError {
    /// The file.
    pub file: String,
    /// The line of the step.
    pub line: usize,
    /// What went wrong.
    pub message: String,
}
