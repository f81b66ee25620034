//! The front end: YAML text to a spanned tree ([`yaml`]), then to the typed tree of
//! infra.yml ([`ast`]) by [`read`], which reports shape and type problems.

pub mod ast;
mod parts;
pub mod read;
pub mod split;
pub mod yaml;
