"""The plugin's pages in a real browser (Debian's chromium, driven by Selenium), served by a
real Airflow API server on a real PostgreSQL.

The state dir is built by tests/ui/pipeline_state.py from known numbers, so each page must
show exactly those: the supervisor's verdicts and the last progress record per query, the
dead-letter count, the revenue per category summed in plain Python over the events, and the
failed exactly-once check of the crafted quality history.  Without a login every page and
file is refused.  Screenshots land in ``state/screenshots/`` of the checkout.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from include.runtime.postgres import PG_SYSTEM_USER, Postgres
from include.runtime.secrets import platform_secrets
from include.settings import Settings
from include.settings.base import PROJECT_ROOT
from include.ui.vendor import remaining_cdn_addresses
from tests.ui.pipeline_state import (
    DEAD_LETTERS,
    DLQ_PER_BATCH,
    QUALITY_RUN_ID,
    QUERIES,
)

pytestmark = pytest.mark.ui

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOTS = PROJECT_ROOT / "state" / "screenshots"
PAGES = [
    "/ecom/health",
    "/ecom/quality",
    "/ecom/quality/run?id=x",
    "/ecom/backfill",
    "/ecom/backfill/run?dag_id=backfill&run_id=x",
    "/ecom/quality/docs/index.html",
    "/ecom/static/ecom.css",
    "/ecom/vendor/jquery/dist/jquery.min.js",
]


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: the UI tests need Debian's chromium and "
            "chromium-driver (make setup installs them, or: apt-get install chromium "
            "chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait(driver, condition, what: str, timeout: float = 30):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException as exc:
        raise AssertionError(
            f"browser: timed out waiting for {what} at {driver.current_url}"
        ) from exc


def screenshot(driver, name: str) -> Path:
    """A full-height screenshot of the current page (or frame) as state/screenshots/<name>."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(1000, min(int(height) + 40, 4000)))
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


def log_in(driver, base: str, settings: Settings) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    password = platform_secrets(settings)["airflow_admin_password"]
    # A fresh login: FAB's login page sends a logged-in browser straight on, without a form.
    driver.delete_all_cookies()
    driver.get(f"{base}/auth/login?next=%2F")
    wait(driver, lambda d: d.find_elements(By.NAME, "username"), "the login form")
    driver.find_element(By.NAME, "username").send_keys(settings.airflow.admin_user)
    driver.find_element(By.NAME, "password").send_keys(password + Keys.ENTER)
    wait(driver, lambda d: "/auth/login" not in d.current_url, "the login to finish")


def text_of(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text.strip()


def test_every_page_and_file_is_refused_without_a_login(airflow, browser) -> None:
    from selenium.webdriver.common.by import By

    settings, _, base = airflow
    for page in PAGES:
        answer = requests.get(base + page, timeout=30)
        assert answer.status_code == 401, f"{page} answered {answer.status_code} without a login"
        forged = requests.get(base + page, cookies={"_token": "not-a-jwt"}, timeout=30)
        assert forged.status_code == 401, f"{page} accepted a forged token"
    # Airflow's own API too: authentication is on, there is no anonymous access.
    assert requests.get(f"{base}/api/v2/dags", timeout=30).status_code == 401
    browser.delete_all_cookies()
    browser.get(base + "/ecom/health")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Log in to Airflow first"
    assert "Pipeline health" not in browser.page_source
    screenshot(browser, "refused-without-login.png")

    # Scripts use a bearer token from Airflow's own token endpoint.
    answer = requests.get(f"{base}/ecom/health", headers=bearer(settings, base), timeout=30)
    assert answer.status_code == 200 and "Pipeline health" in answer.text


def bearer(settings: Settings, base: str) -> dict[str, str]:
    """The Authorization header of a token from Airflow's own token endpoint."""
    token = requests.post(
        f"{base}/auth/token",
        json={
            "username": settings.airflow.admin_user,
            "password": platform_secrets(settings)["airflow_admin_password"],
        },
        timeout=30,
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_bad_paths_are_plain_404s_and_head_answers_like_get(airflow) -> None:
    settings, _, base = airflow
    auth = bearer(settings, base)
    bad = [
        "/ecom/quality/docs/index%00.html",  # a NUL byte: was a 500
        "/ecom/quality/docs/%00",
        "/ecom/quality/docs/" + "a" * 5000,  # longer than a file name may be
        "/ecom/quality/docs/..%2F..%2F..%2Fetc%2Fpasswd",
        "/ecom/vendor/",  # no listing of node_modules ...
        "/ecom/vendor/jquery/package.json",  # ... nor files the reports do not load
        "/ecom/vendor/lodash/lodash.js",
        "/ecom/static/<script>alert(1)</script>",
        "/ecom/no-such-page",
    ]
    for path in bad:
        answer = requests.get(base + path, headers=auth, timeout=30)
        assert answer.status_code == 404, f"{path} answered {answer.status_code}"
        assert answer.headers["content-type"].startswith("text/plain"), path
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert "script" not in answer.text and "passwd" not in answer.text, answer.text
    # The files the reports do load are still served.
    assert requests.get(base + PAGES[-1], headers=auth, timeout=30).status_code == 200
    for page in ("/ecom/health", "/ecom/quality", "/ecom/static/ecom.css", PAGES[-1]):
        got = requests.get(base + page, headers=auth, timeout=30)
        head = requests.head(base + page, headers=auth, timeout=30)
        assert head.status_code == got.status_code == 200, page
        assert head.content == b"", page
        assert head.headers["content-type"] == got.headers["content-type"], page


def test_health_page_two_clicks_from_airflow_shows_the_pipeline(airflow, browser) -> None:
    from selenium.webdriver.common.by import By

    settings, crafted, base = airflow
    log_in(browser, base, settings)
    # Two clicks from any Airflow page: Browse, then Pipeline health.
    wait(browser, lambda d: d.find_elements(By.XPATH, "//button[@aria-label='Browse']"), "nav")
    browser.find_element(By.XPATH, "//button[@aria-label='Browse']").click()
    item = wait(
        browser,
        lambda d: [
            e
            for e in d.find_elements(By.XPATH, "//*[@role='menuitem']")
            if e.text == "Pipeline health"
        ],
        "the Pipeline health entry in the Browse menu",
    )
    item[0].click()
    frame = wait(browser, lambda d: d.find_elements(By.TAG_NAME, "iframe"), "the plugin frame")
    assert frame[0].get_attribute("src").endswith("/ecom/health")
    browser.switch_to.frame(frame[0])
    try:
        wait(browser, lambda d: d.find_elements(By.ID, "queries"), "the queries table")
        assert text_of(browser, "#dead-letters .big") == str(DEAD_LETTERS)
        # Each batch of the last 10 minutes read 600 records and refused DLQ_PER_BATCH.
        alarm = text_of(browser, "#dead-letter-alarm")
        assert f"({100 * DLQ_PER_BATCH / 600:.0f}%) went to the dead letters" in alarm, alarm
        assert text_of(browser, "#last-quality .big") == "FAIL"
        for query, (state, lag, rate, batch_ms, state_rows) in QUERIES.items():
            row = f"#queries tr[data-query='{query}']"
            assert text_of(browser, f"{row} .state") == state, query
            assert text_of(browser, f"{row} .lag") == f"{lag:,}", query
            expected_rate = "-" if rate is None else f"{rate:,.1f}"
            assert text_of(browser, f"{row} .input-rate") == expected_rate, query
            expected_batch = "-" if batch_ms is None else f"{batch_ms / 1000:,.1f}"
            assert text_of(browser, f"{row} .batch-duration") == expected_batch, query
            expected_rows = "-" if state_rows is None else f"{state_rows:,}"
            assert text_of(browser, f"{row} .state-rows") == expected_rows, query
            assert text_of(browser, f"{row} .late") == "2", query  # one each 5 and 6 min ago
        shown = {
            cells[0].text: cells[1].text
            for cells in (
                tr.find_elements(By.TAG_NAME, "td")
                for tr in browser.find_elements(By.CSS_SELECTOR, "#revenue-by-category tbody tr")
            )
        }
        assert shown == {c: f"{v:.2f}" for c, v in sorted(crafted.revenue_by_category.items())}
        charts = browser.find_elements(By.CSS_SELECTOR, "figure svg polyline")
        # Revenue: the 8 largest categories and "other"; funnel 3 lines, conversion 2.
        assert len(crafted.revenue_by_category) == 11
        assert len(charts) == 9 + 3 + 2
        revenue_chart = browser.find_element(By.CSS_SELECTOR, "svg.chart[aria-label^='Revenue']")
        legend = browser.execute_script(
            """
            const svg = arguments[0], box = svg.getBoundingClientRect();
            return [...svg.querySelectorAll('.legend-entry text')].map(t => {
              const r = t.getBoundingClientRect();
              return [t.textContent, r.left >= box.left && r.right <= box.right
                      && r.top >= box.top && r.bottom <= box.bottom];
            });""",
            revenue_chart,
        )
        assert len(legend) == 9 and all(inside for _, inside in legend), legend
        colours = [
            line.get_attribute("stroke")
            for line in revenue_chart.find_elements(By.TAG_NAME, "polyline")
        ]
        assert len(set(colours)) == len(colours) == 9, colours
        screenshot(browser, "pipeline-health.png")
    finally:
        browser.switch_to.default_content()


def test_quality_pages_show_the_failed_check_and_the_data_docs_render_offline(
    airflow, browser
) -> None:
    from selenium.webdriver.common.by import By

    settings, crafted, base = airflow
    log_in(browser, base, settings)
    browser.get(f"{base}/ecom/quality")
    assert text_of(browser, "#latest-status") == "fail"
    duplicate = (
        "section[data-table='revenue_by_category'] "
        "tr[data-check='no key is written twice (exactly once)']"
    )
    assert text_of(browser, f"{duplicate} .status") == "fail"
    assert text_of(browser, f"{duplicate} .observed") == "1"
    runs = browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
    assert len(runs) == len(crafted.quality_runs)
    columns = browser.find_elements(By.CSS_SELECTOR, "#history-matrix thead th")
    assert len(columns) == 2 + len(crafted.quality_runs)
    screenshot(browser, "data-quality.png")

    # The task's "Quality report" link leads here.
    browser.get(f"{base}/ecom/quality/run?dag_id=data_quality&run_id={quote(QUALITY_RUN_ID)}")
    assert text_of(browser, "#run-status") == "fail"
    screenshot(browser, "quality-run.png")

    browser.get(f"{base}/ecom/quality/docs/index.html")
    assert remaining_cdn_addresses(browser.page_source) == []
    # bootstrap-table (from the plugin, not a CDN) has turned the results into a table.
    wait(
        browser,
        lambda d: "Showing 1 to" in d.find_element(By.TAG_NAME, "body").text,
        "the Data Docs results table",
    )
    screenshot(browser, "data-docs.png")


def test_postgres_asks_every_local_user_for_a_password_and_airflow_is_no_superuser(
    airflow,
) -> None:
    """The socket is no open door: before, any local user logged in over it as a superuser."""
    settings, _, _ = airflow
    postgres = Postgres(settings)
    psql = [
        *(str(postgres.bin_dir / "psql"), "-w", "-h", str(postgres.socket_dir)),
        *("-p", str(postgres.port), "-U", settings.postgres.user, "-d", settings.postgres.database),
        *("-c", "SELECT 1"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    assert postgres.socket_dir.stat().st_mode & 0o777 == 0o700
    server_user: dict = {}
    if os.geteuid() == 0:
        server = pwd.getpwnam(PG_SYSTEM_USER)
        assert postgres.socket_dir.stat().st_uid == server.pw_uid
        server_user = {"user": server.pw_uid, "group": server.pw_gid, "extra_groups": []}
        # Another local user does not even reach the socket.
        other = subprocess.run(
            ["runuser", "-u", "nobody", "--", *psql], capture_output=True, text=True, env=env
        )
        assert other.returncode != 0, other.stdout
        assert "connection to server" in other.stderr and "Permission denied" in other.stderr
    # The server's own user reaches it, and still needs the password (it was "trust").
    refused = subprocess.run(psql, capture_output=True, text=True, env=env, **server_user)
    assert refused.returncode != 0 and "password" in refused.stderr, refused.stderr
    password = platform_secrets(settings)["postgres_password"]
    allowed = subprocess.run(
        psql, capture_output=True, text=True, env={**env, "PGPASSWORD": password}, **server_user
    )
    assert allowed.returncode == 0, allowed.stderr
    # Airflow's role owns its database and is no superuser (no COPY ... TO PROGRAM).
    conn = postgres.connect()
    with conn.cursor() as cur:
        cur.execute(
            "SELECT r.rolsuper, r.rolcreaterole, pg_get_userbyid(d.datdba) "
            "FROM pg_roles r, pg_database d WHERE r.rolname = %s AND d.datname = %s",
            (settings.postgres.user, settings.postgres.database),
        )
        assert cur.fetchone() == (False, False, settings.postgres.user)
    conn.close()
