//! What anklumec knows of Incus itself (name rules, configuration keys, value
//! formats), independent of infra.yml.

pub mod config_keys;
pub mod values;
