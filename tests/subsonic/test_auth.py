"""Who may call the Subsonic API (subsonic/auth.py): API keys, the streaming password as a token or,
over HTTPS only, in plain; every failure's code; the failed-login limit; the switch."""

import pytest
from django.test import Client

from subsonic import services
from subsonic.models import ApiKey, StreamingPassword
from subsonic.views import _methods
from tests.factories import UserFactory

from .conftest import api, error_code, token_params

pytestmark = pytest.mark.django_db


def test_a_token_made_from_the_streaming_password_logs_in(client, ann):
    body = api(client, "getMusicFolders", ann.auth)
    assert body["status"] == "ok" and body["version"] == "1.16.1" and body["openSubsonic"] is True
    assert body["type"] == "mixtapes" and body["serverVersion"]
    assert StreamingPassword.objects.get(user=ann).last_used_at is not None


def test_the_account_password_is_never_accepted(client, ann):
    """The token scheme needs a secret the server can read back: only the streaming password is one."""
    account = token_params("ann", "correct horse battery staple")  # UserFactory's password
    assert error_code(api(client, "getMusicFolders", account)) == 40
    plain = {"u": "ann", "p": "correct horse battery staple"}
    assert error_code(api(Client(), "getMusicFolders", plain, secure=True)) == 40


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, 10),  # nothing at all
        ({"u": "ann"}, 10),  # neither token nor password
        ({"u": "ann", "t": "0" * 32, "s": "abc"}, 40),  # wrong token
        ({"u": "nobody", "t": "0" * 32, "s": "abc"}, 40),  # unknown user: the same answer
        ({"apiKey": "mxk_not-a-key"}, 44),
        ({"apiKey": "mxk_x", "u": "ann"}, 43),  # two mechanisms at once
    ],
)
def test_each_failure_has_its_code(client, ann, params, code):
    body = api(client, "getPlaylists", params)
    assert body["status"] == "failed" and error_code(body) == code and body["error"]["message"]


def test_a_user_without_a_streaming_password_is_told_how_to_make_one(client):
    UserFactory(username="bob")
    body = api(client, "getPlaylists", token_params("bob", "anything"))
    assert error_code(body) == 41 and "Connected apps" in body["error"]["message"]


def test_plain_passwords_need_https_or_the_setting(client, ann, settings):
    plain = {"u": "ann", "p": ann.streaming}
    assert error_code(api(client, "getPlaylists", plain)) == 42
    assert api(client, "getPlaylists", plain, secure=True)["status"] == "ok"
    encoded = {"u": "ann", "p": "enc:" + ann.streaming.encode().hex()}
    assert api(client, "getPlaylists", encoded, secure=True)["status"] == "ok"
    settings.SUBSONIC_ALLOW_PLAIN_PASSWORD = True
    assert api(client, "getPlaylists", plain)["status"] == "ok"


def test_api_keys_log_in_are_stored_as_digests_and_can_be_revoked(client, ann):
    key = services.create_api_key(ann, "Phone")
    row = ApiKey.objects.get(user=ann)
    assert key not in (row.digest, row.prefix) and key.startswith(row.prefix)
    assert api(client, "getPlaylists", {"apiKey": key})["status"] == "ok"
    row.refresh_from_db()
    assert row.last_used_at is not None
    assert services.revoke_api_key(ann, row.pk)
    assert error_code(api(client, "getPlaylists", {"apiKey": key})) == 44


def test_a_new_streaming_password_replaces_the_old_one(client, ann):
    old = ann.auth
    new = services.new_streaming_password(ann)
    assert error_code(api(client, "getPlaylists", old)) == 40
    assert api(client, "getPlaylists", token_params("ann", new))["status"] == "ok"
    services.revoke_streaming_password(ann)
    assert error_code(api(client, "getPlaylists", token_params("ann", new))) == 41


def test_failed_logins_are_limited_like_the_login_page(client, ann, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        assert error_code(api(client, "getPlaylists", token_params("ann", "guess"))) == 40
    locked = api(client, "getPlaylists", ann.auth)  # the right token, during the pause
    assert error_code(locked) == 40 and "Too many failed logins" in locked["error"]["message"]


def test_ping_checks_credentials_when_given_and_the_system_methods_are_open(client, ann):
    assert api(client, "ping", {})["status"] == "ok"
    assert error_code(api(client, "ping", token_params("ann", "wrong"))) == 40
    assert api(client, "ping", ann.auth)["status"] == "ok"
    extensions = api(client, "getOpenSubsonicExtensions", {})["openSubsonicExtensions"]
    assert {"name": "apiKeyAuthentication", "versions": [1]} in extensions
    assert api(client, "getLicense", {})["license"] == {"valid": True}


def test_the_switch_turns_the_whole_api_off(client, ann, settings):
    settings.SUBSONIC_ENABLED = False
    assert client.get("/rest/ping", ann.auth).status_code == 404
    client.force_login(ann)
    assert client.get("/account/apps/").status_code == 404


def test_an_unknown_method_is_a_clean_error(client, ann):
    assert error_code(api(client, "getPodcasts", ann.auth)) == 70
    assert client.get("/rest/ping.view.view").status_code == 404


def test_every_method_but_the_system_ones_needs_credentials(client, ann):
    open_ones = {name for name, (_, public) in _methods.items() if public}
    assert open_ones == {"ping", "getLicense", "getOpenSubsonicExtensions"}
    for name in set(_methods) - open_ones:  # shares, playlists and media included
        assert error_code(api(client, name, {"id": "1"})) == 10, name
