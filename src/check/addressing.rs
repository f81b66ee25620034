//! Addressing: the settings under `global`, each domain's subnet, each machine's address.
//! The numbering itself lives in [`crate::addressing`]; this pass says what it cannot do.

use super::printable;
use crate::addressing::{self as numbering, MachineAddress, Mode, Reserved, Subnet, SubnetOctets};
use crate::diagnostics::{Diagnostic, Diagnostics, codes};
use crate::source::Spanned;
use crate::syntax::ast::{Domain, Global, Infra, Machine, TrustLevel};
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

pub const ZONE_BASE_MAX: i64 = 245;
pub const SUBNET_ID_MAX: i64 = 254;

pub fn check(infra: &Infra, diagnostics: &mut Diagnostics) {
    let settings_ok = check_settings(&infra.global, diagnostics);
    let mode = if settings_ok { numbering::mode_of(&infra.global) } else { None };
    check_subnet_ids(infra, mode, diagnostics);
    let resolution = numbering::resolve(infra);
    let subnets: Vec<Option<Subnet>> = match mode {
        Some(_) => {
            check_octets(infra, &resolution.domains.iter().map(|d| d.octets).collect::<Vec<_>>(), diagnostics);
            resolution.domains.iter().map(|d| d.subnet).collect()
        }
        None => vec![None; infra.domains.len()],
    };
    check_machine_addresses(infra, &subnets, matches!(mode, Some(Mode::Zones { .. })), diagnostics);
    if matches!(mode, Some(Mode::Zones { .. })) {
        for ((domain, resolved), subnet) in infra.domains.iter().zip(&resolution.domains).zip(&subnets) {
            if let Some(subnet) = subnet {
                check_exhausted(domain, *subnet, &resolved.machines, diagnostics);
            }
        }
    }
}

/// `global.addressing` and `global.base_subnet`; false when the mode they describe
/// cannot be used (so that domain subnets are not computed from bad settings).
fn check_settings(global: &Global, diagnostics: &mut Diagnostics) -> bool {
    let mut ok = true;
    let mut bad = |value: &Spanned<i64>, message: String, label: &str, help: String, diagnostics: &mut Diagnostics| {
        ok = false;
        diagnostics.push(Diagnostic::new(codes::INVALID_ADDRESSING, value.span, message, label).with_help(help));
    };
    if let Some(addressing) = &global.addressing {
        if let Some(base_octet) = addressing.base_octet.as_ref().filter(|v| v.value != numbering::DEFAULT_BASE_OCTET) {
            bad(
                base_octet,
                format!("base_octet must be {}", numbering::DEFAULT_BASE_OCTET),
                "anklume's zones live in 10.0.0.0/8",
                format!("Set `base_octet: {}`, or remove it.", numbering::DEFAULT_BASE_OCTET),
                diagnostics,
            );
        }
        if let Some(zone_base) = addressing.zone_base.as_ref().filter(|v| !(0..=ZONE_BASE_MAX).contains(&v.value)) {
            bad(
                zone_base,
                format!("`zone_base` {} is out of range", zone_base.value),
                &format!("must be from 0 to {ZONE_BASE_MAX}"),
                format!("Use a zone_base from 0 to {ZONE_BASE_MAX}; the default is {}.", numbering::DEFAULT_ZONE_BASE),
                diagnostics,
            );
        }
        if let Some(zone_step) = addressing.zone_step.as_ref().filter(|v| v.value < 1) {
            bad(
                zone_step,
                format!("`zone_step` {} is out of range", zone_step.value),
                "must be at least 1",
                "Use a positive zone_step such as 10.".into(),
                diagnostics,
            );
        }
        if let Some(base_subnet) = &global.base_subnet {
            diagnostics.push(
                Diagnostic::new(
                    codes::INVALID_ADDRESSING,
                    base_subnet.span,
                    "both `addressing` and the legacy `base_subnet` are set",
                    "legacy base_subnet is ignored when addressing is set",
                )
                .with_label(addressing.span, "zone addressing is set here")
                .with_help(
                    "Remove `base_subnet` to use zone addressing, or remove `addressing` to use legacy subnet ids.",
                ),
            );
        }
    } else if let Some(base_subnet) = &global.base_subnet
        && numbering::parse_base_subnet(&base_subnet.value).is_none()
    {
        ok = false;
        diagnostics.push(
            Diagnostic::new(
                codes::INVALID_ADDRESSING,
                base_subnet.span,
                format!("invalid base_subnet `{}`", printable(&base_subnet.value)),
                "expected two octets such as \"10.100\"",
            )
            .with_help(format!(
                "Write the first two octets of the domain subnets, such as `base_subnet: \"{}\"`.",
                numbering::DEFAULT_BASE_SUBNET
            )),
        );
    }
    ok
}

/// Range of every `subnet_id`, presence in legacy mode, and duplicates per zone.
fn check_subnet_ids(infra: &Infra, mode: Option<Mode>, diagnostics: &mut Diagnostics) {
    let legacy = infra.global.addressing.is_none();
    // Zone → subnet_id → the first domain that uses it. Legacy mode has one zone.
    let mut seen: HashMap<(Option<TrustLevel>, i64), &Domain> = HashMap::new();
    let mut taken: BTreeSet<i64> =
        infra.domains.iter().filter_map(|d| d.subnet_id.as_ref()).map(|id| id.value).collect();
    for domain in &infra.domains {
        let Some(subnet_id) = &domain.subnet_id else {
            // A `subnet_id` of the wrong type is E0003 already: one mistake, one error.
            if legacy && !domain.subnet_id_written {
                // Suggest a different free number to each domain that lacks one.
                let free = (0..=SUBNET_ID_MAX).find(|id| !taken.contains(id)).unwrap_or(0);
                taken.insert(free);
                let mut diagnostic = Diagnostic::new(
                    codes::SUBNET_ID,
                    domain.name.span,
                    format!("domain `{}` has no subnet_id", domain.name.value),
                    "legacy addressing needs a `subnet_id` in every domain",
                );
                diagnostic = match &infra.global.base_subnet {
                    Some(base_subnet) => diagnostic.with_label(base_subnet.span, "legacy addressing is chosen here"),
                    None => diagnostic.with_note(format!(
                        "without `global.addressing`, anklume uses legacy addressing: `<base_subnet>.<subnet_id>.0/24`, base_subnet \"{}\" by default",
                        numbering::DEFAULT_BASE_SUBNET
                    )),
                };
                diagnostics.push(
                    diagnostic
                    .with_help(format!(
                        "Add `subnet_id: {free}` (or any free number from 0 to {SUBNET_ID_MAX}) to the domain, or use `global.addressing` to number domains automatically."
                    )),
                );
            }
            continue;
        };
        if !(0..=SUBNET_ID_MAX).contains(&subnet_id.value) {
            diagnostics.push(
                Diagnostic::new(
                    codes::SUBNET_ID,
                    subnet_id.span,
                    format!("`subnet_id` {} is out of range", subnet_id.value),
                    format!("must be from 0 to {SUBNET_ID_MAX}"),
                )
                .with_note("subnet_id is the third octet of the domain's /24 subnet"),
            );
            continue;
        }
        let zone = if legacy { None } else { Some(domain.trust()) };
        match seen.get(&(zone, subnet_id.value)) {
            Some(first) => {
                let first_id = first.subnet_id.as_ref().map_or(first.name.span, |id| id.span);
                let where_ = zone.map_or_else(String::new, |trust| format!(" in the {} zone", trust.keyword()));
                let mut diagnostic = Diagnostic::new(
                    codes::DUPLICATE_SUBNET_ID,
                    subnet_id.span,
                    format!("`subnet_id` {} is used by two domains{where_}", subnet_id.value),
                    format!("domain `{}` uses it again", domain.name.value),
                )
                .with_label(first_id, format!("first used by domain `{}` here", first.name.value));
                if let Some(subnet) = mode.and_then(|mode| same_subnet(mode, domain, subnet_id.value)) {
                    diagnostic = diagnostic.with_note(format!("both domains would get {}", subnet.cidr()));
                }
                diagnostics.push(diagnostic.with_help("Give each of the two domains its own `subnet_id`."));
            }
            None => {
                seen.insert((zone, subnet_id.value), domain);
            }
        }
    }
}

fn same_subnet(mode: Mode, domain: &Domain, subnet_id: i64) -> Option<Subnet> {
    let third = u32::try_from(subnet_id).ok()?;
    let octets = match mode {
        Mode::Legacy { first, second } => SubnetOctets([u32::from(first), u32::from(second), third]),
        Mode::Zones { base_octet, zone_base } => {
            SubnetOctets([base_octet, zone_base + domain.trust().zone_offset(), third])
        }
    };
    octets.to_subnet()
}

/// Computed octets past 255: `zone_base` plus the trust offset, or an automatic number.
fn check_octets(infra: &Infra, octets: &[Option<SubnetOctets>], diagnostics: &mut Diagnostics) {
    for (domain, octets) in infra.domains.iter().zip(octets) {
        let Some(SubnetOctets([_, second, third])) = *octets else { continue };
        let explicit_id = domain.subnet_id.is_some();
        let mut diagnostic = if second > 255 {
            let base = second - domain.trust().zone_offset();
            let mut diagnostic = Diagnostic::new(
                codes::OCTET_OVERFLOW,
                domain.name.span,
                format!("the subnet of domain `{}` has a second octet past 255", domain.name.value),
                format!(
                    "zone_base {base} + {} ({}) = {second}",
                    domain.trust().zone_offset(),
                    domain.trust().keyword()
                ),
            )
            .with_help(format!("Lower `zone_base` to at most {}.", 255 - domain.trust().zone_offset()));
            if let Some(zone_base) = infra.global.addressing.as_ref().and_then(|a| a.zone_base.as_ref()) {
                diagnostic = diagnostic.with_label(zone_base.span, "zone_base is set here");
            }
            diagnostic
        } else if third > 255 && !explicit_id {
            Diagnostic::new(
                codes::OCTET_OVERFLOW,
                domain.name.span,
                format!("the subnet of domain `{}` has a third octet past 255", domain.name.value),
                format!("domain number {third} in the {} zone", domain.trust().keyword()),
            )
            .with_help("Give fewer domains this trust level.")
        } else {
            continue;
        };
        if let Some(trust) = &domain.trust_level {
            diagnostic = diagnostic.with_label(trust.span, "this trust level sets the zone");
        }
        diagnostics.push(diagnostic);
    }
}

/// Every explicit `ip`: well-formed, in its domain's subnet, not reserved, not taken.
fn check_machine_addresses(infra: &Infra, subnets: &[Option<Subnet>], automatic: bool, diagnostics: &mut Diagnostics) {
    // What removing `ip` does: zone mode assigns an address, legacy mode uses DHCP.
    let without_ip = if automatic {
        "remove `ip` to get one automatically"
    } else {
        "remove `ip` to let the machine take a DHCP lease"
    };
    let mut used: HashMap<Ipv4Addr, &Machine> = HashMap::new();
    for (domain, subnet) in infra.domains.iter().zip(subnets) {
        for machine in &domain.machines {
            let Some(ip) = &machine.ip else { continue };
            let Some(address) = numbering::parse_address(&ip.value) else {
                diagnostics.push(invalid_address(ip));
                continue;
            };
            if let Some(subnet) = subnet
                && !subnet.contains(address)
            {
                diagnostics.push(
                    Diagnostic::new(
                        codes::ADDRESS_OUTSIDE_SUBNET,
                        ip.span,
                        format!("address `{address}` is outside the subnet of domain `{}`", domain.name.value),
                        format!("not in {}", subnet.cidr()),
                    )
                    .with_note(format!("the subnet of domain `{}` is {}", domain.name.value, subnet.cidr()))
                    .with_help(format!("Use an address such as `{}`, or {without_ip}.", subnet.host(10))),
                );
            } else if let Some(reserved) = Reserved::of_host(address.octets()[3]) {
                diagnostics.push(
                    Diagnostic::new(
                        codes::RESERVED_ADDRESS,
                        ip.span,
                        format!("address `{address}` is reserved"),
                        format!(".{} is {}", address.octets()[3], reserved.describe()),
                    )
                    .with_help("Use a host number from .1 to .99 or from .250 to .253."),
                );
            }
            match used.get(&address) {
                Some(first) => {
                    let first_ip = first.ip.as_ref().map_or(first.name.span, |ip| ip.span);
                    diagnostics.push(
                        Diagnostic::new(
                            codes::DUPLICATE_ADDRESS,
                            ip.span,
                            format!("address `{address}` is used by two machines"),
                            format!("`{}` uses it again", machine.name.value),
                        )
                        .with_label(first_ip, format!("first used by `{}` here", first.name.value))
                        .with_help(format!("Give each machine its own address, or {without_ip}.")),
                    );
                }
                None => {
                    used.insert(address, machine);
                }
            }
        }
    }
}

fn invalid_address(ip: &Spanned<String>) -> Diagnostic {
    let diagnostic = Diagnostic::new(
        codes::INVALID_ADDRESS,
        ip.span,
        format!("invalid IPv4 address `{}`", printable(&ip.value)),
        "not a dotted-quad IPv4 address",
    );
    match ip.value.split_once('/') {
        Some((address, _)) => {
            let diagnostic = diagnostic.with_note("the prefix length comes from the domain's /24 subnet");
            match numbering::parse_address(address) {
                Some(address) => diagnostic.with_help(format!("Write the address without prefix length: `{address}`.")),
                None => diagnostic.with_help("Write the address without prefix length, such as `10.120.0.10`."),
            }
        }
        None => diagnostic.with_help(
            "Write four numbers from 0 to 255 separated by dots, without leading zeros, such as `10.120.0.10`.",
        ),
    }
}

/// More than 99 machines of a zone-mode domain need an automatic address.
fn check_exhausted(
    domain: &Domain,
    subnet: Subnet,
    addresses: &[Option<MachineAddress>],
    diagnostics: &mut Diagnostics,
) {
    let Some(index) = addresses.iter().position(|a| matches!(a, Some(MachineAddress::Exhausted))) else { return };
    let machine = &domain.machines[index];
    let needing = domain.machines.iter().filter(|m| m.ip.is_none()).count();
    diagnostics.push(
        Diagnostic::new(
            codes::ADDRESSES_EXHAUSTED,
            machine.name.span,
            format!("domain `{}` has no automatic address left for `{}`", domain.name.value, machine.name.value),
            format!("no address left in {} for this machine", subnet.cidr()),
        )
        .with_note(format!(
            "machines without `ip` get .{}-.{} in declaration order; {needing} machines of this domain need one",
            numbering::AUTO_FIRST_HOST,
            numbering::AUTO_LAST_HOST
        ))
        .with_help("Split the domain, or give some machines explicit addresses from .250 to .253."),
    );
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use std::fmt::Write;

    fn legacy(domains: &str) -> String {
        format!(
            "project_name: t\nglobal:\n  base_subnet: \"10.100\"\n  default_os_image: \"images:debian/13\"\ndomains:\n{domains}"
        )
    }

    fn zones(addressing: &str, domains: &str) -> String {
        format!(
            "project_name: t\nglobal:\n  addressing:\n{addressing}  default_os_image: \"images:debian/13\"\ndomains:\n{domains}"
        )
    }

    #[test]
    fn addressing_values_are_bounded() {
        let text = zones(
            "    base_octet: 192\n    zone_base: 250\n    zone_step: 0\n",
            "  work:\n    machines:\n      web: {}\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0016"), ["192", "250", "0"]);
        // Bad settings compute no subnets: no cascade of overflows.
        assert!(found(&text, &diagnostics, "E0017").is_empty());
    }

    #[test]
    fn base_subnet_must_be_two_octets() {
        let text = "project_name: t\nglobal:\n  base_subnet: \"10.100.1\"\n  default_os_image: x\ndomains:\n  work:\n    subnet_id: 1\n";
        let diagnostics = check_text(text);
        assert_eq!(found(text, &diagnostics, "E0016"), ["\"10.100.1\""]);
    }

    #[test]
    fn both_modes_at_once_are_ambiguous() {
        let text = "project_name: t\nglobal:\n  addressing:\n    zone_base: 100\n  base_subnet: \"10.100\"\n  default_os_image: x\ndomains:\n  work: {}\n";
        let diagnostics = check_text(text);
        let d = only(&diagnostics, "E0016");
        assert_eq!(primary(text, d), "\"10.100\"");
        assert_eq!(d.labels[0].message, "legacy base_subnet is ignored when addressing is set");
    }

    #[test]
    fn legacy_domains_need_a_subnet_id_in_range() {
        let text =
            legacy("  work:\n    machines:\n      web: {}\n  lab:\n    subnet_id: 255\n  ok:\n    subnet_id: 0\n");
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0013"), ["work", "255"]);
        let missing = diagnostics.iter().find(|d| primary(&text, d) == "work").expect("work");
        assert_eq!(
            missing.help.as_deref(),
            Some(
                "Add `subnet_id: 1` (or any free number from 0 to 254) to the domain, or use `global.addressing` to number domains automatically."
            )
        );
    }

    #[test]
    fn duplicate_subnet_ids_in_legacy_mode_are_global() {
        let text = legacy(
            "  one:\n    subnet_id: 3\n    trust_level: admin\n  two:\n    subnet_id: 3\n    trust_level: trusted\n",
        );
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0014");
        assert_eq!(d.primary_span().start, text.rfind('3').expect("second"));
        assert_eq!(secondaries(&text, d), ["3"]);
        assert_eq!(d.notes, ["both domains would get 10.100.3.0/24"]);
    }

    #[test]
    fn duplicate_subnet_ids_in_zone_mode_are_per_zone() {
        let text = with_domains(
            "  one:\n    subnet_id: 3\n  two:\n    subnet_id: 3\n  three:\n    subnet_id: 3\n    trust_level: admin\n",
        );
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0014");
        assert_eq!(d.message, "`subnet_id` 3 is used by two domains in the semi-trusted zone");
        assert_eq!(d.labels[1].message, "first used by domain `one` here");
        assert_eq!(d.notes, ["both domains would get 10.120.3.0/24"]);
    }

    #[test]
    fn octet_overflow_is_reported_on_the_domain() {
        let text =
            zones("    zone_base: 220\n", "  safe:\n    trust_level: admin\n  junk:\n    trust_level: disposable\n");
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0017");
        assert_eq!(primary(&text, d), "junk");
        assert_eq!(d.labels[0].message, "zone_base 220 + 50 (disposable) = 270");
        assert_eq!(secondaries(&text, d), ["220", "disposable"]);
        assert_eq!(d.help.as_deref(), Some("Lower `zone_base` to at most 205."));
    }

    #[test]
    fn malformed_addresses() {
        let text = with_domains(
            "  work:\n    machines:\n      a:\n        ip: 10.120.0.5/24\n      b:\n        ip: 10.120.0.05\n      c:\n        ip: \"10.120.0\"\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0009"), ["10.120.0.5/24", "10.120.0.05", "\"10.120.0\""]);
        let prefixed = diagnostics.iter().find(|d| primary(&text, d) == "10.120.0.5/24").expect("prefixed");
        assert_eq!(prefixed.help.as_deref(), Some("Write the address without prefix length: `10.120.0.5`."));
    }

    #[test]
    fn addresses_outside_the_subnet() {
        let text = with_domains("  work:\n    machines:\n      a:\n        ip: 10.110.0.5\n");
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0010");
        assert_eq!(primary(&text, d), "10.110.0.5");
        assert_eq!(d.notes, ["the subnet of domain `work` is 10.120.0.0/24"]);
    }

    #[test]
    fn reserved_addresses() {
        let text = with_domains(
            "  work:\n    machines:\n      a:\n        ip: 10.120.0.254\n      b:\n        ip: 10.120.0.150\n      c:\n        ip: 10.120.0.0\n      d:\n        ip: 10.120.0.250\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0012"), ["10.120.0.254", "10.120.0.150", "10.120.0.0"]);
        let gateway = diagnostics.iter().find(|d| primary(&text, d) == "10.120.0.254").expect("gateway");
        assert_eq!(gateway.labels[0].message, ".254 is the gateway (the bridge's own address)");
    }

    #[test]
    fn reserved_addresses_are_checked_in_legacy_domains_without_subnet() {
        let text = legacy("  work:\n    subnet_id: 1\n    machines:\n      a:\n        ip: 10.100.1.255\n");
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0012"), ["10.100.1.255"]);
    }

    #[test]
    fn duplicate_addresses() {
        let text = with_domains(
            "  work:\n    machines:\n      a:\n        ip: 10.120.0.5\n      b:\n        ip: 10.120.0.5\n",
        );
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0011");
        assert_eq!(d.primary_span().start, text.rfind("10.120.0.5").expect("second"));
        assert_eq!(d.labels[1].message, "first used by `a` here");
        assert_eq!(d.labels[1].span.start, text.find("10.120.0.5").expect("first"));
    }

    #[test]
    fn a_hundredth_automatic_machine_has_no_address() {
        let mut machines = String::from("  big:\n    machines:\n      fixed:\n        ip: 10.120.0.250\n");
        for index in 0..101 {
            let _ = writeln!(machines, "      m{index}: {{}}");
        }
        let text = with_domains(&machines);
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0018");
        assert_eq!(primary(&text, d), "m99");
    }

    #[test]
    fn disabled_domains_take_part_in_numbering() {
        let text = with_domains("  one:\n    enabled: false\n    subnet_id: 0\n  two:\n    subnet_id: 0\n");
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0014").len(), 1);
    }
}
