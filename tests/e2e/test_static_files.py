"""Static files under uvicorn with production settings (DEBUG off), before and after collectstatic."""

import re
import urllib.request

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def fetch(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def stylesheet(base: str) -> str:
    status, _type, page = fetch(base + "/accounts/login/")
    assert status == 200
    return re.search(rb'href="(/static/vendor/bootstrap/[^"]+\.css)"', page).group(1).decode()


def test_pages_work_before_collectstatic(uvicorn_server, tmp_path):
    base = uvicorn_server(STATIC_ROOT=str(tmp_path / "never-collected"))
    css = stylesheet(base)
    assert css == "/static/vendor/bootstrap/bootstrap.min.css"  # plain name: nothing collected yet
    status, content_type, body = fetch(base + css)
    assert status == 200 and content_type.startswith("text/css") and len(body) > 100_000


def test_hashed_names_after_collectstatic(uvicorn_server, static_root):
    root = static_root  # collected by the fixture, with the production storage
    base = uvicorn_server(STATIC_ROOT=str(root))
    css = stylesheet(base)
    assert re.fullmatch(r"/static/vendor/bootstrap/bootstrap\.min\.[0-9a-f]{12}\.css", css)
    status, _type, _body = fetch(base + css)
    assert status == 200
