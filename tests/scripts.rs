//! Generated scripts are valid bash (`bash -n`) and shellcheck-clean.

use anklumec::compile::{Options, compile_source};
use anklumec::emit::{deploy_script, destroy_script};
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
        scripts.push((format!("{} (destroy)", path.display()), destroy_script(&plan).expect("renders")));
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

/// A stand-in `incus` that records the argv of every call (NUL-separated, one call per
/// record) and behaves as an empty server (with the network ACL extensions and the
/// nftables firewall): nothing exists (every listing is empty), every change succeeds.
const RECORDING_INCUS: &str = r#"#!/usr/bin/env bash
{ printf '%s\0' "$@"; printf '\n\0'; } >>"$ANKLUMEC_TEST_LOG"
case "$1 $2" in
  "query /1.0") printf '{\n\t"api_extensions": [\n\t\t"network_acl",\n\t\t"network_bridge_acl"\n\t],\n\t"environment": {\n\t\t"firewall": "nftables"\n\t}\n}\n' ;;
  "query /1.0/"*) [[ $2 == *recursion=1* ]] || exit 1; echo '[]' ;;
  "network acl") [[ $3 == show ]] && exit 1 ;;
  "remote get-default") echo "${ANKLUMEC_TEST_REMOTE:-local}" ;;
  "list --project") ;;
  "list ^"*) echo RUNNING ;;
  "image info") echo 'Type: container' ;;
  "project show"|"network show"|"profile show"|"storage volume") exit 1 ;;
  "project get"|"network get"|"profile get"|"config get") exit 1 ;;
  "config device") [[ $3 == get ]] && exit 1 ;;
  "profile device") [[ $3 == get ]] && exit 1 ;;
esac
exit 0
"#;

/// Run `script` with [`RECORDING_INCUS`] first on PATH and `env` set; the output and
/// the argv of every incus call.
fn run_with_stand_in(script: &str, env: &[(&str, &str)]) -> (std::process::Output, Vec<Vec<String>>) {
    run_with_stand_in_at(tempfile::tempdir().expect("tempdir").path(), script, env)
}

/// [`run_with_stand_in`] in `dir` (the script's working directory).
fn run_with_stand_in_at(
    dir: &std::path::Path,
    script: &str,
    env: &[(&str, &str)],
) -> (std::process::Output, Vec<Vec<String>>) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let incus = bin.join("incus");
    std::fs::write(&incus, RECORDING_INCUS).expect("stand-in");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&incus, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let log = dir.join("calls");
    let _ = std::fs::remove_file(&log);
    let script_path = dir.join("script.sh");
    std::fs::write(&script_path, script).expect("script");
    let output = Command::new("bash")
        .arg(&script_path)
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env("ANKLUMEC_TEST_LOG", &log)
        .env("HOME", dir)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("bash runs");
    let recorded = std::fs::read(&log).unwrap_or_default();
    // Records are `arg\0...\n\0`: without the last NUL, no empty record trails.
    let recorded = recorded.strip_suffix(&[0]).unwrap_or(&recorded);
    let calls: Vec<Vec<String>> = recorded
        .split(|&b| b == 0)
        .collect::<Vec<_>>()
        .split(|field| *field == b"\n")
        .map(|call| call.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect())
        .filter(|call: &Vec<String>| !call.is_empty())
        .collect();
    (output, calls)
}

/// Compile `text` (warnings allowed), run its deploy.sh with bash against the recording
/// stand-in, and return the argv of every incus call and the script's standard output.
fn run_recorded(text: &str) -> (Vec<Vec<String>>, String) {
    let compilation = compile_source("hostile.yml", text, Options::default());
    let errors: Vec<&str> = compilation.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.code.id).collect();
    let plan = compilation.plan.unwrap_or_else(|| panic!("does not compile: {errors:?}"));
    let (output, calls) = run_with_stand_in(&deploy_script(&plan).expect("renders"), &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    (calls, String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether one call holds every one of `needle`'s arguments.
fn has(calls: &[Vec<String>], needle: &[&str]) -> bool {
    calls.iter().any(|call| needle.iter().all(|n| call.iter().any(|arg| arg == n)))
}

#[test]
fn hostile_values_reach_incus_as_exact_literals() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ok/own__hostile-strings.yml");
    let text = std::fs::read_to_string(path).expect("fixture");
    let (calls, stdout) = run_recorded(&text);
    let has = |needle: &[&str]| has(&calls, needle);

    let domain_description = "it's \"quoted\" $HOME `uname` \\ back\tslash; | & > < * ? [a] {b,c} ~ ! # %";
    assert!(has(&["project", "set", "odd", &format!("description={domain_description}")]), "{calls:#?}");
    assert!(has(&["config", "set", "odd-1", "description=line one\nline two\n-- --help -rf"]), "{calls:#?}");
    assert!(has(&["create", "tiny", "odd-1", "user.note=--force"]), "{calls:#?}");
    assert!(has(&["create", "user.glob=*", "user.unicode=été — ünïcödé ✓"]), "{calls:#?}");
    assert!(
        has(&["create", "cloud-init.user-data=#cloud-config\nruncmd:\n  - echo \"$(whoami)\" > /tmp/x\n"]),
        "{calls:#?}"
    );
    // The project name holds `; echo pwned` and `$(...)`: had it escaped its comment or
    // quotes, bash would have printed it as a line of its own.
    assert!(!stdout.lines().any(|line| line.trim() == "pwned"), "{stdout}");
    assert!(stdout.contains("1 created") || stdout.contains("created"), "{stdout}");
}

/// `global.incus_remote`: both scripts stop in their preflight, before any other incus
/// call, when the client's default remote is another one, and say how to switch; with
/// the right default remote they run.
#[test]
fn scripts_for_another_remote_stop_before_any_change() {
    let text = "project_name: t\nglobal:\n  addressing: {base_octet: 10, zone_base: 100}\n  default_os_image: tiny\n  incus_remote: prod\ndomains:\n  work:\n    machines:\n      web: {}\n";
    let plan = compile_source("remote.yml", text, Options::default()).plan.expect("compiles");
    for (name, script) in [("deploy.sh", deploy_script(&plan)), ("destroy.sh", destroy_script(&plan))] {
        let script = script.expect("renders");
        let (output, calls) = run_with_stand_in(&script, &[("ANKLUMEC_TEST_REMOTE", "local")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains("the incus client's default remote is 'local': run 'incus remote switch prod' first"),
            "{name}: {stderr}"
        );
        assert_eq!(calls, vec![vec!["remote".to_string(), "get-default".to_string()]], "{name}: nothing else ran");

        let (output, calls) = run_with_stand_in(&script, &[("ANKLUMEC_TEST_REMOTE", "prod")]);
        assert!(output.status.success(), "{name}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(calls.len() > 2, "{name} went on past its preflight");
    }
}

/// The end of a real deploy.sh run names the provisioning commands; run as printed (in
/// the directory deploy.sh ran in), they write the inventory and a playbook Ansible
/// accepts. A dry run prints none.
#[test]
fn deploy_sh_ends_with_the_provisioning_commands_and_they_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ok/own__incus-remote.yml");
    let text = std::fs::read_to_string(fixture).expect("fixture");
    std::fs::write(dir.path().join("my infra.yml"), &text).expect("write");
    let plan = compile_source("my infra.yml", &text, Options::default()).plan.expect("compiles");
    let script = deploy_script(&plan).expect("renders");
    let env = [("ANKLUMEC_TEST_REMOTE", "lab-2")];
    let (output, _) = run_with_stand_in_at(dir.path(), &script, &env);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let next: Vec<&str> = stdout.lines().skip_while(|line| !line.starts_with("next: ")).skip(1).collect();
    assert_eq!(
        next,
        [
            "  anklumec my\\ infra.yml --emit inventory -o provision",
            "  ansible-playbook -i provision/inventory.yml provision/site.yml"
        ],
        "{stdout}"
    );
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_anklumec")).parent().expect("bin dir").display().to_string();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    let run = |command: &str| {
        Command::new("bash").args(["-c", command]).env("PATH", &path).current_dir(dir.path()).output().expect("bash")
    };
    let inventory = run(next[0]);
    assert!(inventory.status.success(), "{}", String::from_utf8_lossy(&inventory.stderr));
    let written = std::fs::read_to_string(dir.path().join("provision/inventory.yml")).expect("inventory written");
    assert!(written.contains("ansible_incus_remote: \"lab-2\""), "{written}");
    if tool_available("ansible-playbook") {
        // The user's roles, beside the playbook where Ansible looks for them.
        for role in ["base", "nginx", "postgres"] {
            let tasks = dir.path().join("provision/roles").join(role).join("tasks");
            std::fs::create_dir_all(&tasks).expect("role dir");
            std::fs::write(tasks.join("main.yml"), "- ansible.builtin.ping:\n").expect("role");
        }
        let check = run(&format!("{} --syntax-check", next[1]));
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    } else {
        assert!(std::env::var_os("ANKLUMEC_E2E").is_none(), "ANKLUMEC_E2E=1 requires ansible-playbook");
        eprintln!("SKIPPED: the playbook syntax check (ansible-playbook is not installed)");
    }

    let (output, _) = run_with_stand_in_at(dir.path(), &script, &[env[0], ("DRY_RUN", "1")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && !stdout.contains("next: "), "{stdout}");
}

/// Control characters other than NUL are warnings (W0009), so they reach deploy.sh:
/// each must reach incus as the exact character, in values, descriptions and the
/// header comment, and none may end a comment or a quoted word.
#[test]
fn control_characters_reach_incus_as_exact_literals() {
    let text = "project_name: \"ctl\\r\\u0085\\n echo pwned\\u001b[2K\"\nglobal:\n  addressing:\n    base_octet: 10\n    zone_base: 100\n  default_os_image: \"local:tiny\"\ndomains:\n  odd:\n    trust_level: trusted\n    description: \"bell\\a; echo pwned\\r\"\n    machines:\n      odd-1:\n        description: \"del\\u007f'\\u009b$(echo pwned)\"\n        config:\n          user.esc: \"\\e[31m'red'\\e[0m\"\n          user.cr: \"a\\rb\\vc\\fd\\u0001\\u001f\"\n          cloud-init.user-data: \"#cloud-config\\u0085\\u2028\\u202e\\n\"\n";
    let warnings: Vec<&str> = compile_source("ctl.yml", text, Options::default())
        .diagnostics
        .iter()
        .map(|d| d.code.id)
        .filter(|code| *code == "W0009")
        .collect();
    assert_eq!(warnings.len(), 6, "{warnings:?}");
    let (calls, stdout) = run_recorded(text);
    let has = |needle: &[&str]| has(&calls, needle);
    assert!(has(&["project", "set", "odd", "description=bell\u{7}; echo pwned\r"]), "{calls:#?}");
    assert!(has(&["config", "set", "odd-1", "description=del\u{7f}'\u{9b}$(echo pwned)"]), "{calls:#?}");
    assert!(has(&["create", "user.esc=\u{1b}[31m'red'\u{1b}[0m"]), "{calls:#?}");
    assert!(has(&["create", "user.cr=a\rb\u{b}c\u{c}d\u{1}\u{1f}"]), "{calls:#?}");
    assert!(has(&["create", "cloud-init.user-data=#cloud-config\u{85}\u{2028}\u{202e}\n"]), "{calls:#?}");
    assert!(!stdout.lines().any(|line| line.trim() == "pwned"), "{stdout}");
}

const GOOD_ONE: &str = "project_name: t\nglobal:\n  addressing: {base_octet: 10, zone_base: 100}\n  default_os_image: tiny\ndomains:\n  work:\n    machines:\n      web: {ephemeral: true}\n";

/// A stand-in `incus` for destroy.sh: the server answers and the instance `web` exists,
/// unprotected, but deleting it fails (as a busy or broken server would).
const FAILING_DELETE_INCUS: &str = r#"#!/usr/bin/env bash
case "$1" in
  query) printf '{}\n' ;;
  info) printf 'Name: web\n' ;;
  config) printf 'false\n' ;;
  delete) echo "Error: simulated failure" >&2; exit 1 ;;
  *) exit 1 ;;
esac
"#;

/// destroy.sh's streams: what it did on standard output, and its errors on standard
/// error under its own name (`destroy.sh: error: ...`), as deploy.sh's carry theirs.
#[test]
fn destroy_sh_names_itself_in_its_errors_on_standard_error() {
    let plan = compile_source("infra.yml", GOOD_ONE, Options::default()).plan.expect("compiles");
    let script = destroy_script(&plan).expect("renders");
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let run = |incus: &str| {
        std::fs::write(bin.join("incus"), incus).expect("stand-in");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("incus"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let output = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
            .current_dir(dir.path())
            .output()
            .expect("bash runs");
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (output.status.code(), text(&output.stdout), text(&output.stderr))
    };

    let (code, stdout, stderr) = run("#!/usr/bin/env bash\nexit 1\n");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.starts_with("destroy.sh: error: the Incus server does not answer"), "{stderr}");
    assert_eq!(stdout, "");

    let (code, stdout, stderr) = run(FAILING_DELETE_INCUS);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let failure = "destroy.sh: error: instance work/web (infra.yml:8:7) failed running: 'incus' 'delete' 'web' '--force' '--project' 'work'\n";
    // incus's own message first (the why), then destroy.sh's.
    assert_eq!(stderr, format!("Error: simulated failure\n{failure}"));
    assert!(!stdout.contains("error"), "{stdout}");
}
