"""The library's pages: home, the mixtape list, the editor, library search, the share page
and its cover. The audio cache is reached through its doors only: ``audiocache.services``
(precache after a save) and ``audiocache.selectors`` (what is cached, a batch to follow)."""

import os

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, Sum
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.cache import get_conditional_response
from django.utils.http import http_date
from django.views.decorators.http import require_GET, require_http_methods

from audiocache import selectors as cache_selectors
from audiocache import services as cache_services
from audiocache.qualities import BITRATES, FORMATS, ORIGINAL, REQUESTABLE, enabled_formats
from config.numbers import MAX_ID, whole_number
from config.paths import resolve_inside

from . import artwork, search, selectors, services, sharing
from .forms import MixtapeForm, ShareLinkForm
from .models import Mixtape, Track


def home(request):
    """Landing page: what the library holds and the user's newest mixtapes."""
    context = {}
    if request.user.is_authenticated:
        context["library"] = Track.objects.filter(missing_since__isnull=True).aggregate(
            tracks=Count("id"),
            lossless=Count("id", filter=Q(is_lossless=True)),
            seconds=Sum("duration"),
            bytes=Sum("file_size"),
        )
        context["recent_tracks"] = Track.objects.filter(missing_since__isnull=True).order_by("-added_at")[:10]
        context["mixtapes"] = (
            Mixtape.objects.filter(owner=request.user)
            .select_related("owner")
            .annotate(track_count=Count("entries"))[:20]
        )
    return render(request, "mixtapes/home.html", context)


@login_required
def mixtape_list(request):
    quality = settings.AUDIO_CACHE_DEFAULT_QUALITY
    mixtapes = list(selectors.mixtapes_of(request.user))
    ready = cache_selectors.ready_counts(mixtapes, quality)
    for mixtape in mixtapes:
        mixtape.ready_count = ready.get(mixtape.pk, 0)
    return render(request, "mixtapes/list.html", {"mixtapes": mixtapes, "quality": quality})


def _own_mixtape(request, slug) -> Mixtape:
    # Someone else's mixtape is a 404, as if it did not exist: slugs are not secrets, but
    # whether a private mixtape exists is nobody else's business.
    return get_object_or_404(Mixtape, slug=slug, owner=request.user)


@login_required
@require_http_methods(["GET", "POST"])
def editor(request, slug=None):
    mixtape = _own_mixtape(request, slug) if slug else Mixtape(owner=request.user)
    if request.method == "POST":
        form = MixtapeForm(request.POST, request.FILES, instance=mixtape)
        if form.is_valid():
            saved = services.save_mixtape(form, request.user)
            # The one door from the editor to the cache: queue the saved tracks' renditions.
            precache = cache_services.precache_mixtape(saved, request.user)
            messages.success(request, f"Saved “{saved.title}”.")
            if precache.note:
                messages.info(request, precache.note)
            url = reverse("editor", args=[saved.slug])
            if precache.batch is not None:
                url += f"?batch={precache.batch.pk}"
            return redirect(url)
        entries = _posted_tracks(request)  # the list as the user left it, minus unknown ids
        status = 400
    else:
        form = MixtapeForm(instance=mixtape)
        entries = [entry.track for entry in selectors.tracklist(mixtape)] if mixtape.pk else []
        status = 200

    batch = cache_selectors.batch_to_follow(request.user, mixtape, request.GET.get("batch")) if mixtape.pk else None
    context = {
        "form": form,
        "mixtape": mixtape,
        "tracks": entries,
        "preview_quality": settings.AUDIO_CACHE_DEFAULT_QUALITY,
        "batch": batch,
        "batch_state": cache_selectors.batch_page_state(batch) if batch else None,
        "links": selectors.links_of(mixtape) if mixtape.pk else [],
        "link_form": ShareLinkForm(),
        "may_publish": sharing.may_publish(request.user),
    }
    return render(request, "mixtapes/editor.html", context, status=status)


def _posted_tracks(request) -> list[Track]:
    ids = [i for i in (whole_number(v, MAX_ID) for v in request.POST.getlist("track")[:500]) if i is not None]
    known = Track.objects.in_bulk(ids)
    return [known[i] for i in ids if i in known]


@login_required
@require_http_methods(["GET", "POST"])
def mixtape_delete(request, slug):
    mixtape = _own_mixtape(request, slug)
    if request.method == "POST":
        title = mixtape.title
        services.delete_mixtape(mixtape)
        messages.success(request, f"Deleted “{title}”. The tracks and their cached renditions stay in the library.")
        return redirect("mixtape-list")
    return render(request, "mixtapes/confirm_delete.html", {"mixtape": mixtape, "track_count": mixtape.entries.count()})


@login_required
@require_GET
def library_search(request):
    """``/library/search/?q=...&page=N``: one page of matching tracks as JSON, for the editor."""
    query = request.GET.get("q", "")
    page = whole_number(request.GET.get("page", "1"), 99_999) or 1
    result = search.search_tracks(query, page)
    return JsonResponse(
        {
            "query": query,
            "page": result.number,
            "has_next": result.has_next,
            "has_previous": result.has_previous,
            "results": [_track_json(track) for track in result.tracks],
        }
    )


def _track_json(track: Track) -> dict:
    return {
        "id": track.pk,
        "title": track.display_title,
        "artist": track.artist,
        "album": track.album,
        "duration": track.duration,
        "codec": track.codec,
        "format": track.format_name,
        "lossless": track.is_lossless,
        "stream_url": reverse("stream", args=[track.pk]),
        "cover_url": reverse("track-cover", args=[track.pk]),
    }


def _visible_mixtape(request, slug) -> Mixtape:
    """A shared mixtape, or any of one's own; 404 for everyone else."""
    mixtape = get_object_or_404(Mixtape.objects.select_related("owner"), slug=slug)
    if not mixtape.is_shared and mixtape.owner_id != request.user.pk:
        raise Http404("No such mixtape.")
    return mixtape


@require_GET
def share(request, slug):
    return share_page(request, _visible_mixtape(request, slug))


def share_page(request, mixtape: Mixtape, link=None):
    """The share page of ``mixtape``: by its public slug, or through a share ``link`` (whose
    token then rides along on every stream and picture URL of the page)."""
    entries = selectors.tracklist(mixtape)
    cached = cache_selectors.cached_qualities([entry.track_id for entry in entries])
    default_quality = settings.AUDIO_CACHE_DEFAULT_QUALITY if settings.AUDIO_CACHE_ENABLED else ORIGINAL
    whole_albums = selectors.whole_album_runs(entries)
    playlist = [
        {
            **_track_json(entry.track),
            "position": entry.position,
            "cached": cached.get(entry.track_id, []),
            "gain": _replaygain(entry.track, whole_album=n in whole_albums),
        }
        for n, entry in enumerate(entries)
    ]
    response = render(
        request,
        "mixtapes/share.html",
        {
            "mixtape": mixtape,
            "link": link,
            "share_query": f"&share={link.token}" if link else "",
            "cover_url": reverse("link-cover", args=[link.token])
            if link
            else reverse("mixtape-cover", args=[mixtape.slug]),
            "entries": entries,
            "playlist": playlist,
            "qualities": quality_choices(),
            "player_formats": player_formats(),
            "account_format": _account_format(request.user),
            "download_qualities": quality_choices() if link and link.allow_download else [],
            "default_quality": default_quality,
            "cache_enabled": settings.AUDIO_CACHE_ENABLED,
            "total_seconds": sum(entry.track.duration or 0 for entry in entries),
            "card": _link_card(request, mixtape, entries, link) if (link or mixtape.is_shared) else None,
        },
    )
    response["Cache-Control"] = _share_cache_control(request, mixtape, link)
    return response


def player_formats() -> dict:
    """The formats the player may ask for (AUDIO_CACHE_FORMATS), with their bitrates."""
    return {name: {"label": FORMATS[name].label, "bitrates": FORMATS[name].bitrates} for name in enabled_formats()}


def _account_format(user) -> str:
    """The signed-in listener's *Streaming format*, when it names a format the player may ask for
    (the player's "Automatic" takes it where the browser plays it); else empty."""
    chosen = cache_services.preferred_format(user)
    return chosen if chosen in enabled_formats() else ""


def quality_choices() -> list[tuple[str, str]]:
    """The qualities a listener may pick, as the menus show them."""
    choices = [(name, f"{name.title()} · {BITRATES[name]}k MP3") for name in BITRATES] + [(ORIGINAL, "Original")]
    return [choice for choice in choices if choice[0] in REQUESTABLE]


def _replaygain(track: Track, *, whole_album: bool) -> dict | None:
    """What the player's loudness switch uses: the album's gain where the mixtape plays the whole
    album in a row (its tracks keep their levels relative to each other), else the track's."""
    if whole_album and track.replaygain_album_gain is not None:
        return {"db": track.replaygain_album_gain, "peak": track.replaygain_album_peak, "mode": "album"}
    if track.replaygain_track_gain is not None:
        return {"db": track.replaygain_track_gain, "peak": track.replaygain_track_peak, "mode": "track"}
    return None


def _link_card(request, mixtape: Mixtape, entries, link=None) -> dict:
    """OpenGraph and Twitter Card facts of a shared mixtape, or of a share link's page (a link
    pasted in a chat shows its card; absolute URLs: the card is read elsewhere)."""
    total = sum(entry.track.duration or 0 for entry in entries)
    count = f"{len(entries)} track{'s' if len(entries) != 1 else ''}, {round(total / 60)} min"
    notes = " ".join(mixtape.liner_notes.split())
    description = f"{notes[:180]}{'…' if len(notes) > 180 else ''} · {count}" if notes else f"A mixtape: {count}"
    if link:
        page = request.build_absolute_uri(reverse("link", args=[link.token]))
        image = request.build_absolute_uri(reverse("link-cover", args=[link.token]))
    else:
        page = request.build_absolute_uri(reverse("share", args=[mixtape.slug]))
        image = request.build_absolute_uri(reverse("mixtape-cover", args=[mixtape.slug]))
    return {
        "title": mixtape.title,
        "description": description,
        "url": page,
        "image": image,
        # music.song objects: the tracks' places in the page (they have no pages of their own).
        "songs": [{"url": f"{page}#track-{n}", "number": n} for n in range(1, min(len(entries), 50) + 1)],
    }


def _share_cache_control(request, mixtape: Mixtape, link=None) -> str:
    """A shared page seen signed out is the same for everyone: caches may keep it briefly (its
    player reads the cache state at load). Anything else is personal, and a link's page counts
    its visits and must stop at once when revoked: revalidate every time."""
    if link is None and mixtape.is_shared and not request.user.is_authenticated:
        return "public, max-age=300"
    return "private, no-cache"


@require_GET
def cover(request, slug):
    """The cover image, to whoever may see the mixtape (with validators, so browsers revalidate cheaply)."""
    return cover_response(request, _visible_mixtape(request, slug), public=None)


def cover_response(request, mixtape: Mixtape, *, public: bool | None):
    """The mixtape's cover, or its mosaic (``public``: whether shared caches may keep it;
    None: when the mixtape is shared)."""
    if public is None:
        public = mixtape.is_shared
    if mixtape.cover:
        path = resolve_inside(settings.MEDIA_ROOT, mixtape.cover.name)
    else:  # none uploaded: a mosaic of its first albums' pictures, or a neutral picture
        path = artwork.mosaic([entry.track for entry in selectors.tracklist(mixtape)])
        if path is None:
            return redirect(static("img/no-cover.svg"))
    if path is None:
        raise Http404("No such cover.")
    try:
        st = os.stat(path)
    except OSError:
        raise Http404("The cover file is missing.") from None
    etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
    # Decided before the file is opened: closing an unsent response would end the request early.
    response = get_conditional_response(request, etag=etag, last_modified=int(st.st_mtime))
    if response is None:
        try:
            response = FileResponse(open(path, "rb"), content_type="image/jpeg")  # noqa: SIM115 - the response closes it
        except OSError:
            raise Http404("The cover file is missing.") from None
    response["ETag"] = etag
    response["Last-Modified"] = http_date(st.st_mtime)
    response["Cache-Control"] = "public, max-age=3600" if public else "private, no-cache"
    return response


@require_GET
def track_cover(request, track_id: int):
    """``/tracks/<id>/cover/?size=N``: the track's picture as a JPEG thumbnail (mixtapes/artwork.py),
    to whoever may hear the track; a neutral picture when it has none, so pages need no logic."""
    track = Track.objects.filter(pk=track_id).only("id", "path", "file_size", "file_mtime_ns").first()
    if track is None or not _may_see_track(request, track.pk):
        raise Http404("No such track.")
    size = whole_number(request.GET.get("size", ""), 10_000)
    path = artwork.thumbnail(track, size)
    if path is None:
        return redirect(static("img/no-cover.svg"))
    headers = {
        "ETag": f'"{path.stem}"',  # the picture's digest and size: a new picture is a new tag
        "Cache-Control": f"{'private' if request.user.is_authenticated else 'public'}, max-age=86400",
    }
    # Decided before the file is opened: closing an unsent response would end the request early.
    response = get_conditional_response(request, etag=headers["ETag"]) or FileResponse(
        open(path, "rb"),  # noqa: SIM115 - the response closes it
        content_type="image/jpeg",
    )
    for key, value in headers.items():
        response[key] = value
    return response


def _may_see_track(request, track_id: int) -> bool:
    """Signed in, on a shared mixtape, or on the mixtape of the live link in ``?share=``."""
    if request.user.is_authenticated or selectors.track_is_shared(track_id):
        return True
    token = request.GET.get("share", "")
    return bool(token) and selectors.link_grants_track(token, track_id)
