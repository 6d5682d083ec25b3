"""The library's own admin (mixtapes/admin.py): a mixtape deleted with its cover, the reserved slug refused."""

import pytest

from tests.factories import MixtapeFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_admin_mixtape_delete_removes_the_cover_file(admin_client, settings, tmp_path):
    from django.core.files.base import ContentFile

    settings.MEDIA_ROOT = tmp_path / "media"
    mixtape = MixtapeFactory()
    mixtape.cover.save("c.jpg", ContentFile(b"jpeg"))
    cover = settings.MEDIA_ROOT / mixtape.cover.name
    assert cover.exists()
    admin_client.post(f"/admin/mixtapes/mixtape/{mixtape.pk}/delete/", {"post": "yes"})
    assert not cover.exists()


def test_admin_refuses_the_reserved_slug(admin_client):
    owner = UserFactory()
    response = admin_client.post(
        "/admin/mixtapes/mixtape/add/",
        {"owner": owner.pk, "title": "New", "slug": "new", "liner_notes": "", "entries-TOTAL_FORMS": "0",
         "entries-INITIAL_FORMS": "0", "entries-MIN_NUM_FORMS": "0", "entries-MAX_NUM_FORMS": "1000"},
    )  # fmt: skip
    assert response.status_code == 200 and "is reserved" in response.content.decode()
