//! Lowering: the checked tree of infra.yml to the [plan IR](crate::plan).
//!
//! Runs only on input the checker accepted, so it cannot fail: every name is valid,
//! every reference resolves, every address is assigned. Policy lives here (defaults,
//! anklume's naming, which Incus keys a setting becomes); back ends only follow the plan.

mod isolation;
mod naming;

pub use naming::{MAX_BRIDGE_NAME, anklume_bridge_name, bridge_name, project_name};

use crate::addressing::{self, DomainAddressing, MachineAddress};
use crate::plan::{
    AclSpec, Action, Config, Device, Devices, DomainInfo, ImageRef, ImageUse, InstanceSpec, InstanceTarget,
    NetworkSpec, Plan, ProfileSpec, ProjectSpec, Provisioning, SCHEMA_VERSION, SourceInfo, Step, VolumeSpec, Wait,
    WaitSpec, Waits,
};
use crate::source::{Location, SourceMap, Span, Spanned};
use crate::syntax::ast::{self, Infra, InstanceType};
use std::collections::{BTreeMap, HashMap};

/// The storage pool root disks and volumes use unless `global.storage_pool` says otherwise.
pub const DEFAULT_STORAGE_POOL: &str = "default";

/// Project features every domain project gets. Images are shared with the `default`
/// project (`features.images=false`) so that one local alias serves every domain on an
/// air-gapped site; profiles are per project so each domain's `default` profile can
/// point at its own bridge; networks stay global (bridges cannot live in projects).
pub const PROJECT_FEATURES: [(&str, &str); 4] = [
    ("features.images", "false"),
    ("features.networks", "false"),
    ("features.profiles", "true"),
    ("features.storage.volumes", "true"),
];

pub fn lower(infra: &Infra, sources: &SourceMap, source: SourceInfo) -> Plan {
    let machines: usize = infra.domains.iter().map(|domain| domain.machines.len()).sum();
    let groups = match machines / MACHINES_PER_GROUP {
        0 | 1 => 1,
        groups => crate::parallel::cores().min(groups),
    };
    lower_in_groups(infra, sources, source, groups)
}

/// [`lower`], the domains cut into `parts` groups lowered on as many threads. The plan
/// does not depend on `parts`.
fn lower_in_groups(infra: &Infra, sources: &SourceMap, source: SourceInfo, parts: usize) -> Plan {
    let resolution = addressing::resolve(infra);
    let waits = waits(&infra.global.waits);
    // The isolation is in the plan either way (`--emit nftables` writes it); the ACL
    // steps only when it is deployed.
    let acls = isolation::acls(infra, &resolution.domains);
    let isolation: Vec<AclSpec> =
        infra.domains.iter().filter_map(|domain| acls.get(domain.name.value.as_str()).cloned()).collect();
    let deployed = infra.global.network_isolation.as_ref().is_none_or(|i| i.value);
    let context = Context {
        infra,
        sources,
        waits,
        pool: infra.global.storage_pool.as_ref().map_or(DEFAULT_STORAGE_POOL, |p| p.value.as_str()),
        global_nat: infra.global.nat.as_ref().is_none_or(|n| n.value),
        acls: if deployed { acls } else { HashMap::new() },
    };
    let domains: Vec<_> =
        infra.domains.iter().zip(&resolution.domains).filter(|(domain, _)| domain.is_enabled()).collect();
    let groups = groups(&domains, parts);
    let lowered = crate::parallel::map(&groups, |group| context.lower_domains(group));

    // The plan's order: every domain's resources, then every instance, then their
    // starts, boot waits and agent waits (all instances are created and started before
    // any wait, so VMs boot in parallel).
    let count = |part: fn(&Lowered) -> usize| lowered.iter().map(part).sum::<usize>();
    let mut steps = Vec::with_capacity(count(Lowered::len));
    let mut images: BTreeMap<String, ImageUse> = BTreeMap::new();
    let mut provisioning = Provisioning {
        default_connection: infra.global.default_connection.as_ref().map(|c| c.value.clone()),
        default_user: infra.global.default_user.as_ref().map(|u| u.value.clone()),
        domains: Vec::with_capacity(count(|part| part.provisioning.len())),
    };
    let mut instances = Vec::with_capacity(count(|part| part.instances.len()));
    let mut starts = Vec::with_capacity(count(|part| part.starts.len()));
    let mut boot_waits = Vec::with_capacity(count(|part| part.boot_waits.len()));
    let mut agent_waits = Vec::with_capacity(count(|part| part.agent_waits.len()));
    for part in lowered {
        steps.extend(part.domain_steps);
        instances.extend(part.instances);
        starts.extend(part.starts);
        boot_waits.extend(part.boot_waits);
        agent_waits.extend(part.agent_waits);
        provisioning.domains.extend(part.provisioning);
        for (image, key, origin) in part.images {
            match images.get_mut(&image) {
                Some(use_entry) => use_entry.instances.push(key),
                None => {
                    let local = ImageRef::parse(&image).is_local();
                    images.insert(image.clone(), ImageUse { local, image, instances: vec![key], origin });
                }
            }
        }
    }
    steps.extend(instances.into_iter().chain(starts).chain(boot_waits).chain(agent_waits));

    Plan {
        schema_version: SCHEMA_VERSION,
        generator: format!("anklumec {}", env!("CARGO_PKG_VERSION")),
        source,
        project_name: infra.project_name.as_ref().map_or_else(String::new, |p| p.value.clone()),
        incus_remote: infra.global.incus_remote.as_ref().map(|r| r.value.clone()),
        waits,
        images: images.into_values().collect(),
        steps,
        isolation,
        provisioning,
    }
}

/// Below this many machines, domains are lowered on the calling thread.
const MACHINES_PER_GROUP: usize = 1_000;

type DomainRef<'a> = (&'a ast::Domain, &'a DomainAddressing);

/// The domains in at most `parts` consecutive groups of about equal numbers of machines.
fn groups<'d, 'a>(domains: &'d [DomainRef<'a>], parts: usize) -> Vec<&'d [DomainRef<'a>]> {
    crate::parallel::balanced(domains, parts, |(domain, _)| 1 + domain.machines.len())
}

/// What lowering needs besides the domains themselves.
struct Context<'a> {
    infra: &'a Infra,
    sources: &'a SourceMap,
    waits: Waits,
    pool: &'a str,
    global_nat: bool,
    /// Each isolated domain's ACL, by domain name (none when isolation is off).
    acls: HashMap<&'a str, AclSpec>,
}

/// The steps and facts of a group of domains, each list in declaration order.
#[derive(Default)]
struct Lowered {
    /// Projects, networks, profiles and volumes.
    domain_steps: Vec<Step>,
    instances: Vec<Step>,
    starts: Vec<Step>,
    boot_waits: Vec<Step>,
    agent_waits: Vec<Step>,
    /// `(image, project/instance, where the image is chosen)` of every instance.
    images: Vec<(String, String, Location)>,
    provisioning: Vec<DomainInfo>,
}

impl Lowered {
    fn len(&self) -> usize {
        self.domain_steps.len()
            + self.instances.len()
            + self.starts.len()
            + self.boot_waits.len()
            + self.agent_waits.len()
    }
}

/// The names of a domain's project and bridge, and the ids of their steps.
struct DomainNames {
    project: String,
    bridge: String,
    project_id: String,
    network_id: String,
    acl_id: String,
}

impl DomainNames {
    fn of(domain: &ast::Domain) -> DomainNames {
        let project = project_name(&domain.name.value);
        let bridge = bridge_name(&domain.name.value);
        let project_id = concat(&["project:", &project]);
        let network_id = concat(&["network:", &bridge]);
        let acl_id = concat(&["acl:", &bridge]);
        DomainNames { project, bridge, project_id, network_id, acl_id }
    }
}

impl Context<'_> {
    fn lower_domains(&self, domains: &[DomainRef]) -> Lowered {
        let machines: usize = domains.iter().map(|(domain, _)| domain.machines.len()).sum();
        let mut out = Lowered {
            // A project, a bridge and a profile a domain, at least.
            domain_steps: Vec::with_capacity(domains.len() * 3),
            instances: Vec::with_capacity(machines),
            starts: Vec::with_capacity(machines),
            boot_waits: Vec::with_capacity(machines),
            images: Vec::with_capacity(machines),
            provisioning: Vec::with_capacity(domains.len()),
            ..Lowered::default()
        };
        let mut creates = Vec::with_capacity(machines);
        for &(domain, addressing) in domains {
            let names = DomainNames::of(domain);
            out.provisioning.push(domain_info(domain, addressing, &names));
            out.domain_steps.push(self.project_step(domain, &names));
            let Some(subnet) = addressing.subnet else { continue };
            let acl = self.acls.get(domain.name.value.as_str());
            if let Some(acl) = acl {
                out.domain_steps.push(self.step(
                    names.acl_id.clone(),
                    vec![],
                    domain.name.span,
                    Action::EnsureAcl(acl.clone()),
                ));
            }
            out.domain_steps.push(self.network_step(domain, subnet, &names, acl));
            self.profile_steps(domain, &names, &mut out.domain_steps);
            for (machine, address) in domain.machines.iter().zip(&addressing.machines) {
                let address = address.and_then(MachineAddress::address);
                let (spec, depends_on) = self.instance_spec(domain, machine, address, &names, &mut out.domain_steps);
                let chosen = machine.os_image.as_ref().or(self.infra.global.default_os_image.as_ref());
                let origin = self.sources.location(chosen.map_or(machine.name.span, |image| image.span));
                out.images.push((spec.image.clone(), concat(&[&names.project, "/", &machine.name.value]), origin));
                creates.push((spec, depends_on, machine.name.span));
            }
        }
        // All instances are created and started before any wait, so VMs boot in parallel.
        for (spec, depends_on, span) in creates {
            self.instance_steps(spec, depends_on, span, &mut out);
        }
        out
    }

    fn step(&self, id: String, depends_on: Vec<String>, span: Span, action: Action) -> Step {
        Step { id, depends_on, origin: self.sources.location(span), action }
    }

    fn project_step(&self, domain: &ast::Domain, names: &DomainNames) -> Step {
        self.step(
            names.project_id.clone(),
            vec![],
            domain.name.span,
            Action::EnsureProject(ProjectSpec {
                name: names.project.clone(),
                description: domain.description.as_ref().map_or_else(String::new, |d| d.value.clone()),
                config: PROJECT_FEATURES.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            }),
        )
    }

    /// The domain's bridge, under its ACL when it has one.
    fn network_step(
        &self,
        domain: &ast::Domain,
        subnet: addressing::Subnet,
        names: &DomainNames,
        acl: Option<&AclSpec>,
    ) -> Step {
        let nat = domain.nat.as_ref().map_or(self.global_nat, |n| n.value);
        let mut config = config([
            ("ipv4.address", subnet.gateway_cidr()),
            ("ipv4.dhcp.ranges", subnet.dhcp_range()),
            ("ipv4.nat", bool_text(nat).to_string()),
            ("ipv6.address", "none".to_string()),
        ]);
        for (key, value) in isolation::bridge_keys(acl.map(|acl| acl.name.as_str())) {
            config.insert(key.to_string(), value);
        }
        self.step(
            names.network_id.clone(),
            acl.map(|_| names.acl_id.clone()).into_iter().collect(),
            domain.name.span,
            Action::EnsureNetwork(NetworkSpec {
                name: names.bridge.clone(),
                description: format!("anklume domain {}", domain.name.value),
                config,
            }),
        )
    }

    /// The domain's `default` profile, then the others it declares.
    fn profile_steps(&self, domain: &ast::Domain, names: &DomainNames, steps: &mut Vec<Step>) {
        // The project's own `default` profile starts empty: give it a root disk and the
        // domain's NIC, then whatever the domain declares under `profiles: default`.
        let mut default_devices = Devices::new();
        default_devices.insert("root".into(), device("disk", [("path", "/"), ("pool", self.pool)]));
        default_devices.insert("eth0".into(), domain_nic(&names.bridge, None));
        let declared_default = domain.profile("default");
        let default = ProfileSpec {
            project: names.project.clone(),
            name: "default".into(),
            description: declared_default
                .and_then(|p| p.description.as_ref())
                .map_or_else(|| format!("anklume domain {} defaults", domain.name.value), |d| d.value.clone()),
            config: declared_default.map(|p| entries(&p.config)).unwrap_or_default(),
            devices: merge_devices(default_devices, declared_default.map(|p| p.devices.as_slice()).unwrap_or_default()),
        };
        let default_span = declared_default.map_or(domain.name.span, |p| p.name.span);
        let others = domain.profiles.iter().filter(|p| p.name.value != "default").map(|profile| {
            let spec = ProfileSpec {
                project: names.project.clone(),
                name: profile.name.value.clone(),
                description: profile.description.as_ref().map_or_else(String::new, |d| d.value.clone()),
                config: entries(&profile.config),
                devices: merge_devices(Devices::new(), &profile.devices),
            };
            (spec, profile.name.span)
        });
        for (spec, span) in std::iter::once((default, default_span)).chain(others) {
            steps.push(self.step(
                concat(&["profile:", &names.project, "/", &spec.name]),
                vec![names.project_id.clone(), names.network_id.clone()],
                span,
                Action::EnsureProfile(spec),
            ));
        }
    }

    /// A machine's instance, and the ids of the steps it depends on. The steps of its
    /// storage volumes go to `steps`.
    fn instance_spec(
        &self,
        domain: &ast::Domain,
        machine: &ast::Machine,
        address: Option<std::net::Ipv4Addr>,
        names: &DomainNames,
        steps: &mut Vec<Step>,
    ) -> (InstanceSpec, Vec<String>) {
        let project = &names.project;
        let profile_names: Vec<String> = match &machine.profiles {
            Some(list) => list.value.iter().map(|p| p.value.clone()).collect(),
            None => vec!["default".into()],
        };
        let mut depends_on = Vec::with_capacity(profile_names.len() + 2 + machine.storage_volumes.len());
        depends_on.extend([names.project_id.clone(), names.network_id.clone()]);
        depends_on.extend(profile_names.iter().map(|p| concat(&["profile:", project, "/", p])));

        let mut devices = Devices::new();
        if let Some(address) = address {
            // A whole device: it replaces the profile's `eth0`, filtering included.
            devices.insert("eth0".into(), domain_nic(&names.bridge, Some(&dotted(address))));
        }
        for volume in &machine.storage_volumes {
            let volume_pool = volume.pool.as_ref().map_or(self.pool, |p| p.value.as_str());
            let volume_id = concat(&["volume:", project, "/", volume_pool, "/", &volume.name.value]);
            steps.push(self.step(
                volume_id.clone(),
                vec![names.project_id.clone()],
                volume.name.span,
                Action::EnsureVolume(VolumeSpec {
                    project: project.clone(),
                    pool: volume_pool.to_string(),
                    name: volume.name.value.clone(),
                    config: volume.size.iter().map(|size| ("size".to_string(), size.value.clone())).collect(),
                }),
            ));
            depends_on.push(volume_id);
            if let Some(path) = &volume.path {
                devices.insert(
                    volume.name.value.clone(),
                    device(
                        "disk",
                        [("path", path.value.as_str()), ("pool", volume_pool), ("source", volume.name.value.as_str())],
                    ),
                );
            }
        }
        let image = machine
            .os_image
            .as_ref()
            .or(self.infra.global.default_os_image.as_ref())
            .map_or_else(String::new, |i| i.value.clone());
        let spec = InstanceSpec {
            project: project.clone(),
            name: machine.name.value.clone(),
            instance_type: machine.kind(),
            image,
            description: machine.description.as_ref().map_or_else(String::new, |d| d.value.clone()),
            profiles: profile_names,
            config: instance_config(machine, domain),
            devices: merge_devices(devices, &machine.devices),
            address,
            roles: machine.roles.iter().map(|r| r.value.clone()).collect(),
            gpu: machine.gpu.as_ref().is_some_and(|g| g.value),
        };
        (spec, depends_on)
    }

    /// An instance's steps: create, start, wait for it to run and, for a VM, for its agent.
    fn instance_steps(&self, spec: InstanceSpec, depends_on: Vec<String>, span: Span, out: &mut Lowered) {
        let key = concat(&[&spec.project, "/", &spec.name]);
        let target = InstanceTarget {
            project: spec.project.clone(),
            name: spec.name.clone(),
            instance_type: spec.instance_type,
        };
        let wait_spec = |wait: Wait| WaitSpec {
            project: spec.project.clone(),
            name: spec.name.clone(),
            instance_type: spec.instance_type,
            wait,
        };
        out.starts.push(self.step(
            concat(&["start:", &key]),
            vec![concat(&["instance:", &key])],
            span,
            Action::StartInstance(target),
        ));
        out.boot_waits.push(self.step(
            concat(&["wait:", &key]),
            vec![concat(&["start:", &key])],
            span,
            Action::WaitRunning(wait_spec(self.waits.boot(spec.instance_type))),
        ));
        if spec.instance_type == InstanceType::VirtualMachine {
            out.agent_waits.push(self.step(
                concat(&["agent:", &key]),
                vec![concat(&["wait:", &key])],
                span,
                Action::WaitAgent(wait_spec(self.waits.vm_agent)),
            ));
        }
        out.instances.push(self.step(
            concat(&["instance:", &key]),
            depends_on,
            span,
            Action::EnsureInstance(Box::new(spec)),
        ));
    }
}

/// What the provisioning handoff (inventory, site.yml) says of a domain.
fn domain_info(domain: &ast::Domain, addressing: &DomainAddressing, names: &DomainNames) -> DomainInfo {
    DomainInfo {
        name: domain.name.value.clone(),
        description: domain.description.as_ref().map_or_else(String::new, |d| d.value.clone()),
        trust_level: domain.trust(),
        ephemeral: domain.ephemeral.as_ref().is_some_and(|e| e.value),
        project: names.project.clone(),
        network: names.bridge.clone(),
        subnet: addressing.subnet.map(|s| s.cidr()),
        gateway: addressing.subnet.map(|s| s.gateway()),
        subnet_id: addressing.subnet.map(|s| s.octets[2]),
        instances: domain.machines.iter().map(|m| m.name.value.clone()).collect(),
    }
}

fn waits(settings: &ast::WaitSettings) -> Waits {
    let pick = |value: &Option<Spanned<i64>>, default: u32| {
        value.as_ref().and_then(|v| u32::try_from(v.value).ok()).unwrap_or(default)
    };
    let defaults = Waits::SEED_DEFAULTS;
    Waits {
        lxc: Wait {
            retries: pick(&settings.lxc_retries, defaults.lxc.retries),
            delay: pick(&settings.lxc_delay, defaults.lxc.delay),
        },
        vm: Wait {
            retries: pick(&settings.vm_retries, defaults.vm.retries),
            delay: pick(&settings.vm_delay, defaults.vm.delay),
        },
        vm_agent: Wait {
            retries: pick(&settings.vm_agent_retries, defaults.vm_agent.retries),
            delay: pick(&settings.vm_agent_delay, defaults.vm_agent.delay),
        },
    }
}

/// The instance's own config: its `config` map, then the keys anklume's machine
/// settings stand for (they win: they are the documented way to set them).
fn instance_config(machine: &ast::Machine, domain: &ast::Domain) -> Config {
    let mut config = entries(&machine.config);
    let ephemeral = machine.ephemeral.as_ref().or(domain.ephemeral.as_ref()).is_some_and(|e| e.value);
    config.insert("security.protection.delete".into(), bool_text(!ephemeral).to_string());
    if let Some(autostart) = &machine.boot_autostart {
        config.insert("boot.autostart".into(), bool_text(autostart.value).to_string());
    }
    if let Some(priority) = &machine.boot_priority {
        config.insert("boot.autostart.priority".into(), priority.value.to_string());
    }
    if let Some(schedule) = &machine.snapshots_schedule {
        config.insert("snapshots.schedule".into(), schedule.value.clone());
    }
    if let Some(expiry) = &machine.snapshots_expiry {
        config.insert("snapshots.expiry".into(), expiry.value.clone());
    }
    config
}

/// The parts, end to end (ids and keys, without `format!`'s machinery).
fn concat(parts: &[&str]) -> String {
    let mut text = String::with_capacity(parts.iter().map(|part| part.len()).sum());
    for part in parts {
        text.push_str(part);
    }
    text
}

/// An IPv4 address as `Display` writes it (`10.120.0.3`), without its machinery.
fn dotted(address: std::net::Ipv4Addr) -> String {
    let mut text = String::with_capacity(15);
    for (index, octet) in address.octets().into_iter().enumerate() {
        if index > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// A boolean as Incus stores it.
fn bool_text(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

fn entries(entries: &[ast::ConfigEntry]) -> Config {
    entries.iter().map(|entry| (entry.key.value.clone(), entry.value.value.clone())).collect()
}

fn config<const N: usize>(pairs: [(&str, String); N]) -> Config {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn device<const N: usize>(device_type: &str, options: [(&str, &str); N]) -> Device {
    Device {
        device_type: device_type.to_string(),
        options: options.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

/// The `eth0` of a domain's machines: on the domain's bridge, with anti-spoofing on
/// (and the machine's static address, for an instance's own device).
fn domain_nic(bridge: &str, address: Option<&str>) -> Device {
    let mut nic = device("nic", [("name", "eth0"), ("network", bridge)]);
    if let Some(address) = address {
        nic.options.insert("ipv4.address".into(), address.to_string());
    }
    for (key, value) in isolation::NIC_FILTERING {
        nic.options.insert(key.to_string(), value.to_string());
    }
    nic
}

/// Declared devices over generated ones: a declared device of the same name keeps the
/// generated options it does not set (so `eth0: {mtu: "1400"}` keeps its network).
fn merge_devices(mut generated: Devices, declared: &[ast::Device]) -> Devices {
    for declared in declared {
        let entry = generated.get_or_insert_with(declared.name.value.clone(), || Device {
            device_type: String::new(),
            options: Config::new(),
        });
        if let Some(device_type) = &declared.device_type {
            if entry.device_type != device_type.value {
                entry.options.clear();
            }
            entry.device_type = device_type.value.clone();
        }
        for option in &declared.options {
            entry.options.insert(option.key.value.clone(), option.value.value.clone());
        }
    }
    generated
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn addresses_read_as_displayed() {
        for octets in [[0, 0, 0, 0], [10, 120, 0, 3], [9, 99, 100, 255], [192, 168, 10, 1], [255, 255, 255, 255]] {
            let address = Ipv4Addr::from(octets);
            assert_eq!(dotted(address), address.to_string());
        }
        for octet in 0..=u8::MAX {
            let address = Ipv4Addr::new(octet, 1, octet, 10);
            assert_eq!(dotted(address), address.to_string());
        }
    }

    /// Every fixture's plan is the same whether its domains are lowered in one group or
    /// in several (on as many threads), down to one domain a group.
    #[test]
    fn the_plan_does_not_depend_on_how_many_groups_lower_it() {
        let mut checked = 0;
        for (path, text) in crate::test_fixtures::texts_in(&crate::test_fixtures::group("ok")) {
            let mut sources = SourceMap::new();
            let file = sources.add(crate::source::SourceFile::new("infra.yml", text.as_str()));
            let mut diagnostics = crate::diagnostics::Diagnostics::new();
            let Some(root) = crate::syntax::yaml::parse(file, &text, &Default::default(), &mut diagnostics) else {
                continue;
            };
            let infra = crate::syntax::read::read_infra(&root, &mut diagnostics);
            crate::check::check(&infra, &mut diagnostics);
            if diagnostics.has_errors() {
                continue;
            }
            let source = SourceInfo { path: "infra.yml".into(), sha256: String::new() };
            let json = |parts| serde_json::to_string(&lower_in_groups(&infra, &sources, source.clone(), parts)).ok();
            let whole = json(1);
            assert!(whole.is_some());
            for parts in [2, 3, infra.domains.len(), infra.domains.len() + 3] {
                assert_eq!(json(parts), whole, "{} in {parts} groups", path.display());
            }
            checked += 1;
        }
        assert!(checked > 10, "only {checked} fixtures lowered");
    }

    #[test]
    fn concat_joins_parts_end_to_end() {
        assert_eq!(concat(&["instance:", "work", "/", "web"]), "instance:work/web");
        assert_eq!(concat(&[]), "");
    }
}
