//! The one small trait family every component implements (after Vector's
//! `TransformConfig`): a serde config struct that can check itself, tell its output
//! schema from its input schemas before anything runs, and build a runtime
//! [`Operator`] that turns input streams into an output stream.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use serde::de::DeserializeOwned;

use super::TaskContext;
use super::stream::BatchStream;
use crate::error::Result;

/// Where a component may appear in a pipeline file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `[sources.ID]`: produces rows from the outside world; has no input.
    Source,
    /// `[stages.ID]`: transforms its inputs.
    Stage,
    /// `[sinks.ID]`: consumes its inputs; produces nothing.
    Sink,
}

impl Role {
    /// The top-level table of a pipeline file that holds this role.
    pub fn table(self) -> &'static str {
        match self {
            Role::Source => "sources",
            Role::Stage => "stages",
            Role::Sink => "sinks",
        }
    }
    /// Singular name used in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Stage => "stage",
            Role::Sink => "sink",
        }
    }
}

/// One problem with a component's values, found before running.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The key at fault (`rate`, `paths`), if one.
    pub key: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        Problem {
            key: Some(key.to_string()),
            message: message.into(),
            hint: None,
        }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// What the config knows at check/plan time.
pub struct ConfigContext<'a> {
    /// Folder of the pipeline file: relative paths resolve from here.
    pub base_dir: &'a Path,
    /// The pipeline's `seed` (random draws derive from it).
    pub seed: u64,
}

impl ConfigContext<'_> {
    /// Resolve a path written in the pipeline file.
    pub fn resolve(&self, p: &str) -> PathBuf {
        resolve_path(self.base_dir, p)
    }
}

/// Resolve `p` against `base` unless it is absolute.
pub fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// An input of a component as seen while planning.
pub struct PlanInput<'a> {
    /// The id of the producing source or stage.
    pub id: &'a str,
    /// Its `kind`.
    pub kind: &'a str,
    pub schema: SchemaRef,
}

/// A component's configuration: the part of the pipeline file under its table,
/// minus `kind`, `input` and `inputs`.
pub trait OperatorConfig: Debug + Send + Sync {
    /// Problems with the values (`rate = 0`, empty `paths`). All are reported at once.
    fn check(&self, _ctx: &ConfigContext) -> Vec<Problem> {
        Vec::new()
    }

    /// The output schema given the input schemas, or why these inputs are not
    /// acceptable. Sources get no inputs; sinks return an empty schema.
    fn plan(&self, inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String>;

    /// [`OperatorConfig::plan`] for components that must look at the outside world
    /// (a source reading a table's schema); the default ignores `ctx`.
    fn plan_in(
        &self,
        inputs: &[PlanInput],
        _ctx: &ConfigContext,
    ) -> std::result::Result<SchemaRef, String> {
        self.plan(inputs)
    }

    /// The path this component writes to, if it writes (two sinks may not share one).
    fn output_path(&self, _ctx: &ConfigContext) -> Option<PathBuf> {
        None
    }

    /// Build the runtime operator. Does no work: work starts when its stream is polled.
    fn build(&self, ctx: &ConfigContext) -> Result<Box<dyn Operator>>;

    /// Whether this component splits its own work under `--shard I/N` (default:
    /// no, the sources split the units). Such a component needs every row: when a
    /// pipeline has one, its sources read everything and only it sees the shard
    /// (the `train` sink runs its share of the CV folds). What a job is, is the
    /// component's business; the engine only routes the shard.
    fn shards_itself(&self) -> bool {
        false
    }
}

/// A registrable component: its config plus the `kind` name and role.
pub trait Component: OperatorConfig + DeserializeOwned + schemars::JsonSchema + 'static {
    const KIND: &'static str;
    const ROLE: Role;
    /// One line for `--help` and error hints.
    const SUMMARY: &'static str;
}

/// A runtime operator: consumes its input streams and returns its output stream.
pub trait Operator: Send {
    /// Called once for every operator before any is prepared: a sink takes
    /// exclusive hold of its output (one writer per table) and refuses to run
    /// when another run holds it, so a refused run has touched nothing.
    fn claim(&mut self, _ctx: &TaskContext) -> Result<()> {
        Ok(())
    }

    /// Called once before any task starts: a sink inspects what it already holds
    /// (and may refuse to run); the answer tells the sources what they may skip.
    fn prepare(&mut self, _ctx: &TaskContext) -> Result<super::Resume> {
        Ok(super::Resume::NeedsAll)
    }

    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream;
}
