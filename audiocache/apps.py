from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .qualities import FORMAT_NAMES, QUALITY_NAMES, allowed_variant


class AudioCacheConfig(AppConfig):
    name = "audiocache"
    verbose_name = "Audio cache"

    def ready(self):
        from mixtapes.signals import tracks_changed

        from .services.precache import requeue_changed_tracks

        check_quality_settings()
        # A file on a mixtape changed (seen by a scan or the watcher): make its renditions again.
        tracks_changed.connect(requeue_changed_tracks, dispatch_uid="audiocache.requeue_changed_tracks")


def check_quality_settings() -> None:
    """The settings that name qualities must name ours: checked when the app starts, so a typo
    stops start-up with one line naming the variable (``config.startup``), as every setting does."""
    expected = ", ".join(QUALITY_NAMES)
    if settings.AUDIO_CACHE_DEFAULT_QUALITY not in QUALITY_NAMES:
        raise ImproperlyConfigured(
            f"AUDIO_CACHE_DEFAULT_QUALITY={settings.AUDIO_CACHE_DEFAULT_QUALITY!r} is invalid: expected one of {expected}."
        )
    formats = settings.AUDIO_CACHE_FORMATS
    unknown = [f for f in formats if f not in FORMAT_NAMES]
    if not formats or unknown:
        raise ImproperlyConfigured(
            f"AUDIO_CACHE_FORMATS={','.join(formats)!r} is invalid: expected a comma-separated list of "
            f"{', '.join(FORMAT_NAMES)}."
        )
    precache = settings.AUDIO_CACHE_PRECACHE_QUALITIES
    problem = "" if precache else "it is empty"
    for text in precache:
        try:
            allowed_variant(text)
        except ValueError as exc:
            problem = str(exc)
            break
    if problem:
        raise ImproperlyConfigured(
            f"AUDIO_CACHE_PRECACHE_QUALITIES={','.join(precache)!r} is invalid ({problem}): expected a "
            f"comma-separated list of {expected}, or format:quality pairs such as mp3:medium,opus:medium."
        )
