//! References between parts of infra.yml: profiles used by machines, images, network
//! policy ends, shared volume consumers; and the names of volumes.

use super::names::check_device_name;
use super::{closest, printable};
use crate::diagnostics::{Diagnostic, Diagnostics, codes};
use crate::incus::values;
use crate::rules::PORT;
use crate::source::{Span, Spanned};
use crate::syntax::ast::{Domain, Infra, Machine, Name, Ports, Text};
use std::collections::HashMap;

/// What a name in a policy or a consumer list refers to.
enum Target<'a> {
    Domain(&'a Domain),
    Machine(&'a Machine, &'a Domain),
    Host,
}

pub fn check(infra: &Infra, diagnostics: &mut Diagnostics) {
    for domain in &infra.domains {
        for machine in &domain.machines {
            check_profiles(infra, domain, machine, diagnostics);
            check_machine_image(infra, machine, diagnostics);
            check_volumes(machine, diagnostics);
        }
    }
    if let Some(image) = &infra.global.default_os_image {
        check_image(image, diagnostics);
    }
    check_policies(infra, diagnostics);
    check_shared_volumes(infra, diagnostics);
}

fn check_profiles(infra: &Infra, domain: &Domain, machine: &Machine, diagnostics: &mut Diagnostics) {
    let Some(profiles) = &machine.profiles else { return };
    let mut seen: HashMap<&str, &Name> = HashMap::new();
    for reference in &profiles.value {
        if let Some(first) = seen.get(reference.value.as_str()) {
            diagnostics.push(
                Diagnostic::new(
                    codes::INVALID_VALUE,
                    reference.span,
                    format!("profile `{}` is listed twice", reference.value),
                    "listed again here",
                )
                .with_label(first.span, "first listed here")
                .with_help("Remove the second entry: a profile applies once."),
            );
            continue;
        }
        seen.insert(&reference.value, reference);
        if reference.value == "default" || domain.profile(&reference.value).is_some() {
            continue;
        }
        let declared = domain.profiles.iter().map(|p| p.name.value.as_str()).chain(std::iter::once("default"));
        let mut diagnostic = Diagnostic::new(
            codes::UNKNOWN_PROFILE,
            reference.span,
            format!("unknown profile `{}`", printable(&reference.value)),
            format!("domain `{}` declares no profile `{}`", domain.name.value, printable(&reference.value)),
        );
        if let Some(elsewhere) = infra.domains.iter().find(|other| other.profile(&reference.value).is_some()) {
            diagnostic = diagnostic.with_note(format!(
                "domain `{}` declares a profile `{}`, but each domain is an Incus project with its own profiles",
                elsewhere.name.value, reference.value
            ));
        }
        diagnostic = match closest(&reference.value, declared) {
            Some(suggestion) => diagnostic.with_help(format!("Did you mean `{suggestion}`?")),
            None => diagnostic.with_help(format!("Declare it under domains.{}.profiles.", domain.name.value)),
        };
        diagnostics.push(diagnostic);
    }
}

fn check_machine_image(infra: &Infra, machine: &Machine, diagnostics: &mut Diagnostics) {
    match &machine.os_image {
        Some(image) => check_image(image, diagnostics),
        None if infra.global.default_os_image.is_none() => diagnostics.push(
            Diagnostic::new(
                codes::NO_IMAGE,
                machine.name.span,
                format!("machine `{}` has no image", machine.name.value),
                "no `os_image` here and no `global.default_os_image`",
            )
            .with_help(
                "Set `os_image` on the machine (such as `images:debian/13`), or `default_os_image` under `global`.",
            ),
        ),
        None => {}
    }
}

fn check_image(image: &Text, diagnostics: &mut Diagnostics) {
    let Err(error) = values::parse_image_ref(&image.value) else { return };
    diagnostics.push(
        Diagnostic::new(
            codes::INVALID_IMAGE,
            error.span_in(image.span, &image.value),
            format!("invalid image reference `{}`", printable(&image.value)),
            error.message,
        )
        .with_help("Write `[<remote>:]<alias-or-fingerprint>`, such as `images:debian/13` or `local:tiny`."),
    );
}

/// Storage volumes become Incus custom volumes and, when `path` is set, disk devices
/// of the same name; persistent data entries become disk devices too.
fn check_volumes(machine: &Machine, diagnostics: &mut Diagnostics) {
    for volume in &machine.storage_volumes {
        check_device_name(&volume.name, "storage volume", diagnostics);
        if volume.name.value.contains('/') {
            diagnostics.push(
                Diagnostic::new(
                    codes::INVALID_NAME,
                    volume.name.span,
                    format!("invalid storage volume name `{}`", volume.name.value),
                    "`/` is not allowed in a volume name",
                )
                .with_help(format!("Rename it to `{}`.", volume.name.value.replace('/', "-"))),
            );
        }
        if volume.path.is_some() {
            let clash = match volume.name.value.as_str() {
                "root" => Some("the root disk the default profile gives every machine"),
                "eth0" => Some("the network interface anklume gives every machine"),
                _ => None,
            };
            if let Some(clash) = clash {
                diagnostics.push(
                    Diagnostic::new(
                        codes::INVALID_VALUE,
                        volume.name.span,
                        format!("storage volume `{}` would replace a device", volume.name.value),
                        format!("the volume's disk device `{}` would replace {clash}", volume.name.value),
                    )
                    .with_help(format!("Rename the volume, for example to `{}-data`.", volume.name.value)),
                );
            }
            if let Some(device) = machine.devices.iter().find(|d| d.name.value == volume.name.value) {
                diagnostics.push(
                    Diagnostic::new(
                        codes::INVALID_VALUE,
                        volume.name.span,
                        format!("storage volume `{}` has the name of a device of the machine", volume.name.value),
                        "this volume is attached as a disk device of this name",
                    )
                    .with_label(device.name.span, "the machine declares a device of the same name here")
                    .with_help("Rename the volume or the device."),
                );
            }
        }
    }
    for data in &machine.persistent_data {
        check_device_name(&data.name, "persistent data", diagnostics);
    }
}

/// Every domain and machine by name, plus `host`.
fn targets(infra: &Infra) -> HashMap<&str, Target<'_>> {
    let mut targets = HashMap::new();
    for domain in &infra.domains {
        for machine in &domain.machines {
            targets.entry(machine.name.value.as_str()).or_insert(Target::Machine(machine, domain));
        }
    }
    for domain in &infra.domains {
        targets.insert(domain.name.value.as_str(), Target::Domain(domain));
    }
    targets.insert("host", Target::Host);
    targets
}

fn unknown_target(name: &Text, what: &str, targets: &HashMap<&str, Target<'_>>, allow_host: bool) -> Diagnostic {
    let mut candidates: Vec<&str> = targets.keys().copied().filter(|t| allow_host || *t != "host").collect();
    candidates.sort_unstable();
    let diagnostic = Diagnostic::new(
        codes::UNKNOWN_POLICY_TARGET,
        name.span,
        format!("unknown {what} `{}`", printable(&name.value)),
        "no domain or machine has this name",
    );
    match closest(&name.value, candidates) {
        Some(suggestion) => diagnostic.with_help(format!("Did you mean `{suggestion}`?")),
        None if allow_host => diagnostic.with_help("Name a domain, a machine, or `host`."),
        None => diagnostic.with_help("Name a domain or a machine."),
    }
}

fn check_policies(infra: &Infra, diagnostics: &mut Diagnostics) {
    let targets = targets(infra);
    for policy in &infra.network_policies {
        for (key, end) in [("from", &policy.from), ("to", &policy.to)] {
            if end.is_none() {
                let at_start = Span::new(policy.span.file, policy.span.start, policy.span.start);
                diagnostics.push(
                    Diagnostic::new(
                        codes::MISSING_KEY,
                        at_start,
                        format!("network policy has no `{key}`"),
                        format!("this policy needs `{key}`"),
                    )
                    .with_help(format!("Add `{key}:` with a domain, a machine, or `host`.")),
                );
            }
        }
        for end in [&policy.from, &policy.to].into_iter().flatten() {
            match targets.get(end.value.as_str()) {
                None => diagnostics.push(unknown_target(end, "policy target", &targets, true)),
                Some(Target::Domain(domain)) if !domain.is_enabled() => diagnostics.push(disabled(end, domain, None)),
                Some(Target::Machine(machine, domain)) if !domain.is_enabled() => {
                    diagnostics.push(disabled(end, domain, Some(machine)))
                }
                Some(_) => {}
            }
        }
        if let Some(Spanned { value: Ports::List(ports), .. }) = &policy.ports {
            for port in ports.iter().filter(|p| !PORT.contains(&p.value)) {
                diagnostics.push(
                    Diagnostic::new(
                        codes::INVALID_PORTS,
                        port.span,
                        format!("port `{}` is out of range", port.value),
                        "ports are from 1 to 65535",
                    )
                    .with_help("Use port numbers from 1 to 65535, or `ports: all`."),
                );
            }
        }
    }
}

fn disabled(end: &Text, domain: &Domain, machine: Option<&Machine>) -> Diagnostic {
    let label = match machine {
        Some(machine) => {
            format!("machine `{}` is in domain `{}`, which is disabled", machine.name.value, domain.name.value)
        }
        None => format!("domain `{}` is disabled", domain.name.value),
    };
    let mut diagnostic = Diagnostic::new(
        codes::POLICY_DISABLED_DOMAIN,
        end.span,
        format!("network policy names disabled domain `{}`", domain.name.value),
        label,
    )
    .with_note("the policy has no effect until the domain is enabled");
    if let Some(enabled) = &domain.enabled {
        diagnostic = diagnostic.with_label(enabled.span, "disabled here");
    }
    diagnostic
}

fn check_shared_volumes(infra: &Infra, diagnostics: &mut Diagnostics) {
    let targets = targets(infra);
    for volume in &infra.shared_volumes {
        check_device_name(&volume.name, "shared volume", diagnostics);
        // Access modes (`ro`, `rw`) are keywords the reader checks.
        for (consumer, _access) in &volume.consumers {
            if consumer.value == "host" {
                diagnostics.push(
                    Diagnostic::new(
                        codes::UNKNOWN_POLICY_TARGET,
                        consumer.span,
                        "`host` cannot consume a shared volume",
                        "the host already holds the volume's source",
                    )
                    .with_help("Name a domain or a machine."),
                );
            } else if !targets.contains_key(consumer.value.as_str()) {
                diagnostics.push(unknown_target(consumer, "shared volume consumer", &targets, false));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn unknown_profiles_suggest_the_closest() {
        let text = with_domains(
            "  work:\n    profiles:\n      vm-resources:\n        config: {}\n    machines:\n      web:\n        profiles: [default, vm-resource, gpu, vm-resources, vm-resources]\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0015"), ["vm-resource", "gpu"]);
        let typo = diagnostics.iter().find(|d| primary(&text, d) == "vm-resource").expect("typo");
        assert_eq!(typo.help.as_deref(), Some("Did you mean `vm-resources`?"));
        let gpu = diagnostics.iter().find(|d| primary(&text, d) == "gpu").expect("gpu");
        assert_eq!(gpu.help.as_deref(), Some("Declare it under domains.work.profiles."));
        let twice = only(&diagnostics, "E0030");
        assert_eq!(primary(&text, twice), "vm-resources");
        assert_eq!(twice.primary_span().start, text.rfind("vm-resources").expect("last"));
    }

    #[test]
    fn profiles_of_another_domain_are_not_visible() {
        let text = with_domains(
            "  one:\n    profiles:\n      big:\n        config: {}\n  two:\n    machines:\n      web:\n        profiles: [big]\n",
        );
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0015");
        assert_eq!(primary(&text, d), "big");
        assert_eq!(
            d.notes,
            ["domain `one` declares a profile `big`, but each domain is an Incus project with its own profiles"]
        );
    }

    #[test]
    fn machines_need_an_image() {
        let text = "project_name: t\nglobal:\n  addressing: {zone_base: 100}\ndomains:\n  work:\n    machines:\n      web: {}\n      db:\n        os_image: \"images:debian/13\"\n";
        let diagnostics = check_text(text);
        assert_eq!(found(text, &diagnostics, "E0026"), ["web"]);
    }

    #[test]
    fn malformed_images() {
        let text = "project_name: t\nglobal:\n  addressing: {zone_base: 100}\n  default_os_image: \"-rf\"\ndomains:\n  work:\n    machines:\n      web:\n        os_image: \"images:debian 13\"\n";
        let diagnostics = check_text(text);
        // The labels point at the offending character inside each value.
        assert_eq!(found(text, &diagnostics, "E0027"), ["-", " "]);
        let messages: Vec<&str> =
            diagnostics.iter().filter(|d| d.code.id == "E0027").map(|d| d.labels[0].message.as_str()).collect();
        assert_eq!(
            messages,
            ["an image reference cannot start with `-`", "a space is not allowed in an image reference"]
        );
        assert_eq!(diagnostics[0].primary_span().start, text.find("-rf").expect("image"));
    }

    #[test]
    fn image_labels_inside_the_value() {
        let text = with_domains(
            "  work:\n    machines:\n      a:\n        os_image: \"images:\"\n      b:\n        os_image: ré:debian\n      c:\n        os_image: images:debian:13\n      d:\n        os_image: \"local:tiny\"\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0027"), ["", "é", ":"]);
        let empty = diagnostics.iter().find(|d| d.code.id == "E0027").expect("images:");
        assert_eq!(empty.primary_span().start, text.find("images:\"").expect("images:") + 7);
        assert_eq!(empty.labels[0].message, "expected an image alias or fingerprint after `images:`");
    }

    #[test]
    fn policy_targets_and_ports() {
        let text = with_domains(
            "  work:\n    machines:\n      web: {}\n  old:\n    enabled: false\n    machines:\n      relic: {}\n\
             network_policies:\n  - from: wrk\n    to: host\n    ports: [0, 80, 70000]\n  - from: old\n    to: relic\n    ports: all\n",
        );
        let diagnostics = check_text(&text);
        let unknown = only(&diagnostics, "E0024");
        assert_eq!(primary(&text, unknown), "wrk");
        assert_eq!(unknown.help.as_deref(), Some("Did you mean `work`?"));
        assert_eq!(found(&text, &diagnostics, "E0025"), ["0", "70000"]);
        assert_eq!(found(&text, &diagnostics, "W0005"), ["old", "relic"]);
        let relic = diagnostics.iter().find(|d| d.code.id == "W0005" && primary(&text, d) == "relic").expect("relic");
        assert_eq!(secondaries(&text, relic), ["false"]);
    }

    #[test]
    fn policies_need_both_ends() {
        let text = with_domains("  work: {}\nnetwork_policies:\n  - {to: work, ports: all}\n");
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0004");
        assert_eq!(d.message, "network policy has no `from`");
        assert_eq!(d.primary_span().start, text.find("{to").expect("policy"));
    }

    #[test]
    fn shared_volume_consumers_and_access() {
        let text = with_domains(
            "  work:\n    machines:\n      web: {}\nshared_volumes:\n  docs:\n    source: /srv/docs\n    path: /docs\n    consumers:\n      work: ro\n      host: rw\n      nobody: rw\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0024"), ["host", "nobody"]);
    }

    #[test]
    fn volume_names() {
        let text = with_domains(
            "  work:\n    machines:\n      web:\n        storage_volumes:\n          .cache:\n            size: 1GiB\n          root:\n            path: /srv/root\n        persistent_data:\n          \"my data\":\n            path: /data\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0007"), [".cache", "\"my data\""]);
        assert_eq!(found(&text, &diagnostics, "E0030"), ["root"]);
    }
}
