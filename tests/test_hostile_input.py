"""Hostile input end to end: a generated corpus of broken audio and odd names through the scan, the
transcoding workers and the stream view; fuzzed query strings and editor forms; path traversal in
every URL that takes an id or a slug.

Each case must end in a clear 4xx or a failed task with a message: never a 500, never a hang, never a
file read or written outside MUSIC_ROOT and the cache folder, and nothing under MUSIC_ROOT changed.

Unit-level cases live next to their code and are not repeated: damaged sources and odd names in the
transcoder (tests/transcode/test_ffmpeg.py), odd names, loops and reasons in the scan
(tests/mixtapes/test_scan.py), the Range header fuzz (tests/delivery/test_ranges.py), hostile rows
and symlinks in the stream view (tests/delivery/test_stream_view.py, tests/services/test_play.py).
"""

import hashlib
import html
import io
import os
import struct
from urllib.parse import quote

import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audiocache.models import CachedRendition, CacheTask
from audiocache.queue import tasks
from audiocache.queue.pool import WorkerPool
from audiocache.seed_api import AudioCache
from config.numbers import MAX_ID, whole_number
from mixtapes.models import Mixtape, Track
from tests.conftest import body
from tests.factories import CacheBatchFactory, MixtapeFactory, MixtapeTrackFactory, TrackFactory, UserFactory

Status = CacheTask.Status

# name -> what must become of it: "plays" (a rendition is made), "fails" (a failed task with a message)
# or "either" (ffmpeg may resync past the damage and decode the whole file; if it does not, the task
# fails with a message)
ODD_NAMES = {
    "new\nline.flac": "plays",
    "..dots-first.flac": "plays",
    "dots..inside.flac": "plays",
    "folder../x.flac": "plays",
    "-leading-dash.flac": "plays",
    "-i.flac": "plays",
    "concat:a.flac|b.flac": "plays",
    "http:evil.flac": "plays",
    "file:x.flac": "plays",
    "sub/concat:..|..flac": "plays",
}


def flac_blocks(data: bytes) -> int:
    """Offset of the STREAMINFO block's body in a FLAC file (after 'fLaC' and the block header)."""
    assert data[:4] == b"fLaC"
    return 8


def build_corpus(make_audio, music_root) -> dict[str, str]:
    """Write the hostile corpus under MUSIC_ROOT; returns relative path -> "plays" | "fails"."""
    expected = {}
    make_audio("good.flac", duration=2)
    expected["good.flac"] = "plays"

    full = make_audio("truncated.flac", duration=4, noise=True)
    full.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 5])
    expected["truncated.flac"] = "fails"

    data = make_audio("bad-magic.flac", duration=1).read_bytes()
    (music_root / "bad-magic.flac").write_bytes(b"fLaX" + data[4:])
    expected["bad-magic.flac"] = "either"  # ffmpeg finds the FLAC frames by their sync codes

    at = flac_blocks(data)
    (music_root / "bad-streaminfo.flac").write_bytes(data[:at] + os.urandom(34) + data[at + 34 :])
    expected["bad-streaminfo.flac"] = "either"

    (music_root / "header-only.flac").write_bytes(data[:42])
    expected["header-only.flac"] = "fails"

    (music_root / "zero-bytes.flac").write_bytes(b"")
    (music_root / "zeros.flac").write_bytes(bytes(65536))
    (music_root / "random.flac").write_bytes(os.urandom(65536))
    (music_root / "text.flac").write_text("This is a text file, not audio.\n" * 50)
    expected.update(dict.fromkeys(["zero-bytes.flac", "zeros.flac", "random.flac", "text.flac"], "fails"))

    # Huge declared sizes: a FLAC claiming 2^36-1 samples (18 days) holding 1 s, and a WAV whose
    # RIFF and data chunks claim 4 GiB holding 1 s.
    streaminfo = bytearray(data[at : at + 34])
    streaminfo[13] = (streaminfo[13] & 0xF0) | 0x0F  # top 4 bits of the 36-bit sample count
    streaminfo[14:18] = b"\xff\xff\xff\xff"
    (music_root / "huge-samples.flac").write_bytes(data[:at] + bytes(streaminfo) + data[at + 34 :])
    expected["huge-samples.flac"] = "fails"  # decodes 1 s of a declared 18 days: truncated
    wav = bytearray(make_audio("huge-declared.wav", kind="wav", duration=1).read_bytes())
    wav[4:8] = struct.pack("<I", 0xFFFFFFFF)
    data_chunk = wav.index(b"data")
    wav[data_chunk + 4 : data_chunk + 8] = struct.pack("<I", 0xFFFFFFF0)
    (music_root / "huge-declared.wav").write_bytes(bytes(wav))
    expected["huge-declared.wav"] = "plays"  # ffmpeg reads what is there; the probe sees 1 s too

    # 1 MB of tag text with control characters (written with mutagen: too long for a command line).
    from mutagen.flac import FLAC

    tagged = make_audio("huge-tags.flac", duration=1)
    tags = FLAC(tagged)
    tags["title"] = "\x01\x02\x1b[31m\x7f\ttitle\r\n" * 8 + "x" * 1_000_000
    tags["comment"] = "".join(chr(c) for c in range(32)) * 30_000
    tags.save()
    expected["huge-tags.flac"] = "plays"

    for name, outcome in ODD_NAMES.items():
        make_audio(name, duration=1)
        expected[name] = outcome

    # Symlink loops: a folder that contains itself and two files pointing at each other.
    os.symlink(".", music_root / "loop-dir")
    os.symlink("loop-b.flac", music_root / "loop-a.flac")
    os.symlink("loop-a.flac", music_root / "loop-b.flac")
    return expected


def tree_state(root) -> dict:
    """Every entry under ``root`` (symlinks not followed): type, size, mtime, and a hash of regular files."""
    state = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            digest = None
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            state[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return state


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(240)
def test_hostile_corpus_through_scan_workers_and_stream_view(make_audio, music_root, settings, tmp_path, client):
    expected = build_corpus(make_audio, music_root)
    before = tree_state(music_root)

    out = io.StringIO()
    call_command("scanlibrary", "-v", "2", stdout=out, stderr=out)  # returns: never raises on bad files
    report = out.getvalue()
    assert "Traceback" not in report
    scanned = set(Track.objects.values_list("path", flat=True))
    assert {name for name, outcome in expected.items() if outcome == "plays"} <= scanned
    assert "loop-a.flac" not in scanned

    # Files the scan refused get a row all the same, as if they had broken after a good scan: the
    # workers and the stream view must cope with them too.
    for name in [*expected, "loop-a.flac"]:
        if name not in scanned:
            path = music_root / name
            st = path.lstat()
            TrackFactory(path=name, duration=4.0, file_size=st.st_size, file_mtime_ns=st.st_mtime_ns)
    tracks = {t.path: t for t in Track.objects.all()}

    tasks.enqueue(tracks.values(), ["low"])
    pool = WorkerPool(2, burst=True).start()
    assert pool.join(180), "the workers hung on the corpus"

    for task in CacheTask.objects.select_related("track"):
        name = task.track.path
        if name == "loop-a.flac":
            assert (task.status, task.error) == (
                Status.FAILED,
                "source file cannot be read: Too many levels of symbolic links",
            )
        elif expected[name] == "plays":
            assert task.status == Status.DONE, (name, task.error)
        elif expected[name] == "either" and task.status == Status.DONE:
            assert AudioCache().is_cached(task.track, "low")
        else:
            assert task.status == Status.FAILED, (name, task.status)
            assert task.error.strip() and "internal error" not in task.error and "Traceback" not in task.error
    renditions = {r.track.path: r for r in CachedRendition.objects.select_related("track")}
    plays = {name for name, outcome in expected.items() if outcome == "plays"}
    assert plays <= set(renditions) <= plays | {name for name, outcome in expected.items() if outcome == "either"}

    # Every file plays as what it is: its rendition if one was made, else the bytes on disk; a
    # symlink loop is a 404 (like a missing file); an empty file has no byte for a range (416).
    client.force_login(UserFactory())
    for name, track in tracks.items():
        for quality in ("low", "original"):
            if name == "loop-a.flac":
                served, state = None, None
            elif quality == "low" and name in renditions:
                served, state = settings.AUDIO_CACHE_DIR / renditions[name].file_name, "hit"
            else:
                served, state = music_root / name, "miss" if quality == "low" else "bypass"
            data = served.read_bytes() if served else b""
            for headers, part in [
                ({}, data),
                ({"HTTP_RANGE": "bytes=0-99"}, data[:100]),
                ({"HTTP_RANGE": "bytes=-1"}, data[-1:]),
            ]:
                response = client.get(f"/stream/{track.pk}/", {"quality": quality}, **headers)
                if served is None:
                    expected = 404
                elif headers:
                    expected = 206 if data else 416
                else:
                    expected = 200
                assert response.status_code == expected, (name, quality, headers, response.status_code)
                if expected in (200, 206):
                    assert response["X-Audio-Cache"] == state, (name, quality, headers)
                    assert body(response) == part, (name, quality, headers)

    # Nothing under MUSIC_ROOT changed; the cache holds exactly the renditions; nothing else was written.
    assert tree_state(music_root) == before
    assert sorted(p.name for p in settings.AUDIO_CACHE_DIR.iterdir()) == sorted(
        r.file_name for r in renditions.values()
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "music"]


@pytest.mark.django_db
@pytest.mark.parametrize("quality", ["original", "low"])
def test_a_track_whose_file_is_a_symlink_loop_is_a_404_not_a_500(client, music_root, quality):
    """Found by the corpus test: open() failing with ELOOP escaped the stream view as a 500."""
    os.symlink("loop.flac", music_root / "loop.flac")
    track = TrackFactory(path="loop.flac")
    client.force_login(UserFactory())
    response = client.get(f"/stream/{track.pk}/", {"quality": quality})
    assert response.status_code == 404
    track.refresh_from_db()
    assert track.missing_since is not None


# --- Fuzzed query strings and forms -------------------------------------------------------------

FUZZ = hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
hostile_text = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["", "\x00", "high\x00", "../../etc/passwd", "%00", "-1", "9" * 40, "original ", "HIGH", "∞"]),
)


@pytest.fixture
def logged_in(client, db):
    user = UserFactory(username="fuzzer")
    client.force_login(user)
    return user


@pytest.mark.django_db
@FUZZ
@given(quality=hostile_text, extra=st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=3))
def test_fuzzed_stream_query_strings(client, logged_in, file_track, quality, extra):
    track = file_track() if not Track.objects.exists() else Track.objects.get()
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in {**extra, "quality": quality}.items())
    response = client.get(f"/stream/{track.pk}/?{query}")
    if quality in ("high", "medium", "low", "original"):
        assert response.status_code == 200, quality
    else:
        assert response.status_code == 400, (quality, response.status_code)
        assert response.content.decode().startswith("Unknown quality")


@pytest.mark.django_db
@FUZZ
@given(q=hostile_text, page=hostile_text)
def test_fuzzed_library_search(client, logged_in, q, page):
    if not Track.objects.exists():
        TrackFactory.create_batch(3, title="Fuzz")
    response = client.get("/library/search/", {"q": q, "page": page})
    assert response.status_code == 200, (q, page)
    data = response.json()
    # Anything but a page number (ASCII digits, 1 to 99999) is the first page.
    number = int(page) if page.isascii() and page.isdigit() and len(page) <= 5 and int(page) > 0 else 1
    assert (data["query"], data["page"], data["has_previous"]) == (q, number, number > 1), (q, page)
    titles = [r["title"] for r in data["results"]]
    assert (titles == []) if number > 1 else (set(titles) <= {"Fuzz"}), (q, page, titles)


track_ids = st.lists(st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str), hostile_text), max_size=6)


@pytest.mark.django_db
@FUZZ
@given(title=hostile_text, notes=hostile_text, is_public=hostile_text, tracks=track_ids)
def test_fuzzed_editor_form(client, logged_in, title, notes, is_public, tracks):
    data = {"title": title, "liner_notes": notes, "is_public": is_public, "track": tracks}
    before = Mixtape.objects.count()
    response = client.post("/editor/new/", data)
    # What the form must refuse, and with what words (there are no tracks: every id is unknown).
    errors = []
    if not title.strip():
        errors.append("Give the mixtape a title.")
    elif len(title.strip()) > 200:
        errors.append(f"Ensure this value has at most 200 characters (it has {len(title.strip())}).")
    if "\x00" in title.strip() or "\x00" in notes.strip():
        errors.append("Null characters are not allowed.")
    if any(whole_number(value, MAX_ID) is None for value in tracks):
        errors.append("The track list was malformed; reload the page and try again.")
    elif tracks:
        errors.append(f"{len(tracks)} track(s) are no longer in the library; remove them and save again.")
    if errors:
        assert response.status_code == 400, (data, response.status_code, errors)
        assert Mixtape.objects.count() == before
        page = html.unescape(response.content.decode())
        assert all(error in page for error in errors), (data, errors)
    else:
        assert response.status_code == 302, (data, response.status_code)
        saved = Mixtape.objects.latest("pk")
        assert saved.owner == logged_in and saved.title == title.strip()


# --- Path traversal in every URL that takes an id or a slug -----------------------------------

TRAVERSALS = [
    "..", "...", "%2e%2e", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%5c..%5cwindows", "....%2f%2f", "%00", "x%00.flac", "%c0%ae%c0%ae", "%252e%252e",
    "~root", "-1", "0", "99999999999999999999999", "1e3", "0x10", "%201", "1%0a", "a%2fb",
    "etc/passwd", "%2fetc%2fpasswd",
]  # fmt: skip
TEMPLATES = [
    "/stream/{}/", "/events/batches/{}/", "/editor/{}/", "/editor/{}/delete/", "/share/{}/",
    "/share/{}/cover/", "/admin/mixtapes/mixtape/{}/change/", "/admin/mixtapes/track/{}/change/",
    "/admin/audiocache/cachedrendition/{}/change/", "/admin/audiocache/cachetask/{}/delete/",
    "/admin/audiocache/cachebatch/{}/history/", "/admin/r/{}/{}/", "/admin/auth/user/{}/password/",
]  # fmt: skip


@pytest.mark.django_db
def test_path_traversal_in_ids_and_slugs(client, settings, tmp_path):
    owner = UserFactory(username="owner", is_staff=True, is_superuser=True)
    mixtape = MixtapeFactory(owner=owner, slug="tape", is_public=True)
    MixtapeTrackFactory(mixtape=mixtape)
    CacheBatchFactory(created_by=owner)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:TOP-SECRET")
    settings.MEDIA_ROOT = tmp_path / "media"
    visitors = [("anonymous", None), ("owner", owner), ("stranger", UserFactory(username="stranger"))]
    for who, user in visitors:
        client.logout()
        if user is not None:
            client.force_login(user)
        for template in TEMPLATES:
            for attack in TRAVERSALS:
                path = template.format(attack, attack)
                response = client.get(path)
                allowed = {301, 302, 400, 403, 404}
                if user is owner and path.startswith("/admin/"):
                    allowed.add(200)  # the admin reads " 1" as 1, like int() does: the superuser's own rows
                assert response.status_code in allowed, (who, path, response.status_code)
                content = b"".join(response.streaming_content) if response.streaming else response.content
                assert b"TOP-SECRET" not in content and b"root:x:0:0" not in content, (who, path)
    assert secret.read_text() == "root:x:0:0:TOP-SECRET"
    assert Mixtape.objects.filter(slug="tape").exists()
