from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Lower
from django.utils.text import slugify

from . import formats, sharing

# Longest relative path we store; a longer one is reported by the scan, not truncated.
# (PostgreSQL's B-tree entries top out near 2.7 kB, which rules out a unique index on longer keys.)
MAX_PATH_LENGTH = 1024
MAX_TAG_LENGTH = 500


class Track(models.Model):
    """One audio file of the library, as the last scan saw it."""

    path = models.CharField(
        max_length=MAX_PATH_LENGTH, unique=True, help_text="Relative to MUSIC_ROOT, with '/' separators."
    )

    title = models.CharField(max_length=MAX_TAG_LENGTH, blank=True)
    artist = models.CharField(max_length=MAX_TAG_LENGTH, blank=True)
    album = models.CharField(max_length=MAX_TAG_LENGTH, blank=True)
    album_artist = models.CharField(max_length=MAX_TAG_LENGTH, blank=True)
    track_number = models.PositiveIntegerField(null=True, blank=True)
    disc_number = models.PositiveIntegerField(null=True, blank=True)

    duration = models.FloatField(null=True, blank=True, help_text="Seconds.")
    codec = models.CharField(max_length=32, help_text="ffprobe's codec name, e.g. flac, alac, pcm_s24le, mp3.")
    container = models.CharField(max_length=64, blank=True, help_text="ffprobe's format name.")
    sample_rate = models.PositiveIntegerField(null=True, blank=True)
    bit_depth = models.PositiveSmallIntegerField(null=True, blank=True)
    channels = models.PositiveSmallIntegerField(null=True, blank=True)
    bitrate = models.PositiveIntegerField(null=True, blank=True, help_text="Bits per second.")
    is_lossless = models.BooleanField(help_text="Decided from the codec, never from the file extension.")
    has_cover = models.BooleanField(default=False)
    replaygain_track_gain = models.FloatField(null=True, blank=True, help_text="dB, from the file's tags.")
    replaygain_track_peak = models.FloatField(null=True, blank=True)
    replaygain_album_gain = models.FloatField(null=True, blank=True, help_text="dB, from the file's tags.")
    replaygain_album_peak = models.FloatField(null=True, blank=True)

    file_size = models.PositiveBigIntegerField()
    file_mtime_ns = models.BigIntegerField(help_text="Modification time in nanoseconds, as os.stat reports it.")

    added_at = models.DateTimeField(auto_now_add=True)
    scanned_at = models.DateTimeField(help_text="When a scan last saw this file.")
    missing_since = models.DateTimeField(
        null=True, blank=True, help_text="Set when a scan no longer finds the file; the row stays for mixtapes."
    )
    # Lower-cased, accent-folded title, artist, album, album artist and file name: what the
    # editor's library search matches (mixtapes/search.py keeps it indexed per database).
    search_text = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["album_artist", "album", "disc_number", "track_number", "path"]
        indexes = [
            models.Index(Lower("title"), name="track_title_lower_idx"),
            models.Index(Lower("artist"), name="track_artist_lower_idx"),
            models.Index(Lower("album"), name="track_album_lower_idx"),
            models.Index(fields=["album_artist", "album", "disc_number", "track_number"], name="track_album_order_idx"),
            models.Index(fields=["is_lossless"], name="track_lossless_idx"),
            models.Index(fields=["scanned_at"], name="track_scanned_idx"),
            # A moved file is recognised by its size and mtime (mixtapes/library.py).
            models.Index(fields=["file_size", "file_mtime_ns"], name="track_file_identity_idx"),
        ]

    def __str__(self):
        if self.title:
            return f"{self.artist} – {self.title}" if self.artist else self.title
        return Path(self.path).name

    def save(self, *args, **kwargs):
        from .search import search_text_for

        self.search_text = search_text_for(self)
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "search_text"}
        super().save(*args, **kwargs)

    @property
    def display_title(self) -> str:
        return self.title or Path(self.path).stem

    @property
    def display_name(self) -> str:
        """Artist, en dash, title (the title is the file's name without its extension when untagged)."""
        return f"{self.artist} – {self.display_title}" if self.artist else self.display_title

    @property
    def format_name(self) -> str:
        """As people say it: "FLAC 24-bit/96 kHz", "WAV 16-bit", "MP3 320k" (mixtapes/formats.py)."""
        return formats.track_format(self)

    def absolute_path(self) -> Path:
        """The file under MUSIC_ROOT; callers that open it must still check containment."""
        return Path(settings.MUSIC_ROOT) / self.path


# Slugs that would collide with fixed URLs (/editor/new/).
RESERVED_SLUGS = frozenset({"new"})


class Mixtape(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mixtapes")
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    liner_notes = models.TextField(blank=True)
    cover = models.ImageField(upload_to="covers/", blank=True)
    is_public = models.BooleanField(default=False)
    tracks = models.ManyToManyField(Track, through="MixtapeTrack", related_name="mixtapes")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="mixtape_owner_recent_idx")]

    def __str__(self):
        return self.title

    def save(self, *args, **kwargs):
        if self.slug:
            return super().save(*args, **kwargs)
        # Two saves of the same title at once may pick the same free slug; the database's unique
        # index lets one win, and the other takes the next candidate.
        for attempt in range(5):
            self.slug = self._unique_slug()
            try:
                with transaction.atomic():
                    return super().save(*args, **kwargs)
            except IntegrityError:
                if attempt == 4 or not Mixtape.objects.filter(slug=self.slug).exists():
                    raise
                self.slug = ""

    @property
    def is_shared(self) -> bool:
        """Public, and its owner may publish on this server (MIXTAPES_PUBLIC_SHARING)."""
        return sharing.is_shared(self)

    def clean(self):
        if self.slug in RESERVED_SLUGS:
            raise ValidationError({"slug": f"“{self.slug}” is reserved; choose another slug."})

    def _unique_slug(self) -> str:
        base = slugify(self.title)[:70] or "mixtape"
        candidate, n = base, 2
        while candidate in RESERVED_SLUGS or Mixtape.objects.filter(slug=candidate).exists():
            candidate, n = f"{base}-{n}", n + 1
        return candidate


class MixtapeTrack(models.Model):
    mixtape = models.ForeignKey(Mixtape, on_delete=models.CASCADE, related_name="entries")
    # PROTECT: deleting a Track must not silently empty people's mixtapes.
    track = models.ForeignKey(Track, on_delete=models.PROTECT, related_name="mixtape_entries")
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["mixtape", "position"]
        constraints = [
            models.UniqueConstraint(fields=["mixtape", "position"], name="mixtapetrack_unique_position"),
        ]

    def __str__(self):
        return f"{self.mixtape} #{self.position}: {self.track}"


class LibraryWatchLease(models.Model):
    """Which process watches the library (one row): the holder renews it while it runs, and
    another process takes it over once it expires (the holder died) or is given up."""

    holder = models.CharField(max_length=200, blank=True, help_text="host:pid of the watching process.")
    expires_at = models.DateTimeField()

    def __str__(self):
        return f"{self.holder or 'nobody'} until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class ShareLink(models.Model):
    """A link that opens one mixtape to whoever holds it, private or not: an unguessable token,
    an optional expiry, revocable, with a visit counter (mixtapes/sharing.py says whether it works)."""

    mixtape = models.ForeignKey(Mixtape, on_delete=models.CASCADE, related_name="share_links")
    token = models.CharField(max_length=32, unique=True, editable=False)
    label = models.CharField(max_length=100, blank=True, help_text="Who it is for, for the owner's eyes only.")
    allow_download = models.BooleanField(default=False, help_text="Offer the mixtape as a zip.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: it never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    visits = models.PositiveBigIntegerField(default=0)
    last_visited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.mixtape} ({self.label or self.token[:6] + '…'})"
