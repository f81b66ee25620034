//! Back ends that turn a [`Plan`](crate::plan::Plan) into text. Only this module
//! knows bash.

pub mod bash;
pub mod inventory;
pub mod text;

pub use bash::{EmitError, deploy_script, destroy_script, shell_quote};
pub use inventory::inventory_files;
pub use text::plan_text;
