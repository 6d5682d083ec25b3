import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from audiocache.models import CacheBatch, CacheBatchItem, CachedRendition, CacheTask
from audiocache.qualities import BITRATES
from mixtapes.models import Mixtape, MixtapeTrack, Track


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery staple")


class TrackFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Track

    path = factory.Sequence(lambda n: f"Artist {n}/Album/{n:02d} - Track.flac")
    title = factory.Sequence(lambda n: f"Track {n}")
    artist = "Test Artist"
    album = "Test Album"
    codec = "flac"
    container = "flac"
    duration = 2.0
    sample_rate = 44100
    bit_depth = 16
    channels = 2
    is_lossless = True
    file_size = 123_456
    file_mtime_ns = 1_700_000_000_000_000_000
    scanned_at = factory.LazyFunction(timezone.now)


class MixtapeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Mixtape

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Mixtape {n}")


class MixtapeTrackFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MixtapeTrack

    mixtape = factory.SubFactory(MixtapeFactory)
    track = factory.SubFactory(TrackFactory)
    position = factory.Sequence(lambda n: n)


class CachedRenditionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CachedRendition

    track = factory.SubFactory(TrackFactory)
    quality = "medium"
    bitrate = factory.LazyAttribute(lambda o: BITRATES[o.quality])
    file_name = factory.Sequence(lambda n: f"{n:032x}_medium_192k.mp3")
    size = 48_000
    source_size = factory.LazyAttribute(lambda o: o.track.file_size)
    source_mtime_ns = factory.LazyAttribute(lambda o: o.track.file_mtime_ns)
    encoder_profile = "test-profile"


class CacheTaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CacheTask

    track = factory.SubFactory(TrackFactory)
    quality = "medium"


class CacheBatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CacheBatch

    label = factory.Sequence(lambda n: f"Batch {n}")


class CacheBatchItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CacheBatchItem

    batch = factory.SubFactory(CacheBatchFactory)
    task = factory.SubFactory(CacheTaskFactory)
    track = factory.SelfAttribute("task.track")
    quality = factory.SelfAttribute("task.quality")
