//! Control characters in strings that reach Incus (or the reviewed script): a NUL byte
//! is an error (E0030: no command line can carry it, and Incus cuts a value at its first
//! NUL); any other control character but tab and newline is a warning (W0009: Incus
//! stores it, deploy.sh quotes it, but it is almost surely a mistake).
//!
//! Names, image references, addresses, schedules, expiries, policy ends and access
//! modes are left out: their own checks reject control characters with a more precise
//! message.

use super::{describe_char, is_forbidden_control};
use crate::diagnostics::{Diagnostic, Diagnostics, codes};
use crate::syntax::ast::{ConfigEntry, Device, Infra, Text};

pub fn check(infra: &Infra, diagnostics: &mut Diagnostics) {
    let mut check = |text: &Option<Text>, what: &str| {
        if let Some(text) = text {
            check_text(text, what, diagnostics);
        }
    };
    check(&infra.project_name, "project_name");
    let global = &infra.global;
    check(&global.default_connection, "default_connection");
    check(&global.default_user, "default_user");
    check(&global.storage_pool, "storage_pool");
    for domain in &infra.domains {
        check(&domain.description, "description");
        for profile in &domain.profiles {
            check(&profile.description, "description");
        }
        for machine in &domain.machines {
            check(&machine.description, "description");
            for volume in &machine.storage_volumes {
                check(&volume.pool, "storage pool");
                check(&volume.size, "volume size");
                check(&volume.path, "path");
            }
            for data in &machine.persistent_data {
                check(&data.path, "path");
            }
        }
    }
    for policy in &infra.network_policies {
        check(&policy.description, "description");
    }
    for volume in &infra.shared_volumes {
        check(&volume.source, "path");
        check(&volume.path, "path");
    }
    for domain in &infra.domains {
        for profile in &domain.profiles {
            check_config(&profile.config, diagnostics);
            check_devices(&profile.devices, diagnostics);
        }
        for machine in &domain.machines {
            check_config(&machine.config, diagnostics);
            check_devices(&machine.devices, diagnostics);
            for role in &machine.roles {
                check_text(role, "role", diagnostics);
            }
        }
    }
}

fn check_config(config: &[ConfigEntry], diagnostics: &mut Diagnostics) {
    for entry in config {
        check_text(&entry.key, "config key", diagnostics);
        check_text(&entry.value, "config value", diagnostics);
    }
}

fn check_devices(devices: &[Device], diagnostics: &mut Diagnostics) {
    for device in devices {
        if let Some(device_type) = &device.device_type {
            check_text(device_type, "device type", diagnostics);
        }
        for option in &device.options {
            check_text(&option.key, "device option", diagnostics);
            check_text(&option.value, "device option value", diagnostics);
        }
    }
}

/// Report the first NUL byte of `text`, else its first other control character.
fn check_text(text: &Text, what: &str, diagnostics: &mut Diagnostics) {
    let found = text.value.char_indices().find(|(_, c)| *c == '\0');
    let Some((offset, c)) = found.or_else(|| text.value.char_indices().find(|(_, c)| is_forbidden_control(*c))) else {
        return;
    };
    let label =
        format!("{} here, character {} of the value", describe_char(c), text.value[..offset].chars().count() + 1);
    let diagnostic = if c == '\0' {
        Diagnostic::new(codes::INVALID_VALUE, text.span, format!("{what} holds a NUL byte"), label)
            .with_note("a command line cannot carry a NUL byte, and Incus cuts a value at its first one")
            .with_help("Remove the NUL byte.")
    } else {
        Diagnostic::new(codes::CONTROL_CHARACTER, text.span, format!("{what} holds a control character"), label)
            .with_note("Incus accepts it, but a control character is invisible or rewrites what a terminal shows")
            .with_help("Remove the character, or write it another way; only tab and newline are expected.")
    };
    diagnostics.push(diagnostic);
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn nul_is_an_error_and_other_control_characters_a_warning() {
        let text = with_domains(
            "  work:\n    description: \"bell\\a\"\n    machines:\n      web:\n        config:\n          user.note: \"nul\\0here\"\n          cloud-init.user-data: \"line\\nline\\tok\"\n        devices:\n          data:\n            type: disk\n            path: \"/da\\x1bta\"\n            source: /srv\n",
        );
        let diagnostics = check_text(&text);
        assert_eq!(found(&text, &diagnostics, "E0030"), ["\"nul\\0here\""]);
        assert_eq!(found(&text, &diagnostics, "W0009"), ["\"bell\\a\"", "\"/da\\x1bta\""]);
        let nul = diagnostics.iter().find(|d| d.message.contains("NUL")).expect("nul");
        assert_eq!(nul.message, "config value holds a NUL byte");
        let escape = diagnostics.iter().find(|d| d.code.id == "W0009" && d.message.contains("device")).expect("esc");
        assert_eq!(escape.labels[0].message, "the control character U+001B here, character 4 of the value");
    }
}
