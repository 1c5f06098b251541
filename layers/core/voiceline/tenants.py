"""Tenants: the businesses that use Voiceline. A tenant's profile is its TenantData item under sk "profile"."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import PutError

from voiceline.models import TenantData
from voiceline.ownership import condition_failed

PROFILE = "profile"
_TENANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")


def check_tenant_id(tenant_id: str) -> str:
    if not _TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r} must be 2-63 lower-case letters, digits or dashes")
    return tenant_id


def create_tenant(tenant_id: str, name: str) -> bool:
    """Write the tenant's profile unless it exists; True when it was created now."""
    profile = TenantData(check_tenant_id(tenant_id), PROFILE,
                         data={"name": name, "created_at": datetime.now(UTC).isoformat()})
    try:
        profile.save(condition=TenantData.sk.does_not_exist())
    except PutError as error:
        if condition_failed(error):
            return False
        raise
    return True


def get_profile(tenant_id: str) -> dict[str, Any] | None:
    try:
        return TenantData.get(tenant_id, PROFILE).data
    except TenantData.DoesNotExist:
        return None
