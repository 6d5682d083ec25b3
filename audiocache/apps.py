from django.apps import AppConfig


class AudioCacheConfig(AppConfig):
    name = "audiocache"
    verbose_name = "Audio cache"
