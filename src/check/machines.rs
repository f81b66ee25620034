//! Machine settings: boot and snapshot values, wait loops, GPU policy, isolation
//! advice (containers in untrusted zones, privileged containers), VM memory.

use super::{closest, printable, quoted_list};
use crate::diagnostics::{Diagnostic, Diagnostics, codes};
use crate::incus::values;
use crate::rules::{self, BOOT_PRIORITY, DELAY, RETRIES};
use crate::source::{Span, Spanned};
use crate::syntax::ast::{ConfigEntry, Domain, GpuPolicy, Infra, InstanceType, Machine, Profile, TrustLevel};

pub fn check(infra: &Infra, diagnostics: &mut Diagnostics) {
    check_waits(infra, diagnostics);
    for domain in &infra.domains {
        for profile in &domain.profiles {
            check_device_types(&profile.devices, diagnostics);
        }
        for machine in &domain.machines {
            check_device_types(&machine.devices, diagnostics);
            check_boot_and_snapshots(machine, diagnostics);
            check_isolation(domain, machine, diagnostics);
            check_privileged(machine, diagnostics);
            check_vm_memory(domain, machine, diagnostics);
            check_replaced_keys(domain, machine, diagnostics);
        }
        check_privileged_profiles(domain, diagnostics);
        check_profile_protection(domain, diagnostics);
    }
    check_gpu_policy(infra, diagnostics);
}

fn out_of_range(value: &Spanned<i64>, what: &str, low: i64, high: i64) -> Diagnostic {
    Diagnostic::new(
        codes::OUT_OF_RANGE,
        value.span,
        format!("`{what}` {} is out of range", value.value),
        format!("must be from {low} to {high}"),
    )
}

fn check_waits(infra: &Infra, diagnostics: &mut Diagnostics) {
    let waits = &infra.global.waits;
    let settings = [
        (&waits.lxc_retries, "incus_instances_lxc_retries", RETRIES),
        (&waits.lxc_delay, "incus_instances_lxc_delay", DELAY),
        (&waits.vm_retries, "incus_instances_vm_retries", RETRIES),
        (&waits.vm_delay, "incus_instances_vm_delay", DELAY),
        (&waits.vm_agent_retries, "incus_instances_vm_agent_retries", RETRIES),
        (&waits.vm_agent_delay, "incus_instances_vm_agent_delay", DELAY),
    ];
    for (value, name, range) in settings {
        if let Some(value) = value.as_ref().filter(|v| !range.contains(&v.value)) {
            let (low, high) = (*range.start(), *range.end());
            let (note, help) = if range == RETRIES {
                ("retries is the number of polls", format!("Write a number of polls from {low} to {high}."))
            } else {
                ("the delay is in seconds between polls", format!("Write a delay from {low} to {high} seconds."))
            };
            diagnostics.push(out_of_range(value, name, low, high).with_note(note).with_help(help));
        }
    }
}

fn check_device_types(devices: &[crate::syntax::ast::Device], diagnostics: &mut Diagnostics) {
    for device in devices {
        // A device without `type` is reported by the reader (E0028).
        let Some(device_type) = &device.device_type else { continue };
        if rules::is_device_type(&device_type.value) {
            continue;
        }
        let diagnostic = Diagnostic::new(
            codes::UNKNOWN_DEVICE_TYPE,
            device_type.span,
            format!("unknown device type `{}`", printable(&device_type.value)),
            format!("device `{}` has no valid type", printable(&device.name.value)),
        );
        diagnostics.push(match closest(&device_type.value, rules::device_type_names()) {
            Some(suggestion) => diagnostic.with_help(format!("Did you mean `{suggestion}`?")),
            None => {
                let names: Vec<&str> = rules::device_type_names().collect();
                diagnostic.with_help(format!("Use one of {}.", quoted_list(&names)))
            }
        });
    }
}

fn check_boot_and_snapshots(machine: &Machine, diagnostics: &mut Diagnostics) {
    if let Some(priority) = machine.boot_priority.as_ref().filter(|p| !BOOT_PRIORITY.contains(&p.value)) {
        let (low, high) = (*BOOT_PRIORITY.start(), *BOOT_PRIORITY.end());
        diagnostics.push(
            out_of_range(priority, "boot_priority", low, high)
                .with_note("machines with a higher `boot_priority` start first")
                .with_help(format!("Write a priority from {low} to {high}.")),
        );
    }
    if let Some(schedule) = &machine.snapshots_schedule
        && let Err(error) = values::parse_cron(&schedule.value)
    {
        diagnostics.push(
            Diagnostic::new(
                codes::INVALID_CRON,
                error.span_in(schedule.span, &schedule.value),
                format!("invalid snapshot schedule `{}`", printable(&schedule.value)),
                error.message,
            )
            .with_note("fields: minute, hour, day of month, month, day of week")
            .with_help("Write a 5-field cron expression such as `0 3 * * *`, or an alias such as `@daily`."),
        );
    }
    if let Some(expiry) = &machine.snapshots_expiry
        && let Err(error) = values::parse_duration(&expiry.value)
    {
        diagnostics.push(
            Diagnostic::new(
                codes::INVALID_EXPIRY,
                error.span_in(expiry.span, &expiry.value),
                format!("invalid snapshot expiry `{}`", printable(&expiry.value)),
                error.message,
            )
            .with_note("units: M (minutes), H (hours), d (days), w (weeks), y (years)")
            .with_help("Write a duration such as `30d`, `24H` or `2w`."),
        );
    }
}

fn check_isolation(domain: &Domain, machine: &Machine, diagnostics: &mut Diagnostics) {
    let trust = domain.trust();
    if machine.type_unknown
        || machine.kind() != InstanceType::Container
        || !matches!(trust, TrustLevel::Untrusted | TrustLevel::Disposable)
    {
        return;
    }
    let (span, label) = match &machine.instance_type {
        Some(kind) => (kind.span, "a container shares the host kernel".to_string()),
        None => (machine.name.span, "a container (the default type) shares the host kernel".to_string()),
    };
    let mut diagnostic = Diagnostic::new(
        codes::LXC_FOR_UNTRUSTED,
        span,
        format!("container `{}` runs in {} domain `{}`", machine.name.value, trust.keyword(), domain.name.value),
        label,
    )
    .with_help("Consider `type: vm` for stronger isolation.");
    if let Some(level) = &domain.trust_level {
        diagnostic = diagnostic.with_label(level.span, "trust level set here");
    }
    diagnostics.push(diagnostic);
}

/// Incus's truthy strings (`shared.IsTrue`).
fn is_true(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on")
}

fn privileged(config: &[ConfigEntry]) -> Option<&ConfigEntry> {
    config.iter().find(|entry| entry.key.value == "security.privileged" && is_true(&entry.value.value))
}

fn check_privileged(machine: &Machine, diagnostics: &mut Diagnostics) {
    if machine.kind() != InstanceType::Container {
        return;
    }
    let Some(entry) = privileged(&machine.config) else { return };
    diagnostics.push(
        Diagnostic::new(
            codes::PRIVILEGED_CONTAINER,
            entry.value.span,
            format!("container `{}` is privileged", machine.name.value),
            "the container's root is the host's root",
        )
        .with_note("an escape from a privileged container is an escape to the host")
        .with_help("Remove `security.privileged`, or make the machine a VM (`type: vm`)."),
    );
}

/// A profile that makes its containers privileged, reported once on the profile.
fn check_privileged_profiles(domain: &Domain, diagnostics: &mut Diagnostics) {
    for profile in &domain.profiles {
        let Some(entry) = privileged(&profile.config) else { continue };
        let containers: Vec<&Machine> = domain
            .machines
            .iter()
            .filter(|m| m.kind() == InstanceType::Container && uses_profile(m, &profile.name.value))
            .collect();
        if containers.is_empty() {
            continue;
        }
        let names: Vec<&str> = containers.iter().map(|m| m.name.value.as_str()).collect();
        let mut diagnostic = Diagnostic::new(
            codes::PRIVILEGED_CONTAINER,
            entry.value.span,
            format!("profile `{}` makes containers privileged", profile.name.value),
            format!("used by {} {}", if names.len() == 1 { "container" } else { "containers" }, quoted_list(&names)),
        )
        .with_note("an escape from a privileged container is an escape to the host");
        for machine in containers {
            diagnostic = diagnostic.with_label(machine.name.span, "this container uses the profile");
        }
        diagnostics
            .push(diagnostic.with_help("Remove `security.privileged` from the profile, or use it only for VMs."));
    }
}

/// W0011: a config key that a machine setting writes, with another value.
fn check_replaced_keys(domain: &Domain, machine: &Machine, diagnostics: &mut Diagnostics) {
    let bool_text = |value: bool| if value { "true" } else { "false" }.to_string();
    for entry in &machine.config {
        // The value anklumec writes, the setting it comes from, and where that is set.
        let (written, setting, set_at) = match entry.key.value.as_str() {
            "security.protection.delete" => {
                let ephemeral = machine.ephemeral.as_ref().or(domain.ephemeral.as_ref());
                (bool_text(!ephemeral.is_some_and(|e| e.value)), "ephemeral", ephemeral.map(|e| e.span))
            }
            "boot.autostart" => match &machine.boot_autostart {
                Some(autostart) => (bool_text(autostart.value), "boot_autostart", Some(autostart.span)),
                None => continue,
            },
            "boot.autostart.priority" => match &machine.boot_priority {
                Some(priority) => (priority.value.to_string(), "boot_priority", Some(priority.span)),
                None => continue,
            },
            "snapshots.schedule" => match &machine.snapshots_schedule {
                Some(schedule) => (schedule.value.clone(), "snapshots_schedule", Some(schedule.span)),
                None => continue,
            },
            "snapshots.expiry" => match &machine.snapshots_expiry {
                Some(expiry) => (expiry.value.clone(), "snapshots_expiry", Some(expiry.span)),
                None => continue,
            },
            _ => continue,
        };
        if same_incus_value(&entry.value.value, &written) {
            continue;
        }
        let key = &entry.key.value;
        let from = match set_at {
            Some(_) => format!("from `{setting}`"),
            None => format!("from `{setting}`, which is not set (false)"),
        };
        let mut diagnostic = Diagnostic::new(
            codes::REPLACED_CONFIG_KEY,
            entry.value.span,
            format!("`{key}` of machine `{}` is replaced by anklume's value", machine.name.value),
            format!("anklumec writes `{}` here instead, {from}", printable(&written)),
        );
        if let Some(span) = set_at {
            diagnostic = diagnostic.with_label(span, format!("`{setting}` is set here"));
        }
        let help = if key == "security.protection.delete" {
            "Remove the key; set `ephemeral: true` on the machine or its domain to let the machine be deleted."
                .to_string()
        } else {
            format!("Remove `{key}` from `config` and set the value with `{setting}`.")
        };
        diagnostics.push(diagnostic.with_help(help));
    }
}

/// Whether Incus reads two values alike: as booleans (`yes` is `true`), as integers
/// (`05` is `5`), or else as the same text.
fn same_incus_value(declared: &str, written: &str) -> bool {
    if let (Some(a), Some(b)) = (rules::incus_bool(declared), rules::incus_bool(written)) {
        return a == b;
    }
    match (declared.trim().parse::<i64>(), written.parse::<i64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => declared == written,
    }
}

/// W0011: a profile's `security.protection.delete`, hidden by every instance's own.
fn check_profile_protection(domain: &Domain, diagnostics: &mut Diagnostics) {
    for profile in &domain.profiles {
        let Some(entry) = profile.config.iter().find(|entry| entry.key.value == "security.protection.delete") else {
            continue;
        };
        let users: Vec<&Machine> = domain.machines.iter().filter(|m| uses_profile(m, &profile.name.value)).collect();
        if users.is_empty() {
            continue;
        }
        let mut diagnostic = Diagnostic::new(
            codes::REPLACED_CONFIG_KEY,
            entry.key.span,
            format!("profile `{}` sets `security.protection.delete`, which has no effect", profile.name.value),
            "each instance sets its own value (from `ephemeral`), which comes before its profiles'",
        );
        for machine in users {
            diagnostic = diagnostic.with_label(machine.name.span, "this machine uses the profile");
        }
        diagnostics.push(diagnostic.with_help(
            "Remove the key from the profile; set `ephemeral: true` on the machines or the domain to let them be deleted.",
        ));
    }
}

/// The profile names a machine uses: its `profiles`, or `default`.
fn profile_names(machine: &Machine) -> Vec<&str> {
    match &machine.profiles {
        Some(list) => list.value.iter().map(|p| p.value.as_str()).collect(),
        None => vec!["default"],
    }
}

fn uses_profile(machine: &Machine, name: &str) -> bool {
    profile_names(machine).contains(&name)
}

/// The declared profiles a machine uses (the generated `default` has no memory limit
/// and no GPU; a declared `default` merges into it).
fn used_profiles<'a>(domain: &'a Domain, machine: &Machine) -> Vec<&'a Profile> {
    profile_names(machine).into_iter().filter_map(|name| domain.profile(name)).collect()
}

fn check_vm_memory(domain: &Domain, machine: &Machine, diagnostics: &mut Diagnostics) {
    if machine.type_unknown
        || machine.kind() != InstanceType::VirtualMachine
        || machine.config_value("limits.memory").is_some()
    {
        return;
    }
    if used_profiles(domain, machine).iter().any(|p| p.config.iter().any(|c| c.key.value == "limits.memory")) {
        return;
    }
    diagnostics.push(
        Diagnostic::new(
            codes::VM_DEFAULT_MEMORY,
            machine.name.span,
            format!("VM `{}` gets Incus's default memory of 1 GiB", machine.name.value),
            "no `limits.memory` in its config or its profiles",
        )
        .with_help("Set `limits.memory` (such as `\"2GiB\"`) in the machine's `config` or in one of its profiles."),
    );
}

/// Why a machine has GPU access: where, and what to say about it.
fn gpu_grants(domain: &Domain, machine: &Machine) -> Vec<(Span, String)> {
    let mut grants = Vec::new();
    if let Some(gpu) = machine.gpu.as_ref().filter(|g| g.value) {
        grants.push((gpu.span, "`gpu: true`".to_string()));
    }
    for device in &machine.devices {
        if device.device_type.as_ref().is_some_and(|t| t.value == "gpu") {
            grants.push((device.name.span, format!("its gpu device `{}`", device.name.value)));
        }
    }
    for profile in used_profiles(domain, machine) {
        if profile.devices.iter().any(|d| d.device_type.as_ref().is_some_and(|t| t.value == "gpu")) {
            let span = machine
                .profiles
                .as_ref()
                .and_then(|list| list.value.iter().find(|p| p.value == profile.name.value))
                .map_or(machine.name.span, |p| p.span);
            grants.push((span, format!("profile `{}` with a gpu device", profile.name.value)));
        }
    }
    grants
}

fn check_gpu_policy(infra: &Infra, diagnostics: &mut Diagnostics) {
    let mut gpu_machines: Vec<(&Machine, String)> = Vec::new();
    for domain in &infra.domains {
        for machine in &domain.machines {
            let grants = gpu_grants(domain, machine);
            if !grants.is_empty() {
                let reasons: Vec<&str> = grants.iter().map(|(_, reason)| reason.as_str()).collect();
                gpu_machines.push((machine, reasons.join(", ")));
            }
        }
    }
    if gpu_machines.len() < 2 {
        return;
    }
    let names: Vec<&str> = gpu_machines.iter().map(|(m, _)| m.name.value.as_str()).collect();
    let policy = infra.global.gpu_policy.as_ref();
    match policy.map_or(GpuPolicy::Exclusive, |p| p.value) {
        GpuPolicy::Exclusive => {
            let (second, reason) = &gpu_machines[1];
            let mut diagnostic = Diagnostic::new(
                codes::GPU_EXCLUSIVE,
                second.name.span,
                format!("{} machines use a GPU under the exclusive policy", gpu_machines.len()),
                format!("`{}` also has GPU access ({reason})", second.name.value),
            );
            for (index, (machine, reason)) in gpu_machines.iter().enumerate().filter(|(index, _)| *index != 1) {
                let label = if index == 0 { "first machine with GPU access" } else { "also has GPU access" };
                diagnostic = diagnostic.with_label(machine.name.span, format!("{label} ({reason})"));
            }
            if let Some(policy) = policy {
                diagnostic = diagnostic.with_label(policy.span, "the policy is set here");
            }
            diagnostics.push(
                diagnostic
                    .with_note(format!("machines with GPU access: {}", quoted_list(&names)))
                    .with_help("Give GPU access to one machine only, or set `global.gpu_policy: shared` to let them share it (without VRAM isolation)."),
            );
        }
        GpuPolicy::Shared => {
            let Some(policy) = policy else { return };
            let mut diagnostic = Diagnostic::new(
                codes::GPU_SHARED,
                policy.span,
                format!("{} machines share a GPU", gpu_machines.len()),
                format!("{} share the GPU", quoted_list(&names)),
            );
            for (machine, reason) in &gpu_machines {
                diagnostic = diagnostic.with_label(machine.name.span, format!("has GPU access ({reason})"));
            }
            diagnostics.push(diagnostic.with_note(
                "consumer GPUs have no VRAM isolation: one machine can read what another left in GPU memory",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    /// A machine whose `type` is invalid (E0005, from the reader) is not taken for a
    /// container: no type-dependent diagnostic follows (E0032 for a VM key, W0002 in an
    /// untrusted domain, W0007 for a profile device, N0003).
    #[test]
    fn an_invalid_type_draws_no_type_dependent_diagnostic() {
        let text = with_domains(
            "  work:\n    trust_level: untrusted\n    profiles:\n      gpu:\n        devices:\n          g: {type: gpu}\n    machines:\n      web:\n        type: VM\n        profiles: [default, gpu]\n        config: {security.secureboot: \"false\", limits.cpu: \"2\"}\n      ok:\n        type: lxc\n        config: {security.secureboot: \"false\"}\n",
        );
        let compilation = crate::compile::compile_source("infra.yml", text.as_str(), Default::default());
        let codes: Vec<&str> = compilation.diagnostics.iter().map(|d| d.code.id).collect();
        assert_eq!(codes, ["E0005", "W0002", "E0032"], "{:#?}", summary(&compilation.diagnostics));
        assert!(compilation.diagnostics[1].message.contains("`ok`"));
        assert!(compilation.diagnostics[2].message.contains("`ok`"));
    }

    #[test]
    fn boot_and_snapshot_values() {
        let text = with_domains(
            "  work:\n    machines:\n      web:\n        boot_priority: 101\n        snapshots_schedule: \"0 3 * *\"\n        snapshots_expiry: 14 days\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0020"), ["101"]);
        // The label is on the offending place inside the value: the end of the
        // schedule, where the fifth field is missing (before the closing quote).
        let cron = only(&diagnostics, "E0021");
        assert_eq!(cron.primary_span().start, text.find("* *\"").expect("schedule") + 3);
        assert_eq!(primary(&text, cron), "");
        assert_eq!(cron.labels[0].message, "missing the day-of-week field (a cron expression has 5)");
        let expiry = only(&diagnostics, "E0022");
        assert_eq!(primary(&text, expiry), "days");
        assert_eq!(expiry.labels[0].message, "unit `days` is not an expiry unit (days are `d`)");
    }

    #[test]
    fn snapshot_labels_point_inside_the_value() {
        let text = with_domains(
            "  work:\n    machines:\n      a:\n        snapshots_schedule: \"0 24 * * *\"\n        snapshots_expiry: \"24h\"\n      b:\n        snapshots_schedule: 0 3 * * é\n        snapshots_expiry: 1d 1d\n      c:\n        snapshots_schedule: \"@nightly\"\n        snapshots_expiry: \"60m\"\n      d:\n        snapshots_schedule: \"0 3 * * *, @daily\"\n        snapshots_expiry: \"2H 30M\"\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0021"), ["24", "é", "@nightly"]);
        assert_eq!(found(&text, &diagnostics, "E0022"), ["h", "1d", "m"]);
        let hours = diagnostics.iter().find(|d| primary(&text, d) == "24").expect("hours");
        assert_eq!(hours.labels[0].message, "`24` is out of range for hours (0-23)");
        assert_eq!(hours.message, "invalid snapshot schedule `0 24 * * *`");
    }

    #[test]
    fn escaped_values_keep_the_whole_label() {
        // `\x30` is `0`: the offsets inside the value do not map to the file.
        let text = with_domains("  work:\n    machines:\n      web:\n        snapshots_schedule: \"\\x30 3 * *\"\n");
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0021"), ["\"\\x30 3 * *\""]);
    }

    #[test]
    fn wait_settings() {
        let text = "project_name: t\nglobal:\n  addressing: {zone_base: 100}\n  default_os_image: x\n  incus_instances_vm_retries: 0\n  incus_instances_lxc_delay: 3601\n  incus_instances_vm_delay: 0\ndomains: {}\n";
        let diagnostics = check_text(text);
        assert_eq!(found(text, &diagnostics, "E0020"), ["0", "3601"]);
        let retries = diagnostics.iter().find(|d| primary(text, d) == "0").expect("retries");
        assert_eq!(retries.message, "`incus_instances_vm_retries` 0 is out of range");
    }

    #[test]
    fn exclusive_gpu() {
        let text = with_domains(
            "  ai:\n    profiles:\n      nvidia:\n        devices:\n          gpu:\n            type: gpu\n    machines:\n      one:\n        gpu: true\n      two:\n        profiles: [default, nvidia]\n      three:\n        devices:\n          card:\n            type: gpu\n      four: {}\n",
        );
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0023");
        assert_eq!(primary(&text, d), "two");
        assert_eq!(d.message, "3 machines use a GPU under the exclusive policy");
        assert_eq!(d.labels[0].message, "`two` also has GPU access (profile `nvidia` with a gpu device)");
        assert_eq!(secondaries(&text, d), ["one", "three"]);
    }

    #[test]
    fn shared_gpu_is_one_warning_on_the_policy() {
        let text = "project_name: t\nglobal:\n  addressing: {zone_base: 100}\n  default_os_image: x\n  gpu_policy: shared\ndomains:\n  ai:\n    machines:\n      one:\n        gpu: true\n      two:\n        gpu: true\n        type: vm\n        config:\n          limits.memory: 4GiB\n";
        let diagnostics = check_text(text);
        let d = only(&diagnostics, "W0004");
        assert_eq!(primary(text, d), "shared");
        assert_eq!(d.labels[0].message, "`one` and `two` share the GPU");
        assert!(found(text, &diagnostics, "E0023").is_empty());
    }

    #[test]
    fn containers_in_untrusted_domains() {
        let text = with_domains(
            "  dmz:\n    trust_level: untrusted\n    machines:\n      web:\n        type: lxc\n      implicit: {}\n      safe:\n        type: vm\n        config:\n          limits.memory: 1GiB\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "W0002"), ["lxc", "implicit"]);
        let web = diagnostics.iter().find(|d| d.code.id == "W0002").expect("web");
        assert_eq!(web.help.as_deref(), Some("Consider `type: vm` for stronger isolation."));
    }

    #[test]
    fn privileged_containers() {
        let text = with_domains(
            "  work:\n    profiles:\n      priv:\n        config:\n          security.privileged: \"yes\"\n    machines:\n      web:\n        config:\n          security.privileged: \"true\"\n      db:\n        profiles: [priv]\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "W0003"), ["\"yes\"", "\"true\""]);
    }

    #[test]
    fn vms_without_memory_get_a_note_unless_a_profile_sets_it() {
        let text = with_domains(
            "  work:\n    profiles:\n      big:\n        config:\n          limits.memory: 8GiB\n      default:\n        config:\n          limits.memory: 2GiB\n    machines:\n      bare:\n        type: vm\n        profiles: []\n      sized:\n        type: vm\n        profiles: [big]\n      by-default:\n        type: vm\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "N0003"), ["bare"]);
    }

    #[test]
    fn unknown_device_types() {
        let text = with_domains(
            "  work:\n    machines:\n      web:\n        devices:\n          card:\n            type: gpuu\n",
        );
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0035");
        assert_eq!(primary(&text, d), "gpuu");
        assert_eq!(d.help.as_deref(), Some("Did you mean `gpu`?"));
    }
}
