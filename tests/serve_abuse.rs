//! `sermo serve` under abuse (issue 26 item 9): hostile, empty, garbage, oversized,
//! stalled and concurrent uploads; two clients streaming large WebSocket messages
//! fast without reading; a client's Close; oversized, malformed and non-binary
//! WebSocket messages; many idle connections and sessions. After each round the
//! server still answers, its memory (VmRSS) is back within 100 MB of where it
//! started, and it wrote nothing outside `--record` (uploads go to a folder under
//! `TMPDIR`, removed after each request). Every hostile input is built here.

mod common;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{demo_features, sermo_bin, train_demo};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How far the server's memory may stay above its baseline after a round.
const RSS_SLACK_MB: f64 = 100.0;

/// A small confident model: an mlp fitted to the EmoDB demo clips of speaker 03.
fn model(dir: &Path) -> PathBuf {
    demo_features(dir);
    train_demo(
        dir,
        "model",
        "model = \"mlp\"\nfeatures = [\"stacked\"]\nepochs = 40\nbatch_size = 4\nlearning_rate = 5e-3\nsplit = { by = \"speaker\", test = [\"08\"] }\n",
    )
}

/// A running `sermo serve` with its own empty working directory and `TMPDIR`.
struct Server {
    child: Child,
    port: u16,
    tmp: PathBuf,
    cwd: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path, model: &Path, extra: &[&str]) -> Server {
        let tmp = dir.join("server-tmp");
        let cwd = dir.join("server-cwd");
        std::fs::create_dir_all(&tmp).expect("mkdir tmp");
        std::fs::create_dir_all(&cwd).expect("mkdir cwd");
        let model = model.to_str().expect("utf-8 path");
        // Fixed 3-s segments: what these tests count (speech-aligned
        // segments are tests/serve.rs's).
        let mut args = vec!["serve", "--model", model, "--port", "0", "--no-vad"];
        args.extend_from_slice(extra);
        let mut child = Command::new(sermo_bin())
            .args(&args)
            .current_dir(&cwd)
            .env("TMPDIR", &tmp)
            // A hostile header can make the decoder panic (caught: 422
            // `decoder_panic`); with backtraces on, the first panic loads the
            // debug build's symbols (~500 MB, kept for the process' lifetime),
            // which is not the growth these tests look for.
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sermo serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Drain stdout for the whole run (the server logs every segment it sends).
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                let _ = tx.send(l);
            }
        });
        let first: String = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("serve printed nothing");
        let port = first
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        Server {
            child,
            port,
            tmp,
            cwd,
        }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("server process status");
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kb / 1024.0
    }

    /// Wait (up to 90 s) for the memory to come back within the slack of `base`.
    fn assert_memory_back(&self, base: f64, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut now = self.rss_mb();
        while now > base + RSS_SLACK_MB && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            now = self.rss_mb();
        }
        eprintln!("{what}: server RSS {base:.0} MB before, {now:.0} MB after");
        assert!(
            now <= base + RSS_SLACK_MB,
            "{what}: server RSS {now:.0} MB, baseline {base:.0} MB"
        );
    }

    /// Nothing left in `TMPDIR` and nothing written into the working directory.
    fn assert_wrote_nothing(&self) {
        for d in [&self.tmp, &self.cwd] {
            let left: Vec<_> = std::fs::read_dir(d)
                .expect("read dir")
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert!(left.is_empty(), "left in {}: {left:?}", d.display());
        }
    }

    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        http(self.port, method, path, body)
    }
}

fn split_response(resp: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(resp).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(180)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("send head");
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    split_response(&resp)
}

/// The JSON error of a refused request: its message and `reason`, if any.
fn json_error(body: &str) -> (String, Option<String>) {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    let msg = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
        .to_string();
    (msg, v["reason"].as_str().map(str::to_string))
}

/// A WAV header (PCM, 16-bit unless `bits` says otherwise) with any values in
/// it, followed by `data`.
fn wav(rate: u32, channels: u16, bits: u16, declared_data: u32, data: &[u8]) -> Vec<u8> {
    let align = channels.wrapping_mul(bits / 8);
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&36u32.wrapping_add(declared_data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&rate.wrapping_mul(align as u32).to_le_bytes());
    b.extend_from_slice(&align.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&declared_data.to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// Deterministic noise bytes.
fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The first `secs` of the 16-kHz demo recording, as f32 samples.
fn speech(secs: f64) -> Vec<f32> {
    let long = std::fs::read(root().join("examples/audio/long/demo_long.wav")).expect("demo wav");
    let at = long
        .windows(4)
        .position(|w| w == b"data")
        .expect("data chunk")
        + 8;
    long[at..]
        .chunks_exact(2)
        .take((secs * 16000.0) as usize)
        .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0)
        .collect()
}

fn pcm_bytes(samples: &[f32]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// `sermo infer` on `file`: its jsonl rows.
fn infer(model: &Path, file: &Path) -> Vec<serde_json::Value> {
    let out = file.with_extension("jsonl");
    let o = Command::new(sermo_bin())
        .args([
            "infer",
            "--model",
            model.to_str().expect("utf-8"),
            file.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run sermo infer");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(out)
        .expect("infer output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect()
}

type Ws = WebSocket<TcpStream>;

/// A WebSocket session at `rate`, past its `{"classes": ...}` greeting.
fn ws(port: u16, rate: u32) -> Ws {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(180)))
        .expect("timeout");
    let (mut w, _) = tungstenite::client(format!("ws://127.0.0.1:{port}/ws?rate={rate}"), s)
        .expect("WebSocket handshake");
    let hello = w.read().expect("greeting");
    assert!(
        hello.to_text().is_ok_and(|t| t.contains("classes")),
        "{hello:?}"
    );
    w
}

/// What a session sent until the connection ended: segments, errors, the Close.
#[derive(Default, Debug)]
struct Received {
    segments: Vec<serde_json::Value>,
    errors: Vec<String>,
    close: Option<(CloseCode, String)>,
}

fn read_to_end(w: &mut Ws) -> Received {
    let mut r = Received::default();
    loop {
        match w.read() {
            Ok(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("JSON message");
                if let Some(e) = v.get("error") {
                    r.errors.push(e.as_str().unwrap_or_default().to_string());
                } else {
                    assert!(v.get("segment").is_some(), "unexpected message {v}");
                    r.segments.push(v);
                }
            }
            Ok(Message::Close(f)) => {
                r.close = Some(f.map_or((CloseCode::Status, String::new()), |f| {
                    (f.code, f.reason.to_string())
                }));
            }
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break,
            Err(e) => {
                assert!(r.close.is_some(), "the session broke before its Close: {e}");
                break;
            }
        }
    }
    r
}

fn send_audio(w: &mut Ws, samples: &[f32]) {
    for piece in samples.chunks(4096) {
        w.send(Message::binary(pcm_bytes(piece)))
            .expect("send audio");
    }
}

/// Segments equal `sermo infer`'s for the same audio.
fn assert_same_segments(got: &[serde_json::Value], want: &[serde_json::Value]) {
    assert_eq!(
        got.len(),
        want.len(),
        "segments {got:?}\nsermo infer {want:?}"
    );
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g["segment"], w["segment"]);
        assert_eq!(g["start_s"], w["start_s"]);
        assert_eq!(g["end_s"], w["end_s"]);
        assert_eq!(g["label"], w["label"], "{g} vs {w}");
    }
}

#[test]
fn hostile_empty_garbage_oversized_stalled_and_concurrent_uploads_leave_the_server_answering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = model(dir.path());
    let mut server = Server::start(
        dir.path(),
        &m,
        &[
            "--max-upload-mb",
            "1",
            "--max-jobs",
            "2",
            "--idle-timeout-s",
            "4",
        ],
    );
    let clip = std::fs::read(root().join("examples/audio/ravdess/03-01-05-01-01-01-01.flac"))
        .expect("demo clip");
    let (status, good) = server.http("POST", "/v1/predict", &clip);
    assert_eq!(status, 200, "{good}");
    let base = server.rss_mb();

    // Hostile headers and bodies: each a JSON error naming the reason.
    let pcm = noise(1000, 1);
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        (
            "4294967295 Hz",
            wav(u32::MAX, 1, 16, 1000, &pcm),
            Some("invalid_format"),
        ),
        ("65535 channels", wav(16000, 65535, 16, 1000, &pcm), None),
        ("0 Hz", wav(0, 1, 16, 1000, &pcm), None),
        ("0 bits", wav(16000, 1, 0, 1000, &pcm), None),
        (
            "data chunk claims 4 GB",
            wav(16000, 1, 16, u32::MAX - 100, &pcm),
            None,
        ),
        (
            "RIFF then noise",
            [b"RIFF".to_vec(), noise(5000, 2)].concat(),
            None,
        ),
        (
            "text",
            b"definitely not audio".to_vec(),
            Some("unsupported"),
        ),
        ("noise", noise(200_000, 3), None),
        (
            "NaN samples",
            common::speech::wav_f32_bytes(16000, &[f32::NAN; 16000]),
            Some("non_finite"),
        ),
    ];
    for (what, body, reason) in &cases {
        let (status, resp) = server.http("POST", "/v1/predict", body);
        assert!((400..500).contains(&status), "{what}: {status} {resp}");
        let (msg, got) = json_error(&resp);
        assert!(
            got.is_some(),
            "{what}: no quarantine reason in {resp} ({msg})"
        );
        if let Some(r) = reason {
            assert_eq!(got.as_deref(), Some(*r), "{what}: {msg}");
        }
        assert!(server.alive(), "{what} stopped the server");
    }
    let (status, resp) = server.http("POST", "/v1/predict", b"");
    assert_eq!(status, 400, "{resp}");
    assert!(json_error(&resp).0.contains("empty"), "{resp}");

    // Oversized, declared: 413 before the body is sent.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\nConnection: close\r\n\r\n")
        .expect("send head");
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let (status, body) = split_response(&resp);
    assert_eq!(status, 413, "{body}");
    assert!(json_error(&body).0.contains("limit"), "{body}");
    // Oversized, chunked (no length): 413 once past the limit.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(
            b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        );
        let piece = noise(65536, 4);
        for _ in 0..40 {
            if w.write_all(b"10000\r\n").is_err()
                || w.write_all(&piece).is_err()
                || w.write_all(b"\r\n").is_err()
            {
                return;
            }
        }
        let _ = w.write_all(b"0\r\n\r\n");
    });
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let _ = writer.join();
    let (status, body) = split_response(&resp);
    assert_eq!(status, 413, "{body}");
    // Stalled: the body stops coming; 408 after the idle timeout (4 s).
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nRIFF")
        .expect("send head");
    let t = Instant::now();
    let mut resp = vec![0u8; 4096];
    let n = s.read(&mut resp).unwrap_or(0);
    let (status, body) = split_response(&resp[..n]);
    assert_eq!(status, 408, "{body}");
    assert!(t.elapsed() < Duration::from_secs(30));

    // Concurrent uploads, good and hostile, past --max-jobs: each answered.
    let port = server.port;
    let jobs: Vec<_> = (0..8)
        .map(|k| {
            let body = if k % 2 == 0 {
                clip.clone()
            } else {
                wav(u32::MAX, 1, 16, 1000, &pcm)
            };
            std::thread::spawn(move || (k, http(port, "POST", "/v1/predict", &body)))
        })
        .collect();
    for j in jobs {
        let (k, (status, body)) = j.join().expect("upload thread");
        if k % 2 == 0 {
            assert_eq!(status, 200, "{body}");
            assert_eq!(body, good);
        } else {
            assert_eq!(status, 422, "{body}");
        }
    }

    // Still answering, with the same predictions; nothing left behind.
    let (status, info) = server.http("GET", "/v1/model", b"");
    assert_eq!(status, 200, "{info}");
    assert!(info.contains("\"max_jobs\":2"), "{info}");
    let (status, again) = server.http("POST", "/v1/predict", &clip);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, good);
    assert!(server.alive());
    server.assert_wrote_nothing();
    server.assert_memory_back(base, "uploads");
}

#[test]
fn two_clients_streaming_large_messages_without_reading_do_not_wedge_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = model(dir.path());
    let mut server = Server::start(dir.path(), &m, &[]);
    let clip = std::fs::read(root().join("examples/audio/ravdess/03-01-05-01-01-01-01.flac"))
        .expect("demo clip");
    // Warm up: one upload and one short session.
    let (status, good) = server.http("POST", "/v1/predict", &clip);
    assert_eq!(status, 200, "{good}");
    let mut w = ws(server.port, 16000);
    send_audio(&mut w, &speech(4.0));
    w.send(Message::text(r#"{"end": true}"#)).expect("end");
    assert!(!read_to_end(&mut w).segments.is_empty());
    let base = server.rss_mb();

    let stop = Arc::new(AtomicBool::new(false));
    let port = server.port;
    let clients: Vec<_> = (0..2u32)
        .map(|k| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                let (mut w, _) =
                    tungstenite::client(format!("ws://127.0.0.1:{port}/ws?rate=16000"), s)
                        .expect("handshake");
                w.get_mut()
                    .set_write_timeout(Some(Duration::from_millis(200)))
                    .expect("timeout");
                // 1 MiB messages (the limit) of quiet noise, as fast as they go,
                // never reading a reply.
                let frame: Vec<u8> = noise(1 << 20, 10 + k)
                    .chunks_exact(4)
                    .flat_map(|c| ((c[0] as f32 / 255.0 - 0.5) * 0.2).to_le_bytes())
                    .collect();
                let frame = tungstenite::Bytes::from(frame);
                let mut sent = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    match w.send(Message::Binary(frame.clone())) {
                        Ok(()) => sent += 1,
                        Err(tungstenite::Error::Io(e))
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            // Blocked: the server stopped reading. Keep pushing.
                            while !stop.load(Ordering::Relaxed) {
                                match w.flush() {
                                    Ok(()) => break,
                                    Err(tungstenite::Error::Io(e))
                                        if matches!(
                                            e.kind(),
                                            std::io::ErrorKind::WouldBlock
                                                | std::io::ErrorKind::TimedOut
                                        ) => {}
                                    Err(_) => return sent,
                                }
                            }
                        }
                        Err(_) => return sent,
                    }
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    // A third client is answered within a few seconds, several times over.
    for _ in 0..3 {
        let t = Instant::now();
        let (status, info) = server.http("GET", "/v1/model", b"");
        assert_eq!(status, 200, "{info}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "GET /v1/model took {:?} while two clients streamed",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (status, body) = server.http("POST", "/v1/predict", &clip);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, good);
    // And a third live session works end to end.
    let mut w = ws(server.port, 16000);
    send_audio(&mut w, &speech(4.0));
    w.send(Message::text(r#"{"end": true}"#)).expect("end");
    let r = read_to_end(&mut w);
    assert_eq!(r.segments.len(), 2, "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let sent = c.join().expect("client thread");
        eprintln!("a streaming client sent {sent} MiB");
        assert!(sent >= 2, "a client sent only {sent} messages");
    }
    let (status, _) = server.http("GET", "/v1/model", b"");
    assert_eq!(status, 200);
    assert!(server.alive());
    server.assert_wrote_nothing();
    server.assert_memory_back(base, "streaming clients");
}

#[test]
fn a_client_that_closes_gets_every_segment_of_the_audio_it_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = model(dir.path());
    let rec = dir.path().join("rec");
    let server = Server::start(dir.path(), &m, &["--record", rec.to_str().expect("utf-8")]);
    let audio = speech(10.0);
    let file = dir.path().join("ten.wav");
    std::fs::write(&file, common::speech::wav_f32_bytes(16000, &audio)).expect("write wav");
    let want = infer(&m, &file);
    assert_eq!(want.len(), 4, "{want:?}");
    // The client sends its 10 s as fast as it can, then its Close at once.
    let mut w = ws(server.port, 16000);
    send_audio(&mut w, &audio);
    w.close(None).expect("close");
    let r = read_to_end(&mut w);
    assert!(r.errors.is_empty(), "{r:?}");
    assert_same_segments(&r.segments, &want);
    assert_eq!(r.close.as_ref().map(|c| c.0), Some(CloseCode::Normal));
    // The same with `{"end": true}`: the server closes after the last segment.
    let mut w = ws(server.port, 16000);
    send_audio(&mut w, &audio);
    w.send(Message::text(r#"{"end": true}"#)).expect("end");
    let r = read_to_end(&mut w);
    assert!(r.errors.is_empty(), "{r:?}");
    assert_same_segments(&r.segments, &want);
    assert_eq!(r.close.map(|c| c.0), Some(CloseCode::Normal));
    // Only the recordings were written: each the audio as sent.
    std::thread::sleep(Duration::from_millis(500));
    let mut names: Vec<_> = std::fs::read_dir(&rec)
        .expect("record dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["session-0.wav", "session-1.wav"]);
    for n in &names {
        let bytes = std::fs::read(rec.join(n)).expect("recording");
        assert_eq!(bytes.len(), 44 + audio.len() * 4, "{n}");
    }
    server.assert_wrote_nothing();
}

/// One masked client frame written straight to the socket: FIN, `opcode`, a
/// declared payload length and (possibly fewer) payload bytes.
fn raw_frame(opcode: u8, declared: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    if declared < 126 {
        f.push(0x80 | declared as u8);
    } else if declared < 65536 {
        f.push(0x80 | 126);
        f.extend_from_slice(&(declared as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&declared.to_be_bytes());
    }
    let mask = [0x12, 0x34, 0x56, 0x78];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[test]
fn oversized_malformed_and_text_messages_get_errors_and_the_server_stays_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = model(dir.path());
    let mut server = Server::start(dir.path(), &m, &[]);
    let port = server.port;
    let (status, body) = server.http("GET", "/ws?rate=16000", b"");
    assert_eq!(status, 426, "{body}");
    let (status, body) = server.http("GET", "/ws?rate=5", b"");
    assert_eq!(status, 400, "{body}");
    let base = server.rss_mb();

    // A text message, a ragged binary one: errors, and the session goes on.
    let mut w = ws(port, 16000);
    w.send(Message::text("hello")).expect("send");
    let reply = w.read().expect("reply");
    assert!(
        reply.to_text().is_ok_and(|t| t.contains("error")),
        "{reply:?}"
    );
    w.send(Message::binary(vec![0u8; 6])).expect("send");
    let reply = w.read().expect("reply");
    assert!(
        reply
            .to_text()
            .is_ok_and(|t| t.contains("error") && t.contains("multiple of 4")),
        "{reply:?}"
    );
    w.send(Message::text(r#"{"ack": 0, "label": "x"}"#))
        .expect("send");
    send_audio(&mut w, &speech(4.0));
    w.send(Message::text(r#"{"end": true}"#)).expect("end");
    let r = read_to_end(&mut w);
    assert_eq!(r.segments.len(), 2, "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");

    // A message over the 1-MiB limit (declared; the rest never comes): an
    // error, the segments of the audio before it, Close 1009.
    let mut w = ws(port, 16000);
    send_audio(&mut w, &speech(4.0));
    let mut raw = w.get_ref().try_clone().expect("clone");
    raw.write_all(&raw_frame(0x2, (1 << 20) + 4, &[0u8; 1024]))
        .expect("send frame");
    let r = read_to_end(&mut w);
    assert!(r.errors.iter().any(|e| e.contains("limit")), "{r:?}");
    assert_eq!(r.segments.len(), 2, "{r:?}");
    assert_eq!(r.close.map(|c| c.0), Some(CloseCode::Size));

    // A text message that is not UTF-8: an error and Close 1007.
    let mut w = ws(port, 16000);
    let mut raw = w.get_ref().try_clone().expect("clone");
    raw.write_all(&raw_frame(0x1, 4, &[0xff, 0xfe, 0xfd, 0xfc]))
        .expect("send frame");
    let r = read_to_end(&mut w);
    assert!(!r.errors.is_empty(), "{r:?}");
    assert_eq!(r.close.map(|c| c.0), Some(CloseCode::Invalid));

    // Garbage instead of frames: the session ends, the server does not.
    let mut w = ws(port, 16000);
    let mut raw = w.get_ref().try_clone().expect("clone");
    raw.write_all(&[0x0f; 64]).expect("send garbage");
    let _ = read_to_end(&mut w);

    let (status, info) = server.http("GET", "/v1/model", b"");
    assert_eq!(status, 200, "{info}");
    let mut w = ws(port, 16000);
    send_audio(&mut w, &speech(4.0));
    w.close(None).expect("close");
    assert_eq!(read_to_end(&mut w).segments.len(), 2);
    assert!(server.alive());
    server.assert_wrote_nothing();
    server.assert_memory_back(base, "bad messages");
}

#[test]
fn idle_connections_and_sessions_are_bounded_and_timed_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = model(dir.path());
    let mut server = Server::start(
        dir.path(),
        &m,
        &["--max-sessions", "4", "--idle-timeout-s", "5"],
    );
    let port = server.port;
    let clip = std::fs::read(root().join("examples/audio/ravdess/03-01-05-01-01-01-01.flac"))
        .expect("demo clip");
    let (status, good) = server.http("POST", "/v1/predict", &clip);
    assert_eq!(status, 200, "{good}");
    let base = server.rss_mb();

    // Sessions past --max-sessions get 503.
    let mut idle: Vec<Ws> = (0..4).map(|_| ws(port, 16000)).collect();
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    match tungstenite::client(format!("ws://127.0.0.1:{port}/ws?rate=16000"), s) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            assert_eq!(resp.status().as_u16(), 503)
        }
        other => panic!("a fifth session was not refused: {:?}", other.map(|_| ())),
    }
    // 100 connections that send nothing (and one that stops mid-request).
    let mut quiet: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    let mut half = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    half.write_all(b"GET /v1/model HTTP/1.1\r\nHost: x\r\n")
        .expect("half a request");
    quiet.push(half);
    let t = Instant::now();
    let (status, info) = server.http("GET", "/v1/model", b"");
    assert_eq!(status, 200, "{info}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let (status, body) = server.http("POST", "/v1/predict", &clip);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, good);

    // After the idle timeout the server closes them all, sessions with a reason.
    for w in &mut idle {
        let r = read_to_end(w);
        let (code, reason) = r.close.expect("a Close");
        assert_eq!(code, CloseCode::Normal);
        assert!(reason.contains("idle"), "{reason}");
    }
    for s in &mut quiet {
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut buf = [0u8; 1024];
        let closed = match s.read(&mut buf) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "an idle connection was not closed");
    }
    // The slots are free again.
    let mut w = ws(port, 16000);
    send_audio(&mut w, &speech(4.0));
    w.send(Message::text(r#"{"end": true}"#)).expect("end");
    assert_eq!(read_to_end(&mut w).segments.len(), 2);
    drop(idle);
    drop(quiet);
    assert!(server.alive());
    server.assert_wrote_nothing();
    server.assert_memory_back(base, "idle connections");
}
