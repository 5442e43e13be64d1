"""The report and the comparison page in a real browser: headless Chromium opens them from disk
with no console errors, every inlined image decodes, the table sorts on a click, and a screenshot
of each is saved as a test artifact ($PYTEST_ARTIFACTS, else tests/artifacts/)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from labelless.report import RetrievalExamples, write_report
from labelless.report.compare import write_comparison

INSTALL_HINT = (
    "apt-get install -y chromium chromium-driver (and pip install -e .[dev] for selenium)"
)


def _first(*names: str) -> str | None:
    return next((path for path in map(shutil.which, names) if path), None)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason=f"selenium missing: {INSTALL_HINT}"
    )
    binary = _first("chromium", "chromium-browser", "google-chrome")
    driver_path = _first("chromedriver", "chromium.chromedriver")
    if binary is None or driver_path is None:
        pytest.skip(f"headless Chromium or chromedriver not installed: {INSTALL_HINT}")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def artifacts() -> Path:
    root = Path(os.environ.get("PYTEST_ARTIFACTS") or Path(__file__).parents[1] / "artifacts")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _open(driver, page: Path) -> list[dict]:
    driver.get_log("browser")  # drop entries of an earlier page
    driver.get(page.resolve().as_uri())
    loaded = driver.execute_script(
        "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    )
    assert loaded, "an inlined image did not decode"
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _metrics(knn: float, k: int) -> dict:
    return {
        "knn_top1": knn,
        "linear_top1": knn + 0.02,
        "rankme": 40.0 * knn,
        "protocol": {
            "knn": {"k": k, "temperature": 0.1},
            "linear": {"epochs": 100, "weight_decays": [0.0, 1e-4], "weight_decay": 1e-4},
            "preprocessing": {"input_size": 32, "mean": [0.5], "std": [0.25]},
            "test_split": "digits/test",
            "train_samples": 1437,
            "test_samples": 360,
        },
    }


def test_report_and_comparison_render_without_console_errors(browser, tmp_path, artifacts):
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / "logs" / "metrics.csv").write_text(
        "epoch,step,train/loss,train/lr,monitor/knn_top1\n0,0,5.0,0.1,\n0,1,4.0,0.2,0.5\n"
    )
    (run / "metrics.json").write_text(json.dumps(_metrics(0.8, 20)))
    (run / "config.yaml").write_text("method: {name: simclr}\n")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    embeddings = rng.normal(size=(3, 8))[labels] * 3 + rng.normal(size=(60, 8))
    images = rng.integers(0, 256, (3, 5, 3, 16, 16), dtype=np.uint8)
    retrieval = RetrievalExamples(images[:, 0], np.arange(3), images, np.zeros((3, 5), int))
    report = write_report(
        run,
        embeddings=embeddings,
        labels=labels,
        class_names=["a", "b", "c"],
        predictions=labels,
        retrieval=retrieval,
        map_method="pca",
    )
    assert _open(browser, report) == []
    browser.save_screenshot(str(artifacts / "report.png"))

    other = tmp_path / "other"
    other.mkdir()
    (other / "metrics.json").write_text(json.dumps(_metrics(0.9, 200)))
    page, _ = write_comparison([run, other], tmp_path / "compare.html")
    assert _open(browser, page) == []
    first_column = "return Array.from(document.querySelectorAll('#table-0 tbody tr'))" + (
        ".map(r => r.cells[1].textContent)"
    )
    assert browser.execute_script(first_column) == ["other", "run"]  # ranked by knn_top1
    assert "Protocols differ" in browser.page_source
    header = browser.find_element("css selector", '#table-0 th[data-column="3"]')
    header.click()  # descending: the better first
    assert browser.execute_script(first_column) == ["other", "run"]
    header.click()  # ascending
    assert browser.execute_script(first_column) == ["run", "other"]
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    browser.save_screenshot(str(artifacts / "compare.png"))
    assert (artifacts / "report.png").stat().st_size > 1000
