"""ASGI entry point (uvicorn config.asgi:application).

Django's application, with the audio cache's two public ASGI pieces around it:
``StreamFastPath`` serves ``/stream/`` through Django's own middleware in one thread hop (and
with zero-copy sends where uvicorn offers them), and ``Lifespan`` starts and stops the
embedded transcoding pool (AUDIO_CACHE_MAX_WORKERS workers; 0 = none) with the server.
"""

import os
import warnings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config.startup import exit_on_bad_settings, freeze_imported_objects

exit_on_bad_settings()

from django.core.handlers.asgi import ASGIHandler  # noqa: E402

from audiocache.delivery.fast_path import StreamFastPath  # noqa: E402
from audiocache.queue.lifespan import Lifespan  # noqa: E402

# WhiteNoise hands Django synchronous file iterators, which Django's ASGI handler consumes in a
# thread after warning on every static request. Static files are small; audio streams do not go
# through WhiteNoise.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

# The Subsonic API's stream and download answer like /stream/ (they call the same view code).
application = Lifespan(StreamFastPath(ASGIHandler(), prefix=("/stream/", "/rest/stream", "/rest/download")))
freeze_imported_objects()
