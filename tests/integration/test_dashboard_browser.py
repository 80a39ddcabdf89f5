"""The dashboard end to end in headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright; never a downloaded browser): it loads with a token, shows every agent with its
status and risk, the policy and its approval, recent denials and fallbacks, and refreshes by
itself. A screenshot is saved under the test's tmp dir (and in $GOVBUS_SCREENSHOT_DIR)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from govbus.examples.finance import SCENARIO, create_app
from govbus.inventory import Token, Tokens
from tests.conftest import skip_or_fail
from tests.unit.inventory.support import Served

CHROMIUM = Path("/usr/bin/chromium")
READ = "dashboard-read-token-0123456789"
ADMIN = "dashboard-admin-token-0123456789"
#: Chromium flags for a machine without a screen or outside network (and running as root).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        skip_or_fail(
            f"headless Chromium not found at {CHROMIUM}: apt-get install chromium "
            "(.ci/run installs it when it can)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        skip_or_fail(f"playwright is not installed (the dev extra): {exc}")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def served() -> Iterator[Served]:
    app = create_app(audit="memory://")
    tokens = Tokens([Token("risk-office", "read", READ), Token("ops-oncall", "admin", ADMIN)])
    with Served(app, tokens=tokens) as server:
        for step in SCENARIO:  # ok, denied, degraded and partial requests
            server.run(lambda step=step: app.request(step.message, timeout=10.0))
        yield server


def screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not an empty image
    extra = os.environ.get("GOVBUS_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / name)
    return path


def test_the_dashboard_shows_every_agent_policy_and_recent_activity(
    browser: Any, served: Served, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    page.goto(f"{served.url}/#token={READ}")
    page.wait_for_selector("body[data-loaded=true]", timeout=20_000)
    assert "#token" not in page.url  # the secret leaves the address bar

    names = sorted(a.card.name for a in served.app.registry)
    rows = page.locator("#agents tbody tr")
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.agent)")) == names
    advisor = page.locator('tr[data-agent="portfolio_advisor"]')
    assert advisor.locator("[data-field=risk] .badge").inner_text() == "high"
    assert advisor.locator(".risk-high").count() == 1  # highlighted
    assert "portfolio_snapshot" in advisor.inner_text()  # its fallback
    assert "scripted/advice-writer" in advisor.inner_text()  # its model

    policy = served.app.policy
    assert page.locator("#policy-name").inner_text() == policy.name
    assert page.locator("#policy-sha").inner_text() == policy.sha256
    assert page.locator("#policy-approval .approved").inner_text() == "Approved"

    denials = page.locator("#recent-denials tbody tr")
    denied_checks = set(denials.evaluate_all("rows => rows.map(r => r.dataset.key)"))
    assert {"advisors-only", "size"} <= denied_checks
    fallbacks = page.locator("#recent-fallbacks tbody tr[data-key=portfolio_advisor]")
    assert fallbacks.count() == 1
    assert page.locator('tr[data-agent="portfolio_advisor"] .status-degraded').count() == 1

    # Pausing through the admin call shows on the open page without a reload.
    response = httpx.post(
        f"{served.url}/v1/agents/recommender/pause",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"reason": "screenshot drill"},
    )
    assert response.status_code == 200
    page.wait_for_selector('tr[data-agent="recommender"] .status-paused', timeout=15_000)

    shot = screenshot(page, tmp_path, "dashboard.png")
    print(f"dashboard screenshot: {shot}")
    assert errors == []


def test_the_dashboard_asks_for_a_token_and_refuses_a_wrong_one(
    browser: Any, served: Served, tmp_path: Path
) -> None:
    page = browser.new_page()
    page.goto(f"{served.url}/")
    page.wait_for_selector("#login:not([hidden])", timeout=20_000)
    assert page.locator("#content").is_hidden()

    page.fill("#token", "not-the-token-at-all")
    page.click("#login button")
    page.wait_for_selector("#status-line.error", timeout=20_000)
    assert "refused" in page.locator("#status-line").inner_text()
    assert page.locator("#content").is_hidden()

    page.fill("#token", READ)
    page.click("#login button")
    page.wait_for_selector("body[data-loaded=true]", timeout=20_000)
    assert page.locator("#agents tbody tr").count() == len(served.app.registry)
    screenshot(page, tmp_path, "dashboard-after-login.png")
