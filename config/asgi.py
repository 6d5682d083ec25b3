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

# WhiteNoise hands Django synchronous file iterators, which Django's ASGI handler consumes in a
# thread after warning on every static request. Static files are small; audio streams do not go
# through WhiteNoise.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

from audiocache.embedded import Lifespan  # noqa: E402

application = Lifespan(django_application)
