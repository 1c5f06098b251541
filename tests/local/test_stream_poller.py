"""The local stream poller: the template's DynamoDB events, Lambda's filter patterns, batches and retry rules.

The stream is moto's real Calls stream; the function at the other end is a small recorder standing in for a
Lambda, so each test can decide what the function answers.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from local.gateway import DEFAULT_TEMPLATE, load_template
from local.stream_poller import StreamPoller, StreamSubscription, failed_from, matches, passes, subscriptions
from voiceline import calls
from voiceline.models import Call


class RecordingFunction:
    """A Lambda stand-in: records each batch's sequence numbers and answers with what `answer` returns."""

    def __init__(self, answer: Any = None) -> None:
        self.batches: list[list[str]] = []
        self.events: list[dict[str, Any]] = []
        self._answer = answer or (lambda sequence_numbers: (False, {"batchItemFailures": []}))

    def __call__(self, function_name: str, event: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        json.dumps(event)  # it must travel as JSON, as Lambda's Invoke payload does
        self.events.append(event)
        sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
        self.batches.append(sequence_numbers)
        return self._answer(sequence_numbers)


def poller(function: RecordingFunction, **options: Any) -> StreamPoller:
    subscription = StreamSubscription(function_name="voiceline-test", table_name=Call.Meta.table_name, **options)
    # moto's in-process router knows the streams host only when the endpoint is given with its path.
    streams = boto3.client("dynamodbstreams", region_name="us-east-1",
                           endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com/")
    return StreamPoller(subscription, boto3.client("dynamodb", region_name="us-east-1"), streams, function)


def write_calls(count: int) -> None:
    for number in range(count):
        calls.create_call(f"CA{number:032d}", "tenant-1", "agent-1", "+15551230000", "+15550100")


def test_the_template_subscribes_the_analytics_function_to_the_calls_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACK_NAME", raising=False)
    found = {s.function_name: s for s in subscriptions(load_template(DEFAULT_TEMPLATE),
                                                      {"CALLS_TABLE": "voiceline-calls"})}
    analytics = found["AnalyticsFunction"]
    assert (analytics.table_name, analytics.report_item_failures, analytics.batch_size) == (
        "voiceline-calls", True, 100)
    assert analytics.filters == [{"dynamodb": {"NewImage": {"status": {"S": ["ended"]}}}}]


@pytest.mark.parametrize("pattern, matching", [
    ({"eventName": ["MODIFY"]}, True),
    ({"eventName": ["INSERT", "REMOVE"]}, False),
    ({"dynamodb": {"NewImage": {"status": {"S": ["ended"]}}}}, True),
    ({"dynamodb": {"OldImage": {"status": {"S": ["ended"]}}}}, False),
    ({"dynamodb": {"NewImage": {"summary": [{"exists": False}]}}}, True),
    ({"dynamodb": {"NewImage": {"status": [{"exists": True}]}}}, True),
    ({"dynamodb": {"NewImage": {"call_sid": {"S": [{"prefix": "CA"}]}}}}, True),
    ({"dynamodb": {"OldImage": {"status": {"S": [{"anything-but": ["ended"]}]}}}}, True),
    ({"dynamodb": {"NewImage": {"status": {"S": [{"anything-but": "ended"}]}}}}, False),
])
def test_filter_patterns_match_as_lambda_matches_them(pattern: dict[str, Any], matching: bool) -> None:
    record = {"eventName": "MODIFY", "dynamodb": {"NewImage": {"call_sid": {"S": "CA1"}, "status": {"S": "ended"}},
                                                  "OldImage": {"call_sid": {"S": "CA1"}, "status": {"S": "ringing"}}}}
    assert matches(pattern, record) is matching


def test_any_one_filter_lets_a_record_through_and_no_filters_let_all_through() -> None:
    record = {"eventName": "INSERT"}
    assert passes([], record)
    assert passes([{"eventName": ["MODIFY"]}, {"eventName": ["INSERT"]}], record)
    assert not passes([{"eventName": ["MODIFY"]}], record)


def test_an_unsupported_filter_rule_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unsupported filter rule"):
        matches({"n": [{"numeric": [">", 1]}]}, {"n": 2})


def test_which_record_a_batch_is_retried_from() -> None:
    batch = [{"dynamodb": {"SequenceNumber": str(n)}} for n in (10, 11, 12)]
    assert failed_from(batch, False, {"batchItemFailures": []}, True) is None
    assert failed_from(batch, False, {"batchItemFailures": [{"itemIdentifier": "12"}, {"itemIdentifier": "11"}]},
                       True) == 1
    assert failed_from(batch, False, {"batchItemFailures": [{"itemIdentifier": "99"}]}, True) == 0
    assert failed_from(batch, False, {"batchItemFailures": [{"itemIdentifier": ""}]}, True) == 0
    assert failed_from(batch, True, None, True) == 0  # a function error fails the whole batch
    assert failed_from(batch, False, {"batchItemFailures": [{"itemIdentifier": "11"}]}, False) is None


def test_records_go_in_order_in_lambda_batches_and_filtered_ones_are_left_out(dynamodb: None) -> None:
    write_calls(5)
    function = RecordingFunction()
    only_first_two = {"dynamodb": {"Keys": {"call_sid": {"S": [f"CA{0:032d}", f"CA{1:032d}"]}}}}

    subject = poller(function, batch_size=2, filters=[only_first_two])
    rounds = [subject.poll_once() for _ in range(20)]

    assert max(rounds) == 2 and rounds[-1] == 0  # GetRecords asks for one batch at a time
    sent = [record["dynamodb"]["Keys"]["call_sid"]["S"] for event in function.events for record in event["Records"]]
    assert set(sent) == {f"CA{0:032d}", f"CA{1:032d}"}
    delivered = [int(n) for batch in function.batches for n in batch]
    assert delivered == sorted(delivered)
    record = function.events[0]["Records"][0]
    assert f":table/{Call.Meta.table_name}/stream/" in record["eventSourceARN"]
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
    assert record["eventName"] == "INSERT"


def test_a_reported_failure_is_retried_from_that_record_on(dynamodb: None) -> None:
    write_calls(3)
    answers = iter([[1], []])

    def fail_second_once(sequence_numbers: list[str]) -> tuple[bool, dict[str, Any]]:
        return False, {"batchItemFailures": [{"itemIdentifier": sequence_numbers[i]} for i in next(answers)]}

    function = RecordingFunction(fail_second_once)
    subject = poller(function, report_item_failures=True)
    subject.poll_once()

    first, retry = function.batches
    assert retry == first[1:]
    assert (subject.delivered, subject.skipped) == (len(first), 0)


def test_a_poison_record_is_skipped_after_bounded_retries_and_the_rest_delivered(dynamodb: None) -> None:
    write_calls(3)
    poison: list[str] = []

    def always_fail_second(sequence_numbers: list[str]) -> tuple[bool, dict[str, Any]]:
        if not poison:
            poison.append(sequence_numbers[1])
        failing = [{"itemIdentifier": n} for n in sequence_numbers if n == poison[0]]
        return False, {"batchItemFailures": failing}

    function = RecordingFunction(always_fail_second)
    subject = poller(function, report_item_failures=True, max_retries=2)
    subject.poll_once()

    first, *retries, last = function.batches
    assert retries == [first[1:]] * 2
    assert last == first[2:]
    assert subject.skipped == 1


def test_a_function_error_retries_the_whole_batch(dynamodb: None) -> None:
    write_calls(2)
    answers = iter([(True, {"errorMessage": "boom"}), (False, None)])
    function = RecordingFunction(lambda sequence_numbers: next(answers))
    poller(function, report_item_failures=True).poll_once()

    assert function.batches[0] == function.batches[1] and len(function.batches) == 2
