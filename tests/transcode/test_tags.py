"""Every tag and the cover of a source, carried into each rendition format (audiocache/transcode/tags.py).

Real files: FLAC, ALAC and WavPack sources rendered by ffmpeg's generators (tagged by ffmpeg where
its -metadata can, by mutagen for the rest, as a tagger would), encoded by ffmpeg as the transcoder
does, tagged by ``write_tags``, then read back with ``read_source_tags`` (mixtapes/tags.py) and compared field by field;
ffprobe and ffmpeg check that the audio, the Opus header and the MP4 edit list survived.
"""

import dataclasses
import functools
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from mutagen.apev2 import APEv2
from mutagen.flac import FLAC
from mutagen.id3 import APIC, ID3, TIT2, TPE1, TPE2, TRCK, PictureType
from mutagen.mp4 import MP4, AtomDataType, MP4Cover, MP4FreeForm
from mutagen.oggopus import OggOpus
from mutagen.wave import WAVE

from audiocache.qualities import Variant
from audiocache.transcode.ffmpeg import SourceFacts, build_command
from audiocache.transcode.mp3 import id3v2_length
from audiocache.transcode.tags import (
    ITUNSMPB,
    TagWriteError,
    gapless_info,
    mp3_reserve,
    opus_head,
    write_tags,
)
from mixtapes import embedded
from mixtapes.demo import FORMATS as DEMO_FORMATS
from mixtapes.demo import AudioSpec, render_audio, render_cover
from mixtapes.models import MAX_TAG_LENGTH
from mixtapes.tags import MAX_LYRICS_CHARS, Cover, SourceTags, read_source_tags

SOURCE_KINDS = ("flac", "alac", "wavpack")
FORMATS = ("mp3", "opus", "aac")
DURATION = 1.5
RATE = 44100

# What a format truly cannot carry (read back as empty). Opus: RFC 7845 has R128 gains only, no peaks.
CANNOT_CARRY = {"mp3": set(), "opus": {"track_peak", "album_peak"}, "aac": set()}

# Set by ffmpeg's -metadata when the source is rendered (its muxers name them for each container).
BY_FFMPEG = {
    "title": "Après minuit",
    "artist": "Ensemble Ondes",
    "album": "Café Nocturne",
    "album_artist": "Various Ondes",
    "track": "3/12",
    "disc": "1/2",
    "date": "2024-03-15",
    "genre": "Ambient",
    "composer": "Clara Schumann",
}
MB = {
    "musicbrainz_recording_id": "0c8b6cd4-3b4b-4d6f-9c2f-2a1d8f3e5a01",
    "musicbrainz_release_track_id": "1d9c7de5-4c5c-4e7a-8d3a-3b2e9a4f6b02",
    "musicbrainz_album_id": "2eac8ef6-5d6d-4f8b-9e4b-4c3fab507c03",
    "musicbrainz_artist_id": "3fbd9f07-6e7e-4a9c-8f5c-5d4abc618d04",
    "musicbrainz_album_artist_id": "40ce0a18-7f8f-4bad-9a6d-6e5bcd729e05",
    "musicbrainz_release_group_id": "51df1b29-8a9a-4cbe-8b7e-7f6cde83af06",
}
LYRICS = "Première ligne, « entre guillemets »\nSecond line\n\nAfter a blank line"
REPLAYGAIN = {"track_gain": -6.5, "track_peak": 0.988547, "album_gain": -7.25, "album_peak": 0.999969}

EXTENSION = {"mp3": ".mp3", "opus": ".opus", "aac": ".m4a"}


def ffprobe(path: Path, *args: str) -> dict:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, f"file:{path}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(done.stdout)


def audio_stream(path: Path) -> dict:
    return ffprobe(path, "-show_streams", "-select_streams", "a:0")["streams"][0]


def decode_errors(path: Path, *before_input: str) -> str:
    """What ffmpeg says while decoding all of ``path`` (nothing, for a sound file)."""
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", *before_input, "-i", f"file:{path}", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return (done.stderr + done.stdout).strip() or ("" if done.returncode == 0 else f"exit {done.returncode}")


def tag_like_a_tagger(path: Path, kind: str, cover: bytes) -> None:
    """What ffmpeg's -metadata cannot set properly, written with mutagen the way Picard does."""
    if kind == "flac":
        audio = FLAC(path)
        for name, key in (
            ("musicbrainz_recording_id", "MUSICBRAINZ_TRACKID"),
            ("musicbrainz_release_track_id", "MUSICBRAINZ_RELEASETRACKID"),
            ("musicbrainz_album_id", "MUSICBRAINZ_ALBUMID"),
            ("musicbrainz_artist_id", "MUSICBRAINZ_ARTISTID"),
            ("musicbrainz_album_artist_id", "MUSICBRAINZ_ALBUMARTISTID"),
            ("musicbrainz_release_group_id", "MUSICBRAINZ_RELEASEGROUPID"),
        ):
            audio[key] = MB[name]
        audio["LYRICS"] = LYRICS
        audio["REPLAYGAIN_TRACK_GAIN"] = "-6.50 dB"
        audio["REPLAYGAIN_TRACK_PEAK"] = "0.988547"
        audio["REPLAYGAIN_ALBUM_GAIN"] = "-7.25 dB"
        audio["REPLAYGAIN_ALBUM_PEAK"] = "0.999969"
        audio.save()
    elif kind == "alac":
        audio = MP4(path)
        for name, description in (
            ("musicbrainz_recording_id", "MusicBrainz Track Id"),
            ("musicbrainz_release_track_id", "MusicBrainz Release Track Id"),
            ("musicbrainz_album_id", "MusicBrainz Album Id"),
            ("musicbrainz_artist_id", "MusicBrainz Artist Id"),
            ("musicbrainz_album_artist_id", "MusicBrainz Album Artist Id"),
            ("musicbrainz_release_group_id", "MusicBrainz Release Group Id"),
        ):
            audio["----:com.apple.iTunes:" + description] = [MP4FreeForm(MB[name].encode())]
        audio["\xa9lyr"] = [LYRICS]
        # Picard writes these upper-case in MP4, foobar2000 lower-case: both must be read.
        for key, value in (
            ("REPLAYGAIN_TRACK_GAIN", "-6.50 dB"),
            ("REPLAYGAIN_TRACK_PEAK", "0.988547"),
            ("REPLAYGAIN_ALBUM_GAIN", "-7.25 dB"),
            ("REPLAYGAIN_ALBUM_PEAK", "0.999969"),
        ):
            audio["----:com.apple.iTunes:" + key] = [MP4FreeForm(value.encode())]
        audio.save()
    else:  # WavPack: APEv2, which ffmpeg wrote with its own lower-case names
        audio = APEv2(path)
        for name, key in (
            ("musicbrainz_recording_id", "MUSICBRAINZ_TRACKID"),
            ("musicbrainz_release_track_id", "MUSICBRAINZ_RELEASETRACKID"),
            ("musicbrainz_album_id", "MUSICBRAINZ_ALBUMID"),
            ("musicbrainz_artist_id", "MUSICBRAINZ_ARTISTID"),
            ("musicbrainz_album_artist_id", "MUSICBRAINZ_ALBUMARTISTID"),
            ("musicbrainz_release_group_id", "MUSICBRAINZ_RELEASEGROUPID"),
        ):
            audio[key] = MB[name]
        audio["Lyrics"] = LYRICS
        audio["REPLAYGAIN_TRACK_GAIN"] = "-6.50 dB"
        audio["REPLAYGAIN_TRACK_PEAK"] = "0.988547"
        audio["REPLAYGAIN_ALBUM_GAIN"] = "-7.25 dB"
        audio["REPLAYGAIN_ALBUM_PEAK"] = "0.999969"
        audio["Cover Art (Front)"] = b"cover.jpg\0" + cover  # ffmpeg's WavPack muxer writes no picture
        audio.save()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rendition-tags")


@pytest.fixture(scope="module")
def cover_path(workdir) -> Path:
    return render_cover(workdir / "cover.jpg", size=64)


@pytest.fixture(scope="module")
def expected(cover_path) -> SourceTags:
    return SourceTags(
        title=BY_FFMPEG["title"],
        artist=BY_FFMPEG["artist"],
        album=BY_FFMPEG["album"],
        album_artist=BY_FFMPEG["album_artist"],
        track=3,
        track_total=12,
        disc=1,
        disc_total=2,
        date=BY_FFMPEG["date"],
        genre=BY_FFMPEG["genre"],
        composer=BY_FFMPEG["composer"],
        **MB,
        **REPLAYGAIN,
        lyrics=LYRICS,
        cover=Cover(data=cover_path.read_bytes(), mime="image/jpeg"),
    )


@pytest.fixture(scope="module")
def sources(workdir, cover_path) -> dict[str, Path]:
    """One tagged source of each kind, made once for the module."""
    made = {}
    for kind in SOURCE_KINDS:
        spec = AudioSpec(kind, DURATION, sample_rate=RATE, tags=BY_FFMPEG, cover=cover_path)
        path = render_audio(workdir / f"source-{kind}{DEMO_FORMATS[kind][0]}", spec)
        tag_like_a_tagger(path, kind, cover_path.read_bytes())
        made[kind] = path
    return made


@functools.cache
def source_samples(path: Path) -> int:
    """The source's length in samples (ffprobe's count; a source is never changed once made)."""
    stream = audio_stream(path)
    return round(float(stream["duration"]) * int(stream["sample_rate"]))


def encode(source: Path, output: Path, fmt: str) -> None:
    """The app's own ffmpeg command for a medium rendition (with the room an MP3's tags need)."""
    reserve = mp3_reserve(read_source_tags(source)) if fmt == "mp3" else 0
    facts = SourceFacts(RATE, 2, has_cover=True, duration=DURATION)
    command = build_command(source, output, Variant(fmt, "medium"), facts, ffmpeg="ffmpeg", reserve=reserve)
    subprocess.run(command, check=True, capture_output=True, timeout=60)


@dataclasses.dataclass(frozen=True)
class Rendition:
    encoded: Path  # ffmpeg's output, untouched
    path: Path  # the same, after write_tags


@pytest.fixture(scope="module")
def rendition(workdir, sources):
    """``rendition(kind, fmt)``: the source encoded by ffmpeg and tagged, made once per module."""
    made: dict[tuple[str, str], Rendition] = {}

    def make(kind: str, fmt: str) -> Rendition:
        if (kind, fmt) not in made:
            source = sources[kind]
            encoded = workdir / f"{kind}-ffmpeg{EXTENSION[fmt]}"
            encode(source, encoded, fmt)
            path = workdir / f"{kind}-tagged{EXTENSION[fmt]}"
            shutil.copyfile(encoded, path)
            samples = source_samples(source) if fmt == "aac" else None
            write_tags(path, fmt, read_source_tags(source), source_samples=samples)
            made[kind, fmt] = Rendition(encoded, path)
        return made[kind, fmt]

    return make


# --- every field, every way ------------------------------------------------------------------


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_each_source_reads_as_the_tagger_wrote_it(sources, expected, kind):
    assert read_source_tags(sources[kind]) == expected


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_the_rendition_carries_every_field_of_its_source(sources, rendition, kind, fmt):
    source = read_source_tags(sources[kind])
    carried = read_source_tags(rendition(kind, fmt).path)

    for spec in dataclasses.fields(SourceTags):
        name = spec.name
        if name in CANNOT_CARRY[fmt]:
            assert getattr(carried, name) in ("", None), name
        else:
            assert getattr(carried, name) == getattr(source, name), name
    assert source.cover is not None and carried.cover == source.cover


MB_NAMES = ("Track Id", "Release Track Id", "Album Id", "Artist Id", "Album Artist Id", "Release Group Id")
RG_NAMES = ("TRACK_GAIN", "TRACK_PEAK", "ALBUM_GAIN", "ALBUM_PEAK")
# Every name each rendition holds after write_tags, in that format's convention: ffmpeg's encoder
# tag is kept, everything else ffmpeg wrote is gone.
WRITTEN_NAMES = {
    "mp3": {"TSSE", "TIT2", "TPE1", "TALB", "TPE2", "TRCK", "TPOS", "TYER", "TDAT", "TCON", "TCOM",
            "UFID:http://musicbrainz.org", "USLT::XXX", "APIC:",
            *(f"TXXX:MusicBrainz {name}" for name in MB_NAMES[1:]), *(f"TXXX:REPLAYGAIN_{name}" for name in RG_NAMES)},
    "opus": {"ENCODER", "TITLE", "ARTIST", "ALBUM", "ALBUMARTIST", "TRACKNUMBER", "TRACKTOTAL", "DISCNUMBER",
             "DISCTOTAL", "DATE", "GENRE", "COMPOSER", "MUSICBRAINZ_TRACKID", "MUSICBRAINZ_RELEASETRACKID",
             "MUSICBRAINZ_ALBUMID", "MUSICBRAINZ_ARTISTID", "MUSICBRAINZ_ALBUMARTISTID", "MUSICBRAINZ_RELEASEGROUPID",
             "LYRICS", "R128_TRACK_GAIN", "R128_ALBUM_GAIN", "METADATA_BLOCK_PICTURE"},
    "aac": {"\xa9too", "\xa9nam", "\xa9ART", "\xa9alb", "aART", "trkn", "disk", "\xa9day", "\xa9gen", "\xa9wrt",
            "\xa9lyr", "covr", ITUNSMPB, *(f"----:com.apple.iTunes:MusicBrainz {name}" for name in MB_NAMES),
            *(f"----:com.apple.iTunes:replaygain_{name.lower()}" for name in RG_NAMES)},
}  # fmt: skip


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_rendition_holds_these_names_and_no_others(rendition, fmt):
    path = rendition("flac", fmt).path
    if fmt == "mp3":
        names = set(ID3(path, translate=False).keys())  # as stored: ID3v2.3
    elif fmt == "opus":
        names = {key for key, _value in OggOpus(path).tags}
    else:
        names = set(MP4(path).tags.keys())

    assert names == WRITTEN_NAMES[fmt]


# --- MP3 ------------------------------------------------------------------------------------


def test_mp3_lyrics_are_a_lyrics_frame_and_the_cover_a_front_picture(rendition, expected):
    id3 = ID3(rendition("flac", "mp3").path, translate=False)  # the frames as stored, not as ID3v2.4

    assert id3.version[:2] == (2, 3)
    [lyrics] = id3.getall("USLT")
    assert lyrics.text == LYRICS
    assert not [f for f in id3.getall("TXXX") if "lyric" in f.desc.lower()]
    [picture] = id3.getall("APIC")  # ffmpeg's own copy of the cover replaced, not doubled
    assert (picture.type, picture.mime, picture.data) == (PictureType.COVER_FRONT, "image/jpeg", expected.cover.data)
    [ufid] = id3.getall("UFID")
    assert (ufid.owner, ufid.data) == ("http://musicbrainz.org", MB["musicbrainz_recording_id"].encode())
    assert str(id3["TXXX:MusicBrainz Album Id"]) == MB["musicbrainz_album_id"]
    assert str(id3["TXXX:REPLAYGAIN_TRACK_GAIN"]) == "-6.50 dB"
    assert str(id3["TXXX:REPLAYGAIN_ALBUM_PEAK"]) == "0.999969"
    assert str(id3["TRCK"]) == "3/12" and str(id3["TPOS"]) == "1/2"
    assert str(id3["TYER"]) == "2024" and str(id3["TDAT"]) == "1503"  # ID3v2.3's date


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_mp3_tags_take_ffmpegs_room_and_every_later_byte_stays(rendition, kind):
    made = rendition(kind, "mp3")
    before, after = made.encoded.read_bytes(), made.path.read_bytes()
    # Same tag length, so the Xing frame and the audio stay at their offsets: a listener who
    # followed the transcode and seeks in the published file lands on the same bytes.
    assert id3v2_length(after) == id3v2_length(before) and len(after) == len(before)
    assert after[id3v2_length(after) :] == before[id3v2_length(before) :]
    assert after[: id3v2_length(after)] != before[: id3v2_length(before)]  # the tags did change
    assert decode_errors(made.path) == ""


def test_mp3_tags_that_do_not_fit_leave_the_file_as_ffmpeg_wrote_it(workdir, sources):
    made = workdir / "no-room.mp3"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            f"file:{sources['flac']}",
            "-map",
            "0:a:0",
            "-c:a",
            "libmp3lame",
            "-id3v2_version",
            "3",
            "-f",
            "mp3",
            f"file:{made}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip  (no room reserved: ffmpeg's tag holds its encoder frame only)
    before = made.read_bytes()
    with pytest.raises(TagWriteError, match="bytes more than ffmpeg's tag holds"):
        write_tags(made, "mp3", read_source_tags(sources["flac"]))
    assert made.read_bytes() == before


# --- Opus -----------------------------------------------------------------------------------


def test_opus_is_48_khz_with_the_header_untouched_and_r128_gains(rendition):
    made = rendition("flac", "opus")
    stream = audio_stream(made.path)

    assert (stream["codec_name"], stream["sample_rate"]) == ("opus", "48000")
    pre_skip, output_gain = opus_head(made.path)
    assert output_gain == 0
    assert (pre_skip, output_gain) == opus_head(made.encoded)  # ffmpeg's pre-skip, kept
    assert pre_skip > 0
    comments = OggOpus(made.path).tags
    assert comments["R128_TRACK_GAIN"] == [str(round((REPLAYGAIN["track_gain"] - 5) * 256))] == ["-2944"]
    assert comments["R128_ALBUM_GAIN"] == [str(round((REPLAYGAIN["album_gain"] - 5) * 256))] == ["-3136"]
    assert not [key for key, _value in comments if key.upper().startswith("REPLAYGAIN_")]
    assert "METADATA_BLOCK_PICTURE" in comments


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_opus_decodes_fully_and_seeks(rendition, kind):
    path = rendition(kind, "opus").path

    assert decode_errors(path) == ""
    assert decode_errors(path, "-ss", "1.0") == ""
    assert float(audio_stream(path)["duration"]) == pytest.approx(DURATION, abs=0.02)


# --- AAC ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_aac_itunsmpb_tells_priming_length_and_padding(sources, rendition, kind):
    path = rendition(kind, "aac").path
    [value] = MP4(path).tags[ITUNSMPB]
    words = bytes(value).decode().split()
    priming, padding, length = int(words[1], 16), int(words[2], 16), int(words[3], 16)

    assert len(words) == 12 and words[0] == "00000000" and set(words[4:]) == {"00000000"}
    assert value.dataformat == AtomDataType.UTF8
    packets = ffprobe(
        path, "-select_streams", "a:0", "-show_packets", "-show_entries", "packet=pts,duration:packet_side_data"
    )
    packets = packets["packets"]
    skip = next(side["skip_samples"] for side in packets[0].get("side_data_list", []) if "skip_samples" in side)
    assert priming == skip == -packets[0]["pts"] == 1024  # ffmpeg's AAC encoder delay
    assert length == source_samples(sources[kind]) == round(DURATION * RATE)
    assert priming + length + padding == len(packets) * 1024  # every frame decodes to 1024 samples
    assert 0 <= padding < 1024


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_aac_edit_list_kept_and_decodes_cleanly(sources, rendition, kind):
    made = rendition(kind, "aac")
    before, after = audio_stream(made.encoded), audio_stream(made.path)

    # ffprobe's duration is the edit list's: the priming and padding cut off.
    assert after["duration_ts"] == before["duration_ts"] == source_samples(sources[kind])
    assert float(after["duration"]) == pytest.approx(float(audio_stream(sources[kind])["duration"]), abs=1024 / RATE)
    assert decode_errors(made.path) == ""
    assert MP4(made.path).tags["covr"] == [MP4Cover(read_source_tags(sources[kind]).cover.data, AtomDataType.JPEG)]


def test_aac_source_samples_that_do_not_fit_the_file_are_refused(workdir, rendition):
    made = rendition("flac", "aac")
    path = workdir / "wrong-length.m4a"
    shutil.copyfile(made.encoded, path)

    for wrong in (round(DURATION * RATE) + 5000, round(DURATION * RATE) - 2048):
        with pytest.raises(TagWriteError, match="do not fit"):
            write_tags(path, "aac", SourceTags(title="x"), source_samples=wrong)
    assert path.read_bytes() == made.encoded.read_bytes()  # refused before anything was written
    assert gapless_info(path, round(DURATION * RATE)).priming == 1024


def test_aac_without_source_samples_has_no_itunsmpb(workdir, rendition, expected):
    path = workdir / "no-gapless.m4a"
    shutil.copyfile(rendition("flac", "aac").encoded, path)

    write_tags(path, "aac", expected)
    assert ITUNSMPB not in MP4(path).tags
    assert read_source_tags(path) == expected


# --- the other containers the library holds ---------------------------------------------------

OTHER_KINDS = {"aiff": ".aiff", "mp3": ".mp3", "opus": ".opus", "vorbis": ".ogg", "wav": ".wav"}


@pytest.mark.parametrize("kind", OTHER_KINDS)
def test_other_containers_are_read(workdir, kind):
    path = workdir / f"other-{kind}{OTHER_KINDS[kind]}"
    render_audio(
        path, AudioSpec(kind, 0.5, tags={"title": "Tïtle", "artist": "A", "album_artist": "AA", "track": "2/5"})
    )
    if kind == "wav":  # ffmpeg writes RIFF INFO; taggers add an ID3 chunk, which is what is read
        audio = WAVE(path)
        audio.add_tags()
        audio.tags.add(TIT2(encoding=3, text=["Tïtle"]))
        audio.tags.add(TPE1(encoding=3, text=["A"]))
        audio.tags.add(TPE2(encoding=3, text=["AA"]))
        audio.tags.add(TRCK(encoding=3, text=["2/5"]))
        audio.save()
    if kind == "opus":  # an Opus source's loudness is R128 (Q7.8 dB, 5 dB below ReplayGain's)
        audio = OggOpus(path)
        audio["R128_TRACK_GAIN"] = "-2944"
        audio.save()

    found = read_source_tags(path)
    assert (found.title, found.artist, found.album_artist, found.track, found.track_total) == ("Tïtle", "A", "AA", 2, 5)
    assert found.track_gain == (-6.5 if kind == "opus" else None)


# --- hostile input --------------------------------------------------------------------------

HUGE_PICTURE = b"\xff\xd8\xff\xe0" + bytes(20 * 1024 * 1024)  # 20 MiB that start like a JPEG


@pytest.mark.parametrize("container", ["m4a", "mp3"])
def test_a_picture_over_16_mib_is_skipped_and_the_rest_read(workdir, sources, rendition, expected, container):
    path = workdir / f"huge-picture.{container}"
    if container == "m4a":
        shutil.copyfile(sources["alac"], path)
        audio = MP4(path)
        audio["covr"] = [MP4Cover(HUGE_PICTURE, MP4Cover.FORMAT_JPEG)]
    else:
        shutil.copyfile(rendition("flac", "mp3").path, path)
        audio = ID3(path)
        audio.delall("APIC")
        audio.add(APIC(encoding=3, mime="image/jpeg", type=PictureType.COVER_FRONT, desc="", data=HUGE_PICTURE))
    audio.save()

    assert read_source_tags(path) == dataclasses.replace(expected, cover=None)


def test_tags_beyond_the_read_budget_are_not_loaded(workdir, sources, monkeypatch):
    path = workdir / "over-budget.m4a"
    shutil.copyfile(sources["alac"], path)
    audio = MP4(path)
    audio["covr"] = [MP4Cover(bytes(2 * 1024 * 1024), MP4Cover.FORMAT_JPEG)]
    audio.save()
    monkeypatch.setattr(embedded, "READ_BUDGET_BYTES", 1024 * 1024)

    assert read_source_tags(path) == SourceTags()


def test_long_texts_are_cut(workdir, sources):
    path = workdir / "long-texts.flac"
    shutil.copyfile(sources["flac"], path)
    audio = FLAC(path)
    audio["TITLE"] = "t" * 100_000
    audio["LYRICS"] = "la\n" * MAX_LYRICS_CHARS
    audio.save()

    found = read_source_tags(path)
    assert found.title == "t" * MAX_TAG_LENGTH
    assert len(found.lyrics) == MAX_LYRICS_CHARS and found.lyrics.startswith("la\nla\n")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "missing"])
def test_a_damaged_source_gives_empty_tags(workdir, sources, damage):
    path = workdir / f"damaged-{damage}.flac"
    if damage == "truncated":  # cut inside the metadata blocks (the picture)
        path.write_bytes(sources["flac"].read_bytes()[:2000])
    elif damage == "garbage":
        path.write_bytes(b"fLaC" + b"\xff\x00junk" * 500)
    elif damage == "empty":
        path.write_bytes(b"")

    assert read_source_tags(path) == SourceTags()


@pytest.mark.parametrize("fmt", FORMATS)
def test_writing_to_a_missing_or_foreign_file_raises_tag_write_error(workdir, expected, fmt):
    with pytest.raises(TagWriteError, match="no such rendition"):
        write_tags(workdir / "not-there" / f"x{EXTENSION[fmt]}", fmt, expected)
    foreign = workdir / f"foreign{EXTENSION[fmt]}"
    foreign.write_bytes(b"This is not audio.\n" * 100)
    with pytest.raises(TagWriteError, match=f"cannot write {fmt} tags"):
        write_tags(foreign, fmt, expected)


def test_an_unknown_format_is_a_programming_error(workdir, rendition, expected):
    with pytest.raises(ValueError, match="unknown rendition format"):
        write_tags(rendition("flac", "mp3").path, "flac", expected)
