//! `sermo serve [--model DIR] [--port 8080] [--bind 127.0.0.1]`: a live emotion page
//! and an upload API (axum on hyper).
//!
//! - `GET /` — one page: it captures the browser microphone (getUserMedia), sends
//!   mono f32 PCM over a WebSocket and draws the live timeline with confidences.
//! - `GET /ws?rate=R` — the WebSocket: binary messages of f32le mono PCM at R Hz
//!   in; one JSON text message per 3-s segment out (`segment`, `start_s`, `end_s`,
//!   `label`, `confidence`, `probs`), after a first `{"classes": [...]}`. Text
//!   messages in: `{"ack": k, ...}` (the page drew segment k; logged) and
//!   `{"end": true}` (no more audio: the server sends the remaining segments, then
//!   closes). A client's Close frame ends the stream the same way: the server holds
//!   its reply back until the segments of the audio already sent are delivered.
//!   Anything else gets `{"error": ...}` and the session goes on.
//! - `POST /v1/predict` — an audio file (any format `decode` reads) in the body;
//!   the predictions as a JSON array: `sermo infer`'s fields plus `by_class`,
//!   the class names with their probabilities. The page's upload (a file picker
//!   and a drop zone) uses it. Errors are JSON `{"error": ...}` (with the
//!   decoder's quarantine `reason` when the file is not usable audio): 400 empty
//!   body, 413 over `--max-upload-mb`, 422 not usable audio, 503 busy.
//! - `GET /v1/model` — the model (name, architecture, features, sample rate), its
//!   classes, the segment length and the limits below, as JSON; the page shows
//!   it in its header.
//!
//! Limits (a hostile client costs bounded memory and never stops the others):
//! [`MAX_MESSAGE_BYTES`] per WebSocket message or frame (larger: an error, the
//! segments so far, Close 1009); [`PCM_QUEUE`] messages queued per session
//! between the socket and its pipeline (then the session stops reading the socket:
//! TCP backpressure); `--max-sessions` live sessions (more: 503); `--idle-timeout-s`
//! for a session without a message, a connection without a request, an upload
//! without data, and a client that does not read what it is sent; `--max-jobs`
//! uploads decoded at once (more wait up to [`JOB_WAIT`], then 503; their bodies
//! are not read while they wait); `--max-upload-mb` per upload; uploads declaring
//! more than [`MAX_UPLOAD_RATE`] Hz or [`MAX_UPLOAD_CHANNELS`] channels are
//! refused (422 `invalid_format`) before anything is sized by them.
//!
//! Each WebSocket session and each upload runs the same pipeline as `sermo infer`
//! (`infer_cli::pipeline`): a session feeds its PCM to a `stdin` source through a
//! pipe and reads the `timeline` sink's JSON lines back through another, so the
//! page gets exactly what `sermo infer` prints for the same audio. The async side
//! never blocks: PCM goes to the pipeline's writer thread through a bounded tokio
//! channel, and the session forwards result lines while it waits for room there.
//! An upload is written to a fresh folder under the system temp dir, removed when
//! the request ends (also on error); nothing else is written but `--record`.
//!
//! Layout: this file holds the arguments, the shared state, the accept loop,
//! `GET /v1/model` and the helpers both endpoints use (the pipeline text, its
//! runner, JSON error responses); `ws.rs` holds the WebSocket session, `upload.rs`
//! the uploads.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Semaphore;

use crate::audio::pcm::PcmFormat;
use crate::config::PipelineFile;
use crate::engine::{Cancel, Metrics, RunOptions};
use crate::infer_cli::{InferArgs, pipeline};
use crate::registry::Registry;

mod upload;
mod ws;

use upload::predict;
use ws::ws_handler;

/// Largest WebSocket message (and frame) a session accepts: 1 MiB, 262144 samples
/// (the page sends 16 KiB messages).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// PCM messages queued per session between the socket and its pipeline.
pub const PCM_QUEUE: usize = 8;
/// How long an upload waits for a free job before it gets 503.
pub const JOB_WAIT: Duration = Duration::from_secs(30);
/// Highest sample rate an upload may declare (the decoder's own bound).
pub const MAX_UPLOAD_RATE: u32 = crate::limits::MAX_SAMPLE_RATE;
/// Most channels an upload may declare (the decoder's own bound).
pub const MAX_UPLOAD_CHANNELS: usize = crate::limits::MAX_CHANNELS;
const MIB: usize = 1024 * 1024;

/// Arguments of `sermo serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// The model folder (`config.json` + `model.mpk`); without it, the default
    /// model built into sermo (models/default: six emotions, EmoDB + RAVDESS).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Largest accepted upload for `POST /v1/predict`, in MiB (larger: 413).
    #[arg(long, default_value_t = 100)]
    pub max_upload_mb: usize,
    /// Uploads decoded at once (0: the number of CPUs); more wait, then get 503.
    #[arg(long, default_value_t = 0)]
    pub max_jobs: usize,
    /// Live WebSocket sessions at once; more get 503.
    #[arg(long, default_value_t = 64)]
    pub max_sessions: usize,
    /// Seconds without a message (session), a request (connection), upload data,
    /// or progress sending to a client that does not read, before it is dropped.
    #[arg(long, default_value_t = 60)]
    pub idle_timeout_s: u64,
    /// Where the model runs: `cpu`, `cuda` or `auto`.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: crate::train::device::DeviceChoice,
    /// Segment length in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub segment: f64,
    /// Fixed segments instead of segments along detected speech (by default
    /// stretches without speech are shown as `silence`, not classified).
    #[arg(long)]
    pub no_vad: bool,
    /// Label a segment `uncertain` when its top class probability is below this
    /// (0–1); the page shows it grey, its probabilities kept.
    #[arg(long, value_name = "P")]
    pub min_confidence: Option<f64>,
    /// Save each live session's audio, as received, to `DIR/session-N.wav`
    /// (float WAV at the page's rate; for checks and debugging).
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
}

impl ServeArgs {
    fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_s.max(1))
    }

    fn upload_limit(&self) -> usize {
        self.max_upload_mb.saturating_mul(MIB)
    }
}

struct AppState {
    args: ServeArgs,
    classes: Vec<String>,
    /// What `GET /v1/model` and the page show about the model.
    model: serde_json::Value,
    jobs: Arc<Semaphore>,
    max_jobs: usize,
    sessions: Arc<Semaphore>,
}

const PAGE: &str = include_str!("page.html");

fn infer_args(args: &ServeArgs, files: Vec<String>, out: Option<String>) -> InferArgs {
    InferArgs {
        model: args.model.clone(),
        files,
        format: PcmFormat::Wav,
        rate: None,
        channels: 1,
        segment: args.segment,
        hop: None,
        vad: !args.no_vad,
        smooth: None,
        out,
        plot: None,
        min_confidence: args.min_confidence,
        batch_size: 64,
        device: args.device,
        threads: Some(1),
        verbose: false,
    }
}

/// Compile and run pipeline text on its own runtime (call from a plain thread).
fn run_text(text: &str) -> Result<Metrics, String> {
    let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let plan = PipelineFile::parse(text, &base, &[])
        .and_then(|f| f.compile(&Registry::builtin()))
        .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let metrics = Metrics::default();
    let opts = RunOptions {
        metrics: metrics.clone(),
        cancel: Cancel::new(),
        threads: Some(1),
        shard: None,
        force: false,
    };
    rt.block_on(plan.run(opts)).map_err(|e| e.to_string())?;
    Ok(metrics)
}

/// Serve until the process is stopped.
pub fn run(args: &ServeArgs) -> Result<(), String> {
    let model_dir = crate::train::default_model::resolve(args.model.as_deref(), "serve")?;
    let args = &ServeArgs {
        model: Some(model_dir.clone()),
        ..args.clone()
    };
    let artifact = crate::train::inference::read_artifact(&model_dir)?;
    // Fail now, not at the first connection, if the pipeline would not compile.
    pipeline(&infer_args(args, vec!["-".into()], None))?;
    let max_jobs = if args.max_jobs == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.max_jobs.min(Semaphore::MAX_PERMITS)
    };
    let state = Arc::new(AppState {
        args: args.clone(),
        classes: artifact.labels.clone(),
        model: describe(&model_dir, &artifact),
        jobs: Arc::new(Semaphore::new(max_jobs)),
        max_jobs,
        sessions: Arc::new(Semaphore::new(
            args.max_sessions.min(Semaphore::MAX_PERMITS),
        )),
    });
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/ws", get(ws_handler))
        .route("/v1/predict", post(predict))
        .route("/v1/model", get(model_info))
        .with_state(state);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let addr = format!("{}:{}", args.bind, args.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        println!(
            "sermo serve: http://{local}/ (model {})",
            model_dir.display()
        );
        let _ = std::io::stdout().flush();
        accept_loop(listener, app, args.idle()).await;
        Ok(())
    })
}

/// Every connection on its own task, HTTP/1.1 with upgrades. A connection that
/// sends no (complete) request head for `idle` is closed, between keep-alive
/// requests too; a failed `accept` (out of descriptors) is retried, never fatal.
async fn accept_loop(listener: tokio::net::TcpListener, app: Router, idle: Duration) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                eprintln!("sermo serve: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(idle);
            let _ = http
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
        });
    }
}

/// The model as the page and `GET /v1/model` name it: its folder's name and
/// path, architecture, ensemble size, the features it reads and the sample
/// rate of the audio they were computed from (uploads at another rate are
/// resampled to it), and the sermo version that trained it.
fn describe(
    dir: &std::path::Path,
    a: &crate::train::inference::ModelArtifact,
) -> serde_json::Value {
    let name = std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    serde_json::json!({
        "name": name,
        "path": dir.display().to_string(),
        "architecture": a.model.kind().name(),
        "ensemble": a.training.ensemble.max(1),
        "features": a.features,
        "sample_rate": a.sample_rate,
        "sermo_version": a.sermo_version,
    })
}

/// `GET /v1/model`: the model (name, architecture, classes, sample rate), the
/// segment length, the abstention threshold (`null`: none) and the server's
/// limits.
async fn model_info(State(state): State<Arc<AppState>>) -> Response {
    let a = &state.args;
    axum::Json(serde_json::json!({
        "model": state.model,
        "classes": state.classes,
        "sample_rate": state.model["sample_rate"],
        "segment_s": a.segment,
        "vad": !a.no_vad,
        "min_confidence": a.min_confidence,
        "limits": {
            "max_upload_bytes": a.upload_limit(),
            "max_jobs": state.max_jobs,
            "max_sessions": a.max_sessions,
            "idle_timeout_s": a.idle().as_secs(),
            "max_message_bytes": MAX_MESSAGE_BYTES,
            "max_upload_rate": MAX_UPLOAD_RATE,
            "max_upload_channels": MAX_UPLOAD_CHANNELS,
        },
    }))
    .into_response()
}
/// A JSON error `{"error": msg}`, with the decoder's quarantine `reason` when
/// there is one.
fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": msg.into() })),
    )
        .into_response()
}

/// 503 with `Retry-After`.
fn busy(msg: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        axum::Json(serde_json::json!({ "error": msg })),
    )
        .into_response()
}
