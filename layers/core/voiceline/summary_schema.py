"""The agent's `summary_schema`: the structured fields a business wants from each call's summary.

It is sent to the text model as part of a strict Structured Outputs schema, so besides being valid
JSON Schema it must keep strict mode's rules (OpenAI's Structured Outputs guide): an object at the
root, and every object closed (`additionalProperties: false`) with all its properties required (an
optional field is a union with null, e.g. `"type": ["string", "null"]`). Its size is bounded so one
agent cannot make every summary slow and costly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema

MAX_CHARS = 8_000
MAX_PROPERTIES = 100
MAX_DEPTH = 5

EMPTY: dict[str, Any] = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
"""The fields of an agent that defines none."""


def schema_problems(schema: Any) -> list[str]:
    """What keeps `schema` from being an agent's summary_schema; empty when it can be one."""
    if not isinstance(schema, dict):
        return ["must be a JSON Schema object"]
    size = len(json.dumps(schema, separators=(",", ":")))
    if size > MAX_CHARS:
        return [f"is {size} characters as JSON; at most {MAX_CHARS}"]
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "/".join(str(part) for part in error.absolute_path)
        return [f"is not a valid JSON Schema{f' at {where}' if where else ''}: {error.message}"]
    if schema.get("type") != "object":
        return ['must have "type": "object" at the root']
    problems = []
    objects = list(_objects(schema, "", 1))
    deepest = max(depth for _, _, depth in objects)
    if deepest > MAX_DEPTH:
        problems.append(f"nests objects {deepest} deep; at most {MAX_DEPTH}")
    properties = sum(len(node.get("properties") or {}) for _, node, _ in objects)
    if properties > MAX_PROPERTIES:
        problems.append(f"has {properties} properties; at most {MAX_PROPERTIES}")
    for path, node, _ in objects:
        where = path or "the root"
        if node.get("additionalProperties") is not False:
            problems.append(f'{where}: objects need "additionalProperties": false (strict structured outputs)')
        missing = sorted(set(node.get("properties") or {}) - set(node.get("required") or []))
        if missing:
            problems.append(f"{where}: every property must be required (make it nullable instead): "
                            f"{', '.join(missing)}")
    return problems


def _objects(node: Any, path: str, depth: int) -> Iterator[tuple[str, dict[str, Any], int]]:
    """Every object schema within `node`, with its path and how many objects deep it is."""
    if not isinstance(node, dict):
        return
    types = node.get("type")
    is_object = types == "object" or (isinstance(types, list) and "object" in types) or "properties" in node
    if is_object:
        yield path, node, depth
    inner = depth + 1 if is_object else depth
    for name, child in (node.get("properties") or {}).items():
        yield from _objects(child, f"{path}/{name}", inner)
    if isinstance(node.get("items"), dict):
        yield from _objects(node["items"], f"{path}/items", inner)
    for keyword in ("anyOf", "prefixItems"):
        for index, child in enumerate(node.get(keyword) or []):
            yield from _objects(child, f"{path}/{keyword}/{index}", inner)
    for keyword in ("$defs", "definitions"):
        for name, child in (node.get(keyword) or {}).items():
            yield from _objects(child, f"{path}/{keyword}/{name}", inner)
