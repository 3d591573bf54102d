//! `POST /v1/predict`: an upload waits for one of `--max-jobs`, its body is read
//! (size and idle limits), written to a temporary folder, checked (`check_upload`:
//! decodable, sane header) and run through the `sermo infer` pipeline; failures
//! are JSON `Refusal`s with the decoder's quarantine reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::{AppState, JOB_WAIT, MIB, ServeArgs, busy, error, infer_args, run_text};
use crate::audio::Reason;
use crate::infer_cli::pipeline;

fn too_large(limit: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the upload is over the {} MiB limit (--max-upload-mb)",
            limit / MIB
        ),
    )
}

/// A failed upload: status, message, quarantine reason.
struct Refusal(StatusCode, String, Option<&'static str>);

impl Refusal {
    fn internal(e: impl std::fmt::Display) -> Refusal {
        Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None)
    }

    fn response(self) -> Response {
        let mut v = serde_json::json!({ "error": self.1 });
        if let Some(r) = self.2 {
            v["reason"] = r.into();
        }
        (self.0, axum::Json(v)).into_response()
    }
}

/// `POST /v1/predict`: an uploaded file's predictions. The body is read only once
/// a job is free, so waiting uploads hold no memory.
pub(super) async fn predict(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = state.args.upload_limit();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    if declared == Some(0) {
        return empty_body();
    }
    let Ok(Ok(permit)) = tokio::time::timeout(JOB_WAIT, state.jobs.clone().acquire_owned()).await
    else {
        return busy(format!(
            "busy: {} uploads are being processed (--max-jobs); try again later",
            state.max_jobs
        ));
    };
    let body = match read_body(body, limit, state.args.idle()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if body.is_empty() {
        return empty_body();
    }
    let job = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        predict_file(&state.args, &body).map(|rows| with_class_names(rows, &state.classes))
    })
    .await;
    match job {
        Ok(Ok(rows)) => (StatusCode::OK, axum::Json(rows)).into_response(),
        Ok(Err(r)) => r.response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn empty_body() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "empty body: send the audio file's bytes",
    )
}

/// The whole body, at most `limit` bytes, each piece within `idle`.
async fn read_body(body: Body, limit: usize, idle: Duration) -> Result<Vec<u8>, Response> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    loop {
        let Ok(next) = tokio::time::timeout(idle, stream.next()).await else {
            return Err(error(
                StatusCode::REQUEST_TIMEOUT,
                format!("the upload stalled: no data for {} s", idle.as_secs()),
            ));
        };
        match next {
            None => return Ok(buf),
            Some(Ok(piece)) => {
                if buf.len() + piece.len() > limit {
                    return Err(too_large(limit));
                }
                buf.extend_from_slice(&piece);
            }
            Some(Err(e)) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the upload: {e}"),
                ));
            }
        }
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

/// Refuse an upload the decoder cannot open, or one whose header would size the
/// work by absurd values (a WAV declaring 4294967295 Hz made the resampler plan
/// a ~1.7-billion-point FFT).
fn check_upload(audio: &Path) -> Result<(), Refusal> {
    let unusable = |reason: Reason, msg: &str| {
        Refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the upload is not usable audio ({}): {msg}",
                reason.as_str()
            ),
            Some(reason.as_str()),
        )
    };
    // The decoder bounds the header (sample rate, channels: crate::limits)
    // before anything is sized by it.
    let opened = std::panic::catch_unwind(|| crate::audio::decoder::ClipReader::open(audio));
    match opened {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(f)) => Err(unusable(f.reason, &f.message)),
        Err(_) => Err(unusable(Reason::DecoderPanic, "the decoder panicked")),
    }
}

fn predict_file(args: &ServeArgs, body: &[u8]) -> Result<Vec<serde_json::Value>, Refusal> {
    let dir = temp_dir().map_err(Refusal::internal)?;
    let audio = dir.0.join("upload");
    std::fs::write(&audio, body).map_err(Refusal::internal)?;
    // Decode problems are the client's: say which.
    check_upload(&audio)?;
    let out = dir.0.join("predictions.jsonl");
    let text = pipeline(&infer_args(
        args,
        vec![audio.display().to_string()],
        Some(out.display().to_string()),
    ))
    .map_err(Refusal::internal)?
    .replace(
        "[sinks.timeline]\nkind = \"timeline\"\n",
        "[sinks.timeline]\nkind = \"timeline\"\nprint = false\n",
    );
    let metrics = run_text(&text).map_err(Refusal::internal)?;
    let quarantined = metrics
        .snapshot()
        .into_iter()
        .find(|(k, n)| *n > 0 && k.starts_with("quarantine."));
    if let Some((k, _)) = quarantined {
        let reason = k.trim_start_matches("quarantine.");
        let known = Reason::ALL.iter().find(|r| r.as_str() == reason);
        return Err(Refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the upload could not be decoded to the end or was too short for one segment \
                 ({reason})"
            ),
            known.map(|r| r.as_str()),
        ));
    }
    read_jsonl(&out).map_err(Refusal::internal)
}

/// Each prediction with `by_class` beside `probs`: the class names with their
/// probabilities (`{"angry": 0.12, ...}`), so a client needs no second request
/// to read them. The other fields are `sermo infer`'s, unchanged.
fn with_class_names(rows: Vec<serde_json::Value>, classes: &[String]) -> Vec<serde_json::Value> {
    rows.into_iter()
        .map(|mut row| {
            let by_class: Option<serde_json::Map<String, serde_json::Value>> =
                row.get("probs").and_then(|p| p.as_array()).map(|probs| {
                    classes
                        .iter()
                        .zip(probs)
                        .map(|(c, p)| (c.clone(), p.clone()))
                        .collect()
                });
            if let (Some(obj), Some(by_class)) = (row.as_object_mut(), by_class) {
                obj.insert("by_class".into(), by_class.into());
            }
            row
        })
        .collect()
}

fn read_jsonl(p: &Path) -> Result<Vec<serde_json::Value>, String> {
    let text = std::fs::read_to_string(p).map_err(|e| e.to_string())?;
    text.lines()
        .map(|l| serde_json::from_str(l).map_err(|e| e.to_string()))
        .collect()
}
