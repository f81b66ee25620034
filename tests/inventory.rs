//! The provisioning handoff: inventory.yml and site.yml for every ok fixture match their
//! snapshots, and Ansible itself accepts them.

use anklumec::compile::{Options, compile_source};
use anklumec::emit::inventory_files;
use std::path::Path;
use std::process::Command;

fn files_of(path: &Path) -> Vec<(&'static str, String)> {
    let text = std::fs::read_to_string(path).expect("fixture");
    let name = path.file_name().and_then(|n| n.to_str()).expect("name");
    let plan = compile_source(name, &text, Options::default()).plan.expect("compiles");
    inventory_files(&plan).expect("renders")
}

#[test]
fn inventories_match_their_snapshots() {
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::glob!("fixtures/ok/*.yml", |path| {
            for (name, text) in files_of(path) {
                insta::assert_snapshot!(name.trim_end_matches(".yml"), text);
            }
        });
    });
}

fn ansible_available() -> bool {
    let found = Command::new("ansible-inventory").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("ANKLUMEC_E2E").is_none(),
            "ansible-inventory is not installed, and ANKLUMEC_E2E=1 requires it (pip install ansible-core)"
        );
        eprintln!("SKIPPED: ansible-inventory is not installed (pip install ansible-core)");
    }
    found
}

#[test]
fn ansible_accepts_every_inventory_and_playbook() {
    if !ansible_available() {
        return;
    }
    let fixtures = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ok")).expect("fixtures");
    for path in fixtures.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "yml")) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut roles = std::collections::BTreeSet::new();
        for (name, text) in files_of(&path) {
            std::fs::write(dir.path().join(name), &text).expect("write");
            if name == "site.yml" {
                roles.extend(
                    text.lines()
                        .filter_map(|l| l.trim().strip_prefix("- \""))
                        .map(|r| r.trim_end_matches('"').to_string()),
                );
            }
        }
        // Empty roles of the names site.yml uses, so that the syntax check can resolve them.
        for role in &roles {
            std::fs::create_dir_all(dir.path().join("roles").join(role).join("tasks")).expect("role dir");
            std::fs::write(dir.path().join("roles").join(role).join("tasks/main.yml"), "[]\n").expect("role");
        }
        let env = [("ANSIBLE_ROLES_PATH", dir.path().join("roles")), ("ANSIBLE_LOCAL_TEMP", dir.path().join("tmp"))];
        let listed = Command::new("ansible-inventory")
            .args(["-i", "inventory.yml", "--list"])
            .current_dir(dir.path())
            .envs(env.clone())
            .output()
            .expect("ansible-inventory runs");
        assert!(listed.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&listed.stderr));
        let inventory: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json inventory");
        let hostvars = inventory["_meta"]["hostvars"].as_object().expect("hostvars");
        for (host, vars) in hostvars {
            assert_eq!(vars["ansible_incus_host"], host.as_str(), "{}", path.display());
            assert!(vars["ansible_incus_project"].is_string() && vars["domain_trust_level"].is_string());
        }
        let checked = Command::new("ansible-playbook")
            .args(["-i", "inventory.yml", "site.yml", "--syntax-check"])
            .current_dir(dir.path())
            .envs(env)
            .output()
            .expect("ansible-playbook runs");
        assert!(
            checked.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}
