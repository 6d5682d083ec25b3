import os
import secrets
from io import StringIO
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from mixtapes.demo import RenderError, make_demo_library
from mixtapes.models import Track


class Command(BaseCommand):
    help = (
        "First-run setup used by `make run`; safe to run every time, each step only acts when needed: "
        "make the demo library when MUSIC_ROOT is missing or empty, scan when no track is known yet, "
        "create the user 'admin' with a random password (printed once) when no superuser exists."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-demo", action="store_true", help="Never generate the demo library.")
        parser.add_argument("--admin-username", default="admin", help="Name of the first superuser (default: admin).")

    def handle(self, *args, no_demo=False, admin_username="admin", **options):
        music_root = Path(settings.MUSIC_ROOT)
        empty = not music_root.exists() or (music_root.is_dir() and not any(music_root.iterdir()))
        # Only the default folder under DATA_ROOT is ours to fill: a MUSIC_ROOT the user chose is never written.
        if empty and os.environ.get("MUSIC_ROOT"):
            self.stdout.write(f"MUSIC_ROOT {music_root} is empty; add music there and run scanlibrary.")
        elif empty and not no_demo:
            self.stdout.write(f"MUSIC_ROOT {music_root} is empty: generating the demo library there ...")
            try:
                made = make_demo_library(music_root)
            except RenderError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"  {len(made)} demo tracks made.")

        if not Track.objects.exists() and music_root.is_dir():
            out = StringIO()
            call_command("scanlibrary", stdout=out, stderr=StringIO())
            self.stdout.write(out.getvalue().rstrip())

        user_model = get_user_model()
        if not user_model.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            user_model.objects.create_superuser(username=admin_username, email="", password=password)
            banner = "=" * 64
            self.stdout.write(
                self.style.WARNING(
                    f"{banner}\n"
                    f"  Created the administrator account (shown only this once):\n"
                    f"    username: {admin_username}\n"
                    f"    password: {password}\n"
                    f"  Change it any time with: python manage.py changepassword {admin_username}\n"
                    f"{banner}"
                )
            )
