//! Configuration keys Incus checks against each other (E0036).
//!
//! Incus 6.0.4 refuses these combinations in a profile's own config and in an
//! instance's config merged with its profiles (checked against the real server by
//! `tests/differential_incus.rs`, `KEY_SETS`):
//!
//! - the syscall allow list (`security.syscalls.allow`, or its old name `whitelist`)
//!   present, even empty, with the deny list (`deny`, `blacklist`) present, even empty,
//!   or with `deny_default` / `deny_compat` (or `blacklist_default` / `blacklist_compat`)
//!   true;
//! - a key and its deprecated name both non-empty (`allow` and `whitelist`, ...);
//! - `nvidia.runtime` true in a privileged container (`security.privileged` true).
//!
//! A profile's own conflicts are reported on the profile, a machine's own on the
//! machine; then, for the merged config, only those where the machine and a profile,
//! or two profiles, bring the two keys, so that one mistake gives one error. Incus
//! checks a config as sent, empty values included, but merges configs as stored,
//! where an empty value is no key at all; so does this pass. Every key involved is container-only, and the merged check
//! runs on containers (a VM's profile keys of the other type are W0007 already).
//! Other combinations probed on the server (`security.privileged` with
//! `security.idmap.isolated`, `raw.idmap` or `security.nesting`; `limits.cpu` with
//! `limits.cpu.allowance` or `limits.cpu.nodes`; ...) are accepted at creation.

use super::printable;
use crate::diagnostics::{Diagnostic, Diagnostics, codes};
use crate::syntax::ast::{ConfigEntry, Domain, Infra, InstanceType, Machine};

const ALLOW: &str = "security.syscalls.allow";
const DENY: &str = "security.syscalls.deny";

/// Current name and deprecated name.
const RENAMED: &[(&str, &str)] = &[
    (ALLOW, "security.syscalls.whitelist"),
    (DENY, "security.syscalls.blacklist"),
    ("security.syscalls.deny_default", "security.syscalls.blacklist_default"),
    ("security.syscalls.deny_compat", "security.syscalls.blacklist_compat"),
];

/// Where an entry comes from: a machine's own config, or a profile it uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source<'a> {
    Own,
    Profile(&'a str),
}

/// A config as Incus sees it: entries in the order they apply (profiles first, the
/// instance last), the last one of a key winning.
struct Merged<'a> {
    entries: Vec<(&'a ConfigEntry, Source<'a>)>,
}

impl<'a> Merged<'a> {
    /// The entry that gives `key` its value, if the key is present.
    fn get(&self, key: &str) -> Option<(&'a ConfigEntry, Source<'a>)> {
        self.entries.iter().rev().find(|(entry, _)| entry.key.value == key).copied()
    }

    fn non_empty(&self, key: &str) -> Option<(&'a ConfigEntry, Source<'a>)> {
        self.get(key).filter(|(entry, _)| !entry.value.value.is_empty())
    }

    /// Present with a value Go's `util.IsTrue` takes as true.
    fn is_true(&self, key: &str) -> Option<(&'a ConfigEntry, Source<'a>)> {
        self.get(key).filter(|(entry, _)| crate::rules::incus_bool(&entry.value.value) == Some(true))
    }
}

/// One conflict: the key that is refused, the key it conflicts with, and why.
struct Conflict<'a> {
    primary: (&'a ConfigEntry, Source<'a>),
    secondary: (&'a ConfigEntry, Source<'a>),
    message: String,
    incus: String,
    help: String,
}

fn conflicts<'a>(config: &Merged<'a>) -> Vec<Conflict<'a>> {
    let mut found = Vec::new();
    for (current, old) in RENAMED {
        if let (Some(new), Some(deprecated)) = (config.non_empty(current), config.non_empty(old)) {
            found.push(Conflict {
                primary: deprecated,
                secondary: new,
                message: format!("`{old}` and `{current}` are both set"),
                incus: format!("Mutually exclusive keys {current} and {old} are set"),
                help: format!("`{old}` is the deprecated name of `{current}`: keep only `{current}`."),
            });
        }
    }
    let allow = config.get(ALLOW).or_else(|| config.get(RENAMED[0].1));
    let deny = config
        .get(DENY)
        .or_else(|| config.get(RENAMED[1].1))
        .or_else(|| RENAMED[2..].iter().find_map(|(current, old)| config.is_true(current).or(config.is_true(old))));
    if let (Some(allow), Some(deny)) = (allow, deny) {
        found.push(Conflict {
            primary: deny,
            secondary: allow,
            message: format!(
                "`{}` cannot be set with the syscall allow list `{}`",
                printable(&deny.0.key.value),
                printable(&allow.0.key.value)
            ),
            incus: "security.syscalls.allow is mutually exclusive with security.syscalls.deny*".to_string(),
            help: "Use either an allow list (`security.syscalls.allow`) or a deny list (`security.syscalls.deny`, `deny_default`, `deny_compat`), and remove the other keys, even empty ones.".to_string(),
        });
    }
    if let (Some(runtime), Some(privileged)) = (config.is_true("nvidia.runtime"), config.is_true("security.privileged"))
    {
        found.push(Conflict {
            primary: runtime,
            secondary: privileged,
            message: "`nvidia.runtime` cannot be enabled in a privileged container".to_string(),
            incus: "nvidia.runtime is incompatible with privileged containers".to_string(),
            help: "Use an unprivileged container (remove `security.privileged`) for the NVIDIA runtime.".to_string(),
        });
    }
    found
}

fn label(entry: &ConfigEntry, source: Source<'_>, role: &str) -> String {
    let key = printable(&entry.key.value);
    match source {
        Source::Own => format!("`{key}` {role}"),
        Source::Profile(profile) => format!("`{key}` {role}, from profile `{profile}`"),
    }
}

fn diagnostic(conflict: &Conflict<'_>) -> Diagnostic {
    let (primary, primary_source) = conflict.primary;
    let (secondary, secondary_source) = conflict.secondary;
    Diagnostic::new(
        codes::CONFIG_CONFLICT,
        primary.key.span,
        conflict.message.clone(),
        label(primary, primary_source, "is set here"),
    )
    .with_label(secondary.key.span, label(secondary, secondary_source, "is set here"))
    .with_note(format!("Incus refuses it: `{}`", conflict.incus))
    .with_help(conflict.help.clone())
}

pub fn check(infra: &Infra, diagnostics: &mut Diagnostics) {
    for domain in &infra.domains {
        for profile in &domain.profiles {
            let merged = Merged { entries: profile.config.iter().map(|entry| (entry, Source::Own)).collect() };
            for conflict in conflicts(&merged) {
                diagnostics.push(diagnostic(&conflict));
            }
        }
        for machine in domain.machines.iter().filter(|machine| machine.kind() == InstanceType::Container) {
            check_machine(domain, machine, diagnostics);
        }
    }
}

/// Incus checks an instance's own config as sent (empty values included), then its
/// config merged with its profiles as stored, where an empty value is no key at all.
fn check_machine(domain: &Domain, machine: &Machine, diagnostics: &mut Diagnostics) {
    let own = Merged { entries: machine.config.iter().map(|entry| (entry, Source::Own)).collect() };
    for conflict in conflicts(&own) {
        diagnostics.push(diagnostic(&conflict));
    }
    let stored = |entry: &&ConfigEntry| !entry.value.value.is_empty();
    let mut entries = Vec::new();
    for (profile, _) in super::config::used_profiles(domain, machine) {
        entries.extend(profile.config.iter().filter(stored).map(|entry| (entry, Source::Profile(&profile.name.value))));
    }
    entries.extend(machine.config.iter().filter(stored).map(|entry| (entry, Source::Own)));
    for mut conflict in conflicts(&Merged { entries }) {
        let sources = (conflict.primary.1, conflict.secondary.1);
        // Both keys from the machine, or from one profile: said already.
        if sources.0 == sources.1 {
            continue;
        }
        // The primary label goes on the machine's own key when it has one.
        if sources.0 != Source::Own && sources.1 == Source::Own {
            std::mem::swap(&mut conflict.primary, &mut conflict.secondary);
        }
        let mut diagnostic = diagnostic(&conflict);
        {
            let name = &machine.name.value;
            diagnostic = diagnostic
                .with_label(machine.name.span, format!("container `{name}` gets both keys"))
                .with_note(format!("Incus checks `{name}`'s config merged with its profiles, where the two keys meet"));
        }
        diagnostics.push(diagnostic);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn syscall_lists_and_deprecated_names() {
        let text = with_domains(
            "  work:\n    machines:\n      a:\n        config:\n          security.syscalls.allow: \"\"\n          security.syscalls.deny: \"\"\n      b:\n        config:\n          security.syscalls.whitelist: mount\n          security.syscalls.deny_default: \"yes\"\n      c:\n        config:\n          security.syscalls.allow: mount\n          security.syscalls.deny_default: \"false\"\n          security.syscalls.deny_compat: \"\"\n      d:\n        config:\n          security.syscalls.deny_default: \"false\"\n          security.syscalls.blacklist_default: \"false\"\n      e:\n        config:\n          security.syscalls.allow: \"\"\n          security.syscalls.whitelist: mount\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(
            found(&text, &diagnostics, "E0036"),
            ["security.syscalls.deny", "security.syscalls.deny_default", "security.syscalls.blacklist_default"]
        );
        let first = diagnostics.iter().find(|d| d.code.id == "E0036").expect("a");
        assert_eq!(secondaries(&text, first), ["security.syscalls.allow"]);
        assert_eq!(
            first.message,
            "`security.syscalls.deny` cannot be set with the syscall allow list `security.syscalls.allow`"
        );
    }

    #[test]
    fn nvidia_runtime_in_a_privileged_container() {
        let text = with_domains(
            "  work:\n    machines:\n      a:\n        config:\n          nvidia.runtime: \"on\"\n          security.privileged: \"1\"\n      b:\n        config:\n          nvidia.runtime: \"true\"\n          security.privileged: \"false\"\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0036"), ["nvidia.runtime"]);
    }

    #[test]
    fn profiles_are_checked_alone_and_merged_once() {
        let text = with_domains(
            "  work:\n    profiles:\n      both:\n        config:\n          security.syscalls.allow: mount\n          security.syscalls.deny: kexec_load\n      gpu:\n        config:\n          nvidia.runtime: \"true\"\n      root:\n        config:\n          security.privileged: \"true\"\n    machines:\n      a:\n        profiles: [both]\n      b:\n        profiles: [gpu, root]\n      c:\n        profiles: [gpu]\n        config:\n          security.privileged: \"true\"\n      d:\n        profiles: [gpu, root]\n        config:\n          security.privileged: \"false\"\n      e:\n        profiles: [both]\n        config:\n          security.syscalls.whitelist: \"\"\n      v:\n        type: vm\n        profiles: [gpu, root]\n",
        );
        let diagnostics = check_text(&text);
        // `both` once (not again for `a`), `b` through two profiles, `c` through its own
        // key; `d` overrides the profile; the VM is not a container.
        assert_eq!(
            found(&text, &diagnostics, "E0036"),
            ["security.syscalls.deny", "nvidia.runtime", "security.privileged"]
        );
        let b = diagnostics.iter().filter(|d| d.code.id == "E0036").nth(1).expect("b");
        assert_eq!(secondaries(&text, b), ["security.privileged", "b"]);
        assert_eq!(b.labels[1].message, "`security.privileged` is set here, from profile `root`");
        let c = diagnostics.iter().filter(|d| d.code.id == "E0036").nth(2).expect("c");
        assert_eq!(c.labels[0].message, "`security.privileged` is set here");
        assert_eq!(c.labels[1].message, "`nvidia.runtime` is set here, from profile `gpu`");
        assert_eq!(secondaries(&text, c), ["nvidia.runtime", "c"]);
    }
}
