//! Back ends that turn a [`Plan`](crate::plan::Plan) into text. Only this module
//! knows bash.

pub mod acl_document;
pub mod bash;
pub mod inventory;
pub mod nftables;
pub mod text;

pub use acl_document::acl_document;
pub use bash::{EmitError, deploy_script, destroy_script, shell_quote};
pub use inventory::inventory_files;
pub use nftables::nftables_ruleset;
pub use text::plan_text;
