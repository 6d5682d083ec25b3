"""makedemolibrary and quickstart (mixtapes/management/commands/), with real ffmpeg."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from mixtapes.models import Track
from mixtapes.probe import probe


@pytest.mark.slow
@pytest.mark.django_db
def test_demo_library_covers_every_format(tmp_path, settings):
    target = tmp_path / "demo"
    out = StringIO()
    call_command("makedemolibrary", str(target), stdout=out)
    assert "Made 9 demo tracks" in out.getvalue()

    settings.MUSIC_ROOT = target
    call_command("scanlibrary", stdout=StringIO(), stderr=StringIO())
    tracks = {t.path.rsplit("/", 1)[1]: t for t in Track.objects.all()}
    assert len(tracks) == 9
    codecs = {t.codec for t in tracks.values()}
    assert {"flac", "pcm_s16le", "pcm_s16be", "alac", "wavpack", "mp3"} <= codecs
    hi_res = tracks["02 - High Resolution.flac"]
    assert (hi_res.sample_rate, hi_res.bit_depth) == (96000, 24)
    assert tracks["05 - Surround Check.flac"].channels == 6
    assert not tracks["03 - Already Small.mp3"].is_lossless
    assert sum(t.is_lossless for t in tracks.values()) == 8
    assert sum(t.has_cover for t in tracks.values()) >= 3
    assert all(t.title and t.artist and t.album for t in tracks.values())
    assert not list(target.glob(".covers"))  # the cover pictures were temporary


def test_demo_library_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "mine.flac").write_bytes(b"precious")
    with pytest.raises(CommandError, match="not an empty folder"):
        call_command("makedemolibrary", str(tmp_path), stdout=StringIO())
    assert (tmp_path / "mine.flac").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.flac"]


def test_demo_files_are_real_audio(tmp_path):
    from mixtapes.demo import AudioSpec, RenderError, render_audio

    path = render_audio(tmp_path / "x.m4a", AudioSpec("alac", 1.5, tags={"title": "x"}))
    result = probe(path)
    assert result.codec == "alac" and result.duration == pytest.approx(1.5, abs=0.05)
    with pytest.raises(RenderError, match="already exists"):
        render_audio(path, AudioSpec("alac", 1))  # never overwrites


@pytest.mark.slow
@pytest.mark.django_db
def test_quickstart_sets_up_once(tmp_path, settings, monkeypatch):
    monkeypatch.delenv("MUSIC_ROOT", raising=False)
    settings.MUSIC_ROOT = tmp_path / "music"
    out = StringIO()
    call_command("quickstart", stdout=out)
    text = out.getvalue()
    assert "9 demo tracks made" in text
    assert "Added 9" in text
    password = text.split("password: ")[1].split()[0]
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)

    again = StringIO()
    call_command("quickstart", stdout=again)
    assert again.getvalue() == ""  # nothing left to do, and the password is never shown again
    assert Track.objects.count() == 9


@pytest.mark.django_db
def test_quickstart_never_writes_into_a_music_root_the_user_chose(tmp_path, settings, monkeypatch):
    chosen = tmp_path / "my-library"
    chosen.mkdir()
    monkeypatch.setenv("MUSIC_ROOT", str(chosen))
    settings.MUSIC_ROOT = chosen
    out = StringIO()
    call_command("quickstart", stdout=out)
    assert list(chosen.iterdir()) == []
    assert "is empty; add music there" in out.getvalue()
