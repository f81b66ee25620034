//! The registry of diagnostic codes. Each code has a default severity, a one-line
//! summary and a long explanation (`anklumec explain CODE`).

use super::Severity;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Code {
    pub id: &'static str,
    severity: Severity,
    pub summary: &'static str,
    pub explanation: &'static str,
}

impl Code {
    pub fn severity(self) -> Severity {
        self.severity
    }

    pub fn lookup(id: &str) -> Option<Code> {
        ALL.iter().copied().find(|code| code.id.eq_ignore_ascii_case(id))
    }
}

macro_rules! codes {
    ($( $name:ident = $id:literal, $severity:ident, $summary:literal, $explanation:literal; )*) => {
        $( pub const $name: Code = Code {
            id: $id,
            severity: Severity::$severity,
            summary: $summary,
            explanation: $explanation,
        }; )*
        /// Every code, in id order.
        pub const ALL: &[Code] = &[$($name),*];
    };
}

codes! {
    YAML_SYNTAX = "E0001", Error, "the file is not valid YAML",
"The file could not be read as YAML. The label points at the character where the
YAML parser stopped. Common causes: a tab used for indentation (YAML allows only
spaces), a missing space after `:`, an unclosed quote or bracket, or a line indented
at a level that matches no enclosing mapping.

    domains:
    	work:        # a tab: use spaces";

    DUPLICATE_KEY = "E0002", Error, "a key appears twice in one mapping",
"A YAML mapping may hold each key only once. Many YAML loaders silently keep the last
value, which hides mistakes (two machines with the same name, a config key set twice
with different values). anklumec rejects the file and shows both places.

    machines:
      web: {type: lxc}
      web: {type: vm}    # error: `web` is already defined above";

    WRONG_TYPE = "E0003", Error, "a value has the wrong type or shape",
"Each key of infra.yml expects a certain kind of value: a mapping, a list, a string,
an integer or a boolean. The label shows the value and the kind that was expected.

    machines:
      - web            # error: `machines` is a mapping of name -> machine
    ...
    boot_priority: high   # error: expected an integer, found a string";

    MISSING_KEY = "E0004", Error, "a required key is missing",
"Some keys are required: `project_name`, `global` and `domains` at the top level, and
`from`, `to` and `ports` in every network policy (`ports: all` opens every port: a
policy never opens everything by leaving it out). Add the key where the label points. (A
missing `subnet_id` in legacy addressing is E0013; a device without `type` is E0028.)";

    INVALID_ENUM = "E0005", Error, "a value is not one of the allowed choices",
"Some keys accept a fixed set of values:

    type:        lxc | vm
    trust_level: admin | trusted | semi-trusted | untrusted | disposable
    gpu_policy:  exclusive | shared
    protocol:    tcp | udp

The help line suggests the closest allowed value.";

    RESOURCE_LIMIT = "E0006", Error, "the input exceeds a resource limit",
"anklumec bounds the resources a single input can take, so that a hostile or broken
file cannot exhaust memory or time: the file size, the nesting depth of mappings and
lists, and the number of nodes YAML aliases may expand to (the \"billion laughs\"
attack). Remove the deep nesting or the alias expansion the label points at.";

    INVALID_NAME = "E0007", Error, "a name is not a valid Incus name",
"Domain names become Incus project names and part of bridge names (`net-<domain>`);
machine names become instance names and DNS host names; profile names become Incus
profile names. anklumec accepts the names that are valid for every Incus version:
lowercase letters, digits and `-`, starting with a letter or digit and not ending
with `-`, at most 63 characters, not all digits.

    machines:
      Web_1:      # error: use `web-1`

`global.incus_remote` names an incus remote, which the incus client reads in front of a
resource as `NAME:`: it cannot hold `:`, `/`, whitespace or control characters, nor
start with `-`.

Device and storage volume names use letters, digits and `-_./:` (volumes not `/`), and
storage pool names cannot hold `/`, whitespace or control characters. None of them may
start with `-`: deploy.sh hands them to the incus command line, which would read them
as options. A domain cannot be named `default`, the Incus server's own project.";

    DUPLICATE_MACHINE = "E0008", Error, "a machine name is used twice",
"Machine names must be unique across the whole infrastructure, not only within a
domain: every machine is an Incus instance whose name is also its DNS name, and
anklume's inventory keys hosts by name. Rename one of the two machines.";

    INVALID_ADDRESS = "E0009", Error, "an IPv4 address is malformed",
"`ip` must be a dotted-quad IPv4 address such as `10.120.0.10`, without a prefix
length (the /24 comes from the domain's subnet).";

    ADDRESS_OUTSIDE_SUBNET = "E0010", Error, "an address is outside its domain's subnet",
"Each domain has one /24 subnet, derived from its trust level (or `subnet_id` in
legacy mode). A machine's `ip` must lie in the subnet of the domain that declares it;
Incus would otherwise refuse to start the instance (`Device IP address not within
network subnet`). The note shows the domain's subnet.";

    DUPLICATE_ADDRESS = "E0011", Error, "an address is used by two machines",
"Two machines cannot share an IPv4 address. The secondary label shows the machine
that holds it first. Automatic addresses never collide with explicit ones; this error
is always about two explicit `ip` values.";

    RESERVED_ADDRESS = "E0012", Error, "an address is reserved in the domain's subnet",
"In every domain subnet, `.0` is the network address, `.255` the broadcast address,
`.254` the gateway (the bridge itself), and `.100`-`.249` the DHCP pool that Incus
hands out dynamically. A static `ip` must be one of `.1`-`.99`, `.250`-`.253`.";

    SUBNET_ID = "E0013", Error, "a subnet_id is missing or out of range",
"`subnet_id` is the third octet of the domain's subnet: an integer from 0 to 254. In
legacy addressing (`global.base_subnet`) every domain needs one; with
`global.addressing` it is optional and overrides the alphabetical numbering.";

    DUPLICATE_SUBNET_ID = "E0014", Error, "two domains use the same subnet",
"Two domains in the same zone (same trust level, or the whole file in legacy mode)
cannot share a `subnet_id`: they would get the same /24 subnet.";

    UNKNOWN_PROFILE = "E0015", Error, "a machine uses a profile its domain does not define",
"A machine's `profiles` may name `default` or a profile declared under its own
domain's `profiles`. Profiles are per domain (each domain is an Incus project with its
own profiles), so a profile of another domain is not visible.";

    INVALID_ADDRESSING = "E0016", Error, "the addressing settings are invalid",
"`global.addressing` takes `base_octet` (must be 10), `zone_base` (0-245) and
`zone_step` (a positive integer). The legacy `global.base_subnet` must be two octets
such as `\"10.100\"`. Only one of the two modes may be used.";

    OCTET_OVERFLOW = "E0017", Error, "a computed address octet is past 255",
"The second octet of a domain subnet is `zone_base` plus the trust level's offset
(admin 0, trusted 10, semi-trusted 20, untrusted 40, disposable 50); the third is the
domain's number in its zone. Both must stay within 0-255. Lower `zone_base`, or give
fewer domains the trust level.";

    ADDRESSES_EXHAUSTED = "E0018", Error, "a domain has more machines than automatic addresses",
"Machines without `ip` get `.1` to `.99` of their domain's subnet, in declaration
order, skipping addresses taken explicitly. A domain with more than 99 such machines
runs out. Split the domain, or give some machines explicit addresses in `.250`-`.253`.";

    DUPLICATE_BRIDGE = "E0019", Error, "two domains would share a bridge",
"Each domain gets its own bridge, `net-<domain>`, shortened to 15 characters when the
domain name is long (see W0006). Two domains whose bridge names come out the same (an
11-character domain that looks like another domain's shortened name) would share one
network. Rename one of the domains.";

    OUT_OF_RANGE = "E0020", Error, "a number is out of range",
"Some integers have bounds: `boot_priority` 0-100, wait retries 1-100000 and delays
0-3600 seconds, a machine's `weight` at least 1. The label shows the value and its
bounds. (Ports out of range are E0025.)";

    INVALID_CRON = "E0021", Error, "a snapshot schedule is not a cron expression Incus accepts",
"`snapshots_schedule` is a cron expression: five fields separated by single spaces,
minute (0-59), hour (0-23), day of month (1-31), month (1-12 or `jan`-`dec`) and day of
week (0-6 or `sun`-`sat`; Sunday is 0, 7 is refused), such as `0 3 * * *`. A field is
`*`, a number, a range (`1-5`), a list (`1,15`) or a step (`*/15`, `0-30/10`). Instead
of five fields, an alias: `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`,
`@yearly`, `@annually`, `@startup` (when the instance starts) or `@never`. Several
schedules are joined by a comma and a space: `0 3 * * *, @startup`. The label points
at the offending field or character.

    snapshots_schedule: \"0 3 * *\"      # error: missing the day-of-week field
    snapshots_schedule: \"0 24 * * *\"   # error: `24` is out of range for hours";

    INVALID_EXPIRY = "E0022", Error, "a snapshot expiry is not a duration",
"`snapshots_expiry` is how long Incus keeps a snapshot: a number and a unit, such as
`30d`, or several such parts separated by single spaces, each unit at most once
(`1w 3d`, `2H 30M`). Units are case-sensitive: `M` minutes, `H` hours, `d` days, `w`
weeks, `y` years. Incus refuses a lowercase `h` (write `24H`), and reads a lowercase
`m` as months while anklume's documentation uses it for minutes (`60m`), so anklumec
refuses `m`: write `M` for minutes, weeks or years for long periods.

    snapshots_expiry: 24h    # error: hours are `H`
    snapshots_expiry: 60m    # error: `m` is ambiguous";

    GPU_EXCLUSIVE = "E0023", Error, "several machines use a GPU under the exclusive policy",
"With `global.gpu_policy: exclusive` (the default) at most one machine may have GPU
access: `gpu: true`, or a profile or device of type `gpu`. Set `gpu_policy: shared` to
let several machines share the GPU (without VRAM isolation).";

    UNKNOWN_POLICY_TARGET = "E0024", Error, "a network policy names an unknown domain or machine",
"`from` and `to` in `network_policies` must name a domain, a machine, or `host`; the
consumers of a shared volume must name a domain or a machine. The help suggests the
closest known name.";

    INVALID_PORTS = "E0025", Error, "a network policy has invalid ports or protocol",
"`ports` is `all` or a non-empty list of integers from 1 to 65535; `protocol` is `tcp`
or `udp`. An empty list would open nothing: remove the policy instead.";

    NO_IMAGE = "E0026", Error, "a machine has no image",
"Every machine needs an image: its own `os_image`, or `global.default_os_image`.";

    INVALID_IMAGE = "E0027", Error, "an image reference is malformed",
"An image reference is `[<remote>:]<alias-or-fingerprint>`, such as `images:debian/13`,
`local:tiny`, `tiny` or a fingerprint prefix. The remote is letters, digits, `.`, `_`
and `-`. The image must not be empty, start with `-` (it would read as an option of
`incus launch`), or contain whitespace, control or invisible characters, or a second
`:`. The label points at the offending character.";

    DEVICE_TYPE = "E0028", Error, "a device has no type",
"Every device (in a profile or a machine) needs `type`: `nic`, `disk`, `gpu`, `proxy`,
`usb`, `unix-char`, `unix-block`, `unix-hotplug`, `infiniband`, `tpm`, `pci` or `none`.";

    DOCUMENT_SHAPE = "E0029", Error, "the file does not hold exactly one YAML document",
"infra.yml is one YAML document whose top level is a mapping. An empty file, a file
holding only comments, or several documents separated by `---` are rejected.";

    INVALID_VALUE = "E0030", Error, "a value is not allowed here",
"The value cannot be used where it appears: a string with a NUL byte (a command line
cannot carry it, and Incus cuts a value at its first NUL byte), a profile listed twice
by one machine, a volume whose name clashes with a device of its machine. The label
explains which. (Other control characters are W0009.)";

    UNKNOWN_CONFIG_KEY = "E0031", Error, "an Incus configuration key does not exist",
"The key is not an instance option of Incus 6.0 (anklumec checks against Incus's own
table of configuration keys). Incus would refuse it when the instance or profile is
created (`Unknown configuration key`), halfway through the deployment. The help
suggests the closest valid key. Free-form keys are allowed under `user.*` and
`environment.*`. A `volatile.*` key is E0031 when Incus does not know it, and in a
profile (`Volatile keys can only be set on instances`); one Incus knows, in a machine's
own config, is a warning, W0008.";

    CONFIG_KEY_WRONG_TYPE = "E0032", Error, "a configuration key does not apply to this instance type",
"Some Incus options exist only for containers (`security.nesting`, `security.privileged`,
`raw.lxc`, `nvidia.runtime`, `limits.processes`, ...) or only for virtual machines
(`security.secureboot`, `security.csm`, `raw.qemu`, ...). In a machine's own `config`,
Incus refuses a key of the other type. Move it to the right machine, or change the
machine's `type`.";

    INVALID_CONFIG_VALUE = "E0033", Error, "a configuration value is not valid for its key",
"Incus validates every value: booleans are `true` or `false` (as strings), integers are
plain numbers, sizes are an integer with a case-sensitive unit (`512MiB`, `2GiB`, `1GB`; no
decimals, no `M` or `Gib`) or a percentage, CPU limits a count (`2`) or a set (`0-3`,
`0,2-3`). The label points at the offending character.";

    DEVICE_OPTION = "E0034", Error, "a device option is missing or not valid here",
"Each device type has options it needs and options it accepts, and Incus refuses the
device when the instance is created or started. A `disk` needs `source` (except the
root disk, which needs `pool`) and, in a container, `path`; a `proxy` needs `listen`
and `connect`; a `nic` on a managed network takes `network` and not `nictype`; the
`pci` device type passes a host device through to a VM only. Unknown options are
reported for the types whose option list is known exactly (`disk`, `unix-*`, `usb`,
`none`). The label shows the device or option at fault.";

    UNKNOWN_DEVICE_TYPE = "E0035", Error, "a device type does not exist",
"Incus device types are `nic`, `disk`, `gpu`, `proxy`, `usb`, `unix-char`, `unix-block`,
`unix-hotplug`, `infiniband`, `tpm`, `pci` and `none`. The help suggests the closest one.";

    CONFIG_CONFLICT = "E0036", Error, "two configuration keys cannot be set together",
"Incus checks some keys against each other, in a profile's config and in an instance's
config merged with its profiles, and refuses the instance or profile when they
conflict:

- `security.syscalls.allow` (a syscall allow list) cannot be present, even empty,
  together with `security.syscalls.deny` (even empty), `security.syscalls.deny_default`
  or `security.syscalls.deny_compat` set to true (`security.syscalls.allow is mutually
  exclusive with security.syscalls.deny*`). The deprecated names count too.
- A key and its deprecated name cannot both hold a value: `security.syscalls.allow` and
  `security.syscalls.whitelist`, `security.syscalls.deny` and
  `security.syscalls.blacklist`, `..._default` and `..._compat` likewise.
- `nvidia.runtime` cannot be true in a privileged container (`security.privileged`
  true): `nvidia.runtime is incompatible with privileged containers`.

The primary label is on one key, the secondary on the other; when a profile brings one
of them, the label says which.

    config:
      security.syscalls.allow: \"mount\"
      security.syscalls.deny: \"kexec_load\"   # error: allow or deny, not both";

    NO_ROOT_DISK = "E0037", Error, "a machine has no root disk",
"Incus refuses to create an instance without a root disk, a `disk` device with
`path: /` (`Failed getting root disk: No root device could be found`). anklumec gives
each domain's `default` profile one; a machine that leaves `default` out of its
`profiles` (or has `profiles: []`) needs one from another of its profiles or from its
own `devices`. Devices merge as Incus merges them: profiles in order, then the
machine's own, a device replacing an earlier one of the same name (a `none` device
named `root` removes it).

    machines:
      gpu-box:
        type: vm
        profiles: [vm-resources]   # error: no root disk; use [default, vm-resources]";

    POLICY_TARGET_NO_ADDRESS = "E0038", Error, "a network policy names a machine without a fixed address",
"A policy that names a machine opens traffic from or to that machine's address only,
so the machine needs one known when the deployment is compiled. In legacy addressing
(`global.base_subnet`) a machine without `ip` takes a DHCP lease, which no rule can
name. Give the machine an `ip`, or name its domain in the policy.

    machines:
      web: {}            # no ip: a DHCP lease
    network_policies:
      - from: admin
        to: web          # error: give web an `ip`";

    AMBIGUOUS_POLICY_TARGET = "E0039", Error, "a network policy names both a domain and a machine",
"A policy's `from` or `to` names a domain or a machine. When a domain and a machine
have the same name, the policy could mean the whole domain or one machine of it:
rename the machine or the domain.";

    UNKNOWN_KEY = "W0001", Warning, "an unknown key is ignored",
"infra.yml has a key that anklumec (and anklume) does not know. It is ignored, which
usually means a typo: the help line suggests the closest known key and lists the keys
valid at that place.";

    LXC_FOR_UNTRUSTED = "W0002", Warning, "an untrusted or disposable domain runs a container",
"Containers share the host kernel. For untrusted or disposable workloads a VM
(`type: vm`) gives hardware-level isolation, as the anklume VM guide recommends.";

    PRIVILEGED_CONTAINER = "W0003", Warning, "a container is privileged",
"`security.privileged: \"true\"` maps the container's root to the host's root: an
escape from the container is an escape to the host. anklume forbids it outside a VM.";

    GPU_SHARED = "W0004", Warning, "several machines share a GPU",
"With `gpu_policy: shared`, several machines have GPU access. Consumer GPUs have no
VRAM isolation: one machine can read what another left in GPU memory.";

    POLICY_DISABLED_DOMAIN = "W0005", Warning, "a network policy names a disabled domain",
"The policy refers to a domain with `enabled: false`; it has no effect until the
domain is enabled.";

    BRIDGE_NAME_TOO_LONG = "W0006", Warning, "a domain's bridge name is shortened to 15 characters",
"Each domain gets a bridge named `net-<domain>`. Bridges are Linux network interfaces,
whose names hold at most 15 characters, so for a domain name longer than 11
characters Incus would refuse `net-<domain>` (`Network interface is too long`), and
anklume's own generator fails at deploy time. anklumec uses a shortened, stable name
instead: `net-`, the first characters of the domain, `-`, and four hex digits derived
from the whole domain name (so two long domains never share a bridge). The label shows
the name used. Shorten the domain name to 11 characters to keep anklume's convention.";

    PROFILE_KEY_NO_EFFECT = "W0007", Warning, "a profile key has no effect on a machine that uses it",
"Incus accepts container-only and VM-only keys in a profile (a profile may serve both
types), and each instance ignores the keys of the other type. A machine that uses such
a profile silently does without the setting: a VM-only key like `security.secureboot`
does nothing for a container. The same holds for a device type the instance cannot have
(a `pci` device reaching a container through a profile is ignored). The label is on the
machine's profile reference; the secondary label shows the key or device in the profile.";

    VOLATILE_KEY = "W0008", Warning, "a machine sets a `volatile.*` key",
"`volatile.*` keys hold Incus's own state of an instance: its UUID, the MAC address and
host name of each network device, its ID map, its last power state. Incus accepts the
ones it knows when an instance is created (so anklumec does too), but it sets and
rewrites them itself: a value from infra.yml can be replaced at the next start, can
clash with another instance (two instances with one MAC address or UUID), or can break
the instance (a wrong ID map leaves its files owned by the wrong users). `anklumec diff`
ignores `volatile.*` keys, and deploy.sh would set the value again whenever the machine
changes. Use the supported setting instead: a nic's `hwaddr` option for a MAC address,
`security.idmap.*` or `raw.idmap` for ID maps. (A `volatile.*` key Incus does not know,
or one in a profile, is E0031; a value it refuses is E0033.)";

    CONTROL_CHARACTER = "W0009", Warning, "a value holds a control character",
"The string holds a control character other than tab and newline (an escape, a bell, a
carriage return, a C1 control). Incus stores it as it is, and deploy.sh passes it
quoted (as `$'...'` with `\\xHH` escapes, so the script itself shows no raw control
character), so nothing breaks on the way; but such characters are almost always a
paste mistake, they are invisible in a terminal or rewrite what it shows, and they
reach the instance's configuration and tools that read it. The label gives the character and its position.
(A NUL byte cannot be passed at all: E0030.)";

    CLOUD_INIT_YAML = "W0010", Warning, "a cloud-init document is malformed after its first node",
"Incus reads `cloud-init.network-config` with a YAML library that stops after the
document's first node: text after a closing flow bracket (`{a: 1}}`, `{a: 1} x`, a
block key after a flow mapping) is ignored, so Incus accepts the value. cloud-init
reads it with a strict YAML parser and will probably refuse it when the instance
boots, leaving the instance without the network configuration you meant. The label
points at the text after the first node; remove it, or write the whole value as one
mapping.";

    REPLACED_CONFIG_KEY = "W0011", Warning, "a config key is replaced by the value anklume sets",
"Some Incus keys are what anklume's own machine settings stand for, and anklumec
writes them on every instance it creates: `security.protection.delete` from
`ephemeral` (always: `true` unless the machine or its domain is ephemeral),
`boot.autostart` from `boot_autostart`, `boot.autostart.priority` from
`boot_priority`, `snapshots.schedule` from `snapshots_schedule` and `snapshots.expiry`
from `snapshots_expiry`. The documented setting wins, so a different value written
under `config` is replaced, and a profile's `security.protection.delete` never takes
effect (an instance's own config comes before its profiles'). The label shows the
value that is written instead; use the machine setting (`ephemeral: true` lets a
machine be deleted) and remove the key.";

    YAML11_NUMBER = "W0012", Warning, "a number reads differently in anklume (YAML 1.1)",
"anklumec reads YAML 1.2; anklume reads infra.yml with PyYAML, which follows YAML 1.1,
and the two read some unquoted numbers differently. A leading zero makes an octal
number in YAML 1.1 (`010` is 8 there, 10 here) or, with an 8 or 9, text (`09`);
underscores and colons make numbers in YAML 1.1 only (`1_000` is 1000, `12:30` is
750, base 60), and `0b101` is binary there, while `0o17` is octal only here. The same
file would then give anklume another subnet, address or limit than anklumec.

    subnet_id: 010      # warning: 10 here, 8 in anklume

Write the number without a leading zero, underscore or colon, or quote it when the
text is meant (`\"12:30\"`).";

    NO_ISOLATION = "W0013", Warning, "the domains are not isolated from each other",
"With `global.network_isolation: false` the domains' bridges get no network ACL: every
machine can reach every machine of every domain, whatever its trust level, and
`network_policies` have no effect. Use it only for a server that cannot enforce the
isolation (deploy.sh and `anklumec apply` stop before any change on such a server,
saying why, when the setting is left out); on such a server, `anklumec infra.yml
--emit nftables -o isolation.nft` writes the same isolation as a host nftables ruleset
(`nft -f isolation.nft`). Machines still cannot take each other's addresses (MAC and
IPv4 filtering stay on).";

    NOT_ACTED_ON = "N0001", Note, "a key is accepted but anklumec does not act on it",
"The key belongs to anklume's schema (or another anklume tool) and is type-checked,
but the deployment plan anklumec produces does not use it: for example
`shared_volumes`, `file_portal`, `ai_*` settings. It is reported so that nothing is dropped silently.";

    NORMALISED_VALUE = "N0002", Note, "a config value was normalised to a string",
"Incus stores every configuration value as a string. An unquoted YAML boolean or
number (`security.nesting: true`, `limits.cpu: 2`) is accepted and written as the
string Incus expects (`\"true\"`, `\"2\"`). Quote the value to silence this note.";

    VM_DEFAULT_MEMORY = "N0003", Note, "a VM gets Incus's default memory",
"A VM without `limits.memory` (in its config or a profile) gets Incus's default of
1 GiB, and one vCPU without `limits.cpu`.";

    POLICY_NO_RULE = "N0004", Note, "a network policy needs no rule",
"Each domain's bridge admits what comes from the domain itself and from the host (the
host reaches a bridge through its gateway, inside the domain's subnet), and lets out
what its machines send, to the host and through NAT. So a policy between two machines
of one domain, or one that names `host`, opens nothing that is not open already, and
anklumec makes no rule of it (as anklume's own nftables rules do). Traffic between
domains is what the isolation blocks and what policies open.";
}
