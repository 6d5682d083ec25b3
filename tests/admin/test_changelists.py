"""Every changelist of the admin (the library's, as the cache extends it, and the cache's own), for staff only."""

import pytest

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_admin_requires_staff(client):
    assert client.get("/admin/mixtapes/track/").status_code == 302
    client.force_login(UserFactory())
    assert client.get("/admin/mixtapes/track/").status_code == 302


@pytest.mark.parametrize(
    "url",
    ["/admin/mixtapes/track/", "/admin/mixtapes/mixtape/", "/admin/audiocache/cachedrendition/",
     "/admin/audiocache/cachetask/", "/admin/audiocache/cachebatch/"],
)  # fmt: skip
def test_admin_changelists(admin_client, url):
    from tests.factories import CacheBatchItemFactory, CachedRenditionFactory, MixtapeTrackFactory

    MixtapeTrackFactory(track__title="Listed Song")
    CachedRenditionFactory()
    item = CacheBatchItemFactory()
    assert admin_client.get(f"/admin/audiocache/cachebatch/{item.batch.pk}/change/").status_code == 200
    response = admin_client.get(url)
    assert response.status_code == 200
    if "track" in url:
        assert b"Listed Song" in response.content
