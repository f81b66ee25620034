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
mod parallel;
pub mod plan;
pub mod rules;
pub mod run;
pub mod schema;
pub mod source;
pub mod syntax;
#[cfg(test)]
mod test_fixtures;

pub use compile::{Compilation, compile_source};
