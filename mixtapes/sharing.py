"""Who may publish a mixtape, and which mixtapes are shared right now (MIXTAPES_PUBLIC_SHARING).

The library is the server's, shared by every account; publishing a mixtape makes its tracks
playable by anyone with the link. ``all`` lets every account publish (the default), ``staff``
only staff accounts, ``none`` nobody. A mixtape is shared when it is marked public *and* its
owner may publish now: changing the setting (or taking staff status away) withdraws the links
of mixtapes that no longer qualify at once, without touching their rows.
"""

from django.conf import settings
from django.db.models import Q

ALL, STAFF, NONE = "all", "staff", "none"
MODES = (ALL, STAFF, NONE)


def mode() -> str:
    return settings.MIXTAPES_PUBLIC_SHARING


def may_publish(user) -> bool:
    current = mode()
    return current == ALL or (current == STAFF and bool(user.is_staff))


def is_shared(mixtape) -> bool:
    """Anyone with the link may open and play it."""
    return bool(mixtape.is_public) and may_publish(mixtape.owner)


def shared_q(prefix: str = "") -> Q:
    """The mixtapes ``is_shared`` accepts, as a filter (``prefix`` e.g. ``"mixtapes__"``)."""
    current = mode()
    if current == NONE:
        return Q(pk__in=[])
    condition = Q(**{f"{prefix}is_public": True})
    if current == STAFF:
        condition &= Q(**{f"{prefix}owner__is_staff": True})
    return condition


def refusal() -> str:
    """Why the editor's public switch is off, for a user who may not publish."""
    if mode() == STAFF:
        return "On this server only staff accounts may make a mixtape public."
    return "Public mixtapes are turned off on this server."
