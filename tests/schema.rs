//! `anklumec schema`: the JSON Schema of infra.yml is valid draft 2020-12, accepts every
//! file the compiler accepts (the corpus, the example), rejects the broken files of
//! `tests/fixtures/schema-invalid/`, and does not drift from the compiler: its keys are
//! the reader's at every place, every key is described, and for every key and a range of
//! values it rejects what the reader rejects and only what the compiler rejects.

use anklumec::compile::{Options, compile_source};
use anklumec::diagnostics::Diagnostics;
use anklumec::incus::config_keys::{self, Applies, Format, Settable};
use anklumec::schema::{self, DEVICE_TYPES, KEYS, Place};
use anklumec::source::FileId;
use anklumec::syntax::ast::{GpuPolicy, InstanceType, TrustLevel};
use anklumec::syntax::read;
use anklumec::syntax::yaml::{self, Limits, Node, NodeKind, ScalarValue};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

// ----- helpers -----

fn the_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(schema::schema)
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| match jsonschema::draft202012::new(the_schema()) {
        Ok(validator) => validator,
        Err(error) => panic!("the schema does not compile: {error}"),
    })
}

/// The YAML tree as the JSON an editor's YAML language server validates: scalars
/// resolved under the YAML 1.2 core schema, quoted scalars strings.
fn to_json(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Null => Value::Null,
        NodeKind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeKind::Map(entries) => {
            Value::Object(entries.iter().map(|entry| (entry.key.value.clone(), to_json(&entry.value))).collect())
        }
        NodeKind::Scalar(scalar) => match scalar.resolve() {
            ScalarValue::Null => Value::Null,
            ScalarValue::Bool(value) => Value::Bool(value),
            ScalarValue::Int(value) => json!(value),
            ScalarValue::Float(value) => {
                serde_json::Number::from_f64(value).map_or_else(|| Value::String(scalar.text.clone()), Value::Number)
            }
            ScalarValue::Str(text) => Value::String(text.to_string()),
        },
    }
}

/// The JSON of a YAML text (which must be valid YAML).
fn yaml_json(text: &str) -> Value {
    let mut diagnostics = Diagnostics::new();
    match yaml::parse(FileId(0), text, &Limits::default(), &mut diagnostics) {
        Some(root) => to_json(&root),
        None => panic!("not valid YAML: {:?}\n{text}", diagnostics.into_sorted()),
    }
}

/// The schema's errors on `instance`, as `instance path: message`.
fn errors(instance: &Value) -> Vec<String> {
    validator().iter_errors(instance).map(|error| format!("{}: {error}", error.instance_path().as_str())).collect()
}

/// Whether the reader (shapes and types only) reports an error.
fn reader_rejects(text: &str) -> bool {
    let mut diagnostics = Diagnostics::new();
    if let Some(root) = yaml::parse(FileId(0), text, &Limits::default(), &mut diagnostics) {
        let _ = read::read_infra(&root, &mut diagnostics);
    }
    diagnostics.into_sorted().iter().any(|d| d.is_error())
}

/// The codes of the compiler's diagnostics.
fn codes(text: &str) -> Vec<&'static str> {
    compile_source("infra.yml", text, Options::default()).diagnostics.iter().map(|d| d.code.id).collect()
}

/// Whether the compiler reports an error or an unknown key (W0001: a warning for the
/// compiler, an error for the schema, on purpose).
fn compiler_objects(text: &str) -> bool {
    let compilation = compile_source("infra.yml", text, Options::default());
    compilation.has_errors() || compilation.diagnostics.iter().any(|d| d.code.id == "W0001")
}

fn compile_rejects(text: &str) -> bool {
    compile_source("infra.yml", text, Options::default()).has_errors()
}

fn yml_files(directory: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The schema object at a JSON pointer.
fn at<'a>(pointer: &str) -> &'a Map<String, Value> {
    match the_schema().pointer(pointer).and_then(Value::as_object) {
        Some(object) => object,
        None => panic!("no object at `{pointer}` in the schema"),
    }
}

fn names_of(object: &Map<String, Value>) -> BTreeSet<&str> {
    object.keys().map(String::as_str).collect()
}

// ----- the schema itself -----

#[test]
fn the_schema_is_valid_draft_2020_12() {
    let schema = the_schema();
    if let Err(error) = jsonschema::draft202012::meta::validate(schema) {
        panic!("not a valid draft 2020-12 schema: {error} at {}", error.instance_path().as_str());
    }
    assert_eq!(schema["$schema"], schema::DIALECT);
    assert_eq!(schema::DIALECT, "https://json-schema.org/draft/2020-12/schema");
    let _ = validator();
}

#[test]
fn the_command_prints_the_schema() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_anklumec")).arg("schema").output().expect("runs");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON on standard output");
    assert_eq!(&printed, the_schema());
    assert!(output.stdout.ends_with(b"}\n"));
    assert!(output.stderr.is_empty());
}

// ----- corpus and broken files -----

#[test]
fn every_accepted_file_validates() {
    let mut files = yml_files(&root().join("tests/fixtures/ok"));
    files.push(root().join("examples/infra.yml"));
    assert!(files.len() > 10, "{files:?}");
    let mut failures = Vec::new();
    for path in &files {
        let text = read(path);
        assert!(!compile_rejects(&text), "{} does not compile", path.display());
        let found = errors(&yaml_json(&text));
        if !found.is_empty() {
            failures.push(format!("{}:\n  {}", path.display(), found.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "the schema rejects files the compiler accepts:\n{}", failures.join("\n"));
}

/// Each broken file says where the schema must object (`# schema: <instance path>`) and
/// what the compiler says (`# compiler: <code>`); both must hold.
#[test]
fn broken_files_are_rejected() {
    let files = yml_files(&root().join("tests/fixtures/schema-invalid"));
    assert!(files.len() >= 6, "{files:?}");
    for path in &files {
        let text = read(path);
        let header = |name: &str| -> String {
            let prefix = format!("# {name}:");
            match text.lines().find_map(|line| line.strip_prefix(prefix.as_str())) {
                Some(value) => value.trim().to_string(),
                None => panic!("{}: no `{prefix}` line", path.display()),
            }
        };
        let pointer = header("schema");
        let code = header("compiler").split_whitespace().next().unwrap_or_default().to_string();
        let found = errors(&yaml_json(&text));
        assert!(
            found.iter().any(|error| error.starts_with(&format!("{pointer}: "))),
            "{}: expected a schema error at `{pointer}`, found {found:#?}",
            path.display()
        );
        let codes = codes(&text);
        assert!(
            codes.contains(&code.as_str()),
            "{}: expected {code} from the compiler, found {codes:?}",
            path.display()
        );
    }
}

// ----- no drift from the reader -----

#[test]
fn every_place_has_exactly_the_readers_keys_each_described() {
    for place in Place::ALL {
        let object = at(&place.pointer());
        let properties = object.get("properties").and_then(Value::as_object).expect("properties");
        let expected: BTreeSet<&str> = place.keys().iter().copied().collect();
        assert_eq!(names_of(properties), expected, "{place:?}");
        assert_eq!(object["additionalProperties"], json!(false), "{place:?} is closed");
        for name in place.keys() {
            let rows = KEYS.iter().filter(|key| key.place == *place && key.name == *name).count();
            assert_eq!(rows, 1, "{place:?}.{name}: one row in schema::KEYS");
            let property = &properties[*name];
            for field in ["description", "markdownDescription"] {
                let text = property[field].as_str().unwrap_or_default();
                assert!(text.len() > 10 && text.ends_with('.'), "{place:?}.{name}: {field} {text:?}");
            }
            if place.not_acted_on().contains(name) {
                assert!(property["description"].as_str().is_some_and(|d| d.contains("N0001")), "{place:?}.{name}");
            }
        }
    }
    for key in KEYS {
        assert!(
            key.place.keys().contains(&key.name),
            "schema::KEYS has `{}` at {:?}, the reader does not",
            key.name,
            key.place
        );
    }
    assert_eq!(
        the_schema()["required"],
        json!(read::REQUIRED_TOP_LEVEL_KEYS),
        "the required top-level keys are the reader's"
    );
    let global = at("/$defs/global");
    let prefix = format!("^{}", read::GLOBAL_NOT_ACTED_ON_PREFIX);
    assert!(global["patternProperties"].get(&prefix).is_some(), "any `{prefix}` key is accepted, as the reader does");
}

#[test]
fn enumerations_are_the_readers_keywords() {
    let enumeration = |pointer: &str| -> Vec<String> {
        match the_schema().pointer(pointer).and_then(|v| v.get("enum")).and_then(Value::as_array) {
            Some(values) => values.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            None => panic!("no enum at {pointer}"),
        }
    };
    let cases: [(&str, &[&str]); 9] = [
        ("/$defs/machine/properties/type", InstanceType::KEYWORDS),
        ("/$defs/domain/properties/trust_level", TrustLevel::KEYWORDS),
        ("/$defs/global/properties/gpu_policy", GpuPolicy::KEYWORDS),
        ("/$defs/global/properties/firewall_mode", read::FIREWALL_MODE_KEYWORDS),
        ("/$defs/global/properties/ai_access_policy", read::AI_ACCESS_POLICY_KEYWORDS),
        ("/$defs/networkPolicy/properties/protocol", read::PROTOCOL_KEYWORDS),
        ("/$defs/resourcePolicy/properties/mode", read::RESOURCE_MODE_KEYWORDS),
        ("/$defs/resourcePolicy/properties/cpu_mode", read::RESOURCE_CPU_MODE_KEYWORDS),
        ("/$defs/resourcePolicy/properties/memory_enforce", read::RESOURCE_MEMORY_ENFORCE_KEYWORDS),
    ];
    for (pointer, keywords) in cases {
        assert_eq!(enumeration(pointer), keywords, "{pointer}");
    }
    assert_eq!(
        enumeration("/$defs/sharedVolume/properties/consumers/additionalProperties"),
        read::ACCESS_MODE_KEYWORDS
    );
    // The zone offsets in the description of `zone_base` are the addressing's.
    let zone_base = at("/$defs/addressing/properties/zone_base")["description"].as_str().unwrap_or_default();
    for keyword in TrustLevel::KEYWORDS.iter().filter(|k| **k != "admin") {
        let Some(level) = TrustLevel::from_keyword(keyword) else { continue };
        assert!(zone_base.contains(&format!("{keyword} +{}", level.zone_offset())), "{zone_base}");
    }
}

#[test]
fn config_maps_hold_incus_options_with_their_descriptions() {
    let machine = at("/$defs/machineConfig");
    let profile = at("/$defs/profileConfig");
    for (config, owner) in [(machine, "machine"), (profile, "profile")] {
        let properties = config["properties"].as_object().expect("properties");
        let patterns = config["patternProperties"].as_object().expect("patternProperties");
        for info in config_keys::instance_keys() {
            let settable = match info.settable {
                Settable::Anywhere => true,
                Settable::InstanceOnly => owner == "machine",
                Settable::IncusState => false,
            };
            let found = if info.is_pattern {
                patterns.values().find(|p| {
                    p["markdownDescription"].as_str().is_some_and(|d| d.contains(&format!("`{}`", info.name)))
                })
            } else {
                properties.get(&info.name)
            };
            assert_eq!(found.is_some(), settable, "{owner} config: `{}`", info.name);
            if let Some(found) = found {
                assert!(found["description"].as_str().is_some_and(|d| !d.is_empty()), "{}", info.name);
                assert!(
                    found["markdownDescription"].as_str().is_some_and(|d| d.contains("Incus 6.0.4")),
                    "{}",
                    info.name
                );
            }
        }
        assert_eq!(config["additionalProperties"], json!(false));
    }
    let memory = &machine["properties"]["limits.memory"];
    assert_eq!(memory["description"], "Usage limit for the host's memory");
    assert!(memory["markdownDescription"].as_str().is_some_and(|d| d.contains("Live update: yes")));
}

/// A document with `value` (YAML text) at `key` of `place`, in a file that compiles
/// without errors otherwise.
fn document(place: Place, key: &str, value: &str) -> String {
    let mut tree = Tree::base();
    let path: &[&str] = match place {
        Place::TopLevel => &[],
        Place::Global => &["global"],
        Place::Addressing => &["global", "addressing"],
        Place::ResourcePolicy => &["global", "resource_policy"],
        Place::HostReserve => &["global", "resource_policy", "host_reserve"],
        Place::Domain => &["domains", "work"],
        Place::Profile => &["domains", "work", "profiles", "p"],
        Place::Machine => &["domains", "work", "machines", "web"],
        Place::StorageVolume => &["domains", "work", "machines", "web", "storage_volumes", "data"],
        Place::PersistentData => &["domains", "work", "machines", "web", "persistent_data", "models"],
        Place::NetworkPolicy => &["network_policies", "0"],
        Place::SharedVolume => &["shared_volumes", "docs"],
    };
    tree.set(path, key, value);
    tree.render()
}

/// A YAML document in flow style, with raw values.
enum Tree {
    Raw(String),
    Map(Vec<(String, Tree)>),
    Seq(Vec<Tree>),
}

impl Tree {
    fn base() -> Tree {
        let raw = |text: &str| Tree::Raw(text.to_string());
        let map =
            |entries: Vec<(&str, Tree)>| Tree::Map(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        map(vec![
            ("project_name", raw("demo")),
            (
                "global",
                map(vec![
                    ("default_os_image", raw("\"images:debian/13\"")),
                    ("addressing", map(vec![("base_octet", raw("10")), ("zone_base", raw("100"))])),
                    ("resource_policy", map(vec![("host_reserve", map(vec![("cpu", raw("\"1\""))]))])),
                ]),
            ),
            (
                "domains",
                map(vec![(
                    "work",
                    map(vec![
                        ("trust_level", raw("trusted")),
                        ("profiles", map(vec![("p", map(vec![]))])),
                        (
                            "machines",
                            map(vec![(
                                "web",
                                map(vec![
                                    ("storage_volumes", map(vec![("data", map(vec![("size", raw("1GiB"))]))])),
                                    ("persistent_data", map(vec![("models", map(vec![("path", raw("/m"))]))])),
                                ]),
                            )]),
                        ),
                    ]),
                )]),
            ),
            (
                "network_policies",
                Tree::Seq(vec![map(vec![("from", raw("work")), ("to", raw("web")), ("ports", raw("all"))])]),
            ),
            (
                "shared_volumes",
                map(vec![(
                    "docs",
                    map(vec![
                        ("source", raw("/srv/docs")),
                        ("path", raw("/docs")),
                        ("consumers", map(vec![("work", raw("ro"))])),
                    ]),
                )]),
            ),
        ])
    }

    fn set(&mut self, path: &[&str], key: &str, value: &str) {
        match (self, path.split_first()) {
            (Tree::Map(entries), None) => match entries.iter_mut().find(|(k, _)| k == key) {
                Some((_, slot)) => *slot = Tree::Raw(value.to_string()),
                None => entries.push((key.to_string(), Tree::Raw(value.to_string()))),
            },
            (Tree::Map(entries), Some((first, rest))) => match entries.iter_mut().find(|(k, _)| k == first) {
                Some((_, child)) => child.set(rest, key, value),
                None => panic!("no `{first}` in the base document"),
            },
            (Tree::Seq(items), Some((first, rest))) => {
                let index: usize = first.parse().expect("an index");
                items[index].set(rest, key, value);
            }
            _ => panic!("cannot set `{key}` at {path:?}"),
        }
    }

    fn render(&self) -> String {
        match self {
            Tree::Raw(text) => text.clone(),
            Tree::Map(entries) => {
                let parts: Vec<String> = entries.iter().map(|(k, v)| format!("{k}: {}", v.render())).collect();
                format!("{{{}}}", parts.join(", "))
            }
            Tree::Seq(items) => format!("[{}]", items.iter().map(Tree::render).collect::<Vec<_>>().join(", ")),
        }
    }
}

/// Values of every shape, for every key.
const SAMPLES: &[&str] = &[
    "~",
    "\"\"",
    "\"text\"",
    "word",
    "0",
    "1",
    "-1",
    "10",
    "100",
    "101",
    "3600",
    "3601",
    "100000",
    "100001",
    "70000",
    "1.5",
    "0x10",
    "true",
    "false",
    "\"true\"",
    "\"12\"",
    "yes",
    "[]",
    "[1]",
    "[80, 443]",
    "[0]",
    "[70000]",
    "[\"80\"]",
    "[a, b]",
    "[~]",
    "[true]",
    "[{a: b}]",
    "[[1]]",
    "{}",
    "{a: b}",
    "{a: ~}",
    "{a: [1]}",
    "{x: {}}",
    "{x: ~}",
    "{x: []}",
    "{\"Bad_Name\": {}}",
    "{\"a/b\": {}}",
    "{\".x\": {}}",
    "{work: ro}",
    "{work: rx}",
    "{web: rw}",
    "{cpu: \"1\", memory: 4GiB}",
    "{mode: equal, overcommit: true}",
    "{base_octet: 10}",
    "{from: work, to: web, ports: all}",
    "{web: {}}",
    "{limits.cpu: \"2\"}",
    "{security.nesting: true}",
    "{security.secureboot: \"false\"}",
    "{limits.memroy: 1GiB}",
    "{user.note: 12}",
    "{\"user.a b\": x}",
    "{limits.cpu.priority: 11}",
    "{limits.cpu.priority: 5}",
    "{boot.autostart: maybe}",
    "{boot.autostart: \"on\"}",
    "{image.os: debian}",
    "{volatile.uuid: x}",
    "{limits.kernel.nofile: \"1024\"}",
    "{d: {type: disk, path: /x, source: /y}}",
    "{d: {type: disk, bogus: \"1\", path: /x, source: /y}}",
    "{d: {type: disk, readonly: maybe, path: /x, source: /y}}",
    "{d: {type: disk, readonly: true, path: /x, source: /y}}",
    "{d: {path: /x}}",
    "{d: {type: bogus}}",
    "{d: {type: nic, nictype: bridged, parent: br0}}",
    "{d: {type: none}}",
    "{d: ~}",
];

/// For every key of every place and every sample value: what the reader rejects, the
/// schema rejects; what the schema rejects, the compiler rejects, or warns of as an
/// unknown key. (The schema is looser than the compiler where a value's meaning is
/// checked: addresses, references, cron.)
#[test]
fn the_schema_agrees_with_the_reader_and_the_compiler() {
    let base = document(Place::TopLevel, "project_name", "demo");
    assert!(!compile_rejects(&base), "the base document compiles: {:?}\n{base}", codes(&base));
    assert!(errors(&yaml_json(&base)).is_empty(), "{:?}", errors(&yaml_json(&base)));
    let keywords = [
        InstanceType::KEYWORDS,
        TrustLevel::KEYWORDS,
        GpuPolicy::KEYWORDS,
        read::PROTOCOL_KEYWORDS,
        &[read::PORTS_ALL_KEYWORD],
        read::ACCESS_MODE_KEYWORDS,
        read::FIREWALL_MODE_KEYWORDS,
        read::AI_ACCESS_POLICY_KEYWORDS,
        read::RESOURCE_MODE_KEYWORDS,
        read::RESOURCE_CPU_MODE_KEYWORDS,
        read::RESOURCE_MEMORY_ENFORCE_KEYWORDS,
    ];
    let samples: Vec<&str> = SAMPLES.iter().copied().chain(keywords.into_iter().flatten().copied()).collect();
    let mut disagreements = Vec::new();
    let mut checked = 0;
    for place in Place::ALL {
        for key in place.keys() {
            for sample in &samples {
                let text = document(*place, key, sample);
                let rejected = !validator().is_valid(&yaml_json(&text));
                checked += 1;
                if rejected && !compiler_objects(&text) {
                    disagreements.push(format!("{place:?}.{key}: {sample}: the schema rejects, the compiler accepts"));
                } else if !rejected && reader_rejects(&text) {
                    disagreements.push(format!("{place:?}.{key}: {sample}: the reader rejects, the schema accepts"));
                }
            }
        }
    }
    assert!(checked > 5000, "{checked}");
    assert!(disagreements.is_empty(), "{} disagreements:\n{}", disagreements.len(), disagreements.join("\n"));
}

/// Unknown keys are warnings for the compiler, errors for the schema (so that editors
/// flag typos): the one place they part, on purpose.
#[test]
fn unknown_keys_are_warnings_for_the_compiler_and_errors_for_the_schema() {
    for place in Place::ALL {
        let text = document(*place, "no_such_key", "1");
        assert!(!validator().is_valid(&yaml_json(&text)), "{place:?}");
        let codes = codes(&text);
        assert!(codes.contains(&"W0001") && !compile_rejects(&text), "{place:?}: {codes:?}");
    }
    // Except `ai_*` in `global`, which the reader accepts whatever follows.
    let text = document(Place::Global, "ai_future_setting", "[1, {a: b}]");
    assert!(validator().is_valid(&yaml_json(&text)));
    assert!(!codes(&text).contains(&"W0001"));
}

// ----- the checker's rules the schema repeats -----

/// The schema's answer and the compiler's agree: rejected exactly when `code` is reported.
fn agree(text: &str, code: &str) -> Result<(), String> {
    let rejected = !validator().is_valid(&yaml_json(text));
    let reported = codes(text).contains(&code);
    if rejected == reported {
        Ok(())
    } else {
        Err(format!("schema rejects: {rejected}, compiler reports {code}: {reported}\n  {text}"))
    }
}

fn all_agree(cases: impl IntoIterator<Item = (String, &'static str)>) {
    let failures: Vec<String> = cases.into_iter().filter_map(|(text, code)| agree(&text, code).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn name_patterns_are_the_checkers() {
    let long = "a".repeat(63);
    let too_long = "a".repeat(64);
    let names = [
        "web",
        "1web",
        "a",
        "work-dev",
        "s01-client",
        &long,
        &too_long,
        "Web",
        "web_1",
        "-web",
        "web-",
        "123",
        "wéb",
        "web.1",
        "a b",
        "",
    ];
    let mut cases = Vec::new();
    for name in names {
        let quoted = format!("\"{name}\"");
        cases.push((document(Place::Domain, "machines", &format!("{{{quoted}: {{}}}}")), "E0007"));
        cases.push((document(Place::Domain, "profiles", &format!("{{{quoted}: {{}}}}")), "E0007"));
        cases.push((document(Place::TopLevel, "domains", &format!("{{{quoted}: {{}}}}")), "E0007"));
    }
    let long = "d".repeat(63);
    let too_long = "d".repeat(64);
    let devices = ["eth0", "gpu", "my_dev.1", "a/b:c", "-x", "Ab", ".hidden", "my dev", "dé", &long, &too_long, ""];
    for name in devices {
        let quoted = format!("\"{name}\"");
        cases.push((document(Place::Profile, "devices", &format!("{{{quoted}: {{type: none}}}}")), "E0007"));
        cases.push((document(Place::Machine, "storage_volumes", &format!("{{{quoted}: {{}}}}")), "E0007"));
        cases.push((document(Place::Machine, "persistent_data", &format!("{{{quoted}: {{path: /p}}}}")), "E0007"));
    }
    all_agree(cases);
}

#[test]
fn ranges_are_the_checkers() {
    let mut cases = Vec::new();
    for value in [-1, 0, 100, 101] {
        cases.push((document(Place::Machine, "boot_priority", &value.to_string()), "E0020"));
    }
    for (key, values) in [
        ("incus_instances_lxc_retries", [0, 1, 100_000, 100_001]),
        ("incus_instances_vm_agent_retries", [0, 1, 100_000, 100_001]),
        ("incus_instances_vm_delay", [-1, 0, 3600, 3601]),
        ("incus_instances_lxc_delay", [-1, 0, 3600, 3601]),
    ] {
        for value in values {
            cases.push((document(Place::Global, key, &value.to_string()), "E0020"));
        }
    }
    for value in [-1, 0, 1, 2] {
        cases.push((document(Place::Machine, "weight", &value.to_string()), "E0020"));
    }
    for port in [-1, 0, 1, 65535, 65536] {
        cases.push((document(Place::NetworkPolicy, "ports", &format!("[22, {port}]")), "E0025"));
    }
    all_agree(cases);
    assert_eq!(schema::PORT, 1..=65535);
}

#[test]
fn device_types_are_the_checkers() {
    let mut candidates: Vec<&str> = DEVICE_TYPES.iter().map(|(name, _)| *name).collect();
    candidates.extend(["disks", "NIC", "container", "unix", "bogus", ""]);
    let cases = candidates.into_iter().map(|device_type| {
        (document(Place::Profile, "devices", &format!("{{d: {{type: \"{device_type}\"}}}}")), "E0035")
    });
    // The schema's list is the checker's (crate::rules): every listed type compiles,
    // near misses do not.
    all_agree(cases);
}

#[test]
fn device_options_are_incus_documented_ones() {
    let mut failures = Vec::new();
    for (device_type, _) in DEVICE_TYPES {
        let Some(options) = config_keys::device_options(device_type) else { continue };
        let names = options.iter().map(|option| option.name.replace('*', "x"));
        for (name, value) in names.map(|name| (name, "\"\"")).chain([("no_such_option".to_string(), "\"1\"")]) {
            let text =
                document(Place::Profile, "devices", &format!("{{d: {{type: {device_type}, \"{name}\": {value}}}}}"));
            let rejected = !validator().is_valid(&yaml_json(&text));
            // The checker's E0034 also asks for missing options: compare unknown options only.
            let compilation = compile_source("infra.yml", &text, Options::default());
            let unknown = compilation.diagnostics.iter().any(|d| d.message.starts_with("unknown option"));
            if rejected != unknown {
                failures.push(format!("schema rejects: {rejected}, checker: {:?}\n  {text}", codes(&text)));
            }
        }
    }
    let bools = ["\"\"", "\"true\"", "\"Off\"", "\"1\"", "true", "0", "\"maybe\"", "2", "\"2\""];
    for value in bools {
        let text = document(
            Place::Profile,
            "devices",
            &format!("{{d: {{type: disk, path: /x, source: /y, readonly: {value}}}}}"),
        );
        if let Err(failure) = agree(&text, "E0034") {
            failures.push(failure);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A machine's own config holds the keys of its type (E0032); profiles hold both.
#[test]
fn machine_config_keys_follow_the_instance_type() {
    let mut cases = Vec::new();
    for info in config_keys::instance_keys() {
        if info.is_pattern || info.settable != Settable::Anywhere || info.applies == Applies::Both {
            continue;
        }
        let config = format!("{{\"{}\": \"\"}}", info.name);
        for machine_type in InstanceType::KEYWORDS {
            let mut tree = Tree::base();
            tree.set(&["domains", "work", "machines", "web"], "type", machine_type);
            tree.set(&["domains", "work", "machines", "web"], "config", &config);
            cases.push((tree.render(), "E0032"));
        }
        cases.push((document(Place::Profile, "config", &config), "E0032"));
    }
    assert!(cases.len() > 30);
    all_agree(cases);
}

/// The value formats the schema states are exactly the checker's (E0033).
#[test]
fn config_value_formats_are_the_checkers() {
    let values = [
        "\"\"",
        "\"true\"",
        "\"False\"",
        "\"YES\"",
        "\"off\"",
        "\"1\"",
        "\"0\"",
        "\"2\"",
        "\"-1\"",
        "\"+5\"",
        "\"10\"",
        "\"11\"",
        "\"007\"",
        "\"-0\"",
        "\"abc\"",
        "\"1.5\"",
        "\" 1\"",
        "true",
        "false",
        "0",
        "1",
        "2",
        "-3",
        "11",
        "1.5",
        "\"stop\"",
        "\"soft\"",
        "\"auto\"",
        "\"4294967295\"",
        "4294967295",
        "4294967296",
    ];
    let mut cases = Vec::new();
    for info in config_keys::instance_keys() {
        let stated =
            matches!(info.format, Format::Bool | Format::Int64 | Format::Uint32 | Format::Priority | Format::OneOf(_));
        if info.is_pattern || info.settable != Settable::Anywhere || !stated {
            continue;
        }
        for value in values {
            cases.push((document(Place::Profile, "config", &format!("{{\"{}\": {value}}}", info.name)), "E0033"));
        }
    }
    assert!(cases.len() > 1000, "{}", cases.len());
    all_agree(cases);
}
