//! Device options: what each device type needs and accepts, in machines and profiles.
//!
//! Every rule here is one the Incus 6.0.4 server enforces (checked against a real
//! incusd; the message it gives is quoted in a comment). Unknown options are reported
//! only for the types whose option list Incus's own table documents (`disk`,
//! `unix-char`, `unix-block`, `unix-hotplug`, `usb`) and for `none`: a `nic`, `gpu` or
//! `proxy` takes options that depend on its subtype, and refusing a valid option would
//! block a deployment that works. Unknown device types are E0035 (machines.rs).
//!
//! A device is checked as Incus will see it: anklumec generates `root` and `eth0` in each
//! domain's `default` profile, `eth0` for a machine with an address, and a disk per
//! storage volume with a `path`, and a declared device of the same name and type is
//! merged into the generated one (`lower::merge_devices`), so `eth0: {type: nic, mtu:
//! "1400"}` keeps its `network`.
//!
//! Incus validates a profile's devices for any instance type, and then each instance's
//! devices, profiles included, for its own type: a profile device a container cannot
//! take fails the container (E0034, reported once on the profile device), while a
//! device of a type the instance does not support is skipped (W0007 on the machine's
//! profile reference).

use super::{closest, printable, quoted_list};
use crate::addressing::{self, MachineAddress};
use crate::diagnostics::{Diagnostic, Diagnostics, codes};
use crate::incus::config_keys::{self, ValueType};
use crate::source::Span;
use crate::syntax::ast::{ConfigEntry, Device, Domain, Infra, InstanceType, Machine, Profile, Text};

/// `nictype` values Incus 6.0 knows, and those that need a `parent`.
pub const NIC_TYPES: &[&str] = &["bridged", "macvlan", "sriov", "physical", "ipvlan", "p2p", "routed", "ovn"];
const NIC_TYPES_WITH_PARENT: &[&str] = &["bridged", "macvlan", "sriov", "physical", "ipvlan"];

pub fn check(infra: &Infra, diagnostics: &mut Diagnostics) {
    let resolution = addressing::resolve(infra);
    let defaults = default_profile_devices();
    for (index, domain) in infra.domains.iter().enumerate() {
        for profile in &domain.profiles {
            let generated = if profile.name.value == "default" { default_profile_devices() } else { Vec::new() };
            for device in &profile.devices {
                check_device(device, &generated, None, diagnostics);
            }
        }
        let addresses = resolution.domains.get(index).map(|d| (d.subnet.is_some(), d.machines.as_slice()));
        for (position, machine) in domain.machines.iter().enumerate() {
            let addressed = addresses.is_some_and(|(subnet, machines)| {
                subnet && machines.get(position).copied().flatten().and_then(MachineAddress::address).is_some()
            });
            let generated = machine_devices(machine, addressed);
            for device in &machine.devices {
                check_device(device, &generated, Some(machine), diagnostics);
            }
            check_root_disk(domain, machine, &generated, &defaults, diagnostics);
            check_profile_devices_reach(domain, machine, diagnostics);
        }
        check_profile_devices_for_containers(domain, diagnostics);
    }
}

/// A device anklumec generates: its name, type and option names (with the value of
/// `path`, the one value these checks read).
struct Generated {
    name: String,
    device_type: &'static str,
    options: Vec<(&'static str, Option<String>)>,
}

impl Generated {
    fn path(&self) -> Option<&str> {
        self.options.iter().find(|(name, _)| *name == "path").and_then(|(_, value)| value.as_deref())
    }
}

fn default_profile_devices() -> Vec<Generated> {
    vec![
        Generated {
            name: "root".into(),
            device_type: "disk",
            options: vec![("path", Some("/".into())), ("pool", None)],
        },
        Generated { name: "eth0".into(), device_type: "nic", options: vec![("name", None), ("network", None)] },
    ]
}

fn machine_devices(machine: &Machine, addressed: bool) -> Vec<Generated> {
    let mut devices = Vec::new();
    if addressed {
        devices.push(Generated {
            name: "eth0".into(),
            device_type: "nic",
            options: vec![("ipv4.address", None), ("name", None), ("network", None)],
        });
    }
    for volume in &machine.storage_volumes {
        if let Some(path) = &volume.path {
            devices.push(Generated {
                name: volume.name.value.clone(),
                device_type: "disk",
                options: vec![("path", Some(path.value.clone())), ("pool", None), ("source", None)],
            });
        }
    }
    devices
}

/// A device as Incus will get it: the declared options, over the generated device of
/// the same name and type.
struct Effective<'a> {
    device: &'a Device,
    device_type: &'a Text,
    /// Generated options the declaration does not set.
    generated: Vec<(&'static str, Option<String>)>,
}

impl<'a> Effective<'a> {
    fn new(device: &'a Device, generated: &[Generated]) -> Option<Effective<'a>> {
        let device_type = device.device_type.as_ref()?;
        if !crate::rules::is_device_type(&device_type.value) {
            return None;
        }
        let generated = generated
            .iter()
            .find(|g| g.name == device.name.value && g.device_type == device_type.value)
            .map(|g| g.options.iter().filter(|(name, _)| device.option(name).is_none()).cloned().collect())
            .unwrap_or_default();
        Some(Effective { device, device_type, generated })
    }

    fn kind(&self) -> &str {
        &self.device_type.value
    }

    fn has(&self, option: &str) -> bool {
        self.device.option(option).is_some() || self.generated.iter().any(|(name, _)| *name == option)
    }

    /// The declared option, if the user wrote it.
    fn declared(&self, option: &str) -> Option<&'a ConfigEntry> {
        self.device.options.iter().find(|o| o.key.value == option)
    }

    fn generated_by_anklumec(&self, option: &str) -> bool {
        self.declared(option).is_none() && self.generated.iter().any(|(name, _)| *name == option)
    }

    fn value(&self, option: &str) -> Option<String> {
        match self.device.option(option) {
            Some(value) => Some(value.value.clone()),
            None => self.generated.iter().find(|(name, _)| *name == option).and_then(|(_, value)| value.clone()),
        }
    }

    fn is_root_disk(&self) -> bool {
        self.kind() == "disk" && self.value("path").as_deref() == Some("/")
    }

    /// Where to point at an option: the declaration, or the device's name when
    /// anklumec generates the option.
    fn option_span(&self, option: &str) -> Span {
        self.declared(option).map_or(self.device.name.span, |entry| entry.key.span)
    }

    fn missing(&self, what: &str, help: impl Into<String>) -> Diagnostic {
        Diagnostic::new(
            codes::DEVICE_OPTION,
            self.device.name.span,
            format!("{} device `{}` has no {what}", self.kind(), printable(&self.device.name.value)),
            format!("{what} is missing"),
        )
        .with_help(help)
    }

    fn conflict(&self, option: &str, with: &str, note: Option<&str>) -> Diagnostic {
        let mut diagnostic = Diagnostic::new(
            codes::DEVICE_OPTION,
            self.option_span(option),
            format!(
                "`{option}` cannot be combined with `{with}` in {} device `{}`",
                self.kind(),
                printable(&self.device.name.value)
            ),
            format!("`{option}` is set here"),
        );
        if self.generated_by_anklumec(with) {
            diagnostic = diagnostic.with_label(
                self.device.name.span,
                format!("anklumec sets `{with}` on `{}`", printable(&self.device.name.value)),
            );
        } else {
            diagnostic = diagnostic.with_label(self.option_span(with), format!("`{with}` is set here"));
        }
        if let Some(note) = note {
            diagnostic = diagnostic.with_note(note);
        }
        diagnostic.with_help(format!("Remove `{option}` or `{with}`."))
    }
}

fn check_device(device: &Device, generated: &[Generated], machine: Option<&Machine>, diagnostics: &mut Diagnostics) {
    check_option_names(device, diagnostics);
    let Some(effective) = Effective::new(device, generated) else { return };
    check_options(&effective, diagnostics);
    for diagnostic in type_rules(&effective) {
        diagnostics.push(diagnostic);
    }
    let Some(machine) = machine else { return };
    match machine.kind() {
        InstanceType::Container => {
            for diagnostic in container_rules(&effective) {
                diagnostics.push(diagnostic.with_label(machine_type_span(machine), container_label(machine)));
            }
        }
        InstanceType::VirtualMachine => {}
    }
    if let Some(only) = unsupported_on(effective.kind(), machine.kind()) {
        let machine_name = &machine.name.value;
        diagnostics.push(
            Diagnostic::new(
                codes::DEVICE_OPTION,
                effective.device_type.span,
                format!("{} `{machine_name}` cannot have a `{}` device", type_name(machine.kind()), effective.kind()),
                format!("`{}` devices are for {only} only", effective.kind()),
            )
            .with_label(machine_type_span(machine), machine_type_text(machine))
            .with_note("Incus refuses it: `Unsupported device type`")
            .with_help(match machine.kind() {
                InstanceType::Container => format!("Remove the device, or make `{machine_name}` a VM (`type: vm`)."),
                InstanceType::VirtualMachine => {
                    format!("Remove the device, or make `{machine_name}` a container (`type: lxc`).")
                }
            }),
        );
    }
}

fn type_name(kind: InstanceType) -> &'static str {
    match kind {
        InstanceType::Container => "container",
        InstanceType::VirtualMachine => "VM",
    }
}

fn machine_type_span(machine: &Machine) -> Span {
    machine.instance_type.as_ref().map_or(machine.name.span, |t| t.span)
}

fn machine_type_text(machine: &Machine) -> String {
    match &machine.instance_type {
        Some(kind) => format!("`{}` is a {}", machine.name.value, type_name(kind.value)),
        None => format!("`{}` is a container (the default type)", machine.name.value),
    }
}

fn container_label(machine: &Machine) -> String {
    machine_type_text(machine)
}

/// The instance kind a device type is limited to, when `kind` cannot have it
/// (`Unsupported device type`).
fn unsupported_on(device_type: &str, kind: InstanceType) -> Option<&'static str> {
    match (device_type, kind) {
        ("pci", InstanceType::Container) => Some("VMs"),
        ("unix-char" | "unix-block" | "unix-hotplug", InstanceType::VirtualMachine) => Some("containers"),
        _ => None,
    }
}

/// Option names deploy.sh cannot pass: it hands Incus `KEY=VALUE`, split at the first
/// `=`, so a name with `=` (or whitespace, which no Incus option has) would set another
/// option than the one declared.
fn check_option_names(device: &Device, diagnostics: &mut Diagnostics) {
    for option in &device.options {
        let Some(c) = option.key.value.chars().find(|c| c.is_whitespace() || *c == '=') else { continue };
        diagnostics.push(
            Diagnostic::new(
                codes::DEVICE_OPTION,
                option.key.span,
                format!("device option `{}` holds {}", printable(&option.key.value), super::describe_char(c)),
                "whitespace and `=` cannot be part of an option name",
            )
            .with_note("Incus takes `KEY=VALUE` and splits it at the first `=`")
            .with_help("Use the option's name, such as `path` or `source`."),
        );
    }
}

/// Unknown options and boolean values, for the types Incus's table documents.
fn check_options(effective: &Effective<'_>, diagnostics: &mut Diagnostics) {
    let device_type = effective.kind();
    let Some(known) = config_keys::device_options(device_type) else { return };
    for option in &effective.device.options {
        let Some(info) = config_keys::device_option(device_type, &option.key.value) else {
            let shown = printable(&option.key.value);
            let diagnostic = Diagnostic::new(
                codes::DEVICE_OPTION,
                option.key.span,
                format!("unknown option `{shown}` for a `{device_type}` device"),
                format!("not an option of `{device_type}` devices"),
            )
            .with_note("Incus refuses it: `Invalid device option`");
            let names: Vec<&str> = known.iter().map(|o| o.name.as_str()).collect();
            diagnostics.push(match closest(&option.key.value, names.iter().copied()) {
                Some(suggestion) => diagnostic.with_help(format!("Did you mean `{suggestion}`?")),
                None if names.is_empty() => diagnostic.with_help(format!("`{device_type}` devices take no options.")),
                None => diagnostic.with_help(format!("`{device_type}` devices take {}.", quoted_list(&names))),
            });
            continue;
        };
        let value = &option.value.value;
        let is_bool =
            ["true", "false", "yes", "no", "on", "off", "1", "0"].iter().any(|w| w.eq_ignore_ascii_case(value));
        if info.value_type == ValueType::Bool && !value.is_empty() && !is_bool {
            diagnostics.push(
                Diagnostic::new(
                    codes::DEVICE_OPTION,
                    option.value.span,
                    format!(
                        "invalid value for `{}` of device `{}`",
                        option.key.value,
                        printable(&effective.device.name.value)
                    ),
                    "expected `true` or `false`",
                )
                .with_help("Write `\"true\"` or `\"false\"`."),
            );
        }
    }
}

/// What a device of its type needs and refuses, whatever the instance.
fn type_rules(effective: &Effective<'_>) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    let name = printable(&effective.device.name.value);
    match effective.kind() {
        "disk" if effective.is_root_disk() => {
            // `Root disk entry may not have a "source" property set`
            if let Some(source) = effective.declared("source") {
                found.push(
                    Diagnostic::new(
                        codes::DEVICE_OPTION,
                        source.key.span,
                        format!("root disk `{name}` cannot have a `source`"),
                        "a root disk (`path: /`) takes its volume from `pool`",
                    )
                    .with_help("Remove `source`; the root disk is the instance's own volume in `pool`."),
                );
            }
            // `Root disk entry must have a "pool" property set`
            if !effective.has("pool") {
                found.push(effective.missing(
                    "`pool`",
                    "A root disk (`path: /`) needs the storage pool of the instance's volume, such as `pool: default`.",
                ));
            }
        }
        "disk" => {
            // `Disk entry is missing the required "source" or "path" property`
            if !effective.has("source") {
                found.push(effective.missing(
                    "`source`",
                    "Set `source`: a host path (`/srv/data`), or with `pool` the name of a storage volume. Only the root disk (`path: /`) has no source.",
                ));
            }
            // `Only the root disk may have a size quota` (and `a migration size quota`)
            for option in ["size", "size.state"] {
                if let Some(entry) = effective.declared(option) {
                    found.push(
                        Diagnostic::new(
                            codes::DEVICE_OPTION,
                            entry.key.span,
                            format!("only the root disk can have `{option}`"),
                            format!("disk `{name}` is not the root disk (`path: /`)"),
                        )
                        .with_help(
                            "Only the root disk (`path: /`, with `pool`) has a size: add `path: /` and `pool` to size the root disk, or size a storage volume instead (`storage_volumes` with `size`).",
                        ),
                    );
                }
            }
        }
        "nic" => found.extend(nic_rules(effective)),
        "proxy" => {
            // `Invalid value for device option "listen"/"connect": Unknown protocol type ""`
            for option in ["listen", "connect"] {
                if !effective.has(option) {
                    found.push(effective.missing(
                        &format!("`{option}` address"),
                        "A proxy needs `listen` and `connect`, such as `listen: tcp:0.0.0.0:8080` and `connect: tcp:127.0.0.1:80`.",
                    ));
                }
            }
        }
        "gpu" => {
            // `Cannot use "id" when "pci" is set`, `Cannot use "productid" when "id" is set`
            for (option, with) in
                [("id", "pci"), ("vendorid", "pci"), ("productid", "pci"), ("vendorid", "id"), ("productid", "id")]
            {
                if effective.has(option) && effective.has(with) {
                    found.push(effective.conflict(
                        option,
                        with,
                        Some("a GPU is chosen by `pci` address, by `id`, or by `vendorid`/`productid`"),
                    ));
                }
            }
        }
        "unix-char" | "unix-block" if !effective.has("source") && !effective.has("path") => {
            // `Unix device entry is missing the required "source" or "path" property`
            found.push(effective.missing(
                "`source` or `path`",
                "Set `source` (the device on the host, such as `/dev/kvm`), `path` (inside the instance), or both.",
            ));
        }
        "unix-hotplug" if !effective.has("vendorid") && !effective.has("productid") => {
            // `Unix hotplug devices require a vendorid or a productid`
            found.push(effective.missing(
                "`vendorid` or `productid`",
                "Set the USB `vendorid`, `productid`, or both, of the devices to pass through.",
            ));
        }
        _ => {}
    }
    found
}

fn nic_rules(effective: &Effective<'_>) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    let has_network = effective.has("network");
    let anklumec_network = effective.generated_by_anklumec("network");
    let note = anklumec_network.then_some("anklumec connects this device to the domain's bridge with `network`");
    // `Cannot use "nictype" property in conjunction with "network" property` (and `parent`)
    for option in ["nictype", "parent"] {
        if has_network && effective.has(option) {
            found.push(effective.conflict(option, "network", note));
        }
    }
    if has_network {
        return found;
    }
    match effective.declared("nictype") {
        // `Unsupported device type`
        None => found.push(effective.missing(
            "`network` or `nictype`",
            "Set `network` (a managed network, such as a domain's bridge), or `nictype` with its `parent` (such as `nictype: macvlan` and `parent: eth0`).",
        )),
        Some(nictype) if !NIC_TYPES.contains(&nictype.value.value.as_str()) => {
            let diagnostic = Diagnostic::new(
                codes::DEVICE_OPTION,
                nictype.value.span,
                format!("unknown nictype `{}`", printable(&nictype.value.value)),
                "not a NIC type of Incus",
            )
            .with_note("Incus refuses it: `Unsupported device type`");
            found.push(match closest(&nictype.value.value, NIC_TYPES.iter().copied()) {
                Some(suggestion) => diagnostic.with_help(format!("Did you mean `{suggestion}`?")),
                None => diagnostic.with_help(format!("Use one of {}.", quoted_list(NIC_TYPES))),
            });
        }
        // `Invalid value for device option "parent": Required value`
        Some(nictype) if NIC_TYPES_WITH_PARENT.contains(&nictype.value.value.as_str()) && !effective.has("parent") => {
            found.push(
                effective
                    .missing("`parent`", format!("A `{}` NIC needs `parent`: the host interface or bridge it attaches to.", nictype.value.value))
                    .with_label(nictype.value.span, format!("`{}` needs a parent", nictype.value.value)),
            );
        }
        Some(_) => {}
    }
    found
}

/// What a container refuses in a device that a VM or a profile accepts.
fn container_rules(effective: &Effective<'_>) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    let name = printable(&effective.device.name.value);
    match effective.kind() {
        "disk" => {
            // Accepted when created, but the container fails to start.
            // (A disk without `source` is reported already, whatever the instance.)
            if !effective.is_root_disk() && !effective.has("path") && effective.has("source") {
                found.push(
                    Diagnostic::new(
                        codes::DEVICE_OPTION,
                        effective.device.name.span,
                        format!("disk `{name}` has no `path` in a container"),
                        "`path` is missing",
                    )
                    .with_note("Incus creates the container, which then fails to start")
                    .with_help("Set `path`: where the disk is mounted inside the container, such as `/data`."),
                );
            }
            // `IO bus configuration cannot be applied to containers` (and `IO cache`)
            for option in ["io.bus", "io.cache"] {
                if let Some(entry) = effective.declared(option) {
                    found.push(
                        Diagnostic::new(
                            codes::DEVICE_OPTION,
                            entry.key.span,
                            format!("`{option}` of disk `{name}` cannot apply to a container"),
                            format!("`{option}` is for VMs only"),
                        )
                        .with_help(format!("Remove `{option}`, or use the disk in a VM only.")),
                    );
                }
            }
        }
        "tpm" => {
            // `Invalid value for device option "path": Required value` (then `pathrm`)
            for option in ["path", "pathrm"] {
                if !effective.has(option) {
                    found.push(effective.missing(
                        &format!("`{option}` in a container"),
                        "A TPM in a container needs `path` and `pathrm`, such as `/dev/tpm0` and `/dev/tpmrm0`.",
                    ));
                }
            }
        }
        _ => {}
    }
    found
}

/// The declared profiles a machine uses, with the span that names each one for it.
fn used_profiles<'a>(domain: &'a Domain, machine: &Machine) -> Vec<(&'a Profile, Span)> {
    match &machine.profiles {
        Some(list) => {
            list.value.iter().filter_map(|name| domain.profile(&name.value).map(|p| (p, name.span))).collect()
        }
        None => domain.profile("default").map(|p| (p, machine.name.span)).into_iter().collect(),
    }
}

/// Incus refuses to create an instance without a root disk (`Failed getting root disk:
/// No root device could be found`, seen on incusd 6.0.4). The domain's `default`
/// profile gives one; a machine whose `profiles` leave `default` out (or are empty)
/// needs one from another profile or its own devices. Devices are taken as Incus
/// merges them: profiles in order, then the machine's, a later device replacing an
/// earlier one of the same name.
/// `defaults` are the devices anklumec generates in the `default` profile.
fn check_root_disk(
    domain: &Domain,
    machine: &Machine,
    generated: &[Generated],
    defaults: &[Generated],
    diagnostics: &mut Diagnostics,
) {
    // A storage volume named `root` replacing the root disk is E0030 already.
    if generated.iter().any(|device| device.name == "root") {
        return;
    }
    // Most machines: the `default` profile's root disk, which nothing named `root`
    // replaces.
    let touches_root = |devices: &[Device]| devices.iter().any(|device| device.name.value == "root");
    if machine.profiles.is_none()
        && !touches_root(&machine.devices)
        && domain.profile("default").is_none_or(|profile| !touches_root(&profile.devices))
    {
        return;
    }
    let names: Vec<&str> = match &machine.profiles {
        Some(list) => list.value.iter().map(|name| name.value.as_str()).collect(),
        None => vec!["default"],
    };
    let mut layers: Vec<(&[Device], &[Generated])> = Vec::with_capacity(names.len() + 1);
    for name in names {
        match (name, domain.profile(name)) {
            ("default", profile) => layers.push((profile.map(|p| p.devices.as_slice()).unwrap_or_default(), defaults)),
            (_, Some(profile)) => layers.push((&profile.devices, &[])),
            // An unknown profile is E0015: what it would give is not known.
            (_, None) => return,
        }
    }
    layers.push((&machine.devices, generated));
    let known_type =
        |device: &Device| device.device_type.as_ref().is_some_and(|t| crate::rules::is_device_type(&t.value));
    // A device without a known type is reported already; its effect is not known.
    if layers.iter().flat_map(|(devices, _)| devices.iter()).any(|device| !known_type(device)) {
        return;
    }
    // Each device name with whether its last definition is a root disk (a declared
    // device takes the generated one's options when it does not set them).
    let mut root: Vec<(&str, bool)> = Vec::new();
    fn define<'n>(root: &mut Vec<(&'n str, bool)>, name: &'n str, is_root: bool) {
        match root.iter_mut().find(|(known, _)| *known == name) {
            Some(entry) => entry.1 = is_root,
            None => root.push((name, is_root)),
        }
    }
    for &(devices, generated) in &layers {
        for device in generated.iter().filter(|g| !devices.iter().any(|d| d.name.value == g.name)) {
            define(&mut root, &device.name, device.device_type == "disk" && device.path() == Some("/"));
        }
        for device in devices {
            let disk = device.device_type.as_ref().is_some_and(|t| t.value == "disk");
            let path = device.option("path").map(|value| value.value.as_str()).or_else(|| {
                generated
                    .iter()
                    .find(|g| g.name == device.name.value && g.device_type == "disk")
                    .and_then(Generated::path)
            });
            define(&mut root, &device.name.value, disk && path == Some("/"));
        }
    }
    if root.iter().any(|&(_, is_root)| is_root) {
        return;
    }
    let span = machine.profiles.as_ref().map_or(machine.name.span, |profiles| profiles.span);
    diagnostics.push(
        Diagnostic::new(
            codes::NO_ROOT_DISK,
            span,
            format!("machine `{}` has no root disk", machine.name.value),
            match &machine.profiles {
                Some(_) => "none of these profiles, nor the machine's devices, gives a root disk",
                None => "neither the `default` profile nor the machine's devices give a root disk",
            },
        )
        .with_note("Incus refuses to create an instance without a disk device at `path: /`")
        .with_help(
            "Add `default` to its profiles (the domain's `default` profile has the root disk), or give it a disk device with `path: /` and `pool: default`.",
        ),
    );
}

/// A profile device of a type the machine does not support: Incus skips it (W0007).
fn check_profile_devices_reach(domain: &Domain, machine: &Machine, diagnostics: &mut Diagnostics) {
    if machine.type_unknown {
        return;
    }
    let kind = machine.kind();
    for (profile, reference) in used_profiles(domain, machine) {
        // A machine device of the same name replaces the profile's.
        let idle: Vec<&Device> = profile
            .devices
            .iter()
            .filter(|d| d.device_type.as_ref().is_some_and(|t| unsupported_on(&t.value, kind).is_some()))
            .filter(|d| !machine.devices.iter().any(|own| own.name.value == d.name.value))
            .collect();
        for device in idle {
            let Some(device_type) = &device.device_type else { continue };
            let only = unsupported_on(&device_type.value, kind).unwrap_or_default();
            let mut diagnostic = Diagnostic::new(
                codes::PROFILE_KEY_NO_EFFECT,
                reference,
                format!(
                    "profile `{}` gives {} `{}` a `{}` device, which has no effect on it",
                    profile.name.value,
                    type_name(kind),
                    machine.name.value,
                    device_type.value
                ),
                match &machine.profiles {
                    Some(_) => format!("{} `{}` uses this profile", type_name(kind), machine.name.value),
                    None => format!(
                        "{} `{}` uses profile `{}` (the default)",
                        type_name(kind),
                        machine.name.value,
                        profile.name.value
                    ),
                },
            )
            .with_label(device_type.span, format!("`{}` devices are for {only} only", device_type.value));
            if machine.instance_type.is_some() {
                diagnostic = diagnostic.with_label(machine_type_span(machine), machine_type_text(machine));
            }
            diagnostics.push(diagnostic.with_note("Incus skips a device its instance type does not support").with_help(
                "Give the machine a profile without the device, or move the device into the `devices` of the machines it is for.",
            ));
        }
    }
}

/// A profile device a container refuses, reported once on the device with the
/// containers that use it.
fn check_profile_devices_for_containers(domain: &Domain, diagnostics: &mut Diagnostics) {
    for profile in &domain.profiles {
        let generated = if profile.name.value == "default" { default_profile_devices() } else { Vec::new() };
        for device in &profile.devices {
            let Some(effective) = Effective::new(device, &generated) else { continue };
            let users: Vec<(&Machine, Span)> = domain
                .machines
                .iter()
                .filter(|m| m.kind() == InstanceType::Container)
                .filter(|m| !m.devices.iter().any(|own| own.name.value == device.name.value))
                .filter_map(|m| {
                    used_profiles(domain, m)
                        .into_iter()
                        .find(|(p, _)| p.name.value == profile.name.value)
                        .map(|(_, span)| (m, span))
                })
                .collect();
            if users.is_empty() {
                continue;
            }
            let names: Vec<&str> = users.iter().map(|(m, _)| m.name.value.as_str()).collect();
            for mut diagnostic in container_rules(&effective) {
                diagnostic.message =
                    format!("{} (profile `{}` is used by containers)", diagnostic.message, profile.name.value);
                diagnostic = diagnostic.with_note(format!(
                    "used by {} {}",
                    if names.len() == 1 { "container" } else { "containers" },
                    quoted_list(&names)
                ));
                for (machine, span) in &users {
                    diagnostic = diagnostic.with_label(
                        *span,
                        format!("container `{}` uses profile `{}`", machine.name.value, profile.name.value),
                    );
                }
                diagnostics.push(diagnostic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    fn devices_of(machine_devices: &str) -> String {
        with_domains(&format!("  work:\n    machines:\n      web:\n        devices:\n{machine_devices}"))
    }

    /// Root disks merge as Incus merges devices: the `default` profile's unless left
    /// out or hidden by a later `none` device, another profile's, or the machine's own.
    #[test]
    fn a_machine_needs_a_root_disk_from_its_profiles_or_devices() {
        let text = with_domains(
            "  work:\n    profiles:\n      small:\n        config: {limits.cpu: \"2\"}\n      disky:\n        devices:\n          root: {type: disk, path: /, pool: default}\n      hider:\n        devices:\n          root: {type: none}\n    machines:\n      a: {type: vm, profiles: [small]}\n      b: {profiles: []}\n      c: {profiles: [disky]}\n      d: {profiles: [default, small]}\n      e: {profiles: [default, hider]}\n      f: {profiles: [], devices: {root: {type: disk, path: /, pool: default}}}\n      g: {}\n      h: {devices: {root: {type: none}}}\n      i: {profiles: [nowhere]}\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0037"), ["[small]", "[]", "[default, hider]", "h"]);
        let message = |name: &str| format!("machine `{name}` has no root disk");
        let messages: Vec<&str> =
            diagnostics.iter().filter(|d| d.code.id == "E0037").map(|d| d.message.as_str()).collect();
        assert_eq!(messages, [message("a"), message("b"), message("e"), message("h")]);
    }

    #[test]
    fn unknown_options_only_for_documented_types() {
        let text = devices_of(
            "          data:\n            type: disk\n            source: /srv\n            path: /data\n            readonly: \"true\"\n            optional: \"true\"\n            initial.zfs.blocksize: 16KiB\n            redonly: \"true\"\n          usb:\n            type: usb\n            vendorid: \"1234\"\n            serial: x\n            bogus: x\n          nothing:\n            type: none\n            x: y\n          http:\n            type: proxy\n            listen: tcp:0.0.0.0:80\n            connect: tcp:127.0.0.1:80\n            whatever: x\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0034"), ["redonly", "bogus", "x"]);
        let typo = diagnostics.iter().find(|d| d.code.id == "E0034").expect("redonly");
        assert_eq!(typo.help.as_deref(), Some("Did you mean `readonly`?"));
    }

    #[test]
    fn boolean_options() {
        let text = devices_of(
            "          data:\n            type: disk\n            source: /srv\n            path: /data\n            readonly: maybe\n            shift: \"no\"\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0034"), ["maybe"]);
    }

    #[test]
    fn disks() {
        let text = devices_of(
            "          data:\n            type: disk\n            path: /data\n          big:\n            type: disk\n            source: /srv\n            path: /big\n            size: 10GiB\n          root:\n            type: disk\n            path: /\n            source: /x\n          share:\n            type: disk\n            source: /srv/share\n          bus:\n            type: disk\n            source: /srv\n            path: /bus\n            io.bus: virtiofs\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0034"), ["data", "size", "root", "source", "share", "io.bus"]);
        let messages: Vec<&str> =
            diagnostics.iter().filter(|d| d.code.id == "E0034").map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "disk device `data` has no `source`",
                "only the root disk can have `size`",
                "disk device `root` has no `pool`",
                "root disk `root` cannot have a `source`",
                "disk `share` has no `path` in a container",
                "`io.bus` of disk `bus` cannot apply to a container"
            ]
        );
    }

    #[test]
    fn disks_in_vms_need_no_path() {
        let text = with_domains(
            "  work:\n    machines:\n      vm:\n        type: vm\n        config:\n          limits.memory: 1GiB\n        devices:\n          block:\n            type: disk\n            source: /dev/sdb\n            io.bus: nvme\n",
        );
        let diagnostics = check_text(&text);
        assert!(found(&text, &diagnostics, "E0034").is_empty(), "{:#?}", summary(&diagnostics));
    }

    #[test]
    fn generated_devices_are_merged() {
        let text = with_domains(
            "  work:\n    profiles:\n      default:\n        devices:\n          eth0:\n            type: nic\n            mtu: \"1400\"\n          root:\n            type: disk\n            size: 20GiB\n    machines:\n      web:\n        devices:\n          eth0:\n            type: nic\n            nictype: macvlan\n            parent: enp3s0\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0034"), ["nictype", "parent"]);
        let d = diagnostics.iter().find(|d| d.code.id == "E0034").expect("nictype");
        assert_eq!(d.message, "`nictype` cannot be combined with `network` in nic device `eth0`");
        assert_eq!(d.labels[1].message, "anklumec sets `network` on `eth0`");
    }

    #[test]
    fn nics_proxies_gpus_and_unix_devices() {
        let text = devices_of(
            "          lan:\n            type: nic\n            mtu: \"1400\"\n          mac:\n            type: nic\n            nictype: macvlan\n          odd:\n            type: nic\n            nictype: Bridged\n            parent: br0\n          p2p:\n            type: nic\n            nictype: p2p\n          http:\n            type: proxy\n            listen: tcp:0.0.0.0:80\n          card:\n            type: gpu\n            pci: \"0000:01:00.0\"\n            id: \"0\"\n          kvm:\n            type: unix-char\n            required: \"false\"\n          hot:\n            type: unix-hotplug\n          tpm:\n            type: tpm\n            path: /dev/tpm0\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0034"), ["lan", "mac", "Bridged", "http", "id", "kvm", "hot", "tpm"]);
        let odd = diagnostics.iter().find(|d| d.message.contains("nictype `Bridged`")).expect("odd");
        assert_eq!(odd.help.as_deref(), Some("Did you mean `bridged`?"));
    }

    #[test]
    fn gpu_pci_is_fine_in_containers() {
        let text = devices_of(
            "          card:\n            type: gpu\n            gputype: physical\n            pci: \"0000:01:00.0\"\n",
        );
        let diagnostics = check_text(&text);
        assert!(found(&text, &diagnostics, "E0034").is_empty(), "{:#?}", summary(&diagnostics));
    }

    #[test]
    fn device_types_an_instance_cannot_have() {
        let text = with_domains(
            "  work:\n    profiles:\n      passthrough:\n        devices:\n          nvme:\n            type: pci\n            address: \"0000:02:00.0\"\n          kvm:\n            type: unix-char\n            source: /dev/kvm\n    machines:\n      web:\n        profiles: [default, passthrough]\n        devices:\n          nvme:\n            type: pci\n            address: \"0000:02:00.0\"\n      vm:\n        type: vm\n        profiles: [passthrough]\n        config:\n          limits.memory: 1GiB\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0034"), ["pci"]);
        assert_eq!(found(&text, &diagnostics, "W0007"), ["passthrough"]);
        let w = only(&diagnostics, "W0007");
        assert_eq!(w.message, "profile `passthrough` gives VM `vm` a `unix-char` device, which has no effect on it");
        assert_eq!(secondaries(&text, w), ["unix-char", "vm"]);
    }

    #[test]
    fn profile_devices_containers_refuse() {
        let text = with_domains(
            "  work:\n    profiles:\n      shared:\n        devices:\n          data:\n            type: disk\n            source: /srv\n    machines:\n      one:\n        profiles: [default, shared]\n      two:\n        profiles: [shared]\n      vm:\n        type: vm\n        profiles: [shared]\n        config:\n          limits.memory: 1GiB\n",
        );
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0034");
        assert_eq!(primary(&text, d), "data");
        assert_eq!(d.message, "disk `data` has no `path` in a container (profile `shared` is used by containers)");
        assert_eq!(secondaries(&text, d), ["shared", "shared"]);
    }

    #[test]
    fn the_corpus_devices_are_fine() {
        let text = with_domains(
            "  work:\n    profiles:\n      nvidia:\n        devices:\n          gpu:\n            type: gpu\n            gputype: physical\n            gid: \"44\"\n      logs:\n        devices:\n          logs:\n            type: disk\n            source: /srv/logs\n            path: /var/log/shared\n            readonly: \"true\"\n    machines:\n      web:\n        profiles: [default, nvidia, logs]\n        devices:\n          http:\n            type: proxy\n            listen: tcp:0.0.0.0:8080\n            connect: tcp:127.0.0.1:80\n",
        );
        let diagnostics = check_text(&text);
        assert!(found(&text, &diagnostics, "E0034").is_empty(), "{:#?}", summary(&diagnostics));
    }
}
