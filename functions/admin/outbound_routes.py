"""POST /api/calls: place an outbound call from an agent's number; the voice webhook and the bridge take over."""

from __future__ import annotations

import logging
from typing import Annotated

from admin_auth import Tenant
from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from numbers_routes import AGENT_ID_PATTERN, DYNAMODB_ERRORS, E164, TwilioErrorOut, twilio_failure, webhooks
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from voiceline.agents import AgentNotFound
from voiceline.outbound_calls import AgentUnavailable, UnknownVariables, place_outbound_call
from voiceline.twilio_account import TwilioFailure, account_from_settings

router = APIRouter(prefix="/api/calls", tags=["calls"])
logger = logging.getLogger("voiceline.admin.outbound")

VariableName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
VariableValue = Annotated[str, StringConstraints(max_length=500)]


class OutboundCallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: Annotated[str, Field(pattern=AGENT_ID_PATTERN)]
    to: E164
    variables: Annotated[dict[VariableName, VariableValue], Field(
        max_length=32, description="values for the {variables} the agent's templates declare "
                                   "(its template_variables), e.g. {\"appointment_time\": \"10am\"}")] = {}


class OutboundCallOut(BaseModel):
    call_sid: str
    agent_id: str
    from_number: str = Field(description="the agent's number the call comes from")
    to_number: str
    direction: str = "outbound"
    twilio_status: str = Field(description="Twilio's status of the call, e.g. queued")
    machine_detection: str | None = Field(description="Twilio answering machine detection: Enable, "
                                                      "DetectMessageEnd, or null when the agent does not use it")


_ERRORS = {
    400: {"model": TwilioErrorOut, "description": "Twilio refused the call as invalid, e.g. 21211: `to` is no "
                                                  "number it can ring."},
    404: {"description": "No such agent for this tenant."},
    409: {"description": "The agent is disabled or has no number to call from; or Twilio refused the caller ID."},
    502: {"model": TwilioErrorOut, "description": "Twilio failed or could not be reached."},
    503: {"description": "The call could not be recorded, so it was hung up."},
    504: {"model": TwilioErrorOut, "description": "Twilio did not answer in time."},
}


@router.post("", response_model=OutboundCallOut, status_code=status.HTTP_201_CREATED, responses=_ERRORS,
             summary="Place an outbound call")
def place_call(tenant: Tenant, body: OutboundCallRequest, request: Request,
               response: Response) -> OutboundCallOut | JSONResponse:
    """Twilio rings `to` from the agent's number; when someone answers, the agent talks to them.

    With answering machine detection on (the agent's `answering_machine`), a machine hears the
    agent's voicemail message or is hung up on. The call's record has direction `outbound`, the
    variables, and later the outcome: read it with GET /api/calls/{call_sid}.
    """
    try:
        placed = place_outbound_call(account_from_settings(), tenant, body.agent_id, body.to, body.variables,
                                     webhooks(request))
    except TwilioFailure as failure:
        return twilio_failure(failure)
    except AgentNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "agent not found") from None
    except AgentUnavailable as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    except DYNAMODB_ERRORS:
        logger.exception("the call could not be recorded; it was hung up")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "the call could not be recorded, so it was hung up: try again") from None
    except UnknownVariables as error:
        problems = [{"type": "value_error", "loc": ["body", "variables", name], "input": body.variables[name],
                     "msg": f"the agent declares no variable {name!r}"} for name in error.unknown]
        return JSONResponse({"detail": problems}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    response.headers["Location"] = f"/api/calls/{placed.call_sid}"
    return OutboundCallOut(call_sid=placed.call_sid, agent_id=placed.agent_id, from_number=placed.from_number,
                           to_number=placed.to_number, twilio_status=placed.twilio_status,
                           machine_detection=placed.machine_detection)
