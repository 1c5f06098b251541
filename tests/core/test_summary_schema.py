"""voiceline.summary_schema: which agent-defined field schemas strict Structured Outputs can take."""

from __future__ import annotations

from typing import Any

import pytest

from voiceline.summary_schema import EMPTY, MAX_CHARS, MAX_DEPTH, MAX_PROPERTIES, schema_problems


def closed(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": list(properties), "properties": properties}


GOOD = closed(service={"type": ["string", "null"]}, urgency={"type": "string", "enum": ["low", "high"]},
              address=closed(street={"type": ["string", "null"]}, postcode={"anyOf": [{"type": "string"},
                                                                                      {"type": "null"}]}),
              items={"type": "array", "items": closed(name={"type": "string"})})


@pytest.mark.parametrize("schema", [GOOD, EMPTY], ids=["nested", "empty"])
def test_closed_objects_with_every_property_required_are_accepted(schema: dict[str, Any]) -> None:
    assert schema_problems(schema) == []


def deep(levels: int) -> dict[str, Any]:
    schema = closed(leaf={"type": "string"})
    for _ in range(levels - 1):
        schema = closed(inner=schema)
    return schema


# (schema, a word of the one problem reported)
BAD = [
    ([], "JSON Schema object"),
    ({"type": "string"}, '"type": "object" at the root'),
    ({"type": "object", "properties": {"a": {"type": "strin"}}}, "not a valid JSON Schema at properties/a/type"),
    ({**closed(a={"type": "string"}), "additionalProperties": True}, "the root: objects need"),
    ({**closed(a={"type": "string"}, b={"type": "string"}), "required": ["a"]}, "must be required (make it nullable"),
    (closed(address={"type": "object", "properties": {"street": {"type": "string"}}, "required": ["street"]}),
     "/address: objects need"),
    (closed(items={"type": "array", "items": {"type": "object", "properties": {}}}), "/items/items: objects need"),
    (deep(MAX_DEPTH + 1), f"nests objects {MAX_DEPTH + 1} deep"),
    (closed(**{f"f{number}": {"type": "string"} for number in range(MAX_PROPERTIES + 1)}),
     f"{MAX_PROPERTIES + 1} properties"),
    (closed(notes={"type": "string", "description": "x" * MAX_CHARS}), f"at most {MAX_CHARS}"),
]


@pytest.mark.parametrize(("schema", "problem"), BAD, ids=[problem for _, problem in BAD])
def test_a_schema_strict_mode_cannot_take_is_refused_saying_why(schema: Any, problem: str) -> None:
    [reported] = schema_problems(schema)
    assert problem in reported


def test_the_deepest_nesting_allowed_is_accepted() -> None:
    assert schema_problems(deep(MAX_DEPTH)) == []
