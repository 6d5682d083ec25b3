"""The home page: the library and one's own mixtapes, for logged-in users only."""

import pytest

from tests.factories import MixtapeFactory, TrackFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_home_for_anonymous_users_shows_no_library(client):
    TrackFactory(title="Private Song")
    response = client.get("/")
    assert response.status_code == 200
    assert b"Log in" in response.content
    assert b"Private Song" not in response.content


def test_home_for_a_user_shows_library_and_own_mixtapes(client):
    user = UserFactory()
    TrackFactory(title="Known Song", duration=120)
    TrackFactory(title="Gone Song", missing_since="2026-01-01T00:00Z")
    MixtapeFactory(owner=user, title="Mine")
    MixtapeFactory(title="Someone else's")
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "Known Song" in page and "Gone Song" not in page
    assert "Mine" in page and "Someone else" not in page
