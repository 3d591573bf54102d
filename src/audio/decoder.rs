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
    /// The data length is unknown (a WAV over 4 GiB with 0xFFFFFFFF lengths): the
    /// end of the file is the end of the audio.
    streamed: bool,
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

/// What a path names, for a message: `a directory`, `a FIFO (named pipe)`, ...
pub fn kind_of(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        "a regular file"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Check, without opening it, that `path` names a regular file (a symbolic link to
/// one is fine): a FIFO opened for reading blocks until a writer comes, a device
/// may never end, a directory is no audio. Anything else fails as
/// [`Reason::NotAFile`]; a missing or unreadable path with its own reason.
pub fn check_regular_file(path: &Path) -> Result<std::fs::Metadata, DecodeFailure> {
    let meta = std::fs::metadata(path).map_err(|e| io_failure(&e, "stat"))?;
    if meta.is_file() {
        Ok(meta)
    } else {
        Err(not_a_file(meta.file_type()))
    }
}

fn not_a_file(ft: std::fs::FileType) -> DecodeFailure {
    DecodeFailure::new(
        Reason::NotAFile,
        format!(
            "not a regular file: the path names {} (not opened)",
            kind_of(ft)
        ),
    )
}

/// Open a checked regular file for reading, never blocking: `O_NONBLOCK` makes the
/// open return at once should the path have become a FIFO since the check, and the
/// open file is checked again (it has no effect on regular files).
fn open_regular(path: &Path) -> Result<(File, u64), DecodeFailure> {
    use std::os::unix::fs::OpenOptionsExt;
    check_regular_file(path)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io_failure(&e, "open"))?;
    let meta = file.metadata().map_err(|e| io_failure(&e, "stat"))?;
    if !meta.is_file() {
        return Err(not_a_file(meta.file_type()));
    }
    Ok((file, meta.len()))
}

/// How many frames a lossy stream (MP3, AAC, Vorbis) may come out shorter than
/// its header declares before it is flagged as truncated: encoder delay and
/// padding make their declared lengths inexact by up to about two packets.
const SHORT_TOLERANCE_FRAMES: u64 = 4096;

/// The largest length a patched 32-bit RIFF size field may hold; longer data is
/// left "unknown" (0xFFFFFFFF) and read to its end.
const MAX_PATCHED_LEN: u64 = u32::MAX as u64 - 1;

/// What a look at a RIFF/WAVE (or RF64) header found.
#[derive(Default)]
struct RiffCheck {
    /// A chunk claims more bytes than the file has, or the `fmt ` chunk declares
    /// a sample rate or channel count beyond [`crate::limits`].
    refused: Option<DecodeFailure>,
    /// (offset, bytes) of header fields to present differently: a 32-bit length of
    /// 0xFFFFFFFF ("to the end of the file", written by streaming tools such as a
    /// piped ffmpeg) is replaced by the real length when it fits in 32 bits, so the
    /// demuxer stops exactly at the end of the data; an RF64 marker reads as RIFF.
    patches: Vec<(u64, [u8; 4])>,
    /// The data is longer than a 32-bit length can say (a WAV over 4 GiB): its
    /// length stays unknown, the demuxer reads to `limit`, and the end of the
    /// file there is the end of the audio, not a truncation.
    streamed: bool,
    /// Bytes past this offset are not shown (the end of the data, cut to whole
    /// frames, when the data length is left unknown).
    limit: Option<u64>,
}

fn read_at(f: &mut &File, pos: u64, buf: &mut [u8]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(pos)).is_ok() && f.read_exact(buf).is_ok()
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn inspect_riff(file: &File, len: u64) -> RiffCheck {
    inspect_riff_with(file, len, MAX_PATCHED_LEN)
}

/// [`inspect_riff`] with the largest length a size field may be patched to (a
/// parameter so that tests reach the over-4-GiB path with a small file).
fn inspect_riff_with(file: &File, len: u64, max_patched: u64) -> RiffCheck {
    use std::io::{Seek, SeekFrom};
    let mut out = RiffCheck::default();
    let mut f = file;
    let mut head = [0u8; 12];
    let rf64 = read_at(&mut f, 0, &mut head)
        && (&head[0..4] == b"RF64" || &head[0..4] == b"BW64")
        && &head[8..12] == b"WAVE";
    let riff = &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE";
    if riff || rf64 {
        let riff_size = le32(&head[4..8]);
        // RF64: the 64-bit data length from the `ds64` chunk.
        let mut ds64_data: Option<u64> = None;
        let mut block_align: u64 = 0;
        if rf64 {
            out.patches.push((0, *b"RIFF"));
        }
        let mut pos: u64 = 12;
        while pos + 8 <= len {
            let mut ch = [0u8; 8];
            if !read_at(&mut f, pos, &mut ch) {
                break;
            }
            let size = le32(&ch[4..8]);
            if &ch[0..4] == b"ds64" && size >= 16 {
                let mut body = [0u8; 16];
                if read_at(&mut f, pos + 8, &mut body) {
                    ds64_data = Some(le64(&body[8..16]));
                }
            } else if &ch[0..4] == b"fmt " && size >= 14 {
                let mut body = [0u8; 14];
                if read_at(&mut f, pos + 8, &mut body) {
                    block_align = u16::from_le_bytes([body[12], body[13]]) as u64;
                    // Bounded before the demuxer computes sizes from them.
                    let channels = u16::from_le_bytes([body[2], body[3]]) as usize;
                    let rate = le32(&body[4..8]);
                    if let Err(m) = crate::limits::check_audio_header(rate, channels) {
                        out.refused = Some(DecodeFailure::new(Reason::InvalidFormat, m));
                        break;
                    }
                }
            } else if &ch[0..4] == b"data" {
                let start = pos + 8;
                let available = len - start;
                let declared = match (size, ds64_data) {
                    (u32::MAX, Some(d)) if rf64 => Some(d),
                    (u32::MAX, _) => None,
                    (s, _) => Some(s as u64),
                };
                let data_len = match declared {
                    Some(d) if d > available => {
                        out.refused = Some(DecodeFailure::new(
                            Reason::Truncated,
                            format!(
                                "the data chunk declares {d} bytes but the file ends after {available} \
                                 (file is {} bytes short)",
                                d - available
                            ),
                        ));
                        break;
                    }
                    Some(d) => d,
                    None => available,
                };
                let riff_len = (start + data_len).saturating_sub(8);
                if data_len <= max_patched && riff_len <= max_patched {
                    if size == u32::MAX {
                        out.patches.push((pos + 4, (data_len as u32).to_le_bytes()));
                    }
                    if size == u32::MAX || rf64 || riff_size == u32::MAX || riff_size == 0 {
                        // The RIFF length covers the data at least.
                        let riff = (len - 8).min(max_patched).max(riff_len);
                        out.patches.push((4, (riff as u32).to_le_bytes()));
                    }
                } else {
                    // Too long for 32 bits: both lengths "unknown", read to the end
                    // of the data, cut to whole frames.
                    out.streamed = true;
                    out.patches.push((4, u32::MAX.to_le_bytes()));
                    out.patches.push((pos + 4, u32::MAX.to_le_bytes()));
                    let whole = if block_align > 0 {
                        data_len - data_len % block_align
                    } else {
                        data_len
                    };
                    out.limit = Some(start + whole);
                }
                break;
            }
            pos += 8 + size as u64 + (size as u64 & 1);
        }
    }
    let _ = f.seek(SeekFrom::Start(0));
    out
}

/// A file whose header shows patched fields (see [`RiffCheck::patches`]), read no
/// further than [`RiffCheck::limit`].
struct Patched {
    file: File,
    pos: u64,
    patches: Vec<(u64, [u8; 4])>,
    limit: Option<u64>,
}

impl std::io::Read for Patched {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = match self.limit {
            Some(l) => (l.saturating_sub(self.pos)).min(buf.len() as u64) as usize,
            None => buf.len(),
        };
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read(&mut buf[..want])?;
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
        let len = self.file.metadata().ok().map(|m| m.len());
        match self.limit {
            Some(l) => len.map(|n| n.min(l)),
            None => len,
        }
    }
}

impl ClipReader {
    /// Open and probe `path`.
    pub fn open(path: &Path) -> Result<ClipReader, DecodeFailure> {
        let (file, len) = open_regular(path)?;
        if len == 0 {
            return Err(DecodeFailure::new(Reason::Empty, "file is empty (0 bytes)"));
        }
        let riff = inspect_riff(&file, len);
        Self::from_file(file, path, riff)
    }

    fn from_file(file: File, path: &Path, riff: RiffCheck) -> Result<ClipReader, DecodeFailure> {
        if let Some(f) = riff.refused {
            return Err(f);
        }
        let source: Box<dyn symphonia::core::io::MediaSource> = if riff.patches.is_empty() {
            Box::new(file)
        } else {
            Box::new(Patched {
                file,
                pos: 0,
                patches: riff.patches,
                limit: riff.limit,
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
                    "unsupported: not a recognised audio container (probed by content)".to_string(),
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
        // Bounded before anything sized by them is allocated (chunks, resampler).
        crate::limits::check_audio_header(sample_rate, channels)
            .map_err(|m| DecodeFailure::new(Reason::InvalidFormat, m))?;
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
            streamed: riff.streamed,
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
                Err(SymError::IoError(e))
                    if self.streamed && e.kind() == ErrorKind::UnexpectedEof =>
                {
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
                if self.scratch.len() > crate::limits::MAX_CHANNELS {
                    return Err(DecodeFailure::new(
                        Reason::InvalidFormat,
                        format!(
                            "the stream has {} channels (accepted: at most {})",
                            self.scratch.len(),
                            crate::limits::MAX_CHANNELS
                        ),
                    ));
                }
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
        if last && let Some(short) = self.short_by() {
            return Err(short);
        }
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

    /// At the end of the stream: whether less audio came out than the container
    /// declares (a damaged block the demuxer skipped, a cut file). Exact for
    /// PCM and FLAC; codecs with encoder delay and padding (MP3, AAC, Vorbis)
    /// may differ by a few packets, so they are flagged only beyond
    /// [`SHORT_TOLERANCE_FRAMES`]. A streamed WAV declares no length.
    fn short_by(&self) -> Option<DecodeFailure> {
        let declared = self.info.n_frames?;
        let got = self.frames_out;
        if self.streamed || got >= declared {
            return None;
        }
        let exact = self.info.codec.starts_with("pcm") || self.info.codec == "flac";
        let missing = declared - got;
        if !exact && missing <= SHORT_TOLERANCE_FRAMES {
            return None;
        }
        let sr = self.info.sample_rate as f64;
        Some(DecodeFailure::new(
            Reason::Truncated,
            format!(
                "decoded {:.3} s of audio but the header declares {:.3} s (short_by_s = {:.3}): a damaged block was skipped or the file was cut",
                got as f64 / sr,
                declared as f64 / sr,
                missing as f64 / sr
            ),
        ))
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

#[cfg(test)]
mod hostile {
    //! Streamed and 64-bit WAVs, and paths that are no regular file.
    use super::*;
    use std::path::PathBuf;

    const RATE: u32 = 8000;

    fn fmt_chunk() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"fmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes()); // PCM
        b.extend_from_slice(&1u16.to_le_bytes()); // mono
        b.extend_from_slice(&RATE.to_le_bytes());
        b.extend_from_slice(&(RATE * 2).to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b
    }

    fn samples(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| (((i % 200) as i16 - 100) * 50).to_le_bytes())
            .collect()
    }

    /// What a piped ffmpeg writes: RIFF and data lengths 0xFFFFFFFF.
    fn streamed_wav(n: usize, tail: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(b"WAVE");
        b.extend(fmt_chunk());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend(samples(n));
        b.extend_from_slice(tail);
        b
    }

    /// An RF64 WAV: `ds64` holds the 64-bit lengths, the 32-bit ones are 0xFFFFFFFF.
    fn rf64_wav(n: usize, trailing_chunk: bool) -> Vec<u8> {
        let data = samples(n);
        let mut b = Vec::new();
        b.extend_from_slice(b"RF64");
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(b"WAVE");
        b.extend_from_slice(b"ds64");
        b.extend_from_slice(&28u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes()); // riff size (unused here)
        b.extend_from_slice(&(data.len() as u64).to_le_bytes());
        b.extend_from_slice(&(n as u64).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // table length
        b.extend(fmt_chunk());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend(data);
        if trailing_chunk {
            b.extend_from_slice(b"LIST");
            b.extend_from_slice(&4u32.to_le_bytes());
            b.extend_from_slice(b"INFO");
        }
        b
    }

    fn decode_all(mut r: ClipReader) -> Result<usize, DecodeFailure> {
        let mut n = 0;
        let mut last = false;
        while let Some(c) = r.next_chunk(RATE as usize)? {
            assert!(!last, "a chunk after the last one");
            n += c.frames();
            last = c.last;
        }
        assert!(last, "no chunk marked last");
        Ok(n)
    }

    fn open_with(bytes: &[u8], max_patched: u64) -> Result<ClipReader, DecodeFailure> {
        let dir = tempfile::tempdir().map_err(|e| io_failure(&e, "tmp"))?;
        let p = dir.path().join("x.wav");
        std::fs::write(&p, bytes).map_err(|e| io_failure(&e, "write"))?;
        let (file, len) = open_regular(&p)?;
        let riff = inspect_riff_with(&file, len, max_patched);
        ClipReader::from_file(file, &p, riff)
    }

    #[test]
    fn a_streamed_wav_decodes_to_its_end() {
        let n = 3 * RATE as usize + 17;
        // Lengths that fit 32 bits: patched to the real ones.
        let r = open_with(&streamed_wav(n, &[]), MAX_PATCHED_LEN).unwrap();
        assert_eq!(r.info().n_frames, Some(n as u64));
        assert_eq!(decode_all(r).unwrap(), n);
        // Over 4 GiB (here: over a small limit, the same code path): the lengths
        // stay unknown and the file is read to its end; half a frame at the end
        // is no audio and no truncation.
        let r = open_with(&streamed_wav(n, &[7]), 1000).unwrap();
        assert!(r.streamed);
        assert_eq!(decode_all(r).unwrap(), n);
    }

    #[test]
    fn rf64_decodes_with_its_64_bit_lengths() {
        let n = 2 * RATE as usize + 5;
        for max in [MAX_PATCHED_LEN, 1000] {
            for trailing in [false, true] {
                let r = open_with(&rf64_wav(n, trailing), max).unwrap();
                assert_eq!(decode_all(r).unwrap(), n, "max {max}, trailing {trailing}");
            }
        }
        // A ds64 that declares more data than the file has is a truncation.
        let mut short = rf64_wav(n, false);
        short.truncate(short.len() - 100);
        let e = open_with(&short, MAX_PATCHED_LEN).err().unwrap();
        assert_eq!(e.reason, Reason::Truncated, "{e:?}");
    }

    #[test]
    fn a_sparse_wav_over_4_gib_is_read_as_streamed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.wav");
        std::fs::write(&p, streamed_wav(RATE as usize, &[])).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        let len = (4u64 << 30) + 4097; // sparse: no disk used
        f.set_len(len).unwrap();
        let file = File::open(&p).unwrap();
        let riff = inspect_riff(&file, len);
        assert!(riff.streamed && riff.refused.is_none());
        // The end of the data, cut to whole frames: past the 32-bit limit.
        let limit = riff.limit.unwrap();
        assert!(limit > u32::MAX as u64 && limit <= len && (limit - 44).is_multiple_of(2));
        let mut r = ClipReader::open(&p).unwrap();
        assert_eq!(r.info().n_frames, None);
        let c = r.next_chunk(RATE as usize).unwrap().unwrap();
        assert_eq!(c.frames(), RATE as usize);
        assert!(!c.last);
    }

    #[test]
    fn an_unknown_container_is_unsupported_by_name() {
        let e = open_with(b"this is not audio at all, just some text", MAX_PATCHED_LEN)
            .err()
            .unwrap();
        assert_eq!(e.reason, Reason::Unsupported);
        assert!(e.message.contains("unsupported"), "{}", e.message);
    }

    #[test]
    fn fifos_sockets_devices_and_directories_are_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.wav");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(ok.success());
        let sock = dir.path().join("sock.wav");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let sub = dir.path().join("dir.wav");
        std::fs::create_dir(&sub).unwrap();
        let paths = [fifo, sock, sub, PathBuf::from("/dev/null")];
        // On a thread: a regression that opens the FIFO blocks, and fails here.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let got: Vec<_> = paths
                .iter()
                .map(|p| ClipReader::open(p).err().map(|e| (e.reason, e.message)))
                .collect();
            let _ = tx.send(got);
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("opening a FIFO / socket / device / directory blocked");
        for (g, kind) in got.iter().zip(["FIFO", "socket", "directory", "device"]) {
            let (reason, msg) = g.clone().unwrap();
            assert_eq!(reason, Reason::NotAFile, "{msg}");
            assert!(msg.contains(kind), "{msg}");
        }
    }
}
