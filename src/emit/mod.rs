//! Back ends that turn a [`Plan`](crate::plan::Plan) into text. Only this module
//! knows bash.

pub mod bash;
pub mod text;

pub use bash::{EmitError, deploy_script, shell_quote};
pub use text::plan_text;
