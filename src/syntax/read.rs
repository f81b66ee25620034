//! From the spanned YAML tree to the typed tree of infra.yml.
//!
//! [`read_infra`] walks the tree built by [`super::yaml`] and fills an [`Infra`]. It checks
//! shapes and types only (a mapping where a mapping is expected, an integer where an integer
//! is expected, a known key, an allowed keyword) and reports every problem into the
//! diagnostics sink without stopping: a value of the wrong type leaves its field `None` (or
//! skips the list item), and reading goes on. Meaning (names, addresses, references between
//! domains, machines and profiles) is the checker's business.
//!
//! The key lists below are public so that the checker and the schema export name the same
//! keys as the reader.

use std::fmt::{self, Display};

use strsim::{jaro_winkler, osa_distance};

use super::ast::{
    Addressing, ConfigEntry, Device, Domain, Global, GpuPolicy, Infra, InstanceType, Machine, Name, NetworkPolicy,
    PersistentData, Ports, Profile, Protocol, SharedVolume, StorageVolume, Text, TrustLevel,
};
use super::yaml::{Entry, Node, NodeKind, ScalarValue};
use crate::diagnostics::{Diagnostic, Diagnostics, codes};
use crate::source::{Span, Spanned};

/// Keys of the top-level mapping.
pub const TOP_LEVEL_KEYS: &[&str] = &["project_name", "global", "domains", "network_policies", "shared_volumes"];
/// Top-level keys that must be present.
pub const REQUIRED_TOP_LEVEL_KEYS: &[&str] = &["project_name", "global", "domains"];
/// Top-level keys read into the tree but not acted on by the deployment plan (one N0001 each).
pub const TOP_LEVEL_NOT_ACTED_ON_KEYS: &[&str] = &["shared_volumes"];

/// Keys of `global`, including the ones anklumec accepts without acting on them.
pub const GLOBAL_KEYS: &[&str] = &[
    "addressing",
    "base_subnet",
    "default_os_image",
    "default_connection",
    "default_user",
    "gpu_policy",
    "incus_instances_lxc_retries",
    "incus_instances_lxc_delay",
    "incus_instances_vm_retries",
    "incus_instances_vm_delay",
    "incus_instances_vm_agent_retries",
    "incus_instances_vm_agent_delay",
    "storage_pool",
    "nat",
    "incus_remote",
    "network_isolation",
    "firewall_mode",
    "ai_access_policy",
    "ai_access_default",
    "ai_vram_flush",
    "resource_policy",
    "nesting_prefix",
    "shared_volumes_base",
    "persistent_data_base",
];
/// Keys of `global` that other anklume tools read and anklumec does not act on. Every other
/// key starting with [`GLOBAL_NOT_ACTED_ON_PREFIX`] is accepted the same way.
pub const GLOBAL_NOT_ACTED_ON_KEYS: &[&str] = &[
    "firewall_mode",
    "ai_access_policy",
    "ai_access_default",
    "ai_vram_flush",
    "resource_policy",
    "nesting_prefix",
    "shared_volumes_base",
    "persistent_data_base",
];
/// Any `global` key with this prefix is an AI setting: accepted, any value, not acted on.
pub const GLOBAL_NOT_ACTED_ON_PREFIX: &str = "ai_";

/// Keys of `global.addressing`.
pub const ADDRESSING_KEYS: &[&str] = &["base_octet", "zone_base", "zone_step"];
/// Keys of `global.resource_policy` (when it is a mapping).
pub const RESOURCE_POLICY_KEYS: &[&str] = &["mode", "cpu_mode", "memory_enforce", "overcommit", "host_reserve"];
/// Keys of `global.resource_policy.host_reserve`.
pub const HOST_RESERVE_KEYS: &[&str] = &["cpu", "memory"];

/// Keys of a domain.
pub const DOMAIN_KEYS: &[&str] =
    &["description", "trust_level", "subnet_id", "ephemeral", "enabled", "nat", "profiles", "machines", "file_portal"];
/// Domain keys anklumec does not act on.
pub const DOMAIN_NOT_ACTED_ON_KEYS: &[&str] = &["file_portal"];

/// Keys of a profile.
pub const PROFILE_KEYS: &[&str] = &["description", "config", "devices"];

/// Keys of a machine.
pub const MACHINE_KEYS: &[&str] = &[
    "description",
    "type",
    "ip",
    "os_image",
    "ephemeral",
    "profiles",
    "config",
    "devices",
    "roles",
    "gpu",
    "boot_autostart",
    "boot_priority",
    "snapshots_schedule",
    "snapshots_expiry",
    "storage_volumes",
    "persistent_data",
    "export_apps",
    "services",
    "weight",
];
/// Machine keys anklumec does not act on (`persistent_data` is read into the tree all the same).
pub const MACHINE_NOT_ACTED_ON_KEYS: &[&str] = &["persistent_data", "export_apps", "services", "weight"];

/// Keys of a storage volume (`machines.<name>.storage_volumes.<volume>`).
pub const STORAGE_VOLUME_KEYS: &[&str] = &["pool", "size", "path"];
/// Keys of a persistent data entry (`machines.<name>.persistent_data.<entry>`).
pub const PERSISTENT_DATA_KEYS: &[&str] = &["path", "readonly"];
/// Keys of a network policy.
pub const NETWORK_POLICY_KEYS: &[&str] = &["description", "from", "to", "ports", "protocol", "bidirectional"];
/// Keys of a shared volume.
pub const SHARED_VOLUME_KEYS: &[&str] = &["source", "path", "shift", "consumers"];

/// Allowed values of keywords that have no type in the tree.
pub const PROTOCOL_KEYWORDS: &[&str] = &["tcp", "udp"];
pub const PORTS_ALL_KEYWORD: &str = "all";
pub const ACCESS_MODE_KEYWORDS: &[&str] = &["ro", "rw"];
pub const FIREWALL_MODE_KEYWORDS: &[&str] = &["host", "vm"];
pub const AI_ACCESS_POLICY_KEYWORDS: &[&str] = &["exclusive", "open"];
pub const RESOURCE_MODE_KEYWORDS: &[&str] = &["proportional", "equal"];
pub const RESOURCE_CPU_MODE_KEYWORDS: &[&str] = &["allowance", "count"];
pub const RESOURCE_MEMORY_ENFORCE_KEYWORDS: &[&str] = &["soft", "hard"];

/// Every place that has a fixed set of keys, for the "this key belongs elsewhere" hint.
const PLACES: &[(&str, &[&str])] = &[
    ("the top level", TOP_LEVEL_KEYS),
    ("`global`", GLOBAL_KEYS),
    ("`global.addressing`", ADDRESSING_KEYS),
    ("a domain", DOMAIN_KEYS),
    ("a profile", PROFILE_KEYS),
    ("a machine", MACHINE_KEYS),
    ("a storage volume", STORAGE_VOLUME_KEYS),
    ("a network policy", NETWORK_POLICY_KEYS),
    ("a shared volume", SHARED_VOLUME_KEYS),
];

/// From this much text of domains on (a thousand machines or so), domains are read on
/// several threads.
const BYTES_PER_GROUP: usize = 128 * 1024;

/// Read the YAML tree of an infra.yml into the typed tree, reporting every shape and type
/// problem into `diagnostics`. Never fails: what could not be read is left out.
pub fn read_infra(root: &Node, diagnostics: &mut Diagnostics) -> Infra {
    Reader { diagnostics }.infra(root)
}

/// The closest of `candidates` to `word`, if it is close enough to be worth suggesting
/// (a case difference, one or two edits in a long enough word, or a high Jaro-Winkler
/// similarity).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lowered = word.to_lowercase();
    let mut best: Option<(usize, f64, &'a str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        let distance = osa_distance(&lowered, candidate);
        let similarity = jaro_winkler(&lowered, candidate);
        let close = distance == 0
            || (distance == 1 && lowered.chars().count() >= 2)
            || (distance == 2 && lowered.chars().count() >= 5)
            || (similarity >= 0.85 && lowered.chars().count() >= 3);
        if !close {
            continue;
        }
        let better = match best {
            None => true,
            Some((best_distance, best_similarity, _)) => {
                distance < best_distance || (distance == best_distance && similarity > best_similarity)
            }
        };
        if better {
            best = Some((distance, similarity, candidate));
        }
    }
    best.map(|(_, _, candidate)| candidate)
}

/// "`a`, `b`, `c`"
fn code_list(items: &[&str]) -> String {
    items.iter().map(|item| format!("`{item}`")).collect::<Vec<_>>().join(", ")
}

/// What a node is, for "expected X, found Y".
fn found(node: &Node) -> &'static str {
    match &node.kind {
        NodeKind::Null => "null",
        NodeKind::Seq(_) => "a list",
        NodeKind::Map(_) => "a mapping",
        NodeKind::Scalar(scalar) if scalar.quoted => "a string",
        NodeKind::Scalar(scalar) => match scalar.resolve() {
            ScalarValue::Null => "null",
            ScalarValue::Bool(_) => "a boolean",
            ScalarValue::Int(_) => "an integer",
            ScalarValue::Float(_) => "a float",
            ScalarValue::Str(_) => "a string",
        },
    }
}

/// `null`, `~` or nothing at all.
fn is_null(node: &Node) -> bool {
    match &node.kind {
        NodeKind::Null => true,
        NodeKind::Scalar(scalar) => !scalar.quoted && matches!(scalar.resolve(), ScalarValue::Null),
        _ => false,
    }
}

/// Null, or an empty list or mapping: nothing a not-acted-on note would be about.
fn is_empty(node: &Node) -> bool {
    match &node.kind {
        NodeKind::Seq(items) => items.is_empty(),
        NodeKind::Map(entries) => entries.is_empty(),
        _ => is_null(node),
    }
}

struct Reader<'d> {
    diagnostics: &'d mut Diagnostics,
}

/// How a message names a place in the file, written out only when there is a message
/// (formatting it for every key read would cost more than reading the key).
#[derive(Clone, Copy)]
enum Place<'a> {
    /// `` `key` ``
    Key(&'a str),
    /// ``the value of `key` ``
    ValueOf(&'a str),
    /// ``each item of `key` ``
    EachItemOf(&'a str),
    /// A named item: ``machine `web` ``.
    Item(&'a str, &'a str),
}

impl Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Key(key) => write!(f, "`{key}`"),
            Place::ValueOf(key) => write!(f, "the value of `{key}`"),
            Place::EachItemOf(key) => write!(f, "each item of `{key}`"),
            Place::Item(kind, name) => write!(f, "{kind} `{name}`"),
        }
    }
}

/// Whether `text` is one or more ASCII digits.
fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

impl Reader<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    // ----- diagnostics shared by every place -----

    /// E0003 on `node`: `what` must be `expected`.
    fn wrong_type(&mut self, node: &Node, what: impl Display, expected: &str, help: Option<String>) {
        let found = found(node);
        let mut diagnostic = Diagnostic::new(
            codes::WRONG_TYPE,
            node.span,
            format!("expected {expected}, found {found}"),
            format!("{what} must be {expected}"),
        );
        if let Some(help) = help {
            diagnostic = diagnostic.with_help(help);
        } else if is_null(node) {
            diagnostic = diagnostic.with_help("write a value after the `:`, or remove the key");
        }
        self.push(diagnostic);
    }

    /// W0001 on an unknown key, with the closest known key and the valid keys of the place.
    fn unknown_key(&mut self, key: &Spanned<String>, context: impl Display, known: &[&str]) {
        let mut diagnostic = Diagnostic::new(
            codes::UNKNOWN_KEY,
            key.span,
            format!("unknown key `{}` in {context}", key.value),
            "unknown key, ignored",
        );
        if let Some(suggestion) = closest(&key.value, known.iter().copied()) {
            diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
        } else {
            let elsewhere: Vec<&str> = PLACES
                .iter()
                .filter(|(_, keys)| keys.contains(&key.value.as_str()) && *keys != known)
                .map(|(place, _)| *place)
                .collect();
            if !elsewhere.is_empty() {
                diagnostic = diagnostic.with_help(format!(
                    "`{}` is a key of {}, not of {context}: check its indentation",
                    key.value,
                    elsewhere.join(" or ")
                ));
            }
        }
        diagnostic = diagnostic.with_note(format!("valid keys here: {}", code_list(known)));
        self.push(diagnostic);
    }

    /// N0001 on a key anklumec accepts but does not act on.
    fn not_acted_on(&mut self, key: &Spanned<String>, reader: &str) {
        self.push(
            Diagnostic::new(
                codes::NOT_ACTED_ON,
                key.span,
                format!("`{}` is accepted but not acted on", key.value),
                "not acted on by anklumec",
            )
            .with_note(reader.to_string()),
        );
    }

    /// N0001, unless the value is null or an empty collection (nothing is dropped then).
    fn not_acted_on_unless_empty(&mut self, entry: &Entry, reader: &str) {
        if !is_empty(&entry.value) {
            self.not_acted_on(&entry.key, reader);
        }
    }

    /// E0005 on a keyword that is not one of `allowed`.
    fn invalid_keyword(&mut self, value: &Text, key: &str, allowed: &[&str]) {
        let mut diagnostic = Diagnostic::new(
            codes::INVALID_ENUM,
            value.span,
            format!("invalid value `{}` for `{key}`", value.value),
            "not one of the allowed values",
        )
        .with_note(format!("`{key}` is one of {}", code_list(allowed)));
        // Incus's own words for the instance types are what people often write.
        let synonym = match (key, value.value.as_str()) {
            ("type", "container" | "lxd" | "lxc-container") => Some("lxc"),
            ("type", "virtual-machine" | "kvm" | "qemu") => Some("vm"),
            _ => None,
        };
        if let Some(suggestion) = synonym.or_else(|| closest(&value.value, allowed.iter().copied())) {
            diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
        }
        self.push(diagnostic);
    }

    // ----- shapes -----

    /// The entries of a mapping; null reads as an empty mapping when `null_is_empty`
    /// (anklume reads those sections with `or {}`).
    fn mapping<'n>(&mut self, node: &'n Node, what: impl Display, null_is_empty: bool) -> Option<&'n [Entry]> {
        match &node.kind {
            NodeKind::Map(entries) => Some(entries),
            _ if null_is_empty && is_null(node) => Some(&[]),
            _ => {
                self.wrong_type(node, what, "a mapping", None);
                None
            }
        }
    }

    /// The mapping of one named item (a domain, a machine...): null is an error with a hint.
    fn item_mapping<'n>(&mut self, node: &'n Node, kind: &str, name: &str) -> Option<&'n [Entry]> {
        match &node.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => {
                let help = if is_null(node) {
                    Some(format!("write `{name}: {{}}` for a {kind} with every setting left to its default"))
                } else {
                    None
                };
                self.wrong_type(node, format!("{kind} `{name}`"), "a mapping", help);
                None
            }
        }
    }

    /// The items of a list under `key`; null reads as an empty list.
    fn sequence<'n>(&mut self, node: &'n Node, key: &str) -> Option<&'n [Node]> {
        match &node.kind {
            NodeKind::Seq(items) => Some(items),
            _ if is_null(node) => Some(&[]),
            NodeKind::Scalar(scalar) => {
                let help = format!("write a list: `{key}: [{}]`", scalar.text);
                self.wrong_type(node, format!("`{key}`"), "a list", Some(help));
                None
            }
            _ => {
                self.wrong_type(node, format!("`{key}`"), "a list", None);
                None
            }
        }
    }

    // ----- scalars -----

    /// Any scalar's text but null and booleans.
    fn string(&mut self, node: &Node, what: impl Display) -> Option<Text> {
        match &node.kind {
            NodeKind::Scalar(scalar) => {
                if !scalar.quoted {
                    match scalar.resolve() {
                        ScalarValue::Bool(_) => {
                            let help = format!("quote it if you mean the text: `\"{}\"`", scalar.text);
                            self.wrong_type(node, what, "a string", Some(help));
                            return None;
                        }
                        ScalarValue::Null => {
                            self.wrong_type(node, what, "a string", None);
                            return None;
                        }
                        _ => {}
                    }
                }
                Some(Spanned::new(scalar.text.clone(), node.span))
            }
            _ => {
                self.wrong_type(node, what, "a string", None);
                None
            }
        }
    }

    /// A plain YAML integer.
    fn int(&mut self, node: &Node, what: impl Display) -> Option<Spanned<i64>> {
        let help = match &node.kind {
            NodeKind::Scalar(scalar) if !scalar.quoted => match scalar.resolve() {
                ScalarValue::Int(value) => return Some(Spanned::new(value, node.span)),
                ScalarValue::Float(_) => Some("use a whole number".to_string()),
                // Digits that do not fit in 64 bits are read as text: say what they are.
                ScalarValue::Str(text) if is_digits(text.strip_prefix(['-', '+']).unwrap_or(text)) => {
                    self.push(
                        Diagnostic::new(
                            codes::OUT_OF_RANGE,
                            node.span,
                            format!("{what} is out of range"),
                            format!("beyond ±{}, the 64-bit integers", i64::MAX),
                        )
                        .with_help("Use the value the setting takes; see `anklumec explain E0020` for the ranges."),
                    );
                    return None;
                }
                _ => None,
            },
            NodeKind::Scalar(scalar) if scalar.text.trim().parse::<i64>().is_ok() => {
                Some("remove the quotes: a quoted value is a string".to_string())
            }
            _ => None,
        };
        self.wrong_type(node, what, "an integer", help);
        None
    }

    /// A YAML 1.2 boolean: `true` or `false`.
    fn bool(&mut self, node: &Node, what: impl Display) -> Option<Spanned<bool>> {
        let help = match &node.kind {
            NodeKind::Scalar(scalar) => {
                if !scalar.quoted
                    && let ScalarValue::Bool(value) = scalar.resolve()
                {
                    return Some(Spanned::new(value, node.span));
                }
                let lowered = scalar.text.trim().to_lowercase();
                if scalar.quoted && (lowered == "true" || lowered == "false") {
                    Some("remove the quotes: a quoted value is a string".to_string())
                } else if ["yes", "no", "on", "off", "y", "n"].contains(&lowered.as_str()) {
                    Some(format!("use `true` or `false`: YAML 1.2 reads `{}` as a string", scalar.text))
                } else {
                    Some("use `true` or `false`".to_string())
                }
            }
            _ => None,
        };
        self.wrong_type(node, what, "a boolean", help);
        None
    }

    /// A keyword of `allowed`, turned into its typed value by `parse`.
    fn keyword<T>(
        &mut self,
        node: &Node,
        key: &str,
        allowed: &[&str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<Spanned<T>> {
        let text = self.string(node, Place::Key(key))?;
        match parse(&text.value) {
            Some(value) => Some(Spanned::new(value, text.span)),
            None => {
                self.invalid_keyword(&text, key, allowed);
                None
            }
        }
    }

    /// A keyword of `allowed`, kept as text.
    fn keyword_text(&mut self, node: &Node, key: &str, allowed: &[&str]) -> Option<Text> {
        self.keyword(node, key, allowed, |text| allowed.contains(&text).then(|| text.to_string()))
    }

    /// A list of strings under `key` (null is an empty list).
    fn strings(&mut self, node: &Node, key: &str) -> Vec<Text> {
        let Some(items) = self.sequence(node, key) else { return Vec::new() };
        let what = Place::EachItemOf(key);
        items.iter().filter_map(|item| self.string(item, what)).collect()
    }

    // ----- Incus config maps and devices -----

    /// One Incus config value: a string as written, or an unquoted boolean or number
    /// normalised to the string Incus stores (with an N0002 note).
    fn config_value(&mut self, node: &Node, key: &Text) -> Option<Text> {
        let what = Place::ValueOf(&key.value);
        let scalar = match &node.kind {
            NodeKind::Scalar(scalar) => scalar,
            NodeKind::Null => {
                let help = format!("write `{}: \"\"` for an empty value, or remove the key", key.value);
                self.wrong_type(node, what, "a string", Some(help));
                return None;
            }
            _ => {
                let help = "Incus configuration values are strings".to_string();
                self.wrong_type(node, what, "a string", Some(help));
                return None;
            }
        };
        if scalar.quoted {
            return Some(Spanned::new(scalar.text.clone(), node.span));
        }
        let normalised = match scalar.resolve() {
            ScalarValue::Str(_) => return Some(Spanned::new(scalar.text.clone(), node.span)),
            ScalarValue::Null => {
                let help = format!("write `{}: \"\"` for an empty value, or remove the key", key.value);
                self.wrong_type(node, what, "a string", Some(help));
                return None;
            }
            ScalarValue::Bool(value) => value.to_string(),
            ScalarValue::Int(value) => value.to_string(),
            ScalarValue::Float(_) => scalar.text.clone(),
        };
        self.push(
            Diagnostic::new(
                codes::NORMALISED_VALUE,
                node.span,
                format!("unquoted value of `{}` read as the string \"{normalised}\"", key.value),
                format!("{} normalised to \"{normalised}\"", found(node)),
            )
            .with_help(format!("quote the value to silence this note: `{}: \"{normalised}\"`", key.value)),
        );
        Some(Spanned::new(normalised, node.span))
    }

    /// An Incus `config` mapping (null is empty).
    fn config(&mut self, node: &Node) -> Vec<ConfigEntry> {
        let Some(entries) = self.mapping(node, "`config`", true) else { return Vec::new() };
        entries
            .iter()
            .filter_map(|entry| {
                let value = self.config_value(&entry.value, &entry.key)?;
                Some(ConfigEntry { key: entry.key.clone(), value })
            })
            .collect()
    }

    /// A `devices` mapping (null is empty).
    fn devices(&mut self, node: &Node) -> Vec<Device> {
        let Some(entries) = self.mapping(node, "`devices`", true) else { return Vec::new() };
        entries.iter().filter_map(|entry| self.device(entry)).collect()
    }

    fn device(&mut self, entry: &Entry) -> Option<Device> {
        let name = &entry.key;
        let entries = self.item_mapping(&entry.value, "device", &name.value)?;
        let mut device_type = None;
        let mut has_type = false;
        let mut options = Vec::new();
        for option in entries {
            if option.key.value == "type" {
                has_type = true;
                device_type = self.string(&option.value, "the device `type`");
            } else if let Some(value) = self.config_value(&option.value, &option.key) {
                options.push(ConfigEntry { key: option.key.clone(), value });
            }
        }
        if !has_type {
            self.push(
                Diagnostic::new(
                    codes::DEVICE_TYPE,
                    name.span,
                    format!("device `{}` has no `type`", name.value),
                    "this device needs a `type`",
                )
                .with_help("add `type:` with the kind of device, such as `disk`, `nic`, `gpu` or `proxy`"),
            );
        }
        Some(Device { name: name.clone(), device_type, options })
    }

    // ----- the top level -----

    fn infra(&mut self, root: &Node) -> Infra {
        let mut infra = Infra::default();
        let NodeKind::Map(entries) = &root.kind else {
            self.wrong_type(
                root,
                "the top level of infra.yml",
                "a mapping",
                Some("infra.yml is a mapping with `project_name`, `global` and `domains`".to_string()),
            );
            return infra;
        };
        let mut present = [false; 3];
        for entry in entries {
            if let Some(index) = REQUIRED_TOP_LEVEL_KEYS.iter().position(|key| *key == entry.key.value) {
                present[index] = true;
            }
            match entry.key.value.as_str() {
                "project_name" => infra.project_name = self.string(&entry.value, "`project_name`"),
                "global" => {
                    if let Some(global) = self.global(&entry.value) {
                        infra.global = global;
                    }
                }
                "domains" => infra.domains = self.domains(&entry.value),
                "network_policies" => infra.network_policies = self.network_policies(&entry.value),
                "shared_volumes" => {
                    self.not_acted_on_unless_empty(
                        entry,
                        "shared volumes are created by anklume's generator; the deployment plan does not create them yet",
                    );
                    infra.shared_volumes = self.shared_volumes(&entry.value);
                }
                _ => self.unknown_key(&entry.key, "the top level", TOP_LEVEL_KEYS),
            }
        }
        let at_start = Span::new(root.span.file, root.span.start, root.span.start);
        for (key, present) in REQUIRED_TOP_LEVEL_KEYS.iter().zip(present) {
            if present {
                continue;
            }
            let help = match *key {
                "project_name" => "add `project_name: <name>`, the name of this infrastructure",
                "global" => "add `global:` with the settings shared by every domain (`global: {}` if there are none)",
                _ => "add `domains:`, the mapping of domain names to domains (each domain is an Incus project)",
            };
            self.push(
                Diagnostic::new(
                    codes::MISSING_KEY,
                    at_start,
                    format!("missing required key `{key}`"),
                    format!("`{key}` is required at the top level"),
                )
                .with_help(help),
            );
        }
        infra
    }

    // ----- global -----

    fn global(&mut self, node: &Node) -> Option<Global> {
        let NodeKind::Map(entries) = &node.kind else {
            let help = is_null(node).then(|| "write `global: {}` if there are no global settings".to_string());
            self.wrong_type(node, "`global`", "a mapping", help);
            return None;
        };
        let mut global = Global::default();
        for entry in entries {
            let key = entry.key.value.as_str();
            let what = Place::Key(key);
            let value = &entry.value;
            match key {
                "addressing" => global.addressing = self.addressing(value),
                "base_subnet" => global.base_subnet = self.string(value, what),
                "default_os_image" => global.default_os_image = self.string(value, what),
                "default_connection" => global.default_connection = self.string(value, what),
                "default_user" => global.default_user = self.string(value, what),
                "gpu_policy" => {
                    global.gpu_policy = self.keyword(value, key, GpuPolicy::KEYWORDS, GpuPolicy::from_keyword)
                }
                "incus_instances_lxc_retries" => global.waits.lxc_retries = self.int(value, what),
                "incus_instances_lxc_delay" => global.waits.lxc_delay = self.int(value, what),
                "incus_instances_vm_retries" => global.waits.vm_retries = self.int(value, what),
                "incus_instances_vm_delay" => global.waits.vm_delay = self.int(value, what),
                "incus_instances_vm_agent_retries" => global.waits.vm_agent_retries = self.int(value, what),
                "incus_instances_vm_agent_delay" => global.waits.vm_agent_delay = self.int(value, what),
                "storage_pool" => global.storage_pool = self.string(value, what),
                "nat" => global.nat = self.bool(value, what),
                "incus_remote" => global.incus_remote = self.string(value, what),
                "network_isolation" => global.network_isolation = self.bool(value, what),
                "firewall_mode" => {
                    self.not_acted_on(
                        &entry.key,
                        "anklume's generator reads it to create a firewall VM (`sys-firewall`); anklumec does not",
                    );
                    self.keyword_text(value, key, FIREWALL_MODE_KEYWORDS);
                }
                "ai_access_policy" => {
                    self.not_acted_on(&entry.key, AI_READER);
                    self.keyword_text(value, key, AI_ACCESS_POLICY_KEYWORDS);
                }
                "ai_access_default" => {
                    self.not_acted_on(&entry.key, AI_READER);
                    self.string(value, what);
                }
                "ai_vram_flush" => {
                    self.not_acted_on(&entry.key, AI_READER);
                    self.bool(value, what);
                }
                "resource_policy" => {
                    self.not_acted_on(
                        &entry.key,
                        "anklume's generator reads it to share CPU and memory limits between machines; \
                         anklumec does not: set `limits.cpu` and `limits.memory` in `config`",
                    );
                    self.resource_policy(value);
                }
                "nesting_prefix" => {
                    self.not_acted_on(
                        &entry.key,
                        "anklume reads it to prefix Incus names when it runs nested; anklumec does not",
                    );
                    self.bool(value, what);
                }
                "shared_volumes_base" => {
                    self.not_acted_on(
                        &entry.key,
                        "anklume's generator reads it for the host paths of shared volumes, which the deployment plan does not create yet",
                    );
                    self.string(value, what);
                }
                "persistent_data_base" => {
                    self.not_acted_on(
                        &entry.key,
                        "anklume's generator reads it for the host paths of persistent data, which the deployment plan does not create yet",
                    );
                    self.string(value, what);
                }
                _ if key.starts_with(GLOBAL_NOT_ACTED_ON_PREFIX) => self.not_acted_on(&entry.key, AI_READER),
                _ => self.unknown_key(&entry.key, "`global`", GLOBAL_KEYS),
            }
        }
        Some(global)
    }

    fn addressing(&mut self, node: &Node) -> Option<Addressing> {
        let entries = self.mapping(node, "`addressing`", false)?;
        let mut addressing = Addressing { span: node.span, base_octet: None, zone_base: None, zone_step: None };
        for entry in entries {
            let key = entry.key.value.as_str();
            let what = Place::Key(key);
            match key {
                "base_octet" => addressing.base_octet = self.int(&entry.value, what),
                "zone_base" => addressing.zone_base = self.int(&entry.value, what),
                "zone_step" => {
                    addressing.zone_step = self.int(&entry.value, what);
                    // anklume validates zone_step but its zone offsets are fixed; say so
                    // when a user sets it expecting an effect.
                    if addressing.zone_step.as_ref().is_some_and(|step| step.value != 10) {
                        self.not_acted_on(
                            &entry.key,
                            "zone offsets are fixed by anklume's convention (admin +0, trusted +10, semi-trusted +20, untrusted +40, disposable +50), as in anklume's generator",
                        );
                    }
                }
                _ => self.unknown_key(&entry.key, "`global.addressing`", ADDRESSING_KEYS),
            }
        }
        Some(addressing)
    }

    /// `resource_policy`: `true` or a mapping; type-checked only (anklumec does not act on it).
    fn resource_policy(&mut self, node: &Node) {
        let entries = match &node.kind {
            NodeKind::Map(entries) => entries,
            NodeKind::Scalar(scalar) if !scalar.quoted && matches!(scalar.resolve(), ScalarValue::Bool(true)) => return,
            _ if is_null(node) => return,
            _ => {
                self.wrong_type(node, "`resource_policy`", "`true` or a mapping", None);
                return;
            }
        };
        for entry in entries {
            let key = entry.key.value.as_str();
            match key {
                "mode" => {
                    self.keyword_text(&entry.value, key, RESOURCE_MODE_KEYWORDS);
                }
                "cpu_mode" => {
                    self.keyword_text(&entry.value, key, RESOURCE_CPU_MODE_KEYWORDS);
                }
                "memory_enforce" => {
                    self.keyword_text(&entry.value, key, RESOURCE_MEMORY_ENFORCE_KEYWORDS);
                }
                "overcommit" => {
                    self.bool(&entry.value, "`overcommit`");
                }
                "host_reserve" => {
                    let Some(reserve) = self.mapping(&entry.value, "`host_reserve`", true) else { continue };
                    for item in reserve {
                        let reserve_key = item.key.value.as_str();
                        if HOST_RESERVE_KEYS.contains(&reserve_key) {
                            self.string(&item.value, format!("`{reserve_key}`"));
                        } else {
                            self.unknown_key(&item.key, "`resource_policy.host_reserve`", HOST_RESERVE_KEYS);
                        }
                    }
                }
                _ => self.unknown_key(&entry.key, "`resource_policy`", RESOURCE_POLICY_KEYS),
            }
        }
    }

    // ----- domains -----

    fn domains(&mut self, node: &Node) -> Vec<Domain> {
        let Some(entries) = self.mapping(node, "`domains`", true) else { return Vec::new() };
        let text_size = |entry: &Entry| entry.value.span.end.saturating_sub(entry.value.span.start);
        let groups = match entries.iter().map(text_size).sum::<usize>() / BYTES_PER_GROUP {
            0 | 1 => 1,
            groups => crate::parallel::cores().min(groups),
        };
        self.domains_in_groups(entries, groups)
    }

    /// The domains read in `groups` groups of about equal text, on as many threads; the
    /// domains and the diagnostics in the order one thread gives.
    fn domains_in_groups(&mut self, entries: &[Entry], groups: usize) -> Vec<Domain> {
        if groups <= 1 {
            return entries.iter().filter_map(|entry| self.domain(entry)).collect();
        }
        let text_size = |entry: &Entry| 1 + entry.value.span.end.saturating_sub(entry.value.span.start);
        let runs = crate::parallel::balanced(entries, groups, text_size);
        let read = crate::parallel::map(&runs, |run| {
            let mut diagnostics = Diagnostics::new();
            let domains: Vec<Domain> =
                run.iter().filter_map(|entry| Reader { diagnostics: &mut diagnostics }.domain(entry)).collect();
            (domains, diagnostics)
        });
        let mut domains = Vec::with_capacity(entries.len());
        for (run_domains, diagnostics) in read {
            domains.extend(run_domains);
            self.diagnostics.extend(diagnostics);
        }
        domains
    }

    fn domain(&mut self, entry: &Entry) -> Option<Domain> {
        let name = &entry.key;
        let entries = self.item_mapping(&entry.value, "domain", &name.value)?;
        let context = Place::Item("domain", &name.value);
        let mut domain = Domain {
            name: name.clone(),
            description: None,
            trust_level: None,
            subnet_id: None,
            subnet_id_written: false,
            ephemeral: None,
            enabled: None,
            nat: None,
            profiles: Vec::new(),
            machines: Vec::new(),
        };
        for entry in entries {
            let key = entry.key.value.as_str();
            let what = Place::Key(key);
            let value = &entry.value;
            match key {
                "description" => domain.description = self.string(value, what),
                "trust_level" => {
                    domain.trust_level = self.keyword(value, key, TrustLevel::KEYWORDS, TrustLevel::from_keyword);
                }
                "subnet_id" => {
                    domain.subnet_id = self.int(value, what);
                    domain.subnet_id_written = true;
                }
                "ephemeral" => domain.ephemeral = self.bool(value, what),
                "enabled" => domain.enabled = self.bool(value, what),
                "nat" => domain.nat = self.bool(value, what),
                "profiles" => domain.profiles = self.profiles(value),
                "machines" => domain.machines = self.machines(value),
                "file_portal" => {
                    self.not_acted_on(
                        &entry.key,
                        "the file portal is set up by anklume's file portal tooling, not by the deployment plan",
                    );
                    self.mapping(value, "`file_portal`", true);
                }
                _ => self.unknown_key(&entry.key, context, DOMAIN_KEYS),
            }
        }
        Some(domain)
    }

    fn profiles(&mut self, node: &Node) -> Vec<Profile> {
        let Some(entries) = self.mapping(node, "`profiles`", true) else { return Vec::new() };
        entries.iter().filter_map(|entry| self.profile(entry)).collect()
    }

    fn profile(&mut self, entry: &Entry) -> Option<Profile> {
        let name = &entry.key;
        let entries = self.item_mapping(&entry.value, "profile", &name.value)?;
        let context = Place::Item("profile", &name.value);
        let mut profile = Profile { name: name.clone(), description: None, config: Vec::new(), devices: Vec::new() };
        for entry in entries {
            match entry.key.value.as_str() {
                "description" => profile.description = self.string(&entry.value, "`description`"),
                "config" => profile.config = self.config(&entry.value),
                "devices" => profile.devices = self.devices(&entry.value),
                _ => self.unknown_key(&entry.key, context, PROFILE_KEYS),
            }
        }
        Some(profile)
    }

    // ----- machines -----

    fn machines(&mut self, node: &Node) -> Vec<Machine> {
        let Some(entries) = self.mapping(node, "`machines`", true) else { return Vec::new() };
        entries.iter().filter_map(|entry| self.machine(entry)).collect()
    }

    fn machine(&mut self, entry: &Entry) -> Option<Machine> {
        let name = &entry.key;
        let entries = self.item_mapping(&entry.value, "machine", &name.value)?;
        let context = Place::Item("machine", &name.value);
        let mut machine = Machine {
            name: name.clone(),
            description: None,
            instance_type: None,
            ip: None,
            os_image: None,
            ephemeral: None,
            profiles: None,
            config: Vec::new(),
            devices: Vec::new(),
            roles: Vec::new(),
            gpu: None,
            boot_autostart: None,
            boot_priority: None,
            snapshots_schedule: None,
            snapshots_expiry: None,
            storage_volumes: Vec::new(),
            persistent_data: Vec::new(),
            type_unknown: false,
        };
        for entry in entries {
            let key = entry.key.value.as_str();
            let what = Place::Key(key);
            let value = &entry.value;
            match key {
                "description" => machine.description = self.string(value, what),
                "type" => {
                    machine.instance_type =
                        self.keyword(value, key, InstanceType::KEYWORDS, InstanceType::from_keyword);
                    machine.type_unknown = machine.instance_type.is_none();
                }
                "ip" => machine.ip = self.string(value, what),
                "os_image" => machine.os_image = self.string(value, what),
                "ephemeral" => machine.ephemeral = self.bool(value, what),
                "profiles" => machine.profiles = self.machine_profiles(value),
                "config" => machine.config = self.config(value),
                "devices" => machine.devices = self.devices(value),
                "roles" => machine.roles = self.strings(value, key),
                "gpu" => machine.gpu = self.bool(value, what),
                "boot_autostart" => machine.boot_autostart = self.bool(value, what),
                "boot_priority" => machine.boot_priority = self.int(value, what),
                "snapshots_schedule" => machine.snapshots_schedule = self.string(value, what),
                "snapshots_expiry" => machine.snapshots_expiry = self.string(value, what),
                "storage_volumes" => machine.storage_volumes = self.storage_volumes(value),
                "persistent_data" => {
                    self.not_acted_on_unless_empty(
                        entry,
                        "persistent data is read and checked, but the deployment plan does not create its volumes yet",
                    );
                    machine.persistent_data = self.persistent_data(value);
                }
                "export_apps" => {
                    self.not_acted_on(&entry.key, "exported applications are set up by anklume's desktop integration tooling, not by the deployment plan");
                    self.strings(value, key);
                }
                "services" => {
                    self.not_acted_on(
                        &entry.key,
                        "services are set up by anklume's MCP services tooling, not by the deployment plan",
                    );
                    self.services(value);
                }
                "weight" => {
                    self.not_acted_on(
                        &entry.key,
                        "the weight is used by anklume's `resource_policy` allocation, which anklumec does not do",
                    );
                    self.weight(value);
                }
                _ => self.unknown_key(&entry.key, context, MACHINE_KEYS),
            }
        }
        Some(machine)
    }

    /// A machine's `profiles`: a list of names; null is the same as absent.
    fn machine_profiles(&mut self, node: &Node) -> Option<Spanned<Vec<Name>>> {
        if is_null(node) {
            return None;
        }
        let items = self.sequence(node, "profiles")?;
        let names = items.iter().filter_map(|item| self.string(item, "each item of `profiles`")).collect();
        Some(Spanned::new(names, node.span))
    }

    fn services(&mut self, node: &Node) {
        let Some(items) = self.sequence(node, "services") else { return };
        for item in items {
            if !matches!(item.kind, NodeKind::Map(_)) {
                self.wrong_type(item, "each item of `services`", "a mapping", None);
            }
        }
    }

    fn weight(&mut self, node: &Node) {
        let Some(weight) = self.int(node, "`weight`") else { return };
        if weight.value < crate::rules::WEIGHT_MIN {
            self.push(Diagnostic::new(
                codes::OUT_OF_RANGE,
                weight.span,
                format!("`weight` must be at least {}, found {}", crate::rules::WEIGHT_MIN, weight.value),
                "expected a positive integer",
            ));
        }
    }

    fn storage_volumes(&mut self, node: &Node) -> Vec<StorageVolume> {
        let Some(entries) = self.mapping(node, "`storage_volumes`", true) else { return Vec::new() };
        let mut volumes = Vec::new();
        for entry in entries {
            let name = &entry.key;
            let Some(fields) = self.item_mapping(&entry.value, "storage volume", &name.value) else { continue };
            let context = Place::Item("storage volume", &name.value);
            let mut volume = StorageVolume { name: name.clone(), pool: None, size: None, path: None };
            for field in fields {
                let key = field.key.value.as_str();
                let what = Place::Key(key);
                match key {
                    "pool" => volume.pool = self.string(&field.value, what),
                    "size" => volume.size = self.string(&field.value, what),
                    "path" => volume.path = self.string(&field.value, what),
                    _ => self.unknown_key(&field.key, context, STORAGE_VOLUME_KEYS),
                }
            }
            volumes.push(volume);
        }
        volumes
    }

    fn persistent_data(&mut self, node: &Node) -> Vec<PersistentData> {
        let Some(entries) = self.mapping(node, "`persistent_data`", true) else { return Vec::new() };
        let mut data = Vec::new();
        for entry in entries {
            let name = &entry.key;
            let Some(fields) = self.item_mapping(&entry.value, "persistent data entry", &name.value) else {
                continue;
            };
            let context = Place::Item("persistent data", &name.value);
            let mut item = PersistentData { name: name.clone(), path: None, readonly: None };
            for field in fields {
                match field.key.value.as_str() {
                    "path" => item.path = self.string(&field.value, "`path`"),
                    "readonly" => item.readonly = self.bool(&field.value, "`readonly`"),
                    _ => self.unknown_key(&field.key, context, PERSISTENT_DATA_KEYS),
                }
            }
            data.push(item);
        }
        data
    }

    // ----- network policies and shared volumes -----

    fn network_policies(&mut self, node: &Node) -> Vec<NetworkPolicy> {
        let Some(items) = self.sequence(node, "network_policies") else { return Vec::new() };
        let mut policies = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let context = format!("network policy {}", index + 1);
            let NodeKind::Map(entries) = &item.kind else {
                self.wrong_type(item, "each item of `network_policies`", "a mapping", None);
                continue;
            };
            let mut policy = NetworkPolicy {
                span: item.span,
                description: None,
                from: None,
                to: None,
                ports: None,
                protocol: None,
                bidirectional: None,
            };
            for entry in entries {
                let key = entry.key.value.as_str();
                let what = Place::Key(key);
                let value = &entry.value;
                match key {
                    "description" => policy.description = self.string(value, what),
                    "from" => policy.from = self.string(value, what),
                    "to" => policy.to = self.string(value, what),
                    "ports" => policy.ports = self.ports(value),
                    "protocol" => policy.protocol = self.keyword(value, key, PROTOCOL_KEYWORDS, protocol_from_keyword),
                    "bidirectional" => policy.bidirectional = self.bool(value, what),
                    _ => self.unknown_key(&entry.key, &context, NETWORK_POLICY_KEYS),
                }
            }
            // A policy never opens everything by leaving `ports` out (an invalid value
            // is reported where it is).
            if !entries.iter().any(|entry| entry.key.value == "ports") {
                self.push(
                    Diagnostic::new(
                        codes::MISSING_KEY,
                        Span::new(item.span.file, item.span.start, item.span.start),
                        "network policy has no `ports`",
                        "this policy needs `ports`",
                    )
                    .with_help(
                        "Add `ports: [..]` with the ports it opens (TCP unless `protocol: udp`), or `ports: all`.",
                    ),
                );
            }
            policies.push(policy);
        }
        policies
    }

    /// `ports`: `all` or a list of integers (null is absent).
    fn ports(&mut self, node: &Node) -> Option<Spanned<Ports>> {
        match &node.kind {
            NodeKind::Seq(items) => {
                let ports = items.iter().filter_map(|item| self.int(item, "each item of `ports`")).collect();
                Some(Spanned::new(Ports::List(ports), node.span))
            }
            _ if is_null(node) => None,
            NodeKind::Scalar(scalar) if scalar.quoted || matches!(scalar.resolve(), ScalarValue::Str(_)) => {
                if scalar.text == PORTS_ALL_KEYWORD {
                    return Some(Spanned::new(Ports::All, node.span));
                }
                let text = Spanned::new(scalar.text.clone(), node.span);
                self.push(
                    Diagnostic::new(
                        codes::INVALID_ENUM,
                        node.span,
                        format!("invalid value `{}` for `ports`", text.value),
                        "expected `all` or a list of port numbers",
                    )
                    .with_help(if closest(&text.value, [PORTS_ALL_KEYWORD]).is_some() {
                        "did you mean `all`?".to_string()
                    } else {
                        "write `all`, or a list of port numbers such as `[80, 443]`".to_string()
                    }),
                );
                None
            }
            NodeKind::Scalar(scalar) => {
                let help = matches!(scalar.resolve(), ScalarValue::Int(_))
                    .then(|| format!("write a list: `ports: [{}]`", scalar.text));
                self.wrong_type(node, "`ports`", "`all` or a list of port numbers", help);
                None
            }
            _ => {
                self.wrong_type(node, "`ports`", "`all` or a list of port numbers", None);
                None
            }
        }
    }

    fn shared_volumes(&mut self, node: &Node) -> Vec<SharedVolume> {
        let Some(entries) = self.mapping(node, "`shared_volumes`", true) else { return Vec::new() };
        let mut volumes = Vec::new();
        for entry in entries {
            let name = &entry.key;
            let Some(fields) = self.item_mapping(&entry.value, "shared volume", &name.value) else { continue };
            let context = Place::Item("shared volume", &name.value);
            let mut volume =
                SharedVolume { name: name.clone(), source: None, path: None, shift: None, consumers: Vec::new() };
            for field in fields {
                let key = field.key.value.as_str();
                let what = Place::Key(key);
                match key {
                    "source" => volume.source = self.string(&field.value, what),
                    "path" => volume.path = self.string(&field.value, what),
                    "shift" => volume.shift = self.bool(&field.value, what),
                    "consumers" => {
                        let Some(consumers) = self.mapping(&field.value, "`consumers`", true) else { continue };
                        for consumer in consumers {
                            let access = format!("consumers.{}", consumer.key.value);
                            let Some(mode) = self.keyword_text(&consumer.value, &access, ACCESS_MODE_KEYWORDS) else {
                                continue;
                            };
                            volume.consumers.push((consumer.key.clone(), mode));
                        }
                    }
                    _ => self.unknown_key(&field.key, context, SHARED_VOLUME_KEYS),
                }
            }
            volumes.push(volume);
        }
        volumes
    }
}

const AI_READER: &str =
    "AI access settings are applied by anklume's AI tooling (network policies, VRAM flush), not by the deployment plan";

fn protocol_from_keyword(keyword: &str) -> Option<Protocol> {
    match keyword {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::{Code, Severity};
    use crate::source::FileId;
    use crate::syntax::yaml::{Limits, parse};

    /// Parse and read `text`; the YAML itself must be valid.
    fn read(text: &str) -> (Infra, Vec<Diagnostic>) {
        let mut diagnostics = Diagnostics::new();
        let Some(root) = parse(FileId(0), text, &Limits::default(), &mut diagnostics) else {
            panic!("not valid YAML: {:?}", diagnostics.into_sorted());
        };
        assert!(diagnostics.is_empty(), "YAML diagnostics: {:?}", diagnostics.into_sorted());
        let infra = read_infra(&root, &mut diagnostics);
        (infra, diagnostics.into_sorted())
    }

    fn with_code(diagnostics: &[Diagnostic], code: Code) -> Vec<&Diagnostic> {
        diagnostics.iter().filter(|d| d.code == code).collect()
    }

    /// The only diagnostic of `code`.
    fn single(diagnostics: &[Diagnostic], code: Code) -> &Diagnostic {
        let found = with_code(diagnostics, code);
        assert_eq!(found.len(), 1, "expected one {}, got {diagnostics:#?}", code.id);
        found[0]
    }

    fn problems(diagnostics: &[Diagnostic]) -> Vec<&Diagnostic> {
        diagnostics.iter().filter(|d| d.severity != Severity::Note).collect()
    }

    /// The text a span covers.
    fn spanned(text: &str, span: Span) -> &str {
        &text[span.range()]
    }

    /// A domain by name.
    fn domain<'a>(infra: &'a Infra, name: &str) -> &'a Domain {
        match infra.domains.iter().find(|d| d.name.value == name) {
            Some(domain) => domain,
            None => panic!("no domain `{name}`"),
        }
    }

    fn machine<'a>(infra: &'a Infra, name: &str) -> &'a Machine {
        match infra.domains.iter().flat_map(|d| &d.machines).find(|m| m.name.value == name) {
            Some(machine) => machine,
            None => panic!("no machine `{name}`"),
        }
    }

    fn minimal(body: &str) -> String {
        format!("project_name: demo\nglobal:\n  default_os_image: \"images:debian/13\"\n{body}")
    }

    // ----- representative corpus files -----

    const AI_TOOLS: &str = r#"---
# AI Tools Domain — Full local AI stack (em dashes and accents: é)
project_name: ai-stack

global:
  addressing:
    base_octet: 10
    zone_base: 100
  default_os_image: "images:debian/13"
  default_connection: community.general.incus
  default_user: root

domains:
  anklume:
    trust_level: admin
    description: "Administration domain"
    machines:
      anklume-instance:
        description: "Ansible controller"
        type: lxc
        roles: [base_system]

  ai-tools:
    trust_level: semi-trusted
    description: "AI services domain — LLM, chat, coding, STT"
    file_portal:
      allowed_paths: ["/shared/ai-tools", "/tmp/portal"]
      read_only: false
    profiles:
      nvidia-compute:
        devices:
          gpu:
            type: gpu
            gputype: physical
    machines:
      gpu-server:
        description: "Ollama LLM server + STT"
        type: lxc
        gpu: true
        profiles: [default, nvidia-compute]
        roles: [base_system, ollama_server, stt_server]
      ai-opencode:
        type: lxc
        roles: [base_system, opencode_server]
        export_apps: [opencode]
      ai-openclaw:
        type: lxc
        config:
          security.nesting: "true"
        roles: [base_system, openclaw_server]

network_policies:
  - description: "Admin accesses AI chat UIs"
    from: anklume
    to: ai-tools
    ports: [3000, 3210, 4096]
    protocol: tcp

  - description: "Anonymous domain routes through Tor gateway"
    from: host
    to: gpu-server
    ports: all
    bidirectional: true
"#;

    const FULL: &str = r#"# Every part of the v1 schema.
project_name: full-schema
global:
  addressing:
    base_octet: 10
    zone_base: 100
    zone_step: 10
  default_os_image: "images:debian/13"
  gpu_policy: shared
  shared_volumes_base: /srv/anklume/shares
  persistent_data_base: /srv/anklume/data
  incus_instances_vm_retries: 90
  incus_instances_vm_agent_retries: 40

domains:
  admin-dom:
    trust_level: admin
    ephemeral: false
    machines:
      ctl:
        type: lxc
        boot_autostart: true
        boot_priority: 90
        snapshots_schedule: "0 3 * * *"
        snapshots_expiry: "14d"
  compute:
    trust_level: trusted
    profiles:
      vm-big:
        config:
          limits.cpu: "4"
          limits.memory: "8GiB"
    machines:
      trainer:
        type: lxc
        gpu: true
        config:
          nvidia.runtime: "true"
          limits.cpu: "0-3"
        storage_volumes:
          datasets:
            pool: default
            size: 50GiB
            path: /srv/datasets
        persistent_data:
          models:
            path: /var/lib/models
            readonly: false
      gpu-vm:
        type: vm
        ip: 10.110.0.40
        profiles: [default, vm-big]
        devices:
          gpu:
            type: gpu
            gputype: physical
            pci: "0000:01:00.0"
  archive:
    enabled: false
    machines:
      old-box:
        type: lxc

shared_volumes:
  docs:
    source: /srv/anklume/shares/docs
    path: /shared/docs
    shift: true
    consumers:
      compute: ro
      ctl: rw
"#;

    const LEGACY: &str = r#"# From the seed: a domain-level profile with VM defaults, referenced by a VM.
project_name: seed-profiles
global:
  base_subnet: "10.100"
  default_os_image: "images:debian/13"
  incus_instances_lxc_retries: 30
  incus_instances_vm_agent_delay: 1
domains:
  secure:
    subnet_id: 4
    profiles:
      vm-resources:
        config:
          limits.cpu: "2"
          limits.memory: "2GiB"
    machines:
      secure-vm:
        type: vm
        profiles: [default, vm-resources]
"#;

    #[test]
    fn domains_read_in_groups_are_those_read_on_one_thread() {
        let mut text = String::from("project_name: x\nglobal:\n  base_subnet: \"10.100\"\ndomains:\n");
        for domain in 0..12 {
            text.push_str(&format!("  d{domain}:\n    subnet_id: {domain}\n    tpye: oops\n    machines:\n"));
            for machine in 0..4 {
                text.push_str(&format!("      m{domain}x{machine}:\n        type: lxc\n        gpu: maybe\n"));
            }
        }
        text.push_str("  bad: [1]\n");
        let mut diagnostics = Diagnostics::new();
        let root = crate::syntax::yaml::parse(FileId(0), &text, &Default::default(), &mut diagnostics);
        let Some(entries) = root.as_ref().and_then(|root| root.get("domains")).and_then(|d| d.value.as_map()) else {
            panic!("the test file has domains");
        };
        let read = |groups| {
            let mut diagnostics = Diagnostics::new();
            let domains = Reader { diagnostics: &mut diagnostics }.domains_in_groups(entries, groups);
            (format!("{domains:?}"), diagnostics.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>())
        };
        let one = read(1);
        assert!(one.1.len() >= 25, "the file draws too few diagnostics: {}", one.1.len());
        for groups in [2, 3, 5, 13, 20] {
            assert_eq!(read(groups), one, "{groups} groups");
        }
    }

    #[test]
    fn ai_tools_example_reads_cleanly() {
        let (infra, diagnostics) = read(AI_TOOLS);
        assert!(problems(&diagnostics).is_empty(), "{diagnostics:#?}");
        assert_eq!(infra.project_name.as_ref().map(|p| p.as_str()), Some("ai-stack"));
        let addressing = infra.global.addressing.as_ref().map(|a| (a.base_octet.clone(), a.zone_base.clone()));
        assert!(matches!(addressing, Some((Some(b), Some(z))) if b.value == 10 && z.value == 100));
        assert_eq!(infra.domains.len(), 2);
        let ai = domain(&infra, "ai-tools");
        assert_eq!(ai.trust(), TrustLevel::SemiTrusted);
        assert_eq!(ai.profiles[0].devices[0].device_type.as_ref().map(|t| t.as_str()), Some("gpu"));
        assert_eq!(ai.profiles[0].devices[0].option("gputype").map(|t| t.as_str()), Some("physical"));
        let server = machine(&infra, "gpu-server");
        assert_eq!(server.gpu.as_ref().map(|g| g.value), Some(true));
        assert_eq!(server.roles.len(), 3);
        let profiles = server.profiles.as_ref().map(|p| p.value.iter().map(|n| n.as_str()).collect::<Vec<_>>());
        assert_eq!(profiles, Some(vec!["default", "nvidia-compute"]));
        assert_eq!(machine(&infra, "ai-openclaw").config_value("security.nesting").map(|v| v.as_str()), Some("true"));
        assert_eq!(infra.network_policies.len(), 2);
        assert!(
            matches!(&infra.network_policies[0].ports, Some(p) if matches!(&p.value, Ports::List(l) if l.len() == 3))
        );
        assert_eq!(infra.network_policies[0].protocol.as_ref().map(|p| p.value), Some(Protocol::Tcp));
        assert!(matches!(&infra.network_policies[1].ports, Some(p) if matches!(p.value, Ports::All)));
        assert_eq!(infra.network_policies[1].bidirectional.as_ref().map(|b| b.value), Some(true));
        // One note each: file_portal, export_apps (network policies are acted on).
        let notes: Vec<&str> =
            with_code(&diagnostics, codes::NOT_ACTED_ON).iter().map(|d| spanned(AI_TOOLS, d.primary_span())).collect();
        assert_eq!(notes, vec!["file_portal", "export_apps"]);
    }

    #[test]
    fn full_schema_reads_cleanly() {
        let (infra, diagnostics) = read(FULL);
        assert!(problems(&diagnostics).is_empty(), "{diagnostics:#?}");
        assert_eq!(infra.global.gpu_policy.as_ref().map(|g| g.value), Some(GpuPolicy::Shared));
        assert_eq!(infra.global.waits.vm_retries.as_ref().map(|r| r.value), Some(90));
        assert_eq!(infra.global.waits.vm_agent_retries.as_ref().map(|r| r.value), Some(40));
        let ctl = machine(&infra, "ctl");
        assert_eq!(ctl.boot_priority.as_ref().map(|p| p.value), Some(90));
        assert_eq!(ctl.snapshots_expiry.as_ref().map(|e| e.as_str()), Some("14d"));
        let trainer = machine(&infra, "trainer");
        assert_eq!(trainer.config.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["nvidia.runtime", "limits.cpu"]);
        assert_eq!(trainer.storage_volumes[0].size.as_ref().map(|s| s.as_str()), Some("50GiB"));
        assert_eq!(trainer.persistent_data[0].readonly.as_ref().map(|r| r.value), Some(false));
        let gpu_vm = machine(&infra, "gpu-vm");
        assert_eq!(gpu_vm.kind(), InstanceType::VirtualMachine);
        assert_eq!(gpu_vm.ip.as_ref().map(|ip| ip.as_str()), Some("10.110.0.40"));
        let device = &gpu_vm.devices[0];
        assert_eq!(device.options.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["gputype", "pci"]);
        assert!(!domain(&infra, "archive").is_enabled());
        let docs = &infra.shared_volumes[0];
        assert_eq!(docs.shift.as_ref().map(|s| s.value), Some(true));
        let consumers: Vec<(&str, &str)> = docs.consumers.iter().map(|(c, m)| (c.as_str(), m.as_str())).collect();
        assert_eq!(consumers, [("compute", "ro"), ("ctl", "rw")]);
        let notes: Vec<&str> =
            with_code(&diagnostics, codes::NOT_ACTED_ON).iter().map(|d| spanned(FULL, d.primary_span())).collect();
        assert_eq!(notes, ["shared_volumes_base", "persistent_data_base", "persistent_data", "shared_volumes"]);
    }

    #[test]
    fn legacy_addressing_reads_cleanly() {
        let (infra, diagnostics) = read(LEGACY);
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        assert_eq!(infra.global.base_subnet.as_ref().map(|b| b.as_str()), Some("10.100"));
        assert!(infra.global.addressing.is_none());
        assert_eq!(infra.global.waits.lxc_retries.as_ref().map(|r| r.value), Some(30));
        assert_eq!(infra.global.waits.vm_agent_delay.as_ref().map(|r| r.value), Some(1));
        let secure = domain(&infra, "secure");
        assert_eq!(secure.subnet_id.as_ref().map(|s| s.value), Some(4));
        assert!(secure.trust_level.is_none());
        assert_eq!(secure.profile("vm-resources").map(|p| p.config.len()), Some(2));
    }

    #[test]
    fn machine_profiles_keep_list_and_name_spans() {
        let (infra, _) = read(LEGACY);
        let Some(profiles) = &machine(&infra, "secure-vm").profiles else { panic!("no profiles") };
        assert_eq!(spanned(LEGACY, profiles.span), "[default, vm-resources]");
        assert_eq!(spanned(LEGACY, profiles.value[1].span), "vm-resources");
        let secure = domain(&infra, "secure");
        assert_eq!(spanned(LEGACY, secure.name.span), "secure");
    }

    // ----- unknown keys -----

    #[test]
    fn unknown_key_suggests_the_closest() {
        let text = minimal("domains:\n  work:\n    machines:\n      web:\n        tpye: vm\n");
        let (infra, diagnostics) = read(&text);
        let warning = single(&diagnostics, codes::UNKNOWN_KEY);
        assert_eq!(warning.severity, Severity::Warning);
        assert_eq!(spanned(&text, warning.primary_span()), "tpye");
        assert_eq!(warning.message, "unknown key `tpye` in machine `web`");
        assert_eq!(warning.help.as_deref(), Some("Did you mean `type`?"));
        assert!(warning.notes[0].contains("`os_image`"));
        assert!(machine(&infra, "web").instance_type.is_none());
        assert_eq!(problems(&diagnostics).len(), 1);
    }

    #[test]
    fn unknown_key_of_another_place_says_where_it_belongs() {
        let text = minimal("domains:\n  work:\n    machines:\n      web:\n        trust_level: admin\n");
        let (_, diagnostics) = read(&text);
        let warning = single(&diagnostics, codes::UNKNOWN_KEY);
        assert_eq!(
            warning.help.as_deref(),
            Some("`trust_level` is a key of a domain, not of machine `web`: check its indentation.")
        );
    }

    #[test]
    fn unknown_keys_everywhere() {
        let text = r#"project_name: x
projet: y
global:
  default_os_imag: "a"
  addressing: {base_octet: 10, zone_bas: 100}
  resource_policy: {mode: equal, foo: 1}
domains:
  d:
    descripton: a
    profiles:
      p: {confg: {}}
    machines:
      m:
        storage_volumes: {v: {sise: 1GiB}}
        persistent_data: {p: {path: /a, read_only: true}}
network_policies:
  - {from: a, to: b, port: [1]}
shared_volumes:
  s: {consumer: {}}
"#;
        let (_, diagnostics) = read(text);
        let keys: Vec<&str> =
            with_code(&diagnostics, codes::UNKNOWN_KEY).iter().map(|d| spanned(text, d.primary_span())).collect();
        assert_eq!(
            keys,
            [
                "projet",
                "default_os_imag",
                "zone_bas",
                "foo",
                "descripton",
                "confg",
                "sise",
                "read_only",
                "port",
                "consumer"
            ]
        );
        let helps: Vec<Option<&str>> =
            with_code(&diagnostics, codes::UNKNOWN_KEY).iter().map(|d| d.help.as_deref()).collect();
        assert_eq!(helps[0], Some("Did you mean `project_name`?"));
        assert_eq!(helps[1], Some("Did you mean `default_os_image`?"));
        assert_eq!(helps[7], Some("Did you mean `readonly`?"));
        assert_eq!(helps[8], Some("Did you mean `ports`?"));
        assert!(with_code(&diagnostics, codes::WRONG_TYPE).is_empty(), "{diagnostics:#?}");
    }

    #[test]
    fn ai_keys_are_accepted_with_a_note() {
        let text = "project_name: x\nglobal:\n  ai_access_policy: exclusive\n  ai_access_default: pro\n  ai_vram_flush: true\n  ai_future_thing: [1, 2]\n  firewall_mode: vm\n  nesting_prefix: false\n  resource_policy: true\ndomains: {}\n";
        let (_, diagnostics) = read(text);
        assert!(problems(&diagnostics).is_empty(), "{diagnostics:#?}");
        assert_eq!(with_code(&diagnostics, codes::NOT_ACTED_ON).len(), 7);
    }

    #[test]
    fn not_acted_on_keys_are_type_checked() {
        let text = "project_name: x\nglobal:\n  firewall_mode: hots\n  ai_vram_flush: yes\n  resource_policy:\n    mode: proportionnal\n    overcommit: 1\n    host_reserve: {cpu: 20%, memory: 4GiB}\ndomains:\n  d:\n    machines:\n      m:\n        weight: 0\n        services: [name]\n        export_apps: app\n";
        let (_, diagnostics) = read(text);
        let enums = with_code(&diagnostics, codes::INVALID_ENUM);
        assert_eq!(enums.len(), 2);
        assert_eq!(enums[0].help.as_deref(), Some("Did you mean `host`?"));
        assert_eq!(enums[1].help.as_deref(), Some("Did you mean `proportional`?"));
        let types: Vec<&str> =
            with_code(&diagnostics, codes::WRONG_TYPE).iter().map(|d| spanned(text, d.primary_span())).collect();
        assert_eq!(types, ["yes", "1", "name", "app"]);
        assert_eq!(spanned(text, single(&diagnostics, codes::OUT_OF_RANGE).primary_span()), "0");
    }

    // ----- types -----

    /// Digits past 64 bits are out of range, not "a string".
    #[test]
    fn integers_past_64_bits_are_out_of_range() {
        for number in ["99999999999999999999999", "-99999999999999999999999", "+9223372036854775808"] {
            let text = minimal(&format!("domains:\n  work:\n    subnet_id: {number}\n    machines: {{web: {{}}}}\n"));
            let (infra, diagnostics) = read(&text);
            let diagnostic = single(&diagnostics, codes::OUT_OF_RANGE);
            assert_eq!(spanned(&text, diagnostic.primary_span()), number);
            assert_eq!(diagnostic.message, "`subnet_id` is out of range");
            assert!(with_code(&diagnostics, codes::WRONG_TYPE).is_empty(), "{number}");
            assert!(domain(&infra, "work").subnet_id.is_none());
        }
    }

    #[test]
    fn wrong_types_are_reported_and_skipped() {
        let text = minimal(
            "domains:\n  work:\n    subnet_id: \"3\"\n    ephemeral: yes\n    description: true\n    machines:\n      web:\n        boot_priority: 1.5\n        roles: base_system\n        gpu: \"true\"\n        ip: 10.1.2.3\n",
        );
        let (infra, diagnostics) = read(&text);
        let errors = with_code(&diagnostics, codes::WRONG_TYPE);
        let found: Vec<(&str, &str, Option<&str>)> =
            errors.iter().map(|d| (spanned(&text, d.primary_span()), d.message.as_str(), d.help.as_deref())).collect();
        assert_eq!(
            found,
            [
                (
                    "\"3\"",
                    "expected an integer, found a string",
                    Some("Remove the quotes: a quoted value is a string.")
                ),
                (
                    "yes",
                    "expected a boolean, found a string",
                    Some("Use `true` or `false`: YAML 1.2 reads `yes` as a string.")
                ),
                ("true", "expected a string, found a boolean", Some("Quote it if you mean the text: `\"true\"`.")),
                ("1.5", "expected an integer, found a float", Some("Use a whole number.")),
                ("base_system", "expected a list, found a string", Some("Write a list: `roles: [base_system]`.")),
                (
                    "\"true\"",
                    "expected a boolean, found a string",
                    Some("Remove the quotes: a quoted value is a string.")
                ),
            ]
        );
        let work = domain(&infra, "work");
        assert!(work.subnet_id.is_none() && work.ephemeral.is_none() && work.description.is_none());
        assert_eq!(machine(&infra, "web").ip.as_ref().map(|ip| ip.as_str()), Some("10.1.2.3"));
    }

    #[test]
    fn free_text_accepts_numbers() {
        let text = minimal("domains:\n  work:\n    description: 12\n    machines:\n      web:\n        os_image: 13\n");
        let (infra, diagnostics) = read(&text);
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        assert_eq!(domain(&infra, "work").description.as_ref().map(|d| d.as_str()), Some("12"));
        assert_eq!(machine(&infra, "web").os_image.as_ref().map(|d| d.as_str()), Some("13"));
    }

    #[test]
    fn collections_of_the_wrong_shape() {
        let text = minimal("domains:\n  work:\n    machines:\n      - web\n  other: [1]\n");
        let (infra, diagnostics) = read(&text);
        let errors = with_code(&diagnostics, codes::WRONG_TYPE);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].message, "expected a mapping, found a list");
        assert_eq!(errors[0].labels[0].message, "`machines` must be a mapping");
        assert_eq!(errors[1].labels[0].message, "domain `other` must be a mapping");
        assert_eq!(infra.domains.len(), 1);
        assert!(domain(&infra, "work").machines.is_empty());
    }

    #[test]
    fn root_must_be_a_mapping() {
        let (infra, diagnostics) = read("- a\n- b\n");
        let error = single(&diagnostics, codes::WRONG_TYPE);
        assert_eq!(error.message, "expected a mapping, found a list");
        assert_eq!(error.primary_span(), Span::new(FileId(0), 0, 7));
        assert!(infra.domains.is_empty());
        assert_eq!(diagnostics.len(), 1);
    }

    // ----- enumerations -----

    #[test]
    fn enumerations_suggest_the_closest_value() {
        let text = minimal(
            "domains:\n  work:\n    trust_level: semitrusted\n    machines:\n      web:\n        type: LXC\n      db:\n        type: container\nnetwork_policies:\n  - {from: a, to: b, protocol: tpc}\n",
        );
        let (infra, diagnostics) = read(&text);
        let errors = with_code(&diagnostics, codes::INVALID_ENUM);
        let found: Vec<(&str, Option<&str>)> =
            errors.iter().map(|d| (spanned(&text, d.primary_span()), d.help.as_deref())).collect();
        assert_eq!(
            found,
            [
                ("semitrusted", Some("Did you mean `semi-trusted`?")),
                ("LXC", Some("Did you mean `lxc`?")),
                ("container", Some("Did you mean `lxc`?")),
                ("tpc", Some("Did you mean `tcp`?")),
            ]
        );
        assert_eq!(errors[0].message, "invalid value `semitrusted` for `trust_level`");
        assert!(errors[0].notes[0].contains("`semi-trusted`"));
        assert!(domain(&infra, "work").trust_level.is_none());
    }

    #[test]
    fn ports_are_all_or_a_list() {
        let text = minimal(
            "domains: {}\nnetwork_policies:\n  - {from: a, to: b, ports: 80}\n  - {from: a, to: b, ports: any}\n  - {from: a, to: b, ports: [22, \"80\"]}\n  - {from: a, to: b, ports: \"all\"}\n",
        );
        let (infra, diagnostics) = read(&text);
        assert_eq!(
            single(&diagnostics, codes::INVALID_ENUM).help.as_deref(),
            Some("Write `all`, or a list of port numbers such as `[80, 443]`.")
        );
        let types = with_code(&diagnostics, codes::WRONG_TYPE);
        assert_eq!(types.len(), 2);
        assert_eq!(types[0].help.as_deref(), Some("Write a list: `ports: [80]`."));
        assert_eq!(spanned(&text, types[1].primary_span()), "\"80\"");
        assert_eq!(infra.network_policies.len(), 4);
        assert!(
            matches!(&infra.network_policies[2].ports, Some(p) if matches!(&p.value, Ports::List(l) if l.len() == 1))
        );
        assert!(matches!(&infra.network_policies[3].ports, Some(p) if matches!(p.value, Ports::All)));
    }

    // ----- Incus config and devices -----

    #[test]
    fn config_values_are_normalised_to_strings() {
        let text = minimal(
            "domains:\n  work:\n    machines:\n      web:\n        config:\n          security.nesting: true\n          limits.cpu: 2\n          limits.cpu.allowance: 0.5\n          limits.memory: 2GiB\n          boot.autostart: \"false\"\n          user.hex: 0x10\n",
        );
        let (infra, diagnostics) = read(&text);
        assert!(problems(&diagnostics).is_empty(), "{diagnostics:#?}");
        let web = machine(&infra, "web");
        let values: Vec<(&str, &str)> = web.config.iter().map(|c| (c.key.as_str(), c.value.as_str())).collect();
        assert_eq!(
            values,
            [
                ("security.nesting", "true"),
                ("limits.cpu", "2"),
                ("limits.cpu.allowance", "0.5"),
                ("limits.memory", "2GiB"),
                ("boot.autostart", "false"),
                ("user.hex", "16"),
            ]
        );
        let notes = with_code(&diagnostics, codes::NORMALISED_VALUE);
        let spans: Vec<&str> = notes.iter().map(|d| spanned(&text, d.primary_span())).collect();
        assert_eq!(spans, ["true", "2", "0.5", "0x10"]);
        assert_eq!(notes[0].severity, Severity::Note);
        assert_eq!(
            notes[0].help.as_deref(),
            Some("Quote the value to silence this note: `security.nesting: \"true\"`.")
        );
    }

    #[test]
    fn config_values_must_be_scalars() {
        let text = minimal(
            "domains:\n  work:\n    profiles:\n      p:\n        config:\n          a:\n          b: ~\n          c: [1]\n          d: {x: 1}\n          e: ok\n",
        );
        let (infra, diagnostics) = read(&text);
        assert_eq!(with_code(&diagnostics, codes::WRONG_TYPE).len(), 4);
        let config = &domain(&infra, "work").profiles[0].config;
        assert_eq!(config.len(), 1);
        assert_eq!(config[0].value.as_str(), "ok");
    }

    #[test]
    fn devices_take_their_type_out() {
        let text = minimal(
            "domains:\n  work:\n    machines:\n      web:\n        devices:\n          http:\n            listen: tcp:0.0.0.0:8080\n            type: proxy\n            connect: tcp:127.0.0.1:80\n          data:\n            source: /srv\n            readonly: true\n",
        );
        let (infra, diagnostics) = read(&text);
        let error = single(&diagnostics, codes::DEVICE_TYPE);
        assert_eq!(spanned(&text, error.primary_span()), "data");
        assert_eq!(error.message, "device `data` has no `type`");
        assert_eq!(single(&diagnostics, codes::NORMALISED_VALUE).severity, Severity::Note);
        let devices = &machine(&infra, "web").devices;
        assert_eq!(devices[0].device_type.as_ref().map(|t| t.as_str()), Some("proxy"));
        let options: Vec<&str> = devices[0].options.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(options, ["listen", "connect"]);
        assert!(devices[1].device_type.is_none());
        assert_eq!(devices[1].option("readonly").map(|v| v.as_str()), Some("true"));
    }

    // ----- required keys and null sections -----

    #[test]
    fn missing_required_keys() {
        let text = "# a comment\nproject_name: x\n";
        let (infra, diagnostics) = read(text);
        let errors = with_code(&diagnostics, codes::MISSING_KEY);
        let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages, ["missing required key `domains`", "missing required key `global`"]);
        let at_root = Span::new(FileId(0), 12, 12);
        assert!(errors.iter().all(|d| d.primary_span() == at_root && d.help.is_some()));
        assert_eq!(infra.project_name.as_ref().map(|p| p.as_str()), Some("x"));
    }

    #[test]
    fn null_sections_read_as_empty() {
        let text = "project_name: x\nglobal: {}\ndomains:\n  a:\n    machines: ~\n    profiles:\n  b:\n    machines:\n      m:\n        config:\n        devices: ~\n        roles:\n        profiles:\n        storage_volumes: ~\n  c: {}\nnetwork_policies:\nshared_volumes: ~\n";
        let (infra, diagnostics) = read(text);
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        assert_eq!(infra.domains.len(), 3);
        let m = machine(&infra, "m");
        assert!(m.config.is_empty() && m.devices.is_empty() && m.roles.is_empty() && m.profiles.is_none());

        let (infra, diagnostics) = read("project_name: x\nglobal: {}\ndomains: ~\n");
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        assert!(infra.domains.is_empty());
    }

    #[test]
    fn null_global_and_null_items_are_errors() {
        let text = "project_name: ~\nglobal:\ndomains:\n  a:\n    machines:\n      m:\n";
        let (_, diagnostics) = read(text);
        let errors = with_code(&diagnostics, codes::WRONG_TYPE);
        let labels: Vec<&str> = errors.iter().map(|d| d.labels[0].message.as_str()).collect();
        assert_eq!(
            labels,
            ["`project_name` must be a string", "`global` must be a mapping", "machine `m` must be a mapping"]
        );
        assert_eq!(errors[1].help.as_deref(), Some("Write `global: {}` if there are no global settings."));
        assert_eq!(
            errors[2].help.as_deref(),
            Some("Write `m: {}` for a machine with every setting left to its default.")
        );
        assert!(with_code(&diagnostics, codes::MISSING_KEY).is_empty());
    }

    // ----- robustness -----

    #[test]
    fn any_shape_anywhere_never_panics() {
        let values = ["~", "1", "-3", "1.5", "true", "\"s\"", "[]", "[1, {a: b}]", "{}", "{a: [1]}", "", "all"];
        let places = [
            "project_name: {v}\nglobal: {}\ndomains: {}\n",
            "project_name: x\nglobal: {v}\ndomains: {v}\nnetwork_policies: {v}\nshared_volumes: {v}\n",
            "project_name: x\nglobal:\n  addressing: {v}\n  resource_policy: {v}\n  gpu_policy: {v}\n  ai_x: {v}\ndomains: {}\n",
            "project_name: x\nglobal: {}\ndomains:\n  d: {v}\n",
            "project_name: x\nglobal: {}\ndomains:\n  d:\n    profiles: {v}\n    machines:\n      m: {v}\n",
            "project_name: x\nglobal: {}\ndomains:\n  d:\n    profiles:\n      p: {config: {v}, devices: {v}}\n",
            "project_name: x\nglobal: {}\ndomains:\n  d:\n    machines:\n      m: {profiles: {v}, devices: {g: {v}}, storage_volumes: {v}, persistent_data: {p: {v}}, services: {v}, weight: {v}}\n",
            "project_name: x\nglobal: {}\ndomains: {}\nnetwork_policies:\n  - {v}\n  - {ports: {v}, protocol: {v}}\nshared_volumes: {s: {consumers: {v}}}\n",
        ];
        for place in places {
            for value in values {
                let text = place.replace("{v}", value);
                let mut diagnostics = Diagnostics::new();
                if let Some(root) = parse(FileId(0), &text, &Limits::default(), &mut diagnostics) {
                    let _ = read_infra(&root, &mut diagnostics);
                }
            }
        }
    }

    #[test]
    fn closest_candidates() {
        assert_eq!(closest("tpye", MACHINE_KEYS.iter().copied()), Some("type"));
        assert_eq!(closest("semitrusted", TrustLevel::KEYWORDS.iter().copied()), Some("semi-trusted"));
        assert_eq!(closest("Shared", GpuPolicy::KEYWORDS.iter().copied()), Some("shared"));
        assert_eq!(closest("storage", GLOBAL_KEYS.iter().copied()), Some("storage_pool"));
        assert_eq!(closest("xyz", MACHINE_KEYS.iter().copied()), None);
        assert_eq!(closest("container", InstanceType::KEYWORDS.iter().copied()), None);
    }

    /// Every file of the shared corpus reads without errors or warnings (skipped when the
    /// corpus is not there; it will move into tests/fixtures).
    #[test]
    fn corpus_reads_cleanly() {
        let root = std::path::Path::new("/work/shared/corpus");
        if !root.is_dir() {
            return;
        }
        let mut files = Vec::new();
        let mut directories = vec![root.to_path_buf()];
        while let Some(directory) = directories.pop() {
            let Ok(entries) = std::fs::read_dir(&directory) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    directories.push(path);
                } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                    files.push(path);
                }
            }
        }
        assert!(!files.is_empty());
        for path in files {
            let Ok(text) = std::fs::read_to_string(&path) else { panic!("cannot read {}", path.display()) };
            let mut diagnostics = Diagnostics::new();
            let Some(root) = parse(FileId(0), &text, &Limits::default(), &mut diagnostics) else {
                panic!("{}: not valid YAML: {:?}", path.display(), diagnostics.into_sorted());
            };
            let infra = read_infra(&root, &mut diagnostics);
            assert!(!infra.domains.is_empty(), "{}: no domains", path.display());
            let bad: Vec<Diagnostic> =
                diagnostics.into_sorted().into_iter().filter(|d| d.severity != Severity::Note).collect();
            assert!(bad.is_empty(), "{}: {bad:#?}", path.display());
        }
    }
}
