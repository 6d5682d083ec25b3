"""Who may reach what, checked over every URL the URLconf has (so a new view cannot slip by).

The test walks ``django.urls.get_resolver()``, fills each pattern's parameters with real objects and
asserts: anonymous visitors reach only the public pages listed below; everything else sends them to a
login page (or answers 403); the admin is for staff only; every POST needs a CSRF token; a stranger
never sees a private mixtape or its cover, and an anonymous visitor never streams a track that only a
private mixtape holds.

Tracks are the library of the server, shared by every account (any logged-in user may search and play
them); mixtapes are private to their owner unless public. Static files are served by WhiteNoise, outside
the URLconf (tests/e2e/test_static_files.py).

Covered elsewhere, not repeated: SSE channel authorization (tests/events/test_access.py), cover re-encoding and
size limits (tests/mixtapes/test_editor.py), SECRET_KEY generation and ``check --deploy``
(tests/config/test_settings.py).
"""

import re

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from audiocache.models import CacheBatch
from mixtapes.models import Mixtape, ShareLink
from subsonic.models import ApiKey, Scrobble, StreamingPassword
from tests.factories import (
    CacheBatchFactory,
    CachedRenditionFactory,
    CacheTaskFactory,
    MixtapeFactory,
    MixtapeTrackFactory,
    TrackFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

# URL names anonymous visitors may open, and what limits each one.
PUBLIC = {
    "home": "the landing page (shows the library only to logged-in users)",
    "login": "the login form",
    "logout": "logging out (POST only)",
    "healthz": "health check for load balancers (no private data)",
    "share": "share page: public mixtapes only, 404 for private ones",
    "mixtape-cover": "cover image: public mixtapes only, 404 for private ones",
    "stream": "audio: tracks on a public mixtape only, 404 for the others",
    "track-cover": "a track's picture: tracks on a public mixtape only, 404 for the others",
    "admin:login": "the admin's login form",
    "admin:logout": "a GET only redirects to the admin index (logging out is a POST)",
    "subsonic": "the Subsonic API: each call authenticates itself (API key or token), else an error envelope",
    "link": "a share link's page: only with a live link's token (404 unknown, 410 expired or revoked)",
    "link-cover": "a share link's cover: the same",
    "link-playlist": "a share link's M3U8: the same",
    "link-download": "a share link's zip: the same, and only where the link allows downloads",
}
# What an anonymous GET of each public URL gets, with the world's private mixtape and track in it:
# (status, Location).
PUBLIC_ANSWERS = {
    "home": (200, None),
    "login": (200, None),
    "logout": (405, None),
    "healthz": (200, None),
    "share": (404, None),
    "mixtape-cover": (404, None),
    "stream": (404, None),
    "track-cover": (404, None),
    "admin:login": (200, None),
    "admin:logout": (302, "/admin/"),
    "subsonic": (200, None),  # status="failed", code 10 (tests/subsonic/test_auth.py)
    # The world's link to its private mixtape is revoked (tests/mixtapes/test_share_links.py has live ones).
    "link": (410, None),
    "link-cover": (410, None),
    "link-playlist": (410, None),
    "link-download": (410, None),
}
# What a superuser's GET of an admin page gets, where it is not a 200 page: (status, Location).
STAFF_ANSWERS = {
    "admin:login": (302, "/admin/"),  # already logged in
    "admin:autocomplete": (403, None),  # refused without its parameters
    "admin:view_on_site": (404, None),  # no model has a page of its own on the site
    # No group exists: the admin goes back to its index, with a message.
    "admin:auth_group_change": (302, "/admin/"),
    "admin:auth_group_delete": (302, "/admin/"),
    "admin:auth_group_history": (302, "/admin/"),
    "admin:audiocache_purge": (302, "/admin/audiocache/cachedrendition/dashboard/"),  # nothing chosen to purge
    # Tracks come from the scan, renditions, tasks and batches from the workers: never added by hand.
    "admin:mixtapes_track_add": (403, None),
    "admin:audiocache_cachedrendition_add": (403, None),
    "admin:audiocache_cachetask_add": (403, None),
    "admin:audiocache_cachebatch_add": (403, None),
    # Failed-login records (django-axes) are written by logins, never by hand.
    "admin:axes_accessattempt_add": (403, None),
    "admin:axes_accesslog_add": (403, None),
    "admin:axes_accessfailurelog_add": (403, None),
    # Keys and passwords are made by their owners on the Connected apps page; scrobbles by apps.
    "admin:subsonic_apikey_add": (403, None),
    "admin:subsonic_streamingpassword_add": (403, None),
    "admin:subsonic_scrobble_add": (403, None),
    # Share links are made by owners in the editor.
    "admin:mixtapes_sharelink_add": (403, None),
}
# A stranger's GET and POST of each non-admin URL naming the private mixtape.
STRANGER_ANSWERS = {
    "editor": (404, 404),
    "mixtape-delete": (404, 404),
    "share": (404, 405),  # GET only, whoever asks
    "mixtape-cover": (404, 405),
    # POST only (GET: 405); a stranger's POST finds no such mixtape.
    "link-create": (405, 404),
    "link-revoke": (405, 404),
    "link-reissue": (405, 404),
}
# Views that take a POST without a CSRF token, and why that is safe.
CSRF_EXEMPT = {
    # Music apps post forms (the formPost extension) with their key or token in every call; the
    # session cookie is never read there, so a forged cross-site post has nothing to ride on.
    "subsonic": "authenticated by parameters, never by cookie",
}


def walk(patterns=None, prefix="", namespace=""):
    """(route text, qualified name) of every URL pattern, depth first."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}:{pattern.namespace}".strip(":") if pattern.namespace else namespace
            yield from walk(pattern.url_patterns, route, inner)
        elif isinstance(pattern, URLPattern):
            yield route, f"{namespace}:{pattern.name}".strip(":") if pattern.name else f"{namespace}:<unnamed>"


def to_path(route: str, values: dict) -> str:
    """A concrete path for a route: ``<conv:name>`` and the admin's two regular expressions filled in."""
    route = re.sub(r"\^\(\?P<app_label>[\w|]+\)/\$", "mixtapes/", route)
    route = route.replace("(?P<url>.*)$", "no-such-page/")
    route = route.replace("^rest/(?P<name>[A-Za-z0-9]{1,40})(?:\\.view)?$", "rest/getPlaylists.view")
    assert "(?P" not in route and "^" not in route, f"unhandled pattern {route!r}: teach to_path about it"
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)


@pytest.fixture
def world():
    """An owner with a private and a public mixtape, tracks, a batch, renditions and tasks."""
    owner = UserFactory(username="owner")
    private = MixtapeFactory(owner=owner, slug="private-tape", is_public=False, cover="covers/private.jpg")
    public = MixtapeFactory(owner=owner, slug="public-tape", is_public=True)
    private_track = MixtapeTrackFactory(mixtape=private).track
    public_track = MixtapeTrackFactory(mixtape=public).track
    batch = CacheBatchFactory(created_by=owner, mixtape=private)
    rendition = CachedRenditionFactory(track=private_track)
    task = CacheTaskFactory(track=private_track)
    attempt = AccessAttempt.objects.create(username="owner", ip_address="192.0.2.1", failures_since_start=3)
    access_log = AccessLog.objects.create(username="owner", ip_address="192.0.2.1")
    failure_log = AccessFailureLog.objects.create(username="owner", ip_address="192.0.2.1")
    api_key = ApiKey.objects.create(user=owner, name="Phone", prefix="mxk_abcdefgh", digest="0" * 64)
    streaming_password = StreamingPassword.objects.create(user=owner, ciphertext="x")
    scrobble = Scrobble.objects.create(user=owner, track=private_track, played_at=timezone.now())
    link = ShareLink.objects.create(mixtape=private, token="R" * 22, allow_download=True, revoked_at=timezone.now())
    values = {
        "slug": private.slug,
        "track_id": private_track.pk,
        "batch_id": batch.pk,
        "content_type_id": ContentType.objects.get_for_model(Mixtape).pk,
        "id": owner.pk,
        "token": link.token,
        "link_id": link.pk,
    }
    return {
        "owner": owner, "private": private, "public": public, "private_track": private_track,
        "public_track": public_track, "batch": batch, "rendition": rendition, "task": task, "values": values,
        "attempt": attempt, "access_log": access_log, "failure_log": failure_log, "api_key": api_key,
        "streaming_password": streaming_password, "scrobble": scrobble, "link": link,
    }  # fmt: skip


def object_id_for(route: str, world) -> int:
    """The admin's ``<path:object_id>``: a real row of the model the route is about."""
    by_model = {
        "auth/group": None,
        "auth/user": world["owner"].pk,
        "audiocache/cachedrendition": world["rendition"].pk,
        "audiocache/cachetask": world["task"].pk,
        "audiocache/cachebatch": world["batch"].pk,
        "mixtapes/track": world["private_track"].pk,
        "mixtapes/mixtape": world["private"].pk,
        "axes/accessattempt": world["attempt"].pk,
        "axes/accesslog": world["access_log"].pk,
        "axes/accessfailurelog": world["failure_log"].pk,
        "subsonic/apikey": world["api_key"].pk,
        "subsonic/streamingpassword": world["streaming_password"].pk,
        "subsonic/scrobble": world["scrobble"].pk,
        "mixtapes/sharelink": world["link"].pk,
        "r/": world["private"].pk,
    }
    for key, pk in by_model.items():
        if f"admin/{key}" in route:
            return pk if pk is not None else 1
    raise AssertionError(f"no object for {route!r}")


def every_url(world):
    for route, name in walk():
        values = dict(world["values"])
        if "object_id" in route:
            values["object_id"] = object_id_for(route, world)
        yield name, to_path(route, values)


def sends_to_login(response) -> bool:
    location = response.headers.get("Location", "")
    return response.status_code == 302 and location.startswith(("/accounts/login/", "/admin/login/"))


def test_the_walk_sees_the_whole_urlconf(world):
    names = {name for name, _ in every_url(world)}
    # A sample of what must be there: if the walk stopped early, the checks below would prove little.
    assert {"home", "editor", "stream", "batch-events", "admin:index", "admin:mixtapes_mixtape_change"} <= names
    assert set(PUBLIC) <= names
    assert len(list(every_url(world))) > 60


def test_anonymous_visitors_reach_only_the_public_pages(client, world):
    assert set(PUBLIC_ANSWERS) == set(PUBLIC)
    for name, path in every_url(world):
        response = client.get(path)
        if name in PUBLIC:
            answer = (response.status_code, response.headers.get("Location"))
            assert answer == PUBLIC_ANSWERS[name], (name, path, answer)
            continue
        # Everything else: a login page, or 403 for endpoints that are not pages (SSE).
        assert sends_to_login(response) or response.status_code == 403, (name, path, response.status_code)


def test_the_public_pages_give_away_nothing_private(client, world):
    private, public = world["private"], world["public"]
    assert client.get(f"/share/{private.slug}/").status_code == 404
    assert client.get(f"/share/{private.slug}/cover/").status_code == 404
    assert client.get(f"/share/{public.slug}/").status_code == 200
    assert client.get(f"/stream/{world['private_track'].pk}/").status_code == 404
    home = client.get("/").content.decode()
    assert private.title not in home and world["private_track"].title not in home
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert client.get("/accounts/logout/").status_code == 405  # logging out is a POST


def test_the_admin_is_for_staff_only(client, world):
    client.force_login(UserFactory(username="not-staff"))
    admin_urls = [(name, path) for name, path in every_url(world) if name.startswith("admin:")]
    assert len(admin_urls) > 40
    for name, path in admin_urls:
        if name in ("admin:login", "admin:logout"):
            continue
        response = client.get(path)
        assert sends_to_login(response), (name, path, response.status_code)
        assert response["Location"].startswith("/admin/login/")


def test_staff_reach_every_admin_page_without_errors(client, world):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    for name, path in every_url(world):
        if name.startswith("admin:") and name != "admin:logout":
            response = client.get(path)
            if name == "admin:<unnamed>":  # the old /<app>/<model>/<id>/ form, and the catch-all
                expected = (404, None) if path == "/admin/no-such-page/" else (302, path + "change/")
            else:
                expected = STAFF_ANSWERS.get(name, (200, None))
            answer = (response.status_code, response.headers.get("Location"))
            assert answer == expected, (name, path, answer)


def test_a_stranger_never_sees_a_private_mixtape(client, world):
    stranger = UserFactory(username="stranger")
    client.force_login(stranger)
    private = world["private"]
    unseen = dict(STRANGER_ANSWERS)
    for name, path in every_url(world):
        if name.startswith("admin:") or "private-tape" not in path:
            continue
        answers = (client.get(path).status_code, client.post(path, {"title": "hijacked"}).status_code)
        assert answers == unseen.pop(name), (name, path, answers)
    assert unseen == {}, "URLs of the private mixtape the walk no longer sees"
    private.refresh_from_db()
    assert private.title != "hijacked" and Mixtape.objects.filter(pk=private.pk).exists()
    assert private.title not in client.get("/mixtapes/").content.decode()
    assert client.get(f"/events/batches/{world['batch'].pk}/").status_code == 403
    assert CacheBatch.objects.filter(pk=world["batch"].pk).exists()


def test_every_post_needs_a_csrf_token(world):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    anonymous = Client(enforce_csrf_checks=True)
    for name, path in every_url(world):
        for client in (strict, anonymous):
            response = client.post(path, {"title": "x", "username": "root", "password": "x"})
            if name in CSRF_EXEMPT:
                continue
            assert response.status_code == 403 and b"CSRF" in response.content, (name, path, response.status_code)
    world["private"].refresh_from_db()
    assert world["private"].title != "x"


def test_an_unknown_track_and_a_private_one_look_the_same_to_strangers(client, world):
    """No way to tell a private track from one that does not exist (same status and body)."""
    unknown = TrackFactory().pk + 1000
    hidden = client.get(f"/stream/{world['private_track'].pk}/")
    missing = client.get(f"/stream/{unknown}/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content
