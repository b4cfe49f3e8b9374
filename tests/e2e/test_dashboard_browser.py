#!/usr/bin/env python3
"""The dashboard in a real browser: Debian's chromium, headless, driven by
the pinned selenium of tools/requirements-browser.txt (a venv made by
tools/browser-venv.sh, which tools/install-deps.sh runs). On a journal
written by real syncs it loads the overview, a table page and the alerts:
every table is listed, the charts are SVG with bars, the stylesheet applies
under the Content-Security-Policy, and the browser logs no console error
(a CSP violation or a failed load would be one).

Skips (77) only when chromium is not installed and the harness does not
require every test to run (MBQ_REQUIRE_SERVICES=1, as tools/test.sh sets
after installing it)."""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


def need_browser():
    if CHROMIUM and CHROMEDRIVER:
        return
    if os.environ.get("MBQ_REQUIRE_SERVICES") == "1":
        print("FAIL: chromium or chromedriver missing (tools/install-deps.sh installs them)")
        sys.exit(1)
    print("SKIP: chromium and chromium-driver are not installed")
    sys.exit(77)


def reexec_in_venv():
    """Run again under the venv's python when selenium is not importable."""
    try:
        import selenium  # noqa: F401
        return
    except ImportError:
        pass
    src = os.environ.get("MBQ_SOURCE_DIR", os.path.join(HERE, "..", ".."))
    py = subprocess.run(["bash", os.path.join(src, "tools", "browser-venv.sh"), "--path"],
                        capture_output=True, check=True).stdout.decode().strip()
    if os.environ.get("MBQ_BROWSER_REEXEC") or not os.path.exists(py):
        print("FAIL: no selenium venv at %s: run 'bash tools/browser-venv.sh'" % py)
        sys.exit(1)
    os.environ["MBQ_BROWSER_REEXEC"] = "1"
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


if __name__ == "__main__":
    from mbqtest import require_services
    require_services()
    need_browser()
    reexec_in_venv()

from mbqtest import check, check_eq, mysql, private_emulator, run_cases  # noqa: E402
from test_dashboard import ALERTING, Server, dashboard_ws  # noqa: E402


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    # The console, errors included, through the driver's log endpoint.
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Offline: selenium must not look for a driver or a browser to download.
    os.environ["SE_OFFLINE"] = "true"
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def screenshot(driver, name):
    out = os.environ.get("MBQ_BUILD_DIR")
    if out:
        driver.save_screenshot(os.path.join(out, "dashboard-%s.png" % name))


def test_overview_table_page_and_alerts_in_chromium():
    from selenium.webdriver.common.by import By
    ws = dashboard_ws("dash_browser")
    mysql("CREATE TABLE orders LIKE items; INSERT INTO orders SELECT * FROM items", db=ws.db)
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"},
                     {"name": "orders", "primary_key": "id", "updated_column": "updated_at"},
                     {"name": "nosuchtable", "primary_key": "id", "updated_column": "updated_at"}],
                    extra=ALERTING % os.environ["MBQ_TEST_SMTP_PORT"])
    for i in range(3):
        mysql("UPDATE items SET val = 'v%d', updated_at = NOW(6) WHERE id <= %d" % (i, 10 * (i + 1)),
              db=ws.db)
        ws.sync()
    srv = Server(ws)
    driver = browser()
    try:
        driver.get(srv.url + "/")
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.table-row")
        check_eq(sorted(r.get_attribute("data-table") for r in rows),
                 ["items", "nosuchtable", "orders"], "every table on the overview")
        bad = driver.find_element(By.CSS_SELECTOR, "tr[data-table='nosuchtable'] .badge")
        check_eq(bad.text, "failed", "the failing table's status")
        check("need attention" in driver.find_element(By.CSS_SELECTOR, ".banner").text,
              "the banner says which tables need attention")
        # The stylesheet loaded despite default-src 'none': style-src 'self'.
        bg = driver.find_element(By.TAG_NAME, "header").value_of_css_property("background-color")
        check_eq(bg, "rgba(26, 95, 180, 1)", "style.css applied")
        screenshot(driver, "overview")
        check_eq(console_errors(driver), [], "no console error on the overview")

        driver.find_element(By.CSS_SELECTOR, "tr[data-table='items'] a").click()
        check(driver.current_url.endswith("/table/items"), driver.current_url)
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        check_eq(len(charts), 2, "two history charts")
        bars = driver.find_elements(By.CSS_SELECTOR, "svg#chart-rows rect.bar")
        check_eq(len(bars), 3, "a bar per finished run")
        check(charts[0].size["width"] > 300, "the chart is drawn: %r" % charts[0].size)
        check(len(driver.find_elements(By.CSS_SELECTOR, "svg#chart-stages rect.bar")) >= 3,
              "stage bars")
        screenshot(driver, "table")
        check_eq(console_errors(driver), [], "no console error on the table page")

        driver.get(srv.url + "/table/nosuchtable")
        check("nosuchtable" in driver.find_element(By.ID, "errors").text, "its last errors")
        driver.get(srv.url + "/alerts")
        check(driver.find_element(By.ID, "alerts").is_displayed(), "the alerts page")
        # Every run alerted by email (sent) and Telegram (failed: nothing
        # listens at its API URL).
        badges = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#alerts .badge")]
        check(badges.count("sent") == 3 and badges.count("failed") == 3, "alerts: %r" % badges)
        screenshot(driver, "alerts")
        check_eq(console_errors(driver), [], "no console error on the other pages")
    finally:
        driver.quit()
        srv.stop()
    ws.cleanup()


if __name__ == "__main__":
    private_emulator()
    run_cases([test_overview_table_page_and_alerts_in_chromium])
