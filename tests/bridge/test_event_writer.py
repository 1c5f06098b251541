"""EventWriter: many calls' events share DynamoDB requests, and one call's bad batch fails only that call.

DynamoDB is moto's server behind the fault proxy (tests/bridge/faulty_dynamodb.py), which also lists
every request that reached it.
"""

from __future__ import annotations

import asyncio

from bridge.event_writer import EventWriter
from tests.bridge.bridge_harness import until
from tests.bridge.faulty_dynamodb import FaultyDynamoDB
from voiceline.calls import NewEvent, list_events
from voiceline.models import CallEvent

EVENTS_TABLE = CallEvent.Meta.table_name


def _line(text: str) -> list[NewEvent]:
    return [NewEvent("transcript", at_ms=100, role="caller", text=text)]


async def _texts(call_sid: str) -> list[str | None]:
    return [event.text for event in await asyncio.to_thread(list_events, call_sid)]


async def test_batches_handed_over_together_share_requests_of_25_items(dynamodb_faults: FaultyDynamoDB) -> None:
    writer = EventWriter()
    next_seqs = await asyncio.gather(*(writer.append(f"CA6{n:02d}", 1, _line(f"line {n}") * 2) for n in range(30)))
    assert next_seqs == [3] * 30
    assert dynamodb_faults.requests.count(f"BatchWriteItem {EVENTS_TABLE}") == 3  # 60 items, not 30 requests
    for n in (0, 29):
        assert await _texts(f"CA6{n:02d}") == [f"line {n}"] * 2


async def test_a_batch_dynamodb_rejects_fails_only_its_own_call(dynamodb_faults: FaultyDynamoDB) -> None:
    writer = EventWriter()
    too_big = _line("x" * 500_000)  # over DynamoDB's 400 KB item limit
    outcomes = await asyncio.gather(writer.append("CA701", 1, _line("hello")), writer.append("CA702", 1, too_big),
                                    writer.append("CA703", 4, _line("bye")), return_exceptions=True)
    assert outcomes[0] == 2 and outcomes[2] == 5
    assert isinstance(outcomes[1], Exception) and "maximum allowed size" in str(outcomes[1])
    assert await _texts("CA701") == ["hello"] and await _texts("CA703") == ["bye"]
    assert await _texts("CA702") == []


async def test_a_throttled_shared_request_fails_every_batch_in_it_and_a_retry_writes_each_once(
        dynamodb_faults: FaultyDynamoDB) -> None:
    writer = EventWriter()
    throttled = dynamodb_faults.fail("BatchWriteItem")
    outcomes = await asyncio.gather(writer.append("CA711", 1, _line("one")), writer.append("CA712", 1, _line("two")),
                                    return_exceptions=True)
    assert all(isinstance(outcome, Exception) for outcome in outcomes)
    assert throttled.matched > 1  # PynamoDB's own retries, then the error to every caller of the request
    dynamodb_faults.heal()
    assert await asyncio.gather(writer.append("CA711", 1, _line("one")), writer.append("CA712", 1, _line("two"))) \
        == [2, 2]
    assert await _texts("CA711") == ["one"] and await _texts("CA712") == ["two"]


async def test_a_batch_handed_over_while_a_write_is_under_way_goes_in_the_next_request(
        dynamodb_faults: FaultyDynamoDB) -> None:
    writer = EventWriter(gather_s=0.01)
    held = dynamodb_faults.hold("BatchWriteItem", times=1)
    first = asyncio.create_task(writer.append("CA721", 1, _line("first")))
    await until(lambda: held.matched == 1, what="the first request held")
    second = asyncio.create_task(writer.append("CA722", 1, _line("second")))
    await asyncio.sleep(0.05)  # several gathers' time
    assert not second.done() and dynamodb_faults.requests.count(f"BatchWriteItem {EVENTS_TABLE}") == 1
    held.release()
    assert await first == 2 and await second == 2
    assert dynamodb_faults.requests.count(f"BatchWriteItem {EVENTS_TABLE}") == 2
    assert await _texts("CA722") == ["second"]
