"""Declarative checks for client event fields, failing with the GA API's own error codes and wording."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

Check = Callable[[Any, str], None]
"""Validates a value found at a dotted path (e.g. `session.audio.output.speed`); raises ProtocolError."""


class ProtocolError(Exception):
    """A client event the real API would refuse; the session turns it into an `error` event."""

    def __init__(self, code: str, message: str, param: str | None = None,
                 error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.error_type = error_type


_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a decimal", str: "a string",
               list: "an array", dict: "an object", type(None): "null"}


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _wrong_type(path: str, expected: str, value: Any) -> ProtocolError:
    return ProtocolError("invalid_type",
                         f"Invalid type for '{path}': expected {expected}, but got {_type_name(value)} instead.",
                         path)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _quote_all(values: Iterable[Any]) -> str:
    quoted = [f"'{v}'" for v in values]
    if len(quoted) < 3:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def string(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise _wrong_type(path, "a string", value)


def boolean(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise _wrong_type(path, "a boolean", value)


def json_object(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise _wrong_type(path, "an object", value)


def _bounded(kind: str, accepts: tuple[type, ...], low: float | None, high: float | None) -> Check:
    def check(value: Any, path: str) -> None:
        # bool is an int in Python, never in JSON
        if isinstance(value, bool) or not isinstance(value, accepts):
            raise _wrong_type(path, f"a {kind}" if kind == "decimal" else f"an {kind}", value)
        if low is not None and value < low:
            raise ProtocolError(f"{kind}_below_min_value",
                                f"Invalid '{path}': {kind} below minimum value. "
                                f"Expected a value >= {low}, but got {value} instead.", path)
        if high is not None and value > high:
            raise ProtocolError(f"{kind}_above_max_value",
                                f"Invalid '{path}': {kind} above maximum value. "
                                f"Expected a value <= {high}, but got {value} instead.", path)
    return check


def number(low: float | None = None, high: float | None = None) -> Check:
    return _bounded("decimal", (int, float), low, high)


def integer(low: int | None = None, high: int | None = None) -> Check:
    return _bounded("integer", (int,), low, high)


def enum(*allowed: Any) -> Check:
    def check(value: Any, path: str) -> None:
        if value not in allowed:
            raise ProtocolError("invalid_value",
                                f"Invalid value: '{value}'. Supported values are: {_quote_all(allowed)}.", path)
    return check


def nullable(inner: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if value is not None:
            inner(value, path)
    return check


def array(item: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise _wrong_type(path, "an array", value)
        for index, element in enumerate(value):
            item(element, f"{path}[{index}]")
    return check


def obj(fields: Mapping[str, Check], required: Iterable[str] = ()) -> Check:
    """An object with a closed set of fields: anything else is an unknown parameter, as in the GA API."""
    required = tuple(required)

    def check(value: Any, path: str) -> None:
        json_object(value, path)
        for key, field_value in value.items():
            if key not in fields:
                raise ProtocolError("unknown_parameter", f"Unknown parameter: '{_join(path, key)}'.",
                                    _join(path, key))
            fields[key](field_value, _join(path, key))
        for key in required:
            if key not in value:
                raise ProtocolError("missing_required_parameter",
                                    f"Missing required parameter: '{_join(path, key)}'.", _join(path, key))
    return check


def tagged(variants: Mapping[str, Check]) -> Check:
    """An object whose `type` field picks which field set applies (turn detection, tools, items)."""
    choose = enum(*variants)

    def check(value: Any, path: str) -> None:
        json_object(value, path)
        if "type" not in value:
            raise ProtocolError("missing_required_parameter",
                                f"Missing required parameter: '{_join(path, 'type')}'.", _join(path, "type"))
        choose(value["type"], _join(path, "type"))
        variants[value["type"]](value, path)
    return check


def by_type(variants: Mapping[type, Check]) -> Check:
    """A field that takes different JSON types, e.g. tool_choice as "auto" or as an object."""
    expected = " or ".join(_TYPE_NAMES[t] for t in variants)

    def check(value: Any, path: str) -> None:
        inner = variants.get(type(value))
        if inner is None:
            raise _wrong_type(path, expected, value)
        inner(value, path)
    return check
