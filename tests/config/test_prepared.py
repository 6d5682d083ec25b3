"""config/prepared.py: a query the ORM writes once, run again with other values, gives what the
queryset itself gives (the ORM's converters included), on SQLite and PostgreSQL."""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.utils import timezone

from config.prepared import PreparedQuery
from subsonic import selectors, services
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()


def by_username(username):
    return User.objects.filter(username=username, is_active=True).values_list("pk", "last_login", "is_staff")


def test_rows_match_the_querysets_own_for_each_value():
    when = timezone.now() - timedelta(days=2)
    for name, staff in (("ann", True), ("bob", False)):
        UserFactory(username=name, is_staff=staff, last_login=when)
    prepared = PreparedQuery(by_username, marker="\x00marker")
    for name in ("ann", "bob", "nobody", "ann"):
        assert prepared.rows(name) == list(by_username(name))
    ((_, last_login, is_staff),) = prepared.rows("ann")
    assert last_login == when and is_staff is True  # converted as the ORM converts, not raw text or 0/1


def test_every_thread_gets_right_answers():
    for n in range(8):
        UserFactory(username=f"user{n}")
    prepared = PreparedQuery(by_username, marker="\x00marker")
    wrong = []

    def look(n):
        try:
            for _ in range(20):
                if [row[0] for row in prepared.rows(f"user{n}")] != [User.objects.get(username=f"user{n}").pk]:
                    wrong.append(n)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=look, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_a_marker_that_is_not_one_parameter_is_refused():
    with pytest.raises(ValueError, match="once"):
        PreparedQuery(lambda value: User.objects.filter(username="fixed"), marker="\x00marker").rows("x")


def test_the_streaming_login_is_the_users_and_follows_revocation_at_once():
    user = UserFactory(username="ann", last_login=timezone.now())
    assert selectors.streaming_login("ann") is None  # no streaming password yet
    services.new_streaming_password(user)
    found, row = selectors.streaming_login("ann")
    assert (found.pk, found.username, found.last_login, found.is_active) == (user.pk, "ann", user.last_login, True)
    assert row.user_id == user.pk and row.ciphertext
    services.revoke_streaming_password(user)
    assert selectors.streaming_login("ann") is None
    services.new_streaming_password(user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert selectors.streaming_login("ann") is None  # a deactivated account no longer logs in
