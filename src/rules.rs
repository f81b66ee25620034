//! The value rules that more than one stage states: the ranges, names and device types
//! the reader and the checker enforce, which the JSON schema (`anklumec schema`) also
//! describes to editors. One place, so that the two cannot drift apart.

use std::ops::RangeInclusive;

/// Retries of the boot and agent wait loops (`incus_instances_*_retries`).
pub const RETRIES: RangeInclusive<i64> = 1..=100_000;
/// Seconds between two polls of a wait loop (`incus_instances_*_delay`).
pub const DELAY: RangeInclusive<i64> = 0..=3600;
/// A machine's `boot_priority` (Incus's `boot.autostart.priority`).
pub const BOOT_PRIORITY: RangeInclusive<i64> = 0..=100;
/// A network policy's ports.
pub const PORT: RangeInclusive<i64> = 1..=65535;
/// A machine's `weight` (anklume's resource allocation) is at least this.
pub const WEIGHT_MIN: i64 = 1;

/// The longest Incus name (instances, projects, profiles, devices, volumes).
pub const MAX_NAME: usize = 63;
/// Domain, machine and profile names as a regular expression (the checker's
/// `name_problem` says the same in words): lowercase letters, digits and `-`, not at
/// either end; not all digits and at most [`MAX_NAME`] long besides.
pub const INSTANCE_NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$";
/// Device names (and the names of persistent data and shared volumes, which become
/// devices): 1-63 of `[-a-zA-Z0-9_./:]`, not starting with `.` (Incus's rule) nor `-`
/// (the incus command line would read the name as an option).
pub const DEVICE_NAME_PATTERN: &str = "^[a-zA-Z0-9_/:][-a-zA-Z0-9_./:]*$";
/// Storage volume names: device names without `/`.
pub const VOLUME_NAME_PATTERN: &str = "^[a-zA-Z0-9_:][-a-zA-Z0-9_.:]*$";

/// Incus device types (E0035 for any other), with what each is.
pub const DEVICE_TYPES: &[(&str, &str)] = &[
    ("nic", "Network interface"),
    ("disk", "Disk: the root disk, a host path, or a storage volume"),
    ("gpu", "GPU (`gputype`: `physical`, `mdev`, `mig` or `sriov`)"),
    ("proxy", "Proxy: forwards a port between the host and the instance (`listen`, `connect`)"),
    ("usb", "USB device passed through (containers and VMs)"),
    ("unix-char", "Unix character device (containers only)"),
    ("unix-block", "Unix block device (containers only)"),
    ("unix-hotplug", "Unix hotplug device (containers only)"),
    ("infiniband", "InfiniBand interface"),
    ("tpm", "Trusted Platform Module"),
    ("pci", "PCI device passed through (VMs only)"),
    ("none", "Removes the device of this name inherited from a profile"),
];

/// The names of [`DEVICE_TYPES`].
pub fn device_type_names() -> impl Iterator<Item = &'static str> {
    DEVICE_TYPES.iter().map(|(name, _)| *name)
}

pub fn is_device_type(name: &str) -> bool {
    device_type_names().any(|known| known == name)
}

/// An Incus boolean (`validate.IsBool`, read as `shared.IsTrue` does): `true`, `yes`,
/// `on` or `1`, and `false`, `no`, `off` or `0`, in any case.
pub fn incus_bool(text: &str) -> Option<bool> {
    let is = |words: [&str; 4]| words.iter().any(|word| word.eq_ignore_ascii_case(text));
    if is(["true", "yes", "on", "1"]) {
        Some(true)
    } else if is(["false", "no", "off", "0"]) {
        Some(false)
    } else {
        None
    }
}
