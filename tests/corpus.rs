//! Every file under tests/fixtures/ok compiles without errors, and its plan (JSON)
//! deploy.sh, destroy.sh and, where it has policies, its host nftables ruleset match
//! their snapshots under snapshots/.

use anklumec::compile::{Options, compile_source};
use anklumec::emit::{deploy_script, destroy_script, nftables_ruleset};
use std::path::Path;

fn compile_fixture(path: &Path) -> (String, String, String, String) {
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let name = path.file_name().and_then(|n| n.to_str()).expect("fixture name");
    let compilation = compile_source(name, &text, Options::default());
    let errors: Vec<_> = compilation.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{name} has errors: {errors:#?}");
    let plan = compilation.plan.expect("a plan when there are no errors");
    let json = serde_json::to_string_pretty(&plan).expect("plan serialises");
    let script = deploy_script(&plan).expect("deploy.sh renders");
    let destroy = destroy_script(&plan).expect("destroy.sh renders");
    (json, script, destroy, nftables_ruleset(&plan))
}

#[test]
fn ok_fixtures_compile_to_their_snapshots() {
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::glob!("fixtures/ok/*.yml", |path| {
            let (json, script, destroy, nftables) = compile_fixture(path);
            insta::assert_snapshot!("plan", json);
            insta::assert_snapshot!("deploy", script);
            insta::assert_snapshot!("destroy", destroy);
            let text = std::fs::read_to_string(path).expect("fixture is readable");
            if text.contains("network_policies:") {
                insta::assert_snapshot!("nftables", nftables);
            }
        });
    });
}

#[test]
fn compiling_twice_gives_identical_bytes() {
    insta::glob!("fixtures/ok/*.yml", |path| {
        let first = compile_fixture(path);
        let second = compile_fixture(path);
        assert_eq!(first, second, "{} compiled differently twice", path.display());
    });
}

#[test]
fn the_bundled_example_compiles_without_warnings() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/infra.yml")).expect("example");
    let compilation = compile_source("examples/infra.yml", &text, Options { deny_warnings: true });
    assert!(compilation.plan.is_some(), "{:#?}", compilation.diagnostics);
}
