//! The runner against a fake Incus API server: a small HTTP server on a unix socket in
//! a temp dir, run by the test on std threads. VMs cannot run on the test machines (no
//! KVM), so their boot and agent waits are proven here: the fake simulates slow boots
//! (status `Stopped` until the boot time has passed since the start request) and late
//! agents (`processes` -1, and `exec` failing with "VM agent isn't currently running",
//! until the agent time has passed), and records every request with its time.
//!
//! Proven: VMs boot in parallel (20 VMs of 2 s boot are all booting and waited on at
//! the same time: asserted on the recorded intervals, not on wall time); agent waits
//! via `processes` and, with `security.agent.metrics=false`, via the exec probe; waits
//! that time out fail with their step, infra.yml line and hints; a failure in one
//! domain does not stop another; a converged fake gets zero mutating requests; a dry
//! run sends none; an interrupt stops launching steps and lets the running one finish;
//! `anklumec destroy` reports a failed removal and keeps what it still uses.
//! Isolation: the fake holds network ACLs as Incus does (refusing a bridge that names a
//! missing one, and the deletion of one in use); each ACL is created before its bridge,
//! a hand-added rule is put back by one PUT, a server without the ACL extensions or
//! nftables is refused before any change, and destroy removes ACLs after their bridges.
//!
//! benches/runner.rs reuses the fake (`#[path]`), hence the `pub` items.

use anklumec::compile::{Options as CompileOptions, compile_source};
use anklumec::plan::Plan;
use anklumec::run::progress::Capture;
use anklumec::run::scheduler::Status;
use anklumec::run::{self, Report};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

// =====================================================================================
// The fake server
// =====================================================================================

#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    at: Instant,
    /// The `name` of the request's body, if any (what a POST creates).
    name: String,
}

struct Instance {
    body: Value,
    started_at: Option<Instant>,
    /// When a state read first saw it running.
    seen_running: Option<Instant>,
}

struct Operation {
    done_at: Instant,
    result: Result<Value, String>,
}

/// How the fake behaves.
#[derive(Clone)]
pub struct Behaviour {
    pub boot: Duration,
    pub agent: Duration,
    /// Instance names whose agent never answers.
    pub no_agent: BTreeSet<String>,
    /// Instance names whose creation operation fails.
    pub fail_create: BTreeSet<String>,
    /// Project names whose creation fails (HTTP 500).
    pub fail_project: BTreeSet<String>,
    /// How long a create or start operation runs.
    pub op_time: Duration,
    /// Set when the first instance creation arrives (a Ctrl-C at that moment).
    pub interrupt_on_create: Option<Arc<AtomicBool>>,
    /// Instance names whose deletion operation fails (changeable while the fake runs).
    pub fail_delete: Arc<Mutex<BTreeSet<String>>>,
    /// The API extensions and firewall driver `GET /1.0` reports.
    pub extensions: Vec<&'static str>,
    pub firewall: &'static str,
    /// How long a bridge's creation, change or deletion and an ACL's deletion take
    /// (zero: at once); each is then recorded in [`World::spans`].
    pub bridge_time: Duration,
    /// ACL names whose deletion answers 404 and leaves the ACL, as Incus 6.0.4 does
    /// when another ACL is deleted meanwhile.
    pub acl_delete_404: BTreeSet<String>,
    /// Bridge names whose first creation and first deletion fail as Incus 6.0.4 fails
    /// them when another process's veth goes away meanwhile (HTTP 500).
    pub bridge_race_once: BTreeSet<String>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            boot: Duration::from_millis(0),
            agent: Duration::from_millis(0),
            no_agent: BTreeSet::new(),
            fail_create: BTreeSet::new(),
            fail_project: BTreeSet::new(),
            op_time: Duration::from_millis(20),
            interrupt_on_create: None,
            fail_delete: Arc::new(Mutex::new(BTreeSet::new())),
            extensions: vec!["network_acl", "network_bridge_acl"],
            firewall: "nftables",
            bridge_time: Duration::ZERO,
            acl_delete_404: BTreeSet::new(),
            bridge_race_once: BTreeSet::new(),
        }
    }
}

#[derive(Default)]
struct World {
    projects: BTreeMap<String, Value>,
    networks: BTreeMap<String, Value>,
    acls: BTreeMap<String, Value>,
    profiles: BTreeMap<(String, String), Value>,
    instances: BTreeMap<(String, String), Instance>,
    volumes: BTreeMap<(String, String, String), Value>,
    images: Vec<Value>,
    operations: BTreeMap<String, Operation>,
    requests: Vec<Request>,
    /// (what, from, to) of the requests that add or remove host interfaces or delete
    /// an ACL: `bridge NAME`, `acl-delete NAME`, `instance NAME` (a start or a deletion,
    /// until its operation is done).
    spans: Vec<(String, Instant, Instant)>,
    /// The bridge creations and deletions that met the race ([`Behaviour::bridge_race_once`]).
    raced: BTreeSet<String>,
}

pub struct Fake {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    world: Arc<(Mutex<World>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl Fake {
    pub fn start(behaviour: Behaviour) -> Fake {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("unix.socket");
        let listener = UnixListener::bind(&socket).expect("bind the fake socket");
        let mut world = World::default();
        world
            .projects
            .insert("default".into(), json!({"name": "default", "description": "Default Incus project", "config": {}}));
        world.profiles.insert(
            ("default".into(), "default".into()),
            json!({"name": "default", "description": "Default Incus profile", "config": {}, "devices": {}}),
        );
        let world = Arc::new((Mutex::new(world), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopping) = (world.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (shared, behaviour) = (shared.clone(), behaviour.clone());
                std::thread::spawn(move || serve(stream, &shared, &behaviour));
            }
        });
        Fake { _dir: dir, socket, world, stop }
    }

    pub fn options(&self, jobs: usize) -> run::Options {
        run::Options { jobs, socket: Some(self.socket.clone()), ..run::Options::default() }
    }

    fn spans(&self) -> Vec<(String, Instant, Instant)> {
        self.world.0.lock().map(|w| w.spans.clone()).unwrap_or_default()
    }

    fn requests(&self) -> Vec<Request> {
        self.world.0.lock().map(|w| w.requests.clone()).unwrap_or_default()
    }

    /// (start request time, first seen running) per instance that was started.
    pub fn boots(&self) -> BTreeMap<String, (Instant, Option<Instant>)> {
        let world = self.world.0.lock().expect("fake state");
        world
            .instances
            .iter()
            .filter_map(|((_, name), i)| i.started_at.map(|at| (name.clone(), (at, i.seen_running))))
            .collect()
    }

    fn status(&self, project: &str, name: &str) -> Option<String> {
        let world = self.world.0.lock().expect("fake state");
        world
            .instances
            .get(&(project.into(), name.into()))
            .map(|i| if i.started_at.is_some() { "Running".into() } else { "Stopped".into() })
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.socket);
    }
}

fn read_request(stream: &UnixStream) -> Option<(String, String, Vec<u8>)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, body))
}

/// Write a response; `chunked` frames the body in chunks (as Incus does for `/wait`).
fn respond(mut stream: &UnixStream, status: u16, body: &Value, chunked: bool) {
    let text = body.to_string();
    let reason = match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        404 => "Not Found",
        _ => "Error",
    };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nConnection: close\r\n");
    if chunked {
        out.push_str("Transfer-Encoding: chunked\r\n\r\n");
        for chunk in text.as_bytes().chunks(7) {
            out.push_str(&format!("{:x}\r\n{}\r\n", chunk.len(), String::from_utf8_lossy(chunk)));
        }
        out.push_str("0\r\n\r\n");
    } else {
        out.push_str(&format!("Content-Length: {}\r\n\r\n{text}", text.len()));
    }
    let _ = stream.write_all(out.as_bytes());
}

fn sync(metadata: Value) -> (u16, Value) {
    (200, json!({"type": "sync", "status": "Success", "status_code": 200, "metadata": metadata}))
}

fn error(code: u16, message: &str) -> (u16, Value) {
    (code, json!({"type": "error", "error": message, "error_code": code}))
}

static OPERATIONS: AtomicUsize = AtomicUsize::new(0);

fn operation(world: &mut World, after: Duration, result: Result<Value, String>) -> (u16, Value) {
    let id = format!("op-{}", OPERATIONS.fetch_add(1, Ordering::SeqCst));
    world.operations.insert(id.clone(), Operation { done_at: Instant::now() + after, result });
    (
        202,
        json!({"type": "async", "status": "Operation created", "status_code": 100, "operation": format!("/1.0/operations/{id}"),
               "metadata": {"id": id, "status_code": 103}}),
    )
}

// The instance map is checked, then the operation table (same lock) is written.
#[allow(clippy::map_entry)]
fn serve(stream: UnixStream, shared: &(Mutex<World>, Condvar), behaviour: &Behaviour) {
    let Some((method, target, body)) = read_request(&stream) else { return };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let params: BTreeMap<&str, &str> = query.split('&').filter_map(|kv| kv.split_once('=')).collect();
    let project = params.get("project").copied().unwrap_or("default").to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // Operation waits block outside the lock.
    if let ["1.0", "operations", id, "wait"] = segments.as_slice() {
        let timeout = Duration::from_secs(params.get("timeout").and_then(|t| t.parse().ok()).unwrap_or(30));
        let deadline = Instant::now() + timeout;
        if let Ok(mut world) = shared.0.lock() {
            world.requests.push(Request {
                method: method.clone(),
                path: target.clone(),
                at: Instant::now(),
                name: String::new(),
            });
        }
        loop {
            let state =
                shared.0.lock().ok().map(|world| world.operations.get(*id).map(|op| (op.done_at, op.result.clone())));
            match state {
                Some(Some((done_at, result))) if Instant::now() >= done_at => {
                    let op = match result {
                        Ok(metadata) => {
                            json!({"id": id, "status": "Success", "status_code": 200, "metadata": metadata, "err": ""})
                        }
                        Err(message) => {
                            json!({"id": id, "status": "Failure", "status_code": 400, "metadata": null, "err": message})
                        }
                    };
                    let (status, envelope) = sync(op);
                    return respond(&stream, status, &envelope, true);
                }
                Some(Some((done_at, _))) => {
                    if Instant::now() >= deadline {
                        let (status, envelope) = sync(json!({"id": id, "status": "Running", "status_code": 103}));
                        return respond(&stream, status, &envelope, true);
                    }
                    std::thread::sleep(
                        done_at.saturating_duration_since(Instant::now()).min(Duration::from_millis(20)),
                    );
                }
                _ => {
                    let (status, envelope) = error(404, "Operation not found");
                    return respond(&stream, status, &envelope, false);
                }
            }
        }
    }
    // A slow bridge (or ACL deletion) takes its time outside the lock, as incusd does.
    let slow = match (method.as_str(), segments.as_slice()) {
        ("POST", ["1.0", "networks"]) => Some(format!("bridge {}", body["name"].as_str().unwrap_or_default())),
        ("PUT" | "DELETE", ["1.0", "networks", name]) => Some(format!("bridge {name}")),
        ("DELETE", ["1.0", "network-acls", name]) => Some(format!("acl-delete {name}")),
        _ => None,
    }
    .filter(|_| !behaviour.bridge_time.is_zero());
    let begin = Instant::now();
    if slow.is_some() {
        std::thread::sleep(behaviour.bridge_time);
    }
    let Ok(mut world) = shared.0.lock() else { return };
    let name = body["name"].as_str().unwrap_or_default().to_string();
    world.requests.push(Request { method: method.clone(), path: target.clone(), at: Instant::now(), name });
    let recursion = params.get("recursion") == Some(&"1");
    // `recursion=2` adds each instance's state (the runner asks it for the agents).
    let with_state = params.get("recursion") == Some(&"2");
    let race = match (method.as_str(), segments.as_slice()) {
        ("POST", ["1.0", "networks"]) => Some(format!("create {}", body["name"].as_str().unwrap_or_default())),
        ("DELETE", ["1.0", "networks", bridge]) => Some(format!("delete {bridge}")),
        _ => None,
    }
    .filter(|what| behaviour.bridge_race_once.contains(what.split(' ').nth(1).unwrap_or_default()));
    let raced = race.is_some_and(|what| world.raced.insert(what));
    let (status, envelope) = match (method.as_str(), segments.as_slice()) {
        _ if raced => error(
            500,
            "Failed to delete bridge children interfaces: Failed to run: ip -d -j link show veth0c0ffee0: exit status 1 (Device \"veth0c0ffee0\" does not exist.)",
        ),
        ("GET", ["1.0"]) => sync(json!({
            "api_extensions": behaviour.extensions,
            "environment": {"server_version": "6.0.4", "firewall": behaviour.firewall},
        })),
        ("GET", ["1.0", "network-acls"]) if recursion => {
            let acls: Vec<Value> = world.acls.keys().map(|name| acl_view(&world, name)).collect();
            sync(Value::Array(acls))
        }
        ("GET", ["1.0", "network-acls", name]) => match world.acls.contains_key(*name) {
            true => sync(acl_view(&world, name)),
            false => error(404, "Network ACL not found"),
        },
        ("POST", ["1.0", "network-acls"]) => {
            let name = body["name"].as_str().unwrap_or_default().to_string();
            if world.acls.contains_key(&name) {
                error(400, "The network ACL already exists")
            } else {
                world.acls.insert(name, body.clone());
                (201, json!({"type": "sync", "status": "Success", "status_code": 200, "metadata": {}}))
            }
        }
        ("PUT", ["1.0", "network-acls", name]) => match world.acls.get_mut(*name) {
            Some(acl) => {
                for key in ["description", "config", "egress", "ingress"] {
                    acl[key] = body[key].clone();
                }
                sync(json!({}))
            }
            None => error(404, "Network ACL not found"),
        },
        ("DELETE", ["1.0", "network-acls", name]) if behaviour.acl_delete_404.contains(*name) => {
            error(404, "Failed getting ACL usage: Network ACL not found")
        }
        ("DELETE", ["1.0", "network-acls", name]) => {
            if !world.acls.contains_key(*name) {
                error(404, "Network ACL not found")
            } else if !acl_users(&world, name).is_empty() {
                error(400, "Cannot delete an ACL that is in use")
            } else {
                world.acls.remove(*name);
                sync(json!({}))
            }
        }
        ("GET", ["1.0", "projects"]) if recursion => sync(Value::Array(world.projects.values().cloned().collect())),
        ("POST", ["1.0", "projects"]) => {
            let name = body["name"].as_str().unwrap_or_default().to_string();
            if behaviour.fail_project.contains(&name) {
                error(500, "Failed creating project: simulated failure")
            } else if world.projects.contains_key(&name) {
                error(500, "Error inserting into database: The project already exists")
            } else {
                world.projects.insert(name.clone(), body.clone());
                world.profiles.insert(
                    (name, "default".into()),
                    json!({"name": "default", "description": "Default Incus profile", "config": {}, "devices": {}}),
                );
                (201, json!({"type": "sync", "status": "Success", "status_code": 200, "metadata": {}}))
            }
        }
        ("PUT", ["1.0", "projects", name]) => match world.projects.get_mut(*name) {
            Some(project) => {
                project["config"] = body["config"].clone();
                project["description"] = body["description"].clone();
                sync(json!({}))
            }
            None => error(404, "Project not found"),
        },
        ("GET", ["1.0", "networks"]) if recursion => sync(Value::Array(world.networks.values().cloned().collect())),
        ("POST", ["1.0", "networks"]) if missing_acl(&world, &body).is_some() => {
            error(400, &format!("Network ACL {:?} does not exist", missing_acl(&world, &body).unwrap_or_default()))
        }
        ("POST", ["1.0", "networks"]) => {
            let name = body["name"].as_str().unwrap_or_default().to_string();
            let mut network = body.clone();
            network["managed"] = json!(true);
            network["config"] = without_empty_values(&body["config"]);
            world.networks.insert(name, network);
            (201, json!({"type": "sync", "status": "Success", "status_code": 200, "metadata": {}}))
        }
        ("PUT", ["1.0", "networks", _]) if missing_acl(&world, &body).is_some() => {
            error(400, &format!("Network ACL {:?} does not exist", missing_acl(&world, &body).unwrap_or_default()))
        }
        ("PUT", ["1.0", "networks", name]) => match world.networks.get_mut(*name) {
            Some(network) => {
                network["config"] = without_empty_values(&body["config"]);
                network["description"] = body["description"].clone();
                sync(json!({}))
            }
            None => error(404, "Network not found"),
        },
        ("GET", ["1.0", "profiles"]) if recursion => {
            if !world.projects.contains_key(&project) {
                error(404, "Project not found")
            } else {
                sync(Value::Array(
                    world.profiles.iter().filter(|((p, _), _)| *p == project).map(|(_, v)| v.clone()).collect(),
                ))
            }
        }
        ("GET", ["1.0", "profiles", name]) => match world.profiles.get(&(project.clone(), name.to_string())) {
            Some(profile) => sync(profile.clone()),
            None => error(404, "Profile not found"),
        },
        ("POST", ["1.0", "profiles"]) => {
            let name = body["name"].as_str().unwrap_or_default().to_string();
            world.profiles.insert((project, name), body.clone());
            (201, json!({"type": "sync", "status": "Success", "status_code": 200, "metadata": {}}))
        }
        ("PUT", ["1.0", "profiles", name]) => match world.profiles.get_mut(&(project.clone(), name.to_string())) {
            Some(profile) => {
                for key in ["config", "description", "devices"] {
                    profile[key] = body[key].clone();
                }
                sync(json!({}))
            }
            None => error(404, "Profile not found"),
        },
        ("GET", ["1.0", "storage-pools", pool, "volumes", "custom"]) if recursion => sync(Value::Array(
            world.volumes.iter().filter(|((p, o, _), _)| *p == project && o == pool).map(|(_, v)| v.clone()).collect(),
        )),
        ("POST", ["1.0", "storage-pools", pool, "volumes", "custom"]) => {
            let name = body["name"].as_str().unwrap_or_default().to_string();
            world.volumes.insert((project, pool.to_string(), name), body.clone());
            (201, json!({"type": "sync", "status": "Success", "status_code": 200, "metadata": {}}))
        }
        // Every local alias exists but those named `no-such-...`; one naming `vm` is a
        // virtual-machine image.
        ("GET", ["1.0", "images", "aliases", name]) if name.starts_with("no-such") => {
            error(404, "Image alias not found")
        }
        ("GET", ["1.0", "images", "aliases", name]) => {
            let vm = name.contains("vm");
            sync(json!({"name": name, "target": "f00d", "type": if vm { "virtual-machine" } else { "container" }}))
        }
        ("GET", ["1.0", "images"]) if recursion => sync(Value::Array(world.images.clone())),
        ("POST", ["1.0", "images"]) => {
            let source = &body["source"];
            let image = json!({
                "fingerprint": format!("f{}", world.images.len()),
                "type": source["image_type"],
                "update_source": {"server": source["server"], "protocol": source["protocol"], "alias": source["alias"]},
            });
            world.images.push(image);
            operation(&mut world, Duration::from_millis(300), Ok(json!({})))
        }
        ("GET", ["1.0", "instances"]) if recursion || with_state => {
            let now = Instant::now();
            let list: Vec<Value> = world
                .instances
                .iter()
                .filter(|((p, _), _)| *p == project)
                .map(|((_, name), i)| {
                    let mut body = i.body.clone();
                    body["status"] = json!(status_of(i, behaviour, now));
                    if with_state {
                        body["state"] = state_of(i, name, behaviour, now);
                    }
                    body
                })
                .collect();
            sync(Value::Array(list))
        }
        ("POST", ["1.0", "instances"]) => {
            if let Some(flag) = &behaviour.interrupt_on_create {
                flag.store(true, Ordering::SeqCst);
            }
            let name = body["name"].as_str().unwrap_or_default().to_string();
            let key = (project.clone(), name.clone());
            if world.instances.contains_key(&key) {
                error(409, "Instance already exists")
            } else if behaviour.fail_create.contains(&name) {
                let after = behaviour.op_time;
                operation(&mut world, after, Err(format!("Failed creating instance {name}: simulated failure")))
            } else {
                let mut stored = json!({"name": name, "architecture": "x86_64", "ephemeral": false, "stateful": false, "project": project});
                for key in ["type", "config", "devices", "profiles", "description", "source"] {
                    stored[key] = body[key].clone();
                }
                world.instances.insert(key, Instance { body: stored, started_at: None, seen_running: None });
                let after = behaviour.op_time;
                operation(&mut world, after, Ok(json!({})))
            }
        }
        ("PUT", ["1.0", "instances", name]) => match world.instances.get_mut(&(project.clone(), name.to_string())) {
            Some(instance) => {
                for key in ["config", "devices", "profiles", "description"] {
                    instance.body[key] = body[key].clone();
                }
                operation(&mut world, Duration::ZERO, Ok(json!({})))
            }
            None => error(404, "Instance not found"),
        },
        ("PUT", ["1.0", "instances", name, "state"]) if body["action"] == "stop" => {
            match world.instances.get_mut(&(project.clone(), name.to_string())) {
                Some(instance) if instance.started_at.is_none() => error(400, "The instance is already stopped"),
                Some(instance) => {
                    instance.started_at = None;
                    instance.seen_running = None;
                    let after = behaviour.op_time;
                    operation(&mut world, after, Ok(json!({})))
                }
                None => error(404, "Instance not found"),
            }
        }
        ("PUT", ["1.0", "instances", name, "state"]) => {
            match world.instances.get_mut(&(project.clone(), name.to_string())) {
                Some(instance) if instance.started_at.is_some() => error(400, "The instance is already running"),
                Some(instance) => {
                    instance.started_at = Some(Instant::now());
                    let after = behaviour.op_time;
                    world.spans.push((format!("instance {name}"), begin, Instant::now() + after));
                    operation(&mut world, after, Ok(json!({})))
                }
                None => error(404, "Instance not found"),
            }
        }
        ("GET", ["1.0", "instances", name, "state"]) => {
            let now = Instant::now();
            match world.instances.get_mut(&(project.clone(), name.to_string())) {
                Some(instance) => {
                    if status_of(instance, behaviour, now) == "Running" && instance.seen_running.is_none() {
                        instance.seen_running = Some(now);
                    }
                    sync(state_of(instance, name, behaviour, now))
                }
                None => error(404, "Instance not found"),
            }
        }
        ("POST", ["1.0", "instances", name, "exec"]) => {
            let now = Instant::now();
            match world.instances.get(&(project.clone(), name.to_string())) {
                Some(instance) if agent_up(instance, name, behaviour, now) => {
                    operation(&mut world, Duration::from_millis(5), Ok(json!({"return": 0})))
                }
                Some(instance) if instance.started_at.is_some() => error(400, "VM agent isn't currently running"),
                Some(_) => error(400, "Instance is not running"),
                None => error(404, "Instance not found"),
            }
        }
        ("GET", ["1.0", "instances", name]) => match world.instances.get(&(project.clone(), name.to_string())) {
            Some(instance) => {
                let mut body = instance.body.clone();
                body["status"] = json!(status_of(instance, behaviour, Instant::now()));
                body["expanded_config"] = body["config"].clone();
                sync(body)
            }
            None => error(404, "Instance not found"),
        },
        ("PATCH", ["1.0", "instances", name]) => match world.instances.get_mut(&(project.clone(), name.to_string())) {
            Some(instance) => {
                for (key, value) in body["config"].as_object().into_iter().flatten() {
                    instance.body["config"][key] = value.clone();
                }
                sync(json!({}))
            }
            None => error(404, "Instance not found"),
        },
        ("DELETE", ["1.0", "instances", name]) => {
            let key = (project.clone(), name.to_string());
            let failing = behaviour.fail_delete.lock().is_ok_and(|names| names.contains(*name));
            match world.instances.get(&key) {
                None => error(404, "Instance not found"),
                Some(i) if i.body["config"]["security.protection.delete"] == "true" => {
                    error(400, "Instance is protected")
                }
                Some(i) if i.started_at.is_some() => error(400, "Instance is running"),
                Some(_) if failing => {
                    let after = behaviour.op_time;
                    operation(&mut world, after, Err(format!("Failed deleting instance {name}: simulated failure")))
                }
                Some(_) => {
                    world.instances.remove(&key);
                    let after = behaviour.op_time;
                    world.spans.push((format!("instance {name}"), begin, Instant::now() + after));
                    operation(&mut world, after, Ok(json!({})))
                }
            }
        }
        ("GET", ["1.0", "projects", name]) => match world.projects.get(*name) {
            Some(found) => {
                let mut body = found.clone();
                body["used_by"] = json!(project_users(&world, name));
                sync(body)
            }
            None => error(404, "Project not found"),
        },
        ("DELETE", ["1.0", "projects", name]) => {
            let users = project_users(&world, name);
            if !world.projects.contains_key(*name) {
                error(404, "Project not found")
            } else if users.iter().any(|user| user != &format!("/1.0/profiles/default?project={name}")) {
                error(400, "Only empty projects can be removed")
            } else {
                world.projects.remove(*name);
                world.profiles.retain(|(p, _), _| p != name);
                sync(json!({}))
            }
        }
        ("DELETE", ["1.0", "profiles", name]) => {
            let key = (project.clone(), name.to_string());
            if !world.profiles.contains_key(&key) {
                error(404, "Profile not found")
            } else if !profile_users(&world, &project, name).is_empty() {
                error(400, "The profile is currently in use")
            } else {
                world.profiles.remove(&key);
                sync(json!({}))
            }
        }
        ("GET", ["1.0", "networks", name]) => match world.networks.get(*name) {
            Some(found) => {
                let mut body = found.clone();
                body["managed"] = json!(true);
                body["used_by"] = json!(network_users(&world, name));
                sync(body)
            }
            None => error(404, "Network not found"),
        },
        ("DELETE", ["1.0", "networks", name]) => {
            if !world.networks.contains_key(*name) {
                error(404, "Network not found")
            } else if !network_users(&world, name).is_empty() {
                error(400, "The network is currently in use")
            } else {
                world.networks.remove(*name);
                sync(json!({}))
            }
        }
        _ => error(404, &format!("not found: {method} {target}")),
    };
    if let Some(what) = slow {
        world.spans.push((what, begin, Instant::now()));
    }
    drop(world);
    respond(&stream, status, &envelope, false);
}

/// A network config as Incus stores it: a key set to the empty string is unset.
fn without_empty_values(config: &Value) -> Value {
    let kept = config.as_object().into_iter().flatten().filter(|(_, value)| *value != "");
    Value::Object(kept.map(|(key, value)| (key.clone(), value.clone())).collect())
}

/// The first ACL a bridge's config names that does not exist.
fn missing_acl(world: &World, network: &Value) -> Option<String> {
    let names = network["config"]["security.acls"].as_str().unwrap_or_default();
    names.split(',').filter(|name| !name.is_empty()).find(|name| !world.acls.contains_key(*name)).map(str::to_string)
}

/// The bridges whose `security.acls` names the ACL `name`.
fn acl_users(world: &World, name: &str) -> Vec<String> {
    world
        .networks
        .iter()
        .filter(|(_, network)| {
            network["config"]["security.acls"].as_str().unwrap_or_default().split(',').any(|acl| acl == name)
        })
        .map(|(network, _)| format!("/1.0/networks/{network}"))
        .collect()
}

/// An ACL as the API returns it.
fn acl_view(world: &World, name: &str) -> Value {
    let stored = &world.acls[name];
    json!({
        "name": name,
        "description": stored["description"],
        "config": stored.get("config").cloned().unwrap_or(json!({})),
        "egress": stored.get("egress").cloned().unwrap_or(json!([])),
        "ingress": stored.get("ingress").cloned().unwrap_or(json!([])),
        "project": "default",
        "used_by": acl_users(world, name),
    })
}

/// What a project holds, as Incus's `used_by` names it.
fn project_users(world: &World, project: &str) -> Vec<String> {
    let instances = world.instances.keys().filter(|(p, _)| p == project).map(|(_, n)| format!("/1.0/instances/{n}"));
    let profiles = world.profiles.keys().filter(|(p, _)| p == project).map(|(_, n)| format!("/1.0/profiles/{n}"));
    instances.chain(profiles).map(|path| format!("{path}?project={project}")).collect()
}

/// The instances of `project` that use the profile `name`.
fn profile_users(world: &World, project: &str, name: &str) -> Vec<String> {
    world
        .instances
        .iter()
        .filter(|((p, _), i)| {
            p == project && i.body["profiles"].as_array().is_some_and(|l| l.iter().any(|x| x == name))
        })
        .map(|((p, n), _)| format!("/1.0/instances/{n}?project={p}"))
        .collect()
}

/// The profiles and instances with a device on the network `name`.
fn network_users(world: &World, name: &str) -> Vec<String> {
    let on_network =
        |devices: &Value| devices.as_object().into_iter().flatten().any(|(_, device)| device["network"] == name);
    let profiles = world
        .profiles
        .iter()
        .filter(|(_, profile)| on_network(&profile["devices"]))
        .map(|((p, n), _)| format!("/1.0/profiles/{n}?project={p}"));
    let instances = world
        .instances
        .iter()
        .filter(|(_, i)| on_network(&i.body["devices"]))
        .map(|((p, n), _)| format!("/1.0/instances/{n}?project={p}"));
    profiles.chain(instances).collect()
}

fn status_of(instance: &Instance, behaviour: &Behaviour, now: Instant) -> &'static str {
    match instance.started_at {
        Some(at) if now >= at + behaviour.boot => "Running",
        _ => "Stopped",
    }
}

/// `GET .../state`: the process count is the agent's (-1 without it, or with
/// `security.agent.metrics=false`).
fn state_of(instance: &Instance, name: &str, behaviour: &Behaviour, now: Instant) -> Value {
    let status = status_of(instance, behaviour, now);
    let metrics = instance.body["config"]["security.agent.metrics"] != "false";
    let processes = if metrics && agent_up(instance, name, behaviour, now) { 7 } else { -1 };
    json!({"status": status, "status_code": if status == "Running" { 103 } else { 102 }, "processes": processes})
}

fn agent_up(instance: &Instance, name: &str, behaviour: &Behaviour, now: Instant) -> bool {
    !behaviour.no_agent.contains(name)
        && instance.started_at.is_some_and(|at| now >= at + behaviour.boot + behaviour.agent)
}

// =====================================================================================
// Helpers
// =====================================================================================

pub fn compile(text: &str) -> Plan {
    let compilation = compile_source("infra.yml", text, CompileOptions::default());
    compilation.plan.unwrap_or_else(|| panic!("does not compile: {:#?}", compilation.diagnostics))
}

/// `vms` VMs in domain `vmlab`, and `lxcs` containers in domain `other`.
pub fn fixture(vms: usize, lxcs: usize, extra_vm_config: &str) -> String {
    let mut text = String::from(
        "project_name: fake\nglobal:\n  addressing:\n    base_octet: 10\n    zone_base: 120\n  default_os_image: fake-vm-image\n  nat: false\n\
         \x20 incus_instances_vm_retries: 10\n  incus_instances_vm_delay: 1\n\
         \x20 incus_instances_vm_agent_retries: 10\n  incus_instances_vm_agent_delay: 1\n\
         \x20 incus_instances_lxc_retries: 5\n  incus_instances_lxc_delay: 1\ndomains:\n",
    );
    if vms > 0 {
        text.push_str("  vmlab:\n    trust_level: admin\n    machines:\n");
        for i in 0..vms {
            text.push_str(&format!(
                "      vm{i:02}:\n        type: vm\n        config:\n          limits.cpu: \"1\"\n{extra_vm_config}"
            ));
        }
    }
    if lxcs > 0 {
        text.push_str("  other:\n    trust_level: trusted\n    machines:\n");
        for i in 0..lxcs {
            text.push_str(&format!("      ct{i:02}:\n        os_image: fake-lxc-image\n"));
        }
    }
    text
}

fn apply(fake: &Fake, plan: &Plan, jobs: usize) -> (Report, Vec<String>) {
    let capture = Capture::default();
    let report = run::apply(plan, &fake.options(jobs), &capture).expect("the run begins");
    (report, capture.lines())
}

/// `anklumec destroy` of `plan` on the fake with `jobs` workers: the report and the
/// lines it printed, joined.
fn destroy_on(fake: &Fake, plan: &Plan, jobs: usize) -> (anklumec::run::destroy::DestroyReport, String) {
    use anklumec::run::destroy::{DestroyOptions, destroy};
    let options = DestroyOptions { socket: Some(fake.socket.clone()), jobs, ..DestroyOptions::default() };
    let capture = Capture::default();
    let report = destroy(plan, &options, &capture).expect("the run begins");
    (report, capture.lines().join("\n"))
}

/// The largest number of the intervals that are open at one instant.
fn max_overlap(intervals: &[(Instant, Instant)]) -> usize {
    let mut events: Vec<(Instant, i32)> = intervals.iter().flat_map(|(a, b)| [(*a, 1), (*b, -1)]).collect();
    events.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.cmp(&y.1)));
    let (mut open, mut best) = (0i32, 0i32);
    for (_, delta) in events {
        open += delta;
        best = best.max(open);
    }
    best as usize
}

fn mutating(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.method != "GET" && !r.path.contains("/exec"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

// =====================================================================================
// Tests
// =====================================================================================

#[test]
fn twenty_vms_boot_and_are_waited_on_in_parallel() {
    let fake = Fake::start(Behaviour {
        boot: Duration::from_secs(2),
        agent: Duration::from_millis(500),
        ..Behaviour::default()
    });
    let plan = compile(&fixture(20, 0, ""));
    let started = Instant::now();
    let (report, lines) = apply(&fake, &plan, 4);
    let wall = started.elapsed();
    assert!(report.ok(), "{}", lines.join("\n"));
    let boots = fake.boots();
    assert_eq!(boots.len(), 20, "every VM was started");
    // Each VM's boot, from its start request to the first state read that saw it run.
    let intervals: Vec<(Instant, Instant)> = boots
        .iter()
        .map(|(name, (at, seen))| (*at, seen.unwrap_or_else(|| panic!("{name} was never seen running"))))
        .collect();
    assert_eq!(max_overlap(&intervals), 20, "all 20 VMs were booting (and waited on) at the same time");
    // And the waits themselves overlapped: each VM's polls span its boot.
    let requests = fake.requests();
    let polls: Vec<(Instant, Instant)> = boots
        .iter()
        .map(|(name, (_, seen))| {
            let seen = seen.expect("seen running");
            let times: Vec<Instant> = requests
                .iter()
                .filter(|r| {
                    r.method == "GET" && r.path.starts_with(&format!("/1.0/instances/{name}/state")) && r.at <= seen
                })
                .map(|r| r.at)
                .collect();
            assert!(times.len() >= 2, "{name} was polled while it booted");
            (times[0], times[times.len() - 1])
        })
        .collect();
    assert_eq!(max_overlap(&polls), 20, "the 20 boot waits ran concurrently");
    for i in 0..20 {
        let running = lines.iter().find(|l| l.starts_with("running ") && l.contains(&format!("vmlab/vm{i:02} ")));
        let running = running.unwrap_or_else(|| panic!("no running line for vm{i:02}:\n{}", lines.join("\n")));
        assert!(!running.contains("(after 0 s)"), "vm{i:02} was waited for: {running}");
        assert!(lines.iter().any(|l| l.starts_with("agent ") && l.contains(&format!("vmlab/vm{i:02} answers"))));
    }
    eprintln!("20 VMs, 2 s boot, 0.5 s agent: wall time {:.1} s", wall.as_secs_f64());
}

#[test]
fn late_agent_without_metrics_is_found_by_the_exec_probe() {
    let fake = Fake::start(Behaviour {
        boot: Duration::from_millis(500),
        agent: Duration::from_millis(1500),
        ..Behaviour::default()
    });
    let plan = compile(&fixture(2, 0, "          security.agent.metrics: \"false\"\n"));
    let (report, lines) = apply(&fake, &plan, 4);
    assert!(report.ok(), "{}", lines.join("\n"));
    let requests = fake.requests();
    let probes: Vec<&Request> = requests.iter().filter(|r| r.method == "POST" && r.path.contains("/exec")).collect();
    assert!(probes.len() >= 4, "the agent waits probed with exec until it answered: {} probes", probes.len());
    assert_eq!(
        report.mutating_requests,
        requests.iter().filter(|r| r.method != "GET" && !r.path.contains("/exec")).count()
    );
    for vm in ["vm00", "vm01"] {
        let line = lines.iter().find(|l| l.starts_with("agent ") && l.contains(vm)).expect("agent line");
        assert!(!line.contains("(after 0 s)"), "{line}");
    }
}

#[test]
fn waits_that_time_out_fail_with_step_origin_and_hints_and_spare_the_others() {
    let fake = Fake::start(Behaviour {
        boot: Duration::from_millis(200),
        no_agent: ["vm01".to_string()].into(),
        ..Behaviour::default()
    });
    let text = fixture(3, 0, "").replace("incus_instances_vm_agent_retries: 10", "incus_instances_vm_agent_retries: 2");
    let plan = compile(&text);
    let (report, lines) = apply(&fake, &plan, 2);
    assert!(!report.ok());
    assert_eq!(report.failures.len(), 1, "{}", lines.join("\n"));
    let failure = &report.failures[0];
    assert_eq!(failure.id, "agent:vmlab/vm01");
    let line = text.lines().position(|l| l.trim() == "vm01:").expect("vm01 in the fixture") + 1;
    assert!(failure.origin.starts_with(&format!("infra.yml:{line}:")), "origin {} (line {line})", failure.origin);
    assert!(failure.message.contains("did not answer after 2 x 1 s"), "{}", failure.message);
    assert!(failure.hints.iter().any(|h| h.contains("incus exec vm01 --project vmlab -- true")));
    for vm in ["vm00", "vm02"] {
        assert!(matches!(report.status(&format!("agent:vmlab/{vm}")), Some(Status::Done(_))));
    }
    assert!(lines.iter().any(|l| l.contains("0 unchanged, 3 started, 1 failed, wall time")), "{}", lines.join("\n"));

    // A rerun finds the VMs running and checks their agents again: vm01's still does
    // not answer, and the run fails as the first did, with the memory hints too. The
    // others' agents report in one read of the project's state, with no probe.
    let before = fake.requests().len();
    let (report, lines) = apply(&fake, &plan, 2);
    assert!(!report.ok(), "a rerun passed a VM whose agent does not answer:\n{}", lines.join("\n"));
    let failed: Vec<&str> = report.failures.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(failed, ["agent:vmlab/vm01"], "{}", lines.join("\n"));
    assert!(report.failures[0].hints.iter().any(|h| h == "incus restart vm01 --project vmlab"));
    for vm in ["vm00", "vm02"] {
        assert!(matches!(
            report.status(&format!("agent:vmlab/{vm}")),
            Some(Status::Done(run::apply::Outcome::AgentReady(0)))
        ));
    }
    let rerun = fake.requests().split_off(before);
    let states: Vec<&str> = rerun.iter().filter(|r| r.path.contains("recursion=2")).map(|r| r.path.as_str()).collect();
    assert_eq!(states, ["/1.0/instances?recursion=2&project=vmlab"], "one state read for the project");
    assert!(
        rerun.iter().all(|r| !r.path.contains("vm00") && !r.path.contains("vm02")),
        "no probe of a reporting agent"
    );
    assert!(rerun.iter().any(|r| r.path.starts_with("/1.0/instances/vm01/exec")), "vm01 is probed");
    assert_eq!(mutating(&rerun), Vec::<String>::new(), "the rerun changes nothing");
}

#[test]
fn a_failure_in_one_domain_does_not_stop_another() {
    // The VM domain's project cannot be created; one container of the other domain
    // cannot be created either.
    let fake = Fake::start(Behaviour {
        boot: Duration::from_millis(300),
        fail_project: ["vmlab".to_string()].into(),
        fail_create: ["ct01".to_string()].into(),
        ..Behaviour::default()
    });
    let text = fixture(2, 3, "");
    let plan = compile(&text);
    let (report, lines) = apply(&fake, &plan, 3);
    assert!(!report.ok());
    let failed: BTreeSet<&str> = report.failures.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(failed, ["instance:other/ct01", "project:vmlab"].into(), "{}", lines.join("\n"));
    let project_failure = report.failures.iter().find(|f| f.id == "project:vmlab").expect("project failure");
    assert!(project_failure.message.contains("simulated failure") && project_failure.message.contains("HTTP 500"));
    assert!(project_failure.origin.starts_with("infra.yml:"), "{}", project_failure.origin);
    // Everything of the failed domain that needs its project was not attempted...
    for id in
        ["profile:vmlab/default", "instance:vmlab/vm00", "start:vmlab/vm01", "wait:vmlab/vm00", "agent:vmlab/vm01"]
    {
        assert_eq!(report.status(id), Some(&Status::Blocked("project:vmlab".into())), "{id}");
    }
    assert_eq!(report.status("start:other/ct01"), Some(&Status::Blocked("instance:other/ct01".into())));
    // ...and no request touched its instances.
    assert!(fake.requests().iter().all(|r| !r.path.contains("vm0")), "no request for the blocked VMs");
    // The other domain converged.
    for ct in ["ct00", "ct02"] {
        assert!(matches!(
            report.status(&format!("wait:other/{ct}")),
            Some(Status::Done(run::apply::Outcome::Running(_)))
        ));
        assert_eq!(fake.status("other", ct).as_deref(), Some("Running"));
    }
    let closing = lines.join("\n");
    assert!(closing.contains("2 step(s) failed:"), "{closing}");
    assert!(closing.contains("  project:vmlab (infra.yml:"), "{closing}");
    assert!(closing.contains("not attempted"), "{closing}");
    // The bridge does not depend on the project: it was created.
    assert!(matches!(report.status("network:net-vmlab"), Some(Status::Done(run::apply::Outcome::Created))));
}

#[test]
fn converged_fake_gets_zero_mutating_requests_and_dry_run_sends_none() {
    let fake = Fake::start(Behaviour { boot: Duration::from_millis(100), ..Behaviour::default() });
    let text = fixture(2, 2, "").replace(
        "  other:\n    trust_level: trusted\n",
        "  other:\n    trust_level: trusted\n    profiles:\n      small:\n        description: small\n        config:\n          limits.memory: 256MiB\n",
    );
    let plan = compile(&text);

    let (report, lines) = apply(&fake, &plan, 4);
    assert!(report.ok(), "{}", lines.join("\n"));
    let before = fake.requests().len();

    // A dry run on an empty fake: what would change, and no mutating request.
    let fresh = Fake::start(Behaviour::default());
    let capture = Capture::default();
    let options = run::Options { dry_run: true, ..fresh.options(4) };
    let dry = run::apply(&plan, &options, &capture).expect("dry run");
    assert!(dry.ok());
    assert_eq!(mutating(&fresh.requests()), Vec::<String>::new(), "a dry run mutates nothing");
    let dry_lines = capture.lines();
    assert!(
        dry_lines.iter().any(|l| l.starts_with("would run: POST /1.0/instances?project=vmlab")),
        "{}",
        dry_lines.join("\n")
    );
    assert!(dry_lines.last().is_some_and(|l| l.contains("(dry run: nothing was changed)")));
    // Worded as predictions, as deploy.sh's DRY_RUN=1: never a fact.
    assert!(dry_lines.iter().any(|l| l.starts_with("would create instance vmlab/")), "{}", dry_lines.join("\n"));
    assert!(dry_lines.iter().any(|l| l.starts_with("would start ")), "{}", dry_lines.join("\n"));
    assert!(
        !dry_lines.iter().any(|l| l.starts_with("created ") || l.starts_with("started ")),
        "{}",
        dry_lines.join("\n")
    );
    assert!(
        dry_lines
            .last()
            .is_some_and(|l| l.starts_with("11 to create, 2 to change, 0 unchanged, 4 to start, 0 failed, ")),
        "{}",
        dry_lines.join("\n")
    );

    // The first run converged the fake; a second run sends only reads.
    let (report, lines) = apply(&fake, &plan, 4);
    assert!(report.ok(), "{}", lines.join("\n"));
    let second: Vec<Request> = fake.requests().split_off(before);
    assert_eq!(mutating(&second), Vec::<String>::new(), "rerun on a converged fake:\n{}", lines.join("\n"));
    assert_eq!(report.mutating_requests, 0);
    assert_eq!((report.created, report.changed), (0, 0));
    assert!(report.unchanged >= 8, "{}", lines.join("\n"));
    // One read per global list (projects, ACLs, networks), one of the server's
    // features for the isolation preflight, three per project (profiles, instances, no
    // volumes pools: two), one of the VM project's state for its agents, and nothing
    // per instance.
    assert!(second.len() <= 11, "a converged rerun reads each project once: {:#?}", second);
    assert_eq!(second.iter().filter(|r| r.path.contains("recursion=2")).count(), 1, "{second:#?}");
}

#[test]
fn interrupt_stops_launching_steps_and_lets_the_running_request_finish() {
    let flag = Arc::new(AtomicBool::new(false));
    let fake = Fake::start(Behaviour {
        op_time: Duration::from_millis(300),
        interrupt_on_create: Some(flag.clone()),
        ..Behaviour::default()
    });
    let plan = compile(&fixture(0, 3, ""));
    let capture = Capture::default();
    let options = run::Options { interrupt: flag, ..fake.options(1) };
    let report = run::apply(&plan, &options, &capture).expect("the run begins");
    assert!(report.was_interrupted());
    // The creation in flight when Ctrl-C came finished; nothing started after it.
    let created: Vec<&(String, Status)> =
        report.statuses.iter().filter(|(id, s)| id.starts_with("instance:") && matches!(s, Status::Done(_))).collect();
    assert_eq!(created.len(), 1, "{:?}", report.statuses);
    assert_eq!(
        fake.requests().iter().filter(|r| r.method == "POST" && r.path.starts_with("/1.0/instances?")).count(),
        1
    );
    assert!(fake.requests().iter().all(|r| !r.path.contains("/state")), "no start after the interrupt");
    assert!(report.interrupted.iter().any(|id| id.starts_with("start:")));
    assert!(capture.lines().iter().any(|l| l.contains("interrupted: ")), "{:?}", capture.lines());
    // A rerun finishes the job.
    let (report, lines) = apply(&fake, &plan, 4);
    assert!(report.ok(), "{}", lines.join("\n"));
    assert_eq!(report.created, 2, "{}", lines.join("\n"));
}

#[test]
fn a_remote_image_is_pulled_once_before_the_instances_are_created_in_parallel() {
    let fake = Fake::start(Behaviour::default());
    let text = fixture(0, 4, "").replace("os_image: fake-lxc-image", "os_image: images:debian/13");
    let plan = compile(&text);
    let (report, lines) = apply(&fake, &plan, 4);
    assert!(report.ok(), "{}", lines.join("\n"));
    let requests = fake.requests();
    let pulls: Vec<&Request> = requests.iter().filter(|r| r.method == "POST" && r.path == "/1.0/images").collect();
    assert_eq!(pulls.len(), 1, "one pull for four instances");
    let creates: Vec<&Request> =
        requests.iter().filter(|r| r.method == "POST" && r.path.starts_with("/1.0/instances?")).collect();
    assert_eq!(creates.len(), 4);
    let pulled = requests
        .iter()
        .find(|r| r.path.starts_with("/1.0/operations/") && r.at > pulls[0].at)
        .expect("the pull was awaited");
    assert!(creates.iter().all(|c| c.at > pulled.at), "instances are created after the pull");
    let world = fake.world.0.lock().expect("fake state");
    let instance = &world.instances[&("other".to_string(), "ct00".to_string())].body;
    assert_eq!(instance["source"]["server"], "https://images.linuxcontainers.org");
    assert_eq!(instance["source"]["protocol"], "simplestreams");
    assert_eq!(instance["source"]["alias"], "debian/13");
    drop(world);
    // Next time the image is there: no pull.
    let fake2_plan = compile(&text.replace("ct00", "ct10").replace("ct01", "ct11"));
    let (report, lines) = apply(&fake, &fake2_plan, 4);
    assert!(report.ok(), "{}", lines.join("\n"));
    assert_eq!(fake.requests().iter().filter(|r| r.method == "POST" && r.path == "/1.0/images").count(), 1);
}

/// `anklumec destroy` on the fake: a removal that fails is reported with its step and
/// origin and keeps what it still uses (its project, its bridge), the other domain goes
/// entirely; a rerun, once the cause is gone, finishes the job; an interrupt before
/// the start removes nothing.
#[test]
fn destroy_reports_a_failed_removal_keeps_what_it_uses_and_a_rerun_finishes() {
    use anklumec::run::destroy::{DestroyOptions, destroy};
    let fail_delete = Arc::new(Mutex::new(BTreeSet::new()));
    let fake = Fake::start(Behaviour { fail_delete: fail_delete.clone(), ..Behaviour::default() });
    let plan = compile(
        &fixture(0, 2, "").replace("      ct01:\n", "  gone:\n    trust_level: admin\n    machines:\n      ct01:\n"),
    );
    let (report, lines) = apply(&fake, &plan, 4);
    assert!(report.ok(), "{}", lines.join("\n"));
    let options = |interrupted: bool| DestroyOptions {
        socket: Some(fake.socket.clone()),
        interrupt: Arc::new(AtomicBool::new(interrupted)),
        // Every machine of the fixture is protected (`ephemeral` defaults to false).
        force: true,
        ..DestroyOptions::default()
    };

    let capture = Capture::default();
    let report = destroy(&plan, &options(true), &capture).expect("the run begins");
    assert!(report.was_interrupted() && report.mutating_requests == 0, "{:?}", capture.lines());
    assert!(
        capture.lines().iter().any(|l| l.starts_with("interrupted: 8 resource(s) not reached")),
        "{:?}",
        capture.lines()
    );

    fail_delete.lock().expect("names").insert("ct00".to_string());
    let capture = Capture::default();
    let report = destroy(&plan, &options(false), &capture).expect("the run begins");
    let lines = capture.lines().join("\n");
    assert!(!report.ok(), "{lines}");
    let failures = report.failures();
    assert_eq!(failures.len(), 1, "{lines}");
    let (title, origin, message) = failures[0];
    assert_eq!(title, "instance other/ct00");
    assert!(origin.starts_with("infra.yml:") && message.contains("simulated failure"), "{origin}: {message}");
    // What keeps the project, by name: the instance whose removal failed.
    assert!(lines.contains("kept      project other (not empty: it still holds instance other/ct00)"), "{lines}");
    assert!(lines.contains("kept      network net-other (still in use)"), "{lines}");
    // A kept bridge keeps its domain isolated: its ACL stays.
    assert!(lines.contains("kept      network ACL net-other (still used by networks/net-other)"), "{lines}");
    for gone in [
        "removed   instance gone/ct01",
        "removed   project gone",
        "removed   network net-gone",
        "removed   network ACL net-gone",
    ] {
        assert!(lines.contains(gone), "{gone}\n{lines}");
    }
    assert!(lines.contains("failed other/ct00") || lines.contains("  failed instance other/ct00"), "{lines}");

    fail_delete.lock().expect("names").clear();
    let capture = Capture::default();
    let report = destroy(&plan, &options(false), &capture).expect("the run begins");
    let lines = capture.lines().join("\n");
    assert!(report.ok(), "{lines}");
    assert_eq!((report.removed(), report.kept().len()), (4, 0), "ct00, project other, net-other and its ACL\n{lines}");
    let world = fake.world.0.lock().expect("fake state");
    assert!(world.instances.is_empty() && world.networks.is_empty(), "everything declared is gone");
    assert!(world.acls.is_empty(), "every ACL is gone after its bridge");
    assert_eq!(world.projects.keys().collect::<Vec<_>>(), ["default"]);
}

/// Two domains and a policy between them: each bridge under its ACL.
const ISOLATED: &str = "project_name: iso
global:
  addressing: {base_octet: 10, zone_base: 100}
  default_os_image: tiny
domains:
  adm:
    trust_level: admin
    machines: {ctl: {ip: 10.100.0.10}}
  web:
    trust_level: trusted
    machines: {www: {ip: 10.110.0.10}}
network_policies:
  - {from: ctl, to: www, ports: [22]}
";

/// The isolation on the fake: each ACL is created before the bridge that names it, a
/// converged rerun sends nothing, and a rule added by hand is put back by one PUT.
#[test]
fn acls_are_created_before_their_bridges_and_hand_changes_are_put_back() {
    let fake = Fake::start(Behaviour::default());
    let plan = compile(ISOLATED);
    // The fake, as Incus, refuses a bridge that names an ACL it does not have: the run
    // succeeds only when each ACL comes first.
    let (report, lines) = apply(&fake, &plan, 4);
    assert!(report.ok(), "{}", lines.join("\n"));
    let requests = fake.requests();
    let created = mutating(&requests);
    assert_eq!(created.iter().filter(|r| *r == "POST /1.0/network-acls").count(), 2, "{created:#?}");
    // In request order: each domain's ACL is created before the bridge that names it
    // (whatever the scheduler runs in between).
    let position =
        |path: &str, name: &str| requests.iter().position(|r| r.method == "POST" && r.path == path && r.name == name);
    for domain in ["adm", "web"] {
        let bridge = format!("net-{domain}");
        let (acl, network) = (position("/1.0/network-acls", &bridge), position("/1.0/networks", &bridge));
        assert!(acl.is_some() && network.is_some(), "{bridge} is created with its ACL: {created:#?}");
        assert!(acl < network, "the ACL {bridge} comes before its bridge: {created:#?}");
    }
    {
        let world = fake.world.0.lock().expect("fake state");
        assert_eq!(world.acls.keys().collect::<Vec<_>>(), ["net-adm", "net-web"]);
        let web = &world.acls["net-web"]["ingress"];
        assert_eq!(web[1]["source"], "10.100.0.10");
        assert_eq!(web[1]["destination"], "10.110.0.10");
        assert_eq!(web[1]["destination_port"], "22");
        assert_eq!(world.networks["net-web"]["config"]["security.acls"], "net-web");
        assert_eq!(world.networks["net-web"]["config"]["security.acls.default.ingress.action"], "drop");
    }

    let before = fake.requests().len();
    let (report, lines) = apply(&fake, &plan, 4);
    assert!(report.ok(), "{}", lines.join("\n"));
    assert_eq!(mutating(&fake.requests().split_off(before)), Vec::<String>::new(), "converged");

    // By hand: a rule that opens web to the whole admin domain on every port.
    fake.world.0.lock().expect("fake state").acls.get_mut("net-web").expect("ACL")["ingress"]
        .as_array_mut()
        .expect("rules")
        .push(json!({"action": "allow", "source": "10.100.0.0/24", "state": "enabled"}));
    let drift = anklumec::run::diff::diff(&plan, Some(fake.socket.clone())).expect("diff runs");
    assert!(drift.iter().any(|d| d.resource == "acl" && d.name == "net-web" && d.kind == "rule"), "{drift:#?}");
    let before = fake.requests().len();
    let (report, lines) = apply(&fake, &plan, 4);
    assert!(report.ok(), "{}", lines.join("\n"));
    assert_eq!(mutating(&fake.requests().split_off(before)), ["PUT /1.0/network-acls/net-web"]);
    assert_eq!(fake.world.0.lock().expect("fake state").acls["net-web"]["ingress"].as_array().map(Vec::len), Some(2));
    let drift = anklumec::run::diff::diff(&plan, Some(fake.socket.clone())).expect("diff runs");
    assert!(drift.is_empty(), "{drift:#?}");
}

/// A server that cannot enforce the isolation is refused before any change, with the
/// way out; `network_isolation: false` deploys there (without ACLs).
#[test]
fn a_server_that_cannot_isolate_is_refused_before_any_change() {
    for (extensions, firewall, missing) in [
        (vec!["network_acl"], "nftables", "network_bridge_acl"),
        (vec!["network_acl", "network_bridge_acl"], "xtables", "\"firewall\": \"xtables\""),
    ] {
        let fake = Fake::start(Behaviour { extensions, firewall, ..Behaviour::default() });
        let plan = compile(ISOLATED);
        let error = run::apply(&plan, &fake.options(4), &Capture::default()).expect_err("refused");
        assert!(error.0.contains(missing) && error.0.contains("global.network_isolation: false"), "{error}");
        assert_eq!(mutating(&fake.requests()), Vec::<String>::new(), "nothing changed");

        let off =
            compile(&ISOLATED.replace("default_os_image: tiny", "default_os_image: tiny\n  network_isolation: false"));
        let (report, lines) = apply(&fake, &off, 4);
        assert!(report.ok(), "{}", lines.join("\n"));
        let world = fake.world.0.lock().expect("fake state");
        assert!(
            world.acls.is_empty()
                && !world.networks["net-web"]["config"].as_object().is_some_and(|c| c.contains_key("security.acls"))
        );
    }
}

/// `anklumec destroy` of an isolated plan: each ACL goes after its bridge (Incus refuses
/// to delete an ACL a bridge names); a domain that holds a protected instance keeps its
/// project, its bridge and so its ACL, which the fake (as Incus) would refuse to delete.
#[test]
fn destroy_removes_acls_after_their_bridges_and_keeps_the_acl_of_a_kept_bridge() {
    let fake = Fake::start(Behaviour::default());
    // `www` may be deleted; `ctl` is protected (`ephemeral` defaults to false).
    let plan = compile(&ISOLATED.replace("www: {ip: 10.110.0.10}", "www: {ip: 10.110.0.10, ephemeral: true}"));
    let (report, lines) = apply(&fake, &plan, 4);
    assert!(report.ok(), "{}", lines.join("\n"));
    let before = fake.requests().len();
    let (report, lines) = destroy_on(&fake, &plan, anklumec::run::DEFAULT_JOBS);
    assert!(report.ok(), "{lines}");
    assert!(lines.contains("kept      network net-adm (still in use)"), "{lines}");
    assert!(lines.contains("kept      network ACL net-adm (still used by networks/net-adm)"), "{lines}");
    assert!(lines.contains("removed   network net-web") && lines.contains("removed   network ACL net-web"), "{lines}");
    let deletes: Vec<String> = mutating(&fake.requests().split_off(before))
        .into_iter()
        .filter(|r| r.starts_with("DELETE /1.0/network"))
        .collect();
    assert_eq!(deletes, ["DELETE /1.0/networks/net-web", "DELETE /1.0/network-acls/net-web"], "{lines}");
    let world = fake.world.0.lock().expect("fake state");
    assert_eq!(world.acls.keys().collect::<Vec<_>>(), ["net-adm"], "the kept bridge stays isolated");
    assert_eq!(world.networks["net-adm"]["config"]["security.acls"], "net-adm");
}

/// The runner's preflight, as deploy.sh's: an existing instance of the other type than
/// declared, or a missing local image, stops the run before its first mutating request,
/// with deploy.sh's message and the infra.yml line.
#[test]
fn the_preflight_stops_the_run_before_any_change() {
    let fake = Fake::start(Behaviour { boot: Duration::from_millis(50), ..Behaviour::default() });
    let plan = compile(&fixture(1, 1, ""));
    let (report, lines) = apply(&fake, &plan, 4);
    assert!(report.ok(), "{}", lines.join("\n"));

    // vm00 declared a container now, and a machine added: nothing may be sent.
    let retyped =
        fixture(1, 2, "").replace("        type: vm\n", "        type: lxc\n        os_image: fake-lxc-image\n");
    let before = fake.requests().len();
    let error = run::apply(&compile(&retyped), &fake.options(4), &Capture::default()).expect_err("refused");
    let message = error.to_string();
    assert!(message.contains("instance vm00 in project vmlab is a virtual-machine but"), "{message}");
    assert!(message.contains("declares type lxc: Incus cannot convert it"), "{message}");
    assert!(message.contains("infra.yml:"), "{message}");
    assert_eq!(mutating(&fake.requests().split_off(before)), Vec::<String>::new(), "{message}");

    // An image that the server does not have, for a machine still to be created.
    let missing = fixture(1, 2, "")
        .replace("      ct01:\n        os_image: fake-lxc-image\n", "      ct01:\n        os_image: no-such-image\n");
    assert_ne!(missing, fixture(1, 2, ""));
    let before = fake.requests().len();
    let error = run::apply(&compile(&missing), &fake.options(4), &Capture::default()).expect_err("refused");
    let message = error.to_string();
    let line = missing.lines().position(|l| l.contains("no-such-image")).expect("the line") + 1;
    assert!(
        message
            .starts_with(&format!("image no-such-image (infra.yml:{line}:19) is not available on this Incus server")),
        "{message}"
    );
    assert!(message.contains("\n  needed to create: other/ct01\n"), "{message}");
    assert_eq!(mutating(&fake.requests().split_off(before)), Vec::<String>::new(), "{message}");
}

/// Four domains of two containers each, every machine removable.
fn four_domains() -> String {
    let mut text = String::from(
        "project_name: race\nglobal:\n  addressing: {base_octet: 10, zone_base: 100}\n  default_os_image: tiny\n  nat: false\ndomains:\n",
    );
    for (subnet, domain) in ["da", "db", "dc", "dd"].iter().enumerate() {
        text.push_str(&format!(
            "  {domain}:\n    trust_level: admin\n    subnet_id: {subnet}\n    ephemeral: true\n    machines:\n      {domain}1: {{}}\n      {domain}2: {{}}\n"
        ));
    }
    text
}

/// The spans of `kind` (`bridge`, `acl-delete`, `instance`) as intervals.
fn spans_of(spans: &[(String, Instant, Instant)], kind: &str) -> Vec<(Instant, Instant)> {
    spans.iter().filter(|(what, _, _)| what.split(' ').next() == Some(kind)).map(|(_, a, b)| (*a, *b)).collect()
}

/// Whether a span of `kind` overlaps a span of `other`.
fn any_overlap(spans: &[(String, Instant, Instant)], kind: &str, other: &str) -> bool {
    let (xs, ys) = (spans_of(spans, kind), spans_of(spans, other));
    xs.iter().any(|(a, b)| ys.iter().any(|(c, d)| a < d && c < b))
}

/// Incus 6.0.4 fails a bridge's creation or deletion when a host interface goes away
/// meanwhile, another bridge or an instance's veth (src/run/serial.rs), and an ACL's
/// deletion when another ACL is deleted: the runner, with eight workers, does these
/// one at a time, and still starts and deletes instances in parallel.
#[test]
fn bridges_and_acl_deletions_run_alone_and_instances_together() {
    let fake = Fake::start(Behaviour {
        bridge_time: Duration::from_millis(60),
        op_time: Duration::from_millis(60),
        ..Behaviour::default()
    });
    let plan = compile(&four_domains());
    let (report, lines) = apply(&fake, &plan, 8);
    assert!(report.ok(), "{}", lines.join("\n"));
    let spans = fake.spans();
    assert_eq!(spans_of(&spans, "bridge").len(), 4, "{spans:#?}");
    assert_eq!(max_overlap(&spans_of(&spans, "bridge")), 1, "bridges created one at a time: {spans:#?}");
    assert!(!any_overlap(&spans, "bridge", "instance"), "no start beside a bridge: {spans:#?}");
    assert!(max_overlap(&spans_of(&spans, "instance")) > 1, "starts in parallel: {spans:#?}");

    fake.world.0.lock().expect("fake state").spans.clear();
    let (report, lines) = destroy_on(&fake, &plan, 8);
    assert!(report.ok(), "{lines}");
    let spans = fake.spans();
    assert_eq!(spans_of(&spans, "bridge").len(), 4, "{spans:#?}");
    assert_eq!(max_overlap(&spans_of(&spans, "bridge")), 1, "bridges deleted one at a time: {spans:#?}");
    assert_eq!(max_overlap(&spans_of(&spans, "acl-delete")), 1, "ACLs deleted one at a time: {spans:#?}");
    assert!(!any_overlap(&spans, "bridge", "instance"), "{spans:#?}");
    assert!(max_overlap(&spans_of(&spans, "instance")) > 1, "instances deleted in parallel: {spans:#?}");
}

/// A 404 to a DELETE means "already gone" only when the resource is indeed gone: Incus
/// 6.0.4 answers 404 for an ACL deletion it failed ("Failed getting ACL usage"), and
/// destroy then reports the failure instead of `removed`.
#[test]
fn destroy_does_not_take_a_failed_deletion_answered_404_for_a_removal() {
    let fake = Fake::start(Behaviour { acl_delete_404: ["net-db".to_string()].into(), ..Behaviour::default() });
    let plan = compile(&four_domains());
    let (report, lines) = apply(&fake, &plan, 8);
    assert!(report.ok(), "{}", lines.join("\n"));
    let (report, lines) = destroy_on(&fake, &plan, anklumec::run::DEFAULT_JOBS);
    assert!(!report.ok(), "{lines}");
    let failures = report.failures();
    assert_eq!(failures.len(), 1, "{lines}");
    assert_eq!(failures[0].0, "network ACL net-db");
    assert!(failures[0].2.contains("Failed getting ACL usage"), "{lines}");
    assert!(fake.world.0.lock().expect("fake state").acls.contains_key("net-db"), "it is still there");
}

/// `anklumec` (the binary) in `dir`, on the fake's socket: status, stdout, stderr.
fn cli(fake: &Fake, dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_anklumec"))
        .args(args)
        .current_dir(dir)
        .env("INCUS_SOCKET", &fake.socket)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("anklumec runs");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

/// deploy.sh's streams: `anklumec apply > log` keeps every step's result and the
/// summary (starts counted); a failure, its hints and the closing list of what failed
/// go to standard error, and no result does. The same for `anklumec destroy`, whose dry
/// run words each line as a prediction.
#[test]
fn the_runner_prints_results_on_standard_output_and_failures_on_standard_error() {
    let fake = Fake::start(Behaviour { fail_create: ["ct01".to_string()].into(), ..Behaviour::default() });
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("infra.yml"), fixture(0, 3, "")).expect("write infra.yml");
    let (code, stdout, stderr) = cli(&fake, dir.path(), &["apply", "infra.yml"]);
    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for result in ["created   project other", "created   instance other/ct00", "started   instance other/ct02"] {
        assert!(stdout.contains(&format!("{result}\n")), "{result} on stdout:\n{stdout}");
    }
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.starts_with("5 created, 1 changed, 0 unchanged, 2 started, 1 failed, wall time "), "{stdout}");
    assert!(!stdout.contains("failed    ") && !stdout.contains("step(s)"), "no diagnostic on stdout:\n{stdout}");
    assert!(stderr.contains("failed    instance other/ct01 (infra.yml:"), "{stderr}");
    assert!(stderr.contains("1 step(s) failed:\n  instance:other/ct01 (infra.yml:"), "{stderr}");
    assert!(stderr.contains("2 step(s) not attempted (a step they depend on failed):\n  start:other/ct01"), "{stderr}");
    assert!(!stderr.contains("created ") && !stderr.contains(" started, "), "no result on stderr:\n{stderr}");

    let (code, stdout, stderr) = cli(&fake, dir.path(), &["destroy", "--force", "--dry-run", "infra.yml"]);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("would unprotect instance other/ct00 (--force: clearing "), "{stdout}");
    assert!(stdout.contains("  would run: DELETE /1.0/instances/ct00?project=other\n"), "{stdout}");
    assert!(stdout.contains("would remove instance other/ct00\n"), "{stdout}");
    assert!(stdout.contains("absent       instance other/ct01\n"), "{stdout}");
    assert!(stdout.contains("would remove project other\n"), "predicted: empty once its instances go\n{stdout}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.starts_with("5 would be removed, 1 already absent, 0 would be kept, wall time "), "{stdout}");
    assert!(summary.ends_with(" (dry run: nothing was changed)"), "{summary}");
    assert!(!stdout.contains("removed "), "no past tense in a dry run:\n{stdout}");
    assert_eq!(stderr, "", "nothing failed");

    let (code, stdout, stderr) = cli(&fake, dir.path(), &["destroy", "--force", "infra.yml"]);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("removed   instance other/ct00\n") && stdout.contains("removed   project other\n"),
        "{stdout}"
    );
    assert!(stdout.lines().last().unwrap_or_default().starts_with("5 removed, 1 already absent, 0 kept, wall"));
    assert_eq!(stderr, "", "nothing failed");
}

/// With standard error on a terminal (a pseudo-terminal made by util-linux's `script`)
/// and standard output in a file: the live display is drawn on the terminal, and the
/// file holds the results as plain lines, with no escape sequence of the display.
#[test]
fn with_a_terminal_progress_goes_to_standard_error_and_results_to_standard_output() {
    let available = std::process::Command::new("script")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !available {
        eprintln!("SKIPPED: util-linux's `script` is not installed");
        return;
    }
    let fake = Fake::start(Behaviour { op_time: Duration::from_millis(300), ..Behaviour::default() });
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("infra.yml"), fixture(0, 2, "")).expect("write infra.yml");
    let command = format!("'{}' apply infra.yml > results.txt", env!("CARGO_BIN_EXE_anklumec"));
    let output = std::process::Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .current_dir(dir.path())
        .env("INCUS_SOCKET", &fake.socket)
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script runs");
    let terminal = String::from_utf8_lossy(&output.stdout);
    let results = std::fs::read_to_string(dir.path().join("results.txt")).expect("results");
    assert!(output.status.success(), "terminal:\n{terminal}\nresults:\n{results}");
    assert!(terminal.contains(" steps "), "the live display is on the terminal:\n{terminal}");
    assert!(!terminal.contains("created   instance"), "results are not on the terminal:\n{terminal}");
    assert!(results.contains("created   instance other/ct00\n"), "{results}");
    assert!(results.contains("started   instance other/ct01\n"), "{results}");
    assert!(results.lines().last().unwrap_or_default().contains(" unchanged, 2 started, 0 failed, "), "{results}");
    assert!(!results.contains('\u{1b}'), "no escape sequence in the results:\n{results:?}");
}

/// Another process's instances can make a bridge's creation or deletion fail as the
/// runner's own would (no lock of the run covers them): the runner tries it again.
#[test]
fn a_bridge_operation_that_meets_another_process_s_interface_race_is_tried_again() {
    let fake = Fake::start(Behaviour { bridge_race_once: ["net-db".to_string()].into(), ..Behaviour::default() });
    let plan = compile(&four_domains());
    let (report, lines) = apply(&fake, &plan, 8);
    assert!(report.ok(), "{}", lines.join("\n"));
    let (report, lines) = destroy_on(&fake, &plan, anklumec::run::DEFAULT_JOBS);
    assert!(report.ok(), "{lines}");
    let requests = fake.requests();
    let count = |method: &str, path: &str, name: &str| {
        requests.iter().filter(|r| r.method == method && r.path == path && (name.is_empty() || r.name == name)).count()
    };
    assert_eq!(count("POST", "/1.0/networks", "net-db"), 2, "created on the second attempt");
    assert_eq!(count("DELETE", "/1.0/networks/net-db", ""), 2, "deleted on the second attempt");
    assert_eq!(count("POST", "/1.0/networks", "net-da"), 1);
    let world = fake.world.0.lock().expect("fake state");
    assert!(world.networks.is_empty() && world.acls.is_empty());
}
