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
pub mod hash;
pub mod metrics;
pub mod operator;
pub mod pool;
pub mod stream;

use std::collections::{BTreeMap, HashSet};
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
    /// The slice of the units this run processes (`--shard I/N`), if any.
    pub shard: Option<Shard>,
    /// Units already complete in every sink that cares (resume): sources skip them.
    pub skip: Option<Arc<HashSet<String>>>,
    /// `--force`: a sink may resume into output written with other settings.
    pub force: bool,
    /// Hashes identifying the pipeline and this node's settings and inputs.
    pub lineage: Arc<Lineage>,
    /// Schemas of the node's inputs, in order.
    pub input_schemas: Vec<SchemaRef>,
}

/// `--shard I/N`: this run processes the units whose stable hash mod N is I.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Parse `I/N` (0 <= I < N).
    pub fn parse(s: &str) -> std::result::Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not I/N (e.g. 3/16)"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("shard index `{i}` is not a number"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("shard count `{n}` is not a number"))?;
        Shard::new(index, count)
    }

    pub fn new(index: u32, count: u32) -> std::result::Result<Shard, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range for {count} shards (0..{})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// The shard a unit belongs to: stable hash of its key mod N.
    pub fn of(key: &str, count: u32) -> u32 {
        (hash::stable_hash(key.as_bytes()) % count.max(1) as u64) as u32
    }

    /// Whether this shard processes `key`.
    pub fn owns(&self, key: &str) -> bool {
        Shard::of(key, self.count) == self.index
    }

    /// Folder name of the shard's output inside a sink's directory.
    pub fn dir_name(&self) -> String {
        format!("shard={}", self.index)
    }
}

/// Hashes a node can record next to its output, to refuse mixing outputs of
/// different settings.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    /// Hash of the whole pipeline (after `--set`).
    pub pipeline_hash: String,
    /// Hash of this node's settings, the seed and all its upstream nodes.
    pub node_hash: String,
    /// Every upstream node (and this one): id -> hash of its kind and settings.
    pub settings: BTreeMap<String, String>,
    /// Lineage hashes of the node's inputs, in order.
    pub inputs: Vec<String>,
}

/// What a node needs from its sources on this run (resume).
#[derive(Debug, Clone)]
pub enum Resume {
    /// Needs every unit (the default).
    NeedsAll,
    /// Does not care which units arrive (e.g. `discard`).
    Indifferent,
    /// Has these units already; needs the others.
    Has(Arc<HashSet<String>>),
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
    /// Hash of the node's kind and settings.
    pub settings_hash: String,
    /// Hash of its settings, the seed and its inputs' lineage hashes.
    pub lineage_hash: String,
}

/// A validated graph in topological order, ready to run.
pub struct Plan {
    pub name: Option<String>,
    /// Hash of the pipeline (after `--set` overrides).
    pub pipeline_hash: String,
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
    /// Process only one shard of the units (`--shard I/N`).
    pub shard: Option<Shard>,
    /// Let sinks resume into output written with other settings (`--force`).
    pub force: bool,
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

        let whole_rows = self.shard_route(opts.shard)?;
        let ctx_for = |node: &PlanNode, skip: Option<Arc<HashSet<String>>>| TaskContext {
            node_id: Arc::from(node.id.as_str()),
            pool: pool.clone(),
            metrics: opts.metrics.clone(),
            cancel: cancel.clone(),
            base_dir: self.base_dir.clone(),
            shard: if whole_rows && !node.config.shards_itself() {
                None
            } else {
                opts.shard
            },
            skip,
            force: opts.force,
            lineage: Arc::new(self.lineage(node)),
            input_schemas: node
                .inputs
                .iter()
                .map(|&j| self.nodes[j].schema.clone())
                .collect(),
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
        // Every sink claims its output before any is prepared: a run refused by
        // another's lock changes nothing.
        for (node, op) in self.nodes.iter().zip(built.iter_mut()) {
            op.claim(&ctx_for(node, None))?;
        }
        // Prepare every operator (sinks read what they already hold), then work out
        // which units the sources may skip: those every interested node already has.
        let mut needs = Vec::new();
        for (node, op) in self.nodes.iter().zip(built.iter_mut()) {
            let answer = op.prepare(&ctx_for(node, None))?;
            // Only sinks decide what may be skipped.
            if node.role == Role::Sink {
                needs.push(answer);
            }
        }
        let skip = skippable(&needs).map(Arc::new);

        let mut handles = Vec::new();
        for (((node, op), inputs), outs) in self.nodes.iter().zip(built).zip(receivers).zip(senders)
        {
            let ctx = ctx_for(node, skip.clone());
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

impl Plan {
    /// Where `--shard` goes: `false` when the sources split the units (clips) as
    /// usual; `true` when a node splits its own work
    /// ([`OperatorConfig::shards_itself`]): every other node then sees all rows.
    /// A sink that writes units cannot share a sharded run with such a node (it
    /// would get every unit in every shard).
    pub fn shard_route(&self, shard: Option<Shard>) -> Result<bool> {
        let Some(shard) = shard else {
            return Ok(false);
        };
        let own: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| n.config.shards_itself())
            .map(|n| n.id.as_str())
            .collect();
        if own.is_empty() {
            return Ok(false);
        }
        let errors: Vec<crate::error::ConfigError> = self
            .nodes
            .iter()
            .filter(|n| n.role == Role::Sink && !n.config.shards_itself())
            .map(|n| {
                crate::error::ConfigError::new(
                    format!("sinks.{}", n.id),
                    format!(
                        "--shard {}/{}: this sink writes only its shard's units, but sink {} splits its own work and needs every row; one sharded run cannot serve both",
                        shard.index,
                        shard.count,
                        own.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
                    ),
                )
                .hint("run them as two pipelines (the table first, then the training over it)")
            })
            .collect();
        if errors.is_empty() {
            Ok(true)
        } else {
            Err(SermoError::Config(errors))
        }
    }

    /// The lineage of a node: its hashes and those of everything upstream.
    pub fn lineage(&self, node: &PlanNode) -> Lineage {
        let mut settings = BTreeMap::new();
        let mut todo = vec![node];
        while let Some(n) = todo.pop() {
            if settings
                .insert(n.id.clone(), n.settings_hash.clone())
                .is_none()
            {
                todo.extend(n.inputs.iter().map(|&j| &self.nodes[j]));
            }
        }
        Lineage {
            pipeline_hash: self.pipeline_hash.clone(),
            node_hash: node.lineage_hash.clone(),
            settings,
            inputs: node
                .inputs
                .iter()
                .map(|&j| self.nodes[j].lineage_hash.clone())
                .collect(),
        }
    }
}

/// Units that no node needs: in every `Has` set, with at least one `Has` and no
/// `NeedsAll`.
fn skippable(needs: &[Resume]) -> Option<HashSet<String>> {
    let mut sets = Vec::new();
    for n in needs {
        match n {
            Resume::NeedsAll => return None,
            Resume::Indifferent => {}
            Resume::Has(s) => sets.push(s.clone()),
        }
    }
    sets.sort_by_key(|s| s.len());
    let (first, rest) = sets.split_first()?;
    Some(
        first
            .iter()
            .filter(|k| rest.iter().all(|s| s.contains(*k)))
            .cloned()
            .collect(),
    )
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
        let message = message.into();
        self.metrics
            .note_failure(path, &self.node_id, reason, &message);
        Frame::Quarantine(Quarantined {
            path: path.to_string(),
            clip_id: clip_id.to_string(),
            stage: self.node_id.to_string(),
            reason: reason.to_string(),
            message,
            whole_clip: true,
        })
    }

    /// [`TaskContext::quarantine`] of one row a per-row stage refused: the
    /// clip's other rows stand ([`Quarantined::whole_clip`] false).
    pub fn quarantine_row(
        &self,
        path: &str,
        clip_id: &str,
        reason: &str,
        message: impl Into<String>,
    ) -> Frame {
        // Counted apart from files: a refused segment is no failed file.
        self.metrics
            .counter(&format!("refused_rows.{reason}"))
            .add(1);
        Frame::Quarantine(Quarantined {
            path: path.to_string(),
            clip_id: clip_id.to_string(),
            stage: self.node_id.to_string(),
            reason: reason.to_string(),
            message: message.into(),
            whole_clip: false,
        })
    }
}
