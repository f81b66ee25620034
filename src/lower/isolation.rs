//! Domain isolation: the network ACL of each domain's bridge, from the domain's
//! subnet and the `network_policies` that reach it.
//!
//! Every bridge drops what enters it towards an instance unless a rule of its ACL
//! allows it, and lets out what its instances send. So a flow from domain A to domain
//! B is decided by B's ACL alone: a policy `from: A, to: B` is one ingress rule in B's
//! ACL (and, when bidirectional, the mirror rule in A's). Traffic within a domain and
//! from the host (which reaches a bridge through its gateway, inside the domain's
//! subnet) is allowed by the first rule of every ACL. The host and the outside stay
//! reachable from every domain, as in anklume's own nftables ruleset.

use crate::addressing::{DomainAddressing, MachineAddress, Subnet};
use crate::plan::{AclRule, AclSpec};
use crate::syntax::ast::{Infra, NetworkPolicy, Ports, Protocol, Text};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// The bridge config that puts a bridge under its ACL (`name`), or, without one
/// (isolation turned off), takes it out from under any ACL an earlier run set: an
/// empty value unsets the key.
pub fn bridge_keys(acl: Option<&str>) -> [(&'static str, String); 3] {
    let (acl, ingress, egress) = match acl {
        Some(name) => (name.to_string(), "drop".to_string(), "allow".to_string()),
        None => (String::new(), String::new(), String::new()),
    };
    [
        ("security.acls", acl),
        ("security.acls.default.egress.action", egress),
        ("security.acls.default.ingress.action", ingress),
    ]
}

/// The anti-spoofing options of a domain's NICs: a machine can only send from its own
/// MAC and IPv4 address (Incus drops the rest on the host side of its veth) and sends
/// no IPv6 (the bridges have none). Without them an address-based rule would admit any
/// machine that takes the allowed address.
pub const NIC_FILTERING: [(&str, &str); 3] =
    [("security.ipv4_filtering", "true"), ("security.ipv6_filtering", "true"), ("security.mac_filtering", "true")];

/// One end of a policy, resolved: the domain (its index) and, for a machine, its address.
#[derive(Clone, Copy)]
struct End {
    domain: usize,
    machine: Option<Ipv4Addr>,
}

/// The ACL of every enabled domain with a subnet, by domain name.
pub fn acls<'a>(infra: &'a Infra, addressing: &[DomainAddressing]) -> HashMap<&'a str, AclSpec> {
    let mut acls: HashMap<usize, AclSpec> = HashMap::new();
    for (index, domain) in infra.domains.iter().enumerate() {
        let Some(subnet) = addressing[index].subnet.filter(|_| domain.is_enabled()) else { continue };
        let own = AclRule {
            source: Some(subnet.cidr()),
            destination: None,
            protocol: None,
            destination_port: None,
            description: format!("anklume: domain {} itself, and the host", domain.name.value),
        };
        acls.insert(
            index,
            AclSpec {
                name: super::bridge_name(&domain.name.value),
                description: format!("anklume isolation of domain {}", domain.name.value),
                ingress: vec![own],
            },
        );
    }
    let ends = ends(infra, addressing);
    for (number, policy) in infra.network_policies.iter().enumerate() {
        let (Some(from), Some(to)) = (end(&ends, policy.from.as_ref()), end(&ends, policy.to.as_ref())) else {
            continue;
        };
        if from.domain == to.domain {
            // Open already, by the domain's own rule.
            continue;
        }
        let description = describe(number + 1, policy);
        let subnets = |end: End| addressing[end.domain].subnet;
        for (source, target) in std::iter::once((from, to)).chain(is_bidirectional(policy).then_some((to, from))) {
            let (Some(source_subnet), Some(acl)) = (subnets(source), acls.get_mut(&target.domain)) else { continue };
            let rule = AclRule {
                source: Some(cidr(source, source_subnet)),
                destination: target.machine.map(|address| address.to_string()),
                protocol: protocol(policy),
                destination_port: ports(policy),
                description: description.clone(),
            };
            if !acl.ingress.contains(&rule) {
                acl.ingress.push(rule);
            }
        }
    }
    acls.into_iter().map(|(index, acl)| (infra.domains[index].name.value.as_str(), acl)).collect()
}

/// Every name a policy may use, resolved (a domain's name wins over a machine's; the
/// checker refuses a policy that names both). Disabled domains and machines without a
/// fixed address resolve to nothing: no rule can name them.
fn ends<'a>(infra: &'a Infra, addressing: &[DomainAddressing]) -> HashMap<&'a str, End> {
    let mut ends = HashMap::new();
    for (index, domain) in infra.domains.iter().enumerate().filter(|(_, domain)| domain.is_enabled()) {
        for (machine, address) in domain.machines.iter().zip(&addressing[index].machines) {
            if let Some(address) = address.and_then(MachineAddress::address) {
                ends.insert(machine.name.value.as_str(), End { domain: index, machine: Some(address) });
            }
        }
    }
    for (index, domain) in infra.domains.iter().enumerate().filter(|(_, domain)| domain.is_enabled()) {
        ends.insert(domain.name.value.as_str(), End { domain: index, machine: None });
    }
    ends
}

fn end(ends: &HashMap<&str, End>, name: Option<&Text>) -> Option<End> {
    ends.get(name?.value.as_str()).copied()
}

fn cidr(end: End, subnet: Subnet) -> String {
    match end.machine {
        Some(address) => address.to_string(),
        None => subnet.cidr(),
    }
}

fn is_bidirectional(policy: &NetworkPolicy) -> bool {
    policy.bidirectional.as_ref().is_some_and(|b| b.value)
}

/// A list of ports is TCP unless the policy says otherwise; `ports: all` is every
/// protocol unless the policy names one.
fn protocol(policy: &NetworkPolicy) -> Option<Protocol> {
    let declared = policy.protocol.as_ref().map(|p| p.value);
    match policy.ports.as_ref().map(|p| &p.value) {
        Some(Ports::List(_)) => Some(declared.unwrap_or(Protocol::Tcp)),
        _ => declared,
    }
}

/// `80,443`: the declared ports, each once, in order.
fn ports(policy: &NetworkPolicy) -> Option<String> {
    let Some(Ports::List(list)) = policy.ports.as_ref().map(|p| &p.value) else { return None };
    let mut seen = Vec::with_capacity(list.len());
    for port in list {
        if !seen.contains(&port.value) {
            seen.push(port.value);
        }
    }
    Some(seen.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
}

/// The rule's description: the policy's number and its own description (or its ends),
/// on one line.
fn describe(number: usize, policy: &NetworkPolicy) -> String {
    let text = match &policy.description {
        Some(description) if !description.value.trim().is_empty() => description.value.clone(),
        _ => {
            let name = |end: &Option<Text>| end.as_ref().map_or("", |t| t.value.as_str()).to_string();
            format!("{} to {}", name(&policy.from), name(&policy.to))
        }
    };
    // One line of plain text: a description is shown in `incus network acl show`.
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    format!("anklume policy {number}: {}", text.trim())
}

#[cfg(test)]
mod tests {
    use crate::plan::{AclRule, AclSpec, Action, Plan};
    use crate::syntax::ast::Protocol;

    const BASE: &str = "project_name: t
global:
  addressing: {base_octet: 10, zone_base: 100}
  default_os_image: x
domains:
  adm:
    trust_level: admin
    machines:
      ctl: {ip: 10.100.0.10}
      ops: {}
  web:
    trust_level: trusted
    machines:
      www: {ip: 10.110.0.10}
      api: {ip: 10.110.0.11}
  lab:
    trust_level: untrusted
    enabled: false
    machines:
      box: {}
";

    fn plan(extra: &str) -> Plan {
        let text = format!("{BASE}{extra}");
        let compiled = crate::compile::compile_source("infra.yml", text, Default::default());
        assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
        compiled.plan.expect("a plan")
    }

    fn acl<'p>(plan: &'p Plan, name: &str) -> &'p AclSpec {
        plan.steps
            .iter()
            .find_map(|step| match &step.action {
                Action::EnsureAcl(spec) if spec.name == name => Some(spec),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no ACL {name}"))
    }

    fn rule(source: &str, destination: Option<&str>, protocol: Option<Protocol>, ports: Option<&str>) -> AclRule {
        AclRule {
            source: Some(source.into()),
            destination: destination.map(str::to_string),
            protocol,
            destination_port: ports.map(str::to_string),
            description: String::new(),
        }
    }

    /// The rules without their descriptions.
    fn rules(spec: &AclSpec) -> Vec<AclRule> {
        spec.ingress.iter().map(|rule| AclRule { description: String::new(), ..rule.clone() }).collect()
    }

    #[test]
    fn every_enabled_domain_admits_its_own_subnet_only() {
        let plan = plan("");
        assert_eq!(rules(acl(&plan, "net-adm")), [rule("10.100.0.0/24", None, None, None)]);
        assert_eq!(rules(acl(&plan, "net-web")), [rule("10.110.0.0/24", None, None, None)]);
        assert!(!plan.steps.iter().any(|step| step.id == "acl:net-lab"), "a disabled domain has no ACL");
    }

    #[test]
    fn the_acl_comes_before_its_bridge_which_names_it() {
        let plan = plan("");
        let position = |id: &str| plan.steps.iter().position(|step| step.id == id).expect(id);
        assert!(position("acl:net-web") < position("network:net-web"));
        let network = plan.steps.iter().find(|step| step.id == "network:net-web").expect("bridge");
        assert_eq!(network.depends_on, ["acl:net-web"]);
        let Action::EnsureNetwork(spec) = &network.action else { panic!("a bridge") };
        assert_eq!(spec.config.get("security.acls").map(String::as_str), Some("net-web"));
        assert_eq!(spec.config.get("security.acls.default.ingress.action").map(String::as_str), Some("drop"));
        assert_eq!(spec.config.get("security.acls.default.egress.action").map(String::as_str), Some("allow"));
    }

    #[test]
    fn a_policy_is_a_rule_in_the_acl_of_its_target() {
        let plan = plan(
            "network_policies:
  - {from: adm, to: web, ports: [443, 80, 443]}
  - {from: ctl, to: api, ports: [53], protocol: udp}
  - {from: web, to: ctl, ports: all, bidirectional: true}
",
        );
        assert_eq!(
            rules(acl(&plan, "net-web")),
            [
                rule("10.110.0.0/24", None, None, None),
                rule("10.100.0.0/24", None, Some(Protocol::Tcp), Some("443,80")),
                rule("10.100.0.10", Some("10.110.0.11"), Some(Protocol::Udp), Some("53")),
                // The mirror of the bidirectional policy: from ctl to all of web.
                rule("10.100.0.10", None, None, None),
            ]
        );
        assert_eq!(
            rules(acl(&plan, "net-adm")),
            [rule("10.100.0.0/24", None, None, None), rule("10.110.0.0/24", Some("10.100.0.10"), None, None)]
        );
        let described: Vec<&str> = acl(&plan, "net-web").ingress.iter().map(|r| r.description.as_str()).collect();
        assert_eq!(described[1], "anklume policy 1: adm to web");
    }

    #[test]
    fn policies_that_need_no_rule_make_none() {
        let plan = plan(
            "network_policies:
  - {from: host, to: web, ports: [22]}
  - {from: www, to: api, ports: [80]}
  - {from: adm, to: lab, ports: all}
",
        );
        assert_eq!(acl(&plan, "net-web").ingress.len(), 1);
        assert_eq!(acl(&plan, "net-adm").ingress.len(), 1);
    }

    #[test]
    fn ports_all_with_a_protocol_is_every_port_of_it() {
        let plan = plan("network_policies:\n  - {from: adm, to: web, ports: all, protocol: udp}\n");
        assert_eq!(rules(acl(&plan, "net-web"))[1], rule("10.100.0.0/24", None, Some(Protocol::Udp), None));
    }

    #[test]
    fn a_description_becomes_one_line() {
        let plan = plan(
            "network_policies:\n  - description: \"two\\nlines\\tand a tab\"\n    from: adm\n    to: web\n    ports: [1]\n",
        );
        assert_eq!(acl(&plan, "net-web").ingress[1].description, "anklume policy 1: two lines and a tab");
    }

    #[test]
    fn every_nic_anklumec_makes_is_filtered() {
        let plan = plan("");
        for step in &plan.steps {
            let devices = match &step.action {
                Action::EnsureProfile(spec) if spec.name == "default" => &spec.devices,
                Action::EnsureInstance(spec) if spec.address.is_some() => &spec.devices,
                _ => continue,
            };
            let eth0 = devices.get("eth0").unwrap_or_else(|| panic!("{}: no eth0", step.id));
            for (key, value) in super::NIC_FILTERING {
                assert_eq!(eth0.options.get(key).map(String::as_str), Some(value), "{}: {key}", step.id);
            }
        }
    }

    #[test]
    fn without_isolation_there_is_no_acl_and_bridges_leave_theirs() {
        let text = BASE.replace("  default_os_image: x\n", "  default_os_image: x\n  network_isolation: false\n");
        let compiled = crate::compile::compile_source("infra.yml", text, Default::default());
        let plan = compiled.plan.expect("a plan");
        assert!(!plan.steps.iter().any(|step| matches!(step.action, Action::EnsureAcl(_))));
        let network = plan.steps.iter().find(|step| step.id == "network:net-web").expect("bridge");
        assert!(network.depends_on.is_empty());
        let Action::EnsureNetwork(spec) = &network.action else { panic!("a bridge") };
        for key in ["security.acls", "security.acls.default.ingress.action", "security.acls.default.egress.action"] {
            assert_eq!(spec.config.get(key).map(String::as_str), Some(""), "{key} is unset");
        }
    }
}
