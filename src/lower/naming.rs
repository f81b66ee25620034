//! anklume's naming convention: one Incus project per domain, one bridge per domain.

use sha2::{Digest, Sha256};

/// Linux limits interface names (and so bridge names) to 15 characters (IFNAMSIZ - 1).
pub const MAX_BRIDGE_NAME: usize = 15;

/// The Incus project of a domain: the domain's name.
pub fn project_name(domain: &str) -> String {
    domain.to_string()
}

/// anklume's bridge name for a domain, `net-<domain>`, which may be too long for Linux.
pub fn anklume_bridge_name(domain: &str) -> String {
    format!("net-{domain}")
}

/// The managed bridge of a domain: `net-<domain>` when that fits in 15 characters.
/// Otherwise (anklume's own `labs/05` has `net-corp-sandbox`, 16 characters, which
/// Incus refuses) a shortened, stable name: `net-`, the domain's first characters, `-`
/// and 4 hex digits of the domain name's sha256, so distinct domains stay distinct.
pub fn bridge_name(domain: &str) -> String {
    let full = anklume_bridge_name(domain);
    if full.len() <= MAX_BRIDGE_NAME {
        return full;
    }
    let digest = Sha256::digest(domain.as_bytes());
    let suffix: String = digest.iter().take(2).map(|byte| format!("{byte:02x}")).collect();
    let room = MAX_BRIDGE_NAME - "net-".len() - 1 - suffix.len();
    let head: String = domain.chars().take(room).collect();
    format!("net-{}-{suffix}", head.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_domains_keep_anklumes_name() {
        assert_eq!(bridge_name("work"), "net-work");
        assert_eq!(bridge_name("abcdefghijk"), "net-abcdefghijk");
    }

    #[test]
    fn long_domains_get_a_stable_15_character_name() {
        let name = bridge_name("corp-sandbox");
        assert_eq!(name.len(), 15);
        assert!(name.starts_with("net-corp-s-"), "{name}");
        assert_eq!(name, bridge_name("corp-sandbox"));
        assert_ne!(bridge_name("corp-sandbox-a"), bridge_name("corp-sandbox-b"));
    }

    #[test]
    fn a_hyphen_at_the_cut_is_not_doubled() {
        let name = bridge_name("abcde-fghijklmn");
        assert!(!name.contains("--"), "{name}");
        assert!(name.len() <= MAX_BRIDGE_NAME);
    }
}
