"""Reading a file ffmpeg is still writing (audiocache/delivery/growing.py): waiting for the writer, and
ending when it gives up, stalls or renames the file into place.
"""

import asyncio
import contextlib
import os
import threading
import time

from audiocache.delivery import growing


def read_all(fd, start, length, path=None):
    async def collect():
        return b"".join([chunk async for chunk in growing.read_growing(fd, start, length, path)])

    return asyncio.run(collect())


@contextlib.contextmanager
def appending(path, data: bytes, times: int, every: float):
    """A writer thread adding ``data`` to ``path`` ``times`` times, every ``every`` seconds."""

    def write():
        with open(path, "ab") as fh:
            for _ in range(times):
                time.sleep(every)
                fh.write(data)
                fh.flush()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        yield
    finally:
        writer.join()


def test_read_growing_waits_for_the_writer(tmp_path):
    path = tmp_path / "growing"
    path.write_bytes(b"a" * 1000)
    fd = os.open(path, os.O_RDONLY)
    try:
        with appending(path, b"b" * 1000, times=5, every=0.05):
            assert read_all(fd, 500, 5000) == b"a" * 500 + b"b" * 4500
    finally:
        os.close(fd)


def test_read_growing_ends_when_the_writer_gives_up(tmp_path, settings, monkeypatch):
    path = tmp_path / "abandoned"
    path.write_bytes(b"x" * 100)
    fd = os.open(path, os.O_RDONLY)
    threading.Timer(0.2, path.unlink).start()  # what a failed transcode does with its file
    started = time.monotonic()
    assert read_all(fd, 0, 10_000) == b"x" * 100
    assert time.monotonic() - started < 2

    stalled = tmp_path / "stalled"
    stalled.write_bytes(b"y" * 10)
    stalled_fd = os.open(stalled, os.O_RDONLY)
    monkeypatch.setattr(growing, "stall_seconds", lambda: 0.3)  # a writer that hangs
    assert read_all(stalled_fd, 0, 100) == b"y" * 10
    os.close(fd)
    os.close(stalled_fd)


def test_a_reader_far_ahead_waits_as_long_as_the_file_grows(tmp_path, monkeypatch):
    """Patience is measured by the file's growth, not by this reader's progress: a seek far
    ahead of a slow but live writer waits for it."""
    monkeypatch.setattr(growing, "stall_seconds", lambda: 0.3)
    path = tmp_path / "slow"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        with appending(path, b"z" * 100, times=12, every=0.1):  # 1.2 s in all, far beyond the 0.3 s patience
            assert read_all(fd, 1000, 200) == b"z" * 200
    finally:
        os.close(fd)


def test_a_file_renamed_into_place_ends_the_wait_at_once(tmp_path):
    """Published shorter than planned (a scan that overstated the length): nothing more will come."""
    temp = tmp_path / ".tmp-x.part"
    temp.write_bytes(b"w" * 300)
    fd = os.open(temp, os.O_RDONLY)
    threading.Timer(0.2, os.replace, (temp, tmp_path / "final.mp3")).start()
    started = time.monotonic()
    assert read_all(fd, 0, 1000, temp) == b"w" * 300
    assert time.monotonic() - started < 2
    os.close(fd)
