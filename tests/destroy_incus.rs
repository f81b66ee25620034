//! destroy.sh on the real Incus server: it removes exactly what infra.yml declares, keeps
//! protected instances (and what they still use) unless FORCE=1, leaves undeclared things
//! alone, and a second run does nothing. Gated like every end-to-end test: skipped when no
//! server answers, a failure when ANKLUMEC_E2E=1 and none answers.

use anklumec::compile::{Options, compile_source};
use anklumec::emit::{deploy_script, destroy_script};

mod common;
use common::{Cleanup, incus, incus_answers, run};

fn exists(args: &[&str]) -> bool {
    incus(args).status.success()
}

#[test]
fn destroy_removes_what_is_declared_and_keeps_what_is_protected() {
    if !incus_answers() {
        return;
    }
    let tag = format!("dq{}", std::process::id() % 1000);
    let (admin, work) = (format!("{tag}a"), format!("{tag}w"));
    let text = format!(
        "project_name: destroy-test\nglobal:\n  addressing: {{base_octet: 10, zone_base: 236}}\n  default_os_image: anklumec-test\n  nat: false\n\
         domains:\n  {admin}:\n    trust_level: admin\n    machines:\n      {tag}-ctl: {{}}\n\
         \x20 {work}:\n    trust_level: trusted\n    ephemeral: true\n    profiles:\n      extra:\n        config: {{limits.memory: 128MiB}}\n\
         \x20   machines:\n      {tag}-web:\n        profiles: [default, extra]\n      {tag}-db:\n        ephemeral: false\n"
    );
    let _cleanup = Cleanup {
        projects: vec![admin.clone(), work.clone()],
        networks: vec![format!("net-{admin}"), format!("net-{work}")],
    };
    let plan = compile_source("destroy.yml", &text, Options::default()).plan.expect("compiles");
    let deployed = run(&deploy_script(&plan).expect("deploy.sh"), &[]);
    assert!(deployed.status.success(), "{}", String::from_utf8_lossy(&deployed.stderr));

    // An undeclared instance in a declared project must survive, and keep its project.
    let stray = format!("{tag}-stray");
    assert!(incus(&["create", "anklumec-test", &stray, "--project", &work]).status.success());

    let destroy = destroy_script(&plan).expect("destroy.sh");
    let first = run(&destroy, &[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(out.contains(&format!("removed   instance {work}/{tag}-web")), "{out}");
    assert!(out.contains(&format!("kept      instance {work}/{tag}-db (protected")), "{out}");
    assert!(out.contains(&format!("kept      instance {admin}/{tag}-ctl (protected")), "{out}");
    assert!(!exists(&["info", &format!("{tag}-web"), "--project", &work]));
    assert!(exists(&["info", &format!("{tag}-db"), "--project", &work]));
    assert!(!exists(&["profile", "show", "extra", "--project", &work]), "the unused declared profile is removed");

    let forced = run(&destroy, &[("FORCE", "1")]);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    let out = String::from_utf8_lossy(&forced.stdout);
    assert!(out.contains(&format!("unprotect instance {work}/{tag}-db")), "FORCE=1 says it clears protection: {out}");
    assert!(!exists(&["info", &format!("{tag}-db"), "--project", &work]));
    assert!(!exists(&["project", "show", &admin]), "the emptied project is removed");
    assert!(!exists(&["network", "show", &format!("net-{admin}")]), "its bridge too");
    // The stray instance was never declared: it stays, so its project and bridge stay.
    assert!(exists(&["info", &stray, "--project", &work]), "undeclared instances are never touched");
    assert!(exists(&["project", "show", &work]));
    assert!(out.contains(&format!("kept      project {work}")), "{out}");

    let again = run(&destroy, &[("FORCE", "1")]);
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success() && out.contains("0 removed"), "a second run removes nothing: {out}");
}
