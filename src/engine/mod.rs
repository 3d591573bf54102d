//! The engine runtime: runs a planned graph of operators as tokio tasks connected by
//! bounded channels. It knows nothing about audio: operators, schemas and metrics are
//! opaque to it.
//!
//! - Each node's output stream is driven by one task that sends every frame to each
//!   consumer's bounded channel (fan-out); a slow consumer therefore slows its producer
//!   (backpressure end to end), and memory is bounded by the channel capacities.
//! - CPU-heavy work runs on the [`pool::WorkerPool`], never on the async runtime.
//! - A fatal error anywhere cancels the run; the first (root) error is returned.
//! - Cancellation aborts every task: dropping a stream frees everything, and sinks
//!   remove their unfinished temporary files on drop.

pub mod cancel;
pub mod metrics;
pub mod operator;
pub mod pool;
pub mod stream;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use tokio::sync::mpsc;

pub use cancel::Cancel;
pub use metrics::{Counter, Metrics};
pub use operator::{Component, ConfigContext, Operator, OperatorConfig, PlanInput, Problem, Role};
pub use pool::WorkerPool;
pub use stream::{BatchStream, Frame, FrameResult, Quarantined};

use crate::error::{Result, SermoError};

/// Everything a running operator may use.
#[derive(Clone)]
pub struct TaskContext {
    /// Id of the node (`[stages.ID]`).
    pub node_id: Arc<str>,
    pub pool: Arc<WorkerPool>,
    pub metrics: Metrics,
    pub cancel: Cancel,
    /// Folder of the pipeline file.
    pub base_dir: PathBuf,
}

/// A node of a planned graph.
pub struct PlanNode {
    pub id: String,
    pub role: Role,
    pub kind: String,
    /// Indices (into [`Plan::nodes`]) of the nodes feeding this one; always earlier.
    pub inputs: Vec<usize>,
    /// Output schema.
    pub schema: SchemaRef,
    pub config: Box<dyn OperatorConfig>,
}

/// A validated graph in topological order, ready to run.
pub struct Plan {
    pub name: Option<String>,
    /// The pipeline's seed.
    pub seed: u64,
    /// The run fails (exit 1) if any file was quarantined.
    pub fail_on_quarantine: bool,
    pub channel_capacity: usize,
    pub threads: Option<usize>,
    pub base_dir: PathBuf,
    pub nodes: Vec<PlanNode>,
}

/// How to run a plan.
#[derive(Clone, Default)]
pub struct RunOptions {
    pub metrics: Metrics,
    pub cancel: Cancel,
    /// Worker threads; default: the plan's `threads`, else the number of cores.
    pub threads: Option<usize>,
}

/// What a completed run reports.
#[derive(Debug)]
pub struct RunReport {
    pub wall: Duration,
    pub threads: usize,
}

/// Metric name of the max number of frames buffered on the edge `from -> to`.
pub fn edge_in_flight_metric(from: &str, to: &str) -> String {
    format!("edge.{from}->{to}.max_in_flight")
}

struct EdgeTx {
    tx: mpsc::Sender<FrameResult>,
    capacity: usize,
    in_flight: Counter,
}

impl Plan {
    /// Run the graph to completion, to the first fatal error, or to cancellation.
    pub async fn run(&self, opts: RunOptions) -> Result<RunReport> {
        let start = Instant::now();
        let threads = opts.threads.or(self.threads).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let pool = Arc::new(
            WorkerPool::new(threads)
                .map_err(|e| SermoError::Internal(format!("cannot start worker threads: {e}")))?,
        );
        let cancel = opts.cancel.clone();
        let first_error: Arc<Mutex<Option<SermoError>>> = Arc::new(Mutex::new(None));

        // Wire the edges: one bounded channel per (producer, consumer input).
        let cap = self.channel_capacity.max(1);
        let mut senders: Vec<Vec<EdgeTx>> = self.nodes.iter().map(|_| Vec::new()).collect();
        let mut receivers: Vec<Vec<BatchStream>> = self.nodes.iter().map(|_| Vec::new()).collect();
        for (to, node) in self.nodes.iter().enumerate() {
            for &from in &node.inputs {
                let (tx, rx) = mpsc::channel::<FrameResult>(cap);
                let in_flight = opts
                    .metrics
                    .counter(&edge_in_flight_metric(&self.nodes[from].id, &node.id));
                senders[from].push(EdgeTx {
                    tx,
                    capacity: cap,
                    in_flight,
                });
                let stream = futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                });
                receivers[to].push(BatchStream::new(self.nodes[from].schema.clone(), stream));
            }
        }

        let ctx_for = |node: &PlanNode| TaskContext {
            node_id: Arc::from(node.id.as_str()),
            pool: pool.clone(),
            metrics: opts.metrics.clone(),
            cancel: cancel.clone(),
            base_dir: self.base_dir.clone(),
        };

        // Build every operator before starting any task, so a build error runs nothing.
        let cfg_ctx = ConfigContext {
            seed: self.seed,
            base_dir: &self.base_dir,
        };
        let mut built = Vec::new();
        for node in &self.nodes {
            built.push(node.config.build(&cfg_ctx)?);
        }

        let mut handles = Vec::new();
        for (((node, op), inputs), outs) in self.nodes.iter().zip(built).zip(receivers).zip(senders)
        {
            let ctx = ctx_for(node);
            let id = node.id.clone();
            let errors = first_error.clone();
            let cancel = cancel.clone();
            let out = op.execute(inputs, ctx);
            handles.push(tokio::spawn(drive(id, out, outs, errors, cancel)));
        }

        let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
        let mut all = futures::future::join_all(handles);
        let cancelled = tokio::select! {
            _ = &mut all => false,
            _ = cancel.cancelled() => true,
        };
        if cancelled {
            for a in &aborts {
                a.abort();
            }
            // Wait until every task has been dropped (temporary files removed).
            let _ = all.await;
        }
        drop(pool);

        let err = match first_error.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(e) = err {
            return Err(e);
        }
        if cancelled {
            return Err(SermoError::Cancelled);
        }
        Ok(RunReport {
            wall: start.elapsed(),
            threads,
        })
    }
}

/// Drive one node's output stream, fanning every frame out to its consumers.
async fn drive(
    id: String,
    mut out: BatchStream,
    mut consumers: Vec<EdgeTx>,
    errors: Arc<Mutex<Option<SermoError>>>,
    cancel: Cancel,
) {
    while let Some(item) = out.next().await {
        let frame = match item {
            Ok(frame) => frame,
            Err(e) => {
                // Keep the first error (the root cause); tell consumers upstream failed.
                if let Ok(mut slot) = errors.lock() {
                    let replace = match &*slot {
                        None => true,
                        Some(SermoError::Upstream(_)) => !matches!(e, SermoError::Upstream(_)),
                        Some(_) => false,
                    };
                    if replace {
                        *slot = Some(e);
                    }
                }
                for c in &consumers {
                    let _ = c.tx.send(Err(SermoError::Upstream(id.clone()))).await;
                }
                cancel.cancel();
                return;
            }
        };
        let mut closed = Vec::new();
        let n = consumers.len();
        for (i, c) in consumers.iter().enumerate() {
            match c.tx.reserve().await {
                Ok(permit) => {
                    permit.send(Ok(frame.clone()));
                    c.in_flight.set_max((c.capacity - c.tx.capacity()) as u64);
                }
                Err(_) => closed.push(i),
            }
        }
        for i in closed.into_iter().rev() {
            consumers.remove(i);
        }
        if n > 0 && consumers.is_empty() {
            // Every consumer went away: stop producing.
            return;
        }
    }
}

/// Poll interval used by progress reporters.
pub const PROGRESS_TICK: Duration = Duration::from_millis(200);

impl TaskContext {
    /// Record a per-file failure: counts it under `quarantine.<reason>` and returns the
    /// frame to send downstream.
    pub fn quarantine(
        &self,
        path: &str,
        clip_id: &str,
        reason: &str,
        message: impl Into<String>,
    ) -> Frame {
        self.metrics.counter(&format!("quarantine.{reason}")).add(1);
        Frame::Quarantine(Quarantined {
            path: path.to_string(),
            clip_id: clip_id.to_string(),
            stage: self.node_id.to_string(),
            reason: reason.to_string(),
            message: message.into(),
        })
    }
}
