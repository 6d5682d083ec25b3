"""Who is calling: an API key (``apiKey``), or a username with the streaming password as a token
(``t`` = md5(password + ``s``)) or, over HTTPS only, in plain (``p``, or ``p=enc:<hex>``).

Failures are counted by django-axes like the login page's (per username and per address,
LOGIN_FAILURE_LIMIT and LOGIN_LOCKOUT_MINUTES), through Django's ``user_login_failed`` signal,
and a locked username or address gets code 40 whatever it sends.
"""

import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.utils import timezone

from . import secrets, selectors
from .models import ApiKey, StreamingPassword
from .protocol import SubsonicError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    user: object
    client: str
    mechanism: str  # "apiKey", "token" or "password"


def authenticate(request, params) -> Caller:
    api_key, username = params.get("apiKey"), params.get("u")
    token, salt, password = params.get("t"), params.get("s"), params.get("p")
    client = (params.get("c") or "")[:100]
    if api_key:
        if username or token or password:
            raise SubsonicError(
                SubsonicError.CONFLICTING_MECHANISMS, "Multiple conflicting authentication mechanisms provided"
            )
        return _by_api_key(request, api_key, client)
    if not username:
        raise SubsonicError(SubsonicError.MISSING_PARAMETER, "Required parameter is missing: u (or apiKey)")
    credentials = {"username": username}
    if not _recently_verified(request, username) and AxesProxyHandler.is_locked(request, credentials):
        raise SubsonicError(SubsonicError.WRONG_CREDENTIALS, "Too many failed logins: try again later")
    if token and salt:
        return _by_token(request, username, token, salt, client)
    if password:
        return _by_password(request, username, password, client)
    raise SubsonicError(SubsonicError.MISSING_PARAMETER, "Required parameter is missing: t and s (or p)")


# Apps make a call per song, cover and scrobble: a username and address that logged in a moment
# ago are not asked about a lockout again for a few seconds (the lockout queries cost more than
# the rest of a stream hit). Only successful logins are remembered, and a failure forgets them,
# so guessing always meets the real check.
VERIFIED_FOR = 5.0
_verified: dict[tuple[str, str], float] = {}
_verified_lock = threading.Lock()


def _recently_verified(request, username: str) -> bool:
    key = (username, request.META.get("REMOTE_ADDR", ""))
    with _verified_lock:
        return _verified.get(key, 0.0) > time.monotonic()


def _remember_verified(request, username: str) -> None:
    key = (username, request.META.get("REMOTE_ADDR", ""))
    with _verified_lock:
        if len(_verified) > 10_000:
            _verified.clear()
        _verified[key] = time.monotonic() + VERIFIED_FOR


def _failed(request, username: str, message: str, code: int = SubsonicError.WRONG_CREDENTIALS) -> SubsonicError:
    with _verified_lock:
        _verified.pop((username, request.META.get("REMOTE_ADDR", "")), None)
    user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)
    # django-axes marks the request that reaches the limit, and its middleware would answer it
    # with the login page's 429: the API answers in its own envelope (and the next calls too).
    request.axes_locked_out = False
    logger.warning(
        "subsonic: failed login for %r from %s: %s", username[:150], request.META.get("REMOTE_ADDR"), message
    )
    return SubsonicError(code, message)


def _by_api_key(request, key: str, client: str) -> Caller:
    if AxesProxyHandler.is_locked(request, {"username": ""}):
        raise SubsonicError(SubsonicError.INVALID_API_KEY, "Too many failed logins: try again later")
    row = ApiKey.objects.select_related("user").filter(digest=secrets.api_key_digest(key)).first()
    if row is None or not row.user.is_active:
        raise _failed(request, "", "Invalid API key", SubsonicError.INVALID_API_KEY)
    if _stale(row.last_used_at):
        ApiKey.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    return Caller(row.user, client, "apiKey")


USE_RECORDED_EVERY = timedelta(minutes=1)  # "last used" is a hint: not a write per request


def _stale(last_used_at) -> bool:
    return last_used_at is None or timezone.now() - last_used_at > USE_RECORDED_EVERY


def _streaming_password(username: str):
    """(user, their streaming password or None, its row), in one query."""
    found = selectors.streaming_login(username)
    if found is None:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        return user, None, None
    user, row = found
    return user, secrets.decrypt(row.ciphertext), row


def _by_token(request, username: str, token: str, salt: str, client: str) -> Caller:
    user, password, row = _streaming_password(username)
    if user is not None and password is None:
        raise _failed(
            request, username,
            "Token authentication needs a streaming password: make one on the Connected apps page",
            SubsonicError.TOKEN_NOT_SUPPORTED,
        )  # fmt: skip
    expected = hashlib.md5((password or "").encode() + salt.encode(), usedforsecurity=False).hexdigest()
    if user is None or not hmac.compare_digest(expected, token.lower()):
        raise _failed(request, username, "Wrong username or password")
    _used(row)
    _remember_verified(request, username)
    return Caller(user, client, "token")


def _by_password(request, username: str, password: str, client: str) -> Caller:
    if not (request.is_secure() or settings.SUBSONIC_ALLOW_PLAIN_PASSWORD):
        raise SubsonicError(
            SubsonicError.MECHANISM_NOT_SUPPORTED,
            "Plain passwords are accepted over HTTPS only: use token authentication or an API key",
        )
    if password.startswith("enc:"):
        try:
            password = bytes.fromhex(password[4:]).decode()
        except ValueError:
            raise _failed(request, username, "Wrong username or password") from None
    user, expected, row = _streaming_password(username)
    if user is None or expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
        raise _failed(request, username, "Wrong username or password")
    _used(row)
    _remember_verified(request, username)
    return Caller(user, client, "password")


def _used(row: StreamingPassword) -> None:
    if _stale(row.last_used_at):
        StreamingPassword.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
