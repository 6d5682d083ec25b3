"""ReplayGain: read by the scan from every tag dialect (mixtapes/tags.py), and given to the share
page's player per track, as the album's gain where the mixtape holds a whole album in a row."""

import json
import re

import pytest
from mutagen.mp4 import MP4, MP4FreeForm

from mixtapes.library import scan_library
from mixtapes.models import Track
from mixtapes.tags import parse_replaygain
from tests.factories import MixtapeFactory, MixtapeTrackFactory, TrackFactory

pytestmark = pytest.mark.django_db

GAINS = {
    "replaygain_track_gain": "-6.54 dB",
    "replaygain_track_peak": "0.988553",
    "replaygain_album_gain": "-7.10 dB",
    "replaygain_album_peak": "1.000000",
}


@pytest.mark.parametrize("kind", ["flac", "mp3", "alac", "wavpack"])
def test_the_scan_reads_replaygain(make_audio, kind):
    from mixtapes.demo import FORMATS

    name = "a" + FORMATS[kind][0]
    path = make_audio(name, kind=kind, duration=1, tags=GAINS if kind != "alac" else {})
    if kind == "alac":  # ffmpeg's MP4 muxer drops unknown tags: write iTunes freeform atoms as taggers do
        audio = MP4(path)
        for key, value in GAINS.items():
            audio[f"----:com.apple.iTunes:{key.upper()}"] = [MP4FreeForm(value.encode())]
        audio.save()
    scan_library()
    track = Track.objects.get()
    assert (track.replaygain_track_gain, track.replaygain_track_peak) == (-6.54, 0.988553)
    assert (track.replaygain_album_gain, track.replaygain_album_peak) == (-7.1, 1.0)


def test_nonsense_is_no_gain():
    assert parse_replaygain("track_gain", "loud") is None
    assert parse_replaygain("track_gain", "-900 dB") is None
    assert parse_replaygain("track_peak", "0") is None
    assert parse_replaygain("album_gain", "+3.2 dB") == 3.2


def playlist_of(client, mixtape) -> list[dict]:
    page = client.get(f"/share/{mixtape.slug}/").content.decode()
    return json.loads(re.search(r'<script id="playlist-data" type="application/json">(.*?)</script>', page, re.S)[1])


def test_album_gain_only_for_a_whole_album_in_a_row(client):
    album = [TrackFactory(artist="A", album="Whole", replaygain_track_gain=-3.0 - n, replaygain_album_gain=-5.0,
                          replaygain_album_peak=0.9) for n in range(3)]  # fmt: skip
    half = [
        TrackFactory(artist="B", album="Half", replaygain_track_gain=-2.0, replaygain_album_gain=-4.0) for _ in range(3)
    ]
    loose = TrackFactory(artist="C", album="", replaygain_track_gain=1.5, replaygain_track_peak=0.5)
    untagged = TrackFactory(artist="D", album="X")
    mixtape = MixtapeFactory(is_public=True)
    for position, track in enumerate([*album, half[0], half[1], loose, untagged], start=1):
        MixtapeTrackFactory(mixtape=mixtape, track=track, position=position)
    gains = [entry["gain"] for entry in playlist_of(client, mixtape)]
    assert gains[:3] == [{"db": -5.0, "peak": 0.9, "mode": "album"}] * 3  # all of "Whole", in a row
    assert gains[3:5] == [{"db": -2.0, "peak": None, "mode": "track"}] * 2  # two of the three of "Half"
    assert gains[5] == {"db": 1.5, "peak": 0.5, "mode": "track"}
    assert gains[6] is None
