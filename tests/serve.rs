//! `sermo serve` end to end: headless Chromium opens the live page with a fake
//! microphone playing a demo clip; the page draws the predictions it receives over
//! the WebSocket, and they equal `sermo infer` on the same audio (the session's
//! audio as the server received it, saved with `--record`). Also `POST
//! /v1/predict`: a good upload gives the same predictions as `sermo infer` on the
//! file (with the class names beside the probabilities), a bad one a 4xx with a
//! message, an oversized one 413. And the page's header and upload, driven in
//! headless Chromium through chromedriver: the model's name, classes and rate
//! shown, a file given to the picker and a file dropped on the drop zone drawn
//! with `sermo infer`'s predictions, a bad file's error shown.
//! Needs Debian's `chromium` and `chromium-driver` (installed by `.ci/run`);
//! skips with a message without (fails under `CI=true`).

mod common;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{demo_features, sermo_bin, train_demo};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A confident small model: an mlp fitted to the EmoDB demo clips of speaker 03.
fn model(dir: &Path) -> PathBuf {
    demo_features(dir);
    train_demo(
        dir,
        "model",
        "model = \"mlp\"\nfeatures = [\"stacked\"]\nepochs = 40\nbatch_size = 4\nlearning_rate = 5e-3\nsplit = { by = \"speaker\", test = [\"08\"] }\n",
    )
}

/// Start `sermo serve` with fixed 3-s segments (`--no-vad`: what most tests
/// here count) on a free port; returns the process, its port and a channel of
/// its stdout lines.
fn serve(model: &Path, extra: &[&str]) -> (Killed, u16, std::sync::mpsc::Receiver<String>) {
    let mut args = vec!["--no-vad"];
    args.extend_from_slice(extra);
    serve_as(model, &args)
}

/// Start `sermo serve` with its defaults and `extra`.
fn serve_as(model: &Path, extra: &[&str]) -> (Killed, u16, std::sync::mpsc::Receiver<String>) {
    let mut args = vec!["--model", model.to_str().unwrap()];
    args.extend_from_slice(extra);
    start_serve(&args, &[])
}

/// Start `sermo serve --port 0 ARGS` with `envs` set; the server, its port and
/// its stdout lines after the first.
fn start_serve(
    args: &[&str],
    envs: &[(&str, &Path)],
) -> (Killed, u16, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(sermo_bin())
        .args(["serve", "--port", "0"])
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve printed nothing");
    let port: u16 = first
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    (Killed(child), port, rx)
}

fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    request(port, method, path, "application/octet-stream", body)
}

/// One HTTP/1.1 request on a fresh connection: the status and the body. The
/// body is read to its `Content-Length` (chromedriver keeps the connection open
/// whatever `Connection: close` says), else to the end of the stream.
fn request(port: u16, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body); // a refusal may close before reading it all
    let mut r = std::io::BufReader::new(s);
    let (mut status, mut len) = (0, None);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if status == 0 {
            status = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
        } else if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse::<usize>().ok();
        }
    }
    let mut resp = Vec::new();
    match len {
        Some(n) => {
            resp.resize(n, 0);
            let _ = r.read_exact(&mut resp);
        }
        None => {
            let _ = r.read_to_end(&mut resp);
        }
    }
    (status, String::from_utf8_lossy(&resp).to_string())
}

/// `sermo infer` on `file`: (segment, label, confidence) per line of its jsonl.
fn infer(model: &Path, file: &Path, dir: &Path) -> Vec<serde_json::Value> {
    run_infer(model, file, dir, false)
}

/// `sermo infer` on `file`, given as a path or (`stdin`) streamed on stdin as `-`;
/// the lines of its jsonl.
fn run_infer(model: &Path, file: &Path, dir: &Path, stdin: bool) -> Vec<serde_json::Value> {
    let out = dir.join(format!(
        "{}{}.jsonl",
        file.file_name().unwrap().to_string_lossy(),
        if stdin { ".stdin" } else { "" }
    ));
    let mut cmd = Command::new(sermo_bin());
    cmd.args(["infer", "--model", model.to_str().unwrap()]);
    if stdin {
        cmd.arg("-").stdin(std::fs::File::open(file).unwrap());
    } else {
        cmd.arg(file);
    }
    let o = cmd.arg("--out").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn predict_api_matches_sermo_infer_and_rejects_bad_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let (_server, port, _rx) = serve(&m, &["--max-upload-mb", "1"]);
    let clip = root().join("examples/audio/ravdess/03-01-05-01-01-01-01.flac");
    let (status, body) = http(port, "POST", "/v1/predict", &std::fs::read(&clip).unwrap());
    assert_eq!(status, 200, "{body}");
    let got: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let want = infer(&m, &clip, dir.path());
    assert_eq!(got.len(), want.len());
    let (status, info) = http(port, "GET", "/v1/model", b"");
    assert_eq!(status, 200, "{info}");
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    let classes: Vec<String> = serde_json::from_value(info["classes"].clone()).unwrap();
    assert_eq!(info["model"]["name"], "model");
    assert_eq!(info["model"]["architecture"], "mlp");
    assert_eq!(info["model"]["features"], serde_json::json!(["stacked"]));
    assert_eq!(info["sample_rate"], 16000);
    assert_eq!(info["segment_s"], 3.0);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["label"], w["label"]);
        assert_eq!(g["probs"], w["probs"]);
        assert_eq!(g["start_s"], w["start_s"]);
        // The class names next to the probabilities.
        let by_class = g["by_class"].as_object().unwrap();
        assert_eq!(by_class.len(), classes.len(), "{g}");
        for (c, p) in classes.iter().zip(w["probs"].as_array().unwrap()) {
            assert_eq!(&by_class[c], p, "{c}: {g}");
        }
    }
    let (status, body) = http(port, "POST", "/v1/predict", b"definitely not audio");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("not usable audio"), "{body}");
    let (status, body) = http(port, "POST", "/v1/predict", b"");
    assert_eq!(status, 400, "{body}");
    let (status, _) = http(port, "POST", "/v1/predict", &vec![0u8; 2 * 1024 * 1024]);
    assert_eq!(status, 413);
    // The server is still up.
    let (status, page) = http(port, "GET", "/", b"");
    assert_eq!(status, 200);
    assert!(page.contains("getUserMedia"));
}

#[test]
fn serve_cuts_along_speech_by_default_as_sermo_infer_vad_does() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let (_server, port, _rx) = serve_as(&m, &["--min-confidence", "0.6"]);
    // The demo clips between silences of 0.4–3 s.
    let rec = common::speech::build(&root().join("examples/audio/emodb"), 1);
    let wav = dir.path().join("talk.wav");
    common::write_wav_i16(&wav, 16_000, &rec.samples);
    let (status, body) = http(port, "POST", "/v1/predict", &std::fs::read(&wav).unwrap());
    assert_eq!(status, 200, "{body}");
    let got: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let out = dir.path().join("vad.jsonl");
    let (ok, _, err) = common::sermo(&[
        "infer",
        "--vad",
        "--min-confidence",
        "0.6",
        "--model",
        m.to_str().unwrap(),
        wav.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let want: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        for k in ["label", "probs", "start_s", "end_s", "confidence"] {
            assert_eq!(g[k], w[k], "{k}: {g} vs {w}");
        }
    }
    assert!(got.iter().any(|g| g["label"] == "silence"), "{body}");
    let (_, info) = http(port, "GET", "/v1/model", b"");
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["vad"], true);
    assert_eq!(info["min_confidence"], 0.6);
}

/// Without `--model`, `sermo serve` serves the default model built into sermo
/// (models/default): `/v1/model` names it, and an upload gives what `sermo infer
/// --vad --model models/default` gives for the same file.
#[test]
fn serve_without_a_model_serves_the_default_model() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (_server, port, _rx) = start_serve(&[], &[("XDG_CACHE_HOME", &cache)]);
    let (status, info) = http(port, "GET", "/v1/model", b"");
    assert_eq!(status, 200, "{info}");
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["model"]["name"], "default");
    assert_eq!(info["model"]["architecture"], "attention_fcn");
    assert_eq!(
        info["classes"],
        serde_json::json!(["angry", "disgust", "fearful", "happy", "neutral", "sad"])
    );
    let clip = root().join("examples/audio/ravdess/03-01-05-01-01-01-01.flac");
    let (status, body) = http(port, "POST", "/v1/predict", &std::fs::read(&clip).unwrap());
    assert_eq!(status, 200, "{body}");
    let got: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let out = dir.path().join("want.jsonl");
    let o = Command::new(sermo_bin())
        .args(["infer", "--vad", "--model"])
        .arg(root().join("models/default"))
        .arg(&clip)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got.len(), want.len(), "{body}");
    for (g, w) in got.iter().zip(&want) {
        for k in ["label", "probs", "start_s", "end_s"] {
            assert_eq!(g[k], w[k], "{k}: {g} vs {w}");
        }
    }
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

#[test]
fn the_live_page_gets_the_predictions_sermo_infer_makes_for_the_same_audio() {
    let Some(chrome) = chromium() else {
        common::skip_unless_ci(
            "the_live_page_gets_the_predictions_sermo_infer_makes_for_the_same_audio",
            "Debian's chromium is not installed (.ci/run installs it)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    // The fake microphone plays the first 9.5 s of the demo recording (looped).
    let long = std::fs::read(root().join("examples/audio/long/demo_long.wav")).unwrap();
    let data_at = long.windows(4).position(|w| w == b"data").unwrap() + 8;
    let pcm = &long[data_at..data_at + (9.5 * 16000.0) as usize * 2];
    let clip = dir.path().join("clip.wav");
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + pcm.len() as u32).to_le_bytes());
    wav.extend_from_slice(&long[8..data_at - 4]);
    wav.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    wav.extend_from_slice(pcm);
    std::fs::write(&clip, &wav).unwrap();
    let rec = dir.path().join("rec");
    let (server, port, rx) = serve(&m, &["--record", rec.to_str().unwrap()]);
    let profile = dir.path().join("profile");
    let browser = Killed(
        Command::new(&chrome)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--autoplay-policy=no-user-gesture-required",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                &format!("--use-file-for-fake-audio-capture={}", clip.display()),
                &format!("--user-data-dir={}", profile.display()),
                "--remote-debugging-port=0",
                &format!("http://127.0.0.1:{port}/?auto=1"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The page acknowledges each prediction it drew; wait for three.
    let mut drawn = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while drawn.len() < 3 && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200))
            && let Some(rest) = l.strip_prefix("sermo serve: page drew segment ")
        {
            drawn.push(rest.to_string());
        }
    }
    drop(browser); // closes the socket: the session ends and its recording is written
    std::thread::sleep(Duration::from_millis(1500));
    drop(server);
    assert!(drawn.len() >= 3, "the page drew {drawn:?} in 60 s");
    // The same audio through `sermo infer`.
    let recorded = rec.join("session-0.wav");
    let want = infer(&m, &recorded, dir.path());
    for (k, d) in drawn.iter().enumerate() {
        let label = want[k]["label"].as_str().unwrap();
        assert_eq!(
            d,
            &format!("{k} \"{label}\""),
            "segment {k}: page {d}, sermo infer {label}"
        );
    }
    // And the recording is the clip: loud enough, at the page's rate.
    let bytes = std::fs::read(&recorded).unwrap();
    let rate = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
    let samples: Vec<f32> = bytes[44..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert!(
        samples.len() as f64 / rate as f64 >= 9.0,
        "{} samples at {rate}",
        samples.len()
    );
    let rms = (samples.iter().map(|x| x * x).sum::<f32>() / samples.len() as f32).sqrt();
    assert!(
        rms > 0.01,
        "the fake microphone delivered silence (rms {rms})"
    );
}

/// A 16-bit mono WAV of `n` frames at `rate`: tones with a slow envelope and a
/// little noise (deterministic), something for the model to score.
fn tone_wav(path: &Path, rate: u32, n: usize) {
    let mut x: u32 = 0x9e37_79b9;
    let samples: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let env = 0.5 + 0.5 * (t * 0.7).sin();
            let f = 180.0 + 40.0 * (t * 0.3).sin();
            let v = env * 0.3 * (t * 2.0 * std::f64::consts::PI * f).sin()
                + 0.02 * (x as f64 / u32::MAX as f64 - 0.5);
            v as f32
        })
        .collect();
    common::write_wav_i16(path, rate, &samples);
}

fn same_segments(what: &str, got: &[serde_json::Value], want: &[serde_json::Value]) {
    assert_eq!(got.len(), want.len(), "{what}: segment count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g["start_s"], w["start_s"], "{what}");
        assert_eq!(g["end_s"], w["end_s"], "{what}");
        assert_eq!(g["label"], w["label"], "{what}: {g} vs {w}");
        let (gp, wp) = (
            g["probs"].as_array().unwrap(),
            w["probs"].as_array().unwrap(),
        );
        for (a, b) in gp.iter().zip(wp) {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((a - b).abs() < 1e-4, "{what}: {g} vs {w}");
        }
    }
}

/// Issue 26 item 1: a recording whose length is a multiple of the decode chunk
/// (30 s by default) and resampled on the way (22.05 → 16 kHz) keeps its last
/// segment in `sermo infer FILE`, `sermo infer -` (stdin) and `POST
/// /v1/predict`, and the three agree segment for segment; lengths ±1 sample.
#[test]
fn recordings_on_chunk_boundaries_keep_their_last_segment_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let (_server, port, _rx) = serve(&m, &[]);
    let rate = 22_050usize;
    for n in [30 * rate, 60 * rate - 1, 60 * rate, 60 * rate + 1] {
        let f = dir.path().join(format!("rec_{n}.wav"));
        tone_wav(&f, rate as u32, n);
        let file = infer(&m, &f, dir.path());
        // 3-s segments; a final shorter one is kept when it is long enough.
        let secs = n as f64 / rate as f64;
        assert!(
            file.len() >= (secs / 3.0).floor() as usize,
            "{n} frames: {} segments",
            file.len()
        );
        let last_end = file.last().unwrap()["end_s"].as_f64().unwrap();
        eprintln!(
            "{n} frames ({secs} s): {} segments, the last ends at {last_end} s",
            file.len()
        );
        assert!(
            last_end >= (secs / 3.0).floor() * 3.0 - 1e-6,
            "{n} frames: the segments end at {last_end} s of {secs} s"
        );
        let stdin = run_infer(&m, &f, dir.path(), true);
        same_segments(&format!("{n} frames, stdin"), &stdin, &file);
        let (status, body) = http(port, "POST", "/v1/predict", &std::fs::read(&f).unwrap());
        assert_eq!(status, 200, "{body}");
        let upload: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        same_segments(&format!("{n} frames, upload"), &upload, &file);
    }
}

/// A WebDriver command to chromedriver on `port`: the response's `value`.
fn wd(port: u16, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, json) = request(
        port,
        method,
        path,
        "application/json; charset=utf-8",
        body.as_bytes(),
    );
    let v: serde_json::Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("chromedriver {method} {path}: HTTP {status}: {e}: {json}"));
    assert!(
        v["value"].get("error").is_none(),
        "chromedriver {method} {path}: {v}"
    );
    v["value"].clone()
}

/// Run `script` in the page (WebDriver execute/sync) with `args`.
fn js(port: u16, session: &str, script: &str, args: serde_json::Value) -> serde_json::Value {
    wd(
        port,
        "POST",
        &format!("/session/{session}/execute/sync"),
        Some(serde_json::json!({ "script": script, "args": args })),
    )
}

/// Poll `script` until it returns something other than null (or `secs` pass).
fn wait_for(port: u16, session: &str, script: &str, secs: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = js(port, session, script, serde_json::json!([]));
        if !v.is_null() || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Issue 28 item 6: the page shows the model's name, classes and sample rate;
/// a file chosen with the picker and a file dropped on the drop zone are sent to
/// `POST /v1/predict` and drawn with exactly `sermo infer`'s predictions; a file
/// that is not audio shows the server's error. Driven through chromedriver
/// (WebDriver over HTTP), the drop as the browser's own DragEvent with a
/// DataTransfer holding the file.
#[test]
fn the_page_shows_the_model_and_draws_uploaded_and_dropped_files() {
    const TEST: &str = "the_page_shows_the_model_and_draws_uploaded_and_dropped_files";
    let (Some(chrome), Some(driver)) = (
        chromium(),
        ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists()),
    ) else {
        common::skip_unless_ci(
            TEST,
            "Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let (_server, port, _rx) = serve(&m, &[]);
    let wd_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _driver = Killed(
        Command::new(&driver)
            .arg(format!("--port={wd_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", wd_port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let profile = dir.path().join("profile");
    let session = wd(
        wd_port,
        "POST",
        "/session",
        Some(serde_json::json!({ "capabilities": { "alwaysMatch": {
            "goog:chromeOptions": {
                "binary": chrome.display().to_string(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", format!("--user-data-dir={}", profile.display())],
            }
        }}})),
    );
    let sid = session["sessionId"].as_str().unwrap().to_string();
    struct Session(u16, String);
    impl Drop for Session {
        fn drop(&mut self) {
            let _ = std::panic::catch_unwind(|| {
                wd(self.0, "DELETE", &format!("/session/{}", self.1), None)
            });
        }
    }
    let _session = Session(wd_port, sid.clone());
    wd(
        wd_port,
        "POST",
        &format!("/session/{sid}/url"),
        Some(serde_json::json!({ "url": format!("http://127.0.0.1:{port}/") })),
    );

    // The header: name, architecture, features, rate, and one chip per class.
    let model = wait_for(wd_port, &sid, "return window.sermoModel || null", 30);
    let classes: Vec<String> = serde_json::from_value(model["classes"].clone()).unwrap();
    let header = js(
        wd_port,
        &sid,
        "return document.getElementById('model').textContent",
        serde_json::json!([]),
    );
    let header = header.as_str().unwrap();
    for want in [
        "Model: model (",
        "mlp",
        "features stacked",
        "16000 Hz",
        "3-s segments",
    ] {
        assert!(
            header.contains(want),
            "{want:?} not in the header {header:?}"
        );
    }
    let chips = js(
        wd_port,
        &sid,
        "return [...document.querySelectorAll('#legend .chip')].map(c => c.textContent)",
        serde_json::json!([]),
    );
    assert_eq!(chips, serde_json::json!(classes));

    // A file given to the picker (WebDriver sends its path to the <input>).
    let picked = root().join("examples/audio/ravdess/03-01-05-01-01-01-01.flac");
    let input = wd(
        wd_port,
        "POST",
        &format!("/session/{sid}/element"),
        Some(serde_json::json!({ "using": "css selector", "value": "#file" })),
    );
    let eid = input
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|v| v.as_str())
        .unwrap()
        .to_string();
    wd(
        wd_port,
        "POST",
        &format!("/session/{sid}/element/{eid}/value"),
        Some(serde_json::json!({ "text": picked.display().to_string() })),
    );
    wait_for(
        wd_port,
        &sid,
        "return window.sermoUploads.length >= 1 ? true : null",
        60,
    );

    // A file dropped on the drop zone, then a file that is not audio.
    let dropped = root().join("examples/audio/emodb/08a01Wa.wav");
    let drop_script = "const [bytes, name] = arguments;
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], name));
        const zone = document.getElementById('drop');
        for (const type of ['dragenter', 'dragover', 'drop'])
          zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
        return true;";
    js(
        wd_port,
        &sid,
        drop_script,
        serde_json::json!([std::fs::read(&dropped).unwrap(), "08a01Wa.wav"]),
    );
    wait_for(
        wd_port,
        &sid,
        "return window.sermoUploads.length >= 2 ? true : null",
        60,
    );
    js(
        wd_port,
        &sid,
        drop_script,
        serde_json::json!([b"definitely not audio".to_vec(), "notes.txt"]),
    );
    let uploads = wait_for(
        wd_port,
        &sid,
        "return window.sermoUploads.length >= 3 ? window.sermoUploads : null",
        60,
    );
    let uploads = uploads.as_array().expect("three uploads in 60 s");

    let mut drawn = 0;
    for (k, (name, file)) in [
        ("03-01-05-01-01-01-01.flac", &picked),
        ("08a01Wa.wav", &dropped),
    ]
    .into_iter()
    .enumerate()
    {
        let u = &uploads[k];
        assert_eq!(u["name"], name, "{u}");
        assert_eq!(u["status"], 200, "{u}");
        let got = u["predictions"].as_array().unwrap();
        let want = infer(&m, file, dir.path());
        assert_eq!(got.len(), want.len(), "{name}");
        // Numbers went through the browser's JSON (0.0 comes back as 0):
        // compared as f64, exactly.
        let num = |v: &serde_json::Value| v.as_f64().unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g["label"], w["label"], "{name}");
            assert_eq!(num(&g["start_s"]), num(&w["start_s"]), "{name}");
            let (gp, wp) = (
                g["probs"].as_array().unwrap(),
                w["probs"].as_array().unwrap(),
            );
            assert_eq!(gp.len(), wp.len(), "{name}");
            for (a, b) in gp.iter().zip(wp) {
                assert_eq!(num(a), num(b), "{name}: {g} vs {w}");
            }
        }
        drawn += got.len();
    }
    assert_eq!(uploads[2]["name"], "notes.txt");
    assert_eq!(uploads[2]["status"], 422, "{}", uploads[2]);
    assert!(
        uploads[2]["error"]
            .as_str()
            .unwrap()
            .contains("not usable audio"),
        "{}",
        uploads[2]
    );
    // What the page shows: a box per drawn segment, the error in words.
    let shown = js(
        wd_port,
        &sid,
        "return { segs: document.querySelectorAll('#uploads .seg').length,
                  errors: [...document.querySelectorAll('#uploads .error')].map(e => e.textContent),
                  status: document.getElementById('upload-status').textContent }",
        serde_json::json!([]),
    );
    assert_eq!(shown["segs"], drawn, "{shown}");
    let errors = shown["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{shown}");
    assert!(
        errors[0].as_str().unwrap().starts_with("HTTP 422: "),
        "{shown}"
    );
    assert_eq!(shown["status"], "3 files analysed");
    if let Ok(dir) = std::env::var("SERMO_SCREENSHOT_DIR") {
        wd(
            wd_port,
            "POST",
            &format!("/session/{sid}/window/rect"),
            Some(serde_json::json!({ "width": 1000, "height": 1100 })),
        );
        let png = wd(wd_port, "GET", &format!("/session/{sid}/screenshot"), None);
        let b64 = png.as_str().unwrap_or_default();
        std::fs::write(Path::new(&dir).join("serve-page.b64"), b64).unwrap();
    }
}
