//! The plan as text for people (`anklumec plan`).

use crate::plan::{Action, Config, Devices, Plan};
use std::fmt::Write;

pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "plan of {} from {} (sha256 {})",
        display_or(&plan.project_name, "(unnamed)"),
        plan.source.path,
        plan.source.sha256
    );
    let _ = writeln!(w, "generator {}, plan schema {}", plan.generator, plan.schema_version);
    let waits = plan.waits;
    let _ = writeln!(
        w,
        "waits: containers {}x{}s, VMs {}x{}s, VM agents {}x{}s",
        waits.lxc.retries,
        waits.lxc.delay,
        waits.vm.retries,
        waits.vm.delay,
        waits.vm_agent.retries,
        waits.vm_agent.delay
    );
    let _ = writeln!(w, "\nimages:");
    for image in &plan.images {
        let place = if image.local { "local" } else { "remote" };
        let _ = writeln!(w, "  {} ({place}): {}", image.image, image.instances.join(", "));
    }
    let _ = writeln!(w, "\nsteps:");
    for (index, step) in plan.steps.iter().enumerate() {
        let line = match &step.action {
            Action::EnsureProject(spec) => format!("ensure project {}", spec.name),
            Action::EnsureAcl(spec) => format!("ensure network ACL {}", spec.name),
            Action::EnsureNetwork(spec) => format!("ensure bridge {}", spec.name),
            Action::EnsureProfile(spec) => format!("ensure profile {}/{}", spec.project, spec.name),
            Action::EnsureVolume(spec) => format!("ensure volume {}/{}/{}", spec.project, spec.pool, spec.name),
            Action::EnsureInstance(spec) => {
                format!("ensure {} {}/{} from {}", spec.instance_type.keyword(), spec.project, spec.name, spec.image)
            }
            Action::StartInstance(target) => format!("start {}/{}", target.project, target.name),
            Action::WaitRunning(wait) => {
                format!("wait for {}/{} to run ({} x {}s)", wait.project, wait.name, wait.wait.retries, wait.wait.delay)
            }
            Action::WaitAgent(wait) => {
                format!(
                    "wait for the agent of {}/{} ({} x {}s)",
                    wait.project, wait.name, wait.wait.retries, wait.wait.delay
                )
            }
        };
        let _ = writeln!(w, "{:>4}  {line:<56} {}", index + 1, step.origin);
        match &step.action {
            Action::EnsureProject(spec) => {
                description(w, &spec.description);
                config(w, &spec.config);
            }
            Action::EnsureAcl(spec) => {
                description(w, &spec.description);
                let _ = writeln!(w, "        ingress: drop unless:");
                for rule in &spec.ingress {
                    let _ = writeln!(w, "          {}  ({})", rule.summary(), rule.description);
                }
                let _ = writeln!(w, "        egress: allow");
            }
            Action::EnsureNetwork(spec) => {
                description(w, &spec.description);
                config(w, &spec.config);
            }
            Action::EnsureProfile(spec) => {
                description(w, &spec.description);
                config(w, &spec.config);
                devices(w, &spec.devices);
            }
            Action::EnsureVolume(spec) => config(w, &spec.config),
            Action::EnsureInstance(spec) => {
                description(w, &spec.description);
                let _ = writeln!(w, "        profiles: {}", spec.profiles.join(", "));
                if let Some(address) = spec.address {
                    let _ = writeln!(w, "        address: {address}");
                }
                config(w, &spec.config);
                devices(w, &spec.devices);
            }
            _ => {}
        }
    }
    out
}

fn display_or<'a>(value: &'a str, fallback: &'a str) -> &'a str {
    if value.is_empty() { fallback } else { value }
}

fn description(w: &mut String, description: &str) {
    if !description.is_empty() {
        let _ = writeln!(w, "        description: {description:?}");
    }
}

fn config(w: &mut String, config: &Config) {
    for (key, value) in config {
        let _ = writeln!(w, "        {key} = {value:?}");
    }
}

fn devices(w: &mut String, devices: &Devices) {
    for (name, device) in devices {
        let options: Vec<String> = device.options.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        let _ = writeln!(w, "        device {name} ({}): {}", device.device_type, options.join(" "));
    }
}
