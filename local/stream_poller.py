"""The local stand-in for Lambda's DynamoDB event source mappings: table streams → batches → the functions.

For each function in template.yaml with a `Type: DynamoDB` event it polls that table's stream
(moto serves DynamoDB Streams beside DynamoDB), keeps the records that pass the event's
FilterCriteria, and invokes the function with a Lambda-shaped batch through the gateway's Invoke API,
the same path the bridge's tool calls take. As Lambda does: records of a shard go in order; with
`ReportBatchItemFailures` a batch is retried from its first failed record, otherwise (or on a
function error) the whole batch is retried; after `MaximumRetryAttempts` (bounded here) the
failing record is skipped and logged.

    python -m local.stream_poller [--template template.yaml]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local.environment import local_environment
from local.gateway import DEFAULT_TEMPLATE, ROOT, load_template
from local.lambda_runtime import lambda_functions, region

POLL_INTERVAL_S = 0.2
MAX_LOCAL_RETRIES = 3  # Lambda's default is to retry until the record expires; locally a poison record is skipped
RETRY_DELAY_S = 0.2
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2})

logger = logging.getLogger("voiceline.stream_poller")


# --- FilterCriteria: the pattern subset Voiceline uses ------------------------------------------

def _value_matches(rule: Any, value: Any, present: bool) -> bool:
    """One entry of a pattern's value list: a literal, {"exists": bool}, {"prefix": str} or {"anything-but": [...]}."""
    if isinstance(rule, dict):
        if "exists" in rule:
            return present == bool(rule["exists"])
        if "prefix" in rule:
            return present and isinstance(value, str) and value.startswith(rule["prefix"])
        if "anything-but" in rule:
            excluded = rule["anything-but"] if isinstance(rule["anything-but"], list) else [rule["anything-but"]]
            return present and value not in excluded
        raise ValueError(f"unsupported filter rule {rule!r}")
    return present and value == rule


def matches(pattern: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    """EventBridge-style matching, as Lambda filters stream records: every key must match; a list is any-of."""
    for key, expected in pattern.items():
        present = isinstance(data, Mapping) and key in data
        value = data.get(key) if present else None
        if isinstance(expected, Mapping):
            if not (present and isinstance(value, Mapping) and matches(expected, value)):
                return False
        elif isinstance(expected, list):
            if not any(_value_matches(rule, value, present) for rule in expected):
                return False
        else:
            raise ValueError(f"a filter pattern leaf must be a list, got {expected!r} for {key!r}")
    return True


def passes(filters: list[dict[str, Any]], record: Mapping[str, Any]) -> bool:
    """No filters lets everything through; otherwise any one filter matching is enough."""
    return not filters or any(matches(pattern, record) for pattern in filters)


# --- subscriptions from the template ----------------------------------------------------------

@dataclass(frozen=True)
class StreamSubscription:
    """One `Type: DynamoDB` event of one function: which table, how batches are made, where they go."""

    function_name: str
    table_name: str
    batch_size: int = 100
    starting_position: str = "TRIM_HORIZON"
    report_item_failures: bool = False
    max_retries: int = MAX_LOCAL_RETRIES
    filters: list[dict[str, Any]] = field(default_factory=list)


def _table_names(template: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Table logical id → its name here, through the Globals variable that names it (AGENTS_TABLE: !Ref AgentsTable)."""
    variables = ((template.get("Globals") or {}).get("Function") or {}).get("Environment", {}).get("Variables", {})
    return {value["Ref"]: environ[name] for name, value in variables.items()
            if isinstance(value, dict) and "Ref" in value and name in environ}


def subscriptions(template: dict[str, Any], environ: Mapping[str, str]) -> list[StreamSubscription]:
    tables = _table_names(template, environ)
    found = []
    for function in lambda_functions(template, ROOT):
        for name, event in function.events.items():
            if event.get("Type") != "DynamoDB":
                continue
            properties = event.get("Properties") or {}
            stream = properties.get("Stream") or {}
            table_id = (stream.get("Fn::GetAtt") or [None])[0] if isinstance(stream, dict) else None
            if table_id not in tables:
                logger.warning("%s.%s skipped: its Stream is not !GetAtt <table>.StreamArn of a known table",
                               function.name, name)
                continue
            retries = int(properties.get("MaximumRetryAttempts", -1))
            found.append(StreamSubscription(
                function_name=function.deployed_name, table_name=tables[table_id],
                batch_size=int(properties.get("BatchSize", 100)),
                starting_position=properties.get("StartingPosition", "TRIM_HORIZON"),
                report_item_failures="ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or []),
                max_retries=MAX_LOCAL_RETRIES if retries < 0 else min(retries, MAX_LOCAL_RETRIES),
                filters=[json.loads(item["Pattern"]) for item in
                         (properties.get("FilterCriteria") or {}).get("Filters", [])]))
    return found


# --- polling -----------------------------------------------------------------------------------

Invoke = Callable[[str, dict[str, Any]], tuple[bool, dict[str, Any] | None]]


def lambda_invoker(timeout_s: float = 70) -> Invoke:
    """Invoke through Lambda's API (the gateway locally): returns (function failed?, payload)."""
    client = boto3.client("lambda", region_name=region(),
                          config=Config(connect_timeout=2, read_timeout=timeout_s, retries={"max_attempts": 0}))

    def invoke(function_name: str, event: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        reply = client.invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
        body = reply["Payload"].read()
        return "FunctionError" in reply, json.loads(body) if body else None

    return invoke


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda hands it to a function: plus eventSourceARN, the creation time in epoch seconds."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):  # boto3 parses it; Lambda's event carries the number
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": change, "eventSourceARN": stream_arn}


def failed_from(records: list[dict[str, Any]], function_failed: bool, payload: Any,
                report_item_failures: bool) -> int | None:
    """Index of the first record to retry from; None when the batch succeeded.

    Lambda's rules: a function error, or an item identifier that is empty or not in the batch, fails
    the whole batch; a reported failure fails from the lowest such record on.
    """
    if function_failed:
        return 0
    if not report_item_failures or not isinstance(payload, dict):
        return None
    failures = payload.get("batchItemFailures") or []
    if not failures:
        return None
    positions = {record["dynamodb"]["SequenceNumber"]: index for index, record in enumerate(records)}
    indexes = [positions.get(failure.get("itemIdentifier") if isinstance(failure, dict) else None)
               for failure in failures]
    return 0 if None in indexes else min(indexes)  # type: ignore[type-var]


class ShardReader:
    """One shard of one subscription: an iterator, and the records fetched but not yet delivered."""

    def __init__(self, streams: Any, stream_arn: str, shard_id: str, starting_position: str) -> None:
        self._streams = streams
        self._iterator: str | None = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType=starting_position)["ShardIterator"]
        self.pending: list[dict[str, Any]] = []

    def fetch(self, limit: int) -> None:
        if self.pending or self._iterator is None:
            return
        page = self._streams.get_records(ShardIterator=self._iterator, Limit=limit)
        self.pending = page.get("Records", [])
        self._iterator = page.get("NextShardIterator")


class StreamPoller:
    """Delivers one subscription's stream, shard by shard, in order; `poll_once` is one round."""

    def __init__(self, subscription: StreamSubscription, dynamodb: Any, streams: Any, invoke: Invoke) -> None:
        self.subscription = subscription
        self._dynamodb = dynamodb
        self._streams = streams
        self._invoke = invoke
        self._shards: dict[str, ShardReader] = {}
        self._stream_arn: str | None = None
        self._attempts = 0
        self.delivered = 0
        self.skipped = 0

    def _discover(self) -> None:
        if self._stream_arn is None:
            table = self._dynamodb.describe_table(TableName=self.subscription.table_name)["Table"]
            self._stream_arn = table.get("LatestStreamArn")
            if self._stream_arn is None:
                raise RuntimeError(f"{self.subscription.table_name} has no stream")
        shards = self._streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            if shard["ShardId"] not in self._shards:
                # A shard that appears later began after we started: read it whole.
                position = self.subscription.starting_position if not self._shards else "TRIM_HORIZON"
                self._shards[shard["ShardId"]] = ShardReader(self._streams, self._stream_arn, shard["ShardId"],
                                                             position)

    def poll_once(self) -> int:
        """Fetch and deliver what each shard has; returns how many records were taken off the stream."""
        self._discover()
        taken = 0
        for shard in self._shards.values():
            shard.fetch(self.subscription.batch_size)
            while shard.pending:
                taken += self._deliver(shard)
        return taken

    def _deliver(self, shard: ShardReader) -> int:
        """One batch from the shard's pending records; returns how many left the pending list."""
        subscription = self.subscription
        batch = shard.pending[:subscription.batch_size]
        kept = [lambda_record(record, self._stream_arn or "") for record in batch
                if passes(subscription.filters, record)]
        failed_at = None
        if kept:
            try:
                function_failed, payload = self._invoke(subscription.function_name, {"Records": kept})
            except Exception:
                logger.warning("invoking %s failed", subscription.function_name, exc_info=True)
                function_failed, payload = True, None
            failed_at = failed_from(kept, function_failed, payload, subscription.report_item_failures)
        if failed_at is None:
            self._attempts = 0
            shard.pending = shard.pending[len(batch):]
            self.delivered += len(kept)
            return len(batch)
        first_failed = kept[failed_at]["dynamodb"]["SequenceNumber"]
        done = next(i for i, record in enumerate(shard.pending) if record["dynamodb"]["SequenceNumber"] == first_failed)
        self.delivered += failed_at
        self._attempts += 1
        if self._attempts > subscription.max_retries:
            logger.error("%s: record %s still failing after %d retries; skipped", subscription.function_name,
                         first_failed, subscription.max_retries)
            self._attempts = 0
            self.skipped += 1
            done += 1
        else:
            time.sleep(RETRY_DELAY_S * self._attempts)
        shard.pending = shard.pending[done:]
        return done


def clients(environ: Mapping[str, str]) -> tuple[Any, Any]:
    """DynamoDB and DynamoDB Streams clients on the local endpoint (moto serves both on one port)."""
    endpoint = environ["AWS_ENDPOINT_URL_DYNAMODB"]
    return (boto3.client("dynamodb", endpoint_url=endpoint, region_name=region(), config=CLIENT_CONFIG),
            boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name=region(), config=CLIENT_CONFIG))


def run(pollers: list[StreamPoller], stop: threading.Event) -> None:
    """Poll each subscription on its own thread until `stop` is set; an error is logged, the next round tries again."""
    def loop(poller: StreamPoller) -> None:
        while not stop.is_set():
            try:
                taken = poller.poll_once()
            except Exception:
                logger.warning("polling %s failed", poller.subscription.table_name, exc_info=True)
                taken = 0
            if not taken:
                stop.wait(POLL_INTERVAL_S)

    threads = [threading.Thread(target=loop, args=(poller,), name=f"stream-{poller.subscription.function_name}",
                                daemon=True) for poller in pollers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    environ = {**local_environment(), **os.environ}
    dynamodb, streams = clients(environ)
    invoke = lambda_invoker()
    pollers = [StreamPoller(subscription, dynamodb, streams, invoke)
               for subscription in subscriptions(load_template(args.template), environ)]
    for poller in pollers:
        logger.info("streaming %s → %s", poller.subscription.table_name, poller.subscription.function_name)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(pollers, stop)


if __name__ == "__main__":
    main()
