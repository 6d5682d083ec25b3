import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audiocache import selectors, services
from audiocache.events.payload import Counts
from audiocache.qualities import QUALITY_NAMES, allowed_variant
from audiocache.queue.batches import follow
from audiocache.queue.pool import run_batch_inline
from audiocache.services.precache import mixtape_track_ids
from audiocache.transcode.ffmpeg import CacheUnwritable, FFmpegMissing, check_ffmpeg
from mixtapes.models import Mixtape, Track


class Command(BaseCommand):
    # The system checks are `manage.py check`'s job (and the server's); this command runs for
    # every batch, where they would add about 0.15 s before the first transcode.
    requires_system_checks = []
    help = (
        "Queue renditions (MP3, Opus, AAC) of lossless tracks as one batch. Tracks already cached (and fresh), lossy "
        "tracks and sources that failed before are skipped. Without --wait or --inline it returns at once "
        "and the workers (the web process's pool or cacheworker processes) do the work."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--mixtape", action="append", default=[], metavar="SLUG", help="A mixtape's tracks (repeatable)."
        )
        parser.add_argument(
            "--track", action="append", default=[], type=int, metavar="ID", help="One track (repeatable)."
        )
        parser.add_argument("--all", action="store_true", help="Every lossless track of the library.")
        parser.add_argument(
            "--quality",
            nargs="+",
            type=_variant,
            metavar="[FORMAT:]QUALITY",
            help=(
                f"Qualities ({', '.join(QUALITY_NAMES)}) or format:quality pairs such as opus:medium (default: "
                f"AUDIO_CACHE_PRECACHE_QUALITIES = {','.join(settings.AUDIO_CACHE_PRECACHE_QUALITIES)})."
            ),
        )
        parser.add_argument(
            "--overwrite", action="store_true", help="Transcode again even if a fresh rendition exists."
        )
        parser.add_argument(
            "--wait", action="store_true", help="Show progress until the batch ends; exit 1 if a task failed."
        )
        parser.add_argument(
            "--inline", action="store_true", help="Do the work in this process (no server or cacheworker needed)."
        )
        parser.add_argument(
            "--workers", type=int, help="With --inline: transcodes at once (default: AUDIO_CACHE_MAX_WORKERS)."
        )

    def handle(self, *args, mixtape, track, all, quality, overwrite, wait, inline, workers, **options):
        if workers is not None and workers < 1:
            raise CommandError("--workers must be at least 1")
        qualities = quality or list(settings.AUDIO_CACHE_PRECACHE_QUALITIES)
        label = "precache " + (" ".join(sys.argv[2:]) if len(sys.argv) > 2 else "")
        with ThreadPoolExecutor(1) as helper:
            # ffmpeg's check (a process of its own, about 0.1 s) runs while the tracks are
            # chosen and the batch is queued.
            ffmpeg_checked = helper.submit(check_ffmpeg) if inline else None
            ids = self._select(mixtape, track, all)
            batch = services.precache_tracks(ids, qualities, label=label.strip(), force=overwrite)
        summary = selectors.batch_counts(batch)
        self.stdout.write(f"Batch {batch.pk}: {summary.total} renditions ({summary.pending} to make, {summary}).")
        if not (wait or inline):
            return
        self._started = time.monotonic()
        self._last_line = 0.0
        try:
            if inline:
                n = workers or max(1, settings.AUDIO_CACHE_MAX_WORKERS)
                summary = run_batch_inline(batch, n, self._show, ffmpeg_version=ffmpeg_checked.result())
            else:
                summary = follow(batch, self._show)
        except (FFmpegMissing, CacheUnwritable) as exc:
            raise CommandError(f"cannot transcode: {exc}") from None
        except KeyboardInterrupt:
            raise CommandError(
                f"interrupted; the batch goes on in the background ({selectors.batch_counts(batch)})"
            ) from None
        self.stdout.write("")
        self.stdout.write(f"Finished: {summary} in {time.monotonic() - self._started:.1f} s.")
        for path, quality, error in selectors.batch_failures(batch):
            self.stderr.write(f"  failed: {path} @ {quality}: {error}")
        if summary.failed:
            raise CommandError(f"{summary.failed} rendition(s) failed")

    def _select(self, slugs, track_ids, everything) -> list[int]:
        if not (slugs or track_ids or everything):
            raise CommandError("say what to precache: --mixtape SLUG, --track ID or --all")
        ids: list[int] = []
        for slug in slugs:
            mixtape = Mixtape.objects.filter(slug=slug).first()
            if mixtape is None:
                raise CommandError(f"no mixtape with slug {slug!r}")
            ids += mixtape_track_ids(mixtape)
        if track_ids:
            found = set(Track.objects.filter(id__in=track_ids).values_list("id", flat=True))
            unknown = sorted(set(track_ids) - found)
            if unknown:
                raise CommandError(f"no track with id {', '.join(map(str, unknown))}")
            ids += track_ids
        if everything:
            ids += list(Track.objects.filter(is_lossless=True, missing_since__isnull=True).values_list("id", flat=True))
        return list(dict.fromkeys(ids))

    def _show(self, summary: Counts) -> None:
        elapsed = max(0.001, time.monotonic() - self._started)
        rate = summary.done / elapsed
        eta = f"{(summary.pending / rate):.0f} s" if rate and summary.pending else "-"
        width = 30
        filled = int(width * summary.done / summary.total) if summary.total else width
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {summary.done}/{summary.total}  "
            f"{rate:.2f}/s  ETA {eta}  ({summary})"
        )
        if self.stdout.isatty():
            self.stdout.write("\r" + line, ending="")
            self.stdout.flush()
        elif summary.finished or time.monotonic() - self._last_line > 5:
            self._last_line = time.monotonic()
            self.stdout.write(line)


def _variant(text: str) -> str:
    """``--quality`` values: ``medium`` (MP3) or ``opus:medium``, in a format AUDIO_CACHE_FORMATS allows."""
    try:
        return str(allowed_variant(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
