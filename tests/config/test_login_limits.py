"""Failed logins are limited (django-axes, config/settings.py "Failed logins"): per username and
per address, on the login page and the admin's, with a page that says what happened and for how long."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

RIGHT = "correct horse battery staple"


def log_in(client, username, password, *, address="192.0.2.10", url=None):
    return client.post(url or reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_ten_wrong_passwords_lock_the_account_even_for_the_right_one(client, settings):
    assert settings.LOGIN_FAILURE_LIMIT == settings.AXES_FAILURE_LIMIT == 10
    UserFactory(username="ann")
    for _ in range(9):
        response = log_in(client, "ann", "wrong")
        assert response.status_code == 200 and b"Please enter a correct username" in response.content
    locked = log_in(client, "ann", "wrong")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed logins" in page
    assert "After 10 failed attempts" in page and "<strong>ann</strong>" in page and "15 minutes" in page
    assert log_in(client, "ann", RIGHT).status_code == 429
    assert not logged_in(client)


def test_the_lock_is_per_username_whatever_the_address(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="ann")
    UserFactory(username="bob")
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        log_in(client, "ann", "wrong", address=address)
    assert log_in(client, "ann", RIGHT, address="198.51.100.7").status_code == 429
    # Another account, from a fresh address, is not affected.
    assert log_in(client, "bob", RIGHT, address="198.51.100.8").status_code == 302
    assert logged_in(client)


def test_the_lock_is_per_address_whatever_the_username(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="carol")
    for name in ("x1", "x2", "x3"):
        log_in(client, name, "wrong", address="203.0.113.5")
    assert log_in(client, "carol", RIGHT, address="203.0.113.5").status_code == 429
    assert log_in(client, "carol", RIGHT, address="203.0.113.6").status_code == 302


def test_the_admin_login_is_limited_too(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="root", is_staff=True, is_superuser=True)
    admin_login = reverse("admin:login")
    for _ in range(3):
        log_in(client, "root", "wrong", url=admin_login)
    response = log_in(client, "root", RIGHT, url=admin_login)
    assert response.status_code == 429 and b"Too many failed logins" in response.content
    assert not logged_in(client)


def test_the_lock_ends_after_the_cool_off(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="dan")
    for _ in range(3):
        log_in(client, "dan", "wrong")
    assert log_in(client, "dan", RIGHT).status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert log_in(client, "dan", RIGHT).status_code == 302


def test_a_good_login_clears_the_failures(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="eve")
    for _ in range(2):
        log_in(client, "eve", "wrong")
    assert log_in(client, "eve", RIGHT).status_code == 302
    client.logout()
    for _ in range(2):
        assert log_in(client, "eve", "wrong").status_code == 200
    assert log_in(client, "eve", RIGHT).status_code == 302


def test_staff_see_and_clear_the_attempts_in_the_admin(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="fay")
    for _ in range(3):
        log_in(client, "fay", "wrong", address="192.0.2.99")
    attempt = AccessAttempt.objects.get(username="fay")
    staff = client.__class__()
    staff.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    listing = staff.get(reverse("admin:axes_accessattempt_changelist")).content.decode()
    assert "fay" in listing and "192.0.2.99" in listing
    response = staff.post(reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert log_in(client, "fay", RIGHT, address="192.0.2.99").status_code == 302
