//! Synthetic infra.yml files for the benchmarks: `machines` machines, 50 a domain, the
//! five trust levels in turn, one VM in ten, limits and roles on each machine.

pub fn infra_yml(machines: usize) -> String {
    const LEVELS: [&str; 5] = ["admin", "trusted", "semi-trusted", "untrusted", "disposable"];
    let mut out = String::with_capacity(machines * 160);
    out.push_str("project_name: bench\nglobal:\n  addressing: {base_octet: 10, zone_base: 100}\n");
    out.push_str("  default_os_image: images:debian/13\n  gpu_policy: shared\ndomains:\n");
    let domains = machines.div_ceil(50);
    for domain in 0..domains {
        out.push_str(&format!("  d{domain:04}:\n    trust_level: {}\n    machines:\n", LEVELS[domain % 5]));
        for index in domain * 50..((domain + 1) * 50).min(machines) {
            let kind = if index % 10 == 0 { "vm" } else { "lxc" };
            out.push_str(&format!(
                "      m{index:05}:\n        type: {kind}\n        config:\n          limits.cpu: \"2\"\n          limits.memory: 2GiB\n        roles: [base_system, web]\n"
            ));
        }
    }
    out
}
