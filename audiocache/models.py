import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from mixtapes.models import Mixtape, Track
from mixtapes.probe import last_line

from .date_probing import DateProbingQuerySet
from .qualities import DEFAULT_FORMAT, FORMAT_CHOICES, Variant


class Quality(models.TextChoices):
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


def format_field():
    # Every row made before Opus and AAC is an MP3: the default keeps them valid as they are.
    return models.CharField(max_length=8, choices=FORMAT_CHOICES, default=DEFAULT_FORMAT)


class VariantMixin:
    """``variant``: the row's (format, quality) pair."""

    @property
    def variant(self) -> Variant:
        return Variant(self.format, self.quality)


class CachedRendition(VariantMixin, models.Model):
    """An MP3, Opus or AAC file made from a lossless track, stored as ``AUDIO_CACHE_DIR/<file_name>``.

    ``source_size``/``source_mtime_ns``/``encoder_profile`` record what the file was made
    from and how; when any differs from the track today, the rendition is stale.
    """

    track = models.ForeignKey(Track, on_delete=models.CASCADE, related_name="renditions")
    format = format_field()
    quality = models.CharField(max_length=8, choices=Quality.choices)
    bitrate = models.PositiveIntegerField(help_text="kbit/s.")
    file_name = models.CharField(
        max_length=128, unique=True, help_text="<hash>_<format>_<quality>_<bitrate>k.<ext> inside AUDIO_CACHE_DIR."
    )
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    source_size = models.PositiveBigIntegerField()
    source_mtime_ns = models.BigIntegerField()
    encoder_profile = models.CharField(max_length=64, help_text="Identifies the ffmpeg settings used.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_accessed_at = models.DateTimeField(null=True, blank=True)
    hit_count = models.PositiveBigIntegerField(default=0)

    objects = DateProbingQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["track", "format", "quality"], name="rendition_unique_track_variant"),
        ]
        indexes = [
            # Least-recently-used eviction and "not accessed for N days".
            models.Index(fields=["last_accessed_at"], name="rendition_lru_idx"),
            models.Index(fields=["created_at"], name="rendition_created_idx"),
            models.Index(fields=["format", "quality", "created_at"], name="rendition_variant_idx"),
            models.Index(fields=["-size"], name="rendition_size_idx"),
        ]

    def __str__(self):
        return f"{self.track} @ {self.variant.label}"


class CacheTask(VariantMixin, models.Model):
    """One transcode job in the queue. Rows stay after they finish, for the admin's history."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        SKIPPED = "skipped"
        CANCELLED = "cancelled"

    ACTIVE_STATUSES = (Status.PENDING, Status.RUNNING)

    # A listener waiting on a play request outranks a batch precache.
    PRIORITY_PRECACHE = 0
    PRIORITY_PLAY = 100

    track = models.ForeignKey(Track, on_delete=models.CASCADE, related_name="cache_tasks")
    format = format_field()
    quality = models.CharField(max_length=8, choices=Quality.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    priority = models.SmallIntegerField(default=PRIORITY_PRECACHE)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True, help_text="The tail of ffmpeg's stderr, or why the task failed.")
    worker_id = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    available_at = models.DateTimeField(default=timezone.now, help_text="Not claimed before this time (retry backoff).")
    progress = models.FloatField(default=0.0, help_text="0.0 to 1.0.")
    force = models.BooleanField(default=False, help_text="Transcode even if a fresh rendition exists.")
    # The source as it was when the task was queued: a failed task only blocks new attempts
    # (quarantine) while the source is still the same file.
    source_size = models.PositiveBigIntegerField(null=True, blank=True)
    source_mtime_ns = models.BigIntegerField(null=True, blank=True)
    # The running attempt's output, for listeners who stream it while it is written
    # (audiocache/services/following.py): its temporary file in AUDIO_CACHE_DIR and how many audio
    # frames it will have (None: not known in advance, so it cannot be followed).
    temp_name = models.CharField(max_length=200, blank=True)
    planned_frames = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # The database, not the application, guarantees one active job per rendition:
            # concurrent enqueues race on this index and the loser joins the winner's task.
            models.UniqueConstraint(
                fields=["track", "format", "quality"],
                condition=Q(status__in=["pending", "running"]),
                name="cachetask_one_active_per_variant",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0.0) & Q(progress__lte=1.0), name="cachetask_progress_range"
            ),
        ]
        indexes = [
            # The claim query: best pending task first.
            models.Index(
                fields=["-priority", "available_at", "id"],
                condition=Q(status="pending"),
                name="cachetask_claim_idx",
            ),
            # Reclaiming expired leases.
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status="running"),
                name="cachetask_lease_idx",
            ),
            models.Index(fields=["status", "-created_at"], name="cachetask_status_idx"),
            models.Index(fields=["format", "quality", "status"], name="cachetask_variant_idx"),
        ]

    def __str__(self):
        return f"{self.track} @ {self.variant.label} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def error_line(self) -> str:
        """The error's last line: what went wrong, for lists and logs."""
        return last_line(self.error)


class CacheBatch(models.Model):
    """One precache request (a mixtape save, a CLI run): its own progress channel and summary.

    Items point at the tasks that do the work; a task may serve several batches, so two
    overlapping batches that share tracks both see it finish.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    label = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    mixtape = models.ForeignKey(Mixtape, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "cache batches"
        indexes = [models.Index(fields=["-created_at"], name="cachebatch_recent_idx")]

    def __str__(self):
        return self.label


class CacheBatchItem(VariantMixin, models.Model):
    class Outcome(models.TextChoices):
        SKIPPED = "skipped"  # decided when queued: already cached, lossy, missing, quarantined
        FAILED = "failed"

    batch = models.ForeignKey(CacheBatch, on_delete=models.CASCADE, related_name="items")
    track = models.ForeignKey(Track, on_delete=models.CASCADE, related_name="+")
    format = format_field()
    quality = models.CharField(max_length=8, choices=Quality.choices)
    task = models.ForeignKey(CacheTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="batch_items")
    # Empty while a task decides the outcome; set when the batch could decide without a task.
    outcome = models.CharField(max_length=8, choices=Outcome.choices, blank=True)
    note = models.CharField(max_length=300, blank=True)
    # Its outcome's event was sent: the batch's final event waits for every item's (workers
    # racing could otherwise send a track's line after the end).
    announced = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["batch", "id"], name="cachebatchitem_batch_idx")]

    def __str__(self):
        return f"{self.batch}: {self.track} @ {self.variant.label}"


class StreamDay(models.Model):
    """Stream requests per day and format by how they were answered, for the cache dashboard.

    Counted in memory by each process and added here about once a minute (audiocache/services/play_counts.py).
    """

    day = models.DateField()
    format = models.CharField(
        max_length=8,
        blank=True,
        default="",
        help_text="The format asked for (mp3, opus, aac), or original for bypasses; "
        "empty for days counted before formats were told apart.",
    )
    hits = models.PositiveBigIntegerField(default=0, help_text="Served a fresh rendition.")
    misses = models.PositiveBigIntegerField(
        default=0, help_text="No fresh rendition: streamed while it was made, or the original served; task queued."
    )
    bypasses = models.PositiveBigIntegerField(default=0, help_text="Original asked for, lossy, or cache disabled.")

    class Meta:
        ordering = ["-day", "format"]
        constraints = [models.UniqueConstraint(fields=["day", "format"], name="streamday_one_row_per_day_and_format")]

    def __str__(self):
        return f"{self.day} {self.format or 'all formats'}: {self.hits} hits, {self.misses} misses, {self.bypasses} bypasses"


class StreamingPreference(models.Model):
    """A listener's "Streaming format" (account page): automatic, or one format
    (audiocache/services/formats.py applies it)."""

    AUTOMATIC = "auto"
    CHOICES = [(AUTOMATIC, "Automatic (the best my player can play)"), *FORMAT_CHOICES]

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    format = models.CharField(max_length=8, choices=CHOICES, default=AUTOMATIC)

    def __str__(self):
        return f"{self.user}: {self.get_format_display()}"
