"""The login page (config/urls.py): it works, and needs its CSRF token."""

import pytest
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_login_page_and_csrf(client):
    user = UserFactory(username="ann")
    assert client.get(reverse("login")).status_code == 200
    strict = client.__class__(enforce_csrf_checks=True)
    response = strict.post(reverse("login"), {"username": "ann", "password": "correct horse battery staple"})
    assert response.status_code == 403
    response = client.post(reverse("login"), {"username": "ann", "password": "correct horse battery staple"})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
