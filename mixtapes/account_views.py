"""The account page (``/account/``): the listener's own settings. Today one: the streaming
format the player and music apps get when they do not name one (audiocache/services/formats.py)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from audiocache import services as cache_services
from audiocache.qualities import FORMATS, enabled_formats


class StreamingFormatForm(forms.Form):
    format = forms.ChoiceField(
        label="Streaming format",
        widget=forms.RadioSelect,
        help_text="What you hear when the player or app does not ask for a format. A lossy file "
        "(MP3, AAC, Opus) is always sent as it is.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(cache_services.AUTOMATIC, "Automatic: the best the player says it plays, else MP3")]
        choices += [(name, FORMATS[name].label) for name in enabled_formats()]
        self.fields["format"].choices = choices


@login_required
@require_http_methods(["GET", "POST"])
def account(request):
    form = StreamingFormatForm(request.POST or None, initial={"format": cache_services.preferred_format(request.user)})
    if request.method == "POST" and form.is_valid():
        cache_services.set_streaming_format(request.user, form.cleaned_data["format"])
        messages.success(request, "Saved.")
        return redirect("account")
    return render(request, "mixtapes/account.html", {"form": form})
