//! Wall times of a deployment (not a timed test; prints figures):
//!
//! 1. real Incus (when one answers and holds the image `anklumec-test`): N containers
//!    (N = 10, 30; `ANKLUMEC_BENCH_SIZES=10,30,...` to change) in two domains, deployed
//!    from nothing by deploy.sh, by the runner at its default `--jobs` (8), at `--jobs 1`
//!    and at `--jobs 4`; everything is removed between runs;
//! 2. real Incus again: a rerun on a converged system of 20 domains of 5 containers
//!    (`ANKLUMEC_BENCH_RERUN=DOMAINSxCONTAINERS` to change), deployed once by the
//!    runner, then rerun three times by deploy.sh and three times by the runner (the
//!    median is printed), each making no change;
//! 3. the fake Incus API of tests/runner_fake.rs: 20 VMs of 20 s boot
//!    (`ANKLUMEC_BENCH_VM_BOOT=SECONDS` to change), where the runner should take about
//!    one boot, not twenty.
//!
//! `cargo bench --bench runner`

#[allow(dead_code, unused_imports)]
#[path = "../tests/runner_fake.rs"]
mod fake;

use anklumec::run::{self, progress::Capture};
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PREFIX_CODE: &str = "bnr";
const ZONE_BASE: u32 = 237;

fn incus_ok(args: &[&str]) -> bool {
    Command::new("incus")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn incus_json(path: &str) -> serde_json::Value {
    Command::new("incus")
        .args(["query", path])
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// N containers, half in each of two domains; ephemeral (unprotected) for cleanup.
fn fixture(prefix: &str, n: usize) -> String {
    let mut text = format!(
        "project_name: bench\nglobal:\n  addressing:\n    base_octet: 10\n    zone_base: {ZONE_BASE}\n  default_os_image: anklumec-test\n  nat: false\n  incus_instances_lxc_delay: 1\ndomains:\n"
    );
    for (domain, trust, range) in [("a", "admin", 0..n / 2), ("t", "trusted", n / 2..n)] {
        text.push_str(&format!("  {prefix}{domain}:\n    trust_level: {trust}\n    ephemeral: true\n    machines:\n"));
        for i in range {
            text.push_str(&format!("      {prefix}-c{i:02}:\n        config:\n          limits.memory: 64MiB\n"));
        }
    }
    text
}

fn cleanup(prefix: &str) {
    cleanup_domains(prefix, &["a", "t"]);
}

fn cleanup_domains(prefix: &str, domains: &[&str]) {
    for domain in domains {
        let project = format!("{prefix}{domain}");
        let instances = incus_json(&format!("/1.0/instances?project={project}"));
        let names: Vec<String> = instances
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str()?.split('?').next()?.rsplit('/').next().map(str::to_string))
            .collect();
        if !names.is_empty() {
            let mut args = vec!["delete", "--force", "--project", &project];
            args.extend(names.iter().map(String::as_str));
            incus_ok(&args);
        }
        incus_ok(&["project", "delete", &project]);
        // Incus 6.0.4 may fail a bridge's deletion while another host interface goes:
        // try again rather than leave it (and its ACL) behind.
        for _ in 0..5 {
            if incus_ok(&["network", "delete", &format!("net-{project}")])
                || !incus_ok(&["network", "show", &format!("net-{project}")])
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        incus_ok(&["network", "acl", "delete", &format!("net-{project}")]);
        let bridge = std::path::PathBuf::from(format!("/sys/class/net/net-{project}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while bridge.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn real_incus() {
    if !incus_ok(&["query", "/1.0"]) || !incus_ok(&["query", "/1.0/images/aliases/anklumec-test"]) {
        println!("real Incus: skipped (no server with the image anklumec-test; see tests/e2e/setup-incus.sh)");
        return;
    }
    let sizes: Vec<usize> = std::env::var("ANKLUMEC_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 30]);
    let prefix = format!("{PREFIX_CODE}{:03}", std::process::id() % 1000);
    let dir = tempfile::tempdir().expect("temp dir");
    cleanup(&prefix);
    println!("real Incus, containers from nothing (two domains):");
    println!(
        "{:>4}  {:>10}  {:>12}  {:>10}  {:>10}  {:>8}  {:>8}",
        "N", "deploy.sh", "runner -j8", "runner -j1", "runner -j4", "sh/j8", "j1/j8"
    );
    for n in sizes {
        let text = fixture(&prefix, n);
        let compilation = anklumec::compile_source("infra.yml", &text, Default::default());
        let plan = compilation.plan.expect("the bench fixture compiles");
        let script = dir.path().join("deploy.sh");
        fs::write(&script, anklumec::emit::deploy_script(&plan).expect("deploy.sh")).expect("write deploy.sh");

        let started = Instant::now();
        let ok = Command::new("bash").arg(&script).stdin(Stdio::null()).stdout(Stdio::null()).status();
        let script_time = started.elapsed();
        assert!(ok.is_ok_and(|s| s.success()), "deploy.sh failed");
        cleanup(&prefix);

        let runner = |jobs: usize| {
            let options = run::Options { jobs, ..run::Options::default() };
            let started = Instant::now();
            let report = run::apply(&plan, &options, &Capture::default()).expect("runner");
            let took = started.elapsed();
            assert!(report.ok(), "runner failed: {:?}", report.failures);
            cleanup(&prefix);
            took
        };
        let default = runner(run::DEFAULT_JOBS);
        let j1 = runner(1);
        let j4 = runner(4);
        println!(
            "{n:>4}  {:>9.1}s  {:>11.1}s  {:>9.1}s  {:>9.1}s  {:>7.2}x  {:>7.2}x",
            script_time.as_secs_f64(),
            default.as_secs_f64(),
            j1.as_secs_f64(),
            j4.as_secs_f64(),
            script_time.as_secs_f64() / default.as_secs_f64(),
            j1.as_secs_f64() / default.as_secs_f64()
        );
    }
}

/// The median of three wall times of `run`.
fn median_of_three(mut run: impl FnMut() -> Duration) -> Duration {
    let mut times = [run(), run(), run()];
    times.sort();
    times[1]
}

fn converged_rerun() {
    if !incus_ok(&["query", "/1.0"]) || !incus_ok(&["query", "/1.0/images/aliases/anklumec-test"]) {
        println!("real Incus rerun: skipped (no server with the image anklumec-test)");
        return;
    }
    let shape = std::env::var("ANKLUMEC_BENCH_RERUN").unwrap_or_else(|_| "20x5".into());
    let (domains, containers) = shape
        .split_once('x')
        .and_then(|(d, c)| Some((d.parse::<usize>().ok()?, c.parse::<usize>().ok()?)))
        .expect("ANKLUMEC_BENCH_RERUN is DOMAINSxCONTAINERS");
    let prefix = format!("{PREFIX_CODE}{:03}", std::process::id() % 1000);
    let names: Vec<String> = (0..domains).map(|d| format!("d{d:02}")).collect();
    let domain_names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut text = String::from(
        "project_name: bench\nglobal:\n  addressing:\n    base_octet: 10\n    zone_base: 200\n  default_os_image: anklumec-test\n  nat: false\n  incus_instances_lxc_delay: 1\ndomains:\n",
    );
    for (d, domain) in names.iter().enumerate() {
        text.push_str(&format!("  {prefix}{domain}:\n    subnet_id: {d}\n    ephemeral: true\n    machines:\n"));
        for c in 0..containers {
            text.push_str(&format!("      {prefix}-{domain}-c{c}:\n        config:\n          limits.memory: 64MiB\n"));
        }
    }
    let compilation = anklumec::compile_source("infra.yml", &text, Default::default());
    let plan = compilation.plan.expect("the bench fixture compiles");
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("deploy.sh");
    fs::write(&script, anklumec::emit::deploy_script(&plan).expect("deploy.sh")).expect("write deploy.sh");
    cleanup_domains(&prefix, &domain_names);
    let report = run::apply(&plan, &run::Options::default(), &Capture::default()).expect("runner");
    assert!(report.ok(), "the first deployment failed: {:?}", report.failures);
    let script_time = median_of_three(|| {
        let started = Instant::now();
        let out = Command::new("bash").arg(&script).stdin(Stdio::null()).output().expect("bash runs");
        let took = started.elapsed();
        assert!(out.status.success(), "deploy.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("0 created, 0 changed, "), "a rerun changed something: {stdout}");
        took
    });
    let runner_time = median_of_three(|| {
        let started = Instant::now();
        let report = run::apply(&plan, &run::Options::default(), &Capture::default()).expect("runner");
        let took = started.elapsed();
        assert!(report.ok(), "runner failed: {:?}", report.failures);
        took
    });
    cleanup_domains(&prefix, &domain_names);
    println!(
        "real Incus, no-change rerun of {domains} domains x {containers} containers: deploy.sh {:.2} s, apply {:.2} s",
        script_time.as_secs_f64(),
        runner_time.as_secs_f64()
    );
}

fn simulated_vms() {
    let boot: u64 = std::env::var("ANKLUMEC_BENCH_VM_BOOT").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let server = fake::Fake::start(fake::Behaviour {
        boot: Duration::from_secs(boot),
        agent: Duration::from_secs(1),
        ..fake::Behaviour::default()
    });
    let text = fake::fixture(20, 0, "")
        .replace("incus_instances_vm_retries: 10", &format!("incus_instances_vm_retries: {}", boot * 2));
    let plan = fake::compile(&text);
    let started = Instant::now();
    let report = run::apply(&plan, &server.options(run::DEFAULT_JOBS), &Capture::default()).expect("runner");
    let took = started.elapsed();
    assert!(report.ok(), "runner failed: {:?}", report.failures);
    println!(
        "fake Incus, 20 VMs of {boot} s boot (+1 s agent), --jobs {}: {:.1} s = {:.2} boots (sequential waits: 20 boots)",
        run::DEFAULT_JOBS,
        took.as_secs_f64(),
        took.as_secs_f64() / boot as f64
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    real_incus();
    converged_rerun();
    simulated_vms();
}
