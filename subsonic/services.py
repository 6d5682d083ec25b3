"""Writes through the API: playlists are mixtapes (same ownership rules as the editor, and a
save queues the precache batch as the editor's does), shares are the mixtapes' share links,
scrobbles, API keys and the streaming password."""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from audiocache import services as cache_services
from config.numbers import MAX_ID, whole_number
from mixtapes import services as mixtape_services
from mixtapes import sharing
from mixtapes.forms import MAX_TRACKS
from mixtapes.models import Mixtape, MixtapeTrack, ShareLink, Track

from . import ids, secrets, selectors
from .models import ApiKey, Scrobble, StreamingPassword
from .protocol import SubsonicError, not_found


def _existing_tracks(track_ids: list[int]) -> list[int]:
    known = set(Track.objects.filter(pk__in=set(track_ids)).values_list("pk", flat=True))
    unknown = [i for i in track_ids if i not in known]
    if unknown:
        raise not_found(f"Song {unknown[0]}")
    return track_ids


def _own(user, mixtape_id: int) -> Mixtape:
    mixtape = Mixtape.objects.filter(pk=mixtape_id).select_related("owner").first()
    if mixtape is None or (mixtape.owner_id != user.pk and not mixtape.is_shared):
        raise not_found("Playlist")
    if mixtape.owner_id != user.pk:
        raise SubsonicError(SubsonicError.NOT_AUTHORIZED, "Only the owner may change this playlist")
    return mixtape


def _saved(mixtape: Mixtape, track_ids: list[int], user) -> Mixtape:
    if len(track_ids) > MAX_TRACKS:
        raise SubsonicError(SubsonicError.GENERIC, f"A mixtape holds at most {MAX_TRACKS} tracks")
    with transaction.atomic():
        mixtape.save()
        mixtape_services.replace_tracks(mixtape, track_ids)
    cache_services.precache_mixtape(mixtape, user)  # as the editor's save does
    return mixtape


def create_playlist(user, name: str, track_ids: list[int]) -> Mixtape:
    return _saved(Mixtape(owner=user, title=name[:200] or "Untitled"), _existing_tracks(track_ids), user)


def replace_playlist(user, mixtape_id: int, track_ids: list[int]) -> Mixtape:
    """``createPlaylist`` with a ``playlistId``: the list is replaced."""
    return _saved(_own(user, mixtape_id), _existing_tracks(track_ids), user)


@dataclass(frozen=True)
class PlaylistChanges:
    name: str | None = None
    comment: str | None = None
    public: bool | None = None
    add: tuple[int, ...] = ()
    remove_indexes: tuple[int, ...] = ()


def update_playlist(user, mixtape_id: int, changes: PlaylistChanges) -> Mixtape:
    mixtape = _own(user, mixtape_id)
    if changes.name is not None:
        mixtape.title = changes.name[:200] or mixtape.title
    if changes.comment is not None:
        mixtape.liner_notes = changes.comment
    if changes.public is not None:
        if changes.public and not sharing.may_publish(user):
            raise SubsonicError(SubsonicError.NOT_AUTHORIZED, sharing.refusal())
        mixtape.is_public = changes.public
    current = list(MixtapeTrack.objects.filter(mixtape=mixtape).order_by("position").values_list("track_id", flat=True))
    drop = set(changes.remove_indexes)
    if any(i < 0 or i >= len(current) for i in drop):
        raise SubsonicError(SubsonicError.GENERIC, "songIndexToRemove is out of range")
    track_ids = [t for i, t in enumerate(current) if i not in drop] + _existing_tracks(list(changes.add))
    return _saved(mixtape, track_ids, user)


def delete_playlist(user, mixtape_id: int) -> None:
    mixtape_services.delete_mixtape(_own(user, mixtape_id))


# --- shares -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareRequest:
    """``createShare``: what to share (playlist, album and song ids), for whom, until when."""

    item_ids: tuple[str, ...]
    description: str = ""
    expires_at: datetime | None = None
    downloadable: bool = False


def create_share(user, request: ShareRequest) -> ShareLink:
    """A share link to one of the user's playlists; songs and albums are first made into a new
    private mixtape (named after the description), as if made in the editor."""
    if not sharing.may_publish(user):
        raise SubsonicError(SubsonicError.NOT_AUTHORIZED, sharing.refusal())
    if not request.item_ids:
        raise SubsonicError(SubsonicError.MISSING_PARAMETER, "Required parameter is missing: id")
    lifetime = _lifetime(request.expires_at)
    playlists = [i for i in request.item_ids if i.startswith(ids.PLAYLIST)]
    label = request.description.strip()[:100]
    if playlists:
        if len(request.item_ids) > 1:
            raise SubsonicError(SubsonicError.GENERIC, "Share one playlist, or songs and albums, not both")
        mixtape = _own(user, ids.mixtape_pk(playlists[0]) or 0)
    else:
        track_ids = []
        for item in request.item_ids:
            if item.startswith(ids.ALBUM):
                album = selectors.library_index().albums.get(item)
                if album is None:
                    raise not_found("Album")
                track_ids.extend(t.pk for t in selectors.album_tracks(album))
            else:
                track_ids.append(_song_id(item))
        mixtape = create_playlist(user, label or "Shared songs", track_ids)
    try:
        return mixtape_services.create_link(
            mixtape, label=label, expires_in=lifetime, allow_download=request.downloadable
        )
    except mixtape_services.TooManyLinks as exc:
        raise SubsonicError(SubsonicError.GENERIC, str(exc)) from None


@dataclass(frozen=True)
class ShareChanges:
    """``updateShare``: a new description, and a new expiry when ``expiry_given`` (None: never)."""

    description: str | None = None
    expiry_given: bool = False
    expires_at: datetime | None = None


def update_share(user, share_id: int, changes: ShareChanges) -> None:
    link = _own_share(user, share_id)
    fields = []
    if changes.description is not None:
        link.label = changes.description.strip()[:100]
        fields.append("label")
    if changes.expiry_given:
        _lifetime(changes.expires_at)  # refuses a time already past
        link.expires_at = changes.expires_at
        fields.append("expires_at")
    if fields:
        link.save(update_fields=fields)


def delete_share(user, share_id: int) -> None:
    """Revoke it: the link stops working at once (the editor keeps it in its list, revoked)."""
    mixtape_services.revoke_link(_own_share(user, share_id))


def _own_share(user, share_id: int) -> ShareLink:
    link = ShareLink.objects.filter(pk=share_id, mixtape__owner=user, revoked_at__isnull=True).first()
    if link is None:
        raise not_found("Share")
    return link


def _lifetime(expires_at: datetime | None):
    if expires_at is None:
        return None
    lifetime = expires_at - timezone.now()
    if lifetime.total_seconds() <= 0:
        raise SubsonicError(SubsonicError.GENERIC, "expires is in the past")
    return lifetime


def _song_id(item: str) -> int:
    value = whole_number(item, MAX_ID)
    if value is None:
        raise not_found(f"Song {item[:40]}")
    return value


def scrobble(user, track_ids: list[int], times_ms: list[int], client: str) -> None:
    tracks = set(Track.objects.filter(pk__in=set(track_ids)).values_list("pk", flat=True))
    if len(tracks) != len(set(track_ids)):
        raise not_found("Song")
    now = timezone.now()
    rows = []
    for n, track_id in enumerate(track_ids):
        when = now
        if n < len(times_ms):
            when = datetime.fromtimestamp(times_ms[n] / 1000, tz=UTC)
        rows.append(Scrobble(user=user, track_id=track_id, played_at=when, client=client))
    Scrobble.objects.bulk_create(rows)


# --- credentials --------------------------------------------------------------------------------


def create_api_key(user, name: str) -> str:
    """A new key for ``user``: returned once, stored as a digest."""
    key = secrets.new_api_key()
    ApiKey.objects.create(user=user, name=name.strip()[:100] or "Music app", prefix=key[:12],
                          digest=secrets.api_key_digest(key))  # fmt: skip
    return key


def revoke_api_key(user, key_id: int) -> bool:
    return ApiKey.objects.filter(user=user, pk=key_id).delete()[0] > 0


def new_streaming_password(user) -> str:
    """A new streaming password (the old one stops working): returned once, stored encrypted."""
    password = secrets.new_streaming_password()
    StreamingPassword.objects.update_or_create(
        user=user,
        defaults={"ciphertext": secrets.encrypt(password), "created_at": timezone.now(), "last_used_at": None},
    )
    return password


def revoke_streaming_password(user) -> bool:
    return StreamingPassword.objects.filter(user=user).delete()[0] > 0
