//! Hardening (issue #6): properties that would fail if they broke.
//!
//! 1. No panic on any input: property tests over YAML-ish inputs (valid infra.yml
//!    fragments, the schema's vocabulary, anchors and aliases, flow and block styles,
//!    tabs, unicode, random mutations) through the whole pipeline; regression fixtures
//!    found by fuzzing (`fuzz/`) or by these tests, under `tests/fixtures/regressions/`.
//! 2. No shell injection: arbitrary strings in every position that reaches deploy.sh,
//!    run through real bash with a stand-in `incus` that records its argv; control
//!    characters are compile-time errors (E0030).
//! 3. No half-written output: a write that fails leaves no temporary file and never
//!    touches the destination; rendering cannot fail half-way.
//! 4. Bounded resources: alias bombs, depth bombs, huge files and huge lines end with a
//!    diagnostic (or a plan) under a 1 GiB address-space limit, never killed.
//! 5. Determinism: the same bytes whatever the locale, time zone or `RUST_*` variables.
//! 6. Protection honoured: deploy.sh never deletes or replaces an instance; one whose
//!    type changed stops the script in preflight, before any change.

use anklumec::compile::{Compilation, Options, compile_source};
use anklumec::diagnostics::render;
use anklumec::emit::{deploy_script, destroy_script, plan_text};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence, TestRunner};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "common/listing.rs"]
mod listing;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Failing cases are remembered next to the regression fixtures, so a rerun tries them
/// first (proptest's own default would write under `tests/proptest-regressions/`).
fn proptest_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/regressions/proptest-hardening.txt"
        )))),
        ..ProptestConfig::default()
    }
}

// =====================================================================================
// YAML-ish documents
// =====================================================================================

/// A YAML node as the generators build it; `render` turns it into text.
#[derive(Clone, Debug)]
enum Y {
    Scalar(String, Quote),
    /// Entries, and whether the mapping is written in flow style (`{a: b}`).
    Map(Vec<(String, Y)>, bool),
    Seq(Vec<Y>, bool),
    Anchor(String, Box<Y>),
    Alias(String),
    /// Text spliced as is (`<<`, `!!str x`, broken fragments).
    Raw(String),
}

#[derive(Clone, Copy, Debug)]
enum Quote {
    Plain,
    Single,
    Double,
}

/// `text` as a YAML double-quoted scalar: every control character (and the characters
/// YAML or editors treat as line breaks or a byte-order mark) escaped.
fn yaml_double(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}') => {
                out.push_str(&format!("\\u{:04X}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn scalar_text(text: &str, quote: Quote) -> String {
    match quote {
        Quote::Plain => text.to_string(),
        Quote::Single => format!("'{}'", text.replace('\'', "''")),
        Quote::Double => yaml_double(text),
    }
}

fn key_text(key: &str) -> String {
    let simple = !key.is_empty()
        && key.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '<'))
        && !key.starts_with('-');
    if simple { key.to_string() } else { yaml_double(key) }
}

fn flow(y: &Y) -> String {
    match y {
        Y::Scalar(text, quote) => scalar_text(text, *quote),
        Y::Map(entries, _) => {
            let inner: Vec<String> = entries.iter().map(|(k, v)| format!("{}: {}", key_text(k), flow(v))).collect();
            format!("{{{}}}", inner.join(", "))
        }
        Y::Seq(items, _) => format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Y::Anchor(name, inner) => format!("&{name} {}", flow(inner)),
        Y::Alias(name) => format!("*{name}"),
        Y::Raw(text) => text.clone(),
    }
}

/// The value after `key:` or `-`, at `indent` for block children.
fn block_value(out: &mut String, y: &Y, indent: usize) {
    match y {
        Y::Map(entries, false) if !entries.is_empty() => {
            out.push('\n');
            block_entries(out, entries, indent);
        }
        Y::Seq(items, false) if !items.is_empty() => {
            out.push('\n');
            for item in items {
                out.push_str(&" ".repeat(indent));
                out.push('-');
                block_value(out, item, indent + 2);
            }
        }
        Y::Anchor(name, inner) => {
            out.push_str(&format!(" &{name}"));
            block_value(out, inner, indent);
        }
        other => {
            out.push(' ');
            out.push_str(&flow(other));
            out.push('\n');
        }
    }
}

fn block_entries(out: &mut String, entries: &[(String, Y)], indent: usize) {
    for (key, value) in entries {
        out.push_str(&" ".repeat(indent));
        out.push_str(&key_text(key));
        out.push(':');
        block_value(out, value, indent + 2);
    }
}

fn render(y: &Y) -> String {
    match y {
        Y::Map(entries, false) => {
            let mut out = String::new();
            block_entries(&mut out, entries, 0);
            out
        }
        other => flow(other) + "\n",
    }
}

// ----- vocabulary ----------------------------------------------------------------------

const DOMAIN_NAMES: &[&str] = &[
    "work",
    "lab",
    "admin-dom",
    "corp-sandbox",
    "ai",
    "Work",
    "a_b",
    "été",
    "default",
    "1",
    "x-very-long-domain-name",
];
const MACHINE_NAMES: &[&str] = &["web", "db", "ctl", "vm1", "gpu-vm", "Web", "web.1", "-x", "host", "a1", "b2"];
const PROFILE_NAMES: &[&str] = &["default", "vm-big", "gpu-ct", "p", "missing", "Default"];
const TRUST: &[&str] = &["admin", "trusted", "semi-trusted", "untrusted", "disposable", "trustd", ""];
const TYPES: &[&str] = &["lxc", "vm", "lxc", "vm", "container", "kvm"];
const IPS: &[&str] = &[
    "10.120.0.5",
    "10.120.0.6",
    "10.100.0.7",
    "10.110.0.40",
    "10.140.0.9",
    "10.120.0.254",
    "10.120.0.100",
    "10.120.0.0",
    "10.120.1.5",
    "10.120.0.300",
    "10.120.0.5/24",
    "fe80::1",
    "",
];
const IMAGES: &[&str] = &[
    "images:debian/13",
    "local:tiny",
    "tiny",
    "ubuntu/24.04",
    "a:b:c",
    "",
    "-x",
    "images:",
    "x y",
    ":x",
    "8910fe0f96fa",
];
const CONFIG_KEYS: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "security.nesting",
    "security.privileged",
    "security.secureboot",
    "user.note",
    "user.x",
    "environment.PATH",
    "boot.autostart",
    "volatile.uuid",
    "limits.memroy",
    "cloud-init.user-data",
    "snapshots.schedule",
    "limits.kernel.nofile",
    "image.os",
    "nvidia.runtime",
    "security.protection.delete",
    "security.syscalls.allow",
    "security.syscalls.deny",
    "security.syscalls.deny_default",
    "security.syscalls.blacklist",
    "security.syscalls.whitelist",
    "volatile.eth0.hwaddr",
    "volatile.a.b.hwaddr",
    "volatile.last_state.ready",
    "volatile.eth0.last_state.ip_addresses",
    "volatile.cloud-init.instance-id",
    "cloud-init.network-config",
];
const CONFIG_VALUES: &[&str] = &[
    "1",
    "2",
    "0-3",
    "1,3",
    "1GiB",
    "2GB",
    "512MiB",
    "50%",
    "true",
    "false",
    "yes",
    "@hourly",
    "0 3 * * *",
    "14d",
    "",
    "unlimited",
    "-1",
    "é",
    "$(id)",
    "6c2e8b8c-4b3f-4b3a-9e6a-0c7a2f0b1c2d",
    "{6c2e8b8c-4b3f-4b3a-9e6a-0c7a2f0b1c2d}",
    "10.0.0.1, fd00::1",
    "10.0.0.1,",
    "{a: 1}}",
    "{a: 1} x",
    "{a: [1, {b: 2}\n",
    "[1]: 2",
    "{\"a\": '}'} ] # c",
    "a\u{7}b",
    "\u{1b}[31m",
];
const DEVICE_TYPES: &[&str] =
    &["disk", "nic", "proxy", "gpu", "unix-char", "unix-block", "unix-hotplug", "usb", "pci", "tpm", "none", "bogus"];
const DEVICE_KEYS: &[&str] = &[
    "path",
    "source",
    "pool",
    "size",
    "readonly",
    "network",
    "nictype",
    "parent",
    "name",
    "mtu",
    "ipv4.address",
    "listen",
    "connect",
    "gputype",
    "pci",
    "id",
    "vendorid",
    "productid",
    "required",
    "io.bus",
    "redonly",
];
const DEVICE_VALUES: &[&str] = &[
    "/srv/data",
    "/data",
    "/",
    "default",
    "tcp:0.0.0.0:80",
    "tcp:127.0.0.1:80",
    "bridged",
    "macvlan",
    "eth0",
    "0000:01:00.0",
    "true",
    "maybe",
    "1400",
    "physical",
    "/dev/kvm",
    "virtiofs",
];
const SCHEMA_KEYS: &[&str] = &[
    "project_name",
    "global",
    "addressing",
    "base_octet",
    "zone_base",
    "zone_step",
    "base_subnet",
    "default_os_image",
    "default_connection",
    "default_user",
    "gpu_policy",
    "storage_pool",
    "nat",
    "domains",
    "description",
    "trust_level",
    "subnet_id",
    "enabled",
    "ephemeral",
    "profiles",
    "machines",
    "type",
    "ip",
    "os_image",
    "config",
    "devices",
    "storage_volumes",
    "persistent_data",
    "roles",
    "gpu",
    "boot_autostart",
    "boot_priority",
    "snapshots_schedule",
    "snapshots_expiry",
    "network_policies",
    "shared_volumes",
    "from",
    "to",
    "ports",
    "protocol",
    "bidirectional",
    "consumers",
    "incus_instances_vm_retries",
    "incus_instances_lxc_delay",
    "tpye",
    "<<",
];
const ODD_SCALARS: &[&str] = &[
    "~",
    "null",
    "true",
    "no",
    "0x1F",
    "0o17",
    "1.5",
    ".inf",
    "-0",
    "99999999999999999999",
    "1e3",
    "'",
    "\"",
    "\\",
    "\t",
    " ",
    "a\tb",
    "é",
    "✓",
    "\u{1F600}",
    "\u{202e}",
    "\u{200b}",
    "\u{a0}",
    "#",
    "- x",
    ": x",
    "[",
    "{",
    "}",
    "&a",
    "*a",
    "!!str",
    "|",
    ">",
    "%",
    "@",
    "`",
    "---",
    "...",
    "\0",
    "\u{7}",
    "\r",
    "\u{85}",
    "\u{feff}",
];

/// YAML fragments for token soup (the parser's own robustness test uses similar ones).
const FRAGMENTS: &[&str] = &[
    "a",
    "é",
    "key",
    ":",
    ": ",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "-",
    "- ",
    "? ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\"",
    "'",
    "\\",
    "#",
    "# c\n",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "!!str ",
    "!",
    "!<x>",
    "|",
    ">",
    "|-",
    ">+2",
    "---",
    "...",
    "%YAML 1.2\n",
    "%TAG ! x\n",
    "@",
    "`",
    "~",
    "null",
    "<<",
    "\u{feff}",
    "\0",
    "\u{7f}",
    "\u{1F600}",
    "\\u00e9",
    "\n  ",
    "\n    ",
    "\n- ",
    "\n  - ",
    "domains:",
    "machines:",
    "web:",
    "type: vm",
    "ip: 10.120.0.5",
    "config:",
    "devices:",
    "project_name: t",
    "global:",
    "addressing: {base_octet: 10, zone_base: 100}",
    "default_os_image: tiny",
    "work:",
];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    prop::sample::select(list).prop_map(String::from)
}

fn quote() -> impl Strategy<Value = Quote> + Clone {
    prop_oneof![3 => Just(Quote::Plain), 1 => Just(Quote::Single), 2 => Just(Quote::Double)]
}

fn s(text: impl Into<String>) -> Y {
    Y::Scalar(text.into(), Quote::Plain)
}

/// A scalar, mostly from `list` (mostly plain), sometimes odd or arbitrary (then mostly
/// quoted, so that the document still parses and the checker sees the value).
fn scalar_from(list: &'static [&'static str]) -> impl Strategy<Value = Y> + Clone {
    let odd_quote = prop_oneof![1 => Just(Quote::Plain), 1 => Just(Quote::Single), 3 => Just(Quote::Double)];
    prop_oneof![
        12 => (pick(list), quote()),
        2 => (pick(ODD_SCALARS), odd_quote.clone()),
        1 => ("\\PC{0,12}", odd_quote.clone()),
        1 => (any::<String>(), odd_quote),
    ]
    .prop_map(|(text, quote)| Y::Scalar(text, quote))
}

fn any_scalar() -> impl Strategy<Value = Y> + Clone {
    prop_oneof![
        scalar_from(CONFIG_VALUES),
        scalar_from(DEVICE_VALUES),
        scalar_from(MACHINE_NAMES),
        scalar_from(ODD_SCALARS),
    ]
}

/// Any tree: nested maps and lists in either style, with anchors and aliases.
fn tree() -> impl Strategy<Value = Y> + Clone {
    let leaf = prop_oneof![
        8 => any_scalar(),
        1 => pick(&["a", "b", "nope"]).prop_map(Y::Alias),
        1 => pick(&["!!str 1", "!!int x", "<<: *a", "? complex", "|\n  block\n", "- - x", "{a: [b, {c: d}]}"]).prop_map(Y::Raw),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        let key = prop_oneof![4 => pick(SCHEMA_KEYS), 2 => pick(MACHINE_NAMES), 1 => "\\PC{0,6}"];
        prop_oneof![
            (prop::collection::vec((key, inner.clone()), 0..5), any::<bool>()).prop_map(|(e, f)| Y::Map(e, f)),
            (prop::collection::vec(inner.clone(), 0..5), any::<bool>()).prop_map(|(i, f)| Y::Seq(i, f)),
            (pick(&["a", "b"]), inner).prop_map(|(n, y)| Y::Anchor(n, Box::new(y))),
        ]
    })
}

/// A key from the schema's vocabulary with any value: unknown keys, wrong shapes.
fn stray_entry() -> impl Strategy<Value = (String, Y)> + Clone {
    (pick(SCHEMA_KEYS), tree())
}

fn map_of<K, V>(keys: K, values: V, size: std::ops::Range<usize>) -> impl Strategy<Value = Y> + Clone
where
    K: Strategy<Value = String> + Clone,
    V: Strategy<Value = Y> + Clone,
{
    (prop::collection::vec((keys, values), size), prop::bool::weighted(0.2)).prop_map(|(e, f)| Y::Map(e, f))
}

fn config_map() -> impl Strategy<Value = Y> + Clone {
    map_of(pick(CONFIG_KEYS), scalar_from(CONFIG_VALUES), 0..4)
}

fn device() -> impl Strategy<Value = Y> + Clone {
    let typed =
        (scalar_from(DEVICE_TYPES), prop::collection::vec((pick(DEVICE_KEYS), scalar_from(DEVICE_VALUES)), 0..4));
    (prop::option::weighted(0.9, typed), prop::bool::weighted(0.2)).prop_map(|(typed, flow)| {
        let mut entries = Vec::new();
        if let Some((device_type, options)) = typed {
            entries.push(("type".to_string(), device_type));
            entries.extend(options);
        }
        Y::Map(entries, flow)
    })
}

fn devices_map() -> impl Strategy<Value = Y> + Clone {
    map_of(pick(&["data", "eth0", "root", "gpu", "http", "kvm", "Data"]), device(), 0..3)
}

fn profile_list() -> impl Strategy<Value = Y> + Clone {
    (prop::collection::vec(scalar_from(PROFILE_NAMES), 0..3), prop::bool::weighted(0.7)).prop_map(|(i, f)| Y::Seq(i, f))
}

fn machine() -> impl Strategy<Value = Y> + Clone {
    let field = prop_oneof![
        4 => scalar_from(TYPES).prop_map(|v| ("type".to_string(), v)),
        2 => scalar_from(IPS).prop_map(|v| ("ip".to_string(), v)),
        1 => scalar_from(IMAGES).prop_map(|v| ("os_image".to_string(), v)),
        2 => any_scalar().prop_map(|v| ("description".to_string(), v)),
        3 => config_map().prop_map(|v| ("config".to_string(), v)),
        2 => devices_map().prop_map(|v| ("devices".to_string(), v)),
        1 => profile_list().prop_map(|v| ("profiles".to_string(), v)),
        1 => (pick(&["ephemeral", "gpu", "boot_autostart"]), scalar_from(&["true", "false", "yes"])),
        1 => scalar_from(&["1", "50", "100", "101", "-3"]).prop_map(|v| ("boot_priority".to_string(), v)),
        1 => scalar_from(&["0 3 * * *", "@daily", "* * *", "0 25 * * *"]).prop_map(|v| ("snapshots_schedule".to_string(), v)),
        1 => scalar_from(&["14d", "1w", "2H", "14 days"]).prop_map(|v| ("snapshots_expiry".to_string(), v)),
        1 => map_of(
            pick(&["vol", "data", "root", "a/b"]),
            map_of(pick(&["path", "size", "pool"]), scalar_from(&["/srv/v", "10GiB", "default", "x"]), 0..3),
            0..2
        ).prop_map(|v| ("storage_volumes".to_string(), v)),
        1 => (prop::collection::vec(scalar_from(&["base_system", "docker"]), 0..2), any::<bool>())
            .prop_map(|(i, f)| ("roles".to_string(), Y::Seq(i, f))),
        1 => stray_entry(),
    ];
    (prop::collection::vec(field, 0..6), prop::bool::weighted(0.2)).prop_map(|(f, flow)| Y::Map(f, flow))
}

fn profile() -> impl Strategy<Value = Y> + Clone {
    let field = prop_oneof![
        3 => config_map().prop_map(|v| ("config".to_string(), v)),
        3 => devices_map().prop_map(|v| ("devices".to_string(), v)),
        1 => any_scalar().prop_map(|v| ("description".to_string(), v)),
        1 => stray_entry(),
    ];
    (prop::collection::vec(field, 0..3), prop::bool::weighted(0.2)).prop_map(|(f, flow)| Y::Map(f, flow))
}

fn domain() -> impl Strategy<Value = Y> + Clone {
    let field = prop_oneof![
        2 => any_scalar().prop_map(|v| ("description".to_string(), v)),
        3 => scalar_from(TRUST).prop_map(|v| ("trust_level".to_string(), v)),
        1 => scalar_from(&["0", "1", "5", "255", "256", "-1"]).prop_map(|v| ("subnet_id".to_string(), v)),
        1 => (pick(&["enabled", "ephemeral", "nat"]), scalar_from(&["true", "false", "no"])),
        2 => map_of(pick(PROFILE_NAMES), profile(), 0..3).prop_map(|v| ("profiles".to_string(), v)),
        1 => stray_entry(),
    ];
    let machines = map_of(pick(MACHINE_NAMES), machine(), 0..4);
    // Machines sometimes shared through an anchor and an alias.
    let machines = (machines, any::<u8>()).prop_map(|(machines, roll)| match machines {
        Y::Map(mut entries, flow) if roll < 40 && entries.len() >= 2 => {
            let value = std::mem::replace(&mut entries[0].1, Y::Scalar(String::new(), Quote::Plain));
            entries[0].1 = Y::Anchor("m".into(), Box::new(value));
            entries[1].1 = Y::Alias("m".into());
            Y::Map(entries, flow)
        }
        other => other,
    });
    (prop::collection::vec(field, 0..4), machines, prop::bool::weighted(0.1)).prop_map(
        |(mut fields, machines, flow)| {
            fields.push(("machines".to_string(), machines));
            Y::Map(fields, flow)
        },
    )
}

fn global() -> impl Strategy<Value = Y> + Clone {
    let addressing = prop_oneof![
        6 => Just(Y::Map(vec![("base_octet".into(), s("10")), ("zone_base".into(), s("100"))], true)),
        1 => Just(Y::Map(vec![("zone_base".into(), s("100")), ("zone_step".into(), s("10"))], false)),
        1 => map_of(pick(&["base_octet", "zone_base", "zone_step"]), scalar_from(&["10", "100", "250", "0", "x"]), 0..3),
    ];
    let field = prop_oneof![
        1 => scalar_from(&["default", "fast", ""]).prop_map(|v| ("storage_pool".to_string(), v)),
        1 => scalar_from(&["true", "false"]).prop_map(|v| ("nat".to_string(), v)),
        1 => scalar_from(&["shared", "exclusive", "x"]).prop_map(|v| ("gpu_policy".to_string(), v)),
        1 => (
            pick(&["incus_instances_vm_retries", "incus_instances_lxc_delay", "incus_instances_vm_agent_delay"]),
            scalar_from(&["1", "0", "90", "3601", "-1", "99999999999"])
        ),
        1 => scalar_from(&["10.100", "192.168"]).prop_map(|v| ("base_subnet".to_string(), v)),
        1 => stray_entry(),
    ];
    (prop::option::weighted(0.95, addressing), scalar_from(IMAGES), prop::collection::vec(field, 0..3)).prop_map(
        |(addressing, image, fields)| {
            let mut entries = Vec::new();
            if let Some(addressing) = addressing {
                entries.push(("addressing".to_string(), addressing));
            }
            entries.push(("default_os_image".to_string(), image));
            entries.extend(fields);
            Y::Map(entries, false)
        },
    )
}

/// An infra.yml: mostly valid in shape, with every part drawn from the schema's
/// vocabulary (valid and invalid values), sometimes with stray keys.
fn infra() -> impl Strategy<Value = Y> {
    let domains = map_of(pick(DOMAIN_NAMES), domain(), 0..3);
    let policies = prop::collection::vec(
        map_of(
            pick(&["from", "to", "ports", "protocol", "description"]),
            scalar_from(&["work", "web", "host", "80", "tcp", "all"]),
            0..4,
        ),
        0..2,
    );
    (
        prop::option::weighted(0.95, scalar_from(&["t", "demo", "full-schema"])),
        prop::option::weighted(0.95, global()),
        domains,
        prop::option::weighted(0.15, policies),
        prop::option::weighted(0.1, stray_entry()),
    )
        .prop_map(|(name, global, domains, policies, stray)| {
            let mut entries = Vec::new();
            if let Some(name) = name {
                entries.push(("project_name".to_string(), name));
            }
            if let Some(global) = global {
                entries.push(("global".to_string(), global));
            }
            entries.push(("domains".to_string(), domains));
            if let Some(policies) = policies {
                entries.push(("network_policies".to_string(), Y::Seq(policies, false)));
            }
            entries.extend(stray);
            Y::Map(entries, false)
        })
}

/// An infra.yml that should compile: unique valid names, valid values in both
/// instance types, shared config through anchors and aliases, any style, and free
/// text (descriptions, `user.*` values) drawn from all of unicode.
fn valid_infra() -> impl Strategy<Value = Y> {
    let text = prop_oneof![3 => "\\PC{0,16}", 1 => "[ -~\t\n]{0,16}", 1 => pick(PAYLOADS)];
    let dq = |text: String| Y::Scalar(text, Quote::Double);
    let config = prop::collection::vec(
        prop_oneof![
            pick(&[
                "limits.cpu=2",
                "limits.cpu=0-3",
                "limits.memory=1GiB",
                "limits.memory=512MiB",
                "boot.autostart=true"
            ]),
            text.clone().prop_map(|t| format!("user.note={t}")),
            text.clone().prop_map(|t| format!("environment.X={t}")),
        ],
        0..4,
    );
    let device = prop_oneof![
        (pick(&["/srv/a", "/srv/é b"]), pick(&["/data", "/mnt/x y"])).prop_map(|(source, path)| vec![
            ("type".to_string(), s("disk")),
            ("source".to_string(), Y::Scalar(source, Quote::Double)),
            ("path".to_string(), Y::Scalar(path, Quote::Single)),
        ]),
        Just(vec![
            ("type".to_string(), s("proxy")),
            ("listen".to_string(), s("tcp:0.0.0.0:8080")),
            ("connect".to_string(), s("tcp:127.0.0.1:80")),
        ]),
    ];
    let machine = (
        prop::bool::weighted(0.3),
        prop::option::of(text.clone()),
        config.clone(),
        prop::collection::vec(device.clone(), 0..2),
        prop::option::of(0..100u8),
        prop::option::of(pick(&["0 3 * * *", "@daily", "*/5 * * * *"])),
        prop::option::of(pick(&["14d", "1w", "2H"])),
        prop::bool::weighted(0.2),
        any::<bool>(),
    );
    let profile = (prop::option::of(text.clone()), config, prop::collection::vec(device, 0..2), any::<bool>());
    let domain = (
        pick(&["admin", "trusted", "semi-trusted", "untrusted", "disposable"]),
        prop::option::of(text),
        prop::collection::vec(profile, 0..2),
        prop::collection::vec(machine, 1..4),
        any::<bool>(),
        any::<bool>(),
    );
    (prop::collection::vec(domain, 1..4), pick(&["images:debian/13", "local:tiny", "tiny"]), any::<bool>()).prop_map(
        move |(domains, image, share)| {
            let pairs = |config: &[String]| {
                let mut seen = std::collections::BTreeMap::new();
                for pair in config {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    seen.insert(key.to_string(), dq(value.to_string()));
                }
                Y::Map(seen.into_iter().collect(), false)
            };
            let devices = |devices: &[Vec<(String, Y)>], flow: bool| {
                Y::Map(
                    devices.iter().enumerate().map(|(i, d)| (format!("dev{i}"), Y::Map(d.clone(), flow))).collect(),
                    false,
                )
            };
            let mut domain_entries = Vec::new();
            let mut shared = false;
            for (d, (trust, description, profiles, machines, flow, ephemeral)) in domains.into_iter().enumerate() {
                let mut fields = vec![("trust_level".to_string(), s(trust))];
                if let Some(description) = description {
                    fields.push(("description".to_string(), dq(description)));
                }
                if ephemeral {
                    fields.push(("ephemeral".to_string(), s("true")));
                }
                let profile_names: Vec<String> = (0..profiles.len()).map(|p| format!("p{p}")).collect();
                if !profiles.is_empty() {
                    let entries = profiles
                        .iter()
                        .enumerate()
                        .map(|(p, (description, config, devs, flow))| {
                            let mut fields = vec![
                                ("config".to_string(), pairs(config)),
                                ("devices".to_string(), devices(devs, *flow)),
                            ];
                            if let Some(description) = description {
                                fields.push(("description".to_string(), dq(description.clone())));
                            }
                            (profile_names[p].clone(), Y::Map(fields, *flow))
                        })
                        .collect();
                    fields.push(("profiles".to_string(), Y::Map(entries, false)));
                }
                let mut machine_entries = Vec::new();
                for (m, (vm, description, config, devs, priority, schedule, expiry, with_profiles, flow)) in
                    machines.into_iter().enumerate()
                {
                    let mut fields = vec![("type".to_string(), s(if vm { "vm" } else { "lxc" }))];
                    if let Some(description) = description {
                        fields.push(("description".to_string(), dq(description)));
                    }
                    let mut config = pairs(&config);
                    if vm {
                        if let Y::Map(entries, _) = &mut config {
                            entries.retain(|(k, _)| k != "limits.memory");
                            entries.push(("limits.memory".into(), dq("2GiB".into())));
                            entries.push(("security.secureboot".into(), dq("false".into())));
                        }
                    }
                    // The first machine's config is anchored once, and reused by the next.
                    if share && !shared && m == 0 && !vm {
                        config = Y::Anchor("shared".into(), Box::new(config));
                        shared = true;
                    } else if share && shared && m == 1 && d == 0 && !vm {
                        config = Y::Alias("shared".into());
                    }
                    fields.push(("config".to_string(), config));
                    fields.push(("devices".to_string(), devices(&devs, flow)));
                    if let Some(priority) = priority {
                        fields.push(("boot_priority".to_string(), s(priority.to_string())));
                    }
                    if let Some(schedule) = schedule {
                        fields.push(("snapshots_schedule".to_string(), dq(schedule)));
                    }
                    if let Some(expiry) = expiry {
                        fields.push(("snapshots_expiry".to_string(), s(expiry)));
                    }
                    if with_profiles && !profile_names.is_empty() {
                        let mut names = vec![s("default")];
                        names.extend(profile_names.iter().cloned().map(s));
                        fields.push(("profiles".to_string(), Y::Seq(names, true)));
                    }
                    machine_entries.push((format!("m{d}-{m}"), Y::Map(fields, flow)));
                }
                fields.push(("machines".to_string(), Y::Map(machine_entries, false)));
                domain_entries.push((format!("dom{d}"), Y::Map(fields, flow)));
            }
            Y::Map(
                vec![
                    ("project_name".to_string(), s("t")),
                    (
                        "global".to_string(),
                        Y::Map(
                            vec![
                                (
                                    "addressing".to_string(),
                                    Y::Map(vec![("base_octet".into(), s("10")), ("zone_base".into(), s("100"))], true),
                                ),
                                ("default_os_image".to_string(), dq(image)),
                            ],
                            false,
                        ),
                    ),
                    ("domains".to_string(), Y::Map(domain_entries, false)),
                ],
                false,
            )
        },
    )
}

/// What to do to rendered text: `(where, what)`.
#[derive(Clone, Debug)]
enum Mutation {
    Insert(usize, String),
    Delete(usize, usize),
    DuplicateLine(usize),
    TabIndent(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), pick(FRAGMENTS)).prop_map(|(at, text)| Mutation::Insert(at, text)),
        (any::<usize>(), 1..8usize).prop_map(|(at, len)| Mutation::Delete(at, len)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::TabIndent),
    ]
}

fn apply(text: &str, mutation: &Mutation) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = |n: usize| if chars.is_empty() { 0 } else { n % (chars.len() + 1) };
    match mutation {
        Mutation::Insert(n, fragment) => {
            let at = at(*n);
            chars[..at].iter().collect::<String>() + fragment + &chars[at..].iter().collect::<String>()
        }
        Mutation::Delete(n, len) => {
            let at = at(*n);
            let end = (at + len).min(chars.len());
            chars[..at].iter().chain(&chars[end..]).collect()
        }
        Mutation::DuplicateLine(n) | Mutation::TabIndent(n) => {
            let mut lines: Vec<String> = text.split('\n').map(String::from).collect();
            let index = n % lines.len();
            if matches!(mutation, Mutation::DuplicateLine(_)) {
                let line = lines[index].clone();
                lines.insert(index, line);
            } else {
                let trimmed = lines[index].trim_start_matches(' ').to_string();
                lines[index] = format!("\t{trimmed}");
            }
            lines.join("\n")
        }
    }
}

/// The inputs of the no-panic property: valid documents, structured documents from the
/// schema's vocabulary (some mutated), random trees, token soup and arbitrary strings.
fn yamlish() -> impl Strategy<Value = String> {
    let structured = (infra(), prop::collection::vec(mutation(), 1..3), prop::bool::weighted(0.6)).prop_map(
        |(y, mutations, keep)| {
            let text = render(&y);
            if keep { text } else { mutations.iter().fold(text, |text, m| apply(&text, m)) }
        },
    );
    let random_tree = tree().prop_map(|y| render(&y));
    let soup = prop::collection::vec(pick(FRAGMENTS), 0..60).prop_map(|parts| parts.concat());
    let valid = valid_infra().prop_map(|y| render(&y));
    prop_oneof![
        6 => valid,
        8 => structured,
        3 => random_tree,
        2 => soup,
        1 => any::<String>(),
    ]
}

/// The pipeline's contract on one input: no panic (the caller would see it), a plan
/// exactly when there is no error, spans inside the text, and a plan always renders.
fn check_pipeline(text: &str) -> Compilation {
    let mut first = None;
    for deny_warnings in [false, true] {
        let compilation = compile_source("input.yml", text, Options { deny_warnings });
        assert_eq!(
            compilation.plan.is_some(),
            !compilation.has_errors(),
            "a plan exactly when there is no error, for {text:?}: {:#?}",
            compilation.diagnostics
        );
        for diagnostic in &compilation.diagnostics {
            assert!(!diagnostic.message.is_empty());
            for label in &diagnostic.labels {
                assert!(text.get(label.span.range()).is_some(), "label span {:?} outside {text:?}", label.span);
            }
        }
        let _ = render::to_text(&compilation.sources, &compilation.diagnostics, true);
        let _ = render::to_json_lines(&compilation.sources, &compilation.diagnostics);
        if let Some(plan) = &compilation.plan {
            let script = deploy_script(plan).unwrap_or_else(|error| panic!("{error} for {text:?}"));
            assert!(script.starts_with("#!/usr/bin/env bash\n"));
            serde_json::to_string(plan).unwrap_or_else(|error| panic!("{error} for {text:?}"));
            let _ = plan_text(plan);
        }
        if first.is_none() {
            first = Some(compilation);
        }
    }
    first.unwrap_or_else(|| unreachable!())
}

/// Run `f` on a thread with a large stack: proptest builds the values of these deeply
/// nested strategies recursively, which overflows a test thread's 2 MiB in debug builds.
/// (anklumec itself never recurses per level of input: `syntax/yaml.rs` tests that on
/// a 256 KiB stack.)
fn on_big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let thread = std::thread::Builder::new().stack_size(256 * 1024 * 1024).spawn(f).expect("thread");
    thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Item 1: arbitrary YAML-ish input gives diagnostics or a plan, never a panic.
#[test]
fn any_input_gives_diagnostics_or_a_plan() {
    on_big_stack(|| {
        let mut runner = TestRunner::new(proptest_config(256));
        let result = runner.run(&yamlish(), |text| {
            check_pipeline(&text);
            Ok(())
        });
        if let Err(error) = result {
            panic!("{error}");
        }
    });
}

/// The generator must reach every stage: a property that only ever saw syntax errors
/// would prove little about the checker, lowering and the back ends.
#[test]
fn the_generator_reaches_every_stage() {
    on_big_stack(generator_reach);
}

fn generator_reach() {
    let mut runner = TestRunner::deterministic();
    let strategy = yamlish();
    let (mut plans, mut syntax, mut semantic) = (0, 0, 0);
    for _ in 0..300 {
        let text = strategy.new_tree(&mut runner).expect("a value").current();
        let compilation = check_pipeline(&text);
        if compilation.plan.is_some() {
            plans += 1;
        } else if compilation.diagnostics.iter().any(|d| matches!(d.code.id, "E0001" | "E0006" | "E0029")) {
            syntax += 1;
            if std::env::var_os("HARDENING_DEBUG").is_some() {
                let codes: Vec<String> = compilation
                    .diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| format!("{} {}", d.code.id, d.message))
                    .collect();
                eprintln!("=====\n{text}\n{codes:?}");
            }
        } else {
            semantic += 1;
        }
    }
    eprintln!("plans {plans}, syntax {syntax}, semantic {semantic}");
    assert!(plans >= 30 && syntax >= 30 && semantic >= 30, "plans {plans}, syntax {syntax}, semantic {semantic}");
}

/// Every file under tests/fixtures/regressions/ (crashes found by fuzzing or by these
/// tests, minimised) goes through the whole pipeline. The first line may say what to
/// expect: `# expect: plan`, or the codes that must be reported (`# expect: E0031 E0034`).
#[test]
fn regression_fixtures() {
    let dir = Path::new(MANIFEST_DIR).join("tests/fixtures/regressions");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("regressions dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    for path in paths {
        let bytes = std::fs::read(&path).expect("readable");
        let text = String::from_utf8_lossy(&bytes);
        let compilation = check_pipeline(&text);
        if let Some(expect) = text.lines().next().and_then(|line| line.strip_prefix("# expect: ")) {
            let codes: Vec<&str> = compilation.diagnostics.iter().map(|d| d.code.id).collect();
            for expected in expect.split_whitespace() {
                match expected {
                    "plan" => assert!(compilation.plan.is_some(), "{}: {codes:?}", path.display()),
                    code => assert!(codes.contains(&code), "{}: expected {code}, got {codes:?}", path.display()),
                }
            }
        }
    }
}

// =====================================================================================
// A stand-in incus
// =====================================================================================

/// A stand-in `incus` (POSIX sh, for speed) that records the argv of every call
/// (NUL-separated, one call per record, in `$ANKLUMEC_TEST_LOG`) and answers deploy.sh's reads:
///
/// - the listings deploy.sh reads before any change (`incus query PATH`, PATH with
///   `recursion=1`) are the files of `$ANKLUMEC_TEST_QUERY` named after PATH (each of
///   `/ ? & =` written `_`, as tests/common/listing.rs names them) when there is one; else
///   empty, but for the network ACLs, which are modelled as Incus has them, in `calls.d`
///   beside the log (one run's life): `incus query -X POST|PUT|DELETE` on
///   `/1.0/network-acls` creates, replaces (the document as sent) or deletes one, the ACL
///   listing prints them back as the incus client does (with `project` and a `used_by`
///   of the bridges that name them), `incus network create|set` naming an ACL that does
///   not exist fails as Incus does, and `incus network acl show|delete` sees the same
///   ACLs (a delete of one in use fails);
/// - every other change succeeds.
///
/// `ANKLUMEC_TEST_SERVER` is what `incus query /1.0` prints (by default a server with
/// the ACL extensions and the nftables firewall); `ANKLUMEC_TEST_REMOTE` what `incus
/// remote get-default` prints (default `local`).
const STAND_IN_INCUS: &str = r#"#!/bin/sh
{ printf '%s\0' "$@"; printf '\n\0'; } >>"$ANKLUMEC_TEST_LOG"
if [ "$1 $2" = "remote get-default" ]; then echo "${ANKLUMEC_TEST_REMOTE:-local}"; exit 0; fi
SERVER=$(printf '{\n\t"api_extensions": [\n\t\t"network_acl",\n\t\t"network_bridge_acl"\n\t],\n\t"environment": {\n\t\t"firewall": "nftables"\n\t}\n}')
STORE=$ANKLUMEC_TEST_LOG.d
mkdir -p "$STORE"
nl='
'
tab=$(printf '\t')
# The bridges whose security.acls names the ACL $1, as its used_by lists them.
users() {
  for f in "$STORE"/net.*; do
    [ -f "$f" ] && grep -qx "$1" "$f" && echo "/1.0/networks/${f##*/net.}"
  done
  return 0
}
# A network create or set ($1: its name, then its arguments): every ACL named must exist.
bridge() {
  net=$1; acls=-; shift
  for kv in "$@"; do
    case $kv in security.acls=*) acls=${kv#security.acls=} ;; esac
  done
  [ "$acls" = - ] && return 0
  for acl in $(printf '%s' "$acls" | tr ',' ' '); do
    [ -f "$STORE/acl.$acl" ] || { echo "Error: Network ACL \"$acl\" does not exist" >&2; exit 1; }
  done
  printf '%s' "$acls" | tr ',' '\n' >"$STORE/net.$net"
}
acl_absent() { echo 'Error: Network ACL not found' >&2; exit 1; }
acl_delete() {
  [ -f "$STORE/acl.$1" ] || acl_absent
  [ -z "$(users "$1")" ] || { echo 'Error: Cannot delete an ACL that is in use' >&2; exit 1; }
  rm -f "$STORE/acl.$1"
}
# The ACL $1 as the incus client prints it alone.
acl_print() {
  doc=$(cat "$STORE/acl.$1")
  list=$(users "$1" | sed 's/.*/\t\t"&",/')
  if [ -z "$list" ]; then used='[]'; else used="[$nl${list%,}$nl$tab]"; fi
  printf '%s,\n\t"project": "default",\n\t"used_by": %s\n}\n' "${doc%"$nl}"}" "$used"
}
case "$1 $2 $3" in
  "query -X POST")
    [ "$4 $6" = "-d /1.0/network-acls" ] || exit 0
    name=$(printf '%s\n' "$5" | sed -n 's/^[[:space:]]"name": "\(.*\)",\{0,1\}$/\1/p')
    [ -n "$name" ] || { echo 'Error: No name provided' >&2; exit 1; }
    [ ! -f "$STORE/acl.$name" ] || { echo 'Error: The network ACL already exists' >&2; exit 1; }
    printf '%s' "$5" >"$STORE/acl.$name"
    exit 0 ;;
  "query -X PUT")
    case $6 in /1.0/network-acls/*) ;; *) exit 0 ;; esac
    [ -f "$STORE/acl.${6##*/}" ] || acl_absent
    printf '%s' "$5" >"$STORE/acl.${6##*/}"
    exit 0 ;;
  "query -X DELETE")
    case $4 in /1.0/network-acls/*) acl_delete "${4##*/}" ;; esac
    exit 0 ;;
  "network create "*) bridge "$3" "$@" ;;
  "network set "*) bridge "$3" "$@" ;;
  "network delete "*) rm -f "$STORE/net.$3" ;;
  "network acl show")
    [ -f "$STORE/acl.$4" ] || acl_absent
    printf 'name: %s\nused_by:' "$4"
    list=$(users "$4")
    if [ -z "$list" ]; then echo ' []'; else printf '\n%s\n' "$list" | sed 's/^\//- \//'; fi
    exit 0 ;;
  "network acl delete") acl_delete "$4"; exit 0 ;;
esac
case "$1 $2" in
  "query /1.0") printf '%s\n' "${ANKLUMEC_TEST_SERVER:-$SERVER}" ;;
  "query /1.0/"*recursion=1*)
    file=${ANKLUMEC_TEST_QUERY:-/nonexistent}/$(printf '%s' "$2" | tr '/?&=' '____')
    if [ -f "$file" ]; then cat "$file"; exit 0; fi
    case $2 in
      /1.0/network-acls\?*)
        out='[' sep=''
        for f in "$STORE"/acl.*; do
          [ -f "$f" ] || continue
          out="$out$sep$nl$(acl_print "${f##*/acl.}" | sed "s/^/$tab/")"
          sep=','
        done
        printf '%s\n]\n' "$out" ;;
      *) echo '[]' ;;
    esac ;;
  "query /1.0/"*) exit 1 ;;
  "list ^"*) echo RUNNING ;;
  "image info") echo 'Type: virtual-machine' ;;
  "project show"|"network show"|"profile show") exit 1 ;;
  "project get"|"network get"|"profile get"|"config get") exit 1 ;;
  "storage volume") [ "$3" = show ] || [ "$3" = get ] && exit 1 ;;
  "config device"|"profile device") [ "$3" = get ] && exit 1 ;;
esac
exit 0
"#;

struct StandIn {
    dir: tempfile::TempDir,
}

struct Run {
    output: Output,
    calls: Vec<Vec<String>>,
}

impl StandIn {
    fn new() -> StandIn {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        let incus = bin.join("incus");
        std::fs::write(&incus, STAND_IN_INCUS).expect("stand-in");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&incus, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::create_dir(dir.path().join("work")).expect("work dir");
        StandIn { dir }
    }

    /// Where the script runs: an injected `touch canary` or `> canary` would land here.
    fn work_dir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn run(&self, script: &str, env: &[(&str, &str)]) -> Run {
        // The modelled ACLs and bridges of the previous run go.
        let _ = std::fs::remove_dir_all(self.dir.path().join("calls.d"));
        self.rerun(script, env)
    }

    /// A run on what the previous run left of the modelled ACLs and bridges.
    fn rerun(&self, script: &str, env: &[(&str, &str)]) -> Run {
        let log = self.dir.path().join("calls");
        let _ = std::fs::remove_file(&log);
        let script_path = self.dir.path().join("deploy.sh");
        std::fs::write(&script_path, script).expect("script");
        let mut command = Command::new("bash");
        command
            .arg(&script_path)
            .env("PATH", format!("{}:/usr/bin:/bin", self.dir.path().join("bin").display()))
            .env("ANKLUMEC_TEST_LOG", &log)
            .env("HOME", self.dir.path())
            .env_remove("DRY_RUN")
            .current_dir(self.work_dir())
            .stdin(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().expect("bash runs");
        let recorded = std::fs::read(&log).unwrap_or_default();
        Run { output, calls: parse_calls(&recorded) }
    }

    /// Make the next runs read `listings` (`incus query PATH` -> what it prints); the
    /// value of `ANKLUMEC_TEST_QUERY` for them.
    fn listings(&self, listings: &std::collections::BTreeMap<String, String>) -> String {
        let dir = self.dir.path().join("query");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("query dir");
        for (path, text) in listings {
            std::fs::write(dir.join(listing::file_name(path)), text).expect("listing");
        }
        dir.display().to_string()
    }

    /// Files in the work directory (there should be none).
    fn stray_files(&self) -> Vec<String> {
        std::fs::read_dir(self.work_dir())
            .expect("work dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

fn parse_calls(recorded: &[u8]) -> Vec<Vec<String>> {
    let mut calls = Vec::new();
    let mut call = Vec::new();
    let fields: Vec<&[u8]> = recorded.split(|&b| b == 0).collect();
    for field in fields {
        if field == b"\n" {
            calls.push(std::mem::take(&mut call));
        } else if !field.is_empty() || !call.is_empty() {
            call.push(String::from_utf8(field.to_vec()).expect("argv is UTF-8"));
        }
    }
    calls
}

/// The argv of calls that change Incus (everything but GET queries, lists, gets, shows,
/// `image info` and the agent probe).
fn is_mutating(call: &[String]) -> bool {
    let words: Vec<&str> = call.iter().map(String::as_str).take(4).collect();
    // `incus query PATH` reads; `incus query -X METHOD ...` may change.
    let read_query = matches!(words.as_slice(), ["query", path, ..] if path.starts_with('/'));
    !read_query
        && !matches!(
            words.as_slice(),
            ["list", ..]
                | ["image", "info", ..]
                | ["exec", ..]
                | [_, "show", ..]
                | [_, "get", ..]
                | [_, "device", "get", ..]
                | ["storage", "volume", "show" | "get", ..]
        )
}

// =====================================================================================
// 2. No shell injection
// =====================================================================================

/// Pieces of hostile strings: what bash would expand, split, glob or execute, and text
/// that confuses quoting (unicode spaces, bidirectional overrides).
const PAYLOADS: &[&str] = &[
    "$(touch canary)",
    "`touch canary`",
    "'; touch canary; '",
    "\"; touch canary; \"",
    "\ntouch canary\n",
    "$(touch${IFS}canary)",
    ";touch canary",
    "| touch canary",
    "&& touch canary",
    "& touch canary &",
    "> canary",
    ">canary",
    "$HOME",
    "${PATH}",
    "$'\\x41'",
    "$((1+1))",
    "!!",
    "!$",
    "{a,b}",
    "~",
    "~root",
    "*",
    "?",
    "[a-z]",
    "\\",
    "\\'",
    "'\"",
    "'",
    "\"",
    "%s%n%x",
    "-rf",
    "--help",
    "-",
    "#",
    "# comment",
    "\t",
    "\n",
    "=",
    "a=b",
    ",",
    "é",
    "✓",
    "\u{1F600}",
    "\u{202e}",
    "\u{200b}",
    "\u{a0}",
    "\u{2028}",
    "\u{3000}",
    " ",
    "  ",
    "\n#!/bin/sh\n",
    "EOF",
    "\\n",
    // Control characters other than NUL: warnings (W0009), so they reach deploy.sh.
    "\u{1}",
    "\u{7}",
    "\u{8}",
    "\u{b}\u{c}",
    "\r",
    "\r\n",
    "\u{1b}[2J\u{1b}[H",
    "\u{7f}",
    "\u{85}",
    "\u{9b}31m",
];

/// Any string infra.yml may carry into deploy.sh: anything but a NUL byte (the checker
/// refuses it, E0030; other control characters are warnings, W0009; see below). Never empty: empty values
/// take other paths (`[[ -z $description ]]`), which the fixture tests cover.
fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => pick(PAYLOADS),
        2 => "[ -~]{1,6}",
        1 => "\\PC{1,4}",
    ];
    prop::collection::vec(piece, 1..6).prop_map(|pieces| pieces.concat())
}

/// An image reference the checker accepts but that bash would expand: no whitespace,
/// control or formatting character, no `:` but the remote's, not starting with `-`.
fn odd_image() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        pick(&[
            "$(touch${IFS}canary)",
            "`touch${IFS}canary`",
            "';touch${IFS}canary;'",
            "\";touch${IFS}canary;\"",
            ">canary",
            "|",
            "&",
            ";",
            "*",
            "?",
            "{a,b}",
            "~",
            "!",
            "#",
            "\\",
            "'",
            "\"",
            "$HOME",
            "é",
            "✓",
            "/",
            "=",
            "%",
        ]),
        "[!-9;-~]{1,4}",
    ];
    (prop::option::of(pick(&["local:", "images:", "my-remote.example:"])), prop::collection::vec(piece, 1..5)).prop_map(
        |(remote, pieces)| {
            let name = pieces.concat();
            let name = if name.starts_with('-') { format!("x{name}") } else { name };
            format!("{}{name}", remote.unwrap_or_default())
        },
    )
}

/// The positions where a free string reaches deploy.sh, as `(placeholder, where)`.
/// Names (projects, profiles, machines, devices) are validated by the checker and
/// cannot hold such strings; image references have their own strategy.
const POSITIONS: &[(&str, &str)] = &[
    ("@P0@", "project_name (only in a comment of the header)"),
    ("@P1@", "domain description"),
    ("@P2@", "profile description"),
    ("@P3@", "profile config value (user.x)"),
    ("@P4@", "profile disk device path"),
    ("@P5@", "profile disk device source"),
    ("@P6@", "machine description"),
    ("@P7@", "machine config value (user.x)"),
    ("@P8@", "machine config value (cloud-init.user-data)"),
    ("@P9@", "machine disk device path"),
    ("@P10@", "machine disk device source"),
    ("@P11@", "storage volume path (its disk device)"),
    ("@P12@", "proxy device listen"),
];
const IMAGE_PLACEHOLDER: &str = "@IMAGE@";

/// One infra.yml with `values[i]` at position i and `image` as the machine's image.
fn hostile_infra(values: &[String], image: &str) -> String {
    let v = |i: usize| yaml_double(&values[i]);
    format!(
        "project_name: {}
global:
  addressing: {{base_octet: 10, zone_base: 100}}
  default_os_image: tiny
domains:
  work:
    description: {}
    profiles:
      extra:
        description: {}
        config:
          user.x: {}
        devices:
          shared:
            type: disk
            path: {}
            source: {}
    machines:
      web:
        description: {}
        os_image: {}
        profiles: [default, extra]
        config:
          user.x: {}
          cloud-init.user-data: {}
        devices:
          data:
            type: disk
            path: {}
            source: {}
          http:
            type: proxy
            listen: {}
            connect: tcp:127.0.0.1:80
        storage_volumes:
          vol:
            path: {}
",
        v(0),
        v(1),
        v(2),
        v(3),
        v(4),
        v(5),
        v(6),
        yaml_double(image),
        v(7),
        v(8),
        v(9),
        v(10),
        v(12),
        v(11),
    )
}

fn compile_to_script(text: &str) -> String {
    let compilation = compile_source("infra.yml", text, Options::default());
    let plan = compilation.plan.unwrap_or_else(|| panic!("does not compile: {:#?}\n{text}", compilation.diagnostics));
    deploy_script(&plan).expect("renders")
}

/// Stamps digest the declared values, so they differ between runs: compare without them.
fn without_stamps(calls: &[Vec<String>]) -> Vec<Vec<String>> {
    calls
        .iter()
        .map(|call| {
            call.iter()
                .map(|arg| match arg.split_once("stamp=") {
                    Some((key, _)) if key.starts_with("user.anklumec") => format!("{key}stamp=<digest>"),
                    _ => arg.clone(),
                })
                .collect()
        })
        .collect()
}

/// `value` inside a JSON string as Go's encoder writes it without HTML escaping (the
/// incus client's output, which deploy.sh's `ak_json` must match): written here apart
/// from the compiler's own encoder, so that the two are checked against each other.
fn go_json_escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
}

/// The calls deploy.sh makes for the placeholder values, against an empty server.
fn baseline_calls() -> &'static Vec<Vec<String>> {
    static BASELINE: std::sync::OnceLock<Vec<Vec<String>>> = std::sync::OnceLock::new();
    BASELINE.get_or_init(|| {
        let values: Vec<String> = POSITIONS.iter().map(|(placeholder, _)| placeholder.to_string()).collect();
        let script = compile_to_script(&hostile_infra(&values, IMAGE_PLACEHOLDER));
        let stand_in = StandIn::new();
        let run = stand_in.run(&script, &[]);
        assert!(run.output.status.success(), "{}", String::from_utf8_lossy(&run.output.stderr));
        let calls = without_stamps(&run.calls);
        // Every position but the header comment reaches some incus argument.
        for (placeholder, position) in &POSITIONS[1..] {
            assert!(calls.iter().flatten().any(|arg| arg.contains(placeholder)), "{position} reaches no incus call");
        }
        assert!(calls.iter().flatten().any(|arg| arg.contains(IMAGE_PLACEHOLDER)));
        calls
    })
}

proptest! {
    #![proptest_config(proptest_config(64))]

    /// Item 2: whatever the strings, incus receives exactly the calls it receives for
    /// plain placeholders, with each placeholder replaced by the exact literal value;
    /// nothing else runs (no canary file appears), and the script succeeds.
    #[test]
    fn hostile_strings_reach_incus_as_exact_literals(
        values in prop::collection::vec(hostile(), POSITIONS.len()).prop_map(|mut values| {
            // A disk whose path is exactly `/` is the root disk, which takes no `source`
            // (E0034): any other path is free.
            for index in [4, 9, 11] {
                if values[index] == "/" {
                    values[index] = "//".into();
                }
            }
            values
        }),
        image in odd_image(),
    ) {
        let script = compile_to_script(&hostile_infra(&values, &image));
        let stand_in = StandIn::new();
        let run = stand_in.run(&script, &[]);
        prop_assert!(run.output.status.success(), "{}", String::from_utf8_lossy(&run.output.stderr));

        // One pass over each argument, so that a value is never searched for placeholders;
        // in the JSON body of an `incus query` request, each value as a JSON string.
        let substitute = |arg: &String, json: bool| {
            let mut out = String::new();
            let mut rest = arg.as_str();
            'scan: while let Some(c) = rest.chars().next() {
                let replacements = POSITIONS.iter().map(|(p, _)| *p).zip(values.iter().map(String::as_str));
                for (placeholder, value) in replacements.chain([(IMAGE_PLACEHOLDER, image.as_str())]) {
                    if let Some(after) = rest.strip_prefix(placeholder) {
                        if json { go_json_escape(value, &mut out) } else { out.push_str(value) }
                        rest = after;
                        continue 'scan;
                    }
                }
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
            out
        };
        let expected: Vec<Vec<String>> = baseline_calls()
            .iter()
            .map(|call| {
                let is_query = call.first().is_some_and(|word| word == "query");
                call.iter().enumerate().map(|(index, arg)| substitute(arg, is_query && call.get(index.wrapping_sub(1)).is_some_and(|flag| flag == "-d"))).collect()
            })
            .collect();
        let got = without_stamps(&run.calls);
        prop_assert_eq!(got.len(), expected.len(), "another number of incus calls");
        for (got, expected) in got.iter().zip(&expected) {
            prop_assert_eq!(got, expected);
        }
        // The same, spelled out for a few positions: each value is one exact argument.
        let has = |call: &[&str]| run.calls.iter().any(|c| c.iter().map(String::as_str).eq(call.iter().copied()));
        let description = format!("description={}", values[1]);
        prop_assert!(has(&["project", "set", "work", &description, "--property"]));
        let (path, source) = (format!("path={}", values[9]), format!("source={}", values[10]));
        prop_assert!(has(&["config", "device", "add", "web", "data", "disk", &path, &source, "--project", "work"]));
        let user_x = format!("user.x={}", values[7]);
        prop_assert!(run.calls.iter().any(|c| c[0] == "create" && c[1] == image && c.contains(&user_x)));
        prop_assert!(stand_in.stray_files().is_empty(), "an injected command ran: {:?}", stand_in.stray_files());
        // The header comment holds project_name on one line.
        let header: Vec<&str> = script.lines().take_while(|line| line.starts_with('#')).collect();
        prop_assert!(header.iter().any(|line| line.starts_with("#   project: ")));
    }

    /// Item 2, the other half: a NUL byte in any of those positions is a compile-time
    /// error (E0030; E0027 in an image); any other control character but newline and
    /// tab is a warning (W0009) and the file compiles, except in an image (E0027).
    #[test]
    fn nul_is_an_error_and_control_characters_warnings(
        position in 0..POSITIONS.len() + 1,
        before in "[a-z ]{0,4}",
        control in prop::sample::select(vec!['\0', '\u{1}', '\u{7}', '\u{8}', '\u{b}', '\u{c}', '\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}']),
        after in "[a-z ]{0,4}",
    ) {
        let bad = format!("{before}{control}{after}");
        let mut values: Vec<String> = POSITIONS.iter().map(|_| "fine".to_string()).collect();
        let mut image = "tiny".to_string();
        if position < POSITIONS.len() { values[position] = bad } else { image = format!("x{bad}") }
        let text = hostile_infra(&values, &image);
        let compilation = check_pipeline(&text);
        let codes = |error: bool| -> Vec<&str> {
            compilation.diagnostics.iter().filter(|d| d.is_error() == error).map(|d| d.code.id).collect()
        };
        if position == POSITIONS.len() {
            prop_assert!(compilation.plan.is_none());
            prop_assert_eq!(codes(true), vec!["E0027"]);
        } else if control == '\0' {
            prop_assert!(compilation.plan.is_none());
            prop_assert_eq!(codes(true), vec!["E0030"]);
        } else {
            prop_assert!(compilation.plan.is_some());
            prop_assert!(codes(true).is_empty());
            prop_assert!(codes(false).contains(&"W0009"), "{:?}", codes(false));
        }
    }
}

/// DRY_RUN=1 prints every mutating command quoted (`${*@Q}`); pasted back into bash,
/// each line makes exactly the call the real run makes.
#[test]
fn dry_run_output_replays_to_the_same_calls() {
    let values: Vec<String> =
        PAYLOADS.iter().cycle().skip(3).step_by(4).take(POSITIONS.len()).map(|p| format!("a{p}b")).collect();
    let image = "local:$(touch${IFS}canary)';\"`x`{a,b}";
    let script = compile_to_script(&hostile_infra(&values, image));
    let stand_in = StandIn::new();
    let real = stand_in.run(&script, &[]);
    assert!(real.output.status.success());
    let dry = stand_in.run(&script, &[("DRY_RUN", "1")]);
    assert!(dry.output.status.success());
    assert!(dry.calls.iter().all(|call| !is_mutating(call)), "DRY_RUN=1 changed something: {:#?}", dry.calls);
    let stdout = String::from_utf8(dry.output.stdout).expect("utf-8");
    // A printed command spans several lines when a value holds a newline (`$'...\n...'`
    // keeps it on one); collect from each `  would run: ` to the next.
    let mut replay = String::new();
    for line in stdout.split_inclusive('\n') {
        if let Some(command) = line.strip_prefix("  would run: ") {
            replay.push_str(command);
        } else if !replay.is_empty() && !replay.ends_with('\n') {
            replay.push_str(line);
        }
    }
    let replayed = stand_in.run(&replay, &[]);
    assert!(replayed.output.status.success(), "{}", String::from_utf8_lossy(&replayed.output.stderr));
    let mutating: Vec<Vec<String>> = real.calls.iter().filter(|call| is_mutating(call)).cloned().collect();
    assert_eq!(replayed.calls, mutating);
    assert!(stand_in.stray_files().is_empty());
}

// =====================================================================================
// 3. No half-written output
// =====================================================================================

const GOOD: &str = "project_name: t\nglobal:\n  addressing: {base_octet: 10, zone_base: 100}\n  default_os_image: tiny\ndomains:\n  work:\n    machines:\n      web: {}\n";

fn anklumec(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anklumec")).args(args).current_dir(dir).output().expect("runs")
}

fn entries_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).expect("dir").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Item 3: an output in a directory the user cannot write fails with exit 2, creates no
/// temporary file, and leaves an existing destination as it was. Root may write
/// anywhere, so as root the binary runs as `nobody` (setpriv).
#[test]
fn an_unwritable_directory_fails_with_exit_2_and_leaves_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(dir.path().join("infra.yml"), GOOD).expect("input");
    std::fs::set_permissions(dir.path().join("infra.yml"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("out dir");
    std::fs::write(out.join("deploy.sh"), "previous script\n").expect("previous");
    std::fs::set_permissions(out.join("deploy.sh"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o555)).expect("read-only");

    let binary = env!("CARGO_BIN_EXE_anklumec");
    let mut command = if is_root() {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", binary]);
        command
    } else {
        Command::new(binary)
    };
    let output = command.args(["infra.yml", "-o", "out/deploy.sh"]).current_dir(dir.path()).output().expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if is_root() && !stderr.contains("cannot write") {
        // The binary is not reachable by `nobody` (a target directory under a private
        // home): say so rather than pass silently.
        assert!(std::env::var_os("ANKLUMEC_E2E").is_none(), "cannot run the binary as nobody: {stderr}");
        eprintln!("SKIPPED: cannot run the binary as nobody: {stderr}");
    } else {
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("cannot write out/deploy.sh"), "{stderr}");
    }
    assert_eq!(entries_of(&out), ["deploy.sh"], "no temporary file");
    assert_eq!(std::fs::read_to_string(out.join("deploy.sh")).expect("kept"), "previous script\n");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).expect("chmod back");

    // A read-only file system, whoever runs it: nothing can be created in /proc.
    let output = anklumec(&[&dir.path().join("infra.yml").display().to_string(), "-o", "/proc/deploy.sh"], dir.path());
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Item 3: when the rename fails after the temporary file was written (the destination
/// is a directory), the temporary file is removed and the destination is untouched.
#[test]
fn a_failed_rename_removes_the_temporary_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("infra.yml"), GOOD).expect("input");
    std::fs::create_dir(dir.path().join("deploy.sh")).expect("a directory in the way");
    std::fs::write(dir.path().join("deploy.sh").join("keep"), "kept\n").expect("content");
    let output = anklumec(&["infra.yml", "-o", "deploy.sh"], dir.path());
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(entries_of(dir.path()), ["deploy.sh", "infra.yml"], "no temporary file");
    assert_eq!(entries_of(&dir.path().join("deploy.sh")), ["keep"]);
}

/// Item 3: rendering happens in memory, before the destination is opened, and fails as
/// a whole. A plan the checker would never let through (a NUL byte in a description)
/// cannot be rendered: no partial script comes back. Through the CLI that input is a
/// compile error (exit 1), and an existing destination keeps its bytes.
#[test]
fn a_render_failure_never_truncates_the_destination() {
    let compilation = compile_source("infra.yml", GOOD, Options::default());
    let mut plan = compilation.plan.expect("compiles");
    let project = plan
        .steps
        .iter_mut()
        .find_map(|step| match &mut step.action {
            anklumec::plan::Action::EnsureProject(spec) => Some(spec),
            _ => None,
        })
        .expect("a project step");
    project.description = "before\0after".into();
    let error = deploy_script(&plan).expect_err("a NUL byte cannot be quoted");
    assert!(error.to_string().contains("NUL"), "{error}");

    let bad = GOOD.replace("  work:\n", "  work:\n    description: \"before\\0after\"\n");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("infra.yml"), bad).expect("input");
    std::fs::write(dir.path().join("deploy.sh"), "previous script\n").expect("previous");
    let output = anklumec(&["infra.yml", "-o", "deploy.sh"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("E0030"));
    assert_eq!(std::fs::read_to_string(dir.path().join("deploy.sh")).expect("kept"), "previous script\n");
    assert_eq!(entries_of(dir.path()), ["deploy.sh", "infra.yml"]);
}

// =====================================================================================
// 4. Bounded resources
// =====================================================================================

/// The address-space limit the bombs run under.
const MEMORY_LIMIT: u64 = 1024 * 1024 * 1024;

/// Run the binary with `args` under a 1 GiB address-space limit. A process the limit
/// stops dies of a signal (allocation failure aborts): the exit code says.
fn anklumec_limited(args: &[&str], dir: &Path) -> Output {
    let binary = env!("CARGO_BIN_EXE_anklumec");
    let prlimit = Command::new("prlimit").arg("--version").output().is_ok_and(|o| o.status.success());
    let mut command = if prlimit {
        let mut command = Command::new("prlimit");
        command.arg(format!("--as={MEMORY_LIMIT}")).arg("--").arg(binary);
        command
    } else {
        let mut command = Command::new("bash");
        command.args(["-c", &format!("ulimit -v {} && exec \"$0\" \"$@\"", MEMORY_LIMIT / 1024), binary]);
        command
    };
    command.args(args).current_dir(dir).stdout(Stdio::null()).output().expect("runs")
}

fn assert_ends_cleanly(name: &str, output: &Output, expect: &[i32], diagnostic: Option<&str>) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code();
    assert!(
        code.is_some_and(|c| expect.contains(&c)),
        "{name}: exit {:?} (None: killed by a signal), expected {expect:?}\n{}",
        output.status,
        &stderr[..stderr.len().min(2000)]
    );
    if let Some(diagnostic) = diagnostic {
        assert!(stderr.contains(diagnostic), "{name}: {}", &stderr[..stderr.len().min(2000)]);
    }
}

/// Aliases ×10 per level, 10 levels: 10^10 nodes if expanded.
fn billion_laughs() -> String {
    let mut text = String::from("project_name: t\nl0: &l0 [lol]\n");
    for level in 1..=10 {
        let aliases = vec![format!("*l{}", level - 1); 10].join(", ");
        text.push_str(&format!("l{level}: &l{level} [{aliases}]\n"));
    }
    text
}

/// A 60 MB infra.yml that is valid: 200 domains of 99 machines, each with a 3 kB
/// description (below the 64 MiB limit; its plan is big and its script bigger).
fn big_valid_file() -> String {
    let description = "lorem ipsum ".repeat(250);
    let mut text = String::with_capacity(62_000_000);
    text.push_str("project_name: big\nglobal:\n  addressing: {base_octet: 10, zone_base: 100}\n  default_os_image: tiny\ndomains:\n");
    for domain in 0..200 {
        text.push_str(&format!("  d{domain}:\n    trust_level: trusted\n    machines:\n"));
        for machine in 0..99 {
            text.push_str(&format!("      m{domain}-{machine}:\n        description: \"{description}\"\n"));
        }
    }
    text
}

/// A 60 MB file that only looks valid: 1.5 million machines (more than 2,000,000 nodes).
fn big_node_file() -> String {
    let mut text = String::with_capacity(62_000_000);
    text.push_str("project_name: big\nglobal:\n  addressing: {base_octet: 10, zone_base: 100}\n  default_os_image: tiny\ndomains:\n  work:\n    machines:\n");
    let mut machine = 0;
    while text.len() < 60_000_000 {
        text.push_str(&format!("      m{machine}: {{type: lxc, description: web server}}\n"));
        machine += 1;
    }
    text
}

/// Item 4, the bombs: each ends with its diagnostic (exit 1) under the memory limit.
#[test]
fn bombs_end_with_a_diagnostic_under_a_memory_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<(&str, String, &str)> = vec![
        ("laughs.yml", billion_laughs(), "alias expansion exceeds 2000000 nodes"),
        ("deep.yml", "[".repeat(100_000), "nesting deeper than 64 levels"),
        ("deep-map.yml", "{a: ".repeat(100_000), "nesting deeper than 64 levels"),
        (
            "deep-block.yml",
            (0..2_000).map(|i| format!("{}k:\n", " ".repeat(i))).collect(),
            "nesting deeper than 64 levels",
        ),
        ("deep-list.yml", format!("{}x\n", "- ".repeat(100_000)), "nesting deeper than 64 levels"),
    ];
    for (name, text, diagnostic) in &files {
        std::fs::write(dir.path().join(name), text).expect("write");
        let output = anklumec_limited(&["check", name], dir.path());
        assert_ends_cleanly(name, &output, &[1], Some(diagnostic));
        assert!(String::from_utf8_lossy(&output.stderr).contains("E0006"));
    }
}

/// Item 4: a 60 MB file that looks like an infra.yml but holds more than 2,000,000
/// nodes ends with that diagnostic under the memory limit.
#[test]
fn a_60_mb_file_over_the_node_limit_ends_with_a_diagnostic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = big_node_file();
    assert!(text.len() >= 60_000_000);
    std::fs::write(dir.path().join("nodes.yml"), text).expect("write");
    let output = anklumec_limited(&["check", "nodes.yml"], dir.path());
    assert_ends_cleanly("nodes.yml", &output, &[1], Some("the file holds more than 2000000 nodes"));
}

/// Item 4: a valid 60 MB file compiles to its plan and script under the memory limit
/// (the most memory anklumec needs: every value is held by the tree, the plan and the
/// script at once).
#[test]
fn a_60_mb_valid_file_compiles_under_a_memory_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = big_valid_file();
    assert!(text.len() >= 60_000_000 && text.len() < 64 * 1024 * 1024);
    std::fs::write(dir.path().join("big.yml"), &text).expect("write");
    let output = anklumec_limited(&["big.yml", "-o", "deploy.sh"], dir.path());
    assert_ends_cleanly("big.yml", &output, &[0], None);
    let script = std::fs::metadata(dir.path().join("deploy.sh")).expect("written").len();
    assert!(script > 60_000_000, "the script holds the descriptions ({script} bytes)");
}

/// Item 4: a single 10 MB line (one scalar) compiles under the memory limit.
#[test]
fn a_10_mb_line_compiles_under_a_memory_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "project_name: t\nglobal: {{addressing: {{base_octet: 10, zone_base: 100}}, default_os_image: tiny}}\ndomains: {{work: {{description: {}, machines: {{web: {{}}}}}}}}\n",
        "x".repeat(10 * 1024 * 1024)
    );
    std::fs::write(dir.path().join("line.yml"), &text).expect("write");
    let output = anklumec_limited(&["line.yml", "-o", "deploy.sh"], dir.path());
    assert_ends_cleanly("line.yml", &output, &[0], None);
    let script = std::fs::metadata(dir.path().join("deploy.sh")).expect("written").len();
    assert!(script > 10 * 1024 * 1024, "the script holds the value ({script} bytes)");
}

/// Item 4: over 64 MiB is refused before parsing, whatever the content.
#[test]
fn over_the_size_limit_is_refused_before_parsing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Many short lines: the diagnostic shows line 1, and a 64 MiB line 1 would be printed
    // whole (codespan shows the full line under a label).
    let text = "machines: [a, b, c]\n".repeat(3_500_000);
    assert!(text.len() > 64 * 1024 * 1024);
    std::fs::write(dir.path().join("huge.yml"), text).expect("write");
    let output = anklumec_limited(&["check", "huge.yml"], dir.path());
    assert_ends_cleanly("huge.yml", &output, &[1], Some("the file is larger than 64 MiB"));
}

/// Item 4: a file far over the limit (2 GiB, sparse) ends with E0006, not a kill: the
/// CLI reads at most 64 MiB and one byte of it.
#[test]
fn a_2_gib_file_ends_with_an_error_not_a_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = std::fs::File::create(dir.path().join("sparse.yml")).expect("create");
    file.set_len(2 * 1024 * 1024 * 1024).expect("sparse 2 GiB file");
    let output = anklumec_limited(&["check", "sparse.yml"], dir.path());
    assert_ends_cleanly("sparse.yml", &output, &[1], Some("the file is larger than 64 MiB"));
}

// =====================================================================================
// 5. Determinism
// =====================================================================================

/// Item 5: the environment (locale, time zone, Rust's own variables, colour settings)
/// changes no byte of deploy.sh, of the plan, or of the diagnostics.
#[test]
fn output_does_not_depend_on_the_environment() {
    let fixtures = Path::new(MANIFEST_DIR).join("tests/fixtures");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(fixtures.join("ok/schema__full-v1.yml"), dir.path().join("infra.yml")).expect("copy");
    std::fs::copy(fixtures.join("err/e0007_several_errors_sorted.yml"), dir.path().join("bad.yml")).expect("copy");
    std::fs::copy(fixtures.join("err/w0001_typo_in_machine_key.yml"), dir.path().join("warned.yml")).expect("copy");
    let environments: [&[(&str, &str)]; 4] = [
        &[("LC_ALL", "C"), ("LANG", "C"), ("TZ", "UTC")],
        &[("LC_ALL", "fr_FR.UTF-8"), ("LANG", "fr_FR.UTF-8"), ("TZ", "Pacific/Chatham")],
        &[
            ("LC_ALL", "tr_TR.UTF-8"),
            ("TZ", "America/St_Johns"),
            ("RUST_BACKTRACE", "full"),
            ("RUST_LOG", "trace"),
            ("RUST_MIN_STACK", "16777216"),
            ("NO_COLOR", "1"),
        ],
        &[
            ("LANG", "ja_JP.eucJP"),
            ("TZ", "Asia/Kolkata"),
            ("RUST_BACKTRACE", "0"),
            ("COLUMNS", "20"),
            ("TERM", "dumb"),
        ],
    ];
    let commands: [&[&str]; 5] = [
        &["infra.yml", "-o", "-"],
        &["plan", "infra.yml", "--format", "json"],
        &["plan", "infra.yml"],
        &["check", "bad.yml"],
        &["check", "warned.yml", "--message-format", "json"],
    ];
    for args in commands {
        let runs: Vec<Output> = environments
            .iter()
            .map(|env| {
                let mut command = Command::new(env!("CARGO_BIN_EXE_anklumec"));
                command.args(args).current_dir(dir.path());
                for var in ["LC_ALL", "LANG", "TZ", "RUST_BACKTRACE", "RUST_LOG", "NO_COLOR", "COLUMNS", "TERM"] {
                    command.env_remove(var);
                }
                command.envs(env.iter().copied()).output().expect("runs")
            })
            .collect();
        assert!(!runs[0].stdout.is_empty() || !runs[0].stderr.is_empty(), "{args:?} printed nothing");
        for run in &runs[1..] {
            assert_eq!(run.status.code(), runs[0].status.code(), "{args:?}");
            assert!(run.stdout == runs[0].stdout, "{args:?}: standard output differs");
            assert!(run.stderr == runs[0].stderr, "{args:?}: diagnostics differ");
        }
    }
    // And the file written with -o, twice in different environments.
    for (index, env) in environments.iter().enumerate() {
        let out = format!("deploy-{index}.sh");
        let output = Command::new(env!("CARGO_BIN_EXE_anklumec"))
            .args(["infra.yml", "-o", &out])
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(0));
    }
    let first = std::fs::read(dir.path().join("deploy-0.sh")).expect("written");
    for index in 1..environments.len() {
        assert!(std::fs::read(dir.path().join(format!("deploy-{index}.sh"))).expect("written") == first);
    }
}

// =====================================================================================
// 6. Protection honoured
// =====================================================================================

const TYPED: &str = "project_name: t
global:
  addressing: {base_octet: 10, zone_base: 100}
  default_os_image: tiny
domains:
  work:
    machines:
      web:
        type: vm
        config:
          limits.memory: 1GiB
      db:
        type: lxc
";

/// Item 6: an existing container named like a declared VM (and a VM named like a
/// declared container) stops deploy.sh in preflight, with the manual step, before any
/// call that could change Incus, with or without DRY_RUN.
#[test]
fn a_changed_instance_type_stops_in_preflight() {
    let script = compile_to_script(TYPED);
    let stand_in = StandIn::new();
    let instances = |rows: &[(&str, &str, &str)]| {
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, status, kind)| {
                serde_json::json!({
                    "architecture": "x86_64", "config": {}, "description": "", "devices": {}, "ephemeral": false,
                    "name": name, "profiles": [], "project": "work", "stateful": false, "status": status, "type": kind,
                })
            })
            .collect();
        let path = "/1.0/instances?recursion=1&all-projects=true".to_string();
        stand_in.listings(&[(path, listing::printed(&serde_json::Value::Array(items)))].into())
    };
    for (rows, name, have, want) in [
        ([("web", "Running", "container")], "web", "container", "vm"),
        ([("db", "Stopped", "virtual-machine")], "db", "virtual-machine", "lxc"),
    ] {
        let query = instances(&rows);
        for dry_run in ["0", "1"] {
            let run = stand_in.run(&script, &[("ANKLUMEC_TEST_QUERY", &query), ("DRY_RUN", dry_run)]);
            let stderr = String::from_utf8_lossy(&run.output.stderr);
            assert_eq!(run.output.status.code(), Some(1), "{rows:?}: {stderr}");
            assert!(
                stderr.contains(&format!("instance {name} in project work is a {have} but"))
                    && stderr.contains(&format!("declares type {want}"))
                    && stderr.contains("Incus cannot convert it")
                    && stderr.contains("delete it by hand")
                    && stderr.contains("security.protection.delete"),
                "{rows:?}: {stderr}"
            );
            let mutating: Vec<&Vec<String>> = run.calls.iter().filter(|call| is_mutating(call)).collect();
            assert!(mutating.is_empty(), "{rows:?}: changed something before stopping: {mutating:#?}");
            // Only reads happened: the server check, the listings and the image check.
            assert!(
                run.calls
                    .iter()
                    .all(|call| (call[0] == "query" && call[1].starts_with("/1.0")) || call[..2] == ["image", "info"]),
                "{rows:?}: {:?}",
                run.calls
            );
            assert!(String::from_utf8_lossy(&run.output.stdout).is_empty(), "no step ran");
        }
    }
    // The same instances with their declared types: the script goes on and converges.
    let query = instances(&[("web", "Running", "virtual-machine"), ("db", "Running", "container")]);
    let run = stand_in.run(&script, &[("ANKLUMEC_TEST_QUERY", &query)]);
    assert!(run.output.status.success(), "{}", String::from_utf8_lossy(&run.output.stderr));
}

/// Words that name removals. `rm` and `rmdir` are the incus CLI's aliases of `delete`.
const REMOVAL_WORDS: &[&str] = &["delete", "rm", "rmdir", "remove", "unset", "destroy", "rebuild", "move", "rename"];

/// The lines of deploy.sh (template and generated) that may hold a removal word, and
/// why each is allowed. Nothing else in the script may remove anything.
const ALLOWED_REMOVALS: &[(&str, &str)] = &[
    // Keys and devices of a profile or instance that infra.yml does not declare go by
    // no removal command: the one request that sets its whole declared state leaves them
    // out (see `converging_sets_back_the_declared_state_and_keeps_incus_keys`).
    // A bridge of the plan's own name (`net-<domain>`) that an interrupted `incus network
    // create` left unfinished (status other than Created) and that nothing uses (no
    // `used_by` entry: not even the domain's default profile, which uses it as soon as it
    // exists): it has no bridge and no DHCP, and its name cannot be created again. It is
    // deleted and created again at once. Not an instance, and never a network in use
    // (see `a_network_is_recreated_only_when_unfinished_and_unused`).
    (r#"ak_mutate incus network delete "$name""#, "unfinished, unused bridge"),
    // The manual step printed when an instance's type changed: a message, not a command.
    (
        r#"ak_die "instance $2 in project $1 is a $have but $4 declares type $3: Incus cannot convert it. Move its data, delete it by hand (it may be protected: incus config unset $2 security.protection.delete --project $1), then rerun.""#,
        "message",
    ),
];

fn removal_words(line: &str) -> Vec<&'static str> {
    let words: Vec<&str> = line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).collect();
    REMOVAL_WORDS.iter().copied().filter(|w| words.contains(w)).collect()
}

/// A line of deploy.sh that may mention a removal word without removing anything:
/// comments, and the `security.protection.delete` key anklumec sets.
fn harmless(line: &str) -> bool {
    let line = line.trim();
    line.starts_with('#')
        || removal_words(&line.replace("security.protection.delete", "")).is_empty()
        || ALLOWED_REMOVALS.iter().any(|(allowed, _)| line == *allowed)
}

/// `text` with its `{# ... #}` template comments blanked (their line breaks kept, so
/// that line numbers still match).
fn without_jinja_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{#") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("#}").map_or(rest.len(), |end| start + end + 2);
        out.extend(rest[start..end].chars().filter(|c| *c == '\n'));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The helpers the generated part of deploy.sh calls. None removes anything but
/// through the allowed lines above (their bodies are in the template, checked line by
/// line). A new helper fails this test until it is reviewed and added here.
const GENERATED_COMMANDS: &[&str] = &[
    "ak_preflight",
    "ak_check_isolation",
    "ak_ensure_acl",
    "ak_read",
    "ak_require_image",
    "ak_check_type",
    "ak_step",
    "ak_ensure_project",
    "ak_ensure_network",
    "ak_ensure_volume",
    "ak_begin",
    "ak_profiles",
    "ak_config",
    "ak_device",
    "ak_commit_profile",
    "ak_commit_instance",
    "ak_start",
    "ak_wait_all",
    "ak_summary",
    "ak_next",
];

/// The commands of the generated part of a script, each with its arguments (a quoted
/// value may span lines).
fn generated_commands(generated: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in generated.lines() {
        if pending.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        pending.push_str(line);
        pending.push('\n');
        if let Some(words) = shlex::split(&pending) {
            commands.push(words);
            pending.clear();
        }
    }
    assert!(pending.is_empty(), "unbalanced quotes at the end of the script: {pending}");
    commands
}

/// Item 6, statically: in the deploy template (and what it includes) and in the script
/// of every fixture, the only removals are `unset` of managed config keys and `device
/// remove` of managed or retyped declared devices; no `incus delete`, `rm`, `rebuild`,
/// `move` or `rename`, so no instance is ever deleted or replaced. The generated part
/// of each script only calls the helpers (whatever words the values hold).
#[test]
fn deploy_scripts_remove_only_what_anklumec_manages() {
    let templates = Path::new(MANIFEST_DIR).join("templates");
    let deploy = std::fs::read_to_string(templates.join("deploy.sh.j2")).expect("template");
    let steps = std::fs::read_to_string(templates.join("deploy-steps.sh.j2")).expect("steps template");
    let mut helpers = vec![
        ("templates/deploy.sh.j2".to_string(), without_jinja_comments(&deploy)),
        ("templates/deploy-steps.sh.j2".to_string(), without_jinja_comments(&steps)),
    ];
    // Templates deploy.sh.j2 includes (`{% include "x" %}`).
    for line in deploy.lines() {
        if let Some(name) = line.split("{% include \"").nth(1).and_then(|rest| rest.split('"').next()) {
            let text = std::fs::read_to_string(templates.join(name)).expect("included");
            helpers.push((format!("templates/{name}"), without_jinja_comments(&text)));
        }
    }
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(Path::new(MANIFEST_DIR).join("tests/fixtures/ok"))
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .collect();
    fixtures.sort();
    let mut generated = Vec::new();
    for path in &fixtures {
        let script = compile_to_script(&std::fs::read_to_string(path).expect("fixture"));
        // The helpers end where the script starts calling them: the line `ak_preflight`.
        let split = script.find("\nak_preflight\n").expect("a preflight call") + 1;
        helpers.push((format!("{} (helpers)", path.display()), script[..split].to_string()));
        generated.push((path.display().to_string(), script[split..].to_string()));
    }
    let mut allowed_seen = vec![false; ALLOWED_REMOVALS.len()];
    for (name, text) in &helpers {
        for (number, line) in text.lines().enumerate() {
            assert!(harmless(line), "{name}:{}: a removal anklumec does not allow: {line}", number + 1);
            for (index, (allowed, _)) in ALLOWED_REMOVALS.iter().enumerate() {
                allowed_seen[index] |= line.trim() == *allowed;
            }
        }
    }
    // The allow-list is not stale: each entry is still in the template.
    assert!(allowed_seen.iter().all(|seen| *seen), "an allowed removal line no longer exists: {allowed_seen:?}");
    for (name, text) in &generated {
        let commands = generated_commands(text);
        assert!(commands.len() > 5, "{name}");
        for command in commands {
            assert!(GENERATED_COMMANDS.contains(&command[0].as_str()), "{name}: an unexpected command: {command:?}");
        }
    }
}

/// Item 6: the one `delete` in deploy.sh, of a bridge left unfinished, happens only when
/// the bridge is not Created and nothing uses it; it is created again right away.
#[test]
fn a_network_is_recreated_only_when_unfinished_and_unused() {
    let script = compile_to_script(TYPED);
    let stand_in = StandIn::new();
    let profile = ["/1.0/profiles/default?project=work"];
    let instance = ["/1.0/instances/web?project=work"];
    for (status, used_by, recreated) in [
        ("Pending", &profile[..], false),
        ("Errored", &instance[..], false),
        ("Created", &[][..], false),
        ("Pending", &[][..], true),
    ] {
        let network = serde_json::json!([{
            "config": {}, "description": "", "managed": true, "name": "net-work", "status": status,
            "type": "bridge", "used_by": used_by,
        }]);
        let query = stand_in.listings(&[("/1.0/networks?recursion=1".to_string(), listing::printed(&network))].into());
        let run = stand_in.run(&script, &[("ANKLUMEC_TEST_QUERY", &query)]);
        let case = format!("{status} {used_by:?}");
        assert!(run.output.status.success(), "{case}: {}", String::from_utf8_lossy(&run.output.stderr));
        let network: Vec<Vec<String>> =
            run.calls.iter().filter(|c| c[0] == "network" && is_mutating(c)).cloned().collect();
        let deleted = network.iter().position(|c| c[1] == "delete");
        assert_eq!(deleted.is_some(), recreated, "{case}: {network:?}");
        if let Some(index) = deleted {
            assert_eq!(network[index], ["network", "delete", "net-work"]);
            assert_eq!(network[index + 1][..3], ["network", "create", "net-work"], "created again at once");
        }
        assert!(run.calls.iter().all(|c| c[0] == "network" || !c.contains(&"delete".to_string())), "{case}");
    }
}

/// Item 6, dynamically: against a server where every declared profile and instance
/// exists with a key (`user.gone`) and a device (`gone-dev`) added by hand, an option
/// added to each declared device, and the keys Incus sets itself, the script of every
/// fixture sends each of them its whole declared state in one request (the hand-made
/// key, device and option gone, Incus's volatile.* and image.* keys kept), and never
/// deletes, unsets, rebuilds, moves or renames anything.
#[test]
fn converging_sets_back_the_declared_state_and_keeps_incus_keys() {
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(Path::new(MANIFEST_DIR).join("tests/fixtures/ok"))
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .collect();
    fixtures.sort();
    let stand_in = StandIn::new();
    for path in &fixtures {
        let text = std::fs::read_to_string(path).expect("fixture");
        let compilation = compile_source("infra.yml", &text, Options::default());
        let plan = compilation.plan.expect("compiles");
        let mut listings = listing::converged(&plan);
        let mut expected = std::collections::BTreeMap::new();
        for kind in ["instances", "profiles"] {
            let path = format!("/1.0/{kind}?recursion=1&all-projects=true");
            let Some(text) = listings.get(&path) else { continue };
            let mut items: serde_json::Value = serde_json::from_str(text).expect("listing");
            for item in items.as_array_mut().expect("a list") {
                let url = format!(
                    "/1.0/{kind}/{}?project={}",
                    item["name"].as_str().expect("a name"),
                    item["project"].as_str().expect("a project")
                );
                // What the server holds before the hand changes: the declared state, and for
                // an instance the keys Incus set (listing.rs gives it image.os and
                // volatile.uuid).
                expected.insert(url, (item["config"].clone(), item["devices"].clone()));
                item["config"]["user.gone"] = "by hand".into();
                item["devices"]["gone-dev"] = serde_json::json!({"type": "none"});
                for device in item["devices"].as_object_mut().expect("devices").values_mut() {
                    device["limits.max"] = "by hand".into();
                }
            }
            listings.insert(path, listing::printed(&items));
        }
        let query = stand_in.listings(&listings);
        let script = deploy_script(&plan).expect("renders");
        let remote = plan.incus_remote.as_deref().unwrap_or("local");
        let run = stand_in.run(&script, &[("ANKLUMEC_TEST_QUERY", &query), ("ANKLUMEC_TEST_REMOTE", remote)]);
        let name = path.display();
        assert!(run.output.status.success(), "{name}: {}", String::from_utf8_lossy(&run.output.stderr));
        let mut converged = std::collections::BTreeSet::new();
        for call in &run.calls {
            let args: Vec<&str> = call.iter().map(String::as_str).collect();
            let forbidden = args
                .iter()
                .take(3)
                .any(|a| ["delete", "rm", "rebuild", "move", "rename", "copy", "unset", "remove"].contains(a));
            assert!(!forbidden, "{name}: {args:?}");
            if let ["query", .., "-X", "PUT", "-d", body, url] = args.as_slice()
                && let Some((config, devices)) = expected.get(*url)
            {
                let sent: serde_json::Value = serde_json::from_str(body).expect("the body is JSON");
                assert_eq!(&sent["config"], config, "{name}: {url}");
                assert_eq!(&sent["devices"], devices, "{name}: {url}");
                converged.insert(url.to_string());
            }
        }
        let wanted: std::collections::BTreeSet<String> = expected.keys().cloned().collect();
        assert_eq!(converged, wanted, "{name}: one request for each drifted profile and instance");
        assert!(stand_in.stray_files().is_empty());
    }
}

proptest! {
    #![proptest_config(proptest_config(256))]

    /// The value checks added for Incus's own rules (YAML documents Incus reads only in
    /// part, UUIDs, address lists, key combinations) never panic, whatever the value,
    /// and every label stays inside the text.
    #[test]
    fn value_rules_take_any_value(
        key in pick(&[
            "cloud-init.network-config",
            "volatile.uuid",
            "volatile.eth0.last_state.ip_addresses",
            "volatile.last_state.ready",
            "security.syscalls.deny_default",
        ]),
        value in prop_oneof![
            "[-{}\\[\\]:,#'\" \n\tax?@%*&!|>]{0,24}",
            "\\PC{0,12}",
            "[0-9a-fA-F:.,{}() -]{0,48}",
        ],
        with_allow in any::<bool>(),
    ) {
        let allow = if with_allow { "          security.syscalls.allow: mount\n" } else { "" };
        let text = format!(
            "project_name: p\nglobal:\n  addressing: {{base_octet: 10, zone_base: 100}}\n  default_os_image: tiny\ndomains:\n  work:\n    machines:\n      web:\n        config:\n{allow}          {key}: {}\n",
            yaml_double(&value)
        );
        check_pipeline(&text);
    }
}

/// The isolation's preflight: a server without the ACL extensions, or with another
/// firewall driver, stops deploy.sh before any call that could change Incus, saying
/// how to opt out, with or without DRY_RUN.
#[test]
fn a_server_that_cannot_isolate_stops_deploy_sh_in_preflight() {
    let script = compile_to_script(TYPED);
    let stand_in = StandIn::new();
    let without = "{\n\t\"api_extensions\": [\n\t\t\"network_acl\"\n\t],\n\t\"environment\": {\n\t\t\"firewall\": \"nftables\"\n\t}\n}";
    let xtables = "{\n\t\"api_extensions\": [\n\t\t\"network_acl\",\n\t\t\"network_bridge_acl\"\n\t],\n\t\"environment\": {\n\t\t\"firewall\": \"xtables\"\n\t}\n}";
    for (server, says) in [(without, "network_bridge_acl"), (xtables, "\"firewall\": \"xtables\"")] {
        for dry in ["0", "1"] {
            let run = stand_in.run(&script, &[("ANKLUMEC_TEST_SERVER", server), ("DRY_RUN", dry)]);
            let stderr = String::from_utf8_lossy(&run.output.stderr);
            assert!(!run.output.status.success(), "{says}: {stderr}");
            assert!(stderr.contains(says) && stderr.contains("global.network_isolation: false"), "{stderr}");
            let mutating: Vec<_> = run.calls.iter().filter(|call| is_mutating(call)).collect();
            assert!(mutating.is_empty(), "{says}: {mutating:?}");
        }
    }
    // Without isolation, the same server is fine, and no ACL is asked for.
    let off = compile_to_script(
        &TYPED.replace("default_os_image: tiny", "default_os_image: tiny\n  network_isolation: false"),
    );
    let run = stand_in.run(&off, &[("ANKLUMEC_TEST_SERVER", without)]);
    assert!(run.output.status.success(), "{}", String::from_utf8_lossy(&run.output.stderr));
    assert!(!run.calls.iter().any(|call| call.iter().any(|word| word.contains("network-acls"))), "{:?}", run.calls);
}

/// An ACL is created when absent, left alone when the server holds exactly it, and
/// replaced as a whole (one PUT of the same document) when it differs.
#[test]
fn an_acl_is_created_kept_or_replaced_whole() {
    let script = compile_to_script(TYPED);
    let stand_in = StandIn::new();
    let acl_calls = |run: &Run| -> Vec<Vec<String>> {
        run.calls
            .iter()
            .filter(|call| {
                call[0] == "query" && call[1] == "-X" && call.last().is_some_and(|url| url.contains("network-acls"))
            })
            .cloned()
            .collect()
    };
    let fresh = stand_in.run(&script, &[]);
    assert!(fresh.output.status.success(), "{}", String::from_utf8_lossy(&fresh.output.stderr));
    let created = acl_calls(&fresh);
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(&created[0][..2], ["query", "-X"]);
    assert_eq!(created[0][2], "POST");
    assert_eq!(created[0].last().map(String::as_str), Some("/1.0/network-acls"));
    let document = created[0][4].clone();
    let parsed: serde_json::Value = serde_json::from_str(&document).expect("the document is JSON");
    assert_eq!(parsed["name"], "net-work");
    assert_eq!(parsed["ingress"][0]["source"], "10.120.0.0/24");

    // A rerun on the server that holds exactly that ACL.
    let same = stand_in.rerun(&script, &[]);
    assert!(same.output.status.success(), "{}", String::from_utf8_lossy(&same.output.stderr));
    assert!(acl_calls(&same).is_empty(), "{:?}", acl_calls(&same));
    assert!(String::from_utf8_lossy(&same.output.stdout).contains("unchanged network ACL net-work"));

    // A rerun on a server whose ACL was changed by hand.
    let stale_document = "{\n\t\"config\": {},\n\t\"description\": \"stale\",\n\t\"egress\": [],\n\t\"ingress\": [],\n\t\"name\": \"net-work\"\n}";
    std::fs::write(stand_in.dir.path().join("calls.d/acl.net-work"), stale_document).expect("stale ACL");
    let stale = stand_in.rerun(&script, &[]);
    assert!(stale.output.status.success(), "{}", String::from_utf8_lossy(&stale.output.stderr));
    let replaced = acl_calls(&stale);
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert_eq!(replaced[0][2], "PUT");
    assert_eq!(replaced[0][4], document);
    assert_eq!(replaced[0].last().map(String::as_str), Some("/1.0/network-acls/net-work"));
    assert!(String::from_utf8_lossy(&stale.output.stdout).contains("changed   network ACL net-work (rules)"));
}

/// On the stand-in's model of ACLs (kept from one run to the next): a fresh deploy
/// creates the ACL before the bridge that names it (the stand-in, as Incus, refuses a
/// bridge under an ACL it does not have); a rerun reads the ACL back and makes no call
/// that could change it; a rule added by hand is put back by one PUT of the document,
/// after which a rerun is quiet again; destroy.sh keeps an ACL that a bridge still names.
#[test]
fn a_rerun_on_a_converged_stand_in_makes_no_acl_change() {
    let two = format!("{TYPED}  lab:\n    machines:\n      box: {{}}\n");
    let script = compile_to_script(&two);
    let stand_in = StandIn::new();
    let begins =
        |call: &[String], words: &[&str]| call.len() >= words.len() && call.iter().zip(words).all(|(a, b)| a == b);
    let is_acl_change = |call: &Vec<String>| is_mutating(call) && call.iter().any(|word| word.contains("network-acls"));
    let fresh = stand_in.run(&script, &[]);
    assert!(fresh.output.status.success(), "{}", String::from_utf8_lossy(&fresh.output.stderr));
    for bridge in ["net-work", "net-lab"] {
        let position = |wanted: &dyn Fn(&Vec<String>) -> bool| fresh.calls.iter().position(wanted);
        let acl = position(&|call| {
            begins(call, &["query", "-X", "POST", "-d"]) && call[4].contains(&format!("\"name\": \"{bridge}\""))
        });
        let network = position(&|call| begins(call, &["network", "create", bridge]));
        assert!(acl.is_some() && acl < network, "{bridge}: ACL at {acl:?}, bridge at {network:?}");
        let create = &fresh.calls[network.expect("created")];
        assert!(create.contains(&format!("security.acls={bridge}")), "{create:?}");
    }

    let rerun = stand_in.rerun(&script, &[]);
    assert!(rerun.output.status.success(), "{}", String::from_utf8_lossy(&rerun.output.stderr));
    let changes: Vec<&Vec<String>> = rerun.calls.iter().filter(|call| is_acl_change(call)).collect();
    assert!(changes.is_empty(), "a converged ACL was changed: {changes:?}");
    let stdout = String::from_utf8_lossy(&rerun.output.stdout);
    for bridge in ["net-work", "net-lab"] {
        assert!(stdout.contains(&format!("unchanged network ACL {bridge}")), "{stdout}");
    }

    // By hand: a rule that lets everything in, added to net-work.
    let stored = stand_in.dir.path().join("calls.d/acl.net-work");
    let document = std::fs::read_to_string(&stored).expect("the stand-in holds the ACL");
    let opened = document.replacen(
        "\"ingress\": [\n",
        "\"ingress\": [\n\t\t{\n\t\t\t\"action\": \"allow\",\n\t\t\t\"state\": \"enabled\"\n\t\t},\n",
        1,
    );
    assert_ne!(opened, document);
    std::fs::write(&stored, &opened).expect("edit the ACL");
    let repair = stand_in.rerun(&script, &[]);
    assert!(repair.output.status.success(), "{}", String::from_utf8_lossy(&repair.output.stderr));
    let changes: Vec<&Vec<String>> = repair.calls.iter().filter(|call| is_acl_change(call)).collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(begins(changes[0], &["query", "-X", "PUT"]), "{changes:?}");
    assert_eq!(changes[0].last().map(String::as_str), Some("/1.0/network-acls/net-work"));
    assert_eq!(std::fs::read_to_string(&stored).expect("the ACL"), document, "the declared rules are back");
    let quiet = stand_in.rerun(&script, &[]);
    assert!(!quiet.calls.iter().any(is_acl_change), "{:?}", quiet.calls);

    // destroy.sh: the stand-in's bridges still name their ACLs (it says they are
    // absent, so they are not removed), and an ACL in use is kept.
    let plan = compile_source("infra.yml", two, Options::default()).plan.expect("a plan");
    let destroy = destroy_script(&plan).expect("renders");
    let run = stand_in.rerun(&destroy, &[]);
    assert!(run.output.status.success(), "{}", String::from_utf8_lossy(&run.output.stderr));
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert!(stdout.contains("kept      network ACL net-work (still used by networks/net-work)"), "{stdout}");
    assert!(!run.calls.iter().any(|call| begins(call, &["network", "acl", "delete"])), "{:?}", run.calls);
    // Once the bridge is gone, the ACL is removed.
    std::fs::remove_file(stand_in.dir.path().join("calls.d/net.net-work")).expect("the bridge");
    let run = stand_in.rerun(&destroy, &[]);
    assert!(run.output.status.success(), "{}", String::from_utf8_lossy(&run.output.stderr));
    assert!(run.calls.iter().any(|call| *call == ["network", "acl", "delete", "net-work"]), "{:?}", run.calls);
    assert!(!stand_in.dir.path().join("calls.d/acl.net-work").exists());
}
