from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audiocache import selectors
from config.numbers import MAX_ID, whole_number
from mixtapes.models import Track


class Command(BaseCommand):
    help = (
        "Explain one track's cache: its row, the expected cache file name per quality, whether each "
        "file exists, its size and freshness, and the track's recent transcode tasks. The argument is a "
        "track id, a path relative to MUSIC_ROOT, or an absolute path under MUSIC_ROOT."
    )

    def add_arguments(self, parser):
        parser.add_argument("track", metavar="PATH-OR-TRACK-ID")

    def handle(self, *args, track, **options):
        report = selectors.track_cache_report(self._find(track))
        found, write = report.track, self.stdout.write
        write(f"Track {found.pk}: {found}")
        write(f"  path           {found.path}  (under MUSIC_ROOT={settings.MUSIC_ROOT})")
        write(
            f"  format         {found.format_name} (codec {found.codec}; {'lossless' if found.is_lossless else 'lossy: streamed as is'})"
        )
        write(
            f"  scanned        size {found.file_size} bytes, mtime_ns {found.file_mtime_ns}, at {found.scanned_at:%Y-%m-%d %H:%M}"
        )
        if report.source is not None:
            write(f"  on disk now    size {report.source.size} bytes, mtime_ns {report.source.mtime_ns}")
        else:
            write(self.style.WARNING(f"  on disk now    unavailable: {report.source_problem}"))
        write(f"Cache folder {settings.AUDIO_CACHE_DIR}:")
        for quality in report.qualities:
            line = f"  {quality.quality:<11} {quality.expected_name}  file: " + (
                f"{quality.file_size} bytes" if quality.file_size is not None else "missing"
            )
            rendition = quality.rendition
            if rendition is None:
                line += ", no row"
            else:
                line += (
                    f", row: {rendition.size} bytes, made {timezone.localtime(rendition.created_at):%Y-%m-%d %H:%M}, "
                    f"{rendition.hit_count} hits, {'FRESH' if quality.fresh else 'STALE (will not be served)'}"
                )
                if rendition.file_name != quality.expected_name:
                    line += f", row names {rendition.file_name}"
            write(line)
        if report.recent_tasks:
            write("Recent tasks:")
            for task in report.recent_tasks:
                error = task.error_line
                write(
                    f"  #{task.pk} {task.variant!s:<11} {task.status:<9} attempts {task.attempts}"
                    + (f": {error}" if error else "")
                )

    def _find(self, text: str) -> Track:
        if text.isascii() and text.isdigit():
            track_id = whole_number(text, MAX_ID)
            track = Track.objects.filter(pk=track_id).first() if track_id is not None else None
            if track is None:
                raise CommandError(f"No track with id {text}.")
            return track
        music_root = Path(settings.MUSIC_ROOT)
        candidate = Path(text)
        if candidate.is_absolute():
            try:
                relative = candidate.relative_to(music_root).as_posix()
            except ValueError:
                raise CommandError(f"{text} is not under MUSIC_ROOT ({music_root}).") from None
        else:
            relative = candidate.as_posix()
        track = Track.objects.filter(path=relative).first()
        if track is None:
            raise CommandError(f"No track with path {relative!r} (run scanlibrary if the file is new).")
        return track
