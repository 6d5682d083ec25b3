"""What the cache's admin pages share: who may queue work, and the precache action."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from .. import selectors, services
from ..qualities import all_variants


def can_queue(request) -> bool:
    """Queueing, retrying or cancelling transcodes: whoever may change tasks (superusers, or
    staff given "Can change cache task"). View-only staff see everything and change nothing."""
    return request.user.has_perm("audiocache.change_cachetask")


class QueuePermissionMixin:
    """Lets admin actions declare ``permissions=["queue"]``."""

    def has_queue_permission(self, request) -> bool:
        return can_queue(request)


def size_label(n) -> str:
    return filesizeformat(n or 0)


class QualitiesForm(forms.Form):
    qualities = forms.MultipleChoiceField(
        choices=lambda: [(str(v), v.label) for v in all_variants()],
        widget=forms.CheckboxSelectMultiple,
        initial=lambda: list(settings.AUDIO_CACHE_PRECACHE_QUALITIES),
    )
    overwrite = forms.BooleanField(required=False, label="Transcode again even where a fresh rendition exists")


def precache_action(modeladmin, request, queryset, *, track_ids_of, what: str):
    """An admin action with an intermediate page that asks for the qualities, then queues one
    batch of the tracks ``track_ids_of(queryset)`` names."""
    if "apply" in request.POST:
        form = QualitiesForm(request.POST)
        if form.is_valid():
            track_ids = track_ids_of(queryset)
            batch = services.precache_tracks(
                track_ids,
                form.cleaned_data["qualities"],
                label=f"Admin: {len(track_ids)} tracks of {queryset.count()} {what}",
                user=request.user,
                force=form.cleaned_data["overwrite"],
            )
            counts = selectors.batch_counts(batch)
            url = reverse("admin:audiocache_cachebatch_change", args=[batch.pk])
            modeladmin.message_user(
                request,
                format_html(
                    'Queued batch <a href="{}">{}</a>: {} renditions ({}).', url, batch.label, counts.total, counts
                ),
                messages.SUCCESS,
            )
            return None
    else:
        form = QualitiesForm()
    return TemplateResponse(
        request,
        "admin/audiocache/precache_form.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": f"Precache {queryset.count()} {what}",
            "form": form,
            "queryset": queryset,
            "action": request.POST.get("action"),
            "opts": modeladmin.model._meta,
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            # "Select all N" must mean the same N on the confirmation as in the action.
            "select_across": request.POST.get("select_across", "0"),
        },
    )
