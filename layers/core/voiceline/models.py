"""PynamoDB models, one per table; template.yaml must declare the same keys (tests hold them together)."""

from __future__ import annotations

import os

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from voiceline.agent_options import DEFAULT_RETENTION_RATIO
from voiceline.settings import require


class _TableMeta:
    """Shared connection settings: every DynamoDB call has a timeout and bounded retries."""

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    connect_timeout_seconds = 2
    read_timeout_seconds = 3
    max_retry_attempts = 2


class AgentsByTenant(GlobalSecondaryIndex):
    """A business's agents, for the admin API's list (never a scan)."""

    class Meta:
        index_name = "tenant-agent_id"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    agent_id = UnicodeAttribute(range_key=True)


class Agent(Model):
    """An AI phone agent: who it is, how it sounds, and what it may do.

    The admin API validates every field (voiceline.agent_options holds the allowed values) and bumps
    `version` with a conditional write on each change.
    """

    class Meta(_TableMeta):
        table_name = require("AGENTS_TABLE")

    agent_id = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    name = UnicodeAttribute()
    business_name = UnicodeAttribute(default="")
    language = UnicodeAttribute(default="en")
    timezone = UnicodeAttribute(default="UTC")
    instructions = UnicodeAttribute()
    greeting = UnicodeAttribute()
    voice = UnicodeAttribute(default="marin")
    speed = NumberAttribute(default=1.0)
    model = UnicodeAttribute(default="gpt-realtime")
    turn_detection = JSONAttribute(default=lambda: {"type": "server_vad"})
    noise_reduction = UnicodeAttribute(null=True)
    transcription_model = UnicodeAttribute(default="gpt-4o-mini-transcribe")
    transcription_language = UnicodeAttribute(null=True)  # ISO 639-1; None: the primary subtag of `language`
    # Extra {variables} the templates may use, filled from an outbound call's variables.
    template_variables = ListAttribute(of=UnicodeAttribute, default=list)
    tools = ListAttribute(of=UnicodeAttribute, default=list)
    transfer_number = UnicodeAttribute(null=True)
    max_duration_s = NumberAttribute(default=600)
    silence_timeout_s = NumberAttribute(default=30)
    enabled = BooleanAttribute(default=True)
    # Cost controls, all on by default; an agent may turn each off (the cost report's naive agent does).
    # retention_ratio None leaves OpenAI's "auto" truncation, which drops a little every turn once full.
    retention_ratio = NumberAttribute(null=True, default=DEFAULT_RETENTION_RATIO)
    truncate_on_barge_in = BooleanAttribute(default=True)  # forget the agent audio the caller never heard
    stable_instructions = BooleanAttribute(default=True)  # mid-call variable changes as messages, not a new prompt
    own_speech_as_text = BooleanAttribute(default=True)  # the agent's past speech re-read as its words, not audio
    # Outbound calls: let the callee speak first; what to do when Twilio's AMD hears a machine
    # ("off": treat it as a person, "hang_up", or "leave_message" with voicemail_message).
    wait_for_callee = BooleanAttribute(default=False)
    answering_machine = UnicodeAttribute(default="off")
    voicemail_message = UnicodeAttribute(null=True)
    # The structured fields a post-call summary fills in: a strict JSON Schema (voiceline.summary_schema).
    summary_schema = JSONAttribute(null=True)
    version = NumberAttribute(default=1)
    updated_at = UTCDateTimeAttribute(null=True)

    tenant_index = AgentsByTenant()


class NumbersByTenant(GlobalSecondaryIndex):
    """A business's numbers, for the admin API's list and for finding an agent's number (never a scan)."""

    class Meta:
        index_name = "tenant-e164"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    e164 = UnicodeAttribute(range_key=True)


class PhoneNumber(Model):
    """Routing truth: which agent answers a Twilio number."""

    class Meta(_TableMeta):
        table_name = require("PHONE_NUMBERS_TABLE")

    e164 = UnicodeAttribute(hash_key=True)
    agent_id = UnicodeAttribute(null=True)  # None: bought or imported, not yet assigned (calls hear "not in service")
    tenant_id = UnicodeAttribute()
    twilio_sid = UnicodeAttribute(null=True)  # PN…: the account's IncomingPhoneNumber
    friendly_name = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute(null=True)

    tenant_index = NumbersByTenant()


class CallsByAgent(GlobalSecondaryIndex):
    class Meta:
        index_name = "agent-started_at"
        projection = AllProjection()

    agent_id = UnicodeAttribute(hash_key=True)
    started_at = UTCDateTimeAttribute(range_key=True)


class CallsByTenant(GlobalSecondaryIndex):
    class Meta:
        index_name = "tenant-started_at"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    started_at = UTCDateTimeAttribute(range_key=True)


class Call(Model):
    """One phone call: who, when, how it ended and how fast the agent answered."""

    class Meta(_TableMeta):
        table_name = require("CALLS_TABLE")
        stream_view_type = "NEW_AND_OLD_IMAGES"  # analytics counts each call on its change to ended

    call_sid = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    agent_id = UnicodeAttribute()
    direction = UnicodeAttribute(default="inbound")
    from_number = UnicodeAttribute()
    to_number = UnicodeAttribute()
    status = UnicodeAttribute(default="ringing")
    started_at = UTCDateTimeAttribute()
    stream_sid = UnicodeAttribute(null=True)
    stream_started_at = UTCDateTimeAttribute(null=True)
    ended_at = UTCDateTimeAttribute(null=True)
    duration_s = NumberAttribute(null=True)
    end_reason = UnicodeAttribute(null=True)
    greeting_latency_ms = NumberAttribute(null=True)
    setup_reads_ms = NumberAttribute(null=True)  # of the greeting latency: reading the agent and the call
    turn_latency_p50_ms = NumberAttribute(null=True)
    turn_latency_p95_ms = NumberAttribute(null=True)
    turn_latencies_ms = ListAttribute(of=NumberAttribute, null=True)
    interruptions = NumberAttribute(null=True)
    usage = JSONAttribute(null=True)
    events_dropped = NumberAttribute(null=True)
    tool_calls = NumberAttribute(null=True)
    tools = JSONAttribute(null=True)  # per tool: calls, declined, failed, p50_ms, p95_ms
    twilio_status = UnicodeAttribute(null=True)
    twilio_status_rank = NumberAttribute(null=True)
    variables = JSONAttribute(null=True)  # template variables given for an outbound call
    answered_by = UnicodeAttribute(null=True)  # Twilio AMD's verdict on an outbound call
    twilio_duration_s = NumberAttribute(null=True)
    summary = JSONAttribute(null=True)  # voiceline.call_summary's answer: summary, intent, outcome, fields, source
    cost = JSONAttribute(null=True)  # voiceline.pricing.call_cost's breakdown, USD

    agent_index = CallsByAgent()
    tenant_index = CallsByTenant()


class CallEvent(Model):
    """One thing that happened in a call: a transcript line, an interruption, an error."""

    class Meta(_TableMeta):
        table_name = require("CALL_EVENTS_TABLE")

    call_sid = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)
    kind = UnicodeAttribute()
    at_ms = NumberAttribute()
    role = UnicodeAttribute(null=True)
    text = UnicodeAttribute(null=True)
    data = JSONAttribute(null=True)


class TenantData(Model):
    """A business's own data behind the tools, one item per thing; `sk` says what, e.g. service#tap-repair.

    Each domain module owns the shape of `data` for its kinds of item.
    """

    class Meta(_TableMeta):
        table_name = require("TENANT_DATA_TABLE")

    tenant_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    data = JSONAttribute(default=dict)


class BookingsByCode(GlobalSecondaryIndex):
    """Finds a booking from the code the caller reads out, only ever within one tenant."""

    class Meta:
        index_name = "tenant_code"
        projection = AllProjection()

    tenant_code = UnicodeAttribute(hash_key=True)


class BookingsByCaller(GlobalSecondaryIndex):
    """A caller's bookings with one business, in time order."""

    class Meta:
        index_name = "tenant_caller-slot_start"
        projection = AllProjection()

    tenant_caller = UnicodeAttribute(hash_key=True)
    slot_start = UnicodeAttribute(range_key=True)


class Booking(Model):
    """One slot on one calendar resource; the key is the slot, so a conditional put stops double booking."""

    class Meta(_TableMeta):
        table_name = require("BOOKINGS_TABLE")

    tenant_resource = UnicodeAttribute(hash_key=True)  # "<tenant_id>#<resource>"
    slot_start = UnicodeAttribute(range_key=True)  # local time at the business, "YYYY-MM-DDTHH:MM"
    slot_end = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    resource = UnicodeAttribute()
    confirmation_code = UnicodeAttribute()
    tenant_code = UnicodeAttribute()  # "<tenant_id>#<confirmation_code>"
    tenant_caller = UnicodeAttribute()  # "<tenant_id>#<caller e164>"
    caller_number = UnicodeAttribute()
    customer_name = UnicodeAttribute()
    service_id = UnicodeAttribute()
    service_name = UnicodeAttribute()
    notes = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default="booked")
    call_sid = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    cancelled_at = UTCDateTimeAttribute(null=True)

    code_index = BookingsByCode()
    caller_index = BookingsByCaller()


class IdempotencyRecord(Model):
    """Only the key: Powertools' DynamoDBPersistenceLayer owns the other attributes of its records."""

    class Meta(_TableMeta):
        table_name = require("IDEMPOTENCY_TABLE")

    id = UnicodeAttribute(hash_key=True)


class ApiKey(Model):
    """An admin API key, stored only as the SHA-256 of the key; each belongs to one tenant."""

    class Meta(_TableMeta):
        table_name = require("API_KEYS_TABLE")

    key_hash = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    name = UnicodeAttribute()
    prefix = UnicodeAttribute()  # the key's first characters, not secret: tells keys apart in a list
    created_at = UTCDateTimeAttribute()


class Rollup(Model):
    """Call aggregates for one scope and time bucket; voiceline.rollups owns the counters, written with ADD.

    Also holds `applied#<call sid>#<stream sequence number>` markers (bucket "-") that expire, so a replayed
    stream record is counted once.
    """

    class Meta(_TableMeta):
        table_name = require("ROLLUPS_TABLE")

    pk = UnicodeAttribute(hash_key=True)  # "<tenant>#<granularity>" or "<tenant>#agent#<agent>#<granularity>"
    bucket = UnicodeAttribute(range_key=True)  # "2026-11-21" (day) or "2026-11-21T13" (hour), UTC
    expires_at = NumberAttribute(null=True)  # markers only: epoch seconds, the table's TTL attribute


ALL_MODELS: tuple[type[Model], ...] = (Agent, PhoneNumber, Call, CallEvent, TenantData, Booking, IdempotencyRecord,
                                       ApiKey, Rollup)


def connect(*models: type[Model]) -> None:
    """Build each model's DynamoDB client now, for a process that must not pay for it on a caller's first read.

    PynamoDB builds one botocore client per model, lazily: about 60 ms and 30,000 long-lived objects each
    (service model, endpoint rules), which a long-running process would rather load before it freezes its heap.
    """
    for model in models:
        model._get_connection().connection.client  # noqa: B018 - the property builds and keeps the client
