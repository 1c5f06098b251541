"""Twilio-shaped identifiers: a two-letter type prefix and 32 hex digits."""

from __future__ import annotations

import secrets


def new_sid(prefix: str) -> str:
    """A fresh SID such as CA… for a call or MZ… for a media stream."""
    return prefix + secrets.token_hex(16)
