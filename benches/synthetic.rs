//! Synthetic infra.yml files for the benchmarks and the scale tests: machines in
//! domains of a given size, the five trust levels in turn, one VM in ten, limits and
//! roles on each machine. Each user takes what it needs of this file.
#![allow(dead_code)]

/// `machines` machines, 50 a domain (the benchmarks' shape).
pub fn infra_yml(machines: usize) -> String {
    infra_yml_in_domains(machines, 50)
}

/// `machines` machines, `per_domain` a domain (the last domain may hold fewer).
pub fn infra_yml_in_domains(machines: usize, per_domain: usize) -> String {
    const LEVELS: [&str; 5] = ["admin", "trusted", "semi-trusted", "untrusted", "disposable"];
    let mut out = String::with_capacity(machines * 160);
    out.push_str("project_name: bench\nglobal:\n  addressing: {base_octet: 10, zone_base: 100}\n");
    out.push_str("  default_os_image: images:debian/13\n  gpu_policy: shared\ndomains:\n");
    let domains = machines.div_ceil(per_domain);
    for domain in 0..domains {
        out.push_str(&format!("  d{domain:04}:\n    trust_level: {}\n    machines:\n", LEVELS[domain % 5]));
        for index in domain * per_domain..((domain + 1) * per_domain).min(machines) {
            let kind = if index % 10 == 0 { "vm" } else { "lxc" };
            out.push_str(&format!(
                "      m{index:05}:\n        type: {kind}\n        config:\n          limits.cpu: \"2\"\n          limits.memory: 2GiB\n        roles: [base_system, web]\n"
            ));
        }
    }
    out
}
