"""The library keeps itself in step: ``scan_paths`` (what the watcher hands over), the watcher
thread on a real folder with real inotify, its rescan mode, its lease, and the cache's answer to
a changed file on a mixtape. Another process taking the watch over: tests/e2e/test_library_watch.py."""

import logging
import os
import shutil
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from mutagen.flac import FLAC

from audiocache.models import CacheBatch, CacheBatchItem, CachedRendition
from audiocache.services.transcoding import make_rendition
from mixtapes import watcher as watcher_module
from mixtapes.library import scan_library, scan_paths
from mixtapes.models import LibraryWatchLease, Track
from mixtapes.signals import tracks_changed
from mixtapes.watcher import Lease, LibraryWatcher, filesystem_type
from tests.conftest import body, wait_until
from tests.factories import MixtapeTrackFactory

# --- scan_paths: what the watcher hands over -----------------------------------------------------

pytestmark = pytest.mark.django_db


@pytest.fixture
def announced():
    """The track ids every ``tracks_changed`` signal carried during the test, in order."""
    seen: list[list[int]] = []

    def receiver(sender, track_ids, **kwargs):
        seen.append(list(track_ids))

    tracks_changed.connect(receiver, dispatch_uid="test-announced")
    yield seen
    tracks_changed.disconnect(dispatch_uid="test-announced")


def test_a_new_file_is_added_and_files_that_are_no_audio_are_left_alone(make_audio, music_root):
    song = make_audio("Artist/Album/01 new.flac", duration=1, tags={"title": "New"})
    (music_root / "Artist/Album/cover.jpg").write_bytes(b"\xff\xd8 not really")
    (music_root / "Artist/Album/notes.docx").write_bytes(b"words")

    report = scan_paths([song, music_root / "Artist/Album/cover.jpg", music_root / "Artist/Album/notes.docx"])

    assert (report.added, report.updated, report.moved, report.missing, report.unreadable_count) == (1, 0, 0, 0, 0)
    assert list(Track.objects.values_list("path", "title")) == [("Artist/Album/01 new.flac", "New")]


def test_a_retagged_file_is_read_again_and_announced_as_changed(make_audio, music_root, announced):
    song = make_audio("a.flac", duration=1, tags={"title": "Before"})
    scan_library()
    track = Track.objects.get()
    tags = FLAC(song)
    tags["title"] = "After"
    tags.save()  # the user's own tag editor, as it were: the size or mtime changes

    report = scan_paths([song])

    track.refresh_from_db()
    assert (report.updated, track.title, track.file_mtime_ns) == (1, "After", song.stat().st_mtime_ns)
    assert announced == [[track.id]]


def test_an_unchanged_file_is_not_probed_or_announced(make_audio, announced):
    song = make_audio("a.flac", duration=1)
    scan_library()
    report = scan_paths([song])
    assert (report.added, report.updated, report.unchanged) == (0, 0, 1)
    assert announced == []


def test_a_moved_file_keeps_its_track_its_mixtapes_and_its_renditions(make_audio, music_root, announced):
    old = make_audio("Inbox/song.flac", duration=1, tags={"title": "Song"})
    scan_library()
    track = Track.objects.get()
    entry = MixtapeTrackFactory(track=track)
    new = music_root / "Artist/Album/01 song.flac"
    new.parent.mkdir(parents=True)
    os.rename(old, new)

    # One burst holds both sides of the move; which path comes first does not matter.
    report = scan_paths([new, old])

    assert (report.moved, report.added, report.missing) == (1, 0, 0)
    track.refresh_from_db()
    assert (track.path, track.missing_since, track.title) == ("Artist/Album/01 song.flac", None, "Song")
    assert Track.objects.count() == 1
    entry.refresh_from_db()
    assert entry.track_id == track.id
    assert announced == []  # the audio did not change: its renditions stay good


def test_a_full_rescan_follows_a_move_too(make_audio, music_root):
    old = make_audio("Inbox/song.flac", duration=1)
    scan_library()
    track_id = Track.objects.get().id
    (music_root / "Sorted").mkdir()
    os.rename(old, music_root / "Sorted/song.flac")

    report = scan_library()

    assert (report.moved, report.added, report.missing) == (1, 0, 0)
    assert list(Track.objects.values_list("id", "path", "missing_since")) == [(track_id, "Sorted/song.flac", None)]


def test_a_copy_is_a_track_of_its_own(make_audio, music_root):
    """Same size and mtime (copy2 keeps it), but the old file is still there: a copy, not a move."""
    old = make_audio("a.flac", duration=1)
    scan_library()
    shutil.copy2(old, music_root / "b.flac")

    report = scan_paths([music_root / "b.flac"])

    assert (report.added, report.moved) == (1, 0)
    assert sorted(Track.objects.values_list("path", flat=True)) == ["a.flac", "b.flac"]


def test_a_removed_file_is_marked_missing_and_comes_back_when_restored(make_audio, music_root, tmp_path):
    song = make_audio("Artist/a.flac", duration=1)
    scan_library()
    kept = tmp_path / "kept.flac"
    shutil.move(song, kept)

    report = scan_paths([song])
    track = Track.objects.get()
    assert (report.missing, report.missing_paths) == (1, ["Artist/a.flac"])
    assert track.missing_since is not None

    shutil.move(kept, song)
    report = scan_paths([song])
    track.refresh_from_db()
    assert track.missing_since is None
    assert report.updated == 1


def test_a_folder_moved_out_of_the_library_marks_its_tracks_missing(make_audio, music_root, tmp_path):
    for n in range(3):
        make_audio(f"Artist. Name/Album/{n}.flac", duration=1)  # a dot in a folder name is no extension
    make_audio("Other/x.flac", duration=1)
    scan_library()
    shutil.move(music_root / "Artist. Name", tmp_path / "elsewhere")

    report = scan_paths([music_root / "Artist. Name"])

    assert report.missing == 3
    assert sorted(Track.objects.filter(missing_since__isnull=False).values_list("path", flat=True)) == [
        "Artist. Name/Album/0.flac", "Artist. Name/Album/1.flac", "Artist. Name/Album/2.flac"
    ]  # fmt: skip
    assert Track.objects.get(path="Other/x.flac").missing_since is None


def test_a_folder_copied_in_is_scanned_whole(make_audio, music_root, tmp_path):
    for n in range(3):
        make_audio(f"Album/{n}.flac", duration=1)
    shutil.move(music_root / "Album", tmp_path / "Album")
    shutil.copytree(tmp_path / "Album", music_root / "New Album")

    report = scan_paths([music_root / "New Album", music_root / "New Album/1.flac"])

    assert (report.added, report.files_seen) == (3, 3)


def test_a_symlink_to_a_file_outside_the_library_is_ignored(make_audio, music_root, tmp_path):
    outside = make_audio("x.flac", duration=1)
    shutil.move(outside, tmp_path / "outside.flac")
    link = music_root / "link.flac"
    link.symlink_to(tmp_path / "outside.flac")

    report = scan_paths([link, tmp_path / "outside.flac"])

    assert Track.objects.count() == 0
    assert [(p.relative_path, p.reason) for p in report.skipped] == [("link.flac", "symlink leads outside MUSIC_ROOT")]


def test_names_that_are_not_utf8_are_reported_coming_and_ignored_going(make_audio, music_root):
    song = make_audio("x.flac", duration=1)
    odd = music_root / os.fsdecode(b"caf\xe9.flac")  # Latin-1 bytes, as an old Windows copy leaves them
    os.rename(song, odd)

    report = scan_paths([odd])
    assert [p.reason for p in report.unreadable] == ["file name is not valid UTF-8; rename the file"]
    odd.unlink()
    report = scan_paths([odd])  # gone: nothing to look up, and no error from the database
    assert (report.missing, report.unreadable_count, Track.objects.count()) == (0, 0, 0)


# --- the cache's answer to a changed file --------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_changed_file_on_a_mixtape_is_queued_again_and_its_old_rendition_never_served(
    make_audio, music_root, cache_dir, client, settings, audio_templates
):
    song = make_audio("a.flac", duration=1, tags={"title": "Old"})
    scan_library()
    track = Track.objects.get()
    MixtapeTrackFactory(track=track, mixtape__is_public=True)
    make_rendition(track, "medium")
    old_rendition = CachedRendition.objects.get()
    assert client.get(f"/stream/{track.id}/")["X-Audio-Cache"] == "hit"

    # The file is replaced by a longer take, as a re-rip would.
    replacement = make_audio("replacement.flac", duration=2, tags={"title": "New"})
    os.replace(replacement, song)
    scan_paths([song, replacement])

    batch = CacheBatch.objects.get()
    assert batch.label == "Changed files (1 track on mixtapes)"
    assert list(CacheBatchItem.objects.filter(batch=batch).values_list("task__track_id", "task__quality")) == [
        (track.id, "medium")
    ]
    # Until the new rendition is made, the stream is the new original, never the old rendition.
    response = client.get(f"/stream/{track.id}/")
    assert response["X-Audio-Cache"] != "hit"
    assert body(response) == song.read_bytes()
    assert CachedRendition.objects.get().pk == old_rendition.pk  # not served, and only replaced by a good one


def test_a_changed_file_on_no_mixtape_queues_nothing(make_audio):
    song = make_audio("a.flac", duration=1)
    scan_library()
    tags = FLAC(song)
    tags["title"] = "Retagged"
    tags.save()
    scan_paths([song])
    assert CacheBatch.objects.count() == 0


# --- the watcher thread, on a real folder ------------------------------------------------------


@pytest.fixture
def running_watcher(music_root):
    """``running_watcher(**options)``: a started ``LibraryWatcher`` on MUSIC_ROOT, stopped at the end."""
    started = []

    def start(**options) -> LibraryWatcher:
        watcher = LibraryWatcher(music_root, lease_seconds=3, **options).start()
        started.append(watcher)
        wait_until(watcher.ready.is_set, timeout=10, message="the watcher holding its lease, caught up")
        return watcher

    yield start
    for watcher in started:
        watcher.stop()
        assert watcher.join(15), "the watcher did not stop"


def track_at(path):
    return Track.objects.filter(path=path).first()


@pytest.mark.django_db(transaction=True)
def test_the_watcher_follows_a_file_added_retagged_moved_removed_and_restored(
    make_audio, music_root, audio_templates, tmp_path, running_watcher
):
    template = make_audio("template.flac", duration=1, tags={"title": "One"})
    shutil.move(template, tmp_path / "template.flac")
    watcher = running_watcher(watch=True, interval=0)
    assert watcher.mode == "watch"

    # Added (copied in from elsewhere).
    shutil.copyfile(tmp_path / "template.flac", music_root / "song.flac")
    wait_until(lambda: track_at("song.flac"), timeout=10, message="the new file becoming a track")
    track_id = track_at("song.flac").id

    # Retagged.
    tags = FLAC(music_root / "song.flac")
    tags["title"] = "Two"
    tags.save()
    wait_until(lambda: track_at("song.flac").title == "Two", timeout=10, message="the new title")

    # Moved within the root: the same track, at its new path.
    (music_root / "Album").mkdir()
    os.rename(music_root / "song.flac", music_root / "Album/song.flac")
    wait_until(lambda: track_at("Album/song.flac"), timeout=10, message="the moved file")
    assert track_at("Album/song.flac").id == track_id
    assert Track.objects.count() == 1

    # Removed, then restored.
    shutil.move(music_root / "Album/song.flac", tmp_path / "aside.flac")
    wait_until(lambda: track_at("Album/song.flac").missing_since, timeout=10, message="the track marked missing")
    shutil.move(tmp_path / "aside.flac", music_root / "Album/song.flac")
    wait_until(lambda: track_at("Album/song.flac").missing_since is None, timeout=10, message="the track back")


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_200_files_is_scanned_in_a_few_batches(make_audio, music_root, tmp_path, running_watcher):
    template = make_audio("template.flac", duration=1)
    shutil.move(template, tmp_path / "template.flac")
    watcher = running_watcher(watch=True, interval=0)

    album = tmp_path / "Big Album"
    album.mkdir()
    for n in range(200):
        shutil.copyfile(tmp_path / "template.flac", album / f"{n:03d}.flac")
    shutil.move(album, music_root / "Big Album")  # as a file manager drops a finished folder in
    for n in range(200, 210):
        shutil.copyfile(tmp_path / "template.flac", music_root / f"{n:03d}.flac")  # and files one by one

    wait_until(lambda: Track.objects.count() == 210, timeout=20, message="210 tracks")
    # The rows are committed a moment before the watcher counts its scan.
    wait_until(lambda: watcher.batches >= 1, timeout=5, message="the scan counted")
    time.sleep(1)  # a stray late batch would show here
    assert watcher.batches <= 3, f"{watcher.batches} scans for one burst"


@pytest.mark.django_db(transaction=True)
def test_the_watcher_ignores_a_symlink_that_leads_out_of_the_library(make_audio, music_root, tmp_path, running_watcher):
    song = make_audio("x.flac", duration=1)
    shutil.move(song, tmp_path / "outside.flac")
    running_watcher(watch=True, interval=0)

    (music_root / "link.flac").symlink_to(tmp_path / "outside.flac")
    shutil.copyfile(tmp_path / "outside.flac", music_root / "inside.flac")  # seen after the link: a marker

    wait_until(lambda: track_at("inside.flac"), timeout=10, message="the marker file")
    assert list(Track.objects.values_list("path", flat=True)) == ["inside.flac"]


@pytest.mark.django_db(transaction=True)
def test_without_inotify_a_periodic_rescan_does_the_job(make_audio, music_root, running_watcher, caplog):
    make_audio("before.flac", duration=1)
    with caplog.at_level(logging.INFO, logger="mixtapes.watcher"):
        watcher = running_watcher(watch=False, interval=0.5)
        wait_until(lambda: track_at("before.flac"), timeout=10, message="the catch-up scan")
        make_audio("later.flac", duration=1)
        wait_until(lambda: track_at("later.flac"), timeout=10, message="a rescan finding the new file")
    assert watcher.mode == "rescan"
    assert "rescanning" in caplog.text and "LIBRARY_WATCH is off" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_when_inotify_cannot_watch_the_log_says_so_and_rescans(
    make_audio, music_root, running_watcher, caplog, monkeypatch
):
    def no_watches(*args, **kwargs):
        # What watchfiles raises when fs.inotify.max_user_watches is reached.
        raise OSError("OS file watch limit reached")

    monkeypatch.setattr(watcher_module, "watch", no_watches)
    with caplog.at_level(logging.INFO, logger="mixtapes.watcher"):
        watcher = running_watcher(watch=True, interval=0.5)
        wait_until(lambda: watcher.mode == "rescan", timeout=10, message="the fallback to rescans")
        make_audio("later.flac", duration=1)
        wait_until(lambda: track_at("later.flac"), timeout=10, message="a rescan finding the new file")
    assert "cannot watch" in caplog.text and "OS file watch limit reached" in caplog.text
    assert "max_user_watches" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_network_filesystem_is_rescanned_rather_than_watched(music_root, running_watcher, monkeypatch, caplog):
    monkeypatch.setattr(watcher_module, "filesystem_type", lambda path: "nfs4")
    with caplog.at_level(logging.INFO, logger="mixtapes.watcher"):
        watcher = running_watcher(watch=True, interval=0)
    assert watcher.mode == "rescan"
    assert "every 1h (MUSIC_ROOT is on nfs4" in caplog.text


def test_the_filesystem_type_comes_from_the_longest_mount_point():
    mounts = (
        "/dev/sda1 / ext4 rw,relatime 0 0\n"
        "server:/export /srv/music nfs4 rw 0 0\n"
        "//nas/My\\040Music /mnt/My\\040Music cifs rw 0 0\n"
        "garbage\n"
    )
    assert filesystem_type("/srv/music/Artist", mounts) == "nfs4"
    assert filesystem_type("/srv/musical", mounts) == "ext4"
    assert filesystem_type("/mnt/My Music/a", mounts) == "cifs"
    assert filesystem_type("/home", mounts) == "ext4"
    assert filesystem_type("/", "") is None


# --- the lease: one watcher at a time ---------------------------------------------------------


def test_one_process_holds_the_lease_until_it_expires_or_is_given_up():
    first, second = Lease("host:1", 30), Lease("host:2", 30)
    assert first.acquire()
    assert not second.acquire()
    assert first.renew() and first.acquire()  # holding it again is fine
    assert Lease.current_holder() == "host:1"

    # The holder died: its lease runs out and the other takes it.
    LibraryWatchLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert second.acquire()
    assert not first.renew()  # the old holder finds out and stands by
    assert Lease.current_holder() == "host:2"

    second.release()
    assert Lease.current_holder() == ""
    assert first.acquire()


@pytest.mark.django_db(transaction=True)
def test_a_second_watcher_stands_by_until_the_first_stops(make_audio, music_root, running_watcher):
    first = running_watcher(watch=True, interval=0, name="first")
    second = LibraryWatcher(music_root, lease_seconds=3, watch=True, interval=0, name="second").start()
    try:
        assert Lease.current_holder() == "first"
        first.stop()
        assert first.join(15)
        wait_until(second.ready.is_set, timeout=10, message="the second watcher taking over")
        assert Lease.current_holder() == "second"
        make_audio("after.flac", duration=1)
        wait_until(lambda: track_at("after.flac"), timeout=10, message="the second watcher's scan")
    finally:
        second.stop()
        assert second.join(15)
