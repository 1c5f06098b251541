"""/api/numbers: a tenant's Twilio numbers. Search, buy or import one, point it at an agent, release it.

The PhoneNumbers table decides which agent answers a number; voiceline.phone_numbers keeps it and
Twilio in step. Twilio's refusals come back with its error code: the client's mistake as a 4xx,
Twilio's own trouble as 502, and no answer in time as 504.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

from admin_auth import Tenant
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pynamodb.exceptions import PynamoDBException

from voiceline import phone_numbers
from voiceline.agents import AgentNotFound
from voiceline.models import PhoneNumber
from voiceline.phone_numbers import NumberRequest
from voiceline.twilio_account import (
    AvailableNumber,
    TwilioFailure,
    Webhooks,
    account_from_settings,
    deployment_webhooks,
)

router = APIRouter(prefix="/api/numbers", tags=["numbers"])

E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
AGENT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
_E164 = re.compile(E164_PATTERN)

E164 = Annotated[str, Field(pattern=E164_PATTERN, description="E.164, e.g. +14155550100")]
AgentId = Annotated[str, Field(pattern=AGENT_ID_PATTERN, description="one of the tenant's agents")]
FriendlyName = Annotated[str, Field(min_length=1, max_length=64, description="a name for people, up to 64 characters")]


class TwilioErrorOut(BaseModel):
    """Twilio refused the request, or did not answer; `twilio_code` is Twilio's error code."""

    detail: str
    twilio_code: int | None = None
    twilio_status: int | None = None
    more_info: str | None = None


class AvailableNumbers(BaseModel):
    numbers: list[AvailableNumber]  # the dataclass Twilio's search fills, served as is


class NumberOut(BaseModel):
    phone_number: str
    agent_id: str | None = Field(description="the agent answering the number; null: nobody yet")
    friendly_name: str | None = None
    twilio_sid: str | None = None
    created_at: datetime | None = None


class NumberList(BaseModel):
    numbers: list[NumberOut]


class BuyNumber(BaseModel):
    """Buy `phone_number` (from a search), or any number in `area_code` (US and Canada)."""

    model_config = ConfigDict(extra="forbid")

    phone_number: E164 | None = None
    area_code: Annotated[str, Field(pattern=r"^[2-9][0-9]{2}$")] | None = None
    agent_id: AgentId | None = None
    friendly_name: FriendlyName | None = None

    @model_validator(mode="after")
    def one_way_to_choose(self) -> BuyNumber:
        if (self.phone_number is None) == (self.area_code is None):
            raise ValueError("give either phone_number or area_code")
        return self


class ImportNumber(BaseModel):
    """A number the Twilio account already owns: its webhooks are pointed at this deployment."""

    model_config = ConfigDict(extra="forbid")

    phone_number: E164
    agent_id: AgentId | None = None
    friendly_name: FriendlyName | None = None


class NumberPatch(BaseModel):
    """Assign (or reassign) the number: `agent_id` null unassigns it. Fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    agent_id: AgentId | None = None
    friendly_name: FriendlyName | None = None


_NOT_FOUND = {404: {"description": "No such number (or agent) for this tenant, or Twilio has no such number."}}
_TWILIO = {
    400: {"model": TwilioErrorOut, "description": "Twilio refused the request as invalid (its code says why)."},
    409: {"model": TwilioErrorOut, "description": "The number is taken or not for sale (Twilio 21422, 21452)."},
    502: {"model": TwilioErrorOut, "description": "Twilio failed or could not be reached."},
    503: {"description": "The database could not be reached; what was done on Twilio was undone."},
    504: {"model": TwilioErrorOut, "description": "Twilio did not answer in time."},
}

T = TypeVar("T")
DYNAMODB_ERRORS = (PynamoDBException, BotoCoreError, ClientError)
STORE_UNAVAILABLE = "the database could not be reached; anything done on Twilio was undone: try again"
logger = logging.getLogger("voiceline.admin.numbers")


def twilio_failure(failure: TwilioFailure) -> JSONResponse:
    body = TwilioErrorOut(detail=f"Twilio: {failure.message}", twilio_code=failure.code,
                          twilio_status=failure.status, more_info=failure.to_dict().get("more_info"))
    return JSONResponse(body.model_dump(), failure.http_status)


def answered(action: Callable[[], T]) -> T | JSONResponse:
    """Run a number operation, turning what can go wrong into the API's answer."""
    try:
        return action()
    except TwilioFailure as failure:
        return twilio_failure(failure)
    except phone_numbers.NumberNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "number not found") from None
    except AgentNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "agent not found") from None
    except phone_numbers.NotOwnedOnTwilio as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the Twilio account does not own {error}") from None
    except phone_numbers.NumberInUse as error:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{error} is already in use") from None
    except phone_numbers.CompensationFailed as error:
        return JSONResponse(TwilioErrorOut(detail=error.message).model_dump(), status.HTTP_502_BAD_GATEWAY)
    except DYNAMODB_ERRORS:
        logger.exception("the phone numbers table failed")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, STORE_UNAVAILABLE) from None


def number_out(number: PhoneNumber) -> NumberOut:
    return NumberOut(phone_number=number.e164, agent_id=number.agent_id, friendly_name=number.friendly_name,
                     twilio_sid=number.twilio_sid, created_at=number.created_at)


def webhooks(request: Request) -> Webhooks:
    return deployment_webhooks({name.lower(): value for name, value in request.headers.items()},
                               default_scheme=request.url.scheme)


def _checked(phone_number: str) -> str:
    """A path that cannot be an E.164 number is no number of the tenant's, before it reaches DynamoDB."""
    if not _E164.fullmatch(phone_number):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "number not found")
    return phone_number


@router.get("/available", response_model=AvailableNumbers, summary="Search numbers for sale",
            responses={404: {"model": TwilioErrorOut, "description": "Twilio sells no numbers in that country."},
                       **_TWILIO})
def search_available(
    tenant: Tenant,
    country: Annotated[str, Query(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2, e.g. US")] = "US",
    area_code: Annotated[str | None, Query(pattern=r"^[2-9][0-9]{2}$", description="US and Canada")] = None,
    contains: Annotated[str | None, Query(pattern=r"^\+?[0-9A-Za-z*%]{2,16}\$?$",
                                          description="digits or letters; * any one digit")] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> AvailableNumbers | JSONResponse:
    def search() -> AvailableNumbers:
        found = account_from_settings().search_available(country, area_code, contains, limit)
        return AvailableNumbers(numbers=found)

    return answered(search)


@router.get("", response_model=NumberList, summary="List the tenant's numbers")
def list_numbers(tenant: Tenant) -> NumberList:
    return NumberList(numbers=[number_out(number) for number in phone_numbers.list_numbers(tenant)])


@router.post("", response_model=NumberOut, status_code=status.HTTP_201_CREATED, summary="Buy a number",
             responses={**_NOT_FOUND, **_TWILIO})
def buy_number(tenant: Tenant, body: BuyNumber, request: Request) -> NumberOut | JSONResponse:
    """Buy the number with its voice webhook and status callback set to this deployment, and record it."""
    wanted = NumberRequest(body.agent_id, body.friendly_name)
    return answered(lambda: number_out(phone_numbers.buy_number(
        account_from_settings(), tenant, webhooks(request), wanted,
        phone_number=body.phone_number, area_code=body.area_code)))


@router.post("/import", response_model=NumberOut, status_code=status.HTTP_201_CREATED,
             summary="Import a number the Twilio account owns", responses={**_NOT_FOUND, **_TWILIO})
def import_number(tenant: Tenant, body: ImportNumber, request: Request) -> NumberOut | JSONResponse:
    """Point the number's voice webhook and status callback at this deployment, and record it."""
    wanted = NumberRequest(body.agent_id, body.friendly_name)
    return answered(lambda: number_out(phone_numbers.import_number(
        account_from_settings(), tenant, webhooks(request), wanted, body.phone_number)))


@router.get("/{phone_number}", response_model=NumberOut, responses=_NOT_FOUND, summary="Read a number")
def get_number(tenant: Tenant, phone_number: str) -> NumberOut | JSONResponse:
    return answered(lambda: number_out(phone_numbers.get_number(tenant, _checked(phone_number))))


@router.patch("/{phone_number}", response_model=NumberOut, responses=_NOT_FOUND,
              summary="Assign the number to an agent, reassign or unassign it")
def assign_number(tenant: Tenant, phone_number: str, body: NumberPatch) -> NumberOut | JSONResponse:
    """The next call to the number reaches the new agent; with `agent_id` null, callers hear it is not in service."""
    e164 = _checked(phone_number)

    def assign() -> NumberOut:
        current = phone_numbers.get_number(tenant, e164)
        agent_id = body.agent_id if "agent_id" in body.model_fields_set else current.agent_id
        rename = "friendly_name" in body.model_fields_set
        return number_out(phone_numbers.assign_number(tenant, e164, agent_id, body.friendly_name, rename=rename))

    return answered(assign)


@router.delete("/{phone_number}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses={**_NOT_FOUND, **_TWILIO}, summary="Release the number back to Twilio")
def release_number(tenant: Tenant, phone_number: str) -> Response:
    """Calls to the number stop reaching any agent at once; then Twilio takes the number back."""
    e164 = _checked(phone_number)
    outcome = answered(lambda: phone_numbers.release_number(account_from_settings(), tenant, e164))
    return outcome if isinstance(outcome, JSONResponse) else Response(status_code=status.HTTP_204_NO_CONTENT)
