//! The live session behind `GET /ws`: the WebSocket handshake, the session loop
//! and the threads of its pipeline (PCM in, result lines out), the client's Close
//! held back until its segments are sent (`Gate`, `Scan`, `Withhold`), the text
//! control messages (`{"ack": k}`, `{"end": true}`) and `--record`'s `Recording`.

use std::io::{BufRead, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::{AppState, MAX_MESSAGE_BYTES, PCM_QUEUE, busy, error, infer_args, run_text};
use crate::audio::pcm::PcmFormat;
use crate::engine::Metrics;
use crate::infer_cli::pipeline;

/// How long a closing session waits for the client's Close reply.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

#[derive(serde::Deserialize)]
pub(super) struct WsQuery {
    rate: u32,
}

fn header_has(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// `GET /ws`: the WebSocket handshake done here (not by axum's extractor) so the
/// session reads the socket through [`Withhold`].
pub(super) async fn ws_handler(
    State(state): State<Arc<AppState>>,
    Query(q): Query<WsQuery>,
    mut req: Request,
) -> Response {
    if !(8000..=192_000).contains(&q.rate) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("rate {} out of range (8000..=192000)", q.rate),
        );
    }
    let h = req.headers();
    let key = h
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec());
    let (Some(key), true, true, true) = (
        key,
        header_has(h, header::UPGRADE, "websocket"),
        header_has(h, header::CONNECTION, "upgrade"),
        h.get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13"),
    ) else {
        return error(
            StatusCode::UPGRADE_REQUIRED,
            "/ws is a WebSocket (version 13) endpoint",
        );
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return error(
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded",
        );
    };
    let Ok(permit) = state.sessions.clone().try_acquire_owned() else {
        return busy(format!(
            "too many live sessions (limit {}); try again later",
            state.args.max_sessions
        ));
    };
    let Ok(accept) =
        HeaderValue::from_str(&tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key))
    else {
        return error(StatusCode::BAD_REQUEST, "bad Sec-WebSocket-Key");
    };
    let rate = q.rate;
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let gate = Arc::new(Gate::default());
        let io = Withhold {
            inner: hyper_util::rt::TokioIo::new(upgraded),
            scan: Scan::Head0,
            held: None,
            signalled: false,
            passthrough: false,
            gate: gate.clone(),
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES))
            .max_write_buffer_size(4 * MAX_MESSAGE_BYTES);
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        session(ws, gate, rate, state, permit).await;
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    resp
}

/// Where a client's Close frame waits while its session sends its last segments.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    /// Signalled once a Close frame is held and every frame before it has been
    /// read (the WebSocket asked for more bytes).
    held: Notify,
}

#[derive(Default)]
struct GateState {
    released: bool,
    waker: Option<Waker>,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Let the held Close (and everything after it) through.
    fn release(&self) {
        let waker = {
            let mut s = self.lock();
            s.released = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn poll_released(&self, cx: &Context<'_>) -> bool {
        let mut s = self.lock();
        if !s.released {
            s.waker = Some(cx.waker().clone());
        }
        s.released
    }
}

/// Where the byte stream from the client is in its WebSocket framing (RFC 6455
/// §5.2): only enough to find where each frame starts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scan {
    /// At the first byte of a frame (FIN, opcode).
    Head0,
    /// At the mask bit and 7-bit length.
    Head1,
    /// Reading an extended length: bytes left, length so far, masked.
    ExtLen(u8, u64, bool),
    /// Skipping the masking key: bytes left, payload length.
    Mask(u8, u64),
    /// Skipping payload: bytes left.
    Payload(u64),
}

impl Scan {
    fn after_len(len: u64, masked: bool) -> Scan {
        if masked {
            Scan::Mask(4, len)
        } else {
            Scan::payload(len)
        }
    }

    fn payload(len: u64) -> Scan {
        if len == 0 {
            Scan::Head0
        } else {
            Scan::Payload(len)
        }
    }

    /// Advance over `bytes`; the offset of the first byte of a Close frame
    /// (opcode 8), where scanning stops.
    fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            *self = match *self {
                Scan::Head0 => {
                    if b & 0x0F == 0x8 {
                        return Some(i);
                    }
                    Scan::Head1
                }
                Scan::Head1 => match b & 0x7F {
                    126 => Scan::ExtLen(2, 0, b & 0x80 != 0),
                    127 => Scan::ExtLen(8, 0, b & 0x80 != 0),
                    n => Scan::after_len(n as u64, b & 0x80 != 0),
                },
                Scan::ExtLen(left, len, masked) => {
                    let len = (len << 8) | b as u64;
                    if left == 1 {
                        Scan::after_len(len, masked)
                    } else {
                        Scan::ExtLen(left - 1, len, masked)
                    }
                }
                Scan::Mask(left, len) => {
                    if left == 1 {
                        Scan::payload(len)
                    } else {
                        Scan::Mask(left - 1, len)
                    }
                }
                Scan::Payload(left) => {
                    let take = left.min((bytes.len() - i) as u64);
                    i += take as usize;
                    *self = Scan::payload(left - take);
                    continue;
                }
            };
            i += 1;
        }
        None
    }
}

/// The upgraded connection as the session's WebSocket reads it: bytes pass
/// through until a frame from the client is a Close; that frame (and whatever
/// follows) is held back until [`Gate::release`]. [`Gate::held`] is signalled when
/// the WebSocket asks for bytes past it: it has read every message before the
/// Close, so the session has all the audio.
/// tungstenite answers a Close at once and sends nothing after it, so without
/// this a client's Close would cut off the segments of the audio it had sent.
struct Withhold<S> {
    inner: S,
    scan: Scan,
    /// The held bytes and how many of them were handed on after the release.
    held: Option<(Vec<u8>, usize)>,
    signalled: bool,
    passthrough: bool,
    gate: Arc<Gate>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Withhold<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some((bytes, at)) = this.held.as_mut() {
                if !this.gate.poll_released(cx) {
                    if !this.signalled {
                        this.signalled = true;
                        this.gate.held.notify_one();
                    }
                    return Poll::Pending;
                }
                if *at < bytes.len() {
                    let n = (bytes.len() - *at).min(buf.remaining());
                    buf.put_slice(&bytes[*at..*at + n]);
                    *at += n;
                    return Poll::Ready(Ok(()));
                }
                this.held = None;
                this.passthrough = true;
            }
            if this.passthrough {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let before = buf.filled().len();
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let Some(at) = this.scan.feed(&buf.filled()[before..]) else {
                return Poll::Ready(Ok(()));
            };
            this.held = Some((buf.filled()[before + at..].to_vec(), 0));
            buf.set_filled(before + at);
            if at > 0 {
                return Poll::Ready(Ok(()));
            }
            // Nothing to hand on (an empty read would mean end of stream): wait
            // for the release.
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Withhold<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

type Socket = WebSocketStream<Withhold<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>>;

/// Send one message, giving up after `limit` (a client that does not read).
async fn send(ws: &mut Socket, msg: Message, limit: Duration) -> bool {
    matches!(tokio::time::timeout(limit, ws.send(msg)).await, Ok(Ok(())))
}

fn error_json(msg: impl std::fmt::Display) -> Message {
    Message::text(serde_json::json!({ "error": msg.to_string() }).to_string())
}

/// Room for one more PCM message towards the pipeline (`None`: it is gone).
async fn reserve(tx: &Option<mpsc::Sender<Bytes>>) -> Option<mpsc::Permit<'_, Bytes>> {
    match tx {
        Some(tx) => tx.reserve().await.ok(),
        None => None,
    }
}

/// The pieces of a session's pipeline: PCM in, result lines out, its result.
struct Pipes {
    pcm: mpsc::Sender<Bytes>,
    lines: mpsc::Receiver<String>,
    result: tokio::sync::oneshot::Receiver<Result<Metrics, String>>,
}

/// Start a session's pipeline on plain threads: a writer (PCM → pipe, and the
/// recording), the pipeline, a reader (pipe → result lines). The session's slot
/// (`permit`) is freed when its pipeline has finished.
fn start_pipeline(
    rate: u32,
    state: &AppState,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Pipes, String> {
    let (audio_r, audio_w) = std::io::pipe().map_err(|e| format!("cannot create pipes: {e}"))?;
    let (pred_r, pred_w) = std::io::pipe().map_err(|e| format!("cannot create pipes: {e}"))?;
    let mut a = infer_args(&state.args, vec!["-".into()], None);
    a.format = PcmFormat::F32le;
    a.rate = Some(rate);
    let text = pipeline(&a)?.replace(
        "kind = \"stdin\"\n",
        &format!(
            "kind = \"stdin\"\npath = \"/dev/fd/{}\"\nclip_id = \"live\"\n",
            audio_r.as_raw_fd()
        ),
    ) + &format!(
        "out = \"/dev/fd/{}\"\nformat = \"jsonl\"\nprint = false\n",
        pred_w.as_raw_fd()
    );
    let (result_tx, result) = tokio::sync::oneshot::channel();
    // The pipeline holds its pipe ends until it is done, so the reader sees EOF
    // exactly when the pipeline has finished.
    std::thread::Builder::new()
        .name("sermo-session".into())
        .spawn(move || {
            let r = run_text(&text);
            drop(audio_r);
            drop(pred_w);
            drop(permit);
            let _ = result_tx.send(r);
        })
        .map_err(|e| format!("cannot start the session: {e}"))?;
    let (line_tx, lines) = mpsc::channel::<String>(64);
    std::thread::Builder::new()
        .name("sermo-session-out".into())
        .spawn(move || {
            for line in std::io::BufReader::new(pred_r).lines() {
                let Ok(line) = line else { break };
                if line_tx.blocking_send(line).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start the session: {e}"))?;
    let (pcm, mut pcm_rx) = mpsc::channel::<Bytes>(PCM_QUEUE);
    let record = state.args.record.clone();
    std::thread::Builder::new()
        .name("sermo-session-in".into())
        .spawn(move || {
            let mut w = audio_w;
            let mut rec = record.and_then(|d| Recording::create(&d, rate).ok());
            let mut open = true;
            while let Some(b) = pcm_rx.blocking_recv() {
                if let Some(r) = rec.as_mut() {
                    r.write(&b);
                }
                // A pipeline that stopped reading (it failed) still leaves the
                // recording complete.
                open = open && w.write_all(&b).is_ok();
            }
            if let Some(r) = rec {
                r.finish();
            }
            // Dropping the write end ends the stream: the pipeline flushes its
            // last segment and finishes.
        })
        .map_err(|e| format!("cannot start the session: {e}"))?;
    Ok(Pipes { pcm, lines, result })
}

/// How a session's input ended, and the Close frame it ends with.
struct Ending {
    code: CloseCode,
    reason: String,
}

/// One live session: PCM in through one pipe, JSON lines out through another.
///
/// One task, never blocking: it reads a message only when the pipeline's queue
/// has room for it (otherwise the socket is left unread: TCP backpressure), and
/// forwards result lines the whole time. When the input ends (`{"end": true}`,
/// a Close, an idle timeout, an oversized or malformed message) the audio already
/// received is run to the end and its segments sent, then the Close. When the
/// connection breaks, or the client does not read for the idle timeout, the
/// session returns at once: its channels close, and the pipeline and its threads
/// stop.
async fn session(
    mut ws: Socket,
    gate: Arc<Gate>,
    rate: u32,
    state: Arc<AppState>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let idle = state.args.idle();
    let hello = serde_json::json!({ "classes": state.classes }).to_string();
    if !send(&mut ws, Message::text(hello), idle).await {
        return;
    }
    let Pipes {
        pcm,
        mut lines,
        result,
    } = match start_pipeline(rate, &state, permit) {
        Ok(p) => p,
        Err(e) => {
            let _ = send(&mut ws, error_json(e), idle).await;
            let _ = send(&mut ws, close_msg(CloseCode::Error, "no pipeline"), idle).await;
            return;
        }
    };
    let mut pcm = Some(pcm);
    // A message read but not yet queued for the pipeline.
    let mut pending: Option<Bytes> = None;
    // Set once the input has ended; the Close to send at the end.
    let mut ending: Option<Ending> = None;
    let mut reading = true;
    let mut close_held = false;
    let mut deadline = tokio::time::Instant::now() + idle;
    let mut lines_open = true;
    while lines_open {
        tokio::select! {
            biased;
            line = lines.recv() => match line {
                Some(line) => {
                    println!("sermo serve: sent {line}");
                    let _ = std::io::stdout().flush();
                    if !send(&mut ws, Message::text(line), idle).await {
                        // The client does not read (or is gone): dropping the
                        // channels ends the pipeline and its threads.
                        return;
                    }
                }
                None => lines_open = false,
            },
            room = reserve(&pcm), if pending.is_some() => match (room, pending.take()) {
                (Some(p), Some(b)) => {
                    p.send(b);
                    // The idle clock runs only while the session waits for the client.
                    deadline = tokio::time::Instant::now() + idle;
                }
                // The pipeline stopped reading (it failed): its result says why.
                _ => reading = false,
            },
            _ = gate.held.notified(), if !close_held => {
                close_held = true;
                reading = false;
                ending.get_or_insert(Ending { code: CloseCode::Normal, reason: "end of stream".into() });
            },
            msg = ws.next(), if reading && pending.is_none() => {
                deadline = tokio::time::Instant::now() + idle;
                let reply = match msg {
                    Some(Ok(Message::Binary(b))) => {
                        if ending.is_some() {
                            Some("audio after {\"end\": true} is ignored".to_string())
                        } else if b.len() % 4 != 0 {
                            Some(format!("a binary message is f32le samples, a multiple of 4 bytes; got {} bytes (dropped)", b.len()))
                        } else {
                            pending = (!b.is_empty()).then_some(b);
                            None
                        }
                    }
                    Some(Ok(Message::Text(t))) => control(t.as_str(), &mut ending),
                    // Not held back (cannot happen with `Withhold`): tungstenite has
                    // answered it, nothing can be sent any more.
                    Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => None,
                    Some(Err(e)) => {
                        use tokio_tungstenite::tungstenite::Error as E;
                        reading = false;
                        let (code, reply) = match &e {
                            E::Capacity(_) => (CloseCode::Size, Some(format!("message over the {MAX_MESSAGE_BYTES}-byte limit ({e}); the session ends"))),
                            E::Protocol(_) => (CloseCode::Protocol, Some(format!("WebSocket protocol error: {e}"))),
                            E::Utf8(_) => (CloseCode::Invalid, Some(format!("text message is not UTF-8: {e}"))),
                            // The connection is gone.
                            _ => return,
                        };
                        ending.get_or_insert(Ending { code, reason: e.to_string().chars().take(100).collect() });
                        reply
                    }
                    None => return,
                };
                if let Some(r) = reply
                    && !send(&mut ws, error_json(r), idle).await
                {
                    return;
                }
            },
            _ = tokio::time::sleep_until(deadline), if ending.is_none() && reading && pending.is_none() => {
                ending = Some(Ending {
                    code: CloseCode::Normal,
                    reason: format!("idle: no message for {} s", idle.as_secs()),
                });
            },
        }
        // Once the input has ended and the last message is queued, close the
        // pipeline's input: it runs what it has to the end.
        if ending.is_some() && pending.is_none() {
            pcm = None;
        }
        if !reading && pending.is_none() {
            pcm = None;
        }
    }
    drop(pcm);
    let failed = match result.await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some("the session's pipeline stopped unexpectedly".to_string()),
    };
    if let Some(e) = failed
        && !send(&mut ws, error_json(e), idle).await
    {
        return;
    }
    let end = ending.unwrap_or(Ending {
        code: CloseCode::Normal,
        reason: "end of stream".into(),
    });
    if !send(&mut ws, close_msg(end.code, &end.reason), idle).await {
        return;
    }
    // Let the client's Close through (the answer to ours), then stop.
    gate.release();
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

fn close_msg(code: CloseCode, reason: &str) -> Message {
    // A close reason is at most 123 bytes.
    let mut r = String::new();
    for c in reason.chars() {
        if r.len() + c.len_utf8() > 123 {
            break;
        }
        r.push(c);
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: r.into(),
    }))
}

/// A text message from the client: `{"ack": k, ...}` is logged, `{"end": true}`
/// ends the input; anything else is answered with an error.
fn control(text: &str, ending: &mut Option<Ending>) -> Option<String> {
    let v = serde_json::from_str::<serde_json::Value>(text).ok();
    if let Some(k) = v.as_ref().and_then(|v| v.get("ack")) {
        // The page acknowledges what it drew; logged for tests and ops.
        let label = v
            .as_ref()
            .and_then(|v| v.get("label"))
            .cloned()
            .unwrap_or_default();
        println!("sermo serve: page drew segment {k} {label}");
        let _ = std::io::stdout().flush();
        return None;
    }
    if v.as_ref().and_then(|v| v.get("end")) == Some(&serde_json::Value::Bool(true)) {
        ending.get_or_insert(Ending {
            code: CloseCode::Normal,
            reason: "end of stream".into(),
        });
        return None;
    }
    let shown: String = text.chars().take(60).collect();
    Some(format!(
        "unexpected text message {shown:?}: send audio as binary f32le messages, \
         {{\"ack\": k}} or {{\"end\": true}}"
    ))
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

#[cfg(test)]
mod tests {
    use super::Scan;

    /// A client frame header: FIN + opcode, masked, with its length.
    fn frame(opcode: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        if len < 126 {
            f.push(0x80 | len as u8);
        } else if len < 65536 {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(0x88u8, len)); // payload bytes that look like Close
        f
    }

    #[test]
    fn the_scanner_finds_the_close_frame_after_any_frames_in_any_pieces() {
        let mut bytes = frame(0x2, 5);
        bytes.extend(frame(0x1, 300));
        bytes.extend(frame(0x2, 70_000));
        bytes.extend(frame(0x9, 0));
        bytes.extend(frame(0x0, 126));
        let at = bytes.len();
        bytes.extend(frame(0x8, 2));
        for piece in [1, 2, 3, 7, 125, 4096, bytes.len()] {
            let mut s = Scan::Head0;
            let mut found = None;
            for (k, c) in bytes.chunks(piece).enumerate() {
                if let Some(i) = s.feed(c) {
                    found = Some(k * piece + i);
                    break;
                }
            }
            assert_eq!(found, Some(at), "pieces of {piece}");
        }
    }

    #[test]
    fn the_scanner_passes_unmasked_frames_and_stops_at_nothing_else() {
        let mut s = Scan::Head0;
        // Unmasked binary frame of 3 bytes, then half a header.
        assert_eq!(s.feed(&[0x82, 0x03, 8, 8, 8, 0x82]), None);
        assert_eq!(s, Scan::Head1);
    }
}
