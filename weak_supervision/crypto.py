"""Secrets at rest without the ORM: API keys are stored as Fernet tokens (AES-128-CBC with an
HMAC-SHA256, from the `cryptography` package), each bound to the endpoint it was saved for.

The key comes from the ``FIELD_ENCRYPTION_KEY`` setting: a comma-separated list of Fernet keys
(``Fernet.generate_key()``); the first encrypts, all of them decrypt (key rotation). When it is
empty the key is derived from ``SECRET_KEY`` with HKDF-SHA256 (so changing SECRET_KEY without
setting FIELD_ENCRYPTION_KEY makes stored keys unreadable: they then count as unset).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_HKDF_INFO = b"flywheel field encryption v1"


def derive_key(secret: str) -> bytes:
    """A Fernet key from an arbitrary secret string (HKDF-SHA256, fixed salt and context)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"flywheel", info=_HKDF_INFO).derive(
        secret.encode()
    )
    return base64.urlsafe_b64encode(raw)


def fernet_for(*, field_keys: str, secret_key: str) -> MultiFernet:
    keys = [k.strip() for k in (field_keys or "").split(",") if k.strip()]
    fernets = [Fernet(k.encode()) for k in keys] or [Fernet(derive_key(secret_key))]
    return MultiFernet(fernets)


def _default_fernet() -> MultiFernet:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        return fernet_for(
            field_keys=getattr(settings, "FIELD_ENCRYPTION_KEY", ""),
            secret_key=settings.SECRET_KEY,
        )
    except ValueError as exc:  # not a urlsafe-base64 32-byte key
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must be Fernet keys (Fernet.generate_key()), comma-separated."
        ) from exc


@dataclass(frozen=True)
class BoundSecret:
    secret: str
    endpoint: str  # the normalised base URL the secret may be sent to


def seal(secret: str, *, endpoint: str, fernet: MultiFernet | None = None) -> str:
    """The token to store for ``secret`` (empty for an empty secret)."""
    if not secret:
        return ""
    payload = json.dumps({"secret": secret, "endpoint": endpoint}).encode()
    return (fernet or _default_fernet()).encrypt(payload).decode()


def unseal(token: str, *, fernet: MultiFernet | None = None) -> BoundSecret | None:
    """The stored secret and its endpoint; None if empty or unreadable (wrong key, tampered)."""
    if not token:
        return None
    try:
        data = json.loads((fernet or _default_fernet()).decrypt(token.encode()))
    except (InvalidToken, ValueError, TypeError):
        return None
    if not isinstance(data, dict) or not data.get("secret"):
        return None
    return BoundSecret(secret=str(data["secret"]), endpoint=str(data.get("endpoint") or ""))
