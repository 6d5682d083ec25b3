"""Link cards (OpenGraph, Twitter Card) on shared mixtapes' pages; nothing on private ones."""

import re

import pytest

from tests.factories import MixtapeFactory, MixtapeTrackFactory, TrackFactory

pytestmark = pytest.mark.django_db


def meta(page: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in re.findall(r'<meta (?:property|name)="([^"]+)" content="([^"]*)">', page):
        found.setdefault(key, []).append(value)
    return found


def test_a_shared_mixtape_has_a_card(client):
    mixtape = MixtapeFactory(title="Night Drive", liner_notes="Tones\nfor the road.", is_public=True)
    for n in range(3):
        MixtapeTrackFactory(mixtape=mixtape, track=TrackFactory(duration=60.0), position=n + 1)
    tags = meta(client.get(f"/share/{mixtape.slug}/").content.decode())
    base = f"http://testserver/share/{mixtape.slug}/"
    assert tags["og:type"] == ["music.playlist"] and tags["og:title"] == ["Night Drive"]
    assert tags["og:description"] == ["Tones for the road. · 3 tracks, 3 min"]
    assert tags["og:url"] == [base] and tags["og:image"] == [base + "cover/"]
    assert tags["music:song"] == [f"{base}#track-{n}" for n in (1, 2, 3)]
    assert tags["twitter:card"] == ["summary_large_image"] and tags["twitter:image"] == [base + "cover/"]


def test_a_private_mixtape_exposes_nothing(client):
    mixtape = MixtapeFactory(title="Secret", is_public=False)
    client.force_login(mixtape.owner)  # only the owner sees the page at all
    page = client.get(f"/share/{mixtape.slug}/").content.decode()
    assert "og:" not in page and "twitter:" not in page
