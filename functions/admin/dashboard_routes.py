"""GET /api/dashboard: the analytics page and its scripts and styles, served by the admin API itself.

The page holds no data, so it needs no key: its script asks the API for everything with the key the user enters.
Everything it loads comes from here (Chart.js is vendored in static/), so it works offline and the policy can
allow this origin only.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Response, status

router = APIRouter(prefix="/api/dashboard", include_in_schema=False)  # a page, not part of the API

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSET_TYPES = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "chart.umd.min.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",  # else the browser asks /favicon.ico, outside the API
}
"""The only files served: a name not listed here is a 404, so no path reaches outside static/."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""No inline script or style, nothing from elsewhere; the key form never submits (its script handles it), so a
broken script cannot put the key in a URL."""

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate: a deploy must reach the page at once
}


@cache
def _read(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


def _static(name: str, media_type: str) -> Response:
    return Response(_read(name), media_type=media_type, headers=_HEADERS)


@router.get("")
def dashboard_page() -> Response:
    return _static("dashboard.html", "text/html; charset=utf-8")


@router.get("/assets/{name}")
def dashboard_asset(name: str) -> Response:
    media_type = ASSET_TYPES.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such asset")
    return _static(name, media_type)
