"""ASGI entry point (uvicorn config.asgi:application)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config.startup import exit_on_bad_settings

exit_on_bad_settings()

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
