"""Read queries behind the mixtape pages (aggregates, so a page costs a fixed few queries)."""

from django.db.models import Count, Q, Sum

from audiocache.qualities import QUALITY_NAMES
from audiocache.selectors import fresh_renditions

from .models import Mixtape, MixtapeTrack


def mixtapes_of(owner, quality: str):
    """The owner's mixtapes with track count, total seconds and how many tracks stream from
    the cache (or need no cache: lossy sources) at ``quality``."""
    cached_tracks = fresh_renditions(quality).values("track_id")
    return Mixtape.objects.filter(owner=owner).annotate(
        track_count=Count("entries"),
        total_seconds=Sum("entries__track__duration"),
        ready_count=Count(
            "entries", filter=Q(entries__track__is_lossless=False) | Q(entries__track_id__in=cached_tracks)
        ),
    )


def tracklist(mixtape: Mixtape) -> list[MixtapeTrack]:
    return list(mixtape.entries.select_related("track").order_by("position"))


def cached_qualities(entries: list[MixtapeTrack]) -> dict[int, list[str]]:
    """Track id -> the qualities it has a fresh rendition for."""
    found: dict[int, list[str]] = {entry.track_id: [] for entry in entries}
    rows = fresh_renditions().filter(track_id__in=list(found)).values_list("track_id", "quality")
    for track_id, quality in rows:
        found[track_id].append(quality)
    for qualities in found.values():
        qualities.sort(key=QUALITY_NAMES.index)
    return found
