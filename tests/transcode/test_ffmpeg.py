"""ffmpeg as the transcoder runs it (audiocache/transcode/ffmpeg.py): real ffmpeg on generated audio,
checked with ffprobe; damaged sources, odd names, timeouts, a full disk.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from audiocache.models import CachedRendition
from audiocache.renditions import cache_file_name
from audiocache.seed_api import AudioCache
from audiocache.services.transcoding import make_rendition
from audiocache.transcode.ffmpeg import (
    ENCODER_PROFILE,
    FFmpegMissing,
    SourceFacts,
    TranscodeError,
    TranscodeTimeout,
    build_command,
    check_ffmpeg,
    output_sample_rate,
    transcode,
)
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.conftest import scanned

pytestmark = pytest.mark.django_db


TAGS = {"title": "Song Title", "artist": "Some Artist", "album": "An Album", "track": "3/9"}


def ffprobe(path):
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", f"file:{path}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("name", "spec", "expected_rate"),
    [
        ("a.flac", {"kind": "flac", "cover": True}, 44100),
        ("hi-res.flac", {"kind": "flac24", "sample_rate": 96000, "cover": True}, 48000),
        ("hi-res-44.flac", {"kind": "flac24", "sample_rate": 88200}, 44100),
        ("surround.flac", {"kind": "flac", "channels": 6}, 44100),
        ("a.wav", {"kind": "wav24"}, 44100),
        ("a.aiff", {"kind": "aiff"}, 44100),
        ("a.m4a", {"kind": "alac", "cover": True}, 44100),
        ("a.wv", {"kind": "wavpack"}, 44100),
        ("mono.flac", {"kind": "flac", "channels": 1}, 44100),
    ],
)
@pytest.mark.parametrize("quality", ["high", "low"])
def test_renditions_of_every_lossless_kind(make_audio, settings, name, spec, expected_rate, quality):
    track = scanned(make_audio, name, duration=1.5, tags=TAGS, **spec)
    cache = AudioCache()
    path = cache.transcode_file(track, quality)

    assert path == settings.AUDIO_CACHE_DIR / cache_file_name(name, quality)
    info = ffprobe(path)
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert audio["codec_name"] == "mp3"
    assert int(audio["bit_rate"]) == {"high": 256_000, "low": 128_000}[quality]
    assert int(audio["sample_rate"]) == expected_rate
    assert audio["channels"] == min(2, spec.get("channels", 2))
    assert float(info["format"]["duration"]) == pytest.approx(1.5, abs=0.1)
    tags = {k.lower(): v for k, v in info["format"]["tags"].items()}
    assert (tags["title"], tags["artist"], tags["album"]) == ("Song Title", "Some Artist", "An Album")
    covers = [s for s in info["streams"] if s.get("disposition", {}).get("attached_pic")]
    assert len(covers) == (1 if spec.get("cover") else 0)
    with open(path, "rb") as fh:
        head = fh.read(8192)
    assert head.startswith(b"ID3\x03")  # ID3v2.3
    assert b"Xing" in head or b"Info" in head  # the LAME/Xing header made it into the final file

    rendition = CachedRendition.objects.get(track=track, quality=quality)
    assert rendition.size == path.stat().st_size
    assert rendition.encoder_profile == ENCODER_PROFILE
    assert cache.is_cached(track, quality)
    assert cache.get_cached_or_original(track, quality) == path
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "truncated or damaged"),  # ffmpeg exits 0: the transcoder's own words, then ffmpeg's
        ("text", ""),  # ffmpeg refuses the input: its own words only
        ("zero", ""),
    ],
)
def test_damaged_sources_fail_with_a_readable_error_and_leave_nothing(make_audio, settings, damage, message):
    track = scanned(make_audio, "a.flac", duration=3, noise=True)
    source = settings.MUSIC_ROOT / "a.flac"
    if damage == "truncate":
        source.write_bytes(source.read_bytes()[:40_000])
    elif damage == "text":
        source.write_text("This is not a FLAC file.\n" * 50)
    else:
        source.write_bytes(b"")
    with pytest.raises(TranscodeError) as excinfo:
        AudioCache().transcode_file(track)
    error = str(excinfo.value)
    if message:
        assert re.match(rf"decoded only \d+\.\d s of 3\.0 s: the source looks {message}(\n|$)", error), error
    else:
        # ffmpeg's last words about the input it cannot read ("Cannot determine format of input
        # stream 0:0 after EOF" from ffmpeg 5.1, "Invalid data found when processing input" from others).
        assert re.search(r"\binput\b", error) and not error.startswith("decoded only"), error
    assert "exit status" not in error  # ffmpeg's own words, not the fallback
    assert str(settings.MUSIC_ROOT) not in str(excinfo.value)
    assert CachedRendition.objects.count() == 0
    assert not any(settings.AUDIO_CACHE_DIR.iterdir())


def test_odd_file_names_transcode(make_audio):
    names = ["-dash.flac", "http:x.flac", "concat:a|b.flac", "new\nline.flac", 'quote\'s "x".flac', "日本.flac"]
    for name in names:
        make_audio(name)
    scan_library()
    cache = AudioCache()
    for track in Track.objects.all():
        assert cache.transcode_file(track).is_file()
    assert CachedRendition.objects.count() == len(names)


def test_timeout_kills_ffmpeg_and_leaves_nothing(make_audio, settings):
    track = scanned(make_audio, "long.flac", duration=30, noise=True)
    with pytest.raises(TranscodeTimeout, match="longer than"):
        AudioCache().transcode_file(track, timeout=0.2)
    assert not any(settings.AUDIO_CACHE_DIR.iterdir())


def test_stop_request_kills_ffmpeg(make_audio, settings):
    track = scanned(make_audio, "long.flac", duration=30, noise=True)
    with pytest.raises(TranscodeError, match="stopped"):
        AudioCache().transcode_file(track, should_stop=lambda: True)
    assert not any(settings.AUDIO_CACHE_DIR.iterdir())


def child_processes() -> list[int]:
    """This process's living children: while a transcode runs, its ffmpeg (started by setpriv,
    which then becomes it). Not told apart by their command line: read while setpriv turns into
    ffmpeg, it can be empty."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rpartition(")")[2].split()[:2]
        except OSError:  # it ended meanwhile
            continue
        if int(parent) == os.getpid() and state not in "ZX":
            found.append(int(stat.parent.name))
    return found


def test_listeners_are_told_of_the_file_once_ffmpeg_runs_and_a_failure_to_tell_stops_it(make_audio, settings):
    # The worker's bookkeeping (where listeners follow the file, the batch's "now caching"
    # line) runs while ffmpeg already encodes; if it fails, ffmpeg stops and nothing is left.
    track = scanned(make_audio, "long.flac", duration=30, noise=True)
    running_when_told = []
    others = set(child_processes())  # a browser or server an earlier test of this process left running

    def on_output(temp, frames):
        running_when_told.append(len(set(child_processes()) - others))
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away"):
        make_rendition(track, "mp3:medium", on_output=on_output)
    assert running_when_told == [1]
    assert set(child_processes()) - others == set()
    assert not any(settings.AUDIO_CACHE_DIR.iterdir())


def test_progress_is_reported(make_audio):
    track = scanned(make_audio, "a.flac", duration=3)
    seen = []
    AudioCache().transcode_file(track, on_progress=seen.append)
    assert seen and seen[-1] == pytest.approx(1.0, abs=0.05)
    assert seen == sorted(seen)


def test_missing_ffmpeg_is_a_clear_error(make_audio, settings):
    track = scanned(make_audio, "a.flac")
    settings.AUDIO_CACHE_FFMPEG = "/nonexistent/ffmpeg"
    with pytest.raises(FFmpegMissing, match="not found: install ffmpeg or set AUDIO_CACHE_FFMPEG"):
        check_ffmpeg()
    with pytest.raises(FFmpegMissing):
        AudioCache().transcode_file(track)


def test_command_shape(tmp_path):
    facts = SourceFacts(sample_rate=192000, channels=6, has_cover=True, duration=10)
    command = build_command(tmp_path / "-in.flac", tmp_path / "out.mp3", "medium", facts, ffmpeg="ffmpeg")
    assert command[:3] == ["ffmpeg", "-hide_banner", "-nostdin"]
    assert command[command.index("-i") + 1] == f"file:{tmp_path}/-in.flac"
    assert command[command.index("-b:a") + 1] == "192k"
    assert command[command.index("-ar") + 1] == "48000"
    assert command[command.index("-ac") + 1] == "2"
    assert command[command.index("-id3v2_version") + 1] == "3"
    assert command[-1] == f"file:{tmp_path}/out.mp3"
    plain = build_command(tmp_path / "a.flac", tmp_path / "o.mp3", "low", SourceFacts(44100, 2, False, 1))
    assert "-ar" not in plain and "-ac" not in plain and "0:v?" not in plain
    # With a cover, the audio is not held back to interleave with the picture (progressive listeners).
    assert command[command.index("-max_interleave_delta") + 1] == "100000"
    assert "-max_interleave_delta" not in plain
    assert command[command.index("-flush_packets") + 1] == "1"
    assert [output_sample_rate(r) for r in (None, 44100, 48000, 88200, 96000, 176400, 192000)] == [
        None, None, None, 44100, 48000, 44100, 48000
    ]  # fmt: skip


def test_transcode_refuses_to_overwrite_its_temporary_name(make_audio, settings, tmp_path):
    source = make_audio("a.flac")
    out = tmp_path / "out" / "x.mp3"
    size = transcode(source, out, "low", SourceFacts(44100, 2, False, 1.0))
    assert size == out.stat().st_size > 0


@pytest.fixture
def tiny_cache_dir(small_tmpfs, settings):
    """A 64 KiB file system as the cache folder (needs root to mount tmpfs; skipped otherwise)."""
    settings.AUDIO_CACHE_DIR = small_tmpfs("64k", "tiny-cache")
    return settings.AUDIO_CACHE_DIR


def test_a_full_disk_fails_clearly_and_leaves_nothing(make_audio, settings, tiny_cache_dir, client):
    from tests.factories import UserFactory

    track = scanned(make_audio, "big.flac", duration=10, noise=True)  # ~320 KB at 256k: more than 64 KiB
    with pytest.raises(TranscodeError, match="No space left on device"):
        AudioCache().transcode_file(track, "high")
    assert list(tiny_cache_dir.iterdir()) == []  # no partial file
    assert CachedRendition.objects.count() == 0
    client.force_login(UserFactory())
    response = client.get(f"/stream/{track.pk}/?quality=high")
    assert response.status_code == 200 and response["X-Audio-Cache"] == "miss"  # the original still plays


def test_an_ffmpeg_without_opus_is_refused_only_while_opus_is_on(tmp_path, settings):
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        '#!/bin/sh\n[ "$1" = "-version" ] && echo "ffmpeg version 9 configuration: --enable-libmp3lame" && exit 0\n'
        'echo " A..... libmp3lame  MP3"\n'
    )
    fake.chmod(0o755)
    with pytest.raises(FFmpegMissing, match=r"no libopus Opus encoder.*leave opus out of AUDIO_CACHE_FORMATS"):
        check_ffmpeg(str(fake))
    settings.AUDIO_CACHE_FORMATS = ["mp3", "aac"]
    assert check_ffmpeg(str(fake)) == "ffmpeg version 9 configuration: --enable-libmp3lame"


def test_opus_and_aac_commands(tmp_path):
    facts = SourceFacts(sample_rate=96000, channels=6, has_cover=True, duration=10)
    opus = build_command(tmp_path / "a.flac", tmp_path / "o.opus", "opus:high", facts, ffmpeg="ffmpeg")
    assert opus[opus.index("-c:a") + 1 :][:5] == ["libopus", "-b:a", "160k", "-vbr", "on"]
    assert opus[opus.index("-ar") + 1] == "48000" and opus[opus.index("-ac") + 1] == "2"
    assert opus[-3:] == ["-f", "opus", f"file:{tmp_path}/o.opus"] and "0:v?" not in opus  # the cover: tags.py
    aac = build_command(tmp_path / "a.flac", tmp_path / "o.m4a", "aac:low", facts, ffmpeg="ffmpeg")
    assert aac[aac.index("-c:a") + 1 : aac.index("-c:a") + 4] == ["aac", "-b:a", "128k"]
    assert aac[-1] == f"file:{tmp_path}/o.m4a"
    assert aac[aac.index("-f") + 1] == "mp4" and "+faststart" in aac
    # Followed while it is made: one encode, two files, names escaped for the tee muxer.
    odd = tmp_path / "we|ird[dir]"
    tee = build_command(tmp_path / "a.flac", odd / "o.m4a", "aac:low", facts, ffmpeg="ffmpeg", follow=odd / "o.aac")
    assert tee[-2] == "tee"
    escaped = str(odd).replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")
    assert tee[-1] == (
        f"[f=mp4:movflags=+faststart]file:{escaped}/o.m4a|[f=adts:onfail=ignore:flush_packets=1]file:{escaped}/o.aac"
    )
