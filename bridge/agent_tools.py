"""One call's tools: exactly those the agent lists, each function call checked, then run where it lives.

Business tools go to their Lambda with the call context the bridge knows from the verified stream
token and the Call record; nothing in the model's arguments can change whose data is touched.
Call control (`end_call`, `transfer_call`) is answered here and carried out by the call session,
because it has to wait for the agent's last words to be heard.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from aws_lambda_powertools import Logger

from bridge.realtime_protocol import FunctionCall
from bridge.tool_invoker import ToolInvoker, ToolResult, failed, parse_arguments, succeeded
from voiceline.models import Agent
from voiceline.tool_contract import CallContext
from voiceline.tools import BRIDGE, REGISTRY, Tool

logger = Logger(service="voiceline-bridge", child=True)

LOOKUP_TOOL = "lookup_customer"


@dataclass(frozen=True)
class CallControl:
    """What the agent asked to do with the call, once its last words have played."""

    action: Literal["hang_up", "transfer"]
    reason: str
    to_number: str | None = None


# Failures on the way to a tool (not a tool declining, not the model's bad arguments): after this many in a
# row, the tool is taken away for the rest of the call.
FAILURES = frozenset({"timeout", "throttled", "lambda_error", "bad_reply", "invoke_failed"})
TOOL_DISABLED = ("This tool is out of order for the rest of this call. Do not try it again: apologise, and offer "
                 "to take a message instead.")


class AgentTools:
    def __init__(self, agent: Agent, call: CallContext, invoker: ToolInvoker,
                 failures_before_disabling: int = 3) -> None:
        self._agent = agent
        self._call = call
        self._invoker = invoker
        self.failures_before_disabling = failures_before_disabling
        self._failures_in_a_row: dict[str, int] = {}
        self.disabled: set[str] = set()
        self._newly_disabled: list[str] = []
        unknown = [name for name in agent.tools if name not in REGISTRY]
        if unknown:  # an agent saved before a tool was retired: the call goes on without it
            logger.warning("agent lists unknown tools", agent_id=agent.agent_id, tools=unknown)
        self.tools: dict[str, Tool] = {name: REGISTRY[name] for name in agent.tools if name in REGISTRY}

    def definitions(self) -> list[dict[str, Any]]:
        """The `session.tools` entries: the agent's tools, in its order, less those disabled in this call."""
        return [tool.realtime_definition() for name, tool in self.tools.items() if name not in self.disabled]

    async def run(self, call: FunctionCall) -> tuple[ToolResult, CallControl | None]:
        """The reply for one function call, and the call control it asks for, if any. Never raises."""
        if call.name in self.disabled:  # a call the model made before it was told: no invocation
            return ToolResult("tool_disabled", failed("tool_disabled", TOOL_DISABLED), 0.0), None
        result, control = await self._run(call)
        self._count(call.name, result)
        return result, control

    def _count(self, name: str, result: ToolResult) -> None:
        """Disable a tool after too many failures in a row; any answer from it resets the count."""
        if result.outcome not in FAILURES:
            self._failures_in_a_row.pop(name, None)
            return
        self._failures_in_a_row[name] = self._failures_in_a_row.get(name, 0) + 1
        if self._failures_in_a_row[name] >= self.failures_before_disabling and name not in self.disabled:
            self.disabled.add(name)
            self._newly_disabled.append(name)

    def take_newly_disabled(self) -> list[str]:
        """Tools disabled since the last ask, for the session to take them away from the model."""
        names, self._newly_disabled = self._newly_disabled, []
        return names

    async def _run(self, call: FunctionCall) -> tuple[ToolResult, CallControl | None]:
        tool = self.tools.get(call.name)
        if tool is None:
            return ToolResult("unknown_tool", failed("unknown_tool", f"There is no tool called {call.name!r}. "
                                                     "Use only the tools you were given."), 0.0), None
        arguments, problem = parse_arguments(tool, call.arguments)
        if arguments is None:
            return ToolResult("invalid_arguments", problem or {}, 0.0), None
        if tool.runs_on == BRIDGE:
            return self._call_control(tool, arguments)
        invocation_id = f"{self._call.call_sid}:{call.call_id}"
        return await self._invoker.invoke(tool, arguments, self._call, invocation_id), None

    @property
    def looks_up_callers(self) -> bool:
        return LOOKUP_TOOL in self.tools

    async def look_up_caller(self, budget_s: float) -> tuple[str, ToolResult | None]:
        """The caller's name for the templates, if the answer comes in time (only for `looks_up_callers`).

        Also returns the lookup's result, for the call record; None when it missed its budget.
        """
        tool = self.tools[LOOKUP_TOOL]
        invocation_id = f"{self._call.call_sid}:call-start"
        try:
            result = await asyncio.wait_for(self._invoker.invoke(tool, {}, self._call, invocation_id), budget_s)
        except TimeoutError:
            logger.info("customer lookup missed the greeting", call_sid=self._call.call_sid, budget_s=budget_s)
            return "", None
        output = result.reply.get("output") if result.ok else None
        known = isinstance(output, dict) and output.get("known") is True
        return (str(output.get("name") or "") if known else ""), result

    def _call_control(self, tool: Tool, arguments: dict[str, Any]) -> tuple[ToolResult, CallControl | None]:
        reason = str(arguments.get("reason") or "")
        if tool.name == "end_call":
            reply = succeeded({"ending": True, "next": "Say a short goodbye if you have not; the call ends after it."})
            return ToolResult("ok", reply, 0.0), CallControl("hang_up", reason)
        if not self._agent.transfer_number:
            reply = failed("unavailable", "Nobody is available to take a transfer. Tell the caller, and offer "
                                          "to take a message instead.")
            return ToolResult("tool_error", reply, 0.0), None
        reply = succeeded({"transferring": True, "next": "Tell the caller in one short sentence that you are "
                                                         "putting them through now."})
        return ToolResult("ok", reply, 0.0), CallControl("transfer", reason, self._agent.transfer_number)
