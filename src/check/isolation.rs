//! What a network policy must say for the isolation to enforce it: which ports
//! (`ports` is required, and a list is not empty), ends that name one thing (not a
//! domain and a machine at once) with an address known at compile time; which
//! policies need no rule; and the warning when isolation is turned off.
//!
//! Names that match nothing and disabled domains are the reference pass's
//! (`references.rs`).

use super::printable;
use crate::addressing::{self, MachineAddress};
use crate::diagnostics::{Diagnostic, Diagnostics, codes};
use crate::source::Spanned;
use crate::syntax::ast::{Infra, NetworkPolicy, Ports, Text};
use std::collections::{HashMap, HashSet};

pub fn check(infra: &Infra, diagnostics: &mut Diagnostics) {
    if let Some(isolation) = infra.global.network_isolation.as_ref().filter(|i| !i.value) {
        diagnostics.push(
            Diagnostic::new(
                codes::NO_ISOLATION,
                isolation.span,
                "the domains are not isolated from each other",
                "network isolation is turned off here",
            )
            .with_note("every machine can reach every machine of every domain, and `network_policies` have no effect")
            .with_help(
                "Remove `network_isolation: false` unless the Incus server cannot enforce network ACLs (deploy.sh and `anklumec apply` then stop before any change and say why); there, `anklumec --emit nftables` writes the same isolation as a host nftables ruleset.",
            ),
        );
    }
    if infra.network_policies.is_empty() {
        return;
    }
    let names = Names::of(infra);
    for policy in &infra.network_policies {
        check_ports(policy, diagnostics);
        let mut domains = Vec::with_capacity(2);
        for end in [&policy.from, &policy.to].into_iter().flatten() {
            domains.push(names.check_end(end, diagnostics));
        }
        if let [Some(from), Some(to)] = domains.as_slice() {
            if from == to {
                diagnostics.push(no_rule(policy, "both ends are in domain", from));
            }
        }
    }
}

fn check_ports(policy: &NetworkPolicy, diagnostics: &mut Diagnostics) {
    // A missing `ports` is the reader's E0004.
    if let Some(Spanned { value: Ports::List(list), span }) = &policy.ports {
        if list.is_empty() {
            diagnostics.push(
                Diagnostic::new(codes::INVALID_PORTS, *span, "`ports` is an empty list", "this opens nothing")
                    .with_help("List the ports the policy opens, write `ports: all`, or remove the policy."),
            );
        }
    }
}

/// Every machine (with its domain and address) and every domain, by name.
struct Names<'a> {
    domains: HashSet<&'a str>,
    machines: HashMap<&'a str, (&'a str, Option<MachineAddress>)>,
}

impl<'a> Names<'a> {
    fn of(infra: &'a Infra) -> Names<'a> {
        let resolution = addressing::resolve(infra);
        let mut machines = HashMap::new();
        for (domain, addresses) in infra.domains.iter().zip(&resolution.domains) {
            for (machine, address) in domain.machines.iter().zip(&addresses.machines) {
                machines.entry(machine.name.value.as_str()).or_insert((domain.name.value.as_str(), *address));
            }
        }
        let domains = infra.domains.iter().map(|domain| domain.name.value.as_str()).collect();
        Names { domains, machines }
    }

    /// Report what keeps `end` from becoming a rule; the name of the domain it lies in,
    /// if any.
    fn check_end(&self, end: &'a Text, diagnostics: &mut Diagnostics) -> Option<&'a str> {
        let name = end.value.as_str();
        if name == "host" {
            diagnostics.push(
                Diagnostic::new(codes::POLICY_NO_RULE, end.span, "a policy with `host` needs no rule", "the host")
                    .with_note(
                        "the host reaches every domain through its gateway, and every domain reaches the host: traffic with the host is not filtered",
                    ),
            );
            return None;
        }
        let machine = self.machines.get(name);
        match (self.domains.contains(name), machine) {
            (true, Some((domain, _))) => {
                diagnostics.push(
                    Diagnostic::new(
                        codes::AMBIGUOUS_POLICY_TARGET,
                        end.span,
                        format!("`{}` is both a domain and a machine", printable(name)),
                        format!("the domain `{name}`, or the machine `{name}` of domain `{domain}`?"),
                    )
                    .with_help("Rename the machine or the domain: a policy names one of them."),
                );
                None
            }
            (true, None) => Some(name),
            (false, Some((domain, address))) => {
                if matches!(address, Some(MachineAddress::Dynamic)) {
                    diagnostics.push(
                        Diagnostic::new(
                            codes::POLICY_TARGET_NO_ADDRESS,
                            end.span,
                            format!("machine `{name}` has no fixed address"),
                            "a rule for this machine needs its address",
                        )
                        .with_note(format!("`{name}` takes a DHCP lease (legacy addressing without `ip`)"))
                        .with_help(format!("Give `{name}` an `ip`, or name its domain `{domain}` in the policy.")),
                    );
                }
                Some(*domain)
            }
            // Unknown: the reference pass says so.
            (false, None) => None,
        }
    }
}

fn no_rule(policy: &NetworkPolicy, why: &str, domain: &str) -> Diagnostic {
    let span = policy.to.as_ref().map_or(policy.span, |to| to.span);
    Diagnostic::new(codes::POLICY_NO_RULE, span, "this policy needs no rule", format!("{why} `{domain}`"))
        .with_note("traffic within a domain is always open")
}
