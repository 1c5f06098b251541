"""Tables for the local stack and tests, created from the PynamoDB models (the one source of keys)."""

from __future__ import annotations

from voiceline.models import ALL_MODELS


def create_tables() -> None:
    for model in ALL_MODELS:
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
