"""The library keeps itself in step: a thread that scans what changed under MUSIC_ROOT.

Two ways to notice changes, and the log says which one is on:

- **watch** (``LIBRARY_WATCH=true``, the default): inotify through watchfiles. A burst of changes
  (an album copied in) arrives as one set once the folder is quiet for a moment, and is scanned
  as one batch (``library.scan_paths``): new and changed files probed, moved ones followed,
  vanished ones marked missing. With ``LIBRARY_RESCAN_INTERVAL`` set as well, a full rescan
  runs that often too, as a safety net.
- **rescan** every ``LIBRARY_RESCAN_INTERVAL``: where inotify cannot work. On a network
  filesystem (NFS, SMB, sshfs...) changes made by other machines raise no event here, and a
  tree with more folders than the kernel's ``fs.inotify.max_user_watches`` cannot be watched
  whole; both fall back to rescanning (hourly when no interval is set).

Either way the watcher starts with a rescan, which catches up with what changed while nobody
watched (a rescan with nothing changed reads only the file system's metadata: about 40,000
files/s).

Exactly one process watches at a time, whatever the topology: the one holding the
``LibraryWatchLease`` row, renewed every third of ``AUDIO_CACHE_LEASE_SECONDS``. The others
stand by and take over once it expires (its holder died) or is given up (it stopped).
"""

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone
from watchfiles import DefaultFilter, watch

from config import database
from config.paths import is_inside

from .library import SIDECAR_EXTENSIONS, ScanError, ScanReport, scan_library, scan_paths
from .models import LibraryWatchLease

logger = logging.getLogger(__name__)

# Where inotify only sees changes made by this machine, if any.
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "afs", "ceph", "glusterfs", "lustre", "davfs",
     "fuse.sshfs", "fuse.rclone", "fuse.glusterfs", "fuse.davfs2", "fuse.s3fs", "fuse.gcsfuse", "fuse.cephfs"}
)  # fmt: skip

# watchfiles hands over a set of changes once none came for STEP ms, or after DEBOUNCE ms of
# steady changes (a long copy), so a burst becomes one scan and a single file shows within a second.
STEP_MS = 300
DEBOUNCE_MS = 3000
LEASE_ROW = 1


def filesystem_type(path: str | os.PathLike, mounts: str | None = None) -> str | None:
    """The type of the filesystem ``path`` is on (``ext4``, ``nfs4``...), read from the mount
    table: the Python standard library has no statfs, and this is all we need of it."""
    if mounts is None:
        try:
            mounts = Path("/proc/self/mounts").read_text()
        except OSError:
            return None
    real = os.path.realpath(path)
    best, kind = "", None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        # The mount table escapes spaces, tabs, newlines and backslashes as octal (\040).
        mount_point = fields[1].encode().decode("unicode_escape")
        if is_inside(real, mount_point.rstrip("/") or "/") and len(mount_point) >= len(best):
            best, kind = mount_point, fields[2]
    return kind


class MusicFilter(DefaultFilter):
    """What may matter to the library: audio files and folders. Cover images, logs, cue sheets
    and editors' temporary files are left out (a deleted path cannot be told to be a folder
    from its name, so anything else is passed on, and ``scan_paths`` sorts it out)."""

    def __call__(self, change, path: str) -> bool:
        return super().__call__(change, path) and os.path.splitext(path)[1].lower() not in SIDECAR_EXTENSIONS


class Lease:
    """The ``LibraryWatchLease`` row held by one process (``holder``) for ``seconds``."""

    def __init__(self, holder: str, seconds: float):
        self.holder = holder
        self.seconds = seconds

    def acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours."""
        now = timezone.now()
        expires = now + timedelta(seconds=self.seconds)
        free = Q(holder=self.holder) | Q(expires_at__lt=now) | Q(holder="")
        if LibraryWatchLease.objects.filter(pk=LEASE_ROW).filter(free).update(holder=self.holder, expires_at=expires):
            return True
        try:
            with transaction.atomic():
                LibraryWatchLease.objects.create(pk=LEASE_ROW, holder=self.holder, expires_at=expires)
        except IntegrityError:
            return False  # another process holds it
        return True

    def renew(self) -> bool:
        """Push the expiry on; False when the lease is no longer ours (it expired and was taken)."""
        expires = timezone.now() + timedelta(seconds=self.seconds)
        return bool(LibraryWatchLease.objects.filter(pk=LEASE_ROW, holder=self.holder).update(expires_at=expires))

    def release(self) -> None:
        LibraryWatchLease.objects.filter(pk=LEASE_ROW, holder=self.holder).update(holder="", expires_at=timezone.now())

    @staticmethod
    def current_holder() -> str:
        row = LibraryWatchLease.objects.filter(pk=LEASE_ROW, expires_at__gte=timezone.now()).first()
        return row.holder if row else ""


class _AnyOf:
    """Set when any of the events is: what watchfiles' ``stop_event`` asks for (``is_set``)."""

    def __init__(self, *events: threading.Event):
        self.events = events

    def is_set(self) -> bool:
        return any(event.is_set() for event in self.events)


class LibraryWatcher:
    """Keeps the tracks in step with MUSIC_ROOT from a thread of its own (see the module docstring)."""

    def __init__(
        self,
        music_root: Path | None = None,
        *,
        watch: bool | None = None,
        interval: float | None = None,
        lease_seconds: float | None = None,
        name: str | None = None,
    ):
        self.music_root = Path(music_root or settings.MUSIC_ROOT)
        self.watch = settings.LIBRARY_WATCH if watch is None else watch
        self.interval = settings.LIBRARY_RESCAN_INTERVAL if interval is None else interval
        self.lease = Lease(
            name or f"{socket.gethostname()}:{os.getpid()}",
            lease_seconds or settings.AUDIO_CACHE_LEASE_SECONDS,
        )
        self.mode = ""  # "watch" or "rescan", once holding the lease
        self.batches = 0  # change sets scanned (tests and the log)
        self.ready = threading.Event()  # set once watching (or rescanning) after the catch-up scan
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.watch or self.interval > 0

    def start(self) -> "LibraryWatcher":
        self._thread = threading.Thread(target=self._run, name="library-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    # --- the thread ---------------------------------------------------------------

    def _run(self) -> None:
        waiting_logged = ""  # what was said last while waiting: said once each time it changes
        try:
            while not self._stop.is_set():
                close_old_connections()
                try:
                    held = self.lease.acquire()
                except DatabaseError as exc:
                    if waiting_logged != "database":
                        logger.warning("library watcher: %s; trying again", database.message(database.reason(exc)))
                        waiting_logged = "database"
                    self._stop.wait(self.lease.seconds / 3)
                    continue
                if not held:
                    if waiting_logged != "lease":
                        logger.info("library watcher: another process watches the library; standing by")
                        waiting_logged = "lease"
                    self._stop.wait(self.lease.seconds / 3)
                    continue
                waiting_logged = ""
                self._lost.clear()
                keeper = threading.Thread(target=self._keep_lease, name="library-watch-lease", daemon=True)
                keeper.start()
                try:
                    self._hold()
                except Exception:
                    logger.exception("library watcher failed; starting again in 10 s")
                    self._stop.wait(10)
                finally:
                    self.ready.clear()
                    self._lost.set()  # ends the keeper
                    keeper.join()
                    with contextlib.suppress(DatabaseError):  # else it expires on its own
                        self.lease.release()
        finally:
            connection.close()

    def _keep_lease(self) -> None:
        last_renewed = time.monotonic()
        try:
            while not self._lost.wait(self.lease.seconds / 3):
                try:
                    if not self.lease.renew():
                        logger.warning("library watcher: lost the lease to another process; standing by")
                        self._lost.set()
                    last_renewed = time.monotonic()
                except DatabaseError as exc:
                    if time.monotonic() - last_renewed > self.lease.seconds:
                        logger.warning("library watcher: could not renew the lease (%s); standing by", exc)
                        self._lost.set()
        finally:
            connection.close()

    def _hold(self) -> None:
        """Watch (or rescan) until stopped or the lease is lost."""
        done = _AnyOf(self._stop, self._lost)
        if not self.music_root.is_dir():
            logger.error("library watcher: MUSIC_ROOT %s is not a folder; looking again in a minute", self.music_root)
            _wait(done, 60, self._stop)
            return
        self.mode, reason = self._choose_mode()
        if self.mode == "watch":
            try:
                self._watch(done)
                return
            except (OSError, RuntimeError) as exc:
                if done.is_set():
                    return
                self.mode = "rescan"
                logger.warning(
                    "library watcher: cannot watch %s (%s); rescanning every %s instead. If there are too many "
                    "folders, raise fs.inotify.max_user_watches (sysctl) or set LIBRARY_RESCAN_INTERVAL.",
                    self.music_root, exc, _period(self._rescan_every()),
                )  # fmt: skip
        else:
            logger.info(
                "library watcher: rescanning %s every %s (%s)", self.music_root, _period(self._rescan_every()), reason
            )
        self._rescan("catching up")
        self.ready.set()
        while not done.is_set():
            _wait(done, self._rescan_every(), self._stop)
            if not done.is_set():
                self._rescan("periodic rescan")

    def _choose_mode(self) -> tuple[str, str]:
        if not self.watch:
            return "rescan", "LIBRARY_WATCH is off"
        kind = filesystem_type(self.music_root)
        if kind in NETWORK_FILESYSTEMS or (kind or "").startswith("nfs"):
            return "rescan", f"MUSIC_ROOT is on {kind}, where changes made by other machines raise no event"
        return "watch", ""

    def _rescan_every(self) -> float:
        return self.interval or settings.LIBRARY_FALLBACK_RESCAN_INTERVAL

    def _watch(self, done: _AnyOf) -> None:
        changes_seen = watch(
            self.music_root,
            watch_filter=MusicFilter(),
            stop_event=done,
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            rust_timeout=1000,
            yield_on_timeout=True,  # a chance to check the periodic rescan
            raise_interrupt=False,
            ignore_permission_denied=True,  # an unreadable folder is reported by the scan, not fatal here
        )
        # The first step sets the watches up (or raises when it cannot); from then on no change
        # is missed, so the catch-up rescan comes after it, and what changed meanwhile follows.
        first = next(changes_seen, None)
        self._rescan("catching up")
        extra = f", and a full rescan every {_period(self.interval)}" if self.interval else ""
        logger.info("library watcher: watching %s for changes (inotify)%s", self.music_root, extra)
        self.ready.set()
        if first:
            self._scan_changes(path for _change, path in first)
        next_rescan = time.monotonic() + self.interval if self.interval else None
        for changes in changes_seen:
            if changes:
                self._scan_changes(path for _change, path in changes)
            if next_rescan is not None and time.monotonic() >= next_rescan:
                self._rescan("periodic rescan")
                next_rescan = time.monotonic() + self.interval

    def _scan_changes(self, paths: Iterable[str]) -> None:
        close_old_connections()
        try:
            report = scan_paths(paths, self.music_root)
        except (ScanError, DatabaseError) as exc:
            logger.error("library watcher: could not scan what changed: %s", exc)
            return
        self.batches += 1
        _log_report("changes", report)

    def _rescan(self, why: str) -> None:
        close_old_connections()
        try:
            report = scan_library(self.music_root)
        except (ScanError, DatabaseError) as exc:
            logger.error("library watcher: %s failed: %s", why, exc)
            return
        _log_report(why, report)


def _wait(done: _AnyOf, seconds: float, stop: threading.Event) -> None:
    """Sleep ``seconds`` or until ``done``, looking at it at least once a second."""
    deadline = time.monotonic() + seconds
    while not done.is_set() and time.monotonic() < deadline:
        stop.wait(min(1.0, max(0.0, deadline - time.monotonic())))


def _log_report(what: str, report: ScanReport) -> None:
    if report.added or report.updated or report.moved or report.missing or report.unreadable_count:
        logger.info(
            "library %s: %d added, %d updated, %d moved, %d missing, %d unreadable (%.1f s)",
            what, report.added, report.updated, report.moved, report.missing, report.unreadable_count, report.seconds,
        )  # fmt: skip
    for problem in report.unreadable[:20]:
        logger.warning("library: %s: %s", problem.relative_path, problem.reason)


def _period(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


_watcher: LibraryWatcher | None = None


def start_watcher() -> LibraryWatcher | None:
    """Start this process's watcher as the settings say (nothing when LIBRARY_WATCH is off and
    LIBRARY_RESCAN_INTERVAL is 0). It watches only while it holds the lease."""
    global _watcher
    watcher = LibraryWatcher()
    if not watcher.enabled:
        logger.info("library watcher: off (LIBRARY_WATCH=false, LIBRARY_RESCAN_INTERVAL=0); run scanlibrary by hand")
        return None
    _watcher = watcher.start()
    return _watcher


def stop_watcher(timeout: float = 10) -> None:
    global _watcher
    if _watcher is not None:
        _watcher.stop()
        _watcher.join(timeout)
        _watcher = None
