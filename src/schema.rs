//! The JSON Schema (draft 2020-12) of infra.yml, for editors: `anklumec schema`.
//!
//! Nothing here is a second copy of the language. The schema is generated from the tables
//! the compiler itself uses:
//!
//! - the keys of every place are the reader's (`syntax::read::*_KEYS`), the required ones
//!   `REQUIRED_TOP_LEVEL_KEYS`, the enumerations its keyword lists (`TrustLevel::KEYWORDS`,
//!   `InstanceType::KEYWORDS`, `GpuPolicy::KEYWORDS`, `PROTOCOL_KEYWORDS`, ...), the notes
//!   on keys anklumec does not act on its `*_NOT_ACTED_ON_*` lists;
//! - the `config` maps are Incus's own table of instance options
//!   (`incus::config_keys::instance_keys`), with each option's description, value type,
//!   scope (container or VM) and the value formats the server checks that a schema can
//!   say; device options come from `incus::config_keys::device_options` where Incus
//!   documents them.
//!
//! What the tables do not hold is in [`KEYS`], one row per (place, key): the key's
//! description and the shape of its value (which reader function reads it). `tests/schema.rs`
//! keeps the two honest: every key of every reader list has exactly one row, the schema's
//! properties at each place are the reader's list, and for every key and a range of
//! values the schema rejects what the reader rejects and accepts what the compiler accepts.
//! The name rules and ranges of the checker (E0007, E0020, E0025, E0035) are tested against
//! the compiler the same way, since the checker keeps them private.
//!
//! Unknown keys are only warnings for anklumec (W0001), but the schema closes every place
//! (`additionalProperties: false`) so that an editor flags the typo where it is made.

use crate::incus::config_keys::{self, Applies, DeviceOption, Format, KeyInfo, Settable, ValueType};
use crate::syntax::ast::{GpuPolicy, InstanceType, TrustLevel};
use crate::syntax::read;
use serde_json::{Map, Value, json};

/// The dialect of the schema.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The ranges, name rules and device types the reader and the checker enforce (E0007,
/// E0020, E0025, E0035), from the one place that states them.
pub use crate::rules::{
    BOOT_PRIORITY, DELAY, DEVICE_NAME_PATTERN, DEVICE_TYPES, INSTANCE_NAME_PATTERN, MAX_NAME, PORT, RETRIES,
    VOLUME_NAME_PATTERN, WEIGHT_MIN,
};

/// Network policy keys the checker requires (E0004).
pub const NETWORK_POLICY_REQUIRED_KEYS: &[&str] = &["from", "to", "ports"];

/// A place of infra.yml with a fixed set of keys: one reader list each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    TopLevel,
    Global,
    Addressing,
    ResourcePolicy,
    HostReserve,
    Domain,
    Profile,
    Machine,
    StorageVolume,
    PersistentData,
    NetworkPolicy,
    SharedVolume,
}

impl Place {
    pub const ALL: &'static [Place] = &[
        Place::TopLevel,
        Place::Global,
        Place::Addressing,
        Place::ResourcePolicy,
        Place::HostReserve,
        Place::Domain,
        Place::Profile,
        Place::Machine,
        Place::StorageVolume,
        Place::PersistentData,
        Place::NetworkPolicy,
        Place::SharedVolume,
    ];

    /// The reader's keys of this place.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Place::TopLevel => read::TOP_LEVEL_KEYS,
            Place::Global => read::GLOBAL_KEYS,
            Place::Addressing => read::ADDRESSING_KEYS,
            Place::ResourcePolicy => read::RESOURCE_POLICY_KEYS,
            Place::HostReserve => read::HOST_RESERVE_KEYS,
            Place::Domain => read::DOMAIN_KEYS,
            Place::Profile => read::PROFILE_KEYS,
            Place::Machine => read::MACHINE_KEYS,
            Place::StorageVolume => read::STORAGE_VOLUME_KEYS,
            Place::PersistentData => read::PERSISTENT_DATA_KEYS,
            Place::NetworkPolicy => read::NETWORK_POLICY_KEYS,
            Place::SharedVolume => read::SHARED_VOLUME_KEYS,
        }
    }

    /// Keys of this place that anklumec accepts and type-checks without acting on them.
    pub fn not_acted_on(self) -> &'static [&'static str] {
        match self {
            Place::TopLevel => read::TOP_LEVEL_NOT_ACTED_ON_KEYS,
            Place::Global => read::GLOBAL_NOT_ACTED_ON_KEYS,
            Place::Domain => read::DOMAIN_NOT_ACTED_ON_KEYS,
            Place::Machine => read::MACHINE_NOT_ACTED_ON_KEYS,
            _ => &[],
        }
    }

    /// Keys that must be present.
    pub fn required(self) -> &'static [&'static str] {
        match self {
            Place::TopLevel => read::REQUIRED_TOP_LEVEL_KEYS,
            Place::NetworkPolicy => NETWORK_POLICY_REQUIRED_KEYS,
            _ => &[],
        }
    }

    /// The name of the place's schema under `$defs` (`None`: the schema's root).
    pub fn definition(self) -> Option<&'static str> {
        match self {
            Place::TopLevel => None,
            Place::Global => Some("global"),
            Place::Addressing => Some("addressing"),
            Place::ResourcePolicy => Some("resourcePolicy"),
            Place::HostReserve => Some("hostReserve"),
            Place::Domain => Some("domain"),
            Place::Profile => Some("profile"),
            Place::Machine => Some("machine"),
            Place::StorageVolume => Some("storageVolume"),
            Place::PersistentData => Some("persistentData"),
            Place::NetworkPolicy => Some("networkPolicy"),
            Place::SharedVolume => Some("sharedVolume"),
        }
    }

    /// The JSON pointer of the place's schema in [`schema`]'s output.
    pub fn pointer(self) -> String {
        self.definition().map_or_else(String::new, |name| format!("/$defs/{name}"))
    }

    fn reference(self) -> Value {
        json!({ "$ref": format!("#{}", self.pointer()) })
    }

    fn description(self) -> &'static str {
        match self {
            Place::TopLevel => {
                "anklume's infra.yml: domains of LXC containers and KVM virtual machines, compiled by anklumec into an Incus deployment."
            }
            Place::Global => "Settings shared by every domain.",
            Place::Addressing => {
                "anklume's zone addressing (ADR-038): a domain's subnet is `<base_octet>.<zone_base + zone offset>.<seq>.0/24`."
            }
            Place::ResourcePolicy => "anklume's sharing of CPU and memory between machines.",
            Place::HostReserve => "What `resource_policy` keeps for the host.",
            Place::Domain => {
                "A domain: an Incus project `<domain>` with its own bridge `net-<domain>`, profiles and machines."
            }
            Place::Profile => "An Incus profile of the domain's project: instance options and devices.",
            Place::Machine => "A machine: an Incus instance, a container (`lxc`) or a virtual machine (`vm`).",
            Place::StorageVolume => "An Incus custom storage volume of the machine.",
            Place::PersistentData => "A persistent data directory of the machine (anklume).",
            Place::NetworkPolicy => "Traffic allowed from one domain, machine or the host to another.",
            Place::SharedVolume => "A host directory shared with domains and machines.",
        }
    }
}

/// Which names a mapping's keys are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    /// Domains, machines, profiles: [`INSTANCE_NAME_PATTERN`].
    Instance,
    /// Devices, persistent data, shared volumes: [`DEVICE_NAME_PATTERN`].
    Device,
    /// Storage volumes: [`VOLUME_NAME_PATTERN`].
    Volume,
}

/// Whose `config` a map is: `image.*` is refused in profiles, and a machine's own config
/// holds only the keys of its instance type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Machine,
    Profile,
}

/// The shape of a key's value: which reader function reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `string()`: any scalar but null and booleans (a number is read as its text).
    Text,
    /// `int()`: a plain integer, with the bounds the reader or checker enforces.
    Integer(Option<i64>, Option<i64>),
    /// `bool()`: `true` or `false`.
    Boolean,
    /// `keyword()`: one of the words.
    Keyword(&'static [&'static str]),
    /// `strings()`: a list of texts; null is an empty list.
    TextList,
    /// A mapping of a place; `true`: null reads as an empty mapping.
    Section(Place, bool),
    /// `true`, null, or a mapping of a place (`resource_policy`).
    TrueOrSection(Place),
    /// A mapping of names to mappings of a place; null is empty.
    Named(Names, Place),
    /// A list of mappings of a place; null is empty.
    List(Place),
    /// Any mapping; null is empty (`file_portal`).
    AnyMapping,
    /// A list of mappings of any keys; null is empty (`services`).
    MappingList,
    /// `all` or a list of ports; null is absent.
    Ports,
    /// Names to an access mode (`consumers`); null is empty.
    AccessModes,
    /// An Incus `config` map; null is empty.
    Config(Owner),
    /// A `devices` map; null is empty.
    Devices,
}

/// One key of one place: its value's shape and its description.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub place: Place,
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
}

const fn key(place: Place, name: &'static str, kind: Kind, description: &'static str) -> Key {
    Key { place, name, kind, description }
}

const RETRIES_KIND: Kind = Kind::Integer(Some(*RETRIES.start()), Some(*RETRIES.end()));
const DELAY_KIND: Kind = Kind::Integer(Some(*DELAY.start()), Some(*DELAY.end()));
const ANY_INTEGER: Kind = Kind::Integer(None, None);

/// Every key of every place: (place, key) → shape and description.
pub const KEYS: &[Key] = &[
    // ----- the top level -----
    key(Place::TopLevel, "project_name", Kind::Text, "The name of this infrastructure."),
    key(
        Place::TopLevel,
        "global",
        Kind::Section(Place::Global, false),
        "Settings shared by every domain (`global: {}` if there are none).",
    ),
    key(
        Place::TopLevel,
        "domains",
        Kind::Named(Names::Instance, Place::Domain),
        "The domains, by name. Each domain is an Incus project with its own bridge `net-<domain>`, profiles and machines.",
    ),
    key(
        Place::TopLevel,
        "network_policies",
        Kind::List(Place::NetworkPolicy),
        "Traffic allowed between domains and machines. Every other flow between two domains is blocked by the Incus network ACL of each domain's bridge.",
    ),
    key(
        Place::TopLevel,
        "shared_volumes",
        Kind::Named(Names::Device, Place::SharedVolume),
        "Host directories shared with domains and machines, by volume name.",
    ),
    // ----- global -----
    key(
        Place::Global,
        "addressing",
        Kind::Section(Place::Addressing, false),
        "anklume's zone addressing: each domain gets `<base_octet>.<zone_base + zone offset>.<seq>.0/24`, the zone offset given by its `trust_level`. Use either this or `base_subnet`.",
    ),
    key(
        Place::Global,
        "base_subnet",
        Kind::Text,
        "Legacy addressing: each domain gets `<base_subnet>.<subnet_id>.0/24` (for example `10.100`); every domain then needs a `subnet_id`.",
    ),
    key(
        Place::Global,
        "default_os_image",
        Kind::Text,
        "The image of machines without `os_image`: `[<remote>:]<alias-or-fingerprint>`, such as `images:debian/13`.",
    ),
    key(
        Place::Global,
        "default_connection",
        Kind::Text,
        "The Ansible connection of the machines (`--emit inventory`), such as `community.general.incus`.",
    ),
    key(
        Place::Global,
        "default_user",
        Kind::Text,
        "The user Ansible connects as (`ansible_user` in the inventory written by `--emit inventory`).",
    ),
    key(
        Place::Global,
        "gpu_policy",
        Kind::Keyword(GpuPolicy::KEYWORDS),
        "`exclusive` (the default): at most one machine has a GPU; `shared`: several machines may share it.",
    ),
    key(
        Place::Global,
        "incus_instances_lxc_retries",
        RETRIES_KIND,
        "How many times deploy.sh polls a started container for `RUNNING` before it gives up.",
    ),
    key(Place::Global, "incus_instances_lxc_delay", DELAY_KIND, "Seconds between two polls of a starting container."),
    key(
        Place::Global,
        "incus_instances_vm_retries",
        RETRIES_KIND,
        "How many times deploy.sh polls a started VM for `RUNNING` before it gives up.",
    ),
    key(Place::Global, "incus_instances_vm_delay", DELAY_KIND, "Seconds between two polls of a starting VM."),
    key(
        Place::Global,
        "incus_instances_vm_agent_retries",
        RETRIES_KIND,
        "How many times deploy.sh polls a running VM's incus-agent (`incus exec <vm> -- true`) before it gives up.",
    ),
    key(
        Place::Global,
        "incus_instances_vm_agent_delay",
        DELAY_KIND,
        "Seconds between two polls of a VM's incus-agent.",
    ),
    key(
        Place::Global,
        "storage_pool",
        Kind::Text,
        "anklumec extension: the storage pool of root disks and volumes (default `default`).",
    ),
    key(
        Place::Global,
        "nat",
        Kind::Boolean,
        "anklumec extension: outbound NAT on the domains' bridges (default `true`, as in anklume); a domain's `nat` overrides it.",
    ),
    key(
        Place::Global,
        "incus_remote",
        Kind::Text,
        "anklumec extension: the incus remote this infrastructure lives on (`incus remote list`). deploy.sh and destroy.sh refuse to run unless it is the incus client's default remote; the inventory sets `ansible_incus_remote` to it; the runner (`apply`, `destroy`, `diff`) only speaks to the local server, so it accepts only `local`.",
    ),
    key(
        Place::Global,
        "network_isolation",
        Kind::Boolean,
        "anklumec extension: `false` deploys the domains without the network ACLs that isolate them from each other (default `true`); for servers that cannot enforce them (no `network_acl` API extension, no nftables firewall). Draws warning W0013.",
    ),
    key(
        Place::Global,
        "firewall_mode",
        Kind::Keyword(read::FIREWALL_MODE_KEYWORDS),
        "Where anklume's firewall runs: `host` (nftables on the host) or `vm` (a firewall VM, `sys-firewall`).",
    ),
    key(
        Place::Global,
        "ai_access_policy",
        Kind::Keyword(read::AI_ACCESS_POLICY_KEYWORDS),
        "anklume's AI access policy: `exclusive` (one domain at a time) or `open`.",
    ),
    key(Place::Global, "ai_access_default", Kind::Text, "The domain that has AI access by default."),
    key(
        Place::Global,
        "ai_vram_flush",
        Kind::Boolean,
        "Whether anklume flushes GPU memory when AI access changes hands.",
    ),
    key(
        Place::Global,
        "resource_policy",
        Kind::TrueOrSection(Place::ResourcePolicy),
        "anklume's automatic sharing of CPU and memory between machines: `true` for its defaults, or a mapping. Set `limits.cpu` and `limits.memory` in `config` for anklumec.",
    ),
    key(Place::Global, "nesting_prefix", Kind::Boolean, "Whether anklume prefixes Incus names when it runs nested."),
    key(Place::Global, "shared_volumes_base", Kind::Text, "The host directory of shared volumes."),
    key(Place::Global, "persistent_data_base", Kind::Text, "The host directory of the machines' persistent data."),
    // ----- global.addressing -----
    key(Place::Addressing, "base_octet", ANY_INTEGER, "The first octet of every subnet (10)."),
    key(
        Place::Addressing,
        "zone_base",
        ANY_INTEGER,
        "The second octet of the `admin` zone; the other zones add their offset: trusted +10, semi-trusted +20, untrusted +40, disposable +50.",
    ),
    key(
        Place::Addressing,
        "zone_step",
        ANY_INTEGER,
        "Validated by anklume, but the zone offsets are fixed: a value other than 10 has no effect.",
    ),
    // ----- global.resource_policy -----
    key(
        Place::ResourcePolicy,
        "mode",
        Kind::Keyword(read::RESOURCE_MODE_KEYWORDS),
        "How the resources are shared: `proportional` (by each machine's `weight`) or `equal`.",
    ),
    key(
        Place::ResourcePolicy,
        "cpu_mode",
        Kind::Keyword(read::RESOURCE_CPU_MODE_KEYWORDS),
        "`allowance` (a share of CPU time, `limits.cpu.allowance`) or `count` (a number of CPUs, `limits.cpu`).",
    ),
    key(
        Place::ResourcePolicy,
        "memory_enforce",
        Kind::Keyword(read::RESOURCE_MEMORY_ENFORCE_KEYWORDS),
        "`soft` or `hard` memory limits (`limits.memory.enforce`).",
    ),
    key(Place::ResourcePolicy, "overcommit", Kind::Boolean, "Whether the machines may get more than the host has."),
    key(
        Place::ResourcePolicy,
        "host_reserve",
        Kind::Section(Place::HostReserve, true),
        "What to keep for the host: `cpu` and `memory`.",
    ),
    // ----- global.resource_policy.host_reserve -----
    key(Place::HostReserve, "cpu", Kind::Text, "CPU kept for the host, such as `20%` or `2`."),
    key(Place::HostReserve, "memory", Kind::Text, "Memory kept for the host, such as `20%` or `4GiB`."),
    // ----- a domain -----
    key(Place::Domain, "description", Kind::Text, "What the domain is for."),
    key(
        Place::Domain,
        "trust_level",
        Kind::Keyword(TrustLevel::KEYWORDS),
        "The domain's trust level, which is also its addressing zone (default `semi-trusted`).",
    ),
    key(
        Place::Domain,
        "subnet_id",
        ANY_INTEGER,
        "The third octet of the domain's subnet; otherwise the domain's rank, in alphabetical order, in its zone. Required with `global.base_subnet`.",
    ),
    key(
        Place::Domain,
        "ephemeral",
        Kind::Boolean,
        "The default `ephemeral` of the domain's machines (default `false`: instances are protected from deletion).",
    ),
    key(
        Place::Domain,
        "enabled",
        Kind::Boolean,
        "`false` leaves the domain out of the deployment; it is still checked and still takes part in addressing.",
    ),
    key(
        Place::Domain,
        "nat",
        Kind::Boolean,
        "anklumec extension: outbound NAT on this domain's bridge; overrides `global.nat`.",
    ),
    key(
        Place::Domain,
        "profiles",
        Kind::Named(Names::Instance, Place::Profile),
        "Incus profiles of the domain's project, by name; machines list the ones they use in `profiles`. A profile named `default` adds to the project's default profile.",
    ),
    key(
        Place::Domain,
        "machines",
        Kind::Named(Names::Instance, Place::Machine),
        "The domain's machines (Incus instances), by name; machine names are unique across all domains.",
    ),
    key(Place::Domain, "file_portal", Kind::AnyMapping, "anklume's file portal settings."),
    // ----- a profile -----
    key(Place::Profile, "description", Kind::Text, "What the profile is for."),
    key(
        Place::Profile,
        "config",
        Kind::Config(Owner::Profile),
        "Incus instance options the profile sets. Values are strings; unquoted booleans and numbers are read as their text.",
    ),
    key(Place::Profile, "devices", Kind::Devices, "Incus devices the profile adds, by device name."),
    // ----- a machine -----
    key(Place::Machine, "description", Kind::Text, "What the machine is for (the instance's description)."),
    key(
        Place::Machine,
        "type",
        Kind::Keyword(InstanceType::KEYWORDS),
        "`lxc`: a container (the default); `vm`: a virtual machine.",
    ),
    key(
        Place::Machine,
        "ip",
        Kind::Text,
        "A static IPv4 address in the domain's subnet, `.1` to `.99`; machines without one get the first free address in declaration order.",
    ),
    key(
        Place::Machine,
        "os_image",
        Kind::Text,
        "The image: `[<remote>:]<alias-or-fingerprint>`, such as `images:debian/13` (default `global.default_os_image`).",
    ),
    key(
        Place::Machine,
        "ephemeral",
        Kind::Boolean,
        "`false` (the default, else the domain's `ephemeral`) protects the instance from deletion: `security.protection.delete` is its opposite.",
    ),
    key(
        Place::Machine,
        "profiles",
        Kind::TextList,
        "The profiles the instance uses, in order (default `[default]`, the domain's default profile with the root disk and `eth0`).",
    ),
    key(
        Place::Machine,
        "config",
        Kind::Config(Owner::Machine),
        "Incus instance options of this machine, for its instance type. Values are strings; unquoted booleans and numbers are read as their text.",
    ),
    key(Place::Machine, "devices", Kind::Devices, "Incus devices of this machine, by device name."),
    key(
        Place::Machine,
        "roles",
        Kind::TextList,
        "Ansible roles applied to the machine, in order (`--emit inventory` writes them to site.yml).",
    ),
    key(
        Place::Machine,
        "gpu",
        Kind::Boolean,
        "Whether the machine uses the host's GPU (counted by `global.gpu_policy`; the `gpu` device itself is declared in `devices` or a profile).",
    ),
    key(
        Place::Machine,
        "boot_autostart",
        Kind::Boolean,
        "Whether the instance starts when the Incus daemon starts (`boot.autostart`).",
    ),
    key(
        Place::Machine,
        "boot_priority",
        Kind::Integer(Some(*BOOT_PRIORITY.start()), Some(*BOOT_PRIORITY.end())),
        "Start order, from 0 to 100: instances with a higher priority start first (`boot.autostart.priority`).",
    ),
    key(
        Place::Machine,
        "snapshots_schedule",
        Kind::Text,
        "Automatic snapshots: a 5-field cron expression such as `0 3 * * *`, or an alias such as `@daily` (`snapshots.schedule`).",
    ),
    key(
        Place::Machine,
        "snapshots_expiry",
        Kind::Text,
        "How long automatic snapshots are kept, such as `14d`, `24H` or `2w` (`snapshots.expiry`).",
    ),
    key(
        Place::Machine,
        "storage_volumes",
        Kind::Named(Names::Volume, Place::StorageVolume),
        "Incus custom volumes of the machine, by volume name; a volume with a `path` is attached as a disk device of the same name.",
    ),
    key(
        Place::Machine,
        "persistent_data",
        Kind::Named(Names::Device, Place::PersistentData),
        "anklume's persistent data directories of the machine, by name.",
    ),
    key(Place::Machine, "export_apps", Kind::TextList, "Applications anklume exports to the host's desktop."),
    key(Place::Machine, "services", Kind::MappingList, "anklume's MCP services of the machine."),
    key(
        Place::Machine,
        "weight",
        Kind::Integer(Some(WEIGHT_MIN), None),
        "The machine's share under `global.resource_policy` (at least 1).",
    ),
    // ----- a storage volume -----
    key(Place::StorageVolume, "pool", Kind::Text, "The storage pool (default `global.storage_pool`)."),
    key(Place::StorageVolume, "size", Kind::Text, "The volume's size, such as `50GiB`."),
    key(Place::StorageVolume, "path", Kind::Text, "Where the volume is mounted in the machine (none: not attached)."),
    // ----- a persistent data entry -----
    key(Place::PersistentData, "path", Kind::Text, "Where the data is mounted in the machine."),
    key(Place::PersistentData, "readonly", Kind::Boolean, "Whether the data is mounted read-only."),
    // ----- a network policy -----
    key(Place::NetworkPolicy, "description", Kind::Text, "What the traffic is for."),
    key(Place::NetworkPolicy, "from", Kind::Text, "Where the traffic comes from: a domain, a machine, or `host`."),
    key(Place::NetworkPolicy, "to", Kind::Text, "Where the traffic goes: a domain, a machine, or `host`."),
    key(Place::NetworkPolicy, "ports", Kind::Ports, "`all`, or a list of port numbers from 1 to 65535."),
    key(Place::NetworkPolicy, "protocol", Kind::Keyword(read::PROTOCOL_KEYWORDS), "`tcp` or `udp`."),
    key(Place::NetworkPolicy, "bidirectional", Kind::Boolean, "Whether the traffic is allowed both ways."),
    // ----- a shared volume -----
    key(Place::SharedVolume, "source", Kind::Text, "The host directory (default under `global.shared_volumes_base`)."),
    key(Place::SharedVolume, "path", Kind::Text, "Where the consumers mount it."),
    key(Place::SharedVolume, "shift", Kind::Boolean, "Whether user and group ids are shifted (an idmapped mount)."),
    key(
        Place::SharedVolume,
        "consumers",
        Kind::AccessModes,
        "The domains and machines that mount it, each with `ro` (read-only) or `rw` (read-write).",
    ),
];

/// The row of `name` at `place`.
pub fn key_of(place: Place, name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.place == place && key.name == name)
}

/// What the schema says of any other `global` key starting with
/// [`read::GLOBAL_NOT_ACTED_ON_PREFIX`].
const AI_PREFIX_DESCRIPTION: &str = "An AI setting of anklume's AI tooling: any value.";

/// Appended to the description of keys anklumec does not act on.
const NOT_ACTED_ON: &str = "Accepted and type-checked, but not acted on by anklumec (note N0001).";

/// The schema of infra.yml.
pub fn schema() -> Value {
    let mut root = place_schema(Place::TopLevel);
    let mut definitions = Map::new();
    for place in Place::ALL {
        if let Some(name) = place.definition() {
            definitions.insert(name.to_string(), Value::Object(place_schema(*place)));
        }
    }
    definitions.insert("machineConfig".to_string(), config_schema(Owner::Machine));
    definitions.insert("profileConfig".to_string(), config_schema(Owner::Profile));
    definitions.insert("devices".to_string(), devices_schema());
    definitions.insert("device".to_string(), device_schema());
    root.insert("$schema".to_string(), json!(DIALECT));
    root.insert("title".to_string(), json!("anklume infra.yml"));
    root.insert(
        "$comment".to_string(),
        json!(format!(
            "Generated by `anklumec schema` (anklumec {}, Incus {} instance options); do not edit.",
            env!("CARGO_PKG_VERSION"),
            config_keys::INCUS_VERSION
        )),
    );
    root.insert("$defs".to_string(), Value::Object(definitions));
    Value::Object(root)
}

/// [`schema`] as pretty-printed JSON, with a final newline.
pub fn to_json_string() -> String {
    let mut text = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// The JSON strings `text` and `markdown` as a description pair.
fn describe(schema: &mut Map<String, Value>, text: &str, markdown: &str) {
    schema.insert("description".to_string(), json!(text));
    schema.insert("markdownDescription".to_string(), json!(markdown));
}

fn place_schema(place: Place) -> Map<String, Value> {
    let mut properties = Map::new();
    for name in place.keys() {
        let mut property = match key_of(place, name) {
            Some(key) => kind_schema(key.kind),
            None => Map::new(),
        };
        let mut description = key_of(place, name).map_or_else(String::new, |key| key.description.to_string());
        if place.not_acted_on().contains(name) {
            description = format!("{description} {NOT_ACTED_ON}").trim_start().to_string();
        }
        describe(&mut property, &description, &description);
        properties.insert(name.to_string(), Value::Object(property));
    }
    let mut schema = Map::new();
    schema.insert("type".to_string(), json!("object"));
    describe(&mut schema, place.description(), place.description());
    schema.insert("properties".to_string(), Value::Object(properties));
    if place == Place::Global {
        let pattern = format!("^{}", regex_escape(read::GLOBAL_NOT_ACTED_ON_PREFIX));
        let description = format!("{AI_PREFIX_DESCRIPTION} {NOT_ACTED_ON}");
        schema.insert(
            "patternProperties".to_string(),
            json!({ pattern: { "description": description, "markdownDescription": description } }),
        );
    }
    if !place.required().is_empty() {
        schema.insert("required".to_string(), json!(place.required()));
    }
    schema.insert("additionalProperties".to_string(), json!(false));
    if place == Place::Machine {
        schema.insert("allOf".to_string(), json!([machine_config_scope()]));
    }
    schema
}

/// Any scalar but null and booleans: the reader's `string()`.
fn text() -> Value {
    json!({ "type": ["string", "number"] })
}

/// A non-null scalar: an Incus value, written as a string or as an unquoted boolean or
/// number that the reader turns into its text.
fn incus_scalar() -> Value {
    json!({ "type": ["string", "number", "boolean"] })
}

/// `validate.IsBool` (any case; empty unsets the key), or an unquoted boolean, 0 or 1.
fn incus_bool() -> Value {
    json!({ "anyOf": [
        { "type": "boolean" },
        { "type": "string", "enum": ["true", "false"] },
        { "type": "string", "pattern": "^(|[01]|[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[Yy][Ee][Ss]|[Nn][Oo]|[Oo][Nn]|[Oo][Ff][Ff])$" },
        { "type": "integer", "enum": [0, 1] },
    ] })
}

fn names_schema(names: Names) -> Value {
    let (pattern, message) = match names {
        Names::Instance => {
            (INSTANCE_NAME_PATTERN, "Use lowercase letters, digits and `-` (not at either end), at most 63 characters.")
        }
        Names::Device => (DEVICE_NAME_PATTERN, "Use 1-63 letters, digits and `-_./:`, not starting with `.`."),
        Names::Volume => (VOLUME_NAME_PATTERN, "Use 1-63 letters, digits and `-_.:`, not starting with `.`."),
    };
    let mut schema =
        json!({ "type": "string", "pattern": pattern, "maxLength": MAX_NAME, "patternErrorMessage": message });
    if names == Names::Instance {
        schema["not"] = json!({ "pattern": "^[0-9]+$" });
    }
    schema
}

fn kind_schema(kind: Kind) -> Map<String, Value> {
    let value = match kind {
        Kind::Text => text(),
        Kind::Integer(minimum, maximum) => {
            let mut schema = json!({ "type": "integer" });
            if let Some(minimum) = minimum {
                schema["minimum"] = json!(minimum);
            }
            if let Some(maximum) = maximum {
                schema["maximum"] = json!(maximum);
            }
            schema
        }
        Kind::Boolean => json!({ "type": "boolean" }),
        Kind::Keyword(words) => json!({ "type": "string", "enum": words }),
        Kind::TextList => json!({ "type": ["array", "null"], "items": text() }),
        Kind::Section(place, nullable) => {
            if nullable {
                json!({ "anyOf": [{ "type": "null" }, place.reference()] })
            } else {
                place.reference()
            }
        }
        Kind::TrueOrSection(place) => json!({ "anyOf": [{ "const": true }, { "type": "null" }, place.reference()] }),
        Kind::Named(names, place) => json!({
            "type": ["object", "null"],
            "propertyNames": names_schema(names),
            "additionalProperties": place.reference(),
        }),
        Kind::List(place) => json!({ "type": ["array", "null"], "items": place.reference() }),
        Kind::AnyMapping => json!({ "type": ["object", "null"] }),
        Kind::MappingList => json!({ "type": ["array", "null"], "items": { "type": "object" } }),
        // Not an `anyOf`, so that an editor points at the port out of range: `pattern`
        // applies to strings only, `items` to lists only.
        Kind::Ports => json!({
            "type": ["string", "array", "null"],
            "pattern": format!("^{}$", regex_escape(read::PORTS_ALL_KEYWORD)),
            "examples": [read::PORTS_ALL_KEYWORD, [80, 443]],
            "items": { "type": "integer", "minimum": PORT.start(), "maximum": PORT.end() },
        }),
        Kind::AccessModes => json!({
            "type": ["object", "null"],
            "additionalProperties": { "type": "string", "enum": read::ACCESS_MODE_KEYWORDS },
        }),
        Kind::Config(Owner::Machine) => json!({ "$ref": "#/$defs/machineConfig" }),
        Kind::Config(Owner::Profile) => json!({ "$ref": "#/$defs/profileConfig" }),
        Kind::Devices => json!({ "$ref": "#/$defs/devices" }),
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

// ----- Incus instance options -----

/// `text` with Incus's documentation roles (`{ref}`, `{config:option}`) made plain
/// Markdown code spans.
fn plain_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let role_end =
            after.find("}`").filter(|&end| after[..end].bytes().all(|b| b.is_ascii_lowercase() || b == b':'));
        let Some(role_end) = role_end.filter(|&end| end > 0) else {
            out.push_str(&rest[..=start]);
            rest = after;
            continue;
        };
        out.push_str(&rest[..start]);
        let role = &after[..role_end];
        let code = &after[role_end + 1..];
        // {config:option}`instance-security:security.secureboot` names the key after the colon.
        if role == "config:option"
            && let Some(end) = code[1..].find('`')
        {
            let target = &code[1..=end];
            out.push('`');
            out.push_str(target.rsplit(':').next().unwrap_or(target));
            out.push('`');
            rest = &code[end + 2..];
        } else {
            rest = code;
        }
    }
    out.push_str(rest);
    out
}

fn applies_text(applies: Applies) -> &'static str {
    match applies {
        Applies::Both => "containers and virtual machines",
        Applies::Container => "containers only",
        Applies::VirtualMachine => "virtual machines only",
    }
}

fn instance_option_schema(info: &KeyInfo) -> Value {
    let mut schema = match format_schema(info.format) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let short = plain_markdown(info.short_description.trim_end_matches('.'));
    let mut text = short.clone();
    if info.applies != Applies::Both {
        text.push_str(&format!(" ({})", applies_text(info.applies)));
    }
    let mut markdown = format!("**{short}**");
    let long = plain_markdown(info.long_description.trim());
    if !long.is_empty() {
        markdown.push_str(&format!("\n\n{long}"));
    }
    let mut facts = vec![format!("Type: `{}`", info.value_type.keyword())];
    if let Some(default) = info.default.as_deref().filter(|d| !d.is_empty()) {
        facts.push(format!("Default: {}", plain_markdown(default)));
    }
    facts.push(format!("Applies to: {}", applies_text(info.applies)));
    if let Some(live) = info.live_update {
        facts.push(format!("Live update: {}", if live { "yes" } else { "no" }));
    }
    if info.settable == Settable::InstanceOnly {
        facts.push("Not in profiles".to_string());
    }
    markdown.push_str(&format!(
        "\n\n{}\n\nIncus {} instance option `{}`.",
        facts.iter().map(|fact| format!("- {fact}")).collect::<Vec<_>>().join("\n"),
        config_keys::INCUS_VERSION,
        info.name
    ));
    describe(&mut schema, &text, &markdown);
    Value::Object(schema)
}

/// The values a schema can tell of a format; the others take any scalar (the checker
/// tells the rest, E0033).
fn format_schema(format: Format) -> Value {
    match format {
        Format::Bool => incus_bool(),
        Format::Int64 => json!({ "anyOf": [
            { "type": "integer" },
            { "type": "string", "pattern": "^([+-]?[0-9]+)?$" },
        ] }),
        Format::Uint32 => json!({ "anyOf": [
            { "type": "integer", "minimum": 0, "maximum": u32::MAX },
            { "type": "string", "pattern": "^[0-9]{0,10}$" },
        ] }),
        Format::Priority => json!({ "anyOf": [
            { "type": "integer", "minimum": 0, "maximum": 10 },
            { "type": "string", "pattern": "^(\\+?0*([0-9]|10)|-0+)?$" },
        ] }),
        Format::OneOf(choices) => {
            let mut values: Vec<&str> = choices.to_vec();
            values.push("");
            json!({ "type": "string", "enum": values })
        }
        _ => incus_scalar(),
    }
}

/// The regular expression of a key pattern of Incus's table: `user.*` (the rest may be
/// empty, as Incus's prefix test has it, unless the key says otherwise), `<name>` one
/// segment. Whitespace and `=` never belong to a key (E0031).
fn key_pattern(info: &KeyInfo) -> String {
    let star = match info.name.find('*') {
        Some(at) if !info.matches(&info.name[..at]) => "[^\\s=]+",
        _ => "[^\\s=]*",
    };
    let segments: Vec<String> = info
        .name
        .split('.')
        .map(|segment| match segment {
            "*" => star.to_string(),
            _ if segment.starts_with('<') && segment.ends_with('>') => "[^.\\s=]+".to_string(),
            _ => regex_escape(segment),
        })
        .collect();
    format!("^{}$", segments.join("\\."))
}

fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The options a `config` of `owner` may hold: every settable key of Incus's table.
fn settable_keys(owner: Owner) -> impl Iterator<Item = &'static KeyInfo> {
    config_keys::instance_keys().iter().filter(move |info| match info.settable {
        Settable::Anywhere => true,
        Settable::InstanceOnly => owner == Owner::Machine,
        Settable::IncusState => false,
    })
}

fn config_schema(owner: Owner) -> Value {
    let mut properties = Map::new();
    let mut patterns = Map::new();
    for info in settable_keys(owner) {
        if info.is_pattern {
            patterns.insert(key_pattern(info), instance_option_schema(info));
        } else {
            properties.insert(info.name.clone(), instance_option_schema(info));
        }
    }
    let whose = match owner {
        Owner::Machine => "this machine",
        Owner::Profile => "this profile",
    };
    let description = format!(
        "Incus {} instance options of {whose}. Free-form keys go under `user.*` or `environment.*`.",
        config_keys::INCUS_VERSION
    );
    let mut schema = Map::new();
    schema.insert("type".to_string(), json!(["object", "null"]));
    describe(&mut schema, &description, &description);
    schema.insert("properties".to_string(), Value::Object(properties));
    schema.insert("patternProperties".to_string(), Value::Object(patterns));
    schema.insert("additionalProperties".to_string(), json!(false));
    Value::Object(schema)
}

/// The keys of one instance type: a VM's own `config` may not hold container-only keys,
/// nor a container's VM-only ones (E0032). Machines without `type` are containers.
fn machine_config_scope() -> Value {
    let only = |applies: Applies| -> Value {
        let keys: Vec<&KeyInfo> = settable_keys(Owner::Machine).filter(|info| info.applies == applies).collect();
        let mut any_of: Vec<Value> = Vec::new();
        let exact: Vec<&str> = keys.iter().filter(|info| !info.is_pattern).map(|info| info.name.as_str()).collect();
        if !exact.is_empty() {
            any_of.push(json!({ "enum": exact }));
        }
        for info in keys.iter().filter(|info| info.is_pattern) {
            any_of.push(json!({ "pattern": key_pattern(info) }));
        }
        let message = format!("This key is for {}.", applies_text(applies));
        json!({ "properties": { "config": { "propertyNames": { "not": { "anyOf": any_of }, "errorMessage": message } } } })
    };
    json!({
        "if": { "properties": { "type": { "const": InstanceType::VirtualMachine.keyword() } }, "required": ["type"] },
        "then": only(Applies::Container),
        "else": only(Applies::VirtualMachine),
    })
}

// ----- devices -----

fn devices_schema() -> Value {
    let description = "Incus devices, by device name: each has a `type` and that type's options.";
    json!({
        "type": ["object", "null"],
        "description": description,
        "markdownDescription": description,
        "propertyNames": names_schema(Names::Device),
        "additionalProperties": { "$ref": "#/$defs/device" },
    })
}

fn device_option_schema(option: &DeviceOption) -> Value {
    let mut schema = match option.value_type {
        ValueType::Bool => incus_bool(),
        _ => incus_scalar(),
    };
    let mut text = option.short_description.trim_end_matches('.').to_string();
    let mut markdown = format!("**{}**\n\n- Type: `{}`", plain_markdown(&text), option.value_type.keyword());
    if let Some(default) = option.default.as_deref().filter(|d| !d.is_empty()) {
        markdown.push_str(&format!("\n- Default: {}", plain_markdown(default)));
    }
    text = plain_markdown(&text);
    if let Value::Object(map) = &mut schema {
        describe(map, &text, &markdown);
    }
    schema
}

fn device_type_schema() -> Value {
    let words: Vec<&str> = DEVICE_TYPES.iter().map(|(name, _)| *name).collect();
    let list: Vec<String> = DEVICE_TYPES.iter().map(|(name, what)| format!("- `{name}`: {what}")).collect();
    json!({
        "type": "string",
        "enum": words,
        "description": "The kind of device.",
        "markdownDescription": format!("The kind of device:\n\n{}", list.join("\n")),
    })
}

fn device_schema() -> Value {
    let mut cases = Vec::new();
    for (device_type, _) in DEVICE_TYPES {
        let Some(options) = config_keys::device_options(device_type) else { continue };
        let mut properties = Map::new();
        let mut patterns = Map::new();
        properties.insert("type".to_string(), json!(true));
        for option in options {
            match option.name.strip_suffix('*') {
                Some(prefix) => {
                    patterns.insert(format!("^{}.+$", regex_escape(prefix)), device_option_schema(option));
                }
                None => {
                    properties.insert(option.name.clone(), device_option_schema(option));
                }
            }
        }
        cases.push(json!({
            "if": { "properties": { "type": { "const": device_type } }, "required": ["type"] },
            "then": {
                "properties": properties,
                "patternProperties": patterns,
                "additionalProperties": false,
            },
        }));
    }
    let description = "An Incus device. Options are strings; unquoted booleans and numbers are read as their text. The options of `disk`, `unix-char`, `unix-block`, `unix-hotplug`, `usb` and `none` devices are Incus's documented ones; other types take any option.";
    json!({
        "type": "object",
        "description": description,
        "markdownDescription": description,
        "required": ["type"],
        "properties": { "type": device_type_schema() },
        "additionalProperties": incus_scalar(),
        "allOf": cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_roles_become_code_spans() {
        assert_eq!(
            plain_markdown("See {ref}`instance-options-limits-cpu` for more information."),
            "See `instance-options-limits-cpu` for more information."
        );
        assert_eq!(
            plain_markdown("set {config:option}`instance-security:security.secureboot` to `false`"),
            "set `security.secureboot` to `false`"
        );
        assert_eq!(plain_markdown("a {b} `c` {d}"), "a {b} `c` {d}");
        assert_eq!(plain_markdown("{"), "{");
    }

    #[test]
    fn key_patterns() {
        let pattern = |name: &str| {
            config_keys::instance_keys().iter().find(|info| info.name == name).map(key_pattern).unwrap_or_default()
        };
        assert_eq!(pattern("user.*"), "^user\\.[^\\s=]*$");
        assert_eq!(pattern("limits.kernel.*"), "^limits\\.kernel\\.[^\\s=]+$");
        assert_eq!(pattern("linux.sysctl.*"), "^linux\\.sysctl\\.[^\\s=]*$");
        assert_eq!(pattern("volatile.<name>.hwaddr"), "^volatile\\.[^.\\s=]+\\.hwaddr$");
    }
}
