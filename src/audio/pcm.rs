//! Uncompressed PCM streams (standard input, a FIFO, a growing file): the format
//! named on the command line or in a `stdin` source ([`PcmFormat`]), the RIFF/WAVE
//! header read from a stream without seeking ([`read_wav_header`]), and the reader
//! that turns interleaved samples into mono chunks on its own thread
//! ([`reader_thread`]). Used by the `stdin` source and `sermo serve`.

use std::io::Read;

use serde::Deserialize;

/// Sample format of the stream.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Deserialize,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PcmFormat {
    /// RIFF/WAVE: the header says the rest.
    #[default]
    Wav,
    /// Raw signed 16-bit little-endian.
    S16le,
    /// Raw 32-bit float little-endian.
    F32le,
}

/// Layout of the samples in the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    pub rate: u32,
    pub channels: u16,
    pub encoding: Encoding,
}

/// Sample encoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Encoding {
    U8,
    S16,
    S24,
    S32,
    F32,
    F64,
}

impl Encoding {
    pub fn bytes(self) -> usize {
        match self {
            Encoding::U8 => 1,
            Encoding::S16 => 2,
            Encoding::S24 => 3,
            Encoding::S32 | Encoding::F32 => 4,
            Encoding::F64 => 8,
        }
    }

    pub fn codec(self) -> &'static str {
        match self {
            Encoding::U8 => "pcm_u8",
            Encoding::S16 => "pcm_s16le",
            Encoding::S24 => "pcm_s24le",
            Encoding::S32 => "pcm_s32le",
            Encoding::F32 => "pcm_f32le",
            Encoding::F64 => "pcm_f64le",
        }
    }

    /// One sample from its little-endian bytes, in [-1, 1].
    pub fn sample(self, b: &[u8]) -> f32 {
        match self {
            Encoding::U8 => (b[0] as f32 - 128.0) / 128.0,
            Encoding::S16 => i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0,
            Encoding::S24 => {
                let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
                v as f32 / 8_388_608.0
            }
            Encoding::S32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
            Encoding::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Encoding::F64 => {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
        }
    }
}

fn read_exact_or_eof(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Read a RIFF/WAVE header up to the start of the `data` chunk's samples.
pub fn read_wav_header(r: &mut dyn Read) -> std::result::Result<Layout, String> {
    let mut h = [0u8; 12];
    if read_exact_or_eof(r, &mut h).map_err(|e| e.to_string())? < 12
        || &h[0..4] != b"RIFF"
        || &h[8..12] != b"WAVE"
    {
        return Err("not a RIFF/WAVE stream (give --format s16le|f32le for raw PCM)".into());
    }
    let mut layout = None;
    loop {
        let mut c = [0u8; 8];
        if read_exact_or_eof(r, &mut c).map_err(|e| e.to_string())? < 8 {
            return Err("the WAV stream ended before its data chunk".into());
        }
        let size = u32::from_le_bytes([c[4], c[5], c[6], c[7]]) as usize;
        match &c[0..4] {
            b"fmt " => {
                if !(16..=1024).contains(&size) {
                    return Err(format!("bad fmt chunk size {size}"));
                }
                let mut f = vec![0u8; size + (size & 1)];
                if read_exact_or_eof(r, &mut f).map_err(|e| e.to_string())? < f.len() {
                    return Err("the WAV stream ended inside its fmt chunk".into());
                }
                let mut tag = u16::from_le_bytes([f[0], f[1]]);
                let channels = u16::from_le_bytes([f[2], f[3]]);
                let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
                let bits = u16::from_le_bytes([f[14], f[15]]);
                if tag == 0xFFFE && size >= 26 {
                    tag = u16::from_le_bytes([f[24], f[25]]);
                }
                let encoding = match (tag, bits) {
                    (1, 8) => Encoding::U8,
                    (1, 16) => Encoding::S16,
                    (1, 24) => Encoding::S24,
                    (1, 32) => Encoding::S32,
                    (3, 32) => Encoding::F32,
                    (3, 64) => Encoding::F64,
                    _ => {
                        return Err(format!(
                            "WAV format tag {tag} with {bits} bits is not streamable PCM"
                        ));
                    }
                };
                if channels == 0 {
                    return Err(format!("WAV header says {channels} channels at {rate} Hz"));
                }
                crate::limits::check_audio_header(rate, channels as usize)
                    .map_err(|m| format!("invalid WAV header: {m}"))?;
                layout = Some(Layout {
                    rate,
                    channels,
                    encoding,
                });
            }
            b"data" => return layout.ok_or("the WAV stream has data before its fmt chunk".into()),
            _ => {
                let mut skip = (size + (size & 1)) as u64;
                let copied = std::io::copy(&mut r.take(skip), &mut std::io::sink())
                    .map_err(|e| e.to_string())?;
                skip -= copied;
                if skip > 0 {
                    return Err("the WAV stream ended inside a chunk".into());
                }
            }
        }
    }
}

/// Chunks of mono samples (`last` on the final one) read on a thread.
pub type Chunk = std::result::Result<(Vec<f32>, bool), String>;

pub fn reader_thread(
    mut input: Box<dyn Read + Send>,
    layout: Layout,
    chunk_frames: usize,
    tx: tokio::sync::mpsc::Sender<Chunk>,
) {
    let width = layout.encoding.bytes() * layout.channels as usize;
    let mut buf = vec![0u8; chunk_frames * width];
    loop {
        let n = match read_exact_or_eof(&mut *input, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.blocking_send(Err(format!("reading the stream: {e}")));
                return;
            }
        };
        let frames = n / width;
        let ch = layout.channels as usize;
        let bytes = layout.encoding.bytes();
        let mono: Vec<f32> = (0..frames)
            .map(|f| {
                let mut s = 0.0;
                for c in 0..ch {
                    let o = (f * ch + c) * bytes;
                    s += layout.encoding.sample(&buf[o..o + bytes]);
                }
                s / ch as f32
            })
            .collect();
        let last = n < buf.len();
        if tx.blocking_send(Ok((mono, last))).is_err() || last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_header_with_extra_chunks_is_read() {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF\xff\xff\xff\xffWAVE");
        b.extend_from_slice(b"LIST");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(b"abc\0");
        b.extend_from_slice(b"fmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&16000u32.to_le_bytes());
        b.extend_from_slice(&64000u32.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data\xff\xff\xff\xff");
        let mut r: &[u8] = &b;
        let l = read_wav_header(&mut r).unwrap();
        assert_eq!(
            l,
            Layout {
                rate: 16000,
                channels: 2,
                encoding: Encoding::S16
            }
        );
        assert!(read_wav_header(&mut &b"garbage"[..]).is_err());
    }

    #[test]
    fn samples_decode_to_unit_range() {
        assert_eq!(Encoding::S16.sample(&(-32768i16).to_le_bytes()), -1.0);
        assert_eq!(Encoding::U8.sample(&[128]), 0.0);
        let v = Encoding::S24.sample(&[0xff, 0xff, 0x7f]);
        assert!((v - 1.0).abs() < 1e-6);
    }
}
