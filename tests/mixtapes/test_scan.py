"""scanlibrary: real files made with ffmpeg, real ffprobe, real database."""

import os
import shutil
import subprocess
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mixtapes.library import ScanError, display_path, scan_library
from mixtapes.models import Track
from tests.factories import MixtapeTrackFactory

pytestmark = pytest.mark.django_db


def scan(**kwargs):
    out = StringIO()
    call_command("scanlibrary", stdout=out, stderr=StringIO(), **kwargs)
    return out.getvalue()


def unreadable_reasons(report):
    return {p.relative_path: p.reason for p in report.unreadable}


def skipped_reasons(report):
    return {p.relative_path: p.reason for p in report.skipped}


def test_scan_reads_stream_facts_and_tags(make_audio, music_root):
    make_audio(
        "Artist/Album/01 - Hi Res.flac",
        kind="flac24",
        sample_rate=96000,
        cover=True,
        tags={"title": "Hi Res", "artist": "Artist", "album": "Album", "album_artist": "Various", "track": "1/9",
              "disc": "2/2"},
    )  # fmt: skip
    out = scan()
    assert "Added 1, updated 0, unchanged 0" in out

    track = Track.objects.get()
    assert track.path == "Artist/Album/01 - Hi Res.flac"
    assert (track.title, track.artist, track.album, track.album_artist) == ("Hi Res", "Artist", "Album", "Various")
    assert (track.track_number, track.disc_number) == (1, 2)
    assert (track.codec, track.container, track.sample_rate, track.bit_depth, track.channels) == (
        "flac", "flac", 96000, 24, 2
    )  # fmt: skip
    assert track.is_lossless is True
    assert track.has_cover is True
    assert track.duration == pytest.approx(1.0, abs=0.05)
    assert track.file_size == (music_root / track.path).stat().st_size
    assert track.file_mtime_ns == (music_root / track.path).stat().st_mtime_ns
    assert track.bitrate and track.bitrate > 0


@pytest.mark.parametrize(
    ("kind", "name", "codec", "lossless", "bit_depth"),
    [
        ("flac", "a.flac", "flac", True, 16),
        ("wav24", "a.wav", "pcm_s24le", True, 24),
        ("aiff", "a.aiff", "pcm_s16be", True, 16),
        ("alac", "a.m4a", "alac", True, 16),
        ("wavpack", "a.wv", "wavpack", True, 16),
        ("aac", "b.m4a", "aac", False, None),
        ("mp3", "a.mp3", "mp3", False, None),
        ("opus", "a.opus", "opus", False, None),
        # The extension lies: MP3 data in a .wav is lossy, whatever the name says.
        ("mp3", "liar.wav", "mp3", False, None),
    ],
)
def test_lossless_is_decided_by_codec_not_extension(make_audio, kind, name, codec, lossless, bit_depth):
    make_audio(name, kind=kind, tags={"title": f"{kind} tune"})
    report = scan_library()
    assert report.added == 1, report.unreadable
    track = Track.objects.get()
    assert (track.codec, track.is_lossless, track.bit_depth) == (codec, lossless, bit_depth)
    assert track.title == f"{kind} tune"


@pytest.mark.skipif(
    shutil.which("wavpack") is None, reason="needs the wavpack tool (make system-deps-test installs it)"
)
def test_a_hybrid_wavpack_is_lossy_with_or_without_its_correction_file(make_audio, music_root):
    """ffmpeg cannot make hybrid WavPack files; the reference encoder can (``-b``: bitrate mode)."""
    for channels in (2, 6):  # stereo is read from the headers, 5.1 by ffprobe
        source = make_audio(f"source{channels}.wav", kind="wav", channels=channels)
        for name, extra in ((f"plain{channels}.wv", []), (f"hybrid{channels}.wv", ["-b256"]),
                            (f"corrected{channels}.wv", ["-b256", "-c"])):  # fmt: skip
            subprocess.run(["wavpack", "-q", "-y", *extra, str(source), "-o", str(music_root / name)], check=True)
        source.unlink()
    assert (music_root / "corrected2.wvc").exists()

    scan_library()

    assert dict(Track.objects.values_list("path", "is_lossless")) == {
        "plain2.wv": True, "hybrid2.wv": False, "corrected2.wv": False,
        "plain6.wv": True, "hybrid6.wv": False, "corrected6.wv": False,
    }  # fmt: skip
    assert set(Track.objects.values_list("codec", flat=True)) == {"wavpack"}


def test_alac_and_aac_in_m4a_are_told_apart(make_audio):
    make_audio("alac.m4a", kind="alac")
    make_audio("aac.m4a", kind="aac")
    scan_library()
    assert dict(Track.objects.values_list("path", "is_lossless")) == {"alac.m4a": True, "aac.m4a": False}


def test_tags_from_riff_info_and_aiff_id3(make_audio):
    make_audio("info.wav", kind="wav", tags={"title": "Riff Title", "artist": "Riff Artist"})
    make_audio("id3.aiff", kind="aiff", tags={"title": "Aiff Title", "artist": "Aiff Artist", "track": "7"})
    scan_library()
    info, id3 = Track.objects.get(path="info.wav"), Track.objects.get(path="id3.aiff")
    assert (info.title, info.artist) == ("Riff Title", "Riff Artist")
    assert (id3.title, id3.artist, id3.track_number) == ("Aiff Title", "Aiff Artist", 7)


def test_huge_and_control_character_tags_are_cleaned(make_audio):
    nasty = "Line\x01one\x1b[31m\tand\x7f" + "x" * 100_000
    make_audio("nasty.flac", tags={"title": nasty, "artist": "Ok"})
    scan_library()
    track = Track.objects.get()
    assert track.title.startswith("Line one [31m and ")
    assert len(track.title) == 500
    assert all(ch.isprintable() for ch in track.title)


ODD_NAMES = [
    "Björk/Homogenic/01 Jóga.flac",
    "日本語/曲.flac",
    "with spaces/  leading and trailing  .flac",
    "quotes/\"double\" and 'single'.flac",
    "-leading-dash.flac",
    "--help.flac",
    "colon/http:evil.flac",
    "colon/concat:a.flac|b.flac",
    "percent %d %s.flac",
    "new\nline.flac",
    "dollar $(touch pwned).flac",
]


def test_odd_file_names_are_scanned_as_is(make_audio, music_root):
    for name in ODD_NAMES:
        make_audio(name)
    report = scan_library()
    assert report.unreadable == [] and report.skipped == []
    assert sorted(Track.objects.values_list("path", flat=True)) == sorted(ODD_NAMES)
    assert not (music_root / "pwned").exists()
    assert not (music_root.parent / "pwned").exists()


def test_non_utf8_file_name_is_reported_not_fatal(make_audio, music_root):
    make_audio("good.flac")
    bad = os.fsencode(music_root) + b"/caf\xe9.flac"
    with open(bad, "wb") as fh:
        fh.write((music_root / "good.flac").read_bytes())
    report = scan_library()
    assert report.added == 1
    ((path, reason),) = unreadable_reasons(report).items()
    assert "not valid UTF-8" in reason
    assert "\\udce9" in display_path(path) or "\\xe9" in display_path(path)


def test_symlinks_inside_root_are_followed_and_outside_skipped(make_audio, music_root, tmp_path):
    make_audio("real/inside.flac")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.flac").write_bytes((music_root / "real/inside.flac").read_bytes())
    os.symlink(outside / "secret.flac", music_root / "escape.flac")
    os.symlink(outside, music_root / "escape-dir")
    os.symlink(music_root / "real/inside.flac", music_root / "alias.flac")
    os.symlink(music_root / "missing.flac", music_root / "dangling.flac")

    report = scan_library()

    assert set(Track.objects.values_list("path", flat=True)) == {"real/inside.flac", "alias.flac"}
    assert skipped_reasons(report) == {
        "escape-dir": "symlink leads outside MUSIC_ROOT",
        "escape.flac": "symlink leads outside MUSIC_ROOT",
    }
    assert unreadable_reasons(report) == {"dangling.flac": "broken symlink"}


def test_symlink_loops_terminate(make_audio, music_root):
    make_audio("a/song.flac")
    os.symlink(music_root, music_root / "a" / "loop-to-root")
    os.symlink(music_root / "a", music_root / "a" / "loop-to-self")
    report = scan_library()
    assert report.added == 1
    assert any("symlink loop" in p.reason for p in report.skipped)


def test_corrupt_empty_and_fake_files_are_reported_with_reasons(make_audio, music_root):
    make_audio("good.flac")
    (music_root / "empty.flac").write_bytes(b"")
    (music_root / "text.flac").write_text("This is not audio, just a text file with a .flac name.\n" * 20)
    (music_root / "garbage.wav").write_bytes(os.urandom(4096))
    (music_root / "zeros.aiff").write_bytes(bytes(8192))

    out = scan()

    assert Track.objects.count() == 1
    assert "unreadable 4" in out
    assert "empty.flac: empty file (0 bytes)" in out
    for name in ("text.flac", "garbage.wav", "zeros.aiff"):
        line = next(line for line in out.splitlines() if line.strip().startswith(name))
        assert len(line) > len(name) + 5  # a reason follows the name
    # ffprobe's echo of the absolute path is stripped from the reasons
    assert str(music_root) not in out.split("Unreadable:")[1]


def test_truncated_and_damaged_files_never_stop_the_scan(make_audio, music_root):
    path = make_audio("truncated.flac", duration=2)
    path.write_bytes(path.read_bytes()[:2000])
    data = make_audio("bad-magic.flac").read_bytes()
    (music_root / "bad-magic.flac").write_bytes(b"fLaX" + data[4:])
    report = scan_library()
    # ffprobe may still find frames to read (the transcode decides later); either way each file
    # is accounted for, once.
    assert report.added + report.unreadable_count == 2


def test_fifo_does_not_hang_the_scan(make_audio, music_root):
    make_audio("good.flac")
    os.mkfifo(music_root / "pipe.flac")
    report = scan_library()
    assert report.added == 1
    assert skipped_reasons(report) == {"pipe.flac": "not a regular file"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_permissions_are_reported(make_audio, music_root):
    path = make_audio("locked.flac")
    path.chmod(0)
    try:
        report = scan_library()
    finally:
        path.chmod(0o644)
    assert unreadable_reasons(report) == {"locked.flac": "permission denied"}


def test_rescan_reports_unchanged_updated_missing_and_restored(make_audio, music_root):
    a = make_audio("a.flac", tags={"title": "A"})
    make_audio("b.flac", tags={"title": "B"})
    c = make_audio("c.flac", tags={"title": "C"})
    first = scan_library()
    assert (first.added, first.updated, first.unchanged) == (3, 0, 0)
    entry = MixtapeTrackFactory(track=Track.objects.get(path="c.flac"))

    # Replace a's content (new tags, new size), touch nothing else, remove c.
    a.unlink()
    make_audio("a.flac", tags={"title": "A, remastered"})
    stat_c = c.stat()
    saved_c = c.read_bytes()
    c.unlink()
    second = scan_library()
    assert (second.added, second.updated, second.unchanged, second.missing) == (0, 1, 1, 1)
    assert second.missing_paths == ["c.flac"]
    assert Track.objects.get(path="a.flac").title == "A, remastered"
    gone = Track.objects.get(path="c.flac")
    assert gone.missing_since is not None
    entry.refresh_from_db()  # the mixtape keeps its track

    # The file comes back: the row is restored, not duplicated.
    c.write_bytes(saved_c)
    os.utime(c, ns=(stat_c.st_atime_ns, stat_c.st_mtime_ns))
    third = scan_library()
    assert (third.added, third.updated, third.unchanged, third.missing) == (0, 1, 2, 0)
    assert Track.objects.get(path="c.flac").missing_since is None
    assert Track.objects.count() == 3


def test_touching_a_file_reprobes_it(make_audio, music_root):
    path = make_audio("a.flac")
    scan_library()
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    report = scan_library()
    assert (report.updated, report.unchanged) == (1, 0)
    assert Track.objects.get().file_mtime_ns == stat.st_mtime_ns + 1_000_000_000


def test_full_rescan_probes_everything(make_audio):
    make_audio("a.flac")
    scan_library()
    report = scan_library(full=True)
    assert (report.updated, report.unchanged) == (1, 0)


def test_batches_are_written_as_they_go(make_audio, django_assert_max_num_queries):
    for n in range(10):
        make_audio(f"many/{n:02d}.flac", duration=0.5)
    # Per batch: one lookup, one upsert (plus savepoint bookkeeping); then the missing check.
    seen = []
    report = scan_library(batch_size=3, workers=2, on_progress=lambda r: seen.append(r.files_seen))
    assert report.added == 10
    assert seen == [3, 6, 9, 10]
    with django_assert_max_num_queries(4 * 6 + 3):
        again = scan_library(batch_size=3)
    assert again.unchanged == 10


def test_scan_of_a_subfolder_only_marks_missing_inside_it(make_audio, music_root):
    make_audio("Rock/a.flac")
    make_audio("rock/b.flac")  # differs only by case: must not count as inside "Rock"
    make_audio("Jazz/c.flac")
    scan_library()
    (music_root / "Rock/a.flac").unlink()
    (music_root / "Jazz/c.flac").unlink()
    out = scan(root=music_root / "Rock")
    assert "missing 1" in out
    assert list(Track.objects.filter(missing_since__isnull=False).values_list("path", flat=True)) == ["Rock/a.flac"]


def test_root_outside_music_root_is_refused(music_root, tmp_path):
    with pytest.raises(CommandError, match="not inside MUSIC_ROOT"):
        scan(root=tmp_path)


def test_missing_music_root_is_a_clear_error(settings, tmp_path):
    settings.MUSIC_ROOT = tmp_path / "nope"
    with pytest.raises(CommandError, match=r"MUSIC_ROOT .* is not a folder"):
        scan()


def test_missing_ffprobe_is_a_clear_error(make_audio, settings):
    make_audio("a.flac")
    settings.AUDIO_CACHE_FFPROBE = "/nonexistent/ffprobe"
    with pytest.raises(ScanError, match="was not found: install ffmpeg or set AUDIO_CACHE_FFPROBE"):
        scan_library()
    assert Track.objects.count() == 0


def test_scan_never_writes_under_music_root(make_audio, music_root):
    make_audio("x/a.flac", cover=True)
    make_audio("x/b.m4a", kind="alac")
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in music_root.rglob("*")}
    scan_library()
    scan_library(full=True)
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in music_root.rglob("*")}
    assert before == after


def test_ffprobe_runs_only_for_what_the_headers_cannot_tell(make_audio, music_root, settings, tmp_path):
    # A real ffprobe behind a wrapper that notes each file it is asked about.
    log = tmp_path / "ffprobe.log"
    wrapper = tmp_path / "ffprobe"
    wrapper.write_text(f'#!/bin/sh\nfor a; do last="$a"; done\necho "$last" >> {log}\nexec ffprobe "$@"\n')
    wrapper.chmod(0o755)
    settings.AUDIO_CACHE_FFPROBE = str(wrapper)
    for kind, name in [("flac", "a.flac"), ("alac", "b.m4a"), ("wav24", "c.wav"), ("aiff", "d.aiff"),
                       ("wavpack", "e.wv"), ("mp3", "f.mp3"), ("opus", "g.opus"), ("tta", "h.tta")]:  # fmt: skip
        make_audio(name, kind=kind, sample_rate=48000 if kind == "opus" else 44100)
    (music_root / "junk.flac").write_text("not audio\n" * 50)
    report = scan_library()
    assert report.added == 8 and set(unreadable_reasons(report)) == {"junk.flac"}
    asked = sorted(line.rsplit("/", 1)[1] for line in log.read_text().split())
    assert asked == ["h.tta", "junk.flac"]  # TTA: no bit depth in mutagen; junk: ffprobe's verdict
    assert Track.objects.get(path="h.tta").codec == "tta"


def test_the_progress_line_says_how_many_files_are_left(make_audio):
    for n in range(5):
        make_audio(f"a/{n}.flac")
    err = StringIO()
    call_command("scanlibrary", "--batch-size", "2", stdout=StringIO(), stderr=err)
    lines = [line.strip() for line in err.getvalue().split("\r") if line.strip()]
    assert [line.split(" (")[0] for line in lines] == [
        "2 of about 5 files", "4 of about 5 files", "5 of about 5 files"
    ]  # fmt: skip
    assert all(line.endswith("s to go)") for line in lines)
