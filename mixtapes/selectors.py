"""Read queries behind the mixtape pages (aggregates, so a page costs a fixed few queries)."""

from django.db.models import Count, Sum

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
