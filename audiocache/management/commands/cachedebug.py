from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audiocache.cache import SourceUnavailable, cache_file_name, is_fresh, rendition_path, source_state
from audiocache.models import CachedRendition, CacheTask
from audiocache.qualities import BITRATES
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
        found = self._find(track)
        write = self.stdout.write
        music_root = Path(settings.MUSIC_ROOT)
        cache_dir = Path(settings.AUDIO_CACHE_DIR)
        write(f"Track {found.pk}: {found}")
        write(f"  path           {found.path}  (under MUSIC_ROOT={music_root})")
        write(f"  codec          {found.codec} ({'lossless' if found.is_lossless else 'lossy: streamed as is'})")
        write(
            f"  scanned        size {found.file_size} bytes, mtime_ns {found.file_mtime_ns}, at {found.scanned_at:%Y-%m-%d %H:%M}"
        )
        try:
            state = source_state(found)
            write(f"  on disk now    size {state.size} bytes, mtime_ns {state.mtime_ns}")
        except SourceUnavailable as exc:
            state = None
            write(self.style.WARNING(f"  on disk now    unavailable: {exc}"))
        write(f"Cache folder {cache_dir}:")
        renditions = {r.quality: r for r in CachedRendition.objects.filter(track=found)}
        for quality in BITRATES:
            expected = cache_file_name(found.path, quality)
            file = cache_dir / expected
            exists = file.is_file()
            line = f"  {quality:<7} {expected}  file: " + (f"{file.stat().st_size} bytes" if exists else "missing")
            rendition = renditions.get(quality)
            if rendition is None:
                line += ", no row"
            else:
                path = rendition_path(rendition, cache_dir)
                fresh = state is not None and path is not None and is_fresh(rendition, state, cache_dir)
                line += (
                    f", row: {rendition.size} bytes, made {timezone.localtime(rendition.created_at):%Y-%m-%d %H:%M}, "
                    f"{rendition.hit_count} hits, {'FRESH' if fresh else 'STALE (will not be served)'}"
                )
                if rendition.file_name != expected:
                    line += f", row names {rendition.file_name}"
            write(line)
        tasks = CacheTask.objects.filter(track=found).order_by("-created_at")[:5]
        if tasks:
            write("Recent tasks:")
            for task in tasks:
                error = (task.error.strip().splitlines() or [""])[-1]
                write(
                    f"  #{task.pk} {task.quality:<7} {task.status:<9} attempts {task.attempts}"
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
