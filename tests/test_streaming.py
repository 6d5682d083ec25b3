"""/stream/<id>/: range requests, validators, cache states and access rules, on real files."""

import asyncio
import errno
import os
import re
import time
from email.utils import formatdate

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audiocache.delivery import files
from audiocache.delivery.ranges import ByteRange, Unsatisfiable, needs_whole_file, parse_range
from audiocache.models import CachedRendition, CacheTask
from audiocache.seed_api import AudioCache
from audiocache.services import play_counts
from mixtapes.models import Track
from tests.conftest import body, url
from tests.factories import CacheTaskFactory, MixtapeFactory, MixtapeTrackFactory, UserFactory

pytestmark = pytest.mark.django_db


# --- parse_range ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", [(0, 99)]),
        ("bytes=100-", [(100, 999)]),
        ("bytes=-100", [(900, 999)]),
        ("bytes=-5000", [(0, 999)]),  # suffix longer than the file: all of it
        ("bytes=900-5000", [(900, 999)]),  # end past the file: clamped
        ("bytes=0-0", [(0, 0)]),
        ("bytes=999-999", [(999, 999)]),
        ("BYTES = 1-2", [(1, 2)]),
        ("bytes=0-0,-1", [(0, 0), (999, 999)]),
        ("bytes=0-1, 5-6,", [(0, 1), (5, 6)]),
        ("bytes=0-99999999999999999999999999", [(0, 999)]),
        ("bytes=-99999999999999999999999999", [(0, 999)]),
        ("bytes=5-2", None),  # invalid: ignored
        ("bytes=abc", None),
        ("bytes=1-2-3", None),
        ("bytes=-", None),
        ("bytes=", None),
        ("bytes", None),
        ("items=0-5", None),  # another unit: ignored
        ("bytes=+1-2", None),
        ("bytes=1.5-2", None),
        ("bytes=0x10-20", None),
        ("bytes=\uff10-\uff11", None),  # fullwidth digits are not ASCII digits
        ("", None),
    ],
)
def test_parse_range(header, expected):
    result = parse_range(header, 1000)
    assert (None if result is None else [(r.start, r.end) for r in result]) == expected


@pytest.mark.parametrize(
    "header",
    ["bytes=1000-", "bytes=1000-2000", "bytes=-0", "bytes=5000-6000,7000-", "bytes=99999999999999999999999-"],
)
def test_unsatisfiable_ranges(header):
    with pytest.raises(Unsatisfiable):
        parse_range(header, 1000)


def test_empty_file_has_no_satisfiable_range():
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=-5", 0)


def test_overlapping_or_too_many_ranges_mean_the_whole_file():
    assert needs_whole_file([ByteRange(0, 10), ByteRange(5, 20)])
    assert needs_whole_file([ByteRange(n * 10, n * 10 + 1) for n in range(17)])
    assert not needs_whole_file([ByteRange(20, 30), ByteRange(0, 10)])


# --- the view ------------------------------------------------------------------------------------


def test_miss_serves_the_original_and_queues_a_play_priority_task(user_client, library, settings):
    track = library["lossless.flac"]
    response = user_client.get(url(track, "medium"))
    assert response.status_code == 200
    assert response["X-Audio-Cache"] == "miss"
    assert response["Content-Type"] == "audio/flac"
    assert body(response) == track.absolute_path().read_bytes()
    task = CacheTask.objects.get()
    assert (task.track, task.quality, task.priority) == (track, "medium", CacheTask.PRIORITY_PLAY)
    assert "no-cache" in response["Cache-Control"]


def test_hit_serves_the_rendition(user_client, library, settings):
    track = library["lossless.flac"]
    path = AudioCache().transcode_file(track, "medium")
    response = user_client.get(url(track, "medium"))
    assert response.status_code == 200
    assert response["X-Audio-Cache"] == "hit"
    assert response["Content-Type"] == "audio/mpeg"
    assert response["Accept-Ranges"] == "bytes"
    assert int(response["Content-Length"]) == path.stat().st_size
    assert body(response) == path.read_bytes()
    assert CacheTask.objects.count() == 0


def test_default_quality_comes_from_settings(user_client, library, settings):
    settings.AUDIO_CACHE_DEFAULT_QUALITY = "low"
    track = library["lossless.flac"]
    AudioCache().transcode_file(track, "low")
    assert user_client.get(url(track))["X-Audio-Cache"] == "hit"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("lossy.mp3", "audio/mpeg"), ("other.m4a", "audio/mp4"), ("wave.wav", "audio/wav"), ("aiff.aiff", "audio/aiff")],
)
def test_bypass_for_originals_and_lossy_sources(user_client, library, name, content_type):
    track = library[name]
    quality = "original" if track.is_lossless else "high"
    response = user_client.get(url(track, quality))
    assert response["X-Audio-Cache"] == "bypass"
    assert response["Content-Type"] == content_type
    assert body(response) == track.absolute_path().read_bytes()
    assert CacheTask.objects.count() == 0


def test_cache_disabled_always_bypasses(user_client, library, settings):
    settings.AUDIO_CACHE_ENABLED = False
    track = library["lossless.flac"]
    AudioCache().transcode_file(track, "medium")
    response = user_client.get(url(track, "medium"))
    assert response["X-Audio-Cache"] == "bypass"
    assert response["Content-Type"] == "audio/flac"
    assert CacheTask.objects.count() == 0


def test_unknown_quality_is_a_400_with_a_message(user_client, library):
    response = user_client.get(url(library["lossless.flac"], "ultra"))
    assert response.status_code == 400
    assert b"Unknown quality 'ultra'" in response.content


def test_quarantined_source_is_not_queued_on_every_play(user_client, library):
    track = library["lossless.flac"]
    st = track.absolute_path().stat()
    CacheTaskFactory(
        track=track, quality="medium", status="failed", error="bad", source_size=st.st_size,
        source_mtime_ns=st.st_mtime_ns,
    )  # fmt: skip
    response = user_client.get(url(track, "medium"))
    assert response["X-Audio-Cache"] == "miss"
    assert CacheTask.objects.count() == 1


def test_stale_rendition_is_never_served(user_client, library):
    import os

    track = library["lossless.flac"]
    AudioCache().transcode_file(track, "medium")
    source = track.absolute_path()
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    response = user_client.get(url(track, "medium"))
    assert response["X-Audio-Cache"] == "miss"
    assert response["Content-Type"] == "audio/flac"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-100", -100, None), ("bytes=10-99999999", 10, None)],
)
def test_single_ranges(user_client, hit, header, start, end):
    address, data = hit
    response = user_client.get(address, HTTP_RANGE=header)
    assert response.status_code == 206
    expected = data[start : (end + 1 if end is not None else None)]
    assert body(response) == expected
    first = start if start >= 0 else len(data) + start
    assert response["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert response["Content-Length"] == str(len(expected))


@pytest.mark.parametrize(
    "header", ["bytes=-0", "bytes=999999999-", "bytes=999999999999999999999999-", "bytes=999999-9999999"]
)
def test_unsatisfiable_is_416_with_the_size(user_client, hit, header):
    address, data = hit
    response = user_client.get(address, HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize("header", ["bytes=5-2", "bytes=abc", "items=0-5", "bytes=0-1,1-2", "bytes=--1", "garbage"])
def test_malformed_other_units_and_overlaps_give_the_whole_file(user_client, hit, header):
    address, data = hit
    response = user_client.get(address, HTTP_RANGE=header)
    assert response.status_code == 200
    assert body(response) == data


def test_multiple_ranges_are_multipart(user_client, hit):
    address, data = hit
    response = user_client.get(address, HTTP_RANGE="bytes=0-0,-1,100-199")
    assert response.status_code == 206
    boundary = re.match(r"multipart/byteranges; boundary=(\w+)$", response["Content-Type"]).group(1)
    content = body(response)
    assert int(response["Content-Length"]) == len(content)
    parts = content.split(f"--{boundary}".encode())
    assert parts[0] == b"" and parts[-1] == b"--\r\n"
    size = len(data)
    expected = [(0, 0), (size - 1, size - 1), (100, 199)]
    for part, (a, b) in zip(parts[1:-1], expected, strict=True):
        head, _, payload = part.partition(b"\r\n\r\n")
        assert f"Content-Range: bytes {a}-{b}/{size}".encode() in head
        assert b"Content-Type: audio/mpeg" in head
        assert payload == data[a : b + 1] + b"\r\n"


def test_head_has_the_headers_and_no_body(user_client, hit):
    address, data = hit
    response = user_client.head(address)
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(data))
    assert body(response) == b""
    ranged = user_client.head(address, HTTP_RANGE="bytes=0-9")  # Range is defined for GET only
    assert ranged.status_code == 200 and ranged["Content-Length"] == str(len(data))
    assert user_client.post(address).status_code == 405


def test_validators_and_304(user_client, hit):
    address, _data = hit
    first = user_client.get(address)
    etag, modified = first["ETag"], first["Last-Modified"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert user_client.get(address, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert user_client.get(address, HTTP_IF_NONE_MATCH=f'"other", W/{etag}').status_code == 304
    assert user_client.get(address, HTTP_IF_NONE_MATCH="*").status_code == 304
    assert user_client.get(address, HTTP_IF_NONE_MATCH='"other"').status_code == 200
    assert user_client.get(address, HTTP_IF_MODIFIED_SINCE=modified).status_code == 304
    old = formatdate(0, usegmt=True)
    assert user_client.get(address, HTTP_IF_MODIFIED_SINCE=old).status_code == 200
    assert user_client.get(address, HTTP_IF_MODIFIED_SINCE="not a date").status_code == 200
    absurd = "Mon, 01 Jan 2000 99999999999999999999:00:00 GMT"
    assert user_client.get(address, HTTP_IF_MODIFIED_SINCE=absurd).status_code == 200
    assert user_client.get(address, HTTP_IF_UNMODIFIED_SINCE=absurd).status_code == 200
    assert user_client.get(address, HTTP_RANGE="bytes=0-1", HTTP_IF_RANGE=absurd).status_code == 200
    not_modified = user_client.get(address, HTTP_IF_NONE_MATCH=etag)
    assert not_modified["ETag"] == etag and not_modified["X-Audio-Cache"] == "hit"
    assert user_client.get(address, HTTP_IF_MATCH='"other"').status_code == 412
    assert user_client.get(address, HTTP_IF_MATCH=etag).status_code == 200


def test_if_range(user_client, hit):
    address, data = hit
    first = user_client.get(address)
    etag, modified = first["ETag"], first["Last-Modified"]
    assert user_client.get(address, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag).status_code == 206
    assert user_client.get(address, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=modified).status_code == 206
    stale = user_client.get(address, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"something-else"')
    assert stale.status_code == 200 and body(stale) == data
    assert user_client.get(address, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=f"W/{etag}").status_code == 200
    old = formatdate(0, usegmt=True)
    assert user_client.get(address, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=old).status_code == 200


def test_etag_changes_with_the_bytes(user_client, library):
    track = library["lossless.flac"]
    address = url(track, "medium")
    original = user_client.get(address)["ETag"]  # miss: the FLAC
    AudioCache().transcode_file(track, "medium")
    rendition = user_client.get(address)["ETag"]  # hit: the MP3
    AudioCache().transcode_file(track, "medium", overwrite=True)
    remade = user_client.get(address)["ETag"]
    assert len({original, rendition, remade}) == 3
    # A client holding ranges of the FLAC cannot continue them from the MP3.
    response = user_client.get(address, HTTP_RANGE="bytes=100-", HTTP_IF_RANGE=original)
    assert response.status_code == 200 and response["Content-Type"] == "audio/mpeg"


# --- access --------------------------------------------------------------------------------------


def test_anonymous_visitors_only_reach_tracks_of_public_mixtapes(client, library):
    shared, private, loose = library["lossless.flac"], library["lossy.mp3"], library["other.m4a"]
    MixtapeTrackFactory(track=shared, mixtape=MixtapeFactory(is_public=True))
    MixtapeTrackFactory(track=private, mixtape=MixtapeFactory(is_public=False))
    public_response = client.get(url(shared, "original"))
    assert public_response.status_code == 200
    assert public_response["Cache-Control"].startswith("public")
    assert "Vary" not in public_response
    assert client.get(url(private, "original")).status_code == 404
    assert client.get(url(loose, "original")).status_code == 404
    client.force_login(UserFactory())
    private_response = client.get(url(private, "original"))
    assert private_response.status_code == 200
    assert private_response["Cache-Control"].startswith("private")
    assert private_response["Vary"] == "Cookie"


def test_unknown_ids_and_bad_paths_are_404(user_client, library):
    assert user_client.get("/stream/999999/").status_code == 404
    assert user_client.get("/stream/abc/").status_code == 404
    assert user_client.get("/stream/-1/").status_code == 404
    assert user_client.get("/stream/1/../../etc/passwd").status_code == 404


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_only_regular_files_are_served(user_client, library, settings, kind):
    import os

    track = library["wave.wav"]
    target = settings.MUSIC_ROOT / "odd.wav"
    if kind == "directory":
        target.mkdir()
    else:
        os.mkfifo(target)  # opening it for reading must not hang the view
    Track.objects.filter(pk=track.pk).update(path="odd.wav")
    assert user_client.get(url(track, "original")).status_code == 404


def test_missing_file_is_404_and_marks_the_track_missing(user_client, library):
    track = library["wave.wav"]
    track.absolute_path().unlink()
    response = user_client.get(url(track, "original"))
    assert response.status_code == 404
    track.refresh_from_db()
    assert track.missing_since is not None


@pytest.mark.parametrize("path", ["../outside.flac", "/etc/passwd", "Artist/../../outside.flac"])
def test_a_track_row_pointing_outside_music_root_is_never_served(user_client, library, tmp_path, path):
    (tmp_path / "outside.flac").write_bytes(b"secret bytes")
    track = library["wave.wav"]
    Track.objects.filter(pk=track.pk).update(path=path)
    for quality in ("original", "medium"):
        response = user_client.get(url(track, quality))
        assert response.status_code == 404
    assert not Track.objects.filter(pk=track.pk, missing_since__isnull=False).exists()


def test_a_symlink_out_of_music_root_is_never_served(user_client, library, tmp_path, settings):
    (tmp_path / "outside.flac").write_bytes(b"secret bytes")
    (settings.MUSIC_ROOT / "sneaky.flac").symlink_to(tmp_path / "outside.flac")
    track = library["wave.wav"]
    Track.objects.filter(pk=track.pk).update(path="sneaky.flac")
    assert user_client.get(url(track, "original")).status_code == 404


def test_a_rendition_row_with_a_hostile_file_name_is_not_served(user_client, library, settings, tmp_path):
    track = library["lossless.flac"]
    AudioCache().transcode_file(track, "medium")
    CachedRendition.objects.update(file_name="../../music/Artist/wave.wav")
    response = user_client.get(url(track, "medium"))
    assert response["X-Audio-Cache"] == "miss"  # not fresh: the named file is not in the cache folder
    assert response["Content-Type"] == "audio/flac"


# --- hit statistics ---------------------------------------------------------------------------


def test_hits_are_written_at_most_once_a_minute(user_client, hit, django_assert_max_num_queries, monkeypatch):
    address, _ = hit
    play_counts.reset()
    user_client.get(address)
    rendition = CachedRendition.objects.get()
    assert rendition.hit_count == 1 and rendition.last_accessed_at is not None
    for _ in range(5):
        user_client.get(address)
    assert CachedRendition.objects.get().hit_count == 1  # counted in memory
    import time as time_module

    later = time_module.monotonic() + 61
    monkeypatch.setattr(play_counts.time, "monotonic", lambda: later)
    user_client.get(address)
    assert CachedRendition.objects.get().hit_count == 7
    play_counts.reset()


# --- property-based: no Range header ever breaks the view ----------------------------------------------

RANGE_TEXT = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda unit, specs: f"{unit}={','.join(specs)}",
        st.sampled_from(["bytes", "BYTES", "items", "bytes ", ""]),
        st.lists(
            st.builds(
                lambda a, b, kind: {"both": f"{a}-{b}", "open": f"{a}-", "suffix": f"-{b}", "junk": f"{a}x{b}"}[kind],
                st.integers(0, 10**25),
                st.integers(0, 10**25),
                st.sampled_from(["both", "open", "suffix", "junk"]),
            ),
            max_size=20,
        ),
    ),
)


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=RANGE_TEXT)
def test_no_range_header_gives_a_500_and_206_bodies_are_exact(user_client, hit, header):
    address, data = hit
    try:
        response = user_client.get(address, HTTP_RANGE=header)
    except UnicodeEncodeError:
        return  # not representable in an HTTP header at all
    assert response.status_code in (200, 206, 416)
    content = body(response)
    if response.status_code == 200:
        assert content == data
    elif response.status_code == 416:
        assert response["Content-Range"] == f"bytes */{len(data)}"
    elif response["Content-Type"].startswith("multipart/byteranges"):
        assert int(response["Content-Length"]) == len(content)
        for a, b in re.findall(rb"Content-Range: bytes (\d+)-(\d+)/", content):
            assert data[int(a) : int(b) + 1] in content
    else:
        a, b = map(int, re.match(r"bytes (\d+)-(\d+)/\d+$", response["Content-Range"]).groups())
        assert content == data[a : b + 1]


def test_track_missing_since_is_not_set_for_a_good_track(user_client, library):
    user_client.get(url(library["lossless.flac"], "original"))
    assert not Track.objects.filter(missing_since__lte=timezone.now()).exists()


# --- one query per request; renditions still decided by their files -----------------------------


def test_a_stream_request_costs_one_query(client, library, django_assert_num_queries):
    track = library["lossless.flac"]
    AudioCache().transcode_file(track, "medium")
    MixtapeTrackFactory(track=track, mixtape=MixtapeFactory(is_public=True))
    play_counts.reset()
    assert client.get(url(track, "medium"))["X-Audio-Cache"] == "hit"  # writes the first hit
    with django_assert_num_queries(1):
        assert client.get(url(track, "medium"))["X-Audio-Cache"] == "hit"
    with django_assert_num_queries(1):
        assert client.get(url(track, "original"))["X-Audio-Cache"] == "bypass"
    with django_assert_num_queries(1):
        assert client.get(url(library["lossy.mp3"], "medium")).status_code == 404  # not public
    play_counts.reset()


def test_huge_track_ids_are_unknown(user_client, library):
    for number in (2**63 - 1, 2**63, 2**64, 10**40):
        assert user_client.get(f"/stream/{number}/").status_code == 404


def test_a_deleted_rendition_is_not_served(user_client, library):
    track = library["lossless.flac"]
    path = AudioCache().transcode_file(track, "medium")
    path.unlink()  # the file went (eviction) and the row is still there
    response = user_client.get(url(track, "medium"))
    assert response["X-Audio-Cache"] == "miss" and response["Content-Type"] == "audio/flac"
    AudioCache().transcode_file(track, "medium")
    assert user_client.get(url(track, "medium"))["X-Audio-Cache"] == "hit"
    CachedRendition.objects.all().delete()  # the row went and the file is still there
    assert user_client.get(url(track, "medium"))["X-Audio-Cache"] == "miss"


# --- bodies: page-cache reads on the event loop, the disk in a thread -----------------------------


@pytest.fixture
def data_file(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "CHUNK_SIZE", 64 * 1024)
    data = os.urandom(300 * 1024 + 7)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    yield fd, data
    os.close(fd)


@pytest.fixture
def thread_reads(monkeypatch):
    """Counts the reads done by the default executor (os.pread) rather than inline."""
    calls = []
    real_pread = os.pread

    def pread(fd, size, position):
        calls.append(position)
        return real_pread(fd, size, position)

    monkeypatch.setattr(files.os, "pread", pread)
    return calls


def collect(fd, start, length) -> list[bytes]:
    async def run():
        return [chunk async for chunk in files.read_chunks(fd, start, length)]

    return asyncio.run(run())


def fake_preadv(monkeypatch, outcome):
    """Replace os.preadv: ``outcome(call_number, size)`` returns a byte count to read or raises."""
    calls = []
    real_preadv = os.preadv

    def preadv(fd, buffers, position, flags=0):
        calls.append(position)
        assert flags == files._NOWAIT
        count = outcome(len(calls), len(buffers[0]))
        return real_preadv(fd, [memoryview(buffers[0])[:count]], position)

    monkeypatch.setattr(files.os, "preadv", preadv)
    return calls


@pytest.mark.skipif(not getattr(os, "RWF_NOWAIT", 0), reason="no RWF_NOWAIT on this platform")
@pytest.mark.parametrize(("start", "length"), [(0, 300 * 1024 + 7), (1, 100), (65535, 65537), (300 * 1024, 7)])
def test_bodies_are_exact(data_file, start, length):
    fd, data = data_file
    assert b"".join(collect(fd, start, length)) == data[start : start + length]
    assert max(len(c) for c in collect(fd, 0, len(data))) == 64 * 1024  # one chunk in flight, bounded


def test_cached_chunks_are_read_inline(data_file, thread_reads, monkeypatch):
    fd, data = data_file
    calls = fake_preadv(monkeypatch, lambda n, size: size)
    chunks = collect(fd, 0, len(data))
    assert b"".join(chunks) == data and [len(c) for c in chunks] == [65536] * 4 + [len(data) - 4 * 65536]
    assert len(calls) == 5 and thread_reads == []


def test_chunks_that_would_wait_for_the_disk_are_read_in_a_thread(data_file, thread_reads, monkeypatch):
    fd, data = data_file

    def every_other_call_would_block(n, size):
        if n % 2:
            raise BlockingIOError(errno.EAGAIN, "would block")
        return size

    calls = fake_preadv(monkeypatch, every_other_call_would_block)
    assert b"".join(collect(fd, 0, len(data))) == data
    assert len(calls) == 5  # tried inline each time: a miss for one chunk says nothing of the next
    assert thread_reads == [0, 2 * 65536, 4 * 65536]


def test_a_partly_cached_chunk_is_sent_as_far_as_it_is_cached(data_file, thread_reads, monkeypatch):
    fd, data = data_file
    fake_preadv(monkeypatch, lambda n, size: min(size, 1000))
    chunks = collect(fd, 5, 5000)
    assert b"".join(chunks) == data[5:5005] and [len(c) for c in chunks] == [1000] * 5
    assert thread_reads == []


@pytest.mark.parametrize("code", [errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS])
def test_file_systems_without_nowait_reads_use_the_thread(data_file, thread_reads, monkeypatch, code):
    fd, data = data_file

    def unsupported(n, size):
        raise OSError(code, os.strerror(code))

    calls = fake_preadv(monkeypatch, unsupported)
    assert b"".join(collect(fd, 0, len(data))) == data
    assert len(calls) == 1  # asked once per stream
    assert len(thread_reads) == 5


def test_without_rwf_nowait_every_read_is_in_a_thread(data_file, thread_reads, monkeypatch):
    fd, data = data_file
    monkeypatch.setattr(files, "_NOWAIT", 0)
    calls = fake_preadv(monkeypatch, lambda n, size: size)
    assert b"".join(collect(fd, 0, len(data))) == data
    assert calls == [] and len(thread_reads) == 5


def test_read_errors_are_not_swallowed(data_file, thread_reads, monkeypatch):
    fd, _ = data_file

    def broken_disk(n, size):
        raise OSError(errno.EIO, "I/O error")

    fake_preadv(monkeypatch, broken_disk)
    with pytest.raises(OSError, match="I/O error"):
        collect(fd, 0, 100)


# --- the short ASGI path keeps its database connection, never a dirty one --------------------------


@pytest.mark.django_db(transaction=True)
def test_the_stream_thread_keeps_a_clean_connection_and_drops_others(monkeypatch):
    from django.core import signals
    from django.db import connection

    from audiocache.delivery import fast_path

    def next_request():
        signals.request_started.send(sender=None, scope={})  # what the next stream request does first

    connection.ensure_connection()
    raw = connection.connection
    fast_path.reuse_connections()
    next_request()
    assert connection.connection is raw  # kept, though SQLite's CONN_MAX_AGE is 0 here

    connection.set_autocommit(False)  # a request that left a transaction open
    fast_path.reuse_connections()
    assert connection.connection is None

    connection.ensure_connection()
    raw = connection.connection
    fast_path.reuse_connections()
    assert connection.connection is raw
    later = time.monotonic() + fast_path.STREAM_CONN_MAX_AGE + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    next_request()
    assert connection.connection is None  # not kept past its age
