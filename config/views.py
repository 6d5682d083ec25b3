from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import health


@require_safe
@never_cache
def healthz(request):
    """Health for load balancers and the Docker HEALTHCHECK: 200 when the app can serve (also
    "degraded": Redis away), 503 naming the failing parts otherwise (database, cache folder,
    ffmpeg). ``?strict=1``, for monitoring: 503 when any part fails, Redis included."""
    healthy, body = health.report(strict=request.GET.get("strict", "").lower() in ("1", "true", "yes"))
    return JsonResponse(body, status=200 if healthy else 503)
