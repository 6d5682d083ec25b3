#!/usr/bin/env python
"""Library scan throughput against bare ffprobe and a bare mutagen loop, measured in one run.

    .venv/bin/python bench/scan_rate.py [--files 10000] [--workers N] [--ffprobe-sample 1000] [--keep DIR]

Generates FILES short audio files (0.2 s; FLAC, ALAC, WAV, MP3, WavPack, AIFF, Opus in turn,
tagged, in album folders of 12: copies with distinct names, since the cost is per file), then
times, on the same files:

  ffprobe    bare ffprobe, WORKERS at a time, over a sample of the files (no tags, no
             database), extrapolated to all of them: a whole pass costs an hour at 100,000
  mutagen    a bare loop of mutagen.File over every file, one thread (no database)
  first scan scan_library on an empty SQLite database (probe + tags + upsert)
  rescan     scan_library again with nothing changed (stat + one query per batch)

and prints files/s for each, the ratios, and the peak resident memory of this process (it
holds nothing but the scan: file lists are not kept). Everything lives in a temporary folder
that is removed at the end (unless --keep).
"""

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

KINDS = [("flac", ".flac"), ("alac", ".m4a"), ("wav", ".wav"), ("mp3", ".mp3"), ("wavpack", ".wv"),
         ("aiff", ".aiff"), ("opus", ".opus")]  # fmt: skip


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def relative_name(n: int, ext: str) -> str:
    return f"Artist {n // 120:05d}/Album {n // 12:06d}/{n % 12 + 1:02d} - Track {n}{ext}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=None, help="Default: LIBRARY_SCAN_WORKERS.")
    parser.add_argument("--ffprobe-sample", type=int, default=1000, help="Files the ffprobe baseline probes.")
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it (a second run reuses the files).")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="scan-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATA_ROOT=str(work / "data"),
        MUSIC_ROOT=str(work / "music"),
        LOG_LEVEL="warning",
    )
    shutil.rmtree(work / "data", ignore_errors=True)  # a fresh database every run
    import django

    django.setup()
    import mutagen
    from django.conf import settings
    from django.core.management import call_command

    from mixtapes.demo import AudioSpec, render_audio
    from mixtapes.library import scan_library

    workers = args.workers or settings.LIBRARY_SCAN_WORKERS
    try:
        music = work / "music"
        templates = work / "templates"
        templates.mkdir(exist_ok=True)
        sources = []
        for kind, ext in KINDS:
            template = templates / f"{kind}{ext}"
            if not template.exists():
                tags = {"title": "Bench", "artist": "Bench Artist", "album": "Bench Album", "track": "1/12"}
                render_audio(template, AudioSpec(kind, 0.2, channels=2, tags=tags))
            sources.append((template, ext))

        started = time.monotonic()
        for n in range(args.files):
            template, ext = sources[n % len(sources)]
            target = music / relative_name(n, ext)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(template, target)
        print(f"{args.files:,} files ready in {time.monotonic() - started:.1f} s under {music}")
        call_command("migrate", verbosity=0)
        rss_before = peak_rss_mb()

        def ffprobe(path: Path) -> int:
            return subprocess.run(
                ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", f"file:{path}"],
                capture_output=True,
                check=False,
            ).returncode

        sample = [music / relative_name(n, sources[n % len(sources)][1])
                  for n in random.Random(1).sample(range(args.files), min(args.ffprobe_sample, args.files))]  # fmt: skip
        started = time.monotonic()
        with ThreadPoolExecutor(2 * (os.cpu_count() or 2)) as pool:
            failures = sum(1 for rc in pool.map(ffprobe, sample) if rc)
        ffprobe_rate = len(sample) / (time.monotonic() - started)

        started = time.monotonic()
        for n in range(args.files):
            mutagen.File(music / relative_name(n, sources[n % len(sources)][1]))
        mutagen_rate = args.files / (time.monotonic() - started)

        first = scan_library(workers=workers)
        rescan = scan_library(workers=workers)

        print(
            f"ffprobe    bare, {2 * (os.cpu_count() or 2)} at once, {len(sample):,} files: "
            f"{ffprobe_rate:8,.0f} files/s  ({failures} failures; {args.files / ffprobe_rate:,.0f} s for all)"
        )
        print(f"mutagen    bare loop, one thread:            {mutagen_rate:8,.0f} files/s")
        print(
            f"first scan scan_library, {workers} workers:  {first.seconds:7.1f} s  {first.files_per_second:8,.0f} files/s  "
            f"(added {first.added}, unreadable {first.unreadable_count})"
        )
        print(
            f"rescan     scan_library, nothing changed: {rescan.seconds:7.1f} s  {rescan.files_per_second:8,.0f} files/s  "
            f"(unchanged {rescan.unchanged})"
        )
        print(f"ratio first scan / bare ffprobe: {first.files_per_second / ffprobe_rate:.1f}x")
        print(f"ratio first scan / bare mutagen: {first.files_per_second / mutagen_rate:.2f}")
        print(f"peak RSS: {peak_rss_mb():.0f} MB (before the baselines and scans: {rss_before:.0f} MB)")
        print("targets: first scan >= 1,000 files/s, rescan >= 20,000 files/s, peak RSS < 300 MB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
