//! diff and converge agree, on the real Incus server: for each kind of hand change
//! (instance keys set, unset or added, devices removed, added or altered, profiles,
//! descriptions, run status, profile keys and devices, the domain's default profile,
//! project features and description, bridge config and description, ACL rules and
//! description), `anklumec diff` exits 1, the next
//! converge run (deploy.sh, then `anklumec apply` for the same change again) puts the
//! declared state back, `diff` exits 0, and a rerun makes no change at all: no mutating
//! call and no lifecycle event on the server (`incus monitor`).
//! Gated like every end-to-end test: skipped when no server answers, a failure when
//! ANKLUMEC_E2E=1 and none answers.

use anklumec::compile::{Options, compile_source};
use anklumec::emit::deploy_script;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::Duration;

mod common;
use common::{Scope, incus, run};

fn anklumec(args: &[&str], infra: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anklumec")).args(args).arg(infra).output().expect("anklumec runs")
}

fn text_of(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// `incus monitor` of lifecycle events in every project, from now until [`stop`].
fn monitor(log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("monitor log");
    let child = Command::new("incus")
        .args(["monitor", "--type=lifecycle", "--all-projects", "--format=json"])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("incus monitor runs");
    // It subscribes before it prints anything: give it the time to.
    sleep(Duration::from_millis(700));
    child
}

/// Stop the monitor; the lifecycle events it saw about what the test names with
/// `prefix` (its projects, instances, profiles, bridges and ACLs: other processes may
/// use the server meanwhile).
fn stop(mut child: Child, log: &Path, prefix: &str) -> Vec<String> {
    sleep(Duration::from_millis(700));
    let _ = child.kill();
    let _ = child.wait();
    let events = std::fs::read_to_string(log).unwrap_or_default();
    events
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| {
            let source = event["metadata"]["source"].as_str().unwrap_or_default();
            let project = event["project"].as_str().unwrap_or_default();
            project.starts_with(prefix) || source.contains(prefix)
        })
        .map(|event| event.to_string())
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Script,
    Runner,
}

struct World {
    infra: std::path::PathBuf,
    script: String,
    dir: tempfile::TempDir,
}

impl World {
    fn converge(&self, backend: Backend) -> Output {
        match backend {
            Backend::Script => run(&self.script, &[]),
            Backend::Runner => anklumec(&["apply"], &self.infra),
        }
    }

    fn diff(&self) -> (i32, String) {
        let out = anklumec(&["diff"], &self.infra);
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[test]
fn every_hand_change_diff_reports_is_what_the_next_run_puts_back() {
    let Some(scope) = Scope::enter("every_hand_change_diff_reports_is_what_the_next_run_puts_back", "cvg") else {
        return;
    };
    let tag = scope.prefix.clone();
    let project = format!("{tag}w");
    // Incus changes a project's features only while it holds no instance: the domain
    // without machines is where a feature can be changed by hand.
    let empty = format!("{tag}e");
    let (web, db) = (format!("{tag}-web"), format!("{tag}-db"));
    let bridge = format!("net-{project}");
    let infra_text = format!(
        "project_name: converge-test\nglobal:\n  addressing: {{base_octet: 10, zone_base: 241}}\n  default_os_image: anklumec-test\n  nat: false\n\
         domains:\n  {project}:\n    trust_level: trusted\n    profiles:\n      extra:\n        description: extra limits\n        config: {{limits.memory: 128MiB}}\n        devices:\n          marker: {{type: none}}\n\
         \x20   machines:\n      {web}:\n        profiles: [default, extra]\n        config: {{limits.cpu: \"1\", limits.processes: \"200\"}}\n        devices:\n          spare: {{type: none}}\n      {db}:\n        description: the database\n\
         \x20 {empty}:\n    trust_level: trusted\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = dir.path().join("infra.yml");
    std::fs::write(&infra, &infra_text).expect("write");
    let plan = compile_source("infra.yml", &infra_text, Options::default()).plan.expect("compiles");
    let world = World { infra, script: deploy_script(&plan).expect("deploy.sh"), dir };
    let first = world.converge(Backend::Script);
    assert!(first.status.success(), "{}", text_of(&first));
    assert_eq!(world.diff(), (0, "no drift\n".to_string()), "a fresh deployment shows no drift");

    let address = {
        let out = incus(&["config", "device", "get", &web, "eth0", "ipv4.address", "--project", &project]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let moved = address.rsplit_once('.').map(|(net, _)| format!("ipv4.address={net}.77")).expect("an address");
    let p = project.as_str();
    let changes: Vec<(&str, Vec<String>)> = vec![
        ("instance key changed", vec!["config", "set", &web, "limits.cpu=2", "--project", p]),
        ("instance key unset", vec!["config", "unset", &web, "limits.processes", "--project", p]),
        ("instance key added", vec!["config", "set", &db, "user.by-hand=1", "--project", p]),
        ("instance description", vec!["config", "set", &db, "description=by hand", "--property", "--project", p]),
        ("instance device removed", vec!["config", "device", "remove", &web, "spare", "--project", p]),
        ("instance device added", vec!["config", "device", "add", &db, "scratch", "none", "--project", p]),
        ("instance device option changed", vec!["config", "device", "set", &web, "eth0", &moved, "--project", p]),
        (
            "instance device option added",
            vec!["config", "device", "set", &db, "eth0", "limits.ingress=10Mbit", "--project", p],
        ),
        ("instance profiles", vec!["profile", "remove", &web, "extra", "--project", p]),
        ("instance stopped", vec!["stop", "--force", &db, "--project", p]),
        ("profile key changed", vec!["profile", "set", "extra", "limits.memory=256MiB", "--project", p]),
        ("profile description", vec!["profile", "set", "extra", "description=by hand", "--property", "--project", p]),
        ("profile device removed", vec!["profile", "device", "remove", "extra", "marker", "--project", p]),
        ("default profile key added", vec!["profile", "set", "default", "user.by-hand=1", "--project", p]),
        (
            "default profile device added",
            vec!["profile", "device", "add", "default", "scratch", "none", "--project", p],
        ),
        ("project feature", vec!["project", "set", &empty, "features.networks=true"]),
        ("project description", vec!["project", "set", p, "description=by hand", "--property"]),
        ("bridge key", vec!["network", "set", &bridge, "ipv4.nat=true"]),
        ("bridge description", vec!["network", "set", &bridge, "description=by hand", "--property"]),
        (
            "ACL rule added",
            vec!["network", "acl", "rule", "add", &bridge, "ingress", "action=allow", "source=10.0.0.0/8"],
        ),
        ("ACL description", vec!["network", "acl", "set", &bridge, "description=by hand", "--property"]),
    ]
    .into_iter()
    .map(|(kind, args)| (kind, args.into_iter().map(str::to_string).collect()))
    .collect();
    let log = world.dir.path().join("monitor.log");
    for backend in [Backend::Script, Backend::Runner] {
        for (kind, args) in &changes {
            let what = format!("{kind} ({backend:?})");
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let by_hand = incus(&args);
            assert!(by_hand.status.success(), "{what}: {}", text_of(&by_hand));
            let (code, out) = world.diff();
            assert_eq!(code, 1, "{what}: diff does not report it:\n{out}");

            // The monitor sees the run's changes (what makes its silence below mean something).
            let watch = monitor(&log);
            let converged = world.converge(backend);
            let events = stop(watch, &log, &tag);
            assert!(converged.status.success(), "{what}: {}", text_of(&converged));
            assert!(!events.is_empty(), "{what}: no lifecycle event while converging:\n{}", text_of(&converged));
            let (code, out) = world.diff();
            assert_eq!((code, out.as_str()), (0, "no drift\n"), "{what}: the run left drift:\n{}", text_of(&converged));

            let watch = monitor(&log);
            let rerun = world.converge(backend);
            let events = stop(watch, &log, &tag);
            assert!(rerun.status.success(), "{what}: {}", text_of(&rerun));
            assert!(events.is_empty(), "{what}: a rerun after converging changed the server: {events:#?}");
            let rerun = text_of(&rerun);
            assert!(rerun.contains("0 created, 0 changed, "), "{what}: {rerun}");
            assert!(!rerun.contains("changed   ") && !rerun.contains("started   "), "{what}: {rerun}");
        }
    }
}

/// A real run's step lines and summary (its waits, which a dry run skips, left out).
fn outcome(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|line| {
            ["created ", "changed ", "unchanged ", "started ", "recreate "].iter().any(|w| line.starts_with(w))
                || line.contains(" created, ")
        })
        .map(str::to_string)
        .collect()
}

/// A dry run's predictions, in the words the real run then uses.
fn predicted(stdout: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for line in stdout.lines() {
        if line.starts_with("  would run: ") {
            continue;
        }
        for (prediction, fact) in [
            ("would create ", "created"),
            ("would change ", "changed"),
            ("would start ", "started"),
            ("would recreate ", "recreate"),
            ("unchanged ", "unchanged"),
        ] {
            if let Some(rest) = line.strip_prefix(prediction) {
                lines.push(format!("{fact:<9} {}", rest.trim_start()));
            }
        }
        if let Some(counts) = line.strip_suffix(" (dry run: nothing was changed)") {
            let words = counts.replace(" to create,", " created,").replace(" to change,", " changed,");
            lines.push(words.replace(" to start", " started"));
        }
    }
    lines
}

/// For every end-to-end fixture that deploys on containers (the fresh deploy of
/// converge.yml, its change to converge-changed.yml, the fresh deploy of isolation.yml),
/// and after hand changes, `DRY_RUN=1 bash deploy.sh` predicts the real run: the same
/// steps with the same changes, and the same summary, worded as predictions.
#[test]
fn a_dry_run_predicts_the_real_run() {
    let Some(scope) = Scope::enter("a_dry_run_predicts_the_real_run", "cvd") else { return };
    let tag = scope.prefix.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("shared dir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/fixtures");
    let render = |name: &str| {
        std::fs::read_to_string(fixtures.join(name))
            .expect("fixture")
            .replace("@P@", &tag)
            .replace("@ZT@", "252")
            .replace("@ZU@", "282")
            .replace("@Z@", "242")
            .replace("@DIR@", &shared.display().to_string())
    };
    let check = |what: &str, text: &str, hand: &dyn Fn()| {
        let plan = compile_source("infra.yml", text, Options::default()).plan.expect("compiles");
        let script = deploy_script(&plan).expect("deploy.sh");
        hand();
        let dry = run(&script, &[("DRY_RUN", "1")]);
        assert!(dry.status.success(), "{what}: {}", text_of(&dry));
        let real = run(&script, &[]);
        assert!(real.status.success(), "{what}: {}", text_of(&real));
        let (dry, real) = (String::from_utf8_lossy(&dry.stdout), String::from_utf8_lossy(&real.stdout));
        let predicted = predicted(&dry);
        assert!(predicted.len() > 3, "{what}: {dry}");
        assert_eq!(predicted, outcome(&real), "{what}: the dry run\n{dry}\ndid not predict the run\n{real}");
    };
    let p = tag.as_str();
    check("converge.yml, fresh", &render("converge.yml"), &|| {});
    check("converge-changed.yml", &render("converge-changed.yml"), &|| {});
    check("by hand", &render("converge-changed.yml"), &|| {
        for args in [
            vec!["config", "set", &format!("{p}-ctl"), "limits.cpu=3", "user.x=1", "--project", &format!("{p}a")],
            vec!["stop", "--force", &format!("{p}-db"), "--project", &format!("{p}t")],
            vec!["profile", "set", "default", "user.x=1", "--project", &format!("{p}t")],
            vec!["network", "set", &format!("net-{p}a"), "ipv4.nat=true"],
        ] {
            let out = incus(&args);
            assert!(out.status.success(), "{args:?}: {}", text_of(&out));
        }
    });
    drop(scope);
    let Some(scope) = Scope::enter("a_dry_run_predicts_the_real_run", "cvd") else { return };
    let tag = scope.prefix.clone();
    // The untrusted zone is zone_base + 40: a lower base than the others.
    let text = std::fs::read_to_string(fixtures.join("isolation.yml"))
        .expect("fixture")
        .replace("@P@", &tag)
        .replace("@ZT@", "202")
        .replace("@ZU@", "232")
        .replace("@Z@", "192");
    check("isolation.yml, fresh", &text, &|| {});
}
