"""Rendering an agent's instructions and greeting templates for one call."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
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


# The variables every call fills in (call_variables' own names), so a template check never drifts from them.
CALL_VARIABLES = frozenset(call_variables("", "", "UTC", datetime(2000, 1, 1, tzinfo=UTC)))
_VARIABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def is_variable_name(name: str) -> bool:
    """A name a template may use as {name}: lower-case letters, digits and underscores, starting with a letter."""
    return bool(_VARIABLE_NAME.fullmatch(name))


def template_problems(template: str, known: Iterable[str]) -> list[str]:
    """What is wrong with a template, in words for the person who wrote it; empty when it renders cleanly.

    Only plain {name} placeholders of known variables are allowed; {{ and }} stand for literal braces.
    """
    known = frozenset(known)
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as error:
        return [f"the braces do not pair up ({error}); write {{{{ and }}}} for literal braces"]
    problems: list[str] = []
    for name, spec, conversion in fields:
        if not is_variable_name(name):
            problems.append(f"{{{name}}} is not a variable name; write {{{{ and }}}} for literal braces")
        elif name not in known:
            problems.append(f"unknown variable {{{name}}}; known: {', '.join(sorted(known))}")
        elif spec or conversion:
            problems.append(f"{{{name}}} may not carry a conversion or format spec; write just {{{name}}}")
    return list(dict.fromkeys(problems))
