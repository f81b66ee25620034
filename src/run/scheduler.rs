//! The plan as a dependency graph, run by a bounded pool of threads.
//!
//! `--jobs N` workers take the ready steps that send requests (projects, bridges,
//! profiles, volumes, images, instances, starts), lowest plan position first. Boot and
//! agent waits do not hold a job slot: they spend their time sleeping between polls,
//! so they get their own threads (up to [`MAX_WAIT_THREADS`] at once) and every
//! started VM is waited on at the same time. A step runs once all the steps it depends
//! on succeeded; when one fails, everything that depends on it (transitively) is marked
//! not attempted, and everything else goes on. After an interrupt no step starts;
//! running requests finish.

use super::apply::{self, Ctx, ImageWork, Outcome, StepError};
use super::progress::{Event, Reporter, StepInfo};
use crate::plan::Step;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex};

/// Waits running at once, at most (each is a thread that mostly sleeps).
pub const MAX_WAIT_THREADS: usize = 256;

pub enum Work<'p> {
    Step(&'p Step),
    Image(ImageWork),
}

pub struct Node<'p> {
    pub info: StepInfo,
    pub work: Work<'p>,
    /// Indexes of the nodes that must succeed first.
    pub deps: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    Running,
    Done(Outcome),
    Failed(StepError),
    /// Not attempted: the step with this id failed (or was not attempted) first.
    Blocked(String),
    /// Not started: the run was interrupted first.
    Interrupted,
}

impl Status {
    fn is_success(&self) -> bool {
        matches!(self, Status::Done(_))
    }
}

struct Shared {
    status: Vec<Status>,
    /// Dependencies not yet succeeded, per node.
    remaining: Vec<usize>,
    ready: BinaryHeap<Reverse<usize>>,
    ready_waits: BinaryHeap<Reverse<usize>>,
    /// Nodes not yet in a final state.
    open: usize,
}

struct Graph<'a, 'p> {
    nodes: &'a [Node<'p>],
    dependents: Vec<Vec<usize>>,
    shared: Mutex<Shared>,
    wake: Condvar,
}

impl Graph<'_, '_> {
    fn queue(&self, shared: &mut Shared, index: usize) {
        if self.nodes[index].info.wait {
            shared.ready_waits.push(Reverse(index));
        } else {
            shared.ready.push(Reverse(index));
        }
    }

    /// Record a final status and release or block the dependents; returns the
    /// dependents newly blocked (to report outside the lock).
    fn finish(&self, shared: &mut Shared, index: usize, status: Status) -> Vec<(usize, String)> {
        let success = status.is_success();
        let cause = match &status {
            Status::Blocked(cause) => cause.clone(),
            _ => self.nodes[index].info.id.clone(),
        };
        let interrupted = status == Status::Interrupted;
        shared.status[index] = status;
        shared.open -= 1;
        let mut blocked = Vec::new();
        if success {
            for &dependent in &self.dependents[index] {
                shared.remaining[dependent] -= 1;
                if shared.remaining[dependent] == 0 && shared.status[dependent] == Status::Pending {
                    self.queue(shared, dependent);
                }
            }
        } else {
            let mut stack: Vec<usize> = self.dependents[index].clone();
            while let Some(dependent) = stack.pop() {
                if shared.status[dependent] != Status::Pending {
                    continue;
                }
                shared.status[dependent] =
                    if interrupted { Status::Interrupted } else { Status::Blocked(cause.clone()) };
                shared.open -= 1;
                blocked.push((dependent, cause.clone()));
                stack.extend(self.dependents[dependent].iter().copied());
            }
        }
        self.wake.notify_all();
        blocked
    }

    /// Take the next ready node of the given kind; None when the run is over.
    fn take(&self, waits: bool) -> Option<usize> {
        let mut shared = self.shared.lock().ok()?;
        loop {
            if shared.open == 0 {
                return None;
            }
            let queue = if waits { &mut shared.ready_waits } else { &mut shared.ready };
            if let Some(Reverse(index)) = queue.pop() {
                shared.status[index] = Status::Running;
                return Some(index);
            }
            shared = self.wake.wait(shared).ok()?;
        }
    }

    fn worker(&self, ctx: &Ctx, reporter: &dyn Reporter, waits: bool) {
        while let Some(index) = self.take(waits) {
            let node = &self.nodes[index];
            let status = if ctx.interrupt.load(Ordering::SeqCst) {
                Status::Interrupted
            } else {
                reporter.event(Event::Started(&node.info));
                let note = |text: String| reporter.event(Event::Note(&node.info, &text));
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| match &node.work {
                    Work::Step(step) => apply::run_step(ctx, step, &note),
                    Work::Image(work) => apply::ensure_image(ctx, work),
                }))
                .unwrap_or_else(|_| Err(StepError::new("internal error: the step panicked")));
                reporter.event(Event::Finished(&node.info, &result));
                match result {
                    Ok(outcome) => Status::Done(outcome),
                    Err(error) => Status::Failed(error),
                }
            };
            let blocked = match self.shared.lock() {
                Ok(mut shared) => self.finish(&mut shared, index, status),
                Err(_) => return,
            };
            for (dependent, cause) in blocked {
                reporter.event(Event::NotAttempted(&self.nodes[dependent].info, &cause));
            }
        }
    }
}

/// Run every node; returns each node's final status (same order as `nodes`).
pub fn execute(nodes: &[Node], ctx: &Ctx, jobs: usize, reporter: &dyn Reporter) -> Vec<Status> {
    let mut dependents = vec![Vec::new(); nodes.len()];
    for (index, node) in nodes.iter().enumerate() {
        for &dep in &node.deps {
            dependents[dep].push(index);
        }
    }
    let shared = Shared {
        status: vec![Status::Pending; nodes.len()],
        remaining: nodes.iter().map(|node| node.deps.len()).collect(),
        ready: BinaryHeap::new(),
        ready_waits: BinaryHeap::new(),
        open: nodes.len(),
    };
    let graph = Graph { nodes, dependents, shared: Mutex::new(shared), wake: Condvar::new() };
    if let Ok(mut shared) = graph.shared.lock() {
        for (index, node) in nodes.iter().enumerate() {
            if node.deps.is_empty() {
                graph.queue(&mut shared, index);
            }
        }
    }
    reporter.event(Event::Begin { total: nodes.len() });
    let wait_threads = nodes.iter().filter(|node| node.info.wait).count().min(MAX_WAIT_THREADS);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| graph.worker(ctx, reporter, false));
        }
        for _ in 0..wait_threads {
            scope.spawn(|| graph.worker(ctx, reporter, true));
        }
    });
    graph.shared.into_inner().map(|shared| shared.status).unwrap_or_default()
}
