"""Putting a response on the wire over ASGI: an ``AudioFileResponse`` of a complete file goes
out as zero-copy sends where the server offers the extension (``zerocopy.py``); everything
else, as Django's own ``send_response`` sends it."""

import asyncio

from .files import in_page_cache, load_into_page_cache, read_chunks
from .ranges import ByteRange
from .response import AudioFileResponse
from .zerocopy import EXTENSION as ZEROCOPY_SEND

# Ranges shorter than this are read and sent as bytes even where the server could send them
# from the file: for a small range the copy costs less than setting up a sendfile (measured:
# 64 KiB ranges went from about 930 to 790 requests/s with sendfile, bench/range_serving.sh).
SENDFILE_MIN = 256 * 1024
# Larger ranges are sent in blocks of this size, each first checked to be in the page cache
# (and read into it in a thread if not): sendfile itself would wait for a slow disk on the
# event loop, holding up every other stream. Small enough that a block's pages are still
# cached when a slow client takes it (1 MiB is 25 s at 320 kbit/s).
SENDFILE_BLOCK = 1024 * 1024


async def send_response(handler, scope, response, send) -> None:
    """Django's ``send_response``, except that file ranges go out as zero-copy sends when the
    server offers them instead of as bytes read into memory."""
    body = response.sendable_from_file if isinstance(response, AudioFileResponse) else None
    if body is None or ZEROCOPY_SEND not in scope.get("extensions", {}):
        return await handler.send_response(response, send)
    headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    headers += [(b"Set-Cookie", c.OutputString().encode("ascii").strip()) for c in response.cookies.values()]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    # The server's sendfile wants a file object; this one borrows the body's descriptor.
    with open(body.file.fd, "rb", buffering=0, closefd=False) as file:
        for part in body.parts:
            if isinstance(part, bytes):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            elif part.length >= SENDFILE_MIN:
                await send_from_page_cache(send, file, part)
            else:
                async for chunk in read_chunks(body.file.fd, part.start, part.length):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def send_from_page_cache(send, file, part: ByteRange) -> None:
    """One range as zero-copy sends of SENDFILE_BLOCK bytes, each read into the page cache in
    a thread first if it is not there yet."""
    loop = asyncio.get_running_loop()
    fd = file.fileno()
    position, end = part.start, part.start + part.length
    while position < end:
        count = min(SENDFILE_BLOCK, end - position)
        if not in_page_cache(fd, position, count):
            await loop.run_in_executor(None, load_into_page_cache, fd, position, count)
        await send({"type": ZEROCOPY_SEND, "file": file, "offset": position, "count": count, "more_body": True})
        position += count
