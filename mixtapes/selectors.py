"""Read queries behind the mixtape pages (aggregates, so a page costs a fixed few queries)."""

from django.db.models import Count, Sum

from . import sharing
from .models import Mixtape, MixtapeTrack


def mixtapes_of(owner):
    """The owner's mixtapes with their track count and total seconds."""
    return (
        Mixtape.objects.filter(owner=owner)
        .select_related("owner")
        .annotate(track_count=Count("entries"), total_seconds=Sum("entries__track__duration"))
    )


def tracklist(mixtape: Mixtape) -> list[MixtapeTrack]:
    return list(mixtape.entries.select_related("track").order_by("position"))


def track_is_shared(track_id: int) -> bool:
    """Whether a shared mixtape holds the track (anyone with its link may hear and see it)."""
    return MixtapeTrack.objects.filter(track_id=track_id).filter(sharing.shared_q("mixtape__")).exists()
