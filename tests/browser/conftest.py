"""Browser tests: Debian's chromium driven by Playwright against the service on a loopback port.

Chromium is installed by scripts/install-chromium.sh (``make test`` runs it);
without it these tests are skipped with a loud notice, never silently.
Screenshots of the main pages are kept in test-artifacts/screenshots/.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from rerate.bootstrap import App
from rerate.entrypoints.api.app import create_app
from rerate.services import users
from rerate.services.ingest import ingest
from tests.factories import small_world, write_xdrs

PASSWORD = "correct horse battery"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ROWS = [
    ("o1", "2026-10-10T10:00:00Z", "45", "1", "4930", "acc1", "gw1"),
    ("o2", "2026-10-20T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1"),
    ("o3", "2026-10-20T11:00:00Z", "30", "1", "4420794600", "acc2", "gw1"),
    ("f1", "2026-10-20T12:00:00Z", "30", "1", "4420794600", "stranger", "gw1"),
]
_skipped: list[str] = []


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    found = _chromium()
    if found is None:
        reason = "no chromium on this machine (run scripts/install-chromium.sh as root)"
        _skipped.append(reason)
        pytest.skip(reason)
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, App]]:
    """The service on a loopback port over a small world with one collection, and an admin user."""
    app = small_world(tmp_path / "home")
    ingest(app, [write_xdrs(tmp_path / "october.csv", ROWS)])
    users.add_user(app, "ada", "admin", PASSWORD)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(app, poll_seconds=0.1), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(10)
    app.close()


@pytest.fixture
def page(chromium_path: str, live: tuple[str, App]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context(base_url=live[0], viewport={"width": 1366, "height": 768})
        context.set_default_timeout(20_000)
        yield context.new_page()
        context.close()
        browser.close()


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, name: str = "ada") -> None:
    page.goto("/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped:
        terminalreporter.section("WEB UI NOT TESTED IN A BROWSER", sep="!", red=True, bold=True)
        terminalreporter.write_line(f"{_skipped[0]}. The browser tests were SKIPPED.", red=True, bold=True)
