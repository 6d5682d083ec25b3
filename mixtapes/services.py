"""Writes behind the library and the editor: saving a mixtape with its ordered tracks,
deleting one, its share links (made, revoked, re-issued, visited), marking a track whose
file vanished.

Caching a saved mixtape is the audio cache's business: the editor's view calls
``audiocache.services.precache_mixtape`` after ``save_mixtape`` (docs/architecture.md).
"""

from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import sharing
from .forms import MixtapeForm
from .models import Mixtape, MixtapeTrack, ShareLink, Track

# Live links per mixtape: enough for one per friend, and a bound on what one owner can make.
MAX_LIVE_LINKS = 50


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


class TooManyLinks(Exception):
    """The mixtape has ``MAX_LIVE_LINKS`` live links already."""


def create_link(
    mixtape: Mixtape, *, label: str = "", expires_in: timedelta | None = None, allow_download: bool = False
) -> ShareLink:
    """A new link to ``mixtape`` with a fresh token (``expires_in`` None: it never expires)."""
    with transaction.atomic():
        # Lock the mixtape row so two requests cannot both pass the count (SQLite serializes anyway).
        Mixtape.objects.select_for_update().filter(pk=mixtape.pk).first()
        if mixtape.share_links.filter(sharing.live_link_q()).count() >= MAX_LIVE_LINKS:
            raise TooManyLinks(f"A mixtape can have {MAX_LIVE_LINKS} live links; revoke one first.")
        return ShareLink.objects.create(
            mixtape=mixtape,
            token=sharing.new_token(),
            label=label,
            allow_download=allow_download,
            expires_at=timezone.now() + expires_in if expires_in else None,
        )


def revoke_link(link: ShareLink) -> None:
    """The link stops working at once (its row stays: the owner sees it, and its visitors get
    "no longer shared" rather than "not found")."""
    ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def reissue_link(link: ShareLink) -> ShareLink:
    """Revoke ``link`` and make a new one with the same label, download choice and lifetime,
    counted from now (for a link that went further than meant to, or ran out)."""
    now = timezone.now()
    lifetime = link.expires_at - link.created_at if link.expires_at else None
    with transaction.atomic():
        revoke_link(link)
        return ShareLink.objects.create(
            mixtape_id=link.mixtape_id,
            token=sharing.new_token(),
            label=link.label,
            allow_download=link.allow_download,
            expires_at=now + lifetime if lifetime else None,
        )


def record_visit(link: ShareLink) -> None:
    """One visit of the link's page: counted in the database (F(): concurrent visits all count)."""
    ShareLink.objects.filter(pk=link.pk).update(visits=F("visits") + 1, last_visited_at=timezone.now())
