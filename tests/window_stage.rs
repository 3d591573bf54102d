//! The `window` stage: counts and boundaries around multiples of the hop, streamed
//! vs whole equality, fixed alignment, deterministic random crops.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float32Type, Float64Type, UInt32Type};
use sermo::config::PipelineFile;
use sermo::engine::{Metrics, RunOptions};
use sermo::registry::Registry;

/// A ramp whose decoded values are exact: sample i = (i % 30000) / 32768.
fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i % 30000) as f32 / 32768.0).collect()
}

type Rows = BTreeMap<String, Vec<(u32, f64, f64, Vec<f32>)>>;

async fn run(dir: &Path, decode: &str, window: &str) -> Rows {
    rows_of(dir, &pipeline(decode, "a", window)).await
}

/// files → decode `a` (with the keys `decode`) → … → window `w` on `input` → parquet.
fn pipeline(decode: &str, input: &str, window: &str) -> String {
    format!(
        "[sources.s]\nkind = \"files\"\npaths = [\"in/*.wav\"]\n\
         [stages.a]\nkind = \"decode\"\ninput = \"s\"\n{decode}\n\
         [stages.w]\nkind = \"window\"\ninput = \"{input}\"\n{window}\n\
         [sinks.t]\nkind = \"parquet\"\ninput = \"w\"\npath = \"out\"\n"
    )
}

/// Run pipeline `text` (its sink writing `dir/out`) and read the rows back.
async fn rows_of(dir: &Path, text: &str) -> Rows {
    let _ = std::fs::remove_dir_all(dir.join("out"));
    let m = Metrics::default();
    let plan = PipelineFile::parse(text, dir, &[])
        .and_then(|f| f.compile(&Registry::builtin()))
        .unwrap_or_else(|e| panic!("{e}"));
    plan.run(RunOptions {
        metrics: m.clone(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut rows: Rows = BTreeMap::new();
    for b in common::read_parts(&dir.join("out")) {
        let id = b.column_by_name("clip_id").unwrap().as_string::<i32>();
        let seg = b
            .column_by_name("segment")
            .unwrap()
            .as_primitive::<UInt32Type>();
        let s = b
            .column_by_name("start_s")
            .unwrap()
            .as_primitive::<Float64Type>();
        let e = b
            .column_by_name("end_s")
            .unwrap()
            .as_primitive::<Float64Type>();
        let x = b.column_by_name("samples").unwrap().as_list::<i32>();
        for i in 0..b.num_rows() {
            let v = x.value(i);
            let v = v.as_primitive::<Float32Type>().values().to_vec();
            rows.entry(id.value(i).to_string()).or_default().push((
                seg.value(i),
                s.value(i),
                e.value(i),
                v,
            ));
        }
    }
    for v in rows.values_mut() {
        v.sort_by_key(|r| r.0);
    }
    rows
}

fn corpus(dir: &Path, lengths: &[usize]) {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    for &n in lengths {
        common::write_wav_i16(&dir.join(format!("in/n{n:05}.wav")), 8000, &ramp(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_counts_and_boundaries_around_hop_multiples() {
    let tmp = tempfile::tempdir().unwrap();
    let lengths = [3999usize, 4000, 4001, 5999, 6000, 6001, 8000];
    corpus(tmp.path(), &lengths);
    // 0.5 s windows (4000 samples) every 0.25 s (2000) at 8 kHz.
    let seg = "mode = \"segments\"\nlength_s = 0.5\nhop_s = 0.25\n";
    let pad = run(tmp.path(), "", &format!("{seg}last = \"pad\"")).await;
    let drop = run(tmp.path(), "", &format!("{seg}last = \"drop\"")).await;
    let keep = run(tmp.path(), "", &format!("{seg}last = \"keep\"")).await;
    let want_pad = [1usize, 1, 2, 2, 2, 3, 3];
    let want_drop = [0usize, 1, 1, 1, 2, 2, 3];
    for (k, &n) in lengths.iter().enumerate() {
        let id = format!("n{n:05}.wav");
        let count = |r: &Rows| r.get(&id).map_or(0, Vec::len);
        assert_eq!(count(&pad), want_pad[k], "pad {n}");
        assert_eq!(count(&drop), want_drop[k], "drop {n}");
        assert_eq!(count(&keep), want_pad[k], "keep {n}");
        let x = ramp(n);
        for (seg, start, end, v) in &pad[&id] {
            let s = *seg as usize * 2000;
            assert_eq!(*start, s as f64 / 8000.0);
            assert_eq!(*end, (s + 4000) as f64 / 8000.0);
            assert_eq!(v.len(), 4000);
            let real = (n - s).min(4000);
            assert_eq!(&v[..real], &x[s..s + real], "pad {n} seg {seg}");
            assert!(v[real..].iter().all(|&z| z == 0.0));
        }
        if let Some((_, _, end, v)) = keep[&id].last() {
            let s = (keep[&id].len() - 1) * 2000;
            assert_eq!(v.len(), (n - s).min(4000), "keep {n}");
            assert_eq!(*end, (s + v.len()) as f64 / 8000.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_segments_equal_whole_file_segments() {
    let tmp = tempfile::tempdir().unwrap();
    corpus(tmp.path(), &[8000 * 47 + 123]);
    let w = "mode = \"segments\"\nlength_s = 3.0\nhop_s = 1.3\nlast = \"pad\"";
    let whole = run(tmp.path(), "chunk_s = 600", w).await;
    let streamed = run(tmp.path(), "chunk_s = 0.77", w).await;
    assert_eq!(whole, streamed);
    let rows = whole.values().next().unwrap();
    assert_eq!(
        rows.len(),
        35,
        "segments at 0, 1.3, ... up to the first covering the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_alignment_and_random_crop() {
    let tmp = tempfile::tempdir().unwrap();
    corpus(tmp.path(), &[2000, 10001]);
    let start = run(tmp.path(), "", "mode = \"fixed\"\nlength_s = 0.5").await;
    let center = run(
        tmp.path(),
        "",
        "mode = \"fixed\"\nlength_s = 0.5\nalign = \"center\"",
    )
    .await;
    let (short, long) = (ramp(2000), ramp(10001));
    let s = &start["n02000.wav"][0].3;
    assert_eq!(&s[..2000], &short[..]);
    assert!(s[2000..].iter().all(|&x| x == 0.0));
    assert_eq!(start["n10001.wav"][0].3, long[..4000].to_vec());
    let c = &center["n02000.wav"][0].3;
    assert!(c[..1000].iter().all(|&x| x == 0.0) && c[3000..].iter().all(|&x| x == 0.0));
    assert_eq!(&c[1000..3000], &short[..]);
    let off = (10001 - 4000) / 2;
    assert_eq!(center["n10001.wav"][0].3, long[off..off + 4000].to_vec());
    assert_eq!(center["n10001.wav"][0].1, off as f64 / 8000.0);

    let crop = |seed: u64| {
        let dir = tmp.path().to_path_buf();
        async move {
            run(
                &dir,
                "",
                &format!("mode = \"random_crop\"\nlength_s = 0.5\nseed = {seed}"),
            )
            .await
        }
    };
    let (a, b) = (crop(1).await, crop(1).await);
    assert_eq!(a, b, "same seed, same crops");
    let mut seen = std::collections::BTreeSet::new();
    for seed in 1..=5u64 {
        let r = crop(seed).await;
        let (_, s, _, v) = &r["n10001.wav"][0];
        let off = (s * 8000.0).round() as usize;
        assert_eq!(v, &long[off..off + 4000]);
        seen.insert(off);
    }
    assert!(
        seen.len() >= 4,
        "different seeds draw different crops: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emodb_fixed_3s_features() {
    let Some(c) = common::corpora_or_skip("emodb_fixed_3s_features", "emodb/wav") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "[sources.s]\nkind = \"files\"\npaths = [\"{}/emodb/wav/*.wav\"]\nlabels = \"emodb\"\n\
         [stages.a]\nkind = \"decode\"\ninput = \"s\"\n\
         [stages.r]\nkind = \"resample\"\ninput = \"a\"\nrate = 16000\n\
         [stages.w]\nkind = \"window\"\ninput = \"r\"\nmode = \"fixed\"\nlength_s = 3.0\n\
         [stages.f]\nkind = \"features\"\ninput = \"w\"\nn_fft = 512\nwin_length = 400\nhop_length = 160\n\
         stack = [\"zcr\", \"rms\", \"mfcc\"]\n[stages.f.mfcc]\nn_mfcc = 40\nn_mels = 40\n[stages.f.zcr]\n[stages.f.rms]\n\
         [sinks.t]\nkind = \"parquet\"\ninput = \"f\"\npath = \"out\"\n",
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
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 535);
    for b in &batches {
        let st = b.column_by_name("stacked").unwrap().as_list::<i32>();
        for i in 0..b.num_rows() {
            assert_eq!(st.value(i).len(), 301, "3 s at hop 160, centred");
        }
    }
}

/// Lengths at, and one sample around, multiples of the decode chunk: the decoder
/// marks the final chunk `last` whatever the length (a file that ended exactly on
/// a chunk boundary used to end with no `last` chunk), and decode → resample →
/// window streamed in chunks equals the same on the whole file (the resampler's
/// tail used to be lost, and with it the final segment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_boundaries_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let lengths = [3999usize, 4000, 4001, 7999, 8000, 8001, 12000];
    corpus(tmp.path(), &lengths);
    for &n in &lengths {
        let path = tmp.path().join(format!("in/n{n:05}.wav"));
        let mut r = sermo::audio::ClipReader::open(&path).unwrap();
        let mut chunks = Vec::new();
        while let Some(c) = r.next_chunk(4000).unwrap() {
            chunks.push((c.frames(), c.last));
        }
        let lasts: Vec<usize> = (0..chunks.len()).filter(|&i| chunks[i].1).collect();
        assert_eq!(lasts, vec![chunks.len() - 1], "{n}: {chunks:?}");
        assert_eq!(chunks.iter().map(|c| c.0).sum::<usize>(), n, "{n}");
        assert!(
            chunks.iter().all(|c| c.0 <= 4000 && c.0 > 0),
            "{n}: {chunks:?}"
        );
    }
    // 8 kHz → 6 kHz in 0.5-s decode chunks (4000 frames), 0.25-s segments.
    let w = "mode = \"segments\"\nlength_s = 0.25\nhop_s = 0.25\nlast = \"drop\"";
    let text = |chunk: &str| {
        format!("chunk_s = {chunk}\n[stages.r]\nkind = \"resample\"\ninput = \"a\"\nrate = 6000")
    };
    let streamed = run_resampled(tmp.path(), &text("0.5"), w).await;
    let whole = run_resampled(tmp.path(), &text("600"), w).await;
    for &n in &lengths {
        let id = format!("n{n:05}.wav");
        let full = n * 6000 / 8000 / 1500;
        assert_eq!(whole[&id].len(), full, "{n}: whole-file segments");
        assert_eq!(streamed[&id].len(), whole[&id].len(), "{n}: segments lost");
        assert_eq!(streamed[&id], whole[&id], "{n}");
    }
}

/// [`run`] with the window fed by a resample stage `r` declared in `decode`.
async fn run_resampled(dir: &Path, decode: &str, window: &str) -> Rows {
    rows_of(dir, &pipeline(decode, "r", window)).await
}
