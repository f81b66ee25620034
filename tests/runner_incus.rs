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
//! trusted domain), holds a cross-process lock per test, and removes everything with
//! its prefix when it ends, even when it panics.

use anklumec::compile::{Options as CompileOptions, compile_source};
use anklumec::plan::Plan;
use anklumec::run::progress::Capture;
use anklumec::run::scheduler::Status;
use anklumec::run::{self, Report};
use serde_json::{Map, Value, json};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

const IMAGE: &str = "anklumec-test";

fn e2e_required() -> bool {
    std::env::var("ANKLUMEC_E2E").is_ok_and(|value| !value.is_empty() && value != "0")
}

fn incus_output(args: &[&str]) -> Output {
    Command::new("incus")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run incus {args:?}: {e}"))
}

fn probe_incus() -> Result<(), String> {
    let run = Command::new("incus")
        .args(["query", "/1.0"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("the incus command does not run: {e}"))?;
    if !run.status.success() {
        return Err(format!("`incus query /1.0` failed: {}", String::from_utf8_lossy(&run.stderr).trim()));
    }
    let run = incus_output(&["query", &format!("/1.0/images/aliases/{IMAGE}")]);
    if !run.status.success() {
        return Err(format!("the server has no image alias `{IMAGE}`"));
    }
    Ok(())
}

fn incus_gate(test: &str) -> bool {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    match PROBE.get_or_init(probe_incus) {
        Ok(()) => true,
        Err(why) if e2e_required() => {
            panic!(
                "{test}: ANKLUMEC_E2E=1 requires a working Incus server, but {why}; run `bash tests/e2e/setup-incus.sh` first"
            )
        }
        Err(why) => {
            eprintln!("SKIPPED: no Incus server (set ANKLUMEC_E2E=1 to require it)");
            eprintln!("  ({test}: {why})");
            false
        }
    }
}

fn query(path: &str) -> Result<Value, String> {
    let run = incus_output(&["query", path]);
    if !run.status.success() {
        return Err(String::from_utf8_lossy(&run.stderr).trim().to_string());
    }
    serde_json::from_slice(&run.stdout).map_err(|e| format!("`incus query {path}` is not JSON: {e}"))
}

fn query_ok(path: &str) -> Value {
    query(path).unwrap_or_else(|e| panic!("incus query {path}: {e}"))
}

// =====================================================================================
// Lock, world, cleanup
// =====================================================================================

struct TestLock(PathBuf);

impl TestLock {
    fn acquire(code: &str) -> TestLock {
        let root = std::env::temp_dir().join("anklumec-e2e-locks");
        let _ = fs::create_dir_all(&root);
        let path = root.join(code);
        let started = Instant::now();
        loop {
            match fs::create_dir(&path) {
                Ok(()) => {
                    fs::write(path.join("pid"), std::process::id().to_string()).expect("lock pid");
                    return TestLock(path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(path.join("pid")).unwrap_or_default();
                    let alive =
                        owner.trim().parse::<u32>().is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                    if !alive && started.elapsed() > Duration::from_secs(1) {
                        let stale = root.join(format!("{code}.stale.{}", std::process::id()));
                        if fs::rename(&path, &stale).is_ok() {
                            let _ = fs::remove_dir_all(&stale);
                        }
                        continue;
                    }
                    assert!(started.elapsed() < Duration::from_secs(1800), "lock {} stayed taken", path.display());
                    sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot create the lock {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for TestLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

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
        if !incus_gate(test) {
            return None;
        }
        let lock = TestLock::acquire(code);
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
        assert_eq!(
            snapshot(&self.prefix),
            json!({"projects": {}, "networks": {}}),
            "{}: left after cleanup",
            self.test
        );
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

fn names(collection: &Value) -> Vec<String> {
    collection
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|url| url.split('?').next()?.rsplit('/').next())
        .map(str::to_string)
        .collect()
}

/// Remove every project named `prefix*` with its instances, volumes and profiles, and
/// the bridges `net-prefix*`; wait until the kernel has dropped their interfaces.
fn cleanup(prefix: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut interfaces = Vec::new();
    let mut try_incus = |args: &[&str]| {
        let run = incus_output(args);
        if !run.status.success() {
            errors.push(format!("incus {}: {}", args.join(" "), String::from_utf8_lossy(&run.stderr).trim()));
        }
    };
    let pools = names(&query("/1.0/storage-pools").unwrap_or(json!([])));
    for project in names(&query("/1.0/projects").unwrap_or(json!([]))) {
        if !project.starts_with(prefix) {
            continue;
        }
        let instances = query(&format!("/1.0/instances?project={project}&recursion=1")).unwrap_or(json!([]));
        let mut doomed = Vec::new();
        for instance in instances.as_array().into_iter().flatten() {
            let name = instance["name"].as_str().unwrap_or_default().to_string();
            for (key, value) in instance["config"].as_object().into_iter().flatten() {
                if key.starts_with("volatile.") && key.ends_with(".host_name") {
                    interfaces.extend(value.as_str().map(str::to_string));
                }
            }
            if instance["config"]["security.protection.delete"] == "true" {
                try_incus(&["config", "unset", &name, "security.protection.delete", "--project", &project]);
            }
            doomed.push(name);
        }
        if !doomed.is_empty() {
            let mut args = vec!["delete", "--force", "--project", &project];
            args.extend(doomed.iter().map(String::as_str));
            try_incus(&args);
        }
        for pool in &pools {
            let volumes =
                query(&format!("/1.0/storage-pools/{pool}/volumes/custom?project={project}")).unwrap_or(json!([]));
            for volume in names(&volumes) {
                try_incus(&["storage", "volume", "delete", pool, &volume, "--project", &project]);
            }
        }
        for profile in names(&query(&format!("/1.0/profiles?project={project}")).unwrap_or(json!([]))) {
            if profile != "default" {
                try_incus(&["profile", "delete", &profile, "--project", &project]);
            }
        }
        try_incus(&["project", "delete", &project]);
    }
    let networks: Vec<String> = names(&query("/1.0/networks").unwrap_or(json!([])))
        .into_iter()
        .filter(|n| n.starts_with(&format!("net-{prefix}")))
        .collect();
    for network in &networks {
        try_incus(&["network", "delete", network]);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for interface in interfaces.iter().chain(&networks) {
        let path = Path::new("/sys/class/net").join(interface);
        while path.exists() && Instant::now() < deadline {
            sleep(Duration::from_millis(50));
        }
        if path.exists() {
            errors.push(format!("the host interface {interface} is still there 20 s after its deletion"));
        }
    }
    errors
}

/// Config without `volatile.*` (different on every deployment).
fn stable(config: &Value) -> Value {
    Value::Object(
        config
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| !key.starts_with("volatile."))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
    )
}

/// Everything named with `prefix`, normalised: projects with their profiles,
/// instances and volumes; bridges. Stamps and managed lists are kept.
fn snapshot(prefix: &str) -> Value {
    let pools = names(&query_ok("/1.0/storage-pools"));
    let mut projects = Map::new();
    for project in query_ok("/1.0/projects?recursion=1").as_array().into_iter().flatten() {
        let name = project["name"].as_str().unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let mut profiles = Map::new();
        for profile in query_ok(&format!("/1.0/profiles?project={name}&recursion=1")).as_array().into_iter().flatten() {
            profiles.insert(
                profile["name"].as_str().unwrap_or_default().to_string(),
                json!({"description": profile["description"], "config": stable(&profile["config"]), "devices": profile["devices"]}),
            );
        }
        let mut instances = Map::new();
        for instance in query_ok(&format!("/1.0/instances?project={name}&recursion=1")).as_array().into_iter().flatten()
        {
            instances.insert(
                instance["name"].as_str().unwrap_or_default().to_string(),
                json!({
                    "type": instance["type"],
                    "status": instance["status"],
                    "description": instance["description"],
                    "ephemeral": instance["ephemeral"],
                    "profiles": instance["profiles"],
                    "config": stable(&instance["config"]),
                    "expanded_config": stable(&instance["expanded_config"]),
                    "devices": instance["devices"],
                    "expanded_devices": instance["expanded_devices"],
                }),
            );
        }
        let mut volumes = Map::new();
        for pool in &pools {
            let path = format!("/1.0/storage-pools/{pool}/volumes/custom?project={name}&recursion=1");
            for volume in query_ok(&path).as_array().into_iter().flatten() {
                volumes.insert(
                    format!("{pool}/{}", volume["name"].as_str().unwrap_or_default()),
                    json!({"description": volume["description"], "content_type": volume["content_type"], "config": stable(&volume["config"])}),
                );
            }
        }
        projects.insert(
            name.to_string(),
            json!({"description": project["description"], "config": project["config"], "profiles": profiles, "instances": instances, "volumes": volumes}),
        );
    }
    let mut networks = Map::new();
    for network in query_ok("/1.0/networks?recursion=1").as_array().into_iter().flatten() {
        let name = network["name"].as_str().unwrap_or_default();
        if name.starts_with(&format!("net-{prefix}")) {
            networks.insert(
                name.to_string(),
                json!({"type": network["type"], "managed": network["managed"], "description": network["description"], "config": network["config"]}),
            );
        }
    }
    json!({"projects": projects, "networks": networks})
}

fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let sub = format!("{path}/{key}");
                diff(x.get(key).unwrap_or(&Value::Null), y.get(key).unwrap_or(&Value::Null), &sub, out);
            }
        }
        _ if a != b => out.push(format!("  {path}: {a} (deploy.sh) vs {b} (runner)")),
        _ => {}
    }
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
    let by_script = snapshot(&world.prefix);
    assert_eq!(by_script["projects"].as_object().map(Map::len), Some(2), "deploy.sh made both projects");
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
    let by_runner = snapshot(&world.prefix);
    let mut differences = Vec::new();
    diff(&by_script, &by_runner, "", &mut differences);
    assert!(differences.is_empty(), "end states differ:\n{}", differences.join("\n"));

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
    assert!(stderr.contains(" 1 failed, "), "{stderr}");
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
