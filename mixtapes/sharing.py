"""Who may publish a mixtape, and which mixtapes are shared right now (MIXTAPES_PUBLIC_SHARING).

The library is the server's, shared by every account; publishing a mixtape makes its tracks
playable by anyone with the link. ``all`` lets every account publish (the default), ``staff``
only staff accounts, ``none`` nobody. A mixtape is shared when it is marked public *and* its
owner may publish now: changing the setting (or taking staff status away) withdraws the links
of mixtapes that no longer qualify at once, without touching their rows.

Share links (``ShareLink``) open one mixtape, public or private, to whoever holds the link:
a link works while it is neither revoked nor expired *and* its mixtape's owner may publish.
"""

import secrets

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

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


# --- Share links ------------------------------------------------------------------------------

# 16 random bytes (128 bits), URL-safe base64 without padding: always 22 characters.
TOKEN_PATTERN = "[A-Za-z0-9_-]{22}"  # noqa: S105 - a pattern, not a secret
TOKEN_LENGTH = 22
LIVE, EXPIRED, REVOKED, WITHDRAWN = "live", "expired", "revoked", "withdrawn"


def new_token() -> str:
    return secrets.token_urlsafe(16)


def looks_like_token(value: str | None) -> bool:
    """Cheap check before any query: a token is 22 URL-safe base64 characters."""
    return (
        isinstance(value, str)
        and len(value) == TOKEN_LENGTH
        and value.isascii()
        and all(c.isalnum() or c in "-_" for c in value)
    )


def link_state(link, now=None) -> str:
    """``live``, or why the link no longer opens its mixtape."""
    if link.revoked_at is not None:
        return REVOKED
    if link.expires_at is not None and link.expires_at <= (now or timezone.now()):
        return EXPIRED
    if not may_publish(link.mixtape.owner):
        return WITHDRAWN
    return LIVE


def live_link_q(prefix: str = "", now=None) -> Q:
    """The links ``link_state`` calls live, as a filter on ShareLink (``prefix`` for a relation)."""
    current = mode()
    if current == NONE:
        return Q(pk__in=[])
    now = now or timezone.now()
    condition = Q(**{f"{prefix}revoked_at__isnull": True}) & (
        Q(**{f"{prefix}expires_at__isnull": True}) | Q(**{f"{prefix}expires_at__gt": now})
    )
    if current == STAFF:
        condition &= Q(**{f"{prefix}mixtape__owner__is_staff": True})
    return condition
