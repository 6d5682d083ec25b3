"""Run ``manage.py cacheworker`` and SIGKILL it at an exact point of publishing a rendition.

Used by ``tests/e2e/test_faults.py`` as ``python tests/e2e/crash_harness.py POINT [cacheworker args]``.
The app has no crash hook (and should not grow one for tests): this script wraps the functions
the worker calls and kills its own process group, worker and ffmpeg alike, as a power cut or an
OOM kill would. Points, in the order a transcode reaches them:

- ``before-rename``: the temporary file is complete and fsynced, ``os.replace`` has not run;
- ``after-rename``: the file is in place under its final name, no ``CachedRendition`` row yet;
- ``before-finish``: the row is written, the task is still ``running`` (not marked done).
"""

import os
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def die(point: str) -> None:
    sys.stderr.write(f"crash_harness: SIGKILL at {point}\n")
    sys.stderr.flush()
    os.killpg(os.getpgrp(), signal.SIGKILL)


def install(point: str) -> None:
    from audiocache.models import CacheTask
    from audiocache.queue import tasks
    from audiocache.transcode import ffmpeg

    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        is_rendition = os.path.basename(str(src)).startswith(ffmpeg.TEMP_PREFIX) and str(dst).endswith(".mp3")
        if is_rendition and point == "before-rename":
            die(point)
        real_replace(src, dst, *args, **kwargs)
        if is_rendition and point == "after-rename":
            die(point)

    # transcoder calls os.replace through the os module; only rendition renames are intercepted.
    ffmpeg.os.replace = replace

    real_finish = tasks.finish

    def finish(task, worker_id, status, error=""):
        if point == "before-finish" and status == CacheTask.Status.DONE:
            die(point)
        return real_finish(task, worker_id, status, error)

    tasks.finish = finish  # the worker looks it up as tasks.finish at call time


def main() -> None:
    point, *args = sys.argv[1:]
    if os.getpgrp() != os.getpid():
        # It kills its whole process group: never the group of whoever started it.
        raise SystemExit("crash_harness must lead its own process group (start it with start_new_session=True)")
    if point not in ("before-rename", "after-rename", "before-finish"):
        raise SystemExit(f"unknown crash point {point!r}")
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    install(point)
    from django.core.management import call_command

    call_command("cacheworker", *args)


if __name__ == "__main__":
    main()
