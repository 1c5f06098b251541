"""The rollup Lambda on real stream records from moto's Calls stream: counted once, poison isolated, replays inert."""

from __future__ import annotations

import copy
import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from local.lambda_runtime import import_module_from
from local.stream_poller import lambda_record
from tests.conftest import ROOT, LambdaContext
from voiceline import calls, rollups
from voiceline.calls import CallOutcome, ToolOutcome
from voiceline.models import Call, Rollup
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


def typical_outcome(started: datetime, end_reason: str) -> CallOutcome:
    return CallOutcome(
        end_reason=end_reason, ended_at=started + timedelta(seconds=90), duration_s=90.0,
        greeting_latency_ms=650.0, turn_latencies_ms=[480.0, 720.0, 1_900.0], interruptions=1,
        usage={"input_token_details": {"audio_tokens": 1_000}, "output_token_details": {"audio_tokens": 500}},
        tool_outcomes={"book_appointment": [ToolOutcome("ok", 120.0), ToolOutcome("tool_error", 80.0)],
                       "get_pricing": [ToolOutcome("timeout", 5_000.0)]},
        model="gpt-realtime", events_written=12)


def varied_outcome(started: datetime, rng: random.Random) -> CallOutcome:
    """Figures that differ from call to call, so sums over many calls would show a record counted twice or not."""
    duration_s = round(rng.uniform(3, 900), 2)
    return CallOutcome(
        end_reason=rng.choice(["agent_hung_up", "caller_hung_up", "transferred"]),
        ended_at=started + timedelta(seconds=duration_s), duration_s=duration_s,
        greeting_latency_ms=rng.choice([None, rng.uniform(200, 3_000)]),
        turn_latencies_ms=[rng.uniform(50, 12_000) for _ in range(rng.randint(0, 6))],
        interruptions=rng.randint(0, 3),
        usage={"input_token_details": {"audio_tokens": rng.randint(0, 5_000)},
               "output_token_details": {"audio_tokens": rng.randint(0, 5_000)}},
        tool_outcomes={name: [ToolOutcome(rng.choice(["ok", "tool_error", "timeout"]), 100.0)
                              for _ in range(rng.randint(0, 2))]
                       for name in ("book_appointment", "get_pricing") if rng.random() < 0.6},
        model="gpt-realtime", events_written=rng.randint(0, 40))


def place_call(call_sid: str, *, started: datetime = STARTED, end_reason: str = "agent_hung_up",
               agent: str = AGENT, outcome: CallOutcome | None = None) -> None:
    """A call as the webhook and the bridge write it: created, streaming, then finalised with tools and latencies."""
    calls.create_call(call_sid, TENANT, agent, "+15551230000", "+15550100")
    Call(call_sid).update(actions=[Call.started_at.set(started)])
    calls.mark_stream_started(call_sid, "MZ" + call_sid[2:], started)
    calls.finalise_call(call_sid, outcome or typical_outcome(started, end_reason))


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
    Call("CA" + "4" * 32).update(actions=[Call.started_at.set(STARTED)])  # the day day_totals reads, whatever today is
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
        assert rollups.apply_group([rollups.EndedCall("1100000000000000000001", Call.get(call_sid))])
    assert day_totals().counters["calls"] == 2


@pytest.fixture
def transactions(dynamodb: None) -> list[list[dict[str, Any]]]:
    """The items of every TransactWriteItems the rollups client sends, as sent."""
    sent: list[list[dict[str, Any]]] = []
    rollups._client().meta.events.register("before-parameter-build.dynamodb.TransactWriteItems",
                                           lambda params, **_: sent.append(params["TransactItems"]))
    return sent


def rollups_table() -> list[dict[str, Any]]:
    pages = boto3.client("dynamodb", region_name="us-east-1").get_paginator("scan").paginate(
        TableName=Rollup.Meta.table_name)
    return [item for page in pages for item in page["Items"]]


def rollup_rows() -> dict[tuple[str, str], dict[str, Any]]:
    """Every rollup item, markers aside, as stored."""
    return {(item["pk"]["S"], item["bucket"]["S"]): item for item in rollups_table()
            if not item["pk"]["S"].startswith("applied#")}


def rows_applied_one_at_a_time(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The rows the records give from an empty table, each record alone in its batch and transaction, as before.

    Empties the rollups table first.
    """
    client = boto3.client("dynamodb", region_name="us-east-1")
    for item in rollups_table():
        client.delete_item(TableName=Rollup.Meta.table_name, Key={"pk": item["pk"], "bucket": item["bucket"]})
    for record in records:
        assert handle({"Records": [record]}) == {"batchItemFailures": []}
    return rollup_rows()


def ending(batch: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in batch["Records"] if r["dynamodb"]["NewImage"].get("status") == {"S": "ended"}]


def place_varied_calls(count: int, *, agents: int, hours: int, seed: int, start: datetime = STARTED) -> list[str]:
    """`count` calls with figures of their own, round-robin over `agents` agents and `hours` hours from `start`."""
    rng = random.Random(seed)
    sids = [f"CA{seed:04d}{number:028d}" for number in range(count)]
    for number, sid in enumerate(sids):
        started = start + timedelta(hours=(number // agents) % hours, minutes=number % 17)
        place_call(sid, agent=f"agent-{number % agents}", started=started, outcome=varied_outcome(started, rng))
    return sids


@pytest.mark.parametrize("count, agents, hours, most_transactions", [
    # 9 rows shared by all (the tenant's and 2 agents', by 2 hours and by the day); the rest of a transaction: markers
    (150, 2, 2, math.ceil(150 / (rollups.TRANSACTION_ITEMS - 9))),
    # an agent of its own per call: its marker and 4 rows of its own, beside the tenant's hour and day
    (45, 45, 1, math.ceil(45 / ((rollups.TRANSACTION_ITEMS - 2) // 5))),
])
def test_a_batch_of_ended_calls_counts_as_each_alone_would_in_few_transactions(
        stream: CallsStream, transactions: list[list[dict[str, Any]]], count: int, agents: int, hours: int,
        most_transactions: int) -> None:
    sids = place_varied_calls(count, agents=agents, hours=hours, seed=count)
    batch = stream.batch()

    assert handle(batch) == {"batchItemFailures": []}

    assert 1 <= len(transactions) <= most_transactions
    assert all(len(items) <= rollups.TRANSACTION_ITEMS <= 100 for items in transactions)  # 100: DynamoDB's limit
    batched = rollup_rows()
    stored = [Call.get(sid) for sid in sids]
    tenant_day = batched[(f"{TENANT}#day", "2026-11-21")]
    assert int(tenant_day["calls"]["N"]) == count
    assert Decimal(tenant_day["seconds"]["N"]) == sum(Decimal(str(call.duration_s)) for call in stored)
    assert batched == rows_applied_one_at_a_time(ending(batch))


def test_a_partly_applied_batch_counts_only_its_new_records_and_its_replay_nothing(
        stream: CallsStream, transactions: list[list[dict[str, Any]]]) -> None:
    place_varied_calls(40, agents=2, hours=2, seed=7)
    batch = stream.batch()
    ended = ending(batch)
    assert handle({"Records": ended[1::3]}) == {"batchItemFailures": []}  # every third: a replay interleaves

    assert handle(batch) == {"batchItemFailures": []}

    counted = rollup_rows()
    assert int(counted[(f"{TENANT}#day", "2026-11-21")]["calls"]["N"]) == 40
    sent = len(transactions)
    assert handle(batch) == {"batchItemFailures": []}
    assert rollup_rows() == counted
    markers = [item["Put"]["Item"]["pk"]["S"] for items in transactions[sent:] for item in items if "Put" in item]
    assert len(markers) == len(set(markers)) == 40  # each group cancelled on its markers once, none retried
    assert counted == rows_applied_one_at_a_time(ended)


def test_the_same_record_twice_in_one_batch_counts_once(stream: CallsStream) -> None:
    for sid in ("CA" + "a" * 32, "CA" + "b" * 32, "CA" + "c" * 32):
        place_call(sid)
    first, second, third = ending(stream.batch())

    assert handle({"Records": [first, second, copy.deepcopy(second), third, copy.deepcopy(first)]}) == {
        "batchItemFailures": []}

    assert day_totals().counters["calls"] == 3


def test_a_poison_record_in_a_batch_is_its_only_failure(stream: CallsStream,
                                                        transactions: list[list[dict[str, Any]]]) -> None:
    place_varied_calls(9, agents=2, hours=2, seed=3)
    batch = stream.batch()
    poison = ending(batch)[4]
    poison["dynamodb"]["NewImage"]["started_at"] = {"S": "not a time"}

    assert handle(batch) == {"batchItemFailures": [{"itemIdentifier": poison["dynamodb"]["SequenceNumber"]}]}

    assert day_totals().counters["calls"] == 8
    assert len(transactions) == 1


def test_a_failed_transaction_reports_its_group_onwards_and_its_retry_counts_them_once(
        stream: CallsStream, transactions: list[list[dict[str, Any]]]) -> None:
    """DynamoDB rejects the second group's transaction: a row it is the first to add to holds a string for `calls`."""
    place_varied_calls(rollups.TRANSACTION_ITEMS, agents=2, hours=1, seed=11)  # more than the first group holds
    place_varied_calls(rollups.TRANSACTION_ITEMS, agents=2, hours=1, seed=12, start=STARTED + timedelta(hours=1))
    batch = stream.batch()
    records = batch["Records"]
    calls_placed = 2 * rollups.TRANSACTION_ITEMS
    assert len(ending(batch)) == calls_placed
    client = boto3.client("dynamodb", region_name="us-east-1")
    corrupt_row = {"pk": {"S": f"{TENANT}#hour"}, "bucket": {"S": "2026-11-21T14"}}
    client.put_item(TableName=Rollup.Meta.table_name, Item={**corrupt_row, "calls": {"S": "corrupt"}})

    reply = handle(batch)

    assert len(transactions) == 2  # the first committed, the second rejected, the later ones never sent
    applied = sum("Put" in item for item in transactions[0])
    first_failed = records.index(ending(batch)[applied])
    assert reply == {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
                                           for r in records[first_failed:]]}
    assert calls_placed - applied > sum("Put" in item for item in transactions[1])  # later groups' records too
    assert day_totals().counters["calls"] == applied

    client.delete_item(TableName=Rollup.Meta.table_name, Key=corrupt_row)
    assert handle({"Records": records[first_failed:]}) == {"batchItemFailures": []}  # Lambda's retry

    counted = rollup_rows()
    assert int(counted[(f"{TENANT}#day", "2026-11-21")]["calls"]["N"]) == calls_placed
    assert counted == rows_applied_one_at_a_time(ending(batch))
