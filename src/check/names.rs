//! Names that become Incus objects: domains (projects, and bridges `net-<domain>`),
//! machines (instances and DNS host names), profiles, devices.

use super::{describe_char, printable};
use crate::diagnostics::{Diagnostic, Diagnostics, codes};
use crate::lower::{MAX_BRIDGE_NAME, anklume_bridge_name, bridge_name};
use crate::syntax::ast::{Device, Infra, Name, Text};
use std::collections::{HashMap, HashSet};

pub use crate::rules::MAX_NAME;

pub fn check(infra: &Infra, diagnostics: &mut Diagnostics) {
    if let Some(remote) = &infra.global.incus_remote {
        check_remote(remote, diagnostics);
    }
    check_bridge_collisions(infra, diagnostics);
    let mut machines: HashMap<&str, (&Name, &Name)> = HashMap::new();
    let all_machines: HashSet<&str> =
        infra.domains.iter().flat_map(|d| &d.machines).map(|m| m.name.value.as_str()).collect();
    check_pool(infra.global.storage_pool.as_ref(), diagnostics);
    for domain in &infra.domains {
        check_name(&domain.name, "domain", diagnostics);
        check_default_domain(&domain.name, diagnostics);
        check_bridge(&domain.name, diagnostics);
        for profile in &domain.profiles {
            check_name(&profile.name, "profile", diagnostics);
            check_devices(&profile.devices, diagnostics);
        }
        for machine in &domain.machines {
            check_name(&machine.name, "machine", diagnostics);
            check_devices(&machine.devices, diagnostics);
            for volume in &machine.storage_volumes {
                check_pool(volume.pool.as_ref(), diagnostics);
            }
            match machines.get(machine.name.value.as_str()) {
                Some((first, first_domain)) => diagnostics.push(
                    Diagnostic::new(
                        codes::DUPLICATE_MACHINE,
                        machine.name.span,
                        format!("machine `{}` is defined twice", machine.name.value),
                        format!("`{}` is defined again here, in domain `{}`", machine.name.value, domain.name.value),
                    )
                    .with_label(first.span, format!("first defined here, in domain `{}`", first_domain.value))
                    .with_note(
                        "machine names are Incus instance names and DNS names: they must be unique across all domains",
                    )
                    .with_help(rename_help(&machine.name.value, |candidate| all_machines.contains(candidate))),
                ),
                None => {
                    machines.insert(&machine.name.value, (&machine.name, &domain.name));
                }
            }
        }
    }
}

/// "Rename one of the two", with a free valid name to suggest when there is one.
fn rename_help(name: &str, taken: impl Fn(&str) -> bool) -> String {
    let free = (2..100)
        .map(|n| format!("{name}-{n}"))
        .find(|candidate| name_problem(candidate).is_none() && !taken(candidate));
    match free {
        Some(free) => format!("Rename one of the two machines, for example to `{free}`."),
        None => "Rename one of the two machines.".to_string(),
    }
}

/// Why `name` is not a valid domain, machine or profile name, if it is not:
/// `^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`, at most 63 characters, not all digits.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a name cannot be empty".into());
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Some(if c.is_ascii_uppercase() {
            "uppercase letters are not allowed".into()
        } else {
            format!("{} is not allowed: use lowercase letters, digits and `-`", describe_char(c))
        });
    }
    if name.starts_with('-') {
        return Some("a name cannot start with `-`".into());
    }
    if name.ends_with('-') {
        return Some("a name cannot end with `-`".into());
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Some("a name cannot be all digits".into());
    }
    let length = name.chars().count();
    if length > MAX_NAME {
        return Some(format!("{length} characters long, at most {MAX_NAME} are allowed"));
    }
    None
}

/// The closest valid name: lowercase, `_`, `.` and whitespace turned into `-`, other
/// characters dropped, `-` trimmed at both ends, cut at 63 characters.
pub fn fixed_name(name: &str) -> Option<String> {
    let mut fixed: String = name
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            '_' | '.' => Some('-'),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect();
    // Dropping letters (`équipe` → `quipe`) would suggest a different name, not a fixed one.
    if name.chars().any(|c| c.is_alphabetic() && !c.is_ascii()) {
        return None;
    }
    fixed.truncate(MAX_NAME);
    let fixed = fixed.trim_matches('-').to_string();
    (name_problem(&fixed).is_none() && fixed != name).then_some(fixed)
}

fn check_name(name: &Name, kind: &str, diagnostics: &mut Diagnostics) {
    let Some(problem) = name_problem(&name.value) else { return };
    let mut diagnostic = Diagnostic::new(
        codes::INVALID_NAME,
        name.span,
        format!("invalid {kind} name `{}`", printable(&name.value)),
        problem,
    );
    diagnostic = match fixed_name(&name.value) {
        Some(fixed) => {
            diagnostic.with_help(format!("Rename it to `{fixed}`: {kind} names use lowercase letters, digits and `-`."))
        }
        None if name.value.bytes().all(|b| b.is_ascii_digit()) && !name.value.is_empty() => {
            diagnostic.with_help(format!("Add a letter, for example `{kind}-{}`.", name.value))
        }
        None => diagnostic.with_help(format!("Use lowercase letters, digits and `-`, at most {MAX_NAME} characters.")),
    };
    diagnostics.push(diagnostic);
}

/// A domain is an Incus project of its own name, and `default` is the server's own
/// project: Incus refuses to change its features (after the domains before it were
/// deployed), and its `default` profile is every other user's.
fn check_default_domain(domain: &Name, diagnostics: &mut Diagnostics) {
    if domain.value != "default" {
        return;
    }
    diagnostics.push(
        Diagnostic::new(
            codes::INVALID_NAME,
            domain.span,
            "a domain cannot be named `default`",
            "`default` is the Incus server's own project",
        )
        .with_note("a domain becomes an Incus project of its name, with its own features and `default` profile")
        .with_help("Rename the domain, for example to `main`."),
    );
}

/// Why `name` cannot be a storage pool name, if it cannot: Incus refuses `/` (a pool
/// is a path segment of the API), and a name starting with `-` would be read as an
/// option by the incus command line deploy.sh runs.
pub fn pool_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("a storage pool name cannot be empty".into())
    } else if name.contains('/') {
        Some("`/` is not allowed in a storage pool name".into())
    } else if name.starts_with('-') {
        Some("a name starting with `-` would be read as an option by the incus command line".into())
    } else {
        let c = name.chars().find(|c| c.is_whitespace() || c.is_control())?;
        Some(format!("{} is not allowed in a storage pool name", describe_char(c)))
    }
}

fn check_pool(pool: Option<&Text>, diagnostics: &mut Diagnostics) {
    let Some(pool) = pool else { return };
    let Some(problem) = pool_name_problem(&pool.value) else { return };
    diagnostics.push(
        Diagnostic::new(
            codes::INVALID_NAME,
            pool.span,
            format!("invalid storage pool name `{}`", printable(&pool.value)),
            problem,
        )
        .with_help("Use the name of a storage pool as `incus storage list` shows it, such as `default`."),
    );
}

/// anklume's `net-<domain>` does not fit in an interface name: lowering shortens it.
fn check_bridge(domain: &Name, diagnostics: &mut Diagnostics) {
    let anklume = anklume_bridge_name(&domain.value);
    let length = anklume.chars().count();
    if length <= MAX_BRIDGE_NAME {
        return;
    }
    let allowed = MAX_BRIDGE_NAME - anklume_bridge_name("").len();
    diagnostics.push(
        Diagnostic::new(
            codes::BRIDGE_NAME_TOO_LONG,
            domain.span,
            format!("the bridge of domain `{}` is shortened to `{}`", domain.value, bridge_name(&domain.value)),
            format!("`{anklume}` would have {length} characters"),
        )
        .with_note(format!(
            "bridges are Linux network interfaces, whose names have at most {MAX_BRIDGE_NAME} characters"
        ))
        .with_help(format!(
            "Shorten the domain name to at most {allowed} characters to keep anklume's `net-<domain>`."
        )),
    );
}

/// Two domains must not end up on one bridge (a shortened name may meet another).
fn check_bridge_collisions(infra: &Infra, diagnostics: &mut Diagnostics) {
    let mut bridges: HashMap<String, &Name> = HashMap::new();
    for domain in &infra.domains {
        let bridge = bridge_name(&domain.name.value);
        match bridges.get(&bridge) {
            Some(first) if first.value != domain.name.value => diagnostics.push(
                Diagnostic::new(
                    codes::DUPLICATE_BRIDGE,
                    domain.name.span,
                    format!("domains `{}` and `{}` would share bridge `{bridge}`", first.value, domain.name.value),
                    format!("domain `{}` gets bridge `{bridge}`", domain.name.value),
                )
                .with_label(first.span, format!("domain `{}` gets the same bridge", first.value))
                .with_help("Rename one of the two domains."),
            ),
            Some(_) => {}
            None => {
                bridges.insert(bridge, &domain.name);
            }
        }
    }
}

/// Why `name` cannot be an incus remote that the scripts and the inventory name: the
/// client reads `NAME:` in front of a resource as the remote, so a colon or a slash
/// would split it; a leading `-` reads as a flag; whitespace and control characters
/// do not survive the inventory's and the user's shells.
pub fn remote_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a remote name cannot be empty".into());
    }
    if let Some(c) = name.chars().find(|c| matches!(c, ':' | '/') || c.is_whitespace() || c.is_control()) {
        return Some(format!("{} is not allowed in a remote name", describe_char(c)));
    }
    if name.starts_with('-') {
        return Some("a remote name cannot start with `-`".into());
    }
    None
}

fn check_remote(remote: &Text, diagnostics: &mut Diagnostics) {
    let Some(problem) = remote_problem(&remote.value) else { return };
    diagnostics.push(
        Diagnostic::new(
            codes::INVALID_NAME,
            remote.span,
            format!("invalid incus remote name `{}`", printable(&remote.value)),
            problem,
        )
        .with_help("Use the remote's name as `incus remote list` shows it, such as `local` or `prod`."),
    );
}

/// Why `name` is not a valid Incus device name, if it is not: 1-63 characters of
/// `[-a-zA-Z0-9_./:]`, not starting with `.`. Incus takes a leading `-`, but the incus
/// command line deploy.sh runs would read such a name as an option (`-h` prints help
/// and succeeds): it is refused too.
pub fn device_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a device name cannot be empty".into());
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':'))) {
        return Some(format!("{} is not allowed in a device name", describe_char(c)));
    }
    if name.starts_with('.') {
        return Some("a device name cannot start with `.`".into());
    }
    if name.starts_with('-') {
        return Some("a name starting with `-` would be read as an option by the incus command line".into());
    }
    let length = name.chars().count();
    if length > MAX_NAME {
        return Some(format!("{length} characters long, at most {MAX_NAME} are allowed"));
    }
    None
}

/// Report `name` if it is not a valid device name; `kind` says what it names.
pub fn check_device_name(name: &Name, kind: &str, diagnostics: &mut Diagnostics) {
    let Some(problem) = device_name_problem(&name.value) else { return };
    let fixed: String = name
        .value
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':') { c } else { '-' })
        .collect::<String>()
        .trim_start_matches(['.', '-'])
        .chars()
        .take(MAX_NAME)
        .collect();
    let mut diagnostic = Diagnostic::new(
        codes::INVALID_NAME,
        name.span,
        format!("invalid {kind} name `{}`", printable(&name.value)),
        problem,
    );
    diagnostic = if device_name_problem(&fixed).is_none() && fixed != name.value {
        diagnostic.with_help(format!(
            "Rename it to `{fixed}`: device names use 1-63 letters, digits and `-_./:`, not starting with `.` or `-`."
        ))
    } else {
        diagnostic.with_help("Device names use 1-63 letters, digits and `-_./:`, not starting with `.` or `-`.")
    };
    diagnostics.push(diagnostic);
}

fn check_devices(devices: &[Device], diagnostics: &mut Diagnostics) {
    for device in devices {
        check_device_name(&device.name, "device", diagnostics);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn valid_names() {
        for name in ["web", "1web", "a", "work-dev", "s01-client", "default", &"a".repeat(63)] {
            assert_eq!(name_problem(name), None, "{name}");
        }
    }

    #[test]
    fn invalid_names_and_their_fixes() {
        assert_eq!(name_problem("Web_1").as_deref(), Some("uppercase letters are not allowed"));
        assert_eq!(name_problem("web_1").as_deref(), Some("`_` is not allowed: use lowercase letters, digits and `-`"));
        assert_eq!(name_problem("-web").as_deref(), Some("a name cannot start with `-`"));
        assert_eq!(name_problem("web-").as_deref(), Some("a name cannot end with `-`"));
        assert_eq!(name_problem("123").as_deref(), Some("a name cannot be all digits"));
        assert!(name_problem(&"a".repeat(64)).is_some());
        assert_eq!(fixed_name("Web_1").as_deref(), Some("web-1"));
        assert_eq!(fixed_name(" My.Host ").as_deref(), Some("my-host"));
        assert_eq!(fixed_name("_web_").as_deref(), Some("web"));
        assert_eq!(fixed_name("123"), None);
        assert_eq!(fixed_name(&"a".repeat(70)).map(|n| n.len()), Some(63));
    }

    #[test]
    fn device_names() {
        for name in ["eth0", "gpu", "root", "my_dev.1", "a/b:c"] {
            assert_eq!(device_name_problem(name), None, "{name}");
        }
        assert_eq!(device_name_problem(".hidden").as_deref(), Some("a device name cannot start with `.`"));
        assert_eq!(device_name_problem("my dev").as_deref(), Some("a space is not allowed in a device name"));
        assert!(device_name_problem(&"d".repeat(64)).is_some());
        for option in ["-h", "--force", "-"] {
            let problem = device_name_problem(option);
            assert!(problem.as_deref().is_some_and(|p| p.contains("read as an option")), "{option}: {problem:?}");
        }
        assert_eq!(device_name_problem("data-"), None);
        assert_eq!(pool_name_problem("default"), None);
        assert_eq!(pool_name_problem("ssd-2.fast_pool"), None);
        for bad in ["", "a/b", "-x", "--force", "my pool", "tab\there"] {
            assert!(pool_name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn invalid_domain_machine_and_profile_names_are_reported_on_the_name() {
        let text = with_domains(
            "  Work_Dom:\n    profiles:\n      Big.Profile:\n        config: {}\n    machines:\n      Web_1:\n        type: lxc\n      \"123\":\n        type: lxc\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0007"), ["Work_Dom", "Big.Profile", "Web_1", "\"123\""]);
        let web = diagnostics.iter().find(|d| primary(&text, d) == "Web_1").expect("web");
        assert_eq!(web.message, "invalid machine name `Web_1`");
        assert_eq!(
            web.help.as_deref(),
            Some("Rename it to `web-1`: machine names use lowercase letters, digits and `-`.")
        );
        let digits = diagnostics.iter().find(|d| primary(&text, d) == "\"123\"").expect("digits");
        assert_eq!(digits.help.as_deref(), Some("Add a letter, for example `machine-123`."));
    }

    #[test]
    fn invalid_device_names() {
        let text = with_domains(
            "  work:\n    machines:\n      web:\n        devices:\n          .data:\n            type: disk\n            path: /data\n            source: /srv\n",
        );
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0007");
        assert_eq!(primary(&text, d), ".data");
        assert_eq!(d.labels[0].message, "a device name cannot start with `.`");
    }

    #[test]
    fn long_domain_names_get_a_shortened_bridge() {
        let text = with_domains(
            "  abcdefghijkl:\n    machines:\n      web: {}\n  abcdefghijk:\n    machines:\n      db: {}\n",
        );
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "W0006");
        assert_eq!(primary(&text, d), "abcdefghijkl");
        assert_eq!(
            d.message,
            format!("the bridge of domain `abcdefghijkl` is shortened to `{}`", bridge_name("abcdefghijkl"))
        );
        assert_eq!(d.labels[0].message, "`net-abcdefghijkl` would have 16 characters");
        assert_eq!(
            d.help.as_deref(),
            Some("Shorten the domain name to at most 11 characters to keep anklume's `net-<domain>`.")
        );
    }

    #[test]
    fn two_domains_on_one_bridge() {
        // An 11-character domain whose `net-<domain>` is the shortened name of a long one.
        let short = bridge_name("corp-sandbox").trim_start_matches("net-").to_string();
        let text = with_domains(&format!("  corp-sandbox: {{}}\n  {short}: {{}}\n"));
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0019");
        assert_eq!(primary(&text, d), short);
        assert_eq!(secondaries(&text, d), ["corp-sandbox"]);
    }

    #[test]
    fn machine_names_are_unique_across_domains() {
        let text = with_domains("  one:\n    machines:\n      web: {}\n  two:\n    machines:\n      web: {}\n");
        let diagnostics = check_text(&text);
        let d = only(&diagnostics, "E0008");
        assert_eq!(d.primary_span().start, text.rfind("web").expect("second"));
        assert_eq!(secondaries(&text, d), ["web"]);
        assert_eq!(d.labels[1].span.start, text.find("web").expect("first"));
        assert_eq!(d.labels[1].message, "first defined here, in domain `one`");
        assert_eq!(d.help.as_deref(), Some("Rename one of the two machines, for example to `web-2`."));
    }

    #[test]
    fn a_declared_default_profile_is_fine() {
        let text = with_domains(
            "  work:\n    profiles:\n      default:\n        config:\n          limits.cpu: \"2\"\n    machines:\n      web: {}\n",
        );
        assert!(check_text(&text).is_empty());
    }
}
