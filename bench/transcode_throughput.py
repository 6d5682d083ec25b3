#!/usr/bin/env python
"""Transcoding throughput of the queue and pool against a bare ffmpeg loop, in one run.

    .venv/bin/python bench/transcode_throughput.py [--tracks 20] [--seconds 240] [--workers 2] [--rounds 3]
                                                   [--format mp3|opus|aac]

Generates TRACKS lossless files of SECONDS each (FLAC, stereo, 44.1 kHz, music-like noise;
by default a mixtape's worth, 20 songs of four minutes: the command's fixed start-up, about
0.4 s, is then what it is in use, a small part of a batch, while with a few one-minute tracks
it would be most of the difference: try --tracks 24 --seconds 60 to see it),
scans them once, then, ROUNDS times and alternating (the first of the pair alternates too) so
both see the same machine:

  bare   `xargs -P WORKERS ffmpeg ...` with exactly the arguments a worker's ffmpeg gets
  ours   `manage.py precache --all --inline --workers WORKERS --quality FORMAT:medium`, the first
         precache after the scan: every round starts from the database as the scan left it
         and an empty cache folder (queue, claims, leases, fsync + rename, database writes,
         progress events and the command's start-up and exit all included; the app's bytecode
         compiled beforehand, as the Docker image has it)

and prints the speed ratio bare / ours (target: at least 0.95) as the median of the rounds'
own ratios, each round's ratio (the spread of a shared machine), the best time of each side,
plus the fixed start-up cost of the command (Python, Django, ffmpeg check, pool start and
stop, measured with nothing to do) and the ratio without it, and the size of the medium
renditions against the FLACs they were made from.
"""

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--format", choices=("mp3", "opus", "aac"), default="mp3")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="transcode-bench-"))
    music = work / "music"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATA_ROOT=str(work / "data"),
        MUSIC_ROOT=str(music),
        LOG_LEVEL="warning",
        AUDIO_CACHE_MAX_WORKERS=str(args.workers),
    )
    import django

    django.setup()
    from audiocache.qualities import Variant
    from audiocache.transcode import tags
    from audiocache.transcode.ffmpeg import SourceFacts, build_command
    from mixtapes.demo import AudioSpec, render_audio
    from mixtapes.tags import read_source_tags

    try:
        print(f"Generating {args.tracks} x {args.seconds:g} s FLAC in {music} ...")
        sources = []
        for n in range(args.tracks):
            # Pink noise at a music-like level: it compresses like music (FLAC near 1,000 kb/s, as
            # a CD's), so the sizes compare as they would on a real library.
            spec = AudioSpec("flac", args.seconds, noise=True)
            sources.append(render_audio(music / f"{n:02d} - Track.flac", spec))

        manage = [sys.executable, str(REPO / "manage.py")]
        env = dict(os.environ)
        # As deployed (the image compiles the app's bytecode when it is built): the commands
        # below compile it once, into the work folder, and every measured run reuses it. Without
        # it, each precache run would compile the app's modules again when the environment says
        # PYTHONDONTWRITEBYTECODE (as the image and some machines do).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        subprocess.run([*manage, "migrate", "-v", "0"], check=True, env=env)
        subprocess.run([*manage, "scanlibrary", "-v", "0"], check=True, env=env, capture_output=True)

        facts = SourceFacts(sample_rate=44100, channels=2, has_cover=False, duration=args.seconds)
        variant = Variant(args.format, "medium")
        bare_out = work / "bare"
        bare_out.mkdir()

        def bare_command(src: Path) -> str:
            # Exactly the command a worker runs: progress reporting, an MP3's room for its tags, and
            # for AAC the ADTS copy listeners may follow (the tee muxer) included.
            reserve = tags.mp3_reserve(read_source_tags(src)) if args.format == "mp3" else 0
            output = bare_out / f"{src.stem}.{variant.spec.extension}"
            follow = bare_out / f"{src.stem}.aac" if args.format == "aac" else None
            return shlex.join(build_command(src, output, variant, facts, reserve=reserve, follow=follow))

        script = "\n".join(bare_command(src) for src in sources)

        def run_bare() -> float:
            for f in bare_out.iterdir():
                f.unlink()
            started = time.monotonic()
            subprocess.run(
                ["xargs", "-P", str(args.workers), "-d", "\n", "-I", "{}", "sh", "-c", "{} >/dev/null"],
                input=script, text=True, check=True,
            )  # fmt: skip
            return time.monotonic() - started

        def run_precache(*extra: str) -> float:
            started = time.monotonic()
            command = [
                *manage,
                "precache",
                "--all",
                "--inline",
                "--workers",
                str(args.workers),
                "--quality",
                str(variant),
            ]
            subprocess.run([*command, *extra], check=True, env=env, capture_output=True)
            return time.monotonic() - started

        # The database as the scan left it: every round of ours starts from it, with an empty cache.
        database = work / "data" / "db.sqlite3"
        scanned = work / "scanned.sqlite3"
        shutil.copyfile(database, scanned)
        cache = work / "data" / "cache" / "audio"

        def run_ours() -> float:
            for suffix in ("-wal", "-shm"):
                Path(f"{database}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(scanned, database)
            shutil.rmtree(cache, ignore_errors=True)
            return run_precache()

        def run_startup() -> float:
            # The same command with nothing to do (every rendition fresh): process start-up,
            # Django, the ffmpeg check, pool start and stop.
            return run_precache()

        bare_times, our_times = [], []
        for round_ in range(args.rounds):
            # Which side goes first alternates, so a machine that speeds up or slows down during
            # the run favours neither.
            sides = [(run_bare, bare_times), (run_ours, our_times)]
            for run, times in sides if round_ % 2 == 0 else reversed(sides):
                times.append(run())
            print(f"round {round_ + 1}: bare {bare_times[-1]:.2f} s, ours {our_times[-1]:.2f} s")
        bare, ours = min(bare_times), min(our_times)
        startup = min(run_startup() for _ in range(3))
        audio = args.tracks * args.seconds
        flac_bytes = sum(src.stat().st_size for src in sources)
        made_bytes = sum(f.stat().st_size for f in cache.iterdir() if not f.name.startswith("."))
        print(f"format {variant.label}: {made_bytes / 1e6:.1f} MB of renditions for {flac_bytes / 1e6:.1f} MB "
              f"of FLAC ({100 * made_bytes / flac_bytes:.1f} %)")  # fmt: skip
        # Each round runs both sides back to back, so its ratio cancels the machine's slow drifts;
        # the median of those ratios is the measure (one lucky round of either side, which
        # other tenants' load makes common here, moves it little, while it moves a ratio of
        # the best rounds by several per cent).
        paired = sorted(b / o for b, o in zip(bare_times, our_times, strict=True))
        print(f"speed ratio bare / ours: {statistics.median(paired):.3f}  (median of {len(paired)} rounds; "
              f"target >= 0.95)")  # fmt: skip
        print(f"  each round's ratio: {', '.join(f'{r:.3f}' for r in paired)}")
        print(f"  best rounds: bare xargs -P{args.workers} ffmpeg {bare:.2f} s ({audio / bare:.1f}x real time), "
              f"precache --inline --workers {args.workers} {ours:.2f} s ({audio / ours:.1f}x), ratio {bare / ours:.3f}")  # fmt: skip
        print(f"fixed start-up of precache --inline (nothing to do): {startup:.2f} s")
        without = statistics.median(b / (o - startup) for b, o in zip(bare_times, our_times, strict=True))
        print(f"speed ratio bare / ours without the start-up: {without:.3f} (median)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
