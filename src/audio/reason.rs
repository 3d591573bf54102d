//! Why a file was quarantined. The codes are stable: they are written to
//! `_quarantine.parquet` and counted in the run summary.

/// Reason code of a quarantined file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The file does not exist.
    Missing,
    /// The file cannot be read (permissions).
    Permission,
    /// The file has no bytes, or no audio samples.
    Empty,
    /// The file ends before its header says it should.
    Truncated,
    /// Container or codec not supported (or not audio at all).
    Unsupported,
    /// Malformed data.
    Corrupt,
    /// NaN or infinite samples.
    NonFinite,
    /// A header field makes no sense (e.g. sample rate 0).
    InvalidFormat,
    /// Shorter than the configured minimum duration.
    TooShort,
    /// Longer than a stage accepts (e.g. `embed`'s `max_s`).
    TooLong,
    /// The decoder panicked on this input.
    DecoderPanic,
    /// The label scheme could not parse the file's name.
    Unlabeled,
    /// The path names a directory, FIFO, socket or device: quarantined without
    /// being opened (a FIFO opened for reading would block the run).
    NotAFile,
    /// The path is not valid UTF-8: listed (never dropped) but not read; its
    /// `clip_id` and `path` show the other bytes as `\xNN`.
    NotUtf8,
    /// Any other I/O error.
    Io,
}

impl Reason {
    pub const ALL: [Reason; 15] = [
        Reason::Missing,
        Reason::Permission,
        Reason::Empty,
        Reason::Truncated,
        Reason::Unsupported,
        Reason::Corrupt,
        Reason::NonFinite,
        Reason::InvalidFormat,
        Reason::TooShort,
        Reason::TooLong,
        Reason::DecoderPanic,
        Reason::Unlabeled,
        Reason::NotAFile,
        Reason::NotUtf8,
        Reason::Io,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Permission => "permission",
            Reason::Empty => "empty",
            Reason::Truncated => "truncated",
            Reason::Unsupported => "unsupported",
            Reason::Corrupt => "corrupt",
            Reason::NonFinite => "non_finite",
            Reason::InvalidFormat => "invalid_format",
            Reason::TooShort => "too_short",
            Reason::TooLong => "too_long",
            Reason::DecoderPanic => "decoder_panic",
            Reason::Unlabeled => "unlabeled",
            Reason::NotAFile => "not_a_file",
            Reason::NotUtf8 => "not_utf8",
            Reason::Io => "io",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
