"""The bridge's scheduled full collections free reference cycles left behind, without waiting for CPython's own."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import httpx
import pytest
from pynamodb.models import Model

from bridge.garbage_collection import GarbageCollection
from local.scripted_model import ScriptedModelServer
from tests.bridge.bridge_harness import TwilioLeg, ended_call, health_url, running_bridge, seed_call, until
from tests.bridge.test_realtime_faults import DEMO
from tests.conftest import TwilioSigner
from voiceline.models import Agent, Call, CallEvent


class _Leftover:
    """Stands in for what a finished call leaves: objects that refer to each other and to nothing else."""

    def __init__(self) -> None:
        self.partner = _Partner(self)


class _Partner:
    def __init__(self, owner: _Leftover) -> None:
        self.owner = owner


@pytest.fixture
def automatic_collection_off() -> Iterator[None]:
    """Only the scheduled collection may free the cycle; the heap this test freezes is thawed after it."""
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.enable()


async def test_a_cycle_left_by_a_call_is_freed_by_the_next_scheduled_collection(automatic_collection_off: None) -> None:
    collection = GarbageCollection(interval_s=0.05)
    collection.start()
    try:
        leftover = _Leftover()
        gone = weakref.ref(leftover)
        del leftover
        assert gone() is not None  # a cycle: reference counting alone never frees it
        await asyncio.sleep(0.2)
        assert gone() is None
        assert collection.collections >= 1 and collection.last_pause_ms > 0
    finally:
        await collection.aclose()


async def test_what_existed_at_start_is_frozen_out_of_the_collectors_sight(automatic_collection_off: None) -> None:
    before = _Leftover()
    gone = weakref.ref(before)
    collection = GarbageCollection(interval_s=3600)
    collection.start()
    try:
        del before
        collection.collect()
        assert gone() is not None  # frozen with the start-up heap, as the clients and models are
        assert gc.get_freeze_count() > 0
    finally:
        await collection.aclose()


async def test_cpythons_own_collections_are_off_while_it_runs_and_back_on_after() -> None:
    """Its young collections stopped the event loop about once a second at 100 calls; only the schedule runs."""
    assert gc.isenabled()
    collection = GarbageCollection(interval_s=3600)
    collection.start()
    try:
        assert not gc.isenabled()
        leftover = _Leftover()
        gone = weakref.ref(leftover)
        del leftover
        more = [_Leftover() for _ in range(20_000)]  # well past the young generation's threshold
        del more
        assert gone() is not None  # no automatic collection ran
        collection.collect()
        assert gone() is None
    finally:
        await collection.aclose()
        gc.unfreeze()
    assert gc.isenabled()


async def test_the_dynamodb_clients_are_built_before_the_start_up_heap_is_frozen(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Built lazily, by a caller's first read, each client's 30,000 objects were scanned by every full collection."""
    models: tuple[type[Model], ...] = (Agent, Call, CallEvent)
    for model in models:
        monkeypatch.setattr(model, "_connection", None)  # as in a new process: no client yet
    try:
        async with ScriptedModelServer(DEMO) as model_server, running_bridge(model_server.url, monkeypatch) as url:
            async with httpx.AsyncClient(timeout=5) as http:  # answered once the bridge has started
                assert (await http.get(health_url(url))).status_code == 200
            clients = [model._get_connection().connection._client for model in models]
            assert all(client is not None for client in clients)
            service_descriptions = [client.meta.service_model._service_description for client in clients]
            in_collectors_sight = {id(tracked) for tracked in gc.get_objects()}
            assert not any(id(description) in in_collectors_sight for description in service_descriptions)
    finally:
        gc.unfreeze()


async def test_a_finished_call_is_freed_when_it_ends_not_left_for_the_next_full_collection(
        dynamodb: None, automatic_collection_off: None, monkeypatch: pytest.MonkeyPatch,
        twilio_signer: TwilioSigner) -> None:
    """Held in a cycle, every call that ended waited for the scheduled collection, which then stopped every call
    for as long as freeing them all took: 63 ms for the 100 calls of one bench run, landing in the next ramp."""
    await asyncio.to_thread(seed_call, "CA801")
    async with ScriptedModelServer(DEMO) as model_server, running_bridge(model_server.url, monkeypatch) as url:
        from bridge.app import app

        async with TwilioLeg.open(url, twilio_signer, "CA801") as leg:
            listening = asyncio.create_task(leg.run_until_closed(timeout_s=30))
            await leg.first_media.wait()
            [session] = app.state.bridge.calls
            assert session.link is not None
            call_objects = [weakref.ref(held) for held in (session, session.link, session.link.memory,
                                                            session.recorder, session.twilio)]
            del session
            await leg.hang_up()
            await listening
        assert (await ended_call("CA801")).end_reason == "caller_hung_up"
        await until(lambda: not app.state.bridge.calls, what="the bridge letting go of the call")
        await until(lambda: all(held() is None for held in call_objects), timeout_s=2,
                    what="the call's objects freed by reference counting alone")
