"""The Subsonic API's methods through Django's test client, in XML and JSON (subsonic/views.py):
browsing by tags with ids stable across rescans, mixtapes as playlists with the editor's
ownership rules, and media through the same play service as /stream/."""

import io
import subprocess

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from audiocache.models import CacheBatch, CachedRendition, CacheTask
from audiocache.seed_api import AudioCache
from audiocache.transcode import mp3
from mixtapes.library import scan_library
from mixtapes.models import Mixtape, Track
from subsonic import selectors
from subsonic.models import Scrobble
from subsonic.views import choose_quality
from tests.conftest import body as response_body
from tests.factories import MixtapeFactory, MixtapeTrackFactory, UserFactory

from .conftest import NS, api, api_xml, error_code

pytestmark = pytest.mark.django_db

TAGS = {
    "Björk/Homogenic/01.flac": {"title": "Hunter", "artist": "Björk", "album": "Homogenic", "track": "1"},
    "Björk/Homogenic/02.flac": {"title": "Jóga", "artist": "Björk", "album": "Homogenic", "track": "2"},
    "The Cure/Disintegration/01.flac": {"title": "Plainsong", "artist": "The Cure", "album": "Disintegration"},
    "Aphex/SAW/01.mp3": {"title": "Xtal", "artist": "Aphex Twin", "album": "Selected Ambient Works"},
}


@pytest.fixture
def tagged(make_audio):
    for name, tags in TAGS.items():
        # Noise, like real music: a FLAC of it runs near 1,000 kb/s, above every MP3 quality.
        make_audio(name, kind="mp3" if name.endswith(".mp3") else "flac", duration=1, noise=True, tags=tags)
    scan_library()
    from mixtapes.models import Track

    return {t.title: t for t in Track.objects.all()}


def test_artists_albums_and_songs_from_the_tags_in_xml_and_json(client, ann, tagged):
    artists = api(client, "getArtists", ann.auth)["artists"]
    letters = {group["name"]: [a["name"] for a in group["artist"]] for group in artists["index"]}
    assert letters == {"A": ["Aphex Twin"], "B": ["Björk"], "C": ["The Cure"]}  # "The" ignored
    bjork = next(a for g in artists["index"] for a in g["artist"] if a["name"] == "Björk")
    assert bjork["albumCount"] == 1

    artist = api(client, "getArtist", {**ann.auth, "id": bjork["id"]})["artist"]
    assert [a["name"] for a in artist["album"]] == ["Homogenic"]
    album = api(client, "getAlbum", {**ann.auth, "id": artist["album"][0]["id"]})["album"]
    assert album["songCount"] == 2 and [s["title"] for s in album["song"]] == ["Hunter", "Jóga"]
    song = album["song"][0]
    assert song["albumId"] == album["id"] and song["artistId"] == bjork["id"] and song["suffix"] == "flac"
    assert song["transcodedSuffix"] == "mp3" and song["duration"] == 1 and song["type"] == "music"
    assert api(client, "getSong", {**ann.auth, "id": song["id"]})["song"]["title"] == "Hunter"

    root = api_xml(client, "getAlbum", {**ann.auth, "id": album["id"]})
    songs = root.findall("s:album/s:song", NS)
    assert [s.get("title") for s in songs] == ["Hunter", "Jóga"] and songs[0].get("isDir") == "false"
    indexes = api_xml(client, "getIndexes", ann.auth).findall("s:indexes/s:index", NS)
    assert [i.get("name") for i in indexes] == ["A", "B", "C"]


def test_ids_are_stable_across_a_rescan(client, ann, tagged):
    before = api(client, "getArtists", ann.auth)
    scan_library(full=True)
    selectors.forget_index()  # read the rescanned library now, not within INDEX_CHECK_SECONDS
    assert api(client, "getArtists", ann.auth) == before
    assert error_code(api(client, "getArtist", {**ann.auth, "id": "ar-0000000000000000"})) == 70
    assert error_code(api(client, "getAlbum", {**ann.auth})) == 10


@pytest.mark.parametrize("kind", ["newest", "alphabeticalByName", "alphabeticalByArtist", "random"])
def test_album_lists(client, ann, tagged, kind):
    albums = api(client, "getAlbumList2", {**ann.auth, "type": kind, "size": 10})["albumList2"]["album"]
    assert len(albums) == 3
    if kind == "alphabeticalByName":
        assert [a["name"] for a in albums] == ["Disintegration", "Homogenic", "Selected Ambient Works"]


def test_recent_and_frequent_follow_the_scrobbles(client, ann, tagged):
    assert api(client, "getAlbumList2", {**ann.auth, "type": "recent"})["albumList2"] == {"album": []}
    for title in ("Plainsong", "Hunter", "Hunter"):
        assert api(client, "scrobble", {**ann.auth, "id": tagged[title].pk})["status"] == "ok"
    api(client, "scrobble", {**ann.auth, "id": tagged["Xtal"].pk, "submission": "false"})  # now playing only
    assert Scrobble.objects.filter(user=ann).count() == 3
    recent = api(client, "getAlbumList2", {**ann.auth, "type": "recent"})["albumList2"]["album"]
    assert [a["name"] for a in recent] == ["Homogenic", "Disintegration"]
    frequent = api(client, "getAlbumList2", {**ann.auth, "type": "frequent"})["albumList2"]["album"]
    assert frequent[0]["name"] == "Homogenic"
    assert error_code(api(client, "getAlbumList2", {**ann.auth, "type": "starred"})) == 0


def test_search3_and_random_songs(client, ann, tagged):
    found = api(client, "search3", {**ann.auth, "query": "homogenic jóga"})["searchResult3"]
    assert [s["title"] for s in found["song"]] == ["Jóga"]
    found = api(client, "search3", {**ann.auth, "query": "cure"})["searchResult3"]
    assert [a["name"] for a in found["artist"]] == ["The Cure"] and found["album"][0]["name"] == "Disintegration"
    songs = api(client, "getRandomSongs", {**ann.auth, "size": 3})["randomSongs"]["song"]
    assert len(songs) == 3 and len({s["id"] for s in songs}) == 3


# --- playlists --------------------------------------------------------------------------------


def test_mixtapes_are_playlists_with_the_editors_ownership_rules(client, ann, tagged):
    own = MixtapeFactory(owner=ann, title="Mine")
    MixtapeTrackFactory(mixtape=own, track=tagged["Hunter"], position=1)
    other = UserFactory(username="bob")
    private = MixtapeFactory(owner=other, title="Bob's private", is_public=False)
    shared = MixtapeFactory(owner=other, title="Bob's shared", is_public=True)
    listed = api(client, "getPlaylists", ann.auth)["playlists"]["playlist"]
    assert {(p["name"], p["owner"], p["public"]) for p in listed} == {
        ("Mine", "ann", False),
        ("Bob's shared", "bob", True),
    }
    assert error_code(api(client, "getPlaylist", {**ann.auth, "id": f"pl-{private.pk}"})) == 70
    assert {p["id"] for p in listed} == {f"pl-{own.pk}", f"pl-{shared.pk}"}
    playlist = api(client, "getPlaylist", {**ann.auth, "id": f"pl-{own.pk}"})["playlist"]
    assert [e["title"] for e in playlist["entry"]] == ["Hunter"] and playlist["songCount"] == 1
    # The bare number of earlier versions still finds it; an id of another kind finds nothing.
    assert api(client, "getPlaylist", {**ann.auth, "id": own.pk})["playlist"]["name"] == "Mine"
    assert error_code(api(client, "getPlaylist", {**ann.auth, "id": "al-1234"})) == 70
    # Someone else's shared mixtape may be played, not changed.
    assert error_code(api(client, "updatePlaylist", {**ann.auth, "playlistId": shared.pk, "name": "x"})) == 50
    assert error_code(api(client, "deletePlaylist", {**ann.auth, "id": shared.pk})) == 50
    assert error_code(api(client, "deletePlaylist", {**ann.auth, "id": private.pk})) == 70
    assert Mixtape.objects.filter(pk__in=[shared.pk, private.pk]).count() == 2


def test_create_update_and_delete_a_playlist_queue_the_precache(client, ann, tagged):
    created = api(
        client, "createPlaylist", {**ann.auth, "name": "Road", "songId": [tagged["Hunter"].pk, tagged["Xtal"].pk]}
    )
    playlist = created["playlist"]
    mixtape = Mixtape.objects.get(pk=playlist["id"].removeprefix("pl-"))
    assert mixtape.owner == ann and [e["title"] for e in playlist["entry"]] == ["Hunter", "Xtal"]
    assert CacheBatch.objects.filter(mixtape=mixtape).count() == 1  # as the editor's save does

    changes = {"playlistId": playlist["id"], "name": "Road trip", "comment": "Windows down", "public": "true",
               "songIdToAdd": [tagged["Plainsong"].pk], "songIndexToRemove": [1]}  # fmt: skip
    assert api(client, "updatePlaylist", {**ann.auth, **changes})["status"] == "ok"
    mixtape.refresh_from_db()
    assert (mixtape.title, mixtape.liner_notes, mixtape.is_public) == ("Road trip", "Windows down", True)
    assert [e.track.title for e in mixtape.entries.order_by("position")] == ["Hunter", "Plainsong"]
    assert CacheBatch.objects.filter(mixtape=mixtape).count() == 2

    bad = api(client, "updatePlaylist", {**ann.auth, "playlistId": mixtape.pk, "songIndexToRemove": 9})
    assert error_code(bad) == 0
    assert error_code(api(client, "createPlaylist", {**ann.auth, "name": "x", "songId": 999999})) == 70
    assert api(client, "deletePlaylist", {**ann.auth, "id": playlist["id"]})["status"] == "ok"
    assert not Mixtape.objects.filter(pk=mixtape.pk).exists()


def test_form_posts_work_like_query_strings(client, ann, tagged):
    response = client.post("/rest/createPlaylist.view", {**ann.auth, "name": "Posted", "songId": tagged["Hunter"].pk})
    assert response.status_code == 200 and b'status="ok"' in response.content  # no CSRF token: keys do the job
    assert Mixtape.objects.filter(title="Posted", owner=ann).exists()


def test_publishing_follows_the_sharing_setting(client, ann, tagged, settings):
    mixtape = MixtapeFactory(owner=ann, is_public=False)
    settings.MIXTAPES_PUBLIC_SHARING = "staff"
    refused = api(client, "updatePlaylist", {**ann.auth, "playlistId": mixtape.pk, "public": "true"})
    assert error_code(refused) == 50 and "only staff" in refused["error"]["message"]


# --- media ------------------------------------------------------------------------------------


def test_the_quality_for_a_bit_rate_limit(tagged, settings):
    flac, mp3 = tagged["Hunter"], tagged["Xtal"]
    assert choose_quality(flac, None, 0) == settings.AUDIO_CACHE_DEFAULT_QUALITY
    assert choose_quality(flac, None, 128) == "low"
    assert choose_quality(flac, None, 200) == "medium"
    assert choose_quality(flac, None, 320) == "high"
    assert choose_quality(flac, None, 64) == "low"  # nothing fits: the smallest
    assert choose_quality(flac, "raw", 128) == "original"
    flac.bitrate = 300_000
    assert choose_quality(flac, None, 320) == "original"  # the source is under the limit
    assert choose_quality(mp3, None, 128) == "original"  # a lossy source is never re-encoded


def test_stream_goes_through_the_play_service(client, ann, tagged):
    flac = tagged["Hunter"]
    AudioCache().transcode_file(flac, "low")
    hit = client.get("/rest/stream", {**ann.auth, "id": flac.pk, "maxBitRate": 128})
    assert hit.status_code == 200 and hit["X-Audio-Cache"] == "hit" and hit["Content-Type"] == "audio/mpeg"
    data = response_body(hit)
    ranged = client.get("/rest/stream.view", {**ann.auth, "id": flac.pk, "maxBitRate": 128}, HTTP_RANGE="bytes=100-199")
    assert ranged.status_code == 206 and response_body(ranged) == data[100:200]
    miss = client.get("/rest/stream", {**ann.auth, "id": flac.pk, "maxBitRate": 320})
    assert miss["X-Audio-Cache"] == "miss"  # no worker here: the original, while the MP3 is queued
    lossy = client.get("/rest/stream", {**ann.auth, "id": tagged["Xtal"].pk, "maxBitRate": 64})
    assert lossy["X-Audio-Cache"] == "bypass" and response_body(lossy) == tagged["Xtal"].absolute_path().read_bytes()
    download = client.get("/rest/download", {**ann.auth, "id": flac.pk})
    assert response_body(download) == flac.absolute_path().read_bytes()
    assert error_code(api(client, "stream", {**ann.auth, "id": 999999})) == 70
    assert not Scrobble.objects.exists()  # streaming is not a play; scrobble is


def test_cover_art_of_a_mixtape_resized(client, ann, tagged):
    picture = io.BytesIO()
    Image.new("RGB", (600, 400), "teal").save(picture, "JPEG")
    mixtape = MixtapeFactory(owner=ann)
    mixtape.cover.save("c.jpg", ContentFile(picture.getvalue()))
    playlist = api(client, "getPlaylist", {**ann.auth, "id": mixtape.pk})["playlist"]
    full = client.get("/rest/getCoverArt", {**ann.auth, "id": playlist["coverArt"]})
    assert full.status_code == 200 and full["Content-Type"] == "image/jpeg"
    small = client.get("/rest/getCoverArt", {**ann.auth, "id": playlist["coverArt"], "size": 150})
    assert Image.open(io.BytesIO(small.content)).size == (150, 100)
    other = MixtapeFactory(owner=UserFactory(username="bob"), is_public=False)
    other.cover.save("d.jpg", ContentFile(picture.getvalue()))
    assert error_code(api(client, "getCoverArt", {**ann.auth, "id": f"mt-{other.pk}"})) == 70


def xml_to_data(element) -> dict:
    """An XML answer read back by the JSON rules: attributes are fields, child elements named
    alike are a list (one child: compared as a list of one), text is a list item."""
    data = {key: value for key, value in element.attrib.items() if key != "xmlns"}
    for child in element:
        name = child.tag.split("}", 1)[1]
        data.setdefault(name, []).append(xml_to_data(child) if (child.attrib or len(child)) else child.text)
    return data


def json_as_xml_would_say(value):
    """A JSON answer with scalars as XML writes them and every child element as a list."""
    if isinstance(value, dict):
        return {k: [json_as_xml_would_say(i) for i in v] if isinstance(v, list) else
                ([json_as_xml_would_say(v)] if isinstance(v, dict) else json_as_xml_would_say(v))
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("ping", {}), ("getLicense", {}), ("getOpenSubsonicExtensions", {}), ("getUser", {}),
        ("getMusicFolders", {}), ("getIndexes", {}), ("getArtists", {}), ("getAlbumList2", {"type": "alphabeticalByName"}),
        ("search3", {"query": "björk"}), ("getPlaylists", {}), ("getPlaylist", {"id": "own"}), ("getSong", {"id": "hunter"}),
        ("getArtist", {"id": "bjork"}), ("getAlbum", {"id": "homogenic"}), ("getPlaylist", {"id": 999999}),
    ],
)  # fmt: skip
def test_xml_and_json_say_the_same(client, ann, tagged, method, params):
    own = MixtapeFactory(owner=ann, title="Mine", liner_notes="Notes")
    MixtapeTrackFactory(mixtape=own, track=tagged["Hunter"], position=1)
    artists = api(client, "getArtists", ann.auth)["artists"]["index"]
    bjork = next(a["id"] for g in artists for a in g["artist"] if a["name"] == "Björk")
    homogenic = api(client, "getArtist", {**ann.auth, "id": bjork})["artist"]["album"][0]["id"]
    values = {"own": own.pk, "hunter": tagged["Hunter"].pk, "bjork": bjork, "homogenic": homogenic}
    params = {k: values.get(v, v) for k, v in params.items()}
    as_json = api(client, method, {**ann.auth, **params})
    as_xml = xml_to_data(api_xml(client, method, {**ann.auth, **params}))
    assert as_xml == json_as_xml_would_say(as_json)


def probe_duration(data: bytes, tmp_path) -> float:
    path = tmp_path / "part.mp3"
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True, timeout=30).stdout  # fmt: skip
    return float(out)


def test_time_offset_on_a_hit_cuts_the_rendition_at_the_frame(client, ann, make_audio, tmp_path):
    make_audio("long.flac", duration=3, noise=True, tags={"title": "Long"})
    scan_library()
    track = Track.objects.get(path="long.flac")
    whole = AudioCache().transcode_file(track, "low").read_bytes()
    response = client.get("/rest/stream", {**ann.auth, "id": track.pk, "maxBitRate": 128, "timeOffset": 1})
    assert response.status_code == 200 and response["X-Audio-Cache"] == "hit"
    data = response_body(response)
    assert response["Content-Length"] == str(len(data)) and whole.endswith(data)
    assert mp3.parse_frame_header(data[:4]).bitrate_kbps == 128  # starts on a frame
    assert abs(probe_duration(data, tmp_path) - 2.0) < 0.1
    beyond = client.get("/rest/stream", {**ann.auth, "id": track.pk, "maxBitRate": 128, "timeOffset": 60})
    assert response_body(beyond) == b"" and beyond["Content-Length"] == "0"


def test_time_offset_on_a_miss_encodes_the_rest_without_caching_it(client, ann, make_audio, tmp_path):
    make_audio("long.flac", duration=3, noise=True, tags={"title": "Long"})
    scan_library()
    track = Track.objects.get(path="long.flac")
    response = client.get("/rest/stream", {**ann.auth, "id": track.pk, "maxBitRate": 128, "timeOffset": 2})
    assert response.status_code == 200 and response["X-Audio-Cache"] == "miss" and "Content-Length" not in response
    data = response_body(response)
    assert mp3.parse_frame_header(data[:4]).bitrate_kbps == 128
    assert abs(probe_duration(data, tmp_path) - 1.0) < 0.15
    assert not CachedRendition.objects.exists()  # the partial output is not kept
    assert CacheTask.objects.filter(track=track, quality="low").exists()  # the whole one is queued
    from audiocache.services.offset import Slot

    assert Slot._taken == 0  # the encode's slot came back


def test_time_offset_never_re_encodes_a_lossy_source(client, ann, tagged):
    lossy = tagged["Xtal"]
    response = client.get("/rest/stream", {**ann.auth, "id": lossy.pk, "timeOffset": 1})
    assert response["X-Audio-Cache"] == "bypass" and response_body(response) == lossy.absolute_path().read_bytes()
    extensions = api(client, "getOpenSubsonicExtensions", {})["openSubsonicExtensions"]
    assert {"name": "transcodeOffset", "versions": [1]} in extensions


def test_a_listener_who_leaves_stops_the_live_encode(client, ann, make_audio, settings):
    from asgiref.sync import async_to_sync

    from audiocache.services.offset import Slot

    make_audio("long.flac", duration=3, noise=True, tags={"title": "Long"})
    scan_library()
    track = Track.objects.get(path="long.flac")
    settings.AUDIO_CACHE_MAX_WORKERS = 2
    first = client.get("/rest/stream", {**ann.auth, "id": track.pk, "maxBitRate": 128, "timeOffset": 1})
    second = client.get("/rest/stream", {**ann.auth, "id": track.pk, "maxBitRate": 128, "timeOffset": 1})
    assert Slot._taken == 2
    # A third listener while both encodes run starts from the beginning instead (bounded work).
    third = client.get("/rest/stream", {**ann.auth, "id": track.pk, "maxBitRate": 128, "timeOffset": 1})
    assert "Content-Length" in third
    response_body(third)

    async def one_chunk_then_leave(response):
        chunks = response.streaming_content
        await chunks.__anext__()
        await chunks.aclose()

    for response in (first, second):
        async_to_sync(one_chunk_then_leave)(response)
    assert Slot._taken == 0
