//! The diagnostics, as users see them.
//!
//! Every file under tests/fixtures/err is named after the code it demonstrates
//! (`e0007_machine_name_uppercase.yml` shows E0007). Each one compiles with a
//! diagnostic of that code, and its rendered diagnostics (plain text, no colour) match
//! their snapshot, `snapshots/diag@<file>.snap`: those snapshots are the specification of
//! anklumec's diagnostics. Every code of the registry has an explanation and at least
//! one such fixture with its snapshot. Positions are checked by hand on a few files full
//! of accents and em dashes (columns count characters, byte offsets count bytes), the
//! JSON output is checked on every file, and no prefix of any fixture makes the compiler
//! panic.

use anklumec::compile::{Compilation, Options, compile_source};
use anklumec::diagnostics::{Code, Diagnostic, Severity, codes, render};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The directory of the failing fixtures.
fn err_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/err")
}

/// The directory of every snapshot.
fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots")
}

/// The snapshot file of a fixture, named as `insta::glob!` names it.
fn snapshot_of(fixture_name: &str) -> PathBuf {
    snapshot_dir().join(format!("diag@{fixture_name}.snap"))
}

/// The file names of every `*.yml` under tests/fixtures/err, sorted.
fn fixture_names() -> Vec<String> {
    let entries = std::fs::read_dir(err_dir()).expect("tests/fixtures/err is readable");
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".yml"))
        .collect();
    names.sort();
    names
}

/// The code a fixture's name announces: `e0007_machine_name_uppercase.yml` → E0007.
fn announced_code(fixture_name: &str) -> Option<Code> {
    let (prefix, rest) = fixture_name.split_once('_')?;
    if rest.is_empty() || prefix != prefix.to_lowercase() {
        return None;
    }
    Code::lookup(prefix)
}

fn read_fixture(fixture_name: &str) -> String {
    std::fs::read_to_string(err_dir().join(fixture_name))
        .unwrap_or_else(|error| panic!("cannot read {fixture_name}: {error}"))
}

/// Compile a fixture under its file name, so that diagnostics show `e0007_x.yml:3:7`.
fn compile_fixture(fixture_name: &str) -> (String, Compilation) {
    let text = read_fixture(fixture_name);
    let compilation = compile_source(fixture_name, &text, Options::default());
    (text, compilation)
}

fn file_name_of(path: &Path) -> &str {
    path.file_name().and_then(|name| name.to_str()).expect("a UTF-8 file name")
}

// ----- snapshots and codes ------------------------------------------------------------

#[test]
fn err_fixtures_render_to_their_snapshots() {
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::glob!("fixtures/err/*.yml", |path| {
            let (_, compilation) = compile_fixture(file_name_of(path));
            let text = render::to_text(&compilation.sources, &compilation.diagnostics, false);
            insta::assert_snapshot!("diag", text);
        });
    });
}

#[test]
fn every_err_fixture_reports_the_code_in_its_name() {
    let mut problems = Vec::new();
    for name in fixture_names() {
        let Some(code) = announced_code(&name) else {
            problems.push(format!("{name}: the name does not start with a known code, such as `e0007_`"));
            continue;
        };
        let (_, compilation) = compile_fixture(&name);
        if !compilation.diagnostics.iter().any(|d| d.code == code) {
            let found: Vec<&str> = compilation.diagnostics.iter().map(|d| d.code.id).collect();
            problems.push(format!("{name}: no {} diagnostic (found {found:?})", code.id));
        }
        if code.severity() == Severity::Error && compilation.plan.is_some() {
            problems.push(format!("{name}: compiled to a plan although it shows the error {}", code.id));
        }
    }
    assert!(problems.is_empty(), "fixtures that do not show their code:\n{}", problems.join("\n"));
}

#[test]
fn every_code_has_an_explanation_a_fixture_and_a_snapshot() {
    let fixtures = fixture_names();
    let mut missing = Vec::new();
    for code in codes::ALL {
        if code.summary.trim().is_empty() || code.explanation.trim().len() < 60 {
            missing.push(format!("{}: no real summary or explanation", code.id));
        }
        let prefix = format!("{}_", code.id.to_lowercase());
        let own: Vec<&String> = fixtures.iter().filter(|name| name.starts_with(&prefix)).collect();
        if own.is_empty() {
            missing.push(format!("{}: no fixture tests/fixtures/err/{prefix}<what>.yml", code.id));
        }
        for name in own {
            if !snapshot_of(name).is_file() {
                missing.push(format!("{}: no snapshot snapshots/diag@{name}.snap", code.id));
            }
        }
    }
    assert!(missing.is_empty(), "codes without a complete test:\n{}", missing.join("\n"));
}

#[test]
fn every_diag_snapshot_has_its_fixture() {
    let fixtures = fixture_names();
    let entries = std::fs::read_dir(snapshot_dir()).expect("snapshots/ is readable");
    let mut orphans: Vec<String> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter_map(|name| Some(name.strip_prefix("diag@")?.strip_suffix(".snap")?.to_string()))
        .filter(|fixture| !fixtures.contains(fixture))
        .collect();
    orphans.sort();
    assert!(orphans.is_empty(), "snapshots whose fixture is gone: {orphans:?}");
}

#[test]
fn registry_summaries_and_messages_follow_the_style() {
    // A short lowercase message without a trailing dot (acronyms such as `VM` and
    // numbers may start it).
    fn problem(text: &str) -> Option<&'static str> {
        let mut chars = text.chars();
        let first = chars.next()?;
        let second = chars.next();
        if text.ends_with('.') {
            Some("ends with a dot")
        } else if first.is_uppercase() && second.is_some_and(char::is_lowercase) {
            Some("starts with a capital")
        } else if text.contains('\n') {
            Some("spans several lines")
        } else {
            None
        }
    }
    let mut problems = Vec::new();
    for code in codes::ALL {
        if let Some(problem) = problem(code.summary) {
            problems.push(format!("{} summary {problem}: {:?}", code.id, code.summary));
        }
    }
    for name in fixture_names() {
        let (_, compilation) = compile_fixture(&name);
        for diagnostic in &compilation.diagnostics {
            if diagnostic.message.is_empty() {
                problems.push(format!("{name}: {} has an empty message", diagnostic.code.id));
            } else if let Some(problem) = problem(&diagnostic.message) {
                problems.push(format!("{name}: {} message {problem}: {:?}", diagnostic.code.id, diagnostic.message));
            }
            if diagnostic.labels.iter().filter(|label| label.primary).count() != 1 {
                problems.push(format!("{name}: {} has no single primary label", diagnostic.code.id));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ----- positions and JSON -------------------------------------------------------------

/// One diagnostic of `to_json_lines`, parsed.
fn json_lines(compilation: &Compilation) -> Vec<serde_json::Value> {
    render::to_json_lines(&compilation.sources, &compilation.diagnostics)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}")))
        .collect()
}

/// `code file:line:column` of a diagnostic's primary position, from its JSON.
fn position(json: &serde_json::Value) -> String {
    format!(
        "{} {}:{}:{}",
        json["code"].as_str().unwrap_or("?"),
        json["file"].as_str().unwrap_or("?"),
        json["line"],
        json["column"]
    )
}

/// `file:line:column` of every label (primary first, as written), from its JSON.
fn label_positions(json: &serde_json::Value) -> Vec<String> {
    json["labels"]
        .as_array()
        .map(|labels| {
            labels
                .iter()
                .map(|label| format!("{}:{}:{}", label["file"].as_str().unwrap_or("?"), label["line"], label["column"]))
                .collect()
        })
        .unwrap_or_default()
}

fn positions_of(fixture_name: &str) -> Vec<serde_json::Value> {
    json_lines(&compile_fixture(fixture_name).1)
}

#[test]
fn primary_labels_point_at_the_right_line_and_column() {
    // Columns count characters: the em dashes, guillemets and accents before each error
    // are several bytes each, so a byte column would be further right.
    let cases = [
        ("e0001_tab_indentation.yml", "E0001 e0001_tab_indentation.yml:10:1"),
        ("e0001_colon_after_accents.yml", "E0001 e0001_colon_after_accents.yml:11:40"),
        ("e0001_invalid_escape.yml", "E0001 e0001_invalid_escape.yml:11:39"),
        ("e0001_unknown_alias.yml", "E0001 e0001_unknown_alias.yml:14:17"),
        ("e0003_empty_machine.yml", "E0003 e0003_empty_machine.yml:12:11"),
        ("e0007_domain_name_accent.yml", "E0007 e0007_domain_name_accent.yml:9:3"),
        ("e0009_ip_octet_too_large.yml", "E0009 e0009_ip_octet_too_large.yml:12:59"),
        ("e0029_empty_file.yml", "E0029 e0029_empty_file.yml:1:1"),
        ("e0029_two_documents.yml", "E0029 e0029_two_documents.yml:14:1"),
        ("e0030_nul_in_description.yml", "E0030 e0030_nul_in_description.yml:11:18"),
    ];
    for (fixture, expected) in cases {
        let found: Vec<String> = positions_of(fixture).iter().map(position).collect();
        assert_eq!(found, [expected], "{fixture}");
    }

    // The end of a span counts characters too: `équipe` is 6 characters, 7 bytes.
    let accent = &positions_of("e0007_domain_name_accent.yml")[0];
    assert_eq!((&accent["end_line"], &accent["end_column"]), (&9.into(), &9.into()));
    let labels = &accent["labels"][0];
    assert_eq!(labels["byte_end"].as_u64().zip(labels["byte_start"].as_u64()).map(|(end, start)| end - start), Some(7));

    // Secondary labels: the first definition of a duplicate key, of an address.
    let duplicate = &positions_of("e0002_duplicate_machine_key.yml")[0];
    assert_eq!(
        label_positions(duplicate),
        ["e0002_duplicate_machine_key.yml:16:7", "e0002_duplicate_machine_key.yml:12:7"]
    );
    let address = &positions_of("e0011_same_ip_twice.yml")[0];
    assert_eq!(label_positions(address), ["e0011_same_ip_twice.yml:17:13", "e0011_same_ip_twice.yml:14:13"]);
}

#[test]
fn several_errors_are_all_reported_in_one_run_sorted_by_position() {
    let found: Vec<String> = positions_of("e0007_several_errors_sorted.yml").iter().map(position).collect();
    let file = "e0007_several_errors_sorted.yml";
    let expected: Vec<String> = [
        ("E0007", 18, 7),
        ("E0005", 20, 15),
        ("E0012", 21, 13),
        ("W0001", 23, 9),
        ("E0015", 25, 29),
        ("E0003", 26, 20),
        ("E0009", 27, 49),
        ("E0020", 27, 79),
    ]
    .iter()
    .map(|(code, line, column)| format!("{code} {file}:{line}:{column}"))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn json_output_parses_and_locates_every_diagnostic() {
    for name in fixture_names() {
        let (text, compilation) = compile_fixture(&name);
        let lines = json_lines(&compilation);
        assert_eq!(lines.len(), compilation.diagnostics.len(), "{name}: one JSON line per diagnostic");
        assert!(!lines.is_empty(), "{name}: no diagnostic at all");
        for (json, diagnostic) in lines.iter().zip(&compilation.diagnostics) {
            let code = json["code"].as_str().unwrap_or_default();
            assert!(Code::lookup(code).is_some(), "{name}: unknown code in {json}");
            assert_eq!(code, diagnostic.code.id, "{name}");
            let severity = json["severity"].as_str().unwrap_or_default();
            assert_eq!(severity, diagnostic.severity.to_string(), "{name}: severity in {json}");
            assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: message in {json}");
            assert_eq!(json["file"].as_str(), Some(name.as_str()), "{name}: file in {json}");
            for key in ["line", "column", "end_line", "end_column"] {
                assert!(json[key].as_u64().is_some_and(|n| n >= 1), "{name}: `{key}` in {json}");
            }
            let start = (json["line"].as_u64(), json["column"].as_u64());
            let end = (json["end_line"].as_u64(), json["end_column"].as_u64());
            assert!(start <= end, "{name}: the span ends before it starts in {json}");
            let labels = json["labels"].as_array().map(Vec::as_slice).unwrap_or_default();
            assert_eq!(labels.len(), diagnostic.labels.len(), "{name}: labels in {json}");
            for label in labels {
                let range = label["byte_start"].as_u64().zip(label["byte_end"].as_u64());
                let slice = range.and_then(|(start, end)| text.get(start as usize..end as usize));
                assert!(slice.is_some(), "{name}: a label's bytes are not a slice of the file in {json}");
                assert!(label["line"].as_u64().is_some_and(|n| n >= 1), "{name}: label line in {json}");
                assert!(label["column"].as_u64().is_some_and(|n| n >= 1), "{name}: label column in {json}");
            }
            assert!(json["notes"].is_array(), "{name}: notes in {json}");
            assert!(json["help"].is_null() || json["help"].is_string(), "{name}: help in {json}");
        }
    }
}

// ----- robustness ---------------------------------------------------------------------

/// Largest fixture whose every prefix is compiled.
const TRUNCATION_LIMIT: usize = 4096;

/// Compile `text` cut at byte `end` (a character boundary); say what went wrong, if
/// anything: a panic, a bad label, a diagnostic that cannot be rendered.
fn truncation_failure(name: &str, text: &str, end: usize) -> Option<String> {
    let prefix = &text[..end];
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let compilation = compile_source(name, prefix, Options::default());
        let rendered = render::to_text(&compilation.sources, &compilation.diagnostics, false);
        let json = render::to_json_lines(&compilation.sources, &compilation.diagnostics);
        (compilation, rendered, json)
    }));
    let Ok((compilation, rendered, json)) = outcome else {
        return Some(format!("{name} cut at byte {end}: panicked"));
    };
    let bad_span = |d: &&Diagnostic| d.labels.iter().any(|label| prefix.get(label.span.range()).is_none());
    if compilation.plan.is_none() && !compilation.has_errors() {
        Some(format!("{name} cut at byte {end}: no plan and no error"))
    } else if let Some(diagnostic) = compilation.diagnostics.iter().find(bad_span) {
        Some(format!("{name} cut at byte {end}: {} has a label outside the text", diagnostic.code.id))
    } else if rendered.contains("cannot show the source") {
        Some(format!("{name} cut at byte {end}: a diagnostic could not be rendered"))
    } else if json.lines().count() != compilation.diagnostics.len() {
        Some(format!("{name} cut at byte {end}: JSON lines and diagnostics differ"))
    } else {
        None
    }
}

#[test]
fn no_prefix_of_any_err_fixture_panics() {
    let fixtures: Vec<(String, String)> = fixture_names()
        .into_iter()
        .map(|name| {
            let text = read_fixture(&name);
            (name, text)
        })
        .filter(|(_, text)| text.len() <= TRUNCATION_LIMIT)
        .collect();
    assert!(fixtures.len() > 10, "too few fixtures to truncate: {}", fixtures.len());
    // Every (fixture, cut) pair, dealt round-robin to the workers: the cuts of the alias
    // bomb near its end cost the most, and they are next to each other.
    let cuts: Vec<(&str, &str, usize)> = fixtures
        .iter()
        .flat_map(|(name, text)| {
            (0..=text.len())
                .filter(|&end| text.is_char_boundary(end))
                .map(move |end| (name.as_str(), text.as_str(), end))
        })
        .collect();
    let workers = std::thread::available_parallelism().map_or(4, usize::from).min(16);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                let cuts = &cuts;
                scope.spawn(move || {
                    cuts.iter()
                        .skip(worker)
                        .step_by(workers)
                        .filter_map(|(name, text, end)| truncation_failure(name, text, *end))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|handle| handle.join().unwrap_or_else(|_| vec!["a worker died".into()])).collect()
    });
    assert!(failures.is_empty(), "{} truncated fixtures failed:\n{}", failures.len(), failures.join("\n"));
}

// ----- long lines ---------------------------------------------------------------------

/// A whole infra.yml on one line of about 1 MB, with a typo near its start and one
/// near its end, in a line full of accents (columns count characters).
fn one_line_infra() -> String {
    let filler: String = (0..70_000).map(|i| format!("clé{i}: «é», ")).collect();
    format!(
        "{{project_name: démo, x: {{{filler}end: 1}}, global: {{default_os_image: tiny, addressing: {{base_octet: 10, zone_base: 100}}}}, domains: {{work: {{trust_level: trusted, machines: {{web: {{type: lxc, config: {{limits.memroy: 1GiB}}}}}}}}}}}}\n"
    )
}

#[test]
fn a_long_line_is_shown_as_a_window_around_its_labels() {
    let text = one_line_infra();
    assert!(text.len() > 1_000_000);
    let compilation = compile_source("one-line.yml", &text, Options::default());
    let rendered = render::to_text(&compilation.sources, &compilation.diagnostics, false);
    assert!(rendered.len() < 2_000, "the whole line was printed: {} bytes", rendered.len());
    // The header keeps the original line and column (in characters).
    let typo = text.find("limits.memroy").expect("typo");
    let column = text[..typo].chars().count() + 1;
    assert!(rendered.contains(&format!("one-line.yml:1:{column}")), "{rendered}");
    let unknown = text.find(" x: ").expect("x") + 1;
    assert!(rendered.contains(&format!("one-line.yml:1:{}", text[..unknown].chars().count() + 1)), "{rendered}");
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("long_line", rendered);
    });
    // JSON keeps exact positions.
    let json = json_lines(&compilation);
    assert!(json.iter().any(|d| d["column"] == serde_json::json!(column)), "{json:?}");
}

#[test]
fn a_label_over_a_whole_long_line_is_cut() {
    // `project_name` is a 300 kB flow mapping on one line: E0003 labels all of it.
    let big: String = (0..30_000).map(|i| format!("k{i}: v, ")).collect();
    let text = format!("global: {{}}\ndomains: {{}}\nproject_name: {{{big}z: 1}}\n");
    let compilation = compile_source("big.yml", &text, Options::default());
    assert!(compilation.diagnostics.iter().any(|d| d.code.id == "E0003"));
    let rendered = render::to_text(&compilation.sources, &compilation.diagnostics, false);
    assert!(rendered.contains("big.yml:3:15"), "{rendered}");
    assert!(rendered.contains('…'), "{rendered}");
    assert!(rendered.lines().all(|line| line.chars().count() < 600), "{rendered}");
}
