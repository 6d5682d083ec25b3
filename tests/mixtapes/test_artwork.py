"""Track pictures (mixtapes/artwork.py): found in the file or beside it, made small once, shared by an
album's tracks, never written under MUSIC_ROOT, refused when hostile; served to whoever may hear
the track; a mixtape without a cover gets a mosaic of its albums' pictures."""

import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from mutagen.flac import FLAC, Picture
from PIL import Image

from mixtapes import artwork
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.factories import MixtapeFactory, MixtapeTrackFactory, UserFactory

pytestmark = pytest.mark.django_db


def jpeg(color, size=(300, 300), kind="JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, kind)
    return out.getvalue()


def embed(path, data: bytes, mime="image/jpeg"):
    audio = FLAC(path)
    picture = Picture()
    picture.type, picture.mime, picture.data = 3, mime, data
    audio.clear_pictures()
    audio.add_picture(picture)
    audio.save()


def tree(root) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture
def flac(make_audio):
    def make(name, picture: bytes | None = None):
        path = make_audio(name, duration=1)
        if picture is not None:
            embed(path, picture)
        return path

    return make


def track_at(music_root, name) -> Track:
    scan_library()
    return Track.objects.get(path=name)


@pytest.mark.parametrize("kind", ["flac", "mp3", "alac"])
def test_the_embedded_picture_made_small(make_audio, music_root, kind):
    from mixtapes.demo import FORMATS

    name = "a" + FORMATS[kind][0]
    make_audio(name, kind=kind, duration=1, cover=True)  # a 64x64 picture
    track = track_at(music_root, name)
    before = tree(music_root)
    path = artwork.thumbnail(track, 32)
    assert path is not None and path.suffix == ".jpg"
    with Image.open(path) as image:
        assert image.format == "JPEG" and max(image.size) <= 64
    assert tree(music_root) == before  # nothing written under MUSIC_ROOT
    assert artwork.thumbnail(track, 32) == path  # made once


def test_an_albums_tracks_share_one_thumbnail(flac, music_root):
    picture = jpeg("teal")
    flac("Album/01.flac", picture)
    flac("Album/02.flac", picture)
    scan_library()
    first, second = Track.objects.order_by("path")
    assert artwork.thumbnail(first, 128) == artwork.thumbnail(second, 128)
    assert len(list((music_root.parent / "artwork" / "pictures").rglob("*.jpg"))) == 1


@pytest.mark.django_db(transaction=True)
def test_two_requests_for_the_same_new_thumbnail_at_once_both_get_it(flac, music_root, monkeypatch):
    """Both threads have written their copy before either renames it (the page asks for the
    same cover twice): each rename finds its own file."""
    flac("a.flac", jpeg("navy"))
    track = track_at(music_root, "a.flac")
    both_written = threading.Barrier(2, timeout=10)
    real_replace = os.replace

    def replace_when_both_wrote(source, destination):
        both_written.wait()
        return real_replace(source, destination)

    monkeypatch.setattr(artwork.os, "replace", replace_when_both_wrote)
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: artwork.thumbnail(track, 128), range(2)))
    assert paths[0] is not None and paths[0] == paths[1]
    assert not [p.name for p in paths[0].parent.iterdir() if p.name.endswith(".tmp")]


def test_a_picture_beside_the_file(flac, music_root):
    flac("Album/01.flac")
    (music_root / "Album" / "Folder.JPG").write_bytes(jpeg("orange"))
    track = track_at(music_root, "Album/01.flac")
    with Image.open(artwork.thumbnail(track, 64)) as image:
        assert image.getpixel((10, 10))[0] > 200  # orange


def test_a_symlinked_cover_out_of_the_library_is_ignored(flac, music_root, tmp_path):
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(jpeg("red"))
    flac("Album/01.flac")
    os.symlink(outside, music_root / "Album" / "cover.jpg")
    assert artwork.thumbnail(track_at(music_root, "Album/01.flac"), 64) is None


@pytest.mark.parametrize(
    "bad",
    [
        b"\x89PNG\r\n\x1a\n" + os.urandom(200),  # broken
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',  # an SVG named .jpg
        "bomb",  # 20,000 x 20,000 pixels in a few kilobytes
    ],
)
def test_a_hostile_picture_is_no_picture(flac, music_root, bad):
    if bad == "bomb":
        out = io.BytesIO()
        Image.new("1", (20_000, 20_000)).save(out, "PNG")
        bad = out.getvalue()
        assert len(bad) < 100_000
    flac("a.flac", bad)
    track = track_at(music_root, "a.flac")
    assert artwork.thumbnail(track, 64) is None


def test_no_picture_is_remembered_and_a_changed_file_looked_at_again(flac, music_root, monkeypatch):
    path = flac("a.flac")
    track = track_at(music_root, "a.flac")
    assert artwork.thumbnail(track, 64) is None
    monkeypatch.setattr(artwork, "find_picture", lambda t: pytest.fail("parsed again"))
    assert artwork.thumbnail(track, 64) is None
    monkeypatch.undo()
    embed(path, jpeg("navy"))
    track = track_at(music_root, "a.flac")  # new size and time: a new look
    assert artwork.thumbnail(track, 64) is not None


def test_the_cover_url_follows_the_tracks_access(client, flac, music_root):
    flac("a.flac", jpeg("purple"))
    track = track_at(music_root, "a.flac")
    url = f"/tracks/{track.pk}/cover/"
    assert client.get(url).status_code == 404  # anonymous, on no shared mixtape
    client.force_login(UserFactory())
    response = client.get(url, {"size": 64})
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"].startswith("private") and response["ETag"]
    assert client.get(url, {"size": 64}, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    client.logout()
    MixtapeTrackFactory(mixtape=MixtapeFactory(is_public=True), track=track)
    assert client.get(url).status_code == 200
    flac("b.flac")
    plain = track_at(music_root, "b.flac")
    client.force_login(UserFactory(username="other"))
    missing = client.get(f"/tracks/{plain.pk}/cover/")
    assert missing.status_code == 302 and missing["Location"].endswith("img/no-cover.svg")


def test_a_mixtape_without_a_cover_shows_a_mosaic(client, flac, music_root):
    colors = ["red", "green", "blue"]
    for color in colors:
        flac(f"{color}/01.flac", jpeg(color))
    scan_library()
    mixtape = MixtapeFactory(is_public=True)
    for position, color in enumerate(colors, start=1):
        MixtapeTrackFactory(mixtape=mixtape, track=Track.objects.get(path=f"{color}/01.flac"), position=position)
    response = client.get(f"/share/{mixtape.slug}/cover/")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as image:
        assert image.size == (512, 512)
        # red, green / blue, red (three pictures: the first repeats)
        corners = [image.getpixel((64, 64)), image.getpixel((448, 64)), image.getpixel((64, 448))]
        assert [max(range(3), key=pixel.__getitem__) for pixel in corners] == [0, 1, 2]
