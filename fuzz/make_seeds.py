#!/usr/bin/env python3
"""Writes the fuzz seed corpora under fuzz/corpus/<target>/ (see fuzz/README.md).

    python3 fuzz/make_seeds.py [--corpora ../shared/corpora]

decode: cut-down real clips (EmoDB WAV, RAVDESS WAV with its FLLR chunk, RAVDESS
FLAC mono and stereo, cut at frame boundaries with their metadata kept), every
container and codec symphonia reads, written with soundfile (libsndfile) or by
hand (MP4 and Matroska, RIFF edge cases: RF64, WAVE_FORMAT_EXTENSIBLE, 0xFFFFFFFF
lengths, odd chunks), all a few KB. stdin: WAV streams and raw PCM with the
target's 7-byte header. pipeline: pipelines/*.toml and small hand-written ones.
where, labels: hand-written texts. Deterministic: the same files on every run
(soundfile's Vorbis/Opus/MP3 encoders may differ by version; the generated
files are committed, this script documents them).
"""
import argparse
import io
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


# ---------------------------------------------------------------------------
# RIFF helpers


def chunk(cid, body):
    b = cid + struct.pack("<I", len(body)) + body
    if len(body) % 2:
        b += b"\0"
    return b


def fmt_pcm(channels, rate, bits, tag=1):
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def fmt_extensible(channels, rate, bits, sub_tag=1, valid=None, mask=4):
    align = channels * bits // 8
    guid = struct.pack("<H", sub_tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    return (
        struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * align, align, bits)
        + struct.pack("<HHI", 22, valid or bits, mask)
        + guid
    )


def riff(chunks, riff_size=None, magic=b"RIFF"):
    body = b"WAVE" + b"".join(chunks)
    size = len(body) if riff_size is None else riff_size
    return magic + struct.pack("<I", size) + body


def cut_riff(data, keep_bytes):
    """A real WAV cut after `keep_bytes` of its data chunk, every other chunk kept
    and the lengths patched."""
    pos, out = 12, [data[:12]]
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4]
        size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"data":
            body = body[:keep_bytes]
            out.append(cid + struct.pack("<I", len(body)) + body)
            break
        out.append(data[pos:pos + 8 + size + (size & 1)])
        pos += 8 + size + (size & 1)
    b = b"".join(out)
    return b[:4] + struct.pack("<I", len(b) - 8) + b[8:]


# ---------------------------------------------------------------------------
# FLAC helpers: metadata blocks and frame boundaries (sync + header CRC-8)


def crc8(data):
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def flac_blocks(data):
    assert data[:4] == b"fLaC"
    pos, blocks = 4, []
    while True:
        h = data[pos]
        n = int.from_bytes(data[pos + 1:pos + 4], "big")
        blocks.append((h & 0x7F, data[pos + 4:pos + 4 + n]))
        pos += 4 + n
        if h & 0x80:
            return blocks, pos


def utf8_len(b):
    for n, mask in ((1, 0x80), (2, 0xE0), (3, 0xF0), (4, 0xF8), (5, 0xFC), (6, 0xFE), (7, 0xFF)):
        if n == 1 and b & 0x80 == 0:
            return 1
        if n > 1 and (b & mask) == ((mask << 1) & 0xFF):
            return n
    return 7


def flac_frame_starts(data, start):
    """Offsets of frames: a sync code whose header's CRC-8 checks."""
    out = []
    i = start
    while i + 6 < len(data):
        if data[i] == 0xFF and data[i + 1] in (0xF8, 0xF9):
            bs, sr = data[i + 2] >> 4, data[i + 2] & 0x0F
            n = 4 + utf8_len(data[i + 4])
            n += {6: 1, 7: 2}.get(bs, 0) + {12: 1, 13: 2, 14: 2}.get(sr, 0)
            if i + n < len(data) and crc8(data[i:i + n]) == data[i + n]:
                out.append(i)
        i += 1
    return out


def flac_cut(data, frames, padding=64):
    """The first `frames` frames, metadata kept (padding shortened), STREAMINFO's
    total samples set to what is kept and its MD5 cleared."""
    blocks, audio = flac_blocks(data)
    starts = flac_frame_starts(data, audio)
    end = starts[frames] if len(starts) > frames else len(data)
    info = bytearray(blocks[0][1])
    block_size = struct.unpack(">H", info[2:4])[0]
    total = min(frames * block_size, (int.from_bytes(info[13:18], "big") & 0xFFFFFFFFF))
    v = int.from_bytes(info[13:18], "big") & ~0xFFFFFFFFF | total
    info[13:18] = v.to_bytes(5, "big")
    info[18:34] = bytes(16)
    blocks[0] = (0, bytes(info))
    out = b"fLaC"
    for k, (t, body) in enumerate(blocks):
        if t == 1:
            body = bytes(padding)
        last = 0x80 if k == len(blocks) - 1 else 0
        out += bytes([t | last]) + len(body).to_bytes(3, "big") + body
    return out + data[audio:end], [s - audio for s in starts[:frames]], data[audio:end]


# ---------------------------------------------------------------------------
# MP4 and Matroska by hand


def box(kind, body):
    return struct.pack(">I", 8 + len(body)) + kind + body


def full_box(kind, version, flags, body):
    return box(kind, struct.pack(">I", (version << 24) | flags) + body)


def mp4(entry, sizes, payload, rate, durations):
    """A one-track MP4: `entry` the stsd sample entry, `sizes` the packet sizes,
    `payload` the packets, `durations` (count, delta) runs in samples."""
    ftyp = box(b"ftyp", b"M4A " + struct.pack(">I", 0) + b"M4A mp42isom")
    total = sum(c * d for c, d in durations)
    mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, rate, total) + struct.pack(">IH", 0x10000, 0x100) + bytes(10) + struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000) + bytes(24) + struct.pack(">I", 2))
    tkhd = full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, 1, 0, total) + bytes(8) + struct.pack(">HHHH", 0, 0, 0x100, 0) + struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000) + struct.pack(">II", 0, 0))
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, rate, total) + struct.pack(">HH", 0x55C4, 0))
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I", 0) + b"soun" + bytes(12) + b"sound\0")
    smhd = full_box(b"smhd", 0, 0, struct.pack(">HH", 0, 0))
    dref = full_box(b"dref", 0, 0, struct.pack(">I", 1) + full_box(b"url ", 0, 1, b""))
    dinf = box(b"dinf", dref)
    stsd = full_box(b"stsd", 0, 0, struct.pack(">I", 1) + entry)
    stts = full_box(b"stts", 0, 0, struct.pack(">I", len(durations)) + b"".join(struct.pack(">II", c, d) for c, d in durations))
    stsc = full_box(b"stsc", 0, 0, struct.pack(">I", 1) + struct.pack(">III", 1, len(sizes), 1))
    stsz = full_box(b"stsz", 0, 0, struct.pack(">II", 0, len(sizes)) + b"".join(struct.pack(">I", s) for s in sizes))

    def build(offset):
        stco = full_box(b"stco", 0, 0, struct.pack(">II", 1, offset))
        stbl = box(b"stbl", stsd + stts + stsc + stsz + stco)
        minf = box(b"minf", smhd + dinf + stbl)
        mdia = box(b"mdia", mdhd + hdlr + minf)
        trak = box(b"trak", tkhd + mdia)
        return box(b"moov", mvhd + trak)

    moov = build(0)
    offset = len(ftyp) + len(moov) + 8
    return ftyp + build(offset) + box(b"mdat", payload)


def audio_entry(kind, channels, bits, rate, extra=b""):
    body = bytes(6) + struct.pack(">H", 1) + bytes(8) + struct.pack(">HHHH", channels, bits, 0, 0) + struct.pack(">I", rate << 16)
    return box(kind, body + extra)


def ebml_id(i):
    n = (i.bit_length() + 7) // 8
    return i.to_bytes(n, "big")


def ebml_size(n):
    for w in range(1, 9):
        if n < (1 << (7 * w)) - 1:
            return ((1 << (7 * w)) | n).to_bytes(w, "big")
    raise ValueError(n)


def el(i, body):
    if isinstance(body, int):
        body = body.to_bytes(max(1, (body.bit_length() + 7) // 8), "big")
    elif isinstance(body, float):
        body = struct.pack(">d", body)
    elif isinstance(body, str):
        body = body.encode()
    return ebml_id(i) + ebml_size(len(body)) + body


def mkv(codec, rate, channels, bits, frames, private=None):
    header = el(0x1A45DFA3, el(0x4286, 1) + el(0x42F7, 1) + el(0x42F2, 4) + el(0x42F3, 8) + el(0x4282, "matroska") + el(0x4287, 4) + el(0x4285, 2))
    info = el(0x1549A966, el(0x2AD7B1, 1000000) + el(0x4D80, "sermo-fuzz") + el(0x5741, "sermo-fuzz"))
    audio = el(0xE1, el(0xB5, float(rate)) + el(0x9F, channels) + el(0x6264, bits))
    entry = el(0xD7, 1) + el(0x73C5, 1) + el(0x83, 2) + el(0x86, codec) + audio
    if private is not None:
        entry += el(0x63A2, private)
    tracks = el(0x1654AE6B, el(0xAE, entry))
    blocks = b""
    t = 0
    for f, dur_ms in frames:
        blocks += el(0xA3, b"\x81" + struct.pack(">h", t) + b"\x80" + f)
        t += dur_ms
    cluster = el(0x1F43B675, el(0xE7, 0) + blocks)
    return header + el(0x18538067, info + tracks + cluster)


# ---------------------------------------------------------------------------


def sf_bytes(x, rate, fmt, subtype):
    b = io.BytesIO()
    sf.write(b, x, rate, format=fmt, subtype=subtype)
    return b.getvalue()


def mp3_frames(data):
    """(offset, size) of the MPEG audio frames after any ID3 tag."""
    pos = 0
    if data[:3] == b"ID3":
        pos = 10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])
    rates = {3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000]}
    br_v1 = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]
    br_v2 = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160]
    out = []
    while pos + 4 <= len(data):
        h = int.from_bytes(data[pos:pos + 4], "big")
        if h >> 21 != 0x7FF:
            pos += 1
            continue
        ver, layer = (h >> 19) & 3, (h >> 17) & 3
        bri, sri, pad = (h >> 12) & 15, (h >> 10) & 3, (h >> 9) & 1
        if layer != 1 or bri in (0, 15) or sri == 3 or ver == 1:
            pos += 1
            continue
        rate = rates[ver][sri]
        if ver == 3:
            size = 144 * br_v1[bri] * 1000 // rate + pad
        else:
            size = 72 * br_v2[bri] * 1000 // rate + pad
        out.append((pos, size))
        pos += size
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    args = ap.parse_args()
    corpora = Path(args.corpora)
    if not corpora.is_dir():
        sys.exit(f"no corpora at {corpora} (the real clips are cut from there)")
    for t in ["decode", "stdin", "pipeline", "where", "labels"]:
        shutil.rmtree(OUT / t, ignore_errors=True)

    # --- decode: real clips, cut ------------------------------------------------
    emodb = (corpora / "emodb/wav/03a01Wa.wav").read_bytes()
    write("decode", "real_emodb_03a01Wa_cut.wav", cut_riff(emodb, 22050 * 2 * 3 // 10))
    rwav = (corpora / "ravdess-wav/Actor_01/03-01-01-01-01-01-01.wav").read_bytes()
    write("decode", "real_ravdess_fllr_cut.wav", cut_riff(rwav, 48000 * 2 // 10))
    rflac = (corpora / "ravdess/Actor_01/03-01-01-01-01-01-01.flac").read_bytes()
    flac_mono, _, _ = flac_cut(rflac, 10)
    write("decode", "real_ravdess_cut.flac", flac_mono)
    rst = (corpora / "ravdess/Actor_01/03-01-02-01-01-02-01.flac").read_bytes()
    flac_st, _, _ = flac_cut(rst, 6)
    write("decode", "real_ravdess_stereo_cut.flac", flac_st)

    # The signal of the generated files: 0.1 s of EmoDB speech at 8 kHz.
    speech, rate = sf.read(io.BytesIO(emodb), dtype="float64")
    x = speech[int(0.5 * rate):int(0.5 * rate) + 2205][::2][:800].copy()
    x8 = np.clip(x * 4.0, -1, 1)
    st = np.stack([x8, x8[::-1]], axis=1)

    for sub in ["PCM_U8", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW", "IMA_ADPCM", "MS_ADPCM", "GSM610"]:
        write("decode", f"gen_wav_{sub.lower()}.wav", sf_bytes(x8, 8000, "WAV", sub))
    write("decode", "gen_wav_s16_stereo.wav", sf_bytes(st, 8000, "WAV", "PCM_16"))
    write("decode", "gen_wavex_s16_stereo.wav", sf_bytes(st, 8000, "WAVEX", "PCM_16"))
    write("decode", "gen_wavex_float.wav", sf_bytes(x8, 8000, "WAVEX", "FLOAT"))
    write("decode", "gen_rf64_s16.wav", sf_bytes(x8, 8000, "RF64", "PCM_16"))
    write("decode", "gen_aiff_s16.aiff", sf_bytes(x8, 8000, "AIFF", "PCM_16"))
    write("decode", "gen_aiff_s8_stereo.aiff", sf_bytes(st, 8000, "AIFF", "PCM_S8"))
    write("decode", "gen_aiff_s24.aiff", sf_bytes(x8, 8000, "AIFF", "PCM_24"))
    write("decode", "gen_aifc_float.aiff", sf_bytes(x8, 8000, "AIFF", "FLOAT"))
    write("decode", "gen_aifc_ulaw.aiff", sf_bytes(x8, 8000, "AIFF", "ULAW"))
    write("decode", "gen_caf_s16.caf", sf_bytes(x8, 8000, "CAF", "PCM_16"))
    write("decode", "gen_caf_float_stereo.caf", sf_bytes(st, 8000, "CAF", "FLOAT"))
    write("decode", "gen_caf_alaw.caf", sf_bytes(x8, 8000, "CAF", "ALAW"))
    caf_alac = sf_bytes(np.tile(x8, 6), 8000, "CAF", "ALAC_16")
    write("decode", "gen_caf_alac16.caf", caf_alac)
    write("decode", "gen_flac_s16_stereo.flac", sf_bytes(st, 8000, "FLAC", "PCM_16"))
    write("decode", "gen_flac_s24.flac", sf_bytes(x8, 8000, "FLAC", "PCM_24"))
    write("decode", "gen_flac_s8.flac", sf_bytes(x8, 8000, "FLAC", "PCM_S8"))
    write("decode", "gen_ogg_vorbis.ogg", sf_bytes(np.tile(x8, 3), 8000, "OGG", "VORBIS"))
    write("decode", "gen_ogg_opus.ogg", sf_bytes(np.tile(x8, 3), 8000, "OGG", "OPUS"))
    mp3 = sf_bytes(np.tile(x8, 6), 8000, "MP3", "MPEG_LAYER_III")
    write("decode", "gen_mp3_8k.mp3", mp3)
    # (libsndfile reads MPEG layers I and II but writes only layer III.)
    write("decode", "fixture_tone440.mp3", (ROOT / "tests/fixtures/tone440.mp3").read_bytes())

    # MP4: PCM (sowt), MP3 frames (.mp3), ALAC packets from the CAF file.
    pcm = (np.clip(x8, -1, 1) * 32767).astype("<i2").tobytes()
    entry = audio_entry(b"sowt", 1, 16, 8000)
    write("decode", "hand_mp4_sowt.m4a", mp4(entry, [2] * 800, pcm, 8000, [(800, 1)]))
    frames = mp3_frames(mp3)
    sizes = [s for _, s in frames]
    payload = b"".join(mp3[o:o + s] for o, s in frames)
    entry = audio_entry(b".mp3", 1, 16, 8000)
    write("decode", "hand_mp4_mp3.m4a", mp4(entry, sizes, payload, 8000, [(len(sizes), 576)]))
    # CAF: 'desc', 'kuki' (the ALAC magic cookie), 'pakt' (packet sizes), 'data'.
    pos, chunks = 8, {}
    while pos + 12 <= len(caf_alac):
        cid = caf_alac[pos:pos + 4]
        n = struct.unpack(">q", caf_alac[pos + 4:pos + 12])[0]
        chunks[cid] = caf_alac[pos + 12:pos + 12 + n]
        pos += 12 + n
    cookie = chunks[b"kuki"]
    pakt = chunks[b"pakt"]
    n_packets, n_frames = struct.unpack(">qq", pakt[:16])
    sizes, p = [], 24
    for _ in range(n_packets):
        v = 0
        while True:
            b = pakt[p]
            p += 1
            v = (v << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        sizes.append(v)
    data = chunks[b"data"][4:]
    fpp = struct.unpack(">I", cookie[0:4])[0]
    alac_box = full_box(b"alac", 0, 0, cookie[:24])
    entry = audio_entry(b"alac", 1, 16, 8000, alac_box)
    runs = [(n_packets - 1, fpp), (1, n_frames - fpp * (n_packets - 1))]
    write("decode", "hand_mp4_alac.m4a", mp4(entry, sizes, data[:sum(sizes)], 8000, runs))

    # Matroska: PCM blocks of 10 ms, and the FLAC frames of the cut RAVDESS clip.
    blocks = [(pcm[i:i + 160], 10) for i in range(0, len(pcm), 160)]
    write("decode", "hand_mkv_pcm.mkv", mkv("A_PCM/INT/LIT", 8000, 1, 16, blocks))
    blocks_meta, audio = flac_blocks(flac_mono)
    starts = flac_frame_starts(flac_mono, audio) + [len(flac_mono)]
    private = b"fLaC" + bytes([0x80]) + len(blocks_meta[0][1]).to_bytes(3, "big") + blocks_meta[0][1]
    fr = [(flac_mono[a:b], 85) for a, b in zip(starts, starts[1:])]
    write("decode", "real_mkv_flac.mka", mkv("A_FLAC", 48000, 1, 16, fr[:3], private))

    # RIFF edge cases by hand (s16 mono 8 kHz).
    pcm_short = pcm[:400]
    f16 = chunk(b"fmt ", fmt_pcm(1, 8000, 16))
    write("decode", "hand_wav_streamed_ffff.wav",
          b"RIFF\xff\xff\xff\xffWAVE" + f16 + b"data\xff\xff\xff\xff" + pcm_short)
    write("decode", "hand_wav_riff_size_zero.wav",
          riff([f16, chunk(b"data", pcm_short)], riff_size=0))
    write("decode", "hand_wav_data_before_fmt.wav", riff([chunk(b"data", pcm_short), f16]))
    write("decode", "hand_wav_odd_list_chunk.wav",
          riff([f16, chunk(b"LIST", b"INFOISFT\x03\x00\x00\x00ab\x00\x00"), chunk(b"junk", b"odd"), chunk(b"data", pcm_short)]))
    write("decode", "hand_wav_odd_data.wav", riff([chunk(b"fmt ", fmt_pcm(1, 8000, 8)), chunk(b"data", pcm_short[:201])]))
    write("decode", "hand_wav_fmt18_fact.wav",
          riff([chunk(b"fmt ", fmt_pcm(1, 8000, 16) + b"\x00\x00"), chunk(b"fact", struct.pack("<I", 200)), chunk(b"data", pcm_short)]))
    write("decode", "hand_wav_extensible_s24_valid20.wav",
          riff([chunk(b"fmt ", fmt_extensible(2, 8000, 24, valid=20, mask=3)),
                chunk(b"data", bytes(range(256))[:6 * 40])]))
    write("decode", "hand_wav_extensible_float.wav",
          riff([chunk(b"fmt ", fmt_extensible(1, 8000, 32, sub_tag=3)),
                chunk(b"data", np.asarray(x8[:100], "<f4").tobytes())]))
    write("decode", "hand_wav_data_longer_than_file.wav",
          riff([f16, b"data" + struct.pack("<I", 4000) + pcm_short]))
    ds64 = struct.pack("<QQQI", 0, len(pcm_short), 200, 0)
    write("decode", "hand_rf64_ds64_trailing_list.wav",
          riff([chunk(b"ds64", ds64), f16, b"data\xff\xff\xff\xff" + pcm_short, chunk(b"LIST", b"INFO")],
               riff_size=0xFFFFFFFF, magic=b"RF64"))
    write("decode", "hand_bw64.wav",
          riff([chunk(b"ds64", ds64), f16, b"data\xff\xff\xff\xff" + pcm_short],
               riff_size=0xFFFFFFFF, magic=b"BW64"))

    # --- stdin ------------------------------------------------------------------
    def raw_header(mode, channels, rate, chunk_idx):
        return bytes([mode, channels - 1]) + struct.pack("<I", rate - 1) + bytes([chunk_idx])

    write("stdin", "wav_streamed_s16.wav",
          b"RIFF\xff\xff\xff\xffWAVE" + f16 + b"data\xff\xff\xff\xff" + pcm_short)
    write("stdin", "wav_list_then_fmt.wav",
          riff([chunk(b"LIST", b"INFOabc"), chunk(b"fmt ", fmt_pcm(2, 16000, 16)), chunk(b"data", pcm_short)]))
    write("stdin", "wav_extensible_f32.wav",
          riff([chunk(b"fmt ", fmt_extensible(1, 8000, 32, sub_tag=3)),
                chunk(b"data", np.asarray(x8[:100], "<f4").tobytes())]))
    write("stdin", "wav_u8.wav", sf_bytes(x8[:200], 8000, "WAV", "PCM_U8"))
    write("stdin", "wav_s24_stereo.wav", sf_bytes(st[:100], 8000, "WAV", "PCM_24"))
    write("stdin", "wav_f64.wav", sf_bytes(x8[:100], 8000, "WAV", "DOUBLE"))
    write("stdin", "raw_s16_16k.bin", raw_header(1, 1, 16000, 3) + pcm_short)
    write("stdin", "raw_f32_stereo_tiny_chunks.bin",
          raw_header(2, 2, 8000, 1) + np.asarray(st[:50], "<f4").tobytes())
    write("stdin", "raw_s16_6ch_60s.bin", raw_header(1, 6, 768000, 5) + pcm_short[:360])
    write("stdin", "headered_wav_chunk_1e-9.bin", raw_header(0, 1, 1, 0) + riff([f16, chunk(b"data", pcm_short[:64])]))

    # --- pipeline ---------------------------------------------------------------
    for p in sorted((ROOT / "pipelines").glob("*.toml")):
        write("pipeline", p.name, p.read_bytes())
    write("pipeline", "hand_stdin_infer.toml", """#set sources.live.chunk_s=0.5
[sources.live]
kind = "stdin"
format = "s16le"
rate = 16000
channels = 1

[stages.win]
kind = "window"
input = "live"
mode = "segments"
length_s = 1.0
hop_s = 0.5

[sinks.none]
kind = "discard"
input = "win"
""")
    write("pipeline", "hand_parquet_where.toml", """[pipeline]
seed = 7

[sources.t]
kind = "parquet"
path = "table"
where = "label IN ('angry', 'sad') AND duration_s > 2.5"
columns = ["clip_id", "label"]

[sinks.out]
kind = "discard"
input = "t"
""")
    write("pipeline", "hand_labels_regex_csv.toml", """[sources.a]
kind = "files"
paths = ["audio/**/*.wav"]
labels = { regex = '(?P<speaker>\\w+)/(?P<label>[A-Z])\\d+\\.wav', map = { A = "angry" }, corpus = "mine" }

[sources.b]
kind = "files"
paths = ["x/*.wav"]
labels = { csv = "labels.csv", path_column = "file", label_column = "emotion", speaker_column = "speaker" }
merge = { negative = ["angry", "A"] }
keep = ["negative", "neutral"]

[stages.d]
kind = "decode"
inputs = ["a", "b"]
chunk_s = 600

[sinks.s]
kind = "parquet"
input = "d"
path = "out"
row_group_rows = 1048576
""")
    write("pipeline", "hand_cycle.toml", """[stages.a]
kind = "resample"
input = "b"
rate = 16000
[stages.b]
kind = "resample"
input = "a"
rate = 8000
[sinks.s]
kind = "discard"
input = "a"
""")

    # --- where ------------------------------------------------------------------
    for i, w in enumerate([
        "label IN ('angry', 'sad') AND corpus = 'ravdess'",
        "label NOT IN ('angry') OR speaker IS NULL",
        "NOT (label = 'angry') AND segment >= 1",
        "duration_s BETWEEN 2 AND 3.5 OR start_s NOT BETWEEN -1 AND 1e3",
        "label LIKE 'ha%' OR label ILIKE 'SAD' OR clip_id NOT LIKE '_.wav'",
        "2 < segment AND n <> -9223372036854775808",
        "source_channels = 65535 AND last_chunk = true",
        "fold = '1' AND label IS NOT NULL",
        "speaker = corpus OR start_s = duration_s",
        "samples IS NULL OR mfcc IS NOT NULL",
        "((((label = 'x'))))",
        "segment = 'x'",
        "n > 1.5 AND duration_s < 1",
    ]):
        write("where", f"w{i:02}.sql", w)

    # --- labels -----------------------------------------------------------------
    write("labels", "regex_speaker_label.lbl",
          "regex mine\n--\n(?P<speaker>spk\\d+)/(?P<label>[A-Z])\\d+\\.wav$\n--\nA=angry\nH=happy\n--\n"
          "spk01/A003.wav\nspk01/Z003.wav\nother/A003.wav\nspk02/H1.wav\t/data/spk02/H1.wav\n"
          "--\npositive=happy,excited\nkeep=angry,positive\n")
    write("labels", "regex_corpus_group.lbl",
          "regex\n--\n(?P<corpus>[a-z]+)/(?P<label>[a-z]+)_\\d+\n--\n\n--\nemovo/gioia_01.wav\nx/_1\n\u00e9/\u00e9_1\n")
    write("labels", "csv_table.lbl",
          "csv file emotion speaker shemo\n--\n\ufefffile,speaker,emotion\nfemale/F01A01.wav,F01,A\n"
          "M02N05.wav, M02 ,N\n./male/M03S02.wav,M03,S\nmale/M03S02.wav,M03,S\n\"q,uoted.wav\",x,A\n"
          "/nonexistent-sermo-fuzz/full/x.wav,s9,N\n--\nA=angry\nN=neutral\nS=sad\n--\n"
          "female/F01A01.wav\nmale/M02N05.wav\nmale/M03S02.wav\nq,uoted.wav\nx.wav\tfull/x.wav\n")
    write("labels", "tsv_table.lbl",
          "tsv path label\n--\npath\tlabel\na\\b.wav\thappy\n.//c.wav\tsad\n--\n\n--\na/b.wav\nc.wav\n./c.wav\n")
    write("labels", "csv_conflict.lbl",
          "csv file emotion\n--\nfile,emotion\na.wav,A\na.wav,N\n--\n\n--\na.wav\n")
    for scheme, names in [
        ("ravdess", ["03-01-06-01-02-01-12.flac", "03-01-09-01-02-01-12.wav", "Actor_01/03-01-01-01-01-01-01.wav"]),
        ("emodb", ["03a01Fa.wav", "16b10Lb.wav", "x.wav"]),
        ("tess", ["YAF_dog_pleasant_surprise.wav", "OAF_back_angry.wav", "OAF_ps.wav"]),
        ("cremad", ["1001_DFA_ANG_XX.wav", "1091_WSI_SAD_LO.wav", "1001__.wav"]),
        ("savee", ["DC_a01.wav", "JE/n12.wav", "KL_sa15.wav", "x/su01.wav"]),
        ("iemocap", ["Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M003.wav"]),
    ]:
        write("labels", f"builtin_{scheme}.lbl", f"builtin {scheme}\n--\n\n--\n\n--\n" + "\n".join(names) + "\n")

    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {sum(1 for f in OUT.rglob('*') if f.is_file())} files, {total / 1024:.0f} KiB under {OUT}")


if __name__ == "__main__":
    main()
