"""The report and the comparison page in a real browser: headless Chromium opens them from disk
with no console errors, every inlined image decodes, the table sorts on a click, a comparison of
real pretraining, semi-supervised and table runs shows each one's metrics, and a screenshot of
each page is saved as a test artifact ($PYTEST_ARTIFACTS, else tests/artifacts/)."""

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


def _tiny_runs(root: Path) -> dict[str, Path]:
    """A pretraining run and a semi-supervised run on digits and a regression table run (a CSV,
    evaluated after pretraining), one epoch each with the real API."""
    import torch

    from labelless import api
    from labelless.semi.api import semi

    torch.set_num_threads(1)
    quick = ["trainer.progress_bar=false", "trainer.threads=1"]
    pretrained = api.pretrain(
        "digits",
        "simclr",
        epochs=1,
        batch_size=64,
        width=0.125,
        out=str(root / "pretrained"),
        overrides=quick,
    )
    semi_run = semi(
        "digits",
        "fixmatch",
        labels_per_class=2,
        epochs=1,
        width=0.125,
        batch_size=16,
        mu=2,
        out=str(root / "semi"),
        overrides=[*quick, "report=false"],
    )
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(200, 4))
    target = rows @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=200)
    table = root / "rows.csv"
    lines = [",".join(f"{v:.5f}" for v in (*row, y)) for row, y in zip(rows, target, strict=True)]
    table.write_text("a,b,c,d,y\n" + "\n".join(lines) + "\n")
    options = ["data.target=y", "data.options.test=0.25"]
    table_run = api.pretrain(
        str(table),
        "scarf",
        epochs=1,
        batch_size=64,
        out=str(root / "table"),
        overrides=[*quick, *options],
    )
    api.evaluate(table_run.run_dir, str(table), data_options={"target": "y", "test": 0.25})
    return {"pretrained": pretrained.run_dir, "semi": semi_run.run_dir, "table": table_run.run_dir}


def test_comparison_shows_every_run_kinds_metrics(browser, tmp_path, artifacts):
    runs = _tiny_runs(tmp_path)
    page, _ = write_comparison(list(runs.values()), tmp_path / "compare.html")
    assert _open(browser, page) == []
    tables = browser.execute_script(
        "return Array.from(document.querySelectorAll('section')).map(s => ["
        "s.querySelector('h2').textContent,"
        "Array.from(s.querySelectorAll('table.sortable th')).map(h => h.textContent.split(' ')[0]),"
        "Array.from(s.querySelectorAll('table.sortable tbody tr')).map(r => r.cells[1].textContent)"
        "])"
    )
    columns = {key: (names, rows) for key, names, rows in tables}
    names, rows = columns["digits [native]"]
    assert {"knn_top1", "linear_top1", "rankme"} <= set(names)  # the pretraining run's
    assert {"test_top1", "test_top1_online"} <= set(names)  # the semi-supervised run's
    assert rows == ["pretrained", "semi"]  # ranked by knn_top1, which the semi run lacks
    names, rows = columns["rows.csv [native]"]  # the table run, as `labelless evaluate` wrote it
    assert {"ridge_rmse", "ridge_r2", "linear_rmse_1", "mlp_rmse_0.01"} <= set(names)
    assert rows == ["table"]
    header = browser.execute_script(
        "return Array.from(document.querySelectorAll('th'))"
        ".find(h => h.textContent.startsWith('ridge_rmse'))"
    )
    header.click()  # lower is better: the first click sorts ascending
    assert header.get_attribute("data-order") == "asc"
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    browser.save_screenshot(str(artifacts / "compare_run_kinds.png"))
