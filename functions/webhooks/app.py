"""Twilio's webhooks: answer a call by connecting it to the bridge, and record Twilio's call status."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

# Only TwiML: twilio.rest would add ~120 ms to the cold start the caller hears as ringing.
from twilio.twiml.voice_response import VoiceResponse

from voiceline import agents, calls, instructions, settings, stream_token, twilio_signature
from voiceline.models import Agent, Call

SERVICE = "voiceline-webhooks"
logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=settings.optional("POWERTOOLS_METRICS_NAMESPACE", "Voiceline"))
app = APIGatewayHttpResolver()

TWIML = "text/xml"
NOT_IN_SERVICE = "Sorry, the number you have called is not in service. Goodbye."
TROUBLE = "Sorry, we're having trouble answering your call right now. Please call back in a few minutes. Goodbye."
DYNAMODB_ERRORS = (PynamoDBException, BotoCoreError, ClientError)
# Twilio's AnsweredBy for something that is not a person (Enable gives machine_start; DetectMessageEnd
# waits for the greeting's end and gives machine_end_beep, _silence or _other). human and unknown are people.
MACHINES = frozenset({"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"})


class RejectedWebhook(Exception):
    """A request we refuse before doing any work: forged (403) or missing fields Twilio always sends (400)."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


@app.exception_handler(RejectedWebhook)
def reject(error: RejectedWebhook) -> Response:
    logger.warning("webhook rejected", status_code=error.status_code, reason=error.reason)
    metrics.add_metric(name="RejectedWebhooks", unit=MetricUnit.Count, value=1)
    return Response(error.status_code, content_types.TEXT_PLAIN, error.reason)


def twilio_form(*required: str) -> dict[str, str]:
    """The form Twilio posted, once its signature proves Twilio sent it to the URL it called."""
    event = app.current_event
    form = dict(parse_qsl(event.decoded_body or "", keep_blank_values=True))
    headers = {name.lower(): value for name, value in event.headers.items()}
    url = twilio_signature.public_url(headers, event.raw_path, default_scheme="https", query=event.raw_query_string,
                                      base_url=settings.optional("PUBLIC_WEBHOOK_BASE_URL", "") or None)
    if not twilio_signature.is_valid(settings.twilio_auth_token(), url, form, headers.get("x-twilio-signature")):
        raise RejectedWebhook(403, "Invalid Twilio signature")
    missing = [name for name in required if not form.get(name)]
    if missing:
        raise RejectedWebhook(400, f"Missing form fields: {', '.join(missing)}")
    return form


@app.post("/twilio/voice")
def voice() -> Response:
    """Route the call to its agent, record it, and connect the caller's audio to the bridge."""
    form = twilio_form("CallSid", "From", "To")
    call_sid = form["CallSid"]
    logger.append_keys(call_sid=call_sid)
    direction = "outbound" if form.get("Direction", "").startswith("outbound") else "inbound"
    # On an outbound call Twilio's From is our number and To is the person we are calling.
    our_number = form["From"] if direction == "outbound" else form["To"]
    try:
        route = agents.agent_for_number(our_number)
        if route is None:
            logger.info("no enabled agent answers this number", number=our_number)
            metrics.add_metric(name="UnroutedCalls", unit=MetricUnit.Count, value=1)
            return twiml(goodbye(NOT_IN_SERVICE))
        number, agent = route
        # AnsweredBy comes only on an outbound call placed with answering machine detection.
        answered_by = (form.get("AnsweredBy") or None) if direction == "outbound" else None
        call = calls.create_call(call_sid, number.tenant_id, agent.agent_id, form["From"], form["To"], direction,
                                 answered_by=answered_by)
        if answered_by in MACHINES and agent.answering_machine in ("hang_up", "leave_message"):
            return twiml(machine_answered(call, agent, answered_by))
    except DYNAMODB_ERRORS:
        # Any 5xx would make Twilio play its own "application error"; the caller deserves better.
        logger.exception("could not route the call")
        metrics.add_metric(name="CallRoutingFailures", unit=MetricUnit.Count, value=1)
        return twiml(goodbye(TROUBLE))
    parameters = stream_token.stream_parameters(settings.stream_token_key(), call_sid, agent.agent_id,
                                                 number.tenant_id, agents.call_facts(agent, call))
    logger.info("connecting call to the bridge", agent_id=agent.agent_id, tenant_id=number.tenant_id,
                direction=direction)
    metrics.add_metric(name="CallsAnswered", unit=MetricUnit.Count, value=1)
    return twiml(media_stream(parameters))


@app.post("/twilio/status")
def status() -> Response:
    """Record Twilio's status; a repeated, late or unknown-call callback changes nothing and still gets 204."""
    form = twilio_form("CallSid", "CallStatus")
    logger.append_keys(call_sid=form["CallSid"])
    duration = form.get("CallDuration")
    if duration and not duration.isdigit():
        raise RejectedWebhook(400, "CallDuration must be whole seconds")
    recorded = calls.record_twilio_status(form["CallSid"], form["CallStatus"], int(duration) if duration else None)
    if not recorded:
        logger.info("status callback left the call unchanged: stale or unknown", twilio_status=form["CallStatus"])
    metrics.add_metric(name="StatusCallbacks", unit=MetricUnit.Count, value=1)
    return Response(204)


def machine_answered(call: Call, agent: Agent, answered_by: str) -> VoiceResponse:
    """An answering machine picked up: leave the agent's voicemail message after the beep, or just hang up.

    A fax gets no message; neither does a machine when the agent has none to leave.
    """
    response = VoiceResponse()
    leave_message = (agent.answering_machine == "leave_message" and bool(agent.voicemail_message)
                     and answered_by != "fax")
    if leave_message:
        variables = instructions.call_variables(call.to_number, agent.business_name, agent.timezone, calls.utcnow(),
                                                extra=call.variables)
        response.say(instructions.render(agent.voicemail_message, variables))
    response.hangup()
    calls.end_unstreamed_call(call.call_sid, "voicemail_left" if leave_message else "answering_machine")
    logger.info("an answering machine answered the outbound call", answered_by=answered_by,
                left_message=leave_message)
    metrics.add_metric(name="VoicemailsLeft" if leave_message else "MachinesHungUpOn", unit=MetricUnit.Count, value=1)
    return response


def media_stream(parameters: dict[str, str]) -> VoiceResponse:
    """TwiML connecting the call to the bridge. Stream URLs take no query string, so all rides as Parameters:
    the token, and the call's facts, which spare the bridge reading the agent and the call before it greets."""
    response = VoiceResponse()
    stream = response.connect().stream(url=f"{settings.bridge_public_url()}/media-stream")
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    return response


def goodbye(message: str) -> VoiceResponse:
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return response


def twiml(response: VoiceResponse) -> Response:
    return Response(200, TWIML, str(response))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
