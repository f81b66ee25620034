//! The typed tree of an infra.yml (anklume's v1 schema), every value with its span.
//!
//! Optional values stay `Option` here: defaults are policy, applied by `check` and
//! `lower`, so that diagnostics can tell "absent" from "set to the default".

use crate::source::{Span, Spanned};
use serde::Serialize;

pub type Name = Spanned<String>;
pub type Text = Spanned<String>;

/// What kind of Incus instance a machine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum InstanceType {
    #[serde(rename = "lxc")]
    Container,
    #[serde(rename = "vm")]
    VirtualMachine,
}

impl InstanceType {
    pub const KEYWORDS: &'static [&'static str] = &["lxc", "vm"];

    pub fn from_keyword(keyword: &str) -> Option<InstanceType> {
        match keyword {
            "lxc" => Some(InstanceType::Container),
            "vm" => Some(InstanceType::VirtualMachine),
            _ => None,
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            InstanceType::Container => "lxc",
            InstanceType::VirtualMachine => "vm",
        }
    }

    /// The name Incus uses in its API (`type` of an instance).
    pub fn incus_name(self) -> &'static str {
        match self {
            InstanceType::Container => "container",
            InstanceType::VirtualMachine => "virtual-machine",
        }
    }
}

/// anklume's trust levels; each one is an addressing zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustLevel {
    Admin,
    Trusted,
    SemiTrusted,
    Untrusted,
    Disposable,
}

impl TrustLevel {
    pub const KEYWORDS: &'static [&'static str] = &["admin", "trusted", "semi-trusted", "untrusted", "disposable"];
    pub const DEFAULT: TrustLevel = TrustLevel::SemiTrusted;

    pub fn from_keyword(keyword: &str) -> Option<TrustLevel> {
        match keyword {
            "admin" => Some(TrustLevel::Admin),
            "trusted" => Some(TrustLevel::Trusted),
            "semi-trusted" => Some(TrustLevel::SemiTrusted),
            "untrusted" => Some(TrustLevel::Untrusted),
            "disposable" => Some(TrustLevel::Disposable),
            _ => None,
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            TrustLevel::Admin => "admin",
            TrustLevel::Trusted => "trusted",
            TrustLevel::SemiTrusted => "semi-trusted",
            TrustLevel::Untrusted => "untrusted",
            TrustLevel::Disposable => "disposable",
        }
    }

    /// Offset of the zone's second octet from `zone_base` (anklume ADR-038).
    pub fn zone_offset(self) -> u32 {
        match self {
            TrustLevel::Admin => 0,
            TrustLevel::Trusted => 10,
            TrustLevel::SemiTrusted => 20,
            TrustLevel::Untrusted => 40,
            TrustLevel::Disposable => 50,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuPolicy {
    Exclusive,
    Shared,
}

impl GpuPolicy {
    pub const KEYWORDS: &'static [&'static str] = &["exclusive", "shared"];

    pub fn from_keyword(keyword: &str) -> Option<GpuPolicy> {
        match keyword {
            "exclusive" => Some(GpuPolicy::Exclusive),
            "shared" => Some(GpuPolicy::Shared),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The keyword, as infra.yml and Incus write it.
    pub fn keyword(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Infra {
    pub project_name: Option<Text>,
    pub global: Global,
    pub domains: Vec<Domain>,
    pub network_policies: Vec<NetworkPolicy>,
    pub shared_volumes: Vec<SharedVolume>,
}

#[derive(Clone, Debug, Default)]
pub struct Global {
    pub addressing: Option<Addressing>,
    pub base_subnet: Option<Text>,
    pub default_os_image: Option<Text>,
    pub default_connection: Option<Text>,
    pub default_user: Option<Text>,
    pub gpu_policy: Option<Spanned<GpuPolicy>>,
    pub waits: WaitSettings,
    /// anklumec extension: the storage pool of root disks and volumes (default `default`).
    pub storage_pool: Option<Text>,
    /// anklumec extension: outbound NAT on domain bridges (default true, as anklume).
    pub nat: Option<Spanned<bool>>,
    /// anklumec extension: the incus remote the deployment is for (default: the incus
    /// client's default remote, unchecked).
    pub incus_remote: Option<Text>,
    /// anklumec extension: `false` deploys the domains without the network ACLs that
    /// isolate them (default true).
    pub network_isolation: Option<Spanned<bool>>,
}

#[derive(Clone, Debug)]
pub struct Addressing {
    pub span: Span,
    pub base_octet: Option<Spanned<i64>>,
    pub zone_base: Option<Spanned<i64>>,
    pub zone_step: Option<Spanned<i64>>,
}

/// The seed's boot and agent wait settings (`incus_instances_*`).
#[derive(Clone, Debug, Default)]
pub struct WaitSettings {
    pub lxc_retries: Option<Spanned<i64>>,
    pub lxc_delay: Option<Spanned<i64>>,
    pub vm_retries: Option<Spanned<i64>>,
    pub vm_delay: Option<Spanned<i64>>,
    pub vm_agent_retries: Option<Spanned<i64>>,
    pub vm_agent_delay: Option<Spanned<i64>>,
}

#[derive(Clone, Debug)]
pub struct Domain {
    pub name: Name,
    pub description: Option<Text>,
    pub trust_level: Option<Spanned<TrustLevel>>,
    pub subnet_id: Option<Spanned<i64>>,
    /// Whether `subnet_id:` is written at all, even with a value the reader refused
    /// (E0003), so that the checker does not also call it missing.
    pub subnet_id_written: bool,
    pub ephemeral: Option<Spanned<bool>>,
    pub enabled: Option<Spanned<bool>>,
    /// anklumec extension: overrides `global.nat` for this domain's bridge.
    pub nat: Option<Spanned<bool>>,
    pub profiles: Vec<Profile>,
    pub machines: Vec<Machine>,
}

impl Domain {
    pub fn trust(&self) -> TrustLevel {
        self.trust_level.as_ref().map_or(TrustLevel::DEFAULT, |t| t.value)
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.as_ref().is_none_or(|e| e.value)
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name.value == name)
    }
}

#[derive(Clone, Debug)]
pub struct Profile {
    pub name: Name,
    pub description: Option<Text>,
    pub config: Vec<ConfigEntry>,
    pub devices: Vec<Device>,
}

/// One `key: value` of an Incus `config` map or device; values are Incus strings.
#[derive(Clone, Debug)]
pub struct ConfigEntry {
    pub key: Text,
    pub value: Text,
}

#[derive(Clone, Debug)]
pub struct Device {
    pub name: Name,
    pub device_type: Option<Text>,
    /// Every option but `type`, in declaration order.
    pub options: Vec<ConfigEntry>,
}

impl Device {
    pub fn option(&self, key: &str) -> Option<&Text> {
        self.options.iter().find(|o| o.key.value == key).map(|o| &o.value)
    }
}

#[derive(Clone, Debug)]
pub struct Machine {
    pub name: Name,
    pub description: Option<Text>,
    pub instance_type: Option<Spanned<InstanceType>>,
    pub ip: Option<Text>,
    pub os_image: Option<Text>,
    pub ephemeral: Option<Spanned<bool>>,
    pub profiles: Option<Spanned<Vec<Name>>>,
    pub config: Vec<ConfigEntry>,
    pub devices: Vec<Device>,
    pub roles: Vec<Text>,
    pub gpu: Option<Spanned<bool>>,
    pub boot_autostart: Option<Spanned<bool>>,
    pub boot_priority: Option<Spanned<i64>>,
    pub snapshots_schedule: Option<Text>,
    pub snapshots_expiry: Option<Text>,
    pub storage_volumes: Vec<StorageVolume>,
    pub persistent_data: Vec<PersistentData>,
    /// A `type` is written but is neither `lxc` nor `vm` (E0005): the checks that
    /// depend on the instance type say nothing of this machine, rather than take it
    /// for the default container.
    pub type_unknown: bool,
}

impl Machine {
    pub fn kind(&self) -> InstanceType {
        self.instance_type.as_ref().map_or(InstanceType::Container, |t| t.value)
    }

    pub fn config_value(&self, key: &str) -> Option<&Text> {
        self.config.iter().find(|c| c.key.value == key).map(|c| &c.value)
    }
}

#[derive(Clone, Debug)]
pub struct StorageVolume {
    pub name: Name,
    pub pool: Option<Text>,
    pub size: Option<Text>,
    pub path: Option<Text>,
}

#[derive(Clone, Debug)]
pub struct PersistentData {
    pub name: Name,
    pub path: Option<Text>,
    pub readonly: Option<Spanned<bool>>,
}

#[derive(Clone, Debug)]
pub struct NetworkPolicy {
    pub span: Span,
    pub description: Option<Text>,
    pub from: Option<Text>,
    pub to: Option<Text>,
    pub ports: Option<Spanned<Ports>>,
    pub protocol: Option<Spanned<Protocol>>,
    pub bidirectional: Option<Spanned<bool>>,
}

#[derive(Clone, Debug)]
pub enum Ports {
    All,
    List(Vec<Spanned<i64>>),
}

#[derive(Clone, Debug)]
pub struct SharedVolume {
    pub name: Name,
    pub source: Option<Text>,
    pub path: Option<Text>,
    pub shift: Option<Spanned<bool>>,
    /// Consumer (domain or machine) → access mode (`ro` or `rw`).
    pub consumers: Vec<(Name, Text)>,
}
