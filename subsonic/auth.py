"""Who is calling: an API key (``apiKey``), or a username with the streaming password as a token
(``t`` = md5(password + ``s``)) or, over HTTPS only, in plain (``p``, or ``p=enc:<hex>``).

Failures are counted by django-axes like the login page's (per username and per address,
LOGIN_FAILURE_LIMIT and LOGIN_LOCKOUT_MINUTES), through Django's ``user_login_failed`` signal,
and a locked username or address gets code 40 whatever it sends.
"""

import hashlib
import hmac
import logging
from dataclasses import dataclass

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.utils import timezone

from . import secrets
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
    if AxesProxyHandler.is_locked(request, credentials):
        raise SubsonicError(SubsonicError.WRONG_CREDENTIALS, "Too many failed logins: try again later")
    if token and salt:
        return _by_token(request, username, token, salt, client)
    if password:
        return _by_password(request, username, password, client)
    raise SubsonicError(SubsonicError.MISSING_PARAMETER, "Required parameter is missing: t and s (or p)")


def _failed(request, username: str, message: str, code: int = SubsonicError.WRONG_CREDENTIALS) -> SubsonicError:
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
    ApiKey.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    return Caller(row.user, client, "apiKey")


def _streaming_password(username: str):
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        return None, None
    row = StreamingPassword.objects.filter(user=user).first()
    return user, (secrets.decrypt(row.ciphertext) if row else None)


def _by_token(request, username: str, token: str, salt: str, client: str) -> Caller:
    user, password = _streaming_password(username)
    if user is not None and password is None:
        raise _failed(
            request, username,
            "Token authentication needs a streaming password: make one on the Connected apps page",
            SubsonicError.TOKEN_NOT_SUPPORTED,
        )  # fmt: skip
    expected = hashlib.md5((password or "").encode() + salt.encode(), usedforsecurity=False).hexdigest()
    if user is None or not hmac.compare_digest(expected, token.lower()):
        raise _failed(request, username, "Wrong username or password")
    _used(user)
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
    user, expected = _streaming_password(username)
    if user is None or expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
        raise _failed(request, username, "Wrong username or password")
    _used(user)
    return Caller(user, client, "password")


def _used(user) -> None:
    StreamingPassword.objects.filter(user=user).update(last_used_at=timezone.now())
