"""API tokens: random, shown once, stored only as SHA-256 hashes, compared in constant time."""
from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token(prefix: str) -> str:
    """A fresh token, e.g. ``ukt_owner_…`` (256 random bits)."""
    return f"ukt_{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)
