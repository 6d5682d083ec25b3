"""Keys and passwords for music apps: made here, checked here, never kept in the clear.

The streaming password is encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from the
``cryptography`` package) under a key derived from SECRET_KEY: a copy of the database alone
does not give the passwords away. Changing SECRET_KEY makes them unreadable: users then make
new ones on their "Connected apps" page.
"""

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken
from django.utils.crypto import salted_hmac

API_KEY_PREFIX = "mxk_"


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_streaming_password() -> str:
    # Letters and digits only: typed on a phone, and safe in any client's URL handling.
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(20))


def _fernet() -> Fernet:
    key = salted_hmac("subsonic.streaming-password", "fernet-key", algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str | None:
    """None when it cannot be read (SECRET_KEY changed, or the row was tampered with)."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None
