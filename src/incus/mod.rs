//! What anklumec knows of Incus itself (name rules, configuration keys, value
//! formats), independent of infra.yml.
