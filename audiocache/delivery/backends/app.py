"""The app sends the bytes itself (``AUDIO_CACHE_SENDFILE=none``): ranges, validators, and a
body read from the open file (zero-copy where the ASGI server offers it)."""

from ..conditional import FileIdentity, identity
from ..files import StoredFile
from ..growing import GrowingFile
from ..response import file_response


def respond(request, file: StoredFile | GrowingFile, headers: dict):
    if isinstance(file, GrowingFile):
        # No date to validate by, and a weak tag: the bytes are the finished file's but for
        # the Xing frame ffmpeg fills in last. nginx in front must pass them on as they come.
        ident = FileIdentity(file.size, None, file.etag)
        return file_response(
            request, file.file, ident, "audio/mpeg", {**headers, "X-Accel-Buffering": "no"}, growing=file
        )
    return file_response(request, file.file, identity(file.stat, file.etag_salt), file.content_type, headers)
