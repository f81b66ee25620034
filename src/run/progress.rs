//! What the user sees while the runner works: one line per event when standard error
//! is not a terminal (CI logs; deploy.sh's words: created, changed, unchanged,
//! started, running), a live multi-line display on a terminal (indicatif), and a
//! capture for tests.

use super::apply::{Outcome, StepError};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

/// A step as the progress display names it.
#[derive(Clone, Debug)]
pub struct StepInfo {
    pub id: String,
    /// deploy.sh's name for it: `project work`, `instance work/web`, or `work/web` for
    /// a wait.
    pub title: String,
    /// Where in infra.yml it comes from (`infra.yml:12:7`).
    pub origin: String,
    /// A boot or agent wait (it runs outside the `--jobs` bound).
    pub wait: bool,
}

pub enum Event<'a> {
    /// The run begins with this many steps.
    Begin {
        total: usize,
    },
    Started(&'a StepInfo),
    /// A running step's progress (a wait's poll count).
    Note(&'a StepInfo, &'a str),
    Finished(&'a StepInfo, &'a Result<Outcome, StepError>),
    /// Not attempted: `cause` (a step id) failed or the run was interrupted first.
    NotAttempted(&'a StepInfo, &'a str),
    /// A dry run's request that was not sent.
    Would(&'a str),
    /// A free-standing line (interrupt notice, the summary, the failure list).
    Message(&'a str),
    /// The run is over (clear the live display).
    End,
}

pub trait Reporter: Sync {
    fn event(&self, event: Event<'_>);
}

/// The line deploy.sh prints for an outcome, if any.
pub fn outcome_line(info: &StepInfo, result: &Result<Outcome, StepError>) -> Option<String> {
    let line = match result {
        Ok(Outcome::Created) => format!("{:<9} {}", "created", info.title),
        Ok(Outcome::Changed(what)) => format!("{:<9} {} ({})", "changed", info.title, what.join(" ")),
        Ok(Outcome::Unchanged) => format!("{:<9} {}", "unchanged", info.title),
        Ok(Outcome::Started) => format!("{:<9} {}", "started", info.title),
        Ok(Outcome::Running(after)) => format!("{:<9} {} (after {after} s)", "running", info.title),
        Ok(Outcome::AgentReady(after)) => format!("{:<9} {} answers (after {after} s)", "agent", info.title),
        Ok(Outcome::Skipped) => return None,
        Err(error) => {
            let mut line = format!("{:<9} {} ({}): {}", "failed", info.title, info.origin, error.message);
            if !error.hints.is_empty() {
                line.push_str("\n  troubleshoot:");
                for hint in &error.hints {
                    line.push_str(&format!("\n    {hint}"));
                }
            }
            line
        }
    };
    Some(line)
}

/// One line per event on standard error; dry-run requests on standard output.
pub struct Plain;

impl Reporter for Plain {
    fn event(&self, event: Event<'_>) {
        let line = match event {
            Event::Finished(info, result) => outcome_line(info, result),
            Event::Message(text) => Some(text.to_string()),
            Event::Would(request) => {
                // One write per line, so that lines of the two streams never interleave.
                let _ = std::io::stdout().lock().write_all(format!("  would run: {request}\n").as_bytes());
                return;
            }
            _ => None,
        };
        if let Some(line) = line {
            let _ = std::io::stderr().lock().write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// Keeps the lines [`Plain`] would print (dry-run requests prefixed `would run: `).
#[derive(Default)]
pub struct Capture {
    lines: Mutex<Vec<String>>,
}

impl Capture {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|lines| lines.clone()).unwrap_or_default()
    }
}

impl Reporter for Capture {
    fn event(&self, event: Event<'_>) {
        let line = match event {
            Event::Finished(info, result) => outcome_line(info, result),
            Event::Message(text) => Some(text.to_string()),
            Event::Would(request) => Some(format!("would run: {request}")),
            _ => None,
        };
        if let (Some(line), Ok(mut lines)) = (line, self.lines.lock()) {
            lines.push(line);
        }
    }
}

/// The live display: a bar of steps done, and a spinner per running step (waits
/// show their elapsed time and poll count); finished steps scroll above as lines.
pub struct Live {
    multi: MultiProgress,
    overall: ProgressBar,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

impl Live {
    pub fn new() -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} steps {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        overall.enable_steady_tick(Duration::from_millis(200));
        Live { multi, overall, bars: Mutex::new(HashMap::new()) }
    }

    fn running_message(&self) {
        if let Ok(bars) = self.bars.lock() {
            let running = bars.len() as u64;
            let left = self.overall.length().unwrap_or(0).saturating_sub(self.overall.position());
            self.overall.set_message(format!("done, {running} running, {} waiting", left.saturating_sub(running)));
        }
    }
}

impl Reporter for Live {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::Begin { total } => self.overall.set_length(total as u64),
            Event::Started(info) => {
                let bar = self.multi.insert_before(&self.overall, ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {elapsed:>4} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                let verb = match (info.wait, info.id.split(':').next()) {
                    (true, Some("agent")) => "waiting for the agent of",
                    (true, _) => "waiting for",
                    (false, Some("start")) => "starting",
                    _ => "converging",
                };
                bar.set_message(format!("{verb} {}", info.title));
                bar.enable_steady_tick(Duration::from_millis(120));
                if let Ok(mut bars) = self.bars.lock() {
                    bars.insert(info.id.clone(), bar);
                }
                self.running_message();
            }
            Event::Note(info, note) => {
                if let Some(bar) = self.bars.lock().ok().and_then(|bars| bars.get(&info.id).cloned()) {
                    bar.set_message(format!("waiting for {}: {note}", info.title));
                }
            }
            Event::Finished(info, result) => {
                if let Some(bar) = self.bars.lock().ok().and_then(|mut bars| bars.remove(&info.id)) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                if let Some(line) = outcome_line(info, result) {
                    let _ = self.multi.println(line);
                }
                self.overall.inc(1);
                self.running_message();
            }
            Event::NotAttempted(..) => self.overall.inc(1),
            Event::Would(request) => {
                let _ = self.multi.suspend(|| writeln!(std::io::stdout().lock(), "  would run: {request}"));
            }
            Event::Message(text) => {
                let _ = self.multi.println(text);
            }
            Event::End => {
                self.overall.finish_and_clear();
                let _ = self.multi.clear();
            }
        }
    }
}
