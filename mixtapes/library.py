"""Library scan: walk MUSIC_ROOT, probe audio files, upsert ``Track`` rows.

Memory stays flat on any library size: files stream out of the walk in batches, each
batch is looked up, probed (mixtapes/probe: in-process from the headers where they say
everything, else by ffprobe, in parallel) and written in one transaction. Rows not seen by
the scan are found afterwards with one query on ``scanned_at``, not by holding every path in
memory. ``scan_paths`` does the same for a handful of paths the watcher saw change.

A new path whose size and modification time (to the nanosecond) are those of a known track
whose file is gone is that track moved or renamed: its row follows the file, so mixtapes
and cached renditions keep it. Tracks whose file's content changed are announced with the
``tracks_changed`` signal once the scan has written them (the cache re-queues its renditions).

The scan only reads. It never writes, moves or deletes anything under MUSIC_ROOT, and a
file that vanished is marked ``missing_since`` rather than deleted, so an unmounted disk
does not empty anybody's mixtapes.
"""

import logging
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Substr
from django.utils import timezone

from config.paths import is_inside

from .models import MAX_PATH_LENGTH, Track
from .probe import ProbeError, ToolMissing, probe
from .search import search_text_for
from .signals import tracks_changed
from .tags import read_tags

logger = logging.getLogger(__name__)

# What the walk hands to the probe. Lossless or not is decided later from the codec.
AUDIO_EXTENSIONS = frozenset(
    {
        ".flac", ".wav", ".wave", ".aif", ".aiff", ".aifc", ".m4a", ".mp4", ".caf", ".ape", ".wv", ".tta",
        ".mp3", ".ogg", ".oga", ".opus", ".aac", ".wma",
    }
)  # fmt: skip

DEFAULT_BATCH_SIZE = 500
MAX_LISTED_PROBLEMS = 1000  # a report keeps this many paths per kind and counts the rest


@dataclass(frozen=True)
class Candidate:
    relative_path: str
    absolute_path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Problem:
    relative_path: str
    reason: str


@dataclass
class ScanReport:
    added: int = 0
    updated: int = 0
    moved: int = 0
    unchanged: int = 0
    missing: int = 0
    files_seen: int = 0
    unreadable_count: int = 0
    skipped_count: int = 0
    unreadable: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    missing_paths: list[str] = field(default_factory=list)
    # Tracks whose file's size or mtime changed: their renditions are stale (4 bytes each,
    # so even a retag of a whole 100,000-track library keeps this under a megabyte).
    changed_track_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def note_unreadable(self, problem: Problem) -> None:
        self.unreadable_count += 1
        if len(self.unreadable) < MAX_LISTED_PROBLEMS:
            self.unreadable.append(problem)

    def note_skipped(self, problem: Problem) -> None:
        self.skipped_count += 1
        if len(self.skipped) < MAX_LISTED_PROBLEMS:
            self.skipped.append(problem)

    @property
    def files_per_second(self) -> float:
        return self.files_seen / self.seconds if self.seconds else 0.0


class ScanError(Exception):
    """The scan cannot start or go on (no library root, no ffprobe)."""


def display_path(relative_path: str) -> str:
    """A path safe to print on one line: control characters and undecodable bytes escaped."""
    escaped = relative_path.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in escaped)


def walk_audio_files(music_root: Path, start: Path, report: ScanReport) -> Iterator[Candidate]:
    """Yield audio files under ``start``, recording what is skipped and why in ``report``.

    Symlinks are followed only while they stay inside the real MUSIC_ROOT; a directory
    reached twice (a symlink loop, or two links to one folder) is walked once.
    """
    root = os.path.abspath(music_root)
    real_root = os.path.realpath(root)
    visited: set[tuple[int, int]] = set()

    def relative(path: str) -> str:
        return os.path.relpath(path, root).replace(os.sep, "/")

    def on_error(error: OSError) -> None:
        report.note_unreadable(Problem(relative(error.filename or root), error.strerror or str(error)))

    for dirpath, dirnames, filenames in os.walk(os.path.abspath(start), onerror=on_error, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError as exc:
            report.note_unreadable(Problem(relative(dirpath), exc.strerror or str(exc)))
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in visited:
            report.note_skipped(Problem(relative(dirpath), "folder already scanned (symlink loop or duplicate link)"))
            dirnames[:] = []
            continue
        visited.add((st.st_dev, st.st_ino))

        kept = []
        for name in sorted(dirnames):
            sub = os.path.join(dirpath, name)
            if os.path.islink(sub) and not is_inside(os.path.realpath(sub), real_root):
                report.note_skipped(Problem(relative(sub), "symlink leads outside MUSIC_ROOT"))
            else:
                kept.append(name)
        dirnames[:] = kept

        for name in sorted(filenames):
            if os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
                continue
            full = os.path.join(dirpath, name)
            rel = relative(full)
            candidate = _inspect_file(full, rel, real_root, report)
            if candidate is not None:
                yield candidate


def _inspect_file(full: str, rel: str, real_root: str, report: ScanReport) -> Candidate | None:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        report.note_unreadable(Problem(rel, "file name is not valid UTF-8; rename the file"))
        return None
    if len(rel) > MAX_PATH_LENGTH:
        report.note_unreadable(Problem(rel, f"path is longer than {MAX_PATH_LENGTH} characters"))
        return None
    if os.path.islink(full) and not is_inside(os.path.realpath(full), real_root):
        report.note_skipped(Problem(rel, "symlink leads outside MUSIC_ROOT"))
        return None
    try:
        st = os.stat(full)
    except FileNotFoundError:
        report.note_unreadable(Problem(rel, "broken symlink"))
        return None
    except OSError as exc:
        report.note_unreadable(Problem(rel, exc.strerror or str(exc)))
        return None
    if not stat.S_ISREG(st.st_mode):
        # A FIFO named .flac would block ffprobe forever; devices and sockets are no music either.
        report.note_skipped(Problem(rel, "not a regular file"))
        return None
    if st.st_size == 0:
        report.note_unreadable(Problem(rel, "empty file (0 bytes)"))
        return None
    if not os.access(full, os.R_OK):
        report.note_unreadable(Problem(rel, "permission denied"))
        return None
    return Candidate(rel, full, st.st_size, st.st_mtime_ns)


def count_audio_files(start: Path) -> int:
    """About how many files the scan of ``start`` will see, for a progress line's ETA: names
    only (no stat, no symlinked folders), so it costs a fraction of a second per 100,000 files."""
    return sum(
        1
        for _dirpath, _dirnames, filenames in os.walk(start)
        for name in filenames
        if os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS
    )


@dataclass(frozen=True)
class _Probed:
    candidate: Candidate
    track_fields: dict | None
    error: str | None


def _probe_candidate(candidate: Candidate) -> _Probed:
    path = Path(candidate.absolute_path)
    try:
        result = probe(path)
    except ToolMissing:
        raise
    except ProbeError as exc:
        return _Probed(candidate, None, str(exc) or "unreadable")
    tags = result.read_tags or read_tags(path, fallback=result.tags)
    fields = {
        "title": tags.title,
        "artist": tags.artist,
        "album": tags.album,
        "album_artist": tags.album_artist,
        "track_number": tags.track_number,
        "disc_number": tags.disc_number,
        "replaygain_track_gain": tags.track_gain,
        "replaygain_track_peak": tags.track_peak,
        "replaygain_album_gain": tags.album_gain,
        "replaygain_album_peak": tags.album_peak,
        "duration": result.duration,
        "codec": result.codec,
        "container": result.container,
        "sample_rate": result.sample_rate,
        "bit_depth": result.bit_depth,
        "channels": result.channels,
        "bitrate": result.bitrate,
        "is_lossless": result.is_lossless,
        "has_cover": result.has_cover,
        "file_size": candidate.size,
        "file_mtime_ns": candidate.mtime_ns,
    }
    return _Probed(candidate, fields, None)


UPSERT_FIELDS = [
    "title", "artist", "album", "album_artist", "track_number", "disc_number", "duration", "codec",
    "container", "sample_rate", "bit_depth", "channels", "bitrate", "is_lossless", "has_cover",
    "file_size", "file_mtime_ns", "scanned_at", "missing_since", "search_text", "replaygain_track_gain",
    "replaygain_track_peak", "replaygain_album_gain", "replaygain_album_peak",
]  # fmt: skip


def _batched(items: Iterator[Candidate], size: int) -> Iterator[list[Candidate]]:
    batch: list[Candidate] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def scan_library(
    music_root: Path | None = None,
    *,
    start: Path | None = None,
    full: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    on_progress: Callable[[ScanReport], None] | None = None,
) -> ScanReport:
    """Scan ``start`` (default: the whole ``music_root``) and bring ``Track`` rows up to date.

    ``full`` re-probes files whose size and mtime did not change.
    """
    music_root = Path(music_root or settings.MUSIC_ROOT)
    start = Path(start or music_root)
    if not music_root.is_dir():
        raise ScanError(f"MUSIC_ROOT {music_root} is not a folder (set MUSIC_ROOT to your music library)")
    if not is_inside(os.path.realpath(start), os.path.realpath(music_root)):
        raise ScanError(f"{start} is not inside MUSIC_ROOT {music_root}; set MUSIC_ROOT to scan another library")
    if not start.is_dir():
        raise ScanError(f"{start} is not a folder")

    if shutil.which(settings.AUDIO_CACHE_FFPROBE) is None:
        # Most files never need it, but the ones that do would all fail: say so before starting.
        raise ScanError(f"{settings.AUDIO_CACHE_FFPROBE!r} was not found: install ffmpeg or set AUDIO_CACHE_FFPROBE")

    report = ScanReport()
    began = time.monotonic()
    scan_time = timezone.now()
    workers = workers or settings.LIBRARY_SCAN_WORKERS

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan") as pool:
        _scan_tree(music_root, start, pool, scan_time, full, batch_size, report, began, on_progress)

    _announce_changes(report)
    report.seconds = time.monotonic() - began
    return report


def _scan_tree(music_root: Path, start: Path, pool, scan_time, full, batch_size, report, began, on_progress=None):
    for batch in _batched(walk_audio_files(music_root, start, report), batch_size):
        _scan_batch(batch, pool, scan_time, full, report, music_root)
        report.seconds = time.monotonic() - began
        if on_progress:
            on_progress(report)
    _mark_missing(music_root, start, scan_time, report)


# Extensions of the files that sit next to music: a path with one of these that vanished is
# not a folder, so no look for tracks under it is needed.
SIDECAR_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".webp", ".txt", ".log", ".cue", ".m3u", ".m3u8", ".nfo", ".pdf",
     ".part", ".tmp", ".accurip", ".sfv", ".md5", ".db", ".ini"}
)  # fmt: skip


def scan_paths(
    paths: Iterable[Path | str], music_root: Path | None = None, *, workers: int | None = None
) -> ScanReport:
    """Bring the tracks of these paths up to date: what the watcher saw change.

    An existing folder is scanned whole (as ``scanlibrary --root`` would), an existing audio
    file is probed when it is new or changed, and a path that no longer exists marks its
    track, or every track under it (a folder moved away), missing. Paths outside MUSIC_ROOT
    and files that are no audio are ignored; the same rules as the full scan apply otherwise.
    """
    music_root = Path(music_root or settings.MUSIC_ROOT)
    root = os.path.abspath(music_root)
    real_root = os.path.realpath(root)
    report = ScanReport()
    began = time.monotonic()
    scan_time = timezone.now()

    folders: list[str] = []
    files: list[str] = []
    gone: list[str] = []
    for path in sorted({os.path.abspath(p) for p in paths}):
        if not is_inside(path, root):
            continue
        if os.path.isdir(path):
            folders.append(path)
        elif os.path.lexists(path):
            if os.path.splitext(path)[1].lower() in AUDIO_EXTENSIONS:
                files.append(path)
        else:
            gone.append(path)
    # A folder scanned whole covers whatever changed inside it.
    folders = [f for f in folders if not any(f != g and is_inside(f, g) for g in folders)]
    files = [f for f in files if not any(is_inside(f, g) for g in folders)]

    with ThreadPoolExecutor(max_workers=workers or settings.LIBRARY_SCAN_WORKERS, thread_name_prefix="scan") as pool:
        candidates = []
        for full in files:
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if not is_inside(os.path.realpath(full), real_root):
                report.note_skipped(Problem(rel, "symlink leads outside MUSIC_ROOT"))
                continue
            candidate = _inspect_file(full, rel, real_root, report)
            if candidate is not None:
                candidates.append(candidate)
        # Files first: a file moved in the same burst finds its old row before that is marked missing.
        for batch in _batched(iter(candidates), DEFAULT_BATCH_SIZE):
            _scan_batch(batch, pool, scan_time, False, report, music_root)
        for folder in folders:
            _scan_tree(music_root, Path(folder), pool, scan_time, False, DEFAULT_BATCH_SIZE, report, began)
    for full in gone:
        rel = os.path.relpath(full, root).replace(os.sep, "/")
        if _encodes(rel):  # a name that is not UTF-8 never became a track
            _mark_gone(rel, scan_time, report)

    _announce_changes(report)
    report.seconds = time.monotonic() - began
    return report


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _mark_gone(rel: str, scan_time, report: ScanReport) -> None:
    """A path that vanished: its track, or the tracks under it when it was a folder."""
    gone = Track.objects.filter(path=rel, missing_since__isnull=True)
    paths = list(gone.values_list("path", flat=True))
    count = gone.update(missing_since=scan_time)
    if not count and os.path.splitext(rel)[1].lower() not in AUDIO_EXTENSIONS | SIDECAR_EXTENSIONS:
        head = rel + "/"
        under = (
            Track.objects.filter(missing_since__isnull=True).alias(head=Substr("path", 1, len(head))).filter(head=head)
        )
        paths = list(under.order_by("path").values_list("path", flat=True)[:MAX_LISTED_PROBLEMS])
        count = under.update(missing_since=scan_time)
    report.missing += count
    report.missing_paths.extend(paths[: MAX_LISTED_PROBLEMS - len(report.missing_paths)])


def _announce_changes(report: ScanReport) -> None:
    if report.changed_track_ids:
        tracks_changed.send(sender=Track, track_ids=list(report.changed_track_ids))


def _scan_batch(
    batch: list[Candidate], pool: ThreadPoolExecutor, scan_time, full: bool, report: ScanReport, music_root: Path
) -> None:
    report.files_seen += len(batch)
    existing = {
        t.path: t
        for t in Track.objects.filter(path__in=[c.relative_path for c in batch]).only(
            "id", "path", "file_size", "file_mtime_ns", "missing_since"
        )
    }
    unchanged_ids = []
    to_probe = []
    changed: dict[str, int] = {}  # path -> id of a known track whose file's content changed
    for candidate in batch:
        track = existing.get(candidate.relative_path)
        same_file = track is not None and (track.file_size, track.file_mtime_ns) == (candidate.size, candidate.mtime_ns)
        if not full and same_file and track.missing_since is None:
            unchanged_ids.append(track.id)
        else:
            to_probe.append(candidate)
            if track is not None and not same_file:
                changed[candidate.relative_path] = track.id

    try:
        probed = list(pool.map(_probe_candidate, to_probe))
    except ToolMissing as exc:
        raise ScanError(str(exc)) from None

    new_files = [
        item.candidate for item in probed if item.error is None and item.candidate.relative_path not in existing
    ]
    moved_from = _moved_tracks(new_files, music_root)

    rows = []
    for item in probed:
        if item.error is not None:
            report.note_unreadable(Problem(item.candidate.relative_path, item.error))
            continue
        row = Track(path=item.candidate.relative_path, scanned_at=scan_time, missing_since=None, **item.track_fields)
        row.search_text = search_text_for(row)  # bulk_create skips Track.save()
        rows.append(row)
        if item.candidate.relative_path in existing:
            report.updated += 1
            if item.candidate.relative_path in changed:
                report.changed_track_ids.append(changed[item.candidate.relative_path])
        elif item.candidate.relative_path in moved_from:
            report.moved += 1
        else:
            report.added += 1

    with transaction.atomic():
        for new_path, track_id in moved_from.items():
            # The row takes the new path; the upsert below then refreshes it like any other.
            Track.objects.filter(pk=track_id).update(path=new_path)
        if rows:
            # An upsert, so a second scan running at the same time cannot fail on the unique path.
            Track.objects.bulk_create(rows, update_conflicts=True, unique_fields=["path"], update_fields=UPSERT_FIELDS)
        if unchanged_ids:
            Track.objects.filter(id__in=unchanged_ids).update(scanned_at=scan_time)
    report.unchanged += len(unchanged_ids)


def _moved_tracks(new_files: list[Candidate], music_root: Path) -> dict[str, int]:
    """New path -> id of the known track it is (same size and nanosecond mtime, old file gone).

    ``mv`` and renames keep both; a copy has its own mtime, and a file whose old path still
    exists is a copy whatever its times say. One indexed query per batch of new files."""
    if not new_files:
        return {}
    by_identity: dict[tuple[int, int], list[Track]] = {}
    sizes, mtimes = {c.size for c in new_files}, {c.mtime_ns for c in new_files}
    look = Track.objects.filter(file_size__in=sizes, file_mtime_ns__in=mtimes)
    for track in look.only("id", "path", "file_size", "file_mtime_ns"):
        by_identity.setdefault((track.file_size, track.file_mtime_ns), []).append(track)
    moved: dict[str, int] = {}
    for candidate in new_files:
        for track in by_identity.get((candidate.size, candidate.mtime_ns), []):
            if track.id not in moved.values() and not os.path.lexists(os.path.join(music_root, track.path)):
                moved[candidate.relative_path] = track.id
                break
    return moved


def _mark_missing(music_root: Path, start: Path, scan_time, report: ScanReport) -> None:
    gone = Track.objects.filter(scanned_at__lt=scan_time, missing_since__isnull=True)
    prefix = os.path.relpath(os.path.abspath(start), os.path.abspath(music_root)).replace(os.sep, "/")
    if prefix != ".":
        # An exact prefix test: LIKE (startswith) ignores case on SQLite and would catch "rock/" for "Rock/".
        head = prefix + "/"
        gone = gone.alias(head=Substr("path", 1, len(head))).filter(head=head)
    report.missing_paths = list(gone.order_by("path").values_list("path", flat=True)[:MAX_LISTED_PROBLEMS])
    report.missing = gone.update(missing_since=scan_time)
