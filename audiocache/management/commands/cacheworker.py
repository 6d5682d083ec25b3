import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audiocache.queue.pool import WorkerPool
from audiocache.transcode.ffmpeg import CacheUnwritable, FFmpegMissing
from mixtapes import watcher


class Command(BaseCommand):
    help = (
        "Run transcoding workers: each claims one task at a time from the queue and drives one ffmpeg, "
        "so never more than --workers ffmpeg processes run. Start as many of these, on as many hosts, "
        "as you like (they share the database and the cache folder). One of them at a time also keeps the "
        "library in step with MUSIC_ROOT (LIBRARY_WATCH, LIBRARY_RESCAN_INTERVAL). SIGTERM or Ctrl+C stops "
        "ffmpeg and hands running tasks back to the queue before exiting."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help=f"Transcodes at once (default: AUDIO_CACHE_MAX_WORKERS = {settings.AUDIO_CACHE_MAX_WORKERS}, at least 1).",
        )
        parser.add_argument("--burst", action="store_true", help="Exit once no task is pending or running.")
        parser.add_argument(
            "--no-watch",
            action="store_true",
            help="Never watch the library in this process (by default one cacheworker at a time does, "
            "as LIBRARY_WATCH and LIBRARY_RESCAN_INTERVAL say; not with --burst).",
        )
        parser.add_argument("--name", help="Worker name shown in the admin (default: host:pid:random).")
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=1.0,
            metavar="SECONDS",
            help="How often idle workers look for new tasks (default: 1). With REDIS_URL they are also "
            "woken at once when a task is queued anywhere.",
        )
        parser.add_argument(
            "--exit-on-db-loss",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Exit with status 1 once the database has been unreachable this long (default: wait for it "
            "as long as it takes, trying again with backoff, and go on when it is back).",
        )

    def handle(
        self,
        *args,
        workers=None,
        burst=False,
        no_watch=False,
        name=None,
        poll_interval=1.0,
        exit_on_db_loss=None,
        **options,
    ):
        workers = workers if workers is not None else max(1, settings.AUDIO_CACHE_MAX_WORKERS)
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        if not 0.05 <= poll_interval <= 3600:
            raise CommandError("--poll-interval must be between 0.05 and 3600 seconds")
        if exit_on_db_loss is not None and not 1 <= exit_on_db_loss <= 7 * 86400:
            raise CommandError("--exit-on-db-loss must be between 1 second and 7 days")
        pool = WorkerPool(workers, burst=burst, name=name, poll_interval=poll_interval, give_up_after=exit_on_db_loss)
        try:
            pool.start()
        except (FFmpegMissing, CacheUnwritable) as exc:
            raise CommandError(f"cannot start workers: {exc}") from None
        self.stdout.write(f"cacheworker {pool.name}: {workers} worker(s){' (burst)' if burst else ''}")
        self.stdout.flush()
        if not (burst or no_watch):
            watcher.start_watcher()

        stopped = threading.Event()

        def request_stop(signum, frame):
            if stopped.is_set():
                return
            stopped.set()
            self.stderr.write(f"{signal.Signals(signum).name}: stopping, handing running tasks back ...")
            pool.stop()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        # Wake up regularly so the signal handler runs promptly on the main thread.
        while not pool.join(timeout=0.5):
            pass
        watcher.stop_watcher()
        if pool.gave_up:
            raise CommandError(f"{pool.gave_up} (--exit-on-db-loss)")
        self.stdout.write(f"cacheworker {pool.name}: stopped after {pool.processed} task(s)")
