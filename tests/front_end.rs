//! The audio front end: every WAV layout and bad input has an expected outcome
//! (decoded values or a quarantine reason), plus the real corpora.

mod common;

use std::collections::HashMap;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float32Type, Float64Type, UInt16Type, UInt32Type};
use arrow::record_batch::RecordBatch;
use sermo::config::PipelineFile;
use sermo::engine::{Metrics, RunOptions};
use sermo::registry::Registry;

/// A WAV file's layout.
struct Wav<'a> {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    data: &'a [u8],
    extensible: bool,
    extra_chunk: bool,
    declared_len: Option<u32>,
}

impl Wav<'_> {
    fn bytes(&self) -> Vec<u8> {
        let block = self.channels as u32 * (self.bits as u32 / 8);
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&(if self.extensible { 0xFFFEu16 } else { self.tag }).to_le_bytes());
        fmt.extend_from_slice(&self.channels.to_le_bytes());
        fmt.extend_from_slice(&self.rate.to_le_bytes());
        fmt.extend_from_slice(&(self.rate * block).to_le_bytes());
        fmt.extend_from_slice(&(block as u16).to_le_bytes());
        fmt.extend_from_slice(&self.bits.to_le_bytes());
        if self.extensible {
            fmt.extend_from_slice(&22u16.to_le_bytes());
            fmt.extend_from_slice(&self.bits.to_le_bytes());
            let mask: u32 = if self.channels == 1 {
                0x4
            } else {
                (1u32 << self.channels) - 1
            };
            fmt.extend_from_slice(&mask.to_le_bytes());
            // KSDATAFORMAT_SUBTYPE GUID: tag + fixed tail
            fmt.extend_from_slice(&(self.tag as u32).to_le_bytes());
            fmt.extend_from_slice(&[
                0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
            ]);
        }
        let mut body = Vec::new();
        body.extend_from_slice(b"WAVE");
        body.extend_from_slice(b"fmt ");
        body.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
        body.extend_from_slice(&fmt);
        if self.extra_chunk {
            // Like RAVDESS's FLLR padding chunk.
            body.extend_from_slice(b"FLLR");
            body.extend_from_slice(&12u32.to_le_bytes());
            body.extend_from_slice(&[0u8; 12]);
        }
        body.extend_from_slice(b"data");
        body.extend_from_slice(
            &self
                .declared_len
                .unwrap_or(self.data.len() as u32)
                .to_le_bytes(),
        );
        body.extend_from_slice(self.data);
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }
}

fn pcm<'a>(bits: u16, rate: u32, channels: u16, data: &'a [u8]) -> Wav<'a> {
    Wav {
        tag: 1,
        channels,
        rate,
        bits,
        data,
        extensible: false,
        extra_chunk: false,
        declared_len: None,
    }
}

fn i16s(v: &[i16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Build the bad-input corpus; returns the files that should decode.
fn make_corpus(dir: &Path) {
    let w = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
    w("empty.wav", Vec::new());
    w("header_only.wav", pcm(16, 16000, 1, &[]).bytes());
    let short = i16s(&[1000; 100]);
    w(
        "short_data.wav",
        Wav {
            declared_len: Some(20_000),
            ..pcm(16, 16000, 1, &short)
        }
        .bytes(),
    );
    w(
        "text.wav",
        b"this is not audio, just text pretending to be a wav file\n".repeat(20),
    );
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tone440.mp3"),
        dir.join("mp3_named.wav"),
    )
    .unwrap();
    w("u8.wav", pcm(8, 8000, 1, &[0, 64, 128, 192, 255]).bytes());
    let i24: Vec<u8> = [-8388608i32, -4194304, 0, 4194304, 8388607]
        .iter()
        .flat_map(|v| v.to_le_bytes()[..3].to_vec())
        .collect();
    w("i24.wav", pcm(24, 8000, 1, &i24).bytes());
    let i32s: Vec<u8> = [i32::MIN, -(1 << 30), 0, 1 << 30]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    w("i32.wav", pcm(32, 8000, 1, &i32s).bytes());
    let f32s: Vec<u8> = [-1.0f32, -0.25, 0.0, 0.25, 1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    w(
        "f32.wav",
        Wav {
            tag: 3,
            ..pcm(32, 8000, 1, &f32s)
        }
        .bytes(),
    );
    let f64s: Vec<u8> = [-1.0f64, -0.25, 0.0, 0.25, 1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    w(
        "f64.wav",
        Wav {
            tag: 3,
            ..pcm(64, 8000, 1, &f64s)
        }
        .bytes(),
    );
    let nan: Vec<u8> = [0.1f32, f32::NAN, 0.2]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    w(
        "nan.wav",
        Wav {
            tag: 3,
            ..pcm(32, 8000, 1, &nan)
        }
        .bytes(),
    );
    // 6 channels, channel c holds c * 1000 (i16) in every frame.
    let six: Vec<i16> = (0..100).flat_map(|_| (0..6).map(|c| c * 1000)).collect();
    w("six_ch.wav", pcm(16, 8000, 6, &i16s(&six)).bytes());
    for rate in [8000u32, 11025, 44100, 96000] {
        let n = rate as usize / 2; // 0.5 s
        let tone: Vec<i16> = (0..n)
            .map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16)
            .collect();
        w(
            &format!("rate_{rate}.wav"),
            pcm(16, rate, 1, &i16s(&tone)).bytes(),
        );
    }
    w("tiny_10ms.wav", pcm(16, 8000, 1, &i16s(&[500; 80])).bytes());
    w("silence.wav", pcm(16, 16000, 1, &i16s(&[0; 16000])).bytes());
    w(
        "extensible.wav",
        Wav {
            extensible: true,
            ..pcm(16, 16000, 1, &i16s(&[-16384, 0, 16384]))
        }
        .bytes(),
    );
    w(
        "fllr.wav",
        Wav {
            extra_chunk: true,
            ..pcm(16, 16000, 1, &i16s(&[-16384, 0, 16384]))
        }
        .bytes(),
    );
    w(
        "ffff.wav",
        Wav {
            declared_len: Some(0xFFFF_FFFF),
            ..pcm(16, 16000, 1, &i16s(&[100; 1000]))
        }
        .bytes(),
    );
    w(
        "rate0.wav",
        Wav {
            rate: 0,
            ..pcm(16, 16000, 1, &i16s(&[100; 100]))
        }
        .bytes(),
    );
}

struct Outcome {
    rows: HashMap<String, Vec<RecordBatch>>,
    quarantine: HashMap<String, (String, String, String)>,
    metrics: Metrics,
}

async fn run(dir: &Path, extra_paths: &[&str], decode_opts: &str, with_resample: bool) -> Outcome {
    let mut paths = vec!["\"in/*.wav\"".to_string()];
    paths.extend(extra_paths.iter().map(|p| format!("\"{p}\"")));
    let (resample, sink_input) = if with_resample {
        (
            "[stages.r]\nkind = \"resample\"\ninput = \"audio\"\nrate = 16000\n",
            "r",
        )
    } else {
        ("", "audio")
    };
    let text = format!(
        "[sources.clips]\nkind = \"files\"\npaths = [{}]\n\
         [stages.audio]\nkind = \"decode\"\ninput = \"clips\"\n{decode_opts}\n{resample}\
         [sinks.t]\nkind = \"parquet\"\ninput = \"{sink_input}\"\npath = \"out\"\n",
        paths.join(", ")
    );
    let _ = std::fs::remove_dir_all(dir.join("out"));
    let metrics = Metrics::default();
    let plan = PipelineFile::parse(&text, dir, &[])
        .and_then(|f| f.compile(&Registry::builtin()))
        .unwrap_or_else(|e| panic!("{e}"));
    plan.run(RunOptions {
        metrics: metrics.clone(),
        threads: Some(2),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut rows: HashMap<String, Vec<RecordBatch>> = HashMap::new();
    for b in common::read_parts(&dir.join("out")) {
        let ids = b.column_by_name("clip_id").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            rows.entry(ids.value(i).to_string())
                .or_default()
                .push(b.slice(i, 1));
        }
    }
    let f = std::fs::File::open(dir.join("out/_quarantine.parquet")).unwrap();
    let mut quarantine = HashMap::new();
    for b in parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
    {
        let b = b.unwrap();
        let s = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
        let (id, stage, reason, msg) = (s("clip_id"), s("stage"), s("reason"), s("message"));
        for i in 0..b.num_rows() {
            quarantine.insert(
                id.value(i).to_string(),
                (
                    stage.value(i).to_string(),
                    reason.value(i).to_string(),
                    msg.value(i).to_string(),
                ),
            );
        }
    }
    Outcome {
        rows,
        quarantine,
        metrics,
    }
}

fn samples(b: &RecordBatch) -> Vec<f32> {
    let l = b.column_by_name("samples").unwrap().as_list::<i32>();
    l.value(0).as_primitive::<Float32Type>().values().to_vec()
}

fn u32_col(b: &RecordBatch, name: &str) -> u32 {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<UInt32Type>()
        .value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_corpus_has_the_expected_outcomes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("in")).unwrap();
    make_corpus(&dir.join("in"));
    let o = run(dir, &["in/does_not_exist.wav"], "", false).await;

    let reason = |id: &str| o.quarantine.get(id).map(|q| q.1.as_str());
    assert_eq!(reason("empty.wav"), Some("empty"));
    assert_eq!(reason("header_only.wav"), Some("empty"));
    assert_eq!(
        reason("short_data.wav"),
        Some("truncated"),
        "{:?}",
        o.quarantine.get("short_data.wav")
    );
    assert_eq!(reason("text.wav"), Some("unsupported"));
    assert_eq!(reason("nan.wav"), Some("non_finite"));
    assert_eq!(
        reason("rate0.wav"),
        Some("invalid_format"),
        "{:?}",
        o.quarantine.get("rate0.wav")
    );
    assert_eq!(reason("does_not_exist.wav"), Some("missing"));
    for (id, (stage, _, msg)) in &o.quarantine {
        assert_eq!(stage, "audio", "{id}");
        assert!(!msg.is_empty(), "{id}");
    }
    assert_eq!(o.quarantine.len(), 7, "{:#?}", o.quarantine);
    assert_eq!(o.metrics.get("quarantine.empty"), 2);

    // Decoded values.
    let one = |id: &str| -> &RecordBatch {
        let r = o
            .rows
            .get(id)
            .unwrap_or_else(|| panic!("{id} missing; quarantine {:?}", o.quarantine.get(id)));
        assert_eq!(r.len(), 1, "{id}");
        &r[0]
    };
    assert_eq!(
        samples(one("u8.wav")),
        vec![-1.0, -0.5, 0.0, 0.5, 127.0 / 128.0]
    );
    assert_eq!(
        samples(one("i24.wav")),
        vec![-1.0, -0.5, 0.0, 0.5, 8388607.0 / 8388608.0]
    );
    assert_eq!(samples(one("i32.wav")), vec![-1.0, -0.5, 0.0, 0.5]);
    assert_eq!(samples(one("f32.wav")), vec![-1.0, -0.25, 0.0, 0.25, 1.0]);
    assert_eq!(samples(one("f64.wav")), vec![-1.0, -0.25, 0.0, 0.25, 1.0]);
    assert_eq!(samples(one("extensible.wav")), vec![-0.5, 0.0, 0.5]);
    assert_eq!(samples(one("fllr.wav")), vec![-0.5, 0.0, 0.5]);
    assert_eq!(samples(one("ffff.wav")), vec![100.0 / 32768.0; 1000]);
    assert_eq!(samples(one("silence.wav")), vec![0.0; 16000]);
    assert_eq!(samples(one("tiny_10ms.wav")).len(), 80);
    // 6 channels mixed: mean of 0, 1000, ..., 5000 = 2500.
    let six = one("six_ch.wav");
    assert!(
        samples(six)
            .iter()
            .all(|&x| (x - 2500.0 / 32768.0).abs() < 1e-7)
    );
    assert_eq!(
        six.column_by_name("source_channels")
            .unwrap()
            .as_primitive::<UInt16Type>()
            .value(0),
        6
    );
    // MP3 found by content despite its .wav name.
    let mp3 = one("mp3_named.wav");
    assert_eq!(
        mp3.column_by_name("codec")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "mp3"
    );
    let n = samples(mp3).len();
    assert!((7000..=9500).contains(&n), "mp3 frames {n}");
    let peak = samples(mp3).iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!((0.4..0.6).contains(&peak), "mp3 peak {peak}");
    for rate in [8000u32, 11025, 44100, 96000] {
        let b = one(&format!("rate_{rate}.wav"));
        assert_eq!(u32_col(b, "sample_rate"), rate);
        assert_eq!(samples(b).len(), rate as usize / 2);
        let d = b
            .column_by_name("duration_s")
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0);
        assert!((d - (rate / 2) as f64 / rate as f64).abs() < 1e-12);
    }
    // Good rows are all kept.
    let mut ids: Vec<&String> = o.rows.keys().collect();
    ids.sort();
    assert_eq!(o.rows.len(), 16, "{ids:?}");
    assert_eq!(
        o.rows.len() + o.quarantine.len(),
        23,
        "every input accounted for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_modes_min_duration_and_resampling_of_odd_rates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("in")).unwrap();
    make_corpus(&dir.join("in"));

    let first = run(dir, &[], "channels = \"first\"", false).await;
    assert!(
        samples(&first.rows["six_ch.wav"][0])
            .iter()
            .all(|&x| x == 0.0)
    );

    let keep = run(dir, &[], "channels = \"keep\"", false).await;
    let b = &keep.rows["six_ch.wav"][0];
    let chans = b
        .column_by_name("samples")
        .unwrap()
        .as_list::<i32>()
        .value(0);
    let chans = chans.as_list::<i32>();
    assert_eq!(chans.len(), 6);
    for c in 0..6 {
        let v = chans.value(c);
        let v = v.as_primitive::<Float32Type>();
        assert_eq!(v.len(), 100);
        assert!(
            v.values()
                .iter()
                .all(|&x| x == (c as f32 * 1000.0) / 32768.0)
        );
    }

    let short = run(dir, &[], "min_duration_s = 0.05", false).await;
    assert_eq!(short.quarantine["tiny_10ms.wav"].1, "too_short");
    assert_eq!(short.quarantine["u8.wav"].1, "too_short");
    assert!(short.rows.contains_key("silence.wav"));

    let r = run(dir, &[], "", true).await;
    for rate in [8000u32, 11025, 44100, 96000] {
        let b = &r.rows[&format!("rate_{rate}.wav")][0];
        assert_eq!(u32_col(b, "sample_rate"), 16000);
        assert_eq!(u32_col(b, "source_sample_rate"), rate);
        let n = (rate / 2) as f64;
        let want = (n * 16000.0 / rate as f64).round() as usize;
        assert_eq!(
            samples(b).len(),
            want,
            "{rate}: exact round(n * 16000 / rate)"
        );
    }
    // Keep mode resamples every channel.
    let rk = run(dir, &[], "channels = \"keep\"", true).await;
    let b = &rk.rows["six_ch.wav"][0];
    let chans = b
        .column_by_name("samples")
        .unwrap()
        .as_list::<i32>()
        .value(0);
    assert_eq!(chans.as_list::<i32>().len(), 6);
    assert_eq!(chans.as_list::<i32>().value(0).len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_file_streams_in_chunks_and_resamples_chunk_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("in")).unwrap();
    // 95 s at 44.1 kHz: four 30 s chunks at the default chunk_s, 13 at 7.3 s.
    let n = 44100 * 95;
    let tone: Vec<i16> = (0..n)
        .map(|i| (((i as f32 * 0.0123).sin() + (i as f32 * 0.31).sin()) * 6000.0) as i16)
        .collect();
    std::fs::write(
        dir.join("in/long.wav"),
        pcm(16, 44100, 1, &i16s(&tone)).bytes(),
    )
    .unwrap();
    let whole = run(dir, &[], "chunk_s = 600", true).await;
    let chunked = run(dir, &[], "chunk_s = 7.3", true).await;
    let default = run(dir, &[], "", false).await;
    assert_eq!(default.rows["long.wav"].len(), 4);
    let w = &whole.rows["long.wav"];
    let c = &chunked.rows["long.wav"];
    assert_eq!(w.len(), 1);
    assert_eq!(c.len(), 14);
    let cat: Vec<f32> = c.iter().flat_map(samples).collect();
    let ws = samples(&w[0]);
    assert_eq!(cat.len(), ws.len());
    assert_eq!(ws.len(), (n as f64 * 16000.0 / 44100.0).round() as usize);
    let diff = cat
        .iter()
        .zip(&ws)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff <= 1e-5, "chunked vs whole: {diff}");
    // Segments in order with contiguous times; only the last is marked last.
    let mut t = 0.0;
    for (k, b) in c.iter().enumerate() {
        assert_eq!(u32_col(b, "segment"), k as u32);
        let s = b
            .column_by_name("start_s")
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0);
        let e = b
            .column_by_name("end_s")
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0);
        assert!((s - t).abs() < 1e-9);
        t = e;
        let last = b
            .column_by_name("last_chunk")
            .unwrap()
            .as_boolean()
            .value(0);
        assert_eq!(last, k == c.len() - 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ravdess_flac_48k_to_16k_with_labels() {
    let Some(c) = common::corpora_or_skip("ravdess_flac_48k_to_16k_with_labels", "ravdess") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "[sources.clips]\nkind = \"files\"\npaths = [\"{}/ravdess/Actor_*/*.flac\"]\nlabels = \"ravdess\"\n\
         [stages.audio]\nkind = \"decode\"\ninput = \"clips\"\n\
         [stages.r]\nkind = \"resample\"\ninput = \"audio\"\nrate = 16000\n\
         [sinks.t]\nkind = \"parquet\"\ninput = \"r\"\npath = \"out\"\n",
        c.display()
    );
    let m = Metrics::default();
    let plan = PipelineFile::parse(&text, tmp.path(), &[])
        .and_then(|f| f.compile(&Registry::builtin()))
        .unwrap();
    plan.run(RunOptions {
        metrics: m.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(m.sum_matching("quarantine.", ""), 0);
    let batches = common::read_parts(&tmp.path().join("out"));
    let mut speakers: HashMap<String, usize> = HashMap::new();
    let mut labels: HashMap<String, usize> = HashMap::new();
    let mut rows = 0;
    for b in &batches {
        let sp = b.column_by_name("speaker").unwrap().as_string::<i32>();
        let lb = b.column_by_name("label").unwrap().as_string::<i32>();
        let corpus = b.column_by_name("corpus").unwrap().as_string::<i32>();
        let sr = b
            .column_by_name("sample_rate")
            .unwrap()
            .as_primitive::<UInt32Type>();
        let src = b
            .column_by_name("source_sample_rate")
            .unwrap()
            .as_primitive::<UInt32Type>();
        let dur = b
            .column_by_name("duration_s")
            .unwrap()
            .as_primitive::<Float64Type>();
        let s = b.column_by_name("samples").unwrap().as_list::<i32>();
        for i in 0..b.num_rows() {
            rows += 1;
            *speakers.entry(sp.value(i).to_string()).or_default() += 1;
            *labels.entry(lb.value(i).to_string()).or_default() += 1;
            assert_eq!(corpus.value(i), "ravdess");
            assert_eq!(sr.value(i), 16000);
            assert_eq!(src.value(i), 48000);
            let want = (dur.value(i) * 48000.0).round() * 16000.0 / 48000.0;
            assert!((s.value(i).len() as f64 - want.round()).abs() <= 1.0);
        }
    }
    assert_eq!(rows, 1440);
    assert_eq!(speakers.len(), 24);
    assert!(speakers.values().all(|&n| n == 60));
    assert_eq!(labels.len(), 8);
    assert_eq!(labels["neutral"], 96);
    for l in [
        "calm",
        "happy",
        "sad",
        "angry",
        "fearful",
        "disgust",
        "surprised",
    ] {
        assert_eq!(labels[l], 192, "{l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emodb_has_10_speakers_and_7_labels() {
    let Some(c) = common::corpora_or_skip("emodb_has_10_speakers_and_7_labels", "emodb/wav") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "[sources.clips]\nkind = \"files\"\npaths = [\"{}/emodb/wav/*.wav\"]\nlabels = \"emodb\"\n\
         [stages.audio]\nkind = \"decode\"\ninput = \"clips\"\n\
         [sinks.t]\nkind = \"parquet\"\ninput = \"audio\"\npath = \"out\"\n",
        c.display()
    );
    let m = Metrics::default();
    let plan = PipelineFile::parse(&text, tmp.path(), &[])
        .and_then(|f| f.compile(&Registry::builtin()))
        .unwrap();
    plan.run(RunOptions {
        metrics: m.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(m.sum_matching("quarantine.", ""), 0);
    let batches = common::read_parts(&tmp.path().join("out"));
    let mut speakers = std::collections::BTreeSet::new();
    let mut labels = std::collections::BTreeSet::new();
    let mut rows = 0;
    for b in &batches {
        let sp = b.column_by_name("speaker").unwrap().as_string::<i32>();
        let lb = b.column_by_name("label").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            rows += 1;
            speakers.insert(sp.value(i).to_string());
            labels.insert(lb.value(i).to_string());
        }
    }
    assert_eq!(rows, 535);
    assert_eq!(speakers.len(), 10);
    let want: std::collections::BTreeSet<String> = [
        "angry", "boredom", "disgust", "fearful", "happy", "sad", "neutral",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(labels, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ravdess_wav_with_fllr_chunk_equals_its_flac_twin() {
    let Some(c) = common::corpora_or_skip(
        "ravdess_wav_with_fllr_chunk_equals_its_flac_twin",
        "ravdess-wav/Actor_01",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "[sources.wav]\nkind = \"files\"\npaths = [\"{0}/ravdess-wav/Actor_01/*.wav\"]\n\
         [sources.flac]\nkind = \"files\"\npaths = [\"{0}/ravdess/Actor_01/*.flac\"]\n\
         [stages.a]\nkind = \"decode\"\ninput = \"wav\"\nchannels = \"keep\"\n\
         [stages.b]\nkind = \"decode\"\ninput = \"flac\"\nchannels = \"keep\"\n\
         [sinks.w]\nkind = \"parquet\"\ninput = \"a\"\npath = \"w\"\n\
         [sinks.f]\nkind = \"parquet\"\ninput = \"b\"\npath = \"f\"\n",
        c.display()
    );
    let m = Metrics::default();
    let plan = PipelineFile::parse(&text, tmp.path(), &[])
        .and_then(|f| f.compile(&Registry::builtin()))
        .unwrap();
    plan.run(RunOptions {
        metrics: m.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(m.sum_matching("quarantine.", ""), 0);
    let load = |d: &str| {
        let mut v: Vec<(String, Vec<Vec<f32>>)> = Vec::new();
        for b in common::read_parts(&tmp.path().join(d)) {
            let ids = b.column_by_name("clip_id").unwrap().as_string::<i32>();
            let s = b.column_by_name("samples").unwrap().as_list::<i32>();
            for i in 0..b.num_rows() {
                let chans = s.value(i);
                let chans = chans.as_list::<i32>();
                let planes = (0..chans.len())
                    .map(|c| {
                        chans
                            .value(c)
                            .as_primitive::<Float32Type>()
                            .values()
                            .to_vec()
                    })
                    .collect();
                let stem = ids
                    .value(i)
                    .rsplit_once('.')
                    .map(|x| x.0)
                    .unwrap_or("")
                    .to_string();
                v.push((stem, planes));
            }
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let (w, f) = (load("w"), load("f"));
    assert_eq!(w.len(), 60);
    assert_eq!(f.len(), 60);
    for (a, b) in w.iter().zip(&f) {
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1, "{} differs between WAV and FLAC", a.0);
    }
}

#[test]
fn exit_codes_follow_quarantine_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("in")).unwrap();
    std::fs::write(dir.join("in/bad.wav"), b"not audio at all, really not").unwrap();
    common::write_wav_i16(
        &dir.join("in/good.wav"),
        16000,
        &common::tone(16000, 0.5, 1),
    );
    let p = dir.join("p.toml");
    let write = |paths: &str, extra: &str| {
        std::fs::write(
            &p,
            format!(
                "[pipeline]\n{extra}\n[sources.s]\nkind = \"files\"\npaths = [{paths}]\n\
                 [stages.a]\nkind = \"decode\"\ninput = \"s\"\n\
                 [sinks.t]\nkind = \"parquet\"\ninput = \"a\"\npath = \"out\"\n"
            ),
        )
        .unwrap();
    };
    let run = || {
        std::process::Command::new(common::sermo_bin())
            .arg("run")
            .arg(&p)
            .output()
            .unwrap()
    };

    // One bad file among good ones: exit 0, counted by reason in the summary.
    write("\"in/*.wav\"", "");
    let o = run();
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("2 files, 1 quarantined (1 unsupported)"),
        "{err}"
    );
    assert!(dir.join("out/_SUCCESS").exists());

    // fail_on_quarantine = true: exit 1, output still complete.
    write("\"in/*.wav\"", "fail_on_quarantine = true");
    let o = run();
    assert_eq!(o.status.code(), Some(1));
    assert!(dir.join("out/_SUCCESS").exists());

    // Other files into the same output: resume refused (settings changed).
    write("\"in/bad.wav\"", "");
    let o = run();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("resume refused"));

    // Every file failed: exit 1.
    std::fs::remove_dir_all(dir.join("out")).unwrap();
    let o = run();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("every file failed"));
}

#[test]
fn labels_keep_and_unlabeled_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("in")).unwrap();
    for name in [
        "03a01Fa.wav",
        "03a01Wa.wav",
        "08b02Nb.wav",
        "03a01La.wav",
        "notemodb.wav",
    ] {
        common::write_wav_i16(
            &dir.join("in").join(name),
            16000,
            &common::tone(16000, 0.2, 3),
        );
    }
    let p = dir.join("p.toml");
    std::fs::write(
        &p,
        "[sources.s]\nkind = \"files\"\npaths = [\"in/*.wav\"]\nlabels = \"emodb\"\n\
         keep = [\"angry\", \"happy\", \"neutral\"]\n\
         [stages.a]\nkind = \"decode\"\ninput = \"s\"\n\
         [sinks.t]\nkind = \"parquet\"\ninput = \"a\"\npath = \"out\"\n",
    )
    .unwrap();
    let o = std::process::Command::new(common::sermo_bin())
        .arg("run")
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("1 quarantined (1 unlabeled), 1 dropped by `keep`"),
        "{err}"
    );
    let rows = common::read_parts(&dir.join("out"));
    let mut got: Vec<(String, String, String)> = Vec::new();
    for b in &rows {
        let id = b.column_by_name("clip_id").unwrap().as_string::<i32>();
        let sp = b.column_by_name("speaker").unwrap().as_string::<i32>();
        let lb = b.column_by_name("label").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            got.push((id.value(i).into(), sp.value(i).into(), lb.value(i).into()));
        }
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("03a01Fa.wav".into(), "03".into(), "happy".into()),
            ("03a01Wa.wav".into(), "03".into(), "angry".into()),
            ("08b02Nb.wav".into(), "08".into(), "neutral".into()),
        ]
    );
}
