"""What a cover upload may cost in memory, measured in a fresh process (peak RSS), for the worst
files the upload accepts: 16 megapixels with transparency as PNG, palette PNG and 16-bit PNG,
6 as WebP (libwebp decodes through buffers of its own), and a JPEG (decoded at reduced scale)."""

import json
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw

from tests.conftest import REPO

MEASURE = r"""
import json, sys, threading
import django
django.setup()
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from mixtapes.covers import process_cover

at_once, names = int(sys.argv[1]), sys.argv[2:]
uploads = [SimpleUploadedFile(name, open(name, "rb").read()) for name in names]
def peak_kb():  # VmHWM: ru_maxrss would carry the parent's size across fork and exec
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1])

peak_before = peak_kb()
results = []

def run(upload):
    try:
        results.append(len(process_cover(upload).read()))
    except ValidationError as exc:
        results.append(exc.messages[0])

for start in range(0, len(uploads), at_once):
    threads = [threading.Thread(target=run, args=(u,)) for u in uploads[start:start + at_once]]
    for t in threads: t.start()
    for t in threads: t.join()
peak_after = peak_kb()
print(json.dumps({"growth_mb": (peak_after - peak_before) / 1024, "results": results}))
"""


def worst_images(folder):
    """The largest accepted pictures: 4000 x 4000, flat enough to be small files, as attacks are."""
    picture = Image.new("RGBA", (4000, 4000), (200, 40, 40, 128))
    ImageDraw.Draw(picture).ellipse((500, 500, 3500, 3500), fill=(20, 90, 200, 255))
    files = {
        "rgba.webp": lambda path: picture.resize((2449, 2449)).save(path, "WEBP", quality=50),
        "rgba.png": lambda path: picture.save(path, "PNG"),
        "palette.png": lambda path: picture.convert("P", palette=Image.Palette.ADAPTIVE).save(
            path, "PNG", transparency=0
        ),
        "deep.png": lambda path: picture.convert("I").convert("I;16").save(path, "PNG"),
        "photo.jpg": lambda path: picture.convert("RGB").save(path, "JPEG", quality=90),
    }
    paths = []
    for name, save in files.items():
        save(folder / name)
        paths.append(str(folder / name))
    return paths


def measure(manage_env, at_once, paths):
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(at_once), *paths],
        cwd=REPO, env={**manage_env, "COVER_MAX_UPLOAD_SIZE": "10M"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return worst_images(tmp_path_factory.mktemp("covers"))


@pytest.mark.parametrize("name", ["rgba.webp", "rgba.png", "palette.png", "deep.png", "photo.jpg"])
def test_one_upload_of_any_accepted_file_costs_under_150_mb(manage_env, images, name):
    (path,) = [p for p in images if p.endswith(name)]
    measured = measure(manage_env, 1, [path])
    assert isinstance(measured["results"][0], int), measured["results"]  # accepted and re-encoded
    print(f"{name}: {measured['growth_mb']:.0f} MB")
    assert measured["growth_mb"] < 150, f"{name}: {measured['growth_mb']:.0f} MB"


def test_eight_uploads_at_once_cost_under_300_mb(manage_env, images):
    webp = next(p for p in images if p.endswith("rgba.webp"))
    png = next(p for p in images if p.endswith("rgba.png"))
    measured = measure(manage_env, 8, [webp, png] * 4)
    assert all(isinstance(r, int) for r in measured["results"]), measured["results"]
    print(f"eight at once: {measured['growth_mb']:.0f} MB")
    assert measured["growth_mb"] < 300, f"{measured['growth_mb']:.0f} MB"
