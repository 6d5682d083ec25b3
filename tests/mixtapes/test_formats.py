"""Formats as people say them (mixtapes/formats.py), from what real files scan to."""

import pytest

from mixtapes.formats import format_name
from mixtapes.library import scan_library
from mixtapes.models import Track

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("kind", "sample_rate", "expected"),
    [
        ("flac", 44100, "FLAC 16-bit/44.1 kHz"),
        ("flac24", 96000, "FLAC 24-bit/96 kHz"),
        ("wav", 44100, "WAV 16-bit"),
        ("wav24", 48000, "WAV 24-bit"),
        ("wav8", 22050, "WAV 8-bit"),
        ("wavfloat", 44100, "WAV 32-bit float"),
        ("aiff", 44100, "AIFF 16-bit"),
        ("aiff24", 96000, "AIFF 24-bit"),
        ("alac", 44100, "ALAC 16-bit/44.1 kHz"),
        ("wavpack", 44100, "WavPack 16-bit/44.1 kHz"),
        ("mp3", 44100, "MP3 192k"),
        ("vorbis", 44100, "Ogg Vorbis"),
        ("opus", 48000, "Opus"),
    ],
)
def test_each_format_of_a_real_file(make_audio, kind, sample_rate, expected):
    from mixtapes.demo import FORMATS

    make_audio("a" + FORMATS[kind][0], kind=kind, sample_rate=sample_rate, duration=1)
    scan_library()
    assert Track.objects.get().format_name == expected


def test_no_codec_id_reaches_a_page(client, make_audio):
    from tests.factories import UserFactory

    make_audio("Alpha Song.wav", kind="wav", duration=1)
    make_audio("Bravo Song.m4a", kind="alac", duration=1)
    scan_library()
    client.force_login(UserFactory())
    page = client.get("/").content.decode()
    assert "WAV 16-bit" in page and "ALAC 16-bit/44.1 kHz" in page
    assert "pcm_s16le" not in page and ">alac<" not in page
    for query, expected in (("alpha", "WAV 16-bit"), ("bravo", "ALAC 16-bit/44.1 kHz")):
        results = client.get("/library/search/", {"q": query}).json()["results"]
        assert [r["format"] for r in results] == [expected]


def test_unknown_and_partial_facts():
    assert format_name("") == "Unknown"
    assert format_name("flac") == "FLAC"
    assert format_name("mp3") == "MP3"
    assert format_name("aac", bitrate=256_000) == "AAC 256k"
    assert format_name("pcm_s24be", container="aiff", bit_depth=24) == "AIFF 24-bit"
    assert format_name("weird_codec") == "WEIRD_CODEC"
