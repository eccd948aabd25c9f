"""The study page in a real browser (Debian's headless chromium driven by selenium through chromedriver): a whole
study clicked and typed through, a reload midway, the saved answers file scored by `invkit study score`."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from _cli import cli
from test_study import A, B, N, bench_dir  # noqa: F401 - the module's bench fixture

from invkit.evaluation.study import make_study

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
webdriver = pytest.importorskip("selenium.webdriver", reason='needs selenium: pip install -e ".[test]"')

pytestmark = [
    # ~15 s on a loaded 2-core machine (a tiny bench, then chromium's start): run by `pytest -m slow`, as in CI
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None or shutil.which(CHROMEDRIVER) is None,
        reason="needs Debian's chromium and chromedriver (apt-get install -y chromium chromium-driver) to run the page",
    ),
]


@pytest.fixture
def browser(tmp_path):
    """Headless chromium with downloads going to ``tmp_path/downloads``; nothing fetched from the network
    (chromedriver given by path, so Selenium Manager is never asked to find or download one)."""
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1100,900",
    ):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait_for(condition, timeout: float = 10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_click_and_type_through_a_study_reload_save_and_score(bench_dir, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    files = make_study(bench_dir, A, B, tmp_path / "study", n=N, seed=0)
    key = json.loads(files.key.read_text())
    a_left = [t["left"] == "a" for t in key["trials"]]
    chose_a = [True, True, False, True, True, True, False, True]  # 6 of 8 for A
    sides = ["left" if a == left else "right" for a, left in zip(chose_a, a_left, strict=True)]

    d = browser
    d.get(files.page.as_uri())
    wait_for(lambda: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    progress = lambda: d.find_element(By.ID, "progress").text  # noqa: E731
    assert progress() == f"0 / {N}"
    # the images decode in the browser, at the upscaled size, drawn pixelated
    size = d.execute_script(
        "const i = document.getElementById('original-image'); return [i.complete, i.naturalWidth, "
        "getComputedStyle(i).imageRendering];"
    )
    assert size[0] and size[1] == 280 and size[2] == "pixelated"
    # trial images change from trial to trial: what is shown is the trial's
    first_left = d.find_element(By.ID, "left-image").get_attribute("src")

    def press(key: str) -> None:
        d.find_element(By.TAG_NAME, "body").send_keys(key)

    keys = {"left": Keys.ARROW_LEFT, "right": Keys.ARROW_RIGHT}
    digits = {"left": "1", "right": "2"}
    d.find_element(By.ID, sides[0]).click()  # trials 0-1: mouse clicks
    assert progress() == f"1 / {N}"
    shown = d.execute_script("return JSON.parse(document.getElementById('study-data').textContent).trials[1].left;")
    assert d.find_element(By.ID, "left-image").get_attribute("src") == shown != first_left  # the next trial's
    d.find_element(By.ID, sides[1]).click()
    press(keys[sides[2]])  # trials 2-3: arrow keys
    press(keys[sides[3]])
    assert progress() == f"4 / {N}"

    d.refresh()  # the answers so far survive a reload (localStorage)
    wait_for(lambda: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    assert progress() == f"4 / {N}"
    assert d.find_element(By.ID, "trial-number").text == f"Image 5 of {N}"

    press(digits[sides[4]])  # trials 4-5: the digit keys
    press(digits[sides[5]])
    wrong = "right" if sides[6] == "left" else "left"
    d.find_element(By.ID, wrong).click()  # a slip on trial 6 ...
    assert progress() == f"7 / {N}"
    press(Keys.BACKSPACE)  # ... taken back
    assert progress() == f"6 / {N}"
    d.find_element(By.ID, sides[6]).click()
    press(keys[sides[7]])
    assert progress() == f"{N} / {N}"
    assert d.find_element(By.ID, "done").is_displayed() and not d.find_element(By.ID, "trial").is_displayed()
    press(keys["left"])  # a key after the last trial changes nothing
    assert progress() == f"{N} / {N}"

    d.find_element(By.ID, "save").click()  # no subject id yet: refused, nothing saved
    assert "subject id" in d.find_element(By.ID, "save-status").text
    field = d.find_element(By.ID, "subject")
    field.send_keys("p1 2")  # typing digits into the field answers nothing
    assert progress() == f"{N} / {N}"
    d.find_element(By.ID, "save").click()
    saved = wait_for(lambda: [p for p in browser.downloads.glob("*.json")])
    assert [p.name for p in saved] == [f"answers-{files.study_id}-p1_2.json"]
    doc = json.loads(wait_for(lambda: saved[0].read_text() or None))
    assert doc == json.loads(d.find_element(By.ID, "saved").get_attribute("value"))  # the same JSON shown on the page
    assert doc["subject"] == "p1 2" and doc["complete"] and doc["study_id"] == files.study_id
    assert [(a["trial"], a["side"]) for a in doc["answers"]] == list(enumerate(sides))
    assert all(a["rt_ms"] >= 0 for a in doc["answers"])

    answers = Path(shutil.copy(saved[0], tmp_path / "p1.json"))
    result = cli(["study", "score", str(answers), "--key", str(files.key), "--out", str(tmp_path / "score.json")])
    assert result.exit_code == 0, result.output
    pooled = json.loads((tmp_path / "score.json").read_text())["pooled"]
    assert (pooled["prefer_a"], pooled["n"]) == (sum(chose_a), N)
