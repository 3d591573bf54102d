//! Every validation error, with its exact message, before anything runs.

mod common;

use std::path::Path;
use std::process::Command;

use sermo::config::{ConfigError, PipelineFile};
use sermo::error::SermoError;
use sermo::registry::Registry;

const GOOD: &str = r#"
[pipeline]
name = "t"
[sources.clips]
kind = "files"
paths = ["wav/*.wav"]
[stages.audio]
kind = "decode"
input = "clips"
[sinks.table]
kind = "parquet"
input = "audio"
path = "out/a"
"#;

/// The folder the test pipelines resolve against: `wav/a.wav` exists (a glob
/// that matches nothing is itself an error at validation).
fn base() -> std::path::PathBuf {
    let b = std::env::temp_dir().join(format!("sermo-validation-base-{}", std::process::id()));
    let _ = std::fs::create_dir_all(b.join("wav"));
    let _ = std::fs::write(b.join("wav/a.wav"), b"");
    b
}

fn errors(text: &str) -> Vec<ConfigError> {
    let base = base();
    match PipelineFile::parse(text, &base, &[]).and_then(|f| f.compile(&Registry::builtin())) {
        Ok(_) => Vec::new(),
        Err(SermoError::Config(e)) => e,
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// The single error of `text`, as (path, message).
fn one(text: &str) -> (String, String, Option<String>) {
    let e = errors(text);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    (e[0].path.clone(), e[0].message.clone(), e[0].hint.clone())
}

#[test]
fn the_good_pipeline_is_valid() {
    assert!(errors(GOOD).is_empty(), "{:#?}", errors(GOOD));
}

#[test]
fn unknown_kind_lists_the_known_ones() {
    let (path, msg, hint) = one(&GOOD.replace("kind = \"decode\"", "kind = \"decoder\""));
    assert_eq!(path, "stages.audio.kind");
    assert_eq!(msg, "unknown kind `decoder`");
    assert_eq!(
        hint.as_deref(),
        Some(
            "source kinds: files, parquet, stdin; stage kinds: augment, decode, embed, features, infer, resample, window; sink kinds: discard, parquet, timeline, train"
        )
    );
}

#[test]
fn unknown_key_is_an_error() {
    let (path, msg, _) = one(&GOOD.replace(
        "input = \"clips\"",
        "input = \"clips\"\nchanels = \"first\"",
    ));
    assert_eq!(path, "stages.audio");
    assert!(
        msg.starts_with("unknown field `chanels`, expected one of"),
        "{msg}"
    );
    assert!(msg.contains("`channels`"), "{msg}");
    let (path, msg, _) = one(&GOOD.replace("name = \"t\"", "name = \"t\"\ncapacity = 3"));
    assert_eq!(path, "pipeline");
    assert!(msg.starts_with("unknown field `capacity`"), "{msg}");
    let (path, msg, _) = one(&format!("{GOOD}\n[stage.x]\nkind = \"decode\"\n"));
    assert_eq!(path, "stage");
    assert_eq!(msg, "unknown top-level table `stage`");
}

#[test]
fn missing_input() {
    let (path, msg, hint) = one(&GOOD.replace("input = \"clips\"\n", ""));
    assert_eq!(path, "stages.audio");
    assert_eq!(msg, "missing `input` of stage `audio`");
    assert!(hint.is_some());
}

#[test]
fn input_that_names_nothing() {
    let (path, msg, hint) = one(&GOOD.replace("input = \"clips\"", "input = \"foo\""));
    assert_eq!(path, "stages.audio");
    assert_eq!(
        msg,
        "input `foo` of stage `audio` matches no source or stage"
    );
    assert_eq!(
        hint.as_deref(),
        Some("sources and stages declared: audio, clips")
    );
    let (_, msg, _) = one(&GOOD.replace("input = \"audio\"", "input = \"nope\""));
    // A resample rate of 0 is a bad value too.
    let text = format!("{GOOD}\n[stages.r]\nkind = \"resample\"\ninput = \"audio\"\nrate = 0\n");
    let e = errors(&text);
    assert!(
        e.iter().any(|e| e.path == "stages.r.rate"
            && e.message == "must be a sample rate from 1 to 768000 Hz, got 0"),
        "{e:#?}"
    );
    assert_eq!(
        msg,
        "input `nope` of sink `table` matches no source or stage"
    );
}

#[test]
fn input_naming_a_sink_and_input_on_a_source() {
    let text = GOOD.replace("input = \"clips\"", "input = \"table\"");
    let e = errors(&text);
    assert!(
        e.iter().any(|e| e.message == "input `table` of stage `audio` is a sink; sinks produce nothing"),
        "{e:#?}"
    );
    let (path, msg, _) = one(&GOOD.replace(
        "paths = [\"wav/*.wav\"]",
        "paths = [\"wav/*.wav\"]\ninput = \"audio\"",
    ));
    assert_eq!(path, "sources.clips");
    assert_eq!(msg, "a source takes no `input`");
}

#[test]
fn cycles_are_reported() {
    let text = r#"
[sources.clips]
kind = "files"
paths = ["a.wav"]
[stages.a]
kind = "decode"
inputs = ["clips", "b"]
[stages.b]
kind = "decode"
input = "a"
[sinks.t]
kind = "parquet"
input = "b"
path = "out"
"#;
    let (path, msg, _) = one(text);
    assert_eq!(path, "stages.a");
    assert_eq!(msg, "cycle: `a` -> `b` -> `a`");
}

#[test]
fn a_stage_fed_the_wrong_table_kind() {
    let text = format!(
        "{GOOD}\n[stages.again]\nkind = \"decode\"\ninput = \"audio\"\n[sinks.t2]\nkind = \"parquet\"\ninput = \"again\"\npath = \"out/b\"\n"
    );
    let (path, msg, _) = one(&text);
    assert_eq!(path, "stages.again");
    assert_eq!(
        msg,
        "stage `again` (decode) accepts a files table as input, but input `audio` (decode) produces an audio table"
    );
}

#[test]
fn bad_values() {
    let (path, msg, _) = one(&GOOD.replace("input = \"clips\"", "input = \"clips\"\nchunk_s = 0"));
    assert_eq!(path, "stages.audio.chunk_s");
    assert_eq!(msg, "must be a number of seconds in (0, 600], got 0");
    let (path, msg, _) =
        one(&GOOD.replace("input = \"clips\"", "input = \"clips\"\nchunk_s = -3.5"));
    assert_eq!(path, "stages.audio.chunk_s");
    assert_eq!(msg, "must be a number of seconds in (0, 600], got -3.5");
    let (path, msg, hint) = one(&GOOD.replace("paths = [\"wav/*.wav\"]", "paths = []"));
    assert_eq!(path, "sources.clips.paths");
    assert_eq!(msg, "is empty");
    assert!(hint.is_some());
    let (path, msg, _) = one(&GOOD.replace("name = \"t\"", "name = \"t\"\nchannel_capacity = 0"));
    assert_eq!(path, "pipeline.channel_capacity");
    assert_eq!(msg, "must be at least 1, got 0");
    let (path, msg, _) =
        one(&GOOD.replace("path = \"out/a\"", "path = \"out/a\"\nrows_per_file = -1"));
    assert_eq!(path, "sinks.table.rows_per_file");
    assert_eq!(msg, "must be at least 1, got -1");
    let (path, msg, _) = one(&GOOD.replace(
        "input = \"clips\"",
        "input = \"clips\"\nchannels = \"left\"",
    ));
    assert_eq!(path, "stages.audio.channels");
    assert!(
        msg.starts_with("unknown variant `left`, expected one of `mix`, `first`, `keep`"),
        "{msg}"
    );
}

#[test]
fn sinks_writing_to_the_same_path() {
    let text = format!(
        "{GOOD}\n[sinks.copy]\nkind = \"parquet\"\ninput = \"audio\"\npath = \"out/./x/../a\"\n"
    );
    let (path, msg, _) = one(&text);
    assert_eq!(path, "sinks.table");
    assert_eq!(
        msg,
        format!(
            "sink `table` and sink `copy` both write to `{}`",
            base().join("out/a").display()
        )
    );
}

#[test]
fn several_errors_are_reported_together() {
    let text = r#"
[pipeline]
channel_capacity = 0
[sources.clips]
kind = "files"
paths = []
[stages.audio]
kind = "decoder"
input = "clips"
[stages.other]
kind = "decode"
input = "foo"
chunk_s = -1
[sinks.table]
kind = "parquet"
input = "other"
path = "out"
[sinks.copy]
kind = "parquet"
input = "other"
path = "out"
"#;
    let e = errors(text);
    let got: Vec<String> = e
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect();
    let want = [
        "pipeline.channel_capacity: must be at least 1, got 0",
        "sources.clips.paths: is empty",
        "stages.audio.kind: unknown kind `decoder`",
        "stages.other.chunk_s: must be a number of seconds in (0, 600], got -1",
        "stages.other: input `foo` of stage `other` matches no source or stage",
    ];
    for w in want {
        assert!(got.iter().any(|g| g == w), "missing `{w}` in {got:#?}");
    }
    assert!(got.iter().any(|g| g.contains("both write to")), "{got:#?}");
    assert_eq!(got.len(), 6, "{got:#?}");
    // And the rendering lists them all.
    let rendered = SermoError::Config(e).to_string();
    assert!(
        rendered.starts_with("invalid pipeline: 6 problems"),
        "{rendered}"
    );
}

#[test]
fn overrides_are_validated_too() {
    let f = PipelineFile::parse(GOOD, &base(), &["stages.audio.chunk_s=0".into()]).unwrap();
    match f.compile(&Registry::builtin()) {
        Err(SermoError::Config(e)) => assert_eq!(e[0].path, "stages.audio.chunk_s"),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn cli_validate_exits_2_and_run_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, GOOD.replace("input = \"clips\"", "input = \"foo\"")).unwrap();
    let out = Command::new(common::sermo_bin())
        .arg("validate")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("input `foo` of stage `audio` matches no source or stage"),
        "{err}"
    );

    let out = Command::new(common::sermo_bin())
        .arg("run")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !dir.path().join("out").exists(),
        "an invalid pipeline must run nothing"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(&good, GOOD).unwrap();
    std::fs::create_dir_all(dir.path().join("wav")).unwrap();
    std::fs::write(dir.path().join("wav/a.wav"), b"").unwrap();
    let out = Command::new(common::sermo_bin())
        .arg("validate")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --set applies to validate as well.
    let out = Command::new(common::sermo_bin())
        .args(["validate", "--set", "stages.audio.chunk_s=-2"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn graph_prints_mermaid_with_every_id_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, GOOD).unwrap();
    std::fs::create_dir_all(dir.path().join("wav")).unwrap();
    std::fs::write(dir.path().join("wav/a.wav"), b"").unwrap();
    let out = Command::new(common::sermo_bin())
        .arg("graph")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let g = String::from_utf8_lossy(&out.stdout);
    assert!(g.starts_with("graph LR\n"), "{g}");
    for label in ["clips (files)", "audio (decode)", "table (parquet)"] {
        assert!(g.contains(label), "{g}");
    }
    assert!(
        g.contains("source_clips --> stage_audio") && g.contains("stage_audio --> sink_table"),
        "{g}"
    );
}

/// Every committed pipeline parses and passes every check that does not look at
/// the outside world: with its inputs absent (a fresh clone has no feature tables
/// or models), the only problems left are the missing inputs themselves.
#[test]
fn every_committed_pipeline_is_valid_apart_from_absent_inputs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    // Inputs resolve against a folder that does not exist, so every run is alike.
    let base = Path::new("/nonexistent-base/pipelines");
    let environment = |e: &ConfigError| {
        e.message.contains("does not exist")
            || e.message.contains("cannot read model directory")
            || e.message.contains("matched no files")
    };
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let errs = match PipelineFile::parse(&text, base, &[])
            .and_then(|p| p.compile(&Registry::builtin()))
        {
            Ok(_) => Vec::new(),
            Err(SermoError::Config(e)) => e,
            Err(other) => panic!("{}: {other}", f.display()),
        };
        let real: Vec<&ConfigError> = errs.iter().filter(|e| !environment(e)).collect();
        assert!(real.is_empty(), "{}: {real:#?}", f.display());
    }
}

#[test]
fn a_model_key_that_does_not_apply_is_named() {
    // `heads` is q2l's: on an mlp it used to be ignored silently.
    let text = r#"
[sources.f]
kind = "parquet"
path = "feats.parquet"
[sinks.m]
kind = "train"
input = "f"
model = "mlp"
features = ["stacked"]
cv = { by = "speaker", folds = 2 }
out = "run"
[sinks.m.params]
heads = 4
"#;
    let e = errors(text);
    let mine: Vec<&ConfigError> = e.iter().filter(|e| e.path.starts_with("sinks.m")).collect();
    assert_eq!(mine.len(), 1, "{e:#?}");
    assert_eq!(mine[0].path, "sinks.m.params.heads");
    assert_eq!(
        mine[0].message,
        "does not apply to model `mlp` (its keys: dropout, hidden)"
    );
}

#[test]
fn a_type_error_names_the_key_in_the_users_words() {
    let bad = GOOD.replace("input = \"clips\"", "input = \"clips\"\nchunk_s = \"long\"");
    let (path, msg, _) = one(&bad);
    assert_eq!(path, "stages.audio.chunk_s");
    assert_eq!(msg, "expected a number, got a string \"long\"");
    // The same for a value given with --set.
    let e = match PipelineFile::parse(GOOD, &base(), &["stages.audio.chunk_s=\"x\"".to_string()])
        .and_then(|f| f.compile(&Registry::builtin()))
    {
        Err(SermoError::Config(e)) => e,
        other => panic!("expected a config error, got {:?}", other.err()),
    };
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].path, "stages.audio.chunk_s");
    assert_eq!(e[0].message, "expected a number, got a string \"x\"");
    // A nested table's key: the full path.
    let feat = format!(
        "{GOOD}[stages.f]\nkind = \"features\"\ninput = \"audio\"\n[stages.f.mfcc]\nn_mfcc = \"13\"\n[sinks.f]\nkind = \"discard\"\ninput = \"f\"\n"
    );
    let e = errors(&feat);
    assert!(
        e.iter().any(|e| e.path == "stages.f.mfcc.n_mfcc"
            && e.message.starts_with("expected a non-negative integer")),
        "{e:#?}"
    );
}

/// Issue 26 item 2: every size a pipeline can ask for has an upper bound, checked
/// at validation and named by its key (src/limits.rs), so that no setting can drive
/// an allocation the machine cannot make.
#[test]
fn absurd_sizes_are_refused_at_validation_naming_the_key() {
    let features = |keys: &str| {
        format!(
            "{GOOD}\n[stages.f]\nkind = \"features\"\ninput = \"audio\"\n{keys}\n[stages.f.log_mel]\n"
        )
        .replace("input = \"audio\"\npath", "input = \"f\"\npath")
    };
    let cases: Vec<(String, &str)> = vec![
        (features("n_fft = 1000000000"), "stages.f.n_fft"),
        (features("hop_length = 1000000000"), "stages.f.hop_length"),
        (
            features("n_fft = 512\nwin_length = 1000000000"),
            "stages.f.win_length",
        ),
        (
            features("").replace("[stages.f.log_mel]", "[stages.f.log_mel]\nn_mels = 100000000"),
            "stages.f.log_mel.n_mels",
        ),
        (
            features("[stages.f.zcr]\nframe_length = 1000000000"),
            "stages.f.zcr.frame_length",
        ),
        (
            GOOD.replace("input = \"clips\"", "input = \"clips\"\nchunk_s = 1e12"),
            "stages.audio.chunk_s",
        ),
        (
            format!("{GOOD}\n[stages.w]\nkind = \"window\"\ninput = \"audio\"\nmode = \"segments\"\nlength_s = 1e9\n"),
            "stages.w.length_s",
        ),
        (
            format!("{GOOD}\n[stages.r]\nkind = \"resample\"\ninput = \"audio\"\nrate = 1000000000000\n"),
            "stages.r.rate",
        ),
        (
            GOOD.replace("name = \"t\"", "name = \"t\"\nchannel_capacity = 1000000000"),
            "pipeline.channel_capacity",
        ),
        (
            GOOD.replace("path = \"out/a\"", "path = \"out/a\"\nrow_group_rows = 1000000000"),
            "sinks.table.row_group_rows",
        ),
        (
            GOOD.replace(
                "[sinks.table]\nkind = \"parquet\"\ninput = \"audio\"\npath = \"out/a\"",
                "[sinks.table]\nkind = \"train\"\ninput = \"audio\"\nmodel = \"mlp\"\nfeatures = [\"x\"]\nsplit = { by = \"speaker\", test = [\"03\"] }\nout = \"out/m\"\nbatch_size = 1000000000",
            ),
            "sinks.table.batch_size",
        ),
        (
            GOOD.replace(
                "[sinks.table]\nkind = \"parquet\"\ninput = \"audio\"\npath = \"out/a\"",
                "[sinks.table]\nkind = \"train\"\ninput = \"audio\"\nmodel = \"mlp\"\nfeatures = [\"x\"]\nsplit = { by = \"speaker\", test = [\"03\"] }\nout = \"out/m\"\nepochs = 1000000000",
            ),
            "sinks.table.epochs",
        ),
    ];
    for (text, key) in cases {
        let e = errors(&text);
        let hit = e.iter().find(|e| e.path == key);
        let Some(hit) = hit else {
            panic!("no error at `{key}`: {e:#?}\n{text}");
        };
        assert!(
            hit.message.contains("must be") && hit.message.contains("got"),
            "{key}: {}",
            hit.message
        );
    }
    // The infer stage's batch_size too (its model need not exist for this one).
    let text = format!(
        "{GOOD}\n[stages.i]\nkind = \"infer\"\ninput = \"audio\"\nmodel = \"m\"\nbatch_size = 1000000000\n"
    );
    assert!(
        errors(&text)
            .iter()
            .any(|e| e.path == "stages.i.batch_size"),
        "{:#?}",
        errors(&text)
    );
}

/// `--shard I/N` and `--shards N` are bounded like pipeline sizes (exit 2, the flag
/// named), before anything is read.
#[test]
fn absurd_shard_counts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, GOOD).unwrap();
    let out = Command::new(common::sermo_bin())
        .args(["run", "--shard", "0/4000000000"])
        .arg(&good)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--shard") && err.contains("100000"), "{err}");
    for cmd in ["commit", "status"] {
        let out = Command::new(common::sermo_bin())
            .args([cmd, "--shards", "4000000000"])
            .arg(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(err.contains("--shards"), "{err}");
    }
}

/// Issue 28 item 2: a glob that matches no file is an error of `sermo validate`
/// (exit 2), naming the pattern and the folder it looked in; a plain path that
/// does not exist is left to the run (quarantined as missing, like a file that
/// disappears).
#[test]
fn a_glob_matching_no_file_is_a_validation_error_naming_the_folder() {
    let (path, msg, hint) = one(&GOOD.replace("wav/*.wav", "wave/*.wav"));
    assert_eq!(path, "sources.clips.paths");
    assert!(msg.contains("`wave/*.wav` matched no files"), "{msg}");
    let hint = hint.expect("a hint");
    assert!(
        hint.contains(&format!("looked in {}", base().join("wave").display())),
        "{hint}"
    );
    // Through the CLI: exit 2, the message on stderr.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(&p, GOOD.replace("wav/*.wav", "nowhere/**/*.flac")).unwrap();
    let o = Command::new(common::sermo_bin())
        .args(["validate", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("matched no files") && err.contains("nowhere"),
        "{err}"
    );
    // A plain file name is not a glob: valid now, quarantined if still missing.
    assert!(errors(&GOOD.replace("wav/*.wav", "missing.wav")).is_empty());
}
