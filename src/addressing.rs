//! anklume's addressing convention (ADR-038), as pure functions: which /24 each domain
//! gets and which address each machine gets. The checker reports what cannot be
//! assigned; lowering uses the same results on error-free input.
//!
//! Zone mode (`global.addressing`): a domain's subnet is
//! `<base_octet>.<zone_base + zone offset>.<seq>.0/24`, where `seq` is the explicit
//! `subnet_id`, else the domain's rank in alphabetical order within its zone, skipping
//! numbers taken explicitly. Legacy mode (`global.base_subnet`): `<base_subnet>.<subnet_id>.0/24`.
//! Gateway `.254`; DHCP pool `.100`–`.249`; automatic machine addresses `.1`–`.99` in
//! declaration order (zone mode only), skipping addresses taken explicitly.

use crate::syntax::ast::TrustLevel;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

pub const GATEWAY_HOST: u8 = 254;
pub const DHCP_FIRST_HOST: u8 = 100;
pub const DHCP_LAST_HOST: u8 = 249;
pub const AUTO_FIRST_HOST: u8 = 1;
pub const AUTO_LAST_HOST: u8 = 99;
pub const DEFAULT_BASE_OCTET: i64 = 10;
pub const DEFAULT_ZONE_BASE: i64 = 100;
pub const DEFAULT_BASE_SUBNET: &str = "10.100";

/// How domain subnets are numbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Zones { base_octet: u32, zone_base: u32 },
    Legacy { first: u8, second: u8 },
}

/// The first three octets of a domain's /24, before range checks (they may exceed 255
/// when `zone_base` is high: the checker reports that).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubnetOctets(pub [u32; 3]);

impl SubnetOctets {
    pub fn to_subnet(self) -> Option<Subnet> {
        let [a, b, c] = self.0;
        Some(Subnet { octets: [u8::try_from(a).ok()?, u8::try_from(b).ok()?, u8::try_from(c).ok()?] })
    }
}

/// A domain's /24 subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    pub octets: [u8; 3],
}

impl Subnet {
    pub fn host(self, host: u8) -> Ipv4Addr {
        let [a, b, c] = self.octets;
        Ipv4Addr::new(a, b, c, host)
    }

    pub fn gateway(self) -> Ipv4Addr {
        self.host(GATEWAY_HOST)
    }

    pub fn contains(self, address: Ipv4Addr) -> bool {
        address.octets()[..3] == self.octets
    }

    /// `10.120.0.0/24`
    pub fn cidr(self) -> String {
        format!("{}/24", self.host(0))
    }

    /// `10.120.0.254/24`, the form Incus wants for a bridge's `ipv4.address`.
    pub fn gateway_cidr(self) -> String {
        format!("{}/24", self.gateway())
    }

    /// `10.120.0.100-10.120.0.249`, the form of `ipv4.dhcp.ranges`.
    pub fn dhcp_range(self) -> String {
        format!("{}-{}", self.host(DHCP_FIRST_HOST), self.host(DHCP_LAST_HOST))
    }
}

/// Why a host number cannot be given to a machine statically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserved {
    Network,
    Gateway,
    Broadcast,
    DhcpPool,
}

impl Reserved {
    pub fn of_host(host: u8) -> Option<Reserved> {
        match host {
            0 => Some(Reserved::Network),
            GATEWAY_HOST => Some(Reserved::Gateway),
            255 => Some(Reserved::Broadcast),
            DHCP_FIRST_HOST..=DHCP_LAST_HOST => Some(Reserved::DhcpPool),
            _ => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Reserved::Network => "the network address",
            Reserved::Gateway => "the gateway (the bridge's own address)",
            Reserved::Broadcast => "the broadcast address",
            Reserved::DhcpPool => "inside the DHCP pool .100-.249",
        }
    }
}

/// One domain as addressing sees it.
#[derive(Clone, Debug)]
pub struct DomainInput<'a> {
    pub name: &'a str,
    pub trust: TrustLevel,
    pub subnet_id: Option<u32>,
}

/// Subnet octets per domain (same order as the input), `None` where none can be
/// computed (legacy mode without `subnet_id`).
pub fn domain_subnets(mode: Mode, domains: &[DomainInput<'_>]) -> Vec<Option<SubnetOctets>> {
    match mode {
        Mode::Legacy { first, second } => domains
            .iter()
            .map(|domain| domain.subnet_id.map(|id| SubnetOctets([u32::from(first), u32::from(second), id])))
            .collect(),
        Mode::Zones { base_octet, zone_base } => {
            let mut by_zone: BTreeMap<TrustLevel, Vec<usize>> = BTreeMap::new();
            for (index, domain) in domains.iter().enumerate() {
                by_zone.entry(domain.trust).or_default().push(index);
            }
            let mut result = vec![None; domains.len()];
            for (trust, mut members) in by_zone {
                let second = zone_base + trust.zone_offset();
                // anklume numbers a zone's domains alphabetically; explicit ids are taken first.
                members.sort_by(|&a, &b| domains[a].name.cmp(domains[b].name));
                let taken: BTreeSet<u32> = members.iter().filter_map(|&i| domains[i].subnet_id).collect();
                let mut next = 0u32;
                for index in members {
                    let seq = match domains[index].subnet_id {
                        Some(id) => id,
                        None => {
                            while taken.contains(&next) {
                                next += 1;
                            }
                            next += 1;
                            next - 1
                        }
                    };
                    result[index] = Some(SubnetOctets([base_octet, second, seq]));
                }
            }
            result
        }
    }
}

/// A machine's address: written in infra.yml, or assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineAddress {
    Explicit(Ipv4Addr),
    Automatic(Ipv4Addr),
    /// Legacy mode without `ip`: the machine takes a DHCP lease.
    Dynamic,
    /// More than 99 machines in the domain need an automatic address.
    Exhausted,
}

impl MachineAddress {
    pub fn address(self) -> Option<Ipv4Addr> {
        match self {
            MachineAddress::Explicit(address) | MachineAddress::Automatic(address) => Some(address),
            MachineAddress::Dynamic | MachineAddress::Exhausted => None,
        }
    }
}

/// Addresses of one domain's machines, in declaration order. `explicit` holds each
/// machine's parsed `ip` (None when absent). Automatic addresses are given only in zone
/// mode; they skip host numbers taken by explicit addresses inside the subnet.
pub fn machine_addresses(subnet: Subnet, explicit: &[Option<Ipv4Addr>], automatic: bool) -> Vec<MachineAddress> {
    let used: BTreeSet<u8> = explicit
        .iter()
        .flatten()
        .filter(|address| subnet.contains(**address))
        .map(|address| address.octets()[3])
        .collect();
    let mut next = AUTO_FIRST_HOST;
    explicit
        .iter()
        .map(|address| match address {
            Some(address) => MachineAddress::Explicit(*address),
            None if !automatic => MachineAddress::Dynamic,
            None => {
                while next <= AUTO_LAST_HOST && used.contains(&next) {
                    next += 1;
                }
                if next > AUTO_LAST_HOST {
                    MachineAddress::Exhausted
                } else {
                    next += 1;
                    MachineAddress::Automatic(subnet.host(next - 1))
                }
            }
        })
        .collect()
}

/// Parse `"10.100"` (legacy `base_subnet`).
pub fn parse_base_subnet(text: &str) -> Option<(u8, u8)> {
    let (first, second) = text.split_once('.')?;
    let parse = |part: &str| -> Option<u8> {
        if part.is_empty()
            || part.len() > 3
            || !part.bytes().all(|b| b.is_ascii_digit())
            || (part.len() > 1 && part.starts_with('0'))
        {
            return None;
        }
        part.parse().ok()
    };
    Some((parse(first)?, parse(second)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones() -> Mode {
        Mode::Zones { base_octet: 10, zone_base: 100 }
    }

    fn input(name: &str, trust: TrustLevel, subnet_id: Option<u32>) -> DomainInput<'_> {
        DomainInput { name, trust, subnet_id }
    }

    fn cidrs(mode: Mode, domains: &[DomainInput<'_>]) -> Vec<String> {
        domain_subnets(mode, domains)
            .into_iter()
            .map(|s| s.and_then(SubnetOctets::to_subnet).map_or("-".into(), |s| s.cidr()))
            .collect()
    }

    #[test]
    fn zones_follow_trust_offsets() {
        use TrustLevel::*;
        let domains = [
            input("a", Admin, None),
            input("t", Trusted, None),
            input("s", SemiTrusted, None),
            input("u", Untrusted, None),
            input("d", Disposable, None),
        ];
        assert_eq!(
            cidrs(zones(), &domains),
            ["10.100.0.0/24", "10.110.0.0/24", "10.120.0.0/24", "10.140.0.0/24", "10.150.0.0/24"]
        );
    }

    #[test]
    fn zone_members_are_numbered_alphabetically_not_in_declaration_order() {
        // examples__tor-gateway: tor-gateway is declared before anonymous.
        let domains =
            [input("tor-gateway", TrustLevel::Untrusted, None), input("anonymous", TrustLevel::Untrusted, None)];
        assert_eq!(cidrs(zones(), &domains), ["10.140.1.0/24", "10.140.0.0/24"]);
    }

    #[test]
    fn explicit_subnet_ids_are_skipped_by_automatic_numbering() {
        let domains = [
            input("c", TrustLevel::Trusted, Some(0)),
            input("b", TrustLevel::Trusted, None),
            input("a", TrustLevel::Trusted, Some(2)),
            input("d", TrustLevel::Trusted, None),
        ];
        assert_eq!(cidrs(zones(), &domains), ["10.110.0.0/24", "10.110.1.0/24", "10.110.2.0/24", "10.110.3.0/24"]);
    }

    #[test]
    fn legacy_mode_uses_base_subnet_and_subnet_id() {
        let domains = [input("secure", TrustLevel::Admin, Some(4)), input("other", TrustLevel::Admin, None)];
        assert_eq!(cidrs(Mode::Legacy { first: 10, second: 100 }, &domains), ["10.100.4.0/24", "-"]);
    }

    #[test]
    fn high_zone_base_overflows_instead_of_wrapping() {
        let domains = [input("d", TrustLevel::Disposable, None)];
        let octets = domain_subnets(Mode::Zones { base_octet: 10, zone_base: 245 }, &domains);
        assert_eq!(octets, [Some(SubnetOctets([10, 295, 0]))]);
        assert_eq!(octets[0].and_then(SubnetOctets::to_subnet), None);
    }

    #[test]
    fn machines_get_addresses_in_declaration_order_skipping_explicit_ones() {
        let subnet = Subnet { octets: [10, 120, 0] };
        let explicit = [None, Some(Ipv4Addr::new(10, 120, 0, 2)), None, Some(Ipv4Addr::new(10, 120, 0, 1)), None];
        let got: Vec<_> = machine_addresses(subnet, &explicit, true)
            .into_iter()
            .map(|a| a.address().map(|a| a.to_string()))
            .collect();
        let want = ["10.120.0.3", "10.120.0.2", "10.120.0.4", "10.120.0.1", "10.120.0.5"].map(|s| Some(s.to_string()));
        assert_eq!(got, want);
    }

    #[test]
    fn explicit_addresses_outside_the_subnet_do_not_block_host_numbers() {
        let subnet = Subnet { octets: [10, 120, 0] };
        let explicit = [Some(Ipv4Addr::new(10, 99, 0, 1)), None];
        assert_eq!(
            machine_addresses(subnet, &explicit, true)[1],
            MachineAddress::Automatic(Ipv4Addr::new(10, 120, 0, 1))
        );
    }

    #[test]
    fn the_hundredth_automatic_machine_is_exhausted() {
        let subnet = Subnet { octets: [10, 120, 0] };
        let explicit = vec![None; 100];
        let addresses = machine_addresses(subnet, &explicit, true);
        assert_eq!(addresses[98], MachineAddress::Automatic(Ipv4Addr::new(10, 120, 0, 99)));
        assert_eq!(addresses[99], MachineAddress::Exhausted);
    }

    #[test]
    fn legacy_machines_without_ip_are_dynamic() {
        let subnet = Subnet { octets: [10, 100, 4] };
        assert_eq!(machine_addresses(subnet, &[None], false), [MachineAddress::Dynamic]);
    }

    #[test]
    fn reserved_hosts() {
        assert_eq!(Reserved::of_host(0), Some(Reserved::Network));
        assert_eq!(Reserved::of_host(254), Some(Reserved::Gateway));
        assert_eq!(Reserved::of_host(255), Some(Reserved::Broadcast));
        assert_eq!(Reserved::of_host(100), Some(Reserved::DhcpPool));
        assert_eq!(Reserved::of_host(249), Some(Reserved::DhcpPool));
        assert_eq!(Reserved::of_host(99), None);
        assert_eq!(Reserved::of_host(250), None);
    }

    #[test]
    fn base_subnet_parsing() {
        assert_eq!(parse_base_subnet("10.100"), Some((10, 100)));
        assert_eq!(parse_base_subnet("10.256"), None);
        assert_eq!(parse_base_subnet("10.100.0"), None);
        assert_eq!(parse_base_subnet("10"), None);
        assert_eq!(parse_base_subnet("010.1"), None);
    }

    #[test]
    fn subnet_forms() {
        let subnet = Subnet { octets: [10, 120, 3] };
        assert_eq!(subnet.gateway_cidr(), "10.120.3.254/24");
        assert_eq!(subnet.dhcp_range(), "10.120.3.100-10.120.3.249");
        assert_eq!(subnet.cidr(), "10.120.3.0/24");
    }
}

/// Addressing of a whole infra.yml: the mode, and per domain (in declaration order)
/// its subnet and its machines' addresses.
#[derive(Clone, Debug)]
pub struct Resolution {
    pub mode: Option<Mode>,
    pub domains: Vec<DomainAddressing>,
}

#[derive(Clone, Debug)]
pub struct DomainAddressing {
    pub octets: Option<SubnetOctets>,
    pub subnet: Option<Subnet>,
    /// Per machine, in declaration order; `None` where `ip` does not parse.
    pub machines: Vec<Option<MachineAddress>>,
}

/// The addressing mode `global` asks for, or `None` when its settings are unusable
/// (the checker says why).
pub fn mode_of(global: &crate::syntax::ast::Global) -> Option<Mode> {
    match &global.addressing {
        Some(addressing) => {
            let base_octet = addressing.base_octet.as_ref().map_or(DEFAULT_BASE_OCTET, |v| v.value);
            let zone_base = addressing.zone_base.as_ref().map_or(DEFAULT_ZONE_BASE, |v| v.value);
            Some(Mode::Zones { base_octet: u32::try_from(base_octet).ok()?, zone_base: u32::try_from(zone_base).ok()? })
        }
        None => {
            let text = global.base_subnet.as_ref().map_or(DEFAULT_BASE_SUBNET, |s| s.value.as_str());
            let (first, second) = parse_base_subnet(text)?;
            Some(Mode::Legacy { first, second })
        }
    }
}

/// Parse a machine's `ip`: a plain dotted quad, no prefix, no leading zeros.
pub fn parse_address(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (octet, part) in octets.iter_mut().zip(parts) {
        if part.is_empty()
            || part.len() > 3
            || !part.bytes().all(|b| b.is_ascii_digit())
            || (part.len() > 1 && part.starts_with('0'))
        {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    Some(Ipv4Addr::from(octets))
}

pub fn resolve(infra: &crate::syntax::ast::Infra) -> Resolution {
    let mode = mode_of(&infra.global);
    let inputs: Vec<DomainInput<'_>> = infra
        .domains
        .iter()
        .map(|domain| DomainInput {
            name: &domain.name.value,
            trust: domain.trust(),
            subnet_id: domain.subnet_id.as_ref().and_then(|id| u32::try_from(id.value).ok()),
        })
        .collect();
    let octets = mode.map_or_else(|| vec![None; inputs.len()], |mode| domain_subnets(mode, &inputs));
    let automatic = matches!(mode, Some(Mode::Zones { .. }));
    let domains = infra
        .domains
        .iter()
        .zip(octets)
        .map(|(domain, octets)| {
            let subnet = octets.and_then(SubnetOctets::to_subnet);
            let parsed: Vec<Option<Option<Ipv4Addr>>> = domain
                .machines
                .iter()
                .map(|machine| machine.ip.as_ref().map_or(Some(None), |ip| parse_address(&ip.value).map(Some)))
                .collect();
            let machines = match subnet {
                Some(subnet) => {
                    let explicit: Vec<Option<Ipv4Addr>> = parsed.iter().map(|p| p.flatten()).collect();
                    let assigned = machine_addresses(subnet, &explicit, automatic);
                    parsed.iter().zip(assigned).map(|(parsed, assigned)| parsed.map(|_| assigned)).collect()
                }
                None => parsed
                    .iter()
                    .map(|p| p.map(|explicit| explicit.map_or(MachineAddress::Dynamic, MachineAddress::Explicit)))
                    .collect(),
            };
            DomainAddressing { octets, subnet, machines }
        })
        .collect();
    Resolution { mode, domains }
}
