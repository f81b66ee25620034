//! anklumec: compile anklume's `infra.yml` into a typed deployment plan, and the plan
//! into a reviewable bash script of `incus` commands.
//!
//! The pipeline runs one way: [`syntax`] (YAML with spans, then the typed tree) →
//! [`check`] (diagnostics) → [`lower`] (the [`plan`] IR) → [`emit`] (bash).

pub mod addressing;
pub mod check;
pub mod compile;
pub mod diagnostics;
pub mod emit;
pub mod incus;
pub mod lower;
pub mod plan;
pub mod rules;
pub mod run;
pub mod schema;
pub mod source;
pub mod syntax;

pub use compile::{Compilation, compile_source};

/// How many threads a large input is worth: the cores this process may use, asked once
/// (the answer takes system calls and cgroup files to find).
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}
