//! Hostile inputs and concurrent writers (issue 26, items 3 and 5). Every test
//! builds its hostile input itself and runs the built `sermo` under a time limit,
//! so a regression that hangs fails instead of stalling the suite.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};

/// Output of a `sermo` run that finished in time.
struct Ran {
    code: Option<i32>,
    stderr: String,
}

/// Wait for `child`, killing it (and failing the test) after `limit`.
fn wait_for(mut child: Child, limit: Duration, what: &str) -> Ran {
    let start = Instant::now();
    loop {
        match child.try_wait().expect("wait") {
            Some(status) => {
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                return Ran {
                    code: status.code(),
                    stderr,
                };
            }
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {limit:?}: it hangs");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn spawn(args: &[&str]) -> Child {
    Command::new(common::sermo_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sermo")
}

fn run(args: &[&str]) -> Ran {
    wait_for(spawn(args), Duration::from_secs(120), &args.join(" "))
}

/// `clip_id`s of a sink directory's part files, with their row counts.
fn clip_rows(dir: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for b in common::read_parts(dir) {
        let ids = b.column_by_name("clip_id").unwrap().as_string::<i32>();
        for i in 0..ids.len() {
            *out.entry(ids.value(i).to_string()).or_insert(0) += 1;
        }
    }
    out
}

/// (clip_id, reason) of `_quarantine.parquet`.
fn quarantined(dir: &Path) -> Vec<(String, String)> {
    let f = std::fs::File::open(dir.join("_quarantine.parquet")).expect("_quarantine.parquet");
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for b in r {
        let b = b.unwrap();
        let id = b.column_by_name("clip_id").unwrap().as_string::<i32>();
        let reason = b.column_by_name("reason").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            out.push((id.value(i).to_string(), reason.value(i).to_string()));
        }
    }
    out.sort();
    out
}

/// files → decode → parquet sink `out` (mode `mode`).
fn decode_pipeline(dir: &Path, paths: &[String], mode: &str) -> PathBuf {
    let list: Vec<String> = paths
        .iter()
        .map(|p| toml::Value::String(p.clone()).to_string())
        .collect();
    let text = format!(
        r#"[pipeline]
name = "hostile"
[sources.clips]
kind = "files"
paths = [{}]
[stages.audio]
kind = "decode"
input = "clips"
[sinks.out]
kind = "parquet"
input = "audio"
path = "out"
mode = "{mode}"
"#,
        list.join(", ")
    );
    let p = dir.join("p.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn fifos_sockets_devices_directories_and_link_loops() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("in");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    common::write_wav_i16(&d.join("a.wav"), 16000, &common::tone(16000, 0.5, 1));
    common::write_wav_i16(&d.join("sub/b.wav"), 16000, &common::tone(16000, 0.5, 2));
    // A FIFO: opened for reading, it would wait for a writer forever.
    let st = Command::new("mkfifo")
        .arg(d.join("pipe.wav"))
        .status()
        .unwrap();
    assert!(st.success());
    // A socket, a directory named like audio, a link to a real file.
    let _listener = std::os::unix::net::UnixListener::bind(d.join("sock.wav")).unwrap();
    std::fs::create_dir(d.join("folder.wav")).unwrap();
    symlink(d.join("a.wav"), d.join("sub/alias.wav")).unwrap();
    // Link loops: `**` through them must list each real file once.
    symlink(&d, d.join("sub/loop")).unwrap();
    symlink("..", d.join("sub/up")).unwrap();
    symlink(".", d.join("self")).unwrap();

    let p = decode_pipeline(
        tmp.path(),
        &[
            "in/**/*.wav".into(),
            // Named directly: a FIFO (also matched above), a device, a directory.
            "in/pipe.wav".into(),
            "/dev/zero".into(),
            "in/sub".into(),
        ],
        "overwrite",
    );
    let r = run(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let out = tmp.path().join("out");
    let rows = clip_rows(&out);
    assert_eq!(
        rows,
        BTreeMap::from([("a.wav".to_string(), 1), ("sub/b.wav".to_string(), 1)]),
        "each real file exactly once"
    );
    let q = quarantined(&out);
    let want: Vec<(String, String)> = ["folder.wav", "pipe.wav", "sock.wav", "sub", "zero"]
        .iter()
        .map(|id| (id.to_string(), "not_a_file".to_string()))
        .collect();
    assert_eq!(q, want, "{}", r.stderr);
}

#[test]
fn sermo_infer_on_a_fifo_does_not_hang() {
    // `sermo infer FILE` reads through the same `files` source and decoder: a
    // FIFO is quarantined from its type, never opened, and the run ends (with
    // "every file failed", as for any recording that cannot be read).
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("live.wav");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    common::demo_features(tmp.path());
    let model = common::train_demo(
        tmp.path(),
        "model",
        "model = \"mlp\"\nfeatures = [\"stacked\"]\nepochs = 2\nbatch_size = 4\nsplit = { by = \"speaker\", test = [\"08\"] }\n[sinks.m.params]\nhidden = 8\n",
    );
    let r = run(&[
        "infer",
        "--model",
        model.to_str().unwrap(),
        fifo.to_str().unwrap(),
        "--verbose",
    ]);
    assert!(r.stderr.contains("not_a_file"), "{}", r.stderr);
}

// ---- One writer per table (item 5) ----

/// `stdin` (raw s16le, 16 kHz) → parquet sink `out` (mode `mode`): a run that
/// lasts as long as the test keeps its standard input open.
fn stdin_pipeline(dir: &Path, mode: &str) -> PathBuf {
    let p = dir.join("live.toml");
    std::fs::write(
        &p,
        format!(
            "[pipeline]\nname = \"live\"\n[sources.live]\nkind = \"stdin\"\nformat = \"s16le\"\nrate = 16000\n[sinks.out]\nkind = \"parquet\"\ninput = \"live\"\npath = \"out\"\nmode = \"{mode}\"\n"
        ),
    )
    .unwrap();
    p
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pcm(secs: f32) -> Vec<u8> {
    common::tone(16000, secs, 3)
        .iter()
        .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
        .collect()
}

#[test]
fn a_second_run_on_a_table_being_written_is_refused_naming_the_holder() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let lock = out.join(".sermo.lock");
    let live = stdin_pipeline(tmp.path(), "overwrite");
    let mut first = Command::new(common::sermo_bin())
        .args(["run", live.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = first.id();
    let mut input = first.stdin.take().unwrap();
    input.write_all(&pcm(1.0)).unwrap();
    wait_until("the first run took no lock", || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&format!("\"pid\":{pid}")))
    });
    let staging = tmp.path().join(".out.sermo-staging");
    // The lock is taken before the sink prepares its staging folder.
    wait_until("the first run writes into its staging folder", || {
        staging.is_dir()
    });
    let names = |d: &Path| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect()
    };
    let staged = names(&staging);

    // Same directory, either mode: refused before touching anything.
    for mode in ["overwrite", "resume"] {
        let sub = tmp.path().join(mode);
        std::fs::create_dir_all(&sub).unwrap();
        let wav = sub.join("a.wav");
        common::write_wav_i16(&wav, 16000, &common::tone(16000, 0.5, 1));
        let second = decode_pipeline(&sub, &[wav.display().to_string()], mode);
        // The second pipeline's sink path is `out` beside it: point it at the first's.
        let text = std::fs::read_to_string(&second).unwrap().replace(
            "path = \"out\"",
            &format!("path = {:?}", out.display().to_string()),
        );
        std::fs::write(&second, text).unwrap();
        let r = run(&["run", second.to_str().unwrap()]);
        assert_ne!(r.code, Some(0), "a second writer ran: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!("pid {pid}"))
                && r.stderr.contains("host ")
                && r.stderr.contains("since"),
            "the refusal names the holder: {}",
            r.stderr
        );
        assert!(
            staging.is_dir(),
            "the second run touched the first's staging"
        );
        assert!(
            names(&staging).is_superset(&staged),
            "the second run removed the first's files"
        );
    }
    // The first run ends normally, its table whole, its lock gone.
    input.write_all(&pcm(1.0)).unwrap();
    drop(input);
    let r = wait_for(first, Duration::from_secs(120), "the first run");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(out.join("_SUCCESS").is_file());
    let samples: usize = common::clip_samples(&common::read_parts(&out))
        .iter()
        .map(|(_, s)| s.len())
        .sum();
    assert_eq!(samples, 32000, "the 2 s the first run was sent");
    assert!(!lock.exists(), "the lock file outlived its run");
}

#[test]
fn a_stale_lock_of_a_dead_run_is_taken_over_with_a_notice() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("a.wav");
    common::write_wav_i16(&wav, 16000, &common::tone(16000, 0.5, 1));
    let p = decode_pipeline(tmp.path(), &[wav.display().to_string()], "resume");
    // A run killed with -9 leaves its lock file (not held: the kernel released it).
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    std::fs::write(
        out.join(".sermo.lock"),
        format!(
            "{{\"pid\":{dead_pid},\"host\":\"{}\",\"since\":1700000000,\"what\":\"sermo run\"}}\n",
            host.trim()
        ),
    )
    .unwrap();
    let r = run(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("took over the stale lock")
            && r.stderr.contains(&format!("pid {dead_pid}")),
        "{}",
        r.stderr
    );
    assert_eq!(clip_rows(&out).len(), 1);
    assert!(!out.join(".sermo.lock").exists());
}

#[test]
fn overwrite_onto_a_regular_file_is_refused_and_the_file_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("a.wav");
    common::write_wav_i16(&wav, 16000, &common::tone(16000, 0.5, 1));
    let p = decode_pipeline(tmp.path(), &[wav.display().to_string()], "overwrite");
    let out = tmp.path().join("out");
    std::fs::write(&out, b"my notes, not a table\n").unwrap();
    let r = run(&["run", p.to_str().unwrap()]);
    assert_ne!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("not a table directory"), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"my notes, not a table\n");
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "nothing hidden made beside it: {names:?}"
    );
}

#[test]
fn a_flipped_byte_in_a_committed_part_is_detected_on_read() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("in");
    std::fs::create_dir_all(&d).unwrap();
    for i in 0..3 {
        common::write_wav_i16(
            &d.join(format!("c{i}.wav")),
            16000,
            &common::tone(16000, 0.5, i),
        );
    }
    let p = decode_pipeline(tmp.path(), &["in/*.wav".into()], "resume");
    let r = run(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let out = tmp.path().join("out");
    let parts = common::read_part_files(&out);
    let part = parts[0].0.clone();
    // Flip one byte in the middle of the part (its size unchanged).
    let mut bytes = std::fs::read(&part).unwrap();
    let k = bytes.len() / 2;
    bytes[k] ^= 0x01;
    std::fs::write(&part, &bytes).unwrap();
    let name = part.file_name().unwrap().to_string_lossy().to_string();

    // The parquet source.
    let reader = tmp.path().join("read.toml");
    std::fs::write(
        &reader,
        "[pipeline]\nname = \"r\"\n[sources.t]\nkind = \"parquet\"\npath = \"out\"\n[sinks.d]\nkind = \"discard\"\ninput = \"t\"\n",
    )
    .unwrap();
    let r = run(&["run", reader.to_str().unwrap()]);
    assert_ne!(r.code, Some(0), "altered rows were read: {}", r.stderr);
    assert!(
        r.stderr.contains(&name) && r.stderr.contains("altered"),
        "{}",
        r.stderr
    );
    // `sermo query`.
    let r = run(&[
        "query",
        "select count(*) from t",
        "--table",
        &format!("t={}", out.display()),
    ]);
    assert_ne!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(&name) && r.stderr.contains("altered"),
        "{}",
        r.stderr
    );
    // Resume.
    let r = run(&["run", p.to_str().unwrap()]);
    assert_ne!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(&name) && r.stderr.contains("altered"),
        "{}",
        r.stderr
    );
}

// ---- Bounded headers (item 2) ----

/// A RIFF/WAVE file with the given header fields and `data` bytes of PCM.
fn wav_with(rate: u32, channels: u16, bits: u16, block_align: u16, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&rate.wrapping_mul(block_align as u32).to_le_bytes());
    b.extend_from_slice(&block_align.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// A FLAC stream of one STREAMINFO block declaring `rate` Hz (20 bits: up to
/// 1,048,575) and no frames.
fn flac_declaring(rate: u32) -> Vec<u8> {
    let mut b = b"fLaC".to_vec();
    b.push(0x80); // last metadata block, type 0 (STREAMINFO)
    b.extend_from_slice(&[0, 0, 34]);
    b.extend_from_slice(&4096u16.to_be_bytes()); // min block size
    b.extend_from_slice(&4096u16.to_be_bytes()); // max block size
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // min/max frame size unknown
    // 20 bits rate, 3 bits channels-1 (0), 5 bits bps-1 (15), 36 bits samples (16000).
    let packed: u64 = ((rate as u64) << 44) | (15u64 << 36) | 16_000;
    b.extend_from_slice(&packed.to_be_bytes());
    b.extend_from_slice(&[0u8; 16]); // MD5 unknown
    b
}

/// A file whose header declares an absurd sample rate, channel count or sample
/// size is quarantined (the rate ones as `invalid_format`, naming the value)
/// before anything sized by it is allocated; the good file next to it is kept,
/// with decode → resample → window after it, and the run exits 0.
#[test]
fn absurd_headers_are_quarantined_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("in");
    std::fs::create_dir_all(&d).unwrap();
    common::write_wav_i16(&d.join("good.wav"), 16000, &common::tone(16000, 1.0, 1));
    let pcm = vec![0u8; 1024];
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("rate_u32max.wav", wav_with(u32::MAX, 1, 16, 2, &pcm)),
        ("rate_768001.wav", wav_with(768_001, 1, 16, 2, &pcm)),
        (
            "channels_65535.wav",
            wav_with(16000, 65535, 16, 65534, &pcm),
        ),
        ("channels_100.wav", wav_with(16000, 100, 16, 200, &pcm)),
        ("bits_0.wav", wav_with(16000, 1, 0, 0, &pcm)),
        ("rate_1048575.flac", flac_declaring(1_048_575)),
    ];
    for (name, bytes) in &files {
        std::fs::write(d.join(name), bytes).unwrap();
    }
    let text = r#"[pipeline]
name = "hostile"
[sources.clips]
kind = "files"
paths = ["in/*"]
[stages.audio]
kind = "decode"
input = "clips"
chunk_s = 600
[stages.r]
kind = "resample"
input = "audio"
rate = 16000
[stages.w]
kind = "window"
input = "r"
mode = "segments"
length_s = 0.5
[sinks.out]
kind = "parquet"
input = "w"
path = "out"
"#;
    let p = tmp.path().join("p.toml");
    std::fs::write(&p, text).unwrap();
    let r = run(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let out = tmp.path().join("out");
    let rows = clip_rows(&out);
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        vec!["good.wav"],
        "{}",
        r.stderr
    );
    let q: BTreeMap<String, String> = quarantined(&out).into_iter().collect();
    assert_eq!(
        q.len(),
        files.len(),
        "every hostile file quarantined: {q:?}"
    );
    // (symphonia itself refuses a FLAC rate above 655,350 Hz, as `corrupt`.)
    for name in ["rate_u32max.wav", "rate_768001.wav", "channels_65535.wav"] {
        assert_eq!(
            q.get(name).map(String::as_str),
            Some("invalid_format"),
            "{name}: {q:?}"
        );
    }
    for (name, reason) in &q {
        assert!(
            reason != "decoder_panic",
            "{name}: the decoder panicked instead of refusing the header"
        );
    }
}

/// The stdin reader bounds its WAV header the same way: an error naming the
/// value, exit 1, not an abort.
#[test]
fn a_streamed_wav_declaring_an_absurd_rate_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("live.toml");
    std::fs::write(
        &p,
        "[pipeline]\nname = \"live\"\n[sources.live]\nkind = \"stdin\"\nformat = \"wav\"\n[sinks.out]\nkind = \"parquet\"\ninput = \"live\"\npath = \"out\"\n",
    )
    .unwrap();
    let mut child = Command::new(common::sermo_bin())
        .args(["run", p.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&wav_with(u32::MAX, 1, 16, 2, &[0u8; 4096]));
    }
    let r = wait_for(child, Duration::from_secs(60), "stdin run");
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("4294967295 Hz"), "{}", r.stderr);
}

// ---- One clip, one outcome (item 4) ----

/// (clip_id, reason, partial) of `_quarantine.parquet`.
fn quarantined_partial(dir: &Path) -> Vec<(String, String, bool)> {
    let f = std::fs::File::open(dir.join("_quarantine.parquet")).expect("_quarantine.parquet");
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for b in r {
        let b = b.unwrap();
        let id = b.column_by_name("clip_id").unwrap().as_string::<i32>();
        let reason = b.column_by_name("reason").unwrap().as_string::<i32>();
        let partial = b.column_by_name("partial").unwrap().as_boolean();
        for i in 0..b.num_rows() {
            out.push((
                id.value(i).to_string(),
                reason.value(i).to_string(),
                partial.value(i),
            ));
        }
    }
    out.sort();
    out
}

/// A file that fails half-way (a NaN at 22 s of 25 s, read in 5-s chunks: four
/// chunks were already emitted) is in `_quarantine.parquet` and none of its rows
/// is in the table, also with resample and window after decode and with several
/// clips in flight; `keep_partial = true` keeps the good prefix and marks the
/// record `partial`.
#[test]
fn a_clip_failing_half_way_is_in_the_table_or_quarantined_never_both() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("in");
    std::fs::create_dir_all(&d).unwrap();
    for k in 0..3 {
        common::write_wav_i16(
            &d.join(format!("good{k}.wav")),
            16000,
            &common::tone(16000, 7.0, k),
        );
    }
    let mut late = common::tone(16000, 25.0, 9);
    late[22 * 16000] = f32::NAN;
    common::speech::write_wav_f32(&d.join("late_nan.wav"), 16000, &late);
    for (keep, window) in [(false, false), (false, true), (true, false)] {
        let stages = if window {
            "[stages.r]\nkind = \"resample\"\ninput = \"audio\"\nrate = 8000\n[stages.w]\nkind = \"window\"\ninput = \"r\"\nmode = \"segments\"\nlength_s = 3.0\n"
        } else {
            ""
        };
        let text = format!(
            "[pipeline]\nname = \"half\"\n[sources.clips]\nkind = \"files\"\npaths = [\"in/*.wav\"]\n[stages.audio]\nkind = \"decode\"\ninput = \"clips\"\nchunk_s = 5\n{stages}[sinks.out]\nkind = \"parquet\"\ninput = \"{}\"\npath = \"out\"\nmode = \"overwrite\"\nrows_per_file = 1\nkeep_partial = {keep}\n",
            if window { "w" } else { "audio" }
        );
        let p = tmp.path().join("p.toml");
        std::fs::write(&p, text).unwrap();
        let r = run(&["run", p.to_str().unwrap()]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        let out = tmp.path().join("out");
        let rows = clip_rows(&out);
        let q = quarantined_partial(&out);
        assert_eq!(
            q,
            vec![("late_nan.wav".to_string(), "non_finite".to_string(), keep)],
            "keep_partial = {keep}"
        );
        for k in 0..3 {
            assert!(rows.contains_key(&format!("good{k}.wav")), "{rows:?}");
        }
        match (keep, window) {
            (false, _) => assert!(
                !rows.contains_key("late_nan.wav"),
                "a quarantined clip left rows in the table: {rows:?}"
            ),
            (true, _) => assert_eq!(rows.get("late_nan.wav"), Some(&4), "{rows:?}"),
        }
        // The committed parts hold exactly the rows the ledger says.
        let success: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("_SUCCESS")).unwrap()).unwrap();
        assert_eq!(
            success["rows"].as_u64(),
            Some(rows.values().sum::<usize>() as u64),
            "{success}"
        );
    }
}

/// Every listed path is accounted for: a name that is not valid UTF-8 (which a
/// glob cannot see) is quarantined as `not_utf8` with its bytes shown losslessly,
/// never dropped; two files that would share a `clip_id` (`x.wav` in two
/// folders) get ids that tell them apart.
#[test]
fn every_file_is_accounted_for_and_ids_never_collide() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    for (dir, seed) in [("a", 1), ("b", 2)] {
        std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
        common::write_wav_i16(
            &tmp.path().join(dir).join("x.wav"),
            16000,
            &common::tone(16000, 0.5, seed),
        );
    }
    for name in [&b"\xff\xfe.wav"[..], &b"caf\xe9.wav"[..]] {
        common::write_wav_i16(
            &tmp.path().join("a").join(OsStr::from_bytes(name)),
            16000,
            &common::tone(16000, 0.5, 3),
        );
    }
    let p = decode_pipeline(
        tmp.path(),
        &["a/*.wav".into(), "b/*.wav".into()],
        "overwrite",
    );
    let r = run(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let out = tmp.path().join("out");
    let rows = clip_rows(&out);
    assert_eq!(
        rows,
        BTreeMap::from([("a/x.wav".to_string(), 1), ("b/x.wav".to_string(), 1)]),
        "{}",
        r.stderr
    );
    let q = quarantined(&out);
    assert_eq!(
        q,
        vec![
            ("\\xFF\\xFE.wav".to_string(), "not_utf8".to_string()),
            ("caf\\xE9.wav".to_string(), "not_utf8".to_string()),
        ]
    );
    assert!(r.stderr.contains("4 files"), "{}", r.stderr);
}

/// A decode that yields less audio than the container declares is flagged, never
/// silent: tests/fixtures/hostile/damaged_block.flac (made by the script beside
/// it) has one frame damaged, which the demuxer skips without an error; it is
/// quarantined as `truncated` with its `short_by_s`.
#[test]
fn a_decode_shorter_than_its_header_is_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile/damaged_block.flac");
    let good = tmp.path().join("good.wav");
    common::write_wav_i16(&good, 8000, &common::tone(8000, 2.0, 1));
    let p = decode_pipeline(
        tmp.path(),
        &[
            fixture.to_string_lossy().to_string(),
            good.to_string_lossy().to_string(),
        ],
        "overwrite",
    );
    let r = run(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let out = tmp.path().join("out");
    assert_eq!(clip_rows(&out).keys().collect::<Vec<_>>(), vec!["good.wav"]);
    assert_eq!(
        quarantined(&out),
        vec![("damaged_block.flac".to_string(), "truncated".to_string())]
    );
    let f = std::fs::File::open(out.join("_quarantine.parquet")).unwrap();
    let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let msg = b
        .column_by_name("message")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .to_string();
    assert!(msg.contains("short_by_s = 0.512"), "{msg}");
}

/// Inputs the fuzzer found that make a dependency panic (symphonia's Ogg Vorbis
/// setup asserts on a mutated codebook, `fuzz/regressions/decode/`): the decode
/// stage contains the panic, quarantines the file as `decoder_panic` naming the
/// assertion, and the good file beside it is decoded; the run exits 0.
#[test]
fn fuzz_findings_that_panic_the_decoder_are_quarantined_and_the_run_goes_on() {
    let reg = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/decode");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&reg)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ogg"))
        .collect();
    found.sort();
    assert!(
        !found.is_empty(),
        "no .ogg regressions in {}",
        reg.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("in");
    std::fs::create_dir_all(&d).unwrap();
    common::write_wav_i16(&d.join("good.wav"), 16000, &common::tone(16000, 1.0, 1));
    for f in &found {
        std::fs::copy(f, d.join(f.file_name().unwrap())).unwrap();
    }
    let text = "[pipeline]\nname = \"found\"\n[sources.clips]\nkind = \"files\"\npaths = [\"in/*\"]\n\
                [stages.audio]\nkind = \"decode\"\ninput = \"clips\"\n\
                [sinks.out]\nkind = \"parquet\"\ninput = \"audio\"\npath = \"out\"\n";
    let p = tmp.path().join("p.toml");
    std::fs::write(&p, text).unwrap();
    let r = run(&["run", p.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let out = tmp.path().join("out");
    assert_eq!(
        clip_rows(&out).keys().collect::<Vec<_>>(),
        vec!["good.wav"],
        "{}",
        r.stderr
    );
    let q = quarantined(&out);
    assert_eq!(q.len(), found.len(), "{q:?}");
    assert!(
        q.iter().all(|(_, reason)| reason == "decoder_panic"),
        "{q:?}"
    );
}
