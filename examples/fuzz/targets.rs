//! The fuzz targets: bytes → one public sermo entry point, shared by the fuzzer
//! (`examples/fuzz/main.rs`) and the corpus replay test (`tests/fuzz_replay.rs`).
//!
//! A target returns a short *outcome* (`ok:...`, `open:corrupt:...`): errors are
//! expected results, only a panic (or an abort, a hang, a runaway allocation,
//! which the fuzzer watches for from outside) is a finding. The outcome's shape,
//! numbers blanked, tells the fuzzer that an input reached new behaviour.
//! Invariants the callers rely on (a decoded chunk no longer than asked for, one
//! `last` chunk, no chunk after it, ...) are asserted here, so breaking one is a
//! panic like any other.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sermo::audio::ClipReader;
use sermo::audio::pcm::{Chunk, Encoding, Layout, read_wav_header, reader_thread};
use sermo::config::PipelineFile;
use sermo::labels::{BuiltinScheme, CsvSpec, LabelFilter, LabelSpec, Labeler, RegexSpec};
use sermo::ops::parquet::filter::Filter;
use sermo::registry::Registry;

/// One fuzz target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Bytes as a file → `ClipReader::open` + `next_chunk` to the end (every
    /// container symphonia probes: WAV/RF64, FLAC, MP3, OGG, AIFF, CAF, MP4, ...).
    Decode,
    /// Text → `PipelineFile::parse` (with `#set K=V` lines as `--set`
    /// overrides) → `compile` with the built-in registry.
    Pipeline,
    /// A `stdin` source's stream: the WAV header read without seeking, then the
    /// reader that mixes interleaved samples to mono chunks; raw s16le/f32le too.
    Stdin,
    /// The parquet source's `where`: parse, check against a schema, evaluate on
    /// a batch, filter the batch.
    Where,
    /// The label schemes: regex and CSV (and the built-in corpus names) over
    /// fuzzed patterns, tables and file names.
    Labels,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Decode,
        Target::Pipeline,
        Target::Stdin,
        Target::Where,
        Target::Labels,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Decode => "decode",
            Target::Pipeline => "pipeline",
            Target::Stdin => "stdin",
            Target::Where => "where",
            Target::Labels => "labels",
        }
    }

    pub fn from_name(s: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == s)
    }

    /// Inputs are text (token mutations) rather than binary (header mutations).
    pub fn is_text(self) -> bool {
        matches!(self, Target::Pipeline | Target::Where | Target::Labels)
    }

    /// Largest input the fuzzer makes.
    pub fn max_len(self) -> usize {
        match self {
            Target::Decode => 128 << 10,
            Target::Stdin => 64 << 10,
            Target::Pipeline | Target::Labels => 16 << 10,
            // Long enough for a generated filter of thousands of terms.
            Target::Where => 64 << 10,
        }
    }

    /// Stack of the thread the target runs on: the size of the thread that runs
    /// this code in sermo (pool workers and tokio workers: 2 MiB; pipeline files
    /// are compiled on the main thread: 8 MiB).
    pub fn stack_size(self) -> usize {
        match self {
            Target::Pipeline => 8 << 20,
            _ => 2 << 20,
        }
    }
}

/// Per-process state of the targets: a scratch folder (the decoded file, the
/// label CSV, the pipelines' base folder) and the registry.
pub struct Scratch {
    pub dir: PathBuf,
    registry: Registry,
}

impl Scratch {
    /// `dir` must exist and be private to this process.
    pub fn new(dir: &Path) -> Scratch {
        // A label table for pipelines that name `labels.csv`.
        let _ = std::fs::write(
            dir.join("labels.csv"),
            "file,emotion,speaker\n03a01Wa.wav,W,03\nx/a.wav,angry,s1\n",
        );
        // A table for pipelines with a `parquet` source at `table` (the where
        // target's batch, its `fold` column as a hive folder).
        write_table(&dir.join("table/fold=1"));
        Scratch {
            dir: dir.to_path_buf(),
            registry: Registry::builtin(),
        }
    }
}

fn write_table(dir: &Path) {
    let batch = where_batch();
    let Ok(fold) = batch.schema().index_of("fold") else {
        return;
    };
    let mut batch = batch;
    batch.remove_column(fold);
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let Ok(f) = std::fs::File::create(dir.join("part-0.parquet")) else {
        return;
    };
    if let Ok(mut w) = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None) {
        let _ = w.write(&batch);
        let _ = w.close();
    }
}

/// The inputs of a corpus folder: every file (not `*.txt` notes, not `*.md`, not
/// hidden), sorted by name.
pub fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter(|p| {
                    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    !n.starts_with('.') && !n.ends_with(".txt") && !n.ends_with(".md")
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Run `target` on `input`. Panics are findings (the caller catches them).
pub fn run(target: Target, input: &[u8], s: &Scratch) -> String {
    match target {
        Target::Decode => decode(input, s),
        Target::Pipeline => pipeline(input, s),
        Target::Stdin => stdin(input),
        Target::Where => where_(input),
        Target::Labels => labels(input, s),
    }
}

/// A message with its numbers blanked, cut to its first 64 characters: the
/// outcome's shape, not its values.
pub fn shape(msg: &str) -> String {
    let mut out = String::new();
    let mut in_num = false;
    for c in msg.chars() {
        if c.is_ascii_digit() {
            if !in_num {
                out.push('#');
            }
            in_num = true;
            continue;
        }
        in_num = false;
        out.push(if c == '\n' { '/' } else { c });
        if out.len() >= 64 {
            break;
        }
    }
    out
}

/// [`shape`] of a message that may quote the input (as it is, or re-printed
/// by a parser): only the words of its template are kept (lowercase, not in
/// the input), the rest reads `_`, so that an echo of the input does not make
/// every outcome new.
pub fn shape_echo(msg: &str, input: &str) -> String {
    let mut words: Vec<&str> = Vec::new();
    for w in msg.split(char::is_whitespace) {
        let core = w.trim_matches(|c: char| "`'\"()[],:;.".contains(c));
        // Words of the message's template: lowercase, not from the input.
        let template = core.len() >= 2
            && core.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            && !input.contains(core);
        let w = if template { core } else { "_" };
        if !(w == "_" && words.last() == Some(&"_")) {
            words.push(w);
        }
    }
    shape(&words.join(" "))
}

fn bucket(n: u64) -> u32 {
    64 - n.leading_zeros()
}

// ---------------------------------------------------------------------------
// decode

/// Most samples a decode input may produce before the target stops reading (a
/// few bytes of FLAC can declare a long constant signal: expensive, no bug).
const DECODE_SAMPLE_CAP: u64 = 1 << 25;

/// Outcomes that start with this are panics of a dependency that sermo contains
/// (the fuzzer counts them apart from findings).
pub const CONTAINED: &str = "contained:";

/// The decode stage runs the decoder on the worker pool, which catches a panic
/// (src/engine/pool.rs) and quarantines the file as `decoder_panic`, the run going
/// on: a panic inside a dependency (symphonia) is contained there, so here it is
/// an outcome (`contained:decoder_panic:<site>`); one in sermo's own code, or an
/// invariant of the reader broken, stays a finding.
fn decode(input: &[u8], s: &Scratch) -> String {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_file(input, s))) {
        Ok(o) => o,
        Err(payload) => match take_panic() {
            Some(site) if site.owner() != "sermo" => {
                format!("{CONTAINED}decoder_panic:{}", site.signature())
            }
            site => {
                if let Some(site) = site {
                    put_panic(site);
                }
                std::panic::resume_unwind(payload)
            }
        },
    }
}

fn decode_file(input: &[u8], s: &Scratch) -> String {
    let path = s.dir.join("clip");
    if let Err(e) = std::fs::write(&path, input) {
        return format!("io:{e}");
    }
    let mut r = match ClipReader::open(&path) {
        Ok(r) => r,
        Err(f) => return format!("open:{}:{}", f.reason.as_str(), shape(&f.message)),
    };
    let info = r.info().clone();
    assert!(
        info.sample_rate >= 1 && info.sample_rate <= sermo::limits::MAX_SAMPLE_RATE,
        "sample rate {} passed the header check",
        info.sample_rate
    );
    assert!(
        info.channels <= sermo::limits::MAX_CHANNELS,
        "{} channels passed the header check",
        info.channels
    );
    // What the decode stage asks for (its default chunk_s is longer; a short one
    // exercises the chunk boundaries).
    let max_frames = sermo::limits::chunk_frames(0.25, info.sample_rate, info.channels);
    let (mut frames, mut chunks, mut last_seen) = (0u64, 0u32, false);
    loop {
        match r.next_chunk(max_frames) {
            Ok(Some(c)) => {
                assert!(!last_seen, "a chunk after the one marked last");
                assert!(
                    c.frames() <= max_frames,
                    "a chunk of {} frames, {max_frames} asked for",
                    c.frames()
                );
                assert!(
                    c.planes.iter().all(|p| p.len() == c.frames()),
                    "planes of different lengths"
                );
                assert_eq!(c.first_frame, frames, "chunks do not follow each other");
                assert!(
                    c.planes.len() <= sermo::limits::MAX_CHANNELS,
                    "a chunk of {} channels",
                    c.planes.len()
                );
                frames += c.frames() as u64;
                chunks += 1;
                last_seen = c.last;
                if frames * c.planes.len().max(1) as u64 > DECODE_SAMPLE_CAP {
                    return format!("ok:{}:{}:capped", info.codec, info.channels);
                }
            }
            Ok(None) => {
                assert!(last_seen, "the stream ended without a chunk marked last");
                break;
            }
            Err(f) => {
                return format!(
                    "chunk{}:{}:{}",
                    chunks.min(3),
                    f.reason.as_str(),
                    shape(&f.message)
                );
            }
        }
    }
    format!(
        "ok:{}:{}:{}",
        info.codec,
        r.info().channels,
        bucket(frames / 256)
    )
}

// ---------------------------------------------------------------------------
// pipeline

fn pipeline(input: &[u8], s: &Scratch) -> String {
    let text = String::from_utf8_lossy(input);
    // `#set KEY=VALUE` lines (comments to TOML) are `--set` overrides.
    let overrides: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#set "))
        .map(str::to_string)
        .take(16)
        .collect();
    let file = match PipelineFile::parse(&text, &s.dir, &overrides) {
        Ok(f) => f,
        Err(e) => return format!("parse:{}", shape_echo(&e.to_string(), &text)),
    };
    match file.compile(&s.registry) {
        Ok(plan) => {
            let kinds: Vec<&str> = plan.nodes.iter().map(|n| n.kind.as_str()).collect();
            for n in &plan.nodes {
                assert!(
                    n.inputs.iter().all(|&i| i < plan.nodes.len()),
                    "an input index out of the plan"
                );
            }
            format!("ok:{}", kinds.join(","))
        }
        Err(e) => {
            // The problems' shapes (the first line only counts them).
            let mut lines: Vec<String> = e
                .to_string()
                .lines()
                .skip(1)
                .map(|l| shape_echo(l, &text))
                .collect();
            lines.sort();
            lines.dedup();
            lines.truncate(3);
            let mut out = format!("compile:{}", lines.join("|"));
            out.truncate(out.floor_char_boundary(400));
            out
        }
    }
}

// ---------------------------------------------------------------------------
// stdin

/// The `chunk_s` values a `stdin` source may be given (check: (0, 60]).
const CHUNK_S: [f64; 6] = [1e-9, 0.001, 0.02, 0.1, 1.0, 60.0];

fn stdin(input: &[u8]) -> String {
    // A stream starting with RIFF is a WAV stream at the default chunk_s;
    // otherwise a 7-byte header picks format, channels, rate and chunk_s.
    let (layout, chunk_s, stream): (Layout, f64, &[u8]) = if input.starts_with(b"RIFF") {
        let mut r: &[u8] = input;
        match read_wav_header(&mut r) {
            Ok(l) => (l, 0.1, r),
            Err(e) => return format!("header:{}", shape(&e)),
        }
    } else {
        if input.len() < 7 {
            return "short".into();
        }
        let channels = 1 + (input[1] as u16) % sermo::limits::MAX_CHANNELS as u16;
        let rate = 1 + u32::from_le_bytes([input[2], input[3], input[4], input[5]])
            % sermo::limits::MAX_SAMPLE_RATE;
        let chunk_s = CHUNK_S[input[6] as usize % CHUNK_S.len()];
        let rest = &input[7..];
        let encoding = match input[0] % 3 {
            0 => {
                let mut r: &[u8] = rest;
                match read_wav_header(&mut r) {
                    Ok(l) => return stdin_samples(l, chunk_s, r),
                    Err(e) => return format!("header:{}", shape(&e)),
                }
            }
            1 => Encoding::S16,
            _ => Encoding::F32,
        };
        (
            Layout {
                rate,
                channels,
                encoding,
            },
            chunk_s,
            rest,
        )
    };
    stdin_samples(layout, chunk_s, stream)
}

fn stdin_samples(layout: Layout, chunk_s: f64, stream: &[u8]) -> String {
    assert!(
        layout.channels >= 1 && layout.channels as usize <= sermo::limits::MAX_CHANNELS,
        "{} channels passed the header check",
        layout.channels
    );
    assert!(
        layout.rate >= 1 && layout.rate <= sermo::limits::MAX_SAMPLE_RATE,
        "{} Hz passed the header check",
        layout.rate
    );
    // As the stdin source does.
    let frames = sermo::limits::chunk_frames(chunk_s, layout.rate, layout.channels as usize);
    let width = layout.encoding.bytes() * layout.channels as usize;
    // Room for every chunk, so the reader (which blocks on a full channel) runs
    // to its end on this thread.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(stream.len() / width.max(1) + 4);
    reader_thread(Box::new(Cursor::new(stream.to_vec())), layout, frames, tx);
    let (mut total, mut chunks, mut last_seen, mut non_finite) = (0usize, 0u32, false, false);
    while let Some(c) = rx.blocking_recv() {
        let (samples, last) = c.unwrap_or_else(|e| panic!("a read error from memory: {e}"));
        assert!(!last_seen, "a chunk after the one marked last");
        assert!(samples.len() <= frames, "a chunk longer than asked for");
        non_finite |= samples.iter().any(|v| !v.is_finite());
        total += samples.len();
        chunks += 1;
        last_seen = last;
    }
    assert!(last_seen, "the stream ended without a chunk marked last");
    assert_eq!(total, stream.len() / width, "frames lost or invented");
    format!(
        "ok:{}:{}:{}{}",
        layout.encoding.codec(),
        layout.channels.min(3),
        chunks.min(4),
        if non_finite { ":nonfinite" } else { "" }
    )
}

// ---------------------------------------------------------------------------
// where

fn where_batch() -> arrow::record_batch::RecordBatch {
    use arrow::array::{
        ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int64Array,
        ListArray, StringArray, UInt16Array, UInt32Array,
    };
    use arrow::buffer::OffsetBuffer;
    use arrow::datatypes::{DataType, Field, Schema};
    let item = Arc::new(Field::new_list_field(DataType::Float32, false));
    let fields = vec![
        Field::new("clip_id", DataType::Utf8, false),
        Field::new("corpus", DataType::Utf8, true),
        Field::new("speaker", DataType::Utf8, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("segment", DataType::UInt32, false),
        Field::new("start_s", DataType::Float64, false),
        Field::new("duration_s", DataType::Float64, true),
        Field::new("source_channels", DataType::UInt16, false),
        Field::new("n", DataType::Int64, true),
        Field::new("last_chunk", DataType::Boolean, false),
        Field::new("samples", DataType::List(item.clone()), false),
        Field::new("mfcc", DataType::FixedSizeList(item.clone(), 2), false),
        // A hive partition column (`fold=1/`): always text.
        Field::new("fold", DataType::Utf8, true),
    ];
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["a.wav", "b.wav", "c.wav", "d.wav"])),
        Arc::new(StringArray::from(vec![
            Some("ravdess"),
            Some("emodb"),
            None,
            Some("ravdess"),
        ])),
        Arc::new(StringArray::from(vec![
            Some("12"),
            None,
            Some("03"),
            Some(""),
        ])),
        Arc::new(StringArray::from(vec![
            Some("angry"),
            Some("sad"),
            None,
            Some("h%_\\ppy"),
        ])),
        Arc::new(UInt32Array::from(vec![0, 1, 2, u32::MAX])),
        Arc::new(Float64Array::from(vec![0.0, -0.0, 2.5, f64::MAX])),
        Arc::new(Float64Array::from(vec![
            Some(f64::NAN),
            Some(f64::INFINITY),
            None,
            Some(1e-300),
        ])),
        Arc::new(UInt16Array::from(vec![1, 2, 1, u16::MAX])),
        Arc::new(Int64Array::from(vec![
            Some(i64::MIN),
            Some(-1),
            None,
            Some(i64::MAX),
        ])),
        Arc::new(BooleanArray::from(vec![false, true, false, true])),
        Arc::new(ListArray::new(
            item.clone(),
            OffsetBuffer::from_lengths([2, 0, 1, 3]),
            Arc::new(Float32Array::from(vec![0.5, -1.0, f32::NAN, 0.0, 1.0, 2.0])),
            None,
        )),
        Arc::new(FixedSizeListArray::new(
            item,
            2,
            Arc::new(Float32Array::from(vec![
                1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0,
            ])),
            None,
        )),
        Arc::new(StringArray::from(vec![
            Some("1"),
            Some("2"),
            None,
            Some("x"),
        ])),
    ];
    arrow::record_batch::RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .expect("the where target's batch")
}

fn where_(input: &[u8]) -> String {
    use std::sync::OnceLock;
    static BATCH: OnceLock<Mutex<arrow::record_batch::RecordBatch>> = OnceLock::new();
    let batch = match BATCH.get_or_init(|| Mutex::new(where_batch())).lock() {
        Ok(b) => b.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let text = String::from_utf8_lossy(input);
    let f = match Filter::parse(&text) {
        Ok(f) => f,
        Err(e) => return format!("parse:{}", shape_echo(&e, &text)),
    };
    let cols = f.columns();
    assert_eq!(f.text(), text, "the filter keeps its text");
    if let Err(e) = f.check(&batch.schema()) {
        // (Not the list of columns: which of them the input names.)
        let e = e.split("(columns").next().unwrap_or_default();
        return format!("check:{}", shape_echo(e, &text));
    }
    // As the parquet source does per batch: evaluate, AND with the shard mask,
    // filter.
    let mask = match f.evaluate(&batch) {
        Ok(m) => m,
        Err(e) => return format!("eval:{}", shape_echo(&e, &text)),
    };
    assert_eq!(mask.len(), batch.num_rows(), "a mask of another length");
    let keep = arrow::array::BooleanArray::from(vec![true, true, false, true]);
    let mask = arrow::compute::kernels::boolean::and_kleene(&keep, &mask)
        .unwrap_or_else(|e| panic!("and_kleene of equal lengths: {e}"));
    let kept = arrow::compute::filter_record_batch(&batch, &mask)
        .unwrap_or_else(|e| panic!("filtering with a mask of the batch's length: {e}"));
    format!("ok:{}:{}", cols.len().min(4), kept.num_rows())
}

// ---------------------------------------------------------------------------
// labels

/// Parts of a labels input, separated by lines `--`:
/// `header`, `pattern or CSV text`, `map (CODE=label lines)`, `paths`, and
/// optionally `merge` groups (`name=a,b` lines) and `keep` (`keep=a,b`).
/// The header is `regex [corpus]`, `csv|tsv PATH_COL LABEL_COL [SPEAKER_COL]`
/// or `builtin NAME`; a path line is `rel` or `rel<TAB>full path`.
fn labels(input: &[u8], s: &Scratch) -> String {
    let text = String::from_utf8_lossy(input);
    let mut parts = text.split("\n--\n");
    let header = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let map_text = parts.next().unwrap_or_default();
    let paths = parts.next().unwrap_or_default();
    // `merge` groups (`name=a,b` lines) and `keep` (a `keep=a,b` line).
    let filter_text = parts.next().unwrap_or_default();
    let map: Option<std::collections::BTreeMap<String, String>> = if map_text.trim().is_empty() {
        None
    } else {
        Some(
            map_text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    };
    let words: Vec<&str> = header.split_whitespace().collect();
    let word = |i: usize| words.get(i).map(|w| w.to_string());
    let spec = match words.first().copied() {
        Some(kind @ ("csv" | "tsv")) => {
            let file = format!("labels_fuzz.{kind}");
            if let Err(e) = std::fs::write(s.dir.join(&file), body) {
                return format!("io:{e}");
            }
            LabelSpec::Csv(CsvSpec {
                csv: file,
                path_column: word(1).unwrap_or_else(|| "file".into()),
                label_column: word(2).unwrap_or_else(|| "emotion".into()),
                speaker_column: word(3),
                corpus: word(4),
                map,
            })
        }
        Some("builtin") => {
            let v = toml::Value::String(word(1).unwrap_or_default());
            match v.try_into::<BuiltinScheme>() {
                Ok(b) => LabelSpec::Builtin(b),
                Err(_) => return "builtin:unknown".into(),
            }
        }
        _ => LabelSpec::Regex(RegexSpec {
            regex: body.to_string(),
            map,
            corpus: word(1),
        }),
    };
    let labeler = match Labeler::new(&spec, &s.dir) {
        Ok(l) => l,
        Err(e) => return format!("new:{}", shape_echo(&e, &text)),
    };
    let mut merge: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut keep: Option<Vec<String>> = None;
    for l in filter_text.lines() {
        if let Some((k, v)) = l.split_once('=') {
            let list: Vec<String> = v.split(',').map(str::to_string).collect();
            if k == "keep" {
                keep = Some(list);
            } else {
                merge.insert(k.to_string(), list);
            }
        }
    }
    let filter = match LabelFilter::new(&merge, keep.as_deref()) {
        Ok(f) => f,
        Err(e) => return format!("filter:{}", shape_echo(&e, &text)),
    };
    // Full paths under a folder that does not exist: a scheme that reads side
    // files (IEMOCAP) finds none, and nothing outside is read.
    let root = Path::new("/nonexistent-sermo-fuzz");
    let (mut ok, mut err) = (0u32, 0u32);
    let mut first_err = String::new();
    for line in paths.lines().take(256) {
        let (rel, full) = match line.split_once('\t') {
            Some((r, f)) => (r, root.join(f.trim_start_matches('/'))),
            None => (line, root.join(line.trim_start_matches('/'))),
        };
        match labeler.label(rel, &full) {
            Ok(l) => {
                ok += 1;
                for v in [&l.corpus, &l.speaker, &l.label].into_iter().flatten() {
                    assert!(!v.is_empty(), "an empty label field from `{rel}`");
                }
                if let Some(Some(m)) = filter.apply(l.label.as_deref()) {
                    assert!(!m.is_empty(), "merge made an empty label from `{rel}`");
                }
            }
            Err(e) => {
                if err == 0 {
                    first_err = shape_echo(&e, &text);
                }
                err += 1;
            }
        }
    }
    let kind = match &spec {
        LabelSpec::Regex(_) => "regex",
        LabelSpec::Csv(_) => "csv",
        LabelSpec::Builtin(_) => "builtin",
    };
    format!(
        "{kind}:{}:{}:{}",
        bucket(ok as u64),
        bucket(err as u64),
        first_err
    )
}

// ---------------------------------------------------------------------------
// panics

/// Where the last panic happened and what it said (set by [`install_panic_hook`]).
#[derive(Debug, Clone)]
pub struct PanicSite {
    pub file: String,
    pub line: u32,
    pub message: String,
}

impl PanicSite {
    /// The file, from its crate's folder on (`symphonia-format-riff-0.6.1/src/…`)
    /// for a dependency, as it is (`src/…`) for sermo.
    pub fn short_file(&self) -> &str {
        match self.file.find("/registry/src/") {
            Some(i) => {
                let rest = &self.file[i + "/registry/src/".len()..];
                rest.split_once('/').map_or(rest, |(_, r)| r)
            }
            None => &self.file,
        }
    }

    /// Whose code panicked: `sermo`, `symphonia`, or another crate.
    pub fn owner(&self) -> String {
        let f = self.short_file();
        if f.starts_with("src/") || f.starts_with("examples/") {
            return "sermo".into();
        }
        let krate = f.split('/').next().unwrap_or(f);
        let name = match krate.rsplit_once('-') {
            Some((n, v)) if v.starts_with(|c: char| c.is_ascii_digit()) => n,
            _ => krate,
        };
        if name.starts_with("symphonia") {
            "symphonia".into()
        } else {
            name.to_string()
        }
    }

    /// The finding's identity: owner, file and line (not the message, which
    /// may hold values).
    pub fn signature(&self) -> String {
        format!("panic:{}:{}:{}", self.owner(), self.short_file(), self.line)
    }
}

static LAST_PANIC: Mutex<Option<PanicSite>> = Mutex::new(None);

/// Record every panic's site instead of printing it (a fuzzer panics often).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
            s.to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "(a non-string panic payload)".to_string()
        };
        let (mut file, mut line) = info
            .location()
            .map_or(("?".to_string(), 0), |l| (l.file().to_string(), l.line()));
        // A panic inside the standard library (an overflow in `core::num`): the
        // first frame of the backtrace outside it says whose call it was (slow,
        // and only then).
        if file.starts_with("/rustc/") || file == "?" {
            let bt = std::backtrace::Backtrace::force_capture().to_string();
            if let Some((f, l)) = bt.lines().find_map(|l| {
                let at = l.trim().strip_prefix("at ")?;
                if at.starts_with("/rustc/") || at.contains("/examples/fuzz/") {
                    return None;
                }
                let mut parts = at.rsplitn(3, ':');
                let _col = parts.next()?;
                let line = parts.next()?.parse().ok()?;
                Some((parts.next()?.to_string(), line))
            }) {
                file = f;
                line = l;
            }
        }
        let site = PanicSite {
            file,
            line,
            message,
        };
        match LAST_PANIC.lock() {
            Ok(mut g) => *g = Some(site),
            Err(p) => *p.into_inner() = Some(site),
        }
    }));
}

/// Record `site` as the last panic again (after [`take_panic`], before the
/// panic goes on with `resume_unwind`, which does not run the hook).
pub fn put_panic(site: PanicSite) {
    match LAST_PANIC.lock() {
        Ok(mut g) => *g = Some(site),
        Err(p) => *p.into_inner() = Some(site),
    }
}

/// The site of the last panic since the last call.
pub fn take_panic() -> Option<PanicSite> {
    match LAST_PANIC.lock() {
        Ok(mut g) => g.take(),
        Err(p) => p.into_inner().take(),
    }
}
