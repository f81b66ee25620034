//! deploy.sh at scale: a 10,000-machine script that bash can read and run within the
//! kernel's limits, and a rerun on a converged server whose number of incus calls does
//! not grow with the machines of a project. Nothing here is timed (speed is the
//! benchmarks' business) and no Incus server is needed: the server is a stand-in,
//! `tests/e2e/incus-state.sh`, that answers from a directory.

use anklumec::compile::{Options, compile_source};
use anklumec::emit;
use anklumec::plan::{Action, Plan};
use std::path::Path;
use std::process::{Command, Stdio};

#[path = "../benches/synthetic.rs"]
mod synthetic;

#[path = "common/listing.rs"]
mod listing;

/// Linux's MAX_ARG_STRLEN: the longest single argument execve accepts (32 pages).
const MAX_ARG_STRLEN: usize = 128 * 1024;

/// The longest command line deploy.sh may hand to a program (all of its arguments):
/// far under the kernel's ARG_MAX (2 MiB by default, arguments and environment
/// together), and under MAX_ARG_STRLEN, so that even a command passed as one string
/// (`bash -c`, `ssh host ...`) would fit.
const MAX_COMMAND: usize = 4 * 1024;

fn compile(text: &str) -> Plan {
    let compilation = compile_source("infra.yml", text, Options::default());
    let errors: Vec<_> = compilation.diagnostics.iter().filter(|d| d.is_error()).map(|d| &d.message).collect();
    assert!(errors.is_empty(), "{errors:?}");
    compilation.plan.expect("a plan")
}

/// A directory with `bin/incus` (the stand-in) and `state/` (the server it answers for).
struct Server {
    dir: tempfile::TempDir,
}

impl Server {
    fn new() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        std::fs::create_dir_all(dir.path().join("state")).expect("state");
        let stand_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/incus-state.sh");
        std::fs::copy(stand_in, bin.join("incus")).expect("stand-in");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("incus"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Server { dir }
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.state().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("state directory");
        std::fs::write(path, text).expect("state file");
    }

    /// Every project, bridge, profile and instance of `plan` exists with its declared
    /// values, every instance runs, and every VM's agent reports.
    fn converged(plan: &Plan) -> Server {
        let server = Server::new();
        for (path, text) in listing::converged(plan) {
            server.write(&format!("query/{}", listing::file_name(&path)), &text);
        }
        let mut agents = String::new();
        for step in &plan.steps {
            if let Action::EnsureInstance(spec) = &step.action
                && spec.instance_type.keyword() == "vm"
            {
                agents.push_str(&format!("{},{},9\n", spec.project, spec.name));
            }
        }
        server.write("agents", &agents);
        server
    }

    /// Run `script` with bash against this server; the output, the calls incus received
    /// and the changes among them.
    fn run(&self, script: &str, env: &[(&str, &str)]) -> (std::process::Output, Vec<String>, Vec<String>) {
        let path = self.dir.path().join("deploy.sh");
        std::fs::write(&path, script).expect("script");
        let mut command = Command::new("bash");
        command
            .arg(&path)
            .env("PATH", format!("{}:/usr/bin:/bin", self.dir.path().join("bin").display()))
            .env("AK_STATE", self.state())
            .env_remove("DRY_RUN")
            .stdin(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().expect("bash runs");
        let lines = |name: &str| {
            std::fs::read_to_string(self.state().join(name)).unwrap_or_default().lines().map(str::to_string).collect()
        };
        (output, lines("calls"), lines("mutations"))
    }
}

/// The 10,000-machine deploy.sh of the benchmarks: bash parses it, no argument of it
/// comes near MAX_ARG_STRLEN, and every line that runs a step stays short.
///
/// Bash reads a line of any length, and a call of one of the script's own functions
/// never goes through execve, so the kernel's limits bind only the commands that the
/// helpers run: MAX_ARG_STRLEN on each argument, ARG_MAX on each command line (see
/// the next test for those). Every generated line but one is a helper call for one
/// step, a few hundred bytes; the one line that grows with the plan is
/// `ak_require_image IMAGE PROJECT/NAME:TYPE...`, which lists the instances an image
/// serves (220 kB here) and runs only `incus image info IMAGE`.
#[test]
fn a_10000_machine_script_parses_and_its_lines_stay_short() {
    let plan = compile(&synthetic::infra_yml(10_000));
    let script = emit::deploy_script(&plan).expect("renders");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deploy.sh");
    std::fs::write(&path, &script).expect("script");
    let syntax = Command::new("bash").arg("-n").arg(&path).output().expect("bash -n runs");
    assert!(syntax.status.success(), "bash -n: {}", String::from_utf8_lossy(&syntax.stderr));

    let generated = &script[script.find("\nak_preflight\n").expect("the preflight call")..];
    let mut longest_word = 0;
    let mut steps = 0;
    // One line, one command; but an ACL's document is one quoted word of many lines,
    // from `ak_ensure_acl NAME '{` to `}'`.
    let mut commands: Vec<String> = Vec::new();
    let mut open_acl = false;
    for line in generated.lines() {
        if open_acl {
            let command = commands.last_mut().expect("the ACL's first line");
            command.push('\n');
            command.push_str(line);
            open_acl = line != "}'";
        } else {
            open_acl = line.starts_with("ak_ensure_acl ") && line.ends_with("'{");
            commands.push(line.to_string());
        }
    }
    for line in &commands {
        let line = line.as_str();
        let words = shlex::split(line).unwrap_or_else(|| panic!("one line, one command: {line}"));
        longest_word = longest_word.max(words.iter().map(String::len).max().unwrap_or(0));
        match words.first().map(String::as_str) {
            None | Some("ak_require_image") => {}
            Some(_) => {
                assert!(line.len() <= MAX_COMMAND, "a line of {} bytes: {}", line.len(), &line[..200]);
                steps += 1;
            }
        }
    }
    assert!(steps > 10 * 10_000, "{steps} helper calls");
    assert!(longest_word < 1024, "an argument of {longest_word} bytes");
    assert!(longest_word < MAX_ARG_STRLEN);
}

/// What deploy.sh runs stays far from the kernel's limits: against an empty server,
/// with DRY_RUN=1 (each change printed as the command it would run), every command it
/// runs or would run is under [`MAX_COMMAND`] bytes. Each command is made from one
/// resource's values, so its size does not depend on the number of machines: 1,000 in
/// 20 projects show it (10,000 would take bash a minute of forks).
#[test]
fn the_commands_deploy_sh_runs_stay_short() {
    let plan = compile(&synthetic::infra_yml_in_domains(1_000, 50));
    let script = emit::deploy_script(&plan).expect("renders");
    let server = Server::new();
    let (output, calls, mutations) = server.run(&script, &[("DRY_RUN", "1")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // Every instance, and every domain's project, ACL and bridge; the default profile
    // that comes with each new project is changed.
    let summary = format!(
        "{} to create, 20 to change, 0 unchanged, 1000 to start (dry run: nothing was changed)",
        1_000 + 3 * 20
    );
    assert!(stdout.contains(&summary), "{}", &stdout[stdout.len().saturating_sub(500)..]);
    assert!(mutations.is_empty(), "DRY_RUN=1 changed something: {:?}", &mutations[..1]);
    let would_run: Vec<&str> = stdout.lines().filter_map(|line| line.strip_prefix("  would run: ")).collect();
    assert!(would_run.len() > 3 * 1_000, "{} commands", would_run.len());
    for command in would_run.iter().copied().chain(calls.iter().map(String::as_str)) {
        assert!(command.len() <= MAX_COMMAND, "a command of {} bytes: {}", command.len(), &command[..200]);
    }
}

/// A rerun on a converged server reads the state with a handful of incus calls, one a
/// kind of resource for every project at once: 100 machines in 20 projects, 1,000 in
/// 20 and 1,000 in 200 cost the same calls, and change nothing. The VMs' agents are
/// checked with one more `incus list` of every project.
#[test]
fn a_converged_rerun_costs_a_handful_of_calls_whatever_the_machines_and_domains() {
    let mut counts = Vec::new();
    for (machines, per_domain) in [(100, 5), (1_000, 50), (1_000, 5)] {
        let plan = compile(&synthetic::infra_yml_in_domains(machines, per_domain));
        let projects = plan.steps.iter().filter(|step| matches!(step.action, Action::EnsureProject(_))).count();
        assert_eq!(projects, machines / per_domain);
        let script = emit::deploy_script(&plan).expect("renders");
        let server = Server::converged(&plan);
        let (output, calls, mutations) = server.run(&script, &[]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(mutations.is_empty(), "{machines} machines: a converged rerun changed {mutations:?}");
        let unchanged = machines + 4 * projects;
        let summary = format!("0 created, 0 changed, {unchanged} unchanged, 0 started");
        assert!(stdout.lines().any(|line| line == summary), "{}", &stdout[stdout.len().saturating_sub(2000)..]);
        let agent_lists = calls.iter().filter(|call| call.starts_with("list type=virtual-machine")).count();
        assert_eq!(agent_lists, 1, "one agent `incus list` for every project");
        assert!(!calls.iter().any(|call| call.starts_with("exec ")), "no agent probe: every agent reports");
        counts.push(calls.len());
    }
    assert!(counts.iter().all(|&count| count == counts[0]), "incus calls: {counts:?}");
    assert!(counts[0] <= 8, "a rerun costs {} incus calls", counts[0]);
    eprintln!("a converged rerun: {} incus calls, for 100 or 1,000 machines in 20 or 200 projects", counts[0]);
}
