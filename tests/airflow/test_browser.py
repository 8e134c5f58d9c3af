"""The users' path in a real browser (headless Chromium through selenium + chromedriver): log in,
open the trigger form of vlass_se_cube, trigger a field, open the run's Weblog tab (the plugin's
external view), and the weblog of a successful run. Screenshots go to tests/artifacts/ for people;
the test asserts on the pages' content."""
from __future__ import annotations

import shutil
import tempfile
import time

import pytest

from ccip_standalone import DAG, FIELD_ID, ROOT

pytestmark = [pytest.mark.airflow, pytest.mark.casa]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM and CHROMEDRIVER, "Debian packages chromium and chromium-driver are needed (.ci/run installs them)"
    profile = tempfile.mkdtemp(prefix="ccip-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
              f"--user-data-dir={profile}"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _shot(d, name):
    d.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _weblog_tab_text(d, run_url, wait, name):
    from selenium.webdriver.common.by import By

    d.get(run_url + "/plugin/ccip_weblog")
    frame = wait.until(lambda d: d.find_elements(By.TAG_NAME, "iframe") or False)[0]
    assert "/ccip/runs/" + DAG in frame.get_attribute("src")
    d.switch_to.frame(frame)
    try:
        wait.until(lambda d: "VLASS-SE-CUBE" in d.find_element(By.TAG_NAME, "body").text)
        text = d.find_element(By.TAG_NAME, "body").text
    finally:
        d.switch_to.default_content()
    _shot(d, name)
    return text


def _running_imaging_task_log(d, base, api, field_run, timeout=900):
    """Issue 17: the log page of an imaging task while it runs, with tclean's progress lines in it,
    screenshot while the task is still running (its state read over REST before and after)."""
    from urllib.parse import quote

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from ccip_standalone import tis_of

    run_page = f"{base}/dags/{DAG}/runs/{quote(field_run.run_id, safe='')}"
    t0, seen = time.time(), set()
    while time.time() - t0 < timeout:
        tis = tis_of(api, field_run.run_id)
        mapped = [t for (tid, _), t in tis.items() if tid == "image_spw_group"]
        running = [t for t in mapped if t["state"] == "running" and t["rendered_map_index"] != field_run.label]
        for ti in running:
            log = api.task_log(DAG, field_run.run_id, "image_spw_group", ti["try_number"], ti["map_index"])
            if "iterations done, peak residual" not in log:  # our progress line, not a CASA warning
                continue
            d.get(f"{run_page}/tasks/image_spw_group/mapped/{ti['map_index']}")
            try:
                WebDriverWait(d, 60).until(
                    lambda d: "iterations done, peak residual" in d.find_element(By.TAG_NAME, "body").text)
            except Exception:  # noqa: BLE001 - the task ended first: try the next one
                continue
            _shot(d, "00_running_imaging_task_log")
            now = tis_of(api, field_run.run_id)[("image_spw_group", ti["map_index"])]
            if now["state"] == "running":
                return
            seen.add(ti["rendered_map_index"])
        if mapped and all(t["state"] in ("success", "failed") for t in mapped):
            break
        time.sleep(1)
    raise AssertionError(f"no imaging task's log was seen in the UI while it ran (ended first: {sorted(seen)})")


def test_trigger_from_the_form_and_read_the_weblog_in_the_ui(standalone, browser, field_run, tiny_field, request):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    d, base, api = browser, standalone.base, standalone.api
    wait = WebDriverWait(d, 90)
    # a field whose folder lacks its PIMS: the run fails fast, and its weblog says why
    fid = "T10t06.J013000-023000"
    fdir = standalone.archive / fid
    fdir.mkdir()
    for f in ("reimaging_resources.tgz", "SEIP_parameter.list", "CCIP_parameter.list"):
        shutil.copy2(tiny_field / f, fdir / f)

    d.get(base + "/")
    wait.until(EC.presence_of_element_located((By.NAME, "username")))
    _shot(d, "01_login")
    d.find_element(By.NAME, "username").send_keys("admin")
    d.find_element(By.NAME, "password").send_keys(api.password)
    d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "/auth/login" not in d.current_url)

    _running_imaging_task_log(d, base, api, field_run)

    d.get(f"{base}/dags/{DAG}")
    wait.until(EC.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Trigger']"))).click()
    field = wait.until(EC.presence_of_element_located((By.ID, "element_field_id")))
    dialog = lambda: d.find_elements(By.XPATH, "//*[@role='dialog']")[-1]  # noqa: E731
    # the form's text arrives after its first field (seen empty once, coming from a task's log page)
    form = wait.until(lambda d: "VLASS field id" in dialog().text and dialog().text)
    assert "VLASS field id" in form and "tile and phase-centre token" in form and "imaging overrides" in form

    def trigger():  # a click by script: the "Failed to Trigger" toast may cover the button
        btn = dialog().find_elements(By.XPATH, ".//button[normalize-space()='Trigger']")[-1]
        wait.until(lambda d: btn.is_enabled())
        d.execute_script("arguments[0].scrollIntoView(); arguments[0].click();", btn)

    # a field id that breaks the pattern is refused at trigger time, with the reason shown in the form
    field.send_keys("T1t02.bad")
    trigger()
    wait.until(lambda d: "does not match" in d.find_element(By.TAG_NAME, "body").text)
    assert "Invalid input for param field_id" in d.find_element(By.TAG_NAME, "body").text
    _shot(d, "02_trigger_form_refuses_a_bad_field_id")
    assert f"/dags/{DAG}/runs/" not in d.current_url
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    field.send_keys(fid)
    _shot(d, "03_trigger_form")
    trigger()
    wait.until(lambda d: f"/dags/{DAG}/runs/" in d.current_url)
    run_url = d.current_url.split("?")[0]
    run_id = run_url.rsplit("/runs/", 1)[1]
    from urllib.parse import unquote

    run = api.wait_run(DAG, unquote(run_id), timeout=600)
    assert run["state"] == "failed" and run["conf"]["field_id"] == fid
    text = _weblog_tab_text(d, run_url, wait, "04_weblog_of_a_run_without_pims")
    assert f"VLASS-SE-CUBE: {fid}" in text and "Errors" in text and "no PIMS" in text

    # the weblog of the successful run of the tiny field, in its run's Weblog tab
    # (the field run's group failure cleared and re-run: conftest.cleared, resolved only now so the
    # field run goes on while the form is exercised)
    assert request.getfixturevalue("cleared").run["state"] == "success"
    from urllib.parse import quote

    t0 = time.time()
    text = _weblog_tab_text(d, f"{base}/dags/{DAG}/runs/{quote(field_run.run_id, safe='')}", wait, "05_weblog_of_a_run")
    assert f"VLASS-SE-CUBE: {FIELD_ID}" in text and "state: success" in text and "Errors" not in text
    assert "Images (pbcor cutouts: I Q U V)" in text and "hifv_restorepims resources" in text
    assert all(f"{n}. " in text for n in range(1, 13))
    assert time.time() - t0 < 120

    # issue 17: the run's CASA logs tab, the grid with the mapped groups, an imaging task's log with
    # tclean's progress lines
    run_page = f"{base}/dags/{DAG}/runs/{quote(field_run.run_id, safe='')}"
    d.get(run_page + "/plugin/ccip_casa_logs")
    frame = wait.until(lambda d: d.find_elements(By.TAG_NAME, "iframe") or False)[0]
    d.switch_to.frame(frame)
    try:
        wait.until(lambda d: "CASA logs of run" in d.find_element(By.TAG_NAME, "body").text)
        logs = d.find_element(By.TAG_NAME, "body").text
    finally:
        d.switch_to.default_content()
    assert "casa_commands.log" in logs and ".casa.log" in logs
    _shot(d, "06_casa_logs_tab")
    d.get(f"{base}/dags/{DAG}")
    wait.until(lambda d: "image_spw_group" in d.find_element(By.TAG_NAME, "body").text)
    _shot(d, "07_grid_with_the_mapped_groups")
    d.get(f"{run_page}/tasks/image_spw_group/mapped/0")
    wait.until(lambda d: "iterations done, peak residual" in d.find_element(By.TAG_NAME, "body").text)
    _shot(d, "08_imaging_task_log_with_casa_progress")
