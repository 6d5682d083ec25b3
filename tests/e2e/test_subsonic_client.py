"""A real Subsonic client against the live server: py-sonic (an independent client library from
PyPI) talks to uvicorn as ``make run`` starts it, with token authentication (form posts, as it
sends them), and an API key over plain GET."""

import json
import subprocess
import urllib.request

import pytest
from django.core.files.base import ContentFile
from django.db import connections

from audiocache.models import CachedRendition
from audiocache.queue import tasks
from mixtapes.demo import render_cover
from mixtapes.library import scan_library
from mixtapes.models import Track
from subsonic import services
from subsonic.models import Scrobble
from tests.conftest import wait_until
from tests.factories import MixtapeFactory, MixtapeTrackFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_py_sonic_logs_in_lists_streams_fetches_a_cover_and_scrobbles(make_audio, uvicorn_server, tmp_path, settings):
    libsonic = pytest.importorskip("libsonic")
    settings.MEDIA_ROOT = tmp_path / "data" / "media"  # where the server (DATA_ROOT=tmp_path/data) looks
    for n in (1, 2):
        make_audio(f"Band/Album/0{n}.flac", duration=3, noise=True,
                   tags={"title": f"Song {n}", "artist": "Band", "album": "Album", "track": str(n)})  # fmt: skip
    scan_library()
    ann = UserFactory(username="ann")
    password = services.new_streaming_password(ann)
    key = services.create_api_key(ann, "e2e")
    mixtape = MixtapeFactory(owner=ann, title="For the road")
    for position, track in enumerate(Track.objects.order_by("path"), start=1):
        MixtapeTrackFactory(mixtape=mixtape, track=track, position=position)
    mixtape.cover.save("c.jpg", ContentFile(render_cover(tmp_path / "cover.jpg", size=200).read_bytes()))
    base = uvicorn_server(AUDIO_CACHE_MAX_WORKERS="1")
    host, port = base.rsplit(":", 1)
    try:
        sonic = libsonic.Connection(host, "ann", password, port=int(port), appName="e2e")
        assert sonic.ping() is True
        playlists = sonic.getPlaylists()["playlists"]["playlist"]
        assert [p["name"] for p in playlists] == ["For the road"]
        playlist = sonic.getPlaylist(playlists[0]["id"])["playlist"]
        assert [e["title"] for e in playlist["entry"]] == ["Song 1", "Song 2"]

        # The first song is made by the server's worker first (its play is then a hit): the
        # progressive path has tests of its own, and a loaded CI machine once served the original
        # here instead, rightly for a miss but not what is tested.
        first = Track.objects.get(pk=playlist["entry"][0]["id"])
        tasks.enqueue([first], ["low"])
        wait_until(
            lambda: CachedRendition.objects.filter(track=first, quality="low").exists(), 60, 0.1, "the rendition"
        )
        stream = sonic.stream(first.pk, maxBitRate=128)
        assert stream.headers["X-Audio-Cache"] == "hit", dict(stream.headers)
        audio = tmp_path / "stream.mp3"
        audio.write_bytes(stream.read())
        probe = json.loads(subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,bit_rate:format=duration", "-of", "json", str(audio)],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout)  # fmt: skip
        assert probe["streams"][0]["codec_name"] == "mp3" and probe["streams"][0]["bit_rate"] == "128000"
        assert abs(float(probe["format"]["duration"]) - 3) < 0.2

        # Resuming mid-track: the second song is not cached yet, so ffmpeg encodes its last 2 s live.
        rest = tmp_path / "rest.mp3"
        rest.write_bytes(sonic.stream(playlist["entry"][1]["id"], maxBitRate=128, timeOffset=1).read())
        duration = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(rest)],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout  # fmt: skip
        assert abs(float(duration) - 2) < 0.2

        cover = sonic.getCoverArt(playlist["coverArt"], size=100).read()
        assert cover[:3] == b"\xff\xd8\xff"  # a JPEG
        sonic.scrobble(playlist["entry"][1]["id"])
        assert Scrobble.objects.filter(user=ann, track__title="Song 2").count() == 1

        with urllib.request.urlopen(f"{base}/rest/getPlaylists.view?apiKey={key}&f=json&c=e2e", timeout=30) as answer:
            body = json.load(answer)["subsonic-response"]
        assert body["status"] == "ok" and body["playlists"]["playlist"][0]["name"] == "For the road"
    finally:
        connections.close_all()
