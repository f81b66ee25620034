//! Semantic analysis: every rule of infra.yml that the typed tree cannot express.
//!
//! One pass per concern, each in its own file; every pass reads the whole tree and
//! reports everything it finds into the sink (collect, don't stop). The checker never
//! changes the tree and never decides defaults for lowering: it only says what is wrong.
//!
//! Disabled domains (`enabled: false`) are checked like the others, and take part in
//! addressing (anklume numbers them too).

mod addressing;
mod config;
mod conflicts;
mod devices;
mod isolation;
mod machines;
mod names;
mod references;
mod strings;

use crate::diagnostics::Diagnostics;
use crate::syntax::ast::Infra;

type Pass = fn(&Infra, &mut Diagnostics);

/// The passes, in the order their diagnostics are reported, in two halves of about
/// equal work.
const PASSES: [&[Pass]; 2] = [
    &[names::check, addressing::check, references::check, isolation::check, machines::check],
    &[config::check, conflicts::check, devices::check, strings::check],
];

/// From this many machines on, the two halves of the passes run on two threads.
const MACHINES_FOR_TWO_THREADS: usize = 1_000;

/// Run every semantic pass over `infra`, reporting into `diagnostics`.
pub fn check(infra: &Infra, diagnostics: &mut Diagnostics) {
    let machines: usize = infra.domains.iter().map(|domain| domain.machines.len()).sum();
    if machines < MACHINES_FOR_TWO_THREADS || crate::parallel::cores() < 2 {
        return check_on_one_thread(infra, diagnostics);
    }
    // The passes only read the tree: the second half runs beside the first, and its
    // diagnostics follow the first's, as they would on one thread.
    let halves = crate::parallel::map(&PASSES, |passes| {
        let mut found = Diagnostics::new();
        for pass in *passes {
            pass(infra, &mut found);
        }
        found
    });
    for found in halves {
        diagnostics.extend(found);
    }
}

fn check_on_one_thread(infra: &Infra, diagnostics: &mut Diagnostics) {
    for pass in PASSES.iter().copied().flatten() {
        pass(infra, diagnostics);
    }
}

/// Typo suggestions: the same measure as the reader's, so that both suggest alike.
pub(crate) use crate::syntax::read::closest;

/// `a`, `a and b`, `a, b and c`, each in backquotes.
pub(crate) fn quoted_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("`{}`", item.as_ref())).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A character Incus must never see in a string: a control character other than tab
/// and newline (NUL included).
pub(crate) fn is_forbidden_control(c: char) -> bool {
    c.is_control() && c != '\t' && c != '\n'
}

/// `text` with its control characters escaped (`\u{7}`), for messages; everything else
/// (quotes, accents) as written.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    crate::source::escape_controls(text)
}

/// A character as a label names it: `x`, a space, a NUL byte, U+0007.
pub(crate) fn describe_char(c: char) -> String {
    if c == '\0' {
        "a NUL byte".to_string()
    } else if c.is_control() {
        format!("the control character U+{:04X}", u32::from(c))
    } else if c == ' ' {
        "a space".to_string()
    } else if c.is_whitespace() {
        format!("whitespace (U+{:04X})", u32::from(c))
    } else {
        format!("`{c}`")
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Shared helpers of the checker's tests: parse inline YAML, read it, check it.

    use crate::diagnostics::{Diagnostic, Diagnostics};
    use crate::source::FileId;

    /// Parse, read and check `text`; panics if the reader reports errors (tests of the
    /// checker must start from well-formed input).
    pub fn check_text(text: &str) -> Vec<Diagnostic> {
        let mut diagnostics = Diagnostics::new();
        let node = crate::syntax::yaml::parse(FileId(0), text, &Default::default(), &mut diagnostics);
        let infra = node.map(|node| crate::syntax::read::read_infra(&node, &mut diagnostics));
        let front: Vec<String> =
            diagnostics.iter().filter(|d| d.is_error()).map(|d| format!("{}: {}", d.code.id, d.message)).collect();
        assert!(front.is_empty(), "the front end rejected the test input: {front:?}");
        let infra = infra.expect("the YAML parser returned a tree");
        let mut checked = Diagnostics::new();
        super::check(&infra, &mut checked);
        checked.into_sorted()
    }

    /// The source text under a diagnostic's primary label.
    pub fn primary<'a>(text: &'a str, diagnostic: &Diagnostic) -> &'a str {
        &text[diagnostic.primary_span().range()]
    }

    /// The source text under a diagnostic's secondary labels.
    pub fn secondaries<'a>(text: &'a str, diagnostic: &Diagnostic) -> Vec<&'a str> {
        diagnostic.labels.iter().filter(|label| !label.primary).map(|label| &text[label.span.range()]).collect()
    }

    /// `(code, text under the primary label)` of every diagnostic with `code`.
    pub fn found<'a>(text: &'a str, diagnostics: &[Diagnostic], code: &str) -> Vec<&'a str> {
        diagnostics.iter().filter(|d| d.code.id == code).map(|d| primary(text, d)).collect()
    }

    /// The single diagnostic with `code`, or a panic listing what was found.
    pub fn only<'d>(diagnostics: &'d [Diagnostic], code: &str) -> &'d Diagnostic {
        let matching: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.code.id == code).collect();
        assert_eq!(matching.len(), 1, "expected exactly one {code}, got {:#?}", summary(diagnostics));
        matching[0]
    }

    pub fn summary(diagnostics: &[Diagnostic]) -> Vec<String> {
        diagnostics.iter().map(|d| format!("{} {:?}: {}", d.code.id, d.severity, d.message)).collect()
    }

    /// A complete file around `domains`, in zone mode with a default image.
    pub fn with_domains(domains: &str) -> String {
        format!(
            "project_name: t\nglobal:\n  addressing:\n    base_octet: 10\n    zone_base: 100\n  default_os_image: \"images:debian/13\"\ndomains:\n{domains}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::diagnostics::Severity;

    #[test]
    fn closest_finds_typos_only() {
        assert_eq!(closest("vm-resource", ["vm-resources", "gpu"]), Some("vm-resources"));
        assert_eq!(closest("nvidia-compte", ["nvidia-compute"]), Some("nvidia-compute"));
        assert_eq!(closest("web", ["database"]), None);
        assert_eq!(closest("web", ["web"]), None);
    }

    #[test]
    fn an_empty_tree_is_fine() {
        let mut diagnostics = crate::diagnostics::Diagnostics::new();
        check(&Infra::default(), &mut diagnostics);
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    }

    #[test]
    fn quoted_lists() {
        assert_eq!(quoted_list::<&str>(&[]), "");
        assert_eq!(quoted_list(&["a"]), "`a`");
        assert_eq!(quoted_list(&["a", "b", "c"]), "`a`, `b` and `c`");
    }

    /// Expected warnings of corpus files: the anklume examples put containers in
    /// untrusted and disposable domains (W0002), llm-supervisor shares a GPU between
    /// two machines (W0004, as anklume's own generator warns), and lab 05's domain
    /// `corp-sandbox` needs a shortened bridge name (W0006).
    fn expected_warnings(name: &str) -> Vec<&'static str> {
        let expected: [(&str, &[&str]); 5] = [
            ("llm-supervisor", &["W0004"]),
            ("sandbox-isolation", &["W0002", "W0002"]),
            ("tor-gateway", &["W0002", "W0002"]),
            ("05-security-audit", &["W0002", "W0002", "W0006"]),
            ("full-v1", &["W0004"]),
        ];
        expected.iter().find(|(part, _)| name.contains(part)).map_or_else(Vec::new, |(_, codes)| codes.to_vec())
    }

    /// The corpus: its copy under tests/fixtures/ok, and the shared one when present.
    fn corpus_files() -> Vec<std::path::PathBuf> {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ok");
        let shared = std::path::Path::new("/work/shared/corpus");
        let directories = [fixtures, shared.join("anklume"), shared.join("seed"), shared.join("schema")];
        let mut files: Vec<std::path::PathBuf> = directories
            .iter()
            .filter_map(|directory| std::fs::read_dir(directory).ok())
            .flat_map(|entries| entries.flatten().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|extension| extension == "yml"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn the_corpus_has_no_errors_and_only_known_warnings() {
        let files = corpus_files();
        assert!(files.len() >= 14, "corpus files: {files:?}");
        for path in files {
            let text = std::fs::read_to_string(&path).expect("corpus file is readable");
            let diagnostics = check_text(&text);
            let name = path.display().to_string();
            assert!(diagnostics.iter().all(|d| d.severity != Severity::Error), "{name}: {:#?}", summary(&diagnostics));
            let mut warnings: Vec<&str> =
                diagnostics.iter().filter(|d| d.severity == Severity::Warning).map(|d| d.code.id).collect();
            warnings.sort_unstable();
            assert_eq!(warnings, expected_warnings(&name), "{name}: {:#?}", summary(&diagnostics));
        }
    }
}

#[cfg(test)]
mod threads {
    use super::*;
    use crate::source::FileId;

    /// A large file with problems for every pass: the diagnostics, in their order, are
    /// those of the passes run one after the other.
    #[test]
    fn two_threads_report_what_one_does_in_the_same_order() {
        let mut text = String::from("project_name: big\nglobal:\n  default_os_image: images:debian/13\ndomains:\n");
        for domain in 0..30 {
            let level = ["admin", "trusted", "semi-trusted", "untrusted", "disposable"][domain % 5];
            text.push_str(&format!("  d{domain}:\n    trust_level: {level}\n    machines:\n"));
            for machine in 0..40 {
                // Repeated names across domains, bad and unknown config keys, a
                // privileged container, a bad device, a control character.
                let name = if machine == 0 { "same".to_string() } else { format!("m{domain}x{machine}") };
                text.push_str(&format!("      {name}:\n        config:\n"));
                match machine % 5 {
                    0 => text.push_str("          limits.cpu: lots\n"),
                    1 => text.push_str("          limits.cpus: \"2\"\n"),
                    2 => text.push_str("          security.privileged: \"true\"\n"),
                    3 => text.push_str("          user.note: \"a\\u0007b\"\n"),
                    _ => text.push_str("          limits.memory: 1GiB\n        devices:\n          d: {type: nope}\n"),
                }
            }
        }
        let mut front = Diagnostics::new();
        let root = crate::syntax::yaml::parse(FileId(0), &text, &Default::default(), &mut front);
        let infra = crate::syntax::read::read_infra(&root.expect("parses"), &mut front);
        let (mut one, mut two) = (Diagnostics::new(), Diagnostics::new());
        check_on_one_thread(&infra, &mut one);
        check(&infra, &mut two);
        let listed = |found: &Diagnostics| found.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>();
        let codes: std::collections::BTreeSet<&str> = one.iter().map(|d| d.code.id).collect();
        assert!(codes.len() >= 5, "the file draws too few kinds of diagnostic: {codes:?}");
        assert_eq!(listed(&two), listed(&one));
    }
}
