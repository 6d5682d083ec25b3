"""Validators and conditional requests (audiocache/delivery/conditional.py): ETag, Last-Modified, 304,
412 and If-Range on a stream response.
"""

from email.utils import formatdate

import pytest

from audiocache.seed_api import AudioCache
from tests.conftest import body, url

pytestmark = pytest.mark.django_db


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


def test_refusals_say_what_they_are_and_are_never_stored(user_client, hit):
    """A 304 has no Content-Type (it has no body); a 412 or 416 is plain text a cache must not keep:
    they carried text/html and "max-age=86400"."""
    address, data = hit
    etag = user_client.get(address)["ETag"]
    not_modified = user_client.get(address, HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304 and "Content-Type" not in not_modified
    assert not_modified["Cache-Control"] == "private, max-age=86400"  # repeats the 200's, as RFC 9110 asks
    failed = user_client.get(address, HTTP_IF_MATCH='"other"')
    assert failed.status_code == 412
    assert failed["Content-Type"].startswith("text/plain") and failed["Cache-Control"] == "no-store"
    assert body(failed).startswith(b"Precondition failed")
    beyond = user_client.get(address, HTTP_RANGE=f"bytes={len(data) + 10}-")
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{len(data)}"
    assert beyond["Content-Type"].startswith("text/plain") and beyond["Cache-Control"] == "no-store"
    assert body(beyond) == f"Range not satisfiable: the file has {len(data)} bytes.\n".encode()
