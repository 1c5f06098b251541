"""Post-call summary: for each call that became ended (the Calls stream, filtered), ask a text model, store the answer.

Retry or skip, per record (Powertools BatchProcessor with ReportBatchItemFailures):
- the model could not be reached, timed out, or was busy (429, 5xx): the record is reported as failed,
  so Lambda retries it, at most MaximumRetryAttempts times (template.yaml), then drops it;
- the model answered but unusably (a refused request, a reply that is not the schema's JSON): logged
  as an error and skipped, since the same transcript and schema would fail again, at a cost each time;
- a call already summarised (a replayed record), not ended, without transcript, or no key configured:
  skipped, without asking the model.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from voiceline import call_summary, settings
from voiceline.text_model import TextModelBadReply, TextModelUnavailable

SERVICE = "voiceline-call-summary"
logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=settings.optional("POWERTOOLS_METRICS_NAMESPACE", "Voiceline"))
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def summarise(record: DynamoDBRecord) -> None:
    call_sid = str(record.dynamodb.keys["call_sid"])  # type: ignore[union-attr,index]
    logger.append_keys(call_sid=call_sid)
    try:
        result = call_summary.summarise_call(call_sid, call_summary.configured_text_model())
    except TextModelUnavailable as error:
        logger.warning("text model unavailable; the record will be retried", reason=str(error))
        metrics.add_metric(name="SummaryRetries", unit=MetricUnit.Count, value=1)
        raise
    except TextModelBadReply as error:
        logger.error("text model gave no usable summary; skipped, not retried", reason=str(error))
        metrics.add_metric(name="SummariesFailed", unit=MetricUnit.Count, value=1)
        return
    logger.info("call summary", result=result.value)
    if result is call_summary.SummaryResult.STORED:
        metrics.add_metric(name="SummariesStored", unit=MetricUnit.Count, value=1)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=summarise, processor=processor, context=context)
