"""Read stream facts and tags in-process, from the headers mutagen parses: about a millisecond a
file, where an ffprobe process costs some 65 ms to start.

``read_headers`` answers only where the headers say everything the scan records, in ffprobe's
own terms (codec and format names, how it computes a duration or a bitrate), so a track is the
same whichever probe read it (tests/mixtapes/test_headers.py compares the two field by field).
It returns ``None`` (ask ffprobe) for anything else: a container it does not know, a file
mutagen rejects but ffmpeg might still decode, a WAV that is not PCM, an AIFF-C, a FLAC that
does not say its length, an MP4 holding a codec other than ALAC or AAC-LC, a multichannel or
floating-point WavPack, Monkey's Audio (no encoder here to make a file that would show
both probes agree). A zero-byte, text or random file is never read as audio here: mutagen
finds no header in it, and ffprobe's verdict stands as before.
"""

import struct
from dataclasses import dataclass
from pathlib import Path

import mutagen
from mutagen.aiff import AIFF
from mutagen.apev2 import APEv2
from mutagen.flac import FLAC
from mutagen.id3 import ID3
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, Atoms, MP4Tags
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE
from mutagen.wavpack import WavPack

from mixtapes.tags import tags_of

from .result import ProbeResult, positive_float, positive_int

# ffprobe's format names (AVInputFormat.name) of the containers read here.
MP4_FORMAT = "mov,mp4,m4a,3gp,3g2,mj2"


def read_headers(path: Path) -> ProbeResult | None:
    """Facts and tags of ``path`` from its headers, or ``None`` when only ffprobe can tell."""
    try:
        audio = mutagen.File(path)
    except Exception:  # mutagen raises many types on damaged files: ffprobe decides about those
        return None
    reader = _READERS.get(type(audio))
    if reader is None:
        return None
    try:
        facts = reader(audio, Path(path))
    except (OSError, ValueError, struct.error, AttributeError):
        return None
    if facts is None:
        return None
    sample_rate = positive_int(facts.sample_rate or audio.info.sample_rate)
    channels, duration = positive_int(audio.info.channels), positive_float(facts.duration)
    if not sample_rate or not channels or not duration:
        return None  # ffprobe may still find something to play, or says why not
    size = Path(path).stat().st_size
    return ProbeResult(
        codec=facts.codec,
        container=facts.container,
        duration=duration,
        sample_rate=sample_rate,
        bit_depth=facts.bit_depth,
        channels=channels,
        # Where the stream states no bitrate, ffprobe gives the file's: its size over its duration.
        bitrate=positive_int(facts.bitrate) or positive_int(size * 8 / duration),
        has_cover=_has_cover(audio),
        read_tags=tags_of(audio, _riff_info(path) if isinstance(audio, WAVE) else None),
    )


@dataclass(frozen=True)
class _Facts:
    """What a reader found, in ffprobe's terms; the channel count and rate come from mutagen's info."""

    codec: str
    container: str
    duration: float
    bit_depth: int | None = None
    bitrate: int | None = None  # the stream's, where ffprobe reports one
    sample_rate: int | None = None  # where mutagen's info has none


# Each reader gives _Facts, or None when ffprobe must tell.


def _flac(audio: FLAC, path: Path):
    info = audio.info
    if not info.total_samples:
        return None  # a streamed FLAC without its length: ffprobe estimates one
    return _Facts("flac", "flac", info.length, info.bits_per_sample)


def _mp4(audio: MP4, path: Path):
    codec = {"alac": "alac", "mp4a.40.2": "aac"}.get(audio.info.codec)  # AAC-LC: HE-AAC's SBR doubles the rate
    if codec is None:
        return None
    track = _mp4_sound_track(path)
    if track is None:
        return None
    duration, bitrate = track
    bit_depth = positive_int(audio.info.bits_per_sample) if codec == "alac" else None
    return _Facts(codec, MP4_FORMAT, duration, bit_depth, bitrate)


def _wave(audio: WAVE, path: Path):
    fmt = _wave_format(path)
    if fmt is None:
        return None
    tag, bits, frames = fmt
    codec = _pcm_codec(tag, bits, "le")
    if codec is None:
        return None
    return _Facts(
        codec, "wav", frames / audio.info.sample_rate, bits, audio.info.sample_rate * audio.info.channels * bits
    )


def _aiff(audio: AIFF, path: Path):
    with open(path, "rb") as file:
        head = file.read(12)
    if head[8:12] != b"AIFF":
        return None  # AIFF-C: its compression type says the codec, ffprobe reads it
    bits = audio.info.bits_per_sample
    codec = {8: "pcm_s8", 16: "pcm_s16be", 24: "pcm_s24be", 32: "pcm_s32be"}.get(bits)
    if codec is None:
        return None
    return _Facts(codec, "aiff", audio.info.length, bits, audio.info.bitrate)


def _wavpack(audio: WavPack, path: Path):
    with open(path, "rb") as file:
        header = file.read(32)
    if header[:4] != b"wvpk":
        return None  # an APEv2 or ID3 tag first, or junk: ffprobe finds the first block
    flags = struct.unpack("<I", header[24:28])[0]
    # One block holding the whole frame (initial and final) is mono or stereo; more channels take
    # several blocks. Float and DSD data need ffprobe's view of the decoder.
    if flags & 0x1800 != 0x1800 or flags & 0x80 or flags >> 31:
        return None
    # A hybrid file reads the same; probe() marks it lossy (wavpack_is_hybrid).
    return _Facts("wavpack", "wv", audio.info.length, audio.info.bits_per_sample)


WAVPACK_HYBRID_FLAG = 0x8


def wavpack_is_hybrid(path: Path) -> bool:
    """Whether a WavPack file was made in hybrid mode (``wavpack -b``): lossy on its own, exact
    only with its ``.wvc`` correction file, which ffmpeg never reads. Every block says so in its
    header's flags; the first is found within the first 64 KiB (after an ID3 or APE tag, if any)."""
    try:
        with open(path, "rb") as file:
            head = file.read(65536)
    except OSError:
        return False
    at = head.find(b"wvpk")
    if at < 0 or len(head) < at + 28:
        return False
    flags = struct.unpack("<I", head[at + 24 : at + 28])[0]
    return bool(flags & WAVPACK_HYBRID_FLAG)


def _mp3(audio: MP3, path: Path):
    info = audio.info
    if info.layer != 3:
        return None
    return _Facts("mp3", "mp3", info.length, bitrate=info.bitrate)


def _vorbis(audio: OggVorbis, path: Path):
    return _Facts("vorbis", "ogg", audio.info.length, bitrate=audio.info.bitrate)


def _opus(audio: OggOpus, path: Path):
    # ffprobe's duration counts the pre-skip samples (the decoder's warm-up) that mutagen leaves out.
    with open(path, "rb") as file:
        head = file.read(512)
    at = head.find(b"OpusHead")
    if at < 0 or len(head) < at + 12:
        return None
    pre_skip = struct.unpack("<H", head[at + 10 : at + 12])[0]
    return _Facts("opus", "ogg", audio.info.length + pre_skip / 48000, sample_rate=48000)  # always 48 kHz


_READERS = {
    FLAC: _flac,
    MP4: _mp4,
    WAVE: _wave,
    AIFF: _aiff,
    WavPack: _wavpack,
    MP3: _mp3,
    OggVorbis: _vorbis,
    OggOpus: _opus,
}


def _has_cover(audio) -> bool:
    """A picture ffmpeg shows as an attached picture stream."""
    if isinstance(audio, FLAC):
        return bool(audio.pictures)
    tags = audio.tags
    if not tags:
        return False
    if isinstance(tags, ID3):
        return bool(tags.getall("APIC"))
    if isinstance(tags, MP4Tags):
        return bool(tags.get("covr"))
    if isinstance(tags, APEv2):
        return any(key.lower().startswith("cover art") for key in tags)
    return bool(tags.get("metadata_block_picture"))  # Vorbis comments (Ogg)


def _pcm_codec(tag: int, bits: int, endian: str) -> str | None:
    if tag == 1:  # integer PCM; 8-bit WAV is unsigned
        return {8: "pcm_u8", 16: f"pcm_s16{endian}", 24: f"pcm_s24{endian}", 32: f"pcm_s32{endian}"}.get(bits)
    if tag == 3:
        return {32: f"pcm_f32{endian}", 64: f"pcm_f64{endian}"}.get(bits)
    return None


# RIFF is read by hand for the two things mutagen's WAVE leaves out: the sample format inside
# WAVE_FORMAT_EXTENSIBLE (what ffmpeg writes for more than 2 channels or 16 bits), and the LIST
# INFO tags (what ffmpeg writes for -metadata). A walk over the top-level chunks, bounded by
# MAX_RIFF_CHUNKS: a hostile file cannot make it loop or read much.
MAX_RIFF_CHUNKS = 64
MAX_INFO_BYTES = 64 * 1024
_EXTENSIBLE = 0xFFFE
# ffmpeg's RIFF INFO names (libavformat/riff.c ff_riff_info_conv) for the fields the scan keeps.
_RIFF_INFO = {b"INAM": "title", b"IART": "artist", b"IPRD": "album", b"IPRT": "track", b"ITRK": "track"}


def _riff_chunks(path: Path):
    """(id, offset of the data, declared size) of each top-level chunk of a RIFF WAVE file."""
    with open(path, "rb") as file:
        head = file.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        end = file.seek(0, 2)
        offset = 12
        for _ in range(MAX_RIFF_CHUNKS):
            if offset + 8 > end:
                return
            file.seek(offset)
            chunk_id, size = struct.unpack("<4sI", file.read(8))
            yield chunk_id, offset + 8, size, file
            offset += 8 + size + (size & 1)


def _wave_format(path: Path) -> tuple[int, int, int] | None:
    """(format tag, bits per sample, frames) of a plain or extensible PCM WAV, else None."""
    fmt = None
    frames = None
    end = Path(path).stat().st_size
    for chunk_id, offset, size, file in _riff_chunks(path):
        if chunk_id == b"fmt " and 16 <= size <= 64:
            file.seek(offset)
            fmt = file.read(size)
        elif chunk_id == b"data" and fmt is not None:
            tag, channels, _rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
            if tag == _EXTENSIBLE and len(fmt) >= 40:
                tag = struct.unpack("<H", fmt[24:26])[0]  # the sub-format GUID starts with the format code
            if not size or offset + size > end or not block_align or block_align != channels * bits // 8:
                return None  # a streamed or truncated WAV: ffprobe estimates from what is there
            frames = size // block_align
            return tag, bits, frames
    return None


def _riff_info(path: Path) -> dict[str, str]:
    """The LIST INFO tags, under ffmpeg's names."""
    found: dict[str, str] = {}
    for chunk_id, offset, size, file in _riff_chunks(path):
        if chunk_id != b"LIST" or size < 4:
            continue
        file.seek(offset)
        data = file.read(min(size, MAX_INFO_BYTES))
        if data[:4] != b"INFO":
            continue
        position = 4
        while position + 8 <= len(data):
            key, length = struct.unpack("<4sI", data[position : position + 8])
            value = data[position + 8 : position + 8 + length].split(b"\0", 1)[0]
            name = _RIFF_INFO.get(key)
            if name and value:
                found.setdefault(name, value.decode("utf-8", "replace"))
            position += 8 + length + (length & 1)
    return found


def _mp4_sound_track(path: Path) -> tuple[float, int] | None:
    """(duration, bitrate) of the first sound track as ffmpeg's mov demuxer gives them: the
    duration the movie header states (the edit list leaves out the encoder's priming samples,
    which mutagen's length counts), the bitrate from the sample bytes over the media duration
    (mutagen reports the encoder's stated average instead)."""
    with open(path, "rb") as file:
        moov = Atoms(file)[b"moov"]
        ok, mvhd = moov[b"mvhd",].read(file)
        if not ok:
            return None
        for trak in moov.findall(b"trak"):
            try:
                ok, hdlr = trak[b"mdia", b"hdlr"].read(file)
                if not ok or hdlr[8:12] != b"soun":
                    continue
                ok_mdhd, mdhd = trak[b"mdia", b"mdhd"].read(file)
                ok_stsz, stsz = trak[b"mdia", b"minf", b"stbl", b"stsz"].read(file)
            except KeyError:
                return None
            if not ok_mdhd or not ok_stsz:
                return None
            movie_scale, movie_duration = _timescale_and_duration(mvhd)
            media_scale, media_duration = _timescale_and_duration(mdhd)
            if not movie_scale or not media_scale or not media_duration:
                return None
            sample_size, count = struct.unpack(">II", stsz[4:12])
            total = sample_size * count if sample_size else sum(struct.unpack(f">{count}I", stsz[12 : 12 + 4 * count]))
            return movie_duration / movie_scale, total * 8 * media_scale // media_duration
    return None


def _timescale_and_duration(header: bytes) -> tuple[int, int]:
    """Time scale and duration of an mvhd or mdhd atom's body (version 0 or 1)."""
    if header[0] == 1:
        return struct.unpack(">IQ", header[20:32])
    return struct.unpack(">II", header[12:20])
