"""The dashboard page and its assets, served by the admin API through the gateway: no key needed (they hold no
data), the right content types, and a policy that allows scripts and styles from this origin only."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tests.functions.admin_api import (
    AdminApi,
    admin_api_fixture,  # noqa: F401 (the admin_api fixture)
)

ASSETS = {
    "/api/dashboard/assets/dashboard.js": "text/javascript; charset=utf-8",
    "/api/dashboard/assets/dashboard.css": "text/css; charset=utf-8",
    "/api/dashboard/assets/chart.umd.min.js": "text/javascript; charset=utf-8",
    "/api/dashboard/assets/favicon.svg": "image/svg+xml",
}


class PageParts(HTMLParser):
    """What a page loads, and anything inline the policy would block."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []
        self.inline: list[str] = []
        self.canvases: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.inline += [f"<{tag} {name}>" for name in attributes if name.startswith("on") or name == "style"]
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self._in_script = "src" not in attributes
            self.loaded.append(attributes.get("src") or "")
        if tag == "link" and attributes.get("rel") in ("stylesheet", "icon"):
            self.loaded.append(attributes.get("href") or "")
        if tag == "canvas":
            self.canvases.append(attributes.get("id") or "")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(f"<script>{data[:40]}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def test_the_page_needs_no_key_and_loads_only_its_own_assets(admin_api: AdminApi) -> None:
    response = admin_api.client().get("/api/dashboard")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert (policy["script-src"], policy["style-src"], policy["connect-src"]) == ("'self'", "'self'", "'self'")
    assert policy["form-action"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    page = PageParts()
    page.feed(response.text)
    assert page.inline == []
    assert sorted(page.loaded) == sorted(ASSETS)
    assert page.canvases == ["chart-calls", "chart-minutes", "chart-latency", "chart-end-reasons", "chart-tools",
                             "chart-cost"]


@pytest.mark.parametrize(("path", "content_type"), ASSETS.items())
def test_each_asset_is_served_with_its_content_type(admin_api: AdminApi, path: str, content_type: str) -> None:
    response = admin_api.client().get(path)

    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content


def test_the_vendored_chart_js_is_the_4x_umd_build_under_its_license(admin_api: AdminApi) -> None:
    script = admin_api.client().get("/api/dashboard/assets/chart.umd.min.js").text

    assert script.startswith("/*!\n * Chart.js v4.")
    assert "Released under the MIT License" in script[:200]


@pytest.mark.parametrize("name", ["dashboard.html", "app.py", "..%2Fapp.py", "..%2F..%2Ftemplate.yaml",
                                  "chart.js.LICENSE.md", "DASHBOARD.JS"])
def test_anything_but_a_listed_asset_is_not_found(admin_api: AdminApi, name: str) -> None:
    response = admin_api.client().get(f"/api/dashboard/assets/{name}")

    assert response.status_code == 404
    assert "import" not in response.text and "AWSTemplateFormatVersion" not in response.text
