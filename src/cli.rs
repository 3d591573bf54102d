//! The `sermo` command line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::PipelineFile;
use crate::engine::{Cancel, Metrics, Plan, Role, RunOptions};
use crate::error::{SermoError, count};
use crate::registry::Registry;

/// Exit code when the pipeline file is invalid.
pub const EXIT_INVALID: u8 = 2;
/// Exit code after SIGINT/SIGTERM.
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser, Debug)]
#[command(
    name = "sermo",
    version,
    about = "Streaming data pipelines for speech emotion recognition",
    after_help = "Examples:\n  \
        sermo run pipelines/quickstart.toml\n  \
        sermo run pipelines/quickstart.toml --set sinks.table.path=/tmp/out --set stages.audio.channels=first\n  \
        sermo validate pipelines/quickstart.toml\n  \
        sermo graph pipelines/quickstart.toml > graph.mmd\n  \
        sermo kinds\n  \
        sermo run pipelines/quickstart.toml --shard 3/8 && sermo commit out/table --shards 8"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate, then run a pipeline file (several: one after the other, each
    /// validated when its turn comes, stopping at the first failure).
    Run {
        /// The pipeline file(s) (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override any key, e.g. --set stages.audio.channels=first (value parsed as TOML).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// No progress and no summary.
        #[arg(long, short)]
        quiet: bool,
        /// Worker threads for CPU-heavy work (default: the number of cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Process one shard of the clips: `I/N`, or `N` with I taken from
        /// SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX. Sinks write into `PATH/shard=I/`;
        /// a train sink with `cv` trains folds k with k mod N = I on every row instead.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Resume into output written with other settings (normally refused).
        #[arg(long)]
        force: bool,
    },
    /// Join the shards of a sharded run: check every shard's marker, schema and
    /// config hash, then write `_manifest.json` and `_SUCCESS` (fails listing the
    /// missing shards). On a train sink's CV folder (`cv.json`): check every fold
    /// and write the joined `metrics.json` and `confusion.png`.
    Commit {
        /// The sink directory (holding `shard=0/` ..., or a train sink's `fold-K/`).
        out: PathBuf,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=crate::limits::MAX_SHARDS as i64))]
        shards: u32,
    },
    /// Show which shards of a sharded run (or folds of a sharded CV training) are
    /// complete, and the `--array=` list of the shards to resubmit.
    Status {
        out: PathBuf,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=crate::limits::MAX_SHARDS as i64))]
        shards: u32,
    },
    /// Report every problem of a pipeline file (exit 2 if any) without running it.
    Validate {
        file: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Print the pipeline graph as Mermaid (`graph LR`).
    Graph {
        file: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// List the component kinds.
    Kinds,
    /// The keys of a component kind (type, default, meaning), generated from
    /// the code; without KIND, every kind (what docs/keys.md holds).
    Keys {
        kind: Option<String>,
        /// The kind's JSON Schema instead (for editors and validators).
        #[arg(long, requires = "kind")]
        json: bool,
    },
    /// Print the columns of a table kind (`--json`: the Arrow schema as in
    /// schemas/); without NAME, list the kinds.
    Schema {
        name: Option<String>,
        /// The Arrow schema as JSON (what schemas/*.json hold).
        #[arg(long)]
        json: bool,
    },
    /// Run a polars SQL query over sermo tables (--table NAME=PATH); print or --out the result.
    Query(crate::analysis::QueryArgs),
    /// Rows, class balance, durations, feature mean/std and quarantine counts of a table.
    Stats(crate::analysis::StatsArgs),
    /// An emotion per segment of long recordings: decode → resample to the model's
    /// rate → segments → the model's features → model; prints a timeline and a
    /// summary of runs per file.
    Infer(crate::infer_cli::InferArgs),
    /// A live emotion page (browser microphone over a WebSocket) and
    /// `POST /v1/predict` for uploaded files.
    Serve(crate::serve::ServeArgs),
    /// Evaluate a trained model on a feature table (e.g. cross-corpus): accuracy,
    /// UAR, macro F1, per-class metrics and the confusion matrix.
    Eval {
        /// The model directory (`config.json` + `model.mpk`; one fold of a CV run).
        #[arg(long)]
        model: PathBuf,
        /// The feature table (a sermo table directory or Parquet file/dataset).
        #[arg(long)]
        table: PathBuf,
        /// `model`: score every row whose label the model knows; `common`: only the
        /// labels the model and the table share, predictions restricted to them.
        #[arg(long, value_enum, default_value = "model")]
        labels: crate::train::inference::EvalLabels,
        /// Also write the metrics as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where the model runs: `cpu`, `cuda` or `auto`.
        #[arg(long, value_enum, default_value = "cpu")]
        device: crate::train::device::DeviceChoice,
        /// Leave out the rows of clips the model saw in training or validation
        /// (listed in its `train_clips.txt`).
        #[arg(long)]
        exclude_trained: bool,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            files,
            set,
            quiet,
            threads,
            shard,
            force,
        } => {
            let shard = match shard
                .as_deref()
                .map(crate::shards::parse_shard_arg)
                .transpose()
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sermo: --shard: {e}");
                    return ExitCode::from(EXIT_INVALID);
                }
            };
            for file in &files {
                let code = run(file, &set, quiet, threads, shard, force);
                if code != ExitCode::SUCCESS {
                    return code;
                }
            }
            ExitCode::SUCCESS
        }
        Command::Commit { out, shards } if crate::train::cv_shards::is_cv_run(&out) => {
            match crate::train::cv_shards::commit(&out, shards) {
                Ok(cvr) => {
                    println!("{}", cvr.render());
                    println!(
                        "{}: committed {} CV folds (metrics.json, confusion.png)",
                        out.display(),
                        cvr.folds.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sermo: commit {}: {e}", out.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Commit { out, shards } => match crate::shards::commit(&out, shards) {
            Ok(m) => {
                println!(
                    "{}: committed {}, {} in {} ({} quarantined)",
                    out.display(),
                    count(m.shards, "shard"),
                    count(m.rows, "row"),
                    count(m.files, "file"),
                    m.quarantined
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sermo: commit {}: {e}", out.display());
                ExitCode::FAILURE
            }
        },
        Command::Status { out, shards } if crate::train::cv_shards::is_cv_run(&out) => {
            match crate::train::cv_shards::status(&out, shards) {
                Ok(st) => {
                    print!("{}", st.render());
                    if st.missing.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(3)
                    }
                }
                Err(e) => {
                    eprintln!("sermo: status {}: {e}", out.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status { out, shards } => {
            let st = crate::shards::status(&out, shards);
            print!("{}", st.render());
            if st.missing.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Command::Validate { file, set } => match load(&file, &set) {
            Ok(plan) => {
                println!(
                    "{}: valid ({} sources, {} stages, {} sinks)",
                    file.display(),
                    nodes_of(&plan, Role::Source),
                    nodes_of(&plan, Role::Stage),
                    nodes_of(&plan, Role::Sink)
                );
                ExitCode::SUCCESS
            }
            Err(e) => report(&e),
        },
        Command::Graph { file, set } => match load(&file, &set) {
            Ok(plan) => {
                print!("{}", mermaid(&plan));
                ExitCode::SUCCESS
            }
            Err(e) => report(&e),
        },
        Command::Kinds => {
            let reg = Registry::builtin();
            for role in [Role::Source, Role::Stage, Role::Sink] {
                println!("{}:", role.table());
                for e in reg.entries().filter(|e| e.role == role) {
                    println!("  {:<12} {}", e.kind, e.summary);
                }
            }
            ExitCode::SUCCESS
        }
        Command::Keys { kind, json } => {
            let reg = Registry::builtin();
            match kind {
                None => {
                    print!("{}", crate::config::keys::reference(&reg));
                    ExitCode::SUCCESS
                }
                Some(k) => {
                    let found: Vec<_> = reg.entries().filter(|e| e.kind == k).collect();
                    if found.is_empty() {
                        eprintln!("sermo: no component kind `{k}` (see `sermo kinds`)");
                        return ExitCode::from(EXIT_INVALID);
                    }
                    for e in found {
                        if json {
                            println!(
                                "{}",
                                serde_json::to_string_pretty(e.schema().as_value())
                                    .unwrap_or_default()
                            );
                        } else {
                            print!("{}", crate::config::keys::kind_reference(e));
                        }
                    }
                    ExitCode::SUCCESS
                }
            }
        }
        Command::Schema { name, json } => {
            let all = crate::schema::documented();
            match name {
                None => {
                    for (n, _) in all {
                        println!("{n}");
                    }
                    ExitCode::SUCCESS
                }
                Some(n) => match all.into_iter().find(|(k, _)| *k == n) {
                    Some((_, s)) => {
                        if json {
                            print!("{}", crate::schema::to_json(&s));
                        } else {
                            print!("{}", crate::schema::to_text(n.as_str(), &s));
                        }
                        ExitCode::SUCCESS
                    }
                    None => {
                        eprintln!("sermo: no schema named `{n}` (see `sermo schema`)");
                        ExitCode::from(EXIT_INVALID)
                    }
                },
            }
        }
        Command::Query(args) => crate::analysis::run_query(&args),
        Command::Stats(args) => crate::analysis::run_stats(&args),
        Command::Serve(args) => match crate::serve::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sermo: serve: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Infer(args) => match crate::infer_cli::pipeline(&args) {
            Ok(text) => {
                let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                let plan = match crate::config::PipelineFile::parse(&text, &base, &[])
                    .and_then(|f| f.compile(&Registry::builtin()))
                {
                    Ok(p) => p,
                    Err(e) => return report(&e),
                };
                run_plan(plan, !args.verbose, args.threads, None, false)
            }
            Err(e) => {
                eprintln!("sermo: infer: {e}");
                ExitCode::from(EXIT_INVALID)
            }
        },
        Command::Eval {
            model,
            table,
            labels,
            out,
            device,
            exclude_trained,
        } => eval(
            &model,
            &table,
            labels,
            out.as_deref(),
            device,
            exclude_trained,
        ),
    }
}

fn eval(
    model: &Path,
    table: &Path,
    labels: crate::train::inference::EvalLabels,
    out: Option<&Path>,
    device: crate::train::device::DeviceChoice,
    exclude_trained: bool,
) -> ExitCode {
    let r = match crate::train::inference::evaluate(model, table, labels, device, exclude_trained) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sermo: eval: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "model {} on {}: {} of {} scored (labels: {})",
        r.model,
        r.table,
        r.scored,
        count(r.rows, "row"),
        r.labels_mode
    );
    for (l, n) in &r.left_out {
        println!("  left out: {} labelled {l}", count(*n, "row"));
    }
    if let Some(n) = r.trained_rows.filter(|&n| n > 0 && !r.excluded_trained) {
        eprintln!(
            "sermo: eval: warning: {n} of {} {} this model was trained (or validated) on, so its scores on them are optimistic; --exclude-trained leaves them out",
            count(r.rows, "row"),
            if n == 1 { "is a clip" } else { "are clips" }
        );
    }
    if r.feature_settings_match == Some(false) {
        eprintln!(
            "sermo: eval: warning: the table's feature settings differ from the model's (config.json `feature_settings`)"
        );
    }
    println!("{}", r.report.render());
    if let Some(p) = out {
        let text = match serde_json::to_string_pretty(&r) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("sermo: eval: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = std::fs::write(p, text + "\n") {
            eprintln!("sermo: eval: cannot write {}: {e}", p.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn nodes_of(plan: &Plan, role: Role) -> usize {
    plan.nodes.iter().filter(|n| n.role == role).count()
}

fn load(file: &Path, set: &[String]) -> Result<Plan, SermoError> {
    PipelineFile::load(file, set)?.compile(&Registry::builtin())
}

fn report(e: &SermoError) -> ExitCode {
    eprintln!("sermo: {e}");
    match e {
        SermoError::Config(_) => ExitCode::from(EXIT_INVALID),
        SermoError::Cancelled => ExitCode::from(EXIT_INTERRUPTED),
        _ => ExitCode::FAILURE,
    }
}

/// Mermaid flowchart of the plan: every id and kind.
pub fn mermaid(plan: &Plan) -> String {
    let node = |i: usize| {
        format!(
            "{}_{}",
            plan.nodes[i].role.noun(),
            plan.nodes[i].id.replace('-', "_")
        )
    };
    let mut s = String::from("graph LR\n");
    for (i, n) in plan.nodes.iter().enumerate() {
        let label = format!("{} ({})", n.id, n.kind);
        let shape = match n.role {
            Role::Source => format!("([\"{label}\"])"),
            Role::Stage => format!("[\"{label}\"]"),
            Role::Sink => format!("[(\"{label}\")]"),
        };
        s.push_str(&format!("    {}{shape}\n", node(i)));
    }
    for (i, n) in plan.nodes.iter().enumerate() {
        for &j in &n.inputs {
            s.push_str(&format!("    {} --> {}\n", node(j), node(i)));
        }
    }
    s
}

fn human_duration(secs: f64) -> String {
    if secs >= 3600.0 {
        format!("{:.2} h", secs / 3600.0)
    } else if secs >= 60.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{secs:.1} s")
    }
}

/// The end-of-run summary line, from the run's metrics.
pub fn summary(metrics: &Metrics, wall: Duration) -> String {
    let snap = metrics.snapshot();
    let total = metrics.get("files.total");
    let audio = metrics.get("audio.micros") as f64 / 1e6;
    let wall_s = wall.as_secs_f64().max(1e-9);
    let mut quarantined = 0;
    let mut reasons = Vec::new();
    for (k, v) in &snap {
        if let Some(r) = k.strip_prefix("quarantine.") {
            quarantined += v;
            reasons.push(format!("{v} {r}"));
        }
    }
    let sinks: Vec<String> = snap
        .iter()
        .filter_map(|(k, v)| {
            let id = k.strip_prefix("sink.")?.strip_suffix(".rows")?;
            Some(format!("{v} to {id}"))
        })
        .collect();
    let mut q = if reasons.is_empty() {
        "0 quarantined".to_string()
    } else {
        format!("{quarantined} quarantined ({})", reasons.join(", "))
    };
    let refused: Vec<String> = snap
        .iter()
        .filter_map(|(k, v)| Some(format!("{v} {}", k.strip_prefix("refused_rows.")?)))
        .collect();
    if !refused.is_empty() {
        let n = metrics.sum_matching("refused_rows.", "");
        q.push_str(&format!(
            ", {} refused ({})",
            count(n, "segment"),
            refused.join(", ")
        ));
    }
    let dropped = metrics.get("labels.dropped");
    if dropped > 0 {
        q.push_str(&format!(", {dropped} dropped by `keep`"));
    }
    let resumed = metrics.get("files.resumed");
    if resumed > 0 {
        q.push_str(&format!(", {resumed} already committed (resume)"));
    }
    let other = metrics.get("files.other_shards");
    if other > 0 {
        q.push_str(&format!(", {other} in other shards"));
    }
    let rows = if sinks.is_empty() {
        "0".to_string()
    } else {
        sinks.join(", ")
    };
    if total > 0 && resumed >= total && quarantined == 0 {
        return format!(
            "sermo: {}, {} already in the output (an earlier run committed them): the tables were already complete; done in {}",
            count(total, "file"),
            if total == 1 { "it was" } else { "every one" },
            human_duration(wall_s)
        );
    }
    if total == 0 && quarantined == 0 && audio == 0.0 {
        // A pipeline over tables (features → train, parquet → parquet): no audio.
        return format!("sermo: rows: {rows}; done in {}", human_duration(wall_s));
    }
    format!(
        "sermo: {}, {q}; rows: {rows}; {} of audio in {} ({:.0}x real time)",
        count(total, "file"),
        human_duration(audio),
        human_duration(wall_s),
        audio / wall_s
    )
}

fn run(
    file: &Path,
    set: &[String],
    quiet: bool,
    threads: Option<usize>,
    shard: Option<crate::engine::Shard>,
    force: bool,
) -> ExitCode {
    let plan = match load(file, set) {
        Ok(p) => p,
        Err(e) => return report(&e),
    };
    run_plan(plan, quiet, threads, shard, force)
}

fn run_plan(
    plan: Plan,
    quiet: bool,
    threads: Option<usize>,
    shard: Option<crate::engine::Shard>,
    force: bool,
) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("sermo-async")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sermo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = Metrics::default();
    let cancel = Cancel::new();
    let opts = RunOptions {
        metrics: metrics.clone(),
        cancel: cancel.clone(),
        threads,
        shard,
        force,
    };
    let start = Instant::now();
    let result = rt.block_on(async {
        spawn_signal_handler(cancel.clone());
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| progress_bar(&plan));
        let ticker = bar.clone().map(|bar| {
            let m = metrics.clone();
            tokio::spawn(async move {
                loop {
                    update_bar(&bar, &m, start.elapsed());
                    tokio::time::sleep(crate::engine::PROGRESS_TICK).await;
                }
            })
        });
        let r = plan.run(opts).await;
        if let Some(t) = ticker {
            t.abort();
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        r
    });
    let wall = start.elapsed();
    match result {
        Ok(_) => {
            if !quiet {
                eprintln!("{}", summary(&metrics, wall));
            }
            let total = metrics.get("files.total");
            let quarantined = metrics.sum_matching("quarantine.", "");
            // A table sink writes the quarantine table; without one (`sermo
            // infer`, a timeline) stderr is the only place a failure is told.
            let table = metrics
                .snapshot()
                .keys()
                .any(|k| k.starts_with("sink.") && k.ends_with(".quarantined"));
            if quarantined > 0 && (!quiet || !table) {
                print_failures(&metrics, quarantined, table);
            }
            // Files whose every row a later stage refused count as failed too.
            let refused = metrics.sum_matching("refused_rows.", "");
            let rows_out = metrics.sum_matching("sink.", ".rows");
            if total > 0
                && (quarantined >= total || (rows_out == 0 && quarantined + refused >= total))
            {
                eprintln!(
                    "sermo: every file failed{}",
                    if table {
                        " (each one is in _quarantine.parquet beside the output table)"
                    } else {
                        ""
                    }
                );
                return ExitCode::FAILURE;
            }
            // Quarantine rows in the outputs, committed by this run or an earlier one
            // it resumed.
            let in_tables = metrics
                .snapshot()
                .into_iter()
                .filter(|(k, _)| k.starts_with("sink.") && k.ends_with(".quarantined"))
                .map(|(_, v)| v)
                .max()
                .unwrap_or(0);
            let quarantined = quarantined.max(in_tables);
            if plan.fail_on_quarantine && quarantined > 0 {
                eprintln!(
                    "sermo: {} quarantined and [pipeline] fail_on_quarantine = true",
                    count(quarantined, "file")
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if !quiet && matches!(e, SermoError::Cancelled) {
                eprintln!("{}", summary(&metrics, wall));
            }
            report(&e)
        }
    }
}

/// The failed files by name (the first few in path order), then how many more
/// and where they all are.
fn print_failures(metrics: &Metrics, quarantined: u64, table: bool) {
    let named = metrics.failures();
    for (path, stage, reason, message) in &named {
        eprintln!("sermo: {path}: {reason} (stage `{stage}`): {message}");
    }
    let more = quarantined.saturating_sub(named.len() as u64);
    if more > 0 {
        eprintln!(
            "sermo: ... and {more} more{}",
            if table {
                " (every one is in _quarantine.parquet beside the output table)"
            } else {
                ""
            }
        );
    }
}

fn progress_bar(plan: &Plan) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    // Until the sources have listed their files there is no total to show.
    let listing = ProgressStyle::with_template("{prefix} {spinner} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(listing);
    bar.set_message("listing files…");
    bar.set_prefix(plan.name.clone().unwrap_or_else(|| "sermo".into()));
    bar
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} files  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn update_bar(bar: &ProgressBar, m: &Metrics, elapsed: Duration) {
    let total = m.get("files.total");
    if total == 0 {
        bar.tick();
        return;
    }
    if bar.length().is_none() {
        bar.set_style(bar_style());
    }
    let done = m.get("files.done") + m.sum_matching("quarantine.", "");
    let audio = m.get("audio.micros") as f64 / 1e6;
    bar.set_length(total);
    bar.set_position(done.min(total));
    bar.set_message(format!(
        "{:.2} h audio, {:.0}x real time",
        audio / 3600.0,
        audio / elapsed.as_secs_f64().max(1e-9)
    ));
}

/// SIGINT/SIGTERM cancel the run (exit 130); a second signal exits at once.
fn spawn_signal_handler(cancel: Cancel) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let mut seen = 0;
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            seen += 1;
            if seen > 1 {
                std::process::exit(EXIT_INTERRUPTED as i32);
            }
            cancel.cancel();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_one_file_as_a_file() {
        let m = Metrics::default();
        m.counter("files.total").add(1);
        m.counter("audio.micros").add(2_000_000);
        m.counter("sink.table.rows").add(1);
        let s = summary(&m, Duration::from_secs(1));
        assert!(
            s.starts_with("sermo: 1 file, 0 quarantined; rows: 1 to table;"),
            "{s}"
        );
        m.counter("files.total").add(2);
        m.counter("files.resumed").add(3);
        let s = summary(&m, Duration::from_secs(1));
        assert!(
            s.starts_with("sermo: 3 files, every one already in the output"),
            "{s}"
        );
        let one = Metrics::default();
        one.counter("files.total").add(1);
        one.counter("files.resumed").add(1);
        let s = summary(&one, Duration::from_secs(1));
        assert!(
            s.starts_with("sermo: 1 file, it was already in the output"),
            "{s}"
        );
    }
}
