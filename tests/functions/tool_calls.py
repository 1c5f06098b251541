"""Calls the tool Lambdas as the bridge does (real handlers, the request contract), and seeds the businesses."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws

from local.dynamo import create_tables
from local.lambda_runtime import LambdaContext, import_module_from
from voiceline import booking, catalog, customers, knowledge, tenant_data
from voiceline.catalog import Service
from voiceline.models import ALL_MODELS
from voiceline.tool_contract import CallContext, request
from voiceline.tools import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
CALL_SID = "CA0123456789abcdef0123456789abcdef"
CALLER = "+15551234567"
OTHER_CALLER = "+15559876543"
TIMEZONE = "America/New_York"
_environments = itertools.count(1)
_call_ids = itertools.count(1)


def load_handler_module(tool: str) -> ModuleType:
    """A fresh import of functions/<tool>/app.py: one Lambda execution environment."""
    return import_module_from(ROOT / "functions" / tool / "app.py", f"tool_{tool}_env{next(_environments)}")


@cache
def handler(tool: str) -> Callable[[Any, Any], dict[str, Any]]:
    return load_handler_module(tool).lambda_handler


def context_for(tool: str) -> LambdaContext:
    return LambdaContext(f"voiceline-{REGISTRY[tool].runs_on}", 512, REGISTRY[tool].timeout_s)


def call_context(tenant: str, caller: str = CALLER) -> CallContext:
    return CallContext(call_sid=CALL_SID, agent_id=f"agent-{tenant}", tenant_id=tenant, caller_number=caller,
                       called_number="+15550100")


def new_invocation_id() -> str:
    return f"{CALL_SID}:call_{next(_call_ids):06d}"


def event(tool: str, arguments: Mapping[str, Any], tenant: str, caller: str = CALLER,
          invocation_id: str | None = None) -> dict[str, Any]:
    return request(tool, arguments, call_context(tenant, caller), invocation_id or new_invocation_id())


def invoke(tool: str, arguments: Mapping[str, Any], *, tenant: str, caller: str = CALLER,
           invocation_id: str | None = None, via: Callable[[Any, Any], dict[str, Any]] | None = None
           ) -> dict[str, Any]:
    """The tool's reply to one bridge request; `via` is another execution environment's handler."""
    return (via or handler(tool))(event(tool, arguments, tenant, caller, invocation_id), context_for(tool))


def ok(reply: Mapping[str, Any]) -> dict[str, Any]:
    assert reply["ok"] is True, reply
    assert set(reply) == {"ok", "output"}, reply
    return reply["output"]


def failed(reply: Mapping[str, Any], error_type: str) -> str:
    """The error message, once the reply is proven to be an error of `error_type`."""
    assert reply["ok"] is False, reply
    assert set(reply) == {"ok", "error"} and set(reply["error"]) == {"type", "message"}, reply
    assert reply["error"]["type"] == error_type, reply
    return reply["error"]["message"]


@dataclass(frozen=True)
class Business:
    """What one tenant's tools answer from; two tenants share ids on purpose, to prove isolation."""

    tenant: str
    tap_repair_price: float = 95.0
    customer_name: str | None = "Jordan Lee"
    min_notice_minutes: int = 60
    articles: Mapping[str, tuple[str, str]] = field(default_factory=lambda: dict(ARTICLES))


ARTICLES = {
    "payment-methods": ("Payment methods", "You can pay by credit or debit card, Apple Pay, bank transfer or cash. "
                                           "Payment is taken when the job is finished."),
    "opening-hours": ("Opening hours", "Our engineers work Monday to Friday, 8am to 5pm Eastern time. We are closed "
                                       "on weekends and public holidays."),
    "guarantee": ("Our guarantee", "Every repair is guaranteed for 12 months, parts and labour. If the same fault "
                                   "comes back we fix it free of charge."),
    "emergency-call-outs": ("Emergency call-outs", "For burst pipes and floods we come out around the clock, seven "
                                                   "days a week. Emergency visits cost a $150 call-out fee."),
}


def seed_business(business: Business) -> None:
    tenant = business.tenant
    tenant_data.put_business_settings(tenant, tenant_data.BusinessSettings(
        timezone=TIMEZONE, slot_minutes=60, min_notice_minutes=business.min_notice_minutes))
    for weekday in ("mon", "tue", "wed", "thu", "fri"):
        booking.put_opening_hours(tenant, weekday, "08:00", "17:00")
    booking.put_resource(tenant, "van-1", "Van 1")
    for service in (
        Service("tap-repair", "Tap repair", price=business.tap_repair_price, aliases=("leaking tap", "dripping tap")),
        Service("boiler-service", "Boiler service", price=149.0, notes="Includes a written safety report.",
                aliases=("boiler servicing",)),
        Service("drain-unblocking", "Drain unblocking", price_from=110.0, price_to=250.0,
                notes="A camera survey is $90 extra if needed.", aliases=("blocked drain",)),
    ):
        catalog.put_service(tenant, service)
    catalog.put_service_area(tenant, postcodes={"10001": "Chelsea, Manhattan", "SW1A 1AA": "Westminster"},
                             cities=["Jersey City", "Hoboken"])
    if business.customer_name:
        customers.put_customer(tenant, CALLER, customers.Customer(business.customer_name,
                                                                  notes="Prefers morning visits."))
    for article_id, (title, body) in business.articles.items():
        knowledge.put_article(tenant, article_id, title, body)


def freeze_clock(monkeypatch: pytest.MonkeyPatch, now: datetime) -> None:
    """Every tool's notion of "now" (min notice, past and upcoming bookings)."""
    monkeypatch.setattr(booking, "utcnow", lambda: now)


@contextmanager
def seeded_tables(*businesses: Business) -> Iterator[None]:
    """Moto tables holding these businesses, for tests that only read: built once, not once per test.

    The same as conftest's `dynamodb` fixture plus seeding; never nest the two.
    """
    with mock_aws():
        for model in ALL_MODELS:
            model._connection = None  # a fresh botocore client inside the mock
        create_tables()
        for business in businesses:
            seed_business(business)
        yield
    for model in ALL_MODELS:
        model._connection = None
