//! The command line contract: exit codes, where output goes, and that a failed
//! compilation never writes or damages the output file.

use std::path::Path;
use std::process::{Command, Output};

const GOOD: &str = "project_name: t\nglobal:\n  addressing: {base_octet: 10, zone_base: 100}\n  default_os_image: tiny\ndomains:\n  work:\n    machines:\n      web: {}\n";
const BAD: &str = "project_name: t\nglobal:\n  addressing: {base_octet: 10}\n  default_os_image: tiny\ndomains:\n  work:\n    machines:\n      web: {type: container}\n";

fn anklumec(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anklumec")).args(args).current_dir(dir).output().expect("runs")
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

#[test]
fn compiling_writes_an_executable_script_and_exits_0() {
    let dir = dir_with(&[("infra.yml", GOOD)]);
    let output = anklumec(&["infra.yml", "-o", "deploy.sh"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let script = std::fs::read_to_string(dir.path().join("deploy.sh")).expect("written");
    assert!(script.starts_with("#!/usr/bin/env bash\n"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("deploy.sh")).expect("meta").permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "deploy.sh is executable");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no temporary file is left behind: {leftovers:?}");
}

#[test]
fn dash_writes_to_standard_output() {
    let dir = dir_with(&[("infra.yml", GOOD)]);
    let output = anklumec(&["infra.yml", "-o", "-"], dir.path());
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("#!/usr/bin/env bash\n"));
}

#[test]
fn errors_exit_1_and_leave_an_existing_output_untouched() {
    let dir = dir_with(&[("infra.yml", BAD), ("deploy.sh", "previous script\n")]);
    let output = anklumec(&["infra.yml", "-o", "deploy.sh"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("E0005") && stderr.contains("infra.yml:8:"), "{stderr}");
    assert_eq!(std::fs::read_to_string(dir.path().join("deploy.sh")).expect("still there"), "previous script\n");
    assert!(output.stdout.is_empty());
}

#[test]
fn errors_create_no_output_file() {
    let dir = dir_with(&[("infra.yml", BAD)]);
    let output = anklumec(&["infra.yml", "-o", "deploy.sh"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    assert!(!dir.path().join("deploy.sh").exists());
}

#[test]
fn usage_and_io_errors_exit_2() {
    let dir = dir_with(&[]);
    assert_eq!(anklumec(&["missing.yml"], dir.path()).status.code(), Some(2));
    assert_eq!(anklumec(&["--no-such-flag"], dir.path()).status.code(), Some(2));
    let dir = dir_with(&[("infra.yml", GOOD)]);
    assert_eq!(anklumec(&["infra.yml", "-o", "no/such/dir/deploy.sh"], dir.path()).status.code(), Some(2));
    assert_eq!(anklumec(&["explain", "E9999"], dir.path()).status.code(), Some(2));
}

#[test]
fn check_prints_diagnostics_and_writes_nothing() {
    let dir = dir_with(&[("infra.yml", BAD)]);
    let output = anklumec(&["check", "infra.yml"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let dir = dir_with(&[("infra.yml", GOOD)]);
    assert_eq!(anklumec(&["check", "infra.yml"], dir.path()).status.code(), Some(0));
}

#[test]
fn json_diagnostics_are_one_object_per_line() {
    let dir = dir_with(&[("infra.yml", BAD)]);
    let output = anklumec(&["check", "infra.yml", "--message-format", "json"], dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first: serde_json::Value = serde_json::from_str(stderr.lines().next().expect("a line")).expect("json");
    assert_eq!(first["code"], "E0005");
    assert_eq!(first["line"], 8);
}

#[test]
fn plan_json_carries_the_schema_version() {
    let dir = dir_with(&[("infra.yml", GOOD)]);
    let output = anklumec(&["plan", "infra.yml", "--format", "json"], dir.path());
    assert_eq!(output.status.code(), Some(0));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(plan["schema_version"], anklumec::plan::SCHEMA_VERSION);
    assert_eq!(plan["steps"][0]["action"], "ensure_project");
}

#[test]
fn deny_warnings_turns_warnings_into_errors() {
    let warned = "project_name: t\nglobal:\n  addressing: {base_octet: 10}\n  default_os_image: tiny\ndomains:\n  work:\n    machines:\n      web: {tpye: vm}\n";
    let dir = dir_with(&[("infra.yml", warned)]);
    assert_eq!(anklumec(&["check", "infra.yml"], dir.path()).status.code(), Some(0));
    assert_eq!(anklumec(&["check", "infra.yml", "--deny-warnings"], dir.path()).status.code(), Some(1));
}

#[test]
fn every_code_has_an_explanation() {
    let dir = dir_with(&[]);
    for code in anklumec::diagnostics::codes::ALL {
        let output = anklumec(&["explain", code.id], dir.path());
        assert_eq!(output.status.code(), Some(0), "{}", code.id);
        assert!(String::from_utf8_lossy(&output.stdout).len() > 80, "{} has a real explanation", code.id);
    }
}

#[test]
fn completions_and_man_page_are_generated_from_the_cli() {
    let dir = dir_with(&[]);
    for shell in ["bash", "zsh", "fish"] {
        let output = anklumec(&["completions", shell], dir.path());
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("anklumec") && text.contains("explain"), "{shell} completions name the subcommands");
    }
    let output = anklumec(&["man"], dir.path());
    assert_eq!(output.status.code(), Some(0));
    let page = String::from_utf8_lossy(&output.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH anklumec"), "{page}");
    assert!(page.contains("deny\\-warnings") || page.contains("deny-warnings"));
}

#[test]
fn separate_processes_give_byte_identical_output() {
    // Each process gets its own hash seed: output must not depend on it.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ok/schema__full-v1.yml");
    let dir = dir_with(&[]);
    let runs: Vec<Output> = (0..3).map(|_| anklumec(&[path, "-o", "-"], dir.path())).collect();
    let plans: Vec<Output> = (0..3).map(|_| anklumec(&["plan", path, "--format", "json"], dir.path())).collect();
    for run in runs.iter().chain(&plans) {
        assert_eq!(run.status.code(), Some(0));
    }
    assert!(runs.windows(2).all(|w| w[0].stdout == w[1].stdout && w[0].stderr == w[1].stderr));
    assert!(plans.windows(2).all(|w| w[0].stdout == w[1].stdout));
}

#[test]
fn a_huge_input_is_a_clear_diagnostic() {
    let dir = dir_with(&[]);
    let file = std::fs::File::create(dir.path().join("huge.yml")).expect("create");
    file.set_len(100 * 1024 * 1024).expect("sparse 100 MB file");
    let output = anklumec(&["check", "huge.yml"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("E0006") && stderr.contains("64 MiB"), "{stderr}");
}

#[test]
fn sarif_output_has_the_structure_code_scanning_needs() {
    let dir = dir_with(&[("infra.yml", BAD)]);
    let output = anklumec(&["check", "infra.yml", "--message-format", "sarif"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    let sarif: serde_json::Value = serde_json::from_slice(&output.stderr).expect("one JSON document");
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "anklumec");
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), anklumec::diagnostics::codes::ALL.len());
    assert!(
        rules.iter().all(|rule| rule["id"].is_string() && rule["help"]["text"].as_str().is_some_and(|t| t.len() > 40))
    );
    let results = run["results"].as_array().expect("results");
    let result = results.iter().find(|r| r["ruleId"] == "E0005").expect("the E0005 result");
    assert_eq!(result["level"], "error");
    let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
    assert_eq!(rules[index]["id"], "E0005");
    let location = &result["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], "infra.yml");
    assert_eq!(location["region"]["startLine"], 8);
    assert_eq!(location["region"]["startColumn"], 19);
    assert!(location["region"]["endColumn"].as_u64() > location["region"]["startColumn"].as_u64());
}

/// anklumec in `dir` with `$INCUS_SOCKET` naming a socket nobody listens on: the exit
/// status and standard error.
fn without_server(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_anklumec"))
        .args(args)
        .env("INCUS_SOCKET", dir.join("no-such.socket"))
        .current_dir(dir)
        .output()
        .expect("runs");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The runner's commands exit 2, with a message naming the socket, when no server
/// answers; and 1, sending nothing, when the input has errors.
#[test]
fn runner_commands_without_a_server_exit_2_and_with_bad_input_exit_1() {
    let dir = dir_with(&[("infra.yml", GOOD), ("bad.yml", BAD)]);
    for command in [&["apply"][..], &["destroy"], &["destroy", "--force"], &["diff"]] {
        let mut args = command.to_vec();
        args.push("infra.yml");
        let (code, stderr) = without_server(&args, dir.path());
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("does not answer") && stderr.contains("no-such.socket"), "{args:?}: {stderr}");
    }
    let (code, stderr) = without_server(&["destroy", "bad.yml"], dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("E0005") && !stderr.contains("does not answer"), "{stderr}");
}

/// A plan for another incus remote than `local`: the runner refuses it before it
/// reaches for a socket; `local` is the runner's own server.
#[test]
fn runner_commands_refuse_a_plan_for_another_remote() {
    let remote = |name: &str| {
        GOOD.replace("  default_os_image: tiny\n", &format!("  default_os_image: tiny\n  incus_remote: {name}\n"))
    };
    let dir = dir_with(&[("prod.yml", &remote("prod")), ("local.yml", &remote("local"))]);
    for command in ["apply", "destroy", "diff"] {
        for (file, expected) in
            [("prod.yml", "the runner only speaks to the local server"), ("local.yml", "does not answer")]
        {
            let (code, stderr) = without_server(&[command, file], dir.path());
            assert_eq!(code, Some(2), "{command} {file}: {stderr}");
            assert!(stderr.contains(expected), "{command} {file}: {stderr}");
        }
    }
}

/// `-o` naming the source (directly, through a link, or a file of a split directory)
/// is refused before anything is written: the script would replace the infra.yml it
/// was compiled from.
#[test]
fn the_output_cannot_replace_the_source() {
    let dir = dir_with(&[("infra.yml", GOOD)]);
    std::os::unix::fs::symlink("infra.yml", dir.path().join("link.yml")).expect("symlink");
    for output in ["infra.yml", "./infra.yml", "link.yml"] {
        let result = anklumec(&["infra.yml", "-o", output], dir.path());
        assert_eq!(result.status.code(), Some(2), "-o {output}");
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(stderr.contains("names the source infra.yml"), "-o {output}: {stderr}");
        assert_eq!(std::fs::read_to_string(dir.path().join("infra.yml")).expect("kept"), GOOD, "-o {output}");
    }
    let split = dir.path().join("infra");
    std::fs::create_dir_all(split.join("domains")).expect("split dir");
    let (base, work) = GOOD.split_at(GOOD.find("domains:").expect("domains"));
    std::fs::write(split.join("base.yml"), base).expect("base");
    std::fs::write(split.join("domains/work.yml"), work).expect("domain");
    let result = anklumec(&["infra", "-o", "infra/domains/work.yml"], dir.path());
    assert_eq!(result.status.code(), Some(2), "{}", String::from_utf8_lossy(&result.stderr));
    assert_eq!(std::fs::read_to_string(split.join("domains/work.yml")).expect("kept"), work);
    let result = anklumec(&["infra.yml", "-o", "deploy.sh"], dir.path());
    assert_eq!(result.status.code(), Some(0), "{}", String::from_utf8_lossy(&result.stderr));
}

/// In a split `infra/` directory, a `*.yaml` domain file or a `*.yml` that is not a
/// file (a dangling link) is not read, and the CLI says so instead of leaving a
/// domain out without a word.
#[test]
fn a_split_directory_names_the_files_it_does_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/split/basic");
    let infra = dir.path().join("infra");
    std::fs::create_dir_all(infra.join("domains")).expect("domains");
    for name in ["base.yml", "policies.yml", "domains/10-admin.yml", "domains/20-work.yml"] {
        std::fs::copy(fixture.join(name), infra.join(name)).expect("copy");
    }
    std::fs::rename(infra.join("domains/20-work.yml"), infra.join("domains/20-work.yaml")).expect("rename");
    std::os::unix::fs::symlink("gone.yml", infra.join("domains/30-lost.yml")).expect("symlink");
    let result = anklumec(&["check", "infra"], dir.path());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("infra/domains/20-work.yaml is not read: domain files end in .yml"), "{stderr}");
    assert!(stderr.contains("infra/domains/30-lost.yml is not read: it is not a file"), "{stderr}");
}
