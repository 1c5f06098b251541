"""The dashboard in headless Chromium against the local stack: after a few simulated calls its charts hold exactly
the analytics API's numbers, the calls table lists the calls, and a call's transcript shows both sides, a tool call
and an interruption. Debian's chromium is driven by Playwright; `make test` installs it when missing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.admin_key import issue_key_in
from local.call_records import CallRecords
from local.call_simulator import place_call
from local.dashboard_browser import (
    INSTALL_HINT,
    READY_TIMEOUT_MS,
    DashboardError,
    api_client,
    chromium_path,
    drawn,
    last_days,
    open_dashboard,
    rollups_caught_up,
    settled,
)
from local.seed import DEMO_AGENT, DEMO_TENANT
from local.stack import LocalStack
from tests.system.conftest import call_config, finalised

pytestmark = pytest.mark.system

CALLS = 2


@pytest.fixture(scope="module")
def dashboard_key(stack: LocalStack) -> str:
    if chromium_path() is None:  # never skipped: a CI without the browser must fail loudly
        pytest.fail(f"Chromium is not installed; {INSTALL_HINT} (make test does it)")
    return issue_key_in(stack.environment(), DEMO_TENANT, "dashboard")


@pytest.fixture
async def api(stack: LocalStack, dashboard_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(stack.gateway_url, dashboard_key) as client:
        yield client


async def analytics(api: httpx.AsyncClient, query: dict[str, str]) -> dict[str, Any]:
    response = await api.get("/api/analytics", params={name: value for name, value in query.items() if value})
    assert response.status_code == 200, response.text
    return response.json()


def charts_of(analytics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What each chart must hold, worked out from the API's answer alone."""
    series, totals = analytics["series"], analytics["totals"]
    buckets = [point["bucket"] for point in series]
    reasons, tools = sorted(totals["end_reasons"]), sorted(totals["tools"])

    def chart(kind: str, labels: list[str], **datasets: list[Any]) -> dict[str, Any]:
        return {"type": kind, "labels": labels,
                "datasets": [{"label": label, "data": data} for label, data in datasets.items()]}

    return {
        "chart-calls": chart("bar", buckets, Calls=[point["calls"] for point in series]),
        "chart-minutes": chart("bar", buckets, Minutes=[point["minutes"] for point in series]),
        "chart-latency": chart("line", buckets, p50=[point["answer_latency_ms"]["p50"] for point in series],
                               p95=[point["answer_latency_ms"]["p95"] for point in series]),
        "chart-end-reasons": chart("doughnut", reasons, Calls=[totals["end_reasons"][reason] for reason in reasons]),
        "chart-tools": chart("bar", tools,
                             Succeeded=[totals["tools"][tool]["calls"] - totals["tools"][tool]["errors"]
                                        - totals["tools"][tool]["declined"] for tool in tools],
                             Declined=[totals["tools"][tool]["declined"] for tool in tools],
                             Failed=[totals["tools"][tool]["errors"] for tool in tools]),
        "chart-cost": chart("bar", buckets, **{"Cost (USD)": [point["cost_usd"] for point in series]}),
    }


async def drawn_as_the_api_says(page: Any, api: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the page drew, checked chart by chart against the API's answer to the page's own query."""
    shown = await drawn(page)
    expected = await analytics(api, shown["query"])
    assert {chart_id: {key: chart[key] for key in ("type", "labels", "datasets")}
            for chart_id, chart in shown["charts"].items()} == charts_of(expected)
    assert all(chart["canvas"] == chart_id for chart_id, chart in shown["charts"].items())
    return shown, expected


async def redrawn(page: Any, condition: str, arg: str) -> None:
    """Wait until the page's query meets `condition` (JS over `query` and `arg`), then until it has drawn it."""
    await page.wait_for_function(f"(arg) => {{ const query = window.voicelineDashboard.query; return {condition}; }}",
                                 arg=arg, timeout=READY_TIMEOUT_MS)
    await settled(page)


async def test_the_charts_hold_the_apis_numbers_and_a_transcript_opens(
        stack: LocalStack, api: httpx.AsyncClient, dashboard_key: str, records: CallRecords, tmp_path: Path) -> None:
    before = (await analytics(api, last_days()))["totals"]["calls"]
    wav_dirs = [tmp_path / f"call-{number}" for number in range(CALLS)]
    for wav_dir in wav_dirs:
        wav_dir.mkdir()
    reports = await asyncio.gather(*(place_call(call_config(stack, wav_dir)) for wav_dir in wav_dirs))
    placed = [report.call_sid for report in reports]
    for call_sid in placed:
        await finalised(records, call_sid)
    await rollups_caught_up(api, before + CALLS)

    async with open_dashboard(stack.gateway_url, dashboard_key) as dashboard:
        page, expected = await drawn_as_the_api_says(dashboard.page, api)
        totals = expected["totals"]
        assert totals["calls"] >= before + CALLS
        assert sum(page["charts"]["chart-calls"]["datasets"][0]["data"]) == totals["calls"]
        assert {"agent_hung_up"} <= set(page["charts"]["chart-end-reasons"]["labels"])
        assert {"get_pricing", "book_appointment"} <= set(page["charts"]["chart-tools"]["labels"])
        assert page["figures"]["calls"] == str(totals["calls"])
        newest = (await api.get("/api/calls", params={"from": page["query"]["from"], "limit": 20})).json()["calls"]
        assert page["calls"] == [call["call_sid"] for call in newest]
        assert set(placed) <= set(page["calls"])

        # The range and the agent filter redraw from the API's answer for the new query.
        await dashboard.page.select_option("#range", "30")
        await redrawn(dashboard.page, "query.from === arg", last_days(30)["from"][:10] + "T00:00:00.000Z")
        page, expected = await drawn_as_the_api_says(dashboard.page, api)
        assert len(page["charts"]["chart-calls"]["labels"]) == 30
        await dashboard.page.select_option("#agent", DEMO_AGENT)
        await redrawn(dashboard.page, "query.agent === arg", DEMO_AGENT)
        page, expected = await drawn_as_the_api_says(dashboard.page, api)
        assert expected["agent_id"] == DEMO_AGENT and expected["totals"]["calls"] >= CALLS

        # One of the calls, opened from its row.
        call_sid = placed[0]
        await dashboard.page.click(f'#calls tr[data-call-sid="{call_sid}"] a')
        await settled(dashboard.page, f"call/{call_sid}")
        detail = (await api.get(f"/api/calls/{call_sid}")).json()
        shown = dashboard.page.locator("#transcript > li")
        assert await shown.count() == len(detail["events"])
        said = {role: [event["text"] for event in detail["events"]
                       if event["kind"] == "transcript" and event["role"] == role] for role in ("caller", "agent")}
        assert said["caller"] and said["agent"]
        assert await dashboard.page.locator(".event.transcript.caller .text").all_text_contents() == said["caller"]
        assert await dashboard.page.locator(".event.transcript.agent .text").all_text_contents() == said["agent"]

        tool_calls = [event["data"] for event in detail["events"] if event["kind"] == "tool_call"]
        assert any(call["name"] == "get_pricing" for call in tool_calls)
        names = await dashboard.page.locator(".tool-call .tool-name").all_text_contents()
        assert [name.split(" ")[1] for name in names] == [call["name"] for call in tool_calls]
        arguments = await dashboard.page.locator(".tool-call .tool-args").all_text_contents()
        assert [json.loads(text) for text in arguments] == [call["arguments"] for call in tool_calls]
        results = await dashboard.page.locator(".tool-call .tool-result").all_text_contents()
        assert [json.loads(text) for text in results] == [
            call["output"]["output"] if call["output"]["ok"] else call["output"]["error"] for call in tool_calls]

        interruptions = [event for event in detail["events"] if event["kind"] == "interruption"]
        assert interruptions
        assert await dashboard.page.locator(".event.interruption").count() == len(interruptions)
        assert dashboard.problems == []


async def test_the_key_stays_in_the_tab_and_a_wrong_one_is_refused(stack: LocalStack, dashboard_key: str) -> None:
    async with open_dashboard(stack.gateway_url, None) as dashboard:
        page = dashboard.page
        await page.fill("#key", "vl_not-a-key")
        await page.click("#key-form button[type=submit]")
        with pytest.raises(DashboardError, match="signed-out"):
            await settled(page)
        assert await page.is_visible("#key-view") and not await page.is_visible("#overview")
        assert "not accepted" in await page.text_content("#message")
        assert await page.evaluate("sessionStorage.length") == 0

        await page.fill("#key", dashboard_key)
        await page.click("#key-form button[type=submit]")
        await settled(page)
        assert await page.evaluate("sessionStorage.getItem('voiceline.apiKey')") == dashboard_key
        assert await page.evaluate("localStorage.length") == 0
        assert await page.context.cookies() == []
        assert dashboard_key not in page.url

        await page.click("#sign-out")
        await page.wait_for_selector("#key-view", state="visible")
        assert await page.evaluate("sessionStorage.length") == 0
        # The 401 is the browser's own console error; nothing else went wrong.
        assert [problem for problem in dashboard.problems if "401" not in problem] == []
