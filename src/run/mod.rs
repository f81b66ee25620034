//! The runner back end: `anklumec apply` carries out the plan itself, through the
//! Incus REST API on the local unix socket, with the same end state as deploy.sh.
//!
//! - [`client`]: the API over a minimal HTTP/1.1 client ([`http`]); typed errors;
//!   asynchronous operations awaited with `/wait`.
//! - [`state`]: what Incus holds, read once per project before any change.
//! - [`apply`](mod@apply): per step, the difference between the plan and that state, sent as
//!   the fewest requests (none when converged).
//! - [`scheduler`]: the plan's dependency graph on `--jobs` threads; waits beside them.
//! - [`serial`]: what Incus 6.0.4 cannot do at once (bridges beside other interface
//!   changes, ACL deletions), done one at a time.
//! - [`progress`]: plain lines (CI), a live display (terminal), a capture (tests).

pub mod apply;
pub mod client;
pub mod destroy;
pub mod diff;
pub mod http;
pub mod preflight;
pub mod progress;
pub mod scheduler;
pub mod serial;
pub mod state;

use crate::plan::{Action, Plan, Step};
use crate::syntax::ast::InstanceType;
use apply::{Ctx, ImageWork, Outcome, StepError};
use client::{Client, Record};
use progress::{Event, Reporter, StepInfo, Stream};
use scheduler::{Node, Status, Work};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `--jobs` when not given. The runner's threads mostly wait on incusd (image unpack,
/// storage, database), so the bound is about what the daemon absorbs, not the client's
/// cores: on a 2-core host with the `dir` driver, 30 containers took 12.3 s at 1 job,
/// 8.3 s at 4 and 6.9 s at 8 (benches/runner.rs). Higher values gain little and queue
/// more work inside incusd (it serialises its database writes). Waits do not count.
pub const DEFAULT_JOBS: usize = 8;

pub struct Options {
    pub jobs: usize,
    pub dry_run: bool,
    /// The Incus socket; [`client::default_socket`] when None.
    pub socket: Option<PathBuf>,
    /// Set (by Ctrl-C) to stop launching steps.
    pub interrupt: Arc<AtomicBool>,
}

impl Default for Options {
    fn default() -> Self {
        Options { jobs: DEFAULT_JOBS, dry_run: false, socket: None, interrupt: Arc::new(AtomicBool::new(false)) }
    }
}

/// A step that failed, with where it comes from.
#[derive(Clone, Debug)]
pub struct Failure {
    pub id: String,
    pub title: String,
    pub origin: String,
    pub message: String,
    pub hints: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub created: usize,
    pub changed: usize,
    pub unchanged: usize,
    /// Instances started (or unfrozen) by this run.
    pub started: usize,
    pub failures: Vec<Failure>,
    /// Steps not attempted because a step they depend on failed: (id, failed id).
    pub not_attempted: Vec<(String, String)>,
    /// Steps not started because of an interrupt.
    pub interrupted: Vec<String>,
    /// Every step's final status, by id, in plan order (image steps first).
    pub statuses: Vec<(String, Status)>,
    pub wall: Duration,
    pub dry_run: bool,
    /// Every request sent, in order.
    pub requests: Vec<Record>,
    pub mutating_requests: usize,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.not_attempted.is_empty() && self.interrupted.is_empty()
    }

    pub fn was_interrupted(&self) -> bool {
        !self.interrupted.is_empty()
    }

    pub fn status(&self, id: &str) -> Option<&Status> {
        self.statuses.iter().find(|(step, _)| step == id).map(|(_, status)| status)
    }

    /// `N created, N changed, N unchanged, N started, N failed, wall time X s`.
    pub fn summary(&self) -> String {
        let (created, changed, started) = (self.created, self.changed, self.started);
        let (failed, wall) = (self.failures.len(), self.wall.as_secs_f64());
        let unchanged = self.unchanged;
        if self.dry_run {
            // deploy.sh's DRY_RUN=1 words: the counts the real run then reports.
            format!(
                "{created} to create, {changed} to change, {unchanged} unchanged, {started} to start, {failed} failed, wall time {wall:.1} s (dry run: nothing was changed)"
            )
        } else {
            format!(
                "{created} created, {changed} changed, {unchanged} unchanged, {started} started, {failed} failed, wall time {wall:.1} s"
            )
        }
    }

    /// The summary (a result: standard output), then, on standard error, what failed
    /// and why, what was not attempted, what an interrupt left undone.
    pub fn closing_lines(&self) -> Vec<(Stream, String)> {
        let mut lines = vec![(Stream::Out, self.summary())];
        let mut diagnostic = |line: String| lines.push((Stream::Err, line));
        if !self.failures.is_empty() {
            diagnostic(format!("{} step(s) failed:", self.failures.len()));
            for failure in &self.failures {
                diagnostic(format!("  {} ({}): {}", failure.id, failure.origin, failure.message));
            }
        }
        if !self.not_attempted.is_empty() {
            diagnostic(format!("{} step(s) not attempted (a step they depend on failed):", self.not_attempted.len()));
            for (id, cause) in &self.not_attempted {
                diagnostic(format!("  {id} (after {cause})"));
            }
        }
        if !self.interrupted.is_empty() {
            diagnostic(format!(
                "interrupted: {} step(s) not started; run `anklumec apply` again to finish",
                self.interrupted.len()
            ));
        }
        if !self.failures.is_empty() || !self.not_attempted.is_empty() {
            diagnostic("fix the cause and run again: steps already done are left as they are".into());
        }
        lines
    }
}

/// Why the run could not begin (nothing was changed).
#[derive(Debug)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

/// deploy.sh's name for a step (`ak_step`), or `project/name` for a wait.
pub fn step_title(step: &Step) -> String {
    match &step.action {
        Action::EnsureProject(spec) => format!("project {}", spec.name),
        Action::EnsureAcl(spec) => format!("network ACL {}", spec.name),
        Action::EnsureNetwork(spec) => format!("network {}", spec.name),
        Action::EnsureProfile(spec) => format!("profile {}/{}", spec.project, spec.name),
        Action::EnsureVolume(spec) => format!("volume {}/{}/{}", spec.project, spec.pool, spec.name),
        Action::EnsureInstance(spec) => format!("instance {}/{}", spec.project, spec.name),
        Action::StartInstance(target) => format!("instance {}/{}", target.project, target.name),
        Action::WaitRunning(spec) | Action::WaitAgent(spec) => format!("{}/{}", spec.project, spec.name),
    }
}

/// The graph: one node per image the plan uses (made available before the instances
/// still to be created from it), then one per plan step.
fn build_nodes<'p>(plan: &'p Plan, state: &state::State, dry_run: bool) -> Vec<Node<'p>> {
    let mut nodes = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut image_node: HashMap<&str, usize> = HashMap::new();
    let types: HashMap<String, InstanceType> = plan
        .steps
        .iter()
        .filter_map(|step| match &step.action {
            Action::EnsureInstance(spec) => Some((format!("{}/{}", spec.project, spec.name), spec.instance_type)),
            _ => None,
        })
        .collect();
    for image in &plan.images {
        let missing: Vec<(String, InstanceType)> = image
            .instances
            .iter()
            .filter(|key| {
                let (project, name) = key.split_once('/').unwrap_or((key.as_str(), ""));
                state.instance(project, name).is_none()
            })
            .map(|key| (key.clone(), types.get(key).copied().unwrap_or(InstanceType::Container)))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let id = format!("image:{}", image.image);
        let origin = image.origin.to_string();
        image_node.insert(image.image.as_str(), nodes.len());
        index.insert(id.clone(), nodes.len());
        nodes.push(Node {
            info: StepInfo {
                id,
                title: format!("image {}", image.image),
                origin: origin.clone(),
                wait: false,
                dry_run,
            },
            work: Work::Image(ImageWork { image: image.image.clone(), origin, missing }),
            deps: Vec::new(),
        });
    }
    for step in &plan.steps {
        let mut deps: Vec<usize> = step.depends_on.iter().filter_map(|id| index.get(id).copied()).collect();
        if let Action::EnsureInstance(spec) = &step.action {
            if state.instance(&spec.project, &spec.name).is_none() {
                deps.extend(image_node.get(spec.image.as_str()).copied());
            }
        }
        let wait = matches!(step.action, Action::WaitRunning(_) | Action::WaitAgent(_));
        index.insert(step.id.clone(), nodes.len());
        nodes.push(Node {
            info: StepInfo {
                id: step.id.clone(),
                title: step_title(step),
                origin: step.origin.to_string(),
                wait,
                dry_run,
            },
            work: Work::Step(step),
            deps,
        });
    }
    nodes
}

/// Reach the server (`socket`, else the default one): one GET of `/1.0`, which tells
/// "no server" and "not allowed" apart from everything later. A plan for another
/// remote than `local` is refused first: the runner only speaks to the local socket.
pub(crate) fn connect(socket: Option<PathBuf>, plan: &Plan) -> Result<Client, RunError> {
    if let Some(remote) = plan.incus_remote.as_deref().filter(|remote| *remote != "local") {
        return Err(RunError(format!(
            "infra.yml is for the incus remote `{remote}` (global.incus_remote), and the runner only speaks to the local server: run anklumec on that server, or use the scripts (`--emit deploy`, `--emit destroy`), which go through the incus client"
        )));
    }
    let socket = socket.unwrap_or_else(client::default_socket);
    let client = Client::new(&socket);
    client.get("/1.0").map_err(|error| {
        RunError(format!(
            "the Incus server does not answer on {} ({}): check that incusd runs and that you may use it (root or the incus-admin group)",
            socket.display(),
            error.message()
        ))
    })?;
    Ok(client)
}

/// Whether the server (its `GET /1.0`) can enforce the domains' isolation: bridges
/// under network ACLs (API extensions `network_acl`, `network_bridge_acl`), enforced
/// by the nftables firewall driver. deploy.sh's `ak_check_isolation`, word for word.
pub fn check_isolation(server: &serde_json::Value) -> Result<(), RunError> {
    const OPT_OUT: &str = "or set global.network_isolation: false in infra.yml to deploy without isolation (the domains then reach each other)";
    let extensions: Vec<&str> =
        server["api_extensions"].as_array().into_iter().flatten().filter_map(serde_json::Value::as_str).collect();
    let missing: Vec<&str> =
        ["network_acl", "network_bridge_acl"].into_iter().filter(|wanted| !extensions.contains(wanted)).collect();
    if !missing.is_empty() {
        return Err(RunError(format!(
            "this Incus server cannot isolate the domains (it lacks the API extension(s) {}): upgrade Incus, {OPT_OUT}",
            missing.join(" ")
        )));
    }
    let firewall = server["environment"]["firewall"].as_str().unwrap_or("");
    if firewall != "nftables" {
        let driver = if firewall.is_empty() { "unknown".to_string() } else { format!("\"firewall\": \"{firewall}\"") };
        return Err(RunError(format!(
            "this Incus server cannot isolate the domains: its firewall driver is {driver}, and network ACLs need nftables (install nftables and restart incusd), {OPT_OUT}"
        )));
    }
    Ok(())
}

/// Reach the server and read the state of what `plan` declares, with GET requests
/// only: what `apply` and `diff` both start with.
pub(crate) fn connect_and_read(
    socket: Option<PathBuf>,
    plan: &Plan,
    jobs: usize,
) -> Result<(Client, state::State), RunError> {
    let client = connect(socket, plan)?;
    let state = state::read(&client, plan, jobs)
        .map_err(|error| RunError(format!("cannot read the current state: {error}")))?;
    Ok((client, state))
}

/// Carry out `plan`: read the state, apply the difference, report. Err only when the
/// run cannot begin (the server does not answer, the state cannot be read): nothing
/// was changed then.
pub fn apply(plan: &Plan, options: &Options, reporter: &dyn Reporter) -> Result<Report, RunError> {
    let started = Instant::now();
    let jobs = options.jobs.max(1);
    let (client, state) = connect_and_read(options.socket.clone(), plan, jobs)?;
    let nodes = build_nodes(plan, &state, options.dry_run);
    preflight::check(&client, plan, &state, &nodes)?;
    let would = |request: String| reporter.event(Event::Would(&request));
    let ctx = Ctx::new(&client, &state, options.dry_run, &options.interrupt, &would);
    let statuses = scheduler::execute(&nodes, &ctx, jobs, reporter);

    let mut report = Report { dry_run: options.dry_run, ..Report::default() };
    for (node, status) in nodes.iter().zip(statuses) {
        let counted = matches!(
            node.work,
            Work::Step(Step {
                action: Action::EnsureProject(_)
                    | Action::EnsureAcl(_)
                    | Action::EnsureNetwork(_)
                    | Action::EnsureProfile(_)
                    | Action::EnsureVolume(_)
                    | Action::EnsureInstance(_),
                ..
            })
        );
        match &status {
            Status::Done(Outcome::Created) if counted => report.created += 1,
            Status::Done(Outcome::Changed(_)) if counted => report.changed += 1,
            Status::Done(Outcome::Unchanged) if counted => report.unchanged += 1,
            Status::Done(Outcome::Started) => report.started += 1,
            Status::Failed(StepError { message, hints }) => report.failures.push(Failure {
                id: node.info.id.clone(),
                title: node.info.title.clone(),
                origin: node.info.origin.clone(),
                message: message.clone(),
                hints: hints.clone(),
            }),
            Status::Blocked(cause) => report.not_attempted.push((node.info.id.clone(), cause.clone())),
            Status::Interrupted => report.interrupted.push(node.info.id.clone()),
            _ => {}
        }
        report.statuses.push((node.info.id.clone(), status));
    }
    report.wall = started.elapsed();
    report.requests = client.records();
    report.mutating_requests = client.mutating_requests();
    for (stream, line) in report.closing_lines() {
        reporter.event(Event::Message(stream, &line));
    }
    reporter.event(Event::End);
    Ok(report)
}

/// Make Ctrl-C (SIGINT) set `flag`: the runner then starts no new step and lets the
/// running requests finish. A second Ctrl-C exits at once (status 130).
pub fn install_interrupt_handler(flag: Arc<AtomicBool>) -> Result<(), String> {
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("interrupted: starting no new step, letting running requests finish (Ctrl-C again to quit now)");
    })
    .map_err(|error| format!("cannot handle Ctrl-C: {error}"))
}
