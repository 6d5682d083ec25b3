"""Writes behind the editor: saving a mixtape with its ordered tracks, deleting one."""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, transaction

from audiocache import queue
from audiocache.models import CacheBatch

from .forms import MixtapeForm
from .models import Mixtape, MixtapeTrack, Track

logger = logging.getLogger(__name__)


@dataclass
class SaveResult:
    mixtape: Mixtape
    batch: CacheBatch | None = None  # the precache batch, when it has work left to do
    precache_note: str = ""  # what to tell the user about caching, if anything


def save_mixtape(form: MixtapeForm, owner) -> SaveResult:
    """Save a valid editor form: fields, cover, the track list in its new order; then queue
    the precache batch. The mixtape is committed first, so no queue trouble can lose it."""
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
        MixtapeTrack.objects.filter(mixtape=mixtape).delete()
        MixtapeTrack.objects.bulk_create(
            MixtapeTrack(mixtape=mixtape, track_id=track_id, position=position)
            for position, track_id in enumerate(form.track_ids, start=1)
        )
    if old_cover and old_cover != mixtape.cover.name:
        mixtape.cover.storage.delete(old_cover)
    result = SaveResult(mixtape)
    if form.track_ids and settings.AUDIO_CACHE_ENABLED and settings.AUDIO_CACHE_PRECACHE_ON_UPLOAD:
        _precache(result, owner)
    return result


def _precache(result: SaveResult, owner) -> None:
    mixtape = result.mixtape
    qualities = list(settings.AUDIO_CACHE_PRECACHE_QUALITIES)
    tracks = Track.objects.filter(mixtape_entries__mixtape=mixtape).distinct()
    try:
        batch = queue.create_batch(tracks, qualities, label=f"Mixtape “{mixtape.title}”", user=owner, mixtape=mixtape)
    except DatabaseError:
        logger.exception("could not queue the precache batch of mixtape %s", mixtape.pk)
        result.precache_note = "Saved, but caching could not be queued; tracks will be transcoded when played."
        return
    summary = queue.batch_summary(batch)
    if summary.finished:
        result.precache_note = f"Every track is ready to stream ({summary})."
    else:
        result.batch = batch


def delete_mixtape(mixtape: Mixtape) -> None:
    cover = mixtape.cover.name
    mixtape.delete()  # entries go with it; tracks and cached renditions stay for other mixtapes
    if cover:
        mixtape.cover.storage.delete(cover)
