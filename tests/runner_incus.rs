//! The runner (`anklumec apply`) against a real Incus server (containers only).
//!
//! 1. `runner_1_*`: the runner's end state equals deploy.sh's, read back with `incus
//!    query` (volatile.* ignored, stamps compared too); the two back ends alternate
//!    (each one's rerun over the other's deployment changes nothing), and a rerun of
//!    the runner sends no mutating request (counted in its client).
//! 2. `runner_2_*`: a failure in one domain (its image is missing) does not stop the
//!    other: the failed step is named with its infra.yml line, its dependents are not
//!    attempted, the exit status is 1; a rerun after the fix completes.
//!
//! Gate and isolation as in tests/e2e_incus.rs: without an Incus server holding the
//! image `anklumec-test` the tests print `SKIPPED` and pass, unless `ANKLUMEC_E2E=1`,
//! which makes that a failure. Each test names everything with its own prefix (three
//! letters and the pid modulo 1000), uses its own zone_base (231 and 233: +10 for the
//! trusted domain), holds the real-Incus tests' cross-process lock (tests/common), and removes everything with
//! its prefix when it ends, even when it panics.

use anklumec::compile::{Options as CompileOptions, compile_source};
use anklumec::plan::Plan;
use anklumec::run::progress::Capture;
use anklumec::run::scheduler::Status;
use anklumec::run::{self, Report};

mod common;
use common::{TestLock, assert_same_state, cleanup, empty_snapshot, incus_gate, query, query_ok, snapshot};
use serde_json::{Map, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

// =====================================================================================
// Lock, world, cleanup
// =====================================================================================

/// One test's world; dropping it removes every Incus resource with its prefix.
struct World {
    test: &'static str,
    prefix: String,
    zone_base: u32,
    dir: tempfile::TempDir,
    _lock: TestLock,
}

impl World {
    fn start(test: &'static str, code: &str, zone_base: u32) -> Option<World> {
        incus_gate(test)?;
        let lock = TestLock::acquire("incus");
        let leftovers = cleanup(code);
        assert!(leftovers.is_empty(), "{test}: cannot remove what an earlier run left:\n{}", leftovers.join("\n"));
        let prefix = format!("{code}{:03}", std::process::id() % 1000);
        let dir = tempfile::Builder::new().prefix(&format!("anklumec-{prefix}-")).tempdir().expect("temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        eprintln!("{test}: prefix {prefix}, zone_base {zone_base}, dir {}", dir.path().display());
        Some(World { test, prefix, zone_base, dir, _lock: lock })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The fixture with this world's names, written to DIR/infra.yml and compiled.
    fn compile(&self, fixture: &str) -> Plan {
        let text = fixture
            .replace("@P@", &self.prefix)
            .replace("@ZT@", &(self.zone_base + 10).to_string())
            .replace("@Z@", &self.zone_base.to_string());
        fs::write(self.path("infra.yml"), &text).expect("write infra.yml");
        let compilation = compile_source("infra.yml", &text, CompileOptions::default());
        let plan =
            compilation.plan.unwrap_or_else(|| panic!("fixture does not compile: {:#?}", compilation.diagnostics));
        let script = anklumec::emit::deploy_script(&plan).expect("deploy.sh");
        fs::write(self.path("deploy.sh"), script).expect("write deploy.sh");
        plan
    }

    /// Run deploy.sh; return its stdout.
    fn deploy_sh(&self) -> String {
        let run = Command::new("bash")
            .arg(self.path("deploy.sh"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("bash deploy.sh");
        let stdout = String::from_utf8_lossy(&run.stdout).to_string();
        assert!(
            run.status.success(),
            "{}: deploy.sh failed\n{stdout}\n{}",
            self.test,
            String::from_utf8_lossy(&run.stderr)
        );
        stdout
    }

    fn apply(&self, plan: &Plan) -> (Report, Vec<String>) {
        let capture = Capture::default();
        let report = run::apply(plan, &run::Options::default(), &capture).expect("the run begins");
        (report, capture.lines())
    }

    fn reset(&self) {
        let errors = cleanup(&self.prefix);
        assert!(errors.is_empty(), "{}: cleanup failed:\n{}", self.test, errors.join("\n"));
        assert_eq!(snapshot(&self.prefix, true), empty_snapshot(), "{}: left after cleanup", self.test);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let errors = cleanup(&self.prefix);
        if !errors.is_empty() {
            eprintln!("{}: cleanup of {} left errors:\n{}", self.test, self.prefix, errors.join("\n"));
        }
    }
}

/// The network ACLs of the prefix's domains (their bridges' names), as Incus holds them,
/// by name (Incus lists them in the order they were created).
fn acls(prefix: &str) -> Vec<Value> {
    let all = query_ok("/1.0/network-acls?recursion=1");
    let mut mine: Vec<Value> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|acl| acl["name"].as_str().is_some_and(|name| name.starts_with(&format!("net-{prefix}"))))
        .cloned()
        .collect();
    mine.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    mine
}

fn mutating(report: &Report) -> Vec<String> {
    report
        .requests
        .iter()
        .filter(|r| r.class == run::client::Class::Mutating)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

// =====================================================================================
// Fixtures
// =====================================================================================

/// Two domains, three containers: a custom profile (config), a static and two
/// automatic addresses, an ephemeral machine and protected ones, a storage volume.
const FIXTURE: &str = r#"
project_name: runner-e2e
global:
  addressing:
    base_octet: 10
    zone_base: @Z@
  default_os_image: anklumec-test
  nat: false
  incus_instances_lxc_retries: 30
  incus_instances_lxc_delay: 1
domains:
  @P@a:
    description: "runner admin domain"
    trust_level: admin
    profiles:
      tuned:
        description: "runner tuned profile"
        config:
          limits.processes: "400"
          user.e2e.note: "v1"
    machines:
      @P@-ctl:
        description: "static address, custom profile"
        ip: 10.@Z@.0.10
        profiles: [default, tuned]
        config:
          limits.cpu: "1"
      @P@-tmp:
        description: "ephemeral"
        ephemeral: true
  @P@t:
    description: "runner trusted domain"
    trust_level: trusted
    machines:
      @P@-web:
        description: "storage volume"
        storage_volumes:
          @P@-data:
            path: /srv/data
"#;

// =====================================================================================
// Tests
// =====================================================================================

#[test]
fn runner_1_end_state_equals_deploy_sh_and_reruns_send_no_mutation() {
    let Some(world) = World::start("runner_1", "rnq", 231) else { return };
    let plan = world.compile(FIXTURE);

    // deploy.sh first; the runner over its deployment changes nothing.
    world.deploy_sh();
    let by_script = snapshot(&world.prefix, true);
    assert_eq!(by_script["projects"].as_object().map(Map::len), Some(2), "deploy.sh made both projects");
    let acls_by_script = acls(&world.prefix);
    assert_eq!(acls_by_script.len(), 2, "deploy.sh made each domain's ACL: {acls_by_script:#?}");
    let (report, lines) = world.apply(&plan);
    assert!(report.ok(), "runner over deploy.sh's deployment failed:\n{}", lines.join("\n"));
    assert_eq!(
        mutating(&report),
        Vec::<String>::new(),
        "runner over deploy.sh's deployment mutated:\n{}",
        lines.join("\n")
    );
    assert_eq!((report.created, report.changed), (0, 0));

    // From nothing, with the runner: the same state, stamps included.
    world.reset();
    let (report, lines) = world.apply(&plan);
    assert!(report.ok(), "runner failed:\n{}", lines.join("\n"));
    assert_eq!(report.failures.len(), 0);
    assert!(report.created >= 8, "the runner created everything:\n{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.starts_with("running ")), "waited for the started instances:\n{}", lines.join("\n"));
    let by_runner = snapshot(&world.prefix, true);
    assert_same_state(&by_script, &by_runner, "the runner's deployment against deploy.sh's");
    assert_eq!(acls(&world.prefix), acls_by_script, "the runner's ACLs against deploy.sh's");

    // A rerun of the runner: no mutating request, everything unchanged.
    let (report, lines) = world.apply(&plan);
    assert!(report.ok());
    assert_eq!(report.mutating_requests, 0, "rerun mutated: {:?}", mutating(&report));
    assert_eq!((report.created, report.changed), (0, 0), "{}", lines.join("\n"));
    assert!(report.requests.iter().all(|r| r.method == "GET"), "rerun sent only reads");

    // deploy.sh over the runner's deployment changes nothing either.
    let stdout = world.deploy_sh();
    let summary = stdout.lines().rev().find(|l| l.contains(" created, ")).unwrap_or_default();
    assert!(summary.starts_with("0 created, 0 changed, "), "deploy.sh after the runner: {stdout}");
    assert!(!stdout.lines().any(|l| l.starts_with("started")), "{stdout}");
}

#[test]
fn runner_2_failure_in_one_domain_does_not_stop_the_other() {
    let Some(world) = World::start("runner_2", "rnf", 233) else { return };
    // The admin domain's machine needs an image this server does not have.
    let broken = FIXTURE.replacen(
        "        description: \"ephemeral\"\n",
        "        description: \"ephemeral\"\n        os_image: anklumec-no-such-image\n",
        1,
    );
    assert_ne!(broken, FIXTURE);
    let plan = world.compile(&broken);
    let output = Command::new(env!("CARGO_BIN_EXE_anklumec"))
        .args(["apply", "infra.yml"])
        .current_dir(world.dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("anklumec apply");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "apply exits 1 on a failure:\n{stderr}");
    let tmp = format!("{}a/{}-tmp", world.prefix, world.prefix);
    // The failure names the step, the infra.yml line and the missing image.
    let failed = stderr
        .lines()
        .find(|l| l.contains("image:anklumec-no-such-image (infra.yml:"))
        .unwrap_or_else(|| panic!("no failure line for the image:\n{stderr}"));
    assert!(failed.contains("not available") && failed.contains(&tmp), "{failed}");
    assert!(stderr.contains(&format!("instance:{tmp} (after image:anklumec-no-such-image)")), "{stderr}");
    // The results and the summary on standard output, the failures on standard error.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("created   instance {}t/{}-web\n", world.prefix, world.prefix)), "{stdout}");
    assert!(stdout.lines().last().is_some_and(|summary| summary.contains(" 1 failed, ")), "{stdout}");
    assert!(!stdout.contains("image:anklumec-no-such-image"), "{stdout}");
    // Everything else converged: the other instances run.
    for (project, name) in [
        (format!("{}a", world.prefix), format!("{}-ctl", world.prefix)),
        (format!("{}t", world.prefix), format!("{}-web", world.prefix)),
    ] {
        let live = query_ok(&format!("/1.0/instances/{name}?project={project}"));
        assert_eq!(live["status"], "Running", "{project}/{name}:\n{stderr}");
    }
    assert!(query(&format!("/1.0/instances/{}-tmp?project={}a", world.prefix, world.prefix)).is_err());

    // Fixed (back to the available image), a rerun completes what was left.
    let plan_fixed = world.compile(FIXTURE);
    drop(plan);
    let (report, lines) = world.apply(&plan_fixed);
    assert!(report.ok(), "{}", lines.join("\n"));
    assert_eq!(report.created, 1, "only the missing instance is created:\n{}", lines.join("\n"));
    assert!(matches!(report.status(&format!("wait:{tmp}")), Some(Status::Done(_))));
    let live = query_ok(&format!("/1.0/instances/{}-tmp?project={}a", world.prefix, world.prefix));
    assert_eq!(live["status"], "Running");
}
