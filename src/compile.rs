//! The pipeline: source text → YAML tree → typed tree → checked → plan.
//!
//! Parsing never panics and returns what it could with diagnostics; the reader and
//! the checker report everything they find; lowering runs only on error-free input.

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::plan::{Plan, SourceInfo};
use crate::source::{SourceFile, SourceMap};
use crate::syntax::{read, yaml};
use crate::{check, lower};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Treat warnings as errors (`--deny-warnings`).
    pub deny_warnings: bool,
}

/// The outcome of one compilation: every diagnostic (sorted by position), and the plan
/// when there were no errors.
#[derive(Debug)]
pub struct Compilation {
    pub sources: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
    pub plan: Option<Plan>,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Compile one infra.yml. `name` is the path as the user gave it (it appears in
/// diagnostics and in the generated script's header).
pub fn compile_source(name: &str, text: &str, options: Options) -> Compilation {
    let mut sources = SourceMap::new();
    let file = sources.add(SourceFile::new(name, text));
    let mut diagnostics = Diagnostics::new();
    let mut plan = None;

    if let Some(root) = yaml::parse(file, text, &yaml::Limits::default(), &mut diagnostics) {
        let infra = read::read_infra(&root, &mut diagnostics);
        check::check(&infra, &mut diagnostics);
        if options.deny_warnings {
            diagnostics.deny_warnings();
        }
        if !diagnostics.has_errors() {
            let source = SourceInfo { path: name.to_string(), sha256: sha256_hex(text.as_bytes()) };
            plan = Some(lower::lower(&infra, &sources, source));
        }
    } else if options.deny_warnings {
        diagnostics.deny_warnings();
    }

    Compilation { sources, diagnostics: diagnostics.into_sorted(), plan }
}
