"""Real cluster + real browser: the web dashboard of a running local cluster, in headless Chromium.

Logs in through `/?token=` over the host's TLS API (the browser keeps only the session cookie),
sees every machine and the leader, starts a unit with fleetctl and sees it appear on the page
with the host systemd reports it active on, without the page reloading. A screenshot is saved
under test-artifacts/ (or $FLEET_TEST_ARTIFACTS) and its path printed.

Needs Debian's `chromium` and `chromium-driver` (make deps) and selenium ([dev] extra); the
driver is given explicitly so Selenium Manager downloads nothing. Without them the test skips,
or fails under CI=true.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import LocalCluster

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "units" / "hello.service"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
UNIT = "dashboard-hello.service"
WAIT = 90  # seconds for the page to show what the cluster did (placement + start + state report)

pytestmark = pytest.mark.cluster


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Chromium driven by selenium through Debian's chromedriver."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    if missing:
        _unavailable(f"{', '.join(missing)} missing (make deps installs chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--ignore-certificate-errors"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def artifacts_dir() -> Path:
    path = Path(os.environ.get("FLEET_TEST_ARTIFACTS") or REPO / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_for(driver, what: str, script: str, timeout: float = WAIT):
    """Wait until `script` (JavaScript returning a value) returns something truthy; return it."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(
            lambda d: d.execute_script(script))
    except TimeoutException:
        shot = artifacts_dir() / "dashboard-timeout.png"
        driver.save_screenshot(str(shot))
        raise AssertionError(f"the dashboard never showed {what} within {timeout} s "
                             f"(screenshot: {shot})") from None


def active_on(cluster: LocalCluster, unit: str) -> list[str]:
    return [h for h in cluster.running_hosts()
            if cluster.host_exec(h, "systemctl", "is-active", unit, check=False).stdout.strip() == "active"]


def test_dashboard_shows_the_cluster_and_a_started_unit_live(
        cluster: LocalCluster, browser, tmp_path: Path) -> None:
    host = cluster.running_hosts()[0]
    base = cluster.api_url(host)
    browser.get(f"{base}/?token={cluster.api_token()}")
    assert browser.current_url == base + "/", "the login must redirect and drop the token from the URL"
    assert {c["name"] for c in browser.get_cookies()} == {"fleetd_session"}

    machines = {cluster.machine_id(h) for h in cluster.running_hosts()}
    shown = wait_for(browser, "every machine", f"""
        const ids = [...document.querySelectorAll('[data-machine]')].map(e => e.dataset.machine);
        return {sorted(machines)!r}.every(m => ids.includes(m)) && ids;""")
    assert set(shown) == machines
    leader = wait_for(browser, "the leader", "const t = document.getElementById('stat-leader').title;"
                      " return t && t !== 'no engine leads now' && t;")
    assert leader in machines
    wait_for(browser, "the live indicator",
             "return document.getElementById('live').dataset.state === 'live';")
    assert browser.execute_script(f"return !document.querySelector('[data-unit=\"{UNIT}\"]');")

    browser.execute_script("window.__sameDocument = true;")  # lost if the page reloads
    unit_file = tmp_path / UNIT
    unit_file.write_text(HELLO.read_text())
    cluster.fleetctl("start", str(unit_file))

    row = f"document.querySelector('[data-unit=\"{UNIT}\"]')"
    text = wait_for(browser, f"{UNIT} active", f"const r = {row}; "
                    "return r && r.textContent.includes('active (running)') && r.textContent;")
    running_on = active_on(cluster, UNIT)
    assert len(running_on) == 1, f"systemd reports {UNIT} active on {running_on}"
    assert cluster.machine_id(running_on[0])[:12] in text, text
    assert "launched" in text
    assert browser.execute_script("return window.__sameDocument === true;"), "the page reloaded"
    assert browser.execute_script("return document.getElementById('units-window').textContent;") == \
        "1–1 of 1"
    assert browser.execute_script("return document.getElementById('stat-units').textContent;") == "1"

    browser.find_element("id", "filter").send_keys("no-such-unit")  # the server filters by glob
    wait_for(browser, "the filter applied", "return document.getElementById('units-window')"
             ".textContent === '0–0 of 0';")
    assert browser.execute_script(f"return !{row};")

    shot = artifacts_dir() / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    print(f"dashboard screenshot: {shot}")
