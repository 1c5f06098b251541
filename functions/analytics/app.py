"""Calls stream → rollups: each call is added to its hourly and daily aggregates once, when it ends.

A record counts only on the change that ends the call (the old image not ended, the new one ended):
the bridge's finalise and the webhook's end of an unstreamed call both are such a change, and Twilio's
status callback arriving afterwards is not. A record that cannot be read is reported as a batch item
failure, so Lambda retries from it while every other record is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from voiceline import rollups
from voiceline.models import Call

ENDED = "ended"
logger = Logger(service="voiceline-analytics")
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


class MalformedCallImage(ValueError):
    """The stream record's NewImage is not a Call this code can count."""


def _status(image: Mapping[str, Any] | None) -> str | None:
    return ((image or {}).get("status") or {}).get("S")


def finished_call(change: Mapping[str, Any]) -> Call | None:
    """The Call this change ended, or None when the change did not end a call."""
    new_image, old_image = change.get("NewImage"), change.get("OldImage")
    if _status(new_image) != ENDED or _status(old_image) == ENDED:
        return None
    try:
        call = Call.from_raw_data(dict(new_image or {}))
    except Exception as error:  # PynamoDB raises a variety of errors on a wrong-typed attribute
        raise MalformedCallImage(f"NewImage does not deserialize as a Call: {error!r}") from error
    missing = [name for name in ("call_sid", "tenant_id", "agent_id", "started_at") if getattr(call, name) is None]
    if missing:
        raise MalformedCallImage(f"NewImage lacks {missing}")
    return call


def record_handler(record: DynamoDBRecord) -> None:
    change = record.raw_event.get("dynamodb") or {}
    call = finished_call(change)
    if call is None:
        return
    sequence_number = change["SequenceNumber"]
    applied = rollups.apply_call(sequence_number, call)
    logger.info("call rolled up" if applied else "stream record already applied", call_sid=call.call_sid,
                sequence_number=sequence_number)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
