"""Opening the dashboard in a browser: which Chromium is used, what happens without one, and waiting for the rollups
against the real admin API (no calls: the wait ends in a clear timeout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import demo
from local.dashboard_browser import INSTALL_HINT, api_client, chromium_path, open_dashboard, rollups_caught_up
from tests.functions.admin_api import (
    AdminApi,
    admin_api_fixture,  # noqa: F401 (the admin_api fixture)
)
from voiceline import api_keys, tenants


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no browser on the PATH


def test_chromium_is_chromium_env_var_or_the_one_on_the_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert chromium_path() == str(browser)

    monkeypatch.setenv("CHROMIUM", "/opt/chromium/chrome")
    assert chromium_path() == "/opt/chromium/chrome"


async def test_without_chromium_opening_says_how_to_install_it(no_chromium: None) -> None:
    assert chromium_path() is None
    with pytest.raises(FileNotFoundError, match="apt-get install -y chromium"):
        async with open_dashboard("http://127.0.0.1:9", "vl_key"):
            pass


async def test_without_chromium_the_demo_says_so_and_goes_on(no_chromium: None,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert await demo.dashboard_screenshot(stack=None) is True  # type: ignore[arg-type]  # not reached
    assert f"not taken, Chromium is not installed ({INSTALL_HINT})" in capsys.readouterr().out


async def test_waiting_for_rollups_that_never_count_the_calls_times_out_clearly(admin_api: AdminApi) -> None:
    tenants.create_tenant("tenant-a", "tenant-a")
    key = api_keys.issue_key("tenant-a", "tests").key
    async with api_client(admin_api.base_url, key) as api:
        with pytest.raises(TimeoutError, match="counted 0 calls, not 1"):
            await rollups_caught_up(api, calls=1, timeout_s=0.5)
