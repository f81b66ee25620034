//! What the runner checks before its first change, as deploy.sh's preflight does, and
//! with the same messages: the server can isolate the domains (when the plan isolates
//! them), no declared instance exists with the other type (Incus cannot convert it),
//! and the image of every instance still to be created is here, of the right type, or
//! comes from a remote the runner knows. A failure here leaves the server untouched.
//! (That the plan is for the local server was checked when connecting.)

use super::RunError;
use super::apply::{StepError, check_image, check_type};
use super::client::Client;
use super::scheduler::{Node, Work};
use super::state::State;
use crate::plan::{Action, Plan};

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
