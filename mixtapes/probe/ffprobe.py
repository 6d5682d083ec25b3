"""Ask ffprobe what an audio file holds: the fallback for files read_headers cannot tell.

The transcoder borrows two helpers from here, ``ffmpeg_input`` (a name ffmpeg cannot mistake
for an option or a protocol) and ``stderr_tail`` (ffmpeg's complaint, without the absolute
path it echoes); ``last_line`` picks the line of an error that says what went wrong.
"""

import json
import subprocess
from pathlib import Path

from django.conf import settings

from .result import ProbeError, ProbeResult, ToolMissing, is_lossless_codec, positive_float, positive_int

PROBE_TIMEOUT_SECONDS = 30
STDERR_TAIL_CHARS = 2000


def ffmpeg_input(path: Path) -> str:
    """An input argument ffmpeg cannot mistake for an option or a protocol (``-x.flac``, ``http:a.flac``)."""
    return "file:" + str(Path(path).absolute())


def stderr_tail(stderr: bytes | str, path: Path | None = None, limit: int = STDERR_TAIL_CHARS) -> str:
    """The useful end of ffmpeg's stderr, without the absolute path it echoes back."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    if path is not None:
        text = text.replace(ffmpeg_input(path) + ": ", "").replace(ffmpeg_input(path), "<input>")
    text = text.strip()
    return text[-limit:]


def last_line(text: str, default: str = "") -> str:
    """The last line of a message that says something: ffmpeg's stderr ends with what went wrong."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else default


def run_ffprobe(path: Path, *, ffprobe: str | None = None, timeout: float = PROBE_TIMEOUT_SECONDS) -> ProbeResult:
    """Probe ``path`` (an absolute path to a regular file). Raises ``ProbeError`` with a reason."""
    ffprobe = ffprobe or settings.AUDIO_CACHE_FFPROBE
    command = [
        ffprobe,
        "-hide_banner",
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        "-i",
        ffmpeg_input(path),
    ]
    try:
        completed = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ToolMissing(f"{ffprobe!r} was not found: install ffmpeg or set AUDIO_CACHE_FFPROBE") from None
    except PermissionError:
        raise ToolMissing(f"{ffprobe!r} is not executable: check AUDIO_CACHE_FFPROBE") from None
    except subprocess.TimeoutExpired:
        raise ProbeError(f"ffprobe gave no answer within {timeout:g} s") from None
    if completed.returncode != 0:
        reason = last_line(stderr_tail(completed.stderr, path))
        raise ProbeError(reason or f"ffprobe failed with exit status {completed.returncode}")
    try:
        data = json.loads(completed.stdout.decode("utf-8", "replace"))
    except ValueError:
        raise ProbeError("ffprobe printed something that is not JSON") from None
    try:
        return parse_probe(data)
    except ProbeError as exc:
        # ffprobe guesses the format from the extension and may "succeed" on junk; its stderr says why.
        complaints = stderr_tail(completed.stderr, path).splitlines()
        raise ProbeError(f"{exc}: {complaints[0]}" if complaints else str(exc)) from None


def parse_probe(data: dict) -> ProbeResult:
    streams = data.get("streams") or []
    fmt = data.get("format") or {}
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if audio is None:
        raise ProbeError("no audio stream")
    codec = str(audio.get("codec_name") or "")
    if not codec or codec == "unknown":
        raise ProbeError("unknown audio codec")
    sample_rate, channels = positive_int(audio.get("sample_rate")), positive_int(audio.get("channels"))
    if not sample_rate or not channels:
        raise ProbeError("not a playable audio file (no sample rate or channel count)")
    has_cover = any(
        s.get("codec_type") == "video" and (s.get("disposition") or {}).get("attached_pic") == 1 for s in streams
    )
    tags = {str(k).lower(): str(v) for k, v in (fmt.get("tags") or {}).items()}
    # Ogg/Opus keep their tags on the stream, not the container.
    for k, v in (audio.get("tags") or {}).items():
        tags.setdefault(str(k).lower(), str(v))
    return ProbeResult(
        codec=codec[:32],
        container=str(fmt.get("format_name") or "")[:64],
        duration=positive_float(fmt.get("duration")) or positive_float(audio.get("duration")),
        sample_rate=sample_rate,
        bit_depth=_bit_depth(audio, codec),
        channels=channels,
        bitrate=positive_int(audio.get("bit_rate")) or positive_int(fmt.get("bit_rate")),
        has_cover=has_cover,
        tags=tags,
    )


def _bit_depth(audio: dict, codec: str) -> int | None:
    if not is_lossless_codec(codec):
        return None  # a lossy stream has no meaningful bit depth
    for key in ("bits_per_raw_sample", "bits_per_sample"):
        value = positive_int(audio.get(key))
        if value:
            return value
    return {"s16": 16, "s16p": 16, "u8": 8, "u8p": 8}.get(str(audio.get("sample_fmt")))
