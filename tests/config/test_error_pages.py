"""Error pages in the site's layout, with a way home (templates/404.html, 403.html,
403_csrf.html, 500.html), as served with DEBUG=false (the test settings' default)."""

import pytest
from django.test import Client, RequestFactory
from django.views.defaults import server_error

from tests.factories import MixtapeFactory, UserFactory

pytestmark = pytest.mark.django_db


def is_site_page(response) -> bool:
    page = response.content.decode()
    return 'class="navbar-brand fw-semibold"' in page and "Back to the start page" in page and 'href="/"' in page


def test_not_found_in_the_layout(client, settings):
    assert settings.DEBUG is False
    for path in ("/no-such-page/", "/share/no-such-tape/", f"/share/{MixtapeFactory(is_public=False).slug}/"):
        response = client.get(path)
        assert response.status_code == 404 and is_site_page(response), path
        assert "Nothing here" in response.content.decode()


def test_forbidden_in_the_layout(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.get("/admin/mixtapes/track/add/")  # tracks come from the scan only
    assert response.status_code == 403 and is_site_page(response)


def test_an_expired_form_says_so_in_the_layout():
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(UserFactory())
    response = strict.post("/editor/new/", {"title": "x"})
    assert response.status_code == 403 and is_site_page(response)
    assert "The form could not be sent" in response.content.decode()


def test_a_server_error_page_needs_neither_request_context_nor_database(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong" in page and 'href="/"' in page and "bootstrap.min.css" in page
