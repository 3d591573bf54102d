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
