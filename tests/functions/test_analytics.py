"""The rollup Lambda on real stream records from moto's Calls stream: counted once, poison isolated, replays inert."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from local.lambda_runtime import import_module_from
from local.stream_poller import lambda_record
from tests.conftest import ROOT, LambdaContext
from voiceline import calls, rollups
from voiceline.calls import CallOutcome, ToolOutcome
from voiceline.models import Call
from voiceline.stats import percentile

analytics = import_module_from(ROOT / "functions" / "analytics" / "app.py", "analytics_app")

TENANT, AGENT = "tenant-rollups", "agent-rollups"
STARTED = datetime(2026, 11, 21, 13, 40, tzinfo=UTC)


class CallsStream:
    """Reads the Calls table's stream from where the last read stopped, as Lambda's poller would."""

    def __init__(self) -> None:
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        # moto's in-process router knows the streams host only when the endpoint is given with its path.
        self._streams = boto3.client("dynamodbstreams", region_name="us-east-1",
                                     endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com/")
        self.arn = dynamodb.describe_table(TableName=Call.Meta.table_name)["Table"]["LatestStreamArn"]
        [shard] = self._streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        self._iterator = self._streams.get_shard_iterator(StreamArn=self.arn, ShardId=shard["ShardId"],
                                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    def batch(self) -> dict[str, Any]:
        page = self._streams.get_records(ShardIterator=self._iterator, Limit=1000)
        self._iterator = page["NextShardIterator"]
        return {"Records": [lambda_record(record, self.arn) for record in page["Records"]]}


@pytest.fixture
def stream(dynamodb: None) -> CallsStream:
    return CallsStream()


def place_call(call_sid: str, *, started: datetime = STARTED, end_reason: str = "agent_hung_up") -> None:
    """A call as the webhook and the bridge write it: created, streaming, then finalised with tools and latencies."""
    calls.create_call(call_sid, TENANT, AGENT, "+15551230000", "+15550100")
    Call(call_sid).update(actions=[Call.started_at.set(started)])
    calls.mark_stream_started(call_sid, "MZ" + call_sid[2:], started)
    calls.finalise_call(call_sid, CallOutcome(
        end_reason=end_reason, ended_at=started + timedelta(seconds=90), duration_s=90.0,
        greeting_latency_ms=650.0, turn_latencies_ms=[480.0, 720.0, 1_900.0], interruptions=1,
        usage={"input_token_details": {"audio_tokens": 1_000}, "output_token_details": {"audio_tokens": 500}},
        tool_outcomes={"book_appointment": [ToolOutcome("ok", 120.0), ToolOutcome("tool_error", 80.0)],
                       "get_pricing": [ToolOutcome("timeout", 5_000.0)]},
        model="gpt-realtime", events_written=12))


def handle(event: dict[str, Any]) -> dict[str, Any]:
    return analytics.lambda_handler(copy.deepcopy(event), LambdaContext())


def day_totals(agent: str | None = None) -> rollups.BucketTotals:
    return rollups.summed(rollups.read_series(TENANT, agent, "day", STARTED - timedelta(days=1),
                                              STARTED + timedelta(days=1)))


def test_a_finished_call_is_counted_in_its_tenant_and_agent_rollups_by_hour_and_day(stream: CallsStream) -> None:
    place_call("CA" + "1" * 32)

    assert handle(stream.batch()) == {"batchItemFailures": []}

    cost = Call.get("CA" + "1" * 32).cost
    for agent in (None, AGENT):
        for granularity in ("hour", "day"):
            [bucket] = [b for b in rollups.read_series(TENANT, agent, granularity, STARTED, STARTED + timedelta(
                hours=1)) if b.counters]
            assert bucket.bucket == ("2026-11-21T13" if granularity == "hour" else "2026-11-21")
            counters = bucket.counters
            assert (counters["calls"], counters["seconds"], counters["inbound"]) == (1, 90, 1)
            assert (counters["end:agent_hung_up"], counters["interruptions"], counters["bookings"]) == (1, 1, 1)
            assert bucket.prefixed("tool:book_appointment:") == {"calls": 2, "declined": 1}
            assert bucket.prefixed("tool:get_pricing:") == {"calls": 1, "errors": 1}
            assert bucket.prefixed("answer_ms:") == {"500": 1, "800": 1, "2000": 1}
            assert bucket.prefixed("greeting_ms:") == {"700": 1}
            assert counters["cost_micro_usd"] == round(cost["total"] * 1_000_000) > 0


def test_a_replayed_batch_changes_nothing(stream: CallsStream) -> None:
    place_call("CA" + "2" * 32)
    batch = stream.batch()
    handle(batch)
    before = day_totals().counters

    assert handle(batch) == {"batchItemFailures": []}  # already applied is success, not a failure to retry
    assert day_totals().counters == before


def test_twilio_status_after_the_end_is_not_counted_again(stream: CallsStream) -> None:
    place_call("CA" + "3" * 32)
    handle(stream.batch())
    assert calls.record_twilio_status("CA" + "3" * 32, "completed", 91)

    status_batch = stream.batch()
    [record] = status_batch["Records"]
    assert record["dynamodb"]["OldImage"]["status"] == {"S": "ended"}
    handle(status_batch)
    assert day_totals().counters["calls"] == 1


def test_a_call_the_webhook_ends_itself_is_counted(stream: CallsStream) -> None:
    calls.create_call("CA" + "4" * 32, TENANT, AGENT, "+15550100", "+15551230000", "outbound", answered_by="machine")
    calls.end_unstreamed_call("CA" + "4" * 32, "answering_machine")

    handle(stream.batch())
    counters = day_totals(AGENT).counters
    assert (counters["calls"], counters["outbound"], counters["end:answering_machine"]) == (1, 1, 1)
    assert counters["cost_micro_usd"] == round(Call.get("CA" + "4" * 32).cost["total"] * 1_000_000)


def test_a_poison_record_is_reported_while_the_rest_are_applied(stream: CallsStream) -> None:
    place_call("CA" + "5" * 32)
    place_call("CA" + "6" * 32)
    batch = stream.batch()
    ending = [r for r in batch["Records"] if r["dynamodb"]["NewImage"].get("status") == {"S": "ended"}]
    poison = ending[0]
    del poison["dynamodb"]["NewImage"]["tenant_id"]
    poison["dynamodb"]["NewImage"]["started_at"] = {"N": "12"}

    reply = handle(batch)

    assert reply == {"batchItemFailures": [{"itemIdentifier": poison["dynamodb"]["SequenceNumber"]}]}
    assert day_totals().counters["calls"] == 1


@pytest.mark.parametrize("latency, bucket", [(0, "100"), (100, "100"), (100.1, "200"), (999.9, "1000"),
                                             (10_000, "10000"), (10_000.5, "inf")])
def test_a_latency_falls_in_the_bucket_of_the_smallest_bound_it_does_not_exceed(latency: float, bucket: str) -> None:
    assert rollups.histogram_bucket(latency) == bucket


def test_histogram_percentiles_are_the_bucket_of_the_exact_percentile() -> None:
    rng = random.Random(5)
    for _ in range(200):
        values = [rng.uniform(0, 12_000) for _ in range(rng.randint(1, 60))]
        counts: dict[str, int] = {}
        for value in values:
            counts[rollups.histogram_bucket(value)] = counts.get(rollups.histogram_bucket(value), 0) + 1
        for fraction in (0.5, 0.95):
            exact = percentile(values, fraction)
            assert exact is not None
            upper = next((bound for bound in rollups.LATENCY_BOUNDS_MS if exact <= bound),
                         rollups.LATENCY_BOUNDS_MS[-1])
            assert rollups.histogram_percentile(counts, fraction) == upper
    assert rollups.histogram_percentile({}, 0.5) is None


def test_the_same_sequence_number_on_two_calls_counts_both(stream: CallsStream) -> None:
    """Moto's local stream can give two items' records one sequence number; the marker is per call as well."""
    for call_sid in ("CA" + "7" * 32, "CA" + "8" * 32):
        place_call(call_sid)
        assert rollups.apply_call("1100000000000000000001", Call.get(call_sid))
    assert day_totals().counters["calls"] == 2
