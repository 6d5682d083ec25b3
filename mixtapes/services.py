"""Writes behind the library and the editor: saving a mixtape with its ordered tracks,
deleting one, marking a track whose file vanished.

Caching a saved mixtape is the audio cache's business: the editor's view calls
``audiocache.services.precache_mixtape`` after ``save_mixtape`` (docs/architecture.md).
"""

from django.db import transaction
from django.utils import timezone

from .forms import MixtapeForm
from .models import Mixtape, MixtapeTrack, Track


def save_mixtape(form: MixtapeForm, owner) -> Mixtape:
    """Save a valid editor form: fields, cover, the track list in its new order, in one transaction."""
    mixtape: Mixtape = form.save(commit=False)
    if mixtape.owner_id is None:
        mixtape.owner = owner
    old_cover = mixtape.cover.name if mixtape.pk else ""
    new_cover = form.cleaned_data.get("cover_upload")
    with transaction.atomic():
        if new_cover is not None:
            mixtape.cover.save(new_cover.name, new_cover, save=False)
        elif form.cleaned_data.get("remove_cover"):
            mixtape.cover = ""
        mixtape.save()
        replace_tracks(mixtape, form.track_ids)
    if old_cover and old_cover != mixtape.cover.name:
        mixtape.cover.storage.delete(old_cover)
    return mixtape


def replace_tracks(mixtape: Mixtape, track_ids: list[int]) -> None:
    """The mixtape's track list becomes ``track_ids``, in that order (ids already checked)."""
    with transaction.atomic():
        MixtapeTrack.objects.filter(mixtape=mixtape).delete()
        MixtapeTrack.objects.bulk_create(
            MixtapeTrack(mixtape=mixtape, track_id=track_id, position=position)
            for position, track_id in enumerate(track_ids, start=1)
        )


def delete_mixtape(mixtape: Mixtape) -> None:
    cover = mixtape.cover.name
    mixtape.delete()  # entries go with it; tracks and cached renditions stay for other mixtapes
    if cover:
        mixtape.cover.storage.delete(cover)


def mark_missing(track_id: int) -> None:
    """The track's file is gone (found while serving it): mark it as a scan would, once."""
    Track.objects.filter(pk=track_id, missing_since__isnull=True).update(missing_since=timezone.now())
