"""Reads and conditional writes that keep each business to its own items."""

from __future__ import annotations

from typing import TypeVar

from pynamodb.models import Model

ItemModel = TypeVar("ItemModel", bound=Model)


def owned_item(model: type[ItemModel], key: str, tenant_id: str) -> ItemModel | None:
    """The item, read consistently, if it exists and belongs to `tenant_id`; another tenant's is None too."""
    try:
        item = model.get(key, consistent_read=True)
    except model.DoesNotExist:
        return None
    return item if getattr(item, "tenant_id", None) == tenant_id else None


def condition_failed(error: Exception) -> bool:
    """A conditional write refused by its condition, as opposed to any other DynamoDB failure."""
    return getattr(error, "cause_response_code", None) == "ConditionalCheckFailedException"
