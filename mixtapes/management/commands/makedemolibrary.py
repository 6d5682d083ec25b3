from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mixtapes.demo import RenderError, make_demo_library


class Command(BaseCommand):
    help = (
        "Generate a small demo library with ffmpeg in DIR (a new or empty folder): FLAC (one 24-bit/96 kHz, "
        "one 5.1), WAV, AIFF, ALAC in .m4a, WavPack and one MP3, tagged, some with cover art. "
        "Then point MUSIC_ROOT at DIR and run scanlibrary."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path, metavar="DIR", help="A folder that does not exist yet or is empty.")

    def handle(self, *args, directory: Path, **options):
        try:
            made = make_demo_library(
                directory, on_file=lambda p: self.stdout.write(f"  {p.relative_to(directory.absolute())}")
            )
        except RenderError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Made {len(made)} demo tracks in {directory.absolute()}"))
