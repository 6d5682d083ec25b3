import hashlib
from xml.etree import ElementTree

import pytest

from subsonic import selectors, services
from tests.factories import UserFactory

NS = {"s": "http://subsonic.org/restapi"}


@pytest.fixture(autouse=True)
def fresh_library_index():
    """The API's artist and album index is kept for seconds: each test reads its own library."""
    selectors.forget_index()
    yield
    selectors.forget_index()


@pytest.fixture
def ann():
    """A user with a streaming password; ``ann.auth`` are token parameters for her."""
    user = UserFactory(username="ann")
    password = services.new_streaming_password(user)
    user.streaming = password
    user.auth = token_params("ann", password)
    return user


def token_params(username: str, password: str, salt: str = "c19b2d") -> dict:
    token = hashlib.md5((password + salt).encode(), usedforsecurity=False).hexdigest()  # the protocol's own
    return {"u": username, "t": token, "s": salt, "v": "1.16.1", "c": "tests"}


def api(client, method: str, params: dict, **extra) -> dict:
    """The JSON envelope of a call (``f=json``)."""
    response = client.get(f"/rest/{method}", {**params, "f": "json"}, **extra)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    return response.json()["subsonic-response"]


def api_xml(client, method: str, params: dict) -> ElementTree.Element:
    response = client.get(f"/rest/{method}.view", params)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    root = ElementTree.fromstring(response.content)  # noqa: S314 - our own server's answer
    assert root.tag == "{http://subsonic.org/restapi}subsonic-response"
    return root


def error_code(body: dict) -> int | None:
    return body["error"]["code"] if body["status"] == "failed" else None
