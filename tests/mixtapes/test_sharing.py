"""Who may publish a mixtape (MIXTAPES_PUBLIC_SHARING, mixtapes/sharing.py), and what a shared
mixtape's share page, cover and tracks answer to anonymous listeners in each mode."""

import pytest
from django.urls import reverse

from mixtapes.models import Mixtape
from tests.conftest import url
from tests.factories import MixtapeFactory, MixtapeTrackFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tapes(library):
    """A public mixtape of an ordinary account and one of a staff account, one real track each."""
    member = UserFactory(username="member")
    staff = UserFactory(username="curator", is_staff=True)
    by_member = MixtapeFactory(owner=member, slug="members-tape", is_public=True)
    by_staff = MixtapeFactory(owner=staff, slug="staff-tape", is_public=True)
    MixtapeTrackFactory(mixtape=by_member, track=library["lossless.flac"])
    MixtapeTrackFactory(mixtape=by_staff, track=library["other.m4a"])
    return {"member": member, "staff": staff, "by_member": by_member, "by_staff": by_staff, "library": library}


def reaches(client, mixtape) -> tuple[int, int]:
    """(share page, its first track's stream) statuses for this client."""
    track = mixtape.entries.get().track
    return client.get(f"/share/{mixtape.slug}/").status_code, client.get(url(track, "original")).status_code


@pytest.mark.parametrize(
    ("mode", "member_tape", "staff_tape"),
    [("all", (200, 200), (200, 200)), ("staff", (404, 404), (200, 200)), ("none", (404, 404), (404, 404))],
)
def test_what_anonymous_listeners_reach_in_each_mode(client, settings, tapes, mode, member_tape, staff_tape):
    settings.MIXTAPES_PUBLIC_SHARING = mode
    assert reaches(client, tapes["by_member"]) == member_tape
    assert reaches(client, tapes["by_staff"]) == staff_tape


def test_owners_still_see_their_own_withdrawn_mixtape_as_private(client, settings, tapes):
    settings.MIXTAPES_PUBLIC_SHARING = "staff"
    client.force_login(tapes["member"])
    page = client.get("/share/members-tape/")
    assert page.status_code == 200 and "Private: only you can see it" in page.content.decode()
    assert page["Cache-Control"] == "private, no-cache"
    listing = client.get(reverse("mixtape-list")).content.decode()
    assert ">Private<" in listing and ">Public<" not in listing


def test_switching_back_restores_the_links_untouched(client, settings, tapes):
    settings.MIXTAPES_PUBLIC_SHARING = "none"
    assert reaches(client, tapes["by_member"]) == (404, 404)
    settings.MIXTAPES_PUBLIC_SHARING = "all"
    assert reaches(client, tapes["by_member"]) == (200, 200)


def test_taking_staff_status_away_withdraws_the_link(client, settings, tapes):
    settings.MIXTAPES_PUBLIC_SHARING = "staff"
    staff = tapes["staff"]
    staff.is_staff = False
    staff.save()
    assert reaches(client, tapes["by_staff"]) == (404, 404)


def editor_post(client, slug, **fields):
    mixtape = Mixtape.objects.get(slug=slug)
    data = {"title": mixtape.title, "liner_notes": "", "track": [e.track_id for e in mixtape.entries.all()], **fields}
    return client.post(reverse("editor", args=[slug]), data)


def test_the_editor_switch_is_off_for_accounts_that_may_not_publish(client, settings, tapes):
    settings.MIXTAPES_PUBLIC_SHARING = "staff"
    client.force_login(tapes["member"])
    page = client.get(reverse("editor", args=["members-tape"])).content.decode()
    assert 'role="switch"' in page and "disabled" in page.split('role="switch"')[1].split(">")[0]
    assert "only staff accounts may make a mixtape public" in page
    # A posted "on" is ignored, and the save makes the mixtape private for good.
    assert editor_post(client, "members-tape", is_public="on").status_code == 302
    assert Mixtape.objects.get(slug="members-tape").is_public is False

    settings.MIXTAPES_PUBLIC_SHARING = "none"
    client.force_login(tapes["staff"])
    page = client.get(reverse("editor", args=["staff-tape"])).content.decode()
    assert "Public mixtapes are turned off on this server" in page


def test_staff_may_publish_in_staff_mode(client, settings, tapes):
    settings.MIXTAPES_PUBLIC_SHARING = "staff"
    Mixtape.objects.filter(slug="staff-tape").update(is_public=False)
    client.force_login(tapes["staff"])
    page = client.get(reverse("editor", args=["staff-tape"])).content.decode()
    assert "disabled" not in page.split('role="switch"')[1].split(">")[0]
    assert editor_post(client, "staff-tape", is_public="on").status_code == 302
    client.logout()
    assert reaches(client, tapes["by_staff"]) == (200, 200)


def test_the_share_page_may_be_cached_only_when_it_is_the_same_for_everyone(client, tapes):
    anonymous = client.get("/share/members-tape/")
    assert anonymous["Cache-Control"] == "public, max-age=300"
    client.force_login(tapes["staff"])  # a signed-in page shows the account's menu
    assert client.get("/share/members-tape/")["Cache-Control"] == "private, no-cache"
