"""A response whose body is a program's output as it comes: ffmpeg encoding a track from a
given second (services/offset.py). No length is known, so the body is chunked; ffmpeg is killed
when the listener leaves, when the body ends, or after AUDIO_CACHE_TRANSCODE_TIMEOUT."""

import asyncio
import weakref
from collections.abc import Callable

from django.conf import settings
from django.http import StreamingHttpResponse

CHUNK = 64 * 1024


def mp3_response(command: list, release: Callable[[], None]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_output(command, release), content_type="audio/mpeg")
    weakref.finalize(response, release)  # also when the body is never read (``release`` is idempotent)
    return response


async def _output(command: list, release: Callable[[], None]):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.AUDIO_CACHE_TRANSCODE_TIMEOUT
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        while chunk := await asyncio.wait_for(process.stdout.read(CHUNK), max(0.1, deadline - loop.time())):
            yield chunk
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        release()
