//! Mutations: generic byte-level ones (bit and byte flips, interesting integers
//! at random offsets, length fields ± 1, truncation, chunk duplication and
//! splicing between corpus files), header-aware ones for RIFF/WAVE, FLAC and
//! Ogg (chunk and block length fields, `fmt ` and STREAMINFO fields, Ogg page
//! CRCs recomputed so a mutated page is not simply rejected), and token-level
//! ones for text targets (a dictionary of the target's words).
//!
//! Everything is drawn from [`Rng`], so a run is reproducible from its seed.

/// SplitMix64: small, fast, and the same on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5EED_F022_0000_0026)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const INTERESTING: [u64; 22] = [
    0,
    1,
    2,
    3,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x1_0000,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFE,
    0xFFFF_FFFF,
    0x1_0000_0000,
    0x7FFF_FFFF_FFFF_FFFF,
    0x8000_0000_0000_0000,
    u64::MAX,
    44,
    16,
];

/// Header words worth inserting into binary inputs.
pub const BINARY_DICT: &[&[u8]] = &[
    b"RIFF",
    b"RF64",
    b"BW64",
    b"WAVE",
    b"fmt ",
    b"data",
    b"LIST",
    b"INFO",
    b"fact",
    b"ds64",
    b"cue ",
    b"smpl",
    b"fLaC",
    b"OggS",
    b"\x01vorbis",
    b"OpusHead",
    b"OpusTags",
    b"\x7fFLAC",
    b"ID3",
    b"TAG",
    b"Xing",
    b"Info",
    b"LAME",
    b"FORM",
    b"AIFF",
    b"AIFC",
    b"COMM",
    b"SSND",
    b"NONE",
    b"sowt",
    b"fl32",
    b"caff",
    b"desc",
    b"lpcm",
    b"pakt",
    b"kuki",
    b"ftyp",
    b"M4A ",
    b"moov",
    b"mvhd",
    b"trak",
    b"mdia",
    b"minf",
    b"stbl",
    b"stsd",
    b"stts",
    b"stsc",
    b"stsz",
    b"stco",
    b"co64",
    b"mp4a",
    b"alac",
    b"esds",
    b"mdat",
    b"\xff\xfb",
    b"\xff\xf3",
    b"\xff\xf1",
    b"\xff\xf8",
    b"\xfe\xff",
    b"\x01\x00",
    b"\x03\x00",
];

/// One mutated copy of `base`, `others` being the rest of the corpus (for
/// splicing), `dict` the target's words, at most `max_len` bytes.
pub fn mutate(
    rng: &mut Rng,
    base: &[u8],
    others: &[Vec<u8>],
    dict: &[Vec<u8>],
    text: bool,
    max_len: usize,
) -> Vec<u8> {
    let mut v = base.to_vec();
    // Mostly few mutations (close to a valid input), sometimes many.
    let rounds = if rng.chance(4) {
        1 + rng.below(16)
    } else {
        1 + rng.below(3)
    };
    for _ in 0..rounds {
        let choice = rng.below(if text { 12 } else { 16 });
        match choice {
            0 => flip_bit(rng, &mut v),
            1 => set_byte(rng, &mut v),
            2 => {
                if text {
                    text_number(rng, &mut v)
                } else {
                    interesting(rng, &mut v)
                }
            }
            3 => add_to_u32(rng, &mut v),
            4 => truncate(rng, &mut v),
            5 => delete_range(rng, &mut v),
            6 => duplicate_range(rng, &mut v),
            7 => splice(rng, &mut v, others),
            8 | 9 => insert_word(rng, &mut v, dict),
            10 => {
                if text {
                    line_op(rng, &mut v)
                } else {
                    insert_random(rng, &mut v)
                }
            }
            11 => {
                if text {
                    replace_word(rng, &mut v, dict)
                } else {
                    interesting(rng, &mut v)
                }
            }
            _ => header_aware(rng, &mut v),
        }
        if v.len() > max_len {
            v.truncate(max_len);
        }
    }
    if !text && v.starts_with(b"OggS") && !rng.chance(8) {
        fix_ogg_crcs(&mut v);
    }
    v
}

fn flip_bit(rng: &mut Rng, v: &mut [u8]) {
    if !v.is_empty() {
        let i = rng.below(v.len());
        v[i] ^= 1 << rng.below(8);
    }
}

fn set_byte(rng: &mut Rng, v: &mut [u8]) {
    if !v.is_empty() {
        let i = rng.below(v.len());
        v[i] = match rng.below(4) {
            0 => v[i].wrapping_add(1),
            1 => v[i].wrapping_sub(1),
            2 => *rng.pick(&[0u8, 0xFF, 0x7F, 0x80, b'0', b'\n', b'"', b'\'']),
            _ => rng.next() as u8,
        };
    }
}

/// An interesting integer of 1, 2, 4 or 8 bytes, little- or big-endian, at a
/// random offset.
fn interesting(rng: &mut Rng, v: &mut [u8]) {
    let width = *rng.pick(&[1usize, 2, 4, 4, 8]);
    if v.len() < width {
        return;
    }
    let mut x = *rng.pick(&INTERESTING);
    if rng.chance(4) {
        x = x.wrapping_add(rng.below(3) as u64).wrapping_sub(1);
    }
    let at = rng.below(v.len() - width + 1);
    write_int(v, at, width, x, rng.chance(2));
}

fn write_int(v: &mut [u8], at: usize, width: usize, x: u64, big: bool) {
    let bytes = if big {
        x.to_be_bytes()[8 - width..].to_vec()
    } else {
        x.to_le_bytes()[..width].to_vec()
    };
    v[at..at + width].copy_from_slice(&bytes);
}

/// A 32-bit little-endian word (a length, most likely) ± a small delta.
fn add_to_u32(rng: &mut Rng, v: &mut [u8]) {
    if v.len() < 4 {
        return;
    }
    let at = rng.below(v.len() - 3);
    let x = u32::from_le_bytes([v[at], v[at + 1], v[at + 2], v[at + 3]]);
    let d = 1 + rng.below(8) as u32;
    let y = if rng.chance(2) {
        x.wrapping_add(d)
    } else {
        x.wrapping_sub(d)
    };
    v[at..at + 4].copy_from_slice(&y.to_le_bytes());
}

fn truncate(rng: &mut Rng, v: &mut Vec<u8>) {
    if !v.is_empty() {
        let n = rng.below(v.len());
        v.truncate(n);
    }
}

fn range(rng: &mut Rng, len: usize) -> (usize, usize) {
    let a = rng.below(len + 1);
    let max = (len - a).min(if rng.chance(4) { 4096 } else { 64 });
    (a, a + rng.below(max + 1))
}

fn delete_range(rng: &mut Rng, v: &mut Vec<u8>) {
    let (a, b) = range(rng, v.len());
    v.drain(a..b);
}

fn duplicate_range(rng: &mut Rng, v: &mut Vec<u8>) {
    let (a, b) = range(rng, v.len());
    let chunk = v[a..b].to_vec();
    let at = rng.below(v.len() + 1);
    let n = if rng.chance(8) { 1 + rng.below(16) } else { 1 };
    for _ in 0..n {
        v.splice(at..at, chunk.iter().copied());
    }
}

/// The head of this input and the tail of another (or a piece of it inserted).
fn splice(rng: &mut Rng, v: &mut Vec<u8>, others: &[Vec<u8>]) {
    if others.is_empty() {
        return;
    }
    let o = rng.pick(others);
    if rng.chance(2) {
        let cut = rng.below(v.len() + 1);
        let from = rng.below(o.len() + 1);
        v.truncate(cut);
        v.extend_from_slice(&o[from..]);
    } else {
        let (a, b) = range(rng, o.len());
        let at = rng.below(v.len() + 1);
        v.splice(at..at, o[a..b].iter().copied());
    }
}

fn insert_word(rng: &mut Rng, v: &mut Vec<u8>, dict: &[Vec<u8>]) {
    if dict.is_empty() {
        return;
    }
    let w = rng.pick(dict).clone();
    let at = rng.below(v.len() + 1);
    if rng.chance(2) || v.len() < at + w.len() {
        v.splice(at..at, w);
    } else {
        v[at..at + w.len()].copy_from_slice(&w);
    }
}

fn insert_random(rng: &mut Rng, v: &mut Vec<u8>) {
    let n = 1 + rng.below(16);
    let at = rng.below(v.len() + 1);
    let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    v.splice(at..at, bytes);
}

/// Runs of `[A-Za-z0-9_]` (a word of a text input) as ranges.
fn words(v: &[u8]) -> Vec<(usize, usize)> {
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        if is_word(v[i]) {
            let s = i;
            while i < v.len() && is_word(v[i]) {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

fn replace_word(rng: &mut Rng, v: &mut Vec<u8>, dict: &[Vec<u8>]) {
    let ws = words(v);
    if ws.is_empty() || dict.is_empty() {
        return insert_word(rng, v, dict);
    }
    let (a, b) = *rng.pick(&ws);
    let w = rng.pick(dict).clone();
    v.splice(a..b, w);
}

const TEXT_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "1e309",
    "-1e309",
    "1e-320",
    "0.0",
    "-0.0",
    "nan",
    "inf",
    "-inf",
    "0.5",
    "1_000",
    "0x10",
    "1e",
    "99999999999999999999999999999",
];

/// A number (digit run) replaced by an interesting one.
fn text_number(rng: &mut Rng, v: &mut Vec<u8>) {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < v.len() {
        if v[i].is_ascii_digit() {
            let s = i;
            while i < v.len() && (v[i].is_ascii_digit() || v[i] == b'.') {
                i += 1;
            }
            runs.push((s, i));
        } else {
            i += 1;
        }
    }
    let n = rng.pick(TEXT_NUMBERS).as_bytes().to_vec();
    if runs.is_empty() {
        let at = rng.below(v.len() + 1);
        v.splice(at..at, n);
    } else {
        let (a, b) = *rng.pick(&runs);
        v.splice(a..b, n);
    }
}

/// Delete, duplicate or swap whole lines.
fn line_op(rng: &mut Rng, v: &mut Vec<u8>) {
    let mut lines: Vec<Vec<u8>> = v.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
    if lines.is_empty() {
        return;
    }
    let i = rng.below(lines.len());
    match rng.below(3) {
        0 => {
            lines.remove(i);
        }
        1 => {
            let l = lines[i].clone();
            let at = rng.below(lines.len() + 1);
            lines.insert(at, l);
        }
        _ => {
            let j = rng.below(lines.len());
            lines.swap(i, j);
        }
    }
    *v = lines.join(&b'\n');
}

// ---------------------------------------------------------------------------
// Header-aware mutations

fn header_aware(rng: &mut Rng, v: &mut Vec<u8>) {
    if v.len() >= 12 && (&v[0..4] == b"RIFF" || &v[0..4] == b"RF64") {
        riff(rng, v)
    } else if v.starts_with(b"fLaC") {
        flac(rng, v)
    } else if v.starts_with(b"OggS") {
        ogg(rng, v)
    } else {
        // Near a sync word or a magic number: the fields right after it.
        magic_neighbour(rng, v)
    }
}

/// (offset of the chunk header, id, size) of each RIFF chunk.
fn riff_chunks(v: &[u8]) -> Vec<(usize, [u8; 4], u32)> {
    let mut out = Vec::new();
    let mut pos = 12usize;
    while pos + 8 <= v.len() && out.len() < 64 {
        let id = [v[pos], v[pos + 1], v[pos + 2], v[pos + 3]];
        let size = u32::from_le_bytes([v[pos + 4], v[pos + 5], v[pos + 6], v[pos + 7]]);
        out.push((pos, id, size));
        let next = pos as u64 + 8 + size as u64 + (size as u64 & 1);
        if next > v.len() as u64 {
            break;
        }
        pos = next as usize;
    }
    out
}

fn riff(rng: &mut Rng, v: &mut Vec<u8>) {
    let chunks = riff_chunks(v);
    let len = v.len();
    match rng.below(6) {
        // The RIFF length.
        0 => {
            let x = *rng.pick(&[0u64, 0xFFFF_FFFF, (len - 8) as u64, (len - 7) as u64, 4]);
            write_int(v, 4, 4, x, false);
        }
        // A chunk's length: interesting, ± 1, to the end of the file.
        1 | 2 => {
            if let Some(&(pos, _, size)) = chunks.get(rng.below(chunks.len())) {
                let to_end = (len - pos - 8) as u64;
                let x = match rng.below(4) {
                    0 => *rng.pick(&INTERESTING),
                    1 => (size as u64).wrapping_add(1),
                    2 => (size as u64).wrapping_sub(1),
                    _ => to_end.wrapping_add(rng.below(3) as u64).wrapping_sub(1),
                };
                write_int(v, pos + 4, 4, x & 0xFFFF_FFFF, false);
            }
        }
        // A `fmt ` field: tag, channels, rate, byte rate, block align, bits,
        // cbSize, valid bits, channel mask, sub-format.
        3 | 4 => {
            if let Some(&(pos, _, size)) = chunks.iter().find(|c| &c.1 == b"fmt ") {
                let body = pos + 8;
                let fields: &[(usize, usize)] = &[
                    (0, 2),
                    (2, 2),
                    (4, 4),
                    (8, 4),
                    (12, 2),
                    (14, 2),
                    (16, 2),
                    (18, 2),
                    (20, 4),
                    (24, 2),
                ];
                let &(off, width) = rng.pick(fields);
                if off + width <= size as usize && body + off + width <= v.len() {
                    let x = match (off, rng.below(3)) {
                        (0 | 24, 0) => *rng.pick(&[1u64, 3, 0xFFFE, 2, 0x11, 0x55, 6, 7]),
                        (14, 0) => *rng.pick(&[8u64, 16, 24, 32, 64, 0, 12, 20]),
                        (2, 0) => *rng.pick(&[1u64, 2, 0, 64, 65, 255, 0xFFFF]),
                        _ => *rng.pick(&INTERESTING),
                    };
                    write_int(v, body + off, width, x, false);
                }
            }
        }
        // Remove, duplicate or move a chunk.
        _ => {
            if chunks.is_empty() {
                return;
            }
            let (pos, _, size) = chunks[rng.below(chunks.len())];
            let end = (pos + 8 + size as usize + (size as usize & 1)).min(len);
            let piece = v[pos..end].to_vec();
            match rng.below(3) {
                0 => {
                    v.drain(pos..end);
                }
                1 => {
                    v.splice(end..end, piece);
                }
                _ => {
                    v.drain(pos..end);
                    let at = 12 + rng.below(v.len().saturating_sub(12) + 1);
                    let at = at.min(v.len());
                    v.splice(at..at, piece);
                }
            }
        }
    }
}

fn flac(rng: &mut Rng, v: &mut [u8]) {
    // Metadata blocks: 1 byte (last flag, type), 24-bit big-endian length.
    let mut blocks = Vec::new();
    let mut pos = 4usize;
    while pos + 4 <= v.len() && blocks.len() < 32 {
        let len = u32::from_be_bytes([0, v[pos + 1], v[pos + 2], v[pos + 3]]) as usize;
        blocks.push(pos);
        let last = v[pos] & 0x80 != 0;
        pos += 4 + len;
        if last {
            break;
        }
    }
    match rng.below(4) {
        0 => {
            if let Some(&b) = blocks.get(rng.below(blocks.len())) {
                let x = *rng.pick(&[0u64, 1, 33, 34, 0xFF_FFFF, 0x80_0000]);
                write_int(v, b + 1, 3, x & 0xFF_FFFF, true);
            }
        }
        1 => {
            if let Some(&b) = blocks.get(rng.below(blocks.len())) {
                v[b] ^= *rng.pick(&[0x80u8, 0x01, 0x02, 0x04, 0x7F]);
            }
        }
        // STREAMINFO (the first block's body at 8): min/max block size (16 bits
        // each), min/max frame size (24), then sample rate (20 bits), channels - 1
        // (3), bits - 1 (5), total samples (36).
        2 => {
            if v.len() >= 8 + 18 {
                let body = 8;
                match rng.below(5) {
                    0 => write_int(v, body + rng.below(2) * 2, 2, *rng.pick(&INTERESTING), true),
                    1 => write_int(
                        v,
                        body + 4 + rng.below(2) * 3,
                        3,
                        *rng.pick(&INTERESTING),
                        true,
                    ),
                    2 => {
                        // Sample rate: the top 20 bits of 3 bytes at 10.
                        let rate = *rng.pick(&[0u64, 1, 0xF_FFFF, 8000, 655_350, 768_000]);
                        v[body + 10] = (rate >> 12) as u8;
                        v[body + 11] = (rate >> 4) as u8;
                        v[body + 12] = (v[body + 12] & 0x0F) | ((rate as u8 & 0x0F) << 4);
                    }
                    3 => {
                        // Channels and bits: byte 12 low nibble and byte 13.
                        v[body + 12] ^= 1 << rng.below(4);
                        v[body + 13] ^= 1 << rng.below(8);
                    }
                    _ => {
                        let at = body + 13 + rng.below(5);
                        v[at] = rng.next() as u8;
                    }
                }
            }
        }
        _ => magic_neighbour(rng, v),
    }
}

fn ogg(rng: &mut Rng, v: &mut [u8]) {
    // A page header: "OggS", version, type, granule (8), serial (4), sequence (4),
    // CRC (4), segment count, lacing values.
    let pages: Vec<usize> = find_all(v, b"OggS");
    if let Some(&p) = pages.get(rng.below(pages.len())) {
        if p + 27 > v.len() {
            return;
        }
        match rng.below(5) {
            0 => v[p + 5] = *rng.pick(&[0u8, 1, 2, 4, 6, 0xFF]),
            1 => write_int(v, p + 6, 8, *rng.pick(&INTERESTING), false),
            2 => write_int(v, p + 14, 4, rng.below(4) as u64, false),
            3 => v[p + 26] = *rng.pick(&[0u8, 1, 2, 0xFF, 0x80]),
            _ => {
                let n = v[p + 26] as usize;
                if n > 0 && p + 27 + n <= v.len() {
                    let at = p + 27 + rng.below(n);
                    v[at] = *rng.pick(&[0u8, 1, 0xFF, 0xFE, 0x80]);
                }
            }
        }
    }
}

fn find_all(v: &[u8], needle: &[u8]) -> Vec<usize> {
    v.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .take(256)
        .collect()
}

/// The bytes after a magic word or an MPEG/FLAC frame sync.
fn magic_neighbour(rng: &mut Rng, v: &mut [u8]) {
    let mut spots: Vec<usize> = Vec::new();
    for i in 0..v.len().saturating_sub(1) {
        if v[i] == 0xFF && v[i + 1] & 0xE0 == 0xE0 {
            spots.push(i + 1);
            if spots.len() >= 256 {
                break;
            }
        }
    }
    for m in [
        &b"ftyp"[..],
        b"stsd",
        b"stsz",
        b"stco",
        b"COMM",
        b"SSND",
        b"desc",
        b"pakt",
    ] {
        spots.extend(find_all(v, m).into_iter().map(|i| i + 4));
    }
    if spots.is_empty() {
        return interesting(rng, v);
    }
    let at = *rng.pick(&spots) + rng.below(12);
    if at + 4 <= v.len() {
        if rng.chance(2) {
            v[at] ^= 1 << rng.below(8);
        } else {
            let width = *rng.pick(&[1usize, 2, 4]);
            write_int(v, at, width, *rng.pick(&INTERESTING), true);
        }
    }
}

/// Recompute the CRC of every Ogg page (so that mutations reach the codec).
pub fn fix_ogg_crcs(v: &mut [u8]) {
    let mut p = 0usize;
    while p + 27 <= v.len() && &v[p..p + 4] == b"OggS" {
        let n = v[p + 26] as usize;
        if p + 27 + n > v.len() {
            return;
        }
        let body: usize = v[p + 27..p + 27 + n].iter().map(|&x| x as usize).sum();
        let end = p + 27 + n + body;
        if end > v.len() {
            return;
        }
        v[p + 22..p + 26].copy_from_slice(&[0; 4]);
        let crc = ogg_crc(&v[p..end]);
        v[p + 22..p + 26].copy_from_slice(&crc.to_le_bytes());
        p = end;
    }
}

fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc: u32 = 0;
    for &b in data {
        crc ^= (b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}
