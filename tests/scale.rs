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
    /// values and stamps, every instance runs, and every VM's agent reports.
    fn converged(plan: &Plan) -> Server {
        let server = Server::new();
        let mut lists: std::collections::BTreeMap<&str, String> = Default::default();
        let mut agents: std::collections::BTreeMap<&str, String> = Default::default();
        for step in &plan.steps {
            match &step.action {
                Action::EnsureProject(spec) => {
                    server.write(&format!("project/{}/description", spec.name), &spec.description);
                    for (key, value) in &spec.config {
                        server.write(&format!("project/{}/{key}", spec.name), value);
                    }
                    lists.entry(&spec.name).or_default();
                }
                Action::EnsureAcl(spec) => {
                    // As the incus client prints it: the document, then project and used_by.
                    let document = anklumec::emit::acl_document(spec);
                    let body = document.strip_suffix("\n}").expect("the document ends the object");
                    let printed = format!("{body},\n\t\"project\": \"default\",\n\t\"used_by\": []\n}}");
                    server.write(&format!("acl/{}", spec.name), &printed);
                }
                Action::EnsureNetwork(spec) => {
                    server.write(&format!("network/{}/show", spec.name), "managed: true\nstatus: Created\nused_by: []");
                    server.write(&format!("network/{}/description", spec.name), &spec.description);
                    for (key, value) in &spec.config {
                        server.write(&format!("network/{}/{key}", spec.name), value);
                    }
                }
                Action::EnsureProfile(spec) => {
                    let path = format!("profile/{}/{}/user.anklumec.profile.stamp", spec.project, spec.name);
                    server.write(&path, &spec.stamp());
                }
                Action::EnsureInstance(spec) => {
                    let kind = match spec.instance_type.keyword() {
                        "vm" => "VIRTUAL-MACHINE",
                        _ => "CONTAINER",
                    };
                    let rows = lists.entry(&spec.project).or_default();
                    rows.push_str(&format!("{},RUNNING,{kind},{}\n", spec.name, spec.stamp()));
                    if kind == "VIRTUAL-MACHINE" {
                        agents.entry(&spec.project).or_default().push_str(&format!("{},9\n", spec.name));
                    }
                }
                _ => {}
            }
        }
        for (project, rows) in lists {
            server.write(&format!("list/{project}"), &rows);
        }
        for (project, rows) in agents {
            server.write(&format!("agents/{project}"), &rows);
        }
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
    // Every instance, and every domain's project, ACL, bridge and default profile.
    let summary = format!("{} created, 0 changed, 0 unchanged (dry run: nothing was changed)", 1_000 + 4 * 20);
    assert!(stdout.contains(&summary), "{}", &stdout[stdout.len().saturating_sub(500)..]);
    assert!(mutations.is_empty(), "DRY_RUN=1 changed something: {:?}", &mutations[..1]);
    let would_run: Vec<&str> = stdout.lines().filter_map(|line| line.strip_prefix("  would run: ")).collect();
    assert!(would_run.len() > 3 * 1_000, "{} commands", would_run.len());
    for command in would_run.iter().copied().chain(calls.iter().map(String::as_str)) {
        assert!(command.len() <= MAX_COMMAND, "a command of {} bytes: {}", command.len(), &command[..200]);
    }
}

/// A rerun on a converged server reads the state with a number of incus calls that
/// depends on the projects, not on the machines in them: 100 and 1,000 machines in
/// the same 20 projects cost the same calls, and change nothing. The VMs' agents are
/// checked too, with one more `incus list` for each project that has VMs.
#[test]
fn a_converged_rerun_costs_the_same_calls_for_100_or_1000_machines() {
    let mut counts = Vec::new();
    for (machines, per_domain) in [(100, 5), (1_000, 50)] {
        let plan = compile(&synthetic::infra_yml_in_domains(machines, per_domain));
        let projects = plan.steps.iter().filter(|step| matches!(step.action, Action::EnsureProject(_))).count();
        assert_eq!(projects, 20);
        let script = emit::deploy_script(&plan).expect("renders");
        let server = Server::converged(&plan);
        let (output, calls, mutations) = server.run(&script, &[]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(mutations.is_empty(), "{machines} machines: a converged rerun changed {mutations:?}");
        let unchanged = machines + 4 * projects;
        let summary = format!("0 created, 0 changed, {unchanged} unchanged");
        assert!(stdout.lines().any(|line| line == summary), "{stdout}");
        let lists = calls.iter().filter(|call| call.starts_with("list --project")).count();
        assert_eq!(lists, projects, "one `incus list` a project");
        let vm_projects: std::collections::BTreeSet<&str> = plan
            .steps
            .iter()
            .filter_map(|step| match &step.action {
                Action::EnsureInstance(spec) if spec.instance_type.keyword() == "vm" => Some(spec.project.as_str()),
                _ => None,
            })
            .collect();
        assert!(!vm_projects.is_empty(), "the synthetic file has VMs");
        let agent_lists = calls.iter().filter(|call| call.starts_with("list type=virtual-machine")).count();
        assert_eq!(agent_lists, vm_projects.len(), "one agent `incus list` a project with VMs");
        assert!(!calls.iter().any(|call| call.starts_with("exec ")), "no agent probe: every agent reports");
        // The 100 machines have VMs in half of their projects, the 1,000 in all: the
        // calls besides the agent lists are compared.
        counts.push(calls.len() - agent_lists);
    }
    assert_eq!(counts[0], counts[1], "incus calls for 100 and for 1,000 machines in 20 projects");
    eprintln!(
        "a converged rerun: {} incus calls for 100 or 1,000 machines in 20 projects, and one a project with VMs",
        counts[0]
    );
}
