"""The status page in a real browser: Debian's headless Chromium, driven by Selenium through Debian's chromedriver.

What only a browser can show: that the page renders every job, that a hostile name stays text and runs
nothing, that a progress bar moves from one load to the next, and that the page loads nothing from any other
host. It runs against the demo simulator played fast, with an exporter in-process, like `--demo`.

Needs Debian's `chromium` and `chromium-driver` and selenium (the test extra; nothing is downloaded at run
time: Selenium is handed the chromedriver and Chromium binaries, so its driver manager never runs). Without
them the test skips, except in CI (INTEGRATEIO_E2E_REQUIRED=1), where it fails.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from exporter.app import App
from exporter.config import ApiConfig, Config, PollingConfig, RateLimitConfig
from exporter.simulator import DEMO_API_KEY, DEMO_JOB_IDS, SimJob, SimOutput, Simulator
from tests.support import missing_requirement, require_tools, wait_until

SPEED = 20.0  # demo seconds per real second: job 102 fails after 5.5 s, 104 runs until 14.5 s
HOSTILE_JOB_ID = 900
HOSTILE_OUTPUT = "<script>window.pwned=1</script>"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1360,900",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module, with its DevTools network log on (to see every request)."""
    tools = require_tools("chromium", "chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing_requirement("needs selenium (the project's test extra: pip install -e '.[test]')")
    options = Options()
    options.binary_location = tools["chromium"]
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    with tempfile.TemporaryDirectory(prefix="test-browser-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(tools["chromedriver"]), options=options)
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def demo_app() -> Iterator[tuple[App, Simulator]]:
    """The demo scenario at SPEED plus a job of our own with a hostile output name, and an exporter on it."""
    sim = Simulator.demo(speed=SPEED)
    sim.add_job(
        SimJob(
            id=HOSTILE_JOB_ID,
            status="running",
            progress=0.1,
            package_name="hostile_names",
            outputs=[SimOutput(id=9000, name=HOSTILE_OUTPUT)],
        ),
        progress_per_second=0.002,  # simulated seconds: 4 % a real second at SPEED
        records_per_second=50,
    )
    sim.start()
    config = Config(
        api=ApiConfig(
            account_id=sim.account_id, api_key=DEMO_API_KEY, base_url=sim.base_url, timeout_seconds=2.0
        ),
        jobs=(*DEMO_JOB_IDS, HOSTILE_JOB_ID),
        polling=PollingConfig(interval_seconds=1.0),
        rate_limit=RateLimitConfig(credits=5000, window_seconds=3600.0, reserve=0.1),
    )
    app = App(config, ("127.0.0.1", 0))
    app.start()
    try:
        yield app, sim
    finally:
        app.stop()
        sim.stop()


def cached_status(app: App, job_id: int) -> str | None:
    state = next(state for state in app.cache.snapshot().jobs if state.job_id == job_id)
    return state.job.status.value if state.job else None


def cached_progress(app: App, job_id: int) -> float | None:
    state = next(state for state in app.cache.snapshot().jobs if state.job_id == job_id)
    return state.job.progress if state.job else None


def page_rows(driver: Any) -> dict[int, dict[str, Any]]:
    """Every row as the browser sees it: class, status text, progress value, output cell text."""
    rows: list[dict[str, Any]] = driver.execute_script(
        """
        return Array.from(document.querySelectorAll('#jobs tbody tr[data-job]')).map(row => ({
            job: Number(row.dataset.job),
            cls: row.className,
            status: row.cells[2].querySelector('.badge').innerText.trim(),
            why: row.cells[2].querySelector('.why') ? row.cells[2].querySelector('.why').innerText : null,
            progress: row.querySelector('progress') ? row.querySelector('progress').value : null,
            outputs: row.cells[5].innerText,
            badgeColour: getComputedStyle(row.cells[2].querySelector('.badge')).color,
        }));
        """
    )
    return {row["job"]: row for row in rows}


def requested_urls(driver: Any) -> list[str]:
    """Every URL the browser asked for since the last call, from the DevTools network log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_status_page_in_chromium(browser: Any, demo_app: tuple[App, Simulator]) -> None:
    app, sim = demo_app
    jobs = (*DEMO_JOB_IDS, HOSTILE_JOB_ID)
    wait_until(lambda: cached_status(app, 102) == "failed", 60, "demo job 102 to fail (demo second 110)")
    wait_until(lambda: all(cached_status(app, job_id) for job_id in jobs), 10, "every job fetched")
    browser.get_log("performance")  # start the network log from here
    browser.get(app.url("/"))

    # every watched job has a row, and the failed one says so in words, symbol and colour
    rows = page_rows(browser)
    assert sorted(rows) == sorted(jobs)
    failed = rows[102]
    assert failed["status"] == "✖ failed"
    assert "st-failed" in failed["cls"]
    assert failed["badgeColour"] == "rgb(164, 14, 38)"
    assert failed["why"].startswith(
        "Component 'mysql_customers' failed"
    )  # the API's reason, under the status
    assert next(iter(rows)) in (102, 107)  # failed jobs come first

    # the hostile output name is text on the page, and nothing ran
    assert HOSTILE_OUTPUT in rows[HOSTILE_JOB_ID]["outputs"]
    assert browser.execute_script("return typeof window.pwned") == "undefined"
    assert browser.execute_script("return document.scripts.length") == 0

    # a progress bar moves between two loads
    first = rows[HOSTILE_JOB_ID]["progress"]
    assert first is not None
    wait_until(
        lambda: (cached_progress(app, HOSTILE_JOB_ID) or 0.0) > first + 0.005,
        30,
        "the hostile job to progress",
    )
    browser.refresh()
    second = page_rows(browser)[HOSTILE_JOB_ID]["progress"]
    assert second > first, (first, second)

    # nothing was requested from another host: every request went to the exporter (or is inline data)
    exporter = urlsplit(app.url("/")).netloc
    urls = requested_urls(browser)
    assert any(urlsplit(url).netloc == exporter for url in urls), urls
    foreign = [url for url in urls if urlsplit(url).netloc != exporter and not url.startswith("data:")]
    assert foreign == []
    resources = browser.execute_script("return performance.getEntries().map(entry => entry.name)")
    assert all(urlsplit(name).netloc == exporter for name in resources if "://" in name), resources
    assert sim.job_status(102) == "failed"  # the simulator agrees with what the page showed
