"""The "Connected apps" page (subsonic/account.py): keys and the streaming password are shown once,
kept only as a digest or ciphertext, and revoked by their owner alone."""

import re

import pytest

from subsonic import secrets
from subsonic.models import ApiKey, StreamingPassword
from tests.factories import UserFactory

from .conftest import api, error_code, token_params

pytestmark = pytest.mark.django_db


def shown(response, element_id: str) -> str:
    match = re.search(rf'id="{element_id}" readonly value="([^"]+)"', response.content.decode())
    assert match, f"#{element_id} is not on the page"
    return match.group(1)


def test_the_page_needs_a_login(client):
    response = client.get("/account/apps/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_key_is_shown_once_and_works_until_revoked(client):
    ann = UserFactory(username="ann")
    client.force_login(ann)
    made = client.post("/account/apps/", {"action": "create-key", "name": "Symfonium on my phone"})
    assert made.status_code == 200 and made["Cache-Control"] == "no-store"
    key = shown(made, "new-api-key")
    row = ApiKey.objects.get(user=ann)
    assert row.name == "Symfonium on my phone" and row.digest == secrets.api_key_digest(key)
    page = client.get("/account/apps/").content.decode()
    assert key not in page and row.prefix in page and "never" in page
    assert api(client, "getPlaylists", {"apiKey": key})["status"] == "ok"

    bob = UserFactory(username="bob")
    client.force_login(bob)
    client.post("/account/apps/", {"action": "revoke-key", "key": row.pk})  # not his
    assert ApiKey.objects.filter(pk=row.pk).exists()
    client.force_login(ann)
    assert client.post("/account/apps/", {"action": "revoke-key", "key": row.pk}).status_code == 302
    assert error_code(api(client, "getPlaylists", {"apiKey": key})) == 44


def test_the_streaming_password_is_shown_once_stored_encrypted_and_revocable(client):
    ann = UserFactory(username="ann")
    client.force_login(ann)
    password = shown(client.post("/account/apps/", {"action": "new-password"}), "new-streaming-password")
    stored = StreamingPassword.objects.get(user=ann)
    assert password not in stored.ciphertext and secrets.decrypt(stored.ciphertext) == password
    assert password not in client.get("/account/apps/").content.decode()
    assert api(client, "getPlaylists", token_params("ann", password))["status"] == "ok"
    replaced = shown(client.post("/account/apps/", {"action": "new-password"}), "new-streaming-password")
    assert replaced != password
    assert error_code(api(client, "getPlaylists", token_params("ann", password))) == 40
    client.post("/account/apps/", {"action": "revoke-password"})
    assert error_code(api(client, "getPlaylists", token_params("ann", replaced))) == 41


def test_a_changed_secret_key_makes_stored_passwords_unreadable_not_wrong(client, settings):
    ann = UserFactory(username="ann")
    client.force_login(ann)
    password = shown(client.post("/account/apps/", {"action": "new-password"}), "new-streaming-password")
    settings.SECRET_KEY = "another-key-" + "y" * 40
    assert secrets.decrypt(StreamingPassword.objects.get(user=ann).ciphertext) is None
    assert error_code(api(client, "getPlaylists", token_params("ann", password))) == 41  # "make a new one"
