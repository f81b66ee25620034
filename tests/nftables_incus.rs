//! `--emit nftables` on the real host: the ruleset loads (`nft -f`), and on its own,
//! with the Incus ACLs turned off (`network_isolation: false`), it isolates the domains
//! as the ACLs would: traffic within a domain and the policy's port pass, the rest
//! between domains is dropped, and removing the table opens it all again (so the
//! ruleset, nothing else, did it). Gated like every end-to-end test.

use anklumec::compile::{Options, compile_source};
use anklumec::emit::{deploy_script, nftables_ruleset};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Scope, incus, run};

/// Removes the host table when dropped, even when the test panics.
struct Table;

impl Drop for Table {
    fn drop(&mut self) {
        let _ = Command::new("nft").args(["delete", "table", "inet", "anklume"]).stdin(Stdio::null()).status();
    }
}

fn exec(project: &str, name: &str, command: &[&str]) -> bool {
    let mut args = vec!["exec", name, "--project", project, "--"];
    args.extend_from_slice(command);
    incus(&args).status.success()
}

/// Whether `from` opens a TCP connection to `address:port`; a closed answer is asked
/// again (one `incus exec` in a few hundred returns nothing under load).
fn open(project: &str, from: &str, address: &str, port: u16) -> bool {
    let port = port.to_string();
    (0..3).any(|_| exec(project, from, &["busybox", "timeout", "3", "busybox", "nc", "-w1", address, &port]))
}

fn wait_for_address(project: &str, name: &str, address: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let listed = incus(&["list", name, "--project", project, "-c", "4", "-f", "csv"]);
        if String::from_utf8_lossy(&listed.stdout).contains(address) {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{project}/{name} never showed {address}");
}

#[test]
fn the_host_ruleset_alone_isolates_the_domains() {
    let Some(scope) = Scope::enter("the_host_ruleset_alone_isolates_the_domains", "nft") else { return };
    if Command::new("nft").arg("--version").stdin(Stdio::null()).output().is_err() {
        panic!("nft is not installed: tests/e2e/setup-incus.sh installs Incus, which needs it");
    }
    let tag = scope.prefix.clone();
    let (admin, work) = (format!("{tag}a"), format!("{tag}w"));
    let text = format!(
        "project_name: nftables-test\nglobal:\n  addressing: {{base_octet: 10, zone_base: 182}}\n  default_os_image: anklumec-test\n  nat: false\n  network_isolation: false\n  incus_instances_lxc_delay: 1\n\
         domains:\n  {admin}:\n    trust_level: admin\n    ephemeral: true\n    machines:\n      {tag}-a1: {{ip: 10.182.0.10}}\n      {tag}-a2: {{ip: 10.182.0.11}}\n\
         \x20 {work}:\n    trust_level: trusted\n    ephemeral: true\n    machines:\n      {tag}-w1: {{ip: 10.192.0.10}}\n\
         network_policies:\n  - {{from: {admin}, to: {work}, ports: [80]}}\n"
    );
    let plan = compile_source("nftables.yml", &text, Options::default()).plan.expect("compiles");
    let deployed = run(&deploy_script(&plan).expect("deploy.sh"), &[]);
    assert!(deployed.status.success(), "{}", String::from_utf8_lossy(&deployed.stderr));
    let (a1, a2, w1) = (format!("{tag}-a1"), format!("{tag}-a2"), format!("{tag}-w1"));
    for (project, name, address) in
        [(&admin, &a1, "10.182.0.10"), (&admin, &a2, "10.182.0.11"), (&work, &w1, "10.192.0.10")]
    {
        wait_for_address(project, name, address);
        let serve = "mkdir -p /srv/www && busybox httpd -p 80 -h /srv/www && busybox httpd -p 81 -h /srv/www";
        assert!(exec(project, name, &["sh", "-c", serve]), "httpd in {name}");
    }
    // Without ACLs and without the table, everything is open.
    assert!(open(&work, &w1, "10.182.0.10", 80), "w1 -> a1:80 before the ruleset");

    let ruleset = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(ruleset.path(), nftables_ruleset(&plan)).expect("write the ruleset");
    let _table = Table;
    let loaded = Command::new("nft").arg("-f").arg(ruleset.path()).stdin(Stdio::null()).output().expect("nft runs");
    assert!(loaded.status.success(), "nft -f: {}", String::from_utf8_lossy(&loaded.stderr));

    assert!(open(&admin, &a1, "10.182.0.11", 81), "a1 -> a2:81: within a domain");
    assert!(open(&admin, &a1, "10.192.0.10", 80), "a1 -> w1:80: the policy");
    assert!(open(&admin, &a2, "10.192.0.10", 80), "a2 -> w1:80: the policy");
    assert!(!open(&admin, &a1, "10.192.0.10", 81), "a1 -> w1:81 is not in the policy");
    assert!(!open(&work, &w1, "10.182.0.10", 80), "w1 -> a1:80: the policy is one-way");

    // Loading it again replaces the table (no duplicate rules, no error).
    let again = Command::new("nft").arg("-f").arg(ruleset.path()).stdin(Stdio::null()).output().expect("nft runs");
    assert!(again.status.success(), "nft -f again: {}", String::from_utf8_lossy(&again.stderr));
    let listed = Command::new("nft").args(["list", "table", "inet", "anklume"]).output().expect("nft list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.matches("dport 80 accept").count(), 1, "{listed}");

    drop(_table);
    assert!(open(&work, &w1, "10.182.0.10", 80), "w1 -> a1:80 once the table is gone");
}
