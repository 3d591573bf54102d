//! A [`SpeechEncoder`] back to a Hugging Face checkpoint folder: its tensors
//! under transformers' names (no task prefix, weight norm as
//! `weight_g`/`weight_v`, PyTorch layouts) in `model.safetensors`, beside the
//! `config.json` and `preprocessor_config.json` it was built from. The folder
//! loads in transformers (`Wav2Vec2Model.from_pretrained`, `HubertModel`,
//! `WavLMModel`) and in sermo's `embed` stage; [`super::load`] is the inverse.

use std::path::Path;

use burn::module::Param;
use burn::prelude::*;

use super::EncoderError;
use super::model::{Dense, Norm, SpeechEncoder};

/// Named tensors in PyTorch layout: (name, shape, values).
pub type Named = Vec<(String, Vec<usize>, Vec<f32>)>;

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap_or_default()
}

fn param<B: Backend, const D: usize>(p: &Param<Tensor<B, D>>) -> (Vec<usize>, Vec<f32>) {
    let t = p.val();
    (t.dims().to_vec(), values(t))
}

struct Out(Named);

impl Out {
    fn push(&mut self, name: String, shape: Vec<usize>, data: Vec<f32>) {
        self.0.push((name, shape, data));
    }

    fn norm<B: Backend>(&mut self, prefix: &str, n: &Norm<B>) {
        let (s, g) = param(&n.gamma);
        self.push(format!("{prefix}.weight"), s.clone(), g);
        let (s, b) = param(&n.beta);
        self.push(format!("{prefix}.bias"), s, b);
    }

    /// Our `[in, out]` weight as PyTorch's `[out, in]`.
    fn dense<B: Backend>(&mut self, prefix: &str, d: &Dense<B>) {
        let w = d.weight.val();
        let [i, o] = w.dims();
        self.push(
            format!("{prefix}.weight"),
            vec![o, i],
            values(w.transpose()),
        );
        if let Some(b) = &d.bias {
            let (s, v) = param(b);
            self.push(format!("{prefix}.bias"), s, v);
        }
    }
}

/// The tensors of `enc` (and the masked-frame embedding, when given) under
/// transformers' names and layouts.
pub fn tensors<B: Backend>(enc: &SpeechEncoder<B>, mask_embedding: Option<Vec<f32>>) -> Named {
    let mut out = Out(Vec::new());
    for (i, conv) in enc.conv_layers.iter().enumerate() {
        let p = format!("feature_extractor.conv_layers.{i}");
        // Ours: `[k·in, out]`, tap-major rows; PyTorch: `[out, in, k]`.
        let w = conv.weight.val();
        let [rows, c_out] = w.dims();
        let k = conv.kernel;
        let c_in = rows / k.max(1);
        let v = values(w);
        let mut pt = vec![0.0f32; v.len()];
        for tap in 0..k {
            for c in 0..c_in {
                for o in 0..c_out {
                    pt[(o * c_in + c) * k + tap] = v[(tap * c_in + c) * c_out + o];
                }
            }
        }
        out.push(format!("{p}.conv.weight"), vec![c_out, c_in, k], pt);
        if let Some(b) = &conv.bias {
            let (s, v) = param(b);
            out.push(format!("{p}.conv.bias"), s, v);
        }
        if let Some(n) = &conv.norm {
            out.norm(&format!("{p}.layer_norm"), n);
        }
    }
    if let Some(n) = &enc.feat_proj_norm {
        out.norm("feature_projection.layer_norm", n);
    }
    out.dense("feature_projection.projection", &enc.projection);
    let pc = "encoder.pos_conv_embed.conv";
    let (_, g) = param(&enc.pos_conv.weight_g);
    out.push(format!("{pc}.weight_g"), vec![1, 1, g.len()], g);
    let (s, v) = param(&enc.pos_conv.weight_v);
    out.push(format!("{pc}.weight_v"), s, v);
    let (s, b) = param(&enc.pos_conv.bias);
    out.push(format!("{pc}.bias"), s, b);
    out.norm("encoder.layer_norm", &enc.layer_norm);
    for (i, layer) in enc.layers.iter().enumerate() {
        let p = format!("encoder.layers.{i}");
        let a = &layer.attention;
        out.dense(&format!("{p}.attention.q_proj"), &a.q);
        out.dense(&format!("{p}.attention.k_proj"), &a.k);
        out.dense(&format!("{p}.attention.v_proj"), &a.v);
        out.dense(&format!("{p}.attention.out_proj"), &a.out);
        if let Some(g) = &a.gate {
            let (_, c) = param(&g.constant);
            out.push(
                format!("{p}.attention.gru_rel_pos_const"),
                vec![1, c.len(), 1, 1],
                c,
            );
            out.dense(&format!("{p}.attention.gru_rel_pos_linear"), &g.linear);
        }
        if i == 0
            && let Some(r) = &enc.relative
        {
            let (s, v) = param(&r.embedding);
            out.push(format!("{p}.attention.rel_attn_embed.weight"), s, v);
        }
        out.norm(&format!("{p}.layer_norm"), &layer.layer_norm);
        out.dense(
            &format!("{p}.feed_forward.intermediate_dense"),
            &layer.feed_forward.intermediate,
        );
        out.dense(
            &format!("{p}.feed_forward.output_dense"),
            &layer.feed_forward.output,
        );
        out.norm(&format!("{p}.final_layer_norm"), &layer.final_layer_norm);
    }
    if let Some(m) = mask_embedding {
        out.push("masked_spec_embed".into(), vec![m.len()], m);
    }
    out.0
}

/// Write `enc` as a checkpoint folder `dir`: `model.safetensors` plus the
/// given `config.json` text and, when given, `preprocessor_config.json`.
pub fn save_folder<B: Backend>(
    enc: &SpeechEncoder<B>,
    mask_embedding: Option<Vec<f32>>,
    config_json: &str,
    preprocessor_json: Option<&str>,
    dir: &Path,
) -> Result<(), EncoderError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| EncoderError::Io { path, source: e }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let named = tensors(enc, mask_embedding);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = named
        .into_iter()
        .map(|(n, s, v)| (n, s, bytemuck::cast_slice::<f32, u8>(&v).to_vec()))
        .collect();
    let file = dir.join("model.safetensors");
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EncoderError::Weights {
            file: file.clone(),
            message: format!("cannot be written: {e}"),
        })?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), &file).map_err(|e| {
        EncoderError::Weights {
            file: file.clone(),
            message: format!("cannot be written: {e}"),
        }
    })?;
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, config_json).map_err(io(&cfg))?;
    if let Some(p) = preprocessor_json {
        let pp = dir.join("preprocessor_config.json");
        std::fs::write(&pp, p).map_err(io(&pp))?;
    }
    Ok(())
}
