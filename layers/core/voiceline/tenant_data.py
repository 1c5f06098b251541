"""A business's own data, read and written one tenant at a time: the tenant is always the hash key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from voiceline.models import TenantData

SETTINGS = "settings"


def get(tenant_id: str, sk: str) -> dict[str, Any] | None:
    try:
        return TenantData.get(tenant_id, sk).data
    except TenantData.DoesNotExist:
        return None


def get_many(tenant_id: str, sks: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The items that exist among `sks`, by sort key, in one batch read."""
    keys = [(tenant_id, sk) for sk in dict.fromkeys(sks)]
    return {item.sk: item.data for item in TenantData.batch_get(keys)} if keys else {}


def of_kind(tenant_id: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Every item whose sort key starts with `prefix` (e.g. "service#"), keyed by the rest of the key."""
    return {item.sk.removeprefix(prefix): item.data
            for item in TenantData.query(tenant_id, TenantData.sk.startswith(prefix))}


def put(tenant_id: str, sk: str, data: Mapping[str, Any]) -> None:
    TenantData(tenant_id, sk, data=dict(data)).save()


def write_batch(tenant_id: str, puts: Mapping[str, Mapping[str, Any]], deletes: Iterable[str] = ()) -> None:
    """Many puts and deletes in as few requests as DynamoDB allows (not atomic)."""
    with TenantData.batch_write() as batch:
        for sk, data in puts.items():
            batch.save(TenantData(tenant_id, sk, data=dict(data)))
        for sk in deletes:
            batch.delete(TenantData(tenant_id, sk))


@dataclass(frozen=True)
class BusinessSettings:
    """How a business keeps its diary: its time zone, slot length and the notice it needs."""

    timezone: str = "UTC"
    slot_minutes: int = 60
    min_notice_minutes: int = 60

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_time(self, now: datetime) -> datetime:
        """`now` on the business's wall clock, naive like the slot times it is compared with."""
        return now.astimezone(self.zone).replace(tzinfo=None)


def business_settings(tenant_id: str) -> BusinessSettings:
    stored = get(tenant_id, SETTINGS) or {}
    return BusinessSettings(**{name: stored[name] for name in BusinessSettings.__dataclass_fields__
                               if name in stored})


def put_business_settings(tenant_id: str, business: BusinessSettings) -> None:
    put(tenant_id, SETTINGS, asdict(business))
