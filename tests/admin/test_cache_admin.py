"""The cache admin: dashboard, purges, rendition and task actions, precache actions."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from audiocache.models import CacheBatch, CachedRendition, CacheTask, StreamDay
from audiocache.transcode.ffmpeg import ENCODER_PROFILE
from tests.conftest import rendition
from tests.factories import (
    CachedRenditionFactory,
    CacheTaskFactory,
    MixtapeFactory,
    MixtapeTrackFactory,
    TrackFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


DASHBOARD = "/admin/audiocache/cachedrendition/dashboard/"


PURGE = "/admin/audiocache/cachedrendition/purge/"


RENDITIONS = "/admin/audiocache/cachedrendition/"


TASKS = "/admin/audiocache/cachetask/"


@pytest.mark.parametrize("url", [DASHBOARD, PURGE + "?everything=1", RENDITIONS, TASKS])
def test_cache_admin_is_for_staff_only(client, url):
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(UserFactory())
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_purge_needs_the_delete_permission(client, cache_dir):
    from django.contrib.auth.models import Permission

    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_cachedrendition"))
    client.force_login(viewer)
    assert client.get(DASHBOARD).status_code == 200
    assert client.get(PURGE + "?everything=1").status_code == 403


def test_dashboard_shows_the_figures(admin_client, cache_dir, settings):
    settings.AUDIO_CACHE_MAX_SIZE = 10_000
    rendition(cache_dir, size=2000, quality="high")
    rendition(cache_dir, size=1000, quality="medium")
    CachedRenditionFactory(size=500, quality="low", encoder_profile="old-profile")  # stale
    CacheTaskFactory(status="failed", error="ffmpeg said\nInvalid data found when processing input")
    CacheTaskFactory(status="pending")
    StreamDay.objects.create(day="2000-01-01", hits=99)  # outside the 30 days
    from django.utils import timezone

    StreamDay.objects.create(day=timezone.localdate(), format="mp3", hits=2, misses=1)
    StreamDay.objects.create(day=timezone.localdate(), format="opus", hits=1)
    StreamDay.objects.create(day=timezone.localdate(), format="original", bypasses=2)
    page = admin_client.get(DASHBOARD).content.decode().replace("\xa0", " ")
    assert "3.4 KB" in page  # total
    assert "Size cap 9.8 KB: 35% used" in page
    assert "1 stale" in page
    assert "75.0%" in page  # hit rate: 3 of 4
    assert 'MP3: hits / misses</th><td class="num">2 / 1 (66.7%)' in page
    assert 'Opus: hits / misses</th><td class="num">1 / 0 (100.0%)' in page
    assert "AAC: hits" not in page  # none streamed
    assert "3 / 1 / 2" in page  # today, every format
    assert "Invalid data found when processing input" in page
    assert "Oldest pending task queued" in page
    assert "free of" in page


def test_dashboard_query_count_does_not_grow(admin_client, cache_dir, django_assert_max_num_queries):
    for _ in range(3):
        rendition(cache_dir)
        CacheTaskFactory(status="failed", error="x")
    with django_assert_max_num_queries(30) as few:
        admin_client.get(DASHBOARD)
    baseline = len(few.captured_queries)
    for _ in range(40):
        rendition(cache_dir)
        CacheTaskFactory(status="failed", error="x")
    with django_assert_max_num_queries(baseline):
        assert admin_client.get(DASHBOARD).status_code == 200


def test_purge_older_than_asks_then_deletes(admin_client, cache_dir, music_root):
    from datetime import timedelta

    from django.utils import timezone

    (music_root / "keep.flac").write_bytes(b"fLaC")
    old = rendition(cache_dir, size=4096)
    CachedRendition.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=100))
    new = rendition(cache_dir)
    page = admin_client.get(PURGE + "?older_than=90").content.decode().replace("\xa0", " ")
    assert "1 rendition" in page and "4.0 KB" in page
    assert CachedRendition.objects.count() == 2  # asking deletes nothing
    response = admin_client.post(PURGE, {"older_than": "90", "confirmed": "1"})
    assert response.status_code == 302
    assert list(CachedRendition.objects.values_list("pk", flat=True)) == [new.pk]
    assert not (cache_dir / old.file_name).exists() and (cache_dir / new.file_name).exists()
    assert (music_root / "keep.flac").read_bytes() == b"fLaC"


def test_purge_everything_and_bad_days(admin_client, cache_dir):
    rendition(cache_dir)
    rendition(cache_dir)
    assert "2 renditions" in admin_client.get(PURGE + "?everything=1").content.decode().replace("\xa0", " ")
    admin_client.post(PURGE, {"everything": "1", "confirmed": "1"})
    assert not CachedRendition.objects.exists() and not list(cache_dir.iterdir())
    for bad in ["abc", "-3", ""]:
        response = admin_client.get(PURGE, {"older_than": bad})
        assert response.status_code == 302 and response["Location"] == DASHBOARD


def test_rendition_changelist_state_and_filters(admin_client, cache_dir):
    fresh = rendition(cache_dir)
    stale = rendition(cache_dir, source_size=1)
    missing = CachedRenditionFactory(encoder_profile=ENCODER_PROFILE)  # no file
    page = admin_client.get(RENDITIONS).content.decode().replace("\xa0", " ")
    assert page.count(">fresh<") + page.count('<td class="field-state">fresh</td>') >= 1
    assert "stale" in page and "file missing" in page
    assert "Cache dashboard" in page
    fresh_page = admin_client.get(RENDITIONS + "?state=fresh").content.decode().replace("\xa0", " ")
    assert str(fresh.track) in fresh_page and f"/{stale.pk}/change/" not in fresh_page
    stale_page = admin_client.get(RENDITIONS + "?state=stale").content.decode().replace("\xa0", " ")
    assert f"/{stale.pk}/change/" in stale_page and f"/{fresh.pk}/change/" not in stale_page
    assert f"/{missing.pk}/change/" in admin_client.get(RENDITIONS + "?played=never").content.decode().replace(
        "\xa0", " "
    )
    assert admin_client.get(RENDITIONS + "?q=" + fresh.track.title).status_code == 200
    assert admin_client.get(f"{RENDITIONS}{fresh.pk}/change/").status_code == 200


def test_purge_selected_action_confirms_then_deletes_files_too(admin_client, cache_dir):
    a, b, c = rendition(cache_dir), rendition(cache_dir), rendition(cache_dir)
    data = {"action": "purge_selected", ACTION_CHECKBOX_NAME: [a.pk, b.pk]}
    page = admin_client.post(RENDITIONS, data).content.decode().replace("\xa0", " ")
    assert "Purge the selected renditions?" in page and "2 renditions" in page
    assert CachedRendition.objects.count() == 3
    admin_client.post(RENDITIONS, {**data, "confirmed": "1"})
    assert list(CachedRendition.objects.values_list("pk", flat=True)) == [c.pk]
    assert sorted(p.name for p in cache_dir.iterdir()) == [c.file_name]


def test_deleting_a_rendition_in_the_admin_deletes_its_file(admin_client, cache_dir):
    r = rendition(cache_dir)
    admin_client.post(f"{RENDITIONS}{r.pk}/delete/", {"post": "yes"})
    assert not CachedRendition.objects.exists() and not (cache_dir / r.file_name).exists()


def test_retranscode_selected_queues_forced_tasks(admin_client, cache_dir, file_track):
    track = file_track()
    r = rendition(cache_dir, track=track)
    admin_client.post(RENDITIONS, {"action": "retranscode_selected", ACTION_CHECKBOX_NAME: [r.pk]})
    task = CacheTask.objects.get()
    assert (task.track_id, task.quality, task.status, task.force) == (track.pk, r.quality, "pending", True)
    assert CachedRendition.objects.filter(pk=r.pk).exists()  # served until replaced


def test_task_actions(admin_client, file_track):
    failed = CacheTaskFactory(track=file_track(), status="failed", error="boom\nInvalid data")
    pending = CacheTaskFactory(track=file_track(), status="pending")
    done = CacheTaskFactory(track=file_track(), status="done")
    page = admin_client.get(TASKS).content.decode().replace("\xa0", " ")
    assert "<progress" in page and "Invalid data" in page
    detail = admin_client.get(f"{TASKS}{failed.pk}/change/").content.decode().replace("\xa0", " ")
    assert "boom\nInvalid data" in detail

    admin_client.post(TASKS, {"action": "retry", ACTION_CHECKBOX_NAME: [failed.pk, done.pk]})
    retried = CacheTask.objects.filter(track=failed.track, status="pending")
    assert retried.count() == 1 and retried.get().force  # the quarantine is overridden
    admin_client.post(TASKS, {"action": "cancel", ACTION_CHECKBOX_NAME: [pending.pk, done.pk]})
    pending.refresh_from_db()
    done.refresh_from_db()
    assert pending.status == "cancelled" and done.status == "done"
    active = retried.get()
    admin_client.post(TASKS, {"action": "delete_finished", ACTION_CHECKBOX_NAME: [done.pk, active.pk, failed.pk]})
    assert set(CacheTask.objects.values_list("pk", flat=True)) == {pending.pk, active.pk}


def test_precache_actions_ask_for_qualities_then_queue_a_batch(admin_client, file_track):
    tracks = [file_track(), file_track()]
    mixtape = MixtapeFactory()
    MixtapeTrackFactory(mixtape=mixtape, track=tracks[0])
    url = "/admin/mixtapes/track/"
    data = {"action": "precache_selected", ACTION_CHECKBOX_NAME: [t.pk for t in tracks]}
    page = admin_client.post(url, data).content.decode().replace("\xa0", " ")
    assert "Queue the batch" in page and 'value="medium"' in page
    response = admin_client.post(url, {**data, "apply": "1", "qualities": ["high", "low"]})
    assert response.status_code == 302
    batch = CacheBatch.objects.get()
    assert batch.items.count() == 4 and CacheTask.objects.count() == 4

    admin_client.post(
        "/admin/mixtapes/mixtape/",
        {"action": "precache_selected", ACTION_CHECKBOX_NAME: [mixtape.pk], "apply": "1", "qualities": ["medium"]},
    )
    assert CacheBatch.objects.count() == 2
    assert CacheTask.objects.filter(quality="medium", track=tracks[0]).exists()
    assert not CacheTask.objects.filter(quality="medium", track=tracks[1]).exists()


def test_track_and_mixtape_pages_show_their_renditions(admin_client, cache_dir):
    r = rendition(cache_dir, size=12345)
    mixtape = MixtapeFactory()
    MixtapeTrackFactory(mixtape=mixtape, track=r.track)
    MixtapeTrackFactory(mixtape=mixtape, track=TrackFactory())
    track_page = admin_client.get(f"/admin/mixtapes/track/{r.track_id}/change/").content.decode().replace("\xa0", " ")
    assert r.file_name in track_page and "12.1 KB" in track_page
    mixtape_page = (
        admin_client.get(f"/admin/mixtapes/mixtape/{mixtape.pk}/change/").content.decode().replace("\xa0", " ")
    )
    assert "12.1 KB" in mixtape_page and str(r.track) in mixtape_page
    assert admin_client.get(reverse("admin:index")).content.decode().replace("\xa0", " ").count("Cache dashboard") == 1


def test_rendition_changelist_date_drilldown(admin_client):
    r = CachedRenditionFactory()
    year, month = r.created_at.year, r.created_at.month
    page = admin_client.get(RENDITIONS).content.decode()
    assert str(r.track) in page
    drilled = admin_client.get(RENDITIONS, {"created_at__year": year, "created_at__month": month})
    assert drilled.status_code == 200 and str(r.track) in drilled.content.decode()


def test_admin_search_uses_the_library_search(admin_client):
    wanted = CachedRenditionFactory(track=TrackFactory(title="Après minuit", artist="Ondes"))
    other = CachedRenditionFactory(track=TrackFactory(title="Morning", artist="Tones"))
    CacheTaskFactory(track=wanted.track)
    for url in [RENDITIONS, TASKS, "/admin/mixtapes/track/"]:
        page = admin_client.get(url, {"q": "apres ondes"}).content.decode()
        assert "Après minuit" in page and "Morning" not in page, url
    assert str(other.track) in admin_client.get(RENDITIONS, {"q": "morn"}).content.decode()


def test_view_only_staff_cannot_run_the_actions(client, cache_dir, file_track):
    from django.contrib.auth.models import Permission

    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_cachedrendition", "view_cachetask", "view_track"])
    )
    client.force_login(viewer)
    r = rendition(cache_dir)
    finished = CacheTaskFactory(track=file_track(), status="done")
    failed = CacheTaskFactory(track=file_track(), status="failed")
    posts = [
        (RENDITIONS, "purge_selected", r.pk),
        (RENDITIONS, "retranscode_selected", r.pk),
        (TASKS, "delete_finished", finished.pk),
        (TASKS, "retry", failed.pk),
        (TASKS, "cancel", failed.pk),
        ("/admin/mixtapes/track/", "precache_selected", r.track_id),
    ]
    for url, action, pk in posts:
        data = {"action": action, ACTION_CHECKBOX_NAME: [pk], "confirmed": "1", "apply": "1", "qualities": ["low"]}
        client.post(url, data)
    assert CachedRendition.objects.filter(pk=r.pk).exists() and (cache_dir / r.file_name).exists()
    assert set(CacheTask.objects.values_list("pk", "status")) == {(finished.pk, "done"), (failed.pk, "failed")}
    assert not CacheBatch.objects.exists()
    page = client.get(RENDITIONS).content.decode()
    assert "purge_selected" not in page  # the actions are not even offered


def test_select_all_means_all_on_the_confirmation_too(admin_client, cache_dir):
    renditions = [rendition(cache_dir) for _ in range(5)]
    data = {"action": "purge_selected", ACTION_CHECKBOX_NAME: [renditions[0].pk], "select_across": "1", "index": "0"}
    page = admin_client.post(RENDITIONS, data).content.decode()
    assert "5 renditions" in page and 'name="select_across" value="1"' in page
    admin_client.post(RENDITIONS, {**data, "confirmed": "1"})
    assert not CachedRendition.objects.exists() and not list(cache_dir.iterdir())


def test_bad_purge_days_never_500(admin_client, cache_dir):
    for bad in ["1000000", "99999999999", "²", "1e3"]:
        response = admin_client.get(PURGE, {"older_than": bad})
        assert response.status_code == 302 and response["Location"] == DASHBOARD, bad


def test_task_search_by_worker_and_error(admin_client, file_track):
    CacheTaskFactory(track=file_track(), status="failed", worker_id="nas:42/abc", error="Invalid data found")
    other = CacheTaskFactory(track=file_track(), status="done", worker_id="box:7/x")
    page = admin_client.get(TASKS, {"q": "nas:42"}).content.decode()
    assert "Invalid data" in page and f"/{other.pk}/change/" not in page
    assert f"/{other.pk}/change/" not in admin_client.get(TASKS, {"q": "invalid data"}).content.decode()


def test_file_missing_filter(admin_client, cache_dir):
    present = rendition(cache_dir)
    gone = rendition(cache_dir)
    (cache_dir / gone.file_name).unlink()
    page = admin_client.get(RENDITIONS, {"state": "missing"}).content.decode()
    assert f"/{gone.pk}/change/" in page and f"/{present.pk}/change/" not in page
