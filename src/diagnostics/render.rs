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

/// codespan's view of our [`SourceMap`].
struct SourceFiles<'a>(&'a SourceMap);

impl<'a> Files<'a> for SourceFiles<'a> {
    type FileId = usize;
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, id: usize) -> Result<&'a str, FilesError> {
        Ok(&self.file(id)?.name)
    }

    fn source(&'a self, id: usize) -> Result<&'a str, FilesError> {
        Ok(&self.file(id)?.text)
    }

    fn line_index(&'a self, id: usize, byte_index: usize) -> Result<usize, FilesError> {
        let starts = self.file(id)?.line_starts();
        Ok(starts.partition_point(|&start| start <= byte_index).saturating_sub(1))
    }

    fn line_range(&'a self, id: usize, line_index: usize) -> Result<std::ops::Range<usize>, FilesError> {
        let file = self.file(id)?;
        let starts = file.line_starts();
        let start = *starts
            .get(line_index)
            .ok_or(FilesError::LineTooLarge { given: line_index, max: starts.len().saturating_sub(1) })?;
        let end = starts.get(line_index + 1).copied().unwrap_or(file.text.len());
        Ok(start..end)
    }
}

impl<'a> SourceFiles<'a> {
    fn file(&self, id: usize) -> Result<&'a crate::source::SourceFile, FilesError> {
        let count = self.0.files().count();
        if id >= count {
            return Err(FilesError::FileMissing);
        }
        Ok(self.0.get(crate::source::FileId(id as u32)))
    }
}

fn to_codespan(diagnostic: &Diagnostic) -> CsDiagnostic<usize> {
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
            CsLabel::new(style, label.span.file.0 as usize, label.span.range()).with_message(label.message.clone())
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

/// Render diagnostics as text; `colour` adds ANSI colours (for a terminal).
pub fn to_text(sources: &SourceMap, diagnostics: &[Diagnostic], colour: bool) -> String {
    let files = SourceFiles(sources);
    let config = Config::default();
    let mut out = String::new();
    for diagnostic in diagnostics {
        let rendered = if colour {
            let mut buffer = termcolor::Buffer::ansi();
            term::emit_to_write_style(&mut buffer, &config, &files, &to_codespan(diagnostic))
                .map(|()| String::from_utf8_lossy(buffer.as_slice()).into_owned())
        } else {
            let mut text = String::new();
            term::emit_to_string(&mut text, &config, &files, &to_codespan(diagnostic)).map(|()| text)
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
