"""Tags read with mutagen (mixtapes/tags.py), cleaned of hostile values, with ffprobe's as a fallback."""

import pytest

from mixtapes.tags import clean_text, parse_number, read_tags


@pytest.mark.parametrize(
    ("text", "number"),
    [("3", 3), ("03/12", 3), ("3 of 12", 3), (" 7", 7), ("", None), ("0", None), ("A", None), ("-1", None),
     ("99999999999", None)],
)  # fmt: skip
def test_parse_number(text, number):
    assert parse_number(text) == number


def test_clean_text():
    assert clean_text("  a\x00b\r\nc\t\td  ") == "a b c d"
    assert clean_text("e\u0301") == "\u00e9"  # NFC, so searches match what people type
    assert len(clean_text("z" * 10_000_000)) == 500


def test_read_tags_falls_back_to_ffprobe_tags(tmp_path):
    path = tmp_path / "untagged.flac"
    path.write_bytes(b"not even audio")
    tags = read_tags(path, fallback={"title": "From ffprobe", "track": "4/10", "album_artist": "VA"})
    assert (tags.title, tags.track_number, tags.album_artist) == ("From ffprobe", 4, "VA")


def test_read_tags_of_every_format(make_audio):
    common = {"title": "T", "artist": "A", "album": "B", "album_artist": "C", "track": "2/3", "disc": "1/1"}
    for kind, name in [("flac", "a.flac"), ("alac", "a.m4a"), ("mp3", "a.mp3"), ("wavpack", "a.wv"),
                       ("opus", "a.opus"), ("aiff", "a.aiff")]:  # fmt: skip
        tags = read_tags(make_audio(name, kind=kind, tags=common))
        assert (tags.title, tags.artist, tags.album, tags.track_number) == ("T", "A", "B", 2), kind


def test_the_scan_and_the_renditions_read_tags_the_same_way(make_audio):
    """One reader: what the library shows is what every rendition carries (mixtapes/tags.py)."""
    from mutagen.flac import FLAC

    from mixtapes.tags import read_source_tags

    path = make_audio("multi.flac", tags={"title": "T", "album": "B", "track": "2/3"})
    audio = FLAC(path)
    audio["ARTIST"] = ["First", "Second"]
    audio["ALBUM ARTIST"] = ["Various"]  # another tagger's spelling
    audio["REPLAYGAIN_TRACK_GAIN"] = ["-6.543 dB"]
    audio.save()
    scanned, carried = read_tags(path), read_source_tags(path)
    assert (scanned.title, scanned.artist, scanned.album_artist, scanned.track_number) == (
        "T",
        "First; Second",
        "Various",
        2,
    )
    assert (scanned.artist, scanned.album, scanned.track_number, scanned.track_gain) == (
        carried.artist, carried.album, carried.track, carried.track_gain
    )  # fmt: skip
    assert scanned.track_gain == -6.54


def test_the_scan_reads_an_opus_files_r128_gain_as_replaygain(make_audio):
    from mutagen.oggopus import OggOpus

    path = make_audio("a.opus", kind="opus", tags={"title": "T"})
    audio = OggOpus(path)
    audio["R128_TRACK_GAIN"] = ["-256"]  # -1 dB against -23 LUFS: +4 dB against ReplayGain's -18
    audio.save()
    assert read_tags(path).track_gain == 4.0
