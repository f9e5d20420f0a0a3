"""The leaderboard page in a real headless Chromium (selenium): sorting, filtering, escaping, no console errors.

Needs selenium, Chromium and chromedriver (Debian: `apt-get install chromium chromium-driver`); skipped, with
the reason, where one is missing. A screenshot of the page is saved to $GENBENCH_TEST_ARTIFACTS (else the
test's tmp_path) and its path printed.
"""

import hashlib
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genbench import results as R
from genbench.report import leaderboard

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver")
                                                 else None)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium browser (apt-get install chromium)"),
    pytest.mark.skipif(CHROMEDRIVER is None, reason="no chromedriver (apt-get install chromium-driver)"),
]

SCRIPT = "<script>alert(1)</script>"
FID = "fid[lenet-fashion-mnist]"
# submitted samples on fashion-mnist: name -> FID of each seed (None: recorded as not computed)
SAMPLERS = {"sampler-a": [30.0], "sampler-b": [20.0, 22.0], SCRIPT: [25.0], "sampler-c": [None]}


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def result(kind, *, model, dataset, protocol, seed, metrics, preset=None, train_seconds=None) -> dict:
    r = {"schema": R.SCHEMA, "kind": kind, "run_id": f"{_slug(model)}-{_slug(protocol)}-s{seed}",
         "created": "2026-03-01T00:00:00+00:00", "model": model, "dataset": dataset, "seed": seed,
         "protocol": {"name": protocol, "version": 2 if kind == "training run" else 1, "hash": sha(protocol)[:23],
                      "tier": protocol.rsplit("/", 1)[-1] if kind == "training run" else None},
         "metrics": metrics,
         "compute": {"parameters": 1000 if train_seconds else None, "train_seconds": train_seconds, "device": "cpu",
                     "sample_images_per_s": None},
         "provenance": {"genbench_version": "0.1.0", "git_commit": "abc", "torch_version": "2",
                        "data_hash": {"samples": sha(model + str(seed))}, "checkpoint_sha256": None}}
    if preset:
        r["preset"] = preset
    return r


def _slug(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()[:8]


def bpd(v, split):
    return R.metric(v, higher_is_better=False, n=200, split=split, estimator="elbo", unit="bits/dim")


def fid(v):
    return R.metric(v, higher_is_better=False, n=1000, reference="fashion-mnist:train",
                    extractor="lenet-fashion-mnist", extractor_sha256=sha("lenet"))


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """Results laid out as `leaderboard.submit` lays them (results/<run_id>/result.json + samples.png), on two
    datasets and four protocols, some with several seeds, then built."""
    board = tmp_path_factory.mktemp("browser") / "board"
    found = []
    for seed in range(3):
        found.append(result("training run", model="vae", preset="smoke", dataset="digits",
                            protocol="digits/vae/smoke", seed=seed, train_seconds=5.0 + seed,
                            metrics={"bpd": bpd(2.0 + 0.1 * seed, "digits:test")}))
    found.append(result("training run", model="vae", preset="small", dataset="digits", protocol="digits/vae/quick",
                        seed=0, train_seconds=300.0, metrics={"bpd": bpd(1.5, "digits:test")}))
    found.append(result("training run", model="vae", preset="smoke", dataset="fashion-mnist",
                        protocol="fashion-mnist/vae/smoke", seed=0, train_seconds=6.0,
                        metrics={"bpd": bpd(3.0, "fashion-mnist:test")}))
    for name, values in SAMPLERS.items():
        for seed, v in enumerate(values):
            found.append(result("submitted samples", model=name, dataset="fashion-mnist:train",
                                protocol="score/lenet-fashion-mnist", seed=seed, metrics={FID: fid(v)}))
    for i, r in enumerate(found):
        folder = board / "results" / r["run_id"]
        R.write_file(folder / "result.json", r)
        pixels = np.random.default_rng(i).integers(0, 256, (40, 40), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "samples.png")
    leaderboard.build(board, formats=("png",))
    return board


@pytest.fixture(scope="module")
def driver():
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1100"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield d
    d.quit()


@pytest.fixture
def page(driver, board):
    driver.get((board / "index.html").as_uri())
    yield driver
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, f"console errors: {severe}"


def table(driver, dataset):
    return driver.find_element(By.CSS_SELECTOR, f'table.leaderboard[data-dataset="{dataset}"]')


def column_index(tbl, title_part):
    heads = tbl.find_elements(By.CSS_SELECTOR, "thead th")
    (i,) = [i for i, th in enumerate(heads) if title_part in (th.get_attribute("title") or "")]
    return i, heads[i]


def column_values(tbl, i):
    """(entry, value or None) of each body row, in page order."""
    out = []
    for tr in tbl.find_elements(By.CSS_SELECTOR, "tbody tr"):
        td = tr.find_elements(By.TAG_NAME, "td")[i]
        v = td.get_attribute("data-value")
        out.append((tr.get_attribute("data-entry"), None if v is None else float(v)))
    return out


def test_page_loads_without_console_errors_and_shows_everything(page, board):
    assert page.title.startswith("genbench leaderboard")
    rows = page.find_elements(By.CSS_SELECTOR, "table.leaderboard tbody tr")
    # digits: vae (smoke), vae (small); fashion-mnist: vae (smoke) and four samplers
    assert len(rows) == 7 and all(r.is_displayed() for r in rows)
    seeds = {r.get_attribute("data-entry") + " " + r.get_attribute("data-protocol"):
             r.find_element(By.CSS_SELECTOR, "td.seeds").get_attribute("data-value") for r in rows}
    assert seeds["vae (smoke) digits/vae/smoke@2"] == "3" and seeds["sampler-b score/lenet-fashion-mnist@1"] == "2"
    # every image (inlined thumbnails, plots next to the page) decodes: nothing blocked, nothing missing
    images = page.find_elements(By.TAG_NAME, "img")
    assert len(images) >= 7 + 3
    assert all(page.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
               for img in images)
    # provenance of each run, on expanding the seeds cell
    details = rows[0].find_element(By.CSS_SELECTOR, "td.seeds details")
    details.find_element(By.TAG_NAME, "summary").click()
    assert "run" in details.text and "created" in details.text


def test_clicking_a_header_sorts_by_its_numbers_missing_last(page):
    tbl = table(page, "fashion-mnist")
    i, th = column_index(tbl, f"{FID}: lower is better; n 1000")
    means = {name: (sum(v) / len(v) if None not in v else None) for name, v in SAMPLERS.items()}
    ranked = sorted((m, name) for name, m in means.items() if m is not None)

    th.find_element(By.TAG_NAME, "button").click()
    assert th.get_attribute("aria-sort") == "ascending"  # lower is better: best first on the first click
    got = column_values(tbl, i)
    assert [name for name, v in got if v is not None] == [name for _, name in ranked]
    assert [v for _, v in got if v is not None] == pytest.approx([m for m, _ in ranked])
    assert all(v is None for _, v in got[len(ranked):]), got  # missing values last

    th.find_element(By.TAG_NAME, "button").click()
    assert th.get_attribute("aria-sort") == "descending"
    got = column_values(tbl, i)
    assert [name for name, v in got if v is not None] == [name for _, name in reversed(ranked)]
    assert all(v is None for _, v in got[len(ranked):]), got  # still last

    _, other = column_index(tbl, "number of parameters")
    other.find_element(By.TAG_NAME, "button").click()
    assert other.get_attribute("aria-sort") == "ascending" and th.get_attribute("aria-sort") is None


def test_dataset_and_protocol_filters_hide_other_rows(page):
    Select(page.find_element(By.ID, "filter-dataset")).select_by_value("digits")
    rows = page.find_elements(By.CSS_SELECTOR, "table.leaderboard tbody tr")
    shown = [r for r in rows if r.is_displayed()]
    assert {r.get_attribute("data-dataset") for r in shown} == {"digits"} and len(shown) == 2
    assert not table(page, "fashion-mnist").is_displayed()
    figures = page.find_elements(By.CSS_SELECTOR, "#plots figure")
    assert figures and all((f.get_attribute("data-dataset") == "digits") == f.is_displayed() for f in figures)
    assert "2 of 7 entries" in page.find_element(By.ID, "status").text

    Select(page.find_element(By.ID, "filter-protocol")).select_by_value("digits/vae/quick@2")
    shown = [r.get_attribute("data-protocol") for r in rows if r.is_displayed()]
    assert shown == ["digits/vae/quick@2"]

    Select(page.find_element(By.ID, "filter-dataset")).select_by_value("")
    Select(page.find_element(By.ID, "filter-protocol")).select_by_value("")
    assert all(r.is_displayed() for r in rows)


def test_a_script_in_a_name_is_text(page):
    cells = [td for td in page.find_elements(By.CSS_SELECTOR, "td.entry")
             if td.get_attribute("textContent") == SCRIPT]
    assert len(cells) == 1 and cells[0].text == SCRIPT
    with pytest.raises(NoAlertPresentException):
        _ = page.switch_to.alert
    assert page.execute_script("return document.scripts.length") == 2  # the data block and the page's own


def test_screenshot(page, tmp_path):
    out = Path(os.environ.get("GENBENCH_TEST_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    tbl = table(page, "fashion-mnist")
    _, th = column_index(tbl, f"{FID}: lower is better; n 1000")
    th.find_element(By.TAG_NAME, "button").click()
    path = out / "leaderboard.png"
    assert page.save_screenshot(str(path))
    print(f"leaderboard screenshot: {path}")
    with Image.open(path) as im:
        assert im.size[0] >= 1000 and math.prod(im.size) > 0
