"""The app sends the bytes itself (``AUDIO_CACHE_SENDFILE=none``): ranges, validators, and a
body read from the open file (zero-copy where the ASGI server offers it)."""

from ..conditional import FileIdentity, identity
from ..files import StoredFile
from ..growing import GrowingFile
from ..response import file_response, growing_response


def respond(request, file: StoredFile | GrowingFile, headers: dict):
    if isinstance(file, GrowingFile):
        headers = {**headers, "X-Accel-Buffering": "no"}  # nginx in front must pass the bytes on as they come
        if file.size is None:
            return growing_response(request, file, headers)
        # No date to validate by, and a weak tag: the bytes are the finished file's but for
        # the Xing frame ffmpeg fills in last.
        ident = FileIdentity(file.size, None, file.etag)
        return file_response(request, file.file, ident, file.content_type, headers, growing=file)
    return file_response(request, file.file, identity(file.stat, file.etag_salt), file.content_type, headers)
