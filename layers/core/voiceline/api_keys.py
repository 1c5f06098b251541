"""Admin API keys: random, shown once, stored only as their SHA-256, each belonging to one tenant.

A key carries 256 bits of randomness, so an unsalted SHA-256 is enough: nobody can guess a key from
its hash, and looking the hash up by its exact value reveals nothing about any other key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from voiceline.models import ApiKey

KEY_PREFIX = "vl_"
DISPLAY_LENGTH = 8  # "vl_" and five characters: tells keys apart, reveals ~30 of 256 bits
_MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class IssuedKey:
    key: str
    """The secret itself: show it once, never store it."""
    tenant_id: str
    name: str
    prefix: str
    created_at: datetime


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_key(tenant_id: str, name: str, key: str | None = None) -> IssuedKey:
    """Store a new key for the tenant (a given `key` is for seeding known test keys) and return it."""
    key = key or generate_key()
    issued = IssuedKey(key, tenant_id, name, key[:DISPLAY_LENGTH], datetime.now(UTC))
    ApiKey(key_hash(key), tenant_id=tenant_id, name=name, prefix=issued.prefix,
           created_at=issued.created_at).save(condition=ApiKey.key_hash.does_not_exist())
    return issued


def tenant_for_key(key: str) -> str | None:
    """The tenant a presented key belongs to, or None for an unknown or malformed key."""
    if not key or len(key) > _MAX_KEY_LENGTH or not key.isascii():
        return None
    digest = key_hash(key)
    try:
        stored = ApiKey.get(digest, consistent_read=True)
    except ApiKey.DoesNotExist:
        return None
    return stored.tenant_id if hmac.compare_digest(stored.key_hash, digest) else None
