//! Support shared by the test files that talk to the real Incus server (`mod common;`).
#![allow(dead_code)]

use std::process::{Command, Output};

pub fn incus(args: &[&str]) -> Output {
    Command::new("incus").args(args).stdin(std::process::Stdio::null()).output().expect("incus runs")
}

pub fn incus_answers() -> bool {
    let answers = Command::new("incus").args(["query", "/1.0"]).output().is_ok_and(|o| o.status.success());
    if !answers {
        assert!(
            std::env::var_os("ANKLUMEC_E2E").is_none(),
            "ANKLUMEC_E2E=1 but no Incus server answers: run tests/e2e/setup-incus.sh"
        );
        eprintln!("SKIPPED: no Incus server (set ANKLUMEC_E2E=1 to require it)");
    }
    answers
}

/// Removes everything named with the test's prefix, whatever happens to the test.
pub struct Cleanup {
    pub projects: Vec<String>,
    pub networks: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for project in &self.projects {
            let listed = incus(&["list", "--project", project, "--format", "csv", "--columns", "n"]);
            for name in String::from_utf8_lossy(&listed.stdout).lines() {
                incus(&["config", "set", name, "security.protection.delete=false", "--project", project]);
                incus(&["delete", "--force", name, "--project", project]);
            }
            let volumes = incus(&[
                "storage",
                "volume",
                "list",
                "default",
                "--project",
                project,
                "--format",
                "csv",
                "--columns",
                "n",
            ]);
            for volume in String::from_utf8_lossy(&volumes.stdout).lines() {
                incus(&["storage", "volume", "delete", "default", volume, "--project", project]);
            }
            let profiles = incus(&["profile", "list", "--project", project, "--format", "csv"]);
            for profile in String::from_utf8_lossy(&profiles.stdout).lines().filter_map(|l| l.split(',').next()) {
                if profile != "default" {
                    incus(&["profile", "delete", profile, "--project", project]);
                }
            }
            incus(&["project", "delete", project]);
        }
        for network in &self.networks {
            incus(&["network", "delete", network]);
        }
    }
}

/// Run a script with bash in a temporary directory.
pub fn run(script: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("script.sh");
    std::fs::write(&path, script).expect("write");
    Command::new("bash").arg(&path).envs(env.iter().copied()).output().expect("bash runs")
}
