"""Reading a file's bytes (audiocache/delivery/files.py): page-cache reads on the event loop, the disk in a
thread.
"""

import asyncio
import errno
import os

import pytest

from audiocache.delivery import files


@pytest.fixture
def data_file(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "CHUNK_SIZE", 64 * 1024)
    data = os.urandom(300 * 1024 + 7)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    yield fd, data
    os.close(fd)


@pytest.fixture
def thread_reads(monkeypatch):
    """Counts the reads done by the default executor (os.pread) rather than inline."""
    calls = []
    real_pread = os.pread

    def pread(fd, size, position):
        calls.append(position)
        return real_pread(fd, size, position)

    monkeypatch.setattr(files.os, "pread", pread)
    return calls


def collect(fd, start, length) -> list[bytes]:
    async def run():
        return [chunk async for chunk in files.read_chunks(fd, start, length)]

    return asyncio.run(run())


def fake_preadv(monkeypatch, outcome):
    """Replace os.preadv: ``outcome(call_number, size)`` returns a byte count to read or raises."""
    calls = []
    real_preadv = os.preadv

    def preadv(fd, buffers, position, flags=0):
        calls.append(position)
        assert flags == files._NOWAIT
        count = outcome(len(calls), len(buffers[0]))
        return real_preadv(fd, [memoryview(buffers[0])[:count]], position)

    monkeypatch.setattr(files.os, "preadv", preadv)
    return calls


@pytest.mark.skipif(not getattr(os, "RWF_NOWAIT", 0), reason="no RWF_NOWAIT on this platform")
@pytest.mark.parametrize(("start", "length"), [(0, 300 * 1024 + 7), (1, 100), (65535, 65537), (300 * 1024, 7)])
def test_bodies_are_exact(data_file, start, length):
    fd, data = data_file
    assert b"".join(collect(fd, start, length)) == data[start : start + length]
    assert max(len(c) for c in collect(fd, 0, len(data))) == 64 * 1024  # one chunk in flight, bounded


def test_cached_chunks_are_read_inline(data_file, thread_reads, monkeypatch):
    fd, data = data_file
    calls = fake_preadv(monkeypatch, lambda n, size: size)
    chunks = collect(fd, 0, len(data))
    assert b"".join(chunks) == data and [len(c) for c in chunks] == [65536] * 4 + [len(data) - 4 * 65536]
    assert len(calls) == 5 and thread_reads == []


def test_chunks_that_would_wait_for_the_disk_are_read_in_a_thread(data_file, thread_reads, monkeypatch):
    fd, data = data_file

    def every_other_call_would_block(n, size):
        if n % 2:
            raise BlockingIOError(errno.EAGAIN, "would block")
        return size

    calls = fake_preadv(monkeypatch, every_other_call_would_block)
    assert b"".join(collect(fd, 0, len(data))) == data
    assert len(calls) == 5  # tried inline each time: a miss for one chunk says nothing of the next
    assert thread_reads == [0, 2 * 65536, 4 * 65536]


def test_a_partly_cached_chunk_is_sent_as_far_as_it_is_cached(data_file, thread_reads, monkeypatch):
    fd, data = data_file
    fake_preadv(monkeypatch, lambda n, size: min(size, 1000))
    chunks = collect(fd, 5, 5000)
    assert b"".join(chunks) == data[5:5005] and [len(c) for c in chunks] == [1000] * 5
    assert thread_reads == []


@pytest.mark.parametrize("code", [errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS])
def test_file_systems_without_nowait_reads_use_the_thread(data_file, thread_reads, monkeypatch, code):
    fd, data = data_file

    def unsupported(n, size):
        raise OSError(code, os.strerror(code))

    calls = fake_preadv(monkeypatch, unsupported)
    assert b"".join(collect(fd, 0, len(data))) == data
    assert len(calls) == 1  # asked once per stream
    assert len(thread_reads) == 5


def test_without_rwf_nowait_every_read_is_in_a_thread(data_file, thread_reads, monkeypatch):
    fd, data = data_file
    monkeypatch.setattr(files, "_NOWAIT", 0)
    calls = fake_preadv(monkeypatch, lambda n, size: size)
    assert b"".join(collect(fd, 0, len(data))) == data
    assert calls == [] and len(thread_reads) == 5


def test_read_errors_are_not_swallowed(data_file, thread_reads, monkeypatch):
    fd, _ = data_file

    def broken_disk(n, size):
        raise OSError(errno.EIO, "I/O error")

    fake_preadv(monkeypatch, broken_disk)
    with pytest.raises(OSError, match="I/O error"):
        collect(fd, 0, 100)
