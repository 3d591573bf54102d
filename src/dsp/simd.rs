//! Hot loops compiled twice and chosen at run time.
//!
//! The crate is built for baseline x86-64 (SSE2), so it runs on every machine a
//! Slurm cluster may hand it. The few loops that dominate feature extraction are
//! written once as portable Rust over fixed-size chunks (which LLVM vectorises at
//! any width) and instantiated twice by [`multiversion!`]: as is, and inside a
//! `#[target_feature(enable = "avx2,fma")]` function that is called when the CPU
//! has both (`is_x86_feature_detected!`, checked once). The AVX2 copy also fuses
//! multiply-adds ([`madd`]).
//!
//! The two copies round differently in the last bits (FMA, lane order): far inside
//! the librosa parity bound, and each machine gives identical results run after run.
//! `SERMO_SIMD=baseline` forces the portable copy (for comparisons).

/// Whether the AVX2 + FMA copies are used (decided once per process).
#[inline]
pub fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::atomic::{AtomicU8, Ordering};
        // 0 = not yet decided, 1 = no, 2 = yes.
        static LEVEL: AtomicU8 = AtomicU8::new(0);
        match LEVEL.load(Ordering::Relaxed) {
            0 => {
                let yes = std::env::var("SERMO_SIMD").map_or(true, |v| v != "baseline")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma");
                LEVEL.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes
            }
            l => l == 2,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The instruction set the dispatched kernels use, for reports.
pub fn level_name() -> &'static str {
    if avx2() { "avx2+fma" } else { "baseline" }
}

/// `a * b + c`, fused in the AVX2 copy (`FMA = true`), two roundings otherwise.
#[inline(always)]
pub fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// [`madd`] for f64.
#[inline(always)]
pub fn madd64<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// Dot product over 8 independent lanes (a plain `f32` sum is sequential under
/// strict floating-point ordering and would not vectorise). The chunks are
/// fixed-size arrays, which LLVM turns into whole-register multiply-adds.
#[inline(always)]
pub fn dot_k<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        if let (Ok(x), Ok(y)) = (<&[f32; 8]>::try_from(x), <&[f32; 8]>::try_from(y)) {
            for k in 0..8 {
                acc[k] = madd::<FMA>(x[k], y[k], acc[k]);
            }
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ta.iter().zip(tb) {
        tail = madd::<FMA>(*x, *y, tail);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Define `pub fn NAME(args) -> R` from a body generic over `const FMA: bool`: the
/// body is compiled for baseline x86-64 and again with AVX2 + FMA, and the call
/// picks one by [`avx2`]. Arguments must be plain identifiers.
macro_rules! multiversion {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident<const $fma:ident: bool>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        $body:block
    ) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body<const $fma: bool>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn fast($($arg: $ty),*) $(-> $ret)? {
                body::<true>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if $crate::dsp::simd::avx2() {
                // SAFETY: `avx2()` checked at run time that this CPU has AVX2 and FMA.
                return unsafe { fast($($arg),*) };
            }
            body::<false>($($arg),*)
        }
    };
}
pub(crate) use multiversion;

multiversion! {
    /// [`dot_k`], dispatched.
    pub fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
        dot_k::<FMA>(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn madd_and_dot_agree_across_copies() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.3).cos()).collect();
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        for d in [dot_k::<false>(&a, &b), dot_k::<true>(&a, &b), dot(&a, &b)] {
            assert!((d as f64 - exact).abs() < 1e-5, "{d} vs {exact}");
        }
        assert_eq!(madd::<false>(2.0, 3.0, 1.0), 7.0);
        assert_eq!(madd::<true>(2.0, 3.0, 1.0), 7.0);
        assert!(["avx2+fma", "baseline"].contains(&level_name()));
    }
}
