"""Hourly and daily call aggregates per tenant and per agent: what one finished call adds, and a range read back.

A rollup item is one (scope, granularity, bucket): e.g. `tenant-a#agent#agent-1#hour` / `2026-11-21T13`.
Counters are flat top-level numbers (`calls`, `end:<reason>`, `tool:<name>:calls`, `answer_ms:<bound>`),
because DynamoDB's ADD creates a missing top-level attribute but cannot add into a map that does not
exist yet. Cost is summed in integer micro-dollars so ADD stays exact. Latencies go into fixed
histogram buckets, so a percentile over any range is exact to its bucket.

Stream records are written a group per TransactWriteItems: one marker per record (idempotency) and one ADD per
distinct rollup item, with the group's increments summed, since a batch's calls mostly share their hour and day.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from botocore.exceptions import ClientError

from voiceline.models import Call, Rollup

Granularity = Literal["hour", "day"]
BUCKET_FORMATS: dict[str, str] = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d"}
BUCKET_STEPS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}

# Upper bounds (ms, inclusive) of the latency histogram; one open bucket ("inf") takes the rest.
LATENCY_BOUNDS_MS: tuple[int, ...] = (100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1600, 1800,
                                      2000, 2500, 3000, 4000, 5000, 7500, 10000)
OPEN_BUCKET = "inf"
HISTOGRAMS = ("answer_ms", "greeting_ms")
MICRO = 1_000_000
MARKER_TTL_S = 3 * 24 * 3600  # DynamoDB Streams keep records 24 h; a replay can come no later than that
# Items per TransactWriteItems. DynamoDB allows 100, but moto (the local stack's DynamoDB) deep-copies the table once
# per item, so a 100-item transaction on a table of 1,500 rollup items takes ~4 s there, past the 3 s read timeout.
# At 25, calls sharing their rows still cost ~1.5 transaction items each instead of 5.
TRANSACTION_ITEMS = 25
TRANSFERRED = "transferred"
BOOKING_TOOL = "book_appointment"


def histogram_bucket(latency_ms: float) -> str:
    """The bucket a latency falls in: the smallest upper bound it does not exceed."""
    for bound in LATENCY_BOUNDS_MS:
        if latency_ms <= bound:
            return str(bound)
    return OPEN_BUCKET


def histogram_percentile(counts: Mapping[str, int], fraction: float) -> int | None:
    """Nearest-rank percentile over a histogram, reported as its bucket's upper bound.

    The open bucket reports the last bound (the value is at least that). None when there are no values.
    """
    total = sum(counts.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for bound in (*map(str, LATENCY_BOUNDS_MS), OPEN_BUCKET):
        seen += counts.get(bound, 0)
        if seen >= rank:
            return LATENCY_BOUNDS_MS[-1] if bound == OPEN_BUCKET else int(bound)
    raise AssertionError("unreachable: the rank is within the total")


def bucket_of(moment: datetime, granularity: Granularity) -> str:
    return moment.astimezone(UTC).strftime(BUCKET_FORMATS[granularity])


def partition_keys(tenant_id: str, agent_id: str | None, granularity: Granularity) -> str:
    """The tenant leads every key, so one tenant's query can never reach another's agent."""
    return f"{tenant_id}#agent#{agent_id}#{granularity}" if agent_id else f"{tenant_id}#{granularity}"


def call_increments(call: Call) -> dict[str, int | Decimal]:
    """What one finished call adds to each of its rollups."""
    adds: dict[str, int | Decimal] = {"calls": 1, "seconds": Decimal(str(call.duration_s or 0)),
                                      "inbound": int(call.direction != "outbound"),
                                      "outbound": int(call.direction == "outbound"),
                                      f"end:{call.end_reason or 'unknown'}": 1,
                                      "transfers": int(call.end_reason == TRANSFERRED),
                                      "interruptions": int(call.interruptions or 0),
                                      "cost_micro_usd": round(float((call.cost or {}).get("total", 0)) * MICRO)}
    for name, counts in (call.tools or {}).items():
        calls, declined, failed = (int(counts.get(key, 0)) for key in ("calls", "declined", "failed"))
        adds[f"tool:{name}:calls"] = calls
        adds[f"tool:{name}:errors"] = failed
        adds[f"tool:{name}:declined"] = declined
        if name == BOOKING_TOOL:
            adds["bookings"] = calls - declined - failed
    latencies = {"answer_ms": call.turn_latencies_ms or [],
                 "greeting_ms": [] if call.greeting_latency_ms is None else [call.greeting_latency_ms]}
    for histogram, values in latencies.items():
        for value in values:
            key = f"{histogram}:{histogram_bucket(float(value))}"
            adds[key] = int(adds.get(key, 0)) + 1
    return {name: value for name, value in adds.items() if value}


def _client() -> Any:
    """The botocore client PynamoDB made for the Rollups model: same endpoint, timeouts and retries as every model."""
    return Rollup._get_connection().connection.client


def _number(value: int | Decimal) -> dict[str, str]:
    return {"N": str(value)}


RowKey = tuple[str, str]  # (pk, bucket) of one rollup item


@dataclass(frozen=True)
class EndedCall:
    """A stream record that ended a call; its marker (one per record) makes it count once."""

    sequence_number: str
    call: Call

    @property
    def marker(self) -> str:
        # With the call's key: a sequence number orders one item's changes, and moto's is not unique across items.
        return f"applied#{self.call.call_sid}#{self.sequence_number}"

    def rows(self) -> list[RowKey]:
        """The rollup items this call adds to: tenant and agent, by hour and by day."""
        call = self.call
        return [(partition_keys(call.tenant_id, agent_id, granularity), bucket_of(call.started_at, granularity))
                for agent_id in (None, call.agent_id) for granularity in BUCKET_FORMATS]


def transaction_groups(records: Sequence[EndedCall]) -> list[Sequence[EndedCall]]:
    """The records cut, in order, into runs whose markers plus distinct rollup rows fit one transaction.

    Ended calls of one batch mostly share their hour and day rows, so most of a transaction is markers.
    A record repeated within a run costs nothing: it shares its marker.
    """
    groups: list[Sequence[EndedCall]] = []
    start = 0
    markers: set[str] = set()
    rows: set[RowKey] = set()
    for index, record in enumerate(records):
        if record.marker in markers:
            continue
        if len(markers) + 1 + len(rows | set(record.rows())) > TRANSACTION_ITEMS:
            groups.append(records[start:index])
            start, markers, rows = index, set(), set()
        markers.add(record.marker)
        rows.update(record.rows())
    if start < len(records):
        groups.append(records[start:])
    return groups


def _transaction_items(records: Sequence[EndedCall], expires_at: int) -> list[dict[str, Any]]:
    """A conditional marker Put per record, in the records' order, then one ADD per row of their summed increments."""
    table = Rollup.Meta.table_name
    items: list[dict[str, Any]] = [
        {"Put": {"TableName": table,
                 "Item": {"pk": {"S": record.marker}, "bucket": {"S": "-"}, "expires_at": _number(expires_at)},
                 "ConditionExpression": "attribute_not_exists(pk)"}}
        for record in records]
    summed: dict[RowKey, dict[str, int | Decimal]] = {}
    for record in records:
        adds = call_increments(record.call)
        for row in record.rows():
            totals = summed.setdefault(row, {})
            for name, value in adds.items():
                totals[name] = totals.get(name, 0) + value
    for (pk, bucket), adds in summed.items():
        items.append({"Update": {
            "TableName": table, "Key": {"pk": {"S": pk}, "bucket": {"S": bucket}},
            "UpdateExpression": "ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(adds))),
            "ExpressionAttributeNames": {f"#a{i}": name for i, name in enumerate(adds)},
            "ExpressionAttributeValues": {f":a{i}": _number(value) for i, value in enumerate(adds.values())}}})
    return items


def _replayed_markers(error: ClientError, records: Sequence[EndedCall]) -> set[str]:
    """Markers of the records whose Put found its marker already there, by the cancellation reasons (item order)."""
    reasons = error.response.get("CancellationReasons") or []
    return {record.marker for record, reason in zip(records, reasons, strict=False)
            if reason.get("Code") == "ConditionalCheckFailed"}


def apply_group(group: Sequence[EndedCall], now: float | None = None) -> list[EndedCall]:
    """Add a group (one of `transaction_groups`) to its rollups in one transaction; returns the records counted now.

    Each record's marker is put on condition it is new, so a replayed record cancels the transaction. A cancelled
    transaction changed nothing: it is retried without the records whose marker was there, which were counted
    before. Any other error propagates.
    """
    pending = list({record.marker: record for record in group}.values())  # a record repeated is written once
    expires_at = int((now or time.time()) + MARKER_TTL_S)
    while pending:
        try:
            _client().transact_write_items(TransactItems=_transaction_items(pending, expires_at))
        except ClientError as error:
            replayed = _replayed_markers(error, pending)
            if not replayed:
                raise
            pending = [record for record in pending if record.marker not in replayed]
        else:
            return pending
    return []


@dataclass
class BucketTotals:
    """One bucket's counters (or a range's, summed), as read from the rollups."""

    bucket: str
    counters: dict[str, Decimal]

    def add(self, other: Mapping[str, Decimal]) -> None:
        for name, value in other.items():
            self.counters[name] = self.counters.get(name, Decimal(0)) + value

    def prefixed(self, prefix: str) -> dict[str, int]:
        return {name[len(prefix):]: int(value) for name, value in self.counters.items() if name.startswith(prefix)}

    def number(self, name: str) -> Decimal:
        return self.counters.get(name, Decimal(0))


def buckets_between(start: datetime, end: datetime, granularity: Granularity) -> list[str]:
    """Every bucket whose start lies in [start, end), `start` rounded down to its bucket."""
    step = BUCKET_STEPS[granularity]
    moment = datetime.strptime(bucket_of(start, granularity), BUCKET_FORMATS[granularity]).replace(tzinfo=UTC)
    buckets = []
    while moment < end:
        buckets.append(bucket_of(moment, granularity))
        moment += step
    return buckets


def _counters(item: Mapping[str, Mapping[str, str]]) -> dict[str, Decimal]:
    return {name: Decimal(value["N"]) for name, value in item.items() if "N" in value}


def _query(partition: str, first: str, last: str) -> Iterator[dict[str, Any]]:
    """Items of one partition from `first` to `last`, page by page (a bucket item is small, so pages are few)."""
    request: dict[str, Any] = {
        "TableName": Rollup.Meta.table_name,
        "KeyConditionExpression": "pk = :pk AND #b BETWEEN :first AND :last",
        "ExpressionAttributeNames": {"#b": "bucket"},
        "ExpressionAttributeValues": {":pk": {"S": partition}, ":first": {"S": first}, ":last": {"S": last}}}
    while True:
        page = _client().query(**request)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def read_series(tenant_id: str, agent_id: str | None, granularity: Granularity,
                start: datetime, end: datetime) -> list[BucketTotals]:
    """Every bucket in [start, end), with zeros where no call finished: one Query, never a read of Calls."""
    buckets = buckets_between(start, end, granularity)
    series = {bucket: BucketTotals(bucket, {}) for bucket in buckets}
    if buckets:
        for item in _query(partition_keys(tenant_id, agent_id, granularity), buckets[0], buckets[-1]):
            series[item["bucket"]["S"]].add(_counters(item))
    return list(series.values())


def summed(series: Iterable[BucketTotals]) -> BucketTotals:
    total = BucketTotals("total", {})
    for bucket in series:
        total.add(bucket.counters)
    return total
