"""MP3 frame arithmetic: how long a constant-bitrate rendition will be before it is finished.

Progressive streaming (audiocache/services/following.py) tells players the rendition's final size
while ffmpeg is still writing it, so they can seek in it. A CBR MP3 made by ffmpeg is:

    [ID3v2 tag] [one Xing/Info frame, rewritten in place at the end] [N audio frames]

The tag and the Xing frame are written first, so their lengths are read from the file once
ffmpeg has flushed its first bytes. N follows from the number of samples (the track's probed
duration): LAME encodes its delay on top and pads the last frame (``audio_frames``). The
frames' lengths follow from the bitrate, with LAME's padding byte spread evenly
(``audio_bytes``). tests/test_mp3.py checks both against real ffmpeg at every sample rate
family and bitrate. (A file whose probed duration is wrong decodes to another length: its
rendition is still right, only the size told to its first listeners was not; see renditions.py.)

Written by hand: mutagen reads finished files; nothing predicts the size of one in the making.
"""

import math
import os
from dataclasses import dataclass

# How many samples LAME encodes beyond the source's before its last frame: its 576-sample
# encoder delay and 576 more it flushes (measured with the libmp3lame ffmpeg uses: the frame
# count steps up exactly when samples + 1152 passes a multiple of the frame size, at every
# rate, 576- and 1152-sample frames alike). The delay a decoder skips, 576 + 529 = 1105, was
# used here first and planned one frame short for 1 length in 24 at 1152-sample frames
# (a 25 s ALAC track of the demo library; tests/transcode/test_mp3.py sweeps that window now).
LAME_DELAY = 576 + 576

_BITRATES_KBPS = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG-1 layer III
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),  # MPEG-2/2.5 layer III
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
# Every rate an MP3 can have.
SAMPLE_RATES = frozenset(rate for rates in _SAMPLE_RATES.values() for rate in rates)


class NotYet(Exception):
    """The bytes so far do not reach the first audio frame: read again when the file has grown."""


class NotMP3(ValueError):
    """The bytes are not an MP3 as this app writes them."""


@dataclass(frozen=True)
class FrameHeader:
    version: int  # 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
    bitrate_kbps: int
    sample_rate: int
    padding: int

    @property
    def samples_per_frame(self) -> int:
        return 1152 if self.version == 3 else 576

    @property
    def _slot_bytes(self) -> int:
        return 144_000 if self.version == 3 else 72_000

    @property
    def length(self) -> int:
        return self._slot_bytes * self.bitrate_kbps // self.sample_rate + self.padding


def parse_frame_header(data: bytes) -> FrameHeader:
    if len(data) < 4:
        raise NotYet
    word = int.from_bytes(data[:4], "big")
    version, layer = (word >> 19) & 3, (word >> 17) & 3
    bitrate_index, rate_index = (word >> 12) & 15, (word >> 10) & 3
    if word >> 21 != 0x7FF or version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        raise NotMP3("no MPEG layer III frame header where one was expected")
    return FrameHeader(
        version=version,
        bitrate_kbps=_BITRATES_KBPS[1 if version == 3 else 2][bitrate_index],
        sample_rate=_SAMPLE_RATES[version][rate_index],
        padding=(word >> 9) & 1,
    )


def id3v2_length(data: bytes) -> int:
    """Bytes taken by the ID3v2 tag at the start of ``data`` (0 without one)."""
    if len(data) < 10:
        raise NotYet
    if data[:3] != b"ID3":
        return 0
    size = data[6:10]
    if any(b & 0x80 for b in size):
        raise NotMP3("damaged ID3v2 tag size")
    footer = 10 if data[5] & 0x10 else 0
    return 10 + (size[0] << 21 | size[1] << 14 | size[2] << 7 | size[3]) + footer


@dataclass(frozen=True)
class Layout:
    """Where the audio starts and how its frames are made."""

    audio_offset: int  # ID3v2 tag + Xing frame
    frame: FrameHeader  # the first audio frame's header


def read_layout(head: bytes) -> Layout:
    """The layout from the first bytes of a rendition; ``NotYet`` until they reach the first audio frame."""
    return read_layout_at(lambda size, offset: head[offset : offset + size])


def audio_frames(samples: int, samples_per_frame: int) -> int:
    """How many frames LAME makes of ``samples`` samples (its delay included, the last frame padded)."""
    return math.ceil((samples + LAME_DELAY) / samples_per_frame)


def samples_per_frame_at(sample_rate: int) -> int:
    return 1152 if sample_rate >= 32000 else 576


def audio_bytes(frames: int, frame: FrameHeader) -> int:
    """The length of ``frames`` CBR frames. LAME pads frame k (k >= 2) with one byte whenever the
    running remainder of bytes-per-frame crosses a whole byte, so the total is exact."""
    whole, remainder = divmod(frame._slot_bytes * frame.bitrate_kbps, frame.sample_rate)
    return frames * whole + math.ceil((frames - 1) * remainder / frame.sample_rate)


def final_size(layout: Layout, frames: int) -> int:
    return layout.audio_offset + audio_bytes(frames, layout.frame)


def read_layout_at(read) -> Layout:
    """``read_layout`` for a file read piecewise: ``read(size, offset)`` returns the bytes there
    (short at the end of what is written), so a large cover picture is never read."""
    tag = id3v2_length(read(10, 0))
    xing = parse_frame_header(read(4, tag))
    audio_offset = tag + xing.length
    return Layout(audio_offset, parse_frame_header(read(4, audio_offset)))


def read_layout_of(fd: int) -> Layout:
    """``read_layout`` of an open file (one that may still be growing), read in place."""
    return read_layout_at(lambda size, offset: os.pread(fd, size, offset))
