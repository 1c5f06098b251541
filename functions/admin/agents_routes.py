"""/api/agents: a tenant's agents. Every change is versioned; another tenant's agent is simply not found."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from admin_auth import Tenant
from agent_schema import (
    AgentList,
    AgentOut,
    AgentPatch,
    AgentReplace,
    AgentSettings,
    PreviewOut,
    PreviewRequest,
    VersionConflictOut,
)
from fastapi import APIRouter, Body, HTTPException, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from voiceline import agents
from voiceline.instructions import call_variables, render
from voiceline.models import Agent

router = APIRouter(prefix="/api/agents", tags=["agents"])

_AGENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_NOT_FOUND = {404: {"description": "No such agent for this tenant."}}
_CONFLICT = {409: {"model": VersionConflictOut, "description": "The agent changed since that version: read it "
                                                                 "again, then apply the change to the new version."}}


def agent_out(agent: Agent) -> AgentOut:
    return AgentOut(agent_id=agent.agent_id, version=int(agent.version), updated_at=agent.updated_at,
                    **agents.settings_of(agent))


def _not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "agent not found")


def _checked_id(agent_id: str) -> str:
    """An id we could never have issued is not found, before it reaches DynamoDB."""
    if not _AGENT_ID.fullmatch(agent_id):
        raise _not_found()
    return agent_id


def _agent(tenant: str, agent_id: str) -> Agent:
    try:
        return agents.tenant_agent(tenant, _checked_id(agent_id))
    except agents.AgentNotFound:
        raise _not_found() from None


def _conflict(error: agents.VersionConflict) -> JSONResponse:
    return JSONResponse(
        VersionConflictOut(detail=f"the agent has changed: it is at version {error.current_version}",
                           current_version=error.current_version).model_dump(), status.HTTP_409_CONFLICT)


def _update(tenant: str, agent_id: str, version: int, settings: dict[str, Any]) -> AgentOut | JSONResponse:
    try:
        return agent_out(agents.update_agent(tenant, _checked_id(agent_id), version, settings))
    except agents.AgentNotFound:
        raise _not_found() from None
    except agents.VersionConflict as error:
        return _conflict(error)


@router.get("", response_model=AgentList, summary="List the tenant's agents")
def list_agents(tenant: Tenant) -> AgentList:
    return AgentList(agents=[agent_out(agent) for agent in agents.list_agents(tenant)])


@router.post("", response_model=AgentOut, status_code=status.HTTP_201_CREATED, summary="Create an agent")
def create_agent(tenant: Tenant, settings: AgentSettings, response: Response) -> AgentOut:
    agent = agents.create_agent(tenant, settings.stored())
    response.headers["Location"] = f"/api/agents/{agent.agent_id}"
    return agent_out(agent)


@router.get("/{agent_id}", response_model=AgentOut, responses=_NOT_FOUND, summary="Read an agent")
def get_agent(tenant: Tenant, agent_id: str) -> AgentOut:
    return agent_out(_agent(tenant, agent_id))


@router.put("/{agent_id}", response_model=AgentOut, responses={**_NOT_FOUND, **_CONFLICT},
            summary="Replace an agent's settings")
def replace_agent(tenant: Tenant, agent_id: str, change: AgentReplace) -> Any:
    return _update(tenant, agent_id, change.version, change.model_dump(exclude={"version"}))


@router.patch("/{agent_id}", response_model=AgentOut, responses={**_NOT_FOUND, **_CONFLICT},
              summary="Change some of an agent's settings")
def patch_agent(tenant: Tenant, agent_id: str, change: Annotated[AgentPatch, Body()]) -> Any:  # type: ignore[valid-type]
    agent = _agent(tenant, agent_id)
    if agent.version != change.version:
        return _conflict(agents.VersionConflict(int(agent.version)))
    changed = change.model_dump(exclude_unset=True, exclude={"version"})
    try:
        # The result is checked whole: a change can make another setting invalid (leave_message needs a message).
        settings = AgentSettings.model_validate({**agents.settings_of(agent), **changed})
    except ValidationError as error:
        raise RequestValidationError([{**detail, "loc": ("body", *detail["loc"])}
                                      for detail in error.errors(include_url=False)]) from None
    return _update(tenant, agent_id, change.version, settings.stored())


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses={**_NOT_FOUND, 409: {"description": "Numbers still route to the agent"}},
               summary="Delete an agent that no number routes to")
def delete_agent(tenant: Tenant, agent_id: str) -> Response:
    try:
        agents.delete_agent(tenant, _checked_id(agent_id))
    except agents.AgentNotFound:
        raise _not_found() from None
    except agents.AgentInUse as in_use:
        raise HTTPException(status.HTTP_409_CONFLICT, f"the agent still answers {in_use}; reassign or release "
                                                      "those numbers first") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{agent_id}/preview", response_model=PreviewOut, responses=_NOT_FOUND,
             summary="Render the instructions and greeting for sample call variables")
def preview_agent(tenant: Tenant, agent_id: str, sample: Annotated[PreviewRequest | None, Body()] = None) -> PreviewOut:
    agent = _agent(tenant, agent_id)
    sample = sample or PreviewRequest()
    at = sample.at or datetime.now(UTC)
    # As the bridge does it: the call's own variables, then an outbound call's (and the caller's name).
    variables = call_variables(sample.caller_number, agent.business_name, agent.timezone, at, extra=sample.variables)
    return PreviewOut(instructions=render(agent.instructions, variables), greeting=render(agent.greeting, variables),
                      variables=variables,
                      unfilled=[name for name in agent.template_variables or () if name not in variables])
