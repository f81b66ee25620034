//! What Incus holds now, read once before any change: the projects and bridges, then
//! per project of the plan (concurrently) its instances, profiles and custom volumes,
//! each with one recursive list.

use super::client::{Client, Error, encode};
use crate::plan::{Action, Plan};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Config as Incus holds it (a live instance carries many keys the plan never sets).
pub type Config = BTreeMap<String, String>;
/// A device as Incus stores it: `type` and options in one string map.
pub type RawDevice = BTreeMap<String, String>;
pub type RawDevices = BTreeMap<String, RawDevice>;

#[derive(Clone, Debug, Default)]
pub struct ProjectState {
    pub description: String,
    pub config: Config,
}

#[derive(Clone, Debug, Default)]
pub struct NetworkState {
    pub managed: bool,
    pub network_type: String,
    pub description: String,
    pub config: Config,
}

#[derive(Clone, Debug, Default)]
pub struct ProfileState {
    pub description: String,
    pub config: Config,
    pub devices: RawDevices,
}

#[derive(Clone, Debug, Default)]
pub struct InstanceState {
    /// `container` or `virtual-machine`.
    pub instance_type: String,
    /// `Running`, `Stopped`, `Frozen`, `Error`, `Ready`...
    pub status: String,
    pub description: String,
    pub profiles: Vec<String>,
    pub config: Config,
    pub devices: RawDevices,
    pub architecture: String,
    pub ephemeral: bool,
    pub stateful: bool,
}

impl InstanceState {
    pub fn is_running(&self) -> bool {
        matches!(self.status.as_str(), "Running" | "Ready")
    }
}

#[derive(Clone, Debug, Default)]
pub struct VolumeState {
    pub description: String,
    pub config: Config,
}

/// A network ACL: what the runner owns of it (the API's `NetworkACLPut`), as the API
/// returns it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AclState {
    pub description: String,
    pub config: Config,
    pub egress: Vec<Value>,
    pub ingress: Vec<Value>,
}

/// Keys: `project`, `(project, name)`, `(project, pool, name)`.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub projects: BTreeMap<String, ProjectState>,
    /// The network ACLs of the `default` project, by name.
    pub acls: BTreeMap<String, AclState>,
    pub networks: BTreeMap<String, NetworkState>,
    pub profiles: BTreeMap<(String, String), ProfileState>,
    pub instances: BTreeMap<(String, String), InstanceState>,
    pub volumes: BTreeMap<(String, String, String), VolumeState>,
}

impl State {
    /// Whether the contents of `project` were read (it existed before the run).
    pub fn has_project(&self, project: &str) -> bool {
        self.projects.contains_key(project)
    }

    pub fn instance(&self, project: &str, name: &str) -> Option<&InstanceState> {
        self.instances.get(&(project.to_string(), name.to_string()))
    }
}

/// A string map from JSON: strings as they are, other scalars as their JSON text
/// (Incus 6.0 stores only strings; later versions accept other scalars).
pub fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (key.clone(), text)
        })
        .collect()
}

pub fn raw_devices(value: &Value) -> RawDevices {
    value.as_object().into_iter().flatten().map(|(name, device)| (name.clone(), string_map(device))).collect()
}

/// The strings of a JSON list (none when it is not one).
fn strings(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_string()
}

pub fn parse_profile(value: &Value) -> ProfileState {
    ProfileState {
        description: text(value, "description"),
        config: string_map(&value["config"]),
        devices: raw_devices(&value["devices"]),
    }
}

pub fn parse_acl(value: &Value) -> AclState {
    let rules = |key: &str| value[key].as_array().cloned().unwrap_or_default();
    AclState {
        description: text(value, "description"),
        config: string_map(&value["config"]),
        egress: rules("egress"),
        ingress: rules("ingress"),
    }
}

pub fn parse_instance(value: &Value) -> InstanceState {
    InstanceState {
        instance_type: text(value, "type"),
        status: text(value, "status"),
        description: text(value, "description"),
        profiles: strings(&value["profiles"]),
        config: string_map(&value["config"]),
        devices: raw_devices(&value["devices"]),
        architecture: text(value, "architecture"),
        ephemeral: value["ephemeral"].as_bool().unwrap_or(false),
        stateful: value["stateful"].as_bool().unwrap_or(false),
    }
}

fn list(client: &Client, path: &str) -> Result<Vec<Value>, Error> {
    match client.get(path)? {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        other => {
            Err(Error::Protocol { request: format!("GET {path}"), message: format!("expected a list, got {other}") })
        }
    }
}

/// What one project holds.
type ProjectContents = (Vec<(String, ProfileState)>, Vec<(String, InstanceState)>, Vec<(String, String, VolumeState)>);

fn read_project(client: &Client, project: &str, pools: &BTreeSet<String>) -> Result<ProjectContents, Error> {
    let p = encode(project);
    let profiles = list(client, &format!("/1.0/profiles?recursion=1&project={p}"))?
        .iter()
        .map(|profile| (text(profile, "name"), parse_profile(profile)))
        .collect();
    let instances = list(client, &format!("/1.0/instances?recursion=1&project={p}"))?
        .iter()
        .map(|instance| (text(instance, "name"), parse_instance(instance)))
        .collect();
    let mut volumes = Vec::new();
    for pool in pools {
        let path = format!("/1.0/storage-pools/{}/volumes/custom?recursion=1&project={p}", encode(pool));
        match list(client, &path) {
            Ok(items) => volumes.extend(items.iter().map(|volume| {
                let state =
                    VolumeState { description: text(volume, "description"), config: string_map(&volume["config"]) };
                (pool.clone(), text(volume, "name"), state)
            })),
            // A missing pool holds no volume; creating one there reports the error.
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error),
        }
    }
    Ok((profiles, instances, volumes))
}

/// Read everything the plan touches: three global lists, then three (plus one per
/// storage pool with volumes) per existing project of the plan, `jobs` projects at a time.
pub fn read(client: &Client, plan: &Plan, jobs: usize) -> Result<State, Error> {
    let mut state = State::default();
    for project in list(client, "/1.0/projects?recursion=1")? {
        state.projects.insert(
            text(&project, "name"),
            ProjectState { description: text(&project, "description"), config: string_map(&project["config"]) },
        );
    }
    if plan.steps.iter().any(|step| matches!(step.action, Action::EnsureAcl(_))) {
        for acl in list(client, "/1.0/network-acls?recursion=1")? {
            state.acls.insert(text(&acl, "name"), parse_acl(&acl));
        }
    }
    if plan.steps.iter().any(|step| matches!(step.action, Action::EnsureNetwork(_))) {
        for network in list(client, "/1.0/networks?recursion=1")? {
            state.networks.insert(
                text(&network, "name"),
                NetworkState {
                    managed: network["managed"].as_bool().unwrap_or(false),
                    network_type: text(&network, "type"),
                    description: text(&network, "description"),
                    config: string_map(&network["config"]),
                },
            );
        }
    }
    // The projects of the plan that exist, with the pools their volumes use.
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for step in &plan.steps {
        let project = match &step.action {
            Action::EnsureProfile(spec) => &spec.project,
            Action::EnsureInstance(spec) => &spec.project,
            Action::EnsureVolume(spec) => {
                wanted.entry(spec.project.clone()).or_default().insert(spec.pool.clone());
                continue;
            }
            _ => continue,
        };
        wanted.entry(project.clone()).or_default();
    }
    let wanted: Vec<(String, BTreeSet<String>)> =
        wanted.into_iter().filter(|(project, _)| state.projects.contains_key(project)).collect();
    for batch in wanted.chunks(jobs.max(1)) {
        let results: Vec<(String, Result<ProjectContents, Error>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|(project, pools)| (project.clone(), scope.spawn(move || read_project(client, project, pools))))
                .collect();
            handles
                .into_iter()
                .map(|(project, handle)| {
                    let result = handle.join().unwrap_or_else(|_| {
                        Err(Error::Protocol { request: format!("read project {project}"), message: "panicked".into() })
                    });
                    (project, result)
                })
                .collect()
        });
        for (project, result) in results {
            let (profiles, instances, volumes) = result?;
            for (name, profile) in profiles {
                state.profiles.insert((project.clone(), name), profile);
            }
            for (name, instance) in instances {
                state.instances.insert((project.clone(), name), instance);
            }
            for (pool, name, volume) in volumes {
                state.volumes.insert((project.clone(), pool, name), volume);
            }
        }
    }
    Ok(state)
}
