"""A short path through Django for ``/stream/`` under ASGI.

Every listener's player sends many small range requests. Through Django's normal ASGI stack
each one hops to a worker thread once per middleware (``process_request`` and
``process_response`` of each), about 5 ms per request on a small machine. This handler does
what those middlewares do for this one view (session, user, security headers) and runs the
view in a single hop. The view is the same function the URLconf uses, so access rules and
responses cannot differ; the full stack still serves it wherever this handler is not used
(WSGI, the test client).
"""

import re
from importlib import import_module

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.core.handlers.exception import convert_exception_to_response
from django.http import Http404
from django.middleware.security import SecurityMiddleware
from django.utils.functional import SimpleLazyObject

from .views import stream

STREAM_PATH = re.compile(r"/stream/(\d+)/")


def _security_headers(request, response):
    # SecurityMiddleware's response headers (nosniff, referrer policy, HSTS when configured).
    return SecurityMiddleware(lambda r: response).process_response(request, response)


def stream_request(request):
    request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it (DisallowedHost -> 400)
    match = STREAM_PATH.fullmatch(request.path_info)
    if match is None:
        raise Http404("No such track.")
    engine = import_module(settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    request.user = SimpleLazyObject(lambda: auth.get_user(request))
    response = stream(request, int(match.group(1)))
    return _security_headers(request, response)


async def _chain(request):
    return await sync_to_async(stream_request, thread_sensitive=True)(request)


def install(handler) -> None:
    """Make ``handler`` (an ASGIHandler) answer every request with the stream view, in one hop."""
    handler._middleware_chain = convert_exception_to_response(_chain)
