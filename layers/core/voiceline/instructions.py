"""Rendering an agent's instructions and greeting templates for one call."""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class _KeepUnknown(dict):
    """Leave an unknown {variable} visible rather than failing a live call over a template typo."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def call_variables(caller_number: str, business_name: str, timezone: str, now: datetime,
                   extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables every template may use, with date and time local to the business."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    variables = {
        "caller_number": caller_number,
        "business_name": business_name,
        "local_date": local.strftime("%A %d %B %Y"),
        "local_time": local.strftime("%H:%M"),
        "timezone": zone.key,
        "customer_name": "",
    }
    variables.update(extra or {})
    return variables


def render(template: str, variables: Mapping[str, str]) -> str:
    return string.Formatter().vformat(template, (), _KeepUnknown(variables))
