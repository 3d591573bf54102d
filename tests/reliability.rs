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
