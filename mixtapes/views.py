from django.db.models import Count, Q, Sum
from django.shortcuts import render

from .models import Mixtape, Track


def home(request):
    """Landing page: what the library holds and the user's mixtapes (the editor comes later)."""
    context = {}
    if request.user.is_authenticated:
        context["library"] = Track.objects.filter(missing_since__isnull=True).aggregate(
            tracks=Count("id"),
            lossless=Count("id", filter=Q(is_lossless=True)),
            seconds=Sum("duration"),
            bytes=Sum("file_size"),
        )
        context["recent_tracks"] = Track.objects.filter(missing_since__isnull=True).order_by("-added_at")[:10]
        context["mixtapes"] = Mixtape.objects.filter(owner=request.user).annotate(track_count=Count("entries"))[:20]
    return render(request, "mixtapes/home.html", context)
