//! Differential test: anklumec's configuration and device checks against a real Incus
//! server.
//!
//! The policy under test: an anklumec **error** means Incus would refuse the input; what
//! Incus accepts but is almost surely a mistake is a **warning** (a `volatile.*` key,
//! W0008; a control character, W0009; a cloud-init document with text after its first
//! node, W0010). So the verdicts must agree exactly, with no exception list.
//!
//! Each pair of [`CORPUS`] is one config key and value of a container. anklumec's
//! verdict: compiling a one-machine infra.yml with that key in the machine's `config`
//! gives an error (warnings do not count) on the key or its value. Incus's verdict: the
//! exit status of `incus init --empty NAME --project P -c KEY=VALUE` in a scratch
//! project (an invalid key or value fails the creation). The two must agree on every
//! pair.
//!
//! Each entry of [`KEY_SETS`] is several keys at once, to test the rules between keys
//! (E0036): keys of a profile and keys of a container that uses it. anklumec's verdict
//! is an error in the domain; Incus's is `incus profile create` + `incus profile set`
//! with the profile's keys, then `incus init --empty -p default -p PROFILE -c ...` with
//! the container's. They must agree on every set too.
//!
//! Each entry of [`DEVICES`] is one device of a container: anklumec's verdict is an
//! error on the device, Incus's the exit status of `incus config device add` on an
//! empty container. Adding a device is not all Incus checks: it validates a device
//! fully when the instance starts. So the device verdicts may differ where the start
//! decides, and [`DEVICE_DIVERGENCES`] lists those, each with the reason, both ways:
//! anklumec refuses what `device add` takes but the first start refuses (a container
//! disk without `path`), and leaves to Incus the options whose list depends on the
//! device's sub-type (`nic` by `nictype`, `proxy`), which `device add` takes unchecked.
//! Each listed divergence must still diverge, so the list stays true.
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
    // ----- volatile keys: Incus refuses those it does not know and some values -----
    ("volatile.uuid", "abc"),
    ("volatile.uuid", "6c2e8b8c-4b3f-4b3a-9e6a-0c7a2f0b1c2"),
    ("volatile.foo", "1"),
    ("volatile.vsock_id", "abc"),
    ("volatile.apply_nvram", "true"),
    ("volatile.cloud_init.instance-id", "x"),
    ("volatile.cloud-init.instance-id", "x"),
    ("volatile.eth0.mtu", "1500"),
    ("volatile.eth0.hwaddr.x", "y"),
    ("volatile.eth0.last_state.ready", "true"),
    ("volatile.eth0.last_state.ip_addresses", "1.2.3"),
    ("volatile.eth0.last_state.ip_addresses", ""),
    ("volatile.eth0.last_state.ip_addresses", "10.0.0.1,"),
    ("volatile.last_state.ready", ""),
    ("volatile.last_state.ready", "2"),
    ("volatile.rebalance.last_move", "zz"),
    ("volatile.vm.definition", "pc"),
    // ----- volatile keys Incus accepts (W0008) -----
    ("volatile.uuid", "6c2e8b8c-4b3f-4b3a-9e6a-0c7a2f0b1c2d"),
    ("volatile.uuid", "urn:uuid:6c2e8b8c-4b3f-4b3a-9e6a-0c7a2f0b1c2d"),
    ("volatile.uuid", "{6c2e8b8c-4b3f-4b3a-9e6a-0c7a2f0b1c2d}"),
    ("volatile.uuid", "6c2e8b8c4b3f4b3a9e6a0c7a2f0b1c2d"),
    ("volatile.uuid", ""),
    ("volatile.uuid.generation", "zz"),
    ("volatile.cloud-init.instance-id", "6c2e8b8c-4b3f-4b3a-9e6a-0c7a2f0b1c2d"),
    ("volatile.eth0.hwaddr", "00:16:3e:00:00:01"),
    ("volatile.a.b.hwaddr", "x"),
    ("volatile.hwaddr", "x"),
    ("volatile.eth0.host_name", "veth1"),
    ("volatile.gpu0.mig.uuid", "x"),
    ("volatile.eth0.last_state.vf.id", "1"),
    ("volatile.eth0.last_state.ip_addresses", "10.0.0.1, fd00::1"),
    ("volatile.apply_template", "create"),
    ("volatile.last_state.power", "RUNNING"),
    ("volatile.last_state.ready", "yes"),
    ("volatile.idmap.base", "0"),
    ("volatile.idmap.current", "x"),
    ("volatile.base_image", "abc"),
    ("volatile.rebalance.last_move", "5"),
    ("volatile.cluster.group", "x"),
    ("volatile.cpu.nodes", "0"),
    ("volatile.apply_quota", "x"),
    // ----- control characters Incus stores (W0009) -----
    ("user.note", "bell\u{7}here"),
    ("user.escape", "\u{1b}[31mred"),
    ("environment.CR", "a\rb"),
    ("user.del", "a\u{7f}b"),
    ("user.c1", "a\u{85}b\u{9b}c"),
    ("cloud-init.user-data", "#cloud-config\u{c}\n"),
    // ----- cloud-init YAML: what Incus's YAML library ignores after the first node -----
    ("cloud-init.network-config", "{a: 1}}"),
    ("cloud-init.network-config", "{a: 1} x"),
    ("cloud-init.network-config", "{a: 1}\nb: 2"),
    ("cloud-init.network-config", "{a: 1}] # c"),
    ("cloud-init.network-config", "{a: 1} x: 2"),
    ("cloud-init.network-config", "{a: 1} \"x"),
    ("cloud-init.network-config", "{a: 1}\n\tx"),
    ("cloud-init.network-config", "{a: 1} - x"),
    ("cloud-init.network-config", "{a: 1}\n%x"),
    ("cloud-init.network-config", "[1]: 2"),
    ("cloud-init.network-config", ": 1"),
    ("cloud-init.network-config", "~: 1"),
    ("cloud-init.network-config", "a: {[1]: 2}"),
];

/// Keys of a profile and of a container that uses it (either may be empty: no profile,
/// or a container with only the profile's keys).
type KeySet = (&'static [(&'static str, &'static str)], &'static [(&'static str, &'static str)]);

/// Key combinations, each once in one config and, for the rules, across a profile and
/// the container.
const KEY_SETS: &[KeySet] = &[
    // ----- syscall allow and deny lists (E0036) -----
    (&[], &[("security.syscalls.allow", "mount"), ("security.syscalls.deny", "kexec_load")]),
    (&[], &[("security.syscalls.allow", ""), ("security.syscalls.deny", "")]),
    (&[], &[("security.syscalls.allow", "mount"), ("security.syscalls.deny_default", "yes")]),
    (&[], &[("security.syscalls.allow", "mount"), ("security.syscalls.deny_default", "false")]),
    (&[], &[("security.syscalls.allow", "mount"), ("security.syscalls.deny_default", "")]),
    (&[], &[("security.syscalls.allow", ""), ("security.syscalls.deny_compat", "1")]),
    (&[], &[("security.syscalls.allow", "mount"), ("security.syscalls.deny_compat", "off")]),
    (&[], &[("security.syscalls.whitelist", "mount"), ("security.syscalls.blacklist_default", "true")]),
    (&[], &[("security.syscalls.whitelist", ""), ("security.syscalls.deny", "mount")]),
    (&[], &[("security.syscalls.allow", "mount"), ("security.syscalls.blacklist", "x")]),
    (&[], &[("security.syscalls.deny_default", "true"), ("security.syscalls.deny", "mount")]),
    // ----- a key and its deprecated name -----
    (&[], &[("security.syscalls.allow", "mount"), ("security.syscalls.whitelist", "mount")]),
    (&[], &[("security.syscalls.allow", ""), ("security.syscalls.whitelist", "mount")]),
    (&[], &[("security.syscalls.deny", "x"), ("security.syscalls.blacklist", "y")]),
    (&[], &[("security.syscalls.deny", ""), ("security.syscalls.blacklist", "y")]),
    (&[], &[("security.syscalls.deny_default", "false"), ("security.syscalls.blacklist_default", "false")]),
    (&[], &[("security.syscalls.deny_default", ""), ("security.syscalls.blacklist_default", "true")]),
    (&[], &[("security.syscalls.deny_compat", "true"), ("security.syscalls.blacklist_compat", "true")]),
    // ----- nvidia.runtime in a privileged container -----
    (&[], &[("nvidia.runtime", "true"), ("security.privileged", "true")]),
    (&[], &[("nvidia.runtime", "on"), ("security.privileged", "1")]),
    (&[], &[("nvidia.runtime", "true"), ("security.privileged", "false")]),
    (&[], &[("nvidia.runtime", ""), ("security.privileged", "true")]),
    // ----- combinations Incus accepts at creation -----
    (&[], &[("security.privileged", "true"), ("security.idmap.isolated", "true")]),
    (&[], &[("security.privileged", "true"), ("raw.idmap", "both 1000 1000")]),
    (&[], &[("security.privileged", "true"), ("security.nesting", "true")]),
    (&[], &[("security.idmap.isolated", "true"), ("security.idmap.size", "100")]),
    (&[], &[("limits.cpu", "2"), ("limits.cpu.allowance", "50%")]),
    (&[], &[("limits.cpu", "0-1"), ("limits.cpu.nodes", "0")]),
    (&[], &[("limits.memory.swap", "false"), ("limits.memory.swap.priority", "5")]),
    (
        &[],
        &[
            ("security.syscalls.intercept.mount.allowed", "ext4"),
            ("security.syscalls.intercept.mount.fuse", "ext4=fuse2fs"),
        ],
    ),
    (&[], &[("security.guestapi", "false"), ("security.guestapi.images", "true")]),
    (&[], &[("cloud-init.network-config", "version: 2"), ("user.network-config", "version: 1")]),
    (&[], &[("migration.incremental.memory", "true"), ("migration.incremental.memory.goal", "200")]),
    (&[], &[("volatile.idmap.base", "5"), ("security.idmap.isolated", "true")]),
    // ----- across a profile and the container -----
    (&[("security.syscalls.allow", "mount"), ("security.syscalls.deny", "x")], &[]),
    (&[("security.syscalls.allow", ""), ("security.syscalls.deny", "x")], &[]),
    (&[("security.syscalls.allow", "")], &[("security.syscalls.deny", "x")]),
    (&[("security.syscalls.allow", "mount")], &[("security.syscalls.deny", "x")]),
    (&[("security.syscalls.allow", "mount")], &[("security.syscalls.deny_default", "false")]),
    (&[("security.syscalls.deny", "x")], &[("security.syscalls.whitelist", "")]),
    (&[("security.syscalls.allow", "mount"), ("security.syscalls.whitelist", "x")], &[]),
    (&[("nvidia.runtime", "true"), ("security.privileged", "true")], &[]),
    (&[("nvidia.runtime", "true")], &[("security.privileged", "true")]),
    (&[("security.privileged", "true")], &[("nvidia.runtime", "yes")]),
    (&[("nvidia.runtime", "true"), ("security.privileged", "true")], &[("security.privileged", "false")]),
    (&[("security.privileged", "true")], &[("security.idmap.isolated", "true")]),
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

/// YAML double-quoted scalar, every control character escaped (YAML allows none of
/// them raw, DEL and C1 included).
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
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

/// The errors anklumec reports on a profile `p` with `profile` as config and a
/// container using it with `machine` as config.
fn anklumec_set_errors(profile: &[(&str, &str)], machine: &[(&str, &str)]) -> Vec<String> {
    let config = |pairs: &[(&str, &str)], indent: &str| -> String {
        let mut text = format!("{indent}config:\n");
        for (key, value) in pairs {
            let _ = writeln!(text, "{indent}  {}: {}", quoted(key), quoted(value));
        }
        text
    };
    let head = "project_name: diff\nglobal:\n  addressing:\n    base_octet: 10\n    zone_base: 100\n  default_os_image: \"images:debian/13\"\ndomains:\n";
    let mut domain = "  work:\n    trust_level: trusted\n".to_string();
    if !profile.is_empty() {
        domain.push_str("    profiles:\n      p:\n");
        domain.push_str(&config(profile, "        "));
    }
    domain.push_str("    machines:\n      c:\n        type: lxc\n");
    if !profile.is_empty() {
        domain.push_str("        profiles: [default, p]\n");
    }
    if !machine.is_empty() {
        domain.push_str(&config(machine, "        "));
    }
    let text = format!("{head}{domain}");
    let compilation = compile_source("differential.yml", &text, Options::default());
    let errors: Vec<_> = compilation.diagnostics.iter().filter(|d| d.is_error()).collect();
    let outside: Vec<String> = errors
        .iter()
        .filter(|d| d.primary_span().start < head.len())
        .map(|d| format!("{}: {}", d.code.id, d.message))
        .collect();
    assert!(outside.is_empty(), "{profile:?} {machine:?}: errors outside the domain: {outside:?}");
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

    /// Incus's verdict on a profile with `profile` as config and a container that uses
    /// it with `machine` as config (no profile when `profile` is empty).
    fn accepts_set(&self, index: usize, profile: &[(&str, &str)], machine: &[(&str, &str)]) -> (bool, String) {
        let last_line =
            |run: &Run| run.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        let profile_name = format!("p{index}");
        let instance = format!("s{index}");
        let mut init = vec!["init", "--empty", instance.as_str(), "--project", self.name.as_str()];
        if !profile.is_empty() {
            incus_ok(&["profile", "create", &profile_name, "--project", &self.name]);
            let pairs: Vec<String> = profile.iter().map(|(key, value)| format!("{key}={value}")).collect();
            let mut set = vec!["profile", "set", profile_name.as_str()];
            set.extend(pairs.iter().map(String::as_str));
            set.extend(["--project", self.name.as_str()]);
            let run = incus(&set).unwrap_or_else(|why| panic!("{why}"));
            if !run.ok {
                incus_ok(&["profile", "delete", &profile_name, "--project", &self.name]);
                return (false, last_line(&run));
            }
            init.extend(["-p", "default", "-p", profile_name.as_str()]);
        }
        let pairs: Vec<String> = machine.iter().map(|(key, value)| format!("{key}={value}")).collect();
        for pair in &pairs {
            init.extend(["-c", pair.as_str()]);
        }
        let run = incus(&init).unwrap_or_else(|why| panic!("{why}"));
        if run.ok {
            incus_ok(&["delete", &instance, "--project", &self.name, "--force"]);
        }
        if !profile.is_empty() {
            incus_ok(&["profile", "delete", &profile_name, "--project", &self.name]);
        }
        (run.ok, last_line(&run))
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
    key: String,
    value: String,
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
    for (key, value) in CORPUS.iter().copied() {
        assert!(seen.insert((key, value)), "{key}={value:?} is listed twice");
    }
    let mut sets = std::collections::BTreeSet::new();
    for set in KEY_SETS {
        assert!(sets.insert(*set), "{set:?} is listed twice");
    }
}

/// The warnings Incus's acceptance leaves: a `volatile.*` key, a control character, a
/// cloud-init document with a tail each get theirs, and none is an error.
#[test]
fn accepted_mistakes_are_warnings() {
    let warnings = |key: &str, value: &str| -> Vec<&'static str> {
        let head = "project_name: diff\nglobal:\n  addressing:\n    base_octet: 10\n    zone_base: 100\n  default_os_image: \"images:debian/13\"\ndomains:\n  work:\n    trust_level: trusted\n    machines:\n      c:\n        type: lxc\n        config:\n          ";
        let text = format!("{head}{}: {}\n", quoted(key), quoted(value));
        let compilation = compile_source("differential.yml", &text, Options::default());
        assert!(compilation.plan.is_some(), "{key}={value:?} does not compile");
        compilation.diagnostics.iter().filter(|d| !d.is_error()).map(|d| d.code.id).collect()
    };
    assert!(warnings("volatile.eth0.hwaddr", "00:16:3e:00:00:01").contains(&"W0008"));
    assert!(warnings("user.note", "bell\u{7}here").contains(&"W0009"));
    assert!(warnings("cloud-init.network-config", "{a: 1}}").contains(&"W0010"));
    assert!(warnings("user.note", "fine").is_empty());
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
    for (index, (key, value)) in CORPUS.iter().copied().enumerate() {
        let (incus_ok, incus_message) = project.accepts(&format!("c{index}"), key, value);
        rows.push(Row {
            key: key.to_string(),
            value: value.to_string(),
            anklumec: anklumec_errors(key, value),
            incus_ok,
            incus_message,
        });
    }
    let pairs = rows.len();
    for (index, (profile, machine)) in KEY_SETS.iter().enumerate() {
        let (incus_ok, incus_message) = project.accepts_set(index, profile, machine);
        let show =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(" ");
        rows.push(Row {
            key: format!("profile [{}]", show(profile)),
            value: format!("container [{}]", show(machine)),
            anklumec: anklumec_set_errors(profile, machine),
            incus_ok,
            incus_message,
        });
    }
    drop(project);
    let elapsed = started.elapsed();

    let disagreements: Vec<&Row> = rows.iter().filter(|row| row.anklumec.is_empty() != row.incus_ok).collect();
    let count = |rows: &[Row]| (rows.len(), rows.iter().filter(|row| row.incus_ok).count());
    let (all, accepted) = count(&rows[..pairs]);
    let (sets, sets_accepted) = count(&rows[pairs..]);
    eprintln!(
        "differential: {all} pairs ({accepted} accepted by incus, {} refused) and {sets} key sets ({sets_accepted} accepted, {} refused): {} agree, {} disagree, in {:.1}s",
        all - accepted,
        sets - sets_accepted,
        rows.len() - disagreements.len(),
        disagreements.len(),
        elapsed.as_secs_f64()
    );
    assert!(
        disagreements.is_empty(),
        "anklumec and incus disagree on {} of {} cases:\n{}",
        disagreements.len(),
        rows.len(),
        table(&disagreements)
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
