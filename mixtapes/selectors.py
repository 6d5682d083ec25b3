"""Read queries behind the mixtape pages (aggregates, so a page costs a fixed few queries)."""

from django.db.models import Count, Sum

from . import sharing
from .models import Mixtape, MixtapeTrack, ShareLink, Track


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


def whole_album_runs(entries: list[MixtapeTrack]) -> set[int]:
    """Indexes of the entries that belong to a run of consecutive tracks holding a whole album
    (every present track the library has of it), where album ReplayGain applies."""

    def key(track):
        return (track.album_artist or track.artist, track.album)

    runs: list[tuple[tuple, list[int]]] = []
    for n, entry in enumerate(entries):
        album = key(entry.track)
        if not album[1]:
            continue
        if runs and runs[-1][0] == album and runs[-1][1][-1] == n - 1:
            runs[-1][1].append(n)
        else:
            runs.append((album, [n]))
    if not runs:
        return set()
    # A tagged album artist groups an album's tracks (whatever each track's artist); otherwise
    # each artist's own.
    sizes: dict[tuple, int] = {}
    rows = (
        Track.objects.filter(missing_since__isnull=True, album__in={album for (_, album), _ in runs})
        .values("album_artist", "artist", "album")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        album = (row["album_artist"] or row["artist"], row["album"])
        sizes[album] = sizes.get(album, 0) + row["n"]
    whole: set[int] = set()
    for album, indexes in runs:
        if len(indexes) >= 2 and len({entries[i].track_id for i in indexes}) == sizes.get(album, 0):
            whole.update(indexes)
    return whole


# --- Share links --------------------------------------------------------------------------------


def share_link(token: str) -> ShareLink | None:
    """The link with this token (live or not: the caller says why a dead one no longer works)."""
    if not sharing.looks_like_token(token):
        return None
    return ShareLink.objects.select_related("mixtape", "mixtape__owner").filter(token=token).first()


def links_of(mixtape: Mixtape) -> list[ShareLink]:
    """The mixtape's links, newest first, each with its ``state`` (live, expired, revoked, withdrawn)."""
    links = list(mixtape.share_links.select_related("mixtape__owner"))
    for link in links:
        link.state = sharing.link_state(link)
    return links


def link_grants_track(token: str, track_id: int) -> bool:
    """Whether a live link with this token opens a mixtape that holds the track."""
    if not sharing.looks_like_token(token):
        return False
    return (
        ShareLink.objects.filter(sharing.live_link_q(), token=token, mixtape__entries__track_id=track_id)
        .order_by()
        .exists()
    )
