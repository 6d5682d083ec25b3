from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import health


@require_safe
@never_cache
def healthz(request):
    """Health for load balancers and the Docker HEALTHCHECK: 200 when every part works, 503
    naming the failing parts otherwise (database, cache folder, ffmpeg, Redis when set)."""
    healthy, body = health.report()
    return JsonResponse(body, status=200 if healthy else 503)
