//! The fixture files under tests/fixtures, for the unit tests that run every one.

use std::path::{Path, PathBuf};

/// `tests/fixtures/<group>`.
pub(crate) fn group(group: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(group)
}

/// Every file directly in `directory` that reads as text, with its path, sorted by path.
pub(crate) fn texts_in(directory: &Path) -> Vec<(PathBuf, String)> {
    let mut texts: Vec<(PathBuf, String)> = std::fs::read_dir(directory)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok().map(|text| (entry.path(), text)))
        .collect();
    texts.sort();
    texts
}
