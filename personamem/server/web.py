"""The memory web page: ``/`` serves a small page (no CDN, no build step) whose script signs in
with an API key, lists the tenant's users and reads, edits, forgets and undoes through the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def install_web(app: FastAPI) -> None:
    page = (STATIC / "index.html").read_text()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=SECURITY_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


__all__ = ["install_web"]
