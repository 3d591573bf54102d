//! Incremental decoding of one file with symphonia, in chunks of bounded size.
//!
//! [`ClipReader`] owns the demuxer and decoder of one file; each call to
//! [`ClipReader::next_chunk`] decodes just enough packets for one chunk, so a 10-hour
//! file decodes in the memory of one chunk. Every failure is classified as a
//! [`Reason`] for the quarantine table. The format is detected from the content; the
//! extension is only a hint.

use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::Reason;

/// A classified decode failure.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeFailure {
    pub reason: Reason,
    pub message: String,
}

impl DecodeFailure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        DecodeFailure {
            reason,
            message: message.into(),
        }
    }
}

/// What the container says about the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipInfo {
    pub sample_rate: u32,
    pub channels: usize,
    /// Short codec name (`pcm_s16le`, `flac`, `mp3`, ...).
    pub codec: String,
    /// Frames per channel, when the container declares it.
    pub n_frames: Option<u64>,
}

/// One chunk of decoded audio, planar (one `Vec` per channel).
#[derive(Debug)]
pub struct Chunk {
    pub planes: Vec<Vec<f32>>,
    /// Index of the first frame in the file.
    pub first_frame: u64,
    /// No more audio follows.
    pub last: bool,
}

impl Chunk {
    pub fn frames(&self) -> usize {
        self.planes.first().map_or(0, Vec::len)
    }
}

/// Decoder state of one open file.
pub struct ClipReader {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    info: ClipInfo,
    pending: Vec<Vec<f32>>,
    scratch: Vec<Vec<f32>>,
    frames_out: u64,
    eof: bool,
}

fn io_failure(e: &std::io::Error, what: &str) -> DecodeFailure {
    let reason = match e.kind() {
        ErrorKind::NotFound => Reason::Missing,
        ErrorKind::PermissionDenied => Reason::Permission,
        ErrorKind::UnexpectedEof => Reason::Truncated,
        _ => Reason::Io,
    };
    DecodeFailure::new(reason, format!("{what}: {e}"))
}

fn sym_failure(e: SymError, what: &str) -> DecodeFailure {
    match e {
        SymError::IoError(io) => io_failure(&io, what),
        SymError::DecodeError(m) => {
            DecodeFailure::new(Reason::Corrupt, format!("{what}: malformed stream: {m}"))
        }
        SymError::Unsupported(m) => {
            DecodeFailure::new(Reason::Unsupported, format!("{what}: unsupported: {m}"))
        }
        SymError::LimitError(m) => {
            DecodeFailure::new(Reason::Corrupt, format!("{what}: limit reached: {m}"))
        }
        SymError::SeekError(_) => {
            DecodeFailure::new(Reason::Corrupt, format!("{what}: seek error"))
        }
        SymError::ResetRequired => DecodeFailure::new(
            Reason::Unsupported,
            format!("{what}: the stream changes its track layout midway (chained stream)"),
        ),
        other => DecodeFailure::new(Reason::Corrupt, format!("{what}: {other}")),
    }
}

/// What a look at a RIFF/WAVE header found.
#[derive(Default)]
struct RiffCheck {
    /// A chunk claims more bytes than the file has.
    truncated: Option<DecodeFailure>,
    /// (offset, value) of 32-bit length fields to present differently: a length of
    /// 0xFFFFFFFF ("to the end of the file", written by streaming tools) is replaced
    /// by the real length so the demuxer reads to EOF.
    patches: Vec<(u64, u32)>,
}

fn inspect_riff(file: &File, len: u64) -> RiffCheck {
    use std::io::{Read, Seek, SeekFrom};
    let mut out = RiffCheck::default();
    let mut f = file;
    let mut head = [0u8; 12];
    let ok = f.read_exact(&mut head).is_ok() && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE";
    if ok {
        let riff_size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let mut pos: u64 = 12;
        while pos + 8 <= len {
            let mut ch = [0u8; 8];
            if f.seek(SeekFrom::Start(pos)).is_err() || f.read_exact(&mut ch).is_err() {
                break;
            }
            let size = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
            if &ch[0..4] == b"data" {
                let available = len - pos - 8;
                if size == u32::MAX {
                    out.patches
                        .push((pos + 4, available.min(u32::MAX as u64 - 1) as u32));
                    out.patches
                        .push((4, (len - 8).min(u32::MAX as u64 - 1) as u32));
                } else if pos + 8 + size as u64 > len {
                    out.truncated = Some(DecodeFailure::new(
                        Reason::Truncated,
                        format!(
                            "the data chunk declares {size} bytes but the file ends after {available} \
                             (file is {} bytes short)",
                            pos + 8 + size as u64 - len
                        ),
                    ));
                } else if riff_size == u32::MAX || riff_size == 0 {
                    out.patches
                        .push((4, (len - 8).min(u32::MAX as u64 - 1) as u32));
                }
                break;
            }
            pos += 8 + size as u64 + (size as u64 & 1);
        }
    }
    let _ = f.seek(SeekFrom::Start(0));
    out
}

/// A file whose header shows patched length fields (see [`RiffCheck::patches`]).
struct Patched {
    file: File,
    pos: u64,
    patches: Vec<(u64, [u8; 4])>,
}

impl std::io::Read for Patched {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        for (off, bytes) in &self.patches {
            for (k, b) in bytes.iter().enumerate() {
                let at = off + k as u64;
                if at >= self.pos && at < self.pos + n as u64 {
                    buf[(at - self.pos) as usize] = *b;
                }
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for Patched {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
}

impl symphonia::core::io::MediaSource for Patched {
    fn is_seekable(&self) -> bool {
        true
    }
    fn byte_len(&self) -> Option<u64> {
        self.file.metadata().ok().map(|m| m.len())
    }
}

impl ClipReader {
    /// Open and probe `path`.
    pub fn open(path: &Path) -> Result<ClipReader, DecodeFailure> {
        let file = File::open(path).map_err(|e| io_failure(&e, "open"))?;
        let len = file.metadata().map_err(|e| io_failure(&e, "stat"))?.len();
        if len == 0 {
            return Err(DecodeFailure::new(Reason::Empty, "file is empty (0 bytes)"));
        }
        let riff = inspect_riff(&file, len);
        if let Some(f) = riff.truncated {
            return Err(f);
        }
        let source: Box<dyn symphonia::core::io::MediaSource> = if riff.patches.is_empty() {
            Box::new(file)
        } else {
            Box::new(Patched {
                file,
                pos: 0,
                patches: riff
                    .patches
                    .iter()
                    .map(|(o, v)| (*o, v.to_le_bytes()))
                    .collect(),
            })
        };
        let mss = MediaSourceStream::new(source, Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| match e {
                SymError::Unsupported(_) => DecodeFailure::new(
                    Reason::Unsupported,
                    "not a recognised audio container (probed by content)".to_string(),
                ),
                other => sym_failure(other, "probe"),
            })?;
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(|| DecodeFailure::new(Reason::Unsupported, "no audio track"))?;
        let track_id = track.id;
        let n_frames = track.num_frames;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| DecodeFailure::new(Reason::Unsupported, "no audio codec parameters"))?
            .clone();
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|e| sym_failure(e, "codec"))?;
        let sample_rate = params.sample_rate.unwrap_or(0);
        if sample_rate == 0 {
            return Err(DecodeFailure::new(
                Reason::InvalidFormat,
                "sample rate is 0 or missing",
            ));
        }
        let channels = params.channels.as_ref().map_or(0, |c| c.count());
        let codec = decoder.codec_info().short_name.to_string();
        Ok(ClipReader {
            format,
            decoder,
            track_id,
            info: ClipInfo {
                sample_rate,
                channels,
                codec,
                n_frames,
            },
            pending: Vec::new(),
            scratch: Vec::new(),
            frames_out: 0,
            eof: false,
        })
    }

    pub fn info(&self) -> &ClipInfo {
        &self.info
    }

    /// Decode up to `max_frames` frames. `Ok(None)` once everything was returned.
    pub fn next_chunk(&mut self, max_frames: usize) -> Result<Option<Chunk>, DecodeFailure> {
        let max_frames = max_frames.max(1);
        // Read until more than a chunk is pending (or the stream ends): a chunk
        // that ends exactly at the end of the stream must know it is the last one,
        // or nothing downstream would be marked `last_chunk` (and a resampler would
        // never flush its tail). At most one packet more than a chunk is held.
        while !self.eof && self.pending.first().map_or(0, Vec::len) <= max_frames {
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => {
                    self.eof = true;
                    break;
                }
                Err(e) => return Err(self.mid_stream_failure(e, "demux")),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let buf = match self.decoder.decode(&packet) {
                Ok(b) => b,
                Err(e) => return Err(self.mid_stream_failure(e, "decode")),
            };
            buf.copy_to_vecs_planar::<f32>(&mut self.scratch);
            if self.pending.is_empty() {
                self.pending = vec![Vec::new(); self.scratch.len()];
                if self.info.channels == 0 {
                    self.info.channels = self.scratch.len();
                }
            }
            if self.scratch.len() != self.pending.len() {
                return Err(DecodeFailure::new(
                    Reason::Unsupported,
                    format!(
                        "channel count changes midway ({} -> {})",
                        self.pending.len(),
                        self.scratch.len()
                    ),
                ));
            }
            for (p, s) in self.pending.iter_mut().zip(&self.scratch) {
                p.extend_from_slice(s);
            }
        }
        let have = self.pending.first().map_or(0, Vec::len);
        if have == 0 {
            if self.frames_out == 0 {
                return Err(DecodeFailure::new(Reason::Empty, "no audio samples"));
            }
            return Ok(None);
        }
        let take = have.min(max_frames);
        let planes: Vec<Vec<f32>> = self
            .pending
            .iter_mut()
            .map(|p| {
                let rest = p.split_off(take);
                std::mem::replace(p, rest)
            })
            .collect();
        let first_frame = self.frames_out;
        self.frames_out += take as u64;
        let last = self.eof && self.pending.first().is_none_or(Vec::is_empty);
        if let Some(bad) = planes.iter().flatten().position(|s| !s.is_finite()) {
            let ch = bad / take;
            let frame = first_frame + (bad % take) as u64;
            return Err(DecodeFailure::new(
                Reason::NonFinite,
                format!(
                    "non-finite sample (NaN or Inf) at {:.3} s, channel {ch}",
                    frame as f64 / self.info.sample_rate as f64
                ),
            ));
        }
        Ok(Some(Chunk {
            planes,
            first_frame,
            last,
        }))
    }

    fn mid_stream_failure(&self, e: SymError, what: &str) -> DecodeFailure {
        let mut f = sym_failure(e, what);
        let decoded = self.frames_out + self.pending.first().map_or(0, Vec::len) as u64;
        if f.reason == Reason::Truncated || f.reason == Reason::Io {
            f.reason = Reason::Truncated;
            f.message = format!(
                "{} (file ends after {:.3} s of audio{})",
                f.message,
                decoded as f64 / self.info.sample_rate as f64,
                self.info
                    .n_frames
                    .map(|n| format!(
                        ", header declares {:.3} s",
                        n as f64 / self.info.sample_rate as f64
                    ))
                    .unwrap_or_default()
            );
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_reasons() {
        let e = |k| io_failure(&std::io::Error::from(k), "open").reason;
        assert_eq!(e(ErrorKind::NotFound), Reason::Missing);
        // Tests run as root in CI, where chmod cannot deny reads: map it directly.
        assert_eq!(e(ErrorKind::PermissionDenied), Reason::Permission);
        assert_eq!(e(ErrorKind::UnexpectedEof), Reason::Truncated);
        assert_eq!(
            sym_failure(SymError::DecodeError("x"), "decode").reason,
            Reason::Corrupt
        );
        assert_eq!(
            sym_failure(SymError::Unsupported("x"), "codec").reason,
            Reason::Unsupported
        );
    }
}
