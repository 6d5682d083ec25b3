"""ASGI entry point (uvicorn config.asgi:application).

The Django application is wrapped so uvicorn's lifespan events start and stop the
embedded transcoding pool (AUDIO_CACHE_MAX_WORKERS workers; 0 = none).
"""

import os
import warnings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config.startup import exit_on_bad_settings

exit_on_bad_settings()

import django  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402

django.setup(set_prefix=False)

from audiocache.streaming import CHUNK_SIZE  # noqa: E402


class MixtapesASGIHandler(ASGIHandler):
    # Django re-slices every body part into 64 KiB messages (a copy each); the audio streams
    # already come in CHUNK_SIZE parts, so pass them through whole.
    chunk_size = CHUNK_SIZE


django_application = MixtapesASGIHandler()

from audiocache import lean  # noqa: E402


# /stream/ gets the same view through a short path: one thread hop per request instead of two
# per middleware and one per signal (see audiocache/lean.py).
class StreamASGIHandler(MixtapesASGIHandler):
    async def __call__(self, scope, receive, send):
        # Django opens a ThreadSensitiveContext per request, which starts a new thread for
        # every request (~2 ms here). The stream view's one synchronous step runs in asgiref's
        # shared thread instead, which also keeps its database connection between requests.
        await lean.handle(self, scope, receive, send)


stream_application = StreamASGIHandler()


async def route(scope, receive, send):
    if scope["type"] == "http" and scope["path"].startswith("/stream/"):
        return await stream_application(scope, receive, send)
    return await django_application(scope, receive, send)


# WhiteNoise hands Django synchronous file iterators, which Django's ASGI handler consumes in a
# thread after warning on every static request. Static files are small; audio streams do not go
# through WhiteNoise.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

from audiocache.embedded import Lifespan  # noqa: E402

application = Lifespan(route)
