//! destroy.sh on the real Incus server: it removes exactly what infra.yml declares, keeps
//! protected instances (and what they still use) unless FORCE=1, leaves undeclared things
//! alone, and a second run does nothing. Gated like every end-to-end test: skipped when no
//! server answers, a failure when ANKLUMEC_E2E=1 and none answers.

use anklumec::compile::{Options, compile_source};
use anklumec::emit::{deploy_script, destroy_script};

mod common;
use common::{Scope, incus, run};

fn exists(args: &[&str]) -> bool {
    incus(args).status.success()
}

/// A deployed world named after `tag` (two domains on zone_base `zone`): admin's
/// `ctl` and trusted `db` are protected (`ephemeral: false`), `web` uses the profile
/// `extra` alone, `web` and `db` each have a volume (`data`, `keep`), `vault` is protected only by its profile `locked` (its own
/// `security.protection.delete`, set by deploy.sh, is unset by hand: instance config
/// would hide the profile's), and `stray` is an undeclared instance in the trusted
/// project.
struct World {
    tag: String,
    admin: String,
    work: String,
    plan: anklumec::plan::Plan,
    _scope: Scope,
}

fn deploy_world(scope: Scope, zone: u32) -> World {
    let tag = scope.prefix.clone();
    let (admin, work) = (format!("{tag}a"), format!("{tag}w"));
    let text = format!(
        "project_name: destroy-test\nglobal:\n  addressing: {{base_octet: 10, zone_base: {zone}}}\n  default_os_image: anklumec-test\n  nat: false\n\
         domains:\n  {admin}:\n    trust_level: admin\n    machines:\n      {tag}-ctl: {{}}\n\
         \x20 {work}:\n    trust_level: trusted\n    ephemeral: true\n    profiles:\n      extra:\n        config: {{limits.memory: 128MiB}}\n\
         \x20     locked:\n        config: {{security.protection.delete: \"true\"}}\n\
         \x20   machines:\n      {tag}-web:\n        profiles: [default, extra]\n        storage_volumes:\n          {tag}-data: {{path: /srv/data}}\n\
         \x20     {tag}-db:\n        ephemeral: false\n        storage_volumes:\n          {tag}-keep: {{path: /srv/keep}}\n\
         \x20     {tag}-vault:\n        profiles: [default, locked]\n"
    );
    let plan = compile_source("destroy.yml", &text, Options::default()).plan.expect("compiles");
    let deployed = run(&deploy_script(&plan).expect("deploy.sh"), &[]);
    assert!(deployed.status.success(), "{}", String::from_utf8_lossy(&deployed.stderr));
    let vault = format!("{tag}-vault");
    let unset = incus(&["config", "unset", &vault, "security.protection.delete", "--project", &work]);
    assert!(unset.status.success(), "{}", String::from_utf8_lossy(&unset.stderr));
    let stray = format!("{tag}-stray");
    assert!(incus(&["create", "anklumec-test", &stray, "--project", &work]).status.success());
    World { tag, admin, work, plan, _scope: scope }
}

impl World {
    fn has_instance(&self, project: &str, machine: &str) -> bool {
        exists(&["info", &format!("{}-{machine}", self.tag), "--project", project])
    }

    /// After a first, unforced run: web and extra are gone, the protected stay.
    fn assert_after_first_run(&self, out: &str) {
        let (tag, admin, work) = (&self.tag, &self.admin, &self.work);
        assert!(out.contains(&format!("removed   instance {work}/{tag}-web")), "{out}");
        for protected in [format!("{work}/{tag}-db"), format!("{work}/{tag}-vault"), format!("{admin}/{tag}-ctl")] {
            assert!(out.contains(&format!("kept      instance {protected} (protected")), "{protected}\n{out}");
        }
        assert!(!self.has_instance(work, "web"));
        assert!(self.has_instance(work, "db") && self.has_instance(work, "vault") && self.has_instance(admin, "ctl"));
        assert!(!exists(&["profile", "show", "extra", "--project", work]), "the unused declared profile is removed");
        assert!(exists(&["profile", "show", "locked", "--project", work]), "vault still uses it");
        // The project names what keeps it: the declared things kept above, and the stray.
        let kept = format!("kept      project {work} (not empty: it still holds ");
        let project = out.lines().find(|line| line.starts_with(&kept)).unwrap_or_else(|| panic!("{out}"));
        for held in [
            format!("instance {work}/{tag}-db"),
            format!("instance {work}/{tag}-vault"),
            format!("instance {work}/{tag}-stray (not in infra.yml)"),
            format!("volume {work}/default/{tag}-keep"),
            format!("profile {work}/locked"),
        ] {
            assert!(project.contains(&held), "{held}: {project}");
        }
        assert!(out.contains(&format!("removed   volume {work}/default/{tag}-data")), "{out}");
        assert!(out.contains(&format!("kept      volume {work}/default/{tag}-keep (still attached")), "{out}");
        assert!(exists(&["storage", "volume", "show", "default", &format!("{tag}-keep"), "--project", work]));
        // Both bridges stay (their domains hold protected instances), under their ACLs.
        for domain in [admin, work] {
            let acl = format!("net-{domain}");
            assert!(out.contains(&format!("kept      network ACL {acl} (still used by networks/{acl})")), "{out}");
            assert!(exists(&["network", "acl", "show", &acl]), "{acl} still isolates its bridge");
        }
    }

    /// After a forced run: every declared instance is gone; the stray keeps its project
    /// and bridge.
    fn assert_after_forced_run(&self, out: &str) {
        let (admin, work) = (&self.admin, &self.work);
        for machine in ["db", "vault"] {
            assert!(!self.has_instance(work, machine), "{machine} is removed when forced\n{out}");
        }
        assert!(!self.has_instance(admin, "ctl"));
        let keep = format!("{}-keep", self.tag);
        assert!(
            !exists(&["storage", "volume", "show", "default", &keep, "--project", work]),
            "db's volume went with it"
        );
        assert!(!exists(&["project", "show", admin]), "the emptied project is removed");
        assert!(!exists(&["network", "show", &format!("net-{admin}")]), "its bridge too");
        assert!(self.has_instance(work, "stray"), "undeclared instances are never touched");
        assert!(exists(&["project", "show", work]));
        assert!(exists(&["network", "show", &format!("net-{work}")]), "the stray still uses its bridge");
        // What keeps it, by name.
        let stray = format!("instance {work}/{}-stray (not in infra.yml)", self.tag);
        assert!(out.contains(&format!("kept      project {work} (not empty: it still holds {stray})\n")), "{out}");
        // The removed bridge's ACL goes after it; the kept bridge keeps its own.
        assert!(out.contains(&format!("removed   network ACL net-{admin}")), "{out}");
        assert!(!exists(&["network", "acl", "show", &format!("net-{admin}")]), "the ACL of the removed bridge");
        let kept = format!("net-{work}");
        assert!(out.contains(&format!("kept      network ACL {kept} (still used by networks/{kept})")), "{out}");
        assert!(exists(&["network", "acl", "show", &kept]), "the stray's bridge stays isolated");
    }
}

#[test]
fn destroy_removes_what_is_declared_and_keeps_what_is_protected() {
    let Some(scope) = Scope::enter("destroy.sh", "dq") else { return };
    let world = deploy_world(scope, 236);
    let destroy = destroy_script(&world.plan).expect("destroy.sh");
    let first = run(&destroy, &[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    world.assert_after_first_run(&String::from_utf8_lossy(&first.stdout));

    let forced = run(&destroy, &[("FORCE", "1")]);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    let out = String::from_utf8_lossy(&forced.stdout);
    for machine in ["db", "vault"] {
        let line = format!("unprotect instance {}/{}-{machine} (FORCE=1", world.work, world.tag);
        assert!(out.contains(&line), "FORCE=1 says it clears protection: {out}");
    }
    world.assert_after_forced_run(&out);

    let again = run(&destroy, &[("FORCE", "1")]);
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success() && out.contains("0 removed"), "a second run removes nothing: {out}");
}

/// `anklumec destroy` (the runner) on the same world: a dry run predicts and changes
/// nothing; then as destroy.sh; a second run sends no mutating request.
#[test]
fn runner_destroy_removes_what_is_declared_and_keeps_what_is_protected() {
    use anklumec::run::destroy::{DestroyOptions, destroy};
    use anklumec::run::progress::Capture;
    let Some(scope) = Scope::enter("anklumec destroy", "dr") else { return };
    let world = deploy_world(scope, 225);
    let (tag, admin, work) = (&world.tag, &world.admin, &world.work);

    let capture = Capture::default();
    let options = DestroyOptions { dry_run: true, force: true, ..Default::default() };
    let dry = destroy(&world.plan, &options, &capture).expect("the server answers");
    let lines = capture.lines().join("\n");
    assert_eq!(dry.mutating_requests, 0, "a dry run changes nothing:\n{lines}");
    assert!(lines.contains(&format!("would remove instance {work}/{tag}-vault")), "{lines}");
    assert!(lines.contains(&format!("would remove profile {work}/extra")), "predicted: only web used it\n{lines}");
    assert!(
        lines.contains(&format!("would remove volume {work}/default/{tag}-keep")),
        "predicted: db goes first\n{lines}"
    );
    assert!(lines.contains(&format!("would remove project {admin}")), "{lines}");
    assert!(lines.contains(&format!("would keep   project {work} (not empty")), "the stray stays\n{lines}");
    assert!(lines.contains(&format!("would run: DELETE /1.0/instances/{tag}-web?project={work}")), "{lines}");
    // Predicted too: the emptied domain's bridge goes, then its ACL.
    assert!(lines.contains(&format!("would run: DELETE /1.0/network-acls/net-{admin}")), "{lines}");
    assert!(!lines.contains(&format!("would run: DELETE /1.0/network-acls/net-{work}")), "{lines}");
    assert!(world.has_instance(work, "web"), "still there after a dry run");

    let capture = Capture::default();
    let first = destroy(&world.plan, &DestroyOptions::default(), &capture).expect("the server answers");
    let lines = capture.lines().join("\n");
    assert!(first.ok(), "{lines}");
    world.assert_after_first_run(&lines);

    let capture = Capture::default();
    let options = DestroyOptions { force: true, ..Default::default() };
    let forced = destroy(&world.plan, &options, &capture).expect("the server answers");
    let lines = capture.lines().join("\n");
    assert!(forced.ok(), "{lines}");
    for machine in ["db", "vault"] {
        assert!(lines.contains(&format!("unprotect instance {work}/{tag}-{machine} (--force")), "{lines}");
    }
    world.assert_after_forced_run(&lines);

    let capture = Capture::default();
    let again = destroy(&world.plan, &options, &capture).expect("the server answers");
    assert_eq!(again.removed(), 0, "{}", capture.lines().join("\n"));
    assert_eq!(again.mutating_requests, 0, "a second run changes nothing");
}

// =====================================================================================
// Dry runs predict the real run
// =====================================================================================

/// A line of a teardown's output as the real run words it: a dry run's prediction
/// (`would remove`, `would keep`, `would unprotect`, `N would be removed, ... N would
/// be kept (dry run: ...)`, `  would keep X: why`) mapped to the fact; the runner's
/// wall time left out; the dry run's requests dropped (None). Words and titles are
/// joined by one space, as the two runs pad them differently.
fn as_real(line: &str) -> Option<String> {
    if line.starts_with("  would run: ") {
        return None;
    }
    let mut line = line.replace(" (dry run: nothing was changed)", "");
    if let Some(at) = line.find(", wall time ") {
        line.truncate(at);
    }
    let line = line.replace(" would be removed, ", " removed, ").replace(" would be kept", " kept");
    if let Some(rest) = line.strip_prefix("  would keep ") {
        return Some(format!("  kept {rest}"));
    }
    if line.starts_with(' ') {
        return Some(line);
    }
    for (prediction, fact) in [("would remove ", "removed"), ("would keep ", "kept"), ("would unprotect ", "unprotect")]
    {
        if let Some(rest) = line.strip_prefix(prediction) {
            return Some(format!("{fact} {}", rest.trim_start()));
        }
    }
    Some(match line.split_once(' ') {
        Some((word, rest)) => format!("{word} {}", rest.trim_start()),
        None => line,
    })
}

/// The lines of a run's standard output as [`as_real`] maps them, sorted when the
/// run removes the resources of a phase in parallel (the runner).
fn facts(stdout: &str, sort: bool) -> Vec<String> {
    let mut lines: Vec<String> = stdout.lines().filter_map(as_real).collect();
    if sort {
        lines.sort();
    }
    lines
}

/// No line of a dry run states a fact.
fn assert_predicts(stdout: &str, what: &str) {
    for line in stdout.lines() {
        let word = line.split_whitespace().next().unwrap_or_default();
        assert!(
            !["removed", "kept", "unprotect"].contains(&word) && !line.starts_with("  kept "),
            "{what}: a dry-run line in the past tense: {line}\n{stdout}"
        );
    }
    let summary = stdout.lines().rfind(|line| line.contains(" already absent, ")).unwrap_or_default();
    assert!(summary.contains(" would be removed, ") && summary.contains(" would be kept"), "{what}: {summary}");
}

/// The fixture's world: tests/e2e/fixtures/teardown.yml deployed by the runner, and an
/// undeclared instance `stray` in the trusted domain's project.
fn deploy_teardown(scope: &Scope, dir: &std::path::Path) -> anklumec::plan::Plan {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/fixtures/teardown.yml");
    let text = std::fs::read_to_string(fixture).expect("fixture").replace("@P@", &scope.prefix).replace("@Z@", "244");
    std::fs::write(dir.join("infra.yml"), &text).expect("write infra.yml");
    let plan = compile_source("infra.yml", &text, Options::default()).plan.expect("compiles");
    let capture = anklumec::run::progress::Capture::default();
    let report = anklumec::run::apply(&plan, &anklumec::run::Options::default(), &capture).expect("the run begins");
    assert!(report.ok(), "deploy: {}", capture.lines().join("\n"));
    let stray = format!("{}-stray", scope.prefix);
    let created = incus(&["create", "anklumec-test", &stray, "--project", &format!("{}t", scope.prefix)]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    plan
}

/// What a dry run predicts, what the real run then does: the same lines and summary
/// (predictions mapped to facts), unforced and then forced, for destroy.sh and then for
/// `anklumec destroy`. Among them, what only a teardown that counts its own earlier
/// removals can predict: the profile and volume of a removed instance, and its emptied
/// project and bridge, go too; what keeps a project is named.
#[test]
fn destroy_dry_runs_predict_the_real_run() {
    let Some(scope) = Scope::enter("destroy dry runs", "prd") else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let (tag, admin, trusted) = (scope.prefix.clone(), format!("{}a", scope.prefix), format!("{}t", scope.prefix));
    let plan = deploy_teardown(&scope, dir.path());
    let script = destroy_script(&plan).expect("destroy.sh");
    let stdout = |output: &std::process::Output| String::from_utf8_lossy(&output.stdout).into_owned();

    // destroy.sh, unforced then forced.
    for force in ["0", "1"] {
        let what = format!("destroy.sh, FORCE={force}");
        let dry = run(&script, &[("DRY_RUN", "1"), ("FORCE", force)]);
        assert!(dry.status.success(), "{what}, dry run: {}", String::from_utf8_lossy(&dry.stderr));
        let real = run(&script, &[("FORCE", force)]);
        assert!(real.status.success(), "{what}: {}", String::from_utf8_lossy(&real.stderr));
        let (dry, real) = (stdout(&dry), stdout(&real));
        assert_predicts(&dry, &what);
        assert_eq!(facts(&dry, false), facts(&real, false), "{what}: dry run\n{dry}\nreal run\n{real}");
        if force == "0" {
            for line in [
                format!("removed   profile {admin}/extra"),
                format!("removed   volume {admin}/default/{tag}-data"),
                format!("removed   project {admin}"),
                format!("removed   network net-{admin}"),
                format!("removed   network ACL net-{admin}"),
                format!("kept      volume {trusted}/default/{tag}-keep (still attached to an instance)"),
            ] {
                assert!(real.contains(&format!("{line}\n")), "{what}: {line}\n{real}");
            }
            let kept = format!("kept      project {trusted} (not empty: it still holds ");
            let project = real.lines().find(|line| line.starts_with(&kept)).unwrap_or_else(|| panic!("{real}"));
            for held in [
                format!("instance {trusted}/{tag}-two"),
                format!("instance {trusted}/{tag}-stray (not in infra.yml)"),
                format!("volume {trusted}/default/{tag}-keep"),
            ] {
                assert!(project.contains(&held), "{what}: {held} keeps the project: {project}");
            }
        } else {
            assert!(real.contains(&format!("unprotect instance {trusted}/{tag}-two (FORCE=1")), "{real}");
            let kept = format!(
                "kept      project {trusted} (not empty: it still holds instance {trusted}/{tag}-stray (not in infra.yml))\n"
            );
            assert!(real.contains(&kept), "{what}: {kept}\n{real}");
        }
    }

    // The runner, on the same world deployed again.
    let errors = common::cleanup(&scope.prefix);
    assert!(errors.is_empty(), "cleanup: {}", errors.join("\n"));
    let plan_again = deploy_teardown(&scope, dir.path());
    assert_eq!(destroy_script(&plan_again).expect("destroy.sh"), script, "the same plan");
    let anklumec = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_anklumec"))
            .args(args)
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("anklumec runs")
    };
    for force in [false, true] {
        let what = format!("anklumec destroy{}", if force { " --force" } else { "" });
        let mut args = vec!["destroy", "infra.yml"];
        if force {
            args.push("--force");
        }
        let dry = anklumec(&[args.as_slice(), &["--dry-run"]].concat());
        assert!(dry.status.success(), "{what} --dry-run: {}", String::from_utf8_lossy(&dry.stderr));
        let real = anklumec(&args);
        assert!(real.status.success(), "{what}: {}", String::from_utf8_lossy(&real.stderr));
        let (dry, real) = (stdout(&dry), stdout(&real));
        assert_predicts(&dry, &what);
        assert_eq!(facts(&dry, true), facts(&real, true), "{what}: dry run\n{dry}\nreal run\n{real}");
        let kept = format!("kept      project {trusted} (not empty: it still holds ");
        assert!(real.contains(&kept) && real.contains(&format!("{tag}-stray (not in infra.yml)")), "{real}");
    }
}
