//! Skipped tests are visible (issue 28 item 7): `common::skip` records a test
//! that did not run, `common::skip_unless_ci` fails it under `CI=true`, and
//! `.ci/test` (the README's test command) ends with one line naming every
//! skipped test and why.

mod common;

use std::path::Path;
use std::process::Command;

/// Does nothing unless `SERMO_SKIP_PROBE` is set: then it skips the way a test
/// missing a dependency that `.ci/run` installs does. Run as a child process by
/// the test below, with the environment it needs.
#[test]
fn skip_probe() {
    if std::env::var_os("SERMO_SKIP_PROBE").is_some() {
        common::skip_unless_ci("skip_probe", "python3 with polars is not available");
    }
}

fn probe(ci: &str, log: &Path) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["skip_probe", "--exact", "--test-threads", "1"])
        .env("SERMO_SKIP_PROBE", "1")
        .env("SERMO_SKIP_LOG", log)
        .env("CI", ci)
        .output()
        .unwrap()
}

#[test]
fn a_skip_shows_is_logged_and_fails_under_ci() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("skips");

    // Outside CI: the test passes, the SKIP line reaches the terminal although
    // libtest captures the test's output, and the log holds one record.
    let out = probe("", &log);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("SKIP skip_probe: python3 with polars is not available"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "skip_probe\tpython3 with polars is not available\n"
    );

    // Under CI=true the same missing dependency is a failure, not a skip.
    let out = probe("true", &log);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("under CI=true this fails instead of skipping, because .ci/run installs it"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
}

/// `.ci/test` with a stand-in `cargo` that prints what `cargo test` prints
/// (two test binaries, one skip recorded, one ignored test): the last line
/// counts and names them, and the exit status is cargo's.
#[test]
fn ci_test_ends_with_the_list_of_skipped_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("cargo");
    std::fs::write(
        &fake,
        r#"#!/usr/bin/env bash
printf 'skip_probe\tno ../shared/corpora/emodb\n' >> "$SERMO_SKIP_LOG"
echo "test a ... ok"
echo "test speed ... ignored, prints throughput; run with --ignored"
echo "test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.1s"
echo "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s"
exit "${FAKE_RC:-0}"
"#,
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for rc in [0, 101] {
        let out = Command::new("bash")
            .arg(root.join(".ci/test"))
            .env("PATH", &path)
            .env("FAKE_RC", rc.to_string())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(rc), "{text}");
        let last = text.lines().last().unwrap_or_default();
        let mut want = "sermo tests: 7 passed, 0 failed, 1 skipped: skip_probe: no ../shared/corpora/emodb; 1 ignored (opt-in, run with --ignored): speed".to_string();
        if rc != 0 {
            want.push_str("; cargo test exited 101");
        }
        assert_eq!(last, want, "{text}");
        assert!(
            text.contains("skipped tests:\n  skip_probe: no ../shared/corpora/emodb\n"),
            "{text}"
        );
    }
}
