//! What the user sees while the runner works, on deploy.sh's two streams:
//!
//! - standard output: the results, one line per step (deploy.sh's words: created,
//!   changed, unchanged, started, running; destroy.sh's: removed, absent, kept,
//!   unprotect), a dry run's requests, and the summary, so that `anklumec apply > log`
//!   keeps them;
//! - standard error: live progress (a multi-line display when it is a terminal,
//!   indicatif), and the diagnostics: a failed step with its hints, what failed, was
//!   not attempted or was left by an interrupt.
//!
//! [`Plain`] when standard error is not a terminal (CI logs), [`Live`] when it is, and
//! [`Capture`] for tests.

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
    /// Part of a dry run: its result line is a prediction (`would create`).
    pub dry_run: bool,
}

/// Which stream a line belongs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Results: standard output.
    Out,
    /// Progress and diagnostics: standard error.
    Err,
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
    /// A free-standing line (destroy's results, the summary, the failure list).
    Message(Stream, &'a str),
    /// The run is over (clear the live display).
    End,
}

pub trait Reporter: Sync {
    fn event(&self, event: Event<'_>);
}

/// The stream of an outcome's line: a failure is a diagnostic.
pub fn outcome_stream(result: &Result<Outcome, StepError>) -> Stream {
    if result.is_ok() { Stream::Out } else { Stream::Err }
}

/// The line deploy.sh prints for an outcome, if any.
pub fn outcome_line(info: &StepInfo, result: &Result<Outcome, StepError>) -> Option<String> {
    // A dry run words its results as deploy.sh's DRY_RUN=1 does.
    let [created, changed, started] =
        if info.dry_run { ["would create", "would change", "would start"] } else { ["created", "changed", "started"] };
    let line = match result {
        Ok(Outcome::Created) => format!("{created:<9} {}", info.title),
        Ok(Outcome::Changed(what)) => format!("{changed:<9} {} ({})", info.title, what.join(" ")),
        Ok(Outcome::Unchanged) => format!("{:<9} {}", "unchanged", info.title),
        Ok(Outcome::Started) => format!("{started:<9} {}", info.title),
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

/// Write `line` and its newline to `stream` in one write, so that lines of the two
/// streams never cut into each other.
fn write_line(stream: Stream, line: &str) {
    let line = format!("{line}\n");
    let _ = match stream {
        Stream::Out => std::io::stdout().lock().write_all(line.as_bytes()),
        Stream::Err => std::io::stderr().lock().write_all(line.as_bytes()),
    };
}

/// The line [`Plain`] prints for an event, and where; None for the events only a live
/// display shows.
fn plain_line(event: &Event<'_>) -> Option<(Stream, String)> {
    match event {
        Event::Finished(info, result) => Some((outcome_stream(result), outcome_line(info, result)?)),
        Event::Message(stream, text) => Some((*stream, text.to_string())),
        Event::Would(request) => Some((Stream::Out, format!("  would run: {request}"))),
        _ => None,
    }
}

/// One line per result on standard output, one per failure on standard error; no
/// live progress (a log has no use for spinners).
pub struct Plain;

impl Reporter for Plain {
    fn event(&self, event: Event<'_>) {
        if let Some((stream, line)) = plain_line(&event) {
            write_line(stream, &line);
        }
    }
}

/// Keeps the lines [`Plain`] would print, each with its stream (dry-run requests as
/// `would run: ...`, without the indent).
#[derive(Default)]
pub struct Capture {
    lines: Mutex<Vec<(Stream, String)>>,
}

impl Capture {
    /// Every line, both streams, in the order they came.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|lines| lines.iter().map(|(_, line)| line.clone()).collect()).unwrap_or_default()
    }

    /// The lines of one stream, in order.
    pub fn stream(&self, wanted: Stream) -> Vec<String> {
        let lines = self.lines.lock().map(|lines| lines.clone()).unwrap_or_default();
        lines.into_iter().filter(|(stream, _)| *stream == wanted).map(|(_, line)| line).collect()
    }
}

impl Reporter for Capture {
    fn event(&self, event: Event<'_>) {
        let line = match event {
            Event::Would(request) => Some((Stream::Out, format!("would run: {request}"))),
            other => plain_line(&other),
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

    /// A line above the display: a result on standard output (the display is lifted
    /// while it is written, should both streams be the terminal), a diagnostic on
    /// standard error.
    fn print(&self, stream: Stream, line: &str) {
        match stream {
            Stream::Out => self.multi.suspend(|| write_line(Stream::Out, line)),
            Stream::Err => {
                let _ = self.multi.println(line);
            }
        }
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
                    self.print(outcome_stream(result), &line);
                }
                self.overall.inc(1);
                self.running_message();
            }
            Event::NotAttempted(..) => self.overall.inc(1),
            Event::Would(request) => self.print(Stream::Out, &format!("  would run: {request}")),
            Event::Message(stream, text) => self.print(stream, text),
            Event::End => {
                self.overall.finish_and_clear();
                let _ = self.multi.clear();
            }
        }
    }
}
