//! The `features` stage end to end: column types, frame counts, stacking, pooling,
//! settings in the schema metadata, and validation.

mod common;

use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type};
use sermo::config::PipelineFile;
use sermo::engine::{Metrics, RunOptions};
use sermo::error::SermoError;
use sermo::registry::Registry;

fn pipeline(extra: &str) -> String {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/audio");
    format!(
        "[sources.s]\nkind = \"files\"\npaths = [\"{}/emodb/*.wav\"]\nlabels = \"emodb\"\n\
         [stages.a]\nkind = \"decode\"\ninput = \"s\"\n\
         [stages.r]\nkind = \"resample\"\ninput = \"a\"\nrate = 16000\n\
         [stages.f]\nkind = \"features\"\ninput = \"r\"\nn_fft = 512\nwin_length = 400\nhop_length = 160\n{extra}\n\
         [sinks.t]\nkind = \"parquet\"\ninput = \"f\"\npath = \"out\"\n",
        demo.display()
    )
}

async fn run(text: &str, dir: &Path) -> Vec<arrow::record_batch::RecordBatch> {
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
    assert_eq!(m.sum_matching("quarantine.", ""), 0);
    common::read_parts(&dir.join("out"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_stacking_and_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let text = pipeline(
        "stack = [\"zcr\", \"rms\", \"mfcc\"]\n[stages.f.mfcc]\nn_mfcc = 40\nn_mels = 40\ndeltas = 2\n[stages.f.zcr]\n[stages.f.rms]\n",
    );
    let batches = run(&text, tmp.path()).await;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 12);
    let schema = batches[0].schema();
    // Column types: time-major frames × D.
    let dim = |name: &str| match schema.field_with_name(name).unwrap().data_type() {
        DataType::List(f) => match f.data_type() {
            DataType::FixedSizeList(_, d) => *d,
            other => panic!("{other}"),
        },
        other => panic!("{name}: {other}"),
    };
    assert_eq!(dim("mfcc"), 120);
    assert_eq!(dim("zcr"), 1);
    assert_eq!(dim("rms"), 1);
    assert_eq!(dim("stacked"), 122);
    // Settings travel in the Parquet file's schema metadata and read back.
    let part = std::fs::read_dir(tmp.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
        })
        .unwrap();
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(part).unwrap(),
    )
    .unwrap();
    let settings = sermo::frontend::settings_of(builder.schema()).expect("settings");
    assert_eq!(settings.n_fft, 512);
    assert_eq!(settings.mfcc.as_ref().map(|m| m.n_mfcc), Some(40));
    for b in &batches {
        let mfcc = b.column_by_name("mfcc").unwrap().as_list::<i32>();
        let zcr = b.column_by_name("zcr").unwrap().as_list::<i32>();
        let rms = b.column_by_name("rms").unwrap().as_list::<i32>();
        let st = b.column_by_name("stacked").unwrap().as_list::<i32>();
        for i in 0..b.num_rows() {
            // 2.0 s at 16 kHz, center: 1 + 32000 / 160 frames.
            assert_eq!(mfcc.value(i).len(), 201);
            assert_eq!(st.value(i).len(), 201);
            let m = mfcc.value(i);
            let m = m
                .as_fixed_size_list()
                .values()
                .as_primitive::<Float32Type>()
                .values()
                .to_vec();
            let z = zcr.value(i);
            let z = z
                .as_fixed_size_list()
                .values()
                .as_primitive::<Float32Type>()
                .values()
                .to_vec();
            let r = rms.value(i);
            let r = r
                .as_fixed_size_list()
                .values()
                .as_primitive::<Float32Type>()
                .values()
                .to_vec();
            let s = st.value(i);
            let s = s
                .as_fixed_size_list()
                .values()
                .as_primitive::<Float32Type>()
                .values()
                .to_vec();
            for t in [0usize, 100, 200] {
                assert_eq!(s[t * 122], z[t]);
                assert_eq!(s[t * 122 + 1], r[t]);
                assert_eq!(&s[t * 122 + 2..(t + 1) * 122], &m[t * 120..(t + 1) * 120]);
            }
            assert!(m.iter().all(|x| x.is_finite()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_pools_over_time() {
    let tmp = tempfile::tempdir().unwrap();
    let frames = run(&pipeline("[stages.f.log_mel]\nn_mels = 40\n"), tmp.path()).await;
    let tmp2 = tempfile::tempdir().unwrap();
    let pooled = run(
        &pipeline("summary = \"mean_std\"\n[stages.f.log_mel]\nn_mels = 40\n"),
        tmp2.path(),
    )
    .await;
    let by_id = |bs: &[arrow::record_batch::RecordBatch]| {
        let mut v = Vec::new();
        for b in bs {
            let ids = b.column_by_name("clip_id").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                v.push((ids.value(i).to_string(), b.slice(i, 1)));
            }
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    for ((id, f), (_, p)) in by_id(&frames).iter().zip(by_id(&pooled).iter()) {
        let lm = f
            .column_by_name("log_mel")
            .unwrap()
            .as_list::<i32>()
            .value(0);
        let lm = lm
            .as_fixed_size_list()
            .values()
            .as_primitive::<Float32Type>()
            .values()
            .to_vec();
        let n = lm.len() / 40;
        let pc = p
            .column_by_name("log_mel")
            .unwrap()
            .as_fixed_size_list()
            .value(0);
        let pv = pc.as_primitive::<Float32Type>().values().to_vec();
        assert_eq!(pv.len(), 80);
        for d in [0usize, 17, 39] {
            let mean = (0..n).map(|t| lm[t * 40 + d] as f64).sum::<f64>() / n as f64;
            let std = ((0..n)
                .map(|t| (lm[t * 40 + d] as f64 - mean).powi(2))
                .sum::<f64>()
                / n as f64)
                .sqrt();
            assert!((pv[d] as f64 - mean).abs() < 1e-3, "{id} mean {d}");
            assert!((pv[40 + d] as f64 - std).abs() < 1e-3, "{id} std {d}");
        }
    }
}

#[test]
fn features_validation() {
    let base = Path::new("/b");
    let errs = |t: &str| match PipelineFile::parse(t, base, &[])
        .and_then(|f| f.compile(&Registry::builtin()))
    {
        Err(SermoError::Config(e)) => e
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect::<Vec<_>>(),
        Ok(_) => Vec::new(),
        Err(e) => panic!("{e}"),
    };
    let e = errs(&pipeline("stack = [\"mfcc\", \"zcr\"]\n[stages.f.mfcc]\n"));
    assert_eq!(e, vec!["stages.f.stack: `zcr` is not an enabled feature"]);
    let e = errs(&pipeline(""));
    assert_eq!(e, vec!["stages.f.kind: no feature enabled"]);
    let e = errs(&pipeline("[stages.f.mfcc]\nn_mfc = 3\n"));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("stages.f: unknown field `n_mfc`"), "{e:?}");
    let fed_files =
        pipeline("[stages.f.mfcc]\n").replace("input = \"r\"\nn_fft", "input = \"s\"\nn_fft");
    let e = errs(&fed_files);
    assert!(
        e.iter().any(|x| x == "stages.f: stage `f` (features) accepts an audio table as input, but input `s` (files) produces a files table"),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroma_and_contrast_columns_equal_the_dsp() {
    use sermo::dsp::chroma::{chroma_stft, spectral_contrast};
    use sermo::dsp::stft::{PadMode, Stft};
    let tmp = tempfile::tempdir().unwrap();
    // Keep the 16 kHz audio too, to recompute from exactly the same samples.
    let text = pipeline("[stages.f.chroma]\n[stages.f.contrast]\nn_bands = 5\n").replace(
        "[sinks.t]",
        "[sinks.audio]\nkind = \"parquet\"\ninput = \"r\"\npath = \"audio\"\n[sinks.t]",
    );
    let feats = run(&text, tmp.path()).await;
    let audio = common::read_parts(&tmp.path().join("audio"));
    let samples = common::clip_samples(&audio);
    let stft = Stft::new(512, 160, Some(400), true, PadMode::Constant);
    let mut checked = 0;
    for b in &feats {
        let ids = b.column_by_name("clip_id").unwrap().as_string::<i32>();
        let ch = b.column_by_name("chroma").unwrap().as_list::<i32>();
        let co = b.column_by_name("contrast").unwrap().as_list::<i32>();
        for i in 0..b.num_rows() {
            let y = &samples.iter().find(|(id, _)| id == ids.value(i)).unwrap().1;
            // With contrast on, the stage runs one float64 STFT pass and chroma takes
            // its power from those magnitudes.
            let mut mag = Vec::new();
            stft.power_precise(y, 1.0, &mut mag);
            let power: Vec<f32> = mag.iter().map(|m| m * m).collect();
            let want_ch = chroma_stft(&power, 16000, 512, 12, None);
            let want_co = spectral_contrast(&mag, 16000, 512, 200.0, 5, 0.02, false).unwrap();
            let got = |l: &arrow::array::ListArray| {
                let v = l.value(i);
                v.as_fixed_size_list()
                    .values()
                    .as_primitive::<Float32Type>()
                    .values()
                    .to_vec()
            };
            assert_eq!(got(ch), want_ch);
            assert_eq!(got(co), want_co);
            assert_eq!(want_co.len() % 6, 0);
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}
