//! Channel handling of decoded (planar) audio. Pure functions, no I/O.

use serde::Deserialize;

/// What to do with multichannel audio.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ChannelMode {
    /// Mean of all channels (librosa's `mono=True`).
    #[default]
    Mix,
    /// The first channel only.
    First,
    /// Every channel, one list per channel.
    Keep,
}

/// Down-mix planar audio to mono according to `mode` (`Keep` is not a down-mix and
/// behaves like `Mix` here; callers keep the planes themselves).
pub fn to_mono(planes: Vec<Vec<f32>>, mode: ChannelMode) -> Vec<f32> {
    let n = planes.len();
    let mut it = planes.into_iter();
    let Some(first) = it.next() else {
        return Vec::new();
    };
    match (n, mode) {
        (1, _) | (_, ChannelMode::First) => first,
        _ => {
            let mut out = first;
            for p in it {
                for (o, s) in out.iter_mut().zip(&p) {
                    *o += *s;
                }
            }
            let scale = 1.0 / n as f32;
            for o in &mut out {
                *o *= scale;
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_the_mean_and_first_is_channel_zero() {
        let planes = vec![vec![1.0, 0.5], vec![0.0, -0.5]];
        assert_eq!(to_mono(planes.clone(), ChannelMode::Mix), vec![0.5, 0.0]);
        assert_eq!(to_mono(planes.clone(), ChannelMode::First), vec![1.0, 0.5]);
        assert_eq!(
            to_mono(planes[..1].to_vec(), ChannelMode::Mix),
            vec![1.0, 0.5]
        );
    }
}
