//! `sermo serve --model DIR [--port 8080] [--bind 127.0.0.1]`: a live emotion page
//! and an upload API (axum).
//!
//! - `GET /` — one page: it captures the browser microphone (getUserMedia), sends
//!   mono f32 PCM over a WebSocket and draws the live timeline with confidences.
//! - `GET /ws?rate=R` — the WebSocket: binary messages of f32le mono PCM at R Hz
//!   in; one JSON text message per 3-s segment out (`segment`, `start_s`, `end_s`,
//!   `label`, `confidence`, `probs`), after a first `{"classes": [...]}`.
//! - `POST /v1/predict` — an audio file (any format `decode` reads) in the body;
//!   the predictions as a JSON array. A file that does not decode gets 422 with
//!   the reason; a body over `--max-upload-mb` gets 413.
//!
//! Each WebSocket session and each upload runs the same pipeline as `sermo infer`
//! (`infer_cli::pipeline`): a session feeds its PCM to a `stdin` source through a
//! pipe and reads the `timeline` sink's JSON lines back through another, so the
//! page gets exactly what `sermo infer` prints for the same audio.

use std::io::{BufRead, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::audio::pcm::PcmFormat;
use crate::config::PipelineFile;
use crate::engine::{Cancel, Metrics, RunOptions};
use crate::infer_cli::{InferArgs, pipeline};
use crate::registry::Registry;

/// Arguments of `sermo serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// The model folder (`config.json` + `model.mpk`).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Largest accepted upload for `POST /v1/predict`, in MB.
    #[arg(long, default_value_t = 100)]
    pub max_upload_mb: usize,
    /// Where the model runs: `cpu`, `cuda` or `auto`.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: crate::train::device::DeviceChoice,
    /// Segment length in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub segment: f64,
    /// Save each live session's audio, as received, to `DIR/session-N.wav`
    /// (float WAV at the page's rate; for checks and debugging).
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
}

struct AppState {
    args: ServeArgs,
    classes: Vec<String>,
}

const PAGE: &str = include_str!("serve/page.html");

fn infer_args(args: &ServeArgs, files: Vec<String>, out: Option<String>) -> InferArgs {
    InferArgs {
        model: args.model.clone(),
        files,
        format: PcmFormat::Wav,
        rate: None,
        channels: 1,
        segment: args.segment,
        hop: None,
        smooth: None,
        out,
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
    let artifact = crate::train::inference::read_artifact(&args.model)?;
    // Fail now, not at the first connection, if the pipeline would not compile.
    pipeline(&infer_args(args, vec!["-".into()], None))?;
    let state = Arc::new(AppState {
        args: args.clone(),
        classes: artifact.labels.clone(),
    });
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/ws", get(ws_handler))
        .route("/v1/predict", post(predict))
        .layer(DefaultBodyLimit::max(args.max_upload_mb * 1024 * 1024))
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
            args.model.display()
        );
        let _ = std::io::stdout().flush();
        axum::serve(listener, app).await.map_err(|e| e.to_string())
    })
}

#[derive(serde::Deserialize)]
struct WsQuery {
    rate: u32,
}

async fn ws_handler(
    ws: WebSocketUpgrade,
    Query(q): Query<WsQuery>,
    State(state): State<Arc<AppState>>,
) -> Response {
    if !(8000..=192_000).contains(&q.rate) {
        return (
            StatusCode::BAD_REQUEST,
            format!("rate {} out of range", q.rate),
        )
            .into_response();
    }
    ws.max_message_size(4 * 1024 * 1024)
        .on_upgrade(move |socket| session(socket, q.rate, state))
}

/// One live session: PCM in through one pipe, JSON lines out through another.
async fn session(mut socket: WebSocket, rate: u32, state: Arc<AppState>) {
    let hello = serde_json::json!({ "classes": state.classes }).to_string();
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    let (Ok((audio_r, audio_w)), Ok((pred_r, pred_w))) = (std::io::pipe(), std::io::pipe()) else {
        let _ = socket
            .send(Message::Text(r#"{"error": "cannot create pipes"}"#.into()))
            .await;
        return;
    };
    let mut a = infer_args(&state.args, vec!["-".into()], None);
    a.format = PcmFormat::F32le;
    a.rate = Some(rate);
    let text = pipeline(&a).map(|t| {
        t.replace(
            "kind = \"stdin\"\n",
            &format!(
                "kind = \"stdin\"\npath = \"/dev/fd/{}\"\nclip_id = \"live\"\n",
                audio_r.as_raw_fd()
            ),
        ) + &format!(
            "out = \"/dev/fd/{}\"\nformat = \"jsonl\"\nprint = false\n",
            pred_w.as_raw_fd()
        )
    });
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            let msg = serde_json::json!({ "error": e }).to_string();
            let _ = socket.send(Message::Text(msg.into())).await;
            return;
        }
    };
    // The pipeline on a plain thread; it holds its pipe ends until it is done, so
    // the prediction reader sees EOF exactly when the pipeline has finished.
    let runner = std::thread::spawn(move || {
        let r = run_text(&text);
        drop(audio_r);
        drop(pred_w);
        r
    });
    let (line_tx, mut line_rx) = tokio::sync::mpsc::channel::<String>(64);
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(pred_r).lines() {
            let Ok(line) = line else { break };
            if line_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let (pcm_tx, pcm_rx) = std::sync::mpsc::sync_channel::<Bytes>(64);
    let record = state.args.record.clone();
    let writer = std::thread::spawn(move || {
        let mut w = audio_w;
        let mut rec = record.and_then(|d| Recording::create(&d, rate).ok());
        for b in pcm_rx {
            if let Some(r) = rec.as_mut() {
                r.write(&b);
            }
            if w.write_all(&b).is_err() {
                break;
            }
        }
        if let Some(r) = rec {
            r.finish();
        }
        // Dropping the write end ends the stream: the pipeline flushes its last
        // segment and finishes.
    });
    let mut pcm_tx = Some(pcm_tx);
    loop {
        tokio::select! {
            msg = socket.recv(), if pcm_tx.is_some() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    let Some(tx) = pcm_tx.as_ref() else { continue };
                    if b.len() % 4 != 0 || tx.send(b).is_err() {
                        pcm_tx = None;
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    // The page acknowledges what it drew; logged for tests and ops.
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str())
                        && let Some(k) = v.get("ack")
                    {
                        println!("sermo serve: page drew segment {k} {}", v.get("label").cloned().unwrap_or_default());
                        let _ = std::io::stdout().flush();
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => pcm_tx = None,
                Some(Ok(_)) => {}
            },
            line = line_rx.recv() => match line {
                Some(line) => {
                    println!("sermo serve: sent {line}");
                    let _ = std::io::stdout().flush();
                    if socket.send(Message::Text(line.into())).await.is_err() {
                        pcm_tx = None;
                    }
                }
                None => break,
            },
        }
    }
    drop(pcm_tx);
    let _ = writer.join();
    let _ = reader.join();
    if let Ok(Err(e)) = runner.join() {
        let msg = serde_json::json!({ "error": e }).to_string();
        let _ = socket.send(Message::Text(msg.into())).await;
    }
    let _ = socket.send(Message::Close(None)).await;
}

/// A session's audio as a float WAV, written as it arrives (the sizes in the
/// header are filled in at the end).
struct Recording {
    file: std::fs::File,
    bytes: u64,
}

impl Recording {
    fn create(dir: &Path, rate: u32) -> std::io::Result<Recording> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(dir)?;
        let p = dir.join(format!("session-{}.wav", N.fetch_add(1, Ordering::Relaxed)));
        let mut file = std::fs::File::create(p)?;
        let mut h = Vec::with_capacity(44);
        h.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&(rate * 4).to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&32u16.to_le_bytes());
        h.extend_from_slice(b"data\0\0\0\0");
        file.write_all(&h)?;
        Ok(Recording { file, bytes: 0 })
    }

    fn write(&mut self, b: &[u8]) {
        if self.file.write_all(b).is_ok() {
            self.bytes += b.len() as u64;
        }
    }

    fn finish(mut self) {
        use std::io::{Seek, SeekFrom};
        let data = self.bytes.min(u32::MAX as u64 - 36) as u32;
        let _ = self.file.seek(SeekFrom::Start(4));
        let _ = self.file.write_all(&(36 + data).to_le_bytes());
        let _ = self.file.seek(SeekFrom::Start(40));
        let _ = self.file.write_all(&data.to_le_bytes());
    }
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": msg.into() })),
    )
        .into_response()
}

/// `POST /v1/predict`: an uploaded file's predictions.
async fn predict(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    if body.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "empty body: send the audio file's bytes",
        );
    }
    let job = tokio::task::spawn_blocking(move || predict_file(&state.args, &body)).await;
    match job {
        Ok(Ok(rows)) => (StatusCode::OK, axum::Json(rows)).into_response(),
        Ok(Err((status, msg))) => error(status, msg),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> std::io::Result<TempDir> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "sermo-serve-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d)?;
    Ok(TempDir(d))
}

fn predict_file(
    args: &ServeArgs,
    body: &[u8],
) -> Result<Vec<serde_json::Value>, (StatusCode, String)> {
    let internal = |e: String| (StatusCode::INTERNAL_SERVER_ERROR, e);
    let dir = temp_dir().map_err(|e| internal(e.to_string()))?;
    let audio = dir.0.join("upload");
    std::fs::write(&audio, body).map_err(|e| internal(e.to_string()))?;
    // Decode problems are the client's: say which.
    if let Err(f) = crate::audio::decoder::ClipReader::open(&audio) {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the upload is not usable audio ({}): {}",
                f.reason.as_str(),
                f.message
            ),
        ));
    }
    let out = dir.0.join("predictions.jsonl");
    let text = pipeline(&infer_args(
        args,
        vec![audio.display().to_string()],
        Some(out.display().to_string()),
    ))
    .map_err(internal)?
    .replace(
        "[sinks.timeline]\nkind = \"timeline\"\n",
        "[sinks.timeline]\nkind = \"timeline\"\nprint = false\n",
    );
    let metrics = run_text(&text).map_err(internal)?;
    if metrics.sum_matching("quarantine.", "") > 0 {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "the upload could not be decoded to the end or was too short for one segment".into(),
        ));
    }
    read_jsonl(&out).map_err(internal)
}

fn read_jsonl(p: &Path) -> Result<Vec<serde_json::Value>, String> {
    let text = std::fs::read_to_string(p).map_err(|e| e.to_string())?;
    text.lines()
        .map(|l| serde_json::from_str(l).map_err(|e| e.to_string()))
        .collect()
}
