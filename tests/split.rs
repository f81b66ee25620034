//! anklume's split layout (an `infra/` directory) is accepted wherever a file is, and
//! means the same as the single file it stands for; diagnostics name the right file.

use anklumec::compile::{Options, SplitInput, compile_source, compile_split};
use anklumec::plan::Plan;
use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/split");

fn anklumec(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anklumec")).args(args).current_dir(FIXTURES).output().expect("runs")
}

/// The plan without what names its source (origins and the source's path and hash).
fn comparable(plan: &Plan) -> serde_json::Value {
    let mut value = serde_json::to_value(plan).expect("json");
    value["source"] = serde_json::Value::Null;
    for step in value["steps"].as_array_mut().expect("steps") {
        step["origin"] = serde_json::Value::Null;
    }
    for image in value["images"].as_array_mut().expect("images") {
        image["origin"] = serde_json::Value::Null;
    }
    value
}

fn read(path: &str) -> (String, String) {
    (path.to_string(), std::fs::read_to_string(format!("{FIXTURES}/{path}")).expect("fixture"))
}

#[test]
fn a_split_directory_compiles_like_the_file_it_stands_for() {
    let input = SplitInput {
        directory: "basic".into(),
        base: read("basic/base.yml"),
        domains: vec![read("basic/domains/10-admin.yml"), read("basic/domains/20-work.yml")],
        policies: Some(read("basic/policies.yml")),
    };
    let split = compile_split(input, Options::default());
    assert!(!split.has_errors(), "{:#?}", split.diagnostics);
    let split = split.plan.expect("a plan");
    let (_, text) = read("basic/equivalent.yml.txt");
    let single = compile_source("equivalent.yml", &text, Options::default()).plan.expect("compiles");
    assert_eq!(comparable(&split), comparable(&single));
    let files: Vec<&str> = split.steps.iter().map(|step| &*step.origin.file).collect();
    assert!(files.contains(&"basic/domains/10-admin.yml") && files.contains(&"basic/domains/20-work.yml"), "{files:?}");
}

#[test]
fn deploy_and_inventory_accept_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("deploy.sh");
    let output = anklumec(&["basic", "-o", script.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let text = std::fs::read_to_string(&script).expect("written");
    assert!(text.contains("basic/domains/20-work.yml:"), "steps name the file they come from");
    let inventory = dir.path().join("inv");
    let output = anklumec(&["basic", "--emit", "inventory", "-o", inventory.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(0));
    assert!(inventory.join("inventory.yml").is_file());
}

#[test]
fn a_domain_defined_twice_points_at_both_files() {
    let output = anklumec(&["check", "duplicate-domain", "--color", "never"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("split-duplicate-domain", stderr);
    });
    assert!(stderr.contains("duplicate-domain/domains/b.yml:2:1"), "{stderr}");
    assert!(stderr.contains("duplicate-domain/domains/a.yml:1:1"), "{stderr}");
    // The error inside the second definition is still reported, in its own file.
    assert!(stderr.contains("E0005") || stderr.contains("E0002"), "{stderr}");
}

#[test]
fn a_directory_without_base_yml_is_a_usage_error() {
    let output = anklumec(&["check", "basic/domains"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("base.yml"));
}
