//! One step at a time: compare what the plan declares with what Incus held when the
//! run began, and send only the difference.
//!
//! The end state is deploy.sh's, key for key: the same projects, bridges, volumes,
//! profiles and instances, so that deploy.sh and the runner can alternate. What differs
//! is what `anklumec diff` calls drift ([`diff::instance_drift`],
//! [`diff::profile_drift`]): a profile or instance that drifts gets its whole declared
//! state in one request (keeping the keys Incus sets itself), as deploy.sh does, and
//! one that does not gets no request.

use super::client::{Client, Error, encode};
use super::diff;
use super::serial::{self, Serial};
use super::state::{AclState, Config as LiveConfig, InstanceState, RawDevices, State, parse_instance, parse_profile};
use crate::plan::{
    AclRule, AclSpec, Config, Devices, ImageRef, InstanceSpec, InstanceTarget, NetworkSpec, ProfileSpec, ProjectSpec,
    Step, VolumeSpec, WaitSpec,
};
use crate::syntax::ast::InstanceType;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The one remote the runner resolves itself (the incus client's default `images:`).
pub const IMAGES_SERVER: &str = "https://images.linuxcontainers.org";

const CREATE_DEADLINE: Duration = Duration::from_secs(600);
const UPDATE_DEADLINE: Duration = Duration::from_secs(300);
const PULL_DEADLINE: Duration = Duration::from_secs(1800);
const PROBE_DEADLINE: Duration = Duration::from_secs(30);

/// What a step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// What changed (deploy.sh's words: keys, `-key`, `device X`, `+device X`, ...).
    Changed(Vec<String>),
    Unchanged,
    Started,
    /// The instance reached RUNNING this many seconds into its wait.
    Running(u64),
    /// The VM's agent answered this many seconds into its wait.
    AgentReady(u64),
    /// Nothing to do and nothing to report (a start of a running instance, the wait
    /// of an instance this run did not start, an image no missing instance needs).
    Skipped,
}

/// Why a step failed: the message and what to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepError {
    pub message: String,
    pub hints: Vec<String>,
}

impl StepError {
    pub fn new(message: impl Into<String>) -> StepError {
        StepError { message: message.into(), hints: Vec::new() }
    }
}

impl From<Error> for StepError {
    fn from(error: Error) -> StepError {
        StepError::new(error.to_string())
    }
}

/// The image work before instance creation: make `image` available once, for the
/// instances of `missing` (with their types) that do not exist yet.
#[derive(Clone, Debug)]
pub struct ImageWork {
    pub image: String,
    /// Where infra.yml chooses the image (`file:line:column`).
    pub origin: String,
    pub missing: Vec<(String, InstanceType)>,
}

/// A dry run's announcement of a request it did not send.
pub type Would<'a> = &'a (dyn Fn(String) + Sync);
/// A running step's progress note (wait attempts).
pub type Note<'a> = &'a dyn Fn(String);

/// Shared by every step of one run.
pub struct Ctx<'a> {
    pub client: &'a Client,
    pub state: &'a State,
    pub dry_run: bool,
    pub interrupt: &'a AtomicBool,
    pub would: Would<'a>,
    /// `project/name` → the state action that brings it up (`start` or `unfreeze`), for
    /// the instances this run created or found not running.
    to_start: Mutex<BTreeMap<String, &'static str>>,
    /// `project/name` of the instances this run started.
    started: Mutex<BTreeSet<String>>,
    /// Project → its VMs whose state shows a process count (an agent reports), read
    /// once a project for the VMs this run found running.
    reporting: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Bridges one at a time, instance starts together (see [`Serial`]).
    pub serial: Serial,
}

impl<'a> Ctx<'a> {
    pub fn new(
        client: &'a Client,
        state: &'a State,
        dry_run: bool,
        interrupt: &'a AtomicBool,
        would: Would<'a>,
    ) -> Ctx<'a> {
        Ctx {
            client,
            state,
            dry_run,
            interrupt,
            would,
            to_start: Mutex::new(BTreeMap::new()),
            started: Mutex::new(BTreeSet::new()),
            reporting: Mutex::new(BTreeMap::new()),
            serial: Serial::default(),
        }
    }

    /// Send a mutating request, or announce it in a dry run.
    fn mutate(&self, method: &str, path: &str, body: Value, deadline: Duration) -> Result<Value, StepError> {
        if self.dry_run {
            (self.would)(format!("{method} {path} {body}"));
            return Ok(Value::Null);
        }
        Ok(self.client.call(method, path, Some(&body), deadline)?)
    }

    fn mark_to_start(&self, key: String, action: &'static str) {
        if let Ok(mut map) = self.to_start.lock() {
            map.insert(key, action);
        }
    }

    fn start_action(&self, key: &str) -> Option<&'static str> {
        self.to_start.lock().ok().and_then(|map| map.get(key).copied())
    }

    fn was_started(&self, key: &str) -> bool {
        self.started.lock().is_ok_and(|set| set.contains(key))
    }

    /// Whether the state of the VM `name` shows a process count, which only its agent
    /// feeds. One request reads the state of every instance of the project, for all
    /// of its VMs (deploy.sh's `incus list type=virtual-machine ... --columns n,N`).
    fn agent_reports(&self, project: &str, name: &str) -> Result<bool, Error> {
        let mut reporting = self.reporting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !reporting.contains_key(project) {
            let instances = self.client.get(&format!("/1.0/instances?recursion=2&project={}", encode(project)))?;
            let names = instances
                .as_array()
                .into_iter()
                .flatten()
                .filter(|instance| instance["type"] == "virtual-machine")
                .filter(|instance| instance["state"]["processes"].as_i64().is_some_and(|processes| processes >= 0))
                .filter_map(|instance| instance["name"].as_str().map(str::to_string))
                .collect();
            reporting.insert(project.to_string(), names);
        }
        Ok(reporting.get(project).is_some_and(|names| names.contains(name)))
    }
}

/// The config a new resource is created with: the declared keys, but for those
/// declared empty (an empty value means "unset", as `incus config set k=""` does).
fn live_config(declared: &Config) -> LiveConfig {
    declared.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn set_or_unset(map: &mut LiveConfig, key: String, value: String) {
    if value.is_empty() {
        map.remove(&key);
    } else {
        map.insert(key, value);
    }
}

/// The declared devices as Incus stores them.
fn raw_devices(devices: &Devices) -> RawDevices {
    devices.iter().map(|(name, device)| (name.clone(), diff::raw_device(device))).collect()
}

fn config_json(config: &LiveConfig) -> Value {
    Value::Object(config.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

fn devices_json(devices: &RawDevices) -> Value {
    Value::Object(devices.iter().map(|(name, device)| (name.clone(), config_json(device))).collect::<Map<_, _>>())
}

/// The declared keys whose value differs (missing counts as empty), and the config
/// with them set: deploy.sh's `get`/`set` loop of projects, bridges and volumes.
fn merge_declared(existing: &LiveConfig, declared: &Config) -> (LiveConfig, Vec<String>) {
    let mut merged = existing.clone();
    let mut differ = Vec::new();
    for (key, value) in declared {
        if existing.get(key).map_or("", String::as_str) != value {
            set_or_unset(&mut merged, key.clone(), value.clone());
            differ.push(key.clone());
        }
    }
    (merged, differ)
}

fn changed_or_unchanged(what: Vec<String>) -> Outcome {
    if what.is_empty() { Outcome::Unchanged } else { Outcome::Changed(what) }
}

pub fn ensure_project(ctx: &Ctx, spec: &ProjectSpec) -> Result<Outcome, StepError> {
    let existing = ctx.state.projects.get(&spec.name).map(|project| (&project.config, project.description.as_str()));
    let resource = ConfigResource {
        item: format!("/1.0/projects/{}", encode(&spec.name)),
        collection: "/1.0/projects".into(),
        identity: json!({"name": spec.name}),
        description: Some(&spec.description),
    };
    resource.ensure(ctx, existing, &spec.config)
}

pub fn ensure_network(ctx: &Ctx, spec: &NetworkSpec) -> Result<Outcome, StepError> {
    let existing = match ctx.state.networks.get(&spec.name) {
        Some(network) if !network.managed => {
            return Err(StepError::new(format!(
                "a host interface named {} exists and is not managed by Incus",
                spec.name
            )));
        }
        Some(network) => Some((&network.config, network.description.as_str())),
        None => None,
    };
    let resource = || ConfigResource {
        item: format!("/1.0/networks/{}", encode(&spec.name)),
        collection: "/1.0/networks".into(),
        identity: json!({"name": spec.name, "type": "bridge"}),
        description: Some(&spec.description),
    };
    let _alone = ctx.serial.bridge();
    serial::retry_interface_race(|| resource().ensure(ctx, existing, &spec.config), |error| error.message.clone())
}

/// The rules of an ACL as the API holds them: `allow`, `enabled`, and only the fields
/// the rule sets (the API leaves empty ones out).
pub fn acl_rules(rules: &[AclRule]) -> Vec<Value> {
    rules
        .iter()
        .map(|rule| {
            let fields = rule.incus_fields().into_iter();
            Value::Object(fields.filter_map(|(key, value)| Some((key.to_string(), Value::from(value?)))).collect())
        })
        .collect()
}

/// A rule as read, without the fields the API sends empty.
pub fn live_rule(rule: &Value) -> Value {
    match rule {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, value)| !matches!(value, Value::String(s) if s.is_empty()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What differs between an ACL as read and as declared (`description`, `config`,
/// `egress`, `ingress`): the runner owns an isolation ACL whole.
pub fn acl_differences(live: &AclState, spec: &AclSpec) -> Vec<String> {
    let mut what = Vec::new();
    if live.description != spec.description {
        what.push("description".to_string());
    }
    if !live.config.is_empty() {
        what.push("config".to_string());
    }
    if !live.egress.is_empty() {
        what.push("egress".to_string());
    }
    if live.ingress.iter().map(live_rule).collect::<Vec<_>>() != acl_rules(&spec.ingress) {
        what.push("ingress".to_string());
    }
    what
}

pub fn ensure_acl(ctx: &Ctx, spec: &AclSpec) -> Result<Outcome, StepError> {
    let body = json!({
        "name": spec.name,
        "description": spec.description,
        "config": {},
        "egress": [],
        "ingress": acl_rules(&spec.ingress),
    });
    match ctx.state.acls.get(&spec.name) {
        None => {
            ctx.mutate("POST", "/1.0/network-acls", body, UPDATE_DEADLINE)?;
            Ok(Outcome::Created)
        }
        Some(live) => {
            let what = acl_differences(live, spec);
            if !what.is_empty() {
                ctx.mutate("PUT", &format!("/1.0/network-acls/{}", encode(&spec.name)), body, UPDATE_DEADLINE)?;
            }
            Ok(changed_or_unchanged(what))
        }
    }
}

pub fn ensure_volume(ctx: &Ctx, spec: &VolumeSpec) -> Result<Outcome, StepError> {
    let key = (spec.project.clone(), spec.pool.clone(), spec.name.clone());
    let existing = ctx.state.volumes.get(&key).map(|volume| (&volume.config, volume.description.as_str()));
    let (project, pool, name) = (encode(&spec.project), encode(&spec.pool), encode(&spec.name));
    let resource = ConfigResource {
        item: format!("/1.0/storage-pools/{pool}/volumes/custom/{name}?project={project}"),
        collection: format!("/1.0/storage-pools/{pool}/volumes/custom?project={project}"),
        identity: json!({"name": spec.name, "type": "custom", "content_type": "filesystem"}),
        // Volumes declare no description: an existing one is kept.
        description: None,
    };
    resource.ensure(ctx, existing, &spec.config)
}

/// A resource converged through its config and description alone (projects, bridges,
/// volumes): PUT the merged config when a declared key differs, else nothing; POST a
/// new one with its identity fields.
struct ConfigResource<'a> {
    /// The resource's URL (PUT).
    item: String,
    /// Where new ones are created (POST).
    collection: String,
    /// The fields that make a new one (`name`, `type`, ...).
    identity: Value,
    /// The declared description; None when the plan declares none.
    description: Option<&'a str>,
}

impl ConfigResource<'_> {
    fn ensure(self, ctx: &Ctx, existing: Option<(&LiveConfig, &str)>, declared: &Config) -> Result<Outcome, StepError> {
        let Some((config, current)) = existing else {
            let mut body = self.identity;
            body["config"] = config_json(&live_config(declared));
            if let Some(description) = self.description {
                body["description"] = description.into();
            }
            ctx.mutate("POST", &self.collection, body, UPDATE_DEADLINE)?;
            return Ok(Outcome::Created);
        };
        let (config, mut what) = merge_declared(config, declared);
        let description = self.description.unwrap_or(current);
        if description != current {
            what.push("description".into());
        }
        if !what.is_empty() {
            let body = json!({"config": config_json(&config), "description": description});
            ctx.mutate("PUT", &self.item, body, UPDATE_DEADLINE)?;
        }
        Ok(changed_or_unchanged(what))
    }
}

pub fn ensure_profile(ctx: &Ctx, spec: &ProfileSpec) -> Result<Outcome, StepError> {
    let (project, name) = (encode(&spec.project), encode(&spec.name));
    let path = format!("/1.0/profiles/{name}?project={project}");
    let existing = if ctx.state.has_project(&spec.project) {
        ctx.state.profiles.get(&(spec.project.clone(), spec.name.clone())).cloned()
    } else if ctx.dry_run {
        // The project would be created with an empty `default` profile.
        (spec.name == "default").then(Default::default)
    } else {
        // Created by this run: its `default` profile was not there to read.
        match ctx.client.get(&path) {
            Ok(profile) => Some(parse_profile(&profile)),
            Err(error) if error.is_not_found() => None,
            Err(error) => return Err(error.into()),
        }
    };
    let body = json!({
        "config": config_json(&live_config(&spec.config)),
        "description": spec.description,
        "devices": devices_json(&raw_devices(&spec.devices)),
    });
    let Some(existing) = existing else {
        let mut body = body;
        body["name"] = spec.name.clone().into();
        ctx.mutate("POST", &format!("/1.0/profiles?project={project}"), body, UPDATE_DEADLINE)?;
        return Ok(Outcome::Created);
    };
    let what = diff::changes(&diff::profile_drift(spec, &existing));
    if what.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    ctx.mutate("PUT", &path, body, UPDATE_DEADLINE)?;
    Ok(Outcome::Changed(what))
}

/// An instance type as the Incus API names it.
pub(crate) fn api_type(instance_type: InstanceType) -> &'static str {
    match instance_type {
        InstanceType::Container => "container",
        InstanceType::VirtualMachine => "virtual-machine",
    }
}

/// The `source` of an instance created from `image`, or why the runner cannot.
pub fn image_source(image: &str) -> Result<Value, StepError> {
    let reference = ImageRef::parse(image);
    if reference.is_local() {
        return Ok(json!({"type": "image", "alias": reference.name}));
    }
    match reference.remote.as_deref() {
        Some("images") => Ok(json!({
            "type": "image",
            "alias": reference.name,
            "server": IMAGES_SERVER,
            "protocol": "simplestreams",
            "mode": "pull",
        })),
        _ => Err(StepError {
            message: format!("image {image}: the runner only knows the remote `images:` ({IMAGES_SERVER})"),
            hints: vec![
                "copy the image here under a local alias and use that alias as os_image, or deploy with deploy.sh"
                    .into(),
            ],
        }),
    }
}

pub fn ensure_instance(ctx: &Ctx, spec: &InstanceSpec) -> Result<Outcome, StepError> {
    let (project, name) = (encode(&spec.project), encode(&spec.name));
    let key = format!("{}/{}", spec.project, spec.name);
    let Some(existing) = ctx.state.instance(&spec.project, &spec.name) else {
        let body = json!({
            "name": spec.name,
            "type": api_type(spec.instance_type),
            "source": image_source(&spec.image)?,
            "profiles": spec.profiles,
            "config": config_json(&live_config(&spec.config)),
            "devices": devices_json(&raw_devices(&spec.devices)),
            "description": spec.description,
            "start": false,
        });
        ctx.mutate("POST", &format!("/1.0/instances?project={project}"), body, CREATE_DEADLINE)?;
        ctx.mark_to_start(key, "start");
        return Ok(Outcome::Created);
    };
    // The type was checked before the run changed anything (the preflight).
    if !existing.is_running() {
        ctx.mark_to_start(key, if existing.status == "Frozen" { "unfreeze" } else { "start" });
    }
    let what = diff::changes(&diff::instance_drift(spec, existing));
    if what.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    // The whole declared state, with the keys Incus keeps (it refuses to see volatile
    // keys removed and image keys changed).
    let mut config: LiveConfig =
        existing.config.iter().filter(|(key, _)| diff::incus_kept(key)).map(|(k, v)| (k.clone(), v.clone())).collect();
    config.extend(live_config(&spec.config));
    let body = json!({
        "architecture": existing.architecture,
        "config": config_json(&config),
        "devices": devices_json(&raw_devices(&spec.devices)),
        "ephemeral": existing.ephemeral,
        "profiles": spec.profiles,
        "stateful": existing.stateful,
        "description": spec.description,
    });
    ctx.mutate("PUT", &format!("/1.0/instances/{name}?project={project}"), body, UPDATE_DEADLINE)?;
    Ok(Outcome::Changed(what))
}

pub fn start_instance(ctx: &Ctx, target: &InstanceTarget) -> Result<Outcome, StepError> {
    let key = format!("{}/{}", target.project, target.name);
    let Some(action) = ctx.start_action(&key) else { return Ok(Outcome::Skipped) };
    let path = format!("/1.0/instances/{}/state?project={}", encode(&target.name), encode(&target.project));
    let body = json!({"action": action, "timeout": -1, "force": false, "stateful": false});
    // Its veth pairs appear and move into the instance: not while a bridge changes.
    let beside = ctx.serial.instance();
    ctx.mutate("PUT", &path, body, UPDATE_DEADLINE)?;
    drop(beside);
    if let Ok(mut started) = ctx.started.lock() {
        started.insert(key);
    }
    Ok(Outcome::Started)
}

/// Sleep `delay`, waking early on an interrupt; false when interrupted.
fn pause(ctx: &Ctx, delay: Duration) -> bool {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if ctx.interrupt.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(100)));
    }
    !ctx.interrupt.load(Ordering::SeqCst)
}

fn interrupted(what: &str) -> StepError {
    StepError::new(format!("interrupted while waiting for {what}"))
}

fn state_path(spec: &WaitSpec) -> String {
    format!("/1.0/instances/{}/state?project={}", encode(&spec.name), encode(&spec.project))
}

/// Poll the instance's state until it is RUNNING: `retries` polls after the first,
/// `delay` seconds apart (deploy.sh's loop, without its `incus` process per poll).
pub fn wait_running(ctx: &Ctx, spec: &WaitSpec, note: Note) -> Result<Outcome, StepError> {
    let key = format!("{}/{}", spec.project, spec.name);
    if ctx.dry_run || !ctx.was_started(&key) {
        return Ok(Outcome::Skipped);
    }
    let delay = Duration::from_secs(u64::from(spec.wait.delay));
    let mut last = String::from("unknown");
    for attempt in 0..=spec.wait.retries {
        match ctx.client.get(&state_path(spec)) {
            Ok(state) => {
                last = state["status"].as_str().unwrap_or("unknown").to_string();
                if matches!(last.as_str(), "Running" | "Ready") {
                    return Ok(Outcome::Running(u64::from(attempt) * u64::from(spec.wait.delay)));
                }
            }
            Err(error) => last = format!("unknown: {}", error.message()),
        }
        if attempt == spec.wait.retries {
            break;
        }
        note(format!("{last}, poll {}/{}", attempt + 1, spec.wait.retries));
        if !pause(ctx, delay) {
            return Err(interrupted(&format!("{key} to run")));
        }
    }
    let mut hints = vec![
        format!("incus console {} --project {}", spec.name, spec.project),
        format!("incus info {} --project {} --show-log", spec.name, spec.project),
    ];
    if spec.instance_type == InstanceType::VirtualMachine {
        hints.extend(memory_hints(spec));
    }
    Err(StepError {
        message: format!(
            "{key} did not reach RUNNING after {} x {} s (last status: {last})",
            spec.wait.retries, spec.wait.delay
        ),
        hints,
    })
}

/// Whether the VM's agent answers: the state reports processes (≥ 0) when the agent
/// feeds it metrics; with `security.agent.metrics=false` it stays -1, so an `exec` of
/// `true` (no websocket, no recorded output) settles it.
fn agent_answers(ctx: &Ctx, spec: &WaitSpec) -> Result<bool, Error> {
    let state = ctx.client.get(&state_path(spec))?;
    if state["processes"].as_i64().is_some_and(|processes| processes >= 0) {
        return Ok(true);
    }
    let path = format!("/1.0/instances/{}/exec?project={}", encode(&spec.name), encode(&spec.project));
    let body = json!({
        "command": ["true"],
        "environment": {},
        "interactive": false,
        "wait-for-websocket": false,
        "record-output": false,
    });
    let op = ctx.client.call("POST", &path, Some(&body), PROBE_DEADLINE)?;
    Ok(op["metadata"]["return"].as_i64() == Some(0))
}

/// A VM short of memory may fail to boot, or boot and lose its agent.
fn memory_hints(spec: &WaitSpec) -> [String; 2] {
    [
        format!(
            "if it runs out of memory, give it more (in infra.yml too, or the next run sets it back) and restart it: incus config set {} limits.memory=2GiB --project {}",
            spec.name, spec.project
        ),
        format!("incus restart {} --project {}", spec.name, spec.project),
    ]
}

/// Wait for the agent of a VM this run started, or found running: an agent that timed
/// out on the last run, or died since, fails this run too (deploy.sh's `ak_wait_all`).
pub fn wait_agent(ctx: &Ctx, spec: &WaitSpec, note: Note) -> Result<Outcome, StepError> {
    let key = format!("{}/{}", spec.project, spec.name);
    let started = ctx.was_started(&key);
    let found_running = ctx.state.instance(&spec.project, &spec.name).is_some_and(InstanceState::is_running);
    if ctx.dry_run || !(started || found_running) {
        return Ok(Outcome::Skipped);
    }
    // A failed read only means probing, as for a VM this run started.
    if !started && ctx.agent_reports(&spec.project, &spec.name).unwrap_or(false) {
        return Ok(Outcome::AgentReady(0));
    }
    let delay = Duration::from_secs(u64::from(spec.wait.delay));
    let mut last = String::new();
    for attempt in 0..=spec.wait.retries {
        match agent_answers(ctx, spec) {
            Ok(true) => return Ok(Outcome::AgentReady(u64::from(attempt) * u64::from(spec.wait.delay))),
            Ok(false) => last = "the probe `true` did not succeed".into(),
            Err(error) => last = error.message(),
        }
        if attempt == spec.wait.retries {
            break;
        }
        note(format!("agent not answering, poll {}/{}", attempt + 1, spec.wait.retries));
        if !pause(ctx, delay) {
            return Err(interrupted(&format!("the agent of {key}")));
        }
    }
    Err(StepError {
        message: format!(
            "the incus-agent of {key} did not answer after {} x {} s (last: {last})",
            spec.wait.retries, spec.wait.delay
        ),
        hints: vec![
            format!("incus exec {} --project {} -- true", spec.name, spec.project),
            format!("incus console {} --project {}   (then: systemctl status incus-agent)", spec.name, spec.project),
            "standard images: VM images ship incus-agent; custom images may need it installed".into(),
        ]
        .into_iter()
        .chain(memory_hints(spec))
        .collect(),
    })
}

/// Make `work.image` available before the instances that need it are created
/// concurrently: a local alias must exist (and be a VM image if VMs need it); a remote
/// image is pulled into the image store once.
pub fn ensure_image(ctx: &Ctx, work: &ImageWork) -> Result<Outcome, StepError> {
    if work.missing.is_empty() {
        return Ok(Outcome::Skipped);
    }
    // A local alias was checked before the run changed anything (check_image).
    if ImageRef::parse(&work.image).is_local() {
        return Ok(Outcome::Skipped);
    }
    let source = image_source(&work.image)?;
    let types: BTreeSet<&str> = work.missing.iter().map(|(_, t)| api_type(*t)).collect();
    let images = ctx.client.get("/1.0/images?recursion=1")?;
    let mut pulled = false;
    for image_type in types {
        let cached = images.as_array().into_iter().flatten().any(|image| {
            image["type"] == image_type
                && image["update_source"]["server"] == source["server"]
                && image["update_source"]["alias"] == source["alias"]
        });
        if cached {
            continue;
        }
        let body = json!({
            "source": {
                "type": "image",
                "mode": "pull",
                "server": source["server"],
                "protocol": source["protocol"],
                "alias": source["alias"],
                "image_type": image_type,
            },
            "auto_update": true,
        });
        ctx.mutate("POST", "/1.0/images", body, PULL_DEADLINE)?;
        pulled = true;
    }
    Ok(if pulled { Outcome::Created } else { Outcome::Unchanged })
}

/// Run one plan step.
pub fn run_step(ctx: &Ctx, step: &Step, note: Note) -> Result<Outcome, StepError> {
    use crate::plan::Action;
    match &step.action {
        Action::EnsureProject(spec) => ensure_project(ctx, spec),
        Action::EnsureAcl(spec) => ensure_acl(ctx, spec),
        Action::EnsureNetwork(spec) => ensure_network(ctx, spec),
        Action::EnsureProfile(spec) => ensure_profile(ctx, spec),
        Action::EnsureVolume(spec) => ensure_volume(ctx, spec),
        Action::EnsureInstance(spec) => ensure_instance(ctx, spec),
        Action::StartInstance(target) => start_instance(ctx, target),
        Action::WaitRunning(spec) => wait_running(ctx, spec, note),
        Action::WaitAgent(spec) => wait_agent(ctx, spec, note),
    }
}

/// Read one instance back (tests and diagnostics).
pub fn read_instance(client: &Client, project: &str, name: &str) -> Result<InstanceState, Error> {
    client.get(&format!("/1.0/instances/{}?project={}", encode(name), encode(project))).map(|v| parse_instance(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn live(pairs: &[(&str, &str)]) -> LiveConfig {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_new_resource_has_its_declared_keys_but_the_empty_ones() {
        let fresh = live_config(&config(&[("limits.cpu", "1"), ("a.b", "")]));
        assert_eq!(fresh, live(&[("limits.cpu", "1")]));
    }
}
