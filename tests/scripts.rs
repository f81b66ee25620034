//! Generated scripts are valid bash (`bash -n`) and shellcheck-clean.

use anklumec::compile::{Options, compile_source};
use anklumec::emit::deploy_script;
use std::io::Write;
use std::process::{Command, Stdio};

fn tool_available(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn scripts() -> Vec<(String, String)> {
    let mut scripts = Vec::new();
    let pattern = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ok");
    let mut paths: Vec<_> = std::fs::read_dir(pattern).expect("fixtures").flatten().map(|e| e.path()).collect();
    paths.push(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/infra.yml").into());
    paths.sort();
    for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "yml")) {
        let text = std::fs::read_to_string(&path).expect("readable");
        let compilation = compile_source(&path.display().to_string(), &text, Options::default());
        let plan = compilation.plan.unwrap_or_else(|| panic!("{} does not compile", path.display()));
        scripts.push((path.display().to_string(), deploy_script(&plan).expect("renders")));
    }
    scripts
}

fn run_on_stdin(program: &str, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    let output = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn generated_scripts_pass_bash_syntax_check() {
    for (name, script) in scripts() {
        let (ok, output) = run_on_stdin("bash", &["-n"], &script);
        assert!(ok, "bash -n rejects the script of {name}:\n{output}");
    }
}

#[test]
fn generated_scripts_pass_shellcheck() {
    if !tool_available("shellcheck") {
        assert!(
            std::env::var_os("ANKLUMEC_E2E").is_none(),
            "shellcheck is not installed, and ANKLUMEC_E2E=1 requires it (tests/e2e/setup-incus.sh installs it)"
        );
        eprintln!("SKIPPED: shellcheck is not installed (apt-get install shellcheck)");
        return;
    }
    for (name, script) in scripts() {
        let (ok, output) = run_on_stdin("shellcheck", &["--shell=bash", "--severity=style", "-"], &script);
        assert!(ok, "shellcheck complains about the script of {name}:\n{output}");
    }
}
