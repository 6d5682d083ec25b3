"""Static files storage for production: WhiteNoise's compressed, hashed names once
``collectstatic`` has run, plain names before it has.

Django's manifest storage raises (a 500 on every page) for a file that is neither in the
manifest nor collected, e.g. when the app is started with DEBUG=false straight from a
checkout. Falling back to the plain name keeps pages working; settings.py then lets
WhiteNoise serve those names from the source folders.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    manifest_strict = False

    def stored_name(self, name):
        try:
            return super().stored_name(name)
        except ValueError:  # not collected: no hashed copy exists
            return name
