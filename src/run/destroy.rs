//! `anklumec destroy`: destroy.sh's teardown carried out over the REST API.
//!
//! The same rules as the script, so that either can be used: remove what the plan
//! declares and nothing else, in [`Plan::teardown`] order (instances, volumes,
//! profiles, projects, bridges); keep and list a protected instance
//! (`security.protection.delete=true`, from its own config or a profile) unless
//! `--force`, which clears the protection first and says so; keep a volume, profile,
//! project or bridge that something undeclared still uses. A second run removes
//! nothing. The words are destroy.sh's: `removed`, `absent`, `kept`, `unprotect`.
//!
//! A dry run sends no mutating request and words every line as a prediction (`would
//! remove`, `would keep`); it remembers what it would have removed so that, later in
//! the same run, a profile used only by instances it would remove is reported as
//! removable, as a real run would find it: the same steps and the same summary.
//!
//! Results (one line per resource, the summary, what was kept and why) go to standard
//! output, failures to standard error.

use super::client::{Client, Error, encode};
use super::progress::{Event, Reporter, Stream};
use super::serial::{self, Serial};
use super::{RunError, connect, step_title};
use crate::plan::{Action, Plan, TeardownPhase};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DELETE_DEADLINE: Duration = Duration::from_secs(300);
const PROTECTION_KEY: &str = "security.protection.delete";

pub struct DestroyOptions {
    /// Clear `security.protection.delete` and remove protected instances too.
    pub force: bool,
    pub dry_run: bool,
    /// How many removals of one phase may run at once.
    pub jobs: usize,
    /// The Incus socket; [`super::client::default_socket`] when None.
    pub socket: Option<PathBuf>,
    /// Set (by Ctrl-C) to stop starting removals.
    pub interrupt: Arc<AtomicBool>,
}

impl Default for DestroyOptions {
    fn default() -> Self {
        DestroyOptions {
            force: false,
            dry_run: false,
            jobs: super::DEFAULT_JOBS,
            socket: None,
            interrupt: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What happened to one declared resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Removed,
    /// Not there (never deployed, or removed by an earlier run).
    Absent,
    /// Left in place, and why.
    Kept(String),
}

/// One resource of the teardown and its result.
#[derive(Clone, Debug)]
pub struct Item {
    /// destroy.sh's name for it: `instance work/web`, `project work`, ...
    pub title: String,
    pub origin: String,
    /// None when an interrupt came before it was reached.
    pub result: Option<Result<Verdict, String>>,
}

#[derive(Clone, Debug, Default)]
pub struct DestroyReport {
    /// Every resource, in teardown order.
    pub items: Vec<Item>,
    pub dry_run: bool,
    pub wall: Duration,
    pub mutating_requests: usize,
}

impl DestroyReport {
    fn count(&self, wanted: fn(&Verdict) -> bool) -> usize {
        self.items.iter().filter(|item| matches!(&item.result, Some(Ok(verdict)) if wanted(verdict))).count()
    }

    pub fn removed(&self) -> usize {
        self.count(|verdict| *verdict == Verdict::Removed)
    }

    pub fn absent(&self) -> usize {
        self.count(|verdict| *verdict == Verdict::Absent)
    }

    /// `(title, why)` of what was kept, in teardown order.
    pub fn kept(&self) -> Vec<(&str, &str)> {
        self.items
            .iter()
            .filter_map(|item| match &item.result {
                Some(Ok(Verdict::Kept(why))) => Some((item.title.as_str(), why.as_str())),
                _ => None,
            })
            .collect()
    }

    /// `(title, origin, message)` of what failed.
    pub fn failures(&self) -> Vec<(&str, &str, &str)> {
        self.items
            .iter()
            .filter_map(|item| match &item.result {
                Some(Err(message)) => Some((item.title.as_str(), item.origin.as_str(), message.as_str())),
                _ => None,
            })
            .collect()
    }

    pub fn was_interrupted(&self) -> bool {
        self.items.iter().any(|item| item.result.is_none())
    }

    /// Kept resources are not a failure: destroy.sh exits 0 with them too.
    pub fn ok(&self) -> bool {
        self.failures().is_empty() && !self.was_interrupted()
    }

    /// destroy.sh's summary and what was kept and why (standard output), then what
    /// failed and what an interrupt left (standard error).
    pub fn closing_lines(&self) -> Vec<(Stream, String)> {
        let kept = self.kept();
        let mut summary = if self.dry_run {
            format!(
                "{} would be removed, {} already absent, {} would be kept",
                self.removed(),
                self.absent(),
                kept.len()
            )
        } else {
            format!("{} removed, {} already absent, {} kept", self.removed(), self.absent(), kept.len())
        };
        let failures = self.failures();
        if !failures.is_empty() {
            summary.push_str(&format!(", {} failed", failures.len()));
        }
        summary.push_str(&format!(", wall time {:.1} s", self.wall.as_secs_f64()));
        if self.dry_run {
            summary.push_str(" (dry run: nothing was changed)");
        }
        let mut lines = vec![(Stream::Out, summary)];
        let keep = Word::Kept.text(self.dry_run);
        lines.extend(kept.iter().map(|(title, why)| (Stream::Out, format!("  {keep} {title}: {why}"))));
        lines.extend(
            failures
                .iter()
                .map(|(title, origin, message)| (Stream::Err, format!("  failed {title} ({origin}): {message}"))),
        );
        let left = self.items.iter().filter(|item| item.result.is_none()).count();
        if left > 0 {
            lines.push((
                Stream::Err,
                format!("interrupted: {left} resource(s) not reached; run `anklumec destroy` again to finish"),
            ));
        }
        lines
    }
}

/// destroy.sh's words: what a run did, or what a dry run predicts.
#[derive(Clone, Copy)]
enum Word {
    Removed,
    Absent,
    Kept,
    Unprotect,
    Failed,
}

impl Word {
    fn text(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Word::Removed, false) => "removed",
            (Word::Removed, true) => "would remove",
            (Word::Absent, _) => "absent",
            (Word::Kept, false) => "kept",
            (Word::Kept, true) => "would keep",
            (Word::Unprotect, false) => "unprotect",
            (Word::Unprotect, true) => "would unprotect",
            (Word::Failed, _) => "failed",
        }
    }

    /// `WORD REST`, the word in a column (destroy.sh's widths: 9, 12 in a dry run).
    fn line(self, dry_run: bool, rest: &str) -> String {
        let width = if dry_run { 12 } else { 9 };
        format!("{:<width$} {rest}", self.text(dry_run))
    }
}

/// Remove what `plan` declares from the server. Err only when the run cannot begin
/// (the server does not answer): nothing was changed then.
pub fn destroy(plan: &Plan, options: &DestroyOptions, reporter: &dyn Reporter) -> Result<DestroyReport, RunError> {
    let started = Instant::now();
    let client = connect(options.socket.clone(), plan)?;
    let teardown = plan.teardown();
    let work = Teardown {
        client: &client,
        options,
        reporter,
        gone: Mutex::new(HashSet::new()),
        declared: teardown.iter().map(|(_, step)| step_title(step)).collect(),
        serial: Serial::default(),
    };
    let mut items: Vec<Item> = teardown
        .iter()
        .map(|(_, step)| Item { title: step_title(step), origin: step.origin.to_string(), result: None })
        .collect();
    let mut begin = 0;
    while begin < teardown.len() {
        let phase = teardown[begin].0;
        let end = begin + teardown[begin..].iter().take_while(|(p, _)| *p == phase).count();
        let results = work.phase(&teardown[begin..end], &items[begin..end]);
        for (item, result) in items[begin..end].iter_mut().zip(results) {
            item.result = result;
        }
        begin = end;
    }
    let report = DestroyReport {
        items,
        dry_run: options.dry_run,
        wall: started.elapsed(),
        mutating_requests: client.mutating_requests(),
    };
    for (stream, line) in report.closing_lines() {
        reporter.event(Event::Message(stream, &line));
    }
    reporter.event(Event::End);
    Ok(report)
}

struct Teardown<'a> {
    client: &'a Client,
    options: &'a DestroyOptions,
    reporter: &'a dyn Reporter,
    /// What this run removed (or, in a dry run, would have), as `used_by` names it
    /// ([`used_by_key`]), so that later phases do not count it as a user.
    gone: Mutex<HashSet<String>>,
    /// The titles of what the plan declares (`instance work/web`): what keeps a project
    /// and is not among them is named as not in infra.yml.
    declared: HashSet<String>,
    /// Bridges and ACLs deleted one at a time, instances stopped and deleted together
    /// (see [`Serial`]).
    serial: Serial,
}

type Outcome = Option<Result<Verdict, String>>;

impl Teardown<'_> {
    /// The removals of one phase on up to `jobs` threads (they do not depend on one
    /// another); each result in its slot, each line as it happens.
    fn phase(&self, steps: &[(TeardownPhase, &crate::plan::Step)], items: &[Item]) -> Vec<Outcome> {
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Outcome>> = steps.iter().map(|_| Mutex::new(None)).collect();
        let workers = self.options.jobs.clamp(1, steps.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        if index >= steps.len() || self.options.interrupt.load(Ordering::SeqCst) {
                            break;
                        }
                        let item = &items[index];
                        let result = self.remove(&steps[index].1.action, &item.title);
                        let dry = self.options.dry_run;
                        let (stream, line) = match &result {
                            Ok(Verdict::Removed) => (Stream::Out, Word::Removed.line(dry, &item.title)),
                            Ok(Verdict::Absent) => (Stream::Out, Word::Absent.line(dry, &item.title)),
                            Ok(Verdict::Kept(why)) => {
                                (Stream::Out, Word::Kept.line(dry, &format!("{} ({why})", item.title)))
                            }
                            Err(message) => (
                                Stream::Err,
                                Word::Failed.line(false, &format!("{} ({}): {message}", item.title, item.origin)),
                            ),
                        };
                        self.reporter.event(Event::Message(stream, &line));
                        if let Ok(mut slot) = slots[index].lock() {
                            *slot = Some(result);
                        }
                    }
                });
            }
        });
        slots.into_iter().map(|slot| slot.into_inner().unwrap_or(None)).collect()
    }

    fn remove(&self, action: &Action, title: &str) -> Result<Verdict, String> {
        match action {
            Action::EnsureInstance(spec) => self.instance(&spec.project, &spec.name, title),
            Action::EnsureVolume(spec) => self.volume(&spec.project, &spec.pool, &spec.name),
            Action::EnsureProfile(spec) => self.profile(&spec.project, &spec.name),
            Action::EnsureProject(spec) => self.project(&spec.name),
            Action::EnsureNetwork(spec) => self.network(&spec.name),
            Action::EnsureAcl(spec) => self.acl(&spec.name),
            _ => Ok(Verdict::Absent),
        }
        .map_err(|error| error.to_string())
    }

    /// GET `path`; None when Incus has no such thing.
    fn read(&self, path: &str) -> Result<Option<Value>, Error> {
        match self.client.get(path) {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Send a mutating request and await it, or announce it in a dry run. A 404 on a
    /// DELETE is success when the resource is indeed gone (something else removed it
    /// meanwhile); Incus also answers 404 for a DELETE it failed midway (an ACL
    /// deleted beside another: see [`Serial`]), and that is a failure.
    fn mutate(&self, method: &str, path: &str, body: Option<Value>) -> Result<(), Error> {
        if self.options.dry_run {
            let request = match &body {
                Some(body) => format!("{method} {path} {body}"),
                None => format!("{method} {path}"),
            };
            self.reporter.event(Event::Would(&request));
            return Ok(());
        }
        match self.client.call(method, path, body.as_ref(), DELETE_DEADLINE) {
            Ok(_) => Ok(()),
            Err(error) if method == "DELETE" && error.is_not_found() => match self.read(path) {
                Ok(None) => Ok(()),
                _ => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    fn mark_gone(&self, key: String) {
        if let Ok(mut gone) = self.gone.lock() {
            gone.insert(key);
        }
    }

    /// The entries of a `used_by` list that this run has not removed, minus `ignore`,
    /// as [`used_by_key`] names them.
    fn users(&self, value: &Value, ignore: &[String]) -> Vec<String> {
        let gone = self.gone.lock().map(|gone| gone.clone()).unwrap_or_default();
        value["used_by"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(used_by_key)
            .filter(|key| !gone.contains(key) && !ignore.contains(key))
            .collect()
    }

    fn instance(&self, project: &str, name: &str, title: &str) -> Result<Verdict, Error> {
        let path = format!("/1.0/instances/{}?project={}", encode(name), encode(project));
        let Some(instance) = self.read(&path)? else { return Ok(Verdict::Absent) };
        // Incus refuses the delete when the expanded config (profiles included) protects it.
        let protected = instance["expanded_config"][PROTECTION_KEY]
            .as_str()
            .or_else(|| instance["config"][PROTECTION_KEY].as_str())
            .is_some_and(|value| value.eq_ignore_ascii_case("true"));
        if protected {
            if !self.options.force {
                return Ok(Verdict::Kept(format!("protected: {PROTECTION_KEY}=true; rerun with --force to remove it")));
            }
            let line =
                Word::Unprotect.line(self.options.dry_run, &format!("{title} (--force: clearing {PROTECTION_KEY})"));
            self.reporter.event(Event::Message(Stream::Out, &line));
            self.mutate("PATCH", &path, Some(json!({ "config": { PROTECTION_KEY: "false" } })))?;
        }
        // Its veth pairs go with it: not while a bridge is deleted.
        let _beside = self.serial.instance();
        let status = instance["status"].as_str().unwrap_or_default();
        if matches!(status, "Running" | "Frozen" | "Ready") {
            let state = format!("/1.0/instances/{}/state?project={}", encode(name), encode(project));
            match self.mutate("PUT", &state, Some(json!({ "action": "stop", "force": true, "timeout": -1 }))) {
                // An ephemeral instance is gone once stopped.
                Err(error) if error.is_not_found() => {}
                other => other?,
            }
        }
        self.mutate("DELETE", &path, None)?;
        self.mark_gone(used_by_key(&path));
        Ok(Verdict::Removed)
    }

    fn volume(&self, project: &str, pool: &str, name: &str) -> Result<Verdict, Error> {
        let path =
            format!("/1.0/storage-pools/{}/volumes/custom/{}?project={}", encode(pool), encode(name), encode(project));
        let Some(volume) = self.read(&path)? else { return Ok(Verdict::Absent) };
        if !self.users(&volume, &[]).is_empty() {
            return Ok(Verdict::Kept("still attached to an instance".into()));
        }
        self.mutate("DELETE", &path, None)?;
        self.mark_gone(used_by_key(&path));
        Ok(Verdict::Removed)
    }

    fn profile(&self, project: &str, name: &str) -> Result<Verdict, Error> {
        let path = format!("/1.0/profiles/{}?project={}", encode(name), encode(project));
        let Some(profile) = self.read(&path)? else { return Ok(Verdict::Absent) };
        if !self.users(&profile, &[]).is_empty() {
            return Ok(Verdict::Kept("still used by an instance".into()));
        }
        self.mutate("DELETE", &path, None)?;
        self.mark_gone(used_by_key(&path));
        Ok(Verdict::Removed)
    }

    fn project(&self, name: &str) -> Result<Verdict, Error> {
        let path = format!("/1.0/projects/{}", encode(name));
        let Some(project) = self.read(&path)? else { return Ok(Verdict::Absent) };
        // The project's own default profile goes with it.
        let default_profile = used_by_key(&format!("/1.0/profiles/default?project={}", encode(name)));
        let left = self.users(&project, std::slice::from_ref(&default_profile));
        if !left.is_empty() {
            // What keeps it, by name: what infra.yml declares was kept above (protected,
            // still used) or failed; the rest is not anklumec's to remove.
            let named: Vec<String> = left
                .iter()
                .map(|key| {
                    let title = title_of(key);
                    if self.declared.contains(&title) { title } else { format!("{title} (not in infra.yml)") }
                })
                .collect();
            return Ok(Verdict::Kept(format!("not empty: it still holds {}", named.join(", "))));
        }
        self.mutate("DELETE", &path, None)?;
        self.mark_gone(default_profile);
        Ok(Verdict::Removed)
    }

    fn network(&self, name: &str) -> Result<Verdict, Error> {
        let path = format!("/1.0/networks/{}", encode(name));
        let Some(network) = self.read(&path)? else { return Ok(Verdict::Absent) };
        if network["managed"].as_bool() != Some(true) {
            return Ok(Verdict::Kept("a host interface, not a bridge of Incus".into()));
        }
        if !self.users(&network, &[]).is_empty() {
            return Ok(Verdict::Kept("still in use".into()));
        }
        let alone = self.serial.bridge();
        serial::retry_interface_race(|| self.mutate("DELETE", &path, None), Error::to_string)?;
        drop(alone);
        // Its ACL is free now (a dry run counts it so too, as the real run would).
        self.mark_gone(used_by_key(&path));
        Ok(Verdict::Removed)
    }

    /// A network ACL, once no bridge names it: Incus refuses to delete one in use, and
    /// a bridge kept above (its domain holds a protected instance) stays isolated.
    fn acl(&self, name: &str) -> Result<Verdict, Error> {
        let path = format!("/1.0/network-acls/{}", encode(name));
        let Some(acl) = self.read(&path)? else { return Ok(Verdict::Absent) };
        let gone = self.gone.lock().map(|gone| gone.clone()).unwrap_or_default();
        let users: Vec<&str> = acl["used_by"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|url| !gone.contains(&used_by_key(url)))
            .map(|url| url.strip_prefix("/1.0/").unwrap_or(url))
            .collect();
        if !users.is_empty() {
            return Ok(Verdict::Kept(format!("still used by {}", users.join(" "))));
        }
        let alone = self.serial.acl_delete();
        self.mutate("DELETE", &path, None)?;
        drop(alone);
        Ok(Verdict::Removed)
    }
}

/// A resource as `used_by` lists name it: the path and its project (`default` when
/// the URL names none), percent-decoded, so that the runner's own paths and Incus's
/// lists compare.
fn used_by_key(url: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let project = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("project="))
        .map(decode)
        .filter(|project| !project.is_empty())
        .unwrap_or_else(|| "default".to_string());
    format!("{}@{project}", decode(path))
}

/// destroy.sh's name for what a [`used_by_key`] names: `instance work/web`, `profile
/// work/extra`, `volume work/default/data`; another kind as its path and project.
fn title_of(key: &str) -> String {
    let (path, project) = key.rsplit_once('@').unwrap_or((key, "default"));
    let path = path.strip_prefix("/1.0/").unwrap_or(path);
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["instances", name] => format!("instance {project}/{name}"),
        ["profiles", name] => format!("profile {project}/{name}"),
        ["storage-pools", pool, "volumes", "custom", name] => format!("volume {project}/{pool}/{name}"),
        _ => format!("{path} (project {project})"),
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes.get(index + 1..index + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[index], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_by_names_compare_with_the_runners_paths() {
        assert_eq!(used_by_key("/1.0/instances/web?project=work"), "/1.0/instances/web@work");
        assert_eq!(used_by_key("/1.0/instances/web"), "/1.0/instances/web@default");
        assert_eq!(used_by_key("/1.0/profiles/a%2Db?project=w%6Frk&target=x"), "/1.0/profiles/a-b@work");
        assert_eq!(used_by_key("/1.0/instances/bad%zz"), "/1.0/instances/bad%zz@default");
        assert_eq!(
            used_by_key(&format!("/1.0/storage-pools/default/volumes/custom/{}?project=p", encode("data"))),
            "/1.0/storage-pools/default/volumes/custom/data@p"
        );
    }

    #[test]
    fn what_keeps_a_project_is_named_as_destroy_sh_names_it() {
        assert_eq!(title_of(&used_by_key("/1.0/instances/web?project=work")), "instance work/web");
        assert_eq!(title_of(&used_by_key("/1.0/profiles/extra?project=work")), "profile work/extra");
        assert_eq!(
            title_of(&used_by_key("/1.0/storage-pools/default/volumes/custom/keep?project=work")),
            "volume work/default/keep"
        );
        assert_eq!(title_of(&used_by_key("/1.0/storage-buckets/b?project=work")), "storage-buckets/b (project work)");
    }
}
