"""nginx sends the bytes (``AUDIO_CACHE_SENDFILE=nginx``): the app answers with an
``X-Accel-Redirect`` to an internal location (deploy/nginx.conf), and nginx does ranges and
validators itself. A file still being written is sent by the app, as nginx cannot follow it."""

from urllib.parse import quote

from django.http import HttpResponse

from ..files import StoredFile
from ..growing import GrowingFile
from . import app

# Internal nginx locations, per folder a file may come from (deploy/nginx.conf).
LOCATIONS = {"cache": "/_protected/cache", "music": "/_protected/music"}


def respond(request, file: StoredFile | GrowingFile, headers: dict):
    if isinstance(file, GrowingFile):
        return app.respond(request, file, headers)
    file.file.close()  # opened to be sure it is there and a regular file; nginx opens its own
    response = HttpResponse(content_type=file.content_type)
    response["X-Accel-Redirect"] = LOCATIONS[file.root] + "/" + quote(file.name)
    for key, value in headers.items():
        response[key] = value
    return response
