//! The listings a converged Incus server answers to deploy.sh's reads (`incus query
//! /1.0/instances?recursion=1&all-projects=true` and the others), made from a plan,
//! for the stand-in servers of the tests that need no Incus: every project, ACL,
//! bridge, volume, profile and instance as declared, every instance running (with the
//! volatile and image keys Incus adds), printed as the incus client prints JSON (tab
//! indentation, maps sorted).
#![allow(dead_code)]

use anklumec::plan::{Action, Config, Devices, Plan};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// JSON as the incus client prints it.
pub fn printed(value: &Value) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut serializer).expect("JSON");
    String::from_utf8(out).expect("UTF-8")
}

fn config(config: &Config) -> Value {
    Value::Object(
        config.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect(),
    )
}

fn devices(devices: &Devices) -> Value {
    let mut out = Map::new();
    for (name, device) in devices {
        let mut options = config(&device.options);
        options["type"] = device.device_type.clone().into();
        out.insert(name.clone(), options);
    }
    Value::Object(out)
}

/// The file name under which a stand-in keeps the answer to `incus query PATH`.
pub fn file_name(path: &str) -> String {
    path.chars().map(|c| if matches!(c, '/' | '?' | '&' | '=') { '_' } else { c }).collect()
}

/// `incus query PATH` -> what a converged server prints, for each read deploy.sh makes.
pub fn converged(plan: &Plan) -> BTreeMap<String, String> {
    let mut lists: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    // ACLs keep the members in the order the incus client prints them (deploy.sh
    // compares their text): their documents, one tab deeper, then project and used_by.
    let mut acls: Vec<String> = Vec::new();
    let mut push = |path: String, value: Value| lists.entry(path).or_default().push(value);
    for step in &plan.steps {
        match &step.action {
            Action::EnsureProject(spec) => push(
                "/1.0/projects?recursion=1".into(),
                json!({"config": config(&spec.config), "description": spec.description, "name": spec.name, "used_by": []}),
            ),
            Action::EnsureAcl(spec) => acls.push(anklumec::emit::acl_document(spec)),
            Action::EnsureNetwork(spec) => push(
                "/1.0/networks?recursion=1".into(),
                json!({
                    "config": config(&spec.config), "description": spec.description, "managed": true,
                    "name": spec.name, "status": "Created", "type": "bridge", "used_by": [],
                }),
            ),
            Action::EnsureVolume(spec) => push(
                format!("/1.0/storage-pools/{}/volumes/custom?recursion=1&all-projects=true", spec.pool),
                json!({
                    "config": config(&spec.config), "description": "", "name": spec.name,
                    "project": spec.project, "type": "custom", "used_by": [],
                }),
            ),
            Action::EnsureProfile(spec) => push(
                "/1.0/profiles?recursion=1&all-projects=true".into(),
                json!({
                    "config": config(&spec.config), "description": spec.description,
                    "devices": devices(&spec.devices), "name": spec.name, "project": spec.project, "used_by": [],
                }),
            ),
            Action::EnsureInstance(spec) => {
                let mut live = config(&spec.config);
                live["image.os"] = "busybox".into();
                live["volatile.uuid"] = "00000000-0000-0000-0000-000000000000".into();
                let kind = if spec.instance_type.keyword() == "vm" { "virtual-machine" } else { "container" };
                push(
                    "/1.0/instances?recursion=1&all-projects=true".into(),
                    json!({
                        "architecture": "x86_64", "config": live, "description": spec.description,
                        "devices": devices(&spec.devices), "ephemeral": false, "name": spec.name,
                        "profiles": spec.profiles, "project": spec.project, "stateful": false,
                        "status": "Running", "type": kind,
                    }),
                );
            }
            _ => {}
        }
    }
    let mut out: BTreeMap<String, String> =
        lists.into_iter().map(|(path, items)| (path, printed(&Value::Array(items)))).collect();
    if !acls.is_empty() {
        let items: Vec<String> = acls
            .iter()
            .map(|document| {
                let body = document.strip_suffix("\n}").expect("the document ends the object");
                let object = format!("{body},\n\t\"project\": \"default\",\n\t\"used_by\": []\n}}");
                object.lines().map(|line| format!("\t{line}")).collect::<Vec<_>>().join("\n")
            })
            .collect();
        out.insert("/1.0/network-acls?recursion=1".into(), format!("[\n{}\n]", items.join(",\n")));
    }
    out
}
