"""Every sample event under events/<function>/ runs through that function's handler and gets an answer.

An HTTP answer must not be a server error; a tool's reply (the bridge → Lambda contract) must be ok.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest

from local.gateway import DEFAULT_TEMPLATE, LambdaFunction, lambda_functions, load_template
from local.seed import seed

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "events").glob("*/*.json"))


def upcoming_booking_to_cancel() -> None:
    """events/cancel_appointment cancels code K7QM2P: the seed's own booking is past and its code is random."""
    from local.seed import DEMO_CUSTOMER_NUMBER, DEMO_TENANT
    from voiceline.models import Booking

    Booking(f"{DEMO_TENANT}#van-1", "2030-03-13T14:00", slot_end="2030-03-13T15:00", tenant_id=DEMO_TENANT,
            resource="van-1", confirmation_code="K7QM2P", tenant_code=f"{DEMO_TENANT}#K7QM2P",
            tenant_caller=f"{DEMO_TENANT}#{DEMO_CUSTOMER_NUMBER}", caller_number=DEMO_CUSTOMER_NUMBER,
            customer_name="Jordan Lee", service_id="tap-repair", service_name="Tap repair",
            created_at=datetime(2030, 3, 1, tzinfo=UTC)).save()


ADMIN_SAMPLE_KEY = "vl_sample-events-admin-key-0123456789abcdefghijk"  # events/admin/*.json send it


def admin_key_for_the_demo_tenant() -> None:
    from local.seed import DEMO_TENANT
    from voiceline import api_keys

    api_keys.issue_key(DEMO_TENANT, "events", key=ADMIN_SAMPLE_KEY)


# What a folder's samples need beyond the seed.
GIVEN: dict[str, Callable[[], None]] = {"cancel_appointment": upcoming_booking_to_cancel,
                                        "admin": admin_key_for_the_demo_tenant}
# Samples that must get exactly this status, not merely no server error (a 401 would pass that).
EXPECTED_STATUS: dict[str, int] = {"admin/list_agents.json": 200, "admin/list_calls_of_agent.json": 200,
                                   "admin/create_agent.json": 201}


@cache
def function_for(folder: str) -> LambdaFunction:
    """The template's function whose CodeUri ends in `folder`, else functions/<folder> with app.lambda_handler."""
    if DEFAULT_TEMPLATE.exists():
        for function in lambda_functions(load_template(DEFAULT_TEMPLATE), DEFAULT_TEMPLATE.parent):
            if function.code_dir.name == folder:
                return function
    return LambdaFunction(folder, ROOT / "functions" / folder, "app.lambda_handler")


def test_every_event_folder_names_a_function() -> None:
    assert SAMPLES, "events/ holds no samples"
    for folder in {sample.parent.name for sample in SAMPLES}:
        function = function_for(folder)
        assert function.code_dir.is_dir(), f"events/{folder} has no function at {function.code_dir}"


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda sample: f"{sample.parent.name}/{sample.name}")
def test_sample_event_gets_an_answer_without_a_server_error(sample: Path, dynamodb: None) -> None:
    seed()
    GIVEN.get(sample.parent.name, lambda: None)()

    result = function_for(sample.parent.name).invoke(json.loads(sample.read_text()))

    if isinstance(result, dict) and "statusCode" in result:
        assert result["statusCode"] < 500, result
        expected = EXPECTED_STATUS.get(f"{sample.parent.name}/{sample.name}")
        assert expected is None or result["statusCode"] == expected, result
    if isinstance(result, dict) and "ok" in result:
        assert result["ok"] is True, result
