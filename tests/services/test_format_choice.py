"""Which format a listener gets (audiocache/services/formats.py), from every way in: /stream/'s
``format``, the Accept header, the account page's preference, and the Subsonic API."""

import pytest

from audiocache.models import StreamingPreference
from audiocache.qualities import Variant
from audiocache.seed_api import AudioCache
from audiocache.services import UnknownFormat, choose_format, set_streaming_format
from audiocache.services.formats import format_from_accept
from mixtapes.library import scan_library
from mixtapes.models import MixtapeTrack, Track
from subsonic import services as subsonic_services
from subsonic.views import choose_quality
from tests.factories import MixtapeTrackFactory, UserFactory
from tests.subsonic.conftest import token_params

pytestmark = pytest.mark.django_db

OPUS = 'audio/ogg; codecs="opus"'


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("", "mp3"),
        ("*/*", "mp3"),  # a browser's <audio>: no wish, MP3 plays everywhere
        ("audio/ogg", "mp3"),  # may mean Vorbis only: not taken for Opus
        (OPUS, "opus"),
        ("audio/opus;q=0.5, audio/mp4;q=0.9", "aac"),
        ("audio/mp4, audio/opus", "opus"),  # equal wishes: the better codec
        ("audio/mpeg;q=1, audio/opus;q=0", "mp3"),  # q=0 means "not this"
        ("audio/opus;q=nonsense", "mp3"),
        ("audio/aac;q=0.2", "aac"),
        ("text/html, " * 500 + "audio/opus", "mp3"),  # only the first 1,000 characters are read
    ],
)
def test_the_accept_header_names_a_format(accept, chosen):
    assert format_from_accept(accept) == chosen


def test_a_named_format_wins_then_the_preference_then_accept(settings):
    user = UserFactory()
    assert choose_format("aac", user=user, accept=OPUS) == "aac"
    assert choose_format(None, user=user, accept=OPUS) == "opus"
    set_streaming_format(user, "aac")
    assert choose_format(None, user=user, accept=OPUS) == "aac"
    assert choose_format("mp3", user=user) == "mp3"
    set_streaming_format(user, "auto")
    assert choose_format("", user=user, accept="audio/mp4") == "aac"
    settings.AUDIO_CACHE_FORMATS = ["mp3", "opus"]
    assert choose_format("aac", user=user) == "mp3"  # turned off: the fallback, never a guess
    set_streaming_format(user, "aac")
    assert choose_format(None, user=user, accept=OPUS) == "mp3"  # the account's choice, turned off
    with pytest.raises(UnknownFormat, match="use one of mp3, opus, aac"):
        choose_format("flac")
    with pytest.raises(UnknownFormat):
        set_streaming_format(user, "wav")


@pytest.fixture
def flac(make_audio):
    make_audio("a.flac", duration=1)
    scan_library()
    track = Track.objects.get()
    MixtapeTrackFactory(track=track, mixtape__is_public=True)
    return track


def test_stream_parameters_and_headers_choose_the_rendition(client, flac):
    AudioCache().transcode_file(flac, "opus:low")
    AudioCache().transcode_file(flac, "low")
    url = f"/stream/{flac.pk}/"
    named = client.get(url, {"quality": "low", "format": "opus"})
    assert (named["X-Audio-Cache"], named["Content-Type"]) == ("hit", "audio/ogg; codecs=opus")
    assert "Accept" not in named.get("Vary", "")  # named: the URL says it all
    by_accept = client.get(url, {"quality": "low"}, HTTP_ACCEPT=OPUS)
    assert by_accept["Content-Type"] == "audio/ogg; codecs=opus" and "Accept" in by_accept["Vary"]
    assert client.get(url, {"quality": "low"})["Content-Type"] == "audio/mpeg"
    assert client.get(url, {"quality": "low", "format": "original"})["Content-Type"] == "audio/flac"
    refused = client.get(url, {"quality": "low", "format": "wma"})
    assert refused.status_code == 400 and b"use one of mp3, opus, aac" in refused.content

    user = UserFactory()
    StreamingPreference.objects.create(user=user, format="opus")
    client.force_login(user)
    assert client.get(url, {"quality": "low"})["Content-Type"] == "audio/ogg; codecs=opus"  # the preference
    assert client.get(url, {"quality": "low", "format": "mp3"})["Content-Type"] == "audio/mpeg"


def test_subsonic_format_and_max_bit_rate_map_onto_the_same_choice(client, flac):
    user = UserFactory(username="ann")
    auth = token_params("ann", subsonic_services.new_streaming_password(user))
    AudioCache().transcode_file(flac, "opus:low")
    flac.bitrate = 900_000
    assert choose_quality(flac, "opus", 100, "opus") == "low"  # Opus's 96k fits under 100
    assert choose_quality(flac, "opus", 130, "opus") == "medium"  # 128k
    assert choose_quality(flac, "mp3", 130, "mp3") == "low"  # MP3's 128k
    assert choose_quality(flac, "raw", 130, "opus") == "original"
    response = client.get("/rest/stream", {**auth, "id": flac.pk, "format": "opus", "maxBitRate": 96})
    assert (response["X-Audio-Cache"], response["Content-Type"]) == ("hit", "audio/ogg; codecs=opus")
    set_streaming_format(user, "opus")  # an app that names no format gets the account's choice
    response = client.get("/rest/stream", {**auth, "id": flac.pk, "maxBitRate": 96})
    assert response["Content-Type"] == "audio/ogg; codecs=opus"
    raw = client.get("/rest/stream", {**auth, "id": flac.pk, "format": "raw"})
    assert raw["Content-Type"] == "audio/flac"


@pytest.mark.parametrize(("asked", "served"), [("ogg", "audio/ogg; codecs=opus"), ("m4a", "audio/mp4"),
                                               ("mp4", "audio/mp4"), ("wma", "audio/mpeg")])  # fmt: skip
def test_subsonic_format_aliases(client, flac, asked, served):
    # Apps name formats their own way: Ogg means Opus here, M4A and MP4 mean AAC; one we do
    # not make gets MP3 (a stream that plays, never an error in the middle of a queue).
    user = UserFactory(username="ann")
    auth = token_params("ann", subsonic_services.new_streaming_password(user))
    for variant in ("opus:medium", "aac:medium", "medium"):
        AudioCache().transcode_file(flac, variant)
    response = client.get("/rest/stream", {**auth, "id": flac.pk, "format": asked})  # the default quality
    assert (response.status_code, response["Content-Type"]) == (200, served)


def test_the_share_page_hands_the_account_format_to_the_player(client, flac, settings):
    slug = MixtapeTrack.objects.get(track=flac).mixtape.slug
    user = UserFactory()
    client.force_login(user)
    assert b"data-account-format" not in client.get(f"/share/{slug}/").content  # automatic
    set_streaming_format(user, "aac")
    assert b'data-account-format="aac"' in client.get(f"/share/{slug}/").content
    settings.AUDIO_CACHE_FORMATS = ["mp3", "opus"]  # turned off since: the player decides
    assert b"data-account-format" not in client.get(f"/share/{slug}/").content


def test_the_account_page_saves_the_streaming_format(client):
    assert client.get("/account/").status_code == 302  # log in first
    user = UserFactory()
    client.force_login(user)
    page = client.get("/account/")
    assert page.status_code == 200 and b"Streaming format" in page.content
    assert client.post("/account/", {"format": "aac"}).status_code == 302
    assert StreamingPreference.objects.get(user=user).format == "aac"
    assert client.post("/account/", {"format": "wma"}).status_code == 200  # the form says what is wrong
    assert StreamingPreference.objects.get(user=user).format == "aac"


def test_variants_parse_and_print():
    assert Variant.parse("medium") == Variant("mp3", "medium") and str(Variant("mp3", "medium")) == "medium"
    assert str(Variant.parse(" OPUS:Low ")) == "opus:low" and Variant.parse("opus:low").label == "Opus 96k"
    for bad in ("ultra", "flac:high", "opus:", ":low"):
        with pytest.raises(ValueError):
            Variant.parse(bad)
