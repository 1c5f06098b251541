"""CallEventRecorder: batches off the relay path, and nothing lost when DynamoDB fails for a while."""

import asyncio
import time

from bridge.event_recorder import MAX_BUFFERED, CallEventRecorder
from bridge.event_writer import EventWriter
from voiceline.calls import list_events
from voiceline.models import CallEvent


async def test_events_are_written_in_order_on_close(dynamodb: None) -> None:
    recorder = CallEventRecorder("CA1", time.monotonic(), interval_s=60, writer=EventWriter())
    recorder.start()
    recorder.record("transcript", role="caller", text="hello")
    recorder.record("transcript", role="agent", text="hi there")
    await recorder.close()
    events = list_events("CA1")
    assert [(e.seq, e.role, e.text) for e in events] == [(1, "caller", "hello"), (2, "agent", "hi there")]


async def test_a_dynamodb_outage_keeps_events_buffered_until_it_recovers(dynamodb: None) -> None:
    CallEvent.delete_table()  # every write now fails with ResourceNotFoundException
    recorder = CallEventRecorder("CA2", time.monotonic(), interval_s=60, writer=EventWriter())
    recorder.record("transcript", role="caller", text="first")
    assert await recorder._write() is False
    recorder.record("transcript", role="caller", text="second")
    CallEvent.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    await recorder.close()
    assert [e.text for e in list_events("CA2")] == ["first", "second"]
    assert recorder.dropped == 0


async def test_close_while_a_periodic_write_is_in_flight_loses_and_overwrites_nothing(dynamodb: None) -> None:
    recorder = CallEventRecorder("CA5", time.monotonic(), interval_s=0.01, writer=EventWriter())
    recorder.start()
    for n in range(MAX_BUFFERED):
        recorder.record("transcript", text=str(n))
    await asyncio.sleep(0.05)  # the periodic write of those is now in its thread
    recorder.record("call_ended")
    await recorder.close()
    events = list_events("CA5")
    assert [e.seq for e in events] == list(range(1, MAX_BUFFERED + 2))
    assert (events[0].text, events[-1].kind) == ("0", "call_ended")
