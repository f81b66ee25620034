//! `anklumec diff` on the real Incus server: a freshly deployed system shows no drift
//! (exit 0); a limit set by hand, a stopped instance, a profile key removed by hand, a
//! device option changed, a device added, the bridge's NAT switched on, a rule added to
//! the bridge's ACL, an instance deleted each show as exactly one difference (exit 1),
//! in text and JSON; an undeclared instance is listed as not managed (exit 0).
//! Gated like every end-to-end test: skipped when no server answers, a failure when
//! ANKLUMEC_E2E=1 and none answers.

use anklumec::compile::{Options, compile_source};
use anklumec::emit::deploy_script;
use serde_json::Value;
use std::process::Command;

mod common;
use common::{Scope, incus, run};

fn diff(infra: &std::path::Path, format: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_anklumec"))
        .args(["diff", "--format", format])
        .arg(infra)
        .output()
        .expect("anklumec runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn drift_json(infra: &std::path::Path) -> Vec<Value> {
    let (code, out) = diff(infra, "json");
    assert_eq!(code, 1, "{out}");
    let document: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(document["schema_version"], 2);
    document["drift"].as_array().expect("drift list").clone()
}

#[test]
fn diff_reports_nothing_after_deploy_then_exactly_what_changed_by_hand() {
    let Some(scope) = Scope::enter("diff", "df") else { return };
    let tag = scope.prefix.clone();
    let project = format!("{tag}w");
    let (web, db) = (format!("{tag}-web"), format!("{tag}-db"));
    let text = format!(
        "project_name: diff-test\nglobal:\n  addressing: {{base_octet: 10, zone_base: 238}}\n  default_os_image: anklumec-test\n  nat: false\n\
         domains:\n  {project}:\n    trust_level: trusted\n    ephemeral: true\n    profiles:\n      extra:\n        config: {{limits.memory: 128MiB}}\n\
         \x20   machines:\n      {web}:\n        profiles: [default, extra]\n      {db}:\n        ephemeral: false\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = dir.path().join("infra.yml");
    std::fs::write(&infra, &text).expect("write");
    let plan = compile_source("diff.yml", &text, Options::default()).plan.expect("compiles");
    let deployed = run(&deploy_script(&plan).expect("deploy.sh"), &[]);
    assert!(deployed.status.success(), "{}", String::from_utf8_lossy(&deployed.stderr));

    let (code, out) = diff(&infra, "text");
    assert_eq!((code, out.as_str()), (0, "no drift\n"), "a fresh deployment shows no drift");
    let (code, out) = diff(&infra, "json");
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json")["drift"], serde_json::json!([]));

    // A limit set by hand: exactly that key.
    assert!(incus(&["config", "set", &web, "limits.cpu=2", "--project", &project]).status.success());
    let (code, out) = diff(&infra, "text");
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out,
        format!("instance {project}/{web}: config limits.cpu: declared (absent), live \"2\"\n1 difference(s)\n")
    );
    let drift = drift_json(&infra);
    assert_eq!(drift.len(), 1, "{drift:?}");
    let entry = &drift[0];
    assert_eq!(
        (&entry["resource"], &entry["project"], &entry["name"], &entry["kind"], &entry["key"]),
        (&"instance".into(), &project.clone().into(), &web.clone().into(), &"config".into(), &"limits.cpu".into())
    );
    assert_eq!((&entry["declared"], &entry["live"]), (&Value::Null, &"2".into()));
    assert!(incus(&["config", "unset", &web, "limits.cpu", "--project", &project]).status.success());

    // A stopped instance: its status.
    assert!(incus(&["stop", "--force", &db, "--project", &project]).status.success());
    let drift = drift_json(&infra);
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!((&drift[0]["kind"], &drift[0]["name"]), (&"status".into(), &db.clone().into()));
    assert_eq!((&drift[0]["declared"], &drift[0]["live"]), (&"Running".into(), &"Stopped".into()));
    assert!(incus(&["start", &db, "--project", &project]).status.success());

    // A declared profile key removed by hand.
    assert!(incus(&["profile", "unset", "extra", "limits.memory", "--project", &project]).status.success());
    let (code, out) = diff(&infra, "text");
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!("profile {project}/extra: config limits.memory: declared \"128MiB\", live (absent)")),
        "{out}"
    );
    assert!(out.ends_with("1 difference(s)\n"), "{out}");
    assert!(incus(&["profile", "set", "extra", "limits.memory=128MiB", "--project", &project]).status.success());

    // An undeclared instance in a declared project.
    let stray = format!("{tag}-stray");
    assert!(incus(&["create", "anklumec-test", &stray, "--project", &project]).status.success());
    // Not drift: deploy.sh and apply leave it alone, so diff lists it as not managed
    // and exits 0.
    let (code, out) = diff(&infra, "text");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!(
            "no drift\ninstance {project}/{stray}: not managed (present, not declared: deploy.sh and apply leave it)\n"
        )
    );
    let (code, out) = diff(&infra, "json");
    assert_eq!(code, 0, "{out}");
    let document: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(document["drift"], serde_json::json!([]));
    let listed = document["not_managed"].as_array().expect("a list");
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!((&listed[0]["kind"], &listed[0]["name"]), (&"extra".into(), &stray.clone().into()));
    assert!(incus(&["delete", "--force", &stray, "--project", &project]).status.success());

    // A device option changed by hand: the address of web's declared eth0.
    let declared_address = incus(&["config", "device", "get", &web, "eth0", "ipv4.address", "--project", &project]);
    let declared_address = String::from_utf8_lossy(&declared_address.stdout).trim().to_string();
    let moved = declared_address.rsplit_once('.').map(|(net, _)| format!("{net}.77")).expect("an IPv4 address");
    let set =
        incus(&["config", "device", "set", &web, "eth0", &format!("ipv4.address={moved}"), "--project", &project]);
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let drift = drift_json(&infra);
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(
        (&drift[0]["kind"], &drift[0]["name"], &drift[0]["key"], &drift[0]["option"]),
        (&"device".into(), &web.clone().into(), &"eth0".into(), &"ipv4.address".into())
    );
    assert_eq!((&drift[0]["declared"], &drift[0]["live"]), (&declared_address.clone().into(), &moved.into()));
    let reset = format!("ipv4.address={declared_address}");
    assert!(incus(&["config", "device", "set", &web, "eth0", &reset, "--project", &project]).status.success());

    // A device added by hand to an instance.
    assert!(incus(&["config", "device", "add", &db, "scratch", "none", "--project", &project]).status.success());
    let drift = drift_json(&infra);
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(
        (&drift[0]["kind"], &drift[0]["name"], &drift[0]["key"]),
        (&"device".into(), &db.clone().into(), &"scratch".into())
    );
    assert_eq!(drift[0]["declared"], Value::Null, "{drift:?}");
    assert!(incus(&["config", "device", "remove", &db, "scratch", "--project", &project]).status.success());

    // The bridge's NAT switched on by hand (declared off: `nat: false`).
    let bridge = format!("net-{project}");
    assert!(incus(&["network", "set", &bridge, "ipv4.nat=true"]).status.success());
    let (code, out) = diff(&infra, "text");
    assert_eq!(code, 1, "{out}");
    assert_eq!(out, format!("network {bridge}: config ipv4.nat: declared \"false\", live \"true\"\n1 difference(s)\n"));
    assert!(incus(&["network", "set", &bridge, "ipv4.nat=false"]).status.success());

    // A rule added by hand to the bridge's ACL (it opens the domain to everything).
    let rule = ["action=allow", "source=10.0.0.0/8"];
    let add = incus(&[&["network", "acl", "rule", "add", &bridge, "ingress"][..], &rule[..]].concat());
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    let drift = drift_json(&infra);
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(
        (&drift[0]["resource"], &drift[0]["name"], &drift[0]["kind"], &drift[0]["key"]),
        (&"acl".into(), &bridge.clone().into(), &"rule".into(), &"ingress".into())
    );
    assert_eq!(drift[0]["declared"], Value::Null, "{drift:?}");
    assert_eq!(
        drift[0]["live"],
        serde_json::json!({"action": "allow", "source": "10.0.0.0/8", "state": "enabled"}),
        "{drift:?}"
    );
    let remove = incus(&[&["network", "acl", "rule", "remove", &bridge, "ingress"][..], &rule[..]].concat());
    assert!(remove.status.success(), "{}", String::from_utf8_lossy(&remove.stderr));

    // An instance deleted by hand: missing.
    assert!(incus(&["delete", "--force", &web, "--project", &project]).status.success());
    let drift = drift_json(&infra);
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!((&drift[0]["kind"], &drift[0]["name"]), (&"missing".into(), &web.clone().into()));
    let redeployed = run(&deploy_script(&plan).expect("deploy.sh"), &[]);
    assert!(redeployed.status.success(), "{}", String::from_utf8_lossy(&redeployed.stderr));

    let (code, out) = diff(&infra, "text");
    assert_eq!((code, out.as_str()), (0, "no drift\n"), "back to the declared state");
}
