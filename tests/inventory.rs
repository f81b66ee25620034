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

/// Values from infra.yml that look like Jinja templates reach Ansible as literal text:
/// Ansible templates inventory variables (the connection's among them) when it uses
/// them, and `{{ lookup('pipe', ...) }}` in a description or the default user would
/// run a command on the controller. Ansible itself reads the variables back here, with
/// templating on, and no canary file appears.
#[test]
fn template_text_in_values_is_never_run_by_ansible() {
    if !ansible_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let canary = |name: &str| dir.path().join(name).display().to_string();
    let text = format!(
        "project_name: t\nglobal:\n  addressing: {{base_octet: 10, zone_base: 100}}\n  default_os_image: tiny\n  default_user: \"{{{{ lookup('pipe', 'touch {user}') }}}}\"\ndomains:\n  work:\n    description: \"{{% if true %}}x{{% endif %}}\"\n    machines:\n      web:\n        description: \"{{{{ lookup('pipe', 'touch {description}') }}}}\"\n        roles: [\"{{{{ lookup('pipe', 'touch {role}') }}}}\", base]\n",
        user = canary("user"),
        description = canary("description"),
        role = canary("role"),
    );
    let plan = compile_source("infra.yml", text, Options::default()).plan.expect("compiles");
    for (name, text) in inventory_files(&plan).expect("renders") {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    let env = [("ANSIBLE_LOCAL_TEMP", dir.path().join("tmp"))];
    let debug = |argument: &str| {
        let output = Command::new("ansible")
            .args(["-i", "inventory.yml", "web", "-e", "ansible_connection=local", "-m", "debug", "-a", argument])
            .current_dir(dir.path())
            .envs(env.clone())
            .output()
            .expect("ansible runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{argument}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
        stdout
    };
    let shown = debug("msg={{ instance_description }}|{{ domain_description }}|{{ ansible_user }}");
    assert!(shown.contains(&format!("{{{{ lookup('pipe', 'touch {}') }}}}", canary("description"))), "{shown}");
    assert!(shown.contains("{% if true %}x{% endif %}"), "{shown}");
    let roles = debug("var=instance_roles");
    assert!(roles.contains(&format!("{{{{ lookup('pipe', 'touch {}') }}}}", canary("role"))), "{roles}");
    for name in ["user", "description", "role"] {
        assert!(!dir.path().join(name).exists(), "Ansible ran the template in a value: {name} was created");
    }
}
