"""ASGI entry point (uvicorn config.asgi:application).

The Django application is wrapped so uvicorn's lifespan events start and stop the
embedded transcoding pool (AUDIO_CACHE_MAX_WORKERS workers; 0 = none).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config.startup import exit_on_bad_settings

exit_on_bad_settings()

from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()

from audiocache.embedded import Lifespan  # noqa: E402

application = Lifespan(django_application)
