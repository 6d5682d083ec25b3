"""Shares through the Subsonic API (getShares, createShare, updateShare, deleteShare): they are
the mixtapes' share links, the ones the editor makes, with the same rules."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audiocache.models import CacheBatch
from mixtapes.library import scan_library
from mixtapes.models import Mixtape, ShareLink, Track
from subsonic import services
from tests.factories import MixtapeFactory, MixtapeTrackFactory, UserFactory

from .conftest import NS, api, api_xml, error_code, token_params

pytestmark = pytest.mark.django_db


@pytest.fixture
def library(make_audio):
    for n, title in enumerate(("Hunter", "Jóga"), start=1):
        make_audio(f"Björk/Homogenic/0{n}.flac", duration=1, tags={"title": title, "artist": "Björk",
                   "album": "Homogenic", "track": str(n)})  # fmt: skip
    make_audio("Cure/Plainsong.flac", duration=1, tags={"title": "Plainsong", "artist": "The Cure"})
    scan_library()
    return {t.title: t for t in Track.objects.all()}


@pytest.fixture
def tape(ann, library):
    mixtape = MixtapeFactory(owner=ann, title="Night drive", is_public=False)
    for position, title in enumerate(("Plainsong", "Hunter"), start=1):
        MixtapeTrackFactory(mixtape=mixtape, track=library[title], position=position)
    return mixtape


def millis(moment) -> int:
    return int(moment.timestamp() * 1000)


def test_a_playlist_shared_from_an_app_is_a_share_link(client, ann, tape):
    week = timezone.now() + timedelta(days=7)
    params = {**ann.auth, "id": f"pl-{tape.pk}", "description": "For Sam", "expires": millis(week),
              "downloadable": "true"}  # fmt: skip
    share = api(client, "createShare", params)["shares"]["share"][0]
    link = ShareLink.objects.get(mixtape=tape)
    assert (link.label, link.allow_download) == ("For Sam", True)
    assert abs((link.expires_at - week).total_seconds()) < 1
    assert share["url"] == f"http://testserver/listen/{link.token}/"
    assert (share["id"], share["description"], share["username"], share["visitCount"]) == (str(link.pk), "For Sam",
                                                                                          "ann", 0)  # fmt: skip
    assert [e["title"] for e in share["entry"]] == ["Plainsong", "Hunter"]  # the mixtape's order
    assert "lastVisited" not in share and share["expires"].startswith(week.date().isoformat())

    client.logout()
    assert client.get(f"/listen/{link.token}/").status_code == 200  # anyone with the link, no account
    listed = api(client, "getShares", ann.auth)["shares"]["share"]
    assert [(s["id"], s["visitCount"]) for s in listed] == [(str(link.pk), 1)] and "lastVisited" in listed[0]


def test_songs_and_albums_are_shared_as_a_new_private_mixtape(client, ann, library):
    album = api(client, "getSong", {**ann.auth, "id": library["Hunter"].pk})["song"]["albumId"]
    params = {**ann.auth, "id": [str(library["Plainsong"].pk), album], "description": "Two moods"}
    share = api(client, "createShare", params)["shares"]["share"][0]
    mixtape = Mixtape.objects.get(title="Two moods")
    assert (mixtape.owner, mixtape.is_public) == (ann, False)
    assert [e.track.title for e in mixtape.entries.order_by("position")] == ["Plainsong", "Hunter", "Jóga"]
    assert [e["title"] for e in share["entry"]] == ["Plainsong", "Hunter", "Jóga"]
    assert CacheBatch.objects.filter(mixtape=mixtape).count() == 1  # precached as any saved mixtape
    assert ShareLink.objects.get(mixtape=mixtape).expires_at is None  # no expires: never


def test_update_and_delete_a_share(client, ann, tape):
    share = api(client, "createShare", {**ann.auth, "id": f"pl-{tape.pk}"})["shares"]["share"][0]
    link = ShareLink.objects.get(pk=share["id"])
    assert share["description"] == "Night drive"  # no description: the mixtape's title
    month = timezone.now() + timedelta(days=30)
    changes = {**ann.auth, "id": share["id"], "description": "Book club", "expires": millis(month)}
    assert api(client, "updateShare", changes)["status"] == "ok"
    link.refresh_from_db()
    assert link.label == "Book club" and abs((link.expires_at - month).total_seconds()) < 1
    assert api(client, "updateShare", {**ann.auth, "id": share["id"], "expires": 0})["status"] == "ok"
    link.refresh_from_db()
    assert (link.label, link.expires_at) == ("Book club", None)  # 0: never expires; the label stays
    past = {**ann.auth, "id": share["id"], "expires": millis(timezone.now() - timedelta(hours=1))}
    refused = api(client, "updateShare", past)
    assert error_code(refused) == 0 and "past" in refused["error"]["message"]

    assert api(client, "deleteShare", {**ann.auth, "id": share["id"]})["status"] == "ok"
    link.refresh_from_db()
    assert link.revoked_at is not None  # revoked, still in the editor's list
    assert api(client, "getShares", ann.auth)["shares"].get("share", []) == []
    assert client.get(f"/listen/{link.token}/").status_code == 410  # "no longer shared"
    assert error_code(api(client, "deleteShare", {**ann.auth, "id": share["id"]})) == 70


def test_shares_belong_to_the_mixtapes_owner(client, ann, tape, library):
    bob = UserFactory(username="bob")
    bob.auth = token_params("bob", services.new_streaming_password(bob))
    ours = api(client, "createShare", {**ann.auth, "id": f"pl-{tape.pk}"})["shares"]["share"][0]
    public = MixtapeFactory(owner=ann, title="Open", is_public=True)
    assert error_code(api(client, "createShare", {**bob.auth, "id": f"pl-{tape.pk}"})) == 70  # private: unseen
    assert error_code(api(client, "createShare", {**bob.auth, "id": f"pl-{public.pk}"})) == 50  # seen, not his
    assert error_code(api(client, "deleteShare", {**bob.auth, "id": ours["id"]})) == 70
    assert error_code(api(client, "updateShare", {**bob.auth, "id": ours["id"], "description": "x"})) == 70
    assert api(client, "getShares", bob.auth)["shares"].get("share", []) == []
    assert ShareLink.objects.get(pk=ours["id"]).revoked_at is None


def test_bad_share_requests_say_why(client, ann, tape, library):
    both = {**ann.auth, "id": [f"pl-{tape.pk}", str(library["Hunter"].pk)]}
    assert error_code(api(client, "createShare", both)) == 0
    assert error_code(api(client, "createShare", ann.auth)) == 10
    assert error_code(api(client, "createShare", {**ann.auth, "id": "999999"})) == 70
    assert error_code(api(client, "createShare", {**ann.auth, "id": "al-0000000000000000"})) == 70
    assert error_code(api(client, "createShare", {**ann.auth, "id": "nonsense"})) == 70
    huge = {**ann.auth, "id": f"pl-{tape.pk}", "expires": "9" * 40}
    assert error_code(api(client, "createShare", huge)) == 0  # not a time Python can hold: refused
    assert not Mixtape.objects.exclude(pk=tape.pk).exists() and not ShareLink.objects.exists()


def test_no_shares_where_publishing_is_off(client, ann, tape, settings):
    settings.MIXTAPES_PUBLIC_SHARING = "none"
    assert api(client, "getUser", {**ann.auth, "username": "ann"})["user"]["shareRole"] is False
    refused = api(client, "createShare", {**ann.auth, "id": f"pl-{tape.pk}"})
    assert error_code(refused) == 50 and not ShareLink.objects.exists()
    settings.MIXTAPES_PUBLIC_SHARING = "all"
    assert api(client, "getUser", {**ann.auth, "username": "ann"})["user"]["shareRole"] is True


def test_shares_in_xml(client, ann, tape):
    api(client, "createShare", {**ann.auth, "id": f"pl-{tape.pk}", "description": "For Sam"})
    share = api_xml(client, "getShares", ann.auth).find("s:shares/s:share", NS)
    assert share.get("description") == "For Sam" and share.get("visitCount") == "0"
    assert [e.get("title") for e in share.findall("s:entry", NS)] == ["Plainsong", "Hunter"]
