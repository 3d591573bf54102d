// Ad-hoc experiment (not to be committed): the feature encoder's convolutions as
// today (unfold + one GEMM) vs a zero-copy "reshape + tap GEMMs" formulation, and the
// passes of burn's GELU, on a base wav2vec2.
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::activation::gelu;
use sermo::encoders::Pretrained;
use sermo::encoders::model::ConvLayer;

type B = sermo::train::Cpu;

/// Conv with kernel K <= 2·stride: x `[b, L, c]` viewed as `[b, L/S, S·c]` (free),
/// out = R[0..f] @ W[taps 0..S] + R[1..f+1][.., 0..(K−S)c] @ W[taps S..K].
fn conv_taps(conv: &ConvLayer<B>, x: Tensor<B, 3>, w_tap: &Tensor<B, 2>) -> Tensor<B, 3> {
    let [b, l, c] = x.dims();
    let (k, s) = (conv.kernel, conv.stride);
    let f = (l - k) / s + 1;
    let out = w_tap.dims()[1];
    let rows = f + usize::from(k > s);
    let need = rows * s;
    let x = if l >= need {
        x.slice([0..b, 0..need, 0..c])
    } else {
        let dev = x.device();
        Tensor::cat(vec![x, Tensor::zeros([b, need - l, c], &dev)], 1)
    };
    let r = x.reshape([b, rows, s * c]);
    let a = r
        .clone()
        .slice([0..b, 0..f, 0..s * c])
        .reshape([b * f, s * c]);
    let mut y = a.matmul(w_tap.clone().slice([0..s * c, 0..out]));
    if k > s {
        let a2 = r
            .slice([0..b, 1..f + 1, 0..(k - s) * c])
            .reshape([b * f, (k - s) * c]);
        y = y + a2.matmul(w_tap.clone().slice([s * c..k * c, 0..out]));
    }
    if let Some(bias) = &conv.bias {
        y = y + bias.val().unsqueeze();
    }
    let y = y.reshape([b, f, out]);
    let y = match &conv.norm {
        Some(n) if conv.norm_over_time => n.over_time(y),
        Some(n) => n.over_channels(y),
        None => y,
    };
    gelu(y)
}

fn main() {
    let folder = std::env::args().nth(1).unwrap();
    let p =
        Pretrained::<B>::load(std::path::Path::new(&folder), None, &Default::default()).unwrap();
    let dev = p.device().clone();
    let secs = 3.5f64;
    let n = 8;
    let l = (secs * 16000.0) as usize;
    let mut now_t = vec![0.0f64; 7];
    let mut tap_t = vec![0.0f64; 7];
    let mut maxdiff = vec![0.0f32; 7];
    let w_taps: Vec<Tensor<B, 2>> = p
        .model
        .conv_layers
        .iter()
        .map(|c| {
            let [ck, out] = c.weight.dims();
            let ci = ck / c.kernel;
            c.weight
                .val()
                .reshape([ci, c.kernel, out])
                .swap_dims(0, 1)
                .reshape([c.kernel * ci, out])
        })
        .collect();
    for clip in 0..n {
        let v: Vec<f32> = (0..l)
            .map(|i| ((i * 7919 + clip * 31) % 1009) as f32 / 1009.0 - 0.5)
            .collect();
        let mut h = Tensor::<B, 3>::from_data(TensorData::new(v, [1, l, 1]), &dev);
        for (i, conv) in p.model.conv_layers.iter().enumerate() {
            let t = Instant::now();
            let a = conv.forward(h.clone());
            now_t[i] += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let b = conv_taps(conv, h.clone(), &w_taps[i]);
            tap_t[i] += t.elapsed().as_secs_f64();
            let d = (a.clone() - b).abs().max().into_scalar();
            maxdiff[i] = maxdiff[i].max(d);
            h = a;
        }
    }
    println!("{n} clips of {secs} s, 1 clip per forward");
    for i in 0..7 {
        println!(
            "conv{i}: unfold+GEMM {:.3} s   reshape+tap GEMMs {:.3} s   ({:.2}x)   max |diff| {:.2e}",
            now_t[i],
            tap_t[i],
            now_t[i] / tap_t[i],
            maxdiff[i]
        );
    }
    let (a, b): (f64, f64) = (now_t.iter().sum(), tap_t.iter().sum());
    println!("all convs: {a:.3} s -> {b:.3} s ({:.2}x)", a / b);

    // burn's GELU = x/√2, erf (f64, scalar, one thread), +1, ·x, /2: five passes.
    let x = Tensor::<B, 2>::random(
        [32000, 512],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &dev,
    );
    let reps = 5;
    let mut parts = [0.0f64; 6];
    for _ in 0..reps {
        let t = Instant::now();
        let _ = gelu(x.clone());
        parts[0] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let y = x.clone() / std::f64::consts::SQRT_2;
        parts[1] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let y = y.erf();
        parts[2] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let y = y + 1.0;
        parts[3] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let y = x.clone() * y;
        parts[4] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = y / 2.0;
        parts[5] += t.elapsed().as_secs_f64();
    }
    let ms = |s: f64| 1e3 * s / reps as f64;
    println!(
        "gelu on [32000, 512] (= conv0 output of 10 s): {:.1} ms; parts: /√2 {:.1}, erf {:.1}, +1 {:.1}, ·x {:.1}, /2 {:.1} ms",
        ms(parts[0]),
        ms(parts[1]),
        ms(parts[2]),
        ms(parts[3]),
        ms(parts[4]),
        ms(parts[5])
    );
}
