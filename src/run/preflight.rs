//! What the runner checks before its first change, as deploy.sh's preflight does, and
//! with the same messages: the server can isolate the domains (when the plan isolates
//! them), no declared instance exists with the other type (Incus cannot convert it),
//! and the image of every instance still to be created is here, of the right type, or
//! comes from a remote the runner knows. A failure here leaves the server untouched.
//! (That the plan is for the local server was checked when connecting.)

use super::RunError;
use super::apply::{ImageWork, StepError, api_type, image_source};
use super::client::{Client, encode};
use super::scheduler::{Node, Work};
use super::state::{InstanceState, State};
use crate::plan::{Action, ImageRef, InstanceSpec, Plan};
use crate::syntax::ast::InstanceType;

fn refused(error: StepError) -> RunError {
    let mut text = error.message;
    for hint in error.hints {
        text.push_str("\n  ");
        text.push_str(&hint);
    }
    RunError(text)
}

/// Every check, in deploy.sh's order; the first that fails is the error.
pub fn check(client: &Client, plan: &Plan, state: &State, nodes: &[Node]) -> Result<(), RunError> {
    if plan.steps.iter().any(|step| matches!(step.action, Action::EnsureAcl(_))) {
        let server =
            client.get("/1.0").map_err(|error| RunError(format!("cannot read the server's features: {error}")))?;
        super::check_isolation(&server)?;
    }
    for node in nodes {
        if let Work::Image(work) = &node.work {
            check_image(client, work).map_err(refused)?;
        }
    }
    for step in &plan.steps {
        if let Action::EnsureInstance(spec) = &step.action
            && let Some(live) = state.instance(&spec.project, &spec.name)
        {
            check_type(spec, live, &step.origin.to_string()).map_err(refused)?;
        }
    }
    Ok(())
}

/// Whether the instances still to be created from `work`'s image can be: a local alias
/// must be here, of the virtual-machine type if VMs need it; a remote image must come
/// from a remote the runner knows (it is pulled by its own step). deploy.sh's
/// `ak_require_image`, in the runner's preflight.
fn check_image(client: &Client, work: &ImageWork) -> Result<(), StepError> {
    if work.missing.is_empty() {
        return Ok(());
    }
    let reference = ImageRef::parse(&work.image);
    if !reference.is_local() {
        return image_source(&work.image).map(|_| ());
    }
    let needed: Vec<&str> = work.missing.iter().map(|(key, _)| key.as_str()).collect();
    let vms: Vec<&str> =
        work.missing.iter().filter(|(_, t)| *t == InstanceType::VirtualMachine).map(|(key, _)| key.as_str()).collect();
    let alias = match client.get(&format!("/1.0/images/aliases/{}", encode(&reference.name))) {
        Ok(alias) => alias,
        Err(error) if error.is_not_found() => {
            return Err(StepError {
                message: format!("image {} ({}) is not available on this Incus server", work.image, work.origin),
                hints: vec![
                    format!("needed to create: {}", needed.join(" ")),
                    format!(
                        "import it under that alias:  incus image import METADATA.tar.xz [ROOTFS] --alias {}",
                        reference.name
                    ),
                ],
            });
        }
        Err(error) => return Err(error.into()),
    };
    if !vms.is_empty() && alias["type"].as_str().is_some_and(|t| t != "virtual-machine") {
        return Err(StepError::new(format!(
            "image {} ({}) is not a virtual-machine image, but VMs need it: {} (import a VM image under another alias)",
            work.image,
            work.origin,
            vms.join(" ")
        )));
    }
    Ok(())
}

/// An existing instance of the other type cannot be converted; replacing it would
/// destroy it, which the runner never does.
fn check_type(spec: &InstanceSpec, existing: &InstanceState, origin: &str) -> Result<(), StepError> {
    let want = api_type(spec.instance_type);
    if existing.instance_type == want {
        return Ok(());
    }
    Err(StepError {
        message: format!(
            "instance {} in project {} is a {} but {origin} declares type {}: Incus cannot convert it",
            spec.name,
            spec.project,
            existing.instance_type,
            spec.instance_type.keyword()
        ),
        hints: vec![format!(
            "move its data, delete it by hand (it may be protected: incus config unset {} security.protection.delete --project {}), then rerun",
            spec.name, spec.project
        )],
    })
}
