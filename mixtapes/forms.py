from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError

from config.numbers import MAX_ID, whole_number

from . import sharing
from .covers import ACCEPTED_FORMATS, process_cover
from .models import Mixtape, Track

MAX_TRACKS = 500


class MixtapeForm(forms.ModelForm):
    """Title, notes, public flag, cover; the ordered track list comes as repeated ``track`` ids."""

    cover_upload = forms.FileField(
        label="Cover",
        required=False,
        help_text="JPEG, PNG or WebP; it is resized and stored as JPEG.",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(f"image/{f.lower()}" for f in ACCEPTED_FORMATS)}),
    )
    remove_cover = forms.BooleanField(label="Remove the cover", required=False)

    class Meta:
        model = Mixtape
        fields = ["title", "liner_notes", "is_public"]
        labels = {"is_public": "Public: anyone with the link can listen", "liner_notes": "Liner notes"}
        widgets = {"liner_notes": forms.Textarea(attrs={"rows": 4})}
        error_messages = {"title": {"required": "Give the mixtape a title."}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["title"].widget.attrs.update({"autocomplete": "off", "maxlength": 200})
        self.track_ids: list[int] = []
        if not sharing.may_publish(self.instance.owner):
            # A disabled field ignores what is posted and keeps its initial value: saving
            # makes a mixtape private when its owner may no longer publish.
            self.fields["is_public"].disabled = True
            self.fields["is_public"].help_text = sharing.refusal()
            self.initial["is_public"] = False

    def clean_cover_upload(self):
        upload = self.cleaned_data.get("cover_upload")
        return process_cover(upload) if upload else None

    def clean(self):
        cleaned = super().clean()
        raw = self.data.getlist("track") if hasattr(self.data, "getlist") else []
        if len(raw) > MAX_TRACKS:
            raise ValidationError(f"A mixtape holds at most {MAX_TRACKS} tracks.")
        ids = [whole_number(value, MAX_ID) for value in raw]
        if None in ids:
            raise ValidationError("The track list was malformed; reload the page and try again.")
        known = set(Track.objects.filter(id__in=set(ids)).values_list("id", flat=True))
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ValidationError(f"{len(unknown)} track(s) are no longer in the library; remove them and save again.")
        self.track_ids = ids
        return cleaned


# Expiry choices of a new share link: a value in days, or "" for never.
LINK_LIFETIMES = [("", "Never expires"), ("1", "1 day"), ("7", "7 days"), ("30", "30 days"), ("365", "1 year")]


class ShareLinkForm(forms.Form):
    """A new share link: who it is for, how long it lives, whether it offers a download."""

    label = forms.CharField(
        label="For", max_length=100, required=False, help_text="Only you see this, e.g. “Sam” or “the book club”."
    )
    lifetime = forms.ChoiceField(label="Expires", choices=LINK_LIFETIMES, required=False)
    allow_download = forms.BooleanField(label="Allow download as a zip", required=False)

    def expires_in(self) -> timedelta | None:
        days = self.cleaned_data.get("lifetime")
        return timedelta(days=int(days)) if days else None
