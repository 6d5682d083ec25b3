"""Probing a file (mixtapes/probe/): ffprobe's facts, including damaged and hostile values."""

import pytest

from mixtapes.probe import ProbeError, ToolMissing, ffmpeg_input, is_lossless_codec, parse_probe, probe, run_ffprobe


@pytest.mark.parametrize(
    ("codec", "lossless"),
    [("flac", True), ("alac", True), ("ape", True), ("wavpack", True), ("pcm_s16le", True), ("pcm_s24be", True),
     ("pcm_f32le", True), ("tta", True), ("mp3", False), ("aac", False), ("vorbis", False), ("opus", False),
     ("wmav2", False)],
)  # fmt: skip
def test_lossless_codecs(codec, lossless):
    assert is_lossless_codec(codec) is lossless


def test_input_argument_can_never_be_an_option_or_a_protocol(tmp_path):
    for name in ("-i.flac", "http:x.flac", "concat:a|b.flac"):
        argument = ffmpeg_input(tmp_path / name)
        assert argument.startswith("file:/")
        assert argument.endswith(name)


def test_probe_of_a_5_1_hi_res_file(make_audio):
    path = make_audio("surround.flac", kind="flac24", sample_rate=96000, channels=6)
    result = probe(path)
    assert (result.codec, result.sample_rate, result.bit_depth, result.channels) == ("flac", 96000, 24, 6)
    assert result.is_lossless and not result.has_cover


def test_probe_reports_a_missing_ffprobe(make_audio):
    path = make_audio("a.flac")
    with pytest.raises(ToolMissing, match="not found"):
        run_ffprobe(path, ffprobe="/nonexistent/ffprobe")


def test_probe_of_a_text_file(tmp_path):
    path = tmp_path / "fake.mp3"
    path.write_text("hello\n" * 100)
    with pytest.raises(ProbeError):
        probe(path)


def audio_stream(**overrides):
    return {"codec_type": "audio", "codec_name": "flac", "sample_rate": "44100", "channels": 2, **overrides}


def test_parse_probe_tolerates_absurd_numbers():
    result = parse_probe(
        {
            "streams": [audio_stream(bit_rate="99999999999999999999", bits_per_raw_sample="nan")],
            "format": {"duration": "inf", "bit_rate": "-5", "format_name": "flac"},
        }
    )
    assert (result.bitrate, result.duration, result.bit_depth) == (None, None, None)


@pytest.mark.parametrize(
    "data",
    [
        {"streams": [], "format": {}},
        {"streams": [{"codec_type": "video", "codec_name": "mjpeg"}], "format": {}},
        {"streams": [audio_stream(sample_rate="0")], "format": {}},
        {"streams": [audio_stream(channels=0)], "format": {}},
        {"streams": [audio_stream(codec_name="unknown")], "format": {}},
    ],
)
def test_parse_probe_rejects_what_cannot_be_played(data):
    with pytest.raises(ProbeError):
        parse_probe(data)


def test_stream_tags_fill_in_for_container_tags():
    result = parse_probe({"streams": [audio_stream(tags={"TITLE": "Opus Title"})], "format": {"tags": {}}})
    assert result.tags == {"title": "Opus Title"}
