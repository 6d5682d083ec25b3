from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe


@require_safe
@never_cache
def healthz(request):
    """Liveness for the Docker HEALTHCHECK: the process answers and the database is reachable."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database_ok = True
    except Exception:
        database_ok = False
    status = 200 if database_ok else 503
    return JsonResponse({"status": "ok" if database_ok else "unhealthy", "database": database_ok}, status=status)
