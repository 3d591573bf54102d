//! Ctrl-C mid-run: exit 130, only complete part files, no `_SUCCESS`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigint_leaves_no_half_written_file() {
    let dir = tempfile::tempdir().unwrap();
    // Big enough that the run lasts several seconds with one worker.
    common::generated_corpus(&dir.path().join("wav"), 100, 48000, 8.0);
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        r#"
[sources.clips]
kind = "files"
paths = ["wav/*.wav"]
[stages.audio]
kind = "decode"
input = "clips"
[sinks.table]
kind = "parquet"
input = "audio"
path = "out"
rows_per_file = 4
zstd_level = 12
"#,
    )
    .unwrap();
    let child = Command::new(common::sermo_bin())
        .args(["run", "--quiet", "--threads", "1"])
        .arg(&pipeline)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = dir.path().join("out");
    let start = Instant::now();
    while !out.join("part-00001.parquet").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no part file appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("interrupted"));

    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".tmp")),
        "temporary file left: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n == "_SUCCESS"),
        "interrupted run marked complete"
    );
    let parts: Vec<&String> = names.iter().filter(|n| n.starts_with("part-")).collect();
    assert!(
        parts.len() >= 2 && parts.len() < 25,
        "interrupted mid-run: {parts:?}"
    );
    // Every part under a final name is complete: readable, with all its rows.
    let rows = common::read_parts(&out)
        .iter()
        .map(|b| b.num_rows())
        .sum::<usize>();
    assert_eq!(rows, 4 * parts.len());
}

/// SIGTERM during training stops it between epochs: exit 130, no metrics written as
/// if the run had finished (the train sink runs on a worker thread the engine cannot
/// abort, so training itself has to watch the cancellation).
#[test]
fn sigterm_stops_training_between_epochs() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    common::demo_features(dir.path());
    // Far more epochs than the test could ever wait for.
    let p = common::train_pipeline(
        dir.path(),
        "model",
        "model = \"mlp\"\nfeatures = [\"stacked\"]\nepochs = 100000\nbatch_size = 4\nsplit = { by = \"speaker\", test = [\"03\"] }\n",
    );
    let mut child = Command::new(common::sermo_bin())
        .arg("run")
        .arg(&p)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Training has started once the first epoch is reported.
    while !log.iter().any(|l: &String| l.contains("epoch   1")) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => log.push(l),
            Err(_) => assert!(
                Instant::now() < deadline && child.try_wait().unwrap().is_none(),
                "training never reported an epoch: {log:?}"
            ),
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("training went on after SIGTERM: {log:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    log.extend(rx.try_iter());
    assert_eq!(code, Some(130), "{log:?}");
    assert!(log.iter().any(|l| l.contains("interrupted")), "{log:?}");
    assert!(
        !dir.path().join("model/metrics.json").exists(),
        "an interrupted training wrote final metrics"
    );
}

/// One run trains into a folder at a time: while a training run holds `out`
/// (`.sermo.lock`), a second run on the same folder is refused naming the holder,
/// and the first run's files are untouched.
#[test]
fn a_second_training_run_on_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    common::demo_features(dir.path());
    let p = common::train_pipeline(
        dir.path(),
        "model",
        "model = \"mlp\"\nfeatures = [\"stacked\"]\nepochs = 100000\nbatch_size = 4\nsplit = { by = \"speaker\", test = [\"03\"] }\n",
    );
    let mut first = Command::new(common::sermo_bin())
        .arg("run")
        .arg(&p)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = dir.path().join("model/.sermo.lock");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&lock)
        .is_ok_and(|t| t.contains(&format!("\"pid\":{}", first.id())))
    {
        assert!(
            Instant::now() < deadline && first.try_wait().unwrap().is_none(),
            "the training run took no lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = Command::new(common::sermo_bin())
        .arg("run")
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    let _ = first.kill();
    let _ = first.wait();
    assert!(!second.status.success(), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
}
