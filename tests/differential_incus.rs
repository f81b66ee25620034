//! Differential test: anklumec's configuration and device checks against a real Incus
//! server.
//!
//! Each pair of [`CORPUS`] is one config key and value of a container. anklumec's
//! verdict: compiling a one-machine infra.yml with that key in the machine's `config`
//! gives an error on the key or its value. Incus's verdict: the exit status of
//! `incus init --empty NAME --project P -c KEY=VALUE` in a scratch project (an invalid
//! key or value fails the creation). The two must agree on every pair, except the few
//! in [`INTENTIONAL`], where anklumec refuses on purpose what Incus accepts; those must
//! still diverge (so the list stays true).
//!
//! Each entry of [`DEVICES`] is one device of a container: anklumec's verdict is an
//! error on the device, Incus's the exit status of `incus config device add` on an
//! empty container. [`DEVICE_DIVERGENCES`] lists the known differences, both ways.
//!
//! Gate: needs an Incus server (`incus query /1.0`). Without one the tests print
//! `SKIPPED: ...` and pass, unless `ANKLUMEC_E2E=1`, which makes them fail.
//!
//! Isolation: each test has its own scratch project, `adiff-<pid>` and `adevs-<pid>`
//! (images from the `default` project, its own profiles, a root disk on the first
//! storage pool); every instance gets its own name, and a guard deletes the instances
//! and the project when the test ends, panics included.

use anklumec::compile::{Options, compile_source};
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Container config pairs: valid and invalid values of every value type and format,
/// free-form prefixes, VM-only keys, unknown keys and `volatile.*` keys.
const CORPUS: &[(&str, &str)] = &[
    // ----- booleans (validate.IsBool) -----
    ("security.nesting", "true"),
    ("security.nesting", "false"),
    ("security.nesting", "TRUE"),
    ("security.nesting", "yes"),
    ("security.nesting", "No"),
    ("security.nesting", "on"),
    ("security.nesting", "OFF"),
    ("security.nesting", "1"),
    ("security.nesting", "0"),
    ("security.nesting", ""),
    ("security.nesting", "2"),
    ("security.nesting", "enabled"),
    ("security.nesting", " true"),
    ("security.nesting", "t"),
    ("security.privileged", "true"),
    ("security.privileged", "maybe"),
    ("boot.autostart", "true"),
    ("boot.autostart", "bogus"),
    ("boot.autorestart", "yes"),
    ("boot.autorestart", "x"),
    ("migration.stateful", "No"),
    ("migration.stateful", "nope"),
    ("security.protection.delete", "OFF"),
    ("security.protection.delete", "sure"),
    ("security.protection.shift", "true"),
    ("security.protection.shift", "2"),
    ("security.guestapi", "false"),
    ("security.guestapi", "x"),
    ("security.guestapi.images", "true"),
    ("security.idmap.isolated", "true"),
    ("security.idmap.isolated", "nah"),
    ("security.syscalls.deny_default", "maybe"),
    ("security.syscalls.deny_compat", "true"),
    ("security.syscalls.intercept.mknod", "true"),
    ("security.syscalls.intercept.setxattr", "yes"),
    ("security.syscalls.intercept.mount", "x"),
    ("security.syscalls.intercept.mount.shift", "false"),
    ("snapshots.schedule.stopped", "true"),
    ("nvidia.runtime", "true"),
    ("nvidia.runtime", "cuda"),
    ("migration.incremental.memory", "true"),
    // ----- integers (IsInt64, IsUint32, IsPriority) -----
    ("boot.autostart.delay", "10"),
    ("boot.autostart.delay", "-1"),
    ("boot.autostart.delay", "+1"),
    ("boot.autostart.delay", "1.0"),
    ("boot.autostart.delay", "0x10"),
    ("boot.autostart.delay", "abc"),
    ("boot.autostart.delay", "9223372036854775807"),
    ("boot.autostart.delay", "9223372036854775808"),
    ("boot.autostart.delay", ""),
    ("boot.autostart.priority", "5"),
    ("boot.autostart.priority", "high"),
    ("boot.stop.priority", "-1"),
    ("boot.host_shutdown_timeout", "30"),
    ("boot.host_shutdown_timeout", "30s"),
    ("limits.processes", "500"),
    ("limits.processes", "0"),
    ("limits.processes", "-1"),
    ("limits.processes", "1e3"),
    ("limits.processes", "500 "),
    ("limits.cpu.priority", "0"),
    ("limits.cpu.priority", "10"),
    ("limits.cpu.priority", "11"),
    ("limits.cpu.priority", "-1"),
    ("limits.cpu.priority", "+1"),
    ("limits.disk.priority", "5"),
    ("limits.disk.priority", "11"),
    ("limits.memory.swap.priority", "5"),
    ("limits.memory.swap.priority", "11"),
    ("migration.incremental.memory.goal", "70"),
    ("migration.incremental.memory.goal", "-1"),
    ("migration.incremental.memory.goal", "4294967295"),
    ("migration.incremental.memory.goal", "4294967296"),
    ("migration.incremental.memory.iterations", "0"),
    ("migration.incremental.memory.iterations", "+1"),
    ("security.idmap.base", "100000"),
    ("security.idmap.base", "-1"),
    ("security.idmap.size", "65536"),
    ("security.idmap.size", "abc"),
    // ----- sizes (units.ParseByteSizeString) and percentages -----
    ("limits.memory", "512MiB"),
    ("limits.memory", "2GiB"),
    ("limits.memory", "1GB"),
    ("limits.memory", "1kB"),
    ("limits.memory", "1024"),
    ("limits.memory", "10 bytes"),
    ("limits.memory", "1EiB"),
    ("limits.memory", "01GiB"),
    ("limits.memory", "50%"),
    ("limits.memory", "100%"),
    ("limits.memory", "150%"),
    ("limits.memory", ""),
    ("limits.memory", "0"),
    ("limits.memory", "0GiB"),
    ("limits.memory", "0%"),
    ("limits.memory", "2Gib"),
    ("limits.memory", "512M"),
    ("limits.memory", "1.5GiB"),
    ("limits.memory", "1 GiB"),
    ("limits.memory", "1KB"),
    ("limits.memory", "1gb"),
    ("limits.memory", "-1"),
    ("limits.memory", "8EiB"),
    ("limits.memory", "GiB"),
    ("limits.memory", "%"),
    ("limits.memory", "5.5%"),
    ("limits.memory", "1GiB "),
    ("limits.memory.swap", "true"),
    ("limits.memory.swap", "false"),
    ("limits.memory.swap", "yes"),
    ("limits.memory.swap", "0"),
    ("limits.memory.swap", "1GiB"),
    ("limits.memory.swap", "0B"),
    ("limits.memory.swap", "abc"),
    ("limits.memory.swap", "50%"),
    ("limits.memory.swap", "1.5GiB"),
    ("limits.hugepages.2MB", "10"),
    ("limits.hugepages.2MB", "1GiB"),
    ("limits.hugepages.2MB", "0"),
    ("limits.hugepages.2MB", "abc"),
    ("limits.hugepages.2MB", "50%"),
    ("limits.hugepages.2MB", "-1"),
    ("limits.hugepages.1GB", "2"),
    ("limits.hugepages.64KB", "1MiB"),
    ("limits.hugepages.64KB", "1.5"),
    // ----- CPU counts and sets (IsValidCPUSet), NUMA nodes, allowance -----
    ("limits.cpu", "1"),
    ("limits.cpu", "2"),
    ("limits.cpu", "01"),
    ("limits.cpu", "99999"),
    ("limits.cpu", "1-1"),
    ("limits.cpu", "0-3"),
    ("limits.cpu", "0,2-3"),
    ("limits.cpu", "0-1,3"),
    ("limits.cpu", "1,2,3"),
    ("limits.cpu", "3-1"),
    ("limits.cpu", ""),
    ("limits.cpu", "0"),
    ("limits.cpu", "00"),
    ("limits.cpu", "1,1"),
    ("limits.cpu", "0-3,2"),
    ("limits.cpu", "1,2-3-4"),
    ("limits.cpu", "1-2-3"),
    ("limits.cpu", "abc"),
    ("limits.cpu", "-1"),
    ("limits.cpu", "1-"),
    ("limits.cpu", "+1"),
    ("limits.cpu", "1,"),
    ("limits.cpu", " 1"),
    ("limits.cpu", "2.5"),
    ("limits.cpu", "99999999999999999999"),
    ("limits.cpu.nodes", "balanced"),
    ("limits.cpu.nodes", "0"),
    ("limits.cpu.nodes", "0,1"),
    ("limits.cpu.nodes", "1-0"),
    ("limits.cpu.nodes", "Balanced"),
    ("limits.cpu.nodes", "0,0"),
    ("limits.cpu.nodes", "0-3-4"),
    ("limits.cpu.nodes", "1,"),
    ("limits.cpu.nodes", "-1"),
    ("limits.cpu.allowance", "50%"),
    ("limits.cpu.allowance", "150%"),
    ("limits.cpu.allowance", "25ms/100ms"),
    ("limits.cpu.allowance", "25/100"),
    ("limits.cpu.allowance", "abc"),
    ("limits.cpu.allowance", "50"),
    ("limits.cpu.allowance", "5.5%"),
    ("limits.cpu.allowance", "10ms"),
    // ----- enumerations -----
    ("limits.memory.enforce", "soft"),
    ("limits.memory.enforce", "hard"),
    ("limits.memory.enforce", "Hard"),
    ("limits.memory.enforce", "strict"),
    ("boot.host_shutdown_action", "stop"),
    ("boot.host_shutdown_action", "stateful-stop"),
    ("boot.host_shutdown_action", "kill"),
    ("cluster.evacuate", "auto"),
    ("cluster.evacuate", "live-migrate"),
    ("cluster.evacuate", "force-stop"),
    ("cluster.evacuate", "bogus"),
    // ----- snapshot schedules (IsCron) and expiries (GetExpiry) -----
    ("snapshots.schedule", "0 3 * * *"),
    ("snapshots.schedule", "@daily"),
    ("snapshots.schedule", "@DAILY"),
    ("snapshots.schedule", "@startup"),
    ("snapshots.schedule", "@never"),
    ("snapshots.schedule", "@midnight"),
    ("snapshots.schedule", "@daily, @weekly"),
    ("snapshots.schedule", "*/15 * * * 1-5"),
    ("snapshots.schedule", "0 0 1 jan mon"),
    ("snapshots.schedule", "0 3 * * SUN"),
    ("snapshots.schedule", "? ? ? ? ?"),
    ("snapshots.schedule", "0,30 * * * *"),
    ("snapshots.schedule", "5/10 * * * *"),
    ("snapshots.schedule", ""),
    ("snapshots.schedule", "0 3 * *"),
    ("snapshots.schedule", "bogus"),
    ("snapshots.schedule", "@nightly"),
    ("snapshots.schedule", "61 3 * * *"),
    ("snapshots.schedule", "0  3 * * *"),
    ("snapshots.schedule", "@daily,@weekly"),
    ("snapshots.schedule", "0 3 * * 7"),
    ("snapshots.schedule", "0 3 0 * *"),
    ("snapshots.schedule", "*/0 * * * *"),
    ("snapshots.schedule", "5-2 * * * *"),
    ("snapshots.schedule", "0 3 L * *"),
    ("snapshots.schedule", "0 3 * 13 *"),
    ("snapshots.expiry", "30d"),
    ("snapshots.expiry", "24H"),
    ("snapshots.expiry", "2w"),
    ("snapshots.expiry", "1y"),
    ("snapshots.expiry", "6M"),
    ("snapshots.expiry", "60m"),
    ("snapshots.expiry", "30S"),
    ("snapshots.expiry", "1d 2H"),
    ("snapshots.expiry", "0d 1d"),
    ("snapshots.expiry", " 1d "),
    ("snapshots.expiry", "30"),
    ("snapshots.expiry", "30days"),
    ("snapshots.expiry", "24h"),
    ("snapshots.expiry", "30s"),
    ("snapshots.expiry", "1.5d"),
    ("snapshots.expiry", "-1d"),
    ("snapshots.expiry", "1d 1d"),
    ("snapshots.expiry", "1d  2H"),
    ("snapshots.expiry", "99999999999999999999d"),
    ("snapshots.pattern", "snap%d"),
    ("snapshots.pattern", "{{ creation_date|date:\"2006-01-02\" }}"),
    // ----- YAML (cloud-init.network-config) and free text -----
    ("cloud-init.network-config", "version: 2"),
    ("cloud-init.network-config", "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"),
    ("cloud-init.network-config", "a: 1\na: 2"),
    ("cloud-init.network-config", "garbage: ["),
    ("cloud-init.network-config", "just text"),
    ("cloud-init.network-config", "[1, 2"),
    ("cloud-init.network-config", "a: \"b"),
    ("cloud-init.network-config", "\ta: 1"),
    ("cloud-init.network-config", "- 1"),
    ("cloud-init.user-data", "#cloud-config\npackages: [curl]\n"),
    ("cloud-init.user-data", "garbage: ["),
    ("cloud-init.vendor-data", "x: ["),
    ("user.network-config", "x: ["),
    // ----- raw.lxc (lxcValidConfig), raw.idmap (parseRawIdmap), other blobs -----
    ("raw.lxc", "lxc.apparmor.profile = unconfined"),
    ("raw.lxc", "# comment\nlxc.cap.drop =\n"),
    ("raw.lxc", "lxc.net.0.ipv4.address = 10.0.0.1/24"),
    ("raw.lxc", "lxc.bogus.key = 1"),
    ("raw.lxc", "garbage"),
    ("raw.lxc", "lxc.logfile = /tmp/x"),
    ("raw.lxc", "LXC.LOGFILE = x"),
    ("raw.lxc", "lxc.prlimit.nofile = 10"),
    ("raw.lxc", "lxc.ephemeral = 1"),
    ("raw.lxc", "lxc.net.0.type = veth"),
    ("raw.idmap", "both 1000 1000"),
    ("raw.idmap", "uid 1000-1001 1000-1001"),
    ("raw.idmap", "uid 1000-1001 1000"),
    ("raw.idmap", "both 1000 1000 5"),
    ("raw.idmap", "foo 1000 1000"),
    ("raw.idmap", "garbage"),
    ("raw.apparmor", "garbage"),
    ("raw.seccomp", "garbage"),
    // ----- strings Incus does not check -----
    ("linux.kernel_modules", "ip_tables,ip6_tables"),
    ("linux.kernel_modules", "foo bar"),
    ("nvidia.driver.capabilities", "all"),
    ("nvidia.require.cuda", ">=12"),
    ("nvidia.require.driver", "535"),
    ("security.syscalls.allow", "bogus"),
    ("security.syscalls.deny", "mount"),
    ("security.syscalls.intercept.mount.allowed", "ext4"),
    ("security.syscalls.intercept.mount.fuse", "ext4=fuse2fs"),
    ("security.syscalls.blacklist", "x"),
    ("security.syscalls.whitelist", "x"),
    ("security.syscalls.blacklist_compat", "true"),
    ("security.syscalls.blacklist_default", "bogus"),
    // ----- free-form prefixes -----
    ("user.note", "fine"),
    ("user.", "x"),
    ("user.unicode", "été — ünïcödé ✓"),
    ("user.glob", "*"),
    ("user.dash", "--force"),
    ("user.multi", "line one\nline two"),
    ("environment.HTTP_PROXY", "http://proxy:3128"),
    ("environment.", "x"),
    ("linux.sysctl.net.ipv4.ip_forward", "1"),
    ("linux.sysctl.", "1"),
    ("limits.kernel.nofile", "100"),
    ("limits.kernel.foo", "bar"),
    ("limits.kernel.", "1"),
    ("image.os", "debian"),
    ("image.", "x"),
    // ----- VM-only keys on a container -----
    ("security.secureboot", "false"),
    ("security.secureboot", ""),
    ("security.csm", "true"),
    ("security.sev", "true"),
    ("security.sev.policy.es", "true"),
    ("security.sev.session.dh", "x"),
    ("security.agent.metrics", "true"),
    ("security.iommu", "true"),
    ("limits.memory.hugepages", "true"),
    ("raw.qemu", "-bios x"),
    ("raw.qemu.conf", "[x]"),
    ("raw.qemu.qmp.early", "[]"),
    ("raw.qemu.scriptlet", "def qemu_hook(instance, stage): pass"),
    ("agent.nic_config", "true"),
    ("smbios11.foo", "bar"),
    // ----- unknown keys -----
    ("limits.memroy", "1GiB"),
    ("security.nesing", "true"),
    ("Limits.memory", "1GiB"),
    ("bogus.key", "x"),
    ("bogus.key", ""),
    ("limits.memory.oom_priority", "1"),
    ("security.bpffs.delegate_cmds", "x"),
    ("systemd.credential.foo", "x"),
    ("limits.network.priority", "1"),
    ("security.devlxd", "true"),
    ("boot.debug_edk2", "true"),
    ("cloud-init.ssh-keys.x", "y"),
    ("linux.kernel_modules.load", "ondemand"),
    ("limits.cpu.pin_strategy", "auto"),
    ("limits.egress", "1"),
    ("security.protection.start", "true"),
    ("user", "x"),
    ("environment", "x"),
    ("enviroment.X", "y"),
    // ----- volatile keys Incus refuses too -----
    ("volatile.uuid", "abc"),
    ("volatile.foo", "1"),
    ("volatile.vsock_id", "abc"),
    ("volatile.apply_nvram", "true"),
    ("volatile.cloud_init.instance-id", "x"),
];

/// Pairs anklumec refuses on purpose although Incus accepts them, and why.
const INTENTIONAL: &[(&str, &str, &str)] = &[
    ("volatile.uuid", "6c2e8b8c-4b3f-4b3a-9e6a-0c7a2f0b1c2d", "volatile.* is Incus's own state (E0031)"),
    ("volatile.eth0.hwaddr", "00:16:3e:00:00:01", "volatile.* is Incus's own state (E0031)"),
    ("volatile.apply_template", "create", "volatile.* is Incus's own state (E0031)"),
    ("volatile.last_state.power", "RUNNING", "volatile.* is Incus's own state (E0031)"),
    ("volatile.idmap.base", "0", "volatile.* is Incus's own state (E0031)"),
    ("volatile.base_image", "abc", "volatile.* is Incus's own state (E0031)"),
    ("user.note", "bell\u{7}here", "no control characters in any string (E0030)"),
    (
        "cloud-init.network-config",
        "{a: 1}}",
        "go-yaml ignores text after a flow mapping; anklumec's YAML parser refuses it",
    ),
];

/// A device: its type and its options.
type DeviceCase = (&'static str, &'static [(&'static str, &'static str)]);

/// Container devices: a type and its options. Incus's verdict is `incus config device
/// add` on an existing container (the device is validated for the container).
const DEVICES: &[DeviceCase] = &[
    ("disk", &[("source", "/tmp"), ("path", "/mnt/x")]),
    ("disk", &[("source", "/tmp"), ("path", "/mnt/x"), ("readonly", "true"), ("propagation", "shared")]),
    ("disk", &[("source", "/tmp"), ("path", "/mnt/x"), ("optional", "true")]),
    ("disk", &[("source", "/tmp"), ("path", "/mnt/x"), ("required", "false"), ("shift", "true")]),
    ("disk", &[("source", "/tmp"), ("path", "/mnt/x"), ("raw.mount.options", "ro"), ("limits.read", "10MB")]),
    ("disk", &[("source", "/tmp"), ("path", "/mnt/x"), ("limits.write", "10iops"), ("boot.priority", "1")]),
    ("disk", &[("source", "/tmp"), ("path", "/mnt/x"), ("bogus", "1")]),
    ("disk", &[("source", "/tmp"), ("path", "/mnt/x"), ("redonly", "true")]),
    ("disk", &[("source", "/tmp"), ("path", "/mnt/x"), ("readonly", "maybe")]),
    ("disk", &[("source", "/tmp"), ("path", "/mnt/x"), ("size", "1GiB")]),
    ("disk", &[("source", "/tmp"), ("path", "/mnt/x"), ("size.state", "1GiB")]),
    ("disk", &[("source", "/tmp"), ("path", "/mnt/x"), ("io.bus", "virtiofs")]),
    ("disk", &[("source", "/tmp"), ("path", "/mnt/x"), ("io.cache", "none")]),
    ("disk", &[("path", "/mnt/x")]),
    ("disk", &[("path", "/mnt/x"), ("pool", "default")]),
    ("disk", &[("path", "/")]),
    ("disk", &[("path", "/"), ("pool", "default"), ("source", "/x")]),
    ("nic", &[("nictype", "bridged"), ("parent", "br-none")]),
    ("nic", &[("nictype", "bridged"), ("parent", "br-none"), ("name", "eth1"), ("mtu", "1400")]),
    ("nic", &[("nictype", "p2p")]),
    ("nic", &[("nictype", "routed")]),
    ("nic", &[("nictype", "bridged")]),
    ("nic", &[("nictype", "macvlan")]),
    ("nic", &[("nictype", "ipvlan")]),
    ("nic", &[("nictype", "Bridged"), ("parent", "br-none")]),
    ("nic", &[("mtu", "1400")]),
    ("nic", &[]),
    ("proxy", &[("listen", "tcp:0.0.0.0:8080"), ("connect", "tcp:127.0.0.1:80")]),
    ("proxy", &[("listen", "tcp:0.0.0.0:8080")]),
    ("proxy", &[("connect", "tcp:127.0.0.1:80")]),
    ("gpu", &[]),
    ("gpu", &[("gputype", "physical"), ("pci", "0000:01:00.0")]),
    ("gpu", &[("id", "0"), ("gid", "44")]),
    ("gpu", &[("pci", "0000:01:00.0"), ("id", "0")]),
    ("gpu", &[("pci", "0000:01:00.0"), ("vendorid", "10de")]),
    ("gpu", &[("id", "0"), ("productid", "1234")]),
    ("unix-char", &[("source", "/dev/null")]),
    ("unix-char", &[("path", "/dev/null"), ("mode", "0666"), ("required", "false")]),
    ("unix-char", &[]),
    ("unix-char", &[("source", "/dev/null"), ("bogus", "1")]),
    ("unix-char", &[("source", "/dev/null"), ("required", "maybe")]),
    ("unix-block", &[("source", "/dev/null"), ("major", "1"), ("minor", "3"), ("uid", "0"), ("gid", "0")]),
    ("unix-hotplug", &[("vendorid", "1234"), ("productid", "5678"), ("mode", "0660")]),
    ("unix-hotplug", &[]),
    ("unix-hotplug", &[("vendorid", "1234"), ("bogus", "1")]),
    ("usb", &[]),
    ("usb", &[("vendorid", "1234"), ("productid", "5678"), ("serial", "x"), ("busnum", "1"), ("devnum", "2")]),
    ("usb", &[("vendorid", "1234"), ("bogus", "x")]),
    ("pci", &[("address", "0000:01:00.0")]),
    ("tpm", &[("path", "/dev/tpm0"), ("pathrm", "/dev/tpmrm0")]),
    ("tpm", &[("path", "/dev/tpm0")]),
    ("tpm", &[]),
    ("none", &[]),
    ("none", &[("x", "y")]),
];

/// Devices where anklumec and the device validation of Incus differ on purpose.
/// (type, options, why)
const DEVICE_DIVERGENCES: &[(DeviceCase, &str)] = &[
    (
        ("disk", &[("source", "/tmp")]),
        "anklumec refuses: Incus adds it, but the container then fails to start without `path`",
    ),
    (
        ("nic", &[("nictype", "p2p"), ("bogus", "1")]),
        "anklumec accepts: nic options depend on the nictype, so unknown ones are left to Incus",
    ),
    (
        ("proxy", &[("listen", "tcp:0.0.0.0:8080"), ("connect", "tcp:127.0.0.1:80"), ("bogus", "1")]),
        "anklumec accepts: proxy options are not in Incus's table, so unknown ones are left to Incus",
    ),
];

// =====================================================================================
// anklumec's verdict
// =====================================================================================

/// YAML double-quoted scalar (JSON strings are YAML double-quoted strings).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// The errors anklumec reports on the config entry `key: value` of one container.
fn anklumec_errors(key: &str, value: &str) -> Vec<String> {
    let head = "project_name: diff\nglobal:\n  addressing:\n    base_octet: 10\n    zone_base: 100\n  default_os_image: \"images:debian/13\"\ndomains:\n  work:\n    trust_level: trusted\n    machines:\n      c:\n        type: lxc\n        config:\n          ";
    let entry = format!("{}: {}", quoted(key), quoted(value));
    let text = format!("{head}{entry}\n");
    let range = head.len()..head.len() + entry.len();
    let compilation = compile_source("differential.yml", &text, Options::default());
    let errors: Vec<_> = compilation.diagnostics.iter().filter(|d| d.is_error()).collect();
    let outside: Vec<String> = errors
        .iter()
        .filter(|d| !range.contains(&d.primary_span().start))
        .map(|d| format!("{}: {}", d.code.id, d.message))
        .collect();
    assert!(outside.is_empty(), "{key}={value:?}: errors outside the entry: {outside:?}");
    errors.iter().map(|d| format!("{} {}: {}", d.code.id, d.message, d.labels[0].message)).collect()
}

/// The errors anklumec reports on the device `dev` of one container.
fn anklumec_device_errors(device_type: &str, options: &[(&str, &str)]) -> Vec<String> {
    let head = "project_name: diff\nglobal:\n  addressing:\n    base_octet: 10\n    zone_base: 100\n  default_os_image: \"images:debian/13\"\ndomains:\n  work:\n    trust_level: trusted\n    machines:\n      c:\n        type: lxc\n        devices:\n";
    let mut device = format!("          dev:\n            type: {}\n", quoted(device_type));
    for (key, value) in options {
        let _ = writeln!(device, "            {}: {}", quoted(key), quoted(value));
    }
    let text = format!("{head}{device}");
    let range = head.len()..text.len();
    let compilation = compile_source("differential.yml", &text, Options::default());
    let errors: Vec<_> = compilation.diagnostics.iter().filter(|d| d.is_error()).collect();
    let outside: Vec<String> = errors
        .iter()
        .filter(|d| !range.contains(&d.primary_span().start))
        .map(|d| format!("{}: {}", d.code.id, d.message))
        .collect();
    assert!(outside.is_empty(), "{device_type} {options:?}: errors outside the device: {outside:?}");
    errors.iter().map(|d| format!("{} {}: {}", d.code.id, d.message, d.labels[0].message)).collect()
}

// =====================================================================================
// Incus's verdict
// =====================================================================================

/// `ANKLUMEC_E2E=1` (any value but empty or `0`): Incus must be there.
fn e2e_required() -> bool {
    std::env::var("ANKLUMEC_E2E").is_ok_and(|value| !value.is_empty() && value != "0")
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Run `incus ARGS` with stdin from /dev/null; kill it after a minute.
fn incus(args: &[&str]) -> Result<Run, String> {
    let mut child = Command::new("incus")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("incus did not run: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("incus {args:?} timed out"));
            }
        }
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    Ok(Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn incus_ok(args: &[&str]) -> Run {
    match incus(args) {
        Ok(run) if run.ok => run,
        Ok(run) => panic!("incus {args:?} failed: {}", run.stderr.trim()),
        Err(why) => panic!("{why}"),
    }
}

/// The first storage pool of the server, if Incus answers.
fn probe_incus() -> Result<String, String> {
    let run = incus(&["query", "/1.0"])?;
    if !run.ok {
        return Err(format!("`incus query /1.0` failed: {}", run.stderr.trim()));
    }
    let run = incus(&["query", "/1.0/storage-pools"])?;
    let pools: Vec<String> = serde_json::from_str(&run.stdout).map_err(|e| format!("storage pools: {e}"))?;
    let names: Vec<String> = pools.iter().filter_map(|p| p.rsplit('/').next().map(str::to_string)).collect();
    names
        .iter()
        .find(|name| *name == "default")
        .or(names.first())
        .cloned()
        .ok_or_else(|| "the server has no storage pool".to_string())
}

/// The scratch project; dropping it deletes its instances and itself.
struct Project {
    name: String,
}

impl Project {
    fn create(pool: &str) -> Project {
        Project::create_named(pool, "adiff")
    }

    fn create_named(pool: &str, prefix: &str) -> Project {
        let project = Project { name: format!("{prefix}-{}", std::process::id()) };
        project.remove();
        incus_ok(&["project", "create", &project.name, "-c", "features.images=false", "-c", "features.profiles=true"]);
        incus_ok(&[
            "profile",
            "device",
            "add",
            "default",
            "root",
            "disk",
            "path=/",
            &format!("pool={pool}"),
            "--project",
            &project.name,
        ]);
        project
    }

    /// Incus's verdict on one pair: does `incus init --empty` accept it?
    fn accepts(&self, instance: &str, key: &str, value: &str) -> (bool, String) {
        let pair = format!("{key}={value}");
        let run = incus(&["init", "--empty", instance, "--project", &self.name, "-c", &pair])
            .unwrap_or_else(|why| panic!("{why}"));
        if run.ok {
            incus_ok(&["delete", instance, "--project", &self.name, "--force"]);
        }
        let message = run.stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("").trim().to_string();
        (run.ok, message)
    }

    /// Incus's verdict on one device of the container `instance`.
    fn accepts_device(&self, instance: &str, device_type: &str, options: &[(&str, &str)]) -> (bool, String) {
        let mut args = vec!["config", "device", "add", instance, "dev", device_type];
        let pairs: Vec<String> = options.iter().map(|(key, value)| format!("{key}={value}")).collect();
        args.extend(pairs.iter().map(String::as_str));
        args.extend(["--project", &self.name]);
        let run = incus(&args).unwrap_or_else(|why| panic!("{why}"));
        if run.ok {
            incus_ok(&["config", "device", "remove", instance, "dev", "--project", &self.name]);
        }
        let message = run.stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("").trim().to_string();
        (run.ok, message)
    }

    fn remove(&self) {
        let path = format!("/1.0/instances?project={}", self.name);
        if let Ok(run) = incus(&["query", &path])
            && run.ok
        {
            let instances: Vec<String> = serde_json::from_str(&run.stdout).unwrap_or_default();
            for instance in instances {
                let name =
                    instance.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default().to_string();
                let _ = incus(&["delete", &name, "--project", &self.name, "--force"]);
            }
        }
        let _ = incus(&["profile", "device", "remove", "default", "root", "--project", &self.name]);
        let _ = incus(&["project", "delete", &self.name]);
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.remove();
    }
}

// =====================================================================================
// The test
// =====================================================================================

struct Row {
    key: &'static str,
    value: &'static str,
    anklumec: Vec<String>,
    incus_ok: bool,
    incus_message: String,
}

fn table(rows: &[&Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<40} {:<30} {:<9} incus", "key", "value", "anklumec");
    for row in rows {
        let verdict = |accepts: bool| if accepts { "accepts" } else { "refuses" };
        let value = format!("{:?}", row.value);
        let _ = writeln!(
            out,
            "{:<40} {:<30} {:<9} {}",
            row.key,
            value,
            verdict(row.anklumec.is_empty()),
            verdict(row.incus_ok)
        );
        for error in &row.anklumec {
            let _ = writeln!(out, "    anklumec: {error}");
        }
        if !row.incus_ok {
            let _ = writeln!(out, "    incus: {}", row.incus_message);
        }
    }
    out
}

#[test]
fn the_corpus_is_large_and_distinct() {
    assert!(CORPUS.len() >= 200, "{} pairs", CORPUS.len());
    let mut seen = std::collections::BTreeSet::new();
    for (key, value) in CORPUS.iter().copied().chain(INTENTIONAL.iter().map(|(k, v, _)| (*k, *v))) {
        assert!(seen.insert((key, value)), "{key}={value:?} is listed twice");
    }
    for (key, value, _) in INTENTIONAL {
        assert!(!anklumec_errors(key, value).is_empty(), "{key}={value:?} should be refused by anklumec");
    }
}

#[test]
fn container_config_agrees_with_incus() {
    let pool = match probe_incus() {
        Ok(pool) => pool,
        Err(why) if e2e_required() => panic!(
            "ANKLUMEC_E2E=1 requires a working Incus server, but {why}; run `bash tests/e2e/setup-incus.sh` as root first"
        ),
        Err(why) => {
            eprintln!("SKIPPED: no Incus server (set ANKLUMEC_E2E=1 to require it)");
            eprintln!("  (container_config_agrees_with_incus: {why})");
            return;
        }
    };
    let started = Instant::now();
    let project = Project::create(&pool);
    let mut rows = Vec::new();
    let pairs = CORPUS.iter().copied().chain(INTENTIONAL.iter().map(|(key, value, _)| (*key, *value)));
    for (index, (key, value)) in pairs.enumerate() {
        let (incus_ok, incus_message) = project.accepts(&format!("c{index}"), key, value);
        rows.push(Row { key, value, anklumec: anklumec_errors(key, value), incus_ok, incus_message });
    }
    drop(project);
    let elapsed = started.elapsed();

    let intentional = |row: &Row| INTENTIONAL.iter().any(|(key, value, _)| *key == row.key && *value == row.value);
    let disagreements: Vec<&Row> =
        rows.iter().filter(|row| !intentional(row) && row.anklumec.is_empty() != row.incus_ok).collect();
    let stale: Vec<&Row> =
        rows.iter().filter(|row| intentional(row) && (row.anklumec.is_empty() || !row.incus_ok)).collect();
    let accepted = rows.iter().filter(|row| row.incus_ok).count();
    eprintln!(
        "differential: {} pairs ({} accepted by incus, {} refused), {} agree, {} intentional divergences, {} disagreements, in {:.1}s",
        rows.len(),
        accepted,
        rows.len() - accepted,
        rows.len() - disagreements.len() - INTENTIONAL.len(),
        INTENTIONAL.len(),
        disagreements.len(),
        elapsed.as_secs_f64()
    );
    assert!(
        disagreements.is_empty() && stale.is_empty(),
        "anklumec and incus disagree on {} pairs:\n{}\nintentional divergences that no longer diverge: {}\n{}",
        disagreements.len(),
        table(&disagreements),
        stale.len(),
        table(&stale)
    );
}

#[test]
fn container_devices_agree_with_incus() {
    let pool = match probe_incus() {
        Ok(pool) => pool,
        Err(why) if e2e_required() => panic!(
            "ANKLUMEC_E2E=1 requires a working Incus server, but {why}; run `bash tests/e2e/setup-incus.sh` as root first"
        ),
        Err(why) => {
            eprintln!("SKIPPED: no Incus server (set ANKLUMEC_E2E=1 to require it)");
            eprintln!("  (container_devices_agree_with_incus: {why})");
            return;
        }
    };
    let started = Instant::now();
    let project = Project::create_named(&pool, "adevs");
    incus_ok(&["init", "--empty", "c", "--project", &project.name]);
    let mut problems = String::new();
    let mut agree = 0;
    let cases = DEVICES
        .iter()
        .map(|(t, o)| (*t, *o, None))
        .chain(DEVICE_DIVERGENCES.iter().map(|((t, o), why)| (*t, *o, Some(*why))));
    for (device_type, options, divergence) in cases {
        let anklumec = anklumec_device_errors(device_type, options);
        let (incus_accepts, incus_message) = project.accepts_device("c", device_type, options);
        let same = anklumec.is_empty() == incus_accepts;
        match (same, divergence) {
            (true, None) => agree += 1,
            (false, Some(_)) => {}
            (_, divergence) => {
                let verdict = |accepts: bool| if accepts { "accepts" } else { "refuses" };
                let _ = writeln!(
                    problems,
                    "{device_type} {options:?}: anklumec {}, incus {}{}",
                    verdict(anklumec.is_empty()),
                    verdict(incus_accepts),
                    divergence.map_or(String::new(), |why| format!(" (listed as a divergence: {why})"))
                );
                for error in &anklumec {
                    let _ = writeln!(problems, "    anklumec: {error}");
                }
                if !incus_accepts {
                    let _ = writeln!(problems, "    incus: {incus_message}");
                }
            }
        }
    }
    drop(project);
    eprintln!(
        "differential: {} devices, {agree} agree, {} intentional divergences, in {:.1}s",
        DEVICES.len() + DEVICE_DIVERGENCES.len(),
        DEVICE_DIVERGENCES.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(problems.is_empty(), "anklumec and incus disagree on devices:\n{problems}");
}
