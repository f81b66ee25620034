//! Support shared by the test files that talk to the real Incus server (`mod common;`):
//! the gate (skip, or fail under `ANKLUMEC_E2E=1`), commands with timeouts, `incus
//! query`, the cross-process lock, the cleanup of everything a test named with its
//! prefix, and normalised snapshots of the live state.
#![allow(dead_code)]

pub mod listing;

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The local image alias tests/e2e/setup-incus.sh imports.
pub const IMAGE: &str = "anklumec-test";
/// How long one incus command may take before the test calls it hung.
pub const INCUS_TIMEOUT: Duration = Duration::from_secs(120);

// =====================================================================================
// Gate
// =====================================================================================

/// `ANKLUMEC_E2E=1` (any value but empty or `0`): Incus must be there.
pub fn e2e_required() -> bool {
    std::env::var("ANKLUMEC_E2E").is_ok_and(|value| !value.is_empty() && value != "0")
}

/// The real incus client, found on PATH.
pub fn real_incus() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("incus")).find(|candidate| candidate.is_file())
}

/// Ok(client) when an Incus server answers and holds the test image, else why not.
pub fn probe_incus() -> Result<PathBuf, String> {
    let incus = real_incus().ok_or("the incus command is not on PATH")?;
    let mut command = Command::new(&incus);
    command.args(["query", "/1.0"]);
    let run =
        run_command(command, Duration::from_secs(30)).map_err(|e| format!("`incus query /1.0` did not run: {e}"))?;
    if !run.ok() {
        return Err(format!("`incus query /1.0` failed: {}", run.stderr.trim()));
    }
    let mut command = Command::new(&incus);
    command.args(["query", &format!("/1.0/images/aliases/{IMAGE}")]);
    let run = run_command(command, Duration::from_secs(30)).map_err(|e| format!("`incus query` did not run: {e}"))?;
    if !run.ok() {
        return Err(format!("the server has no image alias `{IMAGE}` ({})", run.stderr.trim()));
    }
    Ok(incus)
}

/// The real incus client when the real-Incus test `test` is to run; None (after
/// printing why) when it is skipped; a panic when ANKLUMEC_E2E=1 and Incus is missing.
pub fn incus_gate(test: &str) -> Option<PathBuf> {
    static PROBE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PROBE.get_or_init(probe_incus) {
        Ok(incus) => Some(incus.clone()),
        Err(why) if e2e_required() => {
            panic!(
                "{test}: ANKLUMEC_E2E=1 requires a working Incus server, but {why}; run `bash tests/e2e/setup-incus.sh` as root first"
            )
        }
        Err(why) => {
            eprintln!("SKIPPED: no Incus server (set ANKLUMEC_E2E=1 to require it)");
            eprintln!("  ({test}: {why})");
            None
        }
    }
}

// =====================================================================================
// Running commands
// =====================================================================================

#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    pub fn describe(&self) -> String {
        format!("status: {}\n--- stdout ---\n{}--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }

    /// The last `N created, N changed, N unchanged` line.
    pub fn summary(&self) -> Option<&str> {
        self.stdout.lines().rev().find(|line| line.contains(" created, ") && line.contains(" unchanged"))
    }
}

static OUTPUT_FILES: AtomicUsize = AtomicUsize::new(0);

/// Run `command` with /dev/null as stdin, in its own process group, capturing its
/// output; kill the group after `timeout`.
pub fn run_command(mut command: Command, timeout: Duration) -> std::io::Result<Run> {
    let started = Instant::now();
    let n = OUTPUT_FILES.fetch_add(1, Ordering::Relaxed);
    let base = std::env::temp_dir().join(format!("anklumec-e2e-out-{}-{n}", std::process::id()));
    let (out_path, err_path) = (base.with_extension("stdout"), base.with_extension("stderr"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path)?)
        .stderr(fs::File::create(&err_path)?)
        .process_group(0)
        .spawn()?;
    let status = wait_or_kill(&mut child, timeout);
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    match status {
        Some(status) => Ok(Run { status, stdout, stderr, elapsed: started.elapsed() }),
        None => {
            Err(std::io::Error::other(format!("timed out after {timeout:?}; stdout:\n{stdout}\nstderr:\n{stderr}")))
        }
    }
}

pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            kill_group(child.id());
            let _ = child.wait();
            return None;
        }
        sleep(Duration::from_millis(20));
    }
}

/// SIGKILL a whole process group (the child was spawned with `process_group(0)`).
pub fn kill_group(pgid: u32) {
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).stdin(Stdio::null()).status();
}

/// Run the real incus (never a wrapper) with `args`.
pub fn incus_run(args: &[&str]) -> Run {
    let mut command = Command::new(real_incus().expect("incus on PATH"));
    command.args(args);
    run_command(command, INCUS_TIMEOUT).unwrap_or_else(|e| panic!("incus {args:?}: {e}"))
}

/// `incus query PATH`: the JSON answer, or Err with incus's message (404s included).
pub fn query(path: &str) -> Result<Value, String> {
    let run = incus_run(&["query", path]);
    if !run.ok() {
        return Err(run.stderr.trim().to_string());
    }
    if run.stdout.trim().is_empty() {
        // What `incus query` prints for an empty answer (no operations, say).
        return Ok(Value::Null);
    }
    serde_json::from_str(&run.stdout).map_err(|e| format!("`incus query {path}` is not JSON ({e}): {}", run.stdout))
}

pub fn query_ok(path: &str) -> Value {
    query(path).unwrap_or_else(|e| panic!("incus query {path}: {e}"))
}

// =====================================================================================
// Cross-process lock, cleanup
// =====================================================================================

/// A lock directory: one real-Incus test at a time on this machine, across threads and
/// `cargo test` processes. Parallel tests were flaky: Incus 6.0.4 fails to create or
/// delete a bridge while any veth on the host is being torn down ("Failed to delete
/// bridge children interfaces: ... Device vethXXXX does not exist"). A lock whose
/// owner process is gone is taken over.
pub struct TestLock {
    path: PathBuf,
}

impl TestLock {
    pub fn acquire(code: &str) -> TestLock {
        let root = std::env::temp_dir().join("anklumec-e2e-locks");
        let _ = fs::create_dir_all(&root);
        let path = root.join(code);
        let started = Instant::now();
        let mut told = false;
        static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);
        loop {
            // A directory holding the owner's pid, renamed into place: the lock never
            // exists without its pid (a rename onto a non-empty directory fails).
            let attempt = ATTEMPTS.fetch_add(1, Ordering::Relaxed);
            let candidate = root.join(format!("{code}.new.{}.{attempt}", std::process::id()));
            let _ = fs::remove_dir_all(&candidate);
            fs::create_dir(&candidate).expect("create the lock candidate");
            fs::write(candidate.join("pid"), std::process::id().to_string()).expect("write the lock's pid");
            let taken = fs::rename(&candidate, &path);
            let _ = fs::remove_dir_all(&candidate);
            match taken {
                Ok(()) => return TestLock { path },
                // Released meanwhile: try again.
                Err(_) if !path.exists() => {}
                Err(_) => {
                    let owner = fs::read_to_string(path.join("pid")).unwrap_or_default();
                    let alive =
                        owner.trim().parse::<u32>().is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                    if !alive && started.elapsed() > Duration::from_secs(1) {
                        // Its owner is gone (killed, say): take it over.
                        let stale = root.join(format!("{code}.stale.{}.{attempt}", std::process::id()));
                        if fs::rename(&path, &stale).is_ok() {
                            let _ = fs::remove_dir_all(&stale);
                        }
                        continue;
                    }
                    if !told {
                        eprintln!("waiting for the e2e lock {} (held by pid {})", path.display(), owner.trim());
                        told = true;
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(1800),
                        "the e2e lock {} stayed taken for 30 min",
                        path.display()
                    );
                    sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

impl Drop for TestLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Run the real incus; on failure, record the command and its error in `errors`.
pub fn incus_or_note(args: &[&str], errors: &mut Vec<String>) -> bool {
    let run = incus_run(args);
    if !run.ok() {
        errors.push(format!("incus {}: {}", args.join(" "), run.stderr.trim()));
    }
    run.ok()
}

/// Wait (up to 20 s in all) until these host interfaces are gone.
pub fn wait_interfaces_gone(interfaces: &[String], errors: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for interface in interfaces {
        let path = Path::new("/sys/class/net").join(interface);
        while path.exists() && Instant::now() < deadline {
            sleep(Duration::from_millis(50));
        }
        if path.exists() {
            errors.push(format!("the host interface {interface} is still there 20 s after its deletion"));
        }
    }
}

/// Remove every Incus resource whose name starts with `prefix`: in projects named so,
/// their instances (unprotected first), custom volumes, profiles, then the projects;
/// in `default`, instances, volumes and profiles named so; then bridges `net-<prefix>*`
/// and the network ACLs named so.
/// Returns the errors (empty: all gone).
pub fn cleanup(prefix: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut host_interfaces: Vec<String> = Vec::new();
    let projects: Vec<String> = names(&query("/1.0/projects").unwrap_or(json!([])));
    let pools: Vec<String> = names(&query("/1.0/storage-pools").unwrap_or(json!([])));
    let ours = |name: &str| name.starts_with(prefix);
    let mut scopes: Vec<(String, bool)> = projects.iter().filter(|p| ours(p)).map(|p| (p.clone(), true)).collect();
    scopes.push(("default".to_string(), false));
    for (project, whole) in &scopes {
        let keep = |name: &str| !*whole && !ours(name);
        let instances = query(&format!("/1.0/instances?project={project}&recursion=1")).unwrap_or(json!([]));
        let mut doomed = Vec::new();
        for instance in instances.as_array().into_iter().flatten() {
            let name = instance["name"].as_str().unwrap_or_default().to_string();
            if keep(&name) {
                continue;
            }
            for (key, value) in instance["config"].as_object().into_iter().flatten() {
                if key.starts_with("volatile.") && key.ends_with(".host_name") {
                    host_interfaces.extend(value.as_str().map(str::to_string));
                }
            }
            if instance["config"]["security.protection.delete"] == "true" {
                incus_or_note(
                    &["config", "unset", &name, "security.protection.delete", "--project", project],
                    &mut errors,
                );
            }
            doomed.push(name);
        }
        if !doomed.is_empty() {
            let mut args = vec!["delete", "--force", "--project", project];
            args.extend(doomed.iter().map(String::as_str));
            incus_or_note(&args, &mut errors);
        }
        for pool in &pools {
            let volumes =
                query(&format!("/1.0/storage-pools/{pool}/volumes/custom?project={project}")).unwrap_or(json!([]));
            for volume in names(&volumes) {
                if !keep(&volume) {
                    incus_or_note(&["storage", "volume", "delete", pool, &volume, "--project", project], &mut errors);
                }
            }
        }
        let profiles = query(&format!("/1.0/profiles?project={project}")).unwrap_or(json!([]));
        for profile in names(&profiles) {
            if profile != "default" && !keep(&profile) {
                incus_or_note(&["profile", "delete", &profile, "--project", project], &mut errors);
            }
        }
        if *whole {
            incus_or_note(&["project", "delete", project], &mut errors);
        }
    }
    // Incus returns before the kernel has removed the instances' veth pairs. Deleting
    // or creating their bridge meanwhile fails in Incus 6.0.4 with "Failed to delete
    // bridge children interfaces: ... Device vethXXXX does not exist": wait for them.
    wait_interfaces_gone(&host_interfaces, &mut errors);

    let bridge_prefix = format!("net-{prefix}");
    let networks: Vec<String> = query("/1.0/networks?recursion=1")
        .unwrap_or(json!([]))
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["managed"] == true)
        .filter_map(|n| n["name"].as_str().map(str::to_string))
        .filter(|name| name.starts_with(&bridge_prefix))
        .collect();
    for network in &networks {
        // The same race with veths of instances another test deletes: retry a little.
        let mut attempt_errors = Vec::new();
        for _ in 0..5 {
            attempt_errors.clear();
            if incus_or_note(&["network", "delete", network], &mut attempt_errors) {
                break;
            }
            sleep(Duration::from_millis(300));
        }
        errors.extend(attempt_errors);
    }
    // A bridge Incus lost track of (an interrupted or failed creation or deletion) can
    // leave its host interface, or its state directory and a dnsmasq holding the
    // gateway address, and make the next creation fail. Incus cleans both when it
    // manages the name again: take the interface down, create the network bare
    // (Incus then stops the old dnsmasq), delete it.
    let mut stray: BTreeSet<String> = BTreeSet::new();
    for dir in ["/sys/class/net", "/var/lib/incus/networks"] {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            if let Ok(name) = entry.file_name().into_string() {
                if name.starts_with(&bridge_prefix) && !networks.contains(&name) {
                    stray.insert(name);
                }
            }
        }
    }
    for name in &stray {
        if Path::new("/sys/class/net").join(name).exists() {
            let _ = Command::new("ip").args(["link", "delete", name]).stdin(Stdio::null()).status();
        }
        if incus_or_note(&["network", "create", name, "ipv4.address=none", "ipv6.address=none"], &mut errors) {
            incus_or_note(&["network", "delete", name], &mut errors);
        }
    }
    let bridges: Vec<String> = networks.iter().chain(&stray).cloned().collect();
    wait_interfaces_gone(&bridges, &mut errors);
    // The domains' network ACLs, once no bridge names them.
    for acl in names(&query("/1.0/network-acls").unwrap_or(json!([]))) {
        if acl.starts_with(&bridge_prefix) {
            incus_or_note(&["network", "acl", "delete", &acl], &mut errors);
        }
    }
    errors
}

/// The names of a non-recursive collection (`["/1.0/projects/a", ...]`).
pub fn names(collection: &Value) -> Vec<String> {
    collection
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|url| url.split('?').next()?.rsplit('/').next())
        .map(str::to_string)
        .collect()
}

// =====================================================================================
// Live state snapshots
// =====================================================================================

/// Config without the keys that differ between two equal deployments: `volatile.*`
/// always, the anklumec stamp keys (`user.anklumec.*`) unless `keep_stamps`.
pub fn stable_config(config: &Value, keep_stamps: bool) -> Value {
    let map: Map<String, Value> = config
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| !key.starts_with("volatile.") && (keep_stamps || !key.starts_with("user.anklumec.")))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Value::Object(map)
}

pub fn empty_snapshot() -> Value {
    json!({"projects": {}, "networks": {}})
}

/// The state of everything named with `prefix`, normalised: projects (config,
/// description, and their profiles, instances and custom volumes) and bridges.
/// Instances keep type, status, description, profiles, config and expanded_config
/// (see `stable_config`), devices and expanded_devices. `used_by` lists are left out
/// (they repeat what the instances say).
pub fn snapshot(prefix: &str, keep_stamps: bool) -> Value {
    let mut projects = Map::new();
    let pools = names(&query_ok("/1.0/storage-pools"));
    for project in query_ok("/1.0/projects?recursion=1").as_array().into_iter().flatten() {
        let name = project["name"].as_str().unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let mut profiles = Map::new();
        for profile in query_ok(&format!("/1.0/profiles?project={name}&recursion=1")).as_array().into_iter().flatten() {
            profiles.insert(
                profile["name"].as_str().unwrap_or_default().to_string(),
                json!({
                    "description": profile["description"],
                    "config": stable_config(&profile["config"], keep_stamps),
                    "devices": profile["devices"],
                }),
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
                    "config": stable_config(&instance["config"], keep_stamps),
                    "expanded_config": stable_config(&instance["expanded_config"], keep_stamps),
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
                    json!({
                        "description": volume["description"],
                        "content_type": volume["content_type"],
                        "config": stable_config(&volume["config"], keep_stamps),
                    }),
                );
            }
        }
        projects.insert(
            name.to_string(),
            json!({
                "description": project["description"],
                "config": project["config"],
                "profiles": profiles,
                "instances": instances,
                "volumes": volumes,
            }),
        );
    }
    let mut networks = Map::new();
    for network in query_ok("/1.0/networks?recursion=1").as_array().into_iter().flatten() {
        let name = network["name"].as_str().unwrap_or_default();
        if name.starts_with(&format!("net-{prefix}")) {
            networks.insert(
                name.to_string(),
                json!({
                    "type": network["type"],
                    "managed": network["managed"],
                    "description": network["description"],
                    "config": network["config"],
                }),
            );
        }
    }
    json!({"projects": projects, "networks": networks})
}

/// The paths (`a/b/c`) where two JSON values differ; an object key present on one side
/// only is one path.
pub fn diff_paths(a: &Value, b: &Value) -> BTreeSet<String> {
    fn walk(a: &Value, b: &Value, path: &str, out: &mut BTreeSet<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for key in x.keys().chain(y.keys()) {
                    let sub = if path.is_empty() { key.clone() } else { format!("{path}/{key}") };
                    match (x.get(key), y.get(key)) {
                        (Some(u), Some(v)) => walk(u, v, &sub, out),
                        _ => {
                            out.insert(sub);
                        }
                    }
                }
            }
            _ if a != b => {
                out.insert(path.to_string());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(a, b, "", &mut out);
    out
}

pub fn pointer<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('/').fold(value, |v, key| v.get(key).unwrap_or(&Value::Null))
}

pub fn diff_report(before: &Value, after: &Value) -> String {
    diff_paths(before, after)
        .iter()
        .map(|path| format!("  {path}: {} -> {}\n", pointer(before, path), pointer(after, path)))
        .collect()
}

pub fn assert_same_state(expected: &Value, actual: &Value, what: &str) {
    assert!(
        expected == actual,
        "{what}: the live state differs from the expected one (expected -> actual):\n{}",
        diff_report(expected, actual)
    );
}

// =====================================================================================
// The smaller real-server tests (destroy, diff)
// =====================================================================================

/// Run the real incus with `args` (no timeout: for quick calls of the smaller tests).
pub fn incus(args: &[&str]) -> Output {
    Command::new("incus").args(args).stdin(Stdio::null()).output().expect("incus runs")
}

/// Run a script with bash in a temporary directory.
pub fn run(script: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("script.sh");
    std::fs::write(&path, script).expect("write");
    Command::new("bash").arg(&path).envs(env.iter().copied()).output().expect("bash runs")
}

/// A test's claim on the server: the gate passed, the lock is held (real-server tests
/// run one at a time: see [`TestLock`]), what an earlier run left under the prefix is
/// gone, and everything named with the prefix is removed again when it is dropped,
/// even when the test panics.
pub struct Scope {
    test: &'static str,
    pub prefix: String,
    _lock: TestLock,
}

impl Scope {
    /// None (the test is skipped) when no server answers; a panic then when
    /// ANKLUMEC_E2E=1. `code`: two or three letters unique to the test.
    pub fn enter(test: &'static str, code: &str) -> Option<Scope> {
        incus_gate(test)?;
        let lock = TestLock::acquire("incus");
        let leftovers = cleanup(code);
        assert!(leftovers.is_empty(), "{test}: cannot remove what an earlier run left:\n{}", leftovers.join("\n"));
        let prefix = format!("{code}{:03}", std::process::id() % 1000);
        Some(Scope { test, prefix, _lock: lock })
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let errors = cleanup(&self.prefix);
        if !errors.is_empty() {
            eprintln!("{}: cleanup of {} left errors:\n{}", self.test, self.prefix, errors.join("\n"));
        }
    }
}
