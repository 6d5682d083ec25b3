#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from config.startup import exit_on_bad_settings, exit_on_unreachable_database, freeze_imported_objects

    exit_on_bad_settings()
    freeze_imported_objects()
    from django.core.management import execute_from_command_line

    with exit_on_unreachable_database():
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
