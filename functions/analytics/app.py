"""Calls stream → rollups: each call is added to its hourly and daily aggregates once, when it ends.

A record counts only on the change that ends the call (the old image not ended, the new one ended):
the bridge's finalise and the webhook's end of an unstreamed call both are such a change, and Twilio's
status callback arriving afterwards is not. A record that cannot be read is reported as a batch item
failure, so Lambda retries from it while every other record is applied.

The records are read first and the ended calls then applied a group per transaction, in stream order (a batch's
calls mostly share their rollup items, so few transactions do). When a group's transaction fails, its records and
every later one are reported as failures: Lambda retries a stream from the lowest failed record anyway, and the
groups before it, already applied, are not reported.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

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


def read_record(record: DynamoDBRecord) -> rollups.EndedCall | None:
    """Only reads: the ended calls are applied together once the whole batch is read."""
    change = record.raw_event.get("dynamodb") or {}
    call = finished_call(change)
    return None if call is None else rollups.EndedCall(change["SequenceNumber"], call)


def apply_ended_calls(outcomes: list[tuple[str, Any, Any]]) -> None:
    """Apply the ended calls read, a group per transaction; on a failed group, fail the records from its first on."""
    ended = [(position, result) for position, (status, result, _) in enumerate(outcomes)
             if status == "success" and result is not None]
    done = 0
    for group in rollups.transaction_groups([call for _, call in ended]):
        try:
            applied = rollups.apply_group(group)
        except (ClientError, BotoCoreError):
            first_failed = ended[done][0]
            logger.exception("rollup transaction failed; reporting its records and every later one",
                             records=len(outcomes) - first_failed)
            for position in range(first_failed, len(outcomes)):
                if outcomes[position][0] == "success":  # a record that failed to read is reported already
                    processor.failure_handler(DynamoDBRecord(processor.records[position]), sys.exc_info())
            return
        done += len(group)
        logger.info("calls rolled up", records=len(group), counted=len(applied),
                    call_sids=[record.call.call_sid for record in applied])


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with processor(event["Records"], read_record, context):
        apply_ended_calls(processor.process())
    return dict(processor.response())
