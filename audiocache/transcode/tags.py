"""A source's tags and front cover, carried into a rendition with mutagen after ffmpeg's encode.

ffmpeg's ``-map_metadata`` is wrong or lossy for what a tagged library holds: lyrics become
``TXXX:lyrics`` in MP3, MusicBrainz ids land under ffmpeg's own names, Ogg gets no cover and MP4
drops every name it does not know. So the transcoder lets ffmpeg encode and then calls
``write_tags(rendition, fmt, read_source_tags(source))``, which replaces whatever ffmpeg wrote
with the full set in each format's conventional names (as MusicBrainz Picard writes them).

The source is read by the library's one tag reader (mixtapes/tags.py), whose name tables are the
ones written here; ``write_tags`` writes the three rendition formats (MP3, Ogg Opus, MP4/AAC)
with mutagen, except where a comment says why not.
"""

import base64
import io
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from mutagen.flac import Picture
from mutagen.id3 import (
    APIC,
    ID3,
    TALB,
    TCOM,
    TCON,
    TDRC,
    TIT2,
    TPE1,
    TPE2,
    TPOS,
    TRCK,
    TXXX,
    UFID,
    USLT,
    ID3v1SaveOptions,
    PictureType,
)
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, Atom, AtomDataType, Atoms, MP4Cover, MP4FreeForm
from mutagen.ogg import OggPage
from mutagen.oggopus import OggOpus

from mixtapes.embedded import MP4_IMAGE_FORMATS, vorbis_texts
from mixtapes.tags import (
    ID3_TEXT_FRAMES,
    MP4_FREEFORM,
    MP4_TEXT_ATOMS,
    MUSICBRAINZ,
    MUSICBRAINZ_UFID_OWNER,
    NUMBER_FIELDS,
    REPLAYGAIN_FIELDS,
    REPLAYGAIN_OVER_R128_DB,
    TEXT_FIELDS,
    VORBIS_NAMES,
    SourceTags,
)

logger = logging.getLogger(__name__)

FORMATS = ("mp3", "opus", "aac")

ITUNSMPB = MP4_FREEFORM + "iTunSMPB"
_ID3_FRAME_TYPES = {"TIT2": TIT2, "TPE1": TPE1, "TALB": TALB, "TPE2": TPE2, "TDRC": TDRC, "TCOM": TCOM}

# Kept from what ffmpeg wrote: they describe the rendition's encoder, not the source.
_ENCODER_ID3 = "TSSE"
_ENCODER_VORBIS = "ENCODER"
_ENCODER_MP4 = "\xa9too"


class TagWriteError(Exception):
    """The rendition's tags could not be written: no such file, not the format said, or gapless
    information that does not fit the file."""


# --- writing ----------------------------------------------------------------------------------


def write_tags(path: Path | str, fmt: str, tags: SourceTags, *, source_samples: int | None = None) -> None:
    """Replace the tags ffmpeg wrote in the rendition ``path`` (``fmt``: "mp3", "opus" or "aac")
    with ``tags``, in place; the encoder's own tag is kept. For "aac", ``source_samples`` (the
    source's length in samples at the rendition's rate) adds iTunSMPB, the gapless information
    Apple's players read. Raises TagWriteError. Run it on the temporary file, before it is
    published: the file is rewritten and, for MP3, its ID3 tag changes length."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown rendition format {fmt!r}; known: {', '.join(FORMATS)}")
    if not os.path.isfile(path):
        raise TagWriteError(f"{path}: no such rendition file")
    writer = {"mp3": _write_mp3, "opus": _write_opus, "aac": _write_mp4}[fmt]
    try:
        writer(path, tags, source_samples)
    except TagWriteError:
        raise
    except Exception as exc:  # mutagen's errors, and OSError
        raise TagWriteError(f"{path}: cannot write {fmt} tags ({type(exc).__name__}: {exc})") from exc


def _gain(value: float) -> str:
    return f"{value:.2f} dB"


def _peak(value: float) -> str:
    return f"{value:.6f}"


def _replaygain_texts(tags: SourceTags) -> dict[str, str]:
    """ReplayGain as "-6.50 dB" and "0.988547", by field name."""
    texts = {}
    for name in REPLAYGAIN_FIELDS:
        value = getattr(tags, name)
        if value is not None:
            texts[name] = _gain(value) if name.endswith("gain") else _peak(value)
    return texts


def _write_mp3(path, tags: SourceTags, _source_samples) -> None:
    """ID3v2.3, as today's renditions, in exactly the room ffmpeg's own tag took: mutagen
    rewrites only the ID3v2 tag at the front of the file, and with the same length every later
    byte (the Xing/LAME frame, the audio) stays at its offset. Listeners who followed the
    transcode were told that layout; a seek they make once the file is published lands on the
    same audio. ffmpeg's tag is made big enough first (``mp3_reserve``); tags that still do not
    fit raise TagWriteError (the rendition keeps ffmpeg's)."""
    audio = MP3(path)  # raises unless there are MPEG audio frames
    if audio.tags is None:
        raise TagWriteError(f"{path}: ffmpeg wrote no ID3 tag to make room in")
    id3 = audio.tags
    kept = id3.getall(_ENCODER_ID3)
    id3.clear()
    for frame in kept:
        id3.add(frame)
    _fill_id3(id3, tags)

    def same_size(info) -> int:
        if info.padding < 0:
            raise TagWriteError(f"{path}: the tags need {-info.padding} bytes more than ffmpeg's tag holds")
        return info.padding

    audio.save(v1=ID3v1SaveOptions.UPDATE, v2_version=3, padding=same_size)


def mp3_reserve(tags: SourceTags) -> int:
    """Bytes to add to ffmpeg's ID3 tag (as a placeholder frame) so that ``tags`` fit in it later
    without moving the audio: their text frames as ID3v2.3 writes them, and some slack (the
    cover, which ffmpeg copies itself, may be written a few bytes longer by mutagen)."""
    id3 = ID3()
    _fill_id3(id3, tags, with_cover=False)
    buffer = io.BytesIO()
    id3.save(buffer, v2_version=3, padding=lambda info: 0)
    return len(buffer.getvalue()) + MP3_SLACK


MP3_SLACK = 1024


def _fill_id3(id3, tags: SourceTags, *, with_cover: bool = True) -> None:
    encoding = 3  # UTF-8; mutagen writes UTF-16 instead when saving ID3v2.3
    for name, frame_id in ID3_TEXT_FRAMES.items():
        value = getattr(tags, name)
        if value:
            id3.add(_ID3_FRAME_TYPES[frame_id](encoding=encoding, text=[value]))
    if tags.genre:
        id3.add(TCON(encoding=encoding, text=[tags.genre]))
    # ID3 has no separate totals: "n/N" in TRCK/TPOS, which needs the number.
    if tags.track:
        id3.add(TRCK(encoding=encoding, text=[_pair(tags.track, tags.track_total)]))
    if tags.disc:
        id3.add(TPOS(encoding=encoding, text=[_pair(tags.disc, tags.disc_total)]))
    for name, _key, description in MUSICBRAINZ:
        value = getattr(tags, name)
        if not value:
            continue
        if name == "musicbrainz_recording_id":
            id3.add(UFID(owner=MUSICBRAINZ_UFID_OWNER, data=value.encode("ascii", "replace")))
        else:
            id3.add(TXXX(encoding=encoding, desc=description, text=[value]))
    for name, text in _replaygain_texts(tags).items():
        id3.add(TXXX(encoding=encoding, desc=f"REPLAYGAIN_{name.upper()}", text=[text]))
    if tags.lyrics:
        id3.add(USLT(encoding=encoding, lang="XXX", desc="", text=tags.lyrics))
    if with_cover and tags.cover is not None:
        id3.add(
            APIC(encoding=encoding, mime=tags.cover.mime, type=PictureType.COVER_FRONT, desc="", data=tags.cover.data)
        )
    # ID3v2.3 has no TDRC: mutagen turns it into TYER (year), TDAT (day and month) and TIME,
    # so a date given to the month only ("2024-03") keeps its year alone.
    id3.update_to_v23()


def _pair(number: int, total: int | None) -> str:
    return f"{number}/{total}" if total else str(number)


def _write_opus(path, tags: SourceTags, _source_samples) -> None:
    """Vorbis comments as Picard writes them, the cover as METADATA_BLOCK_PICTURE, and loudness
    as RFC 7845's R128_TRACK_GAIN / R128_ALBUM_GAIN instead of REPLAYGAIN_* (the RFC asks Opus
    files not to carry those).

    The header's output gain stays 0, as ffmpeg wrote it. Every decoder applies the output gain,
    wanted or not, so putting the track gain there would make this rendition play at another
    loudness than the source and than its MP3 and AAC siblings for everyone, and would leave no
    way back to album loudness; the R128 tags let each player choose track, album or neither.
    (Were the output gain not 0, the R128 gains below are written relative to it, as the RFC says.)

    Peaks have no place in an Opus file: the RFC defines no R128 peak tag (a decoder's output
    level depends on the output gain and on resampling, not on the source's samples), so
    track_peak and album_peak are not carried."""
    audio = OggOpus(path)  # raises unless this is an Ogg Opus stream
    if audio.tags is None:
        audio.add_tags()
    comments = audio.tags
    kept = vorbis_texts(comments, _ENCODER_VORBIS)
    comments.clear()
    if kept:
        comments[_ENCODER_VORBIS] = kept
    for name in TEXT_FIELDS:
        value = getattr(tags, name)
        if value:
            comments[VORBIS_NAMES[name][0]] = [value]
    for name in NUMBER_FIELDS:
        value = getattr(tags, name)
        if value:
            comments[VORBIS_NAMES[name][0]] = [str(value)]
    for name, key, _description in MUSICBRAINZ:
        value = getattr(tags, name)
        if value:
            comments[key] = [value]
    if tags.lyrics:
        comments["LYRICS"] = [tags.lyrics]
    output_gain = _opus_output_gain_db(path)
    for name, key in (("track_gain", "R128_TRACK_GAIN"), ("album_gain", "R128_ALBUM_GAIN")):
        value = getattr(tags, name)
        if value is not None:
            comments[key] = [str(r128_gain(value, output_gain))]
    if tags.cover is not None:
        picture = Picture()
        picture.type = PictureType.COVER_FRONT
        picture.mime = tags.cover.mime
        picture.desc = ""
        picture.data = tags.cover.data
        # Width, height and depth stay 0: "not known", which the FLAC picture block allows.
        comments["METADATA_BLOCK_PICTURE"] = [base64.b64encode(picture.write()).decode("ascii")]
    audio.save()


def r128_gain(replaygain_db: float, output_gain_db: float = 0.0) -> int:
    """A ReplayGain gain as an R128_*_GAIN value: Q7.8 fixed point (dB x 256) relative to
    -23 LUFS, on top of the header's output gain (RFC 7845 section 5.2.1)."""
    q78 = round((replaygain_db - REPLAYGAIN_OVER_R128_DB - output_gain_db) * 256)
    return max(-32768, min(32767, q78))


def opus_head(path) -> tuple[int, int]:
    """(pre-skip in samples, output gain in Q7.8 dB) of an Ogg Opus file's ID header.

    mutagen reads this header but keeps neither value, so the two fields are unpacked here from
    the packet mutagen's OggPage returns (RFC 7845 section 5.1: bytes 10-11 and 16-17)."""
    with open(path, "rb") as fileobj:
        page = OggPage(fileobj)
        while not page.packets or not page.packets[0].startswith(b"OpusHead"):
            page = OggPage(fileobj)
    pre_skip, output_gain = struct.unpack_from("<H4xh", page.packets[0], 10)
    return pre_skip, output_gain


def _opus_output_gain_db(path) -> float:
    return opus_head(path)[1] / 256


def _write_mp4(path, tags: SourceTags, source_samples: int | None) -> None:
    """iTunes atoms and freeform names as Picard writes them. mutagen rewrites the moov's
    udta/meta/ilst and moves the chunk offsets that follow; the edit list ffmpeg wrote (the
    encoder's priming, trimmed by players that honour it) and the audio are untouched."""
    audio = MP4(path)  # raises unless this is an MP4 file
    if audio.tags is None:
        audio.add_tags()
    atoms = audio.tags
    kept = atoms.get(_ENCODER_MP4)
    atoms.clear()
    if kept:
        atoms[_ENCODER_MP4] = kept
    for name, atom in MP4_TEXT_ATOMS.items():
        value = getattr(tags, name)
        if value:
            atoms[atom] = [value]
    for atom, number, total in (("trkn", tags.track, tags.track_total), ("disk", tags.disc, tags.disc_total)):
        if number or total:
            atoms[atom] = [(number or 0, total or 0)]  # 0: not known
    for name, _key, description in MUSICBRAINZ:
        value = getattr(tags, name)
        if value:
            atoms[MP4_FREEFORM + description] = [_utf8(value)]
    for name, text in _replaygain_texts(tags).items():
        atoms[f"{MP4_FREEFORM}replaygain_{name}"] = [_utf8(text)]
    # covr holds JPEG, PNG, GIF and BMP only; any other picture stays out.
    if tags.cover is not None and tags.cover.mime in MP4_IMAGE_FORMATS:
        atoms["covr"] = [MP4Cover(tags.cover.data, imageformat=MP4_IMAGE_FORMATS[tags.cover.mime])]
    if source_samples is not None:
        atoms[ITUNSMPB] = [_utf8(itunsmpb(gapless_info(path, source_samples)))]
    audio.save()


def _utf8(text: str) -> MP4FreeForm:
    return MP4FreeForm(text.encode("utf-8"), dataformat=AtomDataType.UTF8)


# --- gapless AAC ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gapless:
    """An AAC stream's samples: ``priming`` (encoder delay) + ``length`` (the source's) +
    ``padding`` (the rest of the last frame) == ``frames`` x ``frame_samples``."""

    priming: int
    length: int
    padding: int
    frames: int
    frame_samples: int


def itunsmpb(info: Gapless) -> str:
    """Apple's iTunSMPB text: twelve space-led hexadecimal words, of which the second is the
    priming, the third the padding and the fourth (64-bit) the original sample count."""
    return f" 00000000 {info.priming:08X} {info.padding:08X} {info.length:016X}" + " 00000000" * 8


def gapless_info(path, source_samples: int) -> Gapless:
    """Priming, padding and frame count of an MP4's first audio track, from the file itself.

    The priming is the media time at which ffmpeg's edit list starts playing; the frames are
    counted in the sample table (stts). mutagen finds these atoms (``Atoms``) but does not
    decode them, so their few fixed fields are unpacked here (ISO/IEC 14496-12: mdhd, elst,
    stts). Raises TagWriteError when the file has no edit list or ``source_samples`` does not
    fit the stream (then iTunSMPB would tell players to cut the wrong samples)."""
    with open(path, "rb") as fileobj:
        atoms = Atoms(fileobj)
        trak = _audio_trak(atoms, fileobj)
        stbl = trak[b"mdia", b"minf", b"stbl"]
        timescale = _mdhd_timescale(trak[b"mdia", b"mdhd"].read(fileobj)[1])
        edits = [child for child in trak.children if child.name == b"edts"]
        if not edits:
            raise TagWriteError(f"{path}: no edit list, so the encoder delay is not recorded")
        priming = _edit_list_start(edits[0].read(fileobj)[1])
        deltas = _stts(stbl[(b"stts",)].read(fileobj)[1])
    rate = MP4(path).info.sample_rate
    if timescale != rate:
        raise TagWriteError(f"{path}: media timescale {timescale} is not the sample rate {rate}")
    if not deltas:
        raise TagWriteError(f"{path}: no samples in the sample table (a fragmented MP4?)")
    # Every AAC frame decodes to the same number of samples; ffmpeg shortens the last one's
    # duration in stts to where the audio ends, so the largest duration is the frame's.
    frame_samples = max(delta for _count, delta in deltas)
    frames = sum(count for count, _delta in deltas)
    played = sum(count * delta for count, delta in deltas) - priming
    padding = frames * frame_samples - priming - source_samples
    if padding < 0 or abs(played - source_samples) >= frame_samples:
        raise TagWriteError(
            f"{path}: {source_samples} source samples do not fit a stream of {frames} frames "
            f"with {priming} samples of priming ({played} played)"
        )
    return Gapless(priming, source_samples, padding, frames, frame_samples)


def _audio_trak(atoms: Atoms, fileobj) -> Atom:
    for trak in atoms[b"moov"].findall(b"trak"):
        try:
            hdlr = trak[b"mdia", b"hdlr"].read(fileobj)[1]
        except KeyError:
            continue
        if hdlr[8:12] == b"soun":  # version/flags, pre_defined, then the handler type
            return trak
    raise TagWriteError("no audio track in the MP4 file")


def _mdhd_timescale(data: bytes) -> int:
    # version 1 has 64-bit creation and modification times before the timescale.
    return struct.unpack_from(">I", data, 20 if data[0] == 1 else 12)[0]


def _edit_list_start(edts: bytes) -> int:
    """The media time where the edit starts: the samples skipped at the front."""
    elst = Atom(io.BytesIO(edts))
    if elst.name != b"elst":
        raise TagWriteError("the edit box holds no edit list")
    data = elst.read(io.BytesIO(edts))[1]
    version, count = data[0], struct.unpack_from(">I", data, 4)[0]
    entry = struct.Struct(">Qqi" if version == 1 else ">Iii")
    starts = [entry.unpack_from(data, 8 + i * entry.size)[1] for i in range(min(count, 16))]
    if len(starts) != 1 or starts[0] < 0:  # -1 is an empty edit: a pause before the media
        raise TagWriteError("an edit list other than one plain edit cannot be told as iTunSMPB")
    return starts[0]


def _stts(data: bytes) -> list[tuple[int, int]]:
    count = struct.unpack_from(">I", data, 4)[0]
    if 8 + count * 8 > len(data):
        raise TagWriteError("the sample table is damaged")
    return [struct.unpack_from(">II", data, 8 + i * 8) for i in range(count)]
