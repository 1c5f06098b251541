"""The dashboard in headless Chromium: Debian's own browser, driven by Playwright, never one Playwright downloads.

The browser test and `make demo`'s screenshot both open the page this way: load it, enter the key, and wait until
the page says it drew what the API returned (or says why it could not).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

CHROMIUM_NAMES = ("chromium", "chromium-browser")
READY_TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1400, "height": 1000}
INSTALL_HINT = "install it with: apt-get install -y chromium"
CATCH_UP_TIMEOUT_S = 30.0


class DashboardError(RuntimeError):
    """The page ended in an error or a refused key instead of drawing."""


def api_client(gateway_url: str, api_key: str) -> httpx.AsyncClient:
    """The admin API as the page calls it, with the key the user entered."""
    return httpx.AsyncClient(base_url=gateway_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=15)


def last_days(days: int = 7) -> dict[str, str]:
    """The page's own /api/analytics query for a range: from midnight UTC `days - 1` days ago until now, by day."""
    now = datetime.now(UTC)
    start = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=days - 1)
    return {"from": start.isoformat(), "to": now.isoformat(), "granularity": "day"}


async def rollups_caught_up(api: httpx.AsyncClient, calls: int, timeout_s: float = CATCH_UP_TIMEOUT_S) -> None:
    """Wait until the analytics API counts `calls` calls in the page's default range. The rollups follow the Calls
    table's stream, so a call shows on the dashboard a moment after it is finalised."""
    deadline = time.monotonic() + timeout_s
    counted = None
    while time.monotonic() < deadline:
        response = await api.get("/api/analytics", params=last_days())
        response.raise_for_status()
        counted = response.json()["totals"]["calls"]
        if counted >= calls:
            return
        await asyncio.sleep(0.25)
    raise TimeoutError(f"the analytics API counted {counted} calls, not {calls}, within {timeout_s:.0f} s")


def chromium_path() -> str | None:
    """The Chromium to drive: $CHROMIUM if set, else Debian's on the PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


async def settled(page: Any, view: str = "overview") -> None:
    """Wait until the page has drawn `view` ("overview" or "call/<sid>"); raise if it ended in an error instead."""
    await page.wait_for_function(
        """(view) => {
            const state = document.body.dataset.state;
            return (state === "ready" && window.voicelineDashboard.shown === view)
                || state === "error" || state === "signed-out";
        }""", arg=view, timeout=READY_TIMEOUT_MS)
    state = await page.evaluate("document.body.dataset.state")
    if state != "ready":
        error = await page.evaluate("window.voicelineDashboard.error")
        raise DashboardError(f"the dashboard is {state!r}: {error or await page.text_content('#message')}")


@dataclass
class DashboardPage:
    """The Playwright page, and what went wrong on it: console errors (a policy violation is one) and uncaught
    script errors."""

    page: Any
    problems: list[str] = field(default_factory=list)


DRAWN = """() => {
    const dashboard = window.voicelineDashboard;
    const charts = {};
    for (const [id, chart] of Object.entries(dashboard.charts)) {
        charts[id] = {type: chart.config.type, canvas: chart.canvas.id, labels: chart.data.labels,
                      datasets: chart.data.datasets.map((dataset) => ({label: dataset.label, data: dataset.data}))};
    }
    const figures = {};
    for (const figure of document.querySelectorAll("[data-figure]")) {
        figures[figure.dataset.figure] = figure.querySelector("dd").textContent;
    }
    const calls = [...document.querySelectorAll("#calls tbody tr")].map((row) => row.dataset.callSid);
    return {query: dashboard.query, charts, figures, calls};
}"""


async def drawn(page: Any) -> dict[str, Any]:
    """What the overview drew: the /api/analytics query, each chart's labels and data by canvas id, the figures
    above the charts, and the call SIDs in the calls table, top to bottom."""
    return await page.evaluate(DRAWN)


@asynccontextmanager
async def open_dashboard(gateway_url: str, api_key: str | None) -> AsyncIterator[DashboardPage]:
    """/api/dashboard in headless Chromium, signed in with `api_key` and drawn (None: left at the key form)."""
    from playwright.async_api import async_playwright  # a test and demo dependency, not the Lambda's

    executable = chromium_path()
    if executable is None:
        raise FileNotFoundError(f"Chromium is not installed; {INSTALL_HINT}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            page = await browser.new_page(viewport=VIEWPORT)
            opened = DashboardPage(page)
            page.on("console", lambda message: message.type == "error" and opened.problems.append(message.text))
            page.on("pageerror", lambda error: opened.problems.append(f"uncaught: {error}"))
            await page.goto(f"{gateway_url}/api/dashboard")
            await page.wait_for_selector("#key-form", state="visible", timeout=READY_TIMEOUT_MS)
            if api_key is not None:
                await page.fill("#key", api_key)
                await page.click("#key-form button[type=submit]")
                await settled(page)
            yield opened
        finally:
            await browser.close()


async def save_screenshot(gateway_url: str, api_key: str, path: Path) -> None:
    """The whole drawn overview as a PNG."""
    async with open_dashboard(gateway_url, api_key) as dashboard:
        await dashboard.page.screenshot(path=str(path), full_page=True)
        if dashboard.problems:
            raise DashboardError(f"the page reported: {dashboard.problems}")
