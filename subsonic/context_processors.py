from django.conf import settings


def subsonic(request) -> dict:
    return {"subsonic_enabled": settings.SUBSONIC_ENABLED}
