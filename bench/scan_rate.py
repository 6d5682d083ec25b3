#!/usr/bin/env python
"""Library scan throughput against a bare ffprobe baseline, measured in one run.

    .venv/bin/python bench/scan_rate.py [--files 10000] [--workers 4] [--keep DIR]

Generates FILES small audio files (1 s; FLAC, ALAC, WAV, MP3 in turn, tagged, in album
folders of 12), then times, on the same files:

  baseline   bare ffprobe over every file, WORKERS at a time (no tags, no database)
  first scan scanlibrary on an empty SQLite database (probe + tags + upsert)
  rescan     scanlibrary again with nothing changed (stat + one query per batch)

and prints files/s for each and the ratio first scan / baseline. Everything lives in a
temporary folder that is removed at the end (unless --keep).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 2))
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it.")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="scan-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATA_ROOT=str(work / "data"),
        MUSIC_ROOT=str(work / "music"),
        LOG_LEVEL="warning",
    )
    import django

    django.setup()
    from django.core.management import call_command

    from mixtapes.demo import AudioSpec, render_audio
    from mixtapes.library import scan_library

    try:
        music = work / "music"
        templates = work / "templates"
        templates.mkdir(exist_ok=True)
        kinds = [("flac", ".flac"), ("alac", ".m4a"), ("wav", ".wav"), ("mp3", ".mp3")]
        sources = []
        for kind, ext in kinds:
            template = templates / f"t{ext}"
            if not template.exists():
                render_audio(template, AudioSpec(kind, 1.0, channels=1, tags={"title": "Bench", "artist": "Bench"}))
            sources.append((template, ext))

        started = time.monotonic()
        paths = []
        for n in range(args.files):
            template, ext = sources[n % len(sources)]
            target = music / f"Artist {n // 120:04d}" / f"Album {n // 12:05d}" / f"{n % 12 + 1:02d} - Track {n}{ext}"
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(template, target)
            paths.append(target)
        print(f"{args.files:,} files ready in {time.monotonic() - started:.1f} s under {music}")

        call_command("migrate", verbosity=0)

        def ffprobe(path: Path) -> int:
            return subprocess.run(
                ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", f"file:{path}"],
                capture_output=True,
                check=False,
            ).returncode

        started = time.monotonic()
        with ThreadPoolExecutor(args.workers) as pool:
            failures = sum(1 for rc in pool.map(ffprobe, paths) if rc)
        baseline = time.monotonic() - started

        first = scan_library(workers=args.workers)
        rescan = scan_library(workers=args.workers)

        rate = args.files / baseline
        print(
            f"baseline   bare ffprobe x{args.workers}: {baseline:7.1f} s  {rate:8,.0f} files/s  ({failures} failures)"
        )
        print(
            f"first scan scanlibrary:         {first.seconds:7.1f} s  {first.files_per_second:8,.0f} files/s  "
            f"(added {first.added}, unreadable {first.unreadable_count})"
        )
        print(
            f"rescan     scanlibrary:         {rescan.seconds:7.1f} s  {rescan.files_per_second:8,.0f} files/s  "
            f"(unchanged {rescan.unchanged})"
        )
        print(f"ratio first scan / bare ffprobe: {first.files_per_second / rate:.2f}")
        print(f"ratio rescan / first scan:       {rescan.files_per_second / first.files_per_second:.1f}x")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
