"""Fixtures shared by the library's and the mixtape pages' tests."""

import pytest

from tests.factories import UserFactory


@pytest.fixture
def alice(client):
    user = UserFactory(username="alice")
    client.force_login(user)
    return user
