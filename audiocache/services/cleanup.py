"""Keeping the cache in bounds: purge, expiry, the size cap (LRU eviction), reconciliation.

One implementation for the admin, ``manage.py cacheclean``, the seed's ``AudioCache`` and the
workers. Every operation
returns a ``Report`` of what it did (or, with ``dry_run``, would do). Only files inside
``AUDIO_CACHE_DIR`` are ever deleted; a rendition's row goes first, then its file, so a
rendition is never served without its file, and a listener who has the file open keeps
reading it (POSIX). Half-written files are temporary names no row points at; reconciliation
leaves them to the worker that writes them unless they are old enough to be abandoned.
"""

import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..models import CachedRendition
from ..renditions import is_plain_name
from ..selectors import cache_size
from ..transcode.ffmpeg import TEMP_PREFIX

logger = logging.getLogger(__name__)

CHUNK = 500
MAX_DAYS = 36_500  # "older than N days" beyond a century is a typo, and overflows date arithmetic
# The only files reconciliation may delete: our renditions, and our temporary files. Whatever
# else lies in the folder (someone pointed AUDIO_CACHE_DIR at the wrong place) is left alone.
OWN_FILE = re.compile(
    r"^(?:[0-9a-f]{32}_(?:(?:mp3|opus|aac)_)?(?:high|medium|low)_\d+k\.(?:mp3|opus|m4a)|\.tmp-.+|\.health-.+)$"
)
# A file in the cache folder that no row names is left alone this long: a worker renames its
# finished file into place a moment before it records the row.
ORPHAN_GRACE_SECONDS = 600


@dataclass
class Report:
    renditions: int = 0  # rows removed (with their files)
    files: int = 0  # files removed
    bytes: int = 0  # bytes freed
    orphan_files: int = 0  # files without a row
    orphan_rows: int = 0  # rows without a file
    dry_run: bool = False
    details: list[str] = field(default_factory=list)

    def add(self, other: "Report") -> "Report":
        self.renditions += other.renditions
        self.files += other.files
        self.bytes += other.bytes
        self.orphan_files += other.orphan_files
        self.orphan_rows += other.orphan_rows
        self.details += other.details
        return self

    def __str__(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        text = f"{verb} {self.renditions} renditions, {self.files} files, {human_size(self.bytes)}"
        if self.orphan_files or self.orphan_rows:
            text += f" ({self.orphan_files} files without a row, {self.orphan_rows} rows without a file)"
        return text


def human_size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _cache_dir(cache_dir: Path | None) -> Path:
    return Path(cache_dir or settings.AUDIO_CACHE_DIR)


def last_used():
    """When a rendition was last played, or made if it never was: what LRU goes by."""
    return Coalesce("last_accessed_at", "created_at")


def purge(renditions, *, dry_run: bool = False, cache_dir: Path | None = None) -> Report:
    """Delete these renditions, rows and files. ``renditions`` is a queryset or a list of
    renditions or of (id, file name, size) rows."""
    cache_dir = Path(os.path.realpath(_cache_dir(cache_dir)))
    report = Report(dry_run=dry_run)
    if hasattr(renditions, "values_list"):
        rows = renditions.select_related(None).order_by().values_list("id", "file_name", "size").iterator(CHUNK)
    else:
        rows = (r if isinstance(r, tuple) else (r.pk, r.file_name, r.size) for r in renditions)
    present = _file_names(cache_dir) if dry_run else set()
    batch: list[tuple[int, str, int]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            _purge_batch(batch, report, cache_dir, present)
            batch = []
    if batch:
        _purge_batch(batch, report, cache_dir, present)
    return report


def _file_names(folder: Path) -> set[str]:
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries if entry.is_file(follow_symlinks=False)}
    except FileNotFoundError:
        return set()


def _purge_batch(batch: list[tuple[int, str, int]], report: Report, cache_dir: Path, present: set[str]) -> None:
    if report.dry_run:
        report.renditions += len(batch)
        report.files += sum(1 for _pk, name, _size in batch if name in present)
        report.bytes += sum(size for _pk, _name, size in batch)
        return
    # Which file each row names now: a worker may re-make the same name while we purge, and
    # its new file (a different inode) must survive.
    before = {}
    for _pk, name, _size in batch:
        if is_plain_name(name):  # a name that could lead out of the cache folder is never touched
            with contextlib.suppress(OSError):
                before[name] = os.lstat(cache_dir / name).st_ino
    # Rows first: whatever deleted them (we or a concurrent purge), nobody is sent there again.
    deleted, _ = CachedRendition.objects.filter(pk__in=[pk for pk, _name, _size in batch]).delete()
    report.renditions += deleted
    for name, inode in before.items():
        path = cache_dir / name
        try:
            # lstat/unlink act on the entry itself: a symlink is removed, never what it points at.
            st = os.lstat(path)
            if st.st_ino != inode:
                continue  # replaced since: a new rendition, with its own row
            os.unlink(path)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            continue
        report.files += 1
        report.bytes += st.st_size


def older_than(days: int):
    cutoff = timezone.now() - timedelta(days=days)
    return CachedRendition.objects.alias(used=last_used()).filter(used__lt=cutoff)


def expire(days: int, *, dry_run: bool = False, cache_dir: Path | None = None) -> Report:
    """Delete renditions not played (or made) for ``days`` days."""
    return purge(older_than(days), dry_run=dry_run, cache_dir=cache_dir)


def evict_to_size(
    max_bytes: int, *, dry_run: bool = False, keep: Q | None = None, cache_dir: Path | None = None
) -> Report:
    """Delete least recently used renditions until the cache holds at most ``max_bytes``.

    ``keep`` excludes renditions from eviction (a worker keeps the one it just made).
    """
    report = Report(dry_run=dry_run)
    excess = cache_size() - max_bytes
    if excess <= 0:
        return report
    candidates = CachedRendition.objects.alias(used=last_used()).order_by("used", "id")
    if keep is not None:
        candidates = candidates.exclude(keep)
    victims, freed = [], 0
    for row in candidates.values_list("id", "file_name", "size").iterator(CHUNK):
        if freed >= excess:
            break
        victims.append(row)
        freed += row[2]
    report.add(purge(victims, dry_run=dry_run, cache_dir=cache_dir))
    report.details.append(f"size cap {human_size(max_bytes)}: {len(victims)} least recently used renditions")
    return report


def enforce_limits(*, keep: Q | None = None, cache_dir: Path | None = None) -> Report:
    """Apply AUDIO_CACHE_MAX_AGE_DAYS and AUDIO_CACHE_MAX_SIZE (the workers call this after
    each new rendition; ``cacheclean`` without options does the same)."""
    report = Report()
    if settings.AUDIO_CACHE_MAX_AGE_DAYS:
        report.add(expire(settings.AUDIO_CACHE_MAX_AGE_DAYS, cache_dir=cache_dir))
    if settings.AUDIO_CACHE_MAX_SIZE:
        report.add(evict_to_size(settings.AUDIO_CACHE_MAX_SIZE, keep=keep, cache_dir=cache_dir))
    if report.renditions:
        logger.info("cache limits: %s", report)
    return report


def rows_without_file(*, limit: int | None = None, cache_dir: Path | None = None) -> list[int]:
    """Ids of renditions whose file is not in the cache folder (rows read before the listing,
    as in ``reconcile``)."""
    rows = list(CachedRendition.objects.values_list("pk", "file_name"))
    on_disk = _file_names(Path(_cache_dir(cache_dir)))
    missing = [pk for pk, name in rows if name not in on_disk]
    return missing[:limit] if limit is not None else missing


def temporary_file_grace() -> float:
    """Long enough for any running transcode, anywhere: its temporary file must not vanish under it."""
    return settings.AUDIO_CACHE_TRANSCODE_TIMEOUT + settings.AUDIO_CACHE_LEASE_SECONDS


def sweep_temporary_files(cache_dir: Path | None = None) -> int:
    """Delete the temporary files of transcodes that died (a killed worker's), as a worker
    starts: those older than any transcode may run. Returns how many went."""
    cache_dir = _cache_dir(cache_dir)
    oldest = time.time() - temporary_file_grace()
    swept = 0
    try:
        entries = list(os.scandir(cache_dir))
    except OSError:
        return 0  # no folder yet, or unreadable: the pool's own check says so
    for entry in entries:
        if not (entry.name.startswith(TEMP_PREFIX) and OWN_FILE.match(entry.name)):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < oldest:
                os.unlink(entry.path)
                swept += 1
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    return swept


def reconcile(*, dry_run: bool = False, cache_dir: Path | None = None, grace: float = ORPHAN_GRACE_SECONDS) -> Report:
    """Make the folder and the table agree: delete files no row names (older than ``grace``
    seconds, temporary files of crashed workers included) and drop rows whose file is gone."""
    cache_dir = _cache_dir(cache_dir)
    report = Report(dry_run=dry_run)
    if not cache_dir.is_dir():
        return report
    # Rows before files: a row is written only after its file is in place, so a row read here
    # whose file is not listed below really lost its file.
    rows = list(CachedRendition.objects.values_list("pk", "file_name"))
    known = {name for _pk, name in rows}
    temp_grace = max(grace, temporary_file_grace())
    now = time.time()
    on_disk = set()  # one listing serves both directions
    with os.scandir(cache_dir) as entries:
        for entry in entries:
            on_disk.add(entry.name)
            if entry.name in known or not OWN_FILE.match(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
            if now - st.st_mtime < (temp_grace if entry.name.startswith(TEMP_PREFIX) else grace):
                continue
            report.orphan_files += 1
            report.files += 1
            report.bytes += st.st_size
            if not dry_run:
                Path(entry.path).unlink(missing_ok=True)
    missing = [pk for pk, name in rows if name not in on_disk]
    report.orphan_rows = len(missing)
    report.renditions += len(missing)
    if missing and not dry_run:
        for start in range(0, len(missing), CHUNK):
            CachedRendition.objects.filter(pk__in=missing[start : start + CHUNK]).delete()
    return report
