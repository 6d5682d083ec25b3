"""The in-process probe (mixtapes/probe/headers.py) against ffprobe, field by field.

Whatever reads a file, its track must be the same: read_headers either gives ffprobe's own
answer or no answer at all (then the scan asks ffprobe).
"""

import pytest

from mixtapes.demo import FORMATS, demo_tracks, render_audio, render_cover
from mixtapes.probe import probe, read_headers, run_ffprobe
from mixtapes.tags import read_tags

TAGS = {"title": "Tïtle", "artist": "Ärtist", "album": "Älbum", "album_artist": "Various", "track": "3/12",
        "disc": "2/2"}  # fmt: skip

# (kind, spec fields): what the in-process probe reads itself.
READ_IN_PROCESS = {
    "flac": {},
    "flac-hires-5.1": {"kind": "flac24", "sample_rate": 96000, "channels": 6},
    "flac-mono-cover": {"kind": "flac", "channels": 1, "cover": True},
    "wav": {"kind": "wav"},
    "wav24-5.1": {"kind": "wav24", "channels": 6, "sample_rate": 48000},
    "wav-8bit-mono": {"kind": "wav8", "channels": 1, "sample_rate": 22050},
    "wav-float": {"kind": "wavfloat"},
    "aiff": {"kind": "aiff"},
    "aiff24": {"kind": "aiff24", "sample_rate": 96000},
    "alac": {"kind": "alac"},
    "alac-cover-48k": {"kind": "alac", "sample_rate": 48000, "cover": True},
    "aac": {"kind": "aac"},
    "wavpack": {"kind": "wavpack"},
    "wavpack-mono": {"kind": "wavpack", "channels": 1},
    "mp3": {"kind": "mp3"},
    "mp3-cover-48k": {"kind": "mp3", "sample_rate": 48000, "cover": True},
    "vorbis": {"kind": "vorbis"},
    "opus": {"kind": "opus", "sample_rate": 48000},
}
# What only ffprobe can tell (the in-process probe says so by answering None).
LEFT_TO_FFPROBE = {
    "wavpack-5.1": {"kind": "wavpack", "channels": 6},  # several blocks a frame
    "tta": {"kind": "tta"},  # a container mutagen reads without its bit depth
}


def same_facts(path):
    """Both probes' answers about ``path``, compared field by field."""
    ours, theirs = read_headers(path), run_ffprobe(path)
    assert ours is not None, path.name
    for name in ("codec", "container", "sample_rate", "bit_depth", "channels", "has_cover", "is_lossless"):
        assert getattr(ours, name) == getattr(theirs, name), (
            path.name,
            name,
            getattr(ours, name),
            getattr(theirs, name),
        )
    # Durations to the millisecond (ffprobe prints six decimals); bitrates to the bit per second,
    # but for the rounding of a division both make.
    assert ours.duration == pytest.approx(theirs.duration, abs=1e-3), (path.name, ours.duration, theirs.duration)
    assert ours.bitrate == pytest.approx(theirs.bitrate, abs=2), (path.name, ours.bitrate, theirs.bitrate)
    assert ours.read_tags == read_tags(path, fallback=theirs.tags), path.name
    return ours


@pytest.mark.parametrize("case", list(READ_IN_PROCESS))
def test_the_in_process_probe_gives_what_ffprobe_gives(make_audio, case):
    spec = {"kind": "flac", "duration": 1.5, **READ_IN_PROCESS[case]}
    path = make_audio(case + FORMATS[spec["kind"]][0], tags=TAGS, **spec)
    ours = same_facts(path)
    assert ours.read_tags.title == "Tïtle" and ours.read_tags.track_number == 3


@pytest.mark.parametrize("case", list(LEFT_TO_FFPROBE))
def test_what_only_ffprobe_can_tell_is_left_to_it(make_audio, case):
    spec = {"duration": 1.5, **LEFT_TO_FFPROBE[case]}
    path = make_audio(case + FORMATS[spec["kind"]][0], tags=TAGS, **spec)
    assert read_headers(path) is None
    assert probe(path) == run_ffprobe(path)


def test_the_demo_library_reads_the_same_both_ways(tmp_path):
    covers = [render_cover(tmp_path / "a.jpg", size=32), render_cover(tmp_path / "b.jpg", size=32, seed=3)]
    for relative, spec in demo_tracks(*covers):
        spec.duration = min(spec.duration, 3)
        same_facts(render_audio(tmp_path / "demo" / relative, spec))


@pytest.mark.parametrize(
    "content",
    [b"", b"hello\n" * 100, bytes(range(256)) * 64, b"fLaC" + bytes(200), b"fLaC\x00\x00\x00\x22" + bytes(40)],
    ids=["empty", "text", "random", "flac-magic-then-zeros", "streaminfo-of-zeros"],
)
def test_junk_is_never_read_as_audio(tmp_path, content):
    path = tmp_path / "junk.flac"
    path.write_bytes(content)
    assert read_headers(path) is None  # ffprobe's verdict stands, as before


def test_a_truncated_wav_is_left_to_ffprobe(make_audio):
    path = make_audio("cut.wav", kind="wav", duration=2)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert read_headers(path) is None
