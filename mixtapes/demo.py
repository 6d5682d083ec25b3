"""Make real audio files with ffmpeg's signal generators: the demo library, and test fixtures.

Nothing here reads a user's files; every output path is new (``render_audio`` refuses to
overwrite), so pointing it at a real library cannot damage it.
"""

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

GENERATE_TIMEOUT_SECONDS = 120


class RenderError(Exception):
    pass


# kind -> (file extension, ffmpeg audio codec arguments, container can hold a cover picture)
FORMATS: dict[str, tuple[str, list[str], bool]] = {
    "flac": (".flac", ["-c:a", "flac", "-sample_fmt", "s16"], True),
    "flac24": (".flac", ["-c:a", "flac", "-sample_fmt", "s32"], True),  # FLAC stores s32 input as 24-bit
    "wav": (".wav", ["-c:a", "pcm_s16le"], False),
    "wav24": (".wav", ["-c:a", "pcm_s24le"], False),
    "aiff": (".aiff", ["-c:a", "pcm_s16be", "-write_id3v2", "1"], False),
    "alac": (".m4a", ["-c:a", "alac", "-sample_fmt", "s16p"], True),
    "wavpack": (".wv", ["-c:a", "wavpack", "-sample_fmt", "s16p"], False),
    "aac": (".m4a", ["-c:a", "aac", "-b:a", "128k"], True),
    "mp3": (".mp3", ["-c:a", "libmp3lame", "-b:a", "192k", "-id3v2_version", "3"], True),
    "opus": (".opus", ["-c:a", "libopus", "-b:a", "96k"], False),
    # Rarer kinds, for the probe tests.
    "wav8": (".wav", ["-c:a", "pcm_u8"], False),
    "wavfloat": (".wav", ["-c:a", "pcm_f32le"], False),
    "aiff24": (".aiff", ["-c:a", "pcm_s24be", "-write_id3v2", "1"], False),
    "vorbis": (".ogg", ["-c:a", "libvorbis", "-q:a", "2"], False),
    "tta": (".tta", ["-c:a", "tta"], False),
}


def chord(*frequencies: float, tremolo: float = 0.0) -> str:
    """An ``aevalsrc`` expression: a soft chord, optionally with a slow tremolo."""
    voices = "+".join(f"sin(2*PI*{f}*t)" for f in frequencies)
    level = f"0.6/{len(frequencies)}"
    wobble = f"*(1-{tremolo}*(0.5+0.5*sin(2*PI*3*t)))" if tremolo else ""
    return f"{level}*({voices}){wobble}"


@dataclass
class AudioSpec:
    kind: str = "flac"
    duration: float = 1.0
    sample_rate: int = 44100
    channels: int = 2
    signal: str = ""  # an aevalsrc expression; default a 440 Hz tone
    noise: bool = False  # pink noise instead of a tone (compresses badly, like real music)
    tags: dict[str, str] = field(default_factory=dict)
    cover: Path | None = None


def render_cover(path: Path, *, size: int = 300, seed: int = 0) -> Path:
    """A picture for embedding: a Mandelbrot view, different for each ``seed``."""
    _run(
        ["-f", "lavfi", "-i", f"mandelbrot=size={size}x{size}:start_scale={2 + seed * 0.7}:outer=normalized_iteration_count",
         "-frames:v", "1", "-update", "1", "-q:v", "4"],
        path,
    )  # fmt: skip
    return path


def render_audio(path: Path, spec: AudioSpec | None = None, **overrides) -> Path:
    """Write one audio file described by ``spec`` (or keyword overrides of the defaults) to ``path``."""
    spec = spec or AudioSpec(**overrides)
    try:
        _ext, codec_args, takes_cover = FORMATS[spec.kind]
    except KeyError:
        raise RenderError(f"unknown audio kind {spec.kind!r}; known: {', '.join(FORMATS)}") from None
    if spec.noise:
        source = f"anoisesrc=color=pink:amplitude=0.3:duration={spec.duration}:sample_rate={spec.sample_rate}"
    else:
        expression = spec.signal or "0.3*sin(2*PI*440*t)"
        source = f"aevalsrc={expression}:s={spec.sample_rate}:d={spec.duration}"
    args = ["-f", "lavfi", "-i", source]
    if spec.cover is not None and takes_cover:
        args += ["-i", f"file:{Path(spec.cover).absolute()}", "-map", "0:a", "-map", "1:v", "-c:v", "copy",
                 "-disposition:v", "attached_pic"]  # fmt: skip
    args += [*codec_args, "-ac", str(spec.channels)]
    # ffmpeg's own tag names; the muxer maps them to Vorbis comments, ID3 frames or MP4 atoms.
    for key, value in spec.tags.items():
        args += ["-metadata", f"{key}={value}"]
    _run(args, path)
    return path


def _run(args: list[str], path: Path) -> None:
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    # -n: never overwrite; "file:" keeps a name like "-x.flac" or "a:b.flac" a plain file.
    command = [settings.AUDIO_CACHE_FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-n", *args, f"file:{path}"]
    try:
        completed = subprocess.run(command, capture_output=True, timeout=GENERATE_TIMEOUT_SECONDS, check=False)
    except FileNotFoundError:
        raise RenderError(
            f"{settings.AUDIO_CACHE_FFMPEG!r} was not found: install ffmpeg or set AUDIO_CACHE_FFMPEG"
        ) from None
    except subprocess.TimeoutExpired:
        raise RenderError(f"ffmpeg took longer than {GENERATE_TIMEOUT_SECONDS} s to write {path.name}") from None
    if completed.returncode != 0:
        raise RenderError(
            f"ffmpeg could not write {path.name}: {completed.stderr.decode('utf-8', 'replace').strip()[-500:]}"
        )


# --- The demo library ------------------------------------------------------------------

C4, D4, E4, F4, G4, A4, B4, C5 = 261.63, 293.66, 329.63, 349.23, 392.0, 440.0, 493.88, 523.25


def demo_tracks(cover_a: Path, cover_b: Path) -> list[tuple[str, AudioSpec]]:
    """Relative path and spec of every demo track: one of each format the app treats differently."""
    album = {"album": "Signal Garden", "artist": "The Test Tones", "album_artist": "The Test Tones", "date": "2026"}
    other = {"album": "Café Nocturne", "artist": "Ensemble Ondes", "album_artist": "Ensemble Ondes", "date": "2025"}
    a, b = "The Test Tones/Signal Garden (2026)", "Ensemble Ondes/Café Nocturne (2025)"
    return [
        (f"{a}/01 - Morning Chord.flac",
         AudioSpec("flac", 30, signal=chord(C4, E4, G4), cover=cover_a,
                   tags={**album, "title": "Morning Chord", "track": "1/6"})),
        (f"{a}/02 - High Resolution.flac",
         AudioSpec("flac24", 20, sample_rate=96000, signal=chord(D4, F4, A4, tremolo=0.4), cover=cover_a,
                   tags={**album, "title": "High Resolution (24-bit 96 kHz)", "track": "2/6"})),
        (f"{a}/03 - Pink Weather.wav",
         AudioSpec("wav", 15, noise=True, tags={**album, "title": "Pink Weather", "track": "3/6"})),
        (f"{a}/04 - Apple Orchard.m4a",
         AudioSpec("alac", 25, signal=chord(E4, G4, B4), cover=cover_a,
                   tags={**album, "title": "Apple Orchard (ALAC)", "track": "4/6"})),
        (f"{a}/05 - Surround Check.flac",
         AudioSpec("flac", 12, channels=6, signal=chord(F4, A4, C5),
                   tags={**album, "title": "Surround Check (5.1)", "track": "5/6"})),
        (f"{a}/06 - Long Fade.aiff",
         AudioSpec("aiff", 60, signal=chord(C4, G4, tremolo=0.8), tags={**album, "title": "Long Fade", "track": "6/6"})),
        (f"{b}/01 - Après minuit.flac",
         AudioSpec("flac", 40, signal=chord(A4 / 2, C4, E4, tremolo=0.3), cover=cover_b,
                   tags={**other, "title": "Après minuit", "track": "1/3"})),
        (f"{b}/02 - Ondes Martenot.wv",
         AudioSpec("wavpack", 20, signal=chord(G4, B4, tremolo=0.6), tags={**other, "title": "Ondes Martenot", "track": "2/3"})),
        (f"{b}/03 - Already Small.mp3",
         AudioSpec("mp3", 30, signal=chord(D4, G4, B4), cover=cover_b,
                   tags={**other, "title": "Already Small (MP3)", "track": "3/3"})),
    ]  # fmt: skip


def make_demo_library(target: Path, *, on_file=None) -> list[Path]:
    """Fill the empty (or new) folder ``target`` with the demo tracks; returns the files made."""
    target = Path(target).absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise RenderError(f"{target} exists and is not an empty folder; choose a new folder for the demo library")
    work = target / ".covers"
    work.mkdir(parents=True)
    try:
        cover_a = render_cover(work / "a.jpg", seed=0)
        cover_b = render_cover(work / "b.jpg", seed=3)
        made = []
        for relative, spec in demo_tracks(cover_a, cover_b):
            made.append(render_audio(target / relative, spec))
            if on_file:
                on_file(made[-1])
    finally:
        for picture in work.iterdir():
            picture.unlink()
        work.rmdir()
    return made
