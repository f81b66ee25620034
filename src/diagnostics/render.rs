//! The one place that knows codespan-reporting: diagnostics to text (with colour on a
//! terminal) and to JSON lines for tools.

use super::{Diagnostic, Severity};
use crate::source::SourceMap;
use codespan_reporting::diagnostic::{
    Diagnostic as CsDiagnostic, Label as CsLabel, LabelStyle, Severity as CsSeverity,
};
use codespan_reporting::files::{Error as FilesError, Files};
use codespan_reporting::term::{self, Config, termcolor};
use serde::Serialize;

/// A line longer than this (in bytes) is shown as a window around its labels.
const LONG_LINE: usize = 200;
/// Bytes of context kept on each side of the labels in such a window.
const CONTEXT: usize = 60;
/// The most a window shows between its first and last label point; a label that goes
/// further is cut at the window's end.
const WINDOW: usize = 200;
const ELLIPSIS: &str = "…";

/// One line of an [`Excerpt`]: where it is in the original text and in the excerpt,
/// and, for a long line, the part of it shown.
struct ExcerptLine {
    original: std::ops::Range<usize>,
    start: usize,
    window: Option<std::ops::Range<usize>>,
}

/// A file as one diagnostic shows it: the original text, with each long line cut down
/// to a window (`…` marks what is left out). Headers still give the original line and
/// column: positions map back to the original text.
struct Excerpt {
    text: String,
    lines: Vec<ExcerptLine>,
    line_starts: Vec<usize>,
}

impl Excerpt {
    /// The excerpt of `file` for labels at `points` (byte offsets in it), or `None` when
    /// no labelled line is long.
    fn new(file: &crate::source::SourceFile, text: &str, points: &[usize]) -> Option<Excerpt> {
        let starts = file.line_starts();
        let line_of = |at: usize| starts.partition_point(|&start| start <= at).saturating_sub(1);
        let range_of = |index: usize| starts[index]..starts.get(index + 1).copied().unwrap_or(text.len());
        let long = |index: usize| range_of(index).len() > LONG_LINE;
        if !points.iter().any(|&at| long(line_of(at))) {
            return None;
        }
        let mut excerpt =
            Excerpt { text: String::new(), lines: Vec::with_capacity(starts.len()), line_starts: Vec::new() };
        for index in 0..starts.len() {
            let original = range_of(index);
            let start = excerpt.text.len();
            excerpt.line_starts.push(start);
            if original.len() <= LONG_LINE {
                excerpt.text.push_str(&text[original.clone()]);
                excerpt.lines.push(ExcerptLine { original, start, window: None });
                continue;
            }
            let content_end = original.start + text[original.clone()].trim_end_matches(['\n', '\r']).len();
            let on_line: Vec<usize> =
                points.iter().copied().filter(|at| original.contains(at) || *at == content_end).collect();
            let (low, high) = match (on_line.iter().min(), on_line.iter().max()) {
                (Some(&low), Some(&high)) => (low, high.min(low + WINDOW)),
                _ => (original.start, original.start),
            };
            let floor = |at: usize| (0..=at).rev().find(|&at| text.is_char_boundary(at)).unwrap_or(0);
            let window_start = floor(low.saturating_sub(CONTEXT).max(original.start));
            let window_end = floor((high + CONTEXT).min(content_end).max(window_start));
            if window_start > original.start {
                excerpt.text.push_str(ELLIPSIS);
            }
            excerpt.text.push_str(&text[window_start..window_end]);
            if window_end < content_end {
                excerpt.text.push_str(ELLIPSIS);
            }
            excerpt.text.push_str(&text[content_end..original.end]);
            excerpt.lines.push(ExcerptLine { original, start, window: Some(window_start..window_end) });
        }
        Some(excerpt)
    }

    /// Where the original byte `at` is in the excerpt (clamped into a line's window).
    fn map(&self, at: usize) -> usize {
        let index = self.lines.partition_point(|line| line.original.start <= at).saturating_sub(1);
        let line = &self.lines[index];
        match &line.window {
            None => line.start + (at - line.original.start),
            Some(window) => {
                let shown = at.clamp(window.start, window.end);
                let skipped = if window.start > line.original.start { ELLIPSIS.len() } else { 0 };
                line.start + skipped + (shown - window.start)
            }
        }
    }

    /// The original byte behind the excerpt's byte `at` on line `index`.
    fn original(&self, index: usize, at: usize) -> usize {
        let line = &self.lines[index];
        match &line.window {
            None => line.original.start + (at - line.start),
            Some(window) => {
                let skipped = if window.start > line.original.start { ELLIPSIS.len() } else { 0 };
                (window.start + at.saturating_sub(line.start + skipped)).min(window.end)
            }
        }
    }
}

/// The text of a file as diagnostics show it: each character that would act on a
/// terminal instead of showing (a C0 or C1 control but tab and line ends, DEL, a
/// bidirectional override) replaced by a visible one of the same UTF-8 length, so
/// that every offset and column stays. An infra.yml with `ESC[2J` or a bell in it is
/// reported, not replayed on the reader's terminal or CI log.
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    // A carriage return that ends a CRLF line shows nothing: it stays.
    let acts = |(at, c): (usize, char)| crate::source::acts_on_terminal(c) && !text[at..].starts_with("\r\n");
    if !text.char_indices().any(acts) {
        return std::borrow::Cow::Borrowed(text);
    }
    let visible = text
        .char_indices()
        .map(|(at, c)| match c.len_utf8() {
            _ if !acts((at, c)) => c,
            1 => '?',
            2 => '¿',
            _ => '\u{fffd}',
        })
        .collect();
    std::borrow::Cow::Owned(visible)
}

/// codespan's view of our [`SourceMap`], with the excerpts of one diagnostic.
struct SourceFiles<'a> {
    sources: &'a SourceMap,
    /// Each file's text as shown ([`shown`]).
    texts: &'a [std::borrow::Cow<'a, str>],
    excerpts: Vec<Option<Excerpt>>,
}

impl<'a> Files<'a> for SourceFiles<'a> {
    type FileId = usize;
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, id: usize) -> Result<&'a str, FilesError> {
        Ok(&self.file(id)?.name)
    }

    fn source(&'a self, id: usize) -> Result<&'a str, FilesError> {
        match self.excerpt(id) {
            Some(excerpt) => Ok(&excerpt.text),
            None => self.texts.get(id).map(|text| text.as_ref()).ok_or(FilesError::FileMissing),
        }
    }

    fn line_index(&'a self, id: usize, byte_index: usize) -> Result<usize, FilesError> {
        let starts = self.starts(id)?;
        Ok(starts.partition_point(|&start| start <= byte_index).saturating_sub(1))
    }

    fn line_range(&'a self, id: usize, line_index: usize) -> Result<std::ops::Range<usize>, FilesError> {
        let starts = self.starts(id)?;
        let start = *starts
            .get(line_index)
            .ok_or(FilesError::LineTooLarge { given: line_index, max: starts.len().saturating_sub(1) })?;
        let end = starts.get(line_index + 1).copied().unwrap_or(self.source(id)?.len());
        Ok(start..end)
    }

    /// The column in the original line, also where the line is shown cut.
    fn column_number(&'a self, id: usize, line_index: usize, byte_index: usize) -> Result<usize, FilesError> {
        let file = self.file(id)?;
        let (line_start, at) = match self.excerpt(id) {
            Some(excerpt) if line_index < excerpt.lines.len() => {
                (excerpt.lines[line_index].original.start, excerpt.original(line_index, byte_index))
            }
            _ => (self.line_range(id, line_index)?.start, byte_index),
        };
        Ok(file.text.get(line_start..at).map_or(0, |text| text.chars().count()) + 1)
    }
}

impl<'a> SourceFiles<'a> {
    /// The view for `diagnostic`: long lines it labels cut to windows.
    fn for_diagnostic(
        sources: &'a SourceMap,
        texts: &'a [std::borrow::Cow<'a, str>],
        diagnostic: &Diagnostic,
    ) -> SourceFiles<'a> {
        let excerpts = sources
            .files()
            .map(|(file_id, file)| {
                let id = file_id.0 as usize;
                let points: Vec<usize> = diagnostic
                    .labels
                    .iter()
                    .filter(|label| label.span.file.0 as usize == id)
                    .flat_map(|label| [label.span.start, label.span.end])
                    .collect();
                if points.is_empty() { None } else { Excerpt::new(file, &texts[id], &points) }
            })
            .collect();
        SourceFiles { sources, texts, excerpts }
    }

    fn excerpt(&self, id: usize) -> Option<&Excerpt> {
        self.excerpts.get(id).and_then(Option::as_ref)
    }

    fn starts(&self, id: usize) -> Result<&[usize], FilesError> {
        match self.excerpt(id) {
            Some(excerpt) => Ok(&excerpt.line_starts),
            None => Ok(self.file(id)?.line_starts()),
        }
    }

    /// A byte range of the original file, as this view shows it.
    fn map(&self, id: usize, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
        match self.excerpt(id) {
            Some(excerpt) => excerpt.map(range.start)..excerpt.map(range.end),
            None => range,
        }
    }

    fn file(&self, id: usize) -> Result<&'a crate::source::SourceFile, FilesError> {
        let count = self.sources.files().count();
        if id >= count {
            return Err(FilesError::FileMissing);
        }
        Ok(self.sources.get(crate::source::FileId(id as u32)))
    }
}

fn to_codespan(diagnostic: &Diagnostic, files: &SourceFiles<'_>) -> CsDiagnostic<usize> {
    let severity = match diagnostic.severity {
        Severity::Error => CsSeverity::Error,
        Severity::Warning => CsSeverity::Warning,
        Severity::Note => CsSeverity::Note,
    };
    let labels = diagnostic
        .labels
        .iter()
        .map(|label| {
            let style = if label.primary { LabelStyle::Primary } else { LabelStyle::Secondary };
            let id = label.span.file.0 as usize;
            CsLabel::new(style, id, files.map(id, label.span.range())).with_message(label.message.clone())
        })
        .collect();
    let mut notes = diagnostic.notes.clone();
    if let Some(help) = &diagnostic.help {
        notes.push(format!("help: {help}"));
    }
    CsDiagnostic::new(severity)
        .with_code(diagnostic.code.id)
        .with_message(diagnostic.message.clone())
        .with_labels(labels)
        .with_notes(notes)
}

/// Render diagnostics as text; `colour` adds ANSI colours (for a terminal). A long
/// line is shown as a window around the labels on it.
pub fn to_text(sources: &SourceMap, diagnostics: &[Diagnostic], colour: bool) -> String {
    let config = Config::default();
    let mut out = String::new();
    let texts: Vec<std::borrow::Cow<'_, str>> = sources.files().map(|(_, file)| shown(&file.text)).collect();
    for diagnostic in diagnostics {
        let files = SourceFiles::for_diagnostic(sources, &texts, diagnostic);
        let codespan = to_codespan(diagnostic, &files);
        let rendered = if colour {
            let mut buffer = termcolor::Buffer::ansi();
            term::emit_to_write_style(&mut buffer, &config, &files, &codespan)
                .map(|()| String::from_utf8_lossy(buffer.as_slice()).into_owned())
        } else {
            let mut text = String::new();
            term::emit_to_string(&mut text, &config, &files, &codespan).map(|()| text)
        };
        match rendered {
            Ok(text) => out.push_str(&text),
            Err(error) => out.push_str(&format!(
                "{}[{}]: {} (cannot show the source: {error})\n",
                diagnostic.severity, diagnostic.code.id, diagnostic.message
            )),
        }
    }
    out
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'a str,
    severity: Severity,
    message: &'a str,
    file: String,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    labels: Vec<JsonLabel<'a>>,
    notes: &'a [String],
    help: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    primary: bool,
    message: &'a str,
    file: String,
    line: usize,
    column: usize,
    byte_start: usize,
    byte_end: usize,
}

/// One JSON object per line per diagnostic (`--message-format json`).
pub fn to_json_lines(sources: &SourceMap, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        let primary = diagnostic.primary_span();
        let start = sources.location(primary);
        let end_file = sources.get(primary.file);
        let (end_line, end_column) = end_file.line_column(primary.end);
        let labels = diagnostic
            .labels
            .iter()
            .map(|label| {
                let location = sources.location(label.span);
                JsonLabel {
                    primary: label.primary,
                    message: &label.message,
                    file: location.file.to_string(),
                    line: location.line,
                    column: location.column,
                    byte_start: label.span.start,
                    byte_end: label.span.end,
                }
            })
            .collect();
        let json = JsonDiagnostic {
            code: diagnostic.code.id,
            severity: diagnostic.severity,
            message: &diagnostic.message,
            file: start.file.to_string(),
            line: start.line,
            column: start.column,
            end_line,
            end_column,
            labels,
            notes: &diagnostic.notes,
            help: diagnostic.help.as_deref(),
        };
        out.push_str(&serde_json::to_string(&json).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// SARIF 2.1.0 (`--message-format sarif`), for code scanning in pull requests: one run,
/// every diagnostic code as a rule (its explanation as the rule's help), results with
/// physical locations. Columns count Unicode code points, as the text output does.
pub fn to_sarif(sources: &SourceMap, diagnostics: &[Diagnostic]) -> String {
    use serde_json::json;
    let level = |severity: Severity| match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    };
    let region = |span: crate::source::Span| {
        let file = sources.get(span.file);
        let (start_line, start_column) = file.line_column(span.start);
        let (end_line, end_column) = file.line_column(span.end.max(span.start));
        json!({
            "startLine": start_line,
            "startColumn": start_column,
            "endLine": end_line,
            "endColumn": end_column.max(if end_line == start_line { start_column + 1 } else { 1 }),
        })
    };
    let location = |span: crate::source::Span| {
        json!({
            "physicalLocation": {
                "artifactLocation": {"uri": sources.get(span.file).name},
                "region": region(span),
            }
        })
    };
    let rules: Vec<serde_json::Value> = super::codes::ALL
        .iter()
        .map(|code| {
            json!({
                "id": code.id,
                "shortDescription": {"text": code.summary},
                "fullDescription": {"text": code.explanation},
                "help": {"text": code.explanation},
                "defaultConfiguration": {"level": level(code.severity())},
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = diagnostics
        .iter()
        .map(|diagnostic| {
            let mut text = diagnostic.message.clone();
            for label in diagnostic.labels.iter().filter(|l| l.primary && !l.message.is_empty()) {
                text.push_str(&format!(": {}", label.message));
            }
            for note in &diagnostic.notes {
                text.push_str(&format!("\nnote: {note}"));
            }
            if let Some(help) = &diagnostic.help {
                text.push_str(&format!("\nhelp: {help}"));
            }
            let related: Vec<serde_json::Value> = diagnostic
                .labels
                .iter()
                .filter(|label| !label.primary)
                .enumerate()
                .map(|(index, label)| {
                    let mut value = location(label.span);
                    value["id"] = json!(index);
                    value["message"] = json!({"text": label.message});
                    value
                })
                .collect();
            let mut result = json!({
                "ruleId": diagnostic.code.id,
                "ruleIndex": super::codes::ALL.iter().position(|c| c.id == diagnostic.code.id),
                "level": level(diagnostic.severity),
                "message": {"text": text},
                "locations": [location(diagnostic.primary_span())],
            });
            if !related.is_empty() {
                result["relatedLocations"] = json!(related);
            }
            result
        })
        .collect();
    let sarif = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "anklumec",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&sarif).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{Options, compile_source};

    #[test]
    fn shown_text_keeps_every_offset() {
        let text = "a\u{1b}[2J\u{7}b\r\n\tc\u{85}d\u{202e}e\u{7f}\rf\n";
        let visible = shown(text);
        assert_eq!(visible, "a?[2J?b\r\n\tc¿d\u{fffd}e??f\n");
        assert_eq!(visible.len(), text.len());
        assert!(text.char_indices().map(|(at, _)| at).all(|at| visible.is_char_boundary(at)));
        assert!(matches!(shown("plain\r\ntext\t\n"), std::borrow::Cow::Borrowed(_)));
    }

    /// A file that holds terminal escapes is reported, not replayed: the rendered
    /// diagnostics hold no control character but line ends (and, in colour, the
    /// renderer's own escapes).
    #[test]
    fn source_lines_never_carry_terminal_escapes() {
        let text = "project_name: \"x\\e[2J\"\nglobal: {addressing: {base_octet: 10, zone_base: 100}, default_os_image: tiny}\ndomains:\n  work:\n    description: \"bell \u{7} and \u{1b}]0;title\u{7}\"\n    machines: {web: {}}\n";
        let compilation = compile_source("infra.yml", text, Options::default());
        assert!(!compilation.diagnostics.is_empty());
        let rendered = to_text(&compilation.sources, &compilation.diagnostics, false);
        assert!(rendered.contains("bell ? and ?]0;title?"), "{rendered}");
        assert!(!rendered.chars().any(|c| c.is_control() && c != '\n'), "{rendered:?}");
    }
}
