"""API token secrets: made, hashed and shown in part. No Django here.

A secret is 32 random bytes (256 bits), so a single SHA-256 is enough to store it: nobody can
guess a preimage, and unlike passwords there is nothing to slow down by a key-derivation
function. Only the hash and a short prefix (to tell one's tokens apart) are stored."""

from __future__ import annotations

import hashlib
import secrets

SECRET_BYTES = 32
PREFIX_CHARS = 8


def secret_new() -> str:
    """A fresh secret: 43 URL-safe characters, fit for an `Authorization: Token` header."""
    return secrets.token_urlsafe(SECRET_BYTES)


def secret_hash(secret: str) -> str:
    """What the database keeps of a secret (64 hex characters)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def secret_prefix(secret: str) -> str:
    """The first characters of a secret, shown in lists so its owner can tell which it is."""
    return secret[:PREFIX_CHARS]
