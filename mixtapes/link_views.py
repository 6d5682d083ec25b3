"""Share links: the pages a link opens (the share page, its cover, an M3U8 playlist and the
zip download) and the owner's buttons in the editor (make, revoke, re-issue).

A link that expired, was revoked or whose owner may no longer publish answers "This mixtape
is no longer shared" (410 Gone); a token nobody issued is a plain 404.
"""

import functools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST, require_safe

from audiocache import services as cache_services
from audiocache.qualities import REQUESTABLE

from . import downloads, selectors, services, sharing
from .forms import ShareLinkForm
from .models import Mixtape, ShareLink
from .views import cover_response, share_page

GONE_REASONS = {
    sharing.EXPIRED: "The link to this mixtape has expired.",
    sharing.REVOKED: "Its owner has stopped sharing this link.",
    sharing.WITHDRAWN: "Sharing is turned off for this mixtape on this server.",
}


class LinkGone(Exception):
    def __init__(self, link: ShareLink, state: str):
        super().__init__(state)
        self.link, self.state = link, state


def _live_link(token: str) -> ShareLink:
    link = selectors.share_link(token)
    if link is None:
        raise Http404("No such link.")
    state = sharing.link_state(link)
    if state != sharing.LIVE:
        raise LinkGone(link, state)
    return link


def _gone(request, error: LinkGone) -> HttpResponse:
    response = render(
        request,
        "mixtapes/share_gone.html",
        {"title": error.link.mixtape.title, "reason": GONE_REASONS[error.state]},
        status=410,
    )
    response["Cache-Control"] = "private, no-cache"
    return response


def _link_view(view):
    """Open the link of ``token`` for ``view``, or answer why it no longer opens anything."""

    @functools.wraps(view)
    def wrapped(request, token: str):
        try:
            link = _live_link(token)
        except LinkGone as gone:
            return _gone(request, gone)
        return view(request, link)

    return wrapped


def _quality(request) -> str:
    quality = request.GET.get("quality", settings.AUDIO_CACHE_DEFAULT_QUALITY)
    if quality not in REQUESTABLE:
        raise Http404("No such quality.")
    return quality


@require_GET
@_link_view
def listen(request, link: ShareLink):
    """``/listen/<token>/``: the mixtape's page for whoever holds the link (each visit counted)."""
    services.record_visit(link)
    return share_page(request, link.mixtape, link)


@require_safe
@_link_view
def link_cover(request, link: ShareLink):
    return cover_response(request, link.mixtape, public=False)


@require_safe
@_link_view
def link_playlist(request, link: ShareLink):
    """``/listen/<token>/playlist.m3u8?quality=...``: the tracks as stream URLs valid for this
    link, for VLC, foobar2000, mpv or a phone's player."""
    quality = _quality(request)
    lines = ["#EXTM3U", f"#PLAYLIST:{' '.join(link.mixtape.title.split())}"]
    for entry in selectors.tracklist(link.mixtape):
        track = entry.track
        url = request.build_absolute_uri(reverse("stream", args=[track.pk]))
        lines += [
            f"#EXTINF:{round(track.duration or -1)},{' '.join(track.display_name.split())}",
            f"{url}?quality={quality}&share={link.token}",
        ]
    response = HttpResponse("\n".join(lines) + "\n", content_type="audio/x-mpegurl; charset=utf-8")
    filename = f"{downloads.safe_name(link.mixtape.title, 'Mixtape')}.m3u8"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "private, no-cache"
    return response


@require_GET
@_link_view
def link_download(request, link: ShareLink):
    """``/listen/<token>/download/?quality=...``: the mixtape as a zip, streamed, when the link
    allows downloads. Renditions not made yet are queued first, and a page that reloads itself
    says how many are left; once every file is there, the zip (with its length) starts."""
    if not link.allow_download:
        raise Http404("This link does not offer a download.")
    quality = _quality(request)
    entries = selectors.tracklist(link.mixtape)
    plan = cache_services.plan_download([entry.track_id for entry in entries], quality)
    if not plan.ready:
        response = render(
            request,
            "mixtapes/download_preparing.html",
            {
                "mixtape": link.mixtape,
                "link": link,
                "plan": plan,
                "total": len(entries),
                "ready": len(entries) - plan.preparing - plan.missing,
            },
            status=202,
        )
        response["Cache-Control"] = "no-store"
        response["Retry-After"] = "3"
        return response
    tracks = {entry.track_id: entry.track for entry in entries}
    items = [(tracks[file.track_id], file.path, file.is_rendition) for file in plan.files]
    archive = downloads.mixtape_zip(link.mixtape, items)
    response = StreamingHttpResponse(downloads.body_for(request, archive), content_type="application/zip")
    response["Content-Length"] = str(len(archive))
    filename = f"{downloads.safe_name(link.mixtape.title, 'Mixtape')}.zip"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "private, no-store"
    return response


# --- The owner's buttons -----------------------------------------------------------------------


def _own(request, slug) -> Mixtape:
    return get_object_or_404(Mixtape, slug=slug, owner=request.user)


def _back(mixtape: Mixtape):
    return redirect(reverse("editor", args=[mixtape.slug]) + "#share-links")


@login_required
@require_POST
def create_link(request, slug):
    mixtape = _own(request, slug)
    if not sharing.may_publish(request.user):
        messages.error(request, sharing.refusal())
        return _back(mixtape)
    form = ShareLinkForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The link was not made: " + " ".join(e for errs in form.errors.values() for e in errs))
        return _back(mixtape)
    try:
        services.create_link(
            mixtape,
            label=form.cleaned_data["label"],
            expires_in=form.expires_in(),
            allow_download=form.cleaned_data["allow_download"],
        )
    except services.TooManyLinks as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "New share link made: copy it from the list below.")
    return _back(mixtape)


def _own_link(request, slug, link_id) -> ShareLink:
    return get_object_or_404(ShareLink.objects.select_related("mixtape"), pk=link_id, mixtape=_own(request, slug))


@login_required
@require_POST
def revoke_link(request, slug, link_id: int):
    link = _own_link(request, slug, link_id)
    services.revoke_link(link)
    messages.success(request, "The link no longer works; its visitors now see that the mixtape is no longer shared.")
    return _back(link.mixtape)


@login_required
@require_POST
def reissue_link(request, slug, link_id: int):
    link = _own_link(request, slug, link_id)
    if not sharing.may_publish(request.user):
        messages.error(request, sharing.refusal())
        return _back(link.mixtape)
    services.reissue_link(link)
    messages.success(request, "The old link no longer works; a new one replaces it below.")
    return _back(link.mixtape)
