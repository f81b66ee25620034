//! The pipeline: source text → YAML tree → typed tree → checked → plan.
//!
//! Parsing never panics and returns what it could with diagnostics; the reader and
//! the checker report everything they find; lowering runs only on error-free input.

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::plan::{Plan, SourceInfo};
use crate::source::{SourceFile, SourceMap};
use crate::syntax::{read, split, yaml};
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
    crate::plan::hex(&Sha256::digest(bytes))
}

/// Compile one infra.yml. `name` is the path as the user gave it (it appears in
/// diagnostics and in the generated script's header). Given a `String`, the text is
/// kept without a copy (the CLI's input may be tens of megabytes).
pub fn compile_source(name: &str, text: impl Into<String>, options: Options) -> Compilation {
    let mut sources = SourceMap::new();
    let file = sources.add(SourceFile::new(name, text));
    let text = sources.get(file).text.as_str();
    let mut diagnostics = Diagnostics::new();
    let root = yaml::parse(file, text, &yaml::Limits::default(), &mut diagnostics);
    let source = SourceInfo { path: name.to_string(), sha256: sha256_hex(text.as_bytes()) };
    finish(root, source, sources, diagnostics, options)
}

/// The files of anklume's split layout (an `infra/` directory), as (name, text).
#[derive(Clone, Debug)]
pub struct SplitInput {
    /// The directory as the user gave it.
    pub directory: String,
    pub base: (String, String),
    /// `domains/*.yml`, in file-name order.
    pub domains: Vec<(String, String)>,
    pub policies: Option<(String, String)>,
}

/// Compile a split `infra/` directory: the files are merged into one infra.yml tree
/// (see [`crate::syntax::split`]); diagnostics name the file each problem is in. The
/// files' texts move into the compilation's sources.
pub fn compile_split(input: SplitInput, options: Options) -> Compilation {
    // Hash every file, names included, in their fixed order.
    let mut hasher = Sha256::new();
    for (name, text) in std::iter::once(&input.base).chain(&input.domains).chain(&input.policies) {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    let source = SourceInfo { path: input.directory, sha256: crate::plan::hex(&hasher.finalize()) };
    let mut sources = SourceMap::new();
    let mut add = |(name, text): (String, String)| sources.add(SourceFile::new(name, text));
    let base = add(input.base);
    let domain_files: Vec<_> = input.domains.into_iter().map(&mut add).collect();
    let policies_file = input.policies.map(add);
    let mut diagnostics = Diagnostics::new();
    let limits = yaml::Limits::default();
    let parse = |file, diagnostics: &mut Diagnostics| yaml::parse(file, &sources.get(file).text, &limits, diagnostics);
    let base = parse(base, &mut diagnostics);
    let domains: Vec<_> = domain_files.into_iter().map(|file| parse(file, &mut diagnostics)).collect();
    let policies = policies_file.map(|file| parse(file, &mut diagnostics));
    let all_parsed = domains.iter().all(Option::is_some) && policies.as_ref().is_none_or(Option::is_some);
    let root = match base {
        Some(base) if all_parsed => {
            Some(split::merge(base, domains.into_iter().flatten().collect(), policies.flatten(), &mut diagnostics))
        }
        _ => None,
    };
    finish(root, source, sources, diagnostics, options)
}

fn finish(
    root: Option<yaml::Node>,
    source: SourceInfo,
    sources: SourceMap,
    mut diagnostics: Diagnostics,
    options: Options,
) -> Compilation {
    let mut plan = None;
    if let Some(root) = root {
        let infra = read::read_infra(&root, &mut diagnostics);
        // The typed tree holds all that is left to do: free the YAML tree before the
        // plan is built (it is most of the memory of a large file).
        drop_soon(root, sources.total_bytes());
        check::check(&infra, &mut diagnostics);
        if options.deny_warnings {
            diagnostics.deny_warnings();
        }
        if !diagnostics.has_errors() {
            plan = Some(lower::lower(&infra, &sources, source));
        }
        drop_soon(infra, sources.total_bytes());
    } else if options.deny_warnings {
        diagnostics.deny_warnings();
    }

    Compilation { sources, diagnostics: diagnostics.into_sorted(), plan }
}

/// Sources from this size on are large enough for [`drop_soon`] to free their trees on
/// another thread.
const LARGE_SOURCE: usize = 256 * 1024;

/// Free `value` now, or, when it comes from `source_bytes` of source or more, on a thread
/// of its own: the tree of a file of thousands of machines is hundreds of thousands of
/// allocations, and the next stage (or the exit of the process) need not wait for them.
pub fn drop_soon<T: Send + 'static>(value: T, source_bytes: usize) {
    if source_bytes >= LARGE_SOURCE {
        // Should the thread not start, the closure, and the value with it, is freed here.
        let _ = std::thread::Builder::new().name("free".into()).spawn(move || drop(value));
    }
}
