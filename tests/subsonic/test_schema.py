"""Every method of the Subsonic API through Django's test client, in XML and in JSON, its answer
checked against the Subsonic REST API XSD 1.16.1 (tests/subsonic/schema.py says how), as issue
#18 asks. Binary methods (stream, download, getCoverArt) answer audio or images: only their
error envelopes are checked. A method registered without a case here fails
``test_every_registered_method_is_checked``."""

import io
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from mixtapes import services as mixtape_services
from mixtapes.library import scan_library
from mixtapes.models import ShareLink, Track
from subsonic import ids, selectors
from subsonic.models import Scrobble
from subsonic.views import _methods
from tests.factories import MixtapeFactory, MixtapeTrackFactory, UserFactory

from .schema import NAMESPACE, ROOT, assert_valid_json, assert_valid_xml

pytestmark = pytest.mark.django_db

BINARY = {"stream", "download", "getCoverArt"}  # audio or an image on success: errors only
UNKNOWN_METHOD = "noSuchMethod"


@dataclass(frozen=True)
class Case:
    """One call: ``params`` name things of the ``world`` fixture as ``"{song}"``, ``"{album}"``...
    ``code`` is the error code the answer must have (None: ``status="ok"``)."""

    method: str
    params: dict = field(default_factory=dict)
    code: int | None = None
    auth: bool = True
    label: str = ""

    @property
    def id(self) -> str:
        return self.method + (f"-{self.label}" if self.label else "") + ("" if self.code is None else f"-{self.code}")


LIST_TYPES = ("random", "newest", "alphabeticalByName", "alphabeticalByArtist", "recent", "frequent")
CASES = [
    # system
    Case("ping", auth=False, label="anonymous"),
    Case("ping"),
    Case("getLicense"),
    Case("getOpenSubsonicExtensions", auth=False),
    Case("getUser", {"username": "ann"}),
    # browsing
    Case("getMusicFolders"),
    Case("getIndexes"),
    Case("getArtists"),
    Case("getArtist", {"id": "{artist}"}),
    Case("getAlbum", {"id": "{album}"}),
    Case("getSong", {"id": "{song}"}),
    *(Case("getAlbumList2", {"type": kind, "size": 5}, label=kind) for kind in LIST_TYPES),
    Case("getRandomSongs", {"size": 3}),
    Case("search3", {"query": "hunter"}),
    Case("search3", {"query": ""}, label="everything"),
    # playlists (mixtapes)
    Case("getPlaylists"),
    Case("getPlaylist", {"id": "{playlist}"}),
    Case("createPlaylist", {"name": "Road", "songId": ["{song}", "{other_song}"]}),
    Case("createPlaylist", {"playlistId": "{playlist}", "songId": ["{other_song}"]}, label="replace"),
    Case(
        "updatePlaylist",
        {
            "playlistId": "{playlist}",
            "name": "Night",
            "comment": "Late",
            "public": "true",
            "songIdToAdd": ["{other_song}"],
            "songIndexToRemove": [0],
        },
    ),
    Case("deletePlaylist", {"id": "{playlist}"}),
    # shares (share links of mixtapes)
    Case("getShares"),
    Case(
        "createShare",
        {"id": "{playlist}", "description": "For Sam", "expires": "{next_week_ms}", "downloadable": "true"},
    ),
    Case("createShare", {"id": ["{song}", "{album}"], "description": "Two moods"}, label="songs"),
    Case("updateShare", {"id": "{share}", "description": "Book club", "expires": "{next_week_ms}"}),
    Case("deleteShare", {"id": "{share}"}),
    # media
    Case("scrobble", {"id": "{song}"}),
    Case("scrobble", {"id": "{song}", "submission": "false"}, label="now-playing"),
    # errors: binary methods answer envelopes only when they fail
    Case("stream", code=10),
    Case("stream", {"id": 999999}, code=70),
    Case("download", code=10),
    Case("download", {"id": 999999}, code=70),
    Case("getCoverArt", code=10),
    Case("getCoverArt", {"id": "al-0000000000000000"}, code=70),
    # errors: a missing parameter, wrong or missing credentials, things not found, bad values
    Case("getAlbum", code=10),
    Case("getUser", {"u": "ann", "t": "0" * 32, "s": "abc"}, code=40, auth=False, label="wrong-token"),
    Case("getPlaylists", code=10, auth=False, label="no-credentials"),
    Case("getArtist", {"id": "ar-0000000000000000"}, code=70),
    Case("getPlaylist", {"id": 999999}, code=70),
    Case("getSong", {"id": "x"}, code=0, label="not-a-number"),
    Case("getAlbumList2", {"type": "starred"}, code=0, label="unsupported"),
    Case("deleteShare", {"id": 999999}, code=70),
    Case(UNKNOWN_METHOD, code=70),
]


@pytest.fixture
def world(ann, make_audio, settings, tmp_path):
    """A small real library (four 1 s files: two albums, one file without tags), a mixtape of
    ann's with a cover and a visited share link, someone else's shared mixtape, and scrobbles:
    ``{name: value}`` for the cases' parameters."""
    tags = {"artist": "Björk", "album": "Homogenic"}
    make_audio("Björk/Homogenic/01.flac", duration=1, tags={**tags, "title": "Hunter", "track": "1"})
    make_audio("Björk/Homogenic/02.flac", duration=1, tags={**tags, "title": "Jóga", "track": "2"})
    make_audio("Cure/Plainsong.mp3", kind="mp3", duration=1, tags={"title": "Plainsong", "artist": "The Cure"})
    make_audio("loose.wav", kind="wav", duration=1)
    scan_library()
    tracks = {t.title: t for t in Track.objects.all()}
    settings.MEDIA_ROOT = tmp_path / "media"
    picture = io.BytesIO()
    Image.new("RGB", (40, 40), "teal").save(picture, "JPEG")
    mixtape = MixtapeFactory(owner=ann, title="Night drive", liner_notes="Windows down")
    mixtape.cover.save("night.jpg", ContentFile(picture.getvalue()))
    for position, title in enumerate(("Plainsong", "Hunter"), start=1):
        MixtapeTrackFactory(mixtape=mixtape, track=tracks[title], position=position)
    shared = MixtapeFactory(owner=UserFactory(username="bob"), title="Bob's", is_public=True)
    MixtapeTrackFactory(mixtape=shared, track=tracks["Jóga"], position=1)
    link = mixtape_services.create_link(mixtape, label="For Sam", expires_in=timedelta(days=7))
    ShareLink.objects.filter(pk=link.pk).update(visits=2, last_visited_at=timezone.now())
    for title in ("Hunter", "Plainsong", "Hunter"):
        Scrobble.objects.create(user=ann, track=tracks[title], played_at=timezone.now(), client="tests")
    return {
        "song": str(tracks["Hunter"].pk),
        "other_song": str(tracks["Plainsong"].pk),
        "album": ids.album_id("Björk", "Homogenic"),
        "artist": ids.artist_id("Björk"),
        "playlist": selectors.playlist(mixtape)["id"],
        "share": str(link.pk),
        "next_week_ms": str(int((timezone.now() + timedelta(days=7)).timestamp() * 1000)),
    }


def _filled(value, world):
    if isinstance(value, list):
        return [_filled(v, world) for v in value]
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return world[value[1:-1]]
    return value


def call(client, ann, world, case: Case, form: str):
    params = {key: _filled(value, world) for key, value in case.params.items()}
    response = client.get(f"/rest/{case.method}", {**(ann.auth if case.auth else {}), **params, "f": form})
    assert response.status_code == 200
    kind = "text/xml" if form == "xml" else "application/json"
    assert response["Content-Type"].startswith(kind), response["Content-Type"]
    return response


def status_and_code(response, form: str) -> tuple[str, int | None]:
    if form == "json":
        envelope = json.loads(response.content)[ROOT]
        return envelope["status"], envelope.get("error", {}).get("code")
    root = ElementTree.fromstring(response.content)  # noqa: S314 - our own server's answer
    error = root.find(f"{{{NAMESPACE}}}error")
    return root.get("status"), None if error is None else int(error.get("code"))


def assert_valid(response, form: str) -> None:
    (assert_valid_xml if form == "xml" else assert_valid_json)(response)


# --- the calls ----------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["xml", "json"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_every_answer_matches_the_schema(client, ann, world, case, form):
    response = call(client, ann, world, case, form)
    status, code = status_and_code(response, form)
    assert (status, code) == (("ok", None) if case.code is None else ("failed", case.code))
    assert_valid(response, form)


def test_every_registered_method_is_checked():
    """A method added to subsonic/views.py without a case above fails here: an envelope method
    needs a successful case, a binary one an error case."""
    succeeding = {case.method for case in CASES if case.code is None}
    failing = {case.method for case in CASES if case.code is not None}
    assert sorted(set(_methods) - BINARY - succeeding) == []
    assert sorted(BINARY - failing) == [] and set(_methods) >= BINARY
    assert sorted({case.method for case in CASES} - set(_methods) - {UNKNOWN_METHOD}) == []


# --- the validators can fail ---------------------------------------------------------------------


class Answer:
    """A stand-in response: a body as the app would send it."""

    def __init__(self, body):
        self.content = body.encode() if isinstance(body, str) else json.dumps(body).encode()


def xml_answer(payload: str, root: str = 'type="mixtapes" serverVersion="1.0" openSubsonic="true"') -> Answer:
    return Answer(f'<?xml version="1.0" encoding="UTF-8"?>\n<subsonic-response xmlns="{NAMESPACE}" status="ok" '
                  f'version="1.16.1" {root}>{payload}</subsonic-response>')  # fmt: skip


def json_answer(**payload) -> Answer:
    envelope = {"status": "ok", "version": "1.16.1", "type": "mixtapes", "serverVersion": "1.0", "openSubsonic": True}
    return Answer({ROOT: {**envelope, **payload}})


SONG_XML = 'id="1" isDir="false" title="Hunter" duration="3" created="2024-05-01T12:00:00+00:00"'
SONG = {"id": "1", "isDir": False, "title": "Hunter", "duration": 3, "created": "2024-05-01T12:00:00+00:00"}
EXTENSIONS_XML = '<openSubsonicExtensions name="formPost"><versions>1</versions></openSubsonicExtensions>'


def test_well_formed_answers_pass():
    assert_valid_xml(xml_answer(f"<song {SONG_XML}/>"))
    assert_valid_xml(
        xml_answer(f"<randomSongs><song {SONG_XML}/><song {SONG_XML.replace('1', '2', 1)}/></randomSongs>")
    )
    assert_valid_xml(xml_answer(EXTENSIONS_XML))
    assert_valid_xml(xml_answer('<user username="ann" scrobblingEnabled="true" adminRole="false" settingsRole="false" '
                                'downloadRole="true" uploadRole="false" playlistRole="true" coverArtRole="true" '
                                'commentRole="false" podcastRole="false" streamRole="true" jukeboxRole="false" '
                                'shareRole="true" videoConversionRole="false"><folder>1</folder></user>'))  # fmt: skip
    assert_valid_json(json_answer(song=SONG))
    assert_valid_json(json_answer(randomSongs={"song": [SONG, {**SONG, "id": "2"}]}))
    assert_valid_json(json_answer(randomSongs={"song": []}))
    assert_valid_json(json_answer(openSubsonicExtensions=[{"name": "formPost", "versions": [1]}]))
    assert_valid_json(json_answer(error={"code": 70, "message": "Song not found"}))


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        (xml_answer(f'<song {SONG_XML} loudness="-9"/>'), "'loudness' attribute not allowed"),  # unknown attribute
        (xml_answer(f"<song {SONG_XML.replace('3', 'three')}/>"), "duration='three'"),  # not an xs:int
        (xml_answer(f"<song {SONG_XML.replace('2024-05-01T', 'May 1 ')}/>"), "created='May 1"),  # not an xs:dateTime
        (
            xml_answer('<song id="1" isDir="false"/>'),
            "missing required attribute 'title'",
        ),  # a required attribute missing
        (
            xml_answer(f'<license valid="true"/><song {SONG_XML}/>'),
            f"Unexpected child with tag '{{{NAMESPACE}}}song'",
        ),  # two payloads
        (
            xml_answer(f"<randomSongs><track {SONG_XML}/></randomSongs>"),
            f"Unexpected child with tag '{{{NAMESPACE}}}track'",
        ),  # unknown element
        (xml_answer("", root='type="mixtapes" openSubsonic="yes"'), "openSubsonic='yes'"),
        (
            xml_answer('<openSubsonicExtensions name="x"><versions>one</versions></openSubsonicExtensions>'),
            "not a versions number",
        ),
    ],
    ids=[
        "unknown-attribute",
        "not-an-int",
        "not-a-datetime",
        "required-missing",
        "two-payloads",
        "unknown-element",
        "open-subsonic-flag",
        "extension-versions",
    ],
)
def test_the_xml_validator_fails_on_a_bad_answer(answer, complaint):
    with pytest.raises(AssertionError, match=re.escape(complaint)):
        assert_valid_xml(answer)


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        (json_answer(song={**SONG, "loudness": -9}), "Child has no attribute or element loudness"),
        (json_answer(song={**SONG, "duration": "3"}), "song.duration: '3' is a JSON str; xs:int needs an integer"),
        (json_answer(song={**SONG, "track": True}), "song.track: True is a JSON bool"),  # a bool is no int
        (json_answer(song={**SONG, "isDir": "false"}), "song.isDir: 'false' is a JSON str"),
        (json_answer(song={**SONG, "created": "yesterday"}), "song.created: 'yesterday' is not a valid xs:dateTime"),
        (json_answer(song={**SONG, "duration": 2**40}), "is not a valid xs:int"),  # out of xs:int's range
        (json_answer(song={k: v for k, v in SONG.items() if k != "isDir"}), "required attribute isDir is missing"),
        (
            json_answer(randomSongs={"song": SONG}),
            "randomSongs.song: a JSON dict where song (maxOccurs>1) needs an array",
        ),
        (json_answer(song=[SONG]), "song: an array where song (maxOccurs=1) needs one value"),
        (json_answer(randomSongs=[{"song": [SONG]}]), "randomSongs: an array"),
        (json_answer(song=SONG, license={"valid": True}), "allows only one of them"),
        (json_answer(status="fine"), "status: 'fine' is not a valid"),
        (json_answer(openSubsonic="true"), "openSubsonic: not a JSON bool"),
        (json_answer(openSubsonicExtensions={"name": "formPost", "versions": [1]}), "openSubsonicExtensions: not ["),
        (json_answer(openSubsonicExtensions=[{"name": "formPost", "versions": ["1"]}]), "openSubsonicExtensions"),
        (json_answer(user={"username": "ann", "folder": ["1"]}), "user.folder[0]: '1' is a JSON str"),
    ],
    ids=[
        "unknown-attribute",
        "string-for-int",
        "bool-for-int",
        "string-for-boolean",
        "not-a-datetime",
        "int-out-of-range",
        "required-missing",
        "object-for-array",
        "array-for-object",
        "array-for-element",
        "two-payloads",
        "enumeration",
        "open-subsonic-flag",
        "extensions-object",
        "extension-versions",
        "simple-element",
    ],
)
def test_the_json_validator_fails_on_a_bad_answer(answer, complaint):
    with pytest.raises(AssertionError, match=re.escape(complaint)):
        assert_valid_json(answer)


@pytest.mark.parametrize("form", ["xml", "json"])
def test_opensubsonic_child_fields_are_allowed_and_nothing_else(form):
    """OpenSubsonic's Child fields pass (with their types checked); another unknown one fails."""
    if form == "xml":
        assert_valid(xml_answer(f'<song {SONG_XML} samplingRate="44100" mediaType="song"/>'), form)
        answer = xml_answer(f'<song {SONG_XML} samplingRate="44100" loudness="-9"/>')
    else:
        assert_valid(json_answer(song={**SONG, "samplingRate": 44100, "mediaType": "song"}), form)
        with pytest.raises(AssertionError, match="samplingRate"):
            assert_valid(json_answer(song={**SONG, "samplingRate": "44100"}), form)
        answer = json_answer(song={**SONG, "samplingRate": 44100, "loudness": -9})
    with pytest.raises(AssertionError, match="loudness"):
        assert_valid(answer, form)
