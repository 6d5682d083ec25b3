import hashlib
import json
import shutil
from pathlib import Path

import pytest

from mixtapes.demo import FORMATS, AudioSpec, render_audio, render_cover


@pytest.fixture(scope="session")
def audio_templates(tmp_path_factory):
    """Where rendered audio is kept for the session: each distinct spec runs ffmpeg once."""
    return tmp_path_factory.mktemp("audio-templates")


@pytest.fixture
def music_root(tmp_path, settings):
    """An empty MUSIC_ROOT (and cache folder) for one test."""
    root = tmp_path / "music"
    root.mkdir()
    settings.MUSIC_ROOT = root
    settings.AUDIO_CACHE_DIR = tmp_path / "cache"
    return root


@pytest.fixture
def make_audio(music_root, audio_templates):
    """``make_audio("Artist/01 x.flac", kind="flac", duration=1, tags={...}, cover=True)``: a real file.

    Files are rendered with ffmpeg's generators (never committed) and copied from a session
    cache, so a test can make dozens cheaply. Returns the absolute path.
    """

    def make(relative: str, *, cover: bool = False, **spec_fields) -> Path:
        key = hashlib.sha256(json.dumps([spec_fields, cover], sort_keys=True).encode()).hexdigest()[:16]
        spec = AudioSpec(**spec_fields)
        # The template keeps its format's own extension (ffmpeg picks the muxer by it); the copy may lie.
        template = audio_templates / f"{key}{FORMATS[spec.kind][0]}"
        if not template.exists():
            if cover:
                picture = audio_templates / "cover.jpg"
                if not picture.exists():
                    render_cover(picture, size=64)
                spec.cover = picture
            render_audio(template, spec)
        target = music_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)
        return target

    return make


@pytest.fixture
def file_track(music_root):
    """``file_track(**fields)``: a Track row whose file exists (a few bytes, not audio).

    Enough for the queue, which looks at a file's size and mtime but never decodes it.
    """
    from mixtapes.models import Track
    from tests.factories import TrackFactory

    def make(**fields) -> Track:
        track = TrackFactory(**fields)
        path = music_root / track.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * 100)
        st = path.stat()
        Track.objects.filter(pk=track.pk).update(file_size=st.st_size, file_mtime_ns=st.st_mtime_ns)
        track.refresh_from_db()
        return track

    return make
