"""Turn one lossless file into one rendition (MP3, Opus or AAC) with ffmpeg, safely.

Safety rules (DESIGN.md): ffmpeg runs from an argument list (never a shell) with
``-nostdin`` and a timeout; the input is ``file:<absolute path>`` so no name is ever read
as an option or a protocol; the output goes to a temporary file in the cache directory,
is fsynced and only then renamed into place, so a rendition is never seen half-written and
the MP3 keeps the Xing/LAME header ffmpeg writes at the end. ffmpeg dies with the thread
that started it (the parent-death signal, through util-linux's ``setpriv``), so a worker or web
process killed outright leaves no ffmpeg running on.
"""

import errno
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from mixtapes.probe import ffmpeg_input, stderr_tail

from ..qualities import Variant, enabled_formats

# Rates MP3 can carry; anything above is resampled (to 44.1 kHz for its multiples, else 48 kHz).
MAX_MP3_SAMPLE_RATE = 48000
TEMP_PREFIX = ".tmp-"
# A rendition shorter than this share of the probed duration means the source is damaged.
TRUNCATION_TOLERANCE = 0.98
TEMP_SUFFIX = ".part"
# A placeholder ID3 frame that holds room for the full tags (an argument can carry 128 KiB).
RESERVE_KEY = "mixtapes-reserved"
MAX_RESERVE = 100_000

# What every rendition is made with, besides the bitrate. Changing anything here changes
# ENCODER_PROFILE, which makes every existing rendition stale (they are re-made on demand).
# Each format has its own profile: a change to Opus's settings re-makes Opus renditions only.
_PROFILE_ARGS = {
    "mp3": ("libmp3lame", "cbr", "id3v2.3", "xing", "cover-copy", "ac2-if-more", "ar-max-48000"),
    "opus": ("libopus", "vbr", "ar-48000", "ac2-if-more", "tags-mutagen", "r128-gains"),
    "aac": ("aac-lc", "cbr-target", "mp4-faststart", "editlist", "ac2-if-more", "ar-max-48000", "tags-mutagen",
            "itunsmpb"),
}  # fmt: skip
ENCODER_PROFILES = {
    fmt: f"{fmt}-" + hashlib.sha256(" ".join(args).encode()).hexdigest()[:12] for fmt, args in _PROFILE_ARGS.items()
}
ENCODER_PROFILE = ENCODER_PROFILES["mp3"]  # the seed's MP3 profile: every existing rendition keeps it


class TranscodeError(Exception):
    """ffmpeg failed; ``str()`` holds the tail of its stderr."""


class TranscodeTimeout(TranscodeError):
    pass


class MachineTrouble(TranscodeError):
    """The machine failed, not the source: no ffmpeg, a full or unwritable cache folder. The
    task waits for it to be fixed instead of spending the attempts meant for a bad source."""


class FFmpegMissing(MachineTrouble):
    pass


class CacheUnwritable(MachineTrouble):
    """The cache folder cannot be created or written (read-only mount, a file in its path...)."""

    @classmethod
    def from_os_error(cls, directory: Path, exc: OSError) -> "CacheUnwritable":
        kind = CacheDiskFull if exc.errno in DISK_FULL_ERRORS else cls
        return kind(f"cannot write to the cache folder {directory} (AUDIO_CACHE_DIR): {exc.strerror or exc}")


class CacheDiskFull(CacheUnwritable):
    """No space (or quota) left where the cache folder is."""


DISK_FULL_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT})
# What ffmpeg prints (strerror) when writing its output fails for a reason of the machine.
DISK_FULL_TEXT = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))
_UNWRITABLE_TEXT = (os.strerror(errno.EROFS), os.strerror(errno.EACCES))


@dataclass(frozen=True)
class SourceFacts:
    """What the command needs to know about the source (from the scan's probe)."""

    sample_rate: int | None
    channels: int | None
    has_cover: bool
    duration: float | None


def output_sample_rate(source_rate: int | None) -> int | None:
    """None keeps the source rate; above 48 kHz, the nearest family rate MP3 allows."""
    if not source_rate or source_rate <= MAX_MP3_SAMPLE_RATE:
        return None
    return 44100 if source_rate % 44100 == 0 else 48000


OPUS_RATE = 48000  # Opus decodes at 48 kHz whatever the source: resampled once, at the encode, well


def rendition_rate(fmt: str, source_rate: int | None) -> int | None:
    """The sample rate ffmpeg is told to write in format ``fmt`` (None: the source's own)."""
    return OPUS_RATE if fmt == "opus" else output_sample_rate(source_rate)


def build_command(
    source: Path,
    output: Path,
    variant: Variant | str,
    facts: SourceFacts,
    *,
    ffmpeg: str | None = None,
    follow: Path | None = None,
    reserve: int = 0,
) -> list:
    """ffmpeg's arguments for one rendition written to ``output``. ``follow`` (AAC only): a
    second file of the same encoded audio, as ADTS, that listeners can read while it grows (an
    MP4 with its index at the front is only readable once finished). ``reserve`` (MP3): bytes
    of room to leave in the ID3 tag, where the full tags go later without moving the audio
    (transcode/tags.py)."""
    variant = Variant.of(variant)
    command = [
        ffmpeg or settings.AUDIO_CACHE_FFMPEG,
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-v", "error",
        "-n",  # never overwrite: the temporary name is ours alone
        "-i", ffmpeg_input(source),
        "-map", "0:a:0",
        "-map_metadata", "0",
    ]  # fmt: skip
    if variant.format == "mp3" and facts.has_cover:
        # The embedded picture becomes the MP3's APIC frame, unchanged. (Opus and AAC get theirs
        # from transcode/tags.py: ffmpeg cannot put a picture in Ogg.)
        command += ["-map", "0:v?", "-c:v", "copy", "-disposition:v", "attached_pic"]
        # The picture is one packet, but ffmpeg holds the audio back (up to 10 s of it) waiting
        # for more video to interleave: listeners following the file would wait for it. Same bytes.
        command += ["-max_interleave_delta", "100000"]
    command += _codec_args(variant, facts)
    if variant.format == "mp3" and reserve:
        command += ["-metadata", f"{RESERVE_KEY}={' ' * min(reserve, MAX_RESERVE)}"]
    command += ["-progress", "pipe:1"]
    if variant.format == "mp3":
        command += [
            "-id3v2_version", "3",
            "-write_xing", "1",
            # Each frame reaches the file as it is made (not in 256 KiB lumps): listeners following
            # the file hear the first second at once. Same bytes, so not part of ENCODER_PROFILE.
            "-flush_packets", "1",
            "-f", "mp3",
            ffmpeg_input(output),
        ]  # fmt: skip
    elif variant.format == "opus":
        # Ogg pages of at most 0.2 s, written as they are made: listeners follow the file closely.
        command += ["-page_duration", "200000", "-flush_packets", "1", "-f", "opus", ffmpeg_input(output)]
    elif follow is None:
        command += ["-movflags", "+faststart", "-f", "mp4", ffmpeg_input(output)]
    else:
        # One encode, two files (the tee muxer): the MP4 that is kept, and the ADTS stream that
        # listeners follow; a failure of the second never spoils the first.
        slaves = (
            f"[f=mp4:movflags=+faststart]{_tee_path(output)}|[f=adts:onfail=ignore:flush_packets=1]{_tee_path(follow)}"
        )
        command += ["-flush_packets", "1", "-f", "tee", slaves]
    return command


def _codec_args(variant: Variant, facts: SourceFacts) -> list:
    bitrate = f"{variant.bitrate}k"
    if variant.format == "mp3":
        args = ["-c:a", "libmp3lame", "-b:a", bitrate]  # -b:a without -q:a is constant bitrate
    elif variant.format == "opus":
        args = ["-c:a", "libopus", "-b:a", bitrate, "-vbr", "on"]
    else:
        args = ["-c:a", "aac", "-b:a", bitrate]
    rate = rendition_rate(variant.format, facts.sample_rate)
    if rate:
        args += ["-ar", str(rate)]
    if facts.channels and facts.channels > 2:
        args += ["-ac", "2"]
    return args


def _tee_path(path: Path) -> str:
    """A file name inside the tee muxer's list, its special characters escaped."""
    text = ffmpeg_input(path)
    for char in "\\|[]":
        text = text.replace(char, "\\" + char)
    return text


def live_command(source: Path, quality: str, facts: SourceFacts, start: float) -> list:
    """ffmpeg writing an MP3 of ``source`` from second ``start`` to its standard output: a play
    that starts mid-track before the rendition exists (nothing of it is cached). No Xing frame
    (the length is not known up front) and no cover (the player has the track's)."""
    command = [
        settings.AUDIO_CACHE_FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-v", "error",
        "-ss", f"{start:.3f}",  # before -i: seeks the input, then decodes from there
        "-i", ffmpeg_input(source),
        "-map", "0:a:0", "-map_metadata", "-1",
        "-c:a", "libmp3lame", "-b:a", f"{Variant('mp3', quality).bitrate}k",
    ]  # fmt: skip
    rate = output_sample_rate(facts.sample_rate)
    if rate:
        command += ["-ar", str(rate)]
    if facts.channels and facts.channels > 2:
        command += ["-ac", "2"]
    return [*dies_with_parent(), *command, "-id3v2_version", "0", "-write_xing", "0", "-f", "mp3", "pipe:1"]


def make_temp_path(cache_dir: Path, final_name: str, tag: str = "") -> Path:
    """A unique hidden name next to the final file (same file system, so the rename is atomic)."""
    fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{tag}", suffix=f"-{final_name}{TEMP_SUFFIX}", dir=cache_dir)
    os.close(fd)
    os.unlink(name)  # ffmpeg -n creates it; we only wanted a name nobody else holds
    return Path(name)


def transcode(
    source: Path,
    destination: Path,
    variant: Variant | str,
    facts: SourceFacts,
    *,
    timeout: float | None = None,
    temp_tag: str = "",
    on_progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    before_publish: Callable[[], None] | None = None,
    on_output: Callable[[Path], None] | None = None,
    finish: Callable[[Path], None] | None = None,
    reserve: int = 0,
    on_encoder_exit: Callable[[], None] | None = None,
) -> int:
    """Write the rendition of ``source`` to ``destination`` atomically; returns its size in bytes.

    ``on_progress`` gets 0.0-1.0 as ffmpeg advances; ``should_stop`` is polled and, when it
    returns True, ffmpeg is killed and ``TranscodeError("stopped")`` raised. ``on_output`` gets
    the path of the file listeners may follow while ffmpeg writes it (progressive streaming),
    once ffmpeg has started (the file may not exist yet); if it raises, ffmpeg is killed.
    ``finish`` completes the file once ffmpeg is done (the tags): on a copy when listeners may
    be following the one ffmpeg wrote, so their bytes never change under them.
    ``before_publish`` runs after the file is complete and synced, just before it replaces
    ``destination``; it raises to cancel. ``on_encoder_exit`` is called as soon as ffmpeg has
    exited, whatever its outcome, before the file is finished (a worker pool hands the CPU to
    its next transcode then). On any failure the temporary files are removed and an existing
    ``destination`` is left untouched.
    """
    variant = Variant.of(variant)
    timeout = timeout or settings.AUDIO_CACHE_TRANSCODE_TIMEOUT
    temps: list[Path] = []
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        temp = make_temp_path(destination.parent, destination.name, temp_tag)
        temps.append(temp)
        followed = temp
        if variant.spec.follow_suffix and on_output is not None:  # listeners follow a copy (AAC: ADTS)
            followed_name = destination.with_suffix(variant.spec.follow_suffix).name
            followed = make_temp_path(destination.parent, followed_name, temp_tag)
            temps.append(followed)
    except OSError as exc:
        # A bare OSError used to surface as "internal error" with a traceback in the worker log;
        # this is a failed transcode like any other, with a message that says what to fix.
        raise CacheUnwritable.from_os_error(destination.parent, exc) from None
    command = build_command(
        source, temp, variant, facts, follow=followed if followed != temp else None, reserve=reserve
    )
    # Told once ffmpeg runs, not before: the bookkeeping then overlaps the encode.
    on_started = None if on_output is None else lambda: on_output(followed)
    try:
        try:
            try:
                _run_ffmpeg(command, source, facts.duration, timeout, on_progress, should_stop, on_started)
            finally:
                if on_encoder_exit is not None:
                    on_encoder_exit()
        except (MachineTrouble, TranscodeTimeout):
            raise
        except TranscodeError as exc:
            if str(exc) == "stopped":
                raise
            raise _machine_trouble(destination.parent, str(exc)) or exc from None
        try:
            published = temp
            if finish is not None:
                if followed == temp and on_output is not None:
                    published = make_temp_path(destination.parent, destination.name, temp_tag)
                    temps.append(published)
                    shutil.copyfile(temp, published)
                finish(published)
            size = _fsync(published)
            if size == 0:
                raise TranscodeError("ffmpeg produced an empty file")
            if before_publish is not None:
                before_publish()
            os.replace(published, destination)
            _fsync_dir(destination.parent)
        except OSError as exc:  # the disk filled up or went read-only at the last moment
            raise CacheUnwritable.from_os_error(destination.parent, exc) from None
        return size
    finally:
        for path in temps:
            path.unlink(missing_ok=True)


PROBE_BYTES = 64 * 1024


def _machine_trouble(folder: Path, ffmpeg_message: str) -> MachineTrouble | None:
    """After ffmpeg failed: was it the cache folder rather than the source? Its message says so
    (no space, read-only, permission), or the folder refuses a small write right now."""
    if any(text in ffmpeg_message for text in DISK_FULL_TEXT):
        return CacheDiskFull(f"cannot write to the cache folder {folder} (AUDIO_CACHE_DIR): {DISK_FULL_TEXT[0]}")
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=f"{TEMP_PREFIX}probe-") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return CacheUnwritable.from_os_error(folder, exc)
    return None


@functools.cache
def dies_with_parent() -> list[str]:
    """A prefix that makes the command receive SIGKILL when the thread that started it dies:
    ``setpriv --pdeathsig`` sets PR_SET_PDEATHSIG and then becomes the command (exec), so it
    costs no process. A ``preexec_fn`` could do the same, but is unsafe in a threaded process.
    Empty where util-linux's setpriv is missing (not Linux): ffmpeg then outlives a killed
    parent until its timeout, and the worker's start-up sweep removes its file."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return []
    probe = subprocess.run([setpriv, "--pdeathsig", "KILL", "--", "true"], capture_output=True, check=False)
    return [setpriv, "--pdeathsig", "KILL", "--"] if probe.returncode == 0 else []


def _run_ffmpeg(command, source, duration, timeout, on_progress, should_stop, on_started=None) -> None:
    deadline = time.monotonic() + timeout
    executable = shutil.which(command[0])
    if executable is None:  # said here: setpriv would only report that it could not run it
        if os.path.exists(command[0]):
            raise FFmpegMissing(f"{command[0]!r} is not executable: check AUDIO_CACHE_FFMPEG")
        raise FFmpegMissing(f"{command[0]!r} was not found: install ffmpeg or set AUDIO_CACHE_FFMPEG")
    with tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(
                [*dies_with_parent(), executable, *command[1:]],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1,
            )  # fmt: skip
        except FileNotFoundError:
            raise FFmpegMissing(f"{command[0]!r} was not found: install ffmpeg or set AUDIO_CACHE_FFMPEG") from None
        except PermissionError:
            raise FFmpegMissing(f"{command[0]!r} is not executable: check AUDIO_CACHE_FFMPEG") from None
        try:
            if on_started is not None:
                on_started()
            decoded = _follow_progress(process, duration, deadline, on_progress, should_stop)
            remaining = max(0.1, deadline - time.monotonic())
            returncode = process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            raise TranscodeTimeout(f"ffmpeg took longer than {timeout:g} s (AUDIO_CACHE_TRANSCODE_TIMEOUT)") from None
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
        stderr.seek(0)
        tail = stderr_tail(stderr.read(), source)
        if returncode != 0:
            raise TranscodeError(tail or f"ffmpeg failed with exit status {returncode}")
        # ffmpeg exits 0 after decoding what it could of a damaged file; a rendition much
        # shorter than the source is a failure, not a cache entry.
        if duration and decoded < duration * TRUNCATION_TOLERANCE - 0.25:
            message = f"decoded only {decoded:.1f} s of {duration:.1f} s: the source looks truncated or damaged"
            raise TranscodeError(f"{message}\n{tail}" if tail else message)


def _follow_progress(process, duration, deadline, on_progress, should_stop) -> float:
    """Read ffmpeg's ``-progress`` key=value lines until it closes stdout; returns seconds decoded."""
    # Reading blocks until ffmpeg prints; a watchdog thread enforces the deadline and the
    # stop request by killing ffmpeg, which ends the read.
    expired = threading.Event()
    finished = threading.Event()

    def watchdog():
        while not finished.wait(0.2) and process.poll() is None:
            if time.monotonic() > deadline or (should_stop and should_stop()):
                expired.set()
                process.kill()
                return

    guard = threading.Thread(target=watchdog, name="ffmpeg-watchdog", daemon=True)
    guard.start()
    decoded = 0.0
    for line in process.stdout:
        key, _, value = line.strip().partition("=")
        if key == "out_time_us" and value.isdigit():
            decoded = int(value) / 1e6
            if on_progress and duration:
                on_progress(min(1.0, decoded / duration))
    finished.set()  # ffmpeg closed its output: release the watchdog now, not at its next tick
    guard.join(timeout=1)
    if expired.is_set():
        if should_stop and should_stop():
            raise TranscodeError("stopped")
        raise subprocess.TimeoutExpired(process.args, 0)
    return decoded


def _fsync(path: Path) -> int:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
        return os.fstat(fh.fileno()).st_size


def _fsync_dir(directory: Path) -> None:
    # The rename itself must reach the disk, or a crash could bring the old name back.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_ffmpeg(ffmpeg: str | None = None) -> str:
    """Raise ``FFmpegMissing`` unless ffmpeg runs and has the encoders of the formats the cache
    makes (libmp3lame; libopus when Opus is on; AAC's encoder is ffmpeg's own); returns its
    version line."""
    ffmpeg = ffmpeg or settings.AUDIO_CACHE_FFMPEG
    needed = {"libmp3lame": "MP3"}
    if "opus" in enabled_formats():
        needed["libopus"] = "Opus"
    try:
        version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, timeout=30, check=False)
        missing = [name for name in needed if f"--enable-{name}" not in version.stdout]
        if missing and version.returncode == 0:  # a build that does not list its configuration
            encoders = subprocess.run(
                [ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30, check=False
            )
            missing = [name for name in missing if encoders.returncode != 0 or name not in encoders.stdout]
    except FileNotFoundError:
        raise FFmpegMissing(f"{ffmpeg!r} was not found: install ffmpeg or set AUDIO_CACHE_FFMPEG") from None
    except (PermissionError, subprocess.TimeoutExpired) as exc:
        raise FFmpegMissing(f"{ffmpeg!r} cannot be run ({exc}): check AUDIO_CACHE_FFMPEG") from None
    if version.returncode != 0 or "libmp3lame" in missing:
        raise FFmpegMissing(f"{ffmpeg!r} has no libmp3lame MP3 encoder: install a full ffmpeg build")
    if missing:
        raise FFmpegMissing(
            f"{ffmpeg!r} has no {missing[0]} {needed[missing[0]]} encoder: install a full ffmpeg build, "
            f"or leave {needed[missing[0]].lower()} out of AUDIO_CACHE_FORMATS"
        )
    return (version.stdout.splitlines() or ["ffmpeg"])[0]
