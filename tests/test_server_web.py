"""The memory web page in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) against a real uvicorn server: sign in, pick a user, read the lines with their
messages, versions as diffs, edit, forget a line, undo. Keeps a screenshot for the docs when
PERSONAMEM_UPDATE_SCREENSHOT=1."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright
from server_helpers import live_server, make_app

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOT = Path(__file__).parent.parent / "docs" / "img" / "memory-page.png"

CHAT = [
    ("user", "I bake sourdough bread every Sunday morning with my daughter"),
    ("assistant", "That sounds like a lovely tradition."),
    ("user", "I am training for the Berlin marathon in September"),
    ("assistant", "Good luck with the training!"),
    ("user", "I switched to a vegetarian diet last spring"),
    ("assistant", "Noted."),
    ("user", "I work as a nurse on night shifts at the hospital"),
    ("assistant", "That must be demanding."),
]


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (CI installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def test_memory_page(tmp_path: Path, browser) -> None:  # noqa: ANN001
    app, keys = make_app(tmp_path)
    key = keys.create("acme").key
    with live_server(app) as url:
        h = {"Authorization": f"Bearer {key}"}
        msgs = [{"role": r, "content": c, "id": f"m{i}"} for i, (r, c) in enumerate(CHAT)]
        httpx.post(
            f"{url}/v1/users/emily/messages", json={"messages": msgs, "update": "wait"}, headers=h
        )
        httpx.post(f"{url}/v1/users/emily/flush", headers=h)
        httpx.post(
            f"{url}/v1/users/noah/messages",
            json={"messages": [{"content": "I collect vinyl records"}], "update": "none"},
            headers=h,
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")

        # a wrong key is refused with the API's message
        page.fill("#key", "pmk_000000000000_" + "x" * 43)
        page.click("#signin-button")
        page.wait_for_selector("#status.error")
        assert "invalid API key" in page.text_content("#status")
        assert page.is_hidden("#app")

        page.fill("#key", key)
        page.click("#signin-button")
        page.wait_for_selector("#users button")
        assert page.locator("#users button").all_text_contents() == ["emily", "noah"]

        page.click("#users button[data-user=emily]")
        page.wait_for_selector("#memory li.line")
        lines = page.locator("#memory li.line .text").all_text_contents()
        assert any("sourdough" in t for t in lines) and any("marathon" in t for t in lines)
        # the messages behind a line
        first = page.locator("#memory li.line").first
        first.locator("summary").click()
        assert "sourdough bread every Sunday" in first.locator(".msg").first.text_content()
        # versions as diffs
        assert page.locator("#history li.version").count() >= 1
        assert page.locator("#history pre.diff .add").count() >= 1

        # edit: a new line becomes a new version, its diff shows the added line
        page.click("#edit")
        text = page.input_value("#editor-text")
        page.fill("#editor-text", text + "\n- Plays chess online on weekends")
        page.click("#save")
        expect(page.locator("#memory li.line", has_text="Plays chess")).to_have_count(1)
        top = page.locator("#history li.version").first
        assert "edit" in top.locator(".meta").text_content()
        added = top.locator("pre.diff .add").all_text_contents()
        assert [a.strip() for a in added] == ["+- Plays chess online on weekends"]  # only that
        page.locator("#memory li.line").first.locator("summary").click()
        if os.environ.get("PERSONAMEM_UPDATE_SCREENSHOT") == "1":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        shot = page.screenshot(full_page=True)
        assert shot[:8] == b"\x89PNG\r\n\x1a\n"

        # forget one line
        n = page.locator("#memory li.line").count()
        chess = page.locator("#memory li.line", has_text="Plays chess")
        chess.locator("button.forget").click()
        expect(page.locator("#memory li.line", has_text="Plays chess")).to_have_count(0)
        assert page.locator("#memory li.line").count() == n - 1
        assert "forget" in page.locator("#history li.version").first.text_content()

        # undo brings it back
        page.click("#undo")
        expect(page.locator("#memory li.line", has_text="Plays chess")).to_have_count(1)
        assert "undo" in page.locator("#history li.version").first.text_content()
        assert errors == []
        # what the page showed is what the API holds
        api_text = httpx.get(f"{url}/v1/users/emily/memory", headers=h).json()["text"]
        assert "Plays chess online on weekends" in api_text
        page.close()
