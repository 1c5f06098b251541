"""What an agent may be set to: template checks, language tags and the known call variables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from voiceline.agent_options import language_tag, transcription_language
from voiceline.instructions import CALL_VARIABLES, call_variables, template_problems


def test_the_known_variables_are_exactly_what_every_call_fills_in() -> None:
    assert set(call_variables("+15551230001", "Acme", "UTC", datetime.now(UTC))) == CALL_VARIABLES
    assert {"caller_number", "customer_name", "business_name", "local_time"} <= CALL_VARIABLES


@pytest.mark.parametrize("template", [
    "Plain text.", "You answer for {business_name} at {local_time}.", "JSON looks like {{\"a\": 1}}.",
    "{caller_number}{customer_name}", "Order {order_id}",
])
def test_templates_with_known_variables_and_escaped_braces_pass(template: str) -> None:
    assert template_problems(template, CALL_VARIABLES | {"order_id"}) == []


@pytest.mark.parametrize(("template", "problem"), [
    ("Hi {nmae}", "unknown variable {nmae}; known: business_name, caller_number"),
    ("Hi {caller_number", "the braces do not pair up"),
    ("Hi caller_number}", "the braces do not pair up"),
    ("Hi {}", "{} is not a variable name"),
    ("Hi {0}", "{0} is not a variable name"),
    ("Hi {Caller_Number}", "{Caller_Number} is not a variable name"),
    ("Hi {caller_number.real}", "{caller_number.real} is not a variable name"),
    ("Hi {caller_number[0]}", "{caller_number[0]} is not a variable name"),
    ("Hi {caller_number!r}", "may not carry a conversion or format spec"),
    ("Hi {caller_number:>20}", "may not carry a conversion or format spec"),
])
def test_template_problems_say_what_is_wrong(template: str, problem: str) -> None:
    [found] = template_problems(template, CALL_VARIABLES)
    assert problem in found


def test_each_unknown_variable_is_reported_once() -> None:
    assert len(template_problems("{x} {x} {y}", CALL_VARIABLES)) == 2


@pytest.mark.parametrize(("given", "canonical"), [("en", "en"), ("EN-us", "en-US"), ("es-419", "es-419"),
                                                  (" de ", "de"), ("pt-BR", "pt-BR")])
def test_language_tags_are_made_canonical(given: str, canonical: str) -> None:
    assert language_tag(given) == canonical


@pytest.mark.parametrize("given", ["", "english", "xx", "en_US", "en-USA", "e", "zz-ZZ"])
def test_anything_else_is_not_a_language(given: str) -> None:
    with pytest.raises(ValueError, match="ISO 639-1"):
        language_tag(given)


def test_transcription_follows_the_agent_language_unless_set() -> None:
    assert transcription_language("en-US", None) == "en"
    assert transcription_language("en-US", "es") == "es"
