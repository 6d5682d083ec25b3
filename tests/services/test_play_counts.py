"""Plays counted by outcome for the cache dashboard, and each rendition's hits
(audiocache/services/play_counts.py).
"""

import pytest
from django.db.models import Sum
from django.utils import timezone

from audiocache.models import CachedRendition, StreamDay
from audiocache.services import play_counts
from tests.conftest import body, url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_counters():
    play_counts.reset()
    yield
    play_counts.reset()


def today(**formats):
    """Today's counts over every format (or those of ``format=...``)."""
    rows = StreamDay.objects.filter(day=timezone.localdate(), **formats)
    counts = rows.aggregate(hits=Sum("hits"), misses=Sum("misses"), bypasses=Sum("bypasses"))
    return None if counts["hits"] is None else counts


def test_plays_are_counted_by_outcome_once_per_play(user_client, library, hit):
    hit_url, _ = hit
    body(user_client.get(hit_url))  # a play: counted, and the first count of the process is written at once
    assert today() == {"hits": 1, "misses": 0, "bypasses": 0}
    body(user_client.get(hit_url, HTTP_RANGE="bytes=1000-"))  # the same play seeking: not a new play
    user_client.head(hit_url)  # not a play
    body(user_client.get(hit_url, HTTP_RANGE="bytes=0-"))  # a new play from the start
    body(user_client.get(url(library["wave.wav"], "medium")))  # miss
    body(user_client.get(url(library["lossy.mp3"], "medium")))  # bypass: lossy
    body(user_client.get(url(library["wave.wav"], "original")))  # bypass: asked for
    assert today() == {"hits": 1, "misses": 0, "bypasses": 0}  # the rest waits for the minute...
    play_counts.flush_plays()  # ...or for shutdown
    assert today() == {"hits": 2, "misses": 1, "bypasses": 2}
    play_counts.flush_plays()
    assert today() == {"hits": 2, "misses": 1, "bypasses": 2}  # nothing counted twice
    # Per format: the MP3 asked for (hits and the miss), the original for the bypasses.
    assert today(format="mp3") == {"hits": 2, "misses": 1, "bypasses": 0}
    assert today(format="original") == {"hits": 0, "misses": 0, "bypasses": 2}


def test_plays_are_counted_per_format(user_client, library, hit):
    hit_url, _ = hit
    body(user_client.get(url(library["wave.wav"], "medium") + "&format=opus"))  # miss, in Opus
    body(user_client.get(url(library["wave.wav"], "low") + "&format=aac"))  # miss, in AAC
    body(user_client.get(hit_url))
    play_counts.flush_plays()
    assert today(format="opus") == {"hits": 0, "misses": 1, "bypasses": 0}
    assert today(format="aac") == {"hits": 0, "misses": 1, "bypasses": 0}
    assert today(format="mp3") == {"hits": 1, "misses": 0, "bypasses": 0}


def test_two_processes_adding_to_a_new_day(monkeypatch):
    play_counts.record_play("hit", "mp3")  # writes the row
    play_counts.record_play("miss", "mp3")
    play_counts.record_play("miss", "opus")
    StreamDay.objects.all().delete()  # as if another process's rows did not exist yet
    play_counts.flush_plays()
    assert today(format="mp3") == {"hits": 0, "misses": 1, "bypasses": 0}
    assert today(format="opus") == {"hits": 0, "misses": 1, "bypasses": 0}


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
