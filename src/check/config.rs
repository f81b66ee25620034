//! Incus configuration keys: every machine's and profile's `config` against Incus
//! 6.0.4's own table of instance options (`crate::incus::config_keys`).
//!
//! - A key Incus does not know, or one Incus refuses where it is (`volatile.*` and
//!   `image.*` in a profile), is E0031.
//! - A `volatile.*` key Incus knows, in a machine's own config, is accepted by Incus and
//!   almost surely a mistake: W0008 (its value is still checked).
//! - In a machine's own config, a key of the other instance type is E0032: Incus
//!   validates an instance's local config against its type.
//! - A value the server would refuse is E0033 (machines and profiles alike); a
//!   cloud-init document the server accepts although cloud-init will not is W0010.
//! - Incus validates profiles for any type, so a profile may mix container and VM keys;
//!   a machine that uses such a profile silently does without the keys of the other
//!   type: W0007 on the machine's profile reference.
//!
//! Which values are accepted follows the 6.0.4 server exactly (each rule below names the
//! Incus validator it mirrors; `tests/differential_incus.rs` runs a corpus through both).
//! The located messages come from `crate::incus::values` (anklumec's grammars) when they
//! also refuse the value; the grammars are stricter than the server in places (a
//! reversed CPU range, a percentage over 100%), and the server decides.

use super::{closest, printable, quoted_list};
use crate::diagnostics::{Diagnostic, Diagnostics, codes};
use crate::incus::config_keys::{self, Applies, Format, KeyInfo, Settable};
use crate::incus::values::{self, ValueError};
use crate::source::{FileId, Span};
use crate::syntax::ast::{ConfigEntry, Domain, Infra, InstanceType, Machine, Profile};

pub fn check(infra: &Infra, diagnostics: &mut Diagnostics) {
    for domain in &infra.domains {
        for profile in &domain.profiles {
            for entry in &profile.config {
                let Some(info) = known_key(entry, Owner::Profile, diagnostics) else { continue };
                check_value(entry, info, diagnostics);
            }
        }
        for machine in &domain.machines {
            for entry in &machine.config {
                let Some(info) = known_key(entry, Owner::Machine, diagnostics) else { continue };
                if machine.type_unknown || info.applies.includes(machine.kind()) {
                    let valid = check_value(entry, info, diagnostics);
                    if valid && info.settable == Settable::IncusState {
                        diagnostics.push(volatile_key(entry));
                    }
                } else {
                    diagnostics.push(wrong_type(machine, entry, info));
                }
            }
            if !machine.type_unknown {
                check_profiles_reach(domain, machine, diagnostics);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Machine,
    Profile,
}

/// The key's entry in Incus's table, or None after reporting E0031.
fn known_key(entry: &ConfigEntry, owner: Owner, diagnostics: &mut Diagnostics) -> Option<&'static KeyInfo> {
    let key = &entry.key;
    let shown = printable(&key.value);
    // `user.*` and `environment.*` take any name, but deploy.sh passes `KEY=VALUE` (split
    // at the first `=`) and records the keys it manages separated by spaces: such a key
    // would be set, compared or unset under another name.
    if let Some(c) = key.value.chars().find(|c| c.is_whitespace() || *c == '=') {
        diagnostics.push(
            Diagnostic::new(
                codes::UNKNOWN_CONFIG_KEY,
                key.span,
                format!("configuration key `{shown}` holds {}", super::describe_char(c)),
                "whitespace and `=` cannot be part of a key",
            )
            .with_note(
                "Incus takes `KEY=VALUE` and splits it at the first `=`; deploy.sh lists the keys it manages separated by spaces",
            )
            .with_help("Use a key without whitespace or `=`, such as `user.my-note`."),
        );
        return None;
    }
    let info = config_keys::instance_key(&key.value);
    let diagnostic = match info.map(|info| info.settable) {
        Some(Settable::IncusState) if owner == Owner::Profile => Diagnostic::new(
            codes::UNKNOWN_CONFIG_KEY,
            key.span,
            format!("`{shown}` cannot be set in a profile"),
            "`volatile.*` keys hold Incus's own state of an instance",
        )
        .with_note("Incus refuses it: `Volatile keys can only be set on instances`")
        .with_help("Remove the key: Incus sets and updates `volatile.*` keys itself."),
        Some(Settable::InstanceOnly) if owner == Owner::Profile => Diagnostic::new(
            codes::UNKNOWN_CONFIG_KEY,
            key.span,
            format!("`{shown}` cannot be set in a profile"),
            "`image.*` keys belong to instances",
        )
        .with_note("Incus refuses it: `Image keys can only be set on instances`")
        .with_help("Move the key to the `config` of the machines that need it."),
        Some(_) => return info,
        None if key.value.starts_with("volatile.") => Diagnostic::new(
            codes::UNKNOWN_CONFIG_KEY,
            key.span,
            format!("unknown configuration key `{shown}`"),
            format!("not a `volatile.*` key of Incus {}", config_keys::INCUS_VERSION),
        )
        .with_note(format!("Incus would refuse it: `Unknown configuration key: {shown}`"))
        .with_help("Remove the key: `volatile.*` keys hold Incus's own state, which Incus sets itself."),
        None => {
            let diagnostic = Diagnostic::new(
                codes::UNKNOWN_CONFIG_KEY,
                key.span,
                format!("unknown configuration key `{shown}`"),
                format!("not an instance option of Incus {}", config_keys::INCUS_VERSION),
            );
            match config_keys::suggestion(&key.value) {
                Some(suggestion) => diagnostic.with_help(format!("Did you mean `{suggestion}`?")),
                None => diagnostic.with_help(
                    "Check the key against Incus's instance options; free-form keys go under `user.*` or `environment.*`.",
                ),
            }
        }
    };
    diagnostics.push(diagnostic);
    None
}

fn type_name(kind: InstanceType) -> &'static str {
    match kind {
        InstanceType::Container => "a container",
        InstanceType::VirtualMachine => "a VM",
    }
}

/// Where a machine's type shows: its `type` value, or its name when the type is the
/// default.
fn type_label(machine: &Machine) -> (Span, String) {
    match &machine.instance_type {
        Some(kind) => (kind.span, format!("`{}` is {}", machine.name.value, type_name(kind.value))),
        None => (machine.name.span, format!("`{}` is a container (the default type)", machine.name.value)),
    }
}

fn only_for(applies: Applies) -> &'static str {
    match applies {
        Applies::Container => "applies only to containers",
        Applies::VirtualMachine => "applies only to VMs",
        Applies::Both => "applies to every instance",
    }
}

fn wrong_type(machine: &Machine, entry: &ConfigEntry, info: &KeyInfo) -> Diagnostic {
    let key = printable(&entry.key.value);
    let kind = machine.kind();
    let (type_span, type_text) = type_label(machine);
    let other = match kind {
        InstanceType::Container => "vm",
        InstanceType::VirtualMachine => "lxc",
    };
    Diagnostic::new(
        codes::CONFIG_KEY_WRONG_TYPE,
        entry.key.span,
        format!(
            "`{key}` is for {}, and `{}` is {}",
            match info.applies {
                Applies::VirtualMachine => "VMs",
                Applies::Container | Applies::Both => "containers",
            },
            machine.name.value,
            type_name(kind)
        ),
        format!("`{key}` {}", only_for(info.applies)),
    )
    .with_label(type_span, type_text)
    .with_note(format!("Incus would refuse it: `Unknown configuration key: {key}`"))
    .with_help(format!(
        "Move the key to a machine of the right type, or make `{}` {} (`type: {other}`).",
        machine.name.value,
        match kind {
            InstanceType::Container => "a VM",
            InstanceType::VirtualMachine => "a container",
        }
    ))
}

/// W0008: a `volatile.*` key Incus accepts in a machine's own config.
fn volatile_key(entry: &ConfigEntry) -> Diagnostic {
    let key = printable(&entry.key.value);
    let instead = if key.ends_with(".hwaddr") {
        "Remove the key; to fix a MAC address, set `hwaddr` on the nic device instead."
    } else if key.contains("idmap") {
        "Remove the key; to choose an ID map, use `security.idmap.*` or `raw.idmap` instead."
    } else {
        "Remove the key and let Incus manage it."
    };
    Diagnostic::new(
        codes::VOLATILE_KEY,
        entry.key.span,
        format!("`{key}` is Incus's own state of the instance"),
        "Incus accepts this key, but sets and rewrites it itself",
    )
    .with_note("a value set here can be replaced at the next start, clash with another instance, or break this one; `anklumec diff` ignores it")
    .with_help(instead)
}

// ---------------------------------------------------------------------------------
// Values

/// Report what is wrong with the value; whether the server accepts it.
fn check_value(entry: &ConfigEntry, info: &KeyInfo, diagnostics: &mut Diagnostics) -> bool {
    let value = &entry.value;
    let error = match validate(info.format, &value.value) {
        Ok(()) => {
            if info.format == Format::Yaml
                && let Some(tail) = yaml_ignored_tail(&value.value)
            {
                diagnostics.push(cloud_init_tail(entry, tail));
            }
            return true;
        }
        Err(error) => error,
    };
    let key = printable(&entry.key.value);
    let mut diagnostic = Diagnostic::new(
        codes::INVALID_CONFIG_VALUE,
        error.span_in(value.span, &value.value),
        format!("invalid value for `{key}`"),
        error.message.clone(),
    );
    if error.offset != 0 || error.len != value.value.len() {
        diagnostic = diagnostic.with_label(value.span, format!("the value of `{key}`"));
    }
    diagnostics.push(diagnostic.with_help(value_help(info.format, &value.value)));
    false
}

/// W0010: text after the first node of a cloud-init document, which Incus ignores.
fn cloud_init_tail(entry: &ConfigEntry, tail: ValueError) -> Diagnostic {
    let value = &entry.value;
    let key = printable(&entry.key.value);
    Diagnostic::new(
        codes::CLOUD_INIT_YAML,
        tail.span_in(value.span, &value.value),
        format!("`{key}` holds text after its YAML mapping"),
        tail.message,
    )
    .with_label(value.span, format!("the value of `{key}`"))
    .with_note("Incus ignores what follows the first node and accepts the value; cloud-init reads the whole document and will probably refuse it")
    .with_help("Remove the text after the mapping, or make the whole value one YAML mapping.")
}

/// What to write instead, for the help line.
fn value_help(format: Format, value: &str) -> String {
    match format {
        Format::Any => "Incus refuses this value.".to_string(),
        Format::Bool | Format::RequiredBool => "Write `\"true\"` or `\"false\"`.".to_string(),
        Format::Uuid => "Write a UUID, such as `\"6c2e8b8c-4b3f-4b3a-9e6a-0c7a2f0b1c2d\"`.".to_string(),
        Format::IpList => "Write IP addresses separated by commas, such as `\"10.0.0.1,fd00::1\"`.".to_string(),
        Format::Int64 => "Write a whole number, such as `\"10\"`.".to_string(),
        Format::Uint32 => "Write a whole number from 0 to 4294967295, without a sign.".to_string(),
        Format::Priority => "Write a priority from 0 to 10.".to_string(),
        Format::ByteSize => {
            "Write an integer with a case-sensitive unit, such as `\"512MiB\"` or `\"2GiB\"` (units B, kB, MB, GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB, EiB).".to_string()
        }
        Format::MemoryLimit => {
            "Write a size with a case-sensitive unit, such as `\"512MiB\"` or `\"2GiB\"`, or a percentage of the host's memory, such as `\"50%\"`.".to_string()
        }
        Format::MemorySwap => {
            "Write `\"true\"`, `\"false\"`, or a size with a case-sensitive unit, such as `\"1GiB\"`.".to_string()
        }
        Format::CpuLimit => {
            "Write a number of CPUs, such as `\"2\"`, or the CPUs to pin, such as `\"0-3\"` or `\"0,2\"` (`\"1-1\"` pins CPU 1).".to_string()
        }
        Format::CpuNodes => "Write `\"balanced\"` or a set of NUMA nodes, such as `\"0\"` or `\"0-1\"`.".to_string(),
        Format::CpuAllowance => {
            "Write a share of CPU time, such as `\"50%\"`, or a time slice, such as `\"25ms/100ms\"`.".to_string()
        }
        Format::OneOf(choices) => match closest(value, choices.iter().copied()) {
            Some(suggestion) => format!("Did you mean `{suggestion}`?"),
            None => format!("Use one of {}.", quoted_list(choices)),
        },
        Format::Schedule => {
            "Write a 5-field cron expression such as `0 3 * * *`, or an alias such as `@daily`; join several with `, `.".to_string()
        }
        Format::Expiry => {
            "Write a number and a unit, such as `30d`, `12H` or `2w` (units S, M, H, d, w, m, y; several parts separated by one space).".to_string()
        }
        Format::Yaml => "Write a YAML mapping, such as `version: 2`.".to_string(),
        Format::RawLxc => {
            "Write one `lxc.key = value` per line; use `limits.kernel.*` for process limits.".to_string()
        }
        Format::RawIdmap => {
            "Write one `both|uid|gid HOST-ID INSTANCE-ID` per line, such as `both 1000 1000` or `uid 1000-1999 1000-1999`.".to_string()
        }
    }
}

/// Whether the 6.0.4 server accepts `value` for a key of `format`; the error locates
/// the problem inside the value.
pub fn validate(format: Format, value: &str) -> Result<(), ValueError> {
    // Every instance option but two `volatile.*` keys is `validate.Optional`: empty
    // means unset.
    if value.is_empty() {
        return match format {
            Format::RequiredBool => Err(whole(value, "expected `true` or `false`, found nothing")),
            Format::IpList => Err(whole(value, "expected IP addresses, found nothing")),
            _ => Ok(()),
        };
    }
    match format {
        Format::Any => Ok(()),
        Format::Bool | Format::RequiredBool => {
            is_bool(value).then_some(()).ok_or_else(|| whole(value, "expected `true` or `false`"))
        }
        Format::Uuid => uuid(value),
        Format::IpList => ip_list(value),
        Format::Int64 => int64(value).map(drop),
        Format::Uint32 => uint32(value),
        Format::Priority => match int64(value)? {
            0..=10 => Ok(()),
            _ => Err(whole(value, "a priority is from 0 to 10")),
        },
        Format::ByteSize => byte_size(value).map(drop).map_err(|own| values::parse_size(value).err().unwrap_or(own)),
        Format::MemoryLimit => {
            memory_limit(value).map_err(|own| values::parse_size_or_percent(value).err().unwrap_or(own))
        }
        Format::MemorySwap => {
            if is_bool(value) {
                return Ok(());
            }
            byte_size(value).map(drop).map_err(|own| {
                let own = ValueError { message: format!("expected `true`, `false` or a size; {}", own.message), ..own };
                values::parse_size(value).err().map_or(own, |located| ValueError {
                    message: format!("expected `true`, `false` or a size; {}", located.message),
                    ..located
                })
            })
        }
        Format::CpuLimit => cpu_limit(value).map_err(|own| values::parse_cpu_limit(value).err().unwrap_or(own)),
        Format::CpuNodes => cpu_nodes(value),
        Format::CpuAllowance => cpu_allowance(value),
        Format::OneOf(choices) => choices
            .contains(&value)
            .then_some(())
            .ok_or_else(|| whole(value, format!("not one of {}", quoted_list(choices)))),
        Format::Schedule => values::parse_cron(value),
        Format::Expiry => expiry(value).map_err(|own| values::parse_duration(value).err().unwrap_or(own)),
        Format::Yaml => yaml_mapping(value),
        Format::RawLxc => raw_lxc(value),
        Format::RawIdmap => raw_idmap(value),
    }
}

fn whole(value: &str, message: impl Into<String>) -> ValueError {
    ValueError { offset: 0, len: value.len(), message: message.into() }
}

fn part(offset: usize, text: &str, message: impl Into<String>) -> ValueError {
    ValueError { offset, len: text.len(), message: message.into() }
}

/// Incus `validate.IsBool`.
fn is_bool(value: &str) -> bool {
    crate::rules::incus_bool(value).is_some()
}

/// Incus `validate.IsUUID`, that is Go's `uuid.Parse`: 36 characters with dashes at 8,
/// 13, 18 and 23 and hex digits elsewhere; that form after `urn:uuid:` (any case) or
/// between any two characters; or 32 hex digits.
fn uuid(value: &str) -> Result<(), ValueError> {
    fn dashed(text: &[u8]) -> bool {
        text.len() >= 36
            && text[..36].iter().enumerate().all(|(at, b)| match at {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_hexdigit(),
            })
    }
    let bytes = value.as_bytes();
    let valid = match bytes.len() {
        36 => dashed(bytes),
        38 => dashed(&bytes[1..]),
        45 => bytes[..9].eq_ignore_ascii_case(b"urn:uuid:") && dashed(&bytes[9..]),
        32 => bytes.iter().all(u8::is_ascii_hexdigit),
        _ => false,
    };
    valid.then_some(()).ok_or_else(|| whole(value, "not a UUID"))
}

/// Incus `validate.IsListOf(validate.IsNetworkAddress)`: items separated by commas,
/// each an IPv4 or IPv6 address once surrounding whitespace is trimmed.
fn ip_list(value: &str) -> Result<(), ValueError> {
    let mut offset = 0;
    for item in value.split(',') {
        if item.trim().is_empty() {
            return Err(whole(value, "an item of the list is empty"));
        }
        if item.trim().parse::<std::net::IpAddr>().is_err() {
            return Err(part(offset, item, format!("`{}` is not an IP address", printable(item.trim()))));
        }
        offset += item.len() + 1;
    }
    Ok(())
}

/// Go's `strconv.ParseInt(value, 10, 64)`: ASCII digits after an optional sign.
fn go_int(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Incus `validate.IsInt64`.
fn int64(value: &str) -> Result<i64, ValueError> {
    go_int(value).ok_or_else(|| {
        let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            whole(value, "out of range for a 64-bit integer")
        } else {
            whole(value, "expected a whole number")
        }
    })
}

/// Incus `validate.IsUint32`: `strconv.ParseUint(value, 10, 32)`.
fn uint32(value: &str) -> Result<(), ValueError> {
    if let Some((offset, c)) = value.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        let message = match c {
            '+' | '-' if offset == 0 => "a sign is not allowed".to_string(),
            _ => format!("expected a whole number, found {}", super::describe_char(c)),
        };
        return Err(ValueError { offset, len: c.len_utf8(), message });
    }
    value.parse::<u32>().map(drop).map_err(|_| whole(value, "out of range (at most 4294967295)"))
}

/// Incus `units.ParseByteSizeString`: ASCII digits, then nothing or an exact unit.
fn byte_size(value: &str) -> Result<i64, ValueError> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(whole(value, "expected a number"));
    }
    let (number, unit) = value.split_at(digits);
    let number: i64 = number.parse().map_err(|_| part(0, number, "too large"))?;
    let multiplier = if unit.is_empty() {
        1
    } else {
        let (_, multiplier) = values::SIZE_UNITS
            .iter()
            .find(|(known, _)| *known == unit)
            .ok_or_else(|| part(digits, unit, format!("unknown unit `{}`", printable(unit))))?;
        i64::try_from(*multiplier).unwrap_or(i64::MAX)
    };
    number.checked_mul(multiplier).ok_or_else(|| whole(value, "too large"))
}

/// Incus's `limits.memory` validator: a percentage (`strconv.ParseInt` of what comes
/// before one `%`) other than 0%, or a byte size other than 0.
fn memory_limit(value: &str) -> Result<(), ValueError> {
    if let Some(number) = value.strip_suffix('%') {
        return match go_int(number) {
            None => Err(whole(value, "expected a whole number before `%`")),
            Some(0) => Err(whole(value, "a memory limit cannot be 0%")),
            Some(_) => Ok(()),
        };
    }
    match byte_size(value)? {
        0 => Err(whole(value, "a memory limit cannot be 0")),
        _ => Ok(()),
    }
}

/// The numbers of a CPU or NUMA node set, as `(start, end)` ranges in the order written
/// (a reversed range is empty), or the part that is not one.
fn cpu_ranges(value: &str) -> Result<Vec<(u64, u64)>, ValueError> {
    let mut ranges = Vec::new();
    let mut offset = 0;
    for chunk in value.split(',') {
        let number = |text: &str, at: usize| -> Result<u64, ValueError> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(part(at, text, if text.is_empty() { "expected a number" } else { "not a number" }));
            }
            text.parse::<u64>().ok().filter(|n| i64::try_from(*n).is_ok()).ok_or_else(|| part(at, text, "too large"))
        };
        let range = match chunk.split_once('-') {
            Some((low, high)) => (number(low, offset)?, number(high, offset + low.len() + 1)?),
            None => {
                let single = number(chunk, offset)?;
                (single, single)
            }
        };
        ranges.push(range);
        offset += chunk.len() + 1;
    }
    Ok(ranges)
}

/// A number two ranges of a set share, if any.
fn overlap(ranges: &[(u64, u64)]) -> Option<u64> {
    let mut sorted: Vec<(u64, u64)> = ranges.iter().copied().filter(|(low, high)| low <= high).collect();
    sorted.sort_unstable();
    sorted.windows(2).find(|pair| pair[1].0 <= pair[0].1).map(|pair| pair[1].0)
}

/// Incus `validate.IsValidCPUSet` (`limits.cpu`).
fn cpu_limit(value: &str) -> Result<(), ValueError> {
    // Its regex, `^(?:[0-9]+(?:[,-][0-9]+)?)(?:,[0-9]+(?:[,-][0-9]+)*)?$`: numbers
    // joined by `,` or `-`, where the second or third joint is a comma when there are
    // three numbers or more.
    if let Some((offset, c)) = value.char_indices().find(|(_, c)| !c.is_ascii_digit() && *c != ',' && *c != '-') {
        return Err(ValueError {
            offset,
            len: c.len_utf8(),
            message: format!("{} is not allowed in a cpu limit", super::describe_char(c)),
        });
    }
    let joints: Vec<(usize, char)> = value.char_indices().filter(|(_, c)| matches!(c, ',' | '-')).collect();
    let numbers_ok = value.split([',', '-']).all(|n| !n.is_empty());
    let regex_ok = numbers_ok && (joints.len() <= 1 || joints[0].1 == ',' || joints[1].1 == ',');
    if !regex_ok {
        return Err(whole(value, "not a cpu count or a cpu set"));
    }
    if joints.is_empty() {
        return match go_int(value) {
            Some(0) => Err(whole(value, "a cpu count must be at least 1")),
            Some(_) => Ok(()),
            None => Err(whole(value, "too large")),
        };
    }
    let ranges = cpu_ranges(value)?;
    match overlap(&ranges) {
        Some(cpu) => Err(whole(value, format!("cpu {cpu} is listed twice"))),
        None => Ok(()),
    }
}

/// Incus's `limits.cpu.nodes` validator: `balanced`, or a set of NUMA nodes (node 0
/// included), each once.
fn cpu_nodes(value: &str) -> Result<(), ValueError> {
    if value == "balanced" {
        return Ok(());
    }
    let ranges = cpu_ranges(value)?;
    match overlap(&ranges) {
        Some(node) => Err(whole(value, format!("node {node} is listed twice"))),
        None => Ok(()),
    }
}

/// Incus's `limits.cpu.allowance` validator: `N%`, or `N[ms]/M[ms]` (Go `strconv.Atoi`).
fn cpu_allowance(value: &str) -> Result<(), ValueError> {
    if let Some(number) = value.strip_suffix('%') {
        return go_int(number).map(drop).ok_or_else(|| whole(value, "expected a whole number before `%`"));
    }
    let Some((quota, period)) = value.split_once('/') else {
        return Err(whole(value, "expected a percentage or `quota/period`"));
    };
    for (offset, text) in [(0, quota), (quota.len() + 1, period)] {
        if go_int(text.strip_suffix("ms").unwrap_or(text)).is_none() {
            return Err(part(offset, text, "expected a number of milliseconds"));
        }
    }
    Ok(())
}

/// Incus `GetExpiry`: after trimming spaces, parts separated by single spaces, each
/// `^(\d+)(S|M|H|d|w|m|y)$`; a unit may come back only after a zero.
fn expiry(value: &str) -> Result<(), ValueError> {
    let trimmed = value.trim_matches(|c: char| c.is_whitespace());
    if trimmed.is_empty() {
        return Ok(());
    }
    let start = value.len() - value.trim_start_matches(|c: char| c.is_whitespace()).len();
    let mut seen: Vec<(char, i64)> = Vec::new();
    let mut offset = start;
    for item in trimmed.split(' ') {
        let digits = item.bytes().take_while(u8::is_ascii_digit).count();
        let unit = &item[digits..];
        let bad = || part(offset, item, "expected a number and one of the units S, M, H, d, w, m, y");
        let unit = match unit {
            "S" | "M" | "H" | "d" | "w" | "m" | "y" if digits > 0 => unit.chars().next().ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        if seen.iter().any(|(known, amount)| *known == unit && *amount > 0) {
            return Err(part(offset, item, format!("the unit `{unit}` is given twice")));
        }
        let amount = item[..digits].parse::<i64>().map_err(|_| part(offset, item, "too large"))?;
        seen.push((unit, amount));
        offset += item.len() + 1;
    }
    Ok(())
}

/// Incus `validate.IsYAML` into a struct: the first document must read as YAML and be
/// a mapping (or empty). go-yaml stops after the document's first node, so text after
/// a root flow mapping is ignored when the next token scans ([`yaml_ignored_tail`]).
fn yaml_mapping(value: &str) -> Result<(), ValueError> {
    strict_yaml_mapping(value).or_else(|error| yaml_ignored_tail(value).map_or(Err(error), |_| Ok(())))
}

/// A YAML mapping (or nothing) as a strict parser reads it: anklumec's, which is also
/// how cloud-init reads the value. Only the first document counts, as for Incus.
fn strict_yaml_mapping(value: &str) -> Result<(), ValueError> {
    use crate::syntax::yaml::{self, NodeKind, ScalarValue};
    let mut found = Diagnostics::new();
    let node = yaml::parse(FileId(0), value, &yaml::Limits::default(), &mut found);
    // Incus reads only the first document; anklumec's parser stops at the second.
    let second_document =
        value.match_indices("---").map(|(at, _)| at).find(|at| *at > 0 && value[..*at].ends_with('\n'));
    let found = found.into_sorted();
    let syntax = found
        .iter()
        .find(|d| d.code == codes::YAML_SYNTAX && second_document.is_none_or(|at| d.primary_span().start < at))
        .cloned();
    if let Some(error) = syntax {
        let span = error.primary_span();
        let start = span.start.min(value.len());
        return Err(ValueError {
            offset: start,
            len: span.end.min(value.len()).saturating_sub(start),
            message: error.message,
        });
    }
    // go-yaml refuses a tab at the start of the document, which anklumec's parser
    // reads as separation space.
    if value.starts_with('\t') {
        return Err(ValueError { offset: 0, len: 1, message: "a tab cannot start a YAML document".to_string() });
    }
    let Some(node) = node else { return Ok(()) };
    match &node.kind {
        NodeKind::Map(entries) => {
            // Incus decodes the top-level keys into strings: an empty key, a list or a
            // mapping as a key is refused there (nested ones are never decoded). The
            // parser drops such a key with a diagnostic; it is top-level when no kept
            // entry's value holds it.
            const NOT_A_NAME: [&str; 3] =
                ["empty mapping key", "a list cannot be a mapping key", "a mapping cannot be a mapping key"];
            let nested = |at: usize| entries.iter().any(|entry| entry.value.span.range().contains(&at));
            match found.iter().find(|d| NOT_A_NAME.contains(&d.message.as_str()) && !nested(d.primary_span().start)) {
                Some(key) => {
                    let span = key.primary_span();
                    Err(ValueError {
                        offset: span.start,
                        len: span.range().len(),
                        message: "a top-level key must be a name, not a list, a mapping or nothing".to_string(),
                    })
                }
                None => Ok(()),
            }
        }
        NodeKind::Null => Ok(()),
        NodeKind::Scalar(scalar) if !scalar.quoted && scalar.resolve() == ScalarValue::Null => Ok(()),
        NodeKind::Scalar(_) => Err(whole(value, "expected a YAML mapping, found a scalar")),
        NodeKind::Seq(_) => Err(whole(value, "expected a YAML mapping, found a list")),
    }
}

/// When `value` is a flow mapping followed by text that Incus's YAML library ignores
/// (it reads the first node, then scans one more token), where that text is. `None`
/// when the strict reading accepts the value, or when Incus would refuse it too.
pub(crate) fn yaml_ignored_tail(value: &str) -> Option<ValueError> {
    if strict_yaml_mapping(value).is_ok() {
        return None;
    }
    let start = value.len() - value.trim_start_matches([' ', '\n', '\r']).len();
    if !value[start..].starts_with('{') {
        return None;
    }
    let end = flow_end(value, start)?;
    strict_yaml_mapping(&value[..end]).ok()?;
    let at = go_yaml_next_token(value, end)?;
    let text = value[at..].trim_end();
    Some(ValueError {
        offset: at,
        len: text.len(),
        message: "Incus ignores this text after the mapping's closing `}`".to_string(),
    })
}

/// The end of the flow collection that opens at `start` (after its closing bracket):
/// brackets are counted outside quoted scalars and comments. The caller checks the
/// text up to there with the real parser.
fn flow_end(value: &str, start: usize) -> Option<usize> {
    let bytes = value.as_bytes();
    let mut depth = 0usize;
    let mut at = start;
    let mut token_start = true;
    while at < bytes.len() {
        let byte = bytes[at];
        match byte {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            b'"' if token_start => {
                at += 1;
                while *bytes.get(at)? != b'"' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if token_start => {
                at += 1;
                while bytes.get(at..at + 2) == Some(b"''") || *bytes.get(at)? != b'\'' {
                    at += if bytes[at] == b'\'' { 2 } else { 1 };
                }
            }
            b'#' if at > 0 && matches!(bytes[at - 1], b' ' | b'\t' | b'\n' | b'\r') => {
                at += bytes[at..].iter().position(|b| *b == b'\n')?;
                continue;
            }
            _ => {}
        }
        token_start = matches!(byte, b' ' | b'\t' | b'\r' | b'\n' | b'{' | b'[' | b',' | b':');
        at += 1;
    }
    None
}

/// Whether go-yaml scans the token after a root flow mapping that ends at `end`
/// without an error, and so accepts the value: where that token starts, if there is
/// one. Checked against incusd 6.0.4 (`tests/differential_incus.rs`): on the same line,
/// flow indicators, node properties and plain scalars scan (unless a `: ` makes the
/// scalar a key), block indicators (`- `, `? `, `: `) do not; on a later line, any
/// token but an unclosed quote, `@`, a backquote or `%`, on a line not indented with a
/// tab.
fn go_yaml_next_token(value: &str, end: usize) -> Option<usize> {
    let bytes = value.as_bytes();
    let mut at = end;
    let mut same_line = true;
    let mut tab_indent = false;
    loop {
        match bytes.get(at) {
            None => return None,
            Some(b' ') => at += 1,
            Some(b'\t') => {
                tab_indent |= !same_line;
                at += 1;
            }
            Some(b'\n' | b'\r') => {
                same_line = false;
                tab_indent = false;
                at += 1;
            }
            Some(b'#') => at += bytes[at..].iter().position(|b| matches!(b, b'\n' | b'\r')).unwrap_or(bytes.len() - at),
            Some(_) => break,
        }
    }
    let rest = &value[at..];
    let line = rest.split(['\n', '\r']).next().unwrap_or_default();
    let first = rest.as_bytes()[0];
    let blank_after = |text: &str| text.len() == 1 || matches!(text.as_bytes()[1], b' ' | b'\t' | b'\n' | b'\r');
    let refused = match first {
        _ if tab_indent => true,
        b'@' | b'`' | b'%' => true,
        b'"' => !rest[1..].contains('"'),
        b'\'' => !rest[1..].contains('\''),
        _ if !same_line => false,
        b'-' | b'?' | b':' => blank_after(rest),
        b'}' | b']' | b',' | b'{' | b'[' | b'*' | b'&' | b'!' | b'|' | b'>' => false,
        _ => {
            let content = line.split(" #").next().unwrap_or_default();
            content.contains(": ") || content.contains(":\t") || content.trim_end().ends_with(':')
        }
    };
    (!refused).then_some(at)
}

/// The lines of `value` with their byte offsets.
fn lines(value: &str) -> impl Iterator<Item = (usize, &str)> {
    value.split('\n').scan(0, |offset, line| {
        let at = *offset;
        *offset += line.len() + 1;
        Some((at, line))
    })
}

/// Incus `lxcValidConfig` (`raw.lxc`), for liblxc 2.1 and later.
fn raw_lxc(value: &str) -> Result<(), ValueError> {
    for (offset, line) in lines(value) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            return Err(part(offset, line, "expected `key = value`"));
        };
        let key = key.trim_matches([' ', '\t']).to_lowercase();
        let forbidden = match key.as_str() {
            "lxc.logfile" | "lxc.log.file" => Some("setting lxc.logfile is not allowed"),
            "lxc.syslog" | "lxc.log.syslog" => Some("setting lxc.log.syslog is not allowed"),
            "lxc.ephemeral" => Some("setting lxc.ephemeral is not allowed"),
            _ if key.starts_with("lxc.prlimit.") => Some("process limits are set with `limits.kernel.*`"),
            _ if key.starts_with("lxc.net.") => {
                let fields: Vec<&str> = key.split('.').collect();
                let address = fields.len() == 5
                    && matches!(fields[3], "ipv4" | "ipv6")
                    && matches!(fields[4], "address" | "gateway");
                (!address).then_some("only interface-specific ipv4/ipv6 `lxc.net.` keys are allowed")
            }
            _ => None,
        };
        if let Some(message) = forbidden {
            return Err(part(offset, line, message));
        }
    }
    Ok(())
}

/// Incus `parseRawIdmap` (`raw.idmap`): `both|uid|gid HOST NS` lines, each side an ID
/// or a range `A-B` of the same size.
fn raw_idmap(value: &str) -> Result<(), ValueError> {
    fn range(text: &str) -> Option<i64> {
        let mut ends = text.split('-');
        let base = go_int(ends.next()?)?;
        let size = match ends.next() {
            Some(end) => go_int(end)?.checked_sub(base)?.checked_add(1)?,
            None => 1,
        };
        ends.next().is_none().then_some(size)
    }
    for (offset, line) in lines(value) {
        if line.is_empty() {
            continue;
        }
        let entries: Vec<&str> = line.split(' ').collect();
        let [kind, host, instance] = entries[..] else {
            return Err(part(offset, line, "expected three fields: `both|uid|gid HOST-ID INSTANCE-ID`"));
        };
        let (Some(host_size), Some(instance_size)) = (range(host), range(instance)) else {
            return Err(part(offset, line, "expected an ID or a range of IDs such as `1000-1999`"));
        };
        if host_size != instance_size {
            return Err(part(offset, line, "the two ranges are of different sizes"));
        }
        if !matches!(kind, "both" | "uid" | "gid") {
            return Err(part(offset, kind, "expected `both`, `uid` or `gid`"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Profiles reaching machines of the other type

/// Each declared profile a machine uses, with the span that names it for the machine:
/// its entry in `profiles`, or the machine's name when it uses `default` implicitly.
pub(super) fn used_profiles<'a>(domain: &'a Domain, machine: &Machine) -> Vec<(&'a Profile, Span)> {
    match &machine.profiles {
        Some(list) => {
            list.value.iter().filter_map(|name| domain.profile(&name.value).map(|p| (p, name.span))).collect()
        }
        None => domain.profile("default").map(|p| (p, machine.name.span)).into_iter().collect(),
    }
}

fn check_profiles_reach(domain: &Domain, machine: &Machine, diagnostics: &mut Diagnostics) {
    let kind = machine.kind();
    for (profile, reference) in used_profiles(domain, machine) {
        let idle: Vec<(&ConfigEntry, &KeyInfo)> = profile
            .config
            .iter()
            .filter_map(|entry| config_keys::instance_key(&entry.key.value).map(|info| (entry, info)))
            .filter(|(_, info)| info.settable != Settable::IncusState && !info.applies.includes(kind))
            .collect();
        let Some((first, _)) = idle.first() else { continue };
        let what = match kind {
            InstanceType::Container => "container",
            InstanceType::VirtualMachine => "VM",
        };
        let message = match idle.len() {
            1 => format!(
                "profile `{}` sets `{}`, which has no effect on {what} `{}`",
                profile.name.value,
                printable(&first.key.value),
                machine.name.value
            ),
            n => format!(
                "profile `{}` sets {n} keys that have no effect on {what} `{}`",
                profile.name.value, machine.name.value
            ),
        };
        let label = match &machine.profiles {
            Some(_) => format!("{what} `{}` uses this profile", machine.name.value),
            None => format!("{what} `{}` uses profile `{}` (the default)", machine.name.value, profile.name.value),
        };
        let mut diagnostic = Diagnostic::new(codes::PROFILE_KEY_NO_EFFECT, reference, message, label);
        for (entry, info) in &idle {
            diagnostic = diagnostic
                .with_label(entry.key.span, format!("`{}` {}", printable(&entry.key.value), only_for(info.applies)));
        }
        let (type_span, type_text) = type_label(machine);
        if machine.instance_type.is_some() {
            diagnostic = diagnostic.with_label(type_span, type_text);
        }
        diagnostics.push(diagnostic.with_help(format!(
            "Incus ignores the key{} for this machine; give it a profile without {}, or move the key{} into the `config` of the machines it is for.",
            if idle.len() == 1 { "" } else { "s" },
            if idle.len() == 1 { "it" } else { "them" },
            if idle.len() == 1 { "" } else { "s" },
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn accepts(format: Format, value: &str) -> bool {
        validate(format, value).is_ok()
    }

    #[test]
    fn booleans_are_incus_booleans() {
        for value in ["true", "false", "TRUE", "yes", "No", "on", "OFF", "1", "0", ""] {
            assert!(accepts(Format::Bool, value), "{value}");
        }
        for value in ["2", "enabled", " true", "t", "y"] {
            assert!(!accepts(Format::Bool, value), "{value}");
        }
    }

    #[test]
    fn integers() {
        for value in ["0", "-1", "+1", "9223372036854775807"] {
            assert!(accepts(Format::Int64, value), "{value}");
        }
        for value in ["1.0", "0x10", "abc", " 1", "9223372036854775808", "+", "1_000"] {
            assert!(!accepts(Format::Int64, value), "{value}");
        }
        assert!(accepts(Format::Uint32, "4294967295") && accepts(Format::Uint32, "0"));
        for value in ["-1", "+1", "4294967296", "abc"] {
            assert!(!accepts(Format::Uint32, value), "{value}");
        }
        assert!(accepts(Format::Priority, "0") && accepts(Format::Priority, "10") && accepts(Format::Priority, "+1"));
        assert!(!accepts(Format::Priority, "11") && !accepts(Format::Priority, "-1"));
    }

    #[test]
    fn sizes() {
        for value in ["1024", "1B", "1kB", "1KiB", "1GB", "1 bytes", "01GiB", "1EiB", "9223372036854775807", "0"] {
            assert!(accepts(Format::ByteSize, value), "{value}");
        }
        for value in ["1KB", "1kiB", "1b", "1gb", "8EiB", "1.5GiB", "1 GiB", "1GiB ", "-1", "GiB", "1M", "50%"] {
            assert!(!accepts(Format::ByteSize, value), "{value}");
        }
        for value in ["50%", "150%", "-5%", "+1%", "2GiB", "1024"] {
            assert!(accepts(Format::MemoryLimit, value), "{value}");
        }
        for value in ["0", "0GiB", "0%", "%", "5.5%", "2Gib"] {
            assert!(!accepts(Format::MemoryLimit, value), "{value}");
        }
        for value in ["true", "False", "yes", "0", "0B", "1GiB"] {
            assert!(accepts(Format::MemorySwap, value), "{value}");
        }
        for value in ["abc", "50%", "1.5GiB"] {
            assert!(!accepts(Format::MemorySwap, value), "{value}");
        }
    }

    #[test]
    fn cpu_sets() {
        for value in ["1", "01", "99999", "1-1", "0-3", "0,2-3", "3-1", "0-1,3", "1,2,3", "0,1"] {
            assert!(accepts(Format::CpuLimit, value), "{value}");
        }
        for value in
            ["0", "00", "abc", "-1", "1-", "+1", "1,", "1,1", "0-3,2", "1,2-3-4", "1-2-3", " 1", "99999999999999999999"]
        {
            assert!(!accepts(Format::CpuLimit, value), "{value}");
        }
        for value in ["balanced", "0", "01", "0,1", "1-0", "0-2,5"] {
            assert!(accepts(Format::CpuNodes, value), "{value}");
        }
        for value in ["Balanced", "0,0", "00,0", "2-3,3", "-1", "1-", "+1", "0-3-4", "1,", " 0", "1-+2"] {
            assert!(!accepts(Format::CpuNodes, value), "{value}");
        }
        for value in ["50%", "150%", "-5%", "0%", "25ms/100ms", "25/100"] {
            assert!(accepts(Format::CpuAllowance, value), "{value}");
        }
        for value in ["abc", "50", "25ms", "a/b", "5.5%"] {
            assert!(!accepts(Format::CpuAllowance, value), "{value}");
        }
    }

    #[test]
    fn expiries_and_schedules() {
        for value in ["30d", "24H", "2w", "1y", "6M", "60m", "30S", "1d 2H", "0d 1d", " 1d "] {
            assert!(accepts(Format::Expiry, value), "{value}");
        }
        for value in ["30", "30days", "24h", "30s", "1.5d", "-1d", "1d 1d", "1d  2H", "1d\t2H", "99999999999999999999d"]
        {
            assert!(!accepts(Format::Expiry, value), "{value}");
        }
        for value in ["0 3 * * *", "@daily", "@DAILY", "@startup", "@daily, @weekly", "0 0 1 jan mon", "? ? ? ? ?"] {
            assert!(accepts(Format::Schedule, value), "{value}");
        }
        for value in ["0 3 * *", "@nightly", "61 3 * * *", "0  3 * * *", "@daily,@weekly", "0 3 * * 7"] {
            assert!(!accepts(Format::Schedule, value), "{value}");
        }
    }

    #[test]
    fn raw_values() {
        for value in
            ["lxc.apparmor.profile = unconfined", "# comment\n\nlxc.net.0.ipv4.address = 10.0.0.1/24", "lxc.bogus = 1"]
        {
            assert!(accepts(Format::RawLxc, value), "{value}");
        }
        for value in [
            "garbage",
            "lxc.logfile = x",
            "LXC.LOGFILE = x",
            "lxc.prlimit.nofile = 10",
            "lxc.net.0.type = veth",
            "  # indented",
        ] {
            assert!(!accepts(Format::RawLxc, value), "{value}");
        }
        for value in ["both 1000 1000", "uid 1000-1001 1000-1001\ngid 5 5"] {
            assert!(accepts(Format::RawIdmap, value), "{value}");
        }
        for value in ["garbage", "uid 1000-1001 1000", "both 1000 1000 5", "foo 1000 1000", "both  1000 1000"] {
            assert!(!accepts(Format::RawIdmap, value), "{value}");
        }
        for value in ["version: 2", "", "a: 1\na: 2", "a: 1\n---\nb: [", "~", "a: {[1]: 2}", "~: 1"] {
            assert!(accepts(Format::Yaml, value), "{value}");
        }
        for value in ["garbage: [", "just text", "[1, 2", "a: \"b", "\ta: 1", "- 1"] {
            assert!(!accepts(Format::Yaml, value), "{value}");
        }
    }

    #[test]
    fn unknown_and_forbidden_keys() {
        let text = with_domains(
            "  work:\n    profiles:\n      p:\n        config:\n          image.os: debian\n          volatile.uuid: x\n          limits.memroy: 1GiB\n    machines:\n      web:\n        profiles: [p]\n        config:\n          image.os: debian\n          volatile.eth0.hwaddr: \"00:16:3e:00:00:01\"\n          enviroment.HTTP_PROXY: x\n          bogus.key: x\n          user.note: fine\n          environment.PATH: /bin\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(
            found(&text, &diagnostics, "E0031"),
            ["image.os", "volatile.uuid", "limits.memroy", "enviroment.HTTP_PROXY", "bogus.key"]
        );
        assert_eq!(found(&text, &diagnostics, "W0008"), ["volatile.eth0.hwaddr"]);
        let in_profile = diagnostics.iter().filter(|d| d.code.id == "E0031").nth(1).expect("volatile");
        assert_eq!(in_profile.message, "`volatile.uuid` cannot be set in a profile");
        let helps: Vec<Option<&str>> =
            diagnostics.iter().filter(|d| d.code.id == "E0031").map(|d| d.help.as_deref()).collect();
        assert_eq!(helps[2], Some("Did you mean `limits.memory`?"));
        assert_eq!(helps[3], Some("Did you mean `environment.HTTP_PROXY`?"));
        let image = diagnostics.iter().find(|d| d.code.id == "E0031").expect("image");
        assert_eq!(image.message, "`image.os` cannot be set in a profile");
    }

    #[test]
    fn volatile_keys_as_incus_takes_them() {
        let text = with_domains(
            "  work:\n    machines:\n      web:\n        config:\n          volatile.apply_template: create\n          volatile.uuid: abc\n          volatile.eth0.mtu: \"1500\"\n          volatile.a.b.hwaddr: x\n          volatile.last_state.ready: \"\"\n          volatile.eth0.last_state.ip_addresses: \"10.0.0.1, 010.0.0.2\"\n          volatile.apply_nvram: \"true\"\n          volatile.idmap.base: \"0\"\n      vm:\n        type: vm\n        config:\n          volatile.vsock_id: \"5\"\n          volatile.idmap.next: x\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(
            found(&text, &diagnostics, "W0008"),
            ["volatile.apply_template", "volatile.a.b.hwaddr", "volatile.idmap.base", "volatile.vsock_id"]
        );
        assert_eq!(found(&text, &diagnostics, "E0031"), ["volatile.eth0.mtu"]);
        assert_eq!(found(&text, &diagnostics, "E0033"), ["abc", "", " 010.0.0.2"]);
        assert_eq!(found(&text, &diagnostics, "E0032"), ["volatile.apply_nvram", "volatile.idmap.next"]);
        let hwaddr = diagnostics.iter().find(|d| d.code.id == "W0008" && d.message.contains("hwaddr")).expect("hwaddr");
        assert_eq!(
            hwaddr.help.as_deref(),
            Some("Remove the key; to fix a MAC address, set `hwaddr` on the nic device instead.")
        );
        let mtu = only(&diagnostics, "E0031");
        assert_eq!(mtu.labels[0].message, "not a `volatile.*` key of Incus 6.0.4");
    }

    #[test]
    fn uuids_and_address_lists() {
        let id = "6c2e8b8c-4b3f-4b3a-9e6a-0c7a2f0b1c2d";
        for value in [
            id.to_string(),
            format!("{{{id}}}"),
            format!("({id})"),
            format!("urn:uuid:{id}"),
            format!("URN:UUID:{id}"),
            id.replace('-', ""),
            id.to_uppercase(),
            String::new(),
        ] {
            assert!(accepts(Format::Uuid, &value), "{value}");
        }
        for value in [&id[1..], &id.replace("9e6a-", "9e6a+"), &format!("z{}", &id[1..]), &format!("xxxxxxxxx{id}")] {
            assert!(!accepts(Format::Uuid, value), "{value}");
        }
        for value in ["10.0.0.1", "10.0.0.1,fd00::1", "::ffff:1.2.3.4", " 10.0.0.1", "10.0.0.1, 10.0.0.2"] {
            assert!(accepts(Format::IpList, value), "{value}");
        }
        for value in ["", "1.2.3", "10.0.0.1,", "10.0.0.1/24", "fe80::1%eth0", "010.0.0.1"] {
            assert!(!accepts(Format::IpList, value), "{value}");
        }
        assert!(!accepts(Format::RequiredBool, "") && accepts(Format::RequiredBool, "yes"));
    }

    #[test]
    fn yaml_incus_ignores_after_a_flow_mapping() {
        // What incusd 6.0.4 accepts although a strict parser refuses it.
        for value in [
            "{a: 1}}",
            "{a: 1} x",
            "{a: 1}]",
            "{a: 1} {b: 2}",
            "{a: 1}, b",
            "{a: 1}\nb: 2",
            "{a: 1}\n}",
            "{a: 1}}}",
            "{a: [1, 2]}]",
            "{a: 1} *y",
            "{a: 1} [",
            "{a: 1}\n- x",
            "{a: 1} &a",
            "{a: 1} |",
            "{a: 1}x",
            "{a: 1}\nx: y: z",
            "{a: 1}\n? x",
            "{a: 1}\nb: \"x",
            "{a: 1}\t}",
            "{\"a\": \"}\"}}",
        ] {
            assert!(accepts(Format::Yaml, value), "{value:?}");
            assert!(yaml_ignored_tail(value).is_some(), "{value:?}");
        }
        // What it refuses.
        for value in [
            "{a: 1} \"x",
            "{a: 1} 'x",
            "{a: 1} @x",
            "{a: 1} %x",
            "{a: 1}\n\tx",
            "{a: 1} x: 2",
            "{a: 1} : 2",
            "{a: 1}:",
            "[1]: 2",
            "? [1]\n: 2",
            ": 1",
            "b: 3\n{a: 1}: 2",
            "{a: 1} - x",
            "{a: 1} ?",
            "{a: 1}\n\"x",
            "{a: 1}\n@x",
            "{a: 1}\n%x",
            "[1] ]",
            "{a: [1, 2}",
            "a: [1]]",
        ] {
            assert!(!accepts(Format::Yaml, value), "{value:?}");
            assert!(yaml_ignored_tail(value).is_none(), "{value:?}");
        }
        assert!(yaml_ignored_tail("{a: 1}").is_none(), "nothing to ignore");
        let tail = yaml_ignored_tail("{a: 1} }  ").expect("tail");
        assert_eq!((tail.offset, tail.len), (7, 1));
    }

    #[test]
    fn keys_of_the_other_type_in_a_machine() {
        let text = with_domains(
            "  work:\n    machines:\n      web:\n        config:\n          security.secureboot: \"false\"\n          security.nesting: \"true\"\n      vm:\n        type: vm\n        config:\n          limits.memory: 2GiB\n          security.nesting: \"true\"\n          limits.kernel.nofile: \"100\"\n          security.secureboot: maybe\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(
            found(&text, &diagnostics, "E0032"),
            ["security.secureboot", "security.nesting", "limits.kernel.nofile"]
        );
        let d = diagnostics.iter().find(|d| d.code.id == "E0032").expect("secureboot");
        assert_eq!(d.message, "`security.secureboot` is for VMs, and `web` is a container");
        assert_eq!(d.labels[0].message, "`security.secureboot` applies only to VMs");
        assert_eq!(secondaries(&text, d), ["web"]);
        assert_eq!(found(&text, &diagnostics, "E0033"), ["maybe"], "the VM key's value is still checked");
        let vm = diagnostics.iter().filter(|d| d.code.id == "E0032").nth(1).expect("nesting");
        assert_eq!(secondaries(&text, vm), ["vm"]);
        assert_eq!(
            vm.help.as_deref(),
            Some("Move the key to a machine of the right type, or make `vm` a container (`type: lxc`).")
        );
    }

    #[test]
    fn invalid_values_point_inside_the_value() {
        let text = with_domains(
            "  work:\n    profiles:\n      p:\n        config:\n          limits.cpu: \"0,0\"\n    machines:\n      web:\n        profiles: [p]\n        config:\n          limits.memory: 2Gib\n          limits.cpu.priority: \"11\"\n          security.nesting: enabled\n          limits.memory.enforce: Hard\n          limits.cpu: \"4\"\n          snapshots.expiry: 1d 1d\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0033"), ["0", "Gib", "11", "enabled", "Hard", "1d"]);
        let memory = diagnostics.iter().find(|d| primary(&text, d) == "Gib").expect("memory");
        assert_eq!(memory.message, "invalid value for `limits.memory`");
        assert_eq!(secondaries(&text, memory), ["2Gib"]);
        let enforce = diagnostics.iter().find(|d| primary(&text, d) == "Hard").expect("enforce");
        assert_eq!(enforce.help.as_deref(), Some("Did you mean `hard`?"));
    }

    #[test]
    fn profile_keys_of_the_other_type_warn_on_the_reference() {
        let text = with_domains(
            "  work:\n    profiles:\n      default:\n        config:\n          security.nesting: \"true\"\n      secure:\n        config:\n          security.secureboot: \"false\"\n          security.csm: \"true\"\n          limits.memory: 2GiB\n    machines:\n      web:\n        profiles: [default, secure]\n      implicit: {}\n      vm:\n        type: vm\n        profiles: [secure]\n      vm2:\n        type: vm\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "W0007"), ["secure", "vm2"]);
        let web = diagnostics.iter().find(|d| d.code.id == "W0007").expect("web");
        assert_eq!(web.message, "profile `secure` sets 2 keys that have no effect on container `web`");
        assert_eq!(secondaries(&text, web), ["security.secureboot", "security.csm"]);
        let vm2 = diagnostics.iter().filter(|d| d.code.id == "W0007").nth(1).expect("vm2");
        assert_eq!(vm2.message, "profile `default` sets `security.nesting`, which has no effect on VM `vm2`");
        assert_eq!(vm2.labels[0].message, "VM `vm2` uses profile `default` (the default)");
        assert_eq!(secondaries(&text, vm2), ["security.nesting", "vm"]);
        assert!(found(&text, &diagnostics, "E0032").is_empty(), "profiles may mix types");
    }
}
