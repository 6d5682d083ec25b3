"""WSGI entry point. The app is served with uvicorn (ASGI) because Server-Sent Events need it;
this module exists for tooling that expects it."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()
