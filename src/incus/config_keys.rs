//! Incus 6.0.4's instance options and device options, from Incus's own table.
//!
//! The table is `data/incus-6.0.4-configuration.json`, the file Incus generates from its
//! source (`internal/server/metadata/configuration.json` at tag v6.0.4, Apache-2.0, see
//! `data/NOTICE`). It is embedded in the binary and parsed once, at first use, into a
//! static table: the JSON stays the single source of truth (a newer Incus means a newer
//! file, not edited Rust), parsing it takes well under a millisecond, and `serde_json`
//! is already a dependency. A unit test parses it, so a broken file fails `cargo test`,
//! not a user's compile.
//!
//! The JSON documents the keys; the server validates them. Where the two differ, the
//! server wins, and the correction is listed here ([`EXTRA_KEYS`], [`SCOPE_FIXES`],
//! [`FORMATS`]); every one was checked against a real incusd 6.0.4 and is kept honest
//! by `tests/differential_incus.rs`:
//!
//! - `smbios11.*` is VM-only (the JSON gives no condition; a container refuses it);
//! - `limits.kernel.*` is a free-form prefix (the JSON lists twelve names under
//!   `configs.kernel`; the server takes any non-empty name), container-only;
//! - `image.*` is free-form on instances and refused in profiles;
//! - the deprecated `security.syscalls.{blacklist,whitelist,blacklist_default,blacklist_compat}`
//!   are still accepted on containers;
//! - the JSON's `type` says bool, integer, string or blob; the value format the server
//!   checks (sizes, CPU sets, priorities, enumerations, cron, ...) is [`Format`].
//!
//! - `volatile.*` keys are Incus's own state: the server accepts in an instance's own
//!   config the ones it knows (and checks some values: a UUID, a boolean, a list of IP
//!   addresses) and refuses every one in a profile. The table spells one of them
//!   `volatile.cloud_init.instance-id`; the server knows `volatile.cloud-init.instance-id`.
//!
//! Name patterns in the table: `environment.*`, `user.*`, `linux.sysctl.*`,
//! `smbios11.*` (a trailing `*` matches the rest of the name, even empty, as Incus's
//! prefix test does), `volatile.<name>.*` (matched as the server does: any `volatile.`
//! key that ends with the rest, `.hwaddr` say, whatever comes between), plus the
//! additions `limits.kernel.*` (non-empty rest) and `image.*`. Any other `volatile.`
//! key is unknown to the server.

use crate::syntax::ast::InstanceType;
use serde_json::Value;
use std::sync::OnceLock;

/// The Incus version whose table this is.
pub const INCUS_VERSION: &str = "6.0.4";

const CONFIGURATION_JSON: &str = include_str!("../../data/incus-6.0.4-configuration.json");

/// A key's value type, as Incus's table gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    Bool,
    Integer,
    String,
    /// A multi-line string (`raw.*`).
    Blob,
}

impl ValueType {
    fn parse(text: &str) -> ValueType {
        match text {
            "bool" => ValueType::Bool,
            "integer" | "int" => ValueType::Integer,
            "blob" => ValueType::Blob,
            _ => ValueType::String,
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            ValueType::Bool => "bool",
            ValueType::Integer => "integer",
            ValueType::String => "string",
            ValueType::Blob => "blob",
        }
    }
}

/// Which instances a key applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Applies {
    Both,
    Container,
    VirtualMachine,
}

impl Applies {
    /// From the table's `condition` (`container`, `unprivileged container`, `virtual
    /// machine`; anything else, such as `If supported by image`, or none: both).
    fn from_condition(condition: Option<&str>) -> Applies {
        match condition {
            Some("container" | "unprivileged container") => Applies::Container,
            Some("virtual machine") => Applies::VirtualMachine,
            _ => Applies::Both,
        }
    }

    pub fn includes(self, kind: InstanceType) -> bool {
        match self {
            Applies::Both => true,
            Applies::Container => kind == InstanceType::Container,
            Applies::VirtualMachine => kind == InstanceType::VirtualMachine,
        }
    }

    /// `containers`, `virtual machines`, or `all instances`.
    pub fn describe(self) -> &'static str {
        match self {
            Applies::Both => "all instances",
            Applies::Container => "containers",
            Applies::VirtualMachine => "virtual machines",
        }
    }
}

/// Where a key may be set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Settable {
    /// In an instance's config and in profiles.
    Anywhere,
    /// In an instance's own config only (`image.*`: Incus refuses it in a profile).
    InstanceOnly,
    /// Incus's own state (`volatile.*`): the server takes it in an instance's own
    /// config and refuses it in a profile; users should leave it to Incus.
    IncusState,
}

/// The format the server checks a value against (`internal/instance/config.go` and the
/// validators it calls). Every format accepts the empty string (the key is then unset),
/// as Incus's `validate.Optional` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Anything.
    Any,
    /// `validate.IsBool`: `true`, `false`, `yes`, `no`, `on`, `off`, `1`, `0`, any case.
    Bool,
    /// `validate.IsBool` without `validate.Optional`: the empty string is refused too.
    RequiredBool,
    /// `validate.IsUUID` (Go's `uuid.Parse`): `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, 32
    /// hex digits, `urn:uuid:` before the first form, or the first form between two
    /// characters (`{...}`).
    Uuid,
    /// `validate.IsListOf(validate.IsNetworkAddress)`: comma-separated IP addresses
    /// (spaces around each allowed); never empty.
    IpList,
    /// `validate.IsInt64`: a decimal 64-bit integer, sign allowed.
    Int64,
    /// `validate.IsUint32`: a decimal unsigned 32-bit integer, no sign.
    Uint32,
    /// `validate.IsPriority`: an integer from 0 to 10.
    Priority,
    /// `validate.IsSize`: a byte size (`units.ParseByteSizeString`).
    ByteSize,
    /// `limits.memory`: a non-zero byte size, or a non-zero integer percentage.
    MemoryLimit,
    /// `limits.memory.swap`: a boolean or a byte size.
    MemorySwap,
    /// `limits.cpu`: a CPU count (at least 1) or a CPU set (`validate.IsValidCPUSet`).
    CpuLimit,
    /// `limits.cpu.nodes`: `balanced` or a set of NUMA nodes.
    CpuNodes,
    /// `limits.cpu.allowance`: `N%` or `Nms/Mms`.
    CpuAllowance,
    /// One of a fixed list, case-sensitive.
    OneOf(&'static [&'static str]),
    /// `snapshots.schedule`: a 5-field cron expression or an alias, several joined by `, `.
    Schedule,
    /// `snapshots.expiry`: space-separated `<number><unit>` parts.
    Expiry,
    /// A YAML document (`cloud-init.network-config`).
    Yaml,
    /// `raw.lxc`: `key = value` lines, some keys forbidden.
    RawLxc,
    /// `raw.idmap`: `both|uid|gid HOST NS` lines.
    RawIdmap,
}

/// One instance option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The name as the table writes it: `limits.memory`, `user.*`, `volatile.<name>.hwaddr`.
    pub name: String,
    /// Whether `name` is a pattern (`*` or `<name>` in it).
    pub is_pattern: bool,
    /// The table's group (`resource-limits`, `security`, ...; `anklumec` for additions).
    pub group: String,
    pub value_type: ValueType,
    pub applies: Applies,
    /// The table's `condition`, as written.
    pub condition: Option<String>,
    /// The table's default, as written (`defaultdesc`).
    pub default: Option<String>,
    pub short_description: String,
    pub long_description: String,
    /// Whether the key can change on a running instance (`liveupdate`).
    pub live_update: Option<bool>,
    pub settable: Settable,
    pub format: Format,
    /// `limits.kernel.*` needs a name after the prefix; Incus's other prefixes do not.
    non_empty_rest: bool,
}

impl KeyInfo {
    /// Whether `key` is this option: the name itself, or an instance of its pattern.
    pub fn matches(&self, key: &str) -> bool {
        if !self.is_pattern {
            return self.name == key;
        }
        // Incus tests device-scoped volatile keys by their end alone.
        if let Some(end) = self.name.strip_prefix("volatile.<name>") {
            return key.starts_with("volatile.") && key.ends_with(end);
        }
        let mut pattern = self.name.split('.');
        let mut parts = key.split('.');
        loop {
            match (pattern.next(), parts.next()) {
                (Some("*"), Some(first)) => {
                    return !self.non_empty_rest || !first.is_empty() || parts.next().is_some();
                }
                (Some(segment), Some(part)) if segment.starts_with('<') && segment.ends_with('>') => {
                    if part.is_empty() {
                        return false;
                    }
                }
                (Some(segment), Some(part)) if segment == part => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    /// The literal part before the first wildcard (`linux.sysctl.`), for patterns.
    fn literal_prefix(&self) -> &str {
        let end = self.name.find(['*', '<']).unwrap_or(self.name.len());
        &self.name[..end]
    }
}

/// One device option (for the device types the table documents).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceOption {
    /// `path`, `readonly`, or a pattern: `initial.*`.
    pub name: String,
    pub value_type: ValueType,
    pub default: Option<String>,
    pub short_description: String,
}

impl DeviceOption {
    pub fn matches(&self, option: &str) -> bool {
        match self.name.strip_suffix('*') {
            Some(prefix) => option.len() > prefix.len() && option.starts_with(prefix),
            None => self.name == option,
        }
    }
}

/// Keys the 6.0.4 server accepts that the table lacks: (name, applies, type, settable,
/// description).
pub const EXTRA_KEYS: &[(&str, Applies, ValueType, Settable, &str)] = &[
    (
        "limits.kernel.*",
        Applies::Container,
        ValueType::String,
        Settable::Anywhere,
        "Kernel resource limit (`limits.kernel.nofile`, ...: see `configs.kernel`)",
    ),
    ("image.*", Applies::Both, ValueType::String, Settable::InstanceOnly, "Image property copied to the instance"),
    (
        "security.syscalls.blacklist",
        Applies::Container,
        ValueType::String,
        Settable::Anywhere,
        "Deprecated alias of `security.syscalls.deny`",
    ),
    (
        "security.syscalls.whitelist",
        Applies::Container,
        ValueType::String,
        Settable::Anywhere,
        "Deprecated alias of `security.syscalls.allow`",
    ),
    (
        "security.syscalls.blacklist_default",
        Applies::Container,
        ValueType::Bool,
        Settable::Anywhere,
        "Deprecated alias of `security.syscalls.deny_default`",
    ),
    (
        "security.syscalls.blacklist_compat",
        Applies::Container,
        ValueType::Bool,
        Settable::Anywhere,
        "Deprecated alias of `security.syscalls.deny_compat`",
    ),
    (
        "volatile.cloud-init.instance-id",
        Applies::Both,
        ValueType::String,
        Settable::IncusState,
        "`instance-id` (UUID) exposed to `cloud-init`",
    ),
];

/// Keys the table documents that the 6.0.4 server does not know (a misspelling).
pub const REFUSED_KEYS: &[&str] = &["volatile.cloud_init.instance-id"];

/// Keys whose scope the server enforces differently from the table's condition.
pub const SCOPE_FIXES: &[(&str, Applies)] = &[
    ("smbios11.*", Applies::VirtualMachine),
    ("volatile.apply_nvram", Applies::VirtualMachine),
    ("volatile.vsock_id", Applies::VirtualMachine),
    ("volatile.vm.definition", Applies::VirtualMachine),
    ("volatile.idmap.base", Applies::Container),
    ("volatile.idmap.current", Applies::Container),
    ("volatile.idmap.next", Applies::Container),
    ("volatile.last_state.idmap", Applies::Container),
];

/// Value formats beyond what the table's type says (bool keys are [`Format::Bool`],
/// integer keys [`Format::Int64`], other keys [`Format::Any`] unless listed).
pub const FORMATS: &[(&str, Format)] = &[
    ("limits.cpu", Format::CpuLimit),
    ("limits.cpu.allowance", Format::CpuAllowance),
    ("limits.cpu.nodes", Format::CpuNodes),
    ("limits.cpu.priority", Format::Priority),
    ("limits.disk.priority", Format::Priority),
    ("limits.memory.swap.priority", Format::Priority),
    ("limits.hugepages.64KB", Format::ByteSize),
    ("limits.hugepages.1MB", Format::ByteSize),
    ("limits.hugepages.2MB", Format::ByteSize),
    ("limits.hugepages.1GB", Format::ByteSize),
    ("limits.memory", Format::MemoryLimit),
    ("limits.memory.swap", Format::MemorySwap),
    ("limits.memory.enforce", Format::OneOf(&["soft", "hard"])),
    ("migration.incremental.memory.goal", Format::Uint32),
    ("migration.incremental.memory.iterations", Format::Uint32),
    ("security.idmap.base", Format::Uint32),
    ("security.idmap.size", Format::Uint32),
    ("boot.host_shutdown_action", Format::OneOf(&["stop", "force-stop", "stateful-stop"])),
    ("cluster.evacuate", Format::OneOf(&["auto", "migrate", "live-migrate", "stop", "stateful-stop", "force-stop"])),
    ("snapshots.schedule", Format::Schedule),
    ("snapshots.expiry", Format::Expiry),
    ("cloud-init.network-config", Format::Yaml),
    ("raw.lxc", Format::RawLxc),
    ("raw.idmap", Format::RawIdmap),
    ("volatile.uuid", Format::Uuid),
    ("volatile.cloud-init.instance-id", Format::Uuid),
    ("volatile.last_state.ready", Format::RequiredBool),
    ("volatile.idmap.base", Format::Any),
    ("volatile.vsock_id", Format::Int64),
    ("volatile.<name>.last_state.ip_addresses", Format::IpList),
];

/// Device types whose option list anklumec knows completely: the table's
/// `configs.devices` sections, `optional` (the deprecated inverse of `required`, still
/// accepted by disks), and `none`, which takes no option.
const DEVICE_SECTIONS: &[(&str, &str)] = &[
    ("disk", "disk"),
    ("unix-char", "unix-char-block"),
    ("unix-block", "unix-char-block"),
    ("unix-hotplug", "unix-hotplug"),
    ("usb", "usb"),
];

struct Table {
    instance: Vec<KeyInfo>,
    devices: Vec<(&'static str, Vec<DeviceOption>)>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| load(CONFIGURATION_JSON).expect("data/incus-6.0.4-configuration.json is Incus's table"))
}

fn text(info: &Value, field: &str) -> Option<String> {
    info.get(field).and_then(Value::as_str).map(str::to_string)
}

/// Every `{name: info}` of a `{"keys": [...]}` section.
fn section_keys(section: &Value) -> Vec<(&str, &Value)> {
    section
        .get("keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(Value::as_object)
                .flat_map(|entry| entry.iter().map(|(k, v)| (k.as_str(), v)))
                .collect()
        })
        .unwrap_or_default()
}

fn format_of(name: &str, value_type: ValueType) -> Format {
    if let Some((_, format)) = FORMATS.iter().find(|(key, _)| *key == name) {
        return *format;
    }
    match value_type {
        ValueType::Bool => Format::Bool,
        ValueType::Integer => Format::Int64,
        ValueType::String | ValueType::Blob => Format::Any,
    }
}

fn load(json: &str) -> Result<Table, String> {
    let root: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let configs = root.get("configs").ok_or("no `configs`")?;
    let groups = configs.get("instance").and_then(Value::as_object).ok_or("no `configs.instance`")?;
    let mut instance = Vec::new();
    for (group, section) in groups {
        for (name, info) in section_keys(section) {
            if REFUSED_KEYS.contains(&name) {
                continue;
            }
            let value_type = ValueType::parse(info.get("type").and_then(Value::as_str).unwrap_or("string"));
            let condition = text(info, "condition");
            let applies = SCOPE_FIXES
                .iter()
                .find(|(key, _)| *key == name)
                .map_or_else(|| Applies::from_condition(condition.as_deref()), |(_, applies)| *applies);
            let settable = if name.starts_with("volatile.") { Settable::IncusState } else { Settable::Anywhere };
            instance.push(KeyInfo {
                name: name.to_string(),
                is_pattern: name.contains(['*', '<']),
                group: group.clone(),
                value_type,
                applies,
                condition,
                default: text(info, "defaultdesc"),
                short_description: text(info, "shortdesc").unwrap_or_default(),
                long_description: text(info, "longdesc").unwrap_or_default(),
                live_update: text(info, "liveupdate").map(|live| live == "yes"),
                settable,
                format: format_of(name, value_type),
                non_empty_rest: false,
            });
        }
    }
    for (name, applies, value_type, settable, description) in EXTRA_KEYS {
        instance.push(KeyInfo {
            name: name.to_string(),
            is_pattern: name.contains('*'),
            group: "anklumec".to_string(),
            value_type: *value_type,
            applies: *applies,
            condition: None,
            default: None,
            short_description: description.to_string(),
            long_description: String::new(),
            live_update: None,
            settable: *settable,
            format: format_of(name, *value_type),
            non_empty_rest: *name == "limits.kernel.*",
        });
    }
    let device_groups = configs.get("devices").ok_or("no `configs.devices`")?;
    let mut devices = Vec::new();
    for (device_type, section) in DEVICE_SECTIONS {
        let section = device_groups.get(*section).ok_or_else(|| format!("no `configs.devices.{section}`"))?;
        let mut options: Vec<DeviceOption> = section_keys(section)
            .into_iter()
            .map(|(name, info)| DeviceOption {
                name: name.to_string(),
                value_type: ValueType::parse(info.get("type").and_then(Value::as_str).unwrap_or("string")),
                default: text(info, "default").or_else(|| text(info, "defaultdesc")),
                short_description: text(info, "shortdesc").unwrap_or_default(),
            })
            .collect();
        if *device_type == "disk" {
            options.push(DeviceOption {
                name: "optional".to_string(),
                value_type: ValueType::Bool,
                default: None,
                short_description: "Deprecated inverse of `required`".to_string(),
            });
        }
        devices.push((*device_type, options));
    }
    devices.push(("none", Vec::new()));
    Ok(Table { instance, devices })
}

/// Every instance option, patterns and `volatile.*` keys included, in table order.
pub fn instance_keys() -> &'static [KeyInfo] {
    &table().instance
}

/// The option `name` is: an exact key, else the most specific pattern it matches (the
/// longest literal prefix, then the longest name). `None`: Incus does not know the key.
pub fn instance_key(name: &str) -> Option<&'static KeyInfo> {
    let keys = instance_keys();
    keys.iter().find(|key| !key.is_pattern && key.name == name).or_else(|| {
        keys.iter()
            .filter(|key| key.is_pattern && key.matches(name))
            .max_by_key(|key| (key.literal_prefix().len(), key.name.len()))
    })
}

/// The key `name` was probably meant to be: the closest settable key, or a pattern's
/// prefix spelled right (`enviroment.PATH` → `environment.PATH`).
pub fn suggestion(name: &str) -> Option<String> {
    let keys = instance_keys();
    let settable = || keys.iter().filter(|key| key.settable != Settable::IncusState);
    if let Some(exact) =
        crate::syntax::read::closest(name, settable().filter(|key| !key.is_pattern).map(|key| key.name.as_str()))
    {
        return Some(exact.to_string());
    }
    settable().filter(|key| key.is_pattern).find_map(|key| {
        let prefix = key.literal_prefix().trim_end_matches('.');
        let segments = prefix.split('.').count();
        let mut parts = name.splitn(segments + 1, '.');
        let head: Vec<&str> = parts.by_ref().take(segments).collect();
        let rest = parts.next().filter(|rest| !rest.is_empty())?;
        crate::syntax::read::closest(&head.join("."), [prefix]).map(|prefix| format!("{prefix}.{rest}"))
    })
}

/// The options of `device_type` when anklumec knows them all (`disk`, `unix-char`,
/// `unix-block`, `unix-hotplug`, `usb`, `none`); `None` for the other types.
pub fn device_options(device_type: &str) -> Option<&'static [DeviceOption]> {
    table().devices.iter().find(|(name, _)| *name == device_type).map(|(_, options)| options.as_slice())
}

/// The option `option` of `device_type`, if the type's options are known and it is one.
pub fn device_option(device_type: &str, option: &str) -> Option<&'static DeviceOption> {
    device_options(device_type)?.iter().find(|known| known.matches(option))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> &'static KeyInfo {
        instance_key(name).unwrap_or_else(|| panic!("{name} is a key"))
    }

    #[test]
    fn the_table_parses_and_holds_every_instance_key() {
        let keys = instance_keys();
        let from_json = keys.iter().filter(|k| k.group != "anklumec").count();
        assert_eq!(from_json, 128 - REFUSED_KEYS.len());
        assert_eq!(keys.len(), 128 - REFUSED_KEYS.len() + EXTRA_KEYS.len());
        let memory = key("limits.memory");
        assert_eq!(memory.value_type, ValueType::String);
        assert_eq!(memory.applies, Applies::Both);
        assert_eq!(memory.format, Format::MemoryLimit);
        assert_eq!(memory.default.as_deref(), Some("`1GiB` (VMs)"));
        assert_eq!(memory.live_update, Some(true));
        assert_eq!(memory.short_description, "Usage limit for the host's memory");
        assert!(!memory.long_description.is_empty());
    }

    #[test]
    fn every_format_override_names_a_key() {
        for (name, _) in FORMATS {
            assert!(instance_keys().iter().any(|k| k.name == *name), "{name}");
        }
        for (name, _) in SCOPE_FIXES {
            assert!(instance_keys().iter().any(|k| k.name == *name), "{name}");
        }
    }

    #[test]
    fn conditions_become_scopes() {
        assert_eq!(key("security.nesting").applies, Applies::Container);
        assert_eq!(key("raw.idmap").applies, Applies::Container, "unprivileged container");
        assert_eq!(key("security.secureboot").applies, Applies::VirtualMachine);
        assert_eq!(key("cloud-init.user-data").applies, Applies::Both, "if supported by image");
        assert_eq!(key("smbios11.serial").applies, Applies::VirtualMachine, "corrected");
        assert!(Applies::Container.includes(InstanceType::Container));
        assert!(!Applies::Container.includes(InstanceType::VirtualMachine));
        assert!(Applies::Both.includes(InstanceType::VirtualMachine));
    }

    #[test]
    fn types_and_formats() {
        assert_eq!(key("security.privileged").format, Format::Bool);
        assert_eq!(key("boot.autostart.delay").value_type, ValueType::Integer);
        assert_eq!(key("boot.autostart.delay").format, Format::Int64);
        assert_eq!(key("limits.cpu.priority").format, Format::Priority);
        assert_eq!(key("raw.lxc").value_type, ValueType::Blob);
        assert_eq!(key("user.anything").format, Format::Any);
        assert_eq!(key("limits.memory.enforce").format, Format::OneOf(&["soft", "hard"]));
    }

    #[test]
    fn patterns() {
        assert_eq!(key("user.note").name, "user.*");
        assert_eq!(key("user.").name, "user.*");
        assert_eq!(key("user.user-data").name, "user.user-data", "an exact key wins over its prefix");
        assert_eq!(key("environment.HTTP_PROXY").name, "environment.*");
        assert_eq!(key("linux.sysctl.net.ipv4.ip_forward").name, "linux.sysctl.*");
        assert_eq!(key("limits.kernel.nofile").name, "limits.kernel.*");
        assert_eq!(key("limits.kernel.anything").name, "limits.kernel.*");
        assert!(instance_key("limits.kernel.").is_none());
        assert_eq!(key("image.os").settable, Settable::InstanceOnly);
        assert_eq!(key("volatile.eth0.hwaddr").name, "volatile.<name>.hwaddr");
        assert_eq!(key("volatile.uuid").name, "volatile.uuid");
        assert!(["volatile.eth0.hwaddr", "volatile.uuid"].iter().all(|k| key(k).settable == Settable::IncusState));
        // As the server tests them: by their end, whatever comes between.
        assert_eq!(key("volatile.a.b.hwaddr").name, "volatile.<name>.hwaddr");
        assert_eq!(key("volatile.hwaddr").name, "volatile.<name>.hwaddr");
        assert_eq!(key("volatile.gpu0.last_state.pci.slot.name").name, "volatile.<name>.last_state.pci.slot.name");
        assert_eq!(key("volatile.eth0.last_state.ip_addresses").format, Format::IpList);
        assert_eq!(key("volatile.cloud-init.instance-id").format, Format::Uuid);
        assert_eq!(key("volatile.apply_nvram").applies, Applies::VirtualMachine);
        assert_eq!(key("volatile.idmap.next").applies, Applies::Container);
        for unknown in [
            "volatile.whatever",
            "volatile.eth0.mtu",
            "volatile.eth0.hwaddr.x",
            "volatile.cloud_init.instance-id",
            "volatile.eth0.last_state.ready",
            "limits.memroy",
            "user",
            "users.x",
            "environment",
            "bogus",
            "",
            "Limits.memory",
            "limits.memory.oom_priority",
        ] {
            assert!(instance_key(unknown).is_none(), "{unknown}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggestion("limits.memroy").as_deref(), Some("limits.memory"));
        assert_eq!(suggestion("security.nesing").as_deref(), Some("security.nesting"));
        assert_eq!(suggestion("Limits.Memory").as_deref(), Some("limits.memory"));
        assert_eq!(suggestion("enviroment.HTTP_PROXY").as_deref(), Some("environment.HTTP_PROXY"));
        assert_eq!(suggestion("usr.note").as_deref(), Some("user.note"));
        assert_eq!(suggestion("volatile.uuidd"), None, "volatile keys are never suggested");
        assert_eq!(suggestion("completely.different"), None);
    }

    #[test]
    fn device_option_tables() {
        let disk: Vec<&str> = device_options("disk").unwrap_or_default().iter().map(|o| o.name.as_str()).collect();
        assert!(
            disk.contains(&"path") && disk.contains(&"source") && disk.contains(&"pool") && disk.contains(&"optional")
        );
        assert_eq!(device_option("disk", "readonly").map(|o| o.value_type), Some(ValueType::Bool));
        assert!(device_option("disk", "initial.zfs.use_refquota").is_some());
        assert!(device_option("disk", "initial.").is_none());
        assert!(device_option("disk", "bogus").is_none());
        assert_eq!(device_option("unix-char", "mode").map(|o| o.value_type), Some(ValueType::Integer));
        assert!(device_option("unix-block", "major").is_some());
        assert!(device_option("usb", "busnum").is_some());
        assert!(device_option("unix-hotplug", "vendorid").is_some());
        assert_eq!(device_options("none").map(<[DeviceOption]>::len), Some(0));
        assert!(
            device_options("nic").is_none() && device_options("proxy").is_none() && device_options("gpu").is_none()
        );
    }
}
