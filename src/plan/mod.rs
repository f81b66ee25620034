//! The plan IR: an ordered list of typed steps that says everything a back end needs
//! to converge Incus to infra.yml, and nothing about bash or HTTP.
//!
//! Values are resolved (addresses assigned, defaults applied, config normalised to
//! Incus strings). Every step carries the infra.yml position it came from, so a
//! failure at deploy time can name the line. `plan --format json` serialises this type;
//! its shape is versioned by [`SCHEMA_VERSION`] and documented in `docs/plan-schema.md`.

mod sorted;

pub use sorted::SortedMap;

use crate::source::Location;
use crate::syntax::ast::{InstanceType, Protocol};
use serde::Serialize;
use std::net::Ipv4Addr;

/// Bumped whenever the JSON form of [`Plan`] changes incompatibly.
pub const SCHEMA_VERSION: u32 = 2;

/// Incus configuration: key → string value, sorted (as Incus stores them).
pub type Config = SortedMap<String, String>;

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub schema_version: u32,
    pub generator: String,
    pub source: SourceInfo,
    pub project_name: String,
    /// `global.incus_remote`: the incus remote the deployment is for. Back ends that
    /// use the incus client check it is the client's default remote; the runner, which
    /// only speaks to the local socket, accepts only `local`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incus_remote: Option<String>,
    pub waits: Waits,
    /// Every image the plan may need, with the instances that use it; back ends check
    /// them before changing anything (the air-gapped case).
    pub images: Vec<ImageUse>,
    pub steps: Vec<Step>,
    /// The rules that isolate each enabled domain, in declaration order, whether or
    /// not the plan enforces them: with `global.network_isolation: false` there is no
    /// `EnsureAcl` step, and `--emit nftables` still writes them for the host.
    pub isolation: Vec<AclSpec>,
    /// What provisioning needs after deployment (the Ansible inventory back end):
    /// anklume's domains and connection settings, which are not Incus state.
    pub provisioning: Provisioning,
}

#[derive(Clone, Debug, Serialize)]
pub struct Provisioning {
    pub default_connection: Option<String>,
    pub default_user: Option<String>,
    /// Enabled domains, in declaration order.
    pub domains: Vec<DomainInfo>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DomainInfo {
    pub name: String,
    pub description: String,
    pub trust_level: crate::syntax::ast::TrustLevel,
    pub ephemeral: bool,
    pub project: String,
    pub network: String,
    /// `10.120.0.0/24`, absent when the domain has no subnet.
    pub subnet: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    /// The third octet of the subnet (anklume's `subnet_id`).
    pub subnet_id: Option<u8>,
    /// Its instances, in declaration order.
    pub instances: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SourceInfo {
    /// The path as given on the command line.
    pub path: String,
    /// sha256 of the source bytes, hex.
    pub sha256: String,
}

/// The seed's wait loops: `retries` polls, `delay` seconds apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Wait {
    pub retries: u32,
    pub delay: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Waits {
    pub lxc: Wait,
    pub vm: Wait,
    pub vm_agent: Wait,
}

impl Waits {
    /// The seed's defaults: 30 × 2 s for containers, 60 × 2 s for VMs, 30 × 2 s for the agent.
    pub const SEED_DEFAULTS: Waits = Waits {
        lxc: Wait { retries: 30, delay: 2 },
        vm: Wait { retries: 60, delay: 2 },
        vm_agent: Wait { retries: 30, delay: 2 },
    };

    pub fn boot(&self, instance_type: InstanceType) -> Wait {
        match instance_type {
            InstanceType::Container => self.lxc,
            InstanceType::VirtualMachine => self.vm,
        }
    }
}

/// `[<remote>:]<alias-or-fingerprint>`, as the incus CLI takes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ImageRef {
    pub remote: Option<String>,
    pub name: String,
}

impl ImageRef {
    /// Split at the first `:` (remote names cannot contain one; aliases may contain `/`).
    pub fn parse(text: &str) -> ImageRef {
        match text.split_once(':') {
            Some((remote, name)) if !remote.is_empty() => {
                ImageRef { remote: Some(remote.to_string()), name: name.to_string() }
            }
            _ => ImageRef { remote: None, name: text.to_string() },
        }
    }

    /// The image lives on this Incus server (no remote, or `local:`): an air-gapped
    /// deployment can check it exists before changing anything.
    pub fn is_local(&self) -> bool {
        self.remote.as_deref().is_none_or(|remote| remote == "local")
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.remote {
            Some(remote) => write!(f, "{remote}:{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageUse {
    pub image: String,
    pub local: bool,
    /// `project/instance` of every instance created from it.
    pub instances: Vec<String>,
    /// Where infra.yml chooses it for the first of them (its `os_image`, or
    /// `global.default_os_image`): what a missing image's message points at.
    pub origin: Location,
}

#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// Stable id, such as `instance:work/web`.
    pub id: String,
    /// Ids of the steps that must succeed first.
    pub depends_on: Vec<String>,
    /// Where in infra.yml this step comes from.
    pub origin: Location,
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    EnsureProject(ProjectSpec),
    EnsureAcl(AclSpec),
    EnsureNetwork(NetworkSpec),
    EnsureProfile(ProfileSpec),
    EnsureVolume(VolumeSpec),
    /// Boxed: an instance's spec is the largest, and most steps are waits and starts.
    EnsureInstance(Box<InstanceSpec>),
    StartInstance(InstanceTarget),
    WaitRunning(WaitSpec),
    WaitAgent(WaitSpec),
}

#[derive(Clone, Debug, Serialize)]
pub struct ProjectSpec {
    pub name: String,
    pub description: String,
    pub config: Config,
}

/// A managed bridge; bridges live in the `default` project (only OVN networks can
/// live in other projects).
#[derive(Clone, Debug, Serialize)]
pub struct NetworkSpec {
    pub name: String,
    pub description: String,
    pub config: Config,
}

/// The network ACL that isolates one domain: its bridge drops whatever enters it
/// towards an instance unless a rule here allows it (`security.acls.default.ingress.action=drop`),
/// and lets out what its instances send (egress `allow`). Lives in the `default`
/// project, named like the bridge; the back ends own it whole (its rules, description
/// and config are replaced when they differ).
#[derive(Clone, Debug, Serialize)]
pub struct AclSpec {
    pub name: String,
    pub description: String,
    /// Rules on traffic from the bridge towards its instances, in order: the domain's
    /// own subnet first (its machines and the host, through the gateway), then one rule
    /// a policy that reaches the domain.
    pub ingress: Vec<AclRule>,
}

/// One `allow` rule of an ACL; an absent field matches anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AclRule {
    /// A subnet (`10.100.0.0/24`) or one address (`10.100.0.3`).
    pub source: Option<String>,
    /// One instance's address, when the rule opens one machine rather than the domain.
    pub destination: Option<String>,
    pub protocol: Option<Protocol>,
    /// Incus's list form, `80,443`; absent opens every port.
    pub destination_port: Option<String>,
    pub description: String,
}

impl AclRule {
    /// The rule's fields as Incus stores them, in key order, `None` where Incus leaves
    /// a field out (every rule allows and is enabled). Both back ends write rules from
    /// this list, so deploy.sh's document and the runner's request say the same.
    pub fn incus_fields(&self) -> [(&'static str, Option<&str>); 7] {
        [
            ("action", Some("allow")),
            ("description", Some(self.description.as_str()).filter(|d| !d.is_empty())),
            ("destination", self.destination.as_deref()),
            ("destination_port", self.destination_port.as_deref()),
            ("protocol", self.protocol.map(Protocol::keyword)),
            ("source", self.source.as_deref()),
            ("state", Some("enabled")),
        ]
    }

    /// `allow from 10.100.0.0/24 to 10.120.0.5 tcp port 80,443`: the rule for people
    /// (`anklumec plan`, the comments of deploy.sh).
    pub fn summary(&self) -> String {
        let mut text = String::from("allow from ");
        text.push_str(self.source.as_deref().unwrap_or("anywhere"));
        if let Some(destination) = &self.destination {
            text.push_str(" to ");
            text.push_str(destination);
        }
        match (self.protocol, &self.destination_port) {
            (Some(protocol), Some(ports)) => {
                text.push_str(&format!(" {} port {ports}", protocol.keyword()));
            }
            (Some(protocol), None) => text.push_str(&format!(" {}, every port", protocol.keyword())),
            (None, _) => text.push_str(", every protocol"),
        }
        text
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Device {
    #[serde(rename = "type")]
    pub device_type: String,
    pub options: Config,
}

pub type Devices = SortedMap<String, Device>;

#[derive(Clone, Debug, Serialize)]
pub struct ProfileSpec {
    pub project: String,
    pub name: String,
    pub description: String,
    pub config: Config,
    pub devices: Devices,
}

/// A custom storage volume (a machine's `storage_volumes`).
#[derive(Clone, Debug, Serialize)]
pub struct VolumeSpec {
    pub project: String,
    pub pool: String,
    pub name: String,
    pub config: Config,
}

#[derive(Clone, Debug, Serialize)]
pub struct InstanceSpec {
    pub project: String,
    pub name: String,
    #[serde(rename = "type")]
    pub instance_type: InstanceType,
    pub image: String,
    pub description: String,
    /// Applied in order; later profiles win.
    pub profiles: Vec<String>,
    pub config: Config,
    pub devices: Devices,
    /// The static IPv4 address, if any (also in the `eth0` device).
    pub address: Option<Ipv4Addr>,
    /// anklume metadata, not Incus state: kept for the inventory back end.
    pub roles: Vec<String>,
    /// anklume's `gpu` flag (metadata; GPU devices come from profiles and devices).
    pub gpu: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct InstanceTarget {
    pub project: String,
    pub name: String,
    #[serde(rename = "type")]
    pub instance_type: InstanceType,
}

#[derive(Clone, Debug, Serialize)]
pub struct WaitSpec {
    pub project: String,
    pub name: String,
    #[serde(rename = "type")]
    pub instance_type: InstanceType,
    pub wait: Wait,
}

/// The phases of a teardown, in the order they run: nothing is removed before what
/// depends on it is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TeardownPhase {
    Instances,
    Volumes,
    Profiles,
    Projects,
    Networks,
    /// After the bridges: Incus refuses to delete an ACL a bridge still names.
    Acls,
}

impl Plan {
    /// What a teardown removes (destroy.sh and `anklumec destroy`), in the order it
    /// removes it: instances, volumes, profiles, projects, bridges, then ACLs; within a phase,
    /// the reverse of the plan's order. A project's `default` profile is left out: Incus
    /// refuses to delete it and it goes with its project.
    pub fn teardown(&self) -> Vec<(TeardownPhase, &Step)> {
        let mut steps: Vec<(TeardownPhase, &Step)> = self
            .steps
            .iter()
            .rev()
            .filter_map(|step| {
                let phase = match &step.action {
                    Action::EnsureInstance(_) => TeardownPhase::Instances,
                    Action::EnsureVolume(_) => TeardownPhase::Volumes,
                    Action::EnsureProfile(spec) if spec.name != "default" => TeardownPhase::Profiles,
                    Action::EnsureProject(_) => TeardownPhase::Projects,
                    Action::EnsureNetwork(_) => TeardownPhase::Networks,
                    Action::EnsureAcl(_) => TeardownPhase::Acls,
                    _ => return None,
                };
                Some((phase, step))
            })
            .collect();
        // Stable: the reverse plan order holds within each phase.
        steps.sort_by_key(|(phase, _)| *phase);
        steps
    }
}

/// Lower-case hexadecimal, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        assert_eq!(
            ImageRef::parse("images:debian/13"),
            ImageRef { remote: Some("images".into()), name: "debian/13".into() }
        );
        assert_eq!(ImageRef::parse("tiny"), ImageRef { remote: None, name: "tiny".into() });
        assert!(ImageRef::parse("local:tiny").is_local());
        assert!(ImageRef::parse("tiny").is_local());
        assert!(!ImageRef::parse("images:debian/13").is_local());
        assert_eq!(ImageRef::parse("images:debian/13").to_string(), "images:debian/13");
    }

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }
}
