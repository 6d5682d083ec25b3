from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audiocache import selectors, services
from audiocache.models import CachedRendition
from audiocache.services.cleanup import MAX_DAYS, Report, human_size
from config.env import parse_byte_size
from config.numbers import whole_number


def _size(text: str) -> int:
    try:
        size = parse_byte_size(text)
    except ValueError:
        raise CommandError(f"--max-size {text!r} is not a size (examples: 500M, 20G, 1.5T)") from None
    if size == 0:
        # AUDIO_CACHE_MAX_SIZE=0 means "no cap"; here it would mean "delete everything".
        raise CommandError("--max-size 0 would empty the cache; use --all for that")
    return size


def _days(text: str) -> int:
    days = whole_number(text, MAX_DAYS)
    if days is None:
        raise CommandError(f"--older-than takes a number of days from 0 to {MAX_DAYS}")
    return days


class Command(BaseCommand):
    help = (
        "Keep the audio cache in bounds. Without options: apply AUDIO_CACHE_MAX_AGE_DAYS and "
        "AUDIO_CACHE_MAX_SIZE, and reconcile the folder with the table (--orphans); meant for cron. "
        "Safe while workers run: rows go before files, half-written files are left alone, and files "
        "younger than ten minutes are never treated as orphans. Never touches MUSIC_ROOT."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than", type=_days, metavar="DAYS", help="Delete renditions not played (or made) for DAYS days."
        )
        parser.add_argument(
            "--max-size",
            type=_size,
            metavar="SIZE",
            help="Evict least recently played renditions until the cache holds at most SIZE (e.g. 20G).",
        )
        parser.add_argument(
            "--orphans",
            action="store_true",
            help="Delete files in the cache folder that no rendition names, and renditions whose file is gone.",
        )
        parser.add_argument("--all", action="store_true", help="Delete every rendition (files and rows).")
        parser.add_argument("--dry-run", action="store_true", help="Print what would be deleted; change nothing.")

    def handle(self, *args, older_than=None, max_size=None, orphans=False, all=False, dry_run=False, **options):
        explicit = older_than is not None or max_size is not None or orphans or all
        if not explicit:
            older_than = settings.AUDIO_CACHE_MAX_AGE_DAYS or None
            max_size = settings.AUDIO_CACHE_MAX_SIZE or None
            orphans = True
        cache_dir = settings.AUDIO_CACHE_DIR
        total = Report(dry_run=dry_run)
        steps = []
        if all:
            steps.append(("everything", lambda: services.purge(CachedRendition.objects.all(), dry_run=dry_run)))
        else:
            if orphans:
                steps.append(("orphans", lambda: services.reconcile(dry_run=dry_run)))
            if older_than is not None:
                steps.append(
                    (f"not played for {older_than} days", lambda: services.expire(older_than, dry_run=dry_run))
                )
            if max_size is not None:
                steps.append((f"size cap {max_size} bytes", lambda: services.evict_to_size(max_size, dry_run=dry_run)))
        before = selectors.cache_size()
        for label, step in steps:
            report = step()
            total.add(report)
            self.stdout.write(f"{label}: {report}")
        after = before - total.bytes if dry_run else selectors.cache_size()
        self.stdout.write(
            self.style.SUCCESS(f"Total: {total}. Cache {'would hold' if dry_run else 'holds'} "
                               f"{human_size(max(after, 0))} in {cache_dir}.")
        )  # fmt: skip
