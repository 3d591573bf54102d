//! Convolution as one matrix product ("im2col + GEMM"), for the CPU backend's sake.
//!
//! burn-ndarray 0.21 convolves directly, and its backward pass computes the
//! weight gradient as a convolution whose kernel is the whole feature map: inner
//! loops three taps wide that do not vectorize. A `cnn2d` epoch on EmoDB log-mel
//! took 38 s that way. Here a "same"-padded, stride-1 convolution is written with
//! differentiable tensor ops only — zero padding by concatenation, one slice per
//! kernel offset, and a single matmul of the weights `[out, in·kh·kw]` with the
//! patches `[in·kh·kw, batch·h·w]` — so forward and backward both run as GEMMs on
//! any backend. The weights have burn `Conv2d`'s layout and initialization
//! (Kaiming-uniform, gain 1/√3, fan-in `in·kh·kw`), and the output equals
//! `Conv2d` with `PaddingConfig2d::Same` (tested against it, with gradients).

use burn::module::{Initializer, Param};
use burn::prelude::*;

/// A stride-1, "same"-padded 2D convolution computed as one GEMM.
#[derive(Module, Debug)]
pub struct GemmConv2d<B: Backend> {
    /// `[out, in·kh·kw]`: burn `Conv2d`'s `[out, in, kh, kw]` weight, flattened.
    pub weight: Param<Tensor<B, 2>>,
    pub bias: Param<Tensor<B, 1>>,
    pub kh: usize,
    pub kw: usize,
}

/// Builds a [`GemmConv2d`].
#[derive(Debug, Clone, Copy)]
pub struct GemmConv2dConfig {
    pub channels: [usize; 2],
    pub kernel: [usize; 2],
}

impl GemmConv2dConfig {
    pub fn new(channels: [usize; 2], kernel: [usize; 2]) -> Self {
        GemmConv2dConfig { channels, kernel }
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> GemmConv2d<B> {
        let [c_in, c_out] = self.channels;
        let [kh, kw] = self.kernel;
        let k = kh * kw;
        let init = Initializer::KaimingUniform {
            gain: 1.0 / 3.0f64.sqrt(),
            fan_out_only: false,
        };
        let (fan_in, fan_out) = (Some(c_in * k), Some(c_out * k));
        GemmConv2d {
            weight: init.init_with([c_out, c_in * k], fan_in, fan_out, device),
            bias: init.init_with([c_out], fan_in, fan_out, device),
            kh,
            kw,
        }
    }
}

/// Zero-pad `x` along `dim` by `before` and `after` (concatenation: differentiable).
fn pad_dim<B: Backend>(x: Tensor<B, 4>, dim: usize, before: usize, after: usize) -> Tensor<B, 4> {
    if before == 0 && after == 0 {
        return x;
    }
    let device = x.device();
    let mut parts = Vec::with_capacity(3);
    let shape = |n: usize| {
        let mut s = x.dims();
        s[dim] = n;
        s
    };
    if before > 0 {
        parts.push(Tensor::zeros(shape(before), &device));
    }
    let after_part = (after > 0).then(|| Tensor::zeros(shape(after), &device));
    parts.push(x);
    parts.extend(after_part);
    Tensor::cat(parts, dim)
}

impl<B: Backend> GemmConv2d<B> {
    /// `x: [batch, in, h, w]` → `[batch, out, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, c, h, w] = x.dims();
        let (kh, kw) = (self.kh, self.kw);
        let [c_out, k] = self.weight.dims();
        let x = pad_dim(x, 2, (kh - 1) / 2, kh / 2);
        let x = pad_dim(x, 3, (kw - 1) / 2, kw / 2);
        let mut cols = Vec::with_capacity(kh * kw);
        for i in 0..kh {
            for j in 0..kw {
                cols.push(
                    x.clone()
                        .slice([0..b, 0..c, i..i + h, j..j + w])
                        .unsqueeze_dim::<5>(2),
                );
            }
        }
        // [b, c, kh·kw, h, w]: row index channel·kh·kw + offset, as Conv2d's weight.
        let patches = Tensor::cat(cols, 2).reshape([b, k, h * w]);
        let wt = self.weight.val().unsqueeze_dim::<3>(0); // [1, out, k]: broadcast
        let y = wt.matmul(patches); // [b, out, h·w]
        let y = y + self.bias.val().reshape([1, c_out, 1]);
        y.reshape([b, c_out, h, w])
    }
}

/// A stride-1, "same"-padded 1D convolution as one GEMM (a [`GemmConv2d`] with a
/// `k × 1` kernel over `[batch, in, t, 1]`).
#[derive(Module, Debug)]
pub struct GemmConv1d<B: Backend> {
    pub conv: GemmConv2d<B>,
}

impl<B: Backend> GemmConv1d<B> {
    pub fn new(c_in: usize, c_out: usize, kernel: usize, device: &B::Device) -> Self {
        GemmConv1d {
            conv: GemmConv2dConfig::new([c_in, c_out], [kernel, 1]).init(device),
        }
    }

    /// `x: [batch, in, t]` → `[batch, out, t]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.conv
            .forward(x.unsqueeze_dim::<4>(3))
            .squeeze_dim::<3>(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::CpuAutodiff;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    type B = CpuAutodiff;

    fn close(a: Tensor<B, 4>, b: Tensor<B, 4>, what: &str) {
        let (a, b): (Vec<f32>, Vec<f32>) = (
            a.into_data().to_vec().unwrap(),
            b.into_data().to_vec().unwrap(),
        );
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * scale.max(1.0),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    #[test]
    fn equals_burn_conv2d_with_same_padding_and_its_gradients() {
        let device = Default::default();
        for (c_in, c_out, kh, kw, h, w) in [
            (1, 4, 3, 3, 7, 6),
            (3, 5, 3, 3, 5, 9),
            (2, 3, 5, 1, 11, 1),
            (2, 2, 5, 5, 6, 6),
        ] {
            let reference = Conv2dConfig::new([c_in, c_out], [kh, kw])
                .with_padding(PaddingConfig2d::Same)
                .init::<B>(&device);
            let mut ours = GemmConv2dConfig::new([c_in, c_out], [kh, kw]).init::<B>(&device);
            ours.weight = Param::from_tensor(
                reference
                    .weight
                    .val()
                    .reshape([c_out, c_in * kh * kw])
                    .detach()
                    .require_grad(),
            );
            let bias = reference.bias.as_ref().map(|b| b.val()).unwrap();
            ours.bias = Param::from_tensor(bias.detach().require_grad());
            let x =
                Tensor::<B, 4>::random([2, c_in, h, w], Distribution::Normal(0.0, 1.0), &device)
                    .require_grad();
            let a = ours.forward(x.clone());
            let r = reference.forward(x.clone());
            close(a.clone(), r.clone(), "output");
            // Gradients of a weighted sum (weights break symmetry).
            let g = Tensor::<B, 4>::random(a.dims(), Distribution::Normal(0.0, 1.0), &device);
            let ga = (a * g.clone()).sum().backward();
            let gr = (r * g).sum().backward();
            let dx_a = x.grad(&ga).unwrap();
            let dx_r = x.grad(&gr).unwrap();
            close(
                Tensor::from_inner(dx_a),
                Tensor::from_inner(dx_r),
                "input gradient",
            );
            let dw_a = ours.weight.grad(&ga).unwrap();
            let dw_r = reference
                .weight
                .grad(&gr)
                .unwrap()
                .reshape([c_out, c_in * kh * kw]);
            close(
                Tensor::from_inner(dw_a.reshape([c_out, c_in * kh * kw, 1, 1])),
                Tensor::from_inner(dw_r.reshape([c_out, c_in * kh * kw, 1, 1])),
                "weight gradient",
            );
        }
    }

    #[test]
    fn conv1d_keeps_the_length() {
        let device = Default::default();
        let c = GemmConv1d::<B>::new(4, 6, 5, &device);
        let x = Tensor::<B, 3>::random([3, 4, 17], Distribution::Normal(0.0, 1.0), &device);
        assert_eq!(c.forward(x).dims(), [3, 6, 17]);
    }
}
