"""Who sends a chosen file's bytes: the app itself, or nginx (``AUDIO_CACHE_SENDFILE``).

Each backend is a module with one function, ``respond(request, file, headers)``, taking a
``StoredFile`` (complete, open) or a ``GrowingFile`` (still being written) and the headers
the answer must carry, the way Django picks a session engine module by a setting:

- ``app`` (``AUDIO_CACHE_SENDFILE=none``, the default): ranges, validators and the body from
  the app (``delivery.response``);
- ``nginx`` (``AUDIO_CACHE_SENDFILE=nginx``): an ``X-Accel-Redirect`` to an internal location,
  and nginx sends the file with its own ranges and validators (deploy/nginx.conf). A growing
  file is still sent by the app: nginx cannot follow a file being written.
"""

from importlib import import_module

from django.conf import settings

BACKENDS = {"none": "app", "nginx": "nginx"}


def get_backend():
    """The backend module that ``AUDIO_CACHE_SENDFILE`` names."""
    return import_module(f"{__name__}.{BACKENDS[settings.AUDIO_CACHE_SENDFILE]}")


def respond(request, file, headers: dict):
    """Answer ``request`` with ``file`` through the configured backend."""
    return get_backend().respond(request, file, headers)
