//! The runtime end to end: a real corpus, fan-out, backpressure.

mod common;

use std::path::Path;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{SchemaRef, UInt32Type};
use futures::StreamExt;
use serde::Deserialize;
use sermo::config::PipelineFile;
use sermo::engine::{
    BatchStream, Component, ConfigContext, Frame, Metrics, Operator, OperatorConfig, PlanInput,
    Role, RunOptions, TaskContext, edge_in_flight_metric,
};
use sermo::registry::Registry;
use sermo::schema::TableKind;
use sermo::schema::require_inputs;

async fn run_text(text: &str, base: &Path, registry: &Registry, threads: usize) -> Metrics {
    let metrics = Metrics::default();
    let plan = PipelineFile::parse(text, base, &[])
        .and_then(|f| f.compile(registry))
        .unwrap_or_else(|e| panic!("{e}"));
    plan.run(RunOptions {
        metrics: metrics.clone(),
        threads: Some(threads),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    metrics
}

/// Raw 16-bit samples of a canonical PCM WAV (walks the chunks).
fn wav_i16(path: &Path) -> Vec<i16> {
    let b = std::fs::read(path).unwrap();
    let mut i = 12;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        if id == b"data" {
            return b[i + 8..(i + 8 + len).min(b.len())]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
        }
        i += 8 + len + (len & 1);
    }
    panic!("no data chunk in {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emodb_decodes_535_clips_with_exact_samples() {
    let Some(corpora) =
        common::corpora_or_skip("emodb_decodes_535_clips_with_exact_samples", "emodb/wav")
    else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[sources.clips]
kind = "files"
paths = ["{}/emodb/wav/*.wav"]
[stages.audio]
kind = "decode"
input = "clips"
[sinks.table]
kind = "parquet"
input = "audio"
path = "emodb"
"#,
        corpora.display()
    );
    let m = run_text(&text, out.path(), &Registry::builtin(), 2).await;
    assert_eq!(m.get("files.total"), 535);
    assert_eq!(m.get("files.done"), 535);
    assert_eq!(m.sum_matching("quarantine.", ""), 0);
    assert_eq!(m.get("sink.table.rows"), 535);

    let dir = out.path().join("emodb");
    let marker = std::fs::read_to_string(dir.join("_SUCCESS")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&marker).unwrap();
    assert_eq!(v["rows"], 535);
    assert_eq!(v["quarantined"], 0);

    let batches = common::read_parts(&dir);
    let rows = common::clip_samples(&batches);
    assert_eq!(rows.len(), 535);
    // Every clip of this copy is exactly 2.0 s at 22050 Hz.
    assert!(rows.iter().all(|(_, s)| s.len() == 44100), "sample counts");
    for b in &batches {
        let sr = b
            .column_by_name("sample_rate")
            .unwrap()
            .as_primitive::<UInt32Type>();
        assert!(sr.values().iter().all(|&r| r == 22050));
    }
    // clip_id is relative to the glob base; samples are int16 / 32768 exactly.
    let (id, samples) = &rows[0];
    assert_eq!(id, "03a01Fa.wav");
    let raw = wav_i16(&corpora.join("emodb/wav/03a01Fa.wav"));
    assert_eq!(raw.len(), samples.len());
    for (r, s) in raw.iter().zip(samples) {
        assert_eq!(*r as f32 / 32768.0, *s);
    }
    assert!(
        rows.iter()
            .all(|(_, s)| s.iter().all(|x| (-1.0..=1.0).contains(x)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_gives_identical_rows_in_both_sinks() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/audio");
    let out = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[sources.clips]
kind = "files"
paths = ["{0}/emodb/*.wav", "{0}/ravdess/*.flac"]
[stages.audio]
kind = "decode"
input = "clips"
chunk_s = 1.5
[sinks.a]
kind = "parquet"
input = "audio"
path = "a"
[sinks.b]
kind = "parquet"
input = "audio"
path = "b"
rows_per_file = 7
"#,
        demo.display()
    );
    let m = run_text(&text, out.path(), &Registry::builtin(), 2).await;
    assert_eq!(m.get("files.total"), 16);
    let a = common::read_parts(&out.path().join("a"));
    let b = common::read_parts(&out.path().join("b"));
    let rows_a: usize = a.iter().map(|b| b.num_rows()).sum();
    assert!(
        rows_a > 16,
        "1.5 s chunks of 2-4 s clips give several rows per clip"
    );
    assert_eq!(m.get("sink.a.rows") as usize, rows_a);
    assert_eq!(m.get("sink.b.rows") as usize, rows_a);
    // `rows_per_file` is a target: parts are cut at clip boundaries, so each clip's
    // rows are in exactly one part file.
    let files_b = common::read_part_files(&out.path().join("b"));
    assert!(files_b.len() >= 2, "{} part files", files_b.len());
    let mut file_of: std::collections::HashMap<String, usize> = Default::default();
    for (k, (_, batches)) in files_b.iter().enumerate() {
        for b in batches {
            let ids = b.column_by_name("clip_id").unwrap().as_string::<i32>();
            for id in ids.iter().flatten() {
                assert_eq!(
                    *file_of.entry(id.to_string()).or_insert(k),
                    k,
                    "clip {id} split"
                );
            }
        }
    }
    // Same rows, same order within each clip (segments ascend, starts are contiguous).
    let key = |batches: &[arrow::record_batch::RecordBatch]| {
        let mut rows = Vec::new();
        for b in batches {
            let ids = b.column_by_name("clip_id").unwrap().as_string::<i32>();
            let seg = b
                .column_by_name("segment")
                .unwrap()
                .as_primitive::<UInt32Type>();
            let n = b.column_by_name("samples").unwrap().as_list::<i32>();
            for i in 0..b.num_rows() {
                rows.push((ids.value(i).to_string(), seg.value(i), n.value(i).len()));
            }
        }
        rows
    };
    let (ka, kb) = (key(&a), key(&b));
    let mut sa = ka.clone();
    sa.sort();
    let mut sb = kb.clone();
    sb.sort();
    assert_eq!(sa, sb);
    for rows in [&ka, &kb] {
        let mut last: std::collections::HashMap<&str, u32> = Default::default();
        for (id, seg, _) in rows.iter() {
            let prev = last.insert(id.as_str(), *seg);
            assert_eq!(prev.map_or(0, |p| p + 1), *seg, "rows of {id} out of order");
        }
    }
    // Identical samples too.
    let samples = |batches: &[arrow::record_batch::RecordBatch]| {
        let mut v: Vec<(String, u32, Vec<f32>)> = Vec::new();
        for b in batches {
            let ids = b.column_by_name("clip_id").unwrap().as_string::<i32>();
            let seg = b
                .column_by_name("segment")
                .unwrap()
                .as_primitive::<UInt32Type>();
            let s = b.column_by_name("samples").unwrap().as_list::<i32>();
            for i in 0..b.num_rows() {
                let x = s.value(i);
                let x = x.as_primitive::<arrow::datatypes::Float32Type>();
                v.push((ids.value(i).to_string(), seg.value(i), x.values().to_vec()));
            }
        }
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    };
    assert_eq!(samples(&a), samples(&b));
}

/// A deliberately slow sink, registered from outside the crate: one module-worth of
/// code plus one `register` line.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SlowSinkConfig {
    delay_ms: u64,
}

impl Component for SlowSinkConfig {
    const KIND: &'static str = "slow";
    const ROLE: Role = Role::Sink;
    const SUMMARY: &'static str = "test sink that sleeps per batch";
}

impl OperatorConfig for SlowSinkConfig {
    fn plan(&self, inputs: &[PlanInput]) -> Result<SchemaRef, String> {
        require_inputs(inputs, &[TableKind::Audio])?;
        Ok(sermo::schema::empty_schema())
    }
    fn build(&self, _ctx: &ConfigContext) -> sermo::error::Result<Box<dyn Operator>> {
        Ok(Box::new(SlowSink(self.delay_ms)))
    }
}

struct SlowSink(u64);

impl Operator for SlowSink {
    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let delay = Duration::from_millis(self.0);
        let mut input = futures::stream::select_all(inputs);
        let work = async move {
            let consumed = ctx.metrics.counter("slow.rows");
            let lead = ctx.metrics.counter("slow.max_lead");
            while let Some(item) = input.next().await {
                if let Ok(Frame::Batch(b)) = item {
                    // How far the source ran ahead of what this sink has taken.
                    let emitted = ctx.metrics.get("source.clips.rows");
                    lead.set_max(emitted.saturating_sub(consumed.get()));
                    consumed.add(b.num_rows() as u64);
                    tokio::time::sleep(delay).await;
                }
            }
        };
        let s = futures::stream::once(work)
            .filter_map(|()| async { None::<sermo::engine::FrameResult> });
        BatchStream::new(sermo::schema::empty_schema(), s)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_bounds_what_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let n = 80;
    common::generated_corpus(&dir.path().join("wav"), n, 8000, 0.5);
    let mut registry = Registry::builtin();
    registry.register::<SlowSinkConfig>();
    let cap = 2usize;
    let threads = 2usize;
    let text = format!(
        r#"
[pipeline]
channel_capacity = {cap}
[sources.clips]
kind = "files"
paths = ["wav/*.wav"]
batch_rows = 1
[stages.audio]
kind = "decode"
input = "clips"
[sinks.slow]
kind = "slow"
input = "audio"
delay_ms = 15
"#
    );
    let m = run_text(&text, dir.path(), &registry, threads).await;
    assert_eq!(m.get("slow.rows"), n as u64, "every clip reached the sink");
    // Each edge never buffers more than its capacity.
    assert!(m.get(&edge_in_flight_metric("clips", "audio")) <= cap as u64);
    assert!(m.get(&edge_in_flight_metric("audio", "slow")) <= cap as u64);
    assert!(m.get(&edge_in_flight_metric("audio", "slow")) >= 1);
    // End to end: the source can run ahead of the slow sink only by what the two
    // channels hold, the decoder's concurrent files (2 per worker), and one item in
    // hand per task: far less than the corpus.
    let bound = 2 * cap + 2 * threads + 4;
    let lead = m.get("slow.max_lead");
    assert!(
        lead <= bound as u64,
        "source ran {lead} clips ahead (bound {bound})"
    );
    assert!(
        lead >= 2,
        "the measurement saw the pipeline fill up ({lead})"
    );
}
