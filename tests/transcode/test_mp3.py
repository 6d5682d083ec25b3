"""audiocache/transcode/mp3.py: the size of a rendition is known before ffmpeg has finished it.

Progressive streaming tells players this size up front, so it must be the finished file's
size to the byte, at every sample rate family, bitrate and length: checked here against
real ffmpeg runs through the real ffmpeg.
"""

import os
import subprocess

import pytest

from audiocache.models import CachedRendition
from audiocache.renditions import planned_frames
from audiocache.seed_api import AudioCache
from audiocache.transcode import mp3
from audiocache.transcode.ffmpeg import SourceFacts, build_command
from mixtapes.demo import FORMATS
from mixtapes.files import source_state
from mixtapes.library import scan_library
from mixtapes.models import Track

pytestmark = pytest.mark.django_db


def frame_lengths(data: bytes) -> list[int]:
    """The lengths of the MPEG frames after the ID3v2 tag, walking header to header."""
    position, lengths = mp3.id3v2_length(data), []
    while position < len(data):
        length = mp3.parse_frame_header(data[position : position + 4]).length
        lengths.append(length)
        position += length
    assert position == len(data), "the file does not end on a frame boundary"
    return lengths


@pytest.mark.parametrize(
    ("sample_rate", "duration"),
    [
        (44100, 1.37),
        (48000, 2.0),
        (32000, 1.01),
        (96000, 1.5),  # resampled to 48 kHz
        (88200, 0.73),  # resampled to 44.1 kHz
        (22050, 1.2),  # MPEG-2: 576 samples a frame, 160k at most
        (11025, 0.9),  # MPEG-2.5: 64k at most
        (8000, 1.1),
    ],
)
@pytest.mark.parametrize("quality", ["high", "medium", "low"])
def test_the_planned_size_is_the_size_ffmpeg_writes(make_audio, sample_rate, duration, quality):
    make_audio("a.flac", kind="flac", sample_rate=sample_rate, duration=duration, noise=True, cover=True)
    scan_library()
    track = Track.objects.get()
    frames = planned_frames(track, source_state(track))
    assert frames is not None

    path = AudioCache().transcode_file(track, quality)
    data = path.read_bytes()
    assert mp3.final_size(mp3.read_layout(data), frames) == len(data) == CachedRendition.objects.get().size
    assert len(frame_lengths(data)) == 1 + frames  # the Xing frame, then the planned audio frames


@pytest.mark.parametrize(("sample_rate", "samples"), [(44100, 44100), (48000, 1152 * 20), (22050, 25506), (8000, 9000)])
def test_lame_makes_the_planned_number_of_frames_by_itself(make_audio, tmp_path, sample_rate, samples):
    """The count ``audio_frames`` plans is the one LAME makes for that many samples."""
    source = make_audio("a.flac", kind="flac", sample_rate=sample_rate, duration=samples / sample_rate)
    scan_library()
    samples = round(Track.objects.get().duration * sample_rate)  # the generator rounds up to its block size
    output = tmp_path / "natural.mp3"
    facts = SourceFacts(sample_rate, 2, False, None)  # no planned frames: ffmpeg decides
    subprocess.run(build_command(source, output, "medium", facts), check=True, capture_output=True, timeout=60)
    data = output.read_bytes()
    assert len(frame_lengths(data)) - 1 == mp3.audio_frames(samples, mp3.samples_per_frame_at(sample_rate))


def test_nothing_is_planned_when_the_length_is_not_known_exactly(make_audio, settings):
    make_audio("a.flac", kind="flac", duration=1)
    make_audio("odd-rate.flac", kind="flac", sample_rate=37800, duration=1)
    scan_library()
    track = Track.objects.get(path="a.flac")
    state = source_state(track)
    assert planned_frames(track, state) is not None

    track.duration = None  # a FLAC that does not state its length: the scan found none
    assert planned_frames(track, state) is None
    track.refresh_from_db()
    os.utime(state.path, ns=(state.mtime_ns, state.mtime_ns + 10**9))  # changed since the scan
    assert planned_frames(track, source_state(track)) is None
    odd = Track.objects.get(path="odd-rate.flac")  # ffmpeg picks the MP3 rate itself
    assert planned_frames(odd, source_state(odd)) is None

    # Unplanned transcodes work as before, their size decided by ffmpeg.
    path = AudioCache().transcode_file(track, "low")
    assert CachedRendition.objects.get().size == path.stat().st_size > 0


@pytest.mark.parametrize(("scanned", "real"), [(2.3, 2.0), (1.5, 2.0)])
def test_a_wrong_scanned_duration_never_cuts_or_pads_the_rendition(make_audio, settings, caplog, scanned, real):
    """The plan comes from the scan; the rendition from the audio. When they disagree (a file
    whose header states another length), the rendition is the whole audio, and the log says
    that the size told to listeners who followed the transcode was wrong."""
    make_audio("a.flac", kind="flac", duration=real, noise=True)
    scan_library()
    Track.objects.update(duration=scanned)
    path = AudioCache().transcode_file(Track.objects.get(), "medium")
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", f"file:{path}"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    assert float(probe.stdout) == pytest.approx(real, abs=0.06)
    assert "were planned from the scanned duration" in caplog.text


def test_no_frames_are_planned_with_progressive_streaming_off(make_audio, settings, caplog):
    settings.AUDIO_CACHE_PROGRESSIVE = False
    make_audio("a.flac", kind="flac", duration=1)
    scan_library()
    Track.objects.update(duration=1.1)  # wrong, but nobody was told a size
    AudioCache().transcode_file(Track.objects.get(), "low")
    assert "planned" not in caplog.text


# --- header parsing ---------------------------------------------------------------------------


def frame_header(version_bits=3, bitrate_index=11, rate_index=0, padding=0) -> bytes:
    word = 0x7FF << 21 | version_bits << 19 | 1 << 17 | 1 << 16 | bitrate_index << 12 | rate_index << 10
    return (word | padding << 9).to_bytes(4, "big")


def test_frame_headers():
    header = mp3.parse_frame_header(frame_header())
    assert (header.version, header.bitrate_kbps, header.sample_rate, header.length) == (3, 192, 44100, 626)
    assert mp3.parse_frame_header(frame_header(padding=1)).length == 627
    mpeg2 = mp3.parse_frame_header(frame_header(version_bits=2, bitrate_index=14, rate_index=1))
    assert (mpeg2.bitrate_kbps, mpeg2.sample_rate, mpeg2.samples_per_frame, mpeg2.length) == (160, 24000, 576, 480)


@pytest.mark.parametrize(
    "data",
    [
        b"RIFF\x00\x00\x00\x00WAVE",  # another format
        frame_header(version_bits=1),  # reserved version
        frame_header(bitrate_index=15),  # "bad" bitrate
        frame_header(bitrate_index=0),  # free format: no fixed frame length
        frame_header(rate_index=3),  # reserved rate
    ],
)
def test_what_is_not_a_frame_header_is_refused(data):
    with pytest.raises(mp3.NotMP3):
        mp3.parse_frame_header(data)


def test_short_reads_mean_not_yet():
    tag = b"ID3\x03\x00\x00\x00\x00\x02\x00" + b"\x00" * 256  # a 256-byte tag
    with pytest.raises(mp3.NotYet):
        mp3.read_layout(tag[:5])
    with pytest.raises(mp3.NotYet):
        mp3.read_layout(tag)  # the Xing frame is not written yet
    xing = frame_header() + b"\x00" * 622
    with pytest.raises(mp3.NotYet):
        mp3.read_layout(tag + xing + b"\xff")  # nor the first audio frame's header
    layout = mp3.read_layout(tag + xing + frame_header(padding=1))
    assert (layout.audio_offset, layout.frame.bitrate_kbps) == (266 + 626, 192)


def test_id3_tags():
    assert mp3.id3v2_length(b"\xff\xfb\x90\x00" + b"\x00" * 10) == 0  # no tag
    assert mp3.id3v2_length(b"ID3\x04\x00\x10\x00\x00\x01\x00") == 10 + 128 + 10  # with a footer
    with pytest.raises(mp3.NotMP3):
        mp3.id3v2_length(b"ID3\x03\x00\x00\x00\x80\x00\x00")  # not syncsafe: damaged


def test_padding_is_spread_as_lame_spreads_it():
    frame = mp3.parse_frame_header(frame_header())  # 192k at 44.1 kHz: 626.94 bytes a frame
    assert mp3.audio_bytes(1, frame) == 626
    assert mp3.audio_bytes(40, frame) == 40 * 626 + 37
    at_48k = mp3.parse_frame_header(frame_header(rate_index=1))  # 576 bytes exactly: never padded
    assert mp3.audio_bytes(1000, at_48k) == 576_000


def exact_wav(path, samples: int, sample_rate: int):
    """A WAV of exactly ``samples`` samples (ffmpeg's generators round up to their block size)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"sine=frequency=440:sample_rate={sample_rate},atrim=end_sample={samples}", "-ac", "2", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


@pytest.mark.parametrize(("sample_rate", "frame"), [(44100, 1152), (48000, 1152), (22050, 576), (8000, 576)])
def test_the_frame_count_is_right_around_every_step(tmp_path, sample_rate, frame):
    """LAME adds a frame exactly when samples + 1152 passes a multiple of the frame size. The 47
    lengths before each step were planned one frame short (a 25 s ALAC track was one of them:
    listeners following its transcode lost the end)."""
    step = 40 * frame + 1  # the first length of the next frame count
    for samples in (step - 48, step - 47, step - 20, step - 1, step, step + 1):
        source = exact_wav(tmp_path / f"{samples}.wav", samples, sample_rate)
        output = tmp_path / f"{samples}.mp3"
        facts = SourceFacts(sample_rate, 2, False, None)
        subprocess.run(build_command(source, output, "low", facts), check=True, capture_output=True, timeout=60)
        made = len(frame_lengths(output.read_bytes())) - 1
        assert made == mp3.audio_frames(samples, frame), (samples, made)


@pytest.mark.parametrize(
    ("kind", "sample_rate", "channels", "duration"),
    [
        ("alac", 44100, 2, 25.0),  # the demo library's "04 - Apple Orchard.m4a": 1,102,500 samples
        ("alac", 48000, 2, 3.3),
        ("wavpack", 44100, 2, 2.5),
        ("aiff", 44100, 2, 2.1),
        ("aiff24", 96000, 2, 1.7),  # 24-bit/96 kHz, resampled to 48 kHz
        ("flac24", 96000, 2, 2.2),
        ("flac", 44100, 6, 1.9),  # 5.1, downmixed to stereo
        ("wav", 44100, 1, 2.3),  # mono
        ("wav8", 22050, 1, 1.6),  # 8-bit, 22.05 kHz
    ],
)
def test_the_planned_size_holds_for_every_lossless_format(make_audio, kind, sample_rate, channels, duration):
    make_audio("a" + FORMATS[kind][0], kind=kind, sample_rate=sample_rate, channels=channels, duration=duration)
    scan_library()
    track = Track.objects.get()
    frames = planned_frames(track, source_state(track))
    assert frames is not None, track.codec
    data = AudioCache().transcode_file(track, "medium").read_bytes()
    assert mp3.final_size(mp3.read_layout(data), frames) == len(data), (track.codec, track.duration)
