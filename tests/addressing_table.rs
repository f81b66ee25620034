//! The addresses anklume's own generator assigns to its example files (verified by
//! running it; the table is in the corpus README), reproduced exactly.

use anklumec::compile::{Options, compile_source};
use anklumec::plan::{Action, Plan};
use std::collections::BTreeMap;

fn plan_of(fixture: &str) -> Plan {
    let path = format!("{}/tests/fixtures/ok/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    compile_source(fixture, &text, Options::default()).plan.expect("compiles")
}

/// domain → bridge gateway CIDR, machine → address, as the plan says.
fn addresses(plan: &Plan) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut subnets = BTreeMap::new();
    let mut machines = BTreeMap::new();
    for step in &plan.steps {
        match &step.action {
            Action::EnsureNetwork(network) => {
                subnets.insert(network.name.clone(), network.config.get("ipv4.address").cloned().unwrap_or_default());
            }
            Action::EnsureInstance(instance) => {
                machines.insert(instance.name.clone(), instance.address.map(|a| a.to_string()).unwrap_or_default());
            }
            _ => {}
        }
    }
    (subnets, machines)
}

fn check(fixture: &str, want_subnets: &[(&str, &str)], want_machines: &[(&str, &str)]) {
    let (subnets, machines) = addresses(&plan_of(fixture));
    let want_subnets: BTreeMap<String, String> =
        want_subnets.iter().map(|(d, s)| (anklumec::lower::bridge_name(d), format!("{s}.254/24"))).collect();
    let want_machines: BTreeMap<String, String> =
        want_machines.iter().map(|(m, a)| (m.to_string(), a.to_string())).collect();
    assert_eq!(subnets, want_subnets, "{fixture}: subnets");
    assert_eq!(machines, want_machines, "{fixture}: machine addresses");
}

#[test]
fn ai_tools() {
    check(
        "anklume__examples__ai-tools.yml",
        &[("anklume", "10.100.0"), ("ai-tools", "10.120.0")],
        &[
            ("anklume-instance", "10.100.0.1"),
            ("gpu-server", "10.120.0.1"),
            ("ai-openwebui", "10.120.0.2"),
            ("ai-lobechat", "10.120.0.3"),
            ("ai-opencode", "10.120.0.4"),
            ("ai-coder", "10.120.0.5"),
            ("ai-openclaw", "10.120.0.6"),
        ],
    );
}

#[test]
fn developer() {
    check(
        "anklume__examples__developer.yml",
        &[("anklume", "10.100.0"), ("dev-test", "10.120.0")],
        &[("dev-admin", "10.100.0.1"), ("dev-runner", "10.120.0.1"), ("dev-sandbox", "10.120.0.2")],
    );
}

#[test]
fn llm_supervisor() {
    check(
        "anklume__examples__llm-supervisor.yml",
        &[("anklume", "10.100.0"), ("supervisor", "10.110.0"), ("llm-alpha", "10.120.0"), ("llm-beta", "10.120.1")],
        &[
            ("llms-admin", "10.100.0.1"),
            ("llm-supervisor", "10.110.0.1"),
            ("llm-webui", "10.110.0.2"),
            ("llm-alpha-server", "10.120.0.1"),
            ("llm-beta-server", "10.120.1.1"),
        ],
    );
}

#[test]
fn sandbox_isolation() {
    check(
        "anklume__examples__sandbox-isolation.yml",
        &[("anklume", "10.100.0"), ("sandbox", "10.150.0")],
        &[
            ("sbx-admin", "10.100.0.1"),
            ("sbx-test", "10.150.0.1"),
            ("sbx-vm", "10.150.0.2"),
            ("sbx-monitor", "10.150.0.3"),
        ],
    );
}

#[test]
fn teacher_lab() {
    check(
        "anklume__examples__teacher-lab.yml",
        &[("anklume", "10.100.0"), ("student-01", "10.120.0"), ("student-02", "10.120.1"), ("student-03", "10.120.2")],
        &[
            ("lab-admin", "10.100.0.1"),
            ("s01-web", "10.120.0.1"),
            ("s01-client", "10.120.0.2"),
            ("s02-web", "10.120.1.1"),
            ("s02-client", "10.120.1.2"),
            ("s03-web", "10.120.2.1"),
            ("s03-client", "10.120.2.2"),
        ],
    );
}

#[test]
fn tor_gateway() {
    check(
        "anklume__examples__tor-gateway.yml",
        &[("anklume", "10.100.0"), ("anonymous", "10.140.0"), ("tor-gateway", "10.140.1")],
        &[("anklume-instance", "10.100.0.1"), ("anon-browser", "10.140.0.1"), ("tor-gw", "10.140.1.1")],
    );
}

#[test]
fn gpu_ai_services_lab() {
    check("anklume__labs__04-gpu-ai-services.yml", &[("ai-tools", "10.110.0")], &[("gpu-server", "10.110.0.1")]);
}

#[test]
fn security_audit_lab() {
    check(
        "anklume__labs__05-security-audit.yml",
        &[
            ("corp-office", "10.110.0"),
            ("corp-dev", "10.120.0"),
            ("corp-dmz", "10.140.0"),
            ("corp-sandbox", "10.150.0"),
        ],
        &[
            ("office-workstation", "10.110.0.1"),
            ("office-fileserver", "10.110.0.2"),
            ("dev-server", "10.120.0.1"),
            ("dmz-web", "10.140.0.1"),
            ("sandbox-test", "10.150.0.1"),
        ],
    );
}

#[test]
fn infra_yml_example() {
    check(
        "anklume__infra.yml.example.yml",
        &[("anklume", "10.100.0"), ("work", "10.120.0")],
        &[("anklume-instance", "10.100.0.1"), ("work-dev", "10.120.0.1")],
    );
}

#[test]
fn legacy_mode_has_no_automatic_addresses() {
    check("seed__vm-profile.yml", &[("secure", "10.100.4")], &[("secure-vm", "")]);
}

#[test]
fn ephemeral_sets_delete_protection_to_its_opposite() {
    let plan = plan_of("anklume__examples__sandbox-isolation.yml");
    let protection: BTreeMap<String, String> = plan
        .steps
        .iter()
        .filter_map(|step| match &step.action {
            Action::EnsureInstance(i) => {
                Some((i.name.clone(), i.config.get("security.protection.delete").cloned().unwrap_or_default()))
            }
            _ => None,
        })
        .collect();
    // sandbox is an ephemeral domain; sbx-admin's domain is not.
    assert_eq!(protection["sbx-admin"], "true");
    assert_eq!(protection["sbx-test"], "false");
    assert_eq!(protection["sbx-vm"], "false");
    assert_eq!(protection["sbx-monitor"], "false");
}
