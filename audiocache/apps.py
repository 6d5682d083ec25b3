from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .qualities import QUALITY_NAMES


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
    precache = settings.AUDIO_CACHE_PRECACHE_QUALITIES
    if not precache or any(q not in QUALITY_NAMES for q in precache):
        raise ImproperlyConfigured(
            f"AUDIO_CACHE_PRECACHE_QUALITIES={','.join(precache)!r} is invalid: "
            f"expected a comma-separated list of {expected}."
        )
