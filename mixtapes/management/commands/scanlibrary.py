from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mixtapes.library import DEFAULT_BATCH_SIZE, ScanError, ScanReport, count_audio_files, display_path, scan_library


class Command(BaseCommand):
    help = (
        "Walk MUSIC_ROOT, read every audio file's stream facts and tags (in-process with mutagen, ffprobe "
        "where the headers do not say enough) and bring the "
        "track list up to date. Unchanged files (same size and mtime) are not probed again. Files that "
        "disappeared are marked missing, never deleted. Nothing under MUSIC_ROOT is written."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--root",
            type=Path,
            help="Scan only this folder, which must be inside MUSIC_ROOT (e.g. a newly added album). "
            "Default: all of MUSIC_ROOT.",
        )
        parser.add_argument("--full", action="store_true", help="Probe every file again, changed or not.")
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help=f"Files probed at once (default: LIBRARY_SCAN_WORKERS = {settings.LIBRARY_SCAN_WORKERS}).",
        )
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="Files per database write.")

    def handle(self, *args, root=None, full=False, workers=None, batch_size=DEFAULT_BATCH_SIZE, **options):
        if workers is not None and workers < 1:
            raise CommandError("--workers must be at least 1")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        music_root = Path(settings.MUSIC_ROOT)
        start = None
        if root is not None:
            start = root if root.is_absolute() else (Path.cwd() / root)
        verbosity = options["verbosity"]
        self.stdout.write(f"Scanning {start or music_root} ...")
        self._expected = (
            count_audio_files(start or music_root) if verbosity >= 1 and (start or music_root).is_dir() else 0
        )
        try:
            report = scan_library(
                music_root,
                start=start,
                full=full,
                batch_size=batch_size,
                workers=workers,
                on_progress=self._progress if verbosity >= 1 else None,
            )
        except ScanError as exc:
            raise CommandError(str(exc)) from None
        self._print_report(report, verbosity)

    def _progress(self, report: ScanReport) -> None:
        # One line per batch on stderr keeps stdout a clean summary for scripts and cron mail.
        line = f"  {report.files_seen:,} files ({report.files_per_second:,.0f}/s)"
        expected = max(self._expected, report.files_seen)
        if expected and report.files_per_second:
            eta = (expected - report.files_seen) / report.files_per_second
            line = f"  {report.files_seen:,} of about {expected:,} files ({report.files_per_second:,.0f}/s, {eta:,.0f} s to go)"
        self.stderr.write(line.ljust(72), ending="\r")
        self.stderr.flush()

    def _print_report(self, report: ScanReport, verbosity: int) -> None:
        self.stderr.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"Added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
                f"missing {report.missing}, unreadable {report.unreadable_count}, skipped {report.skipped_count} "
                f"({report.files_seen:,} audio files in {report.seconds:.1f} s, {report.files_per_second:,.0f} files/s)."
            )
        )
        limit = None if verbosity >= 2 else 50
        self._list(
            "Unreadable", [(p.relative_path, p.reason) for p in report.unreadable], report.unreadable_count, limit
        )
        self._list("Skipped", [(p.relative_path, p.reason) for p in report.skipped], report.skipped_count, limit)
        self._list(
            "Missing (kept in the database and in mixtapes; rescan when the files are back)",
            [(p, "no longer found") for p in report.missing_paths],
            report.missing,
            limit,
        )

    def _list(self, title: str, items: list[tuple[str, str]], total: int, limit: int | None) -> None:
        if not total:
            return
        self.stdout.write(f"{title}:")
        for path, reason in items[:limit]:
            self.stdout.write(f"  {display_path(path)}: {reason}")
        shown = min(len(items), limit or len(items))
        if total > shown:
            self.stdout.write(f"  ... and {total - shown} more (use -v 2 to list up to 1000)")
