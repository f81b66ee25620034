//! `anklumec diff`: what Incus holds now compared with the plan, per resource, without
//! changing anything (only GET requests).
//!
//! Drift is exactly what a converge run (deploy.sh, `anklumec apply`) sets back, so
//! that the two agree: of profiles and instances, everything but the keys Incus sets
//! itself (`volatile.*`, `image.*`) and the `user.anklumec.*` markers of earlier
//! versions: a key or device added, altered or removed by hand, the profile list, the
//! description; of projects, bridges and volumes, the declared keys (Incus fills in
//! the others); an ACL as a whole; an instance's type (which a run refuses to change)
//! and run status. Instances and profiles in a declared project that infra.yml does not
//! declare are listed as not managed: a run leaves them, and they are not drift.

use super::RunError;
use super::apply::api_type;
use super::state::{Config as LiveConfig, InstanceState, ProfileState, RawDevice, RawDevices, State};
use crate::plan::{Action, Config, Devices, InstanceSpec, Plan, ProfileSpec};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The version of the JSON document `diff --format json` prints.
pub const SCHEMA_VERSION: u32 = 2;

/// One difference between the plan and the live state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Drift {
    /// `project`, `acl`, `network`, `profile`, `volume`, `instance`.
    pub resource: &'static str,
    /// The project (None for projects and networks).
    pub project: Option<String>,
    pub name: String,
    /// `missing`, `extra`, `unmanaged`, `type`, `config`, `device`, `profiles`,
    /// `description`, `status`, `rules` (an ACL's `description`, `config`, `egress` or
    /// `ingress`, named by `key`).
    pub kind: &'static str,
    /// The config key, or the device name.
    pub key: Option<String>,
    /// The device option, for a device whose options differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    /// What the plan declares (null: absent).
    pub declared: Value,
    /// What Incus holds (null: absent).
    pub live: Value,
}

impl Drift {
    fn new(resource: &'static str, project: Option<&str>, name: &str, kind: &'static str) -> Drift {
        Drift {
            resource,
            project: project.map(str::to_string),
            name: name.to_string(),
            kind,
            key: None,
            option: None,
            declared: Value::Null,
            live: Value::Null,
        }
    }

    fn key(mut self, key: &str) -> Drift {
        self.key = Some(key.to_string());
        self
    }

    fn values(mut self, declared: Value, live: Value) -> Drift {
        self.declared = declared;
        self.live = live;
        self
    }

    /// Whether a converge run acts on it: everything but what it leaves alone on purpose
    /// (instances and profiles in a declared project that infra.yml does not declare),
    /// which `diff` reports as not managed and which does not make it exit 1.
    pub fn is_managed(&self) -> bool {
        self.kind != "extra"
    }

    /// `instance p/n`, `network n`.
    pub fn target(&self) -> String {
        match &self.project {
            Some(project) => format!("{} {project}/{}", self.resource, self.name),
            None => format!("{} {}", self.resource, self.name),
        }
    }
}

fn text_or_null(value: Option<&String>) -> Value {
    match value {
        Some(text) if !text.is_empty() => Value::String(text.clone()),
        _ => Value::Null,
    }
}

/// The declared keys whose live value differs (absent and empty are the same), then
/// the live keys `also` selects that are not declared.
fn compare_config(
    declared: &Config,
    live: &LiveConfig,
    also: impl Fn(&str) -> bool,
    make: impl Fn() -> Drift,
    out: &mut Vec<Drift>,
) {
    for (key, value) in declared {
        let now = live.get(key).map_or("", String::as_str);
        if now != value {
            out.push(make().key(key).values(text_or_null(Some(value)), text_or_null(live.get(key))));
        }
    }
    for (key, value) in live {
        if !declared.contains_key(key) && !value.is_empty() && also(key) {
            out.push(make().key(key).values(Value::Null, Value::String(value.clone())));
        }
    }
}

fn device_json(device: &RawDevice) -> Value {
    Value::Object(device.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

/// A declared device as Incus stores it: `type` and the options declared non-empty.
pub fn raw_device(device: &crate::plan::Device) -> RawDevice {
    let mut raw: RawDevice =
        device.options.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.clone(), v.clone())).collect();
    raw.insert("type".into(), device.device_type.clone());
    raw
}

/// Declared devices missing or differing (any option, declared or not, whose value is
/// not the declared one; absent and empty are the same), then the live devices that
/// are not declared.
fn compare_devices(declared: &Devices, live: &RawDevices, make: impl Fn() -> Drift, out: &mut Vec<Drift>) {
    for (name, device) in declared {
        let wanted = raw_device(device);
        let Some(existing) = live.get(name) else {
            out.push(make().key(name).values(device_json(&wanted), Value::Null));
            continue;
        };
        let options: BTreeSet<&String> = wanted.keys().chain(existing.keys()).collect();
        for option in options {
            if wanted.get(option).map_or("", String::as_str) != existing.get(option).map_or("", String::as_str) {
                let mut drift =
                    make().key(name).values(text_or_null(wanted.get(option)), text_or_null(existing.get(option)));
                drift.option = Some(option.clone());
                out.push(drift);
            }
        }
    }
    for (name, device) in live {
        if !declared.contains_key(name) {
            out.push(make().key(name).values(Value::Null, device_json(device)));
        }
    }
}

/// Keys Incus sets itself (kept as they are when anklumec sets a resource's config),
/// and the markers of earlier anklumec versions: never drift.
pub fn incus_managed(key: &str) -> bool {
    incus_kept(key) || key.starts_with("user.anklumec.")
}

/// The keys Incus sets on an instance and refuses to see removed (`volatile.*`) or
/// changed (`image.*`).
pub fn incus_kept(key: &str) -> bool {
    key.starts_with("volatile.") || key.starts_with("image.")
}

fn description(
    declared: &str,
    live: &str,
    resource: &'static str,
    project: Option<&str>,
    name: &str,
    out: &mut Vec<Drift>,
) {
    if declared != live {
        out.push(Drift::new(resource, project, name, "description").values(json!(declared), json!(live)));
    }
}

/// How a live profile differs from its declared state. anklumec owns every profile
/// it declares, the domain's `default` included: a key or device added by hand is drift.
pub fn profile_drift(spec: &ProfileSpec, live: &ProfileState) -> Vec<Drift> {
    let (project, name) = (spec.project.as_str(), spec.name.as_str());
    let mut out = Vec::new();
    let make = |kind| move || Drift::new("profile", Some(project), name, kind);
    compare_config(&spec.config, &live.config, |key| !incus_managed(key), make("config"), &mut out);
    compare_devices(&spec.devices, &live.devices, make("device"), &mut out);
    description(&spec.description, &live.description, "profile", Some(project), name, &mut out);
    out
}

fn diff_profile(spec: &ProfileSpec, state: &State, out: &mut Vec<Drift>) {
    match state.profiles.get(&(spec.project.clone(), spec.name.clone())) {
        Some(live) => out.extend(profile_drift(spec, live)),
        None => out.push(Drift::new("profile", Some(&spec.project), &spec.name, "missing")),
    }
}

/// How a live instance differs from its declared state: its type, then what a converge
/// run sets back (every config key but Incus's own, every device, the profiles, the
/// description), then whether it runs.
pub fn instance_drift(spec: &InstanceSpec, live: &InstanceState) -> Vec<Drift> {
    let (project, name) = (spec.project.as_str(), spec.name.as_str());
    let mut out = Vec::new();
    let make = |kind| move || Drift::new("instance", Some(project), name, kind);
    let want = api_type(spec.instance_type);
    if live.instance_type != want {
        out.push(make("type")().values(json!(want), json!(live.instance_type)));
    }
    compare_config(&spec.config, &live.config, |key| !incus_managed(key), make("config"), &mut out);
    compare_devices(&spec.devices, &live.devices, make("device"), &mut out);
    if live.profiles != spec.profiles {
        out.push(make("profiles")().values(json!(spec.profiles), json!(live.profiles)));
    }
    description(&spec.description, &live.description, "instance", Some(project), name, &mut out);
    if !live.is_running() {
        out.push(make("status")().values(json!("Running"), json!(live.status)));
    }
    out
}

fn diff_instance(spec: &InstanceSpec, state: &State, out: &mut Vec<Drift>) {
    match state.instance(&spec.project, &spec.name) {
        Some(live) => out.extend(instance_drift(spec, live)),
        None => out.push(Drift::new("instance", Some(&spec.project), &spec.name, "missing")),
    }
}

/// What a converge run changes to remove `drift` from a profile or an instance, in
/// deploy.sh's words, sorted as deploy.sh sorts them (bytes): `KEY` (set), `-KEY`
/// (unset), `device NAME`, `+device NAME`, `-device NAME`, `profiles`, `description`.
/// A difference it does not set (type, status) has no word.
pub fn changes(drift: &[Drift]) -> Vec<String> {
    let words: BTreeSet<String> = drift
        .iter()
        .filter_map(|entry| {
            let key = entry.key.as_deref().unwrap_or_default();
            match (entry.kind, &entry.declared, &entry.live, &entry.option) {
                ("config", Value::Null, ..) => Some(format!("-{key}")),
                ("config", ..) => Some(key.to_string()),
                ("device", Value::Null, _, None) => Some(format!("-device {key}")),
                ("device", _, Value::Null, None) => Some(format!("+device {key}")),
                ("device", ..) => Some(format!("device {key}")),
                ("profiles" | "description", ..) => Some(entry.kind.to_string()),
                _ => None,
            }
        })
        .collect();
    words.into_iter().collect()
}

/// The differences between `plan` and `state`, in plan order, then the extras.
pub fn compare(plan: &Plan, state: &State) -> Vec<Drift> {
    let mut out = Vec::new();
    let mut projects = BTreeSet::new();
    let mut profiles = BTreeSet::new();
    let mut instances = BTreeSet::new();
    for step in &plan.steps {
        match &step.action {
            Action::EnsureProject(spec) => {
                projects.insert(spec.name.clone());
                let Some(live) = state.projects.get(&spec.name) else {
                    out.push(Drift::new("project", None, &spec.name, "missing"));
                    continue;
                };
                let make = || Drift::new("project", None, &spec.name, "config");
                compare_config(&spec.config, &live.config, |_| false, make, &mut out);
                description(&spec.description, &live.description, "project", None, &spec.name, &mut out);
            }
            Action::EnsureAcl(spec) => {
                let Some(live) = state.acls.get(&spec.name) else {
                    out.push(Drift::new("acl", None, &spec.name, "missing"));
                    continue;
                };
                // Rule by rule: what is declared and not live, then what is live and
                // not declared (a rule added or changed by hand).
                let declared = super::apply::acl_rules(&spec.ingress);
                let live_ingress: Vec<Value> = live.ingress.iter().map(super::apply::live_rule).collect();
                let make = || Drift::new("acl", None, &spec.name, "rule").key("ingress");
                for rule in declared.iter().filter(|rule| !live_ingress.contains(rule)) {
                    out.push(make().values(rule.clone(), Value::Null));
                }
                for rule in live_ingress.iter().filter(|rule| !declared.contains(rule)) {
                    out.push(make().values(Value::Null, rule.clone()));
                }
                if declared.len() == live_ingress.len()
                    && declared.iter().all(|rule| live_ingress.contains(rule))
                    && declared != live_ingress
                {
                    out.push(make().values(json!(declared), json!(live_ingress)));
                }
                for rule in &live.egress {
                    out.push(
                        Drift::new("acl", None, &spec.name, "rule").key("egress").values(Value::Null, rule.clone()),
                    );
                }
                let make = || Drift::new("acl", None, &spec.name, "config");
                compare_config(&Config::new(), &live.config, |_| true, make, &mut out);
                description(&spec.description, &live.description, "acl", None, &spec.name, &mut out);
            }
            Action::EnsureNetwork(spec) => {
                let Some(live) = state.networks.get(&spec.name) else {
                    out.push(Drift::new("network", None, &spec.name, "missing"));
                    continue;
                };
                if !live.managed {
                    out.push(Drift::new("network", None, &spec.name, "unmanaged"));
                    continue;
                }
                let make = || Drift::new("network", None, &spec.name, "config");
                compare_config(&spec.config, &live.config, |_| false, make, &mut out);
                description(&spec.description, &live.description, "network", None, &spec.name, &mut out);
            }
            Action::EnsureProfile(spec) => {
                profiles.insert((spec.project.clone(), spec.name.clone()));
                diff_profile(spec, state, &mut out);
            }
            Action::EnsureVolume(spec) => {
                let key = (spec.project.clone(), spec.pool.clone(), spec.name.clone());
                let name = format!("{}/{}", spec.pool, spec.name);
                let Some(live) = state.volumes.get(&key) else {
                    out.push(Drift::new("volume", Some(&spec.project), &name, "missing"));
                    continue;
                };
                let make = || Drift::new("volume", Some(&spec.project), &name, "config");
                compare_config(&spec.config, &live.config, |_| false, make, &mut out);
            }
            Action::EnsureInstance(spec) => {
                instances.insert((spec.project.clone(), spec.name.clone()));
                diff_instance(spec, state, &mut out);
            }
            _ => {}
        }
    }
    for (project, name) in state.instances.keys() {
        if projects.contains(project) && !instances.contains(&(project.clone(), name.clone())) {
            out.push(Drift::new("instance", Some(project), name, "extra"));
        }
    }
    for (project, name) in state.profiles.keys() {
        // Incus makes every project's `default` profile.
        if projects.contains(project) && name != "default" && !profiles.contains(&(project.clone(), name.clone())) {
            out.push(Drift::new("profile", Some(project), name, "extra"));
        }
    }
    out
}

/// Read the live state of what `plan` declares (GET requests only) and compare.
pub fn diff(plan: &Plan, socket: Option<PathBuf>) -> Result<Vec<Drift>, RunError> {
    let (_, state) = super::connect_and_read(socket, plan, super::DEFAULT_JOBS)?;
    Ok(compare(plan, &state))
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "(absent)".into(),
        Value::String(text) => format!("{text:?}"),
        other => other.to_string(),
    }
}

fn line(entry: &Drift) -> String {
    let what = match (entry.kind, &entry.key, &entry.option) {
        ("missing", ..) => "missing (declared, absent)".to_string(),
        ("extra", ..) => "not managed (present, not declared: deploy.sh and apply leave it)".to_string(),
        ("unmanaged", ..) => "exists but is not managed by Incus".to_string(),
        ("device", Some(key), Some(option)) => {
            format!("device {key} {option}: declared {}, live {}", show(&entry.declared), show(&entry.live))
        }
        (kind, Some(key), None) => {
            format!("{kind} {key}: declared {}, live {}", show(&entry.declared), show(&entry.live))
        }
        (kind, ..) => format!("{kind}: declared {}, live {}", show(&entry.declared), show(&entry.live)),
    };
    format!("{}: {what}\n", entry.target())
}

/// One line per difference, then a count (or `no drift`), then what is there and not
/// managed (not counted: a converge run leaves it alone).
pub fn render_text(drift: &[Drift]) -> String {
    let (managed, unmanaged): (Vec<&Drift>, Vec<&Drift>) = drift.iter().partition(|entry| entry.is_managed());
    let mut text: String = managed.iter().map(|entry| line(entry)).collect();
    if managed.is_empty() {
        text.push_str("no drift\n");
    } else {
        text.push_str(&format!("{} difference(s)\n", managed.len()));
    }
    text.extend(unmanaged.iter().map(|entry| line(entry)));
    text
}

/// `{"schema_version":2,"drift":[...],"not_managed":[...]}`.
pub fn render_json(drift: &[Drift]) -> String {
    let (managed, unmanaged): (Vec<&Drift>, Vec<&Drift>) = drift.iter().partition(|entry| entry.is_managed());
    let document = json!({"schema_version": SCHEMA_VERSION, "drift": managed, "not_managed": unmanaged});
    serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Device;

    #[test]
    fn declared_empty_equals_absent_and_incus_keys_are_ignored() {
        let declared: Config = [("a".to_string(), String::new()), ("b".into(), "1".into())].into();
        let live: LiveConfig = [
            ("b".to_string(), "1".to_string()),
            ("volatile.uuid".into(), "x".into()),
            ("image.os".into(), "d".into()),
            ("limits.cpu".into(), "2".into()),
        ]
        .into();
        let mut out = Vec::new();
        let make = || Drift::new("instance", Some("p"), "n", "config");
        compare_config(&declared, &live, |key| !incus_managed(key), make, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key.as_deref(), Some("limits.cpu"));
        assert_eq!(out[0].live, json!("2"));
    }

    #[test]
    fn device_options_compare_one_by_one() {
        let declared: Devices = [(
            "eth0".to_string(),
            Device { device_type: "nic".into(), options: [("network".to_string(), "n1".to_string())].into() },
        )]
        .into();
        let live: RawDevices =
            [("eth0".to_string(), [("type".to_string(), "nic".to_string()), ("network".into(), "n2".into())].into())]
                .into();
        let mut out = Vec::new();
        compare_devices(&declared, &live, || Drift::new("profile", Some("p"), "x", "device"), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].option.as_deref(), Some("network"));
        assert!(render_text(&out).contains("device eth0 network: declared \"n1\", live \"n2\""));
    }
}
